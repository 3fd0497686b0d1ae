use std::path::PathBuf;

use zones::{ErrorName, TaskError};

/// Errors of the I/O layer. Each names what it was touching.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} `{path}`: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("object `{key}` does not exist in {store}")]
    NotFound { store: String, key: String },

    #[error("{dataset} landing data: no objects under `{prefix}` in {store}")]
    NoLandingData {
        dataset: zones::Dataset,
        prefix: String,
        store: String,
    },

    #[error("table `{table}` is not in the catalog or in this run's inputs")]
    MissingTable { table: String },

    #[error("reading `{key}`: {source}")]
    Read {
        key: String,
        source: polars::error::PolarsError,
    },

    #[error("writing `{key}`: {source}")]
    Write {
        key: String,
        source: polars::error::PolarsError,
    },

    #[error("catalog `{key}` is not valid: {source}")]
    CatalogFormat {
        key: String,
        source: serde_json::Error,
    },

    #[error(
        "run {run_id} started from catalog version {expected}, and {} published version {found} since: start a new run on the current data",
        published_by.as_deref().map_or("another run".to_string(), |r| format!("run {r}"))
    )]
    PublishConflict {
        run_id: String,
        expected: u64,
        found: u64,
        published_by: Option<String>,
    },

    #[error("{0}")]
    InvalidRunId(#[from] zones::run_id::InvalidRunId),

    #[error(
        "run id `{run_id}` is already used: {why}; a run id names one run's snapshots, which are never written again: choose a new run id"
    )]
    RunIdUsed { run_id: String, why: String },

    #[error("run {run_id} was started with policy {started}, not {asked}")]
    PolicyMismatch {
        run_id: String,
        started: zones::Policy,
        asked: zones::Policy,
    },

    #[error("refusing the object key `{key}`: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    #[error("object `{key}` is damaged: {what}")]
    Damaged { key: String, what: String },

    #[error(
        "the pseudonym key is gone: customerKey values would change; restore it or rotate deliberately (`{key}` is missing; the pseudonyms since {since} were made with it; `stedi rotate-key` rotates)"
    )]
    KeyGone { key: String, since: String },

    /// The pseudonym key is not the one the warehouse's pseudonyms were made
    /// with, and no `stedi rotate-key` made it so (replaced by hand).
    #[error(
        "the pseudonym key changed without `stedi rotate-key`: customerKey values would change; restore it or rotate deliberately (`{key}` has fingerprint {found}; the pseudonyms since {since} were made with {expected})"
    )]
    KeyChanged {
        key: String,
        since: String,
        expected: String,
        found: String,
    },

    #[error(
        "landing object `{key}` changed between read and rewrite {attempts} times; it was not overwritten, and the erasure stays pending"
    )]
    ObjectChanged { key: String, attempts: usize },

    #[error("the erasure of run {run_id} is incomplete: {what}; its requests stay pending")]
    ErasureIncomplete { run_id: String, what: String },

    /// Erasure requests wait, but the key their subjects are HMACs under
    /// is gone: nobody could be matched, and a run must not publish the
    /// people they name.
    #[error(
        "the erasure key is gone (`{key}` is missing) while erasure requests are pending ({}): nobody could be matched; restore the key, or delete the requests and file them again",
        requests.join(", ")
    )]
    ErasureKeyGone { key: String, requests: Vec<String> },

    /// Erasure requests wait, but the erasure key is not the one they were
    /// filed with (replaced by hand, or the secret's value changed): nobody
    /// would match, and the run would report the people gone.
    #[error(
        "the erasure key `{key}` changed since erasure requests were filed ({}): filed under key fingerprint {filed_with}, the key now has {now}; nobody could be matched; restore the key, or delete the requests and file them again",
        requests.join(", ")
    )]
    ErasureKeyChanged {
        key: String,
        requests: Vec<String>,
        filed_with: String,
        now: String,
    },

    /// A Distributed Map ended with children that failed or never ran (a
    /// Map that tolerates failures lets them through): the transition's
    /// reduce cannot seal a snapshot without their objects.
    #[error(
        "map run {map_run}: {failed} child executions failed and {pending} never ran (results {manifest}): the transition is incomplete; run it again"
    )]
    MapRunIncomplete {
        map_run: String,
        manifest: String,
        failed: u64,
        pending: u64,
    },

    /// A transition's input rows differ from the rows of the table it
    /// reads: rows were lost on the way (a bug of ours, never the data's).
    #[error(
        "{transition}: {table} has {expected} rows, but {counted} were counted as input: rows were lost"
    )]
    Unaccounted {
        transition: zones::Table,
        table: zones::Table,
        expected: u64,
        counted: u64,
    },

    #[error("the quality gate's request does not describe run {run_id}: {what}")]
    ForeignResults { run_id: String, what: String },

    #[error(
        "table `{table}` changed while publishing: expected version {expected:?}, found {found:?}; nothing of this run was switched after it"
    )]
    TableConflict {
        table: String,
        expected: Option<String>,
        found: Option<String>,
    },

    #[error("query failed: {0}")]
    Query(polars::error::PolarsError),

    #[error("Athena query {id} {state}: {reason}")]
    QueryFailed {
        id: String,
        state: String,
        reason: String,
    },

    #[error("{service} {op} `{target}`: {message}")]
    Aws {
        service: &'static str,
        op: &'static str,
        target: String,
        status: Option<u16>,
        code: Option<String>,
        message: String,
        transient: bool,
    },

    #[error("{0}")]
    Polars(#[from] polars::error::PolarsError),

    /// The request is not the JSON of what the function serves.
    #[error("the request is not a {expected}: {source}")]
    Request {
        expected: &'static str,
        source: serde_json::Error,
    },

    /// The request asks a function for a table another function produces.
    #[error("{function} does not produce `{transition}`")]
    NotServed {
        function: &'static str,
        transition: zones::Table,
    },

    /// The request names no snapshot (or, under strict, no rubric shadow)
    /// of a table its transition reads.
    #[error(transparent)]
    MissingInput(#[from] zones::contract::MissingInput),

    /// The deployment's settings (`STEDI_*`): found at cold start, before
    /// any request is served.
    #[error("configuration: {setting} {problem}")]
    Config {
        setting: &'static str,
        problem: String,
    },

    /// The operating system gave no random bytes for a new key.
    #[error("no randomness for a new key: {0}")]
    NoRandomness(getrandom::Error),

    /// A worker task stopped before finishing (it panicked, or its runtime
    /// was shutting down).
    #[error("{task} did not finish: {source}")]
    WorkerFailed {
        task: &'static str,
        source: tokio::task::JoinError,
    },

    /// An AWS answer lacks what the call promises, or holds what we cannot read.
    #[error("{service} {op} gave an answer we do not understand: {detail}")]
    UnexpectedAnswer {
        service: &'static str,
        op: &'static str,
        detail: String,
    },

    /// An SDK request builder refused the input we built.
    #[error("building the {service} {what}: {message}")]
    BuildRequest {
        service: &'static str,
        what: &'static str,
        message: String,
    },

    /// A catalog entry that this code did not write that way.
    #[error("catalog entry `{table}`: {problem}")]
    CatalogEntry { table: String, problem: String },

    /// Athena was asked to query a catalog view that is not registered in Glue.
    #[error("Athena queries tables registered in Glue; this catalog view is not")]
    ViewNotInGlue,

    /// A vacuum asked for a retention window under one hour without force.
    #[error(transparent)]
    RetentionTooShort(#[from] zones::retention::WindowTooShort),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable name Step Functions routes on, by one rule: the input
    /// data is wrong or unusable -> `InvalidInput` (a verdict: fix the data,
    /// start a new run); a retry may succeed -> `Transient`; our bug, the
    /// machine, or an AWS answer we do not understand -> `Internal` (fails
    /// the Task; redrive after the fix). Configuration errors happen at cold
    /// start and are reported as the init error, named `Internal` too.
    pub fn name(&self) -> ErrorName {
        match self {
            Error::Io { source, .. } if is_transient(source) => ErrorName::Transient,
            // The machine, not the data: fail the Task, so that a redrive
            // after the fix resumes here.
            Error::Io { source, .. } if is_environment(source) => ErrorName::Internal,
            Error::WorkerFailed { .. } => ErrorName::Transient,
            Error::Aws { transient, .. } => {
                if *transient {
                    ErrorName::Transient
                } else {
                    ErrorName::Internal
                }
            }
            Error::PublishConflict { .. } | Error::TableConflict { .. } => {
                ErrorName::PublishConflict
            }
            Error::InvalidRunId(_)
            | Error::RunIdUsed { .. }
            | Error::PolicyMismatch { .. }
            | Error::ForeignResults { .. }
            | Error::MapRunIncomplete { .. }
            | Error::KeyGone { .. }
            | Error::KeyChanged { .. }
            | Error::RetentionTooShort(_)
            | Error::ErasureIncomplete { .. }
            | Error::ErasureKeyGone { .. }
            | Error::ErasureKeyChanged { .. } => ErrorName::InvalidInput,
            // Someone wrote the object while it was rewritten: read it again.
            Error::ObjectChanged { .. } => ErrorName::Transient,
            // Keys come from `zones::layout` and validated run ids: a bad one is our bug.
            Error::InvalidKey { .. } => ErrorName::Internal,
            // A published part that no longer matches its manifest: storage,
            // not the landing data, is at fault; a retry reads it again.
            Error::Damaged { .. } => ErrorName::Internal,
            Error::Unaccounted { .. } => ErrorName::Internal,
            Error::NoLandingData { .. }
            | Error::MissingTable { .. }
            | Error::Request { .. }
            | Error::NotServed { .. }
            | Error::MissingInput(_) => ErrorName::InvalidInput,
            Error::Query(_) | Error::QueryFailed { .. } => ErrorName::InvalidInput,
            Error::Io { .. }
            | Error::NotFound { .. }
            | Error::Read { .. }
            | Error::Write { .. } => ErrorName::InvalidInput,
            Error::CatalogFormat { .. }
            | Error::CatalogEntry { .. }
            | Error::Polars(_)
            | Error::Config { .. }
            | Error::NoRandomness(_)
            | Error::UnexpectedAnswer { .. }
            | Error::BuildRequest { .. }
            | Error::ViewNotInGlue => ErrorName::Internal,
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), Interrupted | TimedOut | WouldBlock | ResourceBusy)
}

fn is_environment(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        StorageFull | QuotaExceeded | PermissionDenied | ReadOnlyFilesystem | OutOfMemory
    )
}

impl From<Error> for TaskError {
    fn from(e: Error) -> TaskError {
        TaskError {
            name: e.name(),
            cause: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zones::contract::MissingInput;
    use zones::{Dataset, Table};

    fn polars_error() -> polars::error::PolarsError {
        polars::error::PolarsError::ComputeError("boom".into())
    }

    fn aws(status: Option<u16>, transient: bool) -> Error {
        Error::Aws {
            service: "S3",
            op: "PutObject",
            target: "s3://b/k".into(),
            status,
            code: None,
            message: "m".into(),
            transient,
        }
    }

    /// A cancelled task's join error, as a panicked one would give.
    fn join_error() -> tokio::task::JoinError {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let task = runtime.spawn(std::future::pending::<()>());
        task.abort();
        runtime.block_on(task).expect_err("aborted")
    }

    /// The position of `e`'s variant in the table below. No wildcard arm:
    /// a new variant does not compile until it is given a row.
    fn variant(e: &Error) -> usize {
        match e {
            Error::Io { .. } => 0,
            Error::NotFound { .. } => 1,
            Error::NoLandingData { .. } => 2,
            Error::MissingTable { .. } => 3,
            Error::Read { .. } => 4,
            Error::Write { .. } => 5,
            Error::CatalogFormat { .. } => 6,
            Error::PublishConflict { .. } => 7,
            Error::TableConflict { .. } => 8,
            Error::InvalidRunId(_) => 9,
            Error::Query(_) => 10,
            Error::QueryFailed { .. } => 11,
            Error::Aws { .. } => 12,
            Error::Polars(_) => 13,
            Error::Request { .. } => 14,
            Error::NotServed { .. } => 15,
            Error::MissingInput(_) => 16,
            Error::Config { .. } => 17,
            Error::NoRandomness(_) => 18,
            Error::WorkerFailed { .. } => 19,
            Error::UnexpectedAnswer { .. } => 20,
            Error::BuildRequest { .. } => 21,
            Error::CatalogEntry { .. } => 22,
            Error::ViewNotInGlue => 23,
            Error::RunIdUsed { .. } => 24,
            Error::PolicyMismatch { .. } => 25,
            Error::InvalidKey { .. } => 26,
            Error::Damaged { .. } => 27,
            Error::KeyGone { .. } => 28,
            Error::ForeignResults { .. } => 29,
            Error::RetentionTooShort(_) => 30,
            Error::ObjectChanged { .. } => 31,
            Error::ErasureIncomplete { .. } => 32,
            Error::ErasureKeyGone { .. } => 33,
            Error::ErasureKeyChanged { .. } => 34,
            Error::KeyChanged { .. } => 35,
            Error::MapRunIncomplete { .. } => 36,
            Error::Unaccounted { .. } => 37,
        }
    }
    const VARIANTS: usize = 38;

    /// Every variant with the name Step Functions sees: the data is wrong
    /// -> InvalidInput; a retry may succeed -> Transient; our bug, the
    /// machine or an AWS answer we do not understand -> Internal.
    #[test]
    fn every_variant_has_its_stable_name() {
        let io = |kind: std::io::ErrorKind| Error::io("writing", "/w/part")(kind.into());
        let table: Vec<(Error, &str)> = vec![
            (io(std::io::ErrorKind::InvalidData), "Stedi.InvalidInput"),
            (io(std::io::ErrorKind::NotFound), "Stedi.InvalidInput"),
            (io(std::io::ErrorKind::TimedOut), "Stedi.Transient"),
            (io(std::io::ErrorKind::Interrupted), "Stedi.Transient"),
            (io(std::io::ErrorKind::StorageFull), "Stedi.Internal"),
            (io(std::io::ErrorKind::PermissionDenied), "Stedi.Internal"),
            (io(std::io::ErrorKind::ReadOnlyFilesystem), "Stedi.Internal"),
            (
                Error::NotFound {
                    store: "s".into(),
                    key: "k".into(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::NoLandingData {
                    dataset: Dataset::Customer,
                    prefix: "customer/landing/".into(),
                    store: "s".into(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::MissingTable { table: "t".into() },
                "Stedi.InvalidInput",
            ),
            (
                Error::Read {
                    key: "k".into(),
                    source: polars_error(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::Write {
                    key: "k".into(),
                    source: polars_error(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::CatalogFormat {
                    key: "k".into(),
                    source: serde_json::from_str::<serde_json::Value>("{").unwrap_err(),
                },
                "Stedi.Internal",
            ),
            (
                Error::PublishConflict {
                    run_id: "a".into(),
                    expected: 1,
                    found: 2,
                    published_by: Some("b".into()),
                },
                "Stedi.PublishConflict",
            ),
            (
                Error::TableConflict {
                    table: "t".into(),
                    expected: None,
                    found: None,
                },
                "Stedi.PublishConflict",
            ),
            (
                Error::InvalidRunId(zones::RunId::parse("..").unwrap_err()),
                "Stedi.InvalidInput",
            ),
            (
                Error::RunIdUsed {
                    run_id: "r".into(),
                    why: "w".into(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::PolicyMismatch {
                    run_id: "r".into(),
                    started: zones::Policy::Strict,
                    asked: zones::Policy::Rubric,
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::InvalidKey {
                    key: "../k".into(),
                    reason: "it has a `.` or `..` segment",
                },
                "Stedi.Internal",
            ),
            (
                Error::Damaged {
                    key: "k".into(),
                    what: "w".into(),
                },
                "Stedi.Internal",
            ),
            (
                Error::KeyGone {
                    key: "k".into(),
                    since: "run r".into(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::ObjectChanged {
                    key: "k".into(),
                    attempts: 3,
                },
                "Stedi.Transient",
            ),
            (
                Error::ErasureIncomplete {
                    run_id: "r".into(),
                    what: "w".into(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::ErasureKeyGone {
                    key: "k".into(),
                    requests: vec!["1-a".into()],
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::KeyChanged {
                    key: "k".into(),
                    since: "run r".into(),
                    expected: "f1".into(),
                    found: "f2".into(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::ErasureKeyChanged {
                    key: "k".into(),
                    requests: vec!["1-a".into()],
                    filed_with: "f1".into(),
                    now: "f2".into(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::ForeignResults {
                    run_id: "r".into(),
                    what: "w".into(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::MapRunIncomplete {
                    map_run: "arn".into(),
                    manifest: "m".into(),
                    failed: 1,
                    pending: 2,
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::Unaccounted {
                    transition: zones::Table::MachineLearningCurated,
                    table: zones::Table::StepTrainerTrusted,
                    expected: 3,
                    counted: 1,
                },
                "Stedi.Internal",
            ),
            (Error::Query(polars_error()), "Stedi.InvalidInput"),
            (
                Error::QueryFailed {
                    id: "q".into(),
                    state: "FAILED".into(),
                    reason: "r".into(),
                },
                "Stedi.InvalidInput",
            ),
            (aws(Some(503), true), "Stedi.Transient"),
            (aws(None, true), "Stedi.Transient"),
            (aws(Some(403), false), "Stedi.Internal"),
            (Error::Polars(polars_error()), "Stedi.Internal"),
            (
                Error::Request {
                    expected: "TransitionRequest",
                    source: serde_json::from_str::<serde_json::Value>("{").unwrap_err(),
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::NotServed {
                    function: "landing-to-trusted",
                    transition: Table::CustomersCurated,
                },
                "Stedi.InvalidInput",
            ),
            (
                Error::MissingInput(MissingInput::Table {
                    transition: Table::CustomersCurated,
                    input: Table::CustomerTrusted,
                }),
                "Stedi.InvalidInput",
            ),
            (
                Error::MissingInput(MissingInput::Shadow {
                    transition: Table::CustomersCurated,
                    input: Table::CustomerTrusted,
                }),
                "Stedi.InvalidInput",
            ),
            (
                Error::Config {
                    setting: "STEDI_WAREHOUSE",
                    problem: "is not set".into(),
                },
                "Stedi.Internal",
            ),
            (
                Error::NoRandomness(getrandom::Error::UNSUPPORTED),
                "Stedi.Internal",
            ),
            (
                Error::WorkerFailed {
                    task: "an S3 part upload",
                    source: join_error(),
                },
                "Stedi.Transient",
            ),
            (
                Error::UnexpectedAnswer {
                    service: "S3",
                    op: "CreateMultipartUpload",
                    detail: "no upload id".into(),
                },
                "Stedi.Internal",
            ),
            (
                Error::BuildRequest {
                    service: "Glue",
                    what: "table input",
                    message: "m".into(),
                },
                "Stedi.Internal",
            ),
            (
                Error::CatalogEntry {
                    table: "t".into(),
                    problem: "p".into(),
                },
                "Stedi.Internal",
            ),
            (Error::ViewNotInGlue, "Stedi.Internal"),
            (
                Error::RetentionTooShort(zones::retention::WindowTooShort { retain_ms: 0 }),
                "Stedi.InvalidInput",
            ),
        ];
        let mut seen = [false; VARIANTS];
        for (error, name) in table {
            seen[variant(&error)] = true;
            assert_eq!(error.name().as_str(), name, "{error:?}");
            // What crosses into the state machine carries the same name.
            let cause = error.to_string();
            let task = TaskError::from(error);
            assert_eq!((task.name.as_str(), task.cause), (name, cause));
        }
        let missing: Vec<usize> = (0..VARIANTS).filter(|&i| !seen[i]).collect();
        assert!(missing.is_empty(), "variants without a row: {missing:?}");
    }

    #[test]
    fn messages_name_what_went_wrong() {
        let shadow = Error::from(MissingInput::Shadow {
            transition: Table::CustomersCurated,
            input: Table::CustomerTrusted,
        });
        assert_eq!(
            shadow.to_string(),
            "customers_curated under strict needs the rubric shadow of `customer_trusted`, which the request does not name"
        );
        let config = Error::Config {
            setting: "STEDI_WAREHOUSE",
            problem: "is not set".into(),
        };
        assert_eq!(
            config.to_string(),
            "configuration: STEDI_WAREHOUSE is not set"
        );
    }
}
