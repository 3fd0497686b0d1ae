//! A Map Run's result files, written here as Step Functions writes them,
//! read back by `map_results::succeeded_outputs`.

use lakehouse::map_results::{MapRunResults, succeeded_outputs};
use lakehouse::{Error, LocalStore, Store};
use serde_json::{Value, json};

const BASE: &str = "_map_results/r1/accelerometer_trusted/0f1e/";

fn child(name: &str, status: &str, output: Option<Value>, start: &str, stop: &str) -> Value {
    let mut entry = json!({
        "ExecutionArn": format!("arn:aws:states:local:000000000000:execution:m/Map:{name}"),
        "Input": "{}",
        "InputDetails": { "Included": true },
        "Name": name,
        "StartDate": start,
        "StopDate": stop,
        "Status": status,
    });
    if let Some(output) = output {
        entry["Output"] = output.to_string().into();
        entry["OutputDetails"] = json!({ "Included": true });
    }
    entry
}

/// Writes `files` (name, children) and the manifest naming them by status.
fn write(store: &LocalStore, bucket: &str, files: &[(&str, Vec<Value>)]) -> String {
    let mut listed = json!({ "FAILED": [], "PENDING": [], "SUCCEEDED": [] });
    for (name, children) in files {
        let key = format!("{BASE}{name}");
        let bytes = serde_json::to_vec(children).unwrap();
        store.put(&key, &bytes).unwrap();
        let status = name.split('_').next().unwrap();
        listed[status]
            .as_array_mut()
            .unwrap()
            .push(json!({ "Key": key, "Size": bytes.len() }));
    }
    let manifest = json!({
        "DestinationBucket": bucket,
        "MapRunArn": "arn:aws:states:local:000000000000:mapRun:m/Map:0f1e",
        "ResultFiles": listed,
    });
    let key = format!("{BASE}manifest.json");
    store.put(&key, manifest.to_string().as_bytes()).unwrap();
    key
}

#[test]
fn the_outputs_of_a_map_run_are_read_in_order_with_its_span() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let manifest = write(
        &store,
        "local",
        &[
            (
                "SUCCEEDED_0.json",
                vec![
                    child(
                        "a",
                        "SUCCEEDED",
                        Some(json!({"n": 1})),
                        "2026-01-01T00:00:01.000Z",
                        "2026-01-01T00:00:03.500Z",
                    ),
                    child(
                        "b",
                        "SUCCEEDED",
                        Some(json!({"n": 2})),
                        "2026-01-01T00:00:00.250Z",
                        "2026-01-01T00:00:02.000Z",
                    ),
                ],
            ),
            (
                "SUCCEEDED_1.json",
                vec![child(
                    "c",
                    "SUCCEEDED",
                    Some(json!({"n": 3})),
                    "2026-01-01T00:00:02.000Z",
                    "2026-01-01T00:00:04.000Z",
                )],
            ),
        ],
    );
    let results: MapRunResults<Value> = succeeded_outputs(&store, "local", &manifest).unwrap();
    assert_eq!(
        results,
        MapRunResults {
            outputs: vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})],
            seconds: Some(3.75),
        }
    );
    // A Map Run of no child: no output, no span.
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let manifest = write(&store, "local", &[]);
    let results: MapRunResults<Value> = succeeded_outputs(&store, "local", &manifest).unwrap();
    assert_eq!((results.outputs.len(), results.seconds), (0, None));
}

#[test]
fn a_map_run_with_failed_or_pending_children_is_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let done = child(
        "a",
        "SUCCEEDED",
        Some(json!(1)),
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:01Z",
    );
    let failed = child(
        "b",
        "FAILED",
        None,
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:01Z",
    );
    let pending =
        json!({ "Input": "{}", "InputDetails": { "Included": true }, "Status": "PENDING" });
    let manifest = write(
        &store,
        "local",
        &[
            ("SUCCEEDED_0.json", vec![done]),
            ("FAILED_0.json", vec![failed]),
            ("PENDING_0.json", vec![pending.clone(), pending]),
        ],
    );
    match succeeded_outputs::<Value>(&store, "local", &manifest) {
        Err(
            e @ Error::MapRunIncomplete {
                failed: 1,
                pending: 2,
                ..
            },
        ) => {
            assert_eq!(e.name().as_str(), "Stedi.InvalidInput");
            assert!(
                e.to_string()
                    .contains("1 child executions failed and 2 never ran"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn result_files_that_are_not_what_step_functions_writes_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let ok = |n| {
        child(
            "a",
            "SUCCEEDED",
            Some(json!(n)),
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:01Z",
        )
    };
    let damaged = |children: Vec<Value>| {
        let manifest = write(&store, "local", &[("SUCCEEDED_0.json", children)]);
        match succeeded_outputs::<u64>(&store, "local", &manifest) {
            Err(Error::Damaged { key, what }) => {
                assert!(key.ends_with("SUCCEEDED_0.json"), "{key}");
                what
            }
            other => panic!("{other:?}"),
        }
    };
    assert!(
        damaged(vec![ok(json!("seven"))])
            .contains("the output of child execution `a` is not what the Map's Task answers")
    );
    assert!(damaged(vec![child("a", "SUCCEEDED", None, "", "")]).contains("has no output"));
    assert!(
        damaged(vec![child("a", "FAILED", Some(json!(1)), "", "")])
            .contains("listed as FAILED in a SUCCEEDED file")
    );
    // A file that changed after the manifest was written.
    let manifest = write(&store, "local", &[("SUCCEEDED_0.json", vec![ok(json!(1))])]);
    store
        .put(&format!("{BASE}SUCCEEDED_0.json"), b"[]")
        .unwrap();
    match succeeded_outputs::<u64>(&store, "local", &manifest) {
        Err(Error::Damaged { what, .. }) => assert!(
            what.starts_with("2 bytes, the Map Run's manifest says"),
            "{what}"
        ),
        other => panic!("{other:?}"),
    }
    // A manifest in another bucket than the warehouse's, or missing.
    match succeeded_outputs::<u64>(&store, "elsewhere", &manifest) {
        Err(Error::InvalidKey { key, reason }) => {
            assert_eq!(key, format!("s3://elsewhere/{manifest}"));
            assert_eq!(reason, "it is outside the warehouse");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        succeeded_outputs::<u64>(&store, "local", "_map_results/r1/x/manifest.json"),
        Err(Error::NotFound { .. })
    ));
    // Result files the manifest places in another bucket.
    let manifest = write(
        &store,
        "elsewhere",
        &[("SUCCEEDED_0.json", vec![ok(json!(1))])],
    );
    assert!(matches!(
        succeeded_outputs::<u64>(&store, "local", &manifest),
        Err(Error::InvalidKey { .. })
    ));
}
