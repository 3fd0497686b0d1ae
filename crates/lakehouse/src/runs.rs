//! The record of a run, `_runs/<run id>/run.json`: when it started, with
//! which policy, the catalog version it started from (the guard of its
//! publish), and how it ended.
//!
//! Every state of a run calls [`begin`] before doing any work. The first
//! call creates the record (only if absent, so two states racing agree on
//! one); later calls, retries and redrives of the same run read it. A run id
//! that already finished, or that the catalog points at, is refused: a
//! published snapshot is never written again. A run that another run
//! overtook (something was published since it started) stops at its next
//! state with `Stedi.PublishConflict` instead of doing work it cannot publish.

use serde::{Deserialize, Serialize};
use zones::{Policy, RunId, Table, Zone, layout};

use crate::Env;
use crate::catalog::{CatalogState, CatalogVersion, conflict};
use crate::error::{Error, Result};
use crate::store::Store;

/// `_runs/<run id>/run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: RunId,
    pub policy: Policy,
    /// When the run's first state began, epoch milliseconds.
    pub started_at_ms: u64,
    /// The catalog as the run found it: its publish succeeds only if the
    /// catalog is still at this version.
    pub base: CatalogVersion,
    /// Set once the run ended; a finished run id is never run again.
    #[serde(default)]
    pub finished: Option<Finished>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Epoch milliseconds.
    pub at_ms: u64,
    pub published: bool,
    /// The catalog version it published, or the error that ended it.
    pub detail: String,
}

/// Who holds a run's lease, `_runs/<run id>/lease.json` (the local runner
/// takes it while it executes the run; Step Functions needs none).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct LeaseHolder {
    pub pid: u32,
    pub host: String,
    pub boot_id: String,
    /// Epoch milliseconds.
    pub started_at_ms: u64,
}

impl LeaseHolder {
    /// This process.
    pub fn me() -> LeaseHolder {
        let read = |p: &str| {
            std::fs::read_to_string(p).map_or_else(|_| "?".into(), |s| s.trim().to_string())
        };
        LeaseHolder {
            pid: std::process::id(),
            host: read("/proc/sys/kernel/hostname"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            started_at_ms: now_ms(),
        }
    }

    /// Whether this holder is certainly gone: it ran on this host since its
    /// last boot and its process no longer exists.
    pub fn is_gone(&self, me: &LeaseHolder) -> bool {
        self.host == me.host
            && self.boot_id == me.boot_id
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// Whether `run_id` is leased by a process that may still be running
    /// (a lease that is not readable counts as held).
    pub fn holds(store: &dyn Store, run_id: &RunId) -> Result<bool> {
        match store.get(&layout::run_lease_key(run_id)) {
            Ok(bytes) => Ok(serde_json::from_slice::<LeaseHolder>(&bytes)
                .map_or(true, |holder| !holder.is_gone(&LeaseHolder::me()))),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Milliseconds since the epoch, now, by the system clock (runs take
/// theirs from [`crate::Env::clock`]).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The record of `run_id`, if the run has started.
pub fn load(store: &dyn Store, run_id: &RunId) -> Result<Option<RunRecord>> {
    let key = layout::run_record_key(run_id);
    match store.get(&key) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Damaged {
                key: store.url(&key),
                what: format!("not a run record: {e}"),
            }),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Refuses `run_id` if it cannot be started, or resumed: it finished, the
/// catalog points at its snapshots, or (with no record) objects of its
/// snapshots exist. Returns its record if it started and can resume.
/// `catalog` is the catalog as loaded now.
pub fn check_reusable(
    env: &Env,
    run_id: &RunId,
    catalog: &CatalogState,
) -> Result<Option<RunRecord>> {
    let record = load(env.store.as_ref(), run_id)?;
    if let Some(Finished {
        published, detail, ..
    }) = record.as_ref().and_then(|r| r.finished.as_ref())
    {
        return Err(Error::RunIdUsed {
            run_id: run_id.to_string(),
            why: if *published {
                format!("that run finished and was {detail}")
            } else {
                format!("that run finished: {detail}")
            },
        });
    }
    if catalog.references_run(run_id) {
        return Err(Error::RunIdUsed {
            run_id: run_id.to_string(),
            why: "the catalog points at its snapshots".into(),
        });
    }
    if record.is_none() {
        // A new run: no snapshot of that name may exist (an earlier run's,
        // whose record was removed).
        for table in Table::ALL.into_iter().filter(|t| t.zone() != Zone::Landing) {
            let prefix = layout::snapshot_prefix(table, run_id);
            if let Some(object) = env.store.list(&prefix)?.first() {
                return Err(Error::RunIdUsed {
                    run_id: run_id.to_string(),
                    why: format!(
                        "it has no run record, but its snapshot objects exist (`{}`)",
                        object.key
                    ),
                });
            }
        }
    }
    Ok(record)
}

/// Called by every transition before its work: [`start`], then refuses to
/// go on if something was published since the run started
/// (`Stedi.PublishConflict`: the run could not publish anyway).
pub fn begin(env: &Env, run_id: &RunId, policy: Policy) -> Result<RunRecord> {
    let (record, catalog) = start(env, run_id, policy)?;
    if catalog.version != record.base.version {
        return Err(conflict(&record.base, run_id, &catalog));
    }
    Ok(record)
}

/// Creates the run's record at its first state, or reads and checks the
/// existing one (not finished, not published, same policy). Returns the
/// record and the catalog as loaded now.
pub fn start(env: &Env, run_id: &RunId, policy: Policy) -> Result<(RunRecord, CatalogState)> {
    let catalog = env.catalog.load()?;
    let record = match check_reusable(env, run_id, &catalog)? {
        Some(record) => record,
        None => {
            let record = RunRecord {
                run_id: run_id.clone(),
                policy,
                started_at_ms: env.clock.now_ms(),
                base: catalog.version(),
                finished: None,
            };
            let bytes = serde_json::to_vec_pretty(&record).expect("run records serialize");
            if env
                .store
                .put_if_absent(&layout::run_record_key(run_id), &bytes)?
            {
                tracing::info!(%run_id, catalog_version = record.base.version, "run started");
                record
            } else {
                // Another state of the same run created it first.
                load(env.store.as_ref(), run_id)?.ok_or_else(|| Error::Damaged {
                    key: env.store.url(&layout::run_record_key(run_id)),
                    what: "the run record vanished right after it was found".into(),
                })?
            }
        }
    };
    if record.policy != policy {
        return Err(Error::PolicyMismatch {
            run_id: run_id.to_string(),
            started: record.policy,
            asked: policy,
        });
    }
    Ok((record, catalog))
}

/// Marks the run finished, so its id is never run again.
pub fn finish(env: &Env, record: &RunRecord, published: bool, detail: &str) -> Result<()> {
    let finished = RunRecord {
        finished: Some(Finished {
            at_ms: env.clock.now_ms(),
            published,
            detail: detail.to_string(),
        }),
        ..record.clone()
    };
    let bytes = serde_json::to_vec_pretty(&finished).expect("run records serialize");
    env.store
        .put(&layout::run_record_key(&record.run_id), &bytes)
}

/// Called by a state that follows the publish (Erase): the run must have
/// finished and published. Returns its record.
pub fn check_published(env: &Env, run_id: &RunId) -> Result<RunRecord> {
    let record = load(env.store.as_ref(), run_id)?;
    match record {
        Some(record) if record.finished.as_ref().is_some_and(|f| f.published) => Ok(record),
        _ => Err(Error::ForeignResults {
            run_id: run_id.to_string(),
            what: "the run has not published; the Erase state follows a publish".into(),
        }),
    }
}
