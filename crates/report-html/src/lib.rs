//! `report-html`: the run report as one self-contained HTML page
//! (`_runs/<run id>/report.html`): the state machine drawn from its ASL
//! definition with each state's status and seconds, the flow of rows from
//! landing to curated with every quarantine reason and drop rule as its own
//! outflow, strict against rubric, quarantine samples, the quality checks
//! with their SQL, and the run's facts.
//!
//! The page is built with `maud` templates (compile-checked, escaped) and SVG
//! drawn here; it loads nothing (no script, font, image or stylesheet from
//! anywhere, and a Content-Security-Policy that forbids it), so it opens the
//! same from a laptop folder or an S3 presigned URL. Every number drawn is
//! also on the page as text, in tables and accessible labels.
//!
//! Deliberately absent: I/O. The quality gate and the `stedi` binary gather
//! the facts ([`facts::RunFacts`]) and write the page.

pub mod facts;
pub mod flow;
pub mod graph;

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use zones::contract::GateRequest;
use zones::report::{Publication, Report};

pub use facts::{
    LandingInput, MapItems, QuarantineSamples, RunFacts, RunFailure, SampleLine, StateRecord,
    StateStatus,
};

/// Sample lines kept per quarantine reason.
pub const SAMPLES_PER_REASON: usize = 5;
/// A sample line longer than this is cut (the page stays small).
pub const SAMPLE_MAX_CHARS: usize = 400;

const CSS: &str = include_str!("page.css");

/// The report to draw: report.json when the gate wrote one, otherwise the
/// counts of the transitions that finished (a run that failed before the gate).
pub fn effective_report(report: Option<&Report>, facts: &RunFacts) -> Report {
    match report {
        Some(r) => r.clone(),
        None => {
            let request = GateRequest {
                run_id: facts.run_id.clone(),
                policy: facts.policy,
                results: facts.results.clone(),
            };
            let mut partial = Report::build(
                &request,
                Vec::new(),
                Publication::not_published("the run ended before its quality gate"),
            );
            partial.passed = false;
            partial
        }
    }
}

/// The state machine of `definition` with each state's outcome: the facts'
/// record of it, else the result of the transition it runs, else inferred
/// from a successor that ran.
pub fn state_graph(definition: &Value, facts: &RunFacts) -> graph::Graph {
    let mut g = graph::layout(definition);
    let states = definition.get("States").cloned().unwrap_or(Value::Null);
    for node in &mut g.nodes {
        if let Some(record) = facts.state(&node.name) {
            node.status = record.status;
            node.seconds = Some(record.seconds);
            node.retries = record.retries;
            node.error = record.error.clone();
            node.cause = record.cause.clone();
            node.items = record.items;
            continue;
        }
        let transition = states[&node.name]["Parameters"]["transition"]
            .as_str()
            .and_then(zones::Table::from_name);
        if let Some(result) = transition.and_then(|t| facts.results.get(&t)) {
            node.status = StateStatus::Succeeded;
            node.seconds = Some(result.seconds);
        }
    }
    g.infer_passed_states();
    g
}

/// The verdict line of a run.
fn verdict(report: Option<&Report>, facts: &RunFacts) -> (&'static str, String) {
    if let Some(f) = &facts.failure {
        let at = f
            .state
            .as_deref()
            .map(|s| format!(" in {s}"))
            .unwrap_or_default();
        return ("failed", format!("FAILED{at}: {}", f.error));
    }
    match report {
        Some(r) if r.passed && !r.publication.published && !r.publication.detail.is_empty() => {
            ("failed", format!("checks passed, {}", r.publication.detail))
        }
        Some(r) if r.passed => ("passed", "PASSED: every check passed".into()),
        Some(r) => {
            let failed = r.checks.iter().filter(|c| !c.passed).count();
            (
                "failed",
                format!("FAILED: {failed} of {} checks failed", r.checks.len()),
            )
        }
        None => (
            "failed",
            "no report: the run ended before the quality gate".into(),
        ),
    }
}

/// The maps of counts (by reason, rule or kind) among `counts`, a report
/// line's `RowCounts` as JSON, by field.
fn count_maps(value: &Value) -> Vec<(String, Vec<(String, u64)>)> {
    let Some(fields) = value.as_object() else {
        return Vec::new();
    };
    fields
        .iter()
        .filter_map(|(field, v)| {
            let map = v.as_object()?;
            let counts: Option<Vec<(String, u64)>> = map
                .iter()
                .map(|(k, n)| n.as_u64().map(|n| (k.clone(), n)))
                .collect();
            Some((field.clone(), counts?))
        })
        .collect()
}

/// Top-level scalar fields of report.json this page does not otherwise show
/// (fields added later appear without a change here).
fn other_report_fields(report: &Value) -> Vec<(String, String)> {
    const SHOWN: [&str; 4] = ["run_id", "policy", "passed", "peak_rss_mib"];
    report
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !SHOWN.contains(&k.as_str()))
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Bool(_) | Value::Number(_) => Some((k.clone(), v.to_string())),
            _ => None,
        })
        .collect()
}

fn seconds(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{s:.2}"))
}

/// Bytes as B, KiB, MiB or GiB (binary units), one decimal: the page's and
/// `stedi vacuum`'s.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Renders the page. `report` is report.json when the gate wrote one;
/// `definition` the state machine the run executed.
pub fn render(report: Option<&Report>, facts: &RunFacts, definition: &Value) -> String {
    let effective = effective_report(report, facts);
    let graph = state_graph(definition, facts);
    let (verdict_class, verdict_text) = verdict(report, facts);
    let report_json = serde_json::to_value(&effective).unwrap_or(Value::Null);
    let lanes = flow::lanes(&effective);
    let checks_failed = effective.checks.iter().any(|c| !c.passed);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "STEDI run " (facts.run_id) " · " (verdict_text) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { "Run " code #run-id { (facts.run_id) } }
                    p #verdict class=(format!("verdict {verdict_class}")) { (verdict_text) }
                    p.sub {
                        "policy " strong #policy { (facts.policy.as_str()) }
                        @if let Some(s) = facts.seconds { " · " (format!("{s:.2}")) " s wall time" }
                        @if let Some(at) = &facts.written_at { " · written " (at) }
                        " by " (facts.written_by)
                    }
                    @if let Some(f) = &facts.failure {
                        div.failure #failure role="alert" {
                            p { strong { (f.error) } @if let Some(s) = &f.state { " in state " code { (s) } } }
                            pre { (f.cause) }
                        }
                    }
                    nav {
                        a href="#states" { "State machine" } " · " a href="#flow" { "Flow of rows" } " · "
                        @if !effective.rubric_comparison.is_empty() { a href="#rubric" { "Strict vs rubric" } " · " }
                        a href="#checks" { "Quality checks" } " · " a href="#quarantine" { "Quarantine" } " · "
                        a href="#facts" { "Run facts" }
                    }
                }
                (states_section(&graph, facts))
                // A failed check is what a reader of a failed gate looks for first.
                @if checks_failed { (checks_section(&effective, report.is_some())) }
                (flow_section(&effective, &lanes, &report_json, report.is_none()))
                @if !effective.rubric_comparison.is_empty() { (rubric_section(&effective)) }
                @if !checks_failed { (checks_section(&effective, report.is_some())) }
                (quarantine_section(&effective, facts))
                (facts_section(&effective, facts, &graph, &report_json))
            }
        }
    };
    page.into_string()
}

fn states_section(graph: &graph::Graph, facts: &RunFacts) -> Markup {
    // Error columns only when a state has an error.
    let errors = graph
        .nodes
        .iter()
        .any(|n| n.error.is_some() || n.cause.is_some());
    // An items column only when a Distributed Map ran.
    let maps = graph.nodes.iter().any(|n| n.items.is_some());
    html! {
        section #states {
            h2 { "State machine" }
            p.note { "Drawn from statemachine.asl.json: arrows are transitions, dashed lines the Catch routes (red when taken)." }
            div.side-by-side {
            div.scroll { (graph::svg(graph)) }
            table.states {
                caption { "Each state's outcome" }
                thead { tr {
                    th { "state" } th { "type" } th { "status" } th.num { "started (s)" } th.num { "seconds" } th.num { "retries" }
                    @if maps { th { "items" } }
                    @if errors { th { "error" } th { "cause" } }
                } }
                tbody {
                    @for node in &graph.nodes {
                        @let started = facts.state(&node.name).and_then(|r| r.started);
                        tr data-state=(node.name) class=(format!("row-{}", node.status.as_str().replace(' ', "-"))) {
                            td { code { (node.name) } }
                            td { (node.kind) }
                            td.status { (node.status.as_str()) }
                            td.num { (seconds(started)) }
                            td.num { (seconds(node.seconds)) }
                            td.num { (node.retries) }
                            @if maps { td.items { @if let Some(items) = &node.items { (items.describe()) } } }
                            @if errors {
                                td { @if let Some(e) = &node.error { code { (e) } } }
                                td.cause { @if let Some(c) = &node.cause { (c) } }
                            }
                        }
                    }
                }
            }
            }
        }
    }
}

fn flow_section(
    report: &Report,
    lanes: &[Vec<&zones::report::TransitionLine>],
    report_json: &Value,
    partial: bool,
) -> Markup {
    let lines = report_json["transitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Every count map any line has, in the order first seen.
    let mut fields: Vec<String> = Vec::new();
    for line in &lines {
        for (field, _) in count_maps(&line["counts"]) {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
    }
    html! {
        section #flow {
            h2 { "Flow of rows" }
            p.note {
                "Each dataset's rows from landing to curated: a transition's input splits into the rows it kept and one outflow per quarantine reason and drop rule. "
                "Widths are proportional to rows within each dataset."
                @if partial { " Only the transitions that finished before the run failed are shown." }
            }
            @if lanes.is_empty() { p.empty { "No transition finished." } }
            @for lane in lanes {
                figure.lane data-lane=(flow::source_of(lane[0].table).to_string()) {
                    div.scroll { (flow::lane_svg(lane, report)) }
                }
            }
            table.accounting {
                caption { "Every input row accounted for: in = kept + quarantined + dropped" }
                thead { tr { th { "table" } th { "zone" } th.num { "in" } th.num { "kept" } th.num { "quarantined" } th.num { "dropped" } th.num { "rows" } th { "accounted" } th.num { "seconds" } } }
                tbody {
                    @for t in &report.transitions {
                        tr data-table=(t.table.to_string()) {
                            td { code { (t.table.name()) } }
                            td { (t.zone.as_str()) }
                            td.num.input { (t.counts.input) }
                            td.num.kept { (t.counts.kept) }
                            td.num { (t.counts.quarantined_total()) }
                            td.num { (t.counts.dropped_total()) }
                            td.num.rows { (t.rows) }
                            td { @if t.accounted { "yes" } @else { strong.bad { "NO" } } }
                            td.num { (format!("{:.2}", t.seconds)) }
                        }
                    }
                }
            }
            table.counts #counts {
                caption { "Counts by reason, rule and kind" }
                thead { tr { th { "table" } @for field in &fields { th { (field) } } } }
                tbody {
                    @for line in &lines {
                        @let table = line["table"].as_str().unwrap_or_default();
                        @let maps: BTreeMap<String, Vec<(String, u64)>> = count_maps(&line["counts"]).into_iter().collect();
                        tr data-table=(table) {
                            td { code { (table) } }
                            @for field in &fields {
                                td {
                                    ul.inline {
                                        @for (key, n) in maps.get(field).into_iter().flatten() {
                                            li data-table=(table) data-count=(field) data-key=(key) { code { (key) } " " span.num { (n) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn rubric_section(report: &Report) -> Markup {
    html! {
        section #rubric {
            h2 { "Strict vs rubric" }
            p.note { "The rows the rubric policy writes from the same input, and, by rule, the input rows strict drops or quarantines beyond rubric (+ more, − fewer). For a join, input rows are not rows written: one kept input row may pair with several." }
            table.rubric {
                thead { tr { th { "table" } th.num { "strict" } th.num { "rubric" } th.num { "difference" } th { "strict drops vs rubric, by rule" } } }
                tbody {
                    @for c in &report.rubric_comparison {
                        tr data-table=(c.table.to_string()) {
                            td { code { (c.table.name()) } }
                            td.num.strict { (c.strict_rows) }
                            td.num.rubric { (c.rubric_rows) }
                            td.num { (format!("{:+}", c.strict_rows as i64 - c.rubric_rows as i64)) }
                            td {
                                @if c.by_rule.is_empty() { "-" }
                                ul.rules {
                                    @for (rule, n) in &c.by_rule {
                                        li data-rule=(rule) { code { (rule) } " " (format!("{n:+}")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn quarantine_section(report: &Report, facts: &RunFacts) -> Markup {
    // Every (table, reason) the counts name, with the samples gathered for it.
    let mut by_reason: BTreeMap<(String, String), (u64, Vec<&SampleLine>)> = BTreeMap::new();
    for t in &report.transitions {
        for (reason, n) in &t.counts.quarantined {
            let table = quarantine_table(t.table);
            by_reason.insert((table, reason.clone()), (*n, Vec::new()));
        }
    }
    for s in &facts.samples {
        let entry = by_reason
            .entry((s.table.to_string(), s.reason.clone()))
            .or_insert((0, Vec::new()));
        entry.1.extend(s.lines.iter());
    }
    html! {
        section #quarantine {
            h2 { "Quarantine" }
            p.note { "Rows set aside with a reason; open a reason for up to " (SAMPLES_PER_REASON) " sample lines as they arrived." }
            @if by_reason.is_empty() { p.empty { "Nothing was quarantined." } }
            @for ((table, reason), (n, lines)) in &by_reason {
                details.reason data-table=(table) data-reason=(reason) {
                    summary { code { (table) } " · " code { (reason) } " · " span.n { (n) } " rows" }
                    @if lines.is_empty() {
                        p.empty { "No sample lines were gathered." }
                    } @else {
                        table.samples {
                            thead { tr { th { "source" } th.num { "line" } th { "raw" } } }
                            tbody {
                                @for l in lines {
                                    tr {
                                        td { code { (l.source) } }
                                        td.num { @if let Some(n) = l.line { (n) } @else { "-" } }
                                        td { pre { (l.raw) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The quarantine table beside a transition's output.
fn quarantine_table(table: zones::Table) -> String {
    use zones::{Dataset, Table};
    match table {
        Table::CustomerTrusted => Table::quarantine(Dataset::Customer),
        Table::AccelerometerTrusted => Table::quarantine(Dataset::Accelerometer),
        Table::StepTrainerTrusted => Table::quarantine(Dataset::StepTrainer),
        Table::MachineLearningCurated => Table::MachineLearningQuarantine,
        other => other,
    }
    .to_string()
}

fn checks_section(report: &Report, gate_ran: bool) -> Markup {
    let passed = report.checks.iter().filter(|c| c.passed).count();
    html! {
        section #checks {
            h2 { "Quality checks" }
            @if !gate_ran {
                p.empty { "The quality gate did not run." }
            } @else {
                p.note #checks-summary { (passed) " of " (report.checks.len()) " checks passed." }
                table.checks {
                    thead { tr { th { "check" } th { "verdict" } th.num { "offending" } th { "detail" } th { "SQL" } } }
                    tbody {
                        @for c in &report.checks {
                            tr data-check=(c.name) class=(if c.passed { "check-pass" } else { "check-fail" }) {
                                td { code { (c.name) } }
                                td.verdict { @if c.passed { "pass" } @else { strong { "FAIL" } } }
                                td.num.offending { @if let Some(n) = c.violations { (n) } @else { "-" } }
                                td { (c.detail) }
                                td { pre.sql { (c.sql) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn facts_section(
    report: &Report,
    facts: &RunFacts,
    graph: &graph::Graph,
    report_json: &Value,
) -> Markup {
    let objects: u64 = facts.landing.iter().map(|l| l.objects).sum();
    let total: u64 = facts.landing.iter().map(|l| l.bytes).sum();
    html! {
        section #facts {
            h2 { "Run facts" }
            table.facts {
                tbody {
                    tr { th { "run id" } td { code { (facts.run_id) } } }
                    tr { th { "policy" } td { (facts.policy.as_str()) } }
                    tr { th { "quality gate" } td { @if report.passed { "passed" } @else { "failed or did not run" } } }
                    @if !report.publication.detail.is_empty() {
                        tr { th { "publication" } td #publication { (report.publication.detail) } }
                    }
                    tr { th { "input objects" } td #input-objects { (objects) } }
                    tr { th { "input bytes" } td #input-bytes { (total) " (" (bytes(total)) ")" } }
                    @for l in &facts.landing {
                        tr { th { "  " (l.dataset) " landing" } td { (l.objects) " objects, " (l.bytes) " bytes (" (bytes(l.bytes)) ")" } }
                    }
                    tr { th { "seconds per state" } td {
                        @for n in graph.nodes.iter().filter(|n| n.seconds.is_some()) {
                            span.state-seconds { code { (n.name) } " " (seconds(n.seconds)) } " "
                        }
                    } }
                    @if let Some(s) = facts.seconds { tr { th { "wall seconds" } td { (format!("{s:.2}")) } } }
                    @if let Some(key) = &report.pseudonym_key {
                        tr { th { "pseudonym key" } td #pseudonym-key {
                            "fingerprint " code { (key.fingerprint) }
                            @if let Some(old) = &key.rotated_from { " (rotated from " code { (old) } ": every customerKey changed)" }
                        } }
                    }
                    tr { th { "peak memory" } td #peak-memory { @if let Some(m) = report.peak_rss_mib { (format!("{m:.0}")) " MiB" } @else { "-" } } }
                    @for (k, v) in &facts.versions { tr { th { (k) } td { code { (v) } } } }
                    @for (k, v) in other_report_fields(report_json) { tr { th { (k) } td { (v) } } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 20), "5.0 MiB");
    }
}
