//! Parsing landing objects (JSON lines) straight into typed columns, with
//! validation and quarantine in the same single pass. Pure: bytes in, frames out.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use polars::prelude::*;
use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, Visitor};

use crate::schema::{ColumnType, Dataset, LandingSchema};
use crate::transitions::ReadingRule;

/// Why a landing line went to quarantine. The names are stable: they are the
/// `reason` column of the quarantine tables and the keys of the run report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuarantineReason {
    InvalidUtf8,
    MalformedJson,
    NotAnObject,
    MissingField,
    WrongType,
    /// machine_learning_curated: several candidate customers explain a reading.
    AmbiguousCustomer,
}

impl QuarantineReason {
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineReason::InvalidUtf8 => "invalid_utf8",
            QuarantineReason::MalformedJson => "malformed_json",
            QuarantineReason::NotAnObject => "not_an_object",
            QuarantineReason::MissingField => "missing_field",
            QuarantineReason::WrongType => "wrong_type",
            QuarantineReason::AmbiguousCustomer => "ambiguous_customer",
        }
    }
}

impl fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One landing line that did not make it into the typed frame.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantinedLine {
    pub source: String,
    /// 1-based line number within the source object (none for rows of a table).
    pub line: Option<u64>,
    pub reason: QuarantineReason,
    /// Human-readable detail naming the field, e.g. "field `timestamp`: invalid type: ...".
    pub detail: String,
    /// The raw line (lossily decoded when it is not valid UTF-8).
    pub raw: String,
}

/// The result of parsing one landing object.
#[derive(Debug, Clone)]
pub struct ParsedObject {
    /// Valid rows, typed as the landing schema says.
    pub rows: DataFrame,
    pub quarantined: Vec<QuarantinedLine>,
    /// Non-blank lines seen: `rows.height() + quarantined.len()`.
    pub lines: u64,
}

/// Parses one JSON-lines object of `dataset`. Never fails: every non-blank
/// line ends either in `rows` or in `quarantined`.
pub fn parse_object(dataset: Dataset, source: &str, bytes: &[u8]) -> ParsedObject {
    let mut parsed = parse_judged(dataset, source, bytes, &[]);
    let (rows, _) = parsed.kept.pop().expect("one output without rules");
    ParsedObject {
        rows,
        quarantined: parsed.quarantined,
        lines: parsed.lines,
    }
}

/// The result of parsing one landing object under some [`ReadingRule`]s.
#[derive(Debug, Clone)]
pub struct JudgedObject {
    /// Per rule, in order: the rows it keeps and its drops by rule name.
    pub kept: Vec<(DataFrame, BTreeMap<String, u64>)>,
    pub quarantined: Vec<QuarantinedLine>,
    /// Non-blank lines seen.
    pub lines: u64,
}

/// Parses one JSON-lines object and judges each valid row by every rule in
/// the same pass: a row's columns are built only for the rules that keep it.
/// With no rules, every valid row is kept (one output).
pub fn parse_judged<'b>(
    dataset: Dataset,
    source: &str,
    bytes: &'b [u8],
    rules: &[&ReadingRule],
) -> JudgedObject {
    let schema = dataset.landing_schema();
    let estimate = bytes.len() / 64 + 1;
    let column = |name: &str| {
        schema
            .columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("{dataset} has no `{name}`"))
    };
    let judged: Vec<(&ReadingRule, usize, usize)> = rules
        .iter()
        .map(|r| (*r, column(r.key_column()), column(r.time_column())))
        .collect();
    let mut outputs: Vec<(Vec<ColumnBuilder>, BTreeMap<String, u64>)> = (0..rules.len().max(1))
        .map(|_| {
            let builders = schema
                .columns
                .iter()
                .map(|c| ColumnBuilder::new(&c.name, c.ty, estimate))
                .collect();
            (builders, BTreeMap::new())
        })
        .collect();
    let mut quarantined = Vec::new();
    let mut cells: Vec<Cell<'b>> = Vec::with_capacity(schema.columns.len());
    let mut lines = 0u64;

    let mut handle = |index: usize, line: &'b [u8], text: Result<&'b str, LineError>| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        lines += 1;
        match text.and_then(|text| parse_line(schema, text.trim_end_matches('\r'), &mut cells)) {
            Ok(()) if judged.is_empty() => push_row(&mut outputs[0].0, &cells),
            Ok(()) => {
                for ((rule, key, time), (builders, drops)) in judged.iter().zip(outputs.iter_mut())
                {
                    let (Cell::Str(k), Cell::Int(t)) = (&cells[*key], &cells[*time]) else {
                        unreachable!("required key and time columns were validated")
                    };
                    match rule.judge(k, *t) {
                        None => push_row(builders, &cells),
                        Some(name) => *drops.entry(name.to_string()).or_insert(0) += 1,
                    }
                }
            }
            Err((reason, detail)) => quarantined.push(QuarantinedLine {
                source: source.to_string(),
                line: Some(index as u64 + 1),
                reason,
                detail,
                raw: String::from_utf8_lossy(line).into_owned(),
            }),
        }
    };
    // Validate UTF-8 once for the whole object (the common case); only an
    // object with a bad byte is validated line by line to find the line.
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => {
            for (index, line) in text.split('\n').enumerate() {
                handle(index, line.as_bytes(), Ok(line));
            }
        }
        Err(_) => {
            for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
                let text = std::str::from_utf8(line).map_err(|e| {
                    (
                        QuarantineReason::InvalidUtf8,
                        format!("not valid UTF-8 at byte {}", e.valid_up_to()),
                    )
                });
                handle(index, line, text);
            }
        }
    }
    let kept = outputs
        .into_iter()
        .map(|(builders, drops)| {
            let columns = builders.into_iter().map(ColumnBuilder::finish).collect();
            (
                DataFrame::new_infer_height(columns).expect("columns built with equal lengths"),
                drops,
            )
        })
        .collect();
    JudgedObject {
        kept,
        quarantined,
        lines,
    }
}

fn push_row(builders: &mut [ColumnBuilder], row: &[Cell<'_>]) {
    for (builder, cell) in builders.iter_mut().zip(row) {
        builder.push(cell);
    }
}

/// An empty frame with the landing schema of `dataset`.
pub fn empty_rows(dataset: Dataset) -> DataFrame {
    DataFrame::empty_with_schema(&dataset.landing_schema().polars_schema())
}

/// The schema of every quarantine table.
pub fn quarantine_schema() -> Schema {
    Schema::from_iter([
        Field::new("source".into(), DataType::String),
        Field::new("line".into(), DataType::Int64),
        Field::new("reason".into(), DataType::String),
        Field::new("detail".into(), DataType::String),
        Field::new("raw".into(), DataType::String),
    ])
}

/// Quarantined lines as a frame with [`quarantine_schema`].
pub fn quarantine_frame(lines: &[QuarantinedLine]) -> DataFrame {
    let col_str = |name: &str, f: &dyn Fn(&QuarantinedLine) -> &str| {
        Column::new(name.into(), lines.iter().map(f).collect::<Vec<_>>())
    };
    DataFrame::new_infer_height(vec![
        col_str("source", &|q| &q.source),
        Column::new(
            "line".into(),
            lines
                .iter()
                .map(|q| q.line.map(|l| l as i64))
                .collect::<Vec<_>>(),
        ),
        col_str("reason", &|q| q.reason.as_str()),
        col_str("detail", &|q| &q.detail),
        col_str("raw", &|q| &q.raw),
    ])
    .expect("columns built with equal lengths")
}

type LineError = (QuarantineReason, String);

fn parse_line<'a>(
    schema: &LandingSchema,
    text: &'a str,
    cells: &mut Vec<Cell<'a>>,
) -> Result<(), LineError> {
    cells.clear();
    cells.resize(schema.columns.len(), Cell::Absent);
    let mut de = serde_json::Deserializer::from_str(text);
    let mut state = RowState {
        schema,
        cells,
        saw_object: false,
        bad_field: None,
    };
    let parsed = (&mut de)
        .deserialize_any(RowVisitor { state: &mut state })
        .and_then(|()| de.end());
    if let Err(e) = parsed {
        let reason = match e.classify() {
            serde_json::error::Category::Data if !state.saw_object => QuarantineReason::NotAnObject,
            serde_json::error::Category::Data => QuarantineReason::WrongType,
            _ => QuarantineReason::MalformedJson,
        };
        let detail = match state.bad_field.take() {
            Some(field) => format!("field `{field}`: {e}"),
            None => e.to_string(),
        };
        return Err((reason, detail));
    }
    for (column, cell) in schema.columns.iter().zip(cells.iter()) {
        if !column.optional {
            match cell {
                Cell::Absent => {
                    return Err((
                        QuarantineReason::MissingField,
                        format!("field `{}` is missing", column.name),
                    ));
                }
                Cell::Null => {
                    return Err((
                        QuarantineReason::MissingField,
                        format!("field `{}` is null", column.name),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Cell<'a> {
    Absent,
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
}

struct RowState<'s, 'c, 'a> {
    schema: &'s LandingSchema,
    cells: &'c mut Vec<Cell<'a>>,
    saw_object: bool,
    bad_field: Option<String>,
}

struct RowVisitor<'r, 's, 'c, 'a> {
    state: &'r mut RowState<'s, 'c, 'a>,
}

impl<'de> Visitor<'de> for RowVisitor<'_, '_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.state;
        state.saw_object = true;
        while let Some(key) = map.next_key::<StrCow<'de>>()? {
            // Keys match case-insensitively, as Athena's OpenX JSON SerDe does:
            // `timeStamp` in older accelerometer files is `timestamp`.
            let columns = &state.schema.columns;
            let exact = columns.iter().position(|c| c.name == key.0);
            let Some(index) = exact.or_else(|| {
                columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(&key.0))
            }) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let column = &state.schema.columns[index];
            let value = match column.ty {
                ColumnType::String => map
                    .next_value::<Option<StrCow<'de>>>()
                    .map(|v| v.map(|s| Cell::Str(s.0))),
                ColumnType::BigInt => map.next_value::<Option<i64>>().map(|v| v.map(Cell::Int)),
                ColumnType::Int => match map.next_value::<Option<i64>>() {
                    Ok(Some(v)) if i32::try_from(v).is_err() => {
                        state.bad_field = Some(column.name.clone());
                        return Err(de::Error::invalid_value(
                            de::Unexpected::Signed(v),
                            &"a 32-bit integer",
                        ));
                    }
                    other => other.map(|v| v.map(Cell::Int)),
                },
                ColumnType::Double => map.next_value::<Option<f64>>().map(|v| v.map(Cell::Float)),
            };
            match value {
                Ok(v) => state.cells[index] = v.unwrap_or(Cell::Null),
                Err(e) => {
                    state.bad_field = Some(column.name.clone());
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// A string that borrows from the input when it has no escapes.
struct StrCow<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for StrCow<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrCow<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StrCow(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrCow(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(StrCow(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

impl<'de> DeserializeSeed<'de> for RowVisitor<'_, '_, '_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

enum ColumnBuilder {
    Str(StringChunkedBuilder),
    I64(PrimitiveChunkedBuilder<Int64Type>),
    I32(PrimitiveChunkedBuilder<Int32Type>),
    F64(PrimitiveChunkedBuilder<Float64Type>),
}

impl ColumnBuilder {
    fn new(name: &str, ty: ColumnType, capacity: usize) -> Self {
        let name = PlSmallStr::from(name);
        match ty {
            ColumnType::String => ColumnBuilder::Str(StringChunkedBuilder::new(name, capacity)),
            ColumnType::BigInt => ColumnBuilder::I64(PrimitiveChunkedBuilder::new(name, capacity)),
            ColumnType::Int => ColumnBuilder::I32(PrimitiveChunkedBuilder::new(name, capacity)),
            ColumnType::Double => ColumnBuilder::F64(PrimitiveChunkedBuilder::new(name, capacity)),
        }
    }

    /// Cells were type-checked while parsing, so each builder only sees its own type.
    fn push(&mut self, cell: &Cell<'_>) {
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

    fn finish(self) -> Column {
        match self {
            ColumnBuilder::Str(b) => b.finish().into_column(),
            ColumnBuilder::I64(b) => b.finish().into_column(),
            ColumnBuilder::I32(b) => b.finish().into_column(),
            ColumnBuilder::F64(b) => b.finish().into_column(),
        }
    }
}
