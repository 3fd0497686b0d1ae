//! The Distributed Maps of statemachine.asl.json run locally: the landing
//! transitions fanned out over batches of landing objects publish what one
//! invocation of each transition publishes, and a Map Run with a child that
//! fails for good is redriven by running the same run id again, re-running
//! only that child.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Value, json};
use stedi::asl::{Event, Failure, Interpreter, Invoker};
use stedi::runner::{DEFINITION, LocalInvoker, substitute};
use zones::{Dataset, RunId};

use crate::support::{query_csv, report, stedi_binary, stedi_ok, succeeded};

/// Cuts the landing data of `dataset` into `objects` objects of
/// consecutive lines, `<dataset>-00000.json` on.
fn cut_landing(warehouse: &Path, dataset: Dataset, objects: usize) {
    let landing = warehouse.join(dataset.dir()).join("landing");
    let mut files: Vec<_> = std::fs::read_dir(&landing)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let text: Vec<u8> = files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    for file in files {
        std::fs::remove_file(file).unwrap();
    }
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    for n in 0..objects {
        let chunk = &lines[n * lines.len() / objects..(n + 1) * lines.len() / objects];
        let name = format!("{}-{n:05}.json", dataset.dir());
        std::fs::write(landing.join(name), chunk.concat()).unwrap();
    }
}

/// A seeded warehouse whose readings are cut into more objects than one
/// Map child takes (MaxItemsPerBatch): 150 accelerometer objects (3
/// children) and 70 step-trainer objects (2), with a fixed pseudonym key.
fn warehouse(customers: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    stedi_ok(
        dir.path(),
        &["seed", "--customers", customers, "--seed", "4"],
    );
    cut_landing(dir.path(), Dataset::Accelerometer, 150);
    cut_landing(dir.path(), Dataset::StepTrainer, 70);
    std::fs::create_dir_all(dir.path().join("_secrets")).unwrap();
    std::fs::write(dir.path().join("_secrets/pseudonym.key"), [5u8; 32]).unwrap();
    dir
}

fn copy(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The shipped definition with each Distributed Map and its reduce
/// replaced by one Task of the transition, as the pipeline ran before the
/// fan-out: the Map's batch input is the Task's request.
fn single_invocation_definition() -> Value {
    let mut definition: Value = serde_json::from_str(DEFINITION).unwrap();
    let states = definition["States"].as_object_mut().unwrap();
    let maps: Vec<String> = states
        .iter()
        .filter(|(_, s)| s["Type"] == "Map")
        .map(|(n, _)| n.clone())
        .collect();
    for name in maps {
        let map = states[&name].clone();
        let reduce_name = map["Next"].as_str().unwrap().to_string();
        let reduce = states.remove(&reduce_name).unwrap();
        states.insert(
            name,
            json!({
                "Type": "Task",
                "Resource": reduce["Resource"],
                "Parameters": map["ItemBatcher"]["BatchInput"],
                "ResultPath": reduce["ResultPath"],
                "Retry": reduce["Retry"],
                "Catch": reduce["Catch"],
                "Next": reduce["Next"],
            }),
        );
    }
    definition
}

/// Every table the run published, rows sorted, and the report's counts.
fn published(warehouse: &Path, run_id: &str) -> (Vec<(String, Vec<String>)>, Value) {
    let tables = zones::Table::ALL
        .into_iter()
        .filter(|t| t.zone() != zones::Zone::Landing)
        .map(|t| {
            (
                t.to_string(),
                query_csv(warehouse, &format!("SELECT * FROM {t}")),
            )
        })
        .collect();
    let report = report(warehouse, run_id);
    let counts = report["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!([t["table"], t["rows"], t["counts"]]))
        .collect::<Vec<Value>>();
    (tables, json!([counts, report["rubric_comparison"]]))
}

/// The items of each Distributed Map of a run, from its page's facts.
fn map_items(warehouse: &Path, run_id: &str) -> BTreeMap<String, Value> {
    let facts: Value = serde_json::from_slice(
        &std::fs::read(warehouse.join(format!("_runs/{run_id}/facts.json"))).unwrap(),
    )
    .unwrap();
    facts["states"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["items"].is_null())
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["items"].clone()))
        .collect()
}

/// Under both policies, the fanned-out transitions publish, row for row,
/// the tables and counts one invocation of each publishes.
#[test]
fn the_maps_publish_what_one_invocation_of_each_transition_publishes() {
    let base = warehouse("300");
    let scratch = tempfile::tempdir().unwrap();
    let single = scratch.path().join("single.asl.json");
    std::fs::write(&single, single_invocation_definition().to_string()).unwrap();
    for policy in ["strict", "rubric"] {
        let fanned = tempfile::tempdir().unwrap();
        let one = tempfile::tempdir().unwrap();
        copy(base.path(), fanned.path());
        copy(base.path(), one.path());
        stedi_ok(
            fanned.path(),
            &["run", "--run-id", "map", "--policy", policy],
        );
        stedi_ok(
            one.path(),
            &[
                "run",
                "--run-id",
                "one",
                "--policy",
                policy,
                "--definition",
                single.to_str().unwrap(),
            ],
        );
        let (map_tables, map_counts) = published(fanned.path(), "map");
        let (one_tables, one_counts) = published(one.path(), "one");
        for ((table, map), (_, one)) in map_tables.iter().zip(&one_tables) {
            assert!(
                map.len() > 1 || table.contains("quarantine"),
                "{table}: {map:?}"
            );
            assert_eq!(map, one, "{policy}: {table}");
        }
        assert_eq!(map_counts, one_counts, "{policy}");
        // The training table's items: the days the step readings were
        // written in, as the step readings' reduce listed them.
        let days: Vec<Value> = serde_json::from_slice(
            &std::fs::read(
                fanned
                    .path()
                    .join("_map_results/map/machine_learning_curated/buckets.json"),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(!days.is_empty());
        let all = |n: usize| json!({ "total": n, "succeeded": n, "failed": 0 });
        assert_eq!(
            map_items(fanned.path(), "map"),
            BTreeMap::from([
                ("AccelerometerTrusted".into(), all(150)),
                ("MachineLearningCurated".into(), all(days.len())),
                ("StepTrainerTrusted".into(), all(70)),
            ]),
            "{policy}"
        );
        assert!(map_items(one.path(), "one").is_empty());
    }
}

/// The local runner's invoker, failing some Map children: `flaky` (by the
/// key of its batch's first object) fails once with Stedi.Transient,
/// `broken` always with Stedi.Internal. Counts each child's calls.
struct Injecting<'a> {
    inner: &'a LocalInvoker<'a>,
    flaky: &'a str,
    broken: &'a str,
    calls: Mutex<BTreeMap<String, u32>>,
}

impl Invoker for Injecting<'_> {
    fn invoke(&self, resource: &str, input: Value) -> Result<Value, Failure> {
        if let Some(first) = input["Items"][0]["Key"].as_str() {
            let calls = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls.entry(first.to_string()).or_default();
                *n += 1;
                *n
            };
            let injected = |error: &str| Failure {
                error: error.into(),
                cause: format!("injected into the child of {first}"),
            };
            if first == self.flaky && calls == 1 {
                return Err(injected("Stedi.Transient"));
            }
            if first == self.broken {
                return Err(injected("Stedi.Internal"));
            }
        }
        self.inner.invoke(resource, input)
    }
}

/// Through the shipped definition: a child that fails once with a
/// transient error is retried and succeeds; one that fails for good fails
/// the Map Run and the execution. Running the run id again redrives the
/// Map Run: only the failed child runs again (its redrive counted in the
/// result files), and the run publishes what a run without failures does.
#[test]
fn a_failed_child_is_retried_and_a_redrive_reruns_only_the_child_that_failed() {
    let wh = warehouse("200");
    let clean = tempfile::tempdir().unwrap();
    copy(wh.path(), clean.path());
    stedi_ok(clean.path(), &["run", "--run-id", "clean"]);

    // The first execution, with two children failing: the batches start at
    // objects 0, 64 and 128.
    let env = lakehouse::Env::local(wh.path());
    let run_id = RunId::parse("redriven").unwrap();
    let local = LocalInvoker {
        env: &env,
        run_id: &run_id,
        warehouse: env.store.bucket_location(),
        save_requests: None,
        results: Mutex::default(),
    };
    let key = |n: usize| format!("accelerometer/landing/accelerometer-{n:05}.json");
    let (flaky, broken) = (key(64), key(128));
    let injecting = Injecting {
        inner: &local,
        flaky: &flaky,
        broken: &broken,
        calls: Mutex::default(),
    };
    let observer = |_: &Event| {};
    let input = json!({ "policy": "strict" });
    let mut interpreter = Interpreter::new(&injecting, &observer)
        .with_execution(run_id.as_str(), &input)
        .with_storage(&local);
    interpreter.retry_time_scale = 0.0;
    let definition: Value = serde_json::from_str(DEFINITION).unwrap();
    let failure = interpreter
        .execute(&substitute(&local.warehouse, &definition), input)
        .unwrap_err();
    assert_eq!(failure.error, "States.ExceedToleratedFailureThreshold");
    // Items are counted: the broken batch holds the last 22 objects.
    assert!(
        failure.cause.contains("22 of 150 items failed"),
        "{}",
        failure.cause
    );
    assert!(
        failure
            .cause
            .contains("Stedi.Internal: injected into the child of"),
        "{}",
        failure.cause
    );
    assert_eq!(
        injecting.calls.into_inner().unwrap(),
        BTreeMap::from([(key(0), 1), (flaky.clone(), 2), (broken.clone(), 1)]),
        "the flaky child retried once, the broken one not (Stedi.Internal is not retried)"
    );

    // The redrive: the same run id again, through the CLI.
    let out = std::process::Command::new(stedi_binary())
        .arg("--warehouse")
        .arg(wh.path())
        .args(["run", "--run-id", "redriven"])
        .env("STEDI_LOG", "landing_to_trusted=info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    succeeded(out, "the redrive");
    assert!(stderr.contains("resuming"), "{stderr}");
    let judged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("batch judged"))
        .collect();
    let accelerometer: Vec<&&str> = judged
        .iter()
        .filter(|l| l.contains("table=accelerometer_trusted"))
        .collect();
    assert_eq!(
        accelerometer.len(),
        1,
        "only the failed child runs again: {judged:#?}"
    );
    assert!(
        accelerometer[0].contains("items=22"),
        "{}",
        accelerometer[0]
    );
    // The step-trainer Map had not started: both its children run.
    assert_eq!(judged.len(), 1 + 2, "{judged:#?}");

    // The result files as AWS writes them after a redrive: every child
    // succeeded, the one that had failed redriven once.
    let manifest = std::fs::read_dir(
        wh.path()
            .join("_map_results/redriven/accelerometer_trusted"),
    )
    .unwrap()
    .next()
    .unwrap()
    .unwrap()
    .path()
    .join("SUCCEEDED_0.json");
    let children: Vec<Value> = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    let redrives: Vec<(String, u64)> = children
        .iter()
        .map(|c| {
            let input: Value = serde_json::from_str(c["Input"].as_str().unwrap()).unwrap();
            (
                input["Items"][0]["Key"].as_str().unwrap().to_string(),
                c["RedriveCount"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(redrives, [(key(0), 0), (flaky, 0), (broken, 1)]);

    let (redriven, redriven_counts) = published(wh.path(), "redriven");
    let (expected, expected_counts) = published(clean.path(), "clean");
    assert_eq!(redriven, expected);
    assert_eq!(redriven_counts, expected_counts);
}

/// The reduce refuses what it cannot seal, by name: a child's answer for
/// another transition or naming a part outside the snapshot (the answers
/// come back from S3), and a Map Run of no landing object at all.
#[test]
fn the_reduce_refuses_answers_it_cannot_seal() {
    use zones::contract::{BatchResult, PartInfo};
    let dir = tempfile::tempdir().unwrap();
    let env = lakehouse::Env::local(dir.path());
    let store = env.store.as_ref();
    let reduce = |children: Vec<BatchResult>| {
        let table = zones::Table::AccelerometerTrusted;
        let answers: Vec<Value> = children.iter().map(|c| json!(c)).collect();
        map_run_succeeded(store, table, &answers);
        landing_to_trusted::reduce(&env, &reduce_request(table)).unwrap_err()
    };
    let mut child = BatchResult::empty(zones::Table::AccelerometerTrusted);
    child.objects = 1;
    child.table.parts.push(PartInfo {
        name: "../../customer/trusted/r0/part-00000.parquet".into(),
        rows: 1,
        size: 1,
        crc32c: 1,
    });
    let error = reduce(vec![child]);
    assert_eq!(error.name.as_str(), "Stedi.Internal");
    assert!(
        error
            .cause
            .contains("a child names the part `../../customer/trusted/r0/part-00000.parquet`"),
        "{}",
        error.cause
    );
    let error = reduce(vec![BatchResult::empty(zones::Table::StepTrainerTrusted)]);
    assert!(
        error
            .cause
            .contains("a child judged objects for step_trainer_trusted, not accelerometer_trusted"),
        "{}",
        error.cause
    );
    // Children whose items were all left out by the listing rule (or none).
    let error = reduce(vec![BatchResult::empty(zones::Table::AccelerometerTrusted)]);
    assert_eq!(error.name.as_str(), "Stedi.InvalidInput");
    assert!(
        error
            .cause
            .contains("accelerometer landing data: no objects under `accelerometer/landing/`"),
        "{}",
        error.cause
    );
}

/// The training table's reduce refuses a child's part named outside the
/// snapshot, and a reduce of another transition than it serves.
#[test]
fn the_training_tables_reduce_refuses_what_it_cannot_seal() {
    use zones::contract::{JoinResult, PartInfo};
    let dir = tempfile::tempdir().unwrap();
    let env = lakehouse::Env::local(dir.path());
    let mut child = JoinResult::empty();
    child.quarantine.push(PartInfo {
        name: "bucket=1/../../x.parquet".into(),
        rows: 1,
        size: 1,
        crc32c: 1,
    });
    let table = zones::Table::MachineLearningCurated;
    let answer = |child: &JoinResult| map_run_succeeded(env.store.as_ref(), table, &[json!(child)]);
    answer(&child);
    let mut request = reduce_request(table);
    let error = trusted_to_curated::reduce(&env, &request).unwrap_err();
    assert_eq!(error.name.as_str(), "Stedi.Internal");
    assert!(
        error
            .cause
            .contains("a child names the part `bucket=1/../../x.parquet`"),
        "{}",
        error.cause
    );
    // Children that counted fewer step readings than step_trainer_trusted
    // holds lost rows: the table is not sealed.
    let mut child = JoinResult::empty();
    child.table.counts.input = 2;
    child.table.counts.kept = 2;
    answer(&child);
    request.inputs.insert(
        zones::Table::StepTrainerTrusted,
        zones::contract::TableRef {
            table: zones::Table::StepTrainerTrusted,
            location: "step_trainer/trusted/".into(),
            snapshot: "run_id=r0".into(),
            rows: 3,
            columns: vec![],
            manifest_crc32c: None,
        },
    );
    let error = trusted_to_curated::reduce(&env, &request).unwrap_err();
    assert_eq!(error.name.as_str(), "Stedi.Internal");
    assert_eq!(
        error.cause,
        "machine_learning_curated: step_trainer_trusted has 3 rows, but 2 were counted as input: rows were lost"
    );
    assert!(
        env.store
            .list("machine_learning/curated/")
            .unwrap()
            .is_empty(),
        "nothing sealed"
    );
    request.transition = zones::Table::CustomersCurated;
    let error = trusted_to_curated::reduce(&env, &request).unwrap_err();
    assert_eq!(
        error.cause,
        "trusted-to-curated does not produce `customers_curated`"
    );
}

/// Where the Map Run of `table` in run `r1` wrote its results in these tests.
fn map_results_base(table: zones::Table) -> String {
    format!("_map_results/r1/{table}/0f1e/")
}

/// The result files of a Map Run of `table` whose children all succeeded,
/// answering `children` (their answers as JSON), as Step Functions'
/// ResultWriter writes them.
fn map_run_succeeded(store: &dyn lakehouse::Store, table: zones::Table, children: &[Value]) {
    let base = map_results_base(table);
    let entries: Vec<Value> = children
        .iter()
        .map(|c| json!({ "Name": "c", "Status": "SUCCEEDED", "Output": serde_json::to_string(c).unwrap() }))
        .collect();
    let bytes = serde_json::to_vec(&entries).unwrap();
    store
        .put(&format!("{base}SUCCEEDED_0.json"), &bytes)
        .unwrap();
    let manifest = json!({
        "DestinationBucket": "local",
        "MapRunArn": "arn",
        "ResultFiles": { "SUCCEEDED": [{ "Key": format!("{base}SUCCEEDED_0.json"), "Size": bytes.len() }] },
    });
    store
        .put(
            &format!("{base}manifest.json"),
            manifest.to_string().as_bytes(),
        )
        .unwrap();
}

/// The reduce's request after the Map Run of [`map_run_succeeded`].
fn reduce_request(table: zones::Table) -> zones::contract::ReduceRequest {
    use zones::contract::{MapRunOutput, ReduceRequest, ResultWriterDetails};
    ReduceRequest {
        run_id: RunId::parse("r1").unwrap(),
        policy: zones::Policy::Rubric,
        transition: table,
        map_run: MapRunOutput {
            map_run_arn: "arn".into(),
            result_writer_details: ResultWriterDetails {
                bucket: "local".into(),
                key: format!("{}manifest.json", map_results_base(table)),
            },
        },
        inputs: Default::default(),
    }
}
