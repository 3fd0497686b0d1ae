//! Typed cells of one record and the column builders they are pushed into.

use std::borrow::Cow;

use polars::prelude::*;

use crate::schema::ColumnType;

/// One field of a record as parsed, before it goes into its column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    Absent,
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
}

/// A column under construction, typed as the landing schema says.
pub(crate) enum ColumnBuilder {
    Str(StringChunkedBuilder),
    I64(PrimitiveChunkedBuilder<Int64Type>),
    I32(PrimitiveChunkedBuilder<Int32Type>),
    F64(PrimitiveChunkedBuilder<Float64Type>),
}

impl ColumnBuilder {
    pub(crate) fn new(name: &str, ty: ColumnType, capacity: usize) -> Self {
        let name = PlSmallStr::from(name);
        match ty {
            ColumnType::String => ColumnBuilder::Str(StringChunkedBuilder::new(name, capacity)),
            ColumnType::BigInt => ColumnBuilder::I64(PrimitiveChunkedBuilder::new(name, capacity)),
            ColumnType::Int => ColumnBuilder::I32(PrimitiveChunkedBuilder::new(name, capacity)),
            ColumnType::Double => ColumnBuilder::F64(PrimitiveChunkedBuilder::new(name, capacity)),
        }
    }

    /// Cells were type-checked while parsing, so each builder only sees its own type.
    pub(crate) fn push(&mut self, cell: &Cell<'_>) {
        match (self, cell) {
            (ColumnBuilder::Str(b), Cell::Str(s)) => b.append_value(s),
            (ColumnBuilder::Str(b), _) => b.append_null(),
            (ColumnBuilder::I64(b), Cell::Int(v)) => b.append_value(*v),
            (ColumnBuilder::I64(b), _) => b.append_null(),
            (ColumnBuilder::I32(b), Cell::Int(v)) => b.append_value(*v as i32),
            (ColumnBuilder::I32(b), _) => b.append_null(),
            (ColumnBuilder::F64(b), Cell::Float(v)) => b.append_value(*v),
            (ColumnBuilder::F64(b), _) => b.append_null(),
        }
    }

    pub(crate) fn finish(self) -> Column {
        match self {
            ColumnBuilder::Str(b) => b.finish().into_column(),
            ColumnBuilder::I64(b) => b.finish().into_column(),
            ColumnBuilder::I32(b) => b.finish().into_column(),
            ColumnBuilder::F64(b) => b.finish().into_column(),
        }
    }
}

/// Pushes one record's cells, in schema order, into its builders.
pub(crate) fn push_row(builders: &mut [ColumnBuilder], row: &[Cell<'_>]) {
    for (builder, cell) in builders.iter_mut().zip(row) {
        builder.push(cell);
    }
}
