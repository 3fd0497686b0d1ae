//! The request/response contract between states: what Step Functions (or
//! the local runner) passes to each Lambda and gets back. Serde types only.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::counts::RowCounts;
use crate::layout::Table;
use crate::policy::Policy;
use crate::run_id::RunId;

/// Stable error names that statemachine.asl.json matches in Retry and Catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorName {
    /// The input is unusable (missing landing data, malformed request): retrying won't help.
    InvalidInput,
    /// Storage or catalog hiccup: retry with backoff.
    Transient,
    /// A quality check failed; nothing was published.
    QualityGateFailed,
    /// Another run switched the catalog first.
    PublishConflict,
    /// A bug: an invariant of ours did not hold.
    Internal,
}

impl ErrorName {
    pub const ALL: [ErrorName; 5] = [
        ErrorName::InvalidInput,
        ErrorName::Transient,
        ErrorName::QualityGateFailed,
        ErrorName::PublishConflict,
        ErrorName::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::InvalidInput => "Stedi.InvalidInput",
            ErrorName::Transient => "Stedi.Transient",
            ErrorName::QualityGateFailed => "Stedi.QualityGateFailed",
            ErrorName::PublishConflict => "Stedi.PublishConflict",
            ErrorName::Internal => "Stedi.Internal",
        }
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as it crosses into the state machine: a stable name and a cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    pub name: ErrorName,
    pub cause: String,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.cause)
    }
}

impl std::error::Error for TaskError {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    /// Hive type name (`string`, `bigint`, `double`, ...).
    #[serde(rename = "type")]
    pub ty: String,
}

/// One written snapshot of a table: what the catalog will point at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    pub table: Table,
    /// Prefix under the warehouse root, ending in `/`.
    pub location: String,
    pub snapshot: String,
    pub rows: u64,
    pub columns: Vec<ColumnDef>,
    /// CRC32C of the snapshot's `_manifest.json` (Parquet snapshots): the
    /// catalog pins the manifest, as it was when the snapshot was sealed, so
    /// a snapshot written again afterwards, or missing its manifest, is
    /// refused by readers. None for landing tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_crc32c: Option<u32>,
}

/// Input of the landing-to-trusted and trusted-to-curated functions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionRequest {
    pub run_id: RunId,
    #[serde(default)]
    pub policy: Policy,
    /// The table this invocation produces.
    pub transition: Table,
    /// Tables produced earlier in this run that the transition reads.
    #[serde(default)]
    pub inputs: BTreeMap<Table, TableRef>,
    /// Under strict: the rubric shadows of the same inputs (null under rubric).
    #[serde(default)]
    pub rubric_inputs: BTreeMap<Table, Option<TableRef>>,
}

impl TransitionRequest {
    /// The snapshot of `table` this transition reads, as the request names it.
    pub fn input(&self, table: Table) -> Result<&TableRef, MissingInput> {
        self.inputs.get(&table).ok_or(MissingInput::Table {
            transition: self.transition,
            input: table,
        })
    }

    /// The rubric shadow of `table` a strict transition reads.
    pub fn rubric_input(&self, table: Table) -> Result<&TableRef, MissingInput> {
        self.rubric_inputs
            .get(&table)
            .and_then(Option::as_ref)
            .ok_or(MissingInput::Shadow {
                transition: self.transition,
                input: table,
            })
    }
}

/// A transition request that does not name a snapshot its transition reads
/// (`Stedi.InvalidInput`: a miswired state machine definition).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingInput {
    #[error("{transition} needs input `{input}`, which the request does not name")]
    Table { transition: Table, input: Table },
    #[error(
        "{transition} under strict needs the rubric shadow of `{input}`, which the request does not name"
    )]
    Shadow { transition: Table, input: Table },
}

/// Output of one transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionResult {
    pub transition: Table,
    pub policy: Policy,
    pub table: TableRef,
    /// The quarantine table written alongside (landing transitions and
    /// machine_learning_curated), or null.
    pub quarantine: Option<TableRef>,
    /// Under strict: the same transition under the rubric policy, written as a
    /// shadow snapshot when a later state reads it (null for the training
    /// table, which only the report compares); null under rubric.
    pub rubric: Option<TableRef>,
    /// Where the rows of the main input went (landing records, or rows of
    /// the filtered table): `input = kept + quarantined + dropped`, and the
    /// repairs made while reading landing records. `kept` equals
    /// `table.rows` except for machine_learning_curated, whose rows are
    /// pairings (one step reading can pair with several accelerometer readings).
    pub counts: RowCounts,
    /// Under strict: the rows the rubric policy gives for this table (null
    /// under rubric).
    #[serde(default)]
    pub rubric_rows: Option<u64>,
    /// Under strict: where the rubric policy sends the same input rows
    /// (null under rubric).
    #[serde(default)]
    pub rubric_counts: Option<RowCounts>,
    /// Landing objects that held records of people erased on request
    /// (`crate::erasure`), by key, with how many: the Erase state rewrites
    /// exactly these. Keys and counts only; empty when nobody is erased.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub erased_objects: BTreeMap<String, u64>,
    /// machine_learning_curated under strict: the fingerprint of the
    /// pseudonym key its `customerKey`s were made with (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key_fingerprint: Option<String>,
    pub seconds: f64,
    pub peak_rss_mib: Option<f64>,
}

impl TransitionResult {
    /// The result of `request`'s transition, which wrote `table` and sent
    /// its input rows where `counts` says; nothing else written or
    /// measured yet (the fields below are set by the transition).
    pub fn new(request: &TransitionRequest, table: TableRef, counts: RowCounts) -> Self {
        TransitionResult {
            transition: request.transition,
            policy: request.policy,
            table,
            quarantine: None,
            rubric: None,
            counts,
            rubric_rows: None,
            rubric_counts: None,
            erased_objects: BTreeMap::new(),
            pseudonym_key_fingerprint: None,
            seconds: 0.0,
            peak_rss_mib: None,
        }
    }

    /// With the rubric policy's result of the same input (strict runs):
    /// its shadow snapshot when written, its rows and its counts.
    pub fn with_rubric(self, table: Option<TableRef>, rows: u64, counts: RowCounts) -> Self {
        TransitionResult {
            rubric: table,
            rubric_rows: Some(rows),
            rubric_counts: Some(counts),
            ..self
        }
    }
}

/// One Parquet part of a snapshot as its writer saw it: what the
/// snapshot's manifest records, and what a unit of work that wrote the
/// part tells the step that seals the snapshot (which never reads it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// The part's name under the snapshot prefix (`part-00000.parquet`,
    /// `crate::layout::is_part_name`).
    pub name: String,
    /// Rows (0 in a manifest written before parts recorded them).
    #[serde(default)]
    pub rows: u64,
    /// Bytes.
    pub size: u64,
    /// CRC32C (Castagnoli) of the bytes, the checksum S3 also computes.
    pub crc32c: u32,
}

/// One object of an `s3:listObjectsV2` listing as a Distributed Map's
/// ItemReader hands it to a child: `{"Etag", "Key", "LastModified",
/// "Size", "StorageClass"}`. Only the key and the size are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LandingItem {
    /// The object's key in the bucket, the warehouse's prefix included.
    pub key: String,
    /// Bytes.
    pub size: u64,
}

/// A Distributed Map child's request: a batch of items (the Map's
/// `ItemBatcher`: landing objects of one dataset, or time buckets of the
/// training table), and in `BatchInput` the transition they are part of,
/// exactly as a whole transition is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest<I = LandingItem> {
    #[serde(rename = "Items")]
    pub items: Vec<I>,
    #[serde(rename = "BatchInput")]
    pub batch_input: TransitionRequest,
}

/// One time bucket of the training table's join
/// (`crate::transitions::time_bucket`): an item of its Distributed Map,
/// read from the list the reduce of step_trainer_trusted writes
/// (`crate::layout::time_buckets_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeBucket {
    pub bucket: i64,
}

/// Rows one unit of work wrote to one table: where its input rows went,
/// and the parts that hold the kept ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartsWritten {
    pub counts: RowCounts,
    pub parts: Vec<PartInfo>,
}

/// What one batch of landing objects wrote and counted for a landing
/// transition (2 or 4): a Distributed Map child's answer to a
/// [`BatchRequest`], which the reduce reads back from the Map's result
/// files, so it names parts and counts, never rows (a few KiB, far under
/// Step Functions' 256 KiB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    pub transition: Table,
    /// Landing objects judged: those of the batch that the listing rule
    /// keeps (`crate::layout::landing_object`), entries the store cannot
    /// read included.
    pub objects: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// The policy's table: the batch's counts and parts.
    pub table: PartsWritten,
    /// Under strict, the rubric shadow's (null under rubric).
    pub rubric: Option<PartsWritten>,
    /// The quarantine table's parts (their rows are counted in `table.counts`).
    pub quarantine: Vec<PartInfo>,
    /// The batch's landing objects that held erased records, by key, with how many.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub erased_objects: BTreeMap<String, u64>,
    pub seconds: f64,
    pub peak_rss_mib: Option<f64>,
}

impl PartsWritten {
    /// Adds the rows another unit of work wrote to the same table.
    pub fn merge(&mut self, other: PartsWritten) {
        self.counts.merge(&other.counts);
        self.parts.extend(other.parts);
    }
}

impl BatchResult {
    /// The result of a batch of no objects, the identity of [`Self::merge`].
    pub fn empty(transition: Table) -> BatchResult {
        BatchResult {
            transition,
            objects: 0,
            bytes: 0,
            table: PartsWritten::default(),
            rubric: None,
            quarantine: Vec::new(),
            erased_objects: BTreeMap::new(),
            seconds: 0.0,
            peak_rss_mib: None,
        }
    }

    /// Adds `other`, a batch of other objects of the same transition: the
    /// result of both batches. Counts merge ([`RowCounts::merge`]), parts
    /// follow in order, and `seconds` and `peak_rss_mib` are the larger
    /// (batches run side by side).
    pub fn merge(&mut self, other: BatchResult) {
        debug_assert_eq!(self.transition, other.transition);
        self.objects += other.objects;
        self.bytes += other.bytes;
        self.table.merge(other.table);
        match (&mut self.rubric, other.rubric) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        self.quarantine.extend(other.quarantine);
        for (key, n) in other.erased_objects {
            *self.erased_objects.entry(key).or_default() += n;
        }
        self.seconds = self.seconds.max(other.seconds);
        self.peak_rss_mib = larger(self.peak_rss_mib, other.peak_rss_mib);
    }
}

/// What a batch of time buckets of the training table wrote and counted:
/// a child's answer to the Distributed Map of machine_learning_curated
/// (`BatchRequest<TimeBucket>`). Parts and counts, never rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinResult {
    /// Time buckets joined.
    pub buckets: u64,
    /// The training table: its counts (step readings paired) and parts.
    pub table: PartsWritten,
    /// The quarantine's parts: under strict, step readings several
    /// customers could explain (rubric quarantines none).
    pub quarantine: Vec<PartInfo>,
    /// Under strict, the rubric policy's result of the same buckets, only
    /// counted (null under rubric).
    pub rubric: Option<RubricCount>,
    pub seconds: f64,
    pub peak_rss_mib: Option<f64>,
}

/// The rubric policy's training table of some time buckets, counted:
/// where the step readings went, and the rows (pairings) it would write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RubricCount {
    pub counts: RowCounts,
    pub rows: u64,
}

impl JoinResult {
    /// The result of no bucket, the identity of [`Self::merge`].
    pub fn empty() -> JoinResult {
        JoinResult {
            buckets: 0,
            table: PartsWritten::default(),
            quarantine: Vec::new(),
            rubric: None,
            seconds: 0.0,
            peak_rss_mib: None,
        }
    }

    /// Adds `other`, a join of other buckets: counts merge
    /// ([`RowCounts::merge`]), parts follow in order, `seconds` and
    /// `peak_rss_mib` are the larger.
    pub fn merge(&mut self, other: JoinResult) {
        self.buckets += other.buckets;
        self.table.merge(other.table);
        self.quarantine.extend(other.quarantine);
        match (&mut self.rubric, other.rubric) {
            (Some(mine), Some(theirs)) => {
                mine.counts.merge(&theirs.counts);
                mine.rows += theirs.rows;
            }
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        self.seconds = self.seconds.max(other.seconds);
        self.peak_rss_mib = larger(self.peak_rss_mib, other.peak_rss_mib);
    }
}

/// The larger of two optional measures.
fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Where a Distributed Map's ResultWriter wrote a Map Run's result files:
/// the Map state's output, `{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MapRunOutput {
    pub map_run_arn: String,
    pub result_writer_details: ResultWriterDetails,
}

/// The bucket and the key of a Map Run's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultWriterDetails {
    pub bucket: String,
    pub key: String,
}

/// The reduce after a Distributed Map of a landing transition: merge its
/// children's [`BatchResult`]s (read from the Map Run's result files) and
/// seal the transition's snapshots; answered with the transition's
/// [`TransitionResult`], as a whole transition is. Told apart from a
/// [`TransitionRequest`] by `map_run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReduceRequest {
    pub run_id: RunId,
    #[serde(default)]
    pub policy: Policy,
    pub transition: Table,
    pub map_run: MapRunOutput,
    /// The inputs the reduce checks its counts against (the training
    /// table's: step_trainer_trusted, every row of which the children must
    /// have counted); the children read the inputs, not the reduce.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<Table, TableRef>,
}

impl ReduceRequest {
    /// The transition the reduce completes, as its result names it.
    pub fn transition_request(&self) -> TransitionRequest {
        TransitionRequest {
            run_id: self.run_id.clone(),
            policy: self.policy,
            transition: self.transition,
            inputs: self.inputs.clone(),
            rubric_inputs: BTreeMap::new(),
        }
    }
}

/// Input of the quality gate: every transition's result, keyed by table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRequest {
    pub run_id: RunId,
    #[serde(default)]
    pub policy: Policy,
    pub results: BTreeMap<Table, TransitionResult>,
}

/// Input of the Erase state (after a published run): the run and every
/// transition's result, whose `erased_objects` name the landing objects to
/// rewrite. `erase` is always true: it tells this request from a
/// [`TransitionRequest`] at the function that serves both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EraseRequest {
    pub run_id: RunId,
    #[serde(default)]
    pub policy: Policy,
    pub erase: bool,
    pub results: BTreeMap<Table, TransitionResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// The check's SQL text, as it ran.
    #[serde(default)]
    pub sql: String,
    /// Offending rows, for checks that count them (`violations`).
    #[serde(default)]
    pub violations: Option<u64>,
}

/// Output of the quality gate when every check passed and the catalog switched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub run_id: RunId,
    pub passed: bool,
    pub checks: Vec<CheckOutcome>,
    pub report_key: String,
    pub catalog_version: u64,
}

/// Input of the `Vacuum` state, served by the quality-gate function (which
/// owns the catalog switch): delete what the catalog no longer references
/// and the retention window no longer keeps (`zones::retention`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VacuumRequest {
    /// The run after which vacuum runs, for the logs (none from the CLI).
    #[serde(default)]
    pub run_id: Option<RunId>,
    pub vacuum: VacuumOptions,
}

/// How a vacuum runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VacuumOptions {
    /// The retention window, milliseconds (default 7 days).
    #[serde(default = "default_retain_ms")]
    pub retain_ms: u64,
    /// The last published runs kept whatever their age (default 1).
    #[serde(default = "default_keep_runs")]
    pub keep_runs: usize,
    /// Only say what would be deleted.
    #[serde(default)]
    pub dry_run: bool,
    /// Accept a window shorter than one hour.
    #[serde(default)]
    pub force: bool,
}

impl Default for VacuumOptions {
    fn default() -> Self {
        VacuumOptions {
            retain_ms: default_retain_ms(),
            keep_runs: default_keep_runs(),
            dry_run: false,
            force: false,
        }
    }
}

fn default_retain_ms() -> u64 {
    crate::retention::DEFAULT_RETAIN_MS
}

fn default_keep_runs() -> usize {
    crate::retention::DEFAULT_KEEP_RUNS
}

/// What one table lost to a vacuum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VacuumTable {
    /// Snapshots (runs) deleted.
    pub snapshots: u64,
    /// Objects and bytes of those snapshots.
    pub objects: u64,
    pub bytes: u64,
    /// Objects and bytes of the table's rubric shadows.
    pub shadow_objects: u64,
    pub shadow_bytes: u64,
    /// Objects and bytes of the result files of the table's Distributed Map.
    #[serde(default)]
    pub map_result_objects: u64,
    #[serde(default)]
    pub map_result_bytes: u64,
    /// Snapshots that remain.
    pub snapshots_kept: u64,
}

/// Output of a vacuum: what it deleted (or, on a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VacuumResult {
    pub dry_run: bool,
    /// The time the decision was made for, epoch milliseconds.
    pub now_ms: u64,
    pub retain_ms: u64,
    pub keep_runs: usize,
    /// Every object deleted, and their bytes.
    pub objects: u64,
    pub bytes: u64,
    /// Per table (only tables that lost or keep something).
    pub tables: BTreeMap<Table, VacuumTable>,
    /// Staging databases dropped.
    pub staging_dropped: Vec<String>,
    pub seconds: f64,
}

/// What the quality-gate function is invoked with: the gate's request, or
/// the `Vacuum` state's (told apart by its `vacuum` field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GateFunctionRequest {
    Vacuum(VacuumRequest),
    Gate(GateRequest),
}

/// What the quality-gate function answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GateFunctionResult {
    Vacuum(VacuumResult),
    Gate(GateResult),
}
