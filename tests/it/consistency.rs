//! Tidy-style checks that the state machine, the runner, the Lambda crates,
//! the error names and the zones crate's purity agree.

use std::collections::BTreeSet;

use serde_json::Value;
use stedi::runner::{DEFINITION, RESOURCES};
use zones::{ErrorName, Table};

use crate::support::workspace;

fn definition() -> Value {
    let text = std::fs::read_to_string(workspace().join("statemachine.asl.json")).unwrap();
    assert_eq!(
        text, DEFINITION,
        "the runner executes the file in the repository"
    );
    serde_json::from_str(&text).unwrap()
}

/// One state of a definition, at any depth.
struct Nested<'d> {
    /// `Name`, or `Map/Name` for a state of a Map's ItemProcessor (or of a
    /// Parallel's branch).
    path: String,
    state: &'d Value,
    /// The States object the state is in: where its Next and Catch lead.
    siblings: &'d serde_json::Map<String, Value>,
    /// In a Map's ItemProcessor: the state runs in a child of the Map.
    in_item_processor: bool,
}

/// Every state of `definition`, the states of Maps' ItemProcessors and
/// Parallels' branches included.
fn states(definition: &Value) -> Vec<Nested<'_>> {
    fn walk<'d>(machine: &'d Value, prefix: &str, in_map: bool, out: &mut Vec<Nested<'d>>) {
        let siblings = machine["States"].as_object().expect("a States object");
        for (name, state) in siblings {
            let path = format!("{prefix}{name}");
            out.push(Nested {
                path: path.clone(),
                state,
                siblings,
                in_item_processor: in_map,
            });
            let inner = format!("{path}/");
            if let Some(processor) = state.get("ItemProcessor").or(state.get("Iterator")) {
                walk(processor, &inner, true, out);
            }
            for branch in state["Branches"].as_array().into_iter().flatten() {
                walk(branch, &inner, in_map, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(definition, "", false, &mut out);
    out
}

fn tasks(definition: &Value) -> Vec<(String, &Value)> {
    states(definition)
        .into_iter()
        .filter(|s| s.state["Type"] == "Task")
        .map(|s| (s.path, s.state))
        .collect()
}

#[test]
fn states_are_walked_into_map_processors_and_parallel_branches() {
    let definition = serde_json::json!({
        "StartAt": "A",
        "States": {
            "A": { "Type": "Map", "ItemProcessor": { "StartAt": "B", "States": {
                "B": { "Type": "Parallel", "Branches": [
                    { "StartAt": "C", "States": { "C": { "Type": "Task" } } }
                ] }
            } } },
            "D": { "Type": "Task" }
        }
    });
    let walked: Vec<(String, bool)> = states(&definition)
        .into_iter()
        .map(|s| (s.path, s.in_item_processor))
        .collect();
    assert_eq!(
        walked,
        [
            ("A".into(), false),
            ("A/B".into(), true),
            ("A/B/C".into(), true),
            ("D".into(), false)
        ]
    );
    let tasks: Vec<String> = tasks(&definition).into_iter().map(|(p, _)| p).collect();
    assert_eq!(tasks, ["A/B/C", "D"]);
}

/// Every state leads only to states of its own States object; every Task,
/// at any depth, retries the same errors; and a child of a Map never
/// swallows an error: its Catch may only lead to a Fail state, so that the
/// child fails and its Map Run counts it.
#[test]
fn transitions_retries_and_catches_agree_at_every_depth() {
    let definition = definition();
    let all = states(&definition);
    let mut retried: BTreeSet<Vec<&str>> = BTreeSet::new();
    for Nested {
        path,
        state,
        siblings,
        in_item_processor,
    } in &all
    {
        let catches = state["Catch"].as_array().into_iter().flatten();
        let targets = catches
            .clone()
            .map(|c| &c["Next"])
            .chain(
                state["Choices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| &c["Next"]),
            )
            .chain([&state["Next"], &state["Default"]])
            .filter_map(Value::as_str);
        for target in targets {
            assert!(
                siblings.contains_key(target),
                "{path} leads to {target}, not a state beside it"
            );
        }
        if *in_item_processor {
            for catch in catches {
                let next = catch["Next"].as_str().unwrap();
                assert_eq!(siblings[next]["Type"], "Fail", "{path} catches into {next}");
            }
        }
        if state["Type"] == "Task" {
            retried.insert(
                state["Retry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|r| r["ErrorEquals"].as_array().unwrap())
                    .map(|e| e.as_str().unwrap())
                    .collect(),
            );
        }
    }
    assert_eq!(
        retried.len(),
        1,
        "every Task retries the same errors: {retried:?}"
    );
    assert!(
        retried
            .first()
            .unwrap()
            .contains(&ErrorName::Transient.as_str())
    );
}

#[test]
fn every_task_resource_has_a_handler_crate() {
    let definition = definition();
    let known: BTreeSet<&str> = RESOURCES.iter().map(|(r, _)| *r).collect();
    for (name, state) in tasks(&definition) {
        let resource = state["Resource"].as_str().unwrap();
        assert!(
            known.contains(resource),
            "state {name}: resource {resource} has no local handler"
        );
    }
    for (resource, krate) in RESOURCES {
        let main =
            std::fs::read_to_string(workspace().join("crates").join(krate).join("src/main.rs"))
                .unwrap_or_else(|_| {
                    panic!("{resource} is served by crates/{krate}, which has no src/main.rs")
                });
        let ident = krate.replace('-', "_");
        // Each function serves more than one request (a transition, a Map
        // child, a reduce; the quality gate also Vacuum, landing-to-trusted
        // also Erase): their entry point, `handle`, tells them apart.
        assert!(
            main.contains(&format!("lakehouse::lambda::serve({ident}::handle)")),
            "crates/{krate}/src/main.rs"
        );
    }
}

#[test]
fn tasks_run_the_transitions_in_design_order_then_the_gate() {
    let definition = definition();
    // Follow Next from StartAt.
    let mut order = Vec::new();
    let mut name = definition["StartAt"].as_str().unwrap().to_string();
    loop {
        let state = &definition["States"][&name];
        order.push((name.clone(), state.clone()));
        match state["Next"].as_str() {
            Some(next) => name = next.to_string(),
            None => break,
        }
    }
    let transitions: Vec<Table> = order
        .iter()
        .filter_map(|(_, s)| s["Parameters"]["transition"].as_str())
        .map(|t| Table::from_name(t).unwrap())
        .collect();
    assert_eq!(transitions, Table::PRODUCED);
    // The gate comes after every transition; after the publish, Erase
    // (served by landing-to-trusted, told apart by `erase: true`), then
    // Vacuum, last.
    let position = |wanted: &str| order.iter().position(|(n, _)| n == wanted).unwrap();
    let gate = position("QualityGate");
    assert_eq!(order[gate].1["Resource"], "${QualityGateFunctionArn}");
    assert!(
        order[..gate]
            .iter()
            .filter(|(_, s)| s["Parameters"]["transition"].is_string())
            .count()
            == Table::PRODUCED.len()
    );
    let vacuum = &order[position("Vacuum")].1;
    assert_eq!(position("Vacuum"), gate + 2);
    assert_eq!(vacuum["Resource"], "${QualityGateFunctionArn}");
    // Last, the erasure's verdict: caught at Erase so that Vacuum still
    // runs, it fails the execution after Vacuum with the error it caught.
    let (last, choice) = order.last().unwrap();
    assert_eq!(
        (last.as_str(), position(last)),
        ("ErasureComplete", gate + 3)
    );
    assert_eq!(choice["Type"], "Choice");
    let failed = &definition["States"][choice["Choices"][0]["Next"].as_str().unwrap()];
    assert_eq!(
        (
            &choice["Choices"][0]["Variable"],
            &choice["Choices"][0]["IsPresent"]
        ),
        (&Value::from("$.erasure_error"), &Value::from(true))
    );
    assert_eq!(failed["Type"], "Fail");
    assert_eq!(failed["ErrorPath"], "$.erasure_error.Error");
    assert_eq!(
        definition["States"][choice["Default"].as_str().unwrap()]["Type"],
        "Succeed"
    );
    // What the state sends is a vacuum request of the function's contract.
    let request: zones::contract::GateFunctionRequest = serde_json::from_value(serde_json::json!({
        "run_id": "r1",
        "vacuum": vacuum["Parameters"]["vacuum"],
    }))
    .unwrap();
    let zones::contract::GateFunctionRequest::Vacuum(request) = request else {
        panic!("the Vacuum state's parameters are not a vacuum request");
    };
    assert_eq!(request.vacuum, zones::contract::VacuumOptions::default());
    let (erase, state) = &order[gate + 1];
    assert_eq!(erase, "Erase");
    assert_eq!(state["Resource"], "${LandingToTrustedFunctionArn}");
    assert_eq!(state["Parameters"]["erase"], true);
    assert_eq!(state["Parameters"]["results.$"], "$.results");
    assert_eq!(
        state["Catch"],
        serde_json::json!([{ "ErrorEquals": [ErrorName::InvalidInput.as_str()], "ResultPath": "$.erasure_error", "Next": "Vacuum" }]),
        "Erase's verdict waits for Vacuum"
    );
    for (name, state) in &order {
        let produced = state["Parameters"]["transition"]
            .as_str()
            .and_then(Table::from_name);
        if let Some(table) = produced {
            let served_by_landing = landing_to_trusted::PRODUCES.contains(&table);
            let expected = if served_by_landing {
                "${LandingToTrustedFunctionArn}"
            } else {
                "${TrustedToCuratedFunctionArn}"
            };
            assert_eq!(state["Resource"], expected, "{name}");
        }
        // Tasks route the verdicts on the data to the failure state and let
        // everything else fail the Task, where a redrive resumes. Vacuum
        // runs after the publish: nothing it meets is a verdict on the data,
        // so it catches nothing (a redrive vacuums again).
        if name == "Erase" {
            continue;
        } else if name == "Vacuum" {
            assert!(state["Catch"].is_null(), "Vacuum catches nothing");
            assert!(
                state["Retry"][0]["ErrorEquals"]
                    .as_array()
                    .unwrap()
                    .contains(&Value::from(ErrorName::Transient.as_str()))
            );
        } else if state["Type"] == "Task" {
            let caught: Vec<&str> = state["Catch"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["Next"] == "RunFailed")
                .flat_map(|c| c["ErrorEquals"].as_array().unwrap())
                .map(|e| e.as_str().unwrap())
                .collect();
            assert_eq!(
                caught,
                [
                    ErrorName::InvalidInput.as_str(),
                    ErrorName::QualityGateFailed.as_str(),
                    ErrorName::PublishConflict.as_str()
                ],
                "{name}"
            );
        }
    }
}

/// The Distributed Maps of the definition fan out the transitions that
/// read most: each landing transition of readings lists its dataset's
/// landing prefix in the warehouse's bucket, and the training table reads
/// the time buckets the step readings' reduce wrote (`zones::layout`);
/// each batches its items with the transition's request as BatchInput,
/// runs one Task of the function that serves the transition, writes its
/// results under the run's `_map_results/` folder of the transition, and
/// hands them to its reduce, the next state, served by the same function,
/// which produces the transition. A Map neither retries nor catches: its
/// child retries, and a failed Map Run is redriven.
#[test]
fn maps_fan_out_the_transitions_and_hand_their_results_to_a_reduce() {
    use stedi::runner::{WAREHOUSE_BUCKET, WAREHOUSE_PREFIX};
    let definition = definition();
    let top = definition["States"].as_object().unwrap();
    let maps: Vec<(&String, &Value)> = top.iter().filter(|(_, s)| s["Type"] == "Map").collect();
    // The Maps' settings: the template's parameters, made numbers by the
    // Start state.
    assert_eq!(
        definition["States"]["Start"]["Parameters"]["map"],
        serde_json::json!({
            "max_concurrency.$": "States.StringToJson('${MapMaxConcurrency}')",
            "items_per_batch.$": "States.StringToJson('${MapItemsPerBatch}')"
        })
    );
    let mut fanned = Vec::new();
    for (name, map) in maps {
        let batch_input = &map["ItemBatcher"]["BatchInput"];
        let table = Table::from_name(batch_input["transition"].as_str().unwrap()).unwrap();
        fanned.push(table);
        let processor = &map["ItemProcessor"];
        assert_eq!(
            processor["ProcessorConfig"],
            serde_json::json!({ "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD" }),
            "{name}"
        );
        // A key or prefix the definition builds from the run id, as layout has it.
        let per_run = |text: &str| {
            format!(
                "States.Format('{WAREHOUSE_PREFIX}{}', $.run_id)",
                text.replace("RUN", "{}")
            )
        };
        let run: zones::RunId = "RUN".parse().unwrap();
        let (reader, function) = match zones::Dataset::ALL
            .into_iter()
            .find(|d| d.dir() == table.dir() && landing_to_trusted::PRODUCES.contains(&table))
        {
            Some(dataset) => (
                serde_json::json!({
                    "Resource": "arn:aws:states:::s3:listObjectsV2",
                    "Parameters": {
                        "Bucket": WAREHOUSE_BUCKET,
                        "Prefix": format!("{WAREHOUSE_PREFIX}{}", zones::layout::landing_prefix(dataset)),
                    }
                }),
                "${LandingToTrustedFunctionArn}",
            ),
            None => (
                serde_json::json!({
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": { "InputType": "JSON" },
                    "Parameters": {
                        "Bucket": WAREHOUSE_BUCKET,
                        "Key.$": per_run(&zones::layout::time_buckets_key(&run)),
                    }
                }),
                "${TrustedToCuratedFunctionArn}",
            ),
        };
        assert_eq!(map["ItemReader"], reader, "{name}");
        // Concurrency: the template's parameter, through the Start state
        // (`States.StringToJson` of its substitution); so is the batch size
        // of the Maps over landing objects (a training-table child takes
        // days, a unit of its own).
        assert_eq!(map["MaxConcurrencyPath"], "$.map.max_concurrency", "{name}");
        if function == "${LandingToTrustedFunctionArn}" {
            assert_eq!(
                map["ItemBatcher"]["MaxItemsPerBatchPath"], "$.map.items_per_batch",
                "{name}"
            );
        } else {
            assert!(
                map["ItemBatcher"]["MaxItemsPerBatch"].as_u64().unwrap() > 0,
                "{name}"
            );
        }
        // The batch input is the request a Task of the transition sends:
        // the run, the policy, and the inputs the transition reads.
        let keys: BTreeSet<&str> = batch_input
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "run_id.$",
                "policy.$",
                "transition",
                "inputs",
                "rubric_inputs"
            ]),
            "{name}"
        );
        let child_states = processor["States"].as_object().unwrap();
        assert_eq!(child_states.len(), 1, "{name}: one Task per child");
        let (_, child) = child_states.iter().next().unwrap();
        assert_eq!(child["Type"], "Task");
        assert_eq!(child["Resource"], function, "{name}");
        // Results under the run's folder of the transition (Step Functions
        // adds `/<map run id>/`).
        let prefix = zones::layout::map_results_table_prefix(&run, table);
        assert_eq!(
            map["ResultWriter"],
            serde_json::json!({
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {
                    "Bucket": WAREHOUSE_BUCKET,
                    "Prefix.$": per_run(prefix.trim_end_matches('/')),
                }
            }),
            "{name}"
        );
        assert!(map["Retry"].is_null() && map["Catch"].is_null(), "{name}");
        // The next state is the reduce: the same function, told the Map's output.
        let reduce = &top[map["Next"].as_str().unwrap()];
        assert_eq!(reduce["Type"], "Task");
        assert_eq!(reduce["Resource"], child["Resource"]);
        assert_eq!(reduce["Parameters"]["transition"], table.name());
        assert_eq!(reduce["Parameters"]["map_run.$"], map["ResultPath"]);
        // The training table's reduce checks its counts against
        // step_trainer_trusted: the table its children were given.
        let checked = &reduce["Parameters"]["inputs"];
        if table == Table::MachineLearningCurated {
            let key = "step_trainer_trusted.$";
            assert_eq!(checked[key], batch_input["inputs"][key], "{name}");
        } else {
            assert!(checked.is_null(), "{name}");
        }
        assert_eq!(reduce["ResultPath"], format!("$.results.{table}"));
        assert!(
            !map["ResultPath"].as_str().unwrap().starts_with("$.results"),
            "{name}: the gate's request takes $.results, transition results only"
        );
    }
    assert_eq!(
        fanned,
        [
            Table::AccelerometerTrusted,
            Table::MachineLearningCurated,
            Table::StepTrainerTrusted
        ]
    );
}

#[test]
fn error_names_in_retry_and_catch_exist_in_the_code() {
    let definition = definition();
    let known: BTreeSet<&str> = ErrorName::ALL.iter().map(|e| e.as_str()).collect();
    let mut seen = 0;
    for Nested {
        path: name, state, ..
    } in states(&definition)
    {
        for rule in state["Retry"]
            .as_array()
            .into_iter()
            .chain(state["Catch"].as_array())
            .flatten()
        {
            for error in rule["ErrorEquals"].as_array().unwrap() {
                let error = error.as_str().unwrap();
                if error.starts_with("Stedi.") {
                    assert!(known.contains(error), "{name}: {error} is not an ErrorName");
                    seen += 1;
                } else {
                    assert!(
                        error.starts_with("States.") || error.starts_with("Lambda."),
                        "{name}: {error}"
                    );
                }
            }
        }
    }
    assert!(seen > 0, "the definition retries on Stedi.Transient");
}

#[test]
fn zones_does_no_io_and_knows_no_aws() {
    no_io_in("crates/zones");
}

#[test]
fn the_report_page_does_no_io() {
    no_io_in("crates/report-html");
}

fn no_io_in(krate: &str) {
    let root = workspace().join(krate);
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    for forbidden in ["aws", "tokio", "lambda", "lakehouse", "reqwest"] {
        assert!(!deps.contains(forbidden), "{krate} depends on {forbidden}");
    }
    let files = sources(krate);
    assert!(
        krate != "crates/zones" || files.iter().any(|(p, _)| p.ends_with("landing/flat.rs")),
        "submodules are walked"
    );
    for (path, source) in files {
        for forbidden in [
            "std::fs",
            "std::env",
            "std::net",
            "std::process",
            "std::time::SystemTime",
            "File::",
        ] {
            assert!(
                !source.contains(forbidden),
                "{} uses {forbidden}",
                path.display()
            );
        }
    }
}

/// Every source file of `krate`, those of submodules (`src/landing/`) included.
fn sources(krate: &str) -> Vec<(std::path::PathBuf, String)> {
    let mut files = Vec::new();
    let mut folders = vec![workspace().join(krate).join("src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let source = std::fs::read_to_string(&path).unwrap();
                files.push((path, source));
            }
        }
    }
    files
}

/// The I/O crate decides nothing about transitions: what a transition
/// writes and how its rows are counted are decided beside the transitions
/// (`zones`, and the transition crates), and its snapshot writer takes
/// plain values, never a request.
#[test]
fn the_io_crate_takes_no_transition_decision() {
    for (path, source) in sources("crates/lakehouse") {
        // `zones::transitions::...`, or `transitions::...` after any import of it.
        assert!(
            !source.contains("transitions::"),
            "{} uses zones::transitions",
            path.display()
        );
        if path.ends_with("tables.rs") {
            assert!(
                !source.contains("Request"),
                "the snapshot writer takes a request"
            );
        }
    }
}

/// One line of `infra/template.yaml` that is neither blank nor a comment.
struct Line {
    indent: usize,
    text: String,
}

/// The SAM template as lines. It is read as text: CloudFormation's short-form
/// tags (`!Sub`, `!GetAtt`) are not plain YAML, and the checks below need
/// only the indentation of a block mapping.
fn template_lines() -> Vec<Line> {
    let text = std::fs::read_to_string(workspace().join("infra/template.yaml")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| Line {
            indent: l.len() - l.trim_start().len(),
            text: l.trim().to_string(),
        })
        .collect()
}

/// The `key: value` entries of a block mapping, each with the lines nested
/// under it. Values lose a trailing comment and their quotes.
fn entries(block: &[Line]) -> Vec<(&str, &str, &[Line])> {
    let Some(indent) = block.iter().map(|l| l.indent).min() else {
        return Vec::new();
    };
    let starts: Vec<usize> = (0..block.len())
        .filter(|&i| block[i].indent == indent && !block[i].text.starts_with('-'))
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let end = starts.get(n + 1).copied().unwrap_or(block.len());
            let (key, value) = block[i]
                .text
                .split_once(':')
                .unwrap_or((&block[i].text, ""));
            let value = value.split(" #").next().unwrap().trim();
            (
                key.trim(),
                value.trim_matches(['"', '\'']),
                &block[i + 1..end],
            )
        })
        .collect()
}

fn entry<'a>(block: &'a [Line], key: &str) -> Option<(&'a str, &'a [Line])> {
    entries(block)
        .into_iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, value, nested)| (value, nested))
}

/// `(logical id, type, lines of the resource)` for each resource of the template.
fn template_resources(lines: &[Line]) -> Vec<(&str, &str, &[Line])> {
    let (_, resources) = entry(lines, "Resources").expect("the template has Resources");
    entries(resources)
        .into_iter()
        .map(|(name, _, body)| {
            let (ty, _) = entry(body, "Type").unwrap_or_else(|| panic!("{name} has no Type"));
            (name, ty, body)
        })
        .collect()
}

/// The literal variables of the template's `Globals: Function: Environment:
/// Variables:` (a value built by an intrinsic function, like
/// STEDI_WAREHOUSE's `!Sub`, is left out): what Lambda gives every function
/// beside its runtime's variables.
pub(crate) fn global_function_environment() -> Vec<(String, String)> {
    let lines = template_lines();
    let (_, globals) = entry(&lines, "Globals").expect("the template has Globals");
    let (_, function) = entry(globals, "Function").expect("Globals: Function");
    let (_, environment) = entry(function, "Environment").expect("Globals: Function: Environment");
    let (_, variables) = entry(environment, "Variables").expect("Environment: Variables");
    entries(variables)
        .into_iter()
        .filter(|(_, value, _)| !value.starts_with('!'))
        .map(|(name, value, _)| (name.to_string(), value.to_string()))
        .collect()
}

#[test]
fn every_function_runs_with_two_malloc_arenas() {
    assert!(
        global_function_environment().contains(&("MALLOC_ARENA_MAX".into(), "2".into())),
        "{:?}",
        global_function_environment()
    );
}

fn property<'a>(body: &'a [Line], key: &str) -> Option<(&'a str, &'a [Line])> {
    entry(entry(body, "Properties")?.1, key)
}

/// The crates whose `main.rs` serves a handler on the Lambda runtime.
fn lambda_crates() -> BTreeSet<String> {
    let mut crates = BTreeSet::new();
    for dir in std::fs::read_dir(workspace().join("crates")).unwrap() {
        let dir = dir.unwrap().path();
        let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap_or_default();
        if main.contains("lakehouse::lambda::serve") {
            crates.insert(dir.file_name().unwrap().to_str().unwrap().to_string());
        }
    }
    crates
}

#[test]
fn template_substitutes_every_resource_of_the_definition() {
    let lines = template_lines();
    let resources = template_resources(&lines);
    let machines: Vec<_> = resources
        .iter()
        .filter(|(_, ty, _)| *ty == "AWS::Serverless::StateMachine")
        .collect();
    assert_eq!(
        machines.len(),
        1,
        "one state machine in infra/template.yaml"
    );
    let (name, _, body) = machines[0];
    let (uri, _) = property(body, "DefinitionUri").expect("DefinitionUri");
    assert_eq!(
        uri, "../statemachine.asl.json",
        "{name} deploys the definition the local runner executes"
    );

    let definition = std::fs::read_to_string(workspace().join("statemachine.asl.json")).unwrap();
    let used: BTreeSet<&str> = definition
        .split("${")
        .skip(1)
        .map(|rest| rest.split('}').next().unwrap())
        // Prose such as the Comment's `${...}` names no variable.
        .filter(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect();
    let (_, substitutions) = property(body, "DefinitionSubstitutions").expect("substitutions");
    let substitutions = entries(substitutions);
    let given: BTreeSet<&str> = substitutions.iter().map(|(k, _, _)| *k).collect();
    assert_eq!(
        used, given,
        "the ${{...}} names of statemachine.asl.json and {name}'s DefinitionSubstitutions"
    );

    // Where the warehouse is, for a Distributed Map's ItemReader and
    // ResultWriter: the bucket and prefix of the functions' STEDI_WAREHOUSE.
    let warehouse = lines
        .iter()
        .find_map(|l| l.text.strip_prefix("STEDI_WAREHOUSE: !Sub s3://${"))
        .and_then(|rest| rest.split_once("}/"))
        .expect("STEDI_WAREHOUSE: !Sub s3://${<bucket>}/<prefix>");
    // Each other name resolves, on AWS, to the function built from the
    // crate the local runner calls for the same resource.
    for (key, value, _) in &substitutions {
        let name = format!("${{{key}}}");
        if name == stedi::runner::WAREHOUSE_BUCKET {
            assert_eq!(*value, format!("!Ref {}", warehouse.0), "{key}");
            continue;
        }
        if name == stedi::runner::WAREHOUSE_PREFIX {
            assert_eq!(*value, format!("{}/", warehouse.1), "{key}");
            continue;
        }
        // A Map setting: the template's parameter of the same name, whose
        // default is what the local runner substitutes.
        if let Some((_, local)) = stedi::runner::MAP_SETTINGS
            .iter()
            .find(|(n, _)| **n == name)
        {
            assert_eq!(*value, format!("!Ref {key}"), "{key}");
            let (_, parameters) = entry(&lines, "Parameters").expect("Parameters");
            let (_, parameter) = entry(parameters, key).expect("the parameter");
            assert_eq!(
                entry(parameter, "Default").map(|d| d.0),
                Some(*local),
                "{key}"
            );
            continue;
        }
        let function = value
            .strip_prefix("!GetAtt ")
            .and_then(|v| v.strip_suffix(".Arn"))
            .unwrap_or_else(|| panic!("{key}: `{value}` is not `!GetAtt <Function>.Arn`"));
        let (_, ty, body) = resources
            .iter()
            .find(|(n, _, _)| *n == function)
            .unwrap_or_else(|| panic!("{key}: no resource {function}"));
        assert_eq!(*ty, "AWS::Serverless::Function", "{key}: {function}");
        let (code_uri, _) = property(body, "CodeUri").expect("CodeUri");
        let resource = format!("${{{key}}}");
        let (_, krate) = RESOURCES
            .iter()
            .find(|(r, _)| *r == resource)
            .unwrap_or_else(|| panic!("{resource} has no local handler"));
        assert_eq!(code_uri, format!("../crates/{krate}"), "{key}: {function}");
    }
}

#[test]
fn template_deploys_every_lambda_crate_and_only_those() {
    let lines = template_lines();
    let crates = lambda_crates();
    assert!(!crates.is_empty(), "no crate serves a Lambda handler");
    let mut deployed = BTreeSet::new();
    for (name, ty, body) in template_resources(&lines) {
        if ty != "AWS::Serverless::Function" {
            continue;
        }
        let (code_uri, _) = property(body, "CodeUri").unwrap_or_else(|| panic!("{name}: CodeUri"));
        let dir = code_uri
            .strip_prefix("../crates/")
            .unwrap_or_else(|| panic!("{name}: CodeUri {code_uri} is not ../crates/<dir>"));
        assert!(
            crates.contains(dir),
            "{name}: crates/{dir}/src/main.rs does not call lakehouse::lambda::serve"
        );
        // sam build copies target/lambda/<binary>/bootstrap; the binary is the package's.
        let metadata = entry(body, "Metadata").map(|(_, m)| m).unwrap_or_default();
        let (method, _) = entry(metadata, "BuildMethod").unwrap_or_default();
        assert_eq!(method, "rust-cargolambda", "{name}: Metadata.BuildMethod");
        let binary = entry(metadata, "BuildProperties").and_then(|(_, p)| entry(p, "Binary"));
        assert_eq!(
            binary.map(|(b, _)| b),
            Some(dir),
            "{name}: Metadata.BuildProperties.Binary"
        );
        assert!(
            deployed.insert(dir.to_string()),
            "crates/{dir} is deployed twice"
        );
    }
    assert_eq!(
        deployed, crates,
        "every Lambda crate has exactly one function in infra/template.yaml"
    );
}

/// `crates/<function>/events/*.json`, the requests `cargo lambda invoke
/// --data-file` sends, saved from a local run by `stedi run --save-requests`.
fn events(function: &str) -> Vec<(String, Value)> {
    let dir = workspace().join("crates").join(function).join("events");
    let mut events: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    events
}

#[test]
fn sample_events_are_requests_each_function_serves() {
    use zones::contract::{GateRequest, TransitionRequest};
    for (function, serves) in [
        ("landing-to-trusted", &landing_to_trusted::PRODUCES[..]),
        ("trusted-to-curated", &trusted_to_curated::PRODUCES[..]),
    ] {
        let names: Vec<String> = events(function).into_iter().map(|(n, _)| n).collect();
        let mut expected: Vec<String> = serves.iter().map(|t| t.to_string()).collect();
        expected.sort();
        assert_eq!(names, expected, "one event per transition of {function}");
        for (name, event) in events(function) {
            let request: TransitionRequest = serde_json::from_value(event)
                .unwrap_or_else(|e| panic!("{function}/events/{name}.json: {e}"));
            assert_eq!(request.transition.to_string(), name);
        }
    }
    use zones::contract::GateFunctionRequest;
    let gate = events("quality-gate");
    let names: Vec<&str> = gate.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["request", "vacuum"]);
    let request: GateRequest = serde_json::from_value(gate[0].1.clone()).unwrap();
    assert_eq!(request.results.len(), Table::PRODUCED.len());
    // The function tells the two apart.
    assert!(matches!(
        serde_json::from_value(gate[0].1.clone()).unwrap(),
        GateFunctionRequest::Gate(_)
    ));
    match serde_json::from_value(gate[1].1.clone()).unwrap() {
        GateFunctionRequest::Vacuum(v) => {
            assert_eq!(v.vacuum, zones::contract::VacuumOptions::default())
        }
        other => panic!("vacuum.json is not a vacuum request: {other:?}"),
    }
}

/// The quality-gate function serves Vacuum: its role may delete exactly the
/// snapshot folders of every table `zones::layout` gives and the rubric
/// shadows, nothing else (no landing data, reports, catalog or key).
#[test]
fn the_vacuum_role_deletes_exactly_the_snapshot_and_shadow_prefixes() {
    let lines = template_lines();
    let resources = template_resources(&lines);
    let mut deletable: BTreeSet<String> = BTreeSet::new();
    let (_, _, gate) = resources
        .iter()
        .find(|(name, _, _)| *name == "QualityGateFunction")
        .expect("QualityGateFunction");
    let text: Vec<&str> = gate.iter().map(|l| l.text.as_str()).collect();
    // Each statement starts with `- Effect: Allow`; take the one whose action
    // is s3:DeleteObject alone.
    let starts: Vec<usize> = (0..text.len())
        .filter(|&i| text[i].starts_with("- Effect:"))
        .collect();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(text.len());
        let statement = &text[start..end];
        if statement.contains(&"Action: s3:DeleteObject") {
            deletable.extend(
                statement
                    .iter()
                    .filter_map(|l| l.strip_prefix("- !Sub ${DataBucket.Arn}/warehouse/"))
                    .map(str::to_string),
            );
        }
        assert!(
            !statement
                .iter()
                .any(|l| l.contains("s3:DeleteObject") && l.contains(',')),
            "the gate's deletes are in one statement of their own: {statement:?}"
        );
    }
    let mut expected: BTreeSet<String> = zones::layout::snapshot_tables()
        .map(|t| format!("{}*", zones::layout::snapshots_prefix(t)))
        .collect();
    expected.insert("_runs/*/rubric/*".into());
    assert_eq!(deletable, expected);
}

/// A vacuumed object lives on as a noncurrent version until the bucket's
/// lifecycle rule expires it: that must stay well under the Vacuum state's
/// window, or deleted snapshots (and the data of customers who revoked
/// consent) would outlive it by weeks.
#[test]
fn noncurrent_versions_expire_within_a_day_of_the_vacuum_window() {
    let lines = template_lines();
    let resources = template_resources(&lines);
    let (_, _, bucket) = resources
        .iter()
        .find(|(name, _, _)| *name == "DataBucket")
        .expect("DataBucket");
    let days: Vec<u64> = bucket
        .iter()
        .filter_map(|l| l.text.strip_prefix("NoncurrentDays:"))
        .map(|d| d.trim().parse().unwrap())
        .collect();
    assert_eq!(days, [1], "one noncurrent-version rule, of 1 day");
    let definition = definition();
    let retain_ms = definition["States"]["Vacuum"]["Parameters"]["vacuum"]["retain_ms"]
        .as_u64()
        .unwrap();
    assert!(days[0] * 24 * zones::retention::HOUR_MS <= retain_ms / 7);
}

/// Each HMAC key has exactly one reader in the stack: the pseudonym key the
/// function that writes machine_learning_curated, the erasure key the one
/// that applies erasures. No other resource may read a secret, and each
/// reader is told where its key is (and only its key).
#[test]
fn each_key_has_one_reader_the_function_that_needs_it() {
    let lines = template_lines();
    let resources = template_resources(&lines);
    let mut readers: BTreeSet<(String, String)> = BTreeSet::new();
    let mut told: BTreeSet<(String, String, String)> = BTreeSet::new();
    for (name, _, body) in &resources {
        let text: Vec<&str> = body.iter().map(|l| l.text.as_str()).collect();
        for (i, line) in text.iter().enumerate() {
            if line.contains("secretsmanager:") {
                assert!(
                    line.ends_with("secretsmanager:GetSecretValue"),
                    "{name} may only read secrets: {line}"
                );
                let resource = text[i + 1..]
                    .iter()
                    .find_map(|l| l.strip_prefix("Resource: !Ref "))
                    .unwrap_or_else(|| panic!("{name}: a secret read names its secret"));
                readers.insert((name.to_string(), resource.to_string()));
            }
            for variable in ["STEDI_PSEUDONYM_SECRET", "STEDI_ERASURE_SECRET"] {
                if let Some(secret) = line.strip_prefix(&format!("{variable}: !Ref ")) {
                    told.insert((name.to_string(), variable.into(), secret.into()));
                }
            }
        }
    }
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        readers,
        BTreeSet::from([
            pair("TrustedToCuratedFunction", "PseudonymKeySecret"),
            pair("LandingToTrustedFunction", "ErasureKeySecret"),
        ])
    );
    let triple = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        told,
        BTreeSet::from([
            triple(
                "TrustedToCuratedFunction",
                "STEDI_PSEUDONYM_SECRET",
                "PseudonymKeySecret"
            ),
            triple(
                "LandingToTrustedFunction",
                "STEDI_ERASURE_SECRET",
                "ErasureKeySecret"
            ),
        ])
    );
}

/// The packages a build of `function` alone links (`make lambdas` builds one
/// feature set per cargo invocation), as `cargo tree` resolves them from
/// Cargo.lock.
fn linked_alone(function: &str) -> BTreeSet<String> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            function,
        ])
        .current_dir(workspace())
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {function}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split(' ').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn each_function_links_only_the_query_engine_and_services_it_uses() {
    let never = ["aws-sdk-sfn", "aws-sdk-cloudformation", "polars-sql"];
    for (function, links, absent) in [
        (
            "landing-to-trusted",
            &["aws-sdk-s3", "aws-sdk-secretsmanager", "polars"][..],
            &["aws-sdk-glue", "aws-sdk-athena"][..],
        ),
        (
            "trusted-to-curated",
            &["aws-sdk-s3", "aws-sdk-secretsmanager", "polars"],
            &["aws-sdk-glue", "aws-sdk-athena"],
        ),
        (
            "quality-gate",
            &["aws-sdk-s3", "aws-sdk-glue", "aws-sdk-athena", "polars"],
            &["aws-sdk-secretsmanager"],
        ),
    ] {
        let linked = linked_alone(function);
        for package in links {
            assert!(
                linked.contains(*package),
                "{function} does not link {package}"
            );
        }
        for package in absent.iter().chain(&never) {
            assert!(!linked.contains(*package), "{function} links {package}");
        }
    }
}
