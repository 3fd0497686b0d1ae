//! Erasure of a person on request (GDPR Art. 17), as rules on bytes and
//! rows: who is erased, which landing records are theirs, and a landing
//! object rewritten without them. Pure: the `lakehouse` crate stores the
//! requests, reads and rewrites the objects, and deletes what must go.
//!
//! A request names its people by *subject*: the HMAC of the normalised
//! address under the erasure key ([`ErasureKey::subject`]; not the
//! pseudonym key, so whoever applies erasures cannot compute a
//! `customerKey`), and the request log holds no address. A run finds the addresses again
//! by computing the subject of every address it reads.
//!
//! Which records are the person's (the rule [`crate::policy::rule::ERASED`], judged before
//! every other rule under both policies, so the person leaves every table
//! whatever the policy would have said):
//! - customer records whose `email` is theirs;
//! - accelerometer readings whose `user` is theirs;
//! - step-trainer readings whose `serialNumber` only erased customers hold
//!   (per customer landing records); a serial shared with a customer who is
//!   not erased stays, as it names no one in particular;
//! - a malformed line whose text holds an erased address, or a serial only
//!   erased customers hold: dropped under `erased`, never quarantined (a
//!   quarantine row would keep it).

use std::collections::{BTreeMap, HashMap, HashSet};

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::landing::{self, QuarantinedLine};
use crate::layout::Compression;
use crate::pseudonym::{ErasureKey, normalise_email};
use crate::run_id::RunId;
use crate::schema::Dataset;

/// `_erasure/requests/<id>.json`: one erasure request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRequest {
    /// `<requested_at_ms>-<8 hex digits>` ([`request_id`]).
    pub id: String,
    /// When it was filed, epoch milliseconds.
    pub requested_at_ms: u64,
    /// The people to erase, as [`ErasureKey::subject`]s.
    pub subjects: Vec<String>,
    /// The fingerprint of the erasure key the subjects were made with: a
    /// run refuses to apply the request under another key (it would match
    /// nobody). Absent in requests filed before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// Set by the run that applied it.
    #[serde(default)]
    pub completed: Option<Completed>,
    /// The last run that tried to apply it and could not, and why (the
    /// request stays pending; `stedi erase --status` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Failed>,
}

/// A run's failed attempt at applying a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub run_id: RunId,
    /// Epoch milliseconds.
    pub at_ms: u64,
    /// What stopped it (no address: keys and counts only).
    pub problem: String,
}

/// When and by which run a request was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completed {
    pub run_id: RunId,
    /// Epoch milliseconds.
    pub at_ms: u64,
    /// How many of the request's people had a customer record in landing
    /// when it was applied (0: the address matched nobody; their readings,
    /// if any, were still dropped by `user`).
    #[serde(default)]
    pub found: u64,
}

/// A request id: the time it was filed and 8 hex digits of the SHA-256 of
/// its subjects (so two requests filed in the same millisecond differ).
pub fn request_id(requested_at_ms: u64, subjects: &[String]) -> String {
    let mut digest = Sha256::new();
    for s in subjects {
        digest.update(s.as_bytes());
        digest.update(b"\n");
    }
    let hash = hex::encode(digest.finalize());
    format!("{requested_at_ms:013}-{}", &hash[..8])
}

/// Who a run erases, found in the customer landing records.
#[derive(Debug, Clone, Default)]
pub struct Erasure {
    subjects: HashSet<String>,
    key: Option<ErasureKey>,
    /// The subjects whose address was found in customer landing.
    found: HashSet<String>,
    /// The erased addresses found in customer landing, normalised. Held in
    /// memory only: never logged, stored or returned in a result.
    emails: HashSet<String>,
    /// Serials that only erased customers hold.
    serials: HashSet<String>,
}

impl Erasure {
    /// Nobody is erased.
    pub fn none() -> Erasure {
        Erasure::default()
    }

    /// The erasure of `subjects` under `key`, with the customer landing
    /// records (`email`, `serialNumber`) that name their addresses and serials.
    pub fn new(
        key: ErasureKey,
        subjects: impl IntoIterator<Item = String>,
        customer_landing: &DataFrame,
    ) -> PolarsResult<Erasure> {
        let subjects: HashSet<String> = subjects.into_iter().collect();
        let mut erasure = Erasure {
            subjects,
            key: Some(key),
            ..Erasure::default()
        };
        if erasure.subjects.is_empty() {
            return Ok(erasure);
        }
        let emails = customer_landing.column("email")?.str()?;
        let serials = customer_landing.column("serialNumber")?.str()?;
        // Per serial: whether an erased customer holds it, whether another does.
        let mut holders: HashMap<&str, (bool, bool)> = HashMap::new();
        let mut judged: HashMap<&str, bool> = HashMap::new();
        for (email, serial) in emails.iter().zip(serials.iter()) {
            let erased = match email {
                Some(email) => *judged.entry(email).or_insert_with(|| {
                    let subject = erasure.subject(email);
                    erasure.subjects.contains(&subject)
                }),
                None => false,
            };
            if let (true, Some(email)) = (erased, email)
                && erasure.emails.insert(normalise_email(email))
            {
                let subject = erasure.subject(email);
                erasure.found.insert(subject);
            }
            if let Some(serial) = serial {
                let entry = holders.entry(serial).or_default();
                if erased {
                    entry.0 = true;
                } else {
                    entry.1 = true;
                }
            }
        }
        erasure.serials = holders
            .into_iter()
            .filter(|(_, (erased, other))| *erased && !*other)
            .map(|(serial, _)| serial.to_string())
            .collect();
        Ok(erasure)
    }

    fn subject(&self, email: &str) -> String {
        self.key
            .as_ref()
            .expect("an erasure with subjects has a key")
            .subject(email)
    }

    /// Whether nobody is erased.
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// Whether `email` (a customer's `email` or a reading's `user`) is an
    /// erased person's, found in customer landing or not.
    pub fn email(&self, email: &str) -> bool {
        !self.is_empty()
            && (self.emails.contains(&normalise_email(email))
                || self.subjects.contains(&self.subject(email)))
    }

    /// Whether only erased customers hold `serial`.
    pub fn serial(&self, serial: &str) -> bool {
        self.serials.contains(serial)
    }

    /// Whether `text` holds an erased address (case-insensitive) or a serial
    /// only erased customers hold, as a malformed line or a quarantine
    /// row's raw text may.
    pub fn names(&self, text: &str) -> bool {
        if self.emails.is_empty() && self.serials.is_empty() {
            return false;
        }
        self.serials.iter().any(|s| text.contains(s.as_str())) || {
            let lower = text.to_lowercase();
            self.emails.iter().any(|e| lower.contains(e.as_str()))
        }
    }

    /// Whether a record of `dataset` whose key column (`email`, `user`,
    /// `serialNumber`) holds `key` is erased.
    pub fn record(&self, dataset: Dataset, key: &str) -> bool {
        match dataset {
            Dataset::StepTrainer => self.serial(key),
            Dataset::Customer | Dataset::Accelerometer => self.email(key),
        }
    }

    /// The erased addresses found in customer landing (for the warehouse
    /// search that verifies an erasure; never to be stored or logged).
    pub fn emails(&self) -> &HashSet<String> {
        &self.emails
    }

    /// How many rows of a table (any snapshot: trusted, curated,
    /// quarantine, a rubric shadow) hold an erased person: an `email` or
    /// `user` of theirs, a `serialNumber` only they hold, or a `raw` text
    /// naming their address. A `customerKey` is not searched: it is an HMAC
    /// under the pseudonym key, which whoever applies erasures cannot read
    /// (the run that applies an erasure builds the training table without
    /// the person, and the Erase state deletes every older training table).
    pub fn rows_found(&self, frame: &DataFrame) -> PolarsResult<u64> {
        if self.is_empty() {
            return Ok(0);
        }
        let mut found = vec![false; frame.height()];
        for column in frame.columns() {
            let Ok(values) = column.str() else { continue };
            let judge: Box<dyn Fn(&str) -> bool> = match column.name().as_str() {
                "email" | "user" => Box::new(|v| self.email(v)),
                "serialNumber" => Box::new(|v| self.serial(v)),
                "raw" | "detail" => Box::new(|v| self.names(v)),
                _ => continue,
            };
            // One judgement per distinct value (an address's subject is an HMAC).
            let mut judged: HashMap<&str, bool> = HashMap::new();
            for (row, value) in values.iter().enumerate() {
                if let Some(value) = value
                    && *judged.entry(value).or_insert_with(|| judge(value))
                {
                    found[row] = true;
                }
            }
        }
        Ok(found.iter().filter(|f| **f).count() as u64)
    }

    /// How many of `subjects` had a customer record in landing.
    pub fn found(&self, subjects: &[String]) -> u64 {
        subjects.iter().filter(|s| self.found.contains(*s)).count() as u64
    }

    /// The serials only erased customers hold.
    pub fn serials(&self) -> &HashSet<String> {
        &self.serials
    }

    /// The subjects erased.
    pub fn subjects(&self) -> &HashSet<String> {
        &self.subjects
    }

    /// Splits erased customer records from parsed customer landing: the
    /// rows and quarantined lines that remain, and how many records were
    /// erased (rows by `email`, lines whose text holds an erased address).
    pub fn split_customers(
        &self,
        rows: DataFrame,
        quarantined: Vec<QuarantinedLine>,
    ) -> PolarsResult<(DataFrame, Vec<QuarantinedLine>, u64)> {
        if self.is_empty() {
            return Ok((rows, quarantined, 0));
        }
        let keep: BooleanChunked = rows
            .column("email")?
            .str()?
            .iter()
            .map(|e| Some(!e.is_some_and(|e| self.email(e))))
            .collect();
        let kept = rows.filter(&keep)?;
        let erased_rows = (rows.height() - kept.height()) as u64;
        let before = quarantined.len();
        let quarantined: Vec<_> = quarantined
            .into_iter()
            .filter(|q| !self.names(&q.raw))
            .collect();
        let erased_lines = (before - quarantined.len()) as u64;
        Ok((kept, quarantined, erased_rows + erased_lines))
    }

    /// Counts a landing object's records and those of them that are erased
    /// (`bytes` as stored, decompressed by the key's extension).
    pub fn count(&self, dataset: Dataset, key: &str, bytes: &[u8]) -> PolarsResult<(u64, u64)> {
        let parsed = landing::read_object(dataset, key, bytes);
        Ok((
            parsed.counts.input,
            self.erased_in(dataset, &parsed.rows, &parsed.quarantined)?,
        ))
    }

    fn erased_in(
        &self,
        dataset: Dataset,
        rows: &DataFrame,
        quarantined: &[QuarantinedLine],
    ) -> PolarsResult<u64> {
        let column = key_column(dataset);
        // Readings come in runs of one key: judge a key once per run.
        let mut last: Option<(&str, bool)> = None;
        let rows = rows
            .column(column)?
            .str()?
            .iter()
            .flatten()
            .filter(|k| match last {
                Some((key, erased)) if key == *k => erased,
                _ => last.insert((k, self.record(dataset, k))).1,
            })
            .count();
        let lines = quarantined.iter().filter(|q| self.names(&q.raw)).count();
        Ok((rows + lines) as u64)
    }

    /// A landing object stored under `key` rewritten without the erased
    /// records: every line that holds none is kept byte for byte (its line
    /// ending too), a line whose records are all erased is removed, and the
    /// result is compressed again as the key's extension says (gzip or
    /// zstd at the default level). None when the object holds no erased
    /// record. The result is checked before it is returned: records after
    /// = records before - erased, and no erased record left.
    pub fn rewrite(
        &self,
        dataset: Dataset,
        key: &str,
        stored: &[u8],
    ) -> Result<Option<Rewrite>, RewriteRefused> {
        let compression = Compression::of(key);
        let (data, broken) = landing::compression::decompress(compression, stored);
        if let Some(broken) = broken {
            return Err(RewriteRefused::BrokenCompression {
                offset: broken.offset,
            });
        }
        // One parse of the whole object counts what must go; the line pass
        // then parses only lines that name an erased address or serial (a
        // record judged erased always names one, unless it is a reading of
        // an address no customer record holds: then every line is parsed).
        let whole = landing::parse_object(dataset, key, &data);
        let expected = self
            .erased_in(dataset, &whole.rows, &whole.quarantined)
            .map_err(|e| RewriteRefused::Internal(e.to_string()))?;
        if expected == 0 {
            return Ok(None);
        }
        let records = whole.counts.input;
        let (mut out, mut erased) = (Vec::new(), 0);
        for every_line in [false, true] {
            (out, erased) = self.without_erased_lines(dataset, key, &data, every_line)?;
            if erased == expected {
                break;
            }
        }
        let bytes = landing::compression::compress(compression, &out);
        let (after, left) = self
            .count(dataset, key, &bytes)
            .map_err(|e| RewriteRefused::Internal(e.to_string()))?;
        if after != records - erased || left != 0 {
            return Err(RewriteRefused::CheckFailed {
                records,
                erased,
                after,
                left,
            });
        }
        Ok(Some(Rewrite {
            bytes,
            records,
            erased,
        }))
    }
}

impl Erasure {
    /// The object's lines without those whose records are all erased, and
    /// how many records went. Only lines that name an erased address or
    /// serial are parsed, unless `every_line`.
    fn without_erased_lines(
        &self,
        dataset: Dataset,
        key: &str,
        data: &[u8],
        every_line: bool,
    ) -> Result<(Vec<u8>, u64), RewriteRefused> {
        let mut out = Vec::with_capacity(data.len());
        let (mut erased, mut start, mut number) = (0u64, 0, 0u64);
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p + 1);
            let line = &data[start..end];
            number += 1;
            let suspect = every_line || self.names(&String::from_utf8_lossy(line));
            let (records, on_line) = match suspect {
                false => (1, 0),
                true => {
                    let parsed = landing::parse_object(dataset, key, line);
                    let on_line = self
                        .erased_in(dataset, &parsed.rows, &parsed.quarantined)
                        .map_err(|e| RewriteRefused::Internal(e.to_string()))?;
                    (parsed.counts.input, on_line)
                }
            };
            erased += on_line;
            if on_line == 0 {
                out.extend_from_slice(line);
            } else if on_line < records {
                return Err(RewriteRefused::MixedLine { line: number });
            } else if start == 0 && line.starts_with("\u{feff}".as_bytes()) {
                out.extend_from_slice("\u{feff}".as_bytes()); // the object's BOM stays
            }
            start = end;
        }
        Ok((out, erased))
    }
}

/// The key column by which a landing record of `dataset` is judged.
pub fn key_column(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Customer => "email",
        Dataset::Accelerometer => "user",
        Dataset::StepTrainer => "serialNumber",
    }
}

/// A landing object without its erased records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The new object, compressed as the original.
    pub bytes: Vec<u8>,
    /// Records before the rewrite.
    pub records: u64,
    /// Records removed: the rewritten object holds `records - erased`.
    pub erased: u64,
}

/// Why an object holding erased records is not rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteRefused {
    #[error("its compressed stream breaks at byte {offset}: what follows cannot be judged")]
    BrokenCompression { offset: u64 },
    #[error(
        "line {line} holds records of an erased person and of others on one line; rewriting it would change the others' bytes"
    )]
    MixedLine { line: u64 },
    #[error(
        "the rewrite does not check: {records} records, {erased} erased, {after} after (expected {}), {left} erased left",
        records - erased
    )]
    CheckFailed {
        records: u64,
        erased: u64,
        after: u64,
        left: u64,
    },
    #[error("{0}")]
    Internal(String),
}

/// `_runs/<run id>/erasure.json`: what a run's Erase state did, and the
/// search that verifies it. Counts, keys and request ids only: no address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErasureReport {
    pub run_id: Option<RunId>,
    /// The ids of the requests applied (completed by this run).
    pub requests: Vec<String>,
    /// Landing objects rewritten without the erased records.
    pub objects_rewritten: Vec<RewrittenObject>,
    /// Records removed from landing objects, per landing table.
    pub landing_records_removed: BTreeMap<String, u64>,
    /// Rows the run's transitions dropped under `erased`, per table.
    pub rows_dropped: BTreeMap<String, u64>,
    /// Snapshot prefixes (older snapshots, rubric shadows, quarantine
    /// snapshots) deleted because they held an erased person's rows.
    pub snapshots_deleted: Vec<String>,
    /// Other objects of earlier runs (pages, facts) deleted because their
    /// text named an erased person.
    pub objects_deleted: Vec<String>,
    pub verification: Verification,
    pub seconds: f64,
    /// Why the erasure is incomplete, when it is (its requests stay pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One landing object rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewrittenObject {
    pub key: String,
    pub records_before: u64,
    pub records_removed: u64,
    /// Older versions of the object deleted (S3 with versioning; 0 locally).
    pub older_versions_deleted: u64,
}

/// A search of every object of the warehouse (Parquet parts read back,
/// landing objects parsed) for the erased people.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub objects_searched: u64,
    pub parquet_rows_read: u64,
    /// Keys of objects that still hold an erased person: empty when it passed.
    pub found_in: Vec<String>,
    pub passed: bool,
}
