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
        assert!(
            main.contains(&format!("lakehouse::lambda::serve({ident}::run)")),
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
    let (last, state) = order.last().unwrap();
    assert_eq!(last, "QualityGate");
    assert_eq!(state["Resource"], "${QualityGateFunctionArn}");
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
        let catches_all = state["Catch"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["ErrorEquals"][0] == "States.ALL"));
        assert!(
            catches_all,
            "{name} routes every error to the failure state"
        );
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
    let root = workspace().join("crates/zones");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    for forbidden in ["aws", "tokio", "lambda", "lakehouse", "reqwest"] {
        assert!(!deps.contains(forbidden), "zones depends on {forbidden}");
    }
    for entry in std::fs::read_dir(root.join("src")).unwrap() {
        let path = entry.unwrap().path();
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
