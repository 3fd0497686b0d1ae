//! Lambda `quality-gate`: the last state of every run. Runs the named SQL
//! checks of `zones::checks` through the query engine over this run's
//! snapshots, writes `_runs/<run id>/report.json`, and only if every check
//! passes switches the catalog to the new snapshots in one atomic publish.
//!
//! It also writes the run's page, `_runs/<run id>/report.html` (`page`), on
//! every verdict.
//!
//! Deliberately absent: any transition logic; a failed gate publishes nothing.

pub mod page;

use lakehouse::catalog::{CatalogState, Entry, Format, landing_entry};
use lakehouse::{Env, Error, QueryEngine};
use zones::checks::{self, Check, Expect};
use zones::contract::{CheckOutcome, GateRequest, GateResult, TaskError};
use zones::report::Report;
use zones::{Dataset, ErrorName, layout};

pub fn run(env: &Env, request: &GateRequest) -> Result<GateResult, TaskError> {
    let started = std::time::Instant::now();
    let store = env.store.as_ref();
    let current = env.catalog.load().map_err(TaskError::from)?;
    let entries = entries(request);
    // The catalog as it will be: this run's snapshots over the published ones.
    let mut view = current.clone();
    for entry in &entries {
        view.tables.insert(entry.table.table, entry.clone());
    }
    // On Glue, the view is registered in a database of its own for Athena.
    let staged = env
        .catalog
        .stage(&request.run_id, &view)
        .map_err(TaskError::from)?;
    let outcomes: Vec<CheckOutcome> = checks::checks(request.policy, &request.results)
        .iter()
        .map(|c| evaluate(env.query.as_ref(), &staged, c))
        .collect();
    if let Err(e) = env.catalog.unstage(&staged) {
        tracing::warn!(error = %e, "could not remove the staged view");
    }
    for outcome in &outcomes {
        tracing::info!(check = %outcome.name, passed = outcome.passed, detail = %outcome.detail, "quality check");
    }
    let report = Report::build(request, outcomes);
    let report_key = layout::report_key(&request.run_id);
    let json = serde_json::to_vec_pretty(&report).expect("report serializes");
    store.put(&report_key, &json).map_err(TaskError::from)?;

    // The page never changes the verdict: after a publish, failing the task
    // over it would make a retry publish twice.
    let written = |outcome: Result<GateResult, TaskError>| {
        if let Err(e) = write_page(env, request, &report, started, &outcome) {
            tracing::warn!(run_id = %request.run_id, error = %e, "could not write the run's page");
        }
        outcome
    };

    if !report.passed {
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} ({})", c.name, c.detail))
            .collect();
        return written(Err(TaskError {
            name: ErrorName::QualityGateFailed,
            cause: format!(
                "{} of {} checks failed: {}; nothing was published; report at {}",
                failed.len(),
                report.checks.len(),
                failed.join(", "),
                store.url(&report_key)
            ),
        }));
    }
    let catalog_version = match env.catalog.publish(&current, entries) {
        Ok(version) => version,
        Err(e) => return written(Err(TaskError::from(e))),
    };
    tracing::info!(run_id = %request.run_id, catalog_version, "published");
    written(Ok(GateResult {
        run_id: request.run_id.clone(),
        passed: true,
        checks: report.checks.clone(),
        report_key,
        catalog_version,
    }))
}

/// Writes the run's page as the gate sees it: the transitions' results, and
/// its own outcome (the `stedi` binary redraws it with every state's).
fn write_page(
    env: &Env,
    request: &GateRequest,
    report: &Report,
    started: std::time::Instant,
    outcome: &Result<GateResult, TaskError>,
) -> Result<(), TaskError> {
    let definition: serde_json::Value =
        serde_json::from_str(zones::STATE_MACHINE).expect("the compiled-in definition is JSON");
    let store = env.store.as_ref();
    let mut facts = page::gather(
        store,
        &request.run_id,
        request.policy,
        &request.results,
        "quality-gate",
        zones::STATE_MACHINE,
    );
    let state = page::gate_state(&definition).unwrap_or_else(|| "QualityGate".into());
    let (status, error) = match outcome {
        Ok(_) => (report_html::StateStatus::Succeeded, None),
        Err(e) => (report_html::StateStatus::Failed, Some(e)),
    };
    facts.states.push(report_html::StateRecord {
        name: state.clone(),
        status,
        started: None,
        seconds: started.elapsed().as_secs_f64(),
        retries: 0,
        error: error.map(|e| e.name.as_str().to_string()),
        cause: error.map(|e| e.cause.clone()),
    });
    facts.failure = error.map(|e| report_html::RunFailure {
        state: Some(state),
        error: e.name.as_str().to_string(),
        cause: e.cause.clone(),
    });
    page::write(store, Some(report), &facts, &definition).map_err(TaskError::from)?;
    Ok(())
}

/// Catalog entries for everything the run wrote, plus the landing tables.
fn entries(request: &GateRequest) -> Vec<Entry> {
    let mut entries = Vec::new();
    for result in request.results.values() {
        for table_ref in std::iter::once(&result.table).chain(result.quarantine.as_ref()) {
            entries.push(Entry {
                table: table_ref.clone(),
                format: Format::Parquet,
                run_id: Some(request.run_id.clone()),
                policy: Some(request.policy),
            });
        }
    }
    for dataset in Dataset::ALL {
        if let Some(result) = request.results.get(&checks::trusted_table(dataset)) {
            entries.push(landing_entry(dataset, result.input_rows));
        }
    }
    entries
}

fn evaluate(engine: &dyn QueryEngine, view: &CatalogState, check: &Check) -> CheckOutcome {
    let verdict = engine
        .execute(view, &check.sql)
        .and_then(|df| match &check.expect {
            Expect::NoViolations => {
                let violations = df
                    .column("violations")
                    .and_then(|c| c.cast(&polars::prelude::DataType::Int64))
                    .map_err(Error::Query)?
                    .i64()
                    .map_err(Error::Query)?
                    .get(0);
                Ok(match violations {
                    Some(0) => (true, "0 violations".to_string()),
                    Some(n) => (false, format!("{n} violations")),
                    None => (false, "the check returned no row".to_string()),
                })
            }
            Expect::ColumnsExclude(forbidden) => {
                let present: Vec<&str> = df
                    .get_column_names()
                    .into_iter()
                    .map(|n| n.as_str())
                    // Athena lowercases column names.
                    .filter(|n| forbidden.iter().any(|f| f.eq_ignore_ascii_case(n)))
                    .collect();
                Ok(if present.is_empty() {
                    (true, "no identifier column".to_string())
                } else {
                    (
                        false,
                        format!("identifier columns present: {}", present.join(", ")),
                    )
                })
            }
        });
    let (passed, detail) = verdict.unwrap_or_else(|e| (false, format!("check could not run: {e}")));
    // The offending rows a counting check found ("N violations").
    let violations = match check.expect {
        Expect::NoViolations => detail
            .strip_suffix(" violations")
            .and_then(|n| n.parse().ok()),
        Expect::ColumnsExclude(_) => None,
    };
    CheckOutcome {
        name: check.name.clone(),
        passed,
        detail,
        sql: check.sql.clone(),
        violations,
    }
}
