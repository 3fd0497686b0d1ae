//! The Map state: inline, and distributed (ItemReader, ItemSelector,
//! ItemBatcher, MaxConcurrency, tolerated failures, ResultWriter, redrive),
//! against a fake invoker and an in-memory bucket.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lakehouse::Clock;
use serde_json::{Value, json};
use stedi::asl::{
    Event, Failure, Interpreter, Invoker, MapRunCounts, MapRunStatus, ObjectSummary, Storage,
};

use crate::asl::fake;

/// S3 in memory: objects by (bucket, key), and the Map Runs' records.
#[derive(Default)]
struct Bucket {
    objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    records: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Bucket {
    fn with(objects: &[(&str, &str, &str)]) -> Bucket {
        let bucket = Bucket::default();
        for (b, k, text) in objects {
            bucket.put_object(b, k, text.as_bytes()).unwrap();
        }
        bucket
    }

    fn json(&self, bucket: &str, key: &str) -> Value {
        let objects = self.objects.lock().unwrap();
        let bytes = objects
            .get(&(bucket.to_string(), key.to_string()))
            .unwrap_or_else(|| panic!("no s3://{bucket}/{key}"));
        serde_json::from_slice(bytes).unwrap()
    }

    fn keys(&self) -> Vec<String> {
        let objects = self.objects.lock().unwrap();
        objects.keys().map(|(b, k)| format!("{b}/{k}")).collect()
    }
}

impl Storage for Bucket {
    fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectSummary>, Failure> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((_, key), bytes)| ObjectSummary {
                key: key.clone(),
                size: bytes.len() as u64,
                etag: format!("\"etag-{key}\""),
                last_modified_ms: 1_700_000_000_999,
            })
            .collect())
    }

    fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, Failure> {
        let objects = self.objects.lock().unwrap();
        objects
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
            .ok_or_else(|| Failure {
                error: "Stedi.InvalidInput".into(),
                cause: "NoSuchKey".into(),
            })
    }

    fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), Failure> {
        let mut objects = self.objects.lock().unwrap();
        objects.insert((bucket.to_string(), key.to_string()), bytes.to_vec());
        Ok(())
    }

    fn map_run_record(&self, map_run_id: &str) -> Result<Option<Vec<u8>>, Failure> {
        Ok(self.records.lock().unwrap().get(map_run_id).cloned())
    }

    fn save_map_run_record(&self, map_run_id: &str, bytes: &[u8]) -> Result<(), Failure> {
        let mut records = self.records.lock().unwrap();
        records.insert(map_run_id.to_string(), bytes.to_vec());
        Ok(())
    }
}

/// A definition of one Distributed Map state `Each` (fields merged into
/// the state) whose item processor is one Task `Work` on `${W}`, retrying
/// `Stedi.Transient` once.
fn distributed(fields: Value) -> Value {
    let mut state = json!({
        "Type": "Map",
        "ItemProcessor": {
            "ProcessorConfig": { "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD" },
            "StartAt": "Work",
            "States": { "Work": {
                "Type": "Task", "Resource": "${W}",
                "Retry": [{ "ErrorEquals": ["Stedi.Transient"], "IntervalSeconds": 0, "MaxAttempts": 1 }],
                "End": true
            } }
        },
        "End": true
    });
    state
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    json!({ "StartAt": "Each", "States": { "Each": state } })
}

struct Run {
    result: Result<Value, Failure>,
    events: Vec<Event>,
}

/// Executes `definition` as execution `r1`, with `workers` local workers.
fn execute(
    definition: &Value,
    input: Value,
    invoker: &dyn Invoker,
    storage: &dyn Storage,
    workers: usize,
) -> Run {
    let events = Mutex::new(Vec::new());
    let observer = |e: &Event| events.lock().unwrap().push(e.clone());
    let mut interpreter = Interpreter::new(invoker, &observer)
        .with_execution("r1", &input)
        .with_storage(storage);
    interpreter.workers = workers;
    interpreter.retry_time_scale = 0.0;
    interpreter.clock = Clock::Fixed(1_767_225_600_000);
    let result = interpreter.execute(definition, input);
    Run {
        result,
        events: events.into_inner().unwrap(),
    }
}

/// The last Map Run event: its counts and status.
fn last_map_run(events: &[Event]) -> (MapRunCounts, MapRunStatus) {
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::MapRun { counts, status, .. } => Some((*counts, *status)),
            _ => None,
        })
        .expect("a Map Run event")
}

fn counts(total: usize, succeeded: usize, failed: usize) -> MapRunCounts {
    MapRunCounts {
        total,
        pending: total - succeeded - failed,
        running: 0,
        succeeded,
        failed,
    }
}

/// Answers `{"did": <input>}`, failing for the items (or batches) whose
/// input contains one of `bad`.
fn failing_on(
    bad: &'static [&'static str],
) -> impl Fn(&str, &Value, usize) -> Result<Value, Failure> + Sync {
    move |_, input, _| {
        let text = input.to_string();
        match bad.iter().find(|b| text.contains(*b)) {
            Some(b) => Err(Failure {
                error: "Stedi.InvalidInput".into(),
                cause: format!("bad item {b}"),
            }),
            None => Ok(json!({ "did": input })),
        }
    }
}

#[test]
fn batches_by_count_carry_the_batch_input() {
    let definition = distributed(json!({
        "ItemsPath": "$.items",
        "ItemBatcher": { "MaxItemsPerBatch": 2, "BatchInput": { "run.$": "$$.Execution.Name", "p.$": "$.policy" } }
    }));
    let invoker = fake(|_, input, _| Ok(json!(input["Items"].as_array().unwrap().len())));
    let input = json!({ "policy": "strict", "items": ["a", "b", "c", "d", "e"] });
    let run = execute(&definition, input, &invoker, &Bucket::default(), 1);
    assert_eq!(run.result.unwrap(), json!([2, 2, 1]));
    let inputs: Vec<Value> = invoker.calls().into_iter().map(|(_, i)| i).collect();
    let batch_input = json!({ "run": "r1", "p": "strict" });
    assert_eq!(
        inputs,
        [
            json!({ "BatchInput": batch_input, "Items": ["a", "b"] }),
            json!({ "BatchInput": batch_input, "Items": ["c", "d"] }),
            json!({ "BatchInput": batch_input, "Items": ["e"] }),
        ]
    );
    assert_eq!(
        last_map_run(&run.events),
        (counts(5, 5, 0), MapRunStatus::Succeeded),
        "a batch counts as its items"
    );
}

#[test]
fn batches_by_bytes_count_the_whole_input_json() {
    // `{"BatchInput":{"k":"v"},"Items":[]}` is 35 bytes; an item adds its
    // JSON and a comma after the first: [a,bb] 43, [ccc] 40, [dddd,e] 45
    // (exactly the limit), [ff] 39; adding the next item would exceed 45.
    let definition = distributed(json!({
        "ItemBatcher": { "MaxInputBytesPerBatch": 45, "BatchInput": { "k": "v" } }
    }));
    let invoker = fake(|_, input, _| Ok(input["Items"].clone()));
    let items = json!(["a", "bb", "ccc", "dddd", "e", "ff"]);
    let run = execute(&definition, items, &invoker, &Bucket::default(), 1);
    assert_eq!(
        run.result.unwrap(),
        json!([["a", "bb"], ["ccc"], ["dddd", "e"], ["ff"]])
    );
    let sizes: Vec<usize> = invoker
        .calls()
        .iter()
        .map(|(_, i)| i.to_string().len())
        .collect();
    assert_eq!(sizes, [43, 40, 45, 39]);

    // An item that alone makes a batch over the limit fails the state.
    let definition = distributed(json!({
        "ItemBatcher": { "MaxInputBytesPerBatch": 40, "BatchInput": { "k": "v" } }
    }));
    let run = execute(
        &definition,
        json!(["a", "bb", "ccc", "dddd"]),
        &invoker,
        &Bucket::default(),
        1,
    );
    assert_eq!(
        run.result.unwrap_err(),
        Failure {
            error: "States.Runtime".into(),
            cause:
                "map `Each`: item 3 alone makes a batch of 41 bytes, over MaxInputBytesPerBatch 40"
                    .into()
        }
    );
}

#[test]
fn the_item_selector_reads_the_item_its_index_and_the_state_input() {
    let definition = distributed(json!({
        "ItemsPath": "$.items",
        "ItemSelector": { "key.$": "$$.Map.Item.Value.Key", "index.$": "$$.Map.Item.Index", "run.$": "$.run_id" }
    }));
    // Inside a child, `$$.Execution` is the child's own execution.
    let definition = {
        let mut d = definition;
        d["States"]["Each"]["ItemProcessor"]["States"]["Work"]["Parameters"] =
            json!({ "item.$": "$", "child.$": "$$.Execution.Name" });
        d
    };
    let invoker = fake(|_, input, _| Ok(input.clone()));
    let input = json!({ "run_id": "r1", "items": [{ "Key": "x" }, { "Key": "y" }] });
    let output = execute(&definition, input, &invoker, &Bucket::default(), 2)
        .result
        .unwrap();
    let items: Vec<&Value> = output
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["item"])
        .collect();
    assert_eq!(
        items,
        [
            &json!({ "key": "x", "index": 0, "run": "r1" }),
            &json!({ "key": "y", "index": 1, "run": "r1" })
        ]
    );
    let children: Vec<&str> = output
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["child"].as_str().unwrap())
        .collect();
    assert_ne!(children[0], children[1]);
    for child in children {
        let groups: Vec<usize> = child.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{child} is UUID-shaped");
    }
}

/// Counts the children running at once; each waits (up to 2 s) until
/// `target` run together, so the test shows the bound is reached.
struct Gauge {
    running: AtomicUsize,
    most: AtomicUsize,
    target: usize,
}

impl Invoker for Gauge {
    fn invoke(&self, _: &str, input: Value) -> Result<Value, Failure> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let waited = Instant::now();
        while self.most.load(Ordering::SeqCst) < self.target
            && waited.elapsed() < Duration::from_secs(2)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(5));
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(input)
    }
}

#[test]
fn max_concurrency_bounds_the_children_and_is_reached() {
    for (max_concurrency, workers, expected) in [(3, 8, 3), (0, 2, 2), (5, 4, 4)] {
        let definition = distributed(json!({ "MaxConcurrency": max_concurrency }));
        let gauge = Gauge {
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            target: expected,
        };
        let items: Vec<usize> = (0..12).collect();
        let run = execute(
            &definition,
            json!(items),
            &gauge,
            &Bucket::default(),
            workers,
        );
        assert_eq!(run.result.unwrap(), json!(items), "outputs in item order");
        assert_eq!(
            gauge.most.load(Ordering::SeqCst),
            expected,
            "MaxConcurrency {max_concurrency} on {workers} workers"
        );
    }
}

#[test]
fn tolerated_failures_by_count_and_percentage_at_and_just_over_the_threshold() {
    let items = json!(["i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9"]);
    for (tolerance, bad, tolerated) in [
        (
            json!({ "ToleratedFailureCount": 2 }),
            &["i3", "i7"][..],
            true,
        ),
        (
            json!({ "ToleratedFailureCount": 2 }),
            &["i1", "i3", "i7"][..],
            false,
        ),
        (
            json!({ "ToleratedFailurePercentage": 20 }),
            &["i3", "i7"][..],
            true,
        ),
        (
            json!({ "ToleratedFailurePercentage": 20 }),
            &["i1", "i3", "i7"][..],
            false,
        ),
        (json!({}), &["i7"][..], false),
    ] {
        let definition = distributed(tolerance.clone());
        let bad: &'static [&'static str] = Box::leak(bad.to_vec().into_boxed_slice());
        let invoker = fake(failing_on(bad));
        let run = execute(&definition, items.clone(), &invoker, &Bucket::default(), 1);
        let (counted, status) = last_map_run(&run.events);
        if tolerated {
            let outputs = run.result.unwrap();
            assert_eq!(outputs.as_array().unwrap().len(), 8, "{tolerance}");
            assert_eq!(outputs[0], json!({ "did": "i0" }));
            assert_eq!(
                (counted, status),
                (counts(10, 8, 2), MapRunStatus::Succeeded)
            );
        } else {
            let failure = run.result.unwrap_err();
            assert_eq!(
                failure.error, "States.ExceedToleratedFailureThreshold",
                "{tolerance}"
            );
            assert_eq!(status, MapRunStatus::Failed);
            // One worker: the Map Run stops at the failure over the
            // threshold; the items after it are never started.
            let last_bad = bad.last().unwrap();
            let started = last_bad[1..].parse::<usize>().unwrap() + 1;
            assert_eq!(
                counted,
                counts(10, started - bad.len(), bad.len()),
                "{tolerance}"
            );
            assert!(
                failure
                    .cause
                    .contains(&format!("{} of 10 items failed", bad.len())),
                "{}",
                failure.cause
            );
            assert!(
                failure
                    .cause
                    .contains(&format!("Stedi.InvalidInput: bad item {}", bad[0])),
                "{}",
                failure.cause
            );
        }
    }
}

#[test]
fn an_item_that_fails_once_and_is_retried_succeeds() {
    let definition = distributed(json!({}));
    let invoker = fake(|_, input, n| {
        if input == "b" && n == 1 {
            Err(Failure {
                error: "Stedi.Transient".into(),
                cause: "throttled".into(),
            })
        } else {
            Ok(json!({ "did": input }))
        }
    });
    let run = execute(
        &definition,
        json!(["a", "b", "c"]),
        &invoker,
        &Bucket::default(),
        1,
    );
    assert_eq!(
        run.result.unwrap(),
        json!([{ "did": "a" }, { "did": "b" }, { "did": "c" }])
    );
    assert_eq!(invoker.calls().len(), 4, "b ran twice");
    assert_eq!(
        last_map_run(&run.events),
        (counts(3, 3, 0), MapRunStatus::Succeeded)
    );
}

/// The manifest and result files of a Map Run over `a`, `b` (which fails)
/// and `c`, with `fields` merged into the Map state.
fn result_files(fields: Value, workers: usize) -> (Bucket, Result<Value, Failure>) {
    let mut state = json!({
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": { "Bucket": "results", "Prefix.$": "$.prefix" }
        },
        "ItemsPath": "$.items"
    });
    state
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let definition = distributed(state);
    let invoker = fake(failing_on(&["b"]));
    let bucket = Bucket::default();
    let input = json!({ "prefix": "maps", "items": ["a", "b", "c"] });
    let result = execute(&definition, input, &invoker, &bucket, workers).result;
    (bucket, result)
}

// Ids are the first 16 bytes of a SHA-256 of their parts, each preceded by
// its length (8 bytes, little-endian): the Map Run's of the execution's and
// the state's names (`r1`, `Each`), a child's of the Map Run's id and the
// child's input (checked with Python's hashlib).
const MAP_RUN: &str =
    "arn:aws:states:local:000000000000:mapRun:local/Each:38fa6251-037e-70ce-bd79-cba2e2fa6ff3";
const MACHINE: &str = "arn:aws:states:local:000000000000:stateMachine:local/Each";

fn child(input: &str) -> (&'static str, String) {
    let name = match input {
        "\"a\"" => "992e1af1-72b4-6f6b-56e9-df3bd7c5b50b",
        "\"b\"" => "cb8107ec-2615-119f-5511-9e9be30db863",
        _ => "64bd938a-eeed-a89e-9015-705012e3a8db",
    };
    (
        name,
        format!("arn:aws:states:local:000000000000:execution:local/Each:{name}"),
    )
}

fn succeeded(input: &str, output: &str, redrives: u64) -> Value {
    let (name, arn) = child(input);
    json!({
        "ExecutionArn": arn,
        "Input": input,
        "InputDetails": { "Included": true },
        "Name": name,
        "Output": output,
        "OutputDetails": { "Included": true },
        "RedriveCount": redrives,
        "RedriveStatus": "NOT_REDRIVABLE",
        "RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
        "StartDate": "2026-01-01T00:00:00.000Z",
        "StateMachineArn": MACHINE,
        "Status": "SUCCEEDED",
        "StopDate": "2026-01-01T00:00:00.000Z",
    })
}

#[test]
fn the_result_writer_writes_the_manifest_and_result_files_as_aws_does() {
    let (bucket, result) = result_files(json!({ "ToleratedFailureCount": 1 }), 2);
    let id = MAP_RUN.rsplit(':').next().unwrap();
    let manifest_key = format!("maps/{id}/manifest.json");
    assert_eq!(
        result.unwrap(),
        json!({
            "MapRunArn": MAP_RUN,
            "ResultWriterDetails": { "Bucket": "results", "Key": manifest_key }
        })
    );
    let (b_name, b_arn) = child("\"b\"");
    let failed = json!([{
        "Cause": "bad item b",
        "Error": "Stedi.InvalidInput",
        "ExecutionArn": b_arn,
        "Input": "\"b\"",
        "InputDetails": { "Included": true },
        "Name": b_name,
        "RedriveCount": 0,
        "RedriveStatus": "REDRIVABLE_BY_MAP_RUN",
        "StartDate": "2026-01-01T00:00:00.000Z",
        "StateMachineArn": MACHINE,
        "Status": "FAILED",
        "StopDate": "2026-01-01T00:00:00.000Z",
    }]);
    let succeeded_files = json!([
        succeeded("\"a\"", r#"{"did":"a"}"#, 0),
        succeeded("\"c\"", r#"{"did":"c"}"#, 0)
    ]);
    assert_eq!(
        bucket.json("results", &format!("maps/{id}/FAILED_0.json")),
        failed
    );
    assert_eq!(
        bucket.json("results", &format!("maps/{id}/SUCCEEDED_0.json")),
        succeeded_files
    );
    let size = |value: &Value| serde_json::to_vec(value).unwrap().len();
    assert_eq!(
        bucket.json("results", &manifest_key),
        json!({
            "DestinationBucket": "results",
            "MapRunArn": MAP_RUN,
            "ResultFiles": {
                "FAILED": [{ "Key": format!("maps/{id}/FAILED_0.json"), "Size": size(&failed) }],
                "PENDING": [],
                "SUCCEEDED": [{ "Key": format!("maps/{id}/SUCCEEDED_0.json"), "Size": size(&succeeded_files) }]
            }
        })
    );
    assert_eq!(
        bucket.keys().len(),
        3,
        "no PENDING file: {:?}",
        bucket.keys()
    );
}

#[test]
fn a_map_run_over_its_threshold_writes_its_pending_children_and_fails() {
    // One worker: b fails with no failure tolerated, and c never starts.
    let (bucket, result) = result_files(json!({}), 1);
    assert_eq!(
        result.unwrap_err().error,
        "States.ExceedToleratedFailureThreshold"
    );
    let id = MAP_RUN.rsplit(':').next().unwrap();
    assert_eq!(
        bucket.json("results", &format!("maps/{id}/PENDING_0.json")),
        json!([{ "Input": "\"c\"", "InputDetails": { "Included": true }, "Status": "PENDING" }])
    );
    let manifest = bucket.json("results", &format!("maps/{id}/manifest.json"));
    let files: Vec<usize> = ["FAILED", "PENDING", "SUCCEEDED"]
        .iter()
        .map(|s| manifest["ResultFiles"][s].as_array().unwrap().len())
        .collect();
    assert_eq!(files, [1, 1, 1]);
}

#[test]
fn a_catch_on_the_map_takes_the_exceeded_threshold() {
    let mut definition = distributed(json!({
        "ToleratedFailureCount": 1,
        "ResultPath": "$.done",
        "Catch": [{ "ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "ResultPath": "$.error", "Next": "Failed" }]
    }));
    definition["States"]["Each"]
        .as_object_mut()
        .unwrap()
        .remove("End");
    definition["States"]["Each"]["Next"] = json!("Done");
    definition["States"]["Done"] = json!({ "Type": "Succeed" });
    definition["States"]["Failed"] = json!({ "Type": "Pass", "End": true });
    definition["States"]["Each"]["ItemsPath"] = json!("$.items");
    let invoker = fake(failing_on(&["x", "y"]));
    let run = execute(
        &definition,
        json!({ "items": ["x", "a", "y"] }),
        &invoker,
        &Bucket::default(),
        1,
    );
    let output = run.result.unwrap();
    assert_eq!(
        output["error"]["Error"],
        "States.ExceedToleratedFailureThreshold"
    );
    assert!(
        output["error"]["Cause"]
            .as_str()
            .unwrap()
            .contains("2 of 3 items failed, beyond ToleratedFailureCount 1"),
        "{output}"
    );
    assert!(run.events.contains(&Event::Caught {
        state: "Each".into(),
        error: "States.ExceedToleratedFailureThreshold".into(),
        next: "Failed".into()
    }));
    // Tolerated: the state succeeds with the succeeded children's outputs.
    let run = execute(
        &definition,
        json!({ "items": ["x", "a", "b"] }),
        &invoker,
        &Bucket::default(),
        1,
    );
    assert_eq!(
        run.result.unwrap()["done"],
        json!([{ "did": "a" }, { "did": "b" }])
    );
}

#[test]
fn the_item_reader_lists_objects_as_aws_shapes_them() {
    let bucket = Bucket::with(&[
        ("wh", "data/landing/a.json", "12345"),
        ("wh", "data/landing/b.json", "1"),
        ("wh", "data/landing/c.json", "12"),
        ("wh", "data/other/x.json", "1"),
        ("elsewhere", "data/landing/d.json", "1"),
    ]);
    let definition = distributed(json!({
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:listObjectsV2",
            "Parameters": { "Bucket": "wh", "Prefix.$": "$.prefix" },
            "ReaderConfig": { "MaxItems": 2 }
        }
    }));
    let invoker = fake(|_, input, _| Ok(input.clone()));
    let run = execute(
        &definition,
        json!({ "prefix": "data/landing/" }),
        &invoker,
        &bucket,
        1,
    );
    assert_eq!(
        run.result.unwrap(),
        json!([
            { "Etag": "\"etag-data/landing/a.json\"", "Key": "data/landing/a.json", "LastModified": 1_700_000_000, "Size": 5, "StorageClass": "STANDARD" },
            { "Etag": "\"etag-data/landing/b.json\"", "Key": "data/landing/b.json", "LastModified": 1_700_000_000, "Size": 1, "StorageClass": "STANDARD" }
        ])
    );
}

#[test]
fn the_item_reader_reads_a_json_array_and_names_what_is_wrong() {
    let bucket = Bucket::with(&[
        ("wh", "items.json", r#"[{"n": 1}, {"n": 2}]"#),
        ("wh", "object.json", r#"{"n": 1}"#),
        ("wh", "broken.json", "[1,\n 2,,]"),
    ]);
    let reader = |key: &str| {
        distributed(json!({
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "Parameters": { "Bucket": "wh", "Key": key },
                "ReaderConfig": { "InputType": "JSON" }
            }
        }))
    };
    let invoker = fake(|_, input, _| Ok(input["n"].clone()));
    let run = execute(&reader("items.json"), json!({}), &invoker, &bucket, 1);
    assert_eq!(run.result.unwrap(), json!([1, 2]));
    let mut pointer = reader("items.json");
    pointer["States"]["Each"]["ItemReader"]["ReaderConfig"]["ItemsPointer"] = json!("/n");
    let run = execute(&pointer, json!({}), &invoker, &bucket, 1);
    assert_eq!(
        run.result.unwrap_err(),
        Failure {
            error: "States.Runtime".into(),
            cause: "map `Each`: ReaderConfig.ItemsPointer is not supported by the local runner"
                .into()
        }
    );
    for (key, cause) in [
        (
            "object.json",
            "map `Each`: s3://wh/object.json: holds an object, not a JSON array",
        ),
        (
            "broken.json",
            "map `Each`: s3://wh/broken.json: not JSON: expected value at line 2 column 4",
        ),
        (
            "gone.json",
            "map `Each`: reading s3://wh/gone.json: Stedi.InvalidInput: NoSuchKey",
        ),
    ] {
        let run = execute(&reader(key), json!({}), &invoker, &bucket, 1);
        assert_eq!(
            run.result.unwrap_err(),
            Failure {
                error: "States.ItemReaderFailed".into(),
                cause: cause.into()
            }
        );
    }
}

#[test]
fn a_redrive_reruns_only_the_children_that_did_not_succeed() {
    let definition = distributed(json!({
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": { "Bucket": "results", "Prefix": "maps/" }
        }
    }));
    let bucket = Bucket::default();
    let items = json!(["a", "b", "c", "d"]);
    // One worker: a succeeds, b fails, and c and d never start.
    let broken = fake(failing_on(&["b"]));
    let first = execute(&definition, items.clone(), &broken, &bucket, 1);
    assert_eq!(
        first.result.unwrap_err().error,
        "States.ExceedToleratedFailureThreshold"
    );
    assert_eq!(broken.calls().len(), 2);

    // The same execution again (a resumed run): a does not run again.
    let fixed = fake(failing_on(&[]));
    let second = execute(&definition, items.clone(), &fixed, &bucket, 2);
    let details = second.result.unwrap();
    let mut rerun: Vec<Value> = fixed.calls().into_iter().map(|(_, i)| i).collect();
    rerun.sort_by_key(Value::to_string);
    assert_eq!(rerun, [json!("b"), json!("c"), json!("d")]);
    assert_eq!(
        last_map_run(&second.events),
        (counts(4, 4, 0), MapRunStatus::Succeeded)
    );
    let files = bucket.json(
        "results",
        details["ResultWriterDetails"]["Key"].as_str().unwrap(),
    );
    let succeeded = bucket.json(
        "results",
        files["ResultFiles"]["SUCCEEDED"][0]["Key"]
            .as_str()
            .unwrap(),
    );
    let redrives: Vec<(&str, u64)> = succeeded
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["Input"].as_str().unwrap(),
                e["RedriveCount"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        redrives,
        [("\"a\"", 0), ("\"b\"", 1), ("\"c\"", 0), ("\"d\"", 0)],
        "all succeeded children, in item order"
    );
    assert!(
        files["ResultFiles"]["FAILED"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A third time: nothing left to run.
    let idle = fake(failing_on(&[]));
    let third = execute(&definition, items, &idle, &bucket, 2);
    assert_eq!(third.result.unwrap(), details);
    assert!(idle.calls().is_empty());
}

#[test]
fn a_retry_of_the_map_state_is_a_new_map_run() {
    let definition = distributed(json!({
        "Retry": [{ "ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "IntervalSeconds": 0, "MaxAttempts": 1 }]
    }));
    let invoker = fake(|_, input, n| {
        if input == "b" && n < 3 {
            Err(Failure {
                error: "Stedi.InvalidInput".into(),
                cause: "not yet".into(),
            })
        } else {
            Ok(input.clone())
        }
    });
    let run = execute(
        &definition,
        json!(["a", "b", "c"]),
        &invoker,
        &Bucket::default(),
        1,
    );
    assert_eq!(run.result.unwrap(), json!(["a", "b", "c"]));
    let inputs: Vec<Value> = invoker.calls().into_iter().map(|(_, i)| i).collect();
    // One worker: a, then b fails and c never starts; the retry runs a again.
    assert_eq!(inputs, ["a", "b", "a", "b", "c"]);
}

#[test]
fn an_inline_map_fails_with_its_first_failed_iteration() {
    let definition = json!({
        "StartAt": "Each",
        "States": { "Each": {
            "Type": "Map",
            "MaxConcurrency": 1,
            "ItemProcessor": { "StartAt": "Work", "States": { "Work": { "Type": "Task", "Resource": "${W}", "End": true } } },
            "End": true
        } }
    });
    let invoker = fake(failing_on(&["b", "c"]));
    let run = execute(
        &definition,
        json!(["a", "b", "c"]),
        &invoker,
        &Bucket::default(),
        4,
    );
    assert_eq!(
        run.result.unwrap_err(),
        Failure {
            error: "Stedi.InvalidInput".into(),
            cause: "bad item b".into()
        }
    );
    assert_eq!(invoker.calls().len(), 2, "c never starts");
    // An inline iteration's states are in the execution's events.
    let entered = run
        .events
        .iter()
        .filter(|e| matches!(e, Event::Entered { state } if state == "Work"))
        .count();
    assert_eq!(entered, 2);

    let mut distributed_only = definition.clone();
    distributed_only["States"]["Each"]["ToleratedFailureCount"] = json!(1);
    let run = execute(
        &distributed_only,
        json!([]),
        &invoker,
        &Bucket::default(),
        1,
    );
    assert_eq!(
        run.result.unwrap_err().cause,
        "map `Each`: ToleratedFailureCount needs ProcessorConfig.Mode DISTRIBUTED"
    );
}

/// A Distributed Map over the objects under `${WarehousePrefix}in/` of
/// `${WarehouseBucket}`, each child passing its item through, the results
/// written under `${WarehousePrefix}maps`.
fn warehouse_map(bucket: &str) -> Value {
    json!({
        "StartAt": "Each",
        "States": { "Each": {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:listObjectsV2",
                "Parameters": { "Bucket": bucket, "Prefix": "${WarehousePrefix}in/" }
            },
            "ItemProcessor": {
                "ProcessorConfig": { "Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS" },
                "StartAt": "Echo",
                "States": { "Echo": { "Type": "Pass", "End": true } }
            },
            "ResultWriter": {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": { "Bucket": "${WarehouseBucket}", "Prefix": "${WarehousePrefix}maps" }
            },
            "End": true
        } }
    })
}

#[test]
fn the_local_runner_maps_over_its_warehouse_as_a_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let env = lakehouse::Env::local(dir.path());
    env.store.put("in/a.json", b"{}\n").unwrap();
    env.store.put("in/sub/b.json", b"[1]\n").unwrap();
    env.store.put("other/c.json", b"x").unwrap();
    let run_id = zones::RunId::parse("r1").unwrap();
    let run = |definition: &Value| {
        stedi::runner::run(
            &env,
            definition,
            &run_id,
            zones::Policy::Strict,
            &|_| {},
            None,
        )
    };
    let output = run(&warehouse_map("${WarehouseBucket}")).unwrap();
    let read =
        |key: &str| -> Value { serde_json::from_slice(&env.store.get(key).unwrap()).unwrap() };
    assert_eq!(output["ResultWriterDetails"]["Bucket"], "local");
    let manifest = read(output["ResultWriterDetails"]["Key"].as_str().unwrap());
    let entries = read(
        manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
            .as_str()
            .unwrap(),
    );
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut keys = Vec::new();
    for entry in entries.as_array().unwrap() {
        assert!(
            entry["ExecutionArn"]
                .as_str()
                .unwrap()
                .contains(":express:local/Each:")
        );
        let item: Value = serde_json::from_str(entry["Output"].as_str().unwrap()).unwrap();
        let etag = item["Etag"].as_str().unwrap();
        assert!(
            etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
            "{etag}"
        );
        assert!(
            now_s.abs_diff(item["LastModified"].as_u64().unwrap()) < 600,
            "{item}"
        );
        assert_eq!(item["StorageClass"], "STANDARD");
        keys.push((
            item["Key"].as_str().unwrap().to_string(),
            item["Size"].as_u64().unwrap(),
        ));
    }
    assert_eq!(keys, [("in/a.json".into(), 3), ("in/sub/b.json".into(), 4)]);
    // The Map Run's record, for a run of the same id again.
    let id = output["MapRunArn"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    let record = read(&zones::layout::map_run_record_key(&run_id, id));
    assert_eq!(record["Succeeded"], entries);

    let failure = run(&warehouse_map("elsewhere")).unwrap_err();
    assert_eq!(failure.error, "States.ItemReaderFailed");
    assert_eq!(
        failure.cause,
        "map `Each`: listing s3://elsewhere/in/: States.Runtime: s3://elsewhere/in/ is outside the warehouse (s3://local/), the only bucket the local runner has"
    );
}
