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
use crate::counts::RowCounts;
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

/// The result of parsing one landing object (or several, merged).
#[derive(Debug, Clone)]
pub struct ParsedObject {
    /// Valid rows, typed as the landing schema says.
    pub rows: DataFrame,
    pub quarantined: Vec<QuarantinedLine>,
    /// The records read: `input = kept + quarantined` (`kept` is
    /// `rows.height()`), and the repairs by kind ([`Repair::as_str`]; kinds
    /// that did not occur are absent).
    pub counts: RowCounts,
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
    ParsedObject {
        rows: parsed.rows.pop().expect("one output without rules"),
        quarantined: parsed.quarantined,
        counts: parsed.counts.pop().expect("one output without rules"),
    }
}

/// The result of parsing one landing object under some [`ReadingRule`]s:
/// one output per rule, in order (one output without rules).
#[derive(Debug, Clone)]
pub struct JudgedObject {
    /// Per output: the rows it keeps that were not taken yet
    /// ([`ObjectParser::take_rows`]).
    pub rows: Vec<DataFrame>,
    /// Per output: the whole object's records under that rule (taken rows
    /// and quarantined records included): kept, quarantined by reason
    /// (the same for every rule), dropped by the rule's names, and the
    /// repairs by kind ([`Repair::as_str`]).
    pub counts: Vec<RowCounts>,
    /// The quarantined records not taken yet ([`ObjectParser::take_quarantined`]).
    pub quarantined: Vec<QuarantinedLine>,
}

/// Reads one landing object stored under `key` and judges its records by
/// `rules`: decompressed by the key's extension (a stream that breaks
/// quarantines what follows the break as one `corrupt_compression` record,
/// naming the byte and line where it broke; the lines before it are read),
/// then parsed as [`parse_judged`]. The same as feeding `bytes` to an
/// [`ObjectParser`] in one piece.
pub fn read_judged(
    dataset: Dataset,
    key: &str,
    bytes: &[u8],
    rules: &[&ReadingRule],
) -> JudgedObject {
    let mut parser = ObjectParser::new(dataset, key, rules);
    parser.feed(bytes);
    parser.finish()
}

/// One landing object parsed from pieces of its stored bytes, of any size
/// and cut anywhere, so an object is never held whole: each piece is
/// decompressed by the key's extension ([`Compression::of`]) as a stream,
/// cut after its last complete line, and the lines are parsed while the
/// unfinished last line is carried into the next piece (a line longer than
/// a piece grows the carry until it ends). Line numbers, quarantine,
/// repairs and counts are those of parsing the whole object at once
/// ([`read_judged`]), whatever the pieces (held by a property test).
///
/// Rows are built into columns as lines are parsed; [`Self::take_rows`]
/// hands over the rows built so far (and [`Self::take_quarantined`] the
/// quarantined records), so a caller can write them out in parts while the
/// object is still being read.
pub struct ObjectParser<'r> {
    decoder: compression::Decoder,
    compression: Compression,
    /// Stored (compressed) bytes fed.
    fed: u64,
    lines: Lines<'r>,
    /// Where the compressed stream broke, once it has.
    broken: Option<Break>,
}

/// A compressed stream's break, as the parser saw it.
struct Break {
    broken: compression::Broken,
    /// The line it broke in.
    line: u64,
    /// Decompressed bytes before it.
    decompressed: u64,
    /// The unfinished line before it.
    raw: Vec<u8>,
}

/// The line side of an [`ObjectParser`]: decompressed bytes in, records out.
struct Lines<'r> {
    schema: &'static LandingSchema,
    sink: Sink<'r>,
    /// The unfinished last line: bytes after the last `\n` seen.
    carry: Vec<u8>,
    /// The number of the next line to parse (1-based).
    next_line: u64,
    /// Decompressed bytes seen.
    decompressed: u64,
}

impl<'r> ObjectParser<'r> {
    /// A parser for the object stored under `key` (its compression is
    /// read from the extension), judging its records by `rules` (none:
    /// every valid record is kept, one output).
    pub fn new(dataset: Dataset, key: &'r str, rules: &[&'r ReadingRule]) -> Self {
        Self::with_compression(dataset, key, Compression::of(key), rules)
    }

    fn with_compression(
        dataset: Dataset,
        key: &'r str,
        compression: Compression,
        rules: &[&'r ReadingRule],
    ) -> Self {
        let mut parser = ObjectParser {
            decoder: compression::Decoder::Broken,
            compression,
            fed: 0,
            lines: Lines {
                schema: dataset.landing_schema(),
                sink: Sink::new(dataset, key, rules),
                carry: Vec::new(),
                next_line: 1,
                decompressed: 0,
            },
            broken: None,
        };
        match compression::Decoder::new(compression) {
            Ok(decoder) => parser.decoder = decoder,
            Err(broken) => parser.break_at(broken),
        }
        parser
    }

    /// The stream broke: whole lines before the break were read; the
    /// unfinished line, and everything after it, is one record.
    fn break_at(&mut self, broken: compression::Broken) {
        self.broken = Some(Break {
            broken,
            line: self.lines.next_line,
            decompressed: self.lines.decompressed,
            raw: std::mem::take(&mut self.lines.carry),
        });
    }

    /// Parses the next piece of the stored bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let lines = &mut self.lines;
        let pushed = self
            .decoder
            .push(self.fed, bytes, &mut |piece| lines.feed(piece));
        self.fed += bytes.len() as u64;
        if let Err(broken) = pushed {
            self.break_at(broken);
        }
    }

    /// Rows built so far by the first output (the first rule's kept rows).
    pub fn buffered_rows(&self) -> usize {
        self.lines.sink.buffered
    }

    /// The rows built so far, per output (per rule, in order; one without
    /// rules), and new empty columns for the rows to come.
    pub fn take_rows(&mut self) -> Vec<DataFrame> {
        self.lines.sink.take_rows()
    }

    /// The records quarantined so far, in order.
    pub fn take_quarantined(&mut self) -> Vec<QuarantinedLine> {
        std::mem::take(&mut self.lines.sink.quarantined)
    }

    /// The end of the object: its last line (if it has no `\n`), a stream
    /// cut off inside compressed data, and everything not taken yet.
    pub fn finish(mut self) -> JudgedObject {
        let lines = &mut self.lines;
        let finished = self
            .decoder
            .finish(self.fed, &mut |piece| lines.feed(piece));
        if let Err(broken) = finished {
            self.break_at(broken);
        }
        let last = std::mem::take(&mut self.lines.carry);
        if !last.is_empty() {
            self.lines.parse_lines(&last);
        }
        if let Some(b) = self.broken {
            let (compression, fed) = (self.compression, self.fed);
            let source = self.lines.sink.source.to_string();
            self.lines.sink.set_aside(QuarantinedLine {
                source,
                line: Some(b.line),
                reason: QuarantineReason::CorruptCompression,
                detail: format!(
                    "{} stream breaks at compressed byte {} of {fed} (after {} decompressed bytes, in line {}): {}; nothing after it can be read",
                    compression.as_str(),
                    b.broken.offset,
                    b.decompressed,
                    b.line,
                    b.broken.message,
                ),
                raw: String::from_utf8_lossy(&b.raw).into_owned(),
            });
        }
        self.lines.sink.finish()
    }
}

impl Lines<'_> {
    /// Decompressed bytes: the complete lines parsed, the rest carried.
    fn feed(&mut self, bytes: &[u8]) {
        self.decompressed += bytes.len() as u64;
        let mut rest = bytes;
        if !self.carry.is_empty() {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.carry.extend_from_slice(rest);
                return;
            };
            let mut line = std::mem::take(&mut self.carry);
            line.extend_from_slice(&rest[..=end]);
            self.parse_lines(&line);
            line.clear();
            self.carry = line;
            rest = &rest[end + 1..];
        }
        match memchr::memrchr(b'\n', rest) {
            Some(end) => {
                self.parse_lines(&rest[..=end]);
                self.carry.extend_from_slice(&rest[end + 1..]);
            }
            None => self.carry.extend_from_slice(rest),
        }
    }

    /// Complete lines (each ending in `\n`, but the object's last may
    /// not), numbered from `next_line`; a BOM at the object's start stripped.
    fn parse_lines(&mut self, bytes: &[u8]) {
        let bytes = match bytes.strip_prefix("\u{feff}".as_bytes()) {
            Some(rest) if self.next_line == 1 => {
                self.sink.repairs.add(Repair::Bom, 1);
                rest
            }
            _ => bytes,
        };
        let (schema, sink) = (self.schema, &mut self.sink);
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(schema.columns.len());
        let first = self.next_line;
        let mut count = 0;
        // Validate UTF-8 once for the whole piece (the common case); only a
        // piece with a bad byte is validated line by line to find the line.
        match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => {
                for (index, range) in line_ranges(bytes).enumerate() {
                    let line = &text[range];
                    read_line(schema, sink, &mut cells, first + index as u64, Ok(line));
                    count += 1;
                }
            }
            Err(_) => {
                for (index, range) in line_ranges(bytes).enumerate() {
                    let line = &bytes[range];
                    let number = first + index as u64;
                    match std::str::from_utf8(line).map_err(|e| e.valid_up_to()) {
                        Ok(text) => read_line(schema, sink, &mut cells, number, Ok(text)),
                        Err(at) => read_line(schema, sink, &mut cells, number, Err((line, at))),
                    }
                    count += 1;
                }
            }
        }
        self.next_line += count;
    }
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
    let outputs = rules.len().max(1);
    JudgedObject {
        rows: (0..outputs).map(|_| empty_rows(dataset)).collect(),
        counts: vec![RowCounts::quarantined(reason.as_str(), 1); outputs],
        quarantined: vec![QuarantinedLine {
            source: key.to_string(),
            line: None,
            reason,
            detail: format!("landing entry `{key}`: {detail}; not read"),
            raw: String::new(),
        }],
    }
}

/// Where the records of one object go: each rule's output, the
/// quarantine, and the counts.
struct Sink<'r> {
    source: &'r str,
    schema: &'static LandingSchema,
    judged: Vec<(&'r ReadingRule, usize, usize)>,
    /// Per rule (or one without rules).
    outputs: Vec<Output>,
    /// Readings come in runs of one key (a user's or a device's): look a key
    /// up once per run, not once per record.
    last_lookup: Vec<Option<(String, crate::reading_rule::Standing)>>,
    quarantined: Vec<QuarantinedLine>,
    /// Records quarantined, by reason (taken ones included).
    reasons: BTreeMap<&'static str, u64>,
    records: u64,
    repairs: RepairCounts,
    /// Rows built into the first output since the last take.
    buffered: usize,
}

/// One rule's output: its rows' builders, and its counts under the rules'
/// static names (counted in the parse's hot loop, made [`RowCounts`] at
/// the object's end).
struct Output {
    builders: Vec<ColumnBuilder>,
    /// Records kept (taken rows included).
    kept: u64,
    drops: BTreeMap<&'static str, u64>,
}

impl<'r> Sink<'r> {
    fn new(dataset: Dataset, source: &'r str, rules: &[&'r ReadingRule]) -> Self {
        let schema = dataset.landing_schema();
        let column = |name: &str| {
            schema
                .columns
                .iter()
                .position(|c| c.name == name)
                .unwrap_or_else(|| panic!("{dataset} has no `{name}`"))
        };
        let mut sink = Sink {
            source,
            schema,
            judged: rules
                .iter()
                .map(|r| (*r, column(r.key_column()), column(r.time_column())))
                .collect(),
            outputs: Vec::new(),
            last_lookup: vec![None; rules.len()],
            quarantined: Vec::new(),
            reasons: BTreeMap::new(),
            records: 0,
            repairs: RepairCounts::default(),
            buffered: 0,
        };
        sink.outputs = (0..rules.len().max(1))
            .map(|_| Output {
                builders: sink.builders(),
                kept: 0,
                drops: BTreeMap::new(),
            })
            .collect();
        sink
    }

    fn builders(&self) -> Vec<ColumnBuilder> {
        self.schema
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(&c.name, c.ty, 64))
            .collect()
    }

    /// The rows built so far, per output; new empty builders in their place.
    fn take_rows(&mut self) -> Vec<DataFrame> {
        self.buffered = 0;
        let fresh: Vec<_> = (0..self.outputs.len()).map(|_| self.builders()).collect();
        self.outputs
            .iter_mut()
            .zip(fresh)
            .map(|(output, fresh)| finish_rows(std::mem::replace(&mut output.builders, fresh)))
            .collect()
    }

    fn finish(self) -> JudgedObject {
        let named = |counts: &BTreeMap<&'static str, u64>| -> BTreeMap<String, u64> {
            counts.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        let (quarantined, repaired) = (named(&self.reasons), self.repairs.into_map());
        let (rows, counts) = self
            .outputs
            .into_iter()
            .map(|output| {
                let counts = RowCounts {
                    input: self.records,
                    kept: output.kept,
                    quarantined: quarantined.clone(),
                    dropped: named(&output.drops),
                    repaired: repaired.clone(),
                };
                (finish_rows(output.builders), counts)
            })
            .unzip();
        JudgedObject {
            rows,
            counts,
            quarantined: self.quarantined,
        }
    }

    fn keep(&mut self, cells: &[Cell<'_>]) {
        self.records += 1;
        if self.judged.is_empty() {
            let output = &mut self.outputs[0];
            push_row(&mut output.builders, cells);
            output.kept += 1;
            self.buffered += 1;
            return;
        }
        let rules = self
            .judged
            .iter()
            .zip(&mut self.last_lookup)
            .zip(self.outputs.iter_mut());
        for (n, (((rule, key, time), last), output)) in rules.enumerate() {
            let (Cell::Str(k), Cell::Int(t)) = (&cells[*key], &cells[*time]) else {
                unreachable!("required key and time columns were validated")
            };
            let standing = match last {
                Some((last_key, standing)) if last_key == k => *standing,
                _ => last.insert((k.to_string(), rule.standing(k))).1,
            };
            match rule.judge(standing, *t) {
                None => {
                    push_row(&mut output.builders, cells);
                    output.kept += 1;
                    self.buffered += usize::from(n == 0);
                }
                Some(name) => *output.drops.entry(name).or_insert(0) += 1,
            }
        }
    }

    fn quarantine(&mut self, line: u64, raw: &[u8], (reason, detail): LineError) {
        // A malformed line that holds an erased address is dropped under
        // `erased` (by every rule), never kept in quarantine.
        if let Some((rule, _, _)) = self.judged.first()
            && rule.erasure().names(&String::from_utf8_lossy(raw))
        {
            self.records += 1;
            for output in &mut self.outputs {
                *output.drops.entry(crate::policy::rule::ERASED).or_insert(0) += 1;
            }
            return;
        }
        self.set_aside(QuarantinedLine {
            source: self.source.to_string(),
            line: Some(line),
            reason,
            detail,
            raw: String::from_utf8_lossy(raw).into_owned(),
        });
    }

    /// One record read and quarantined.
    fn set_aside(&mut self, line: QuarantinedLine) {
        self.records += 1;
        *self.reasons.entry(line.reason.as_str()).or_insert(0) += 1;
        self.quarantined.push(line);
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
    let mut parser = ObjectParser::with_compression(dataset, source, Compression::None, rules);
    parser.feed(bytes);
    parser.finish()
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

fn finish_rows(builders: Vec<ColumnBuilder>) -> DataFrame {
    let columns = builders.into_iter().map(ColumnBuilder::finish).collect();
    DataFrame::new_infer_height(columns).expect("columns built with equal lengths")
}

/// An empty frame with the landing schema of `dataset`.
pub fn empty_rows(dataset: Dataset) -> DataFrame {
    DataFrame::empty_with_schema(&dataset.landing_schema().polars_schema())
}

#[cfg(test)]
mod tests;
