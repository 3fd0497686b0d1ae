//! The run report page: gathers what `report-html` draws beyond report.json
//! (landing inputs, quarantine samples, the states' outcomes) into
//! `_runs/<run id>/facts.json` and writes `_runs/<run id>/report.html`.
//! The gate writes both on every run it sees; the `stedi` binary writes them
//! again at the end of a run with every state's outcome.

use std::collections::BTreeMap;
use std::time::SystemTime;

use lakehouse::{Error, Store, tables};
use polars::prelude::*;
use report_html::{LandingInput, QuarantineSamples, RunFacts, SampleLine};
use serde_json::Value;
use zones::contract::TransitionResult;
use zones::report::Report;
use zones::transitions::IDENTIFIER_COLUMNS;
use zones::{Dataset, Policy, RunId, Table, layout};

/// Facts about run `run_id` that storage can tell: landing inputs, quarantine
/// samples of the transitions in `results`, versions. Reading samples is best
/// effort: a quarantine snapshot that cannot be read leaves its reasons without samples.
pub fn gather(
    store: &dyn Store,
    run_id: &RunId,
    policy: Policy,
    results: &BTreeMap<Table, TransitionResult>,
    written_by: &str,
    definition: &str,
) -> RunFacts {
    let mut facts = RunFacts::new(run_id, policy, written_by);
    facts.written_at = Some(now());
    facts.landing = landing_inputs(store);
    facts.samples = results
        .values()
        .flat_map(|r| {
            samples(store, r).unwrap_or_else(|e| {
                tracing::warn!(table = %r.transition, error = %e, "no quarantine samples");
                Vec::new()
            })
        })
        .collect();
    facts.results = results.clone();
    facts.versions = versions(definition);
    facts
}

/// The current UTC time, RFC 3339 to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// What produced the run: the crates' version and the state machine's fingerprint.
pub fn versions(definition: &str) -> BTreeMap<String, String> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(definition.as_bytes());
    BTreeMap::from([
        (
            "stedi-lakehouse version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            "state machine sha256".to_string(),
            hex::encode(&digest[..8]),
        ),
    ])
}

/// Landing objects and bytes per dataset, as a listing sees them now.
pub fn landing_inputs(store: &dyn Store) -> Vec<LandingInput> {
    Dataset::ALL
        .into_iter()
        .map(|dataset| {
            let objects = tables::landing_objects(store, dataset).unwrap_or_default();
            LandingInput {
                dataset: dataset.dir().to_string(),
                objects: objects.len() as u64,
                bytes: objects.iter().map(|o| o.size).sum(),
            }
        })
        .collect()
}

/// Up to [`report_html::SAMPLES_PER_REASON`] quarantined rows per reason of
/// one transition's quarantine table. Under either policy a sample shows the
/// line's shape, not its values ([`masked`]): the page and facts.json outlive
/// the quarantine snapshot they quote (vacuum keeps a run's page), so they
/// hold no address, name or phone; a training-table sample also loses its
/// identifier fields (the serial number that names candidate customers).
/// The values are in the quarantine table, for the retention window.
pub fn samples(
    store: &dyn Store,
    result: &TransitionResult,
) -> lakehouse::Result<Vec<QuarantineSamples>> {
    let Some(quarantine) = &result.quarantine else {
        return Ok(Vec::new());
    };
    let reasons: Vec<&String> = result
        .counts
        .quarantined
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, _)| r)
        .collect();
    if reasons.is_empty() {
        return Ok(Vec::new());
    }
    let frame = tables::read_table(store, quarantine)?;
    let shown = |raw: &str| match quarantine.table {
        Table::MachineLearningQuarantine => masked(&without_identifiers(raw)),
        _ => masked(raw),
    };
    let mut out = Vec::new();
    for reason in reasons {
        let df = frame
            .clone()
            .filter(col("reason").eq(lit(reason.as_str())))
            .select([col("source"), col("line"), col("raw")])
            .limit(report_html::SAMPLES_PER_REASON as IdxSize)
            .collect()
            .map_err(Error::Polars)?;
        let source = df.column("source").and_then(|c| c.str().cloned());
        let line = df.column("line").and_then(|c| c.i64().cloned());
        let raw = df.column("raw").and_then(|c| c.str().cloned());
        let (source, line, raw) = (
            source.map_err(Error::Polars)?,
            line.map_err(Error::Polars)?,
            raw.map_err(Error::Polars)?,
        );
        let lines = (0..df.height())
            .map(|i| {
                let raw = raw.get(i).unwrap_or_default();
                SampleLine {
                    source: source.get(i).unwrap_or_default().to_string(),
                    line: line.get(i).map(|n| n as u64),
                    raw: shorten(&shown(raw)),
                }
            })
            .collect();
        out.push(QuarantineSamples {
            table: quarantine.table,
            reason: reason.clone(),
            lines,
        });
    }
    Ok(out)
}

/// A JSON object's text without the identifier fields.
fn without_identifiers(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(mut fields)) => {
            fields.retain(|k, _| {
                !IDENTIFIER_COLUMNS
                    .iter()
                    .any(|id| id.eq_ignore_ascii_case(k))
            });
            Value::Object(fields).to_string()
        }
        _ => "(not shown: not a JSON object)".to_string(),
    }
}

/// A landing line's shape without its values: in every quoted string that
/// is not a key, each run of letters and digits becomes one `x`; outside
/// strings, each run of digits one `9`. Punctuation, keys and literals stay, so the page still shows
/// what is wrong with the line (a missing quote, a trailing comma, a number
/// where a string belongs), but not whose it is.
pub fn masked(raw: &str) -> String {
    // Each run of letters and digits in a value becomes one `x` (one `9` for
    // a number outside a string): not even a value's length or the places of
    // its digits survive, which would tell serials and names apart.
    fn push_run(out: &mut String, run: &mut bool, alnum: bool, token: char, c: char) {
        if !alnum {
            out.push(c);
        } else if !*run {
            out.push(token);
        }
        *run = alnum;
    }
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len());
    let mut run = false;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '"' {
            push_run(&mut out, &mut run, chars[i].is_numeric(), '9', chars[i]);
            i += 1;
            continue;
        }
        // A string: to its closing quote (escapes skipped) or the line's end.
        let mut end = i + 1;
        while end < chars.len() && chars[end] != '"' {
            end += if chars[end] == '\\' { 2 } else { 1 };
        }
        let end = end.min(chars.len());
        let after = chars[(end + 1).min(chars.len())..]
            .iter()
            .find(|c| !c.is_whitespace());
        let is_key = end < chars.len() && after == Some(&':');
        out.push('"');
        run = false;
        for &c in &chars[i + 1..end] {
            if is_key {
                out.push(c);
            } else {
                push_run(&mut out, &mut run, c.is_alphanumeric(), 'x', c);
            }
        }
        run = false;
        if end < chars.len() {
            out.push('"');
        }
        i = end + 1;
    }
    out
}

fn shorten(raw: &str) -> String {
    match raw.char_indices().nth(report_html::SAMPLE_MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &raw[..cut]),
        None => raw.to_string(),
    }
}

/// Writes facts.json and report.html; returns the page's key.
pub fn write(
    store: &dyn Store,
    report: Option<&Report>,
    facts: &RunFacts,
    definition: &Value,
) -> lakehouse::Result<String> {
    let facts_json = serde_json::to_vec_pretty(facts).expect("facts serialize");
    store.put(&layout::run_facts_key(&facts.run_id), &facts_json)?;
    let key = layout::report_html_key(&facts.run_id);
    let html = report_html::render(report, facts, definition);
    store.put(&key, html.as_bytes())?;
    Ok(key)
}

/// report.json and facts.json of a run, each if present.
pub fn load(
    store: &dyn Store,
    run_id: &RunId,
) -> lakehouse::Result<(Option<Report>, Option<RunFacts>)> {
    fn read<T: serde::de::DeserializeOwned>(
        store: &dyn Store,
        key: &str,
    ) -> lakehouse::Result<Option<T>> {
        match store.get(key) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Damaged {
                    key: store.url(key),
                    what: format!("not readable: {e}"),
                }),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
    Ok((
        read(store, &layout::report_key(run_id))?,
        read(store, &layout::run_facts_key(run_id))?,
    ))
}

/// The state of `definition` that runs the quality gate.
pub fn gate_state(definition: &Value) -> Option<String> {
    definition["States"]
        .as_object()?
        .iter()
        .find(|(_, s)| s["Resource"] == "${QualityGateFunctionArn}")
        .map(|(name, _)| name.clone())
}

#[cfg(test)]
mod tests {
    use super::masked;

    #[test]
    fn a_masked_line_keeps_its_shape_and_loses_its_values() {
        assert_eq!(
            masked(
                r#"{"customerName": "Ann Lee", "email": "Ann.Lee1@test.com", "phone": 8015551212, "x": null}"#
            ),
            r#"{"customerName": "x x", "email": "x.x@x.x", "phone": 9, "x": null}"#
        );
        // Malformed lines keep what makes them malformed.
        assert_eq!(
            masked(r#"{"user": "a@b.c", "x": 1.25,}"#),
            r#"{"user": "x@x.x", "x": 9.9,}"#
        );
        assert_eq!(masked(r#"{"user": "a\"b", "#), r#"{"user": "x\"x", "#);
        assert_eq!(masked(r#"{"email": "cut off"#), r#"{"email": "x x"#);
        // Two serials of different letters and digits look the same.
        assert_eq!(
            masked(r#"{"serialNumber": "a1b23c4d-e5f6-aa00-bb11-c2d3e4f5a6b7"}"#),
            masked(r#"{"serialNumber": "9f8e7d6c-5b4a-3210-fedc-ba9876543210"}"#)
        );
        assert_eq!(
            masked(r#"{"serialNumber": "9f8e7d6c-5b4a-3210-fedc-ba9876543210"}"#),
            r#"{"serialNumber": "x-x-x-x-x"}"#
        );
        assert_eq!(masked(""), "");
    }
}
