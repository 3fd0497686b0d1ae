//! Retention: which objects of the warehouse are garbage, given the catalog,
//! the runs' records, the time and the retention window. The decision only;
//! `lakehouse::vacuum` lists the objects, reads the records and deletes.
//!
//! The rules, as Delta Lake's VACUUM and Iceberg's `expire_snapshots` have them:
//!
//! - A **snapshot** (`<dataset>/<zone>/<run id>/...`, quarantine tables
//!   included) is deleted when the current catalog does not point at it for
//!   its table, its run is not one of the last `keep_runs` published runs,
//!   its run is not live, and its run is older than the window: it finished
//!   (or, if it never finished, started) more than `retain_ms` before `now_ms`.
//!   A snapshot whose run has no record is an orphan (runs write their
//!   record before any object, and vacuum reads the records after listing
//!   the objects) and is deleted as soon as nothing above keeps it.
//! - A **rubric shadow** (`_runs/<run id>/rubric/...`) and a **staging area**
//!   (a Glue database holding a run's view for the gate's checks) serve their
//!   run only: deleted as soon as the run is not live, whatever the window.
//! - A Distributed Map's **result files** (`_map_results/<run id>/...`: its
//!   children's inputs and answers, read by the transition's reduce) are
//!   deleted when their run is not live and is older than the window (or
//!   has no record): kept a while to tell what each child did, never read
//!   once the run ended.
//! - A run is **live** while it has not finished and either holds its lease
//!   (the local runner's `_runs/<run id>/lease.json`) or started within the
//!   window. A live run's unpublished snapshots are never garbage.
//! - Everything else is never deleted: landing data, the catalog, the key,
//!   and a run's own files (`run.json`, `report.json`, `report.html`,
//!   `facts.json`), which hold counts, not data.
//!
//! Pure: no I/O, no clock (the caller passes `now_ms`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::layout::{self, Table};
use crate::run_id::RunId;

/// One hour, in milliseconds.
pub const HOUR_MS: u64 = 60 * 60 * 1000;
/// The default window: 7 days, as Delta Lake's `deletedFileRetentionDuration`.
pub const DEFAULT_RETAIN_MS: u64 = 7 * 24 * HOUR_MS;
/// The shortest window accepted without `force`: a run still writing may be
/// older than a shorter one (Delta Lake's retention duration check).
pub const MIN_RETAIN_MS: u64 = HOUR_MS;
/// The published runs kept whatever their age by default (Iceberg keeps the last 1).
pub const DEFAULT_KEEP_RUNS: usize = 1;

/// How long garbage is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Objects of runs that ended at most this many milliseconds ago are kept.
    pub retain_ms: u64,
    /// The last this many published runs are kept whatever their age.
    pub keep_runs: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            retain_ms: DEFAULT_RETAIN_MS,
            keep_runs: DEFAULT_KEEP_RUNS,
        }
    }
}

/// A window shorter than [`MIN_RETAIN_MS`] asked for without `force`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a retention window of {} is shorter than 1 hour: a run still writing could lose its snapshots; pass --force if no run is running",
    humantime::format_duration(std::time::Duration::from_millis(*.retain_ms))
)]
pub struct WindowTooShort {
    pub retain_ms: u64,
}

impl Retention {
    /// Refuses a window shorter than one hour unless `force`.
    pub fn check(&self, force: bool) -> Result<(), WindowTooShort> {
        if self.retain_ms < MIN_RETAIN_MS && !force {
            return Err(WindowTooShort {
                retain_ms: self.retain_ms,
            });
        }
        Ok(())
    }
}

/// What the run record of a run says, as vacuum needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    /// Epoch milliseconds.
    pub started_at_ms: u64,
    /// When it finished, epoch milliseconds; None while it has not.
    pub finished_at_ms: Option<u64>,
    /// Whether it published a catalog version.
    pub published: bool,
    /// Whether a process holds its lease (is executing it now).
    pub leased: bool,
}

impl RunState {
    /// The run's time for the window: when it finished, else when it started.
    pub fn at_ms(&self) -> u64 {
        self.finished_at_ms.unwrap_or(self.started_at_ms)
    }
}

/// A listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    /// Bytes.
    pub size: u64,
}

/// Everything the decision needs.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The time the decision is made for, epoch milliseconds.
    pub now_ms: u64,
    pub retention: Retention,
    /// The current catalog: the run whose snapshot each table points at.
    pub current: &'a BTreeMap<Table, RunId>,
    /// Every run that has a record.
    pub runs: &'a BTreeMap<RunId, RunState>,
    /// The objects under the snapshot prefixes, `_runs/` and
    /// `_map_results/`, listed before `current` and `runs` were read.
    pub objects: &'a [Object],
    /// Staging areas (Glue databases) and the run each belongs to, if known.
    pub staging: &'a [(String, Option<RunId>)],
}

/// What an object to delete is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A snapshot of a table (quarantine tables included).
    Snapshot,
    /// A strict run's rubric shadow of a table.
    RubricShadow,
    /// The result files of the Distributed Map of a table's transition.
    MapResults,
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kept {
    /// The current catalog points at it.
    Current,
    /// Its run is one of the last `keep_runs` published runs.
    RecentRun,
    /// Its run is running.
    Live,
    /// Its run ended within the window.
    WithinWindow,
}

/// One object to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doomed {
    pub key: String,
    pub size: u64,
    pub table: Table,
    pub run_id: RunId,
    pub kind: Kind,
}

/// The decision: what to delete, and the snapshots that stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Objects to delete, by key; a snapshot's manifest before its parts, so
    /// a snapshot cut off half-deleted is refused by readers, never read short.
    pub delete: Vec<Doomed>,
    /// Staging areas to drop.
    pub drop_staging: Vec<String>,
    /// The snapshots kept, per table: run id and why.
    pub kept: BTreeMap<Table, BTreeMap<RunId, Kept>>,
}

/// Objects and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub objects: u64,
    pub bytes: u64,
}

impl Plan {
    /// What the plan deletes per table and kind.
    pub fn by_table(&self) -> BTreeMap<(Table, Kind), Tally> {
        let mut tallies: BTreeMap<(Table, Kind), Tally> = BTreeMap::new();
        for d in &self.delete {
            let tally = tallies.entry((d.table, d.kind)).or_default();
            tally.objects += 1;
            tally.bytes += d.size;
        }
        tallies
    }

    /// Everything the plan deletes.
    pub fn total(&self) -> Tally {
        Tally {
            objects: self.delete.len() as u64,
            bytes: self.delete.iter().map(|d| d.size).sum(),
        }
    }

    /// The snapshots (distinct runs) the plan deletes, per table.
    pub fn snapshots_deleted(&self) -> BTreeMap<Table, BTreeSet<RunId>> {
        let mut runs: BTreeMap<Table, BTreeSet<RunId>> = BTreeMap::new();
        for d in self.delete.iter().filter(|d| d.kind == Kind::Snapshot) {
            runs.entry(d.table).or_default().insert(d.run_id.clone());
        }
        runs
    }
}

/// Decides what is garbage (see the module docs for the rules).
pub fn plan(inputs: &Inputs) -> Plan {
    let Inputs {
        now_ms,
        retention,
        current,
        runs,
        objects,
        staging,
    } = inputs;
    let within = |at_ms: u64| now_ms.saturating_sub(at_ms) <= retention.retain_ms;
    let live = |run: &RunId| {
        runs.get(run)
            .is_some_and(|r| r.finished_at_ms.is_none() && (r.leased || within(r.started_at_ms)))
    };
    // The last `keep_runs` published runs, by the time they finished.
    let mut published: Vec<(u64, &RunId)> = runs
        .iter()
        .filter(|(_, r)| r.published)
        .map(|(id, r)| (r.at_ms(), id))
        .collect();
    published.sort();
    let recent: BTreeSet<&RunId> = published
        .iter()
        .rev()
        .take(retention.keep_runs)
        .map(|(_, id)| *id)
        .collect();
    let why_kept = |table: Table, run: &RunId| -> Option<Kept> {
        if current.get(&table) == Some(run) {
            Some(Kept::Current)
        } else if recent.contains(run) {
            Some(Kept::RecentRun)
        } else if live(run) {
            Some(Kept::Live)
        } else if runs.get(run).is_some_and(|r| within(r.at_ms())) {
            Some(Kept::WithinWindow)
        } else {
            None
        }
    };

    let mut plan = Plan::default();
    for object in objects.iter() {
        let doomed = |table, run_id, kind| Doomed {
            key: object.key.clone(),
            size: object.size,
            table,
            run_id,
            kind,
        };
        if let Some((table, run)) = layout::snapshot_of(&object.key) {
            match why_kept(table, &run) {
                Some(kept) => {
                    plan.kept.entry(table).or_default().insert(run, kept);
                }
                None => plan.delete.push(doomed(table, run, Kind::Snapshot)),
            }
        } else if let Some((run, Some(table))) = layout::run_object(&object.key)
            && !live(&run)
        {
            plan.delete.push(doomed(table, run, Kind::RubricShadow));
        } else if let Some((run, table)) = layout::map_result_of(&object.key)
            && !live(&run)
            && !runs.get(&run).is_some_and(|r| within(r.at_ms()))
        {
            plan.delete.push(doomed(table, run, Kind::MapResults));
        }
    }
    // Manifests first, then parts; each group by key.
    plan.delete
        .sort_by(|a, b| (!is_manifest(&a.key), &a.key).cmp(&(!is_manifest(&b.key), &b.key)));
    plan.drop_staging = staging
        .iter()
        .filter(|(_, run)| !run.as_ref().is_some_and(&live))
        .map(|(name, _)| name.clone())
        .collect();
    plan.drop_staging.sort();
    plan
}

fn is_manifest(key: &str) -> bool {
    key.ends_with("/_manifest.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * HOUR_MS;

    fn id(s: &str) -> RunId {
        RunId::parse(s).unwrap()
    }

    fn published(at_ms: u64) -> RunState {
        RunState {
            started_at_ms: at_ms - 60_000,
            finished_at_ms: Some(at_ms),
            published: true,
            leased: false,
        }
    }

    fn objects(keys: &[&str]) -> Vec<Object> {
        keys.iter()
            .map(|k| Object {
                key: k.to_string(),
                size: 10,
            })
            .collect()
    }

    fn deleted(plan: &Plan) -> Vec<&str> {
        plan.delete.iter().map(|d| d.key.as_str()).collect()
    }

    #[test]
    fn keeps_current_recent_live_and_young_and_deletes_the_rest() {
        let now = 100 * DAY;
        let runs = BTreeMap::from([
            (id("old"), published(now - 10 * DAY)),
            (id("young"), published(now - 3 * DAY)),
            (id("latest"), published(now - DAY)),
            (
                id("failed"),
                RunState {
                    started_at_ms: now - 9 * DAY,
                    finished_at_ms: Some(now - 9 * DAY),
                    published: false,
                    leased: false,
                },
            ),
            (
                id("running"),
                RunState {
                    started_at_ms: now - 20 * DAY,
                    finished_at_ms: None,
                    published: false,
                    leased: true,
                },
            ),
            (
                id("abandoned"),
                RunState {
                    started_at_ms: now - 8 * DAY,
                    finished_at_ms: None,
                    published: false,
                    leased: false,
                },
            ),
        ]);
        // customer_trusted still points at "old" (say, a table a later run did not publish).
        let current = BTreeMap::from([
            (Table::CustomerTrusted, id("old")),
            (Table::AccelerometerTrusted, id("latest")),
        ]);
        let objects = objects(&[
            "customer/trusted/old/part-00000.parquet",
            "customer/trusted/old/_manifest.json",
            "accelerometer/trusted/old/part-00000.parquet",
            "accelerometer/trusted/old/_manifest.json",
            "accelerometer/trusted/young/part-00000.parquet",
            "accelerometer/trusted/latest/part-00000.parquet",
            "accelerometer/trusted/failed/part-00000.parquet",
            "accelerometer/trusted/running/part-00000.parquet",
            "accelerometer/trusted/abandoned/part-00000.parquet",
            "accelerometer/trusted/orphan/part-00000.parquet",
            "accelerometer/quarantine/old/part-00000.parquet",
            "accelerometer/landing/old/a.json",
            "_runs/old/report.json",
            "_runs/old/run.json",
            "_runs/old/rubric/customer_trusted/part-00000.parquet",
            "_runs/young/rubric/customer_trusted/part-00000.parquet",
            "_runs/running/rubric/customer_trusted/part-00000.parquet",
            "_runs/running/lease.json",
            "_map_results/old/accelerometer_trusted/0a1b/manifest.json",
            "_map_results/young/accelerometer_trusted/0a1b/manifest.json",
            "_map_results/latest/step_trainer_trusted/2c3d/SUCCEEDED_0.json",
            "_map_results/running/accelerometer_trusted/4e5f/manifest.json",
            "_map_results/abandoned/accelerometer_trusted/6a7b/manifest.json",
            "_map_results/orphan/accelerometer_trusted/8c9d/manifest.json",
            "_catalog/log/00000000000000000001.json",
            "_secrets/pseudonym.key",
        ]);
        let staging = vec![
            ("stedi_run_running_1".to_string(), Some(id("running"))),
            ("stedi_run_old_2".to_string(), Some(id("old"))),
            ("stedi_run_unknown_3".to_string(), None),
        ];
        let plan = plan(&Inputs {
            now_ms: now,
            retention: Retention::default(),
            current: &current,
            runs: &runs,
            objects: &objects,
            staging: &staging,
        });
        assert_eq!(
            deleted(&plan),
            [
                "accelerometer/trusted/old/_manifest.json",
                "_map_results/abandoned/accelerometer_trusted/6a7b/manifest.json",
                "_map_results/old/accelerometer_trusted/0a1b/manifest.json",
                "_map_results/orphan/accelerometer_trusted/8c9d/manifest.json",
                "_runs/old/rubric/customer_trusted/part-00000.parquet",
                "_runs/young/rubric/customer_trusted/part-00000.parquet",
                "accelerometer/quarantine/old/part-00000.parquet",
                "accelerometer/trusted/abandoned/part-00000.parquet",
                "accelerometer/trusted/failed/part-00000.parquet",
                "accelerometer/trusted/old/part-00000.parquet",
                "accelerometer/trusted/orphan/part-00000.parquet",
            ]
        );
        assert_eq!(
            plan.drop_staging,
            ["stedi_run_old_2", "stedi_run_unknown_3"]
        );
        assert_eq!(
            plan.kept[&Table::AccelerometerTrusted],
            BTreeMap::from([
                (id("latest"), Kept::Current),
                (id("running"), Kept::Live),
                (id("young"), Kept::WithinWindow),
            ])
        );
        assert_eq!(
            plan.kept[&Table::CustomerTrusted],
            BTreeMap::from([(id("old"), Kept::Current)])
        );
        assert_eq!(
            plan.total(),
            Tally {
                objects: 11,
                bytes: 110
            }
        );
        // Map results: of runs neither live nor within the window (young
        // and latest are within it; running is live).
        assert_eq!(
            plan.by_table()[&(Table::AccelerometerTrusted, Kind::MapResults)],
            Tally {
                objects: 3,
                bytes: 30
            }
        );
        assert_eq!(
            plan.by_table()[&(Table::CustomerTrusted, Kind::RubricShadow)],
            Tally {
                objects: 2,
                bytes: 20
            }
        );
    }

    #[test]
    fn the_last_published_runs_are_kept_whatever_their_age() {
        let now = 100 * DAY;
        let runs = BTreeMap::from([
            (id("a"), published(now - 30 * DAY)),
            (id("b"), published(now - 20 * DAY)),
            (id("c"), published(now - 10 * DAY)),
        ]);
        let current = BTreeMap::from([(Table::CustomerTrusted, id("c"))]);
        let objects = objects(&[
            "customer/trusted/a/part-00000.parquet",
            "customer/trusted/b/part-00000.parquet",
            "customer/trusted/c/part-00000.parquet",
        ]);
        let with = |keep_runs| {
            plan(&Inputs {
                now_ms: now,
                retention: Retention {
                    retain_ms: DEFAULT_RETAIN_MS,
                    keep_runs,
                },
                current: &current,
                runs: &runs,
                objects: &objects,
                staging: &[],
            })
        };
        assert_eq!(
            deleted(&with(1)),
            [
                "customer/trusted/a/part-00000.parquet",
                "customer/trusted/b/part-00000.parquet"
            ]
        );
        assert_eq!(deleted(&with(2)), ["customer/trusted/a/part-00000.parquet"]);
        assert_eq!(
            with(2).kept[&Table::CustomerTrusted][&id("b")],
            Kept::RecentRun
        );
        assert!(
            deleted(&with(0)).len() == 2,
            "the current snapshot stays even with 0"
        );
    }

    #[test]
    fn the_window_edge_is_kept_and_a_millisecond_more_is_not() {
        let now = 100 * DAY;
        let runs = BTreeMap::from([
            (id("edge"), published(now - DEFAULT_RETAIN_MS)),
            (id("past"), published(now - DEFAULT_RETAIN_MS - 1)),
            (id("latest"), published(now)),
        ]);
        let current = BTreeMap::new();
        let objects = objects(&[
            "machine_learning/curated/edge/part-00000.parquet",
            "machine_learning/curated/past/part-00000.parquet",
        ]);
        let plan = plan(&Inputs {
            now_ms: now,
            retention: Retention::default(),
            current: &current,
            runs: &runs,
            objects: &objects,
            staging: &[],
        });
        assert_eq!(
            deleted(&plan),
            ["machine_learning/curated/past/part-00000.parquet"]
        );
    }

    #[test]
    fn a_run_not_finished_and_not_leased_is_live_only_within_the_window() {
        let now = 100 * DAY;
        let runs = BTreeMap::from([(
            id("r"),
            RunState {
                started_at_ms: now - 2 * HOUR_MS,
                finished_at_ms: None,
                published: false,
                leased: false,
            },
        )]);
        let current = BTreeMap::new();
        let objects = objects(&[
            "customer/trusted/r/part-00000.parquet",
            "_runs/r/rubric/customer_trusted/part-00000.parquet",
        ]);
        let with = |retain_ms| {
            plan(&Inputs {
                now_ms: now,
                retention: Retention {
                    retain_ms,
                    keep_runs: 1,
                },
                current: &current,
                runs: &runs,
                objects: &objects,
                staging: &[],
            })
        };
        assert!(with(3 * HOUR_MS).delete.is_empty());
        assert_eq!(with(HOUR_MS).delete.len(), 2);
    }

    #[test]
    fn a_window_under_an_hour_needs_force() {
        let short = Retention {
            retain_ms: HOUR_MS - 1,
            keep_runs: 1,
        };
        assert_eq!(
            short.check(false),
            Err(WindowTooShort {
                retain_ms: HOUR_MS - 1
            })
        );
        assert_eq!(short.check(true), Ok(()));
        assert_eq!(
            short.check(false).unwrap_err().to_string(),
            "a retention window of 59m 59s 999ms is shorter than 1 hour: a run still writing could lose its snapshots; pass --force if no run is running"
        );
        assert_eq!(Retention::default().check(false), Ok(()));
    }

    #[test]
    fn snapshot_and_run_keys_parse_back() {
        assert_eq!(
            layout::snapshot_of("step_trainer/quarantine/r1/part-00003.parquet"),
            Some((Table::StepTrainerQuarantine, id("r1")))
        );
        assert_eq!(layout::snapshot_of("customer/landing/r1/x.json"), None);
        assert_eq!(layout::snapshot_of("customer/trusted/r1/"), None);
        assert_eq!(layout::snapshot_of("nothing/trusted/r1/a"), None);
        assert_eq!(
            layout::run_object("_runs/r1/rubric/customers_curated/part-00000.parquet"),
            Some((id("r1"), Some(Table::CustomersCurated)))
        );
        assert_eq!(
            layout::run_object("_runs/r1/report.json"),
            Some((id("r1"), None))
        );
        for table in layout::snapshot_tables() {
            let key = layout::part_key(&layout::snapshot_prefix(table, &id("r9")), 0);
            assert_eq!(layout::snapshot_of(&key), Some((table, id("r9"))));
        }
    }
}
