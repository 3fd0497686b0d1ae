//! `stedi tables` and `stedi history`: what the catalog publishes and what
//! earlier runs published, in tables that fit a 120-column terminal.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use comfy_table::{ContentArrangement, Table as TextTable, presets};
use lakehouse::Store;
use lakehouse::catalog::CatalogState;
use serde_json::Value;
use zones::{RunId, Table, layout};

/// The widest any listing gets.
pub const WIDTH: u16 = 120;

fn text_table(header: &[&str]) -> TextTable {
    let mut table = TextTable::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH)
        .set_header(header.iter().map(|h| h.to_string()));
    table
}

fn columns_of(catalog: &CatalogState, table: Table) -> String {
    catalog.tables[&table]
        .table
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.ty))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The catalog's tables, one line each; `columns` adds each table's columns.
pub fn tables(catalog: &CatalogState, columns: bool) -> String {
    let mut header = vec!["table", "zone", "rows", "snapshot", "policy"];
    if columns {
        header.push("columns");
    }
    let mut out = text_table(&header);
    for (name, entry) in &catalog.tables {
        let mut row = vec![
            name.to_string(),
            name.zone().as_str().to_string(),
            entry.table.rows.to_string(),
            if entry.table.snapshot.is_empty() {
                "-".to_string()
            } else {
                entry.table.snapshot.clone()
            },
            entry.policy.map_or("-".to_string(), |p| p.to_string()),
        ];
        if columns {
            row.push(columns_of(catalog, *name));
        }
        out.add_row(row);
    }
    format!(
        "{out}\ncatalog version {} (`stedi tables NAME` or `--columns` for columns)\n",
        catalog.version
    )
}

/// One table: where it is, which run wrote it, its columns one per line.
pub fn table(catalog: &CatalogState, store: &dyn Store, table: Table) -> Result<String> {
    let entry = catalog
        .tables
        .get(&table)
        .with_context(|| format!("the catalog has no table `{table}` yet: run `stedi run`"))?;
    let mut out = text_table(&["", ""]);
    out.add_row(vec!["table".to_string(), table.to_string()]);
    out.add_row(vec!["zone".into(), table.zone().as_str().to_string()]);
    out.add_row(vec!["rows".into(), entry.table.rows.to_string()]);
    out.add_row(vec!["snapshot".into(), entry.table.snapshot.clone()]);
    out.add_row(vec!["location".into(), store.url(&entry.table.location)]);
    out.add_row(vec![
        "run".into(),
        entry.run_id.clone().unwrap_or_else(|| "-".into()),
    ]);
    out.add_row(vec![
        "policy".into(),
        entry.policy.map_or("-".to_string(), |p| p.to_string()),
    ]);
    out.add_row(vec![
        "format".into(),
        format!("{:?}", entry.format).to_lowercase(),
    ]);
    let mut columns = text_table(&["column", "type"]);
    for c in &entry.table.columns {
        columns.add_row(vec![c.name.clone(), c.ty.clone()]);
    }
    Ok(format!("{out}\n{columns}\n"))
}

/// A published run: report.json's verdict and rows per table.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRun {
    pub run_id: String,
    pub time: String,
    /// When it published, epoch milliseconds (0 if unknown): the order of `history`.
    pub at_ms: u64,
    pub policy: String,
    pub rows: BTreeMap<String, u64>,
    /// The tables whose snapshot of this run is gone (its folder is empty),
    /// with who deleted it: `vacuumed`, or `erased by <run id>` (an Erase
    /// state deleted it because it held an erased person).
    pub deleted: BTreeMap<String, String>,
}

/// When a run published (epoch milliseconds, and as text): its record's
/// finish time, else the facts' time (then 0 ms: runs from before records).
fn run_time(store: &dyn Store, run_id: &RunId) -> (u64, String) {
    let at_ms = match lakehouse::runs::load(store, run_id) {
        Ok(Some(record)) => record.finished.map_or(record.started_at_ms, |f| f.at_ms),
        _ => {
            if let Ok(bytes) = store.get(&layout::run_facts_key(run_id))
                && let Ok(facts) = serde_json::from_slice::<Value>(&bytes)
                && let Some(at) = facts["written_at"].as_str()
            {
                return (0, at.to_string());
            }
            return (0, "-".into());
        }
    };
    let text = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms),
    )
    .to_string();
    (at_ms, text)
}

/// Every run whose report says it passed the gate (and so published), oldest first.
pub fn published_runs(store: &dyn Store) -> Result<Vec<PublishedRun>> {
    let objects = store.list(layout::runs_prefix())?;
    // Snapshot prefixes that an Erase state deleted, with its run.
    let mut erased: BTreeMap<String, String> = BTreeMap::new();
    for object in objects.iter().filter(|o| o.key.ends_with("/erasure.json")) {
        if let Ok(report) =
            serde_json::from_slice::<zones::erasure::ErasureReport>(&store.get(&object.key)?)
            && let Some(run) = report.run_id
        {
            for prefix in report.snapshots_deleted {
                erased.insert(prefix, run.to_string());
            }
        }
    }
    let mut runs = Vec::new();
    for object in objects {
        let Some(run_id) = object
            .key
            .strip_prefix(layout::runs_prefix())
            .and_then(|k| k.strip_suffix("/report.json"))
            .and_then(|id| RunId::parse(id).ok())
        else {
            continue;
        };
        let Ok(report) = serde_json::from_slice::<Value>(&store.get(&object.key)?) else {
            continue;
        };
        // The publication where the report says it, else (reports from
        // before it) the gate's verdict.
        let published = report["publication"]["published"]
            .as_bool()
            .or_else(|| report["passed"].as_bool())
            .unwrap_or(false);
        if !published {
            continue;
        }
        let rows = report["transitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t["table"].as_str()?.to_string(), t["rows"].as_u64()?)))
            .collect();
        let (at_ms, time) = run_time(store, &run_id);
        let mut deleted = BTreeMap::new();
        for table in Table::PRODUCED {
            let prefix = layout::snapshot_prefix(table, &run_id);
            if store.list(&prefix)?.is_empty() {
                let by = match erased.get(&prefix) {
                    Some(run) => format!("erased by {run}"),
                    None => "vacuumed".to_string(),
                };
                deleted.insert(table.name().to_string(), by);
            }
        }
        runs.push(PublishedRun {
            run_id: run_id.to_string(),
            at_ms,
            time,
            policy: report["policy"].as_str().unwrap_or("-").to_string(),
            rows,
            deleted,
        });
    }
    runs.sort_by(|a, b| (a.at_ms, &a.time, &a.run_id).cmp(&(b.at_ms, &b.time, &b.run_id)));
    Ok(runs)
}

/// The published snapshots of `only` (every produced table by default),
/// oldest first; `*` marks the one the catalog serves now, `vacuumed` one
/// that retention deleted, `erased by <run id>` one an erasure deleted.
pub fn history(catalog: &CatalogState, runs: &[PublishedRun], only: Option<Table>) -> String {
    let mut out = text_table(&["run", "time", "policy", "table", "rows", "current"]);
    let mut shown = 0;
    for run in runs {
        for table in Table::PRODUCED {
            if only.is_some_and(|t| t != table) {
                continue;
            }
            let Some(rows) = run.rows.get(table.name()) else {
                continue;
            };
            let current = catalog
                .tables
                .get(&table)
                .is_some_and(|e| e.run_id.as_deref() == Some(run.run_id.as_str()));
            out.add_row(vec![
                run.run_id.clone(),
                run.time.clone(),
                run.policy.clone(),
                table.to_string(),
                rows.to_string(),
                if current {
                    "*".to_string()
                } else {
                    run.deleted.get(table.name()).cloned().unwrap_or_default()
                },
            ]);
            shown += 1;
        }
    }
    if shown == 0 {
        return "no published snapshot yet: run `stedi run`\n".to_string();
    }
    format!("{out}\n")
}

/// `stedi erase --status`: every erasure request by id and time (UTC),
/// pending or completed by which run; never an address.
pub fn erasure_requests(requests: &[zones::erasure::ErasureRequest]) -> String {
    if requests.is_empty() {
        return "no erasure requests\n".into();
    }
    let time = |ms: u64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string()
    };
    let mut table = TextTable::new();
    table.load_preset(presets::NOTHING).set_header([
        "request",
        "filed",
        "people",
        "status",
        "run",
        "completed",
    ]);
    for r in requests {
        let (status, run, at) = match &r.completed {
            Some(c) if c.found == 0 => (
                "completed: no customer record had the address".to_string(),
                c.run_id.to_string(),
                time(c.at_ms),
            ),
            Some(c) => (
                format!("completed: {} of {} found", c.found, r.subjects.len()),
                c.run_id.to_string(),
                time(c.at_ms),
            ),
            None => match &r.failed {
                Some(f) => (
                    format!("pending: failed ({})", f.problem),
                    f.run_id.to_string(),
                    "-".into(),
                ),
                None => ("pending".to_string(), "-".into(), "-".into()),
            },
        };
        table.add_row([
            r.id.clone(),
            time(r.requested_at_ms),
            r.subjects.len().to_string(),
            status.to_string(),
            run,
            at,
        ]);
    }
    format!("{table}\n")
}
