//! Every object key and prefix of the warehouse, built in one place.
//! The layout is the same on a local directory and on S3:
//!
//! ```text
//! <dataset>/landing/**                       raw JSON lines, as in the public starter data or as a
//!                                            delivery stream writes them (see [`landing_object`])
//! <dataset>/trusted/<snapshot>/part-*.parquet  accelerometer and step readings by day: bucket=<n>/part-*.parquet
//! customer/curated/<snapshot>/...            machine_learning/curated/<snapshot>/...
//! <dataset>/quarantine/<snapshot>/...
//! _runs/<run id>/report.json                 _runs/<run id>/rubric/<table>/...  (strict runs)
//! _runs/<run id>/report.html, facts.json     the run report as a page, and what it shows beyond report.json
//! _runs/<run id>/run.json                    when the run started, from which catalog version
//! _runs/<run id>/lease.json                  held by the local runner while it executes the run
//! <snapshot prefix>/_manifest.json           the parts of a snapshot, with sizes and CRC32C checksums
//! _catalog/log/<version>.json                the local stand-in for the Glue Data Catalog, one
//!                                            document per version (catalog.json: the latest, a copy)
//! _secrets/pseudonym.key                     the local key of customerKey's HMAC (owner-only)
//! _secrets/erasure.key                       the local key of erasure subjects' HMAC (owner-only)
//! _keys/pseudonym.json                      the pseudonym key's fingerprint, and since which run it is used
//! _erasure/requests/<request id>.json        an erasure request: subjects (HMACs), time, completion
//! _runs/<run id>/erasure.json                what the run's Erase state removed, and its verification
//! _map_results/<run id>/<table>/<map run id>/  a Distributed Map's result files (manifest.json,
//!                                            SUCCEEDED_n.json, ...), read by the transition's reduce
//! _map_results/<run id>/machine_learning_curated/buckets.json  the days of the step readings: the
//!                                            training table's Map's items
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::run_id::RunId;
use crate::schema::Dataset;

/// Zones of the lakehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    Landing,
    Trusted,
    Curated,
    Quarantine,
}

impl Zone {
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Landing => "landing",
            Zone::Trusted => "trusted",
            Zone::Curated => "curated",
            Zone::Quarantine => "quarantine",
        }
    }
}

/// Every table of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    CustomerLanding,
    AccelerometerLanding,
    StepTrainerLanding,
    CustomerTrusted,
    AccelerometerTrusted,
    CustomersCurated,
    StepTrainerTrusted,
    MachineLearningCurated,
    CustomerQuarantine,
    AccelerometerQuarantine,
    StepTrainerQuarantine,
    MachineLearningQuarantine,
}

impl Table {
    pub const ALL: [Table; 12] = [
        Table::CustomerLanding,
        Table::AccelerometerLanding,
        Table::StepTrainerLanding,
        Table::CustomerTrusted,
        Table::AccelerometerTrusted,
        Table::CustomersCurated,
        Table::StepTrainerTrusted,
        Table::MachineLearningCurated,
        Table::CustomerQuarantine,
        Table::AccelerometerQuarantine,
        Table::StepTrainerQuarantine,
        Table::MachineLearningQuarantine,
    ];

    /// The tables the five transitions produce, in pipeline order.
    pub const PRODUCED: [Table; 5] = [
        Table::CustomerTrusted,
        Table::AccelerometerTrusted,
        Table::CustomersCurated,
        Table::StepTrainerTrusted,
        Table::MachineLearningCurated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::CustomerLanding => "customer_landing",
            Table::AccelerometerLanding => "accelerometer_landing",
            Table::StepTrainerLanding => "step_trainer_landing",
            Table::CustomerTrusted => "customer_trusted",
            Table::AccelerometerTrusted => "accelerometer_trusted",
            Table::CustomersCurated => "customers_curated",
            Table::StepTrainerTrusted => "step_trainer_trusted",
            Table::MachineLearningCurated => "machine_learning_curated",
            Table::CustomerQuarantine => "customer_quarantine",
            Table::AccelerometerQuarantine => "accelerometer_quarantine",
            Table::StepTrainerQuarantine => "step_trainer_quarantine",
            Table::MachineLearningQuarantine => "machine_learning_quarantine",
        }
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn zone(self) -> Zone {
        use Table::*;
        match self {
            CustomerLanding | AccelerometerLanding | StepTrainerLanding => Zone::Landing,
            CustomerTrusted | AccelerometerTrusted | StepTrainerTrusted => Zone::Trusted,
            CustomersCurated | MachineLearningCurated => Zone::Curated,
            CustomerQuarantine
            | AccelerometerQuarantine
            | StepTrainerQuarantine
            | MachineLearningQuarantine => Zone::Quarantine,
        }
    }

    /// The folder under the warehouse root that holds this table.
    pub fn dir(self) -> &'static str {
        use Table::*;
        match self {
            CustomerLanding | CustomerTrusted | CustomersCurated | CustomerQuarantine => "customer",
            AccelerometerLanding | AccelerometerTrusted | AccelerometerQuarantine => {
                "accelerometer"
            }
            StepTrainerLanding | StepTrainerTrusted | StepTrainerQuarantine => "step_trainer",
            MachineLearningCurated | MachineLearningQuarantine => "machine_learning",
        }
    }

    pub fn landing(dataset: Dataset) -> Table {
        match dataset {
            Dataset::Customer => Table::CustomerLanding,
            Dataset::Accelerometer => Table::AccelerometerLanding,
            Dataset::StepTrainer => Table::StepTrainerLanding,
        }
    }

    pub fn quarantine(dataset: Dataset) -> Table {
        match dataset {
            Dataset::Customer => Table::CustomerQuarantine,
            Dataset::Accelerometer => Table::AccelerometerQuarantine,
            Dataset::StepTrainer => Table::StepTrainerQuarantine,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `<dataset>/landing/`: where the raw JSON-lines objects are.
pub fn landing_prefix(dataset: Dataset) -> String {
    format!("{}/landing/", dataset.dir())
}

/// How a landing object is compressed: read from its name's extension, as
/// Athena does (`.gz` gzip, `.zst` zstd, case-insensitive; anything else is
/// plain text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression of the object `key`, by the extension of its last segment.
    pub fn of(key: &str) -> Compression {
        let name = key.rsplit('/').next().unwrap_or(key);
        match name.rsplit_once('.') {
            Some((_, ext)) if ext.eq_ignore_ascii_case("gz") => Compression::Gzip,
            Some((_, ext)) if ext.eq_ignore_ascii_case("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Whether the name `key` belongs to the landing table of `dataset`, by
/// Athena's rule: any object under `<dataset>/landing/`, at any depth and
/// with any extension, except those whose name or any folder below the
/// landing prefix starts with `_` or `.` (`_SUCCESS`, `.part.crc`,
/// `_temporary/...`). See [`landing_object`] for the whole rule.
pub fn landing_name(dataset: Dataset, key: &str) -> bool {
    let prefix = landing_prefix(dataset);
    match key.strip_prefix(prefix.as_str()) {
        Some(rest) if !rest.is_empty() && !rest.ends_with('/') => rest
            .split('/')
            .all(|segment| !segment.starts_with(['_', '.'])),
        _ => false,
    }
}

/// The one rule, locally and on S3, for which listed objects make up the
/// landing table of `dataset`: [`landing_name`] holds and the object is not
/// empty (`size` in bytes). Returns how to decompress it, or None when the
/// object is not part of the table.
pub fn landing_object(dataset: Dataset, key: &str, size: u64) -> Option<Compression> {
    (size > 0 && landing_name(dataset, key)).then(|| Compression::of(key))
}

/// `<dir>/<zone>/<run id>/`: where the snapshot a run writes of a produced
/// table lives (a snapshot is named by its run).
pub fn snapshot_prefix(table: Table, snapshot: &RunId) -> String {
    debug_assert!(table.zone() != Zone::Landing);
    format!("{}/{}/{}/", table.dir(), table.zone().as_str(), snapshot)
}

/// The table and run of a snapshot object: the inverse of [`snapshot_prefix`]
/// for any key under a produced or quarantine table's snapshot prefix
/// (`customer/trusted/<run id>/part-00000.parquet` gives customer_trusted
/// and the run id). None for landing objects and any other key.
pub fn snapshot_of(key: &str) -> Option<(Table, RunId)> {
    let mut segments = key.splitn(4, '/');
    let (dir, zone, run, rest) = (
        segments.next()?,
        segments.next()?,
        segments.next()?,
        segments.next()?,
    );
    if rest.is_empty() {
        return None;
    }
    let table = Table::ALL
        .into_iter()
        .find(|t| t.zone() != Zone::Landing && t.dir() == dir && t.zone().as_str() == zone)?;
    Some((table, RunId::parse(run).ok()?))
}

/// The tables whose snapshots live under [`snapshot_prefix`]: every table but
/// the landing ones.
pub fn snapshot_tables() -> impl Iterator<Item = Table> {
    Table::ALL.into_iter().filter(|t| t.zone() != Zone::Landing)
}

/// `<dir>/<zone>/`: where every snapshot of `table` lives, one folder per run.
pub fn snapshots_prefix(table: Table) -> String {
    debug_assert!(table.zone() != Zone::Landing);
    format!("{}/{}/", table.dir(), table.zone().as_str())
}

/// `_runs/<run id>/rubric/`: every rubric shadow of a strict run.
pub fn rubric_shadows_prefix(run_id: &RunId) -> String {
    format!("_runs/{run_id}/rubric/")
}

/// What an object under `_runs/` is: `(run id, Some(table))` for an object
/// of a rubric shadow, `(run id, None)` for the run's other files (its
/// record, lease, report, page and facts). None for keys outside `_runs/<run id>/`.
pub fn run_object(key: &str) -> Option<(RunId, Option<Table>)> {
    let rest = key.strip_prefix(runs_prefix())?;
    let (run, rest) = rest.split_once('/')?;
    let run = RunId::parse(run).ok()?;
    let shadow = rest
        .strip_prefix("rubric/")
        .and_then(|r| r.split_once('/'))
        .and_then(|(table, _)| Table::from_name(table));
    Some((run, shadow))
}

/// `_runs/<run id>/rubric/<table>/`: the rubric-policy shadow of a table that a
/// strict run computes to explain its difference to the rubric.
pub fn rubric_shadow_prefix(run_id: &RunId, table: Table) -> String {
    format!("_runs/{run_id}/rubric/{}/", table.name())
}

/// Where a snapshot is written: its table, its prefix and its id. What the
/// snapshot writer (`lakehouse::tables`) takes to write parts and seal
/// them; a sealed snapshot is described by a `crate::contract::TableRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRef {
    pub table: Table,
    /// Prefix under the warehouse root, ending in `/`.
    pub location: String,
    /// The snapshot's id: the run id.
    pub snapshot: String,
}

impl SnapshotRef {
    /// The snapshot of `table` written by run `run_id` ([`snapshot_prefix`]).
    pub fn of(table: Table, run_id: &RunId) -> SnapshotRef {
        SnapshotRef {
            table,
            location: snapshot_prefix(table, run_id),
            snapshot: run_id.to_string(),
        }
    }

    /// A strict run's rubric shadow of `table` ([`rubric_shadow_prefix`]).
    pub fn rubric_shadow(table: Table, run_id: &RunId) -> SnapshotRef {
        SnapshotRef {
            table,
            location: rubric_shadow_prefix(run_id, table),
            snapshot: run_id.to_string(),
        }
    }

    /// The key of the part `name` ([`part_name`], [`batch_part_name`]).
    pub fn part_key(&self, name: &str) -> String {
        format!("{}{name}", self.location)
    }
}

/// The key of the `n`-th Parquet part under a table prefix.
pub fn part_key(prefix: &str, n: usize) -> String {
    format!("{prefix}{}", part_name(n))
}

/// The name of a snapshot's `n`-th Parquet part (`part-00000.parquet`).
pub fn part_name(n: usize) -> String {
    format!("part-{n:05}.parquet")
}

/// The name of the `n`-th part written by a batch of landing objects whose
/// first object is `first_key` (`part-<16 hex digits>-00001.parquet`, the
/// digits the start of the key's SHA-256): a batch's parts are named by its
/// objects, so a retried or redriven batch writes over its own parts, and
/// no two batches of one listing share a name.
pub fn batch_part_name(first_key: &str, n: usize) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(first_key.as_bytes());
    format!("part-{}-{n:05}.parquet", hex::encode(&digest[..8]))
}

/// `bucket=<n>/<part>`: the part `part` ([`part_name`], [`batch_part_name`])
/// of time bucket `bucket` (`crate::transitions::time_bucket`), in the
/// bucket's folder under the snapshot prefix (Athena reads every folder
/// below a table's location; `bucket` is no column of it).
pub fn bucket_part_name(bucket: i64, part: &str) -> String {
    format!("bucket={bucket}/{part}")
}

/// The time bucket of a part named by [`bucket_part_name`]; None for a
/// part of no bucket.
pub fn bucket_of_part(name: &str) -> Option<i64> {
    let (folder, _) = name.split_once('/')?;
    folder.strip_prefix("bucket=")?.parse().ok()
}

/// Whether `name` is the name of a part as [`part_name`],
/// [`batch_part_name`] and [`bucket_part_name`] make them: `part-`, groups
/// of ASCII letters and digits joined by `-`, `.parquet`, in a bucket's
/// folder or not. A part name that comes from outside (a Map child's
/// answer read back from S3) is checked with it before it is joined to a
/// snapshot prefix.
pub fn is_part_name(name: &str) -> bool {
    let part = match name.split_once('/') {
        // The folder as `bucket_part_name` writes it: no `+`, no leading 0.
        Some((_, part))
            if bucket_of_part(name).is_some_and(|b| name == bucket_part_name(b, part)) =>
        {
            part
        }
        Some(_) => return false,
        None => name,
    };
    part.strip_prefix("part-")
        .and_then(|rest| rest.strip_suffix(".parquet"))
        .is_some_and(|groups| {
            groups.len() <= 64
                && groups
                    .split('-')
                    .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_alphanumeric()))
        })
}

/// `_map_results/`: where the Distributed Maps of the state machine write
/// their result files (their ResultWriter's prefix, one folder per run).
pub fn map_results_prefix() -> &'static str {
    "_map_results/"
}

/// `_map_results/<run id>/<table>/`: the ResultWriter prefix of the Map
/// that produces `table` in run `run_id` (Step Functions adds the Map
/// Run's id below it). The state machine builds the same text with
/// `States.Format`.
pub fn map_results_table_prefix(run_id: &RunId, table: Table) -> String {
    format!("_map_results/{run_id}/{}/", table.name())
}

/// `_map_results/<run id>/machine_learning_curated/buckets.json`: the time
/// buckets of run `run_id`'s step readings (a JSON array of
/// `crate::contract::TimeBucket`), which the reduce of step_trainer_trusted
/// writes and the training table's Distributed Map reads as its items.
pub fn time_buckets_key(run_id: &RunId) -> String {
    format!(
        "{}buckets.json",
        map_results_table_prefix(run_id, Table::MachineLearningCurated)
    )
}

/// The run and table of an object under [`map_results_table_prefix`];
/// None for any other key.
pub fn map_result_of(key: &str) -> Option<(RunId, Table)> {
    let rest = key.strip_prefix(map_results_prefix())?;
    let mut segments = rest.splitn(3, '/');
    let (run, table, rest) = (segments.next()?, segments.next()?, segments.next()?);
    if rest.is_empty() {
        return None;
    }
    Some((RunId::parse(run).ok()?, Table::from_name(table)?))
}

pub fn report_key(run_id: &RunId) -> String {
    format!("_runs/{run_id}/report.json")
}

/// `_runs/<run id>/run.json`: the run's record (when it started, the catalog
/// version it started from, whether it finished), written at its first state.
pub fn run_record_key(run_id: &RunId) -> String {
    format!("_runs/{run_id}/run.json")
}

/// `_runs/<run id>/lease.json`: held by the local runner while it executes
/// the run, so a second `stedi run` of the same id cannot write beside it.
pub fn run_lease_key(run_id: &RunId) -> String {
    format!("_runs/{run_id}/lease.json")
}

/// `_runs/<run id>/map-runs/<map run id>.json`: what the local runner keeps
/// of a Map Run's child executions (the succeeded ones' results, the failed
/// ones' errors), so that running the run again re-runs only the children
/// that did not succeed, as a Step Functions redrive of the Map Run does.
pub fn map_run_record_key(run_id: &RunId, map_run_id: &str) -> String {
    format!("_runs/{run_id}/map-runs/{map_run_id}.json")
}

/// `<prefix>_manifest.json`: the parts of the snapshot under `prefix`, with
/// their sizes and checksums. Readers take the parts from it, not from a listing.
pub fn manifest_key(prefix: &str) -> String {
    debug_assert!(prefix.ends_with('/'));
    format!("{prefix}_manifest.json")
}

/// `_runs/<run id>/report.html`: the run report as one self-contained page.
pub fn report_html_key(run_id: &RunId) -> String {
    format!("_runs/{run_id}/report.html")
}

/// `_runs/<run id>/facts.json`: what the page shows beyond report.json (the
/// states' timeline, landing inputs, quarantine samples).
pub fn run_facts_key(run_id: &RunId) -> String {
    format!("_runs/{run_id}/facts.json")
}

pub fn runs_prefix() -> &'static str {
    "_runs/"
}

pub fn catalog_key() -> &'static str {
    "_catalog/catalog.json"
}

/// `_catalog/log/`: one document per catalog version, each created only if
/// absent (the compare-and-swap every publish goes through).
pub fn catalog_log_prefix() -> &'static str {
    "_catalog/log/"
}

/// `_catalog/log/<version, 20 digits>.json`: the catalog as of `version`.
pub fn catalog_log_key(version: u64) -> String {
    format!("_catalog/log/{version:020}.json")
}

/// The version a catalog log key names.
pub fn catalog_log_version(key: &str) -> Option<u64> {
    key.strip_prefix(catalog_log_prefix())?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// The pseudonym key of a local warehouse (`customerKey`'s HMAC key).
pub fn pseudonym_key_key() -> &'static str {
    "_secrets/pseudonym.key"
}

/// `_keys/pseudonym.json`: the fingerprint of the pseudonym key in use
/// (`zones::pseudonym::KeyRecord`), locally and on S3 alike.
pub fn pseudonym_key_record_key() -> &'static str {
    "_keys/pseudonym.json"
}

/// The erasure key of a local warehouse (erasure subjects' HMAC key).
pub fn erasure_key_key() -> &'static str {
    "_secrets/erasure.key"
}

/// `_erasure/requests/`: one document per erasure request.
pub fn erasure_requests_prefix() -> &'static str {
    "_erasure/requests/"
}

/// `_erasure/requests/<request id>.json`. Request ids are made by
/// `crate::erasure::request_id` (digits and `-` only), never taken from outside.
pub fn erasure_request_key(request_id: &str) -> String {
    debug_assert!(
        request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    );
    format!("_erasure/requests/{request_id}.json")
}

/// `_runs/<run id>/erasure.json`: the erasure report of a run.
pub fn erasure_report_key(run_id: &RunId) -> String {
    format!("_runs/{run_id}/erasure.json")
}
