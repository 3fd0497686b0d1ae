//! Printing query results: an aligned table for people, CSV and JSON lines for scripts.

use std::io::Write;

use anyhow::Result;
use polars::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub fn print(df: &DataFrame, format: Format, out: &mut dyn Write) -> Result<()> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let columns = df.columns();
    match format {
        Format::Table => {
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
                .set_header(&names);
            for row in 0..df.height() {
                let mut cells = Vec::with_capacity(columns.len());
                for col in columns {
                    cells.push(text(&cell(col, row)?));
                }
                table.add_row(cells);
            }
            writeln!(out, "{table}")?;
            writeln!(out, "({} rows)", df.height())?;
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(&names)?;
            for row in 0..df.height() {
                let mut record = Vec::with_capacity(columns.len());
                for col in columns {
                    record.push(text(&cell(col, row)?));
                }
                writer.write_record(&record)?;
            }
            writer.flush()?;
        }
        Format::Json => {
            for row in 0..df.height() {
                let mut object = serde_json::Map::new();
                for (name, col) in names.iter().zip(columns) {
                    object.insert(name.clone(), json(&cell(col, row)?));
                }
                writeln!(out, "{}", serde_json::Value::Object(object))?;
            }
        }
    }
    Ok(())
}

fn text(value: &AnyValue<'_>) -> String {
    match value {
        AnyValue::Null => String::new(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn json(value: &AnyValue<'_>) -> serde_json::Value {
    use serde_json::Value;
    match value {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::Int8(v) => (*v).into(),
        AnyValue::Int16(v) => (*v).into(),
        AnyValue::Int32(v) => (*v).into(),
        AnyValue::Int64(v) => (*v).into(),
        AnyValue::UInt8(v) => (*v).into(),
        AnyValue::UInt16(v) => (*v).into(),
        AnyValue::UInt32(v) => (*v).into(),
        AnyValue::UInt64(v) => (*v).into(),
        AnyValue::Float32(v) => {
            serde_json::Number::from_f64(f64::from(*v)).map_or(Value::Null, Value::Number)
        }
        AnyValue::Float64(v) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
        other => Value::String(other.to_string()),
    }
}

fn cell(col: &Column, row: usize) -> Result<AnyValue<'_>> {
    Ok(col.get(row)?)
}
