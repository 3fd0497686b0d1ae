//! Quarantine: the records that did not make it into a table, each with a
//! stable reason, where it came from and its raw text. Shared by the landing
//! parser (records it cannot read) and the transitions (rows they will not
//! guess about).

use std::fmt;

use polars::prelude::*;

use crate::counts::RowCounts;

/// Why a landing record (or a table row) went to quarantine. The names are
/// stable: they are the `reason` column of the quarantine tables and the keys
/// of the run report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuarantineReason {
    InvalidUtf8,
    MalformedJson,
    NotAnObject,
    MissingField,
    WrongType,
    /// One object names a field twice (keys compare case-insensitively, so
    /// `timeStamp` and `timestamp` in one object are a duplicate).
    DuplicateKey,
    /// A compressed landing object (`.gz`, `.zst`) whose stream breaks: what
    /// follows the break cannot be read.
    CorruptCompression,
    /// A local landing entry that is not a regular file (a symlink, a named
    /// pipe, a device): listed, never read.
    NotARegularFile,
    /// A local landing entry whose name is not valid UTF-8: named lossily, never read.
    InvalidObjectName,
    /// machine_learning_curated: several candidate customers explain a reading.
    AmbiguousCustomer,
}

impl QuarantineReason {
    pub const ALL: [QuarantineReason; 10] = [
        QuarantineReason::InvalidUtf8,
        QuarantineReason::MalformedJson,
        QuarantineReason::NotAnObject,
        QuarantineReason::MissingField,
        QuarantineReason::WrongType,
        QuarantineReason::DuplicateKey,
        QuarantineReason::CorruptCompression,
        QuarantineReason::NotARegularFile,
        QuarantineReason::InvalidObjectName,
        QuarantineReason::AmbiguousCustomer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineReason::InvalidUtf8 => "invalid_utf8",
            QuarantineReason::MalformedJson => "malformed_json",
            QuarantineReason::NotAnObject => "not_an_object",
            QuarantineReason::MissingField => "missing_field",
            QuarantineReason::WrongType => "wrong_type",
            QuarantineReason::DuplicateKey => "duplicate_key",
            QuarantineReason::CorruptCompression => "corrupt_compression",
            QuarantineReason::NotARegularFile => "not_a_regular_file",
            QuarantineReason::InvalidObjectName => "invalid_object_name",
            QuarantineReason::AmbiguousCustomer => "ambiguous_customer",
        }
    }
}

impl fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One landing record (or table row) that did not make it into its table.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantinedLine {
    /// The landing object's key (or the table's name for rows of a table).
    pub source: String,
    /// 1-based line number within the source object (none for rows of a
    /// table, or for an entry that was never read).
    pub line: Option<u64>,
    pub reason: QuarantineReason,
    /// Human-readable detail naming the field, e.g. "field `timestamp`: invalid type: ...".
    pub detail: String,
    /// The raw record (lossily decoded when it is not valid UTF-8).
    pub raw: String,
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

/// Quarantined records as a frame with [`quarantine_schema`].
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

/// The counts of quarantined records: each read and set aside for its reason.
pub fn counts(lines: &[QuarantinedLine]) -> RowCounts {
    lines
        .iter()
        .map(|line| RowCounts::quarantined(line.reason.as_str(), 1))
        .sum()
}
