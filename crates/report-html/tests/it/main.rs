//! The page without a browser: the graph's layout from the real definition,
//! states' outcomes, escaping, and that the page names no outside resource.
//! (`tests/it/browser.rs` in the workspace opens real pages in Chromium.)

use std::collections::BTreeMap;

use report_html::graph::{self, Graph};
use report_html::{
    QuarantineSamples, RunFacts, RunFailure, SampleLine, StateRecord, StateStatus, render,
    state_graph,
};
use serde_json::{Value, json};
use zones::contract::{CheckOutcome, GateRequest, TransitionResult};
use zones::report::{Publication, Report};
use zones::{Policy, RunId, Table};

fn definition() -> Value {
    serde_json::from_str(zones::STATE_MACHINE).unwrap()
}

fn result(
    table: &str,
    input: u64,
    kept: u64,
    quarantined: Value,
    dropped: Value,
) -> TransitionResult {
    serde_json::from_value(json!({
        "transition": table,
        "policy": "strict",
        "table": { "table": table, "location": format!("x/{table}/r/"), "snapshot": "r", "rows": kept, "columns": [] },
        "quarantine": null,
        "rubric": null,
        "counts": { "input": input, "kept": kept, "quarantined": quarantined, "dropped": dropped },
        "rubric_rows": kept + 7,
        "rubric_counts": { "input": input, "kept": kept + 7, "quarantined": quarantined },
        "seconds": 0.25,
        "peak_rss_mib": 64.0,
    }))
    .unwrap()
}

fn results() -> BTreeMap<Table, TransitionResult> {
    BTreeMap::from([
        (
            Table::CustomerTrusted,
            result(
                "customer_trusted",
                100,
                60,
                json!({ "missing_field": 2, "a_reason_added_later": 1 }),
                json!({ "no_research_consent": 37 }),
            ),
        ),
        (
            Table::AccelerometerTrusted,
            result(
                "accelerometer_trusted",
                1000,
                900,
                json!({}),
                json!({ "before_research_consent": 100 }),
            ),
        ),
    ])
}

fn status(graph: &Graph, name: &str) -> StateStatus {
    graph.node(name).unwrap().status
}

#[test]
fn the_graph_is_laid_out_from_the_definition() {
    let g = graph::layout(&definition());
    let states = definition()["States"].as_object().unwrap().len();
    assert_eq!(g.nodes.len(), states);
    // The main path top to bottom in one column, the Fail state beside it.
    let order = [
        "Start",
        "CustomerTrusted",
        "AccelerometerTrusted",
        "AccelerometerTrustedReduce",
        "CustomersCurated",
        "StepTrainerTrusted",
        "StepTrainerTrustedReduce",
        "MachineLearningCurated",
        "MachineLearningCuratedReduce",
        "QualityGate",
        "Erase",
        "Vacuum",
        "ErasureComplete",
        "Done",
    ];
    for (rank, name) in order.iter().enumerate() {
        let node = g.node(name).unwrap();
        assert_eq!((node.rank, node.column), (rank, 0), "{name}");
    }
    // The Choice's other branch beside Done, the Fail state of the data's
    // verdicts beside them all.
    let incomplete = g.node("ErasureIncomplete").unwrap();
    assert_eq!((incomplete.rank, incomplete.column), (order.len() - 1, 1));
    assert_eq!(g.node("RunFailed").unwrap().column, 2);
    let catches = g.edges.iter().filter(|e| e.catch).count();
    // Vacuum catches nothing; Erase's catch leads on to Vacuum; a Map
    // catches nothing (a failed Map Run is redriven), its reduce does.
    assert_eq!(
        catches, 7,
        "every Task but Vacuum routes its data errors on"
    );
    assert_eq!(g.edges.len() - catches, order.len() - 1 + 1);
}

#[test]
fn states_without_a_record_take_their_transition_result_or_a_successor() {
    let mut facts = RunFacts::new(&RunId::parse("r").unwrap(), Policy::Strict, "test");
    facts.results = results();
    let g = state_graph(&definition(), &facts);
    assert_eq!(
        status(&g, "Start"),
        StateStatus::Succeeded,
        "a successor ran"
    );
    assert_eq!(status(&g, "CustomerTrusted"), StateStatus::Succeeded);
    assert_eq!(g.node("CustomerTrusted").unwrap().seconds, Some(0.25));
    assert_eq!(status(&g, "CustomersCurated"), StateStatus::NotRun);
    assert_eq!(status(&g, "RunFailed"), StateStatus::NotRun);

    facts.states.push(StateRecord {
        name: "CustomersCurated".into(),
        status: StateStatus::Caught,
        started: Some(1.0),
        seconds: 0.5,
        retries: 2,
        error: Some("Stedi.InvalidInput".into()),
        cause: Some("no rows".into()),
        items: None,
    });
    facts.states.push(StateRecord {
        name: "AccelerometerTrusted".into(),
        status: StateStatus::Succeeded,
        started: Some(0.5),
        seconds: 0.25,
        retries: 0,
        error: None,
        cause: None,
        items: Some(report_html::MapItems {
            total: 3,
            succeeded: 3,
            failed: 0,
        }),
    });
    let g = state_graph(&definition(), &facts);
    let node = g.node("CustomersCurated").unwrap();
    assert_eq!(node.status, StateStatus::Caught);
    assert_eq!(node.retries, 2);
    assert!(graph::describe(node).contains("Stedi.InvalidInput"));
    // A Distributed Map says how many items its Map Run had.
    assert_eq!(
        graph::describe(g.node("AccelerometerTrusted").unwrap()),
        "AccelerometerTrusted (Map): succeeded, 0.25 s, 3 items"
    );
}

fn page(samples: Vec<QuarantineSamples>, failure: Option<RunFailure>) -> String {
    let request = GateRequest {
        run_id: RunId::parse("r-1").unwrap(),
        policy: Policy::Strict,
        results: results(),
    };
    let checks = vec![CheckOutcome {
        name: "a_check".into(),
        passed: false,
        detail: "3 violations".into(),
        sql: r#"SELECT COUNT(*) AS violations FROM t WHERE a < b AND "c" <> 'd'"#.into(),
        violations: Some(3),
    }];
    let report = Report::build(
        &request,
        checks,
        Publication::not_published("1 of 1 checks failed"),
    );
    let mut facts = RunFacts::new(&RunId::parse("r-1").unwrap(), Policy::Strict, "test");
    facts.results = results();
    facts.samples = samples;
    facts.failure = failure;
    render(Some(&report), &facts, &definition())
}

#[test]
fn the_page_escapes_what_it_shows_and_names_no_outside_resource() {
    let hostile =
        r#"{"customerName":"</pre><script>alert(1)</script><img src=https://evil.example/x>"}"#;
    let html = page(
        vec![QuarantineSamples {
            table: Table::CustomerQuarantine,
            reason: "missing_field".into(),
            lines: vec![SampleLine {
                source: "customer/landing/a.json".into(),
                line: Some(7),
                raw: hostile.into(),
            }],
        }],
        Some(RunFailure {
            state: Some("QualityGate".into()),
            error: "Stedi.QualityGateFailed".into(),
            cause: "<b>1 of 1 checks failed</b>".into(),
        }),
    );
    assert!(!html.contains("<script"), "no script, and none injected");
    assert!(!html.contains("<img"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;b&gt;1 of 1 checks failed&lt;/b&gt;"));
    assert!(html.contains("a &lt; b AND &quot;c&quot; &lt;&gt; 'd'"));
    // Nothing to fetch: no link, source or import of anything outside the page.
    let outside = html.replace("https://evil.example", "");
    for needle in [
        "http://",
        "https://",
        " src=\"",
        "href=\"http",
        "<link",
        "<iframe",
        "@import",
        "url(http",
    ] {
        assert!(!outside.contains(needle), "the page names `{needle}`");
    }
    assert!(html.contains("Content-Security-Policy"));
    assert!(html.starts_with("<!DOCTYPE html>"));
}

#[test]
fn every_count_is_on_the_page_as_text() {
    let html = page(Vec::new(), None);
    for (field, key, n) in [
        ("quarantined", "missing_field", 2),
        ("quarantined", "a_reason_added_later", 1),
        ("dropped", "no_research_consent", 37),
        ("dropped", "before_research_consent", 100),
    ] {
        assert!(
            html.contains(&format!(r#"data-count="{field}" data-key="{key}"><code>{key}</code> <span class="num">{n}</span>"#)),
            "{field} {key}"
        );
        // Drawn as an outflow, with its number in the band's title.
        assert!(html.contains(&format!("{key}: {n}")), "{key} drawn");
    }
    // A reason with no sample lines says so rather than vanishing.
    assert!(html.contains(r#"data-reason="a_reason_added_later""#));
    assert!(html.contains("No sample lines were gathered."));
    // Strict against rubric, and the check with its offending rows.
    assert!(
        html.contains(r#"<td class="num rubric">67</td>"#),
        "rubric rows of customer_trusted"
    );
    assert!(html.contains(r#"<td class="num offending">3</td>"#));
}

#[test]
fn a_run_without_report_shows_the_transitions_that_finished() {
    let mut facts = RunFacts::new(&RunId::parse("early").unwrap(), Policy::Strict, "test");
    facts.results = results();
    facts.failure = Some(RunFailure {
        state: Some("CustomersCurated".into()),
        error: "Stedi.InvalidInput".into(),
        cause: "nothing to read".into(),
    });
    let html = render(None, &facts, &definition());
    assert!(html.contains("FAILED in CustomersCurated: Stedi.InvalidInput"));
    assert!(html.contains(r#"<tr data-table="customer_trusted">"#));
    assert!(html.contains("The quality gate did not run."));
}
