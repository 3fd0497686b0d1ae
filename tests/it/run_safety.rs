//! A run can never destroy or corrupt data: hostile run ids, a re-used run
//! id, overlapping runs, a failed publish, damaged parts. Each test asserts
//! the effect an operator would look for (files still there, counts
//! unchanged, the other run's tables still published, the report honest).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lakehouse::Env;
use serde_json::{Value, json};
use zones::{ErrorName, GateRequest, Policy, RunId};

use crate::support::{query_csv, report, stedi, stedi_ok};

/// Every file under `dir` with its bytes, hidden files included.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    out
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn count(warehouse: &Path, table: &str) -> u64 {
    query_csv(warehouse, &format!("SELECT COUNT(*) AS n FROM {table}"))[1]
        .parse()
        .unwrap()
}

#[test]
fn hostile_run_ids_are_refused_before_any_work_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    // The warehouse three folders down, so `../../../D` would land in `dir`.
    let wh = dir.path().join("a/b/warehouse");
    let outside = dir.path().join("D");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious.txt"), b"keep me").unwrap();
    stedi_ok(&wh, &["seed", "--customers", "60"]);
    let before = files(dir.path());

    let long = "x".repeat(300);
    for id in [
        "..",
        "../../../D",
        "../../x",
        "a/b",
        "",
        ".",
        "a..b",
        long.as_str(),
    ] {
        let out = stedi(&wh, &["run", "--run-id", id]);
        assert!(!out.status.success(), "run id {id:?} was accepted");
        let err = stderr(&out);
        assert!(err.contains("is not a valid run id"), "{id:?}: {err}");
        assert!(
            !err.contains("run ") || !err.contains("policy strict"),
            "{id:?}: the run started: {err}"
        );
    }
    assert_eq!(
        files(dir.path()),
        before,
        "no file inside or outside the warehouse changed"
    );
}

#[test]
fn a_published_run_id_is_never_run_again_and_published_counts_stay() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "200", "--seed", "5"]);
    stedi_ok(wh, &["run", "--run-id", "X"]);
    let published = report(wh, "X");
    let customers = published["transitions"][0]["rows"].as_u64().unwrap();
    assert_eq!(count(wh, "customer_trusted"), customers);
    let snapshots: BTreeMap<_, _> = files(wh)
        .into_iter()
        .filter(|(p, _)| p.starts_with("accelerometer/trusted") || p.starts_with("_catalog"))
        .collect();

    // The landing data changes, and the operator re-uses the run id.
    let landing = wh.join("customer/landing");
    let first = std::fs::read_dir(&landing)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(first).unwrap();
    let out = stedi(wh, &["run", "--run-id", "X"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "run id `X` is already used: that run finished and was published as catalog version 1"
        ) && !err.contains("run X: policy"),
        "{err}"
    );
    // Refused before any state: the published snapshot and the catalog are untouched.
    let after: BTreeMap<_, _> = files(wh)
        .into_iter()
        .filter(|(p, _)| p.starts_with("accelerometer/trusted") || p.starts_with("_catalog"))
        .collect();
    assert_eq!(after, snapshots);
    assert_eq!(count(wh, "customer_trusted"), customers);
    assert_eq!(report(wh, "X"), published, "the report stays");

    // A Lambda invocation of a state of run X is refused the same way.
    let env = Env::local(wh);
    let request = serde_json::from_value(json!({
        "run_id": "X", "policy": "strict", "transition": "customer_trusted"
    }))
    .unwrap();
    let e = landing_to_trusted::run(&env, &request).unwrap_err();
    assert_eq!(e.name, ErrorName::InvalidInput, "{e}");
    assert_eq!(count(wh, "customer_trusted"), customers);
}

/// Runs the real definition with the quality gate replaced by a stop, so a
/// test can interleave another run before this run's gate; returns the
/// execution's output (the transitions' results).
fn run_without_the_gate(
    env: &Env,
    run_id: &RunId,
    policy: Policy,
) -> Result<Value, stedi::asl::Failure> {
    let mut definition: Value = serde_json::from_str(stedi::runner::DEFINITION).unwrap();
    definition["States"]["QualityGate"] = json!({ "Type": "Succeed" });
    stedi::runner::run(env, &definition, run_id, policy, &|_| {}, None)
}

#[test]
fn a_run_overtaken_by_a_later_run_does_not_publish_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "200", "--seed", "6"]);
    let env = Env::local(wh);
    // A stray lock file from the days of the lock (or a crash) blocks nothing.
    std::fs::create_dir_all(wh.join("_catalog")).unwrap();
    std::fs::write(wh.join("_catalog/catalog.lock"), b"").unwrap();

    // Run A does all its transitions, up to its gate.
    let a = RunId::parse("A").unwrap();
    let output = run_without_the_gate(&env, &a, Policy::Strict).unwrap();
    // Meanwhile run B, started later on changed landing data, publishes.
    let landing = wh.join("accelerometer/landing");
    for object in std::fs::read_dir(&landing).unwrap() {
        let path = object.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        std::fs::write(&path, lines[..lines.len() / 2].join(&b'\n')).unwrap();
    }
    stedi_ok(wh, &["run", "--run-id", "B"]);
    let b_rows = report(wh, "B")["transitions"][1]["rows"].as_u64().unwrap();
    assert_eq!(count(wh, "accelerometer_trusted"), b_rows);

    // A's gate: its checks pass, but the catalog moved since A started.
    let request: GateRequest = serde_json::from_value(json!({
        "run_id": "A", "policy": "strict", "results": output["results"]
    }))
    .unwrap();
    let err = quality_gate::run(&env, &request).unwrap_err();
    assert_eq!(err.name, ErrorName::PublishConflict, "{err}");
    assert!(
        err.cause
            .contains("run A started from catalog version 0, and run B published version 1 since"),
        "{err}"
    );
    // B's tables are still the published ones.
    let catalog = lakehouse::Catalog::load(env.catalog.as_ref()).unwrap();
    assert_eq!(catalog.published_by.as_deref(), Some("B"));
    assert_eq!(count(wh, "accelerometer_trusted"), b_rows);
    // A's report is honest: checks passed, not published, and why.
    let a_report = report(wh, "A");
    assert_eq!(a_report["passed"], true);
    assert_eq!(a_report["publication"]["published"], false);
    assert!(
        a_report["publication"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("not published: run A started from catalog version 0"),
        "{a_report}"
    );
    let summary = stedi_ok(wh, &["report", "A"]);
    assert!(
        summary.contains("quality gate: checks PASSED") && summary.contains("not published: "),
        "{summary}"
    );
    // A is finished: it cannot be run again.
    let out = stedi(wh, &["run", "--run-id", "A"]);
    assert!(
        stderr(&out).contains("run id `A` is already used"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_overtaken_run_stops_at_its_next_state_naming_both_runs() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "100", "--seed", "7"]);
    let env = Env::local(wh);
    // Run A's first state runs, then the process is killed.
    let request = serde_json::from_value(json!({
        "run_id": "A", "policy": "strict", "transition": "customer_trusted"
    }))
    .unwrap();
    landing_to_trusted::run(&env, &request).unwrap();
    stedi_ok(wh, &["run", "--run-id", "B"]);
    let published = files(wh);

    // Resuming A: refused at its next state, before any work.
    let out = stedi(wh, &["run", "--run-id", "A"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("Stedi.PublishConflict")
            && err.contains(
                "run A started from catalog version 0, and run B published version 1 since"
            ),
        "{err}"
    );
    let changed: Vec<_> = files(wh)
        .into_iter()
        .filter(|(p, b)| published.get(p) != Some(b))
        .map(|(p, _)| p)
        .collect();
    // (and its page, which every run that ends gets: this one says why it stopped)
    assert_eq!(
        changed,
        [
            Path::new("_runs/A/facts.json"),
            Path::new("_runs/A/report.html"),
            Path::new("_runs/A/run.json")
        ],
        "only A's record (now finished) and its page changed"
    );
    let page = std::fs::read_to_string(wh.join("_runs/A/report.html")).unwrap();
    assert!(
        page.contains("Stedi.PublishConflict"),
        "the page says why A stopped"
    );
}

#[test]
fn a_run_cut_off_before_its_gate_resumes_under_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "100", "--seed", "8"]);
    let env = Env::local(wh);
    let a = RunId::parse("resumed").unwrap();
    run_without_the_gate(&env, &a, Policy::Rubric).unwrap();
    // The same id again, as a redrive: it overwrites its own parts and publishes.
    let out = stedi_ok(wh, &["run", "--run-id", "resumed", "--policy", "rubric"]);
    assert!(out.contains("published as catalog version 1"), "{out}");
    // Resumed with another policy, it is refused: a run has one policy.
    let b = RunId::parse("other").unwrap();
    run_without_the_gate(&env, &b, Policy::Strict).unwrap();
    let out = stedi(wh, &["run", "--run-id", "other", "--policy", "rubric"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "run other was started with policy strict: resume it with --policy strict, or choose a new run id"
        ),
        "{}",
        stderr(&out)
    );
    // The mistake cost nothing: the run resumes with its own policy.
    let out = stedi_ok(wh, &["run", "--run-id", "other", "--policy", "strict"]);
    assert!(out.contains("published as catalog version 2"), "{out}");
}

#[test]
fn a_second_process_cannot_run_a_run_id_that_is_running() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    // A lease held by a live process (this test's).
    std::fs::create_dir_all(wh.join("_runs/busy")).unwrap();
    let holder = json!({
        "pid": std::process::id(),
        "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        "boot_id": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim(),
        "started_at_ms": 0,
    });
    std::fs::write(wh.join("_runs/busy/lease.json"), holder.to_string()).unwrap();
    let out = stedi(wh, &["run", "--run-id", "busy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "run busy is being run by process {}",
            std::process::id()
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        !wh.join("customer/trusted/busy").exists(),
        "nothing was written"
    );

    // A lease left by a process that is gone is broken.
    let mut gone = holder.clone();
    gone["pid"] = json!(u32::MAX - 1);
    std::fs::write(wh.join("_runs/busy/lease.json"), gone.to_string()).unwrap();
    stedi_ok(wh, &["run", "--run-id", "busy", "--policy", "rubric"]);
    assert!(!wh.join("_runs/busy/lease.json").exists(), "released");
}

#[test]
fn a_run_id_whose_snapshots_exist_is_refused_even_without_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    stedi_ok(wh, &["run", "--run-id", "old", "--policy", "rubric"]);
    stedi_ok(wh, &["run", "--run-id", "new", "--policy", "rubric"]);
    // Someone tidies up old run folders.
    std::fs::remove_dir_all(wh.join("_runs/old")).unwrap();
    let before = files(wh);
    let out = stedi(wh, &["run", "--run-id", "old", "--policy", "rubric"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "run id `old` is already used: it has no run record, but its snapshot objects exist (`"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(files(wh), before, "nothing was written");
}

#[test]
fn a_missing_pseudonym_key_is_not_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    stedi_ok(wh, &["run", "--run-id", "keyed"]);
    std::fs::remove_file(wh.join("_secrets/pseudonym.key")).unwrap();
    let out = stedi(wh, &["run", "--run-id", "unkeyed"]);
    assert_eq!(out.status.code(), Some(1));
    // Not even after a rubric run has published a training table without
    // pseudonyms in between.
    let rubric = stedi(wh, &["run", "--run-id", "rubric", "--policy", "rubric"]);
    assert!(rubric.status.success(), "{}", stderr(&rubric));
    let out = stedi(wh, &["run", "--run-id", "unkeyed2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "Stedi.InvalidInput: the pseudonym key is gone: customerKey values would change; restore it or rotate deliberately"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("the pseudonyms since run keyed were made with it"),
        "{}",
        stderr(&out)
    );
    assert!(
        !wh.join("_secrets/pseudonym.key").exists(),
        "no new key was made"
    );
}

#[test]
fn the_gate_refuses_results_that_are_not_this_runs_sealed_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "100", "--seed", "4"]);
    stedi_ok(wh, &["run", "--run-id", "first", "--policy", "rubric"]);
    let env = Env::local(wh);
    let run = RunId::parse("second").unwrap();
    let output = run_without_the_gate(&env, &run, Policy::Rubric).unwrap();
    let gate = |results: Value| {
        let request: GateRequest = serde_json::from_value(json!({
            "run_id": "second", "policy": "rubric", "results": results
        }))
        .unwrap();
        quality_gate::run(&env, &request).unwrap_err()
    };
    let mut claims = output["results"].clone();
    claims["customer_trusted"]["table"]["rows"] = json!(999);
    let err = gate(claims);
    assert_eq!(err.name, ErrorName::InvalidInput);
    assert!(
        err.cause
            .contains("customer_trusted claims 999 rows, its snapshot holds"),
        "{err}"
    );

    let mut borrowed = output["results"].clone();
    borrowed["customers_curated"]["table"]["location"] = json!("customer/trusted/first/");
    let err = gate(borrowed);
    assert!(
        err.cause
            .contains("customers_curated points at `customer/trusted/first/`"),
        "{err}"
    );

    let mut partial = output["results"].clone();
    partial
        .as_object_mut()
        .unwrap()
        .remove("machine_learning_curated");
    let err = gate(partial);
    assert!(
        err.cause
            .contains("no result for machine_learning_curated; a run publishes all five tables"),
        "{err}"
    );
    let catalog = lakehouse::Catalog::load(env.catalog.as_ref()).unwrap();
    assert_eq!(
        catalog.published_by.as_deref(),
        Some("first"),
        "nothing published"
    );
}

#[test]
fn verify_finds_a_damaged_part_and_reads_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "100", "--seed", "9"]);
    stedi_ok(wh, &["run", "--run-id", "v1", "--policy", "rubric"]);
    let ok = stedi_ok(wh, &["verify"]);
    assert_eq!(
        ok.lines().filter(|l| l.starts_with("ok ")).count(),
        9,
        "{ok}"
    );

    let part = wh.join("customer/trusted/v1/part-00000.parquet");
    let mut bytes = std::fs::read(&part).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&part, &bytes).unwrap();

    let out = stedi(wh, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let damaged: Vec<&str> = text.lines().filter(|l| l.starts_with("DAMAGED")).collect();
    assert_eq!(damaged.len(), 1, "{text}");
    assert!(
        damaged[0].contains("customer/trusted/v1/part-00000.parquet")
            && damaged[0].contains("CRC32C"),
        "{text}"
    );
    let out = stedi(wh, &["query", "SELECT COUNT(*) FROM customer_trusted"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("customer/trusted/v1/part-00000.parquet"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_latest_report_is_the_run_that_started_last_not_the_last_name() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    stedi_ok(wh, &["run", "--run-id", "zzz", "--policy", "rubric"]);
    stedi_ok(wh, &["run", "--run-id", "aaa", "--policy", "rubric"]);
    let latest = stedi_ok(wh, &["report"]);
    assert!(latest.starts_with("run aaa "), "{latest}");
}

/// A key replaced by hand is not a rotation: the run refuses it (every
/// customerKey would change); `stedi rotate-key` is the way to a new key.
#[test]
fn a_pseudonym_key_replaced_by_hand_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    stedi_ok(wh, &["run", "--run-id", "keyed"]);
    let key = wh.join("_secrets/pseudonym.key");
    let old = zones::PseudonymKey::new(&std::fs::read(&key).unwrap()).fingerprint();
    std::fs::write(&key, [5u8; 32]).unwrap();
    let new = zones::PseudonymKey::new(&[5u8; 32]).fingerprint();
    let out = stedi(wh, &["run", "--run-id", "swapped"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "Stedi.InvalidInput: the pseudonym key changed without `stedi rotate-key`: customerKey values would change; restore it or rotate deliberately (`{}` has fingerprint {new}; the pseudonyms since run keyed were made with {old})",
            key.display()
        )),
        "{}",
        stderr(&out)
    );
    // Rotated deliberately, the next run keys with the new key and says so.
    stedi_ok(wh, &["rotate-key"]);
    let summary = stedi_ok(wh, &["run", "--run-id", "rotated"]);
    assert!(
        summary.contains(&format!("(ROTATED from {old}")),
        "{summary}"
    );
}

#[test]
fn a_pseudonym_key_too_short_is_refused_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    std::fs::create_dir_all(wh.join("_secrets")).unwrap();
    std::fs::write(wh.join("_secrets/pseudonym.key"), b"").unwrap();
    let out = stedi(wh, &["run", "--run-id", "k"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the pseudonym key is 0 bytes, fewer than 32"),
        "{}",
        stderr(&out)
    );
    assert!(!wh.join("_catalog").exists(), "nothing was published");
}

#[test]
fn seeding_never_overwrites_landing_data_by_accident() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    let before = files(wh);
    let out = stedi(wh, &["seed", "--customers", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already has landing data") && stderr(&out).contains("pass --force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(files(wh), before);
    stedi_ok(wh, &["seed", "--customers", "10", "--force"]);
    assert_ne!(files(wh), before);
}
