//! What `stedi vacuum` prints: per table, the snapshots and objects deleted
//! (or, on a dry run, that would be), their bytes, the rubric shadows, the
//! Distributed Maps' result files, and the snapshots that remain; then each snapshot folder deleted.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use comfy_table::{Table as TextTable, presets};
use report_html::bytes;
use zones::contract::VacuumResult;
use zones::retention::{Kind, Plan};

/// The summary of a vacuum (see the module docs).
pub fn render(plan: &Plan, result: &VacuumResult) -> String {
    let mut out = String::new();
    let verb = if result.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let _ = writeln!(
        out,
        "vacuum as of {} (retain {}, keep the last {} published run{}){}",
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(result.now_ms)
        ),
        humantime::format_duration(std::time::Duration::from_millis(result.retain_ms)),
        result.keep_runs,
        if result.keep_runs == 1 { "" } else { "s" },
        if result.dry_run {
            ": dry run, nothing deleted"
        } else {
            ""
        },
    );
    let mut table = TextTable::new();
    table.load_preset(presets::NOTHING).set_header([
        "table",
        "snapshots",
        "objects",
        "bytes",
        "shadow objects",
        "shadow bytes",
        "map results",
        "snapshots kept",
    ]);
    for (name, t) in &result.tables {
        table.add_row([
            name.to_string(),
            t.snapshots.to_string(),
            t.objects.to_string(),
            bytes(t.bytes),
            t.shadow_objects.to_string(),
            bytes(t.shadow_bytes),
            format!("{} ({})", t.map_result_objects, bytes(t.map_result_bytes)),
            t.snapshots_kept.to_string(),
        ]);
    }
    if !result.tables.is_empty() {
        let _ = writeln!(out, "{table}");
    }
    // Each folder, with its objects and bytes.
    let mut folders: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for d in &plan.delete {
        let folder = match d.kind {
            Kind::Snapshot => zones::layout::snapshot_prefix(d.table, &d.run_id),
            Kind::RubricShadow => zones::layout::rubric_shadow_prefix(&d.run_id, d.table),
            Kind::MapResults => zones::layout::map_results_table_prefix(&d.run_id, d.table),
        };
        let entry = folders.entry(folder).or_default();
        entry.0 += 1;
        entry.1 += d.size;
    }
    for (folder, (objects, size)) in &folders {
        let _ = writeln!(
            out,
            "  {verb} {folder} ({objects} objects, {})",
            bytes(*size)
        );
    }
    for name in &result.staging_dropped {
        let _ = writeln!(out, "  {verb} staging database {name}");
    }
    let _ = writeln!(
        out,
        "{verb} {} objects, {} in {} folders; {} staging databases ({:.2}s)",
        result.objects,
        bytes(result.bytes),
        folders.len(),
        result.staging_dropped.len(),
        result.seconds
    );
    out
}
