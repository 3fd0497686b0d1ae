//! Retention (`stedi vacuum` and the `Vacuum` state) on warehouses after
//! several runs at simulated times (`--as-of`): exactly the expected folders
//! remain, queries still work, a dry run deletes nothing, a running run is
//! not harmed, a short window needs --force, twice is a no-op; the rubric
//! shadows do not outlive their run; 30 simulated days hold at most 8
//! snapshots per table; and the same on S3 (versioned, moto) with Glue.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use zones::layout;

use crate::support::{query_csv, stedi, stedi_env, stedi_ok, succeeded};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Day `n` of November 2026 at 06:00 UTC, as `--as-of` takes it.
fn day(n: u32) -> String {
    format!("2026-11-{n:02}T06:00:00Z")
}

/// Every file under the warehouse, relative, sorted.
fn files(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// Every folder that holds files, relative, sorted (empty folders are not listed
/// by the store, and vacuum removes those it empties).
fn dirs(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The snapshot folders (`<dataset>/<zone>/<run id>`) of non-landing tables.
fn snapshot_dirs(root: &Path) -> BTreeSet<String> {
    files(root)
        .into_iter()
        .filter_map(|key| {
            let (table, run) = layout::snapshot_of(&key)?;
            Some(layout::snapshot_prefix(table, &run))
        })
        .collect()
}

/// Snapshots per table.
fn snapshots_per_table(root: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for key in files(root) {
        if let Some((table, _)) = layout::snapshot_of(&key)
            && key.ends_with("/_manifest.json")
        {
            *counts.entry(table.to_string()).or_default() += 1;
        }
    }
    counts
}

fn bytes_under(root: &Path) -> u64 {
    files(root)
        .iter()
        .map(|f| std::fs::metadata(root.join(f)).unwrap().len())
        .sum()
}

/// The definition with its `state` task followed by a Fail state of `error`
/// instead of its Next: a run that ends there, as one whose data was refused
/// (`Stedi.InvalidInput`, finished) or one cut off by a failure a redrive
/// resumes (`Stedi.Internal`, not finished).
fn definition_ending_after(dir: &Path, state: &str, error: &str) -> PathBuf {
    let mut definition: Value = serde_json::from_str(stedi::runner::DEFINITION).unwrap();
    definition["States"][state]["Next"] = json!("Stop");
    definition["States"]["Stop"] = json!({
        "Type": "Fail",
        "Error": error,
        "Cause": format!("the test stops the run after {state}"),
    });
    let path = dir.join(format!("after-{state}-{error}.json"));
    std::fs::write(&path, definition.to_string()).unwrap();
    path
}

/// The definition without its Vacuum state: the gate ends the run.
fn definition_without_vacuum(dir: &Path) -> PathBuf {
    let mut definition: Value = serde_json::from_str(stedi::runner::DEFINITION).unwrap();
    let states = definition["States"].as_object_mut().unwrap();
    states.remove("Vacuum");
    for state in states.values_mut() {
        if state["Next"] == "Vacuum" {
            state.as_object_mut().unwrap().remove("Next");
            state["End"] = json!(true);
        }
    }
    let path = dir.join("without-vacuum.json");
    std::fs::write(&path, definition.to_string()).unwrap();
    path
}

fn run_at(wh: &Path, run_id: &str, at: &str, definition: Option<&Path>) -> std::process::Output {
    let mut args = vec!["run", "--run-id", run_id, "--as-of", at];
    if let Some(d) = definition {
        args.extend(["--definition", d.to_str().unwrap()]);
    }
    stedi(wh, &args)
}

fn folders_of(run: &str, tables: &[zones::Table]) -> BTreeSet<String> {
    let run = zones::RunId::parse(run).unwrap();
    tables
        .iter()
        .map(|t| layout::snapshot_prefix(*t, &run))
        .collect()
}

#[test]
fn vacuum_keeps_exactly_what_the_catalog_the_window_and_a_running_run_need() {
    use zones::Table::*;
    let scratch = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "40", "--seed", "7"]);
    for (n, id) in [(1, "r1"), (2, "r2"), (3, "r3")] {
        succeeded(run_at(wh, id, &day(n), None), id);
    }
    // Shadows do not outlive a run that reached the gate.
    assert!(
        !files(wh).iter().any(|f| f.contains("/rubric/")),
        "the gate deletes the rubric shadows"
    );
    // f4: its data refused after customers_curated (finished, never published).
    let refused = definition_ending_after(scratch.path(), "CustomersCurated", "Stedi.InvalidInput");
    assert!(!run_at(wh, "f4", &day(4), Some(&refused)).status.success());
    let f4_shadows: Vec<String> = files(wh)
        .into_iter()
        .filter(|f| f.starts_with("_runs/f4/rubric/"))
        .collect();
    // Three shadows, each a manifest and its parts (accelerometer_trusted's by day).
    let manifests = f4_shadows.iter().filter(|f| f.ends_with("/_manifest.json"));
    assert_eq!(manifests.count(), 3, "{f4_shadows:?}");
    assert!(f4_shadows.len() > 6, "{f4_shadows:?}");
    // r5 publishes; its Vacuum state removes f4's shadows (f4 ended), whatever the window.
    succeeded(run_at(wh, "r5", &day(5), None), "r5");
    assert!(!files(wh).iter().any(|f| f.contains("/rubric/")));
    // r6: cut off after customer_trusted by a failure a redrive resumes, and
    // still running (a process holds its lease).
    let cut = definition_ending_after(scratch.path(), "CustomerTrusted", "Stedi.Internal");
    assert!(!run_at(wh, "r6", &day(6), Some(&cut)).status.success());
    let lease =
        json!({"pid": std::process::id(), "host": "test", "boot_id": "test", "started_at_ms": 0});
    std::fs::write(wh.join("_runs/r6/lease.json"), lease.to_string()).unwrap();

    let rows_before = query_csv(wh, "SELECT COUNT(*) AS n FROM machine_learning_curated");
    let before = files(wh);
    let all_tables: Vec<zones::Table> = layout::snapshot_tables().collect();
    let mut expected_before: BTreeSet<String> = ["r1", "r2", "r3", "r5"]
        .iter()
        .flat_map(|r| folders_of(r, &all_tables))
        .collect();
    expected_before.extend(folders_of(
        "f4",
        &[
            CustomerTrusted,
            CustomerQuarantine,
            AccelerometerTrusted,
            AccelerometerQuarantine,
            CustomersCurated,
        ],
    ));
    expected_before.extend(folders_of("r6", &[CustomerTrusted, CustomerQuarantine]));
    assert_eq!(snapshot_dirs(wh), expected_before);

    // A window under an hour is refused without --force, and deletes nothing.
    let short = stedi(wh, &["vacuum", "--retain", "30m", "--as-of", &day(8)]);
    assert!(!short.status.success());
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(
        stderr.contains("a retention window of 30m is shorter than 1 hour")
            && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(files(wh), before);
    // A window without a unit is refused, naming the accepted form.
    let unitless = stedi(wh, &["vacuum", "--retain", "7"]);
    assert!(!unitless.status.success());
    let stderr = String::from_utf8_lossy(&unitless.stderr);
    assert!(
        stderr.contains("`7` is not a duration such as 7d, 12h or 0s"),
        "{stderr}"
    );
    assert_eq!(files(wh), before);

    // A dry run prints the plan and deletes nothing.
    let args = ["vacuum", "--retain", "1h", "--as-of", &day(8)];
    let dry = stedi_ok(wh, &[&args[..], &["--dry-run"]].concat());
    assert_eq!(files(wh), before, "a dry run deletes nothing");
    assert!(dry.contains("dry run, nothing deleted"), "{dry}");
    assert!(dry.contains("would delete customer/trusted/r1/"), "{dry}");
    // Of r5 (current) only its Map results, which no reader needs; nothing of r6 (running).
    assert!(
        !dry.lines()
            .any(|l| l.contains("/r5/") && !l.contains("_map_results/r5/")),
        "{dry}"
    );
    assert!(!dry.contains("/r6/"), "{dry}");

    // The vacuum: the current run's snapshots and the running run's remain.
    let out = stedi_ok(wh, &args);
    let mut expected: BTreeSet<String> = folders_of("r5", &all_tables);
    expected.extend(folders_of("r6", &[CustomerTrusted, CustomerQuarantine]));
    assert_eq!(snapshot_dirs(wh), expected);
    // The same folders as the dry run planned, now deleted.
    let folders = |text: &str, verb: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(verb))
            .filter(|l| !l.contains("staging databases"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(folders(&dry, "would delete "), folders(&out, "deleted "));
    // 4 published or refused runs' snapshot folders: r1-r3 all 9, f4 5;
    // and the Map results of every run older than the window that is not
    // running, the current one's included: 3 Maps of r1-r3 and r5, 1 of f4.
    let map_results: Vec<String> = folders(&out, "deleted ")
        .into_iter()
        .filter(|f| f.starts_with(layout::map_results_prefix()))
        .collect();
    assert_eq!(map_results.len(), 4 * 3 + 1, "{map_results:?}");
    let f4 = layout::map_results_table_prefix(&"f4".parse().unwrap(), AccelerometerTrusted);
    assert!(
        map_results
            .iter()
            .any(|f| f.starts_with(&format!("{f4} (2 objects"))),
        "{map_results:?}"
    );
    assert_eq!(
        folders(&out, "deleted ").len(),
        3 * 9 + 5 + map_results.len()
    );
    assert!(!wh.join(layout::map_results_prefix()).exists());
    // Each folder deleted with every object it held, as the vacuum says.
    let after = files(wh);
    let mut said = 0;
    for line in folders(&out, "deleted ") {
        let (folder, rest) = line.split_once(" (").unwrap();
        let objects: usize = rest.split_once(' ').unwrap().0.parse().unwrap();
        let held = before.iter().filter(|f| f.starts_with(folder)).count();
        assert_eq!(objects, held, "{folder}");
        assert!(!after.iter().any(|f| f.starts_with(folder)), "{folder}");
        said += objects;
    }
    let deleted_objects = before.len() - after.len();
    assert_eq!(deleted_objects, said);
    assert!(
        out.contains(&format!("deleted {deleted_objects} objects")),
        "{out}"
    );
    let per_table: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("customer_trusted"))
        .collect();
    assert_eq!(per_table.len(), 1, "{out}");
    let cells: Vec<&str> = per_table[0].split_whitespace().collect();
    assert_eq!(
        (cells[1], cells[2]),
        ("4", "8"),
        "4 snapshots, 8 objects: {out}"
    );
    // The running run's shadow stays too; every run's report and record stay.
    assert!(
        wh.join("_runs/r6/rubric/customer_trusted/_manifest.json")
            .is_file()
    );
    for run in ["r1", "r2", "r3", "f4", "r5"] {
        for file in ["run.json", "report.html", "facts.json"] {
            assert!(
                wh.join("_runs").join(run).join(file).is_file(),
                "{run}/{file}"
            );
        }
    }
    // No folder left empty.
    for d in dirs(wh) {
        assert!(
            std::fs::read_dir(wh.join(&d)).unwrap().next().is_some(),
            "{d} is empty"
        );
    }
    // History still lists every published run, and says which snapshots went.
    let history = stedi_ok(wh, &["history", "customer_trusted"]);
    let marks: Vec<(String, String)> = history
        .lines()
        .filter(|l| l.contains('┆') && !l.contains("policy"))
        .map(|l| {
            let cells: Vec<&str> = l
                .split('┆')
                .map(|c| c.trim_matches(|c: char| c == '│' || c.is_whitespace()))
                .collect();
            (cells[0].to_string(), cells[5].to_string())
        })
        .collect();
    let expected_marks: Vec<(String, String)> = [
        ("r1", "vacuumed"),
        ("r2", "vacuumed"),
        ("r3", "vacuumed"),
        ("r5", "*"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(marks, expected_marks, "{history}");
    // Queries and verify still work on what the catalog points at.
    assert_eq!(
        query_csv(wh, "SELECT COUNT(*) AS n FROM machine_learning_curated"),
        rows_before
    );
    stedi_ok(wh, &["verify"]);

    // Twice is a no-op.
    let after = files(wh);
    let again = stedi_ok(wh, &args);
    assert!(again.contains("deleted 0 objects"), "{again}");
    assert_eq!(files(wh), after);

    // The running run was not harmed: it resumes and publishes.
    std::fs::remove_file(wh.join("_runs/r6/lease.json")).unwrap();
    let resumed = succeeded(run_at(wh, "r6", &day(8), None), "r6 resumed");
    assert!(
        resumed.contains("published as catalog version 5"),
        "{resumed}"
    );
    // Its Vacuum state (7 days) kept r5 (3 days old); the shadows are gone.
    let mut now: BTreeSet<String> = folders_of("r6", &all_tables);
    now.extend(folders_of("r5", &all_tables));
    assert_eq!(snapshot_dirs(wh), now);
    assert!(!files(wh).iter().any(|f| f.contains("/rubric/")));
}

#[test]
fn a_run_not_finished_and_without_a_lease_is_live_only_within_the_window() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "20", "--seed", "2"]);
    succeeded(run_at(wh, "r1", &day(1), None), "r1");
    let cut = definition_ending_after(scratch.path(), "CustomerTrusted", "Stedi.Internal");
    assert!(!run_at(wh, "r2", &day(2), Some(&cut)).status.success());
    let r2 = folders_of("r2", &[zones::Table::CustomerTrusted]);
    // Within 7 days of its start, r2 may still be redriven: kept, shadow and all.
    stedi_ok(wh, &["vacuum", "--as-of", &day(8)]);
    assert!(snapshot_dirs(wh).is_superset(&r2));
    assert!(wh.join("_runs/r2/rubric").is_dir());
    // Past the window it is abandoned: gone.
    stedi_ok(wh, &["vacuum", "--as-of", "2026-11-09T06:00:01Z"]);
    assert!(snapshot_dirs(wh).is_disjoint(&r2));
    assert!(!wh.join("_runs/r2/rubric").exists());
    // --keep-runs keeps published runs only, and the current one anyway.
    let kept = snapshot_dirs(wh);
    stedi_ok(
        wh,
        &[
            "vacuum",
            "--retain",
            "0s",
            "--force",
            "--keep-runs",
            "0",
            "--as-of",
            &day(20),
        ],
    );
    assert_eq!(snapshot_dirs(wh), kept);
}

/// The promise: a warehouse run daily for 30 simulated days with a
/// 7-day window holds at most 8 snapshots per table (the Vacuum state of
/// each run does it); without vacuum, 30.
#[test]
fn thirty_simulated_days_hold_at_most_eight_snapshots_per_table() {
    let scratch = tempfile::tempdir().unwrap();
    let without = definition_without_vacuum(scratch.path());
    let with_dir = tempfile::tempdir().unwrap();
    let without_dir = tempfile::tempdir().unwrap();
    for wh in [with_dir.path(), without_dir.path()] {
        stedi_ok(wh, &["seed", "--customers", "12", "--seed", "4"]);
        // One pseudonym key for both, so the training tables compare.
        std::fs::create_dir_all(wh.join("_secrets")).unwrap();
        std::fs::write(wh.join(layout::pseudonym_key_key()), [9u8; 32]).unwrap();
    }
    let tables = layout::snapshot_tables().count();
    for n in 1..=30u32 {
        let id = format!("day{n:02}");
        succeeded(run_at(with_dir.path(), &id, &day(n), None), &id);
        succeeded(
            run_at(without_dir.path(), &id, &day(n), Some(&without)),
            &id,
        );
        let counts = snapshots_per_table(with_dir.path());
        assert_eq!(counts.len(), tables);
        let expected = n.min(8) as usize;
        assert!(
            counts.values().all(|c| *c == expected),
            "day {n}: {counts:?}"
        );
    }
    let counts = snapshots_per_table(without_dir.path());
    assert!(counts.values().all(|c| *c == 30), "{counts:?}");
    // Days 23 to 30 remain: day 23 is exactly 7 days before day 30.
    let runs: BTreeSet<String> = snapshot_dirs(with_dir.path())
        .iter()
        .map(|p| p.split('/').nth(2).unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = (23..=30).map(|n| format!("day{n:02}")).collect();
    assert_eq!(runs, expected);
    assert!(bytes_under(with_dir.path()) < bytes_under(without_dir.path()));
    // The two warehouses publish the same tables.
    for table in [
        "customers_curated",
        "machine_learning_curated",
        "step_trainer_quarantine",
    ] {
        let sql = format!("SELECT * FROM {table}");
        assert_eq!(
            query_csv(with_dir.path(), &sql),
            query_csv(without_dir.path(), &sql),
            "{table}"
        );
    }
    let _ = DAY_MS;
}

#[test]
fn vacuum_on_a_versioned_bucket_and_glue_deletes_in_batches_and_drops_staging_databases() {
    use lakehouse::Store;
    use lakehouse::catalog::Catalog;
    use lakehouse::s3::S3Store;

    let moto = crate::moto::Moto::start();
    let aws = moto.aws();
    let client = moto.create_versioned_bucket(&aws, "lake");
    let envs = moto.env();
    let remote = [
        "--warehouse",
        "s3://lake/warehouse",
        "--glue-database",
        "stedi",
    ];
    let stedi_s3 = |args: &[&str]| {
        succeeded(
            stedi_env(&envs, &[&remote[..], args].concat()),
            &format!("{args:?}"),
        )
    };
    stedi_s3(&["seed", "--customers", "20", "--seed", "9"]);
    stedi_s3(&["run", "--run-id", "r1", "--as-of", &day(1)]);
    stedi_s3(&["run", "--run-id", "r2", "--as-of", &day(2)]);

    let store = S3Store::new(aws.clone(), "s3://lake/warehouse").unwrap();
    // An orphan snapshot of 1,005 objects (no run record): more than one DeleteObjects batch.
    let orphan: Vec<String> = (0..1005)
        .map(|n| format!("customer/trusted/orphan/part-{n:05}.parquet"))
        .collect();
    for key in &orphan {
        store.put(key, b"x").unwrap();
    }
    // A staging database a crashed gate of r1 left behind, and one of no known run.
    let glue = lakehouse::glue::GlueCatalog::new(aws.clone(), "stedi", "s3://lake/warehouse/");
    let view = glue.load().unwrap();
    glue.stage("r1", &view).unwrap();
    glue.stage("gone", &view).unwrap();
    assert_eq!(glue.staging_areas().unwrap().len(), 2);

    let listed: Vec<String> = store.list("").unwrap().into_iter().map(|o| o.key).collect();
    let r1_snapshots = listed
        .iter()
        .filter(|k| layout::snapshot_of(k).is_some_and(|(_, run)| run.as_str() == "r1"));
    let r1_manifests = r1_snapshots
        .clone()
        .filter(|k| k.ends_with("/_manifest.json"));
    assert_eq!(r1_manifests.count(), 9, "nine snapshots of r1");
    // And the Map results of r1 and r2 (older than the window, not
    // running; the current run's too).
    let map_results = listed.iter().filter(|k| {
        layout::map_result_of(k).is_some_and(|(run, _)| ["r1", "r2"].contains(&run.as_str()))
    });
    let doomed = orphan.len() + r1_snapshots.count() + map_results.count();
    let dry = stedi_s3(&["vacuum", "--as-of", &day(20), "--dry-run"]);
    assert!(
        dry.contains(&format!("would delete {doomed} objects")),
        "{dry}"
    );
    assert_eq!(
        glue.staging_areas().unwrap().len(),
        2,
        "a dry run drops nothing"
    );
    let out = stedi_s3(&["vacuum", "--as-of", &day(20)]);
    assert!(out.contains(&format!("deleted {doomed} objects")), "{out}");
    assert!(out.contains("2 staging databases"), "{out}");
    assert!(glue.staging_areas().unwrap().is_empty());

    let left: Vec<String> = store.list("").unwrap().into_iter().map(|o| o.key).collect();
    assert!(
        !left
            .iter()
            .filter_map(|k| layout::snapshot_of(k))
            .any(|(_, run)| run.as_str() == "orphan" || run.as_str() == "r1"),
        "{left:?}"
    );
    let r2_snapshots = |keys: &[String]| -> Vec<String> {
        let r2 = keys
            .iter()
            .filter(|k| layout::snapshot_of(k).is_some_and(|(_, run)| run.as_str() == "r2"));
        r2.cloned().collect()
    };
    assert_eq!(
        left.iter()
            .filter(|k| layout::snapshot_of(k).is_some())
            .count(),
        r2_snapshots(&listed).len(),
        "r2's nine snapshots remain, and only they"
    );
    assert_eq!(r2_snapshots(&left), r2_snapshots(&listed));
    assert!(left.contains(&"_runs/r1/report.json".to_string()));
    // The bucket is versioned: each deleted key has a delete marker over a
    // noncurrent version, which the bucket's lifecycle rule expires.
    let versions = aws
        .block_on(
            client
                .list_object_versions()
                .bucket("lake")
                .prefix("warehouse/customer/trusted/r1/")
                .send(),
        )
        .unwrap();
    assert_eq!(versions.delete_markers().len(), 2);
    assert!(
        versions
            .delete_markers()
            .iter()
            .all(|m| m.is_latest() == Some(true))
    );
    assert_eq!(versions.versions().len(), 2);
    assert!(
        versions
            .versions()
            .iter()
            .all(|v| v.is_latest() == Some(false))
    );
    // Queries through Glue's catalog still resolve.
    let tables = stedi_s3(&["tables"]);
    assert!(tables.contains("r2"), "{tables}");
    // Twice is a no-op.
    let again = stedi_s3(&["vacuum", "--as-of", &day(20)]);
    assert!(again.contains("deleted 0 objects"), "{again}");
    let _: &dyn Store = &store;
}

/// The gate deletes the rubric shadows whether its checks pass or fail: a
/// miswired definition hands the accelerometer transition the rubric shadow
/// of customer_trusted, the gate's checks fail, nothing is published, and
/// no shadow is left; the report keeps the strict-vs-rubric counts.
#[test]
fn the_shadows_are_gone_after_a_gate_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "40", "--seed", "3"]);
    let mut miswired: Value = serde_json::from_str(stedi::runner::DEFINITION).unwrap();
    miswired["States"]["AccelerometerTrusted"]["ItemBatcher"]["BatchInput"]["inputs"]["customer_trusted.$"] =
        json!("$.results.customer_trusted.rubric");
    let definition = wh.join("miswired.asl.json");
    std::fs::write(&definition, miswired.to_string()).unwrap();
    let out = run_at(wh, "bad", &day(1), Some(&definition));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Stedi.QualityGateFailed"), "{stderr}");
    assert!(
        !files(wh).iter().any(|f| f.contains("/rubric/")),
        "{:?}",
        files(wh)
    );
    let report = crate::support::report(wh, "bad");
    assert_eq!(report["publication"]["published"], false);
    assert!(!report["rubric_comparison"].as_array().unwrap().is_empty());
}

/// A damaged run record says nothing of its run: vacuum keeps that run's
/// objects, says so, and still deletes the rest (it used to fail every later
/// Vacuum state).
#[test]
fn a_damaged_run_record_keeps_its_run_and_does_not_stop_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    for run in ["s1", "s2", "s3"] {
        stedi_ok(wh, &["run", "--run-id", run]);
    }
    std::fs::write(wh.join("_runs/s1/run.json"), "garbage").unwrap();
    stedi_ok(wh, &["vacuum", "--retain", "0s", "--force"]);
    assert!(
        wh.join("customer/trusted/s1").exists(),
        "the damaged run is kept"
    );
    assert!(
        !wh.join("customer/trusted/s2").exists(),
        "the others are vacuumed"
    );
    assert!(
        wh.join("customer/trusted/s3").exists(),
        "the current snapshot stays"
    );
}
