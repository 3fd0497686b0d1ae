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
        "run {run_id} is not published: it started from catalog version {expected}, and {} published version {found} since; start a new run on the current data",
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
        "run id `{run_id}` is already used: {why}; published snapshots are never overwritten, choose a new run id"
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

    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable name Step Functions routes on.
    pub fn name(&self) -> ErrorName {
        match self {
            Error::Io { source, .. } if is_transient(source) => ErrorName::Transient,
            // The machine, not the data: fail the Task, so that a redrive
            // after the fix resumes here.
            Error::Io { source, .. } if is_environment(source) => ErrorName::Internal,
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
            Error::InvalidRunId(_) | Error::RunIdUsed { .. } | Error::PolicyMismatch { .. } => {
                ErrorName::InvalidInput
            }
            // Keys come from `zones::layout` and validated run ids: a bad one is our bug.
            Error::InvalidKey { .. } => ErrorName::Internal,
            // A published part that no longer matches its manifest: storage,
            // not the landing data, is at fault; a retry reads it again.
            Error::Damaged { .. } => ErrorName::Internal,
            Error::NoLandingData { .. } | Error::MissingTable { .. } | Error::InvalidRequest(_) => {
                ErrorName::InvalidInput
            }
            Error::Query(_) | Error::QueryFailed { .. } => ErrorName::InvalidInput,
            Error::Io { .. }
            | Error::NotFound { .. }
            | Error::Read { .. }
            | Error::Write { .. } => ErrorName::InvalidInput,
            Error::CatalogFormat { .. } | Error::Polars(_) => ErrorName::Internal,
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

    #[test]
    fn a_full_disk_fails_the_task_rather_than_the_data() {
        let io = |kind: std::io::ErrorKind| Error::io("writing", "/w/part")(kind.into()).name();
        assert_eq!(io(std::io::ErrorKind::StorageFull), ErrorName::Internal);
        assert_eq!(
            io(std::io::ErrorKind::PermissionDenied),
            ErrorName::Internal
        );
        assert_eq!(io(std::io::ErrorKind::TimedOut), ErrorName::Transient);
        assert_eq!(io(std::io::ErrorKind::InvalidData), ErrorName::InvalidInput);
    }
}
