//! Parsing landing objects straight into typed columns, with validation,
//! lossless repairs and quarantine in the same single pass. Pure: bytes in,
//! frames out.
//!
//! The rooms: `flat` (the fast path, one flat object per line, no serde),
//! `general` (serde_json: any JSON, names what is wrong, makes the value
//! repairs), `columns` (cells and column builders), `compression` (`.gz`,
//! `.zst`). This module drives them: it splits an object into lines and a
//! line into records, counts the repairs, and judges each record by the
//! [`ReadingRule`]s while parsing.
//!
//! A record is one JSON object; `records = kept + quarantined + dropped`.
//! A line is one record as a rule; a line holding several objects back to
//! back is several records, a blank line none.

mod columns;
pub(crate) mod compression;
mod flat;
mod general;

use std::collections::BTreeMap;
use std::ops::Range;

use polars::prelude::*;

use self::columns::{Cell, ColumnBuilder, push_row};
use crate::layout::Compression;
pub use crate::quarantine::{
    QuarantineReason, QuarantinedLine, quarantine_frame, quarantine_schema,
};
use crate::reading_rule::ReadingRule;
use crate::schema::{Dataset, LandingSchema};

/// A lossless repair made while reading a landing object, counted by kind
/// in the run report (`repaired`). A repair is a note on a record (or, for
/// [`Repair::BlankLines`], on a line that is no record); the record then
/// goes to kept, quarantine or a drop like any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Repair {
    /// A UTF-8 byte-order mark at the start of an object (or of a line): stripped.
    Bom,
    /// A line ending in `\r\n`: the `\r` stripped (counted per non-blank line).
    Crlf,
    /// A blank or whitespace-only line: not a record (counted per line).
    BlankLines,
    /// One comma after the last complete object of a line (`{...},`): dropped.
    TrailingComma,
    /// Several complete objects on one line, back to back or separated by
    /// whitespace: one record each, all with the line's number (counted per record).
    ConcatenatedObjects,
    /// An integral float in a `bigint`/`int` column (`1655564100000.0`,
    /// `1.6555641E12`), exactly an integer in range: that integer (per record).
    IntegralFloat,
    /// A JSON number or boolean in a `string` column: its JSON text (per record).
    NumberAsString,
}

impl Repair {
    pub const ALL: [Repair; 7] = [
        Repair::Bom,
        Repair::Crlf,
        Repair::BlankLines,
        Repair::TrailingComma,
        Repair::ConcatenatedObjects,
        Repair::IntegralFloat,
        Repair::NumberAsString,
    ];

    /// The stable name: a key of the run report's `repaired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Repair::Bom => "bom",
            Repair::Crlf => "crlf",
            Repair::BlankLines => "blank_lines",
            Repair::TrailingComma => "trailing_comma",
            Repair::ConcatenatedObjects => "concatenated_objects",
            Repair::IntegralFloat => "integral_float",
            Repair::NumberAsString => "number_as_string",
        }
    }
}

/// The repairs made to one record (a set of [`Repair`] kinds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RepairSet(u8);

impl RepairSet {
    pub(crate) fn insert(&mut self, repair: Repair) {
        self.0 |= 1 << repair as u8;
    }

    pub(crate) fn contains(self, repair: Repair) -> bool {
        self.0 & (1 << repair as u8) != 0
    }
}

/// Counts of repairs by kind, indexed by `Repair as usize`.
#[derive(Debug, Clone, Copy, Default)]
struct RepairCounts([u64; Repair::ALL.len()]);

impl RepairCounts {
    fn add(&mut self, repair: Repair, n: u64) {
        self.0[repair as usize] += n;
    }

    fn add_set(&mut self, set: RepairSet) {
        if set.0 != 0 {
            for repair in Repair::ALL {
                if set.contains(repair) {
                    self.add(repair, 1);
                }
            }
        }
    }

    /// The kinds that occurred, by name.
    fn into_map(self) -> BTreeMap<String, u64> {
        Repair::ALL
            .into_iter()
            .filter(|r| self.0[*r as usize] > 0)
            .map(|r| (r.as_str().to_string(), self.0[r as usize]))
            .collect()
    }
}

/// Why a record is quarantined: its reason and a detail naming the field.
type LineError = (QuarantineReason, String);

/// The result of parsing one landing object.
#[derive(Debug, Clone)]
pub struct ParsedObject {
    /// Valid rows, typed as the landing schema says.
    pub rows: DataFrame,
    pub quarantined: Vec<QuarantinedLine>,
    /// Records seen: `rows.height() + quarantined.len()`.
    pub records: u64,
    /// Repairs made, by kind ([`Repair::as_str`]); kinds that did not occur are absent.
    pub repaired: BTreeMap<String, u64>,
}

/// Parses one JSON-lines object of `dataset` (uncompressed bytes). Never
/// fails: every record ends either in `rows` or in `quarantined`.
pub fn parse_object(dataset: Dataset, source: &str, bytes: &[u8]) -> ParsedObject {
    into_parsed(parse_judged(dataset, source, bytes, &[]))
}

/// Reads one landing object as stored under `key`: decompressed by the
/// key's extension ([`Compression::of`]), then parsed as [`parse_object`].
pub fn read_object(dataset: Dataset, key: &str, bytes: &[u8]) -> ParsedObject {
    into_parsed(read_judged(dataset, key, bytes, &[]))
}

fn into_parsed(mut parsed: JudgedObject) -> ParsedObject {
    let (rows, _) = parsed.kept.pop().expect("one output without rules");
    ParsedObject {
        rows,
        quarantined: parsed.quarantined,
        records: parsed.records,
        repaired: parsed.repaired,
    }
}

/// The result of parsing one landing object under some [`ReadingRule`]s.
#[derive(Debug, Clone)]
pub struct JudgedObject {
    /// Per rule, in order: the rows it keeps and its drops by rule name.
    pub kept: Vec<(DataFrame, BTreeMap<String, u64>)>,
    pub quarantined: Vec<QuarantinedLine>,
    /// Records seen (each rule's kept + dropped, plus the quarantined).
    pub records: u64,
    /// Repairs made, by kind ([`Repair::as_str`]).
    pub repaired: BTreeMap<String, u64>,
}

/// Reads one landing object stored under `key` and judges its records by
/// `rules`: decompressed by the key's extension (a stream that breaks
/// quarantines what follows the break as one `corrupt_compression` record,
/// naming the byte and line where it broke; the lines before it are read),
/// then parsed as [`parse_judged`]. Uncompressed bytes are parsed in place.
pub fn read_judged(
    dataset: Dataset,
    key: &str,
    bytes: &[u8],
    rules: &[&ReadingRule],
) -> JudgedObject {
    let compression = Compression::of(key);
    if compression == Compression::None {
        return parse_judged(dataset, key, bytes, rules);
    }
    let (data, broken) = compression::decompress(compression, bytes);
    let Some(broken) = broken else {
        return parse_judged(dataset, key, &data, rules);
    };
    // Whole lines before the break are read; the rest is one record.
    let cut = memchr::memrchr(b'\n', &data).map_or(0, |p| p + 1);
    let mut judged = parse_judged(dataset, key, &data[..cut], rules);
    let line = memchr::memchr_iter(b'\n', &data[..cut]).count() as u64 + 1;
    judged.records += 1;
    judged.quarantined.push(QuarantinedLine {
        source: key.to_string(),
        line: Some(line),
        reason: QuarantineReason::CorruptCompression,
        detail: format!(
            "{} stream breaks at compressed byte {} of {} (after {} decompressed bytes, in line {line}): {}; nothing after it can be read",
            compression.as_str(),
            broken.offset,
            bytes.len(),
            data.len(),
            broken.message,
        ),
        raw: String::from_utf8_lossy(&data[cut..]).into_owned(),
    });
    judged
}

/// A landing entry that is listed but must not be read (locally: not a
/// regular file, or a name that is not UTF-8): one quarantined record
/// naming the entry, no rows.
pub fn unreadable_object(
    dataset: Dataset,
    key: &str,
    reason: QuarantineReason,
    detail: &str,
    rules: &[&ReadingRule],
) -> JudgedObject {
    JudgedObject {
        kept: (0..rules.len().max(1))
            .map(|_| (empty_rows(dataset), BTreeMap::new()))
            .collect(),
        quarantined: vec![QuarantinedLine {
            source: key.to_string(),
            line: None,
            reason,
            detail: format!("landing entry `{key}`: {detail}; not read"),
            raw: String::new(),
        }],
        records: 1,
        repaired: BTreeMap::new(),
    }
}

/// Where the records of one object go: each rule's builders and drops, the
/// quarantine, and the counts.
struct Sink<'r> {
    source: &'r str,
    judged: Vec<(&'r ReadingRule, usize, usize)>,
    /// Per rule (or one without rules): builders, and drops under the rules' static names.
    outputs: Vec<(Vec<ColumnBuilder>, BTreeMap<&'static str, u64>)>,
    /// Readings come in runs of one key (a user's or a device's): look a key
    /// up once per run, not once per record.
    last_lookup: Vec<Option<(String, crate::reading_rule::Standing)>>,
    quarantined: Vec<QuarantinedLine>,
    records: u64,
    repairs: RepairCounts,
}

impl Sink<'_> {
    fn keep(&mut self, cells: &[Cell<'_>]) {
        self.records += 1;
        if self.judged.is_empty() {
            push_row(&mut self.outputs[0].0, cells);
            return;
        }
        let rules = self
            .judged
            .iter()
            .zip(&mut self.last_lookup)
            .zip(self.outputs.iter_mut());
        for (((rule, key, time), last), (builders, drops)) in rules {
            let (Cell::Str(k), Cell::Int(t)) = (&cells[*key], &cells[*time]) else {
                unreachable!("required key and time columns were validated")
            };
            let standing = match last {
                Some((last_key, standing)) if last_key == k => *standing,
                _ => last.insert((k.to_string(), rule.standing(k))).1,
            };
            match rule.judge(standing, *t) {
                None => push_row(builders, cells),
                Some(name) => *drops.entry(name).or_insert(0) += 1,
            }
        }
    }

    fn quarantine(&mut self, line: u64, raw: &[u8], (reason, detail): LineError) {
        self.records += 1;
        // A malformed line that holds an erased address is dropped under
        // `erased` (by every rule), never kept in quarantine.
        if let Some((rule, _, _)) = self.judged.first()
            && rule.erasure().names(&String::from_utf8_lossy(raw))
        {
            for (_, drops) in &mut self.outputs {
                *drops.entry(crate::policy::rule::ERASED).or_insert(0) += 1;
            }
            return;
        }
        self.quarantined.push(QuarantinedLine {
            source: self.source.to_string(),
            line: Some(line),
            reason,
            detail,
            raw: String::from_utf8_lossy(raw).into_owned(),
        });
    }

    /// One record's outcome.
    fn record(&mut self, line: u64, raw: &[u8], outcome: Result<&[Cell<'_>], LineError>) {
        match outcome {
            Ok(cells) => self.keep(cells),
            Err(e) => self.quarantine(line, raw, e),
        }
    }
}

/// Parses one JSON-lines object (uncompressed) and judges each valid record
/// by every rule in the same pass: a record's columns are built only for the
/// rules that keep it. With no rules, every valid record is kept (one output).
pub fn parse_judged(
    dataset: Dataset,
    source: &str,
    bytes: &[u8],
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
    let mut sink = Sink {
        source,
        judged: rules
            .iter()
            .map(|r| (*r, column(r.key_column()), column(r.time_column())))
            .collect(),
        outputs: (0..rules.len().max(1))
            .map(|_| {
                let builders = schema
                    .columns
                    .iter()
                    .map(|c| ColumnBuilder::new(&c.name, c.ty, estimate))
                    .collect();
                (builders, BTreeMap::new())
            })
            .collect(),
        last_lookup: vec![None; rules.len()],
        quarantined: Vec::new(),
        records: 0,
        repairs: RepairCounts::default(),
    };
    let bytes = match bytes.strip_prefix("\u{feff}".as_bytes()) {
        Some(rest) => {
            sink.repairs.add(Repair::Bom, 1);
            rest
        }
        None => bytes,
    };
    let mut cells: Vec<Cell<'_>> = Vec::with_capacity(schema.columns.len());
    // Validate UTF-8 once for the whole object (the common case); only an
    // object with a bad byte is validated line by line to find the line.
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => {
            for (index, range) in line_ranges(bytes).enumerate() {
                let line = &text[range];
                read_line(schema, &mut sink, &mut cells, index as u64 + 1, Ok(line));
            }
        }
        Err(_) => {
            for (index, range) in line_ranges(bytes).enumerate() {
                let line = &bytes[range];
                let text = std::str::from_utf8(line).map_err(|e| e.valid_up_to());
                match text {
                    Ok(text) => {
                        read_line(schema, &mut sink, &mut cells, index as u64 + 1, Ok(text))
                    }
                    Err(at) => read_line(
                        schema,
                        &mut sink,
                        &mut cells,
                        index as u64 + 1,
                        Err((line, at)),
                    ),
                }
            }
        }
    }
    let kept = sink
        .outputs
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
        quarantined: sink.quarantined,
        records: sink.records,
        repaired: sink.repairs.into_map(),
    }
}

/// One line: blank (no record), the fast path (one record), or the slow
/// path (repairs; one or more records). `text` is the line without its
/// `\n`, or its bytes and where UTF-8 breaks.
fn read_line<'a>(
    schema: &LandingSchema,
    sink: &mut Sink<'_>,
    cells: &mut Vec<Cell<'a>>,
    number: u64,
    text: Result<&'a str, (&[u8], usize)>,
) {
    let bytes = match text {
        Ok(text) => text.as_bytes(),
        Err((bytes, _)) => bytes,
    };
    let (bytes, crlf) = match bytes.strip_suffix(b"\r") {
        Some(stripped) => (stripped, true),
        None => (bytes, false),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        sink.repairs.add(Repair::BlankLines, 1);
        return;
    }
    if crlf {
        sink.repairs.add(Repair::Crlf, 1);
    }
    let text = match text {
        Ok(text) => &text[..bytes.len()],
        Err((_, at)) => {
            let detail = format!("not valid UTF-8 at byte {at}");
            sink.quarantine(number, bytes, (QuarantineReason::InvalidUtf8, detail));
            return;
        }
    };
    if flat::parse_flat(schema, text, cells) {
        let outcome = required(schema, cells).map(|()| &cells[..]);
        sink.record(number, bytes, outcome);
        return;
    }
    for record in slow_records(schema, text, true) {
        sink.repairs.add_set(record.repairs);
        let outcome = record.cells.as_deref();
        sink.record(number, record.raw.as_bytes(), outcome.map_err(Clone::clone));
    }
}

/// One record of a line read on the slow path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record<'a> {
    /// The record's cells (one per schema column), or why it is quarantined.
    pub(crate) cells: Result<Vec<Cell<'a>>, LineError>,
    pub(crate) repairs: RepairSet,
    /// The record's text: the whole line, or its object when the line holds several.
    pub(crate) raw: &'a str,
}

/// The records of one line (without its line end), by the slow path: a BOM
/// at the start stripped; objects back to back split apart; one trailing
/// comma dropped; each record read by serde (or, with `flat`, by the flat
/// scanner where it takes the record). Anything that is not a run of
/// complete objects is one record, the whole line, which serde then names.
pub(crate) fn slow_records<'a>(
    schema: &LandingSchema,
    text: &'a str,
    flat: bool,
) -> Vec<Record<'a>> {
    let mut line_repairs = RepairSet::default();
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            line_repairs.insert(Repair::Bom);
            rest
        }
        None => text,
    };
    // The 2022 public step-trainer shape, `{...},` on every line: one
    // object and a comma, which the scanner can take without the split.
    let json_ws = [' ', '\t', '\n', '\r'];
    if flat && let Some(object) = text.trim_end_matches(json_ws).strip_suffix(',') {
        let mut cells = Vec::with_capacity(schema.columns.len());
        if flat::parse_flat(schema, object, &mut cells) {
            line_repairs.insert(Repair::TrailingComma);
            return vec![Record {
                cells: required(schema, &cells).map(|()| cells),
                repairs: line_repairs,
                raw: text,
            }];
        }
    }
    let (segments, trailing_comma) = split_objects(text);
    let several = segments.len() > 1;
    let last = segments.len() - 1;
    segments
        .into_iter()
        .enumerate()
        .map(|(n, range)| {
            let mut repairs = line_repairs;
            if several {
                repairs.insert(Repair::ConcatenatedObjects);
            }
            if trailing_comma && n == last {
                repairs.insert(Repair::TrailingComma);
            }
            let segment = &text[range];
            let mut cells = Vec::with_capacity(schema.columns.len());
            let whole_line = !several && !trailing_comma;
            let read = if flat && !whole_line && flat::parse_flat(schema, segment, &mut cells) {
                Ok(())
            } else {
                general::parse_with_serde(schema, segment, &mut cells, &mut repairs)
            };
            let raw = if several { segment.trim() } else { text };
            Record {
                cells: read.and_then(|()| required(schema, &cells)).map(|()| cells),
                repairs,
                raw,
            }
        })
        .collect()
}

/// Splits a line into complete top-level objects: `{..}{..} {..}` gives
/// one range each (the whitespace before an object belongs to it), and
/// whether one comma follows the last object. A line that is not such a
/// run (anything else between or after the objects, an object never
/// closed, not an object at all) is one range, the whole line.
fn split_objects(text: &str) -> (Vec<Range<usize>>, bool) {
    let b = text.as_bytes();
    let whole = (std::iter::once(0..b.len()).collect(), false);
    let mut segments = Vec::new();
    let mut start = 0;
    let mut i = flat::skip_ws(b, 0);
    loop {
        if b.get(i) != Some(&b'{') {
            return whole;
        }
        let Some(end) = object_end(b, i) else {
            return whole;
        };
        segments.push(start..end);
        let next = flat::skip_ws(b, end);
        match b.get(next) {
            None => return (segments, false),
            Some(b'{') => {
                start = end;
                i = next;
            }
            Some(b',') if flat::skip_ws(b, next + 1) == b.len() => return (segments, true),
            Some(_) => return whole,
        }
    }
}

/// The index after the bracket that closes the object opening at `b[i]`,
/// skipping strings (and their escapes); None when it is never closed.
fn object_end(b: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut k = i;
    let mut in_string = false;
    while k < b.len() {
        let c = b[k];
        if in_string {
            match c {
                b'\\' => k += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(k + 1);
                    }
                }
                _ => {}
            }
        }
        k += 1;
    }
    None
}

/// Every required column has a value.
fn required(schema: &LandingSchema, cells: &[Cell<'_>]) -> Result<(), LineError> {
    for (column, cell) in schema.columns.iter().zip(cells) {
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

/// The byte ranges of the lines of `bytes`, split at `\n` (SIMD search); a
/// final `\n` ends the last line rather than starting an empty one.
fn line_ranges(bytes: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    let tail = (!bytes.is_empty() && !bytes.ends_with(b"\n")).then_some(bytes.len());
    let ends = memchr::memchr_iter(b'\n', bytes).chain(tail);
    ends.map(move |end| {
        let range = start..end;
        start = end + 1;
        range
    })
}

/// An empty frame with the landing schema of `dataset`.
pub fn empty_rows(dataset: Dataset) -> DataFrame {
    DataFrame::empty_with_schema(&dataset.landing_schema().polars_schema())
}

#[cfg(test)]
mod tests;
