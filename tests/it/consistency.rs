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

fn tasks(definition: &Value) -> Vec<(&String, &Value)> {
    definition["States"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| s["Type"] == "Task")
        .collect()
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
        // The quality-gate function also serves the Vacuum state, and
        // landing-to-trusted the Erase state: their entry point, `handle`,
        // tells the requests apart.
        let entry = if krate == "trusted-to-curated" {
            "run"
        } else {
            "handle"
        };
        assert!(
            main.contains(&format!("lakehouse::lambda::serve({ident}::{entry})")),
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
    let (last, vacuum) = order.last().unwrap();
    assert_eq!(last, "Vacuum");
    assert!(position("Vacuum") > gate);
    assert_eq!(vacuum["Resource"], "${QualityGateFunctionArn}");
    assert_eq!(vacuum["End"], true);
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
        if name == "Vacuum" {
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

#[test]
fn error_names_in_retry_and_catch_exist_in_the_code() {
    let definition = definition();
    let known: BTreeSet<&str> = ErrorName::ALL.iter().map(|e| e.as_str()).collect();
    let mut seen = 0;
    for (name, state) in tasks(&definition) {
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
    // Every source file, those of submodules (`src/landing/`) included.
    let mut files = Vec::new();
    let mut folders = vec![root.join("src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(
        krate != "crates/zones" || files.iter().any(|p| p.ends_with("landing/flat.rs")),
        "submodules are walked"
    );
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
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

    // Each name resolves, on AWS, to the function built from the crate the
    // local runner calls for the same resource.
    for (key, value, _) in &substitutions {
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
