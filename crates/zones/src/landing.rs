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
    // Drops are counted under the rules' static names: no allocation per row.
    let mut outputs: Vec<(Vec<ColumnBuilder>, BTreeMap<&str, u64>)> = (0..rules.len().max(1))
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
    // Readings come in runs of one key (a user's or a device's): look a key
    // up once per run, not once per line.
    let mut last_lookup: Vec<Option<(String, Option<i64>)>> = vec![None; judged.len()];

    let mut handle = |index: usize, line: &'b [u8], text: Result<&'b str, LineError>| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        lines += 1;
        match text.and_then(|text| parse_line(schema, text.trim_end_matches('\r'), &mut cells)) {
            Ok(()) if judged.is_empty() => push_row(&mut outputs[0].0, &cells),
            Ok(()) => {
                let rules = judged.iter().zip(&mut last_lookup).zip(outputs.iter_mut());
                for (((rule, key, time), last), (builders, drops)) in rules {
                    let (Cell::Str(k), Cell::Int(t)) = (&cells[*key], &cells[*time]) else {
                        unreachable!("required key and time columns were validated")
                    };
                    let consent = match last {
                        Some((last_key, consent)) if last_key == k => *consent,
                        _ => last.insert((k.to_string(), rule.consent(k))).1,
                    };
                    match rule.judge(consent, *t) {
                        None => push_row(builders, &cells),
                        Some(name) => *drops.entry(name).or_insert(0) += 1,
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
            for (index, range) in line_ranges(bytes).enumerate() {
                handle(index, &bytes[range.clone()], Ok(&text[range]));
            }
        }
        Err(_) => {
            for (index, range) in line_ranges(bytes).enumerate() {
                let line = &bytes[range];
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
                drops.into_iter().map(|(k, n)| (k.to_string(), n)).collect(),
            )
        })
        .collect();
    JudgedObject {
        kept,
        quarantined,
        lines,
    }
}

/// The byte ranges of the lines of `bytes`, split at `\n` (SIMD search).
fn line_ranges(bytes: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', bytes).chain([bytes.len()]);
    ends.map(move |end| {
        let range = start..end;
        start = end + 1;
        range
    })
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
    if !parse_flat(schema, text, cells) {
        parse_with_serde(schema, text, cells)?;
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

/// The general path: any JSON, with serde_json's exact error for the quarantine detail.
fn parse_with_serde<'a>(
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
    Ok(())
}

/// The common line, without serde: one flat object whose strings have no
/// escapes and whose values are strings, numbers or null of the column's
/// type. Fills `cells` exactly as [`parse_with_serde`] would and returns
/// true; on anything else (escapes, nesting, booleans, a duplicate key, a
/// type mismatch, a syntax error) returns false, and the line takes the
/// general path, which also names what is wrong.
fn parse_flat<'a>(schema: &LandingSchema, text: &'a str, cells: &mut Vec<Cell<'a>>) -> bool {
    cells.clear();
    cells.resize(schema.columns.len(), Cell::Absent);
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    let mut guess = 0;
    if b.get(i) != Some(&b'{') {
        return false;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return skip_ws(b, i + 1) == b.len();
    }
    let columns = &schema.columns;
    loop {
        // Producers write keys in one order, usually the schema's: try the
        // column after the previous key first, in place (its name between
        // quotes: a plain name has nothing to escape), then search.
        let (index, after_key) = match columns.get(guess) {
            Some(c) if quoted_at(b, i, c.name.as_bytes()) => (Some(guess), i + c.name.len() + 2),
            _ => {
                let Some((key, after_key)) = plain_string(text, i) else {
                    return false;
                };
                let index = columns.iter().position(|c| c.name == key).or_else(|| {
                    columns
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(key))
                });
                (index, after_key)
            }
        };
        i = skip_ws(b, after_key);
        if b.get(i) != Some(&b':') {
            return false;
        }
        i = skip_ws(b, i + 1);
        guess = index.map_or(guess, |k| k + 1);
        let ty = index.map(|k| columns[k].ty);
        let (cell, next) = match b.get(i) {
            Some(b'"') => match (plain_string(text, i), ty) {
                (Some((v, next)), Some(ColumnType::String)) => (Cell::Str(Cow::Borrowed(v)), next),
                (Some((_, next)), None) => (Cell::Absent, next),
                _ => return false,
            },
            Some(b'n') if b[i..].starts_with(b"null") => (Cell::Null, i + 4),
            Some(b'-' | b'0'..=b'9') => {
                let Some((number, next)) = number(b, i) else {
                    return false;
                };
                let cell = match (ty, number) {
                    (Some(ColumnType::BigInt), Number::Int(v)) => Cell::Int(v),
                    (Some(ColumnType::Int), Number::Int(v)) if i32::try_from(v).is_ok() => {
                        Cell::Int(v)
                    }
                    (Some(ColumnType::Double), Number::Int(v)) => Cell::Float(v as f64),
                    (Some(ColumnType::Double), Number::Float(v)) => Cell::Float(v),
                    (Some(ColumnType::Double), Number::Long) => {
                        let v: f64 = text[i..next].parse().expect("a JSON number");
                        if !v.is_finite() {
                            return false; // out of range: the general path says so
                        }
                        Cell::Float(v)
                    }
                    (None, _) => Cell::Absent,
                    _ => return false,
                };
                (cell, next)
            }
            _ => return false,
        };
        if let Some(k) = index {
            if !matches!(cells[k], Cell::Absent) {
                return false; // a duplicate key: the general path decides
            }
            cells[k] = cell;
        }
        i = skip_ws(b, next);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return skip_ws(b, i + 1) == b.len(),
            _ => return false,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Whether `b[i..]` starts with `name` between double quotes.
fn quoted_at(b: &[u8], i: usize, name: &[u8]) -> bool {
    let end = i + name.len() + 1;
    b.get(i) == Some(&b'"') && b.get(end) == Some(&b'"') && &b[i + 1..end] == name
}

/// The JSON string starting at `text[i] == '"'` when it has no escape and
/// no control character; with the index after its closing quote.
fn plain_string(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = b[start..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    let end = start + len;
    (b[end] == b'"').then(|| (&text[start..end], end + 1))
}

/// A JSON number as [`number`] reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    /// An integer of at most 18 digits, which always fits an i64.
    Int(i64),
    /// A number without exponent whose digits, read as one integer, are
    /// below 2^53 (or `-0`, which serde_json also reads as the double -0.0):
    /// correctly rounded, since that integer and the power of ten are exact
    /// doubles and one division rounds correctly.
    Float(f64),
    /// Any other valid number: longer, or with an exponent.
    Long,
}

/// The JSON number starting at `b[i]`, read in the same pass that checks
/// its syntax, and the index after it.
fn number(b: &[u8], mut i: usize) -> Option<(Number, usize)> {
    // Exact doubles, as is every integer below 2^53.
    const POWERS_OF_TEN: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let negative = b.get(i) == Some(&b'-');
    i += usize::from(negative);
    // Digits accumulate wrapping: the value is used only when there are at
    // most 19, which cannot wrap.
    let mut mantissa = 0u64;
    let digits = |i: &mut usize, mantissa: &mut u64| {
        let start = *i;
        while let Some(&d @ b'0'..=b'9') = b.get(*i) {
            *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            *i += 1;
        }
        *i - start
    };
    let integer_digits = match b.get(i) {
        Some(b'0') => {
            i += 1;
            1
        }
        Some(b'1'..=b'9') => digits(&mut i, &mut mantissa),
        _ => return None,
    };
    let mut fraction_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        fraction_digits = digits(&mut i, &mut mantissa);
        if fraction_digits == 0 {
            return None;
        }
    }
    let mut exponent = false;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        exponent = true;
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i, &mut 0) == 0 {
            return None;
        }
    }
    let total_digits = integer_digits + fraction_digits;
    let number = match (exponent, fraction_digits) {
        (false, 0) if negative && mantissa == 0 => Number::Float(-0.0),
        (false, 0) if total_digits <= 18 => {
            let magnitude = mantissa as i64;
            Number::Int(if negative { -magnitude } else { magnitude })
        }
        (false, _) if total_digits <= 19 && mantissa < 1 << 53 => {
            let magnitude = mantissa as i64 as f64 / POWERS_OF_TEN[fraction_digits];
            Number::Float(if negative { -magnitude } else { magnitude })
        }
        _ => Number::Long,
    };
    Some((number, i))
}

#[derive(Debug, Clone, PartialEq)]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the flat path takes a line, it must fill the cells exactly as serde does.
    fn agree(dataset: Dataset, line: &str) -> bool {
        let schema = dataset.landing_schema();
        let (mut flat, mut general) = (Vec::new(), Vec::new());
        let taken = parse_flat(schema, line, &mut flat);
        let by_serde = parse_with_serde(schema, line, &mut general);
        if taken {
            assert!(by_serde.is_ok(), "flat accepted what serde rejects: {line}");
            assert_eq!(flat, general, "{line}");
        }
        taken
    }

    #[test]
    fn numbers_read_in_the_scan_equal_the_standard_parse() {
        let exact = |literal: &str| {
            let (number, end) = number(literal.as_bytes(), 0).expect("a JSON number");
            assert_eq!(end, literal.len(), "{literal}");
            let expected: f64 = literal.parse().expect("a number");
            match number {
                Number::Int(v) => assert_eq!(v, literal.parse::<i64>().expect("an integer")),
                Number::Float(v) => assert_eq!(v.to_bits(), expected.to_bits(), "{literal}"),
                Number::Long => {}
            }
            number
        };
        assert_eq!(exact("1655582000264"), Number::Int(1655582000264));
        assert_eq!(exact("-12"), Number::Int(-12));
        assert_eq!(
            exact("999999999999999999"),
            Number::Int(999_999_999_999_999_999)
        );
        assert_eq!(exact("1000000000000000000"), Number::Long);
        assert_eq!(exact("-0"), Number::Float(-0.0));
        assert_eq!(exact("-0.0"), Number::Float(-0.0));
        assert_eq!(exact("1.0"), Number::Float(1.0));
        assert_eq!(exact("0.1"), Number::Float(0.1));
        assert_eq!(exact("2.5e-3"), Number::Long);
        assert_eq!(exact("0.123456789012345"), Number::Float(0.123456789012345));
        assert_eq!(
            exact("0.1234567890123456"),
            Number::Float(0.1234567890123456)
        );
        assert_eq!(exact("9007199254740993.5"), Number::Long);
        // Decimals of up to 15 digits round as the standard parse does.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let digits = (state % 15 + 1) as usize;
            let point = (state >> 8) as usize % digits;
            let value = format!("{:0digits$}", (state >> 16) % 10u64.pow(digits as u32));
            let sign = if state & 1 == 0 { "-" } else { "" };
            let (whole, fraction) = value.split_at(point + 1);
            let whole = whole.trim_start_matches('0');
            let whole = if whole.is_empty() { "0" } else { whole };
            let literal = format!("{sign}{whole}.{fraction}");
            let literal = literal.trim_end_matches('.');
            exact(literal);
        }
        for malformed in ["-", "1.", ".5", "01", "1e", "1e+", "+1"] {
            let taken = number(malformed.as_bytes(), 0);
            assert!(
                taken.is_none_or(|(_, end)| end < malformed.len()),
                "{malformed}"
            );
        }
    }

    #[test]
    fn the_flat_path_agrees_with_serde_or_steps_aside() {
        let a = Dataset::Accelerometer;
        let taken = [
            r#"{"user":"a@b.c","timestamp":1655564444103,"x":-0.5,"y":1,"z":2.5e-3}"#,
            r#" { "user" : "a@b.c" , "timeStamp" : 0 , "x" : -0 , "y" : 1E2 , "z" : 0.0 } "#,
            r#"{"user":"ünï","timestamp":-12,"x":1.5,"y":null,"z":3,"extra":"ignored","n":7}"#,
            r#"{}"#,
            r#"{"user":null}"#,
        ];
        for line in taken {
            assert!(agree(a, line), "the flat path should take {line}");
        }
        let stepped_aside = [
            r#"{"user":"a\"b","timestamp":1,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":1.5,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":"1","x":1,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1,"user":"b"}"#,
            r#"{"user":"a","timestamp":1,"x":true,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1,"more":{"a":1}}"#,
            r#"{"user":"a","timestamp":01,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":-0,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":1234567890123456789,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":1,"x":1e999,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1} x"#,
            r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1,}"#,
            r#"{"user":"a","timestamp":1,"x":-,"y":1,"z":1}"#,
            r#"{"user":"a"  "timestamp":1}"#,
            r#"[1,2]"#,
            r#"{"user":"a","timestamp":1,"x":1.,"y":1,"z":1}"#,
            "{\"user\":\"tab\there\",\"timestamp\":1,\"x\":1,\"y\":1,\"z\":1}",
            r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1"#,
        ];
        for line in stepped_aside {
            assert!(
                !agree(a, line),
                "the flat path should leave {line} to serde"
            );
        }
        // An int column out of 32-bit range steps aside too (serde names the field).
        let customer = Dataset::Customer.landing_schema();
        let int_column = customer.columns.iter().find(|c| c.ty == ColumnType::Int);
        if let Some(c) = int_column {
            let line = format!(r#"{{"{}":3000000000}}"#, c.name);
            assert!(!agree(Dataset::Customer, &line), "{line}");
        }
    }
}
