//! The run summary printed after `stedi run` and by `stedi report`.

use std::fmt::Write as _;

use comfy_table::{Table as TextTable, presets};
use zones::report::Report;

fn rules(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn render(report: &Report, report_location: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run {}  policy {}", report.run_id, report.policy);

    let mut tables = TextTable::new();
    tables.load_preset(presets::NOTHING).set_header([
        "table",
        "zone",
        "in",
        "kept",
        "quarantined",
        "dropped",
        "rows written",
        "snapshot",
        "seconds",
    ]);
    for t in &report.transitions {
        tables.add_row([
            t.table.to_string(),
            t.zone.as_str().to_string(),
            t.counts.input.to_string(),
            t.counts.kept.to_string(),
            t.counts.quarantined_total().to_string(),
            t.counts.dropped_total().to_string(),
            t.rows.to_string(),
            t.snapshot.clone(),
            format!("{:.2}", t.seconds),
        ]);
    }
    let _ = writeln!(out, "{tables}");
    // A join writes a row per match, so its rows are not its kept input rows.
    for t in report
        .transitions
        .iter()
        .filter(|t| t.rows != t.counts.kept)
    {
        let _ = writeln!(
            out,
            "{}: {} kept input rows joined into {} rows written",
            t.table, t.counts.kept, t.rows
        );
    }

    let _ = writeln!(
        out,
        "\nevery input row accounted for (in = kept + quarantined + dropped):"
    );
    for t in &report.transitions {
        let _ = writeln!(
            out,
            "  {:<26} {}  in {} = kept {} + quarantined {} + dropped {}",
            t.table.to_string(),
            if t.accounted { "ok  " } else { "FAIL" },
            t.counts.input,
            t.counts.kept,
            t.counts.quarantined_total(),
            t.counts.dropped_total(),
        );
        if !t.counts.quarantined.is_empty() {
            let _ = writeln!(
                out,
                "  {:<26}       quarantined: {}",
                "",
                rules(&t.counts.quarantined)
            );
        }
        if !t.counts.dropped.is_empty() {
            let _ = writeln!(
                out,
                "  {:<26}       dropped: {}",
                "",
                rules(&t.counts.dropped)
            );
        }
        if !t.counts.repaired.is_empty() {
            let _ = writeln!(
                out,
                "  {:<26}       repaired (lossless, kept in the counts above): {}",
                "",
                rules(&t.counts.repaired)
            );
        }
    }

    if !report.rubric_comparison.is_empty() {
        let _ = writeln!(
            out,
            "\nstrict vs rubric on the same input (rows written; by rule, the input rows strict drops or \
             quarantines beyond rubric):"
        );
        for c in &report.rubric_comparison {
            let by_rule = if c.by_rule.is_empty() {
                "-".to_string()
            } else {
                c.by_rule
                    .iter()
                    .map(|(k, v)| format!("{k} {v:+}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "  {:<26} strict {:>9}  rubric {:>9}  ({:+})  strict drops vs rubric: {by_rule}",
                c.table.to_string(),
                c.strict_rows,
                c.rubric_rows,
                c.strict_rows as i64 - c.rubric_rows as i64,
            );
        }
    }

    let passed = report.checks.iter().filter(|c| c.passed).count();
    let _ = writeln!(
        out,
        "\nquality gate: checks {} ({passed}/{} passed); {}",
        if report.passed { "PASSED" } else { "FAILED" },
        report.checks.len(),
        report.publication.detail,
    );
    for c in report.checks.iter().filter(|c| !c.passed) {
        let _ = writeln!(out, "  failed: {} ({})", c.name, c.detail);
    }
    if let Some(key) = &report.pseudonym_key {
        let _ = match &key.rotated_from {
            Some(old) => writeln!(
                out,
                "pseudonym key: fingerprint {} (ROTATED from {old}: every customerKey changed)",
                key.fingerprint
            ),
            None => writeln!(out, "pseudonym key: fingerprint {}", key.fingerprint),
        };
    }
    if let Some(peak) = report.peak_rss_mib {
        let _ = writeln!(out, "peak memory: {peak:.0} MiB");
    }
    let _ = writeln!(out, "report: {report_location}");
    out
}

/// The erasure lines of a run that applied erasure requests (from
/// `_runs/<run id>/erasure.json`); nothing for a run that applied none.
pub fn erasure(report: &zones::erasure::ErasureReport, location: &str) -> String {
    let mut out = String::new();
    if report.requests.is_empty() {
        return out;
    }
    let older_versions: u64 = report
        .objects_rewritten
        .iter()
        .map(|o| o.older_versions_deleted)
        .sum();
    let verification = match &report.problem {
        Some(problem) => format!("INCOMPLETE, the request(s) stay pending: {problem}"),
        None if report.verification.passed => format!(
            "verification: the person is found nowhere ({} objects searched, {} Parquet rows read)",
            report.verification.objects_searched, report.verification.parquet_rows_read
        ),
        None => format!(
            "verification: STILL FOUND in {}",
            report.verification.found_in.join(", ")
        ),
    };
    let _ = writeln!(
        out,
        "erasure: {} request(s) applied ({}); {} landing object(s) rewritten ({} older version(s) deleted); landing records removed: {}; rows dropped as erased: {}; {} older snapshot(s) and {} other object(s) deleted; {verification}",
        report.requests.len(),
        report.requests.join(", "),
        report.objects_rewritten.len(),
        older_versions,
        rules(&report.landing_records_removed),
        rules(&report.rows_dropped),
        report.snapshots_deleted.len(),
        report.objects_deleted.len(),
    );
    let _ = writeln!(out, "erasure report: {location}");
    out
}
