//! Vacuum: lists what retention decides over (snapshot folders, the runs'
//! folders, the Distributed Maps' result files, staging areas), reads the catalog and the runs' records, asks
//! `zones::retention::plan` what is garbage, and deletes it. The rules are
//! in `zones::retention`; this module only moves bytes.
//!
//! Order matters for running beside a run: the objects are listed first,
//! then the catalog and the run records are read. A run writes its record
//! before any object, so every listed object's run has a record by the time
//! vacuum reads them; a publish that lands between the listing and the
//! catalog read finished a run within the window, which keeps it.

use std::collections::BTreeMap;

use zones::contract::{VacuumOptions, VacuumResult, VacuumTable};
use zones::retention::{self, Inputs, Kind, Object, Plan, Retention, RunState};
use zones::{RunId, Table, layout};

use crate::error::{Error, Result};
use crate::{Env, runs};

/// Plans and (unless `options.dry_run`) carries out a vacuum of the
/// warehouse at `env.clock`'s time. Refuses a window under one hour unless
/// `options.force` ([`crate::Error::RetentionTooShort`]). Returns the plan
/// and its summary; on a dry run nothing is deleted and the summary says
/// what would be.
pub fn vacuum(env: &Env, options: &VacuumOptions) -> Result<(Plan, VacuumResult)> {
    let started = std::time::Instant::now();
    let retention = Retention {
        retain_ms: options.retain_ms,
        keep_runs: options.keep_runs,
    };
    retention.check(options.force)?;
    let now_ms = env.clock.now_ms();
    let store = env.store.as_ref();

    // 1. What exists.
    let mut objects = Vec::new();
    for table in layout::snapshot_tables() {
        objects.extend(store.list(&layout::snapshots_prefix(table))?);
    }
    let run_files = store.list(layout::runs_prefix())?;
    objects.extend(store.list(layout::map_results_prefix())?);
    let staging_names = env.catalog.staging_areas()?;
    // 2. What the catalog points at, and what each run is, read after the listing.
    let catalog = env.catalog.load()?;
    let current: BTreeMap<Table, RunId> = catalog
        .tables
        .iter()
        .filter_map(|(table, entry)| {
            let run = RunId::parse(entry.run_id.as_deref()?).ok()?;
            Some((*table, run))
        })
        .collect();
    let mut runs_seen = BTreeMap::new();
    for object in &run_files {
        let Some((run_id, None)) = layout::run_object(&object.key) else {
            continue;
        };
        if object.key != layout::run_record_key(&run_id) {
            continue;
        }
        let record = match runs::load(store, &run_id) {
            Ok(record) => record,
            // A damaged record says nothing of its run: keep everything of
            // it (as if running), say so, and go on with the others.
            Err(e @ Error::Damaged { .. }) => {
                tracing::warn!(%run_id, error = %e, "run record damaged: its objects are kept");
                runs_seen.insert(
                    run_id,
                    RunState {
                        started_at_ms: env.clock.now_ms(),
                        finished_at_ms: None,
                        published: false,
                        leased: true,
                    },
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(record) = record {
            // A lease left by a process that is gone (killed) holds nothing.
            let leased = run_files
                .iter()
                .any(|o| o.key == layout::run_lease_key(&run_id))
                && runs::LeaseHolder::holds(store, &run_id)?;
            runs_seen.insert(
                run_id,
                RunState {
                    started_at_ms: record.started_at_ms,
                    finished_at_ms: record.finished.as_ref().map(|f| f.at_ms),
                    published: record.finished.as_ref().is_some_and(|f| f.published),
                    leased,
                },
            );
        }
    }
    let staging: Vec<(String, Option<RunId>)> = staging_names
        .into_iter()
        .map(|name| {
            let run = runs_seen
                .keys()
                .find(|run| env.catalog.staging_area(run).as_deref() == Some(name.as_str()))
                .cloned();
            (name, run)
        })
        .collect();
    let listed: Vec<Object> = objects
        .iter()
        .chain(&run_files)
        .filter(|o| o.unreadable.is_none())
        .map(|o| Object {
            key: o.key.clone(),
            size: o.size,
        })
        .collect();

    // 3. The decision.
    let plan = retention::plan(&Inputs {
        now_ms,
        retention,
        current: &current,
        runs: &runs_seen,
        objects: &listed,
        staging: &staging,
    });

    // 4. The deletion.
    if !options.dry_run {
        let keys: Vec<String> = plan.delete.iter().map(|d| d.key.clone()).collect();
        store.delete_many(&keys)?;
        for name in &plan.drop_staging {
            env.catalog.drop_staging_area(name)?;
        }
        let total = plan.total();
        tracing::info!(
            objects = total.objects,
            bytes = total.bytes,
            staging = plan.drop_staging.len(),
            "vacuumed"
        );
    }
    let result = summarize(&plan, options, now_ms, started.elapsed().as_secs_f64());
    Ok((plan, result))
}

/// The plan as the contract's summary: totals and per table.
pub fn summarize(plan: &Plan, options: &VacuumOptions, now_ms: u64, seconds: f64) -> VacuumResult {
    let mut tables: BTreeMap<Table, VacuumTable> = BTreeMap::new();
    for ((table, kind), tally) in plan.by_table() {
        let entry = tables.entry(table).or_default();
        match kind {
            Kind::Snapshot => {
                entry.objects += tally.objects;
                entry.bytes += tally.bytes;
            }
            Kind::RubricShadow => {
                entry.shadow_objects += tally.objects;
                entry.shadow_bytes += tally.bytes;
            }
            Kind::MapResults => {
                entry.map_result_objects += tally.objects;
                entry.map_result_bytes += tally.bytes;
            }
        }
    }
    for (table, runs) in plan.snapshots_deleted() {
        tables.entry(table).or_default().snapshots = runs.len() as u64;
    }
    for (table, kept) in &plan.kept {
        tables.entry(*table).or_default().snapshots_kept = kept.len() as u64;
    }
    let total = plan.total();
    VacuumResult {
        dry_run: options.dry_run,
        now_ms,
        retain_ms: options.retain_ms,
        keep_runs: options.keep_runs,
        objects: total.objects,
        bytes: total.bytes,
        tables,
        staging_dropped: plan.drop_staging.clone(),
        seconds,
    }
}

/// Deletes the rubric shadows of `run_id` (`_runs/<run id>/rubric/`): they
/// exist for the run's own transitions and report, and hold personal data
/// (full customer records, readings of customers who revoked consent).
/// The gate calls it once it has run, passed or failed. Returns objects and
/// bytes deleted.
pub fn delete_shadows(env: &Env, run_id: &RunId) -> Result<(u64, u64)> {
    let objects = env.store.list(&layout::rubric_shadows_prefix(run_id))?;
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    env.store.delete_many(&keys)?;
    // They hold personal data: on a versioned bucket the versions the
    // deletes left behind go too, not a day later with the lifecycle rule.
    for key in &keys {
        env.store.delete_noncurrent_versions(key)?;
    }
    Ok((keys.len() as u64, objects.iter().map(|o| o.size).sum()))
}
