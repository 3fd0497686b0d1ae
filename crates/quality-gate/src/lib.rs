//! Lambda `quality-gate`: the last state of every run. Runs the named SQL
//! checks of `zones::checks` through the query engine over this run's
//! snapshots, and only if every check passes switches the catalog to the new
//! snapshots in one atomic publish, guarded by the catalog version the run
//! started from. `_runs/<run id>/report.json` then says what happened: the
//! checks, and whether the run was published (or why not).
//!
//! It also writes the run's page, `_runs/<run id>/report.html` (`page`), on
//! every verdict, and then deletes the run's rubric shadows
//! (`_runs/<run id>/rubric/`): they hold personal data and served only the
//! run's transitions, whose counts the report keeps.
//!
//! The same function serves the `Vacuum` state ([`handle`] tells the two
//! requests apart): it owns the catalog switch, so it is the one function
//! whose role reads the catalog and may delete what the catalog no longer
//! references (`lakehouse::vacuum`).
//!
//! Deliberately absent: any transition logic; a failed gate publishes nothing.

pub mod page;

use lakehouse::catalog::{CatalogState, Entry, Format, landing_entry};
use lakehouse::{Env, Error, QueryEngine, runs, tables};
use zones::checks::{self, Check, Expect};
use zones::contract::{
    CheckOutcome, GateFunctionRequest, GateFunctionResult, GateRequest, GateResult, TaskError,
    VacuumRequest, VacuumResult,
};
use zones::report::{Publication, Report};
use zones::{Dataset, ErrorName, RunId, Table, layout};

/// The function's entry point: the gate, or a vacuum.
pub fn handle(env: &Env, request: &GateFunctionRequest) -> Result<GateFunctionResult, TaskError> {
    match request {
        GateFunctionRequest::Gate(gate) => run(env, gate).map(GateFunctionResult::Gate),
        GateFunctionRequest::Vacuum(vacuum) => {
            self::vacuum(env, vacuum).map(GateFunctionResult::Vacuum)
        }
    }
}

/// The `Vacuum` state: deletes what retention no longer keeps, at the
/// function's clock (`lakehouse::vacuum`).
pub fn vacuum(env: &Env, request: &VacuumRequest) -> Result<VacuumResult, TaskError> {
    let (_, result) = lakehouse::vacuum::vacuum(env, &request.vacuum).map_err(TaskError::from)?;
    Ok(result)
}

/// Deletes the run's rubric shadows once the gate has run; a failure is
/// logged, and vacuum deletes them later (the run is no longer live).
fn delete_shadows(env: &Env, run_id: &zones::RunId) {
    match lakehouse::vacuum::delete_shadows(env, run_id) {
        Ok((objects, bytes)) if objects > 0 => {
            tracing::info!(%run_id, objects, bytes, "deleted the rubric shadows")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(%run_id, error = %e, "could not delete the rubric shadows"),
    }
}

pub fn run(env: &Env, request: &GateRequest) -> Result<GateResult, TaskError> {
    let started = std::time::Instant::now();
    let run_id = &request.run_id;
    let report_key = layout::report_key(run_id);
    let current = env.catalog.load().map_err(TaskError::from)?;
    if current.published_by.as_deref() == Some(run_id.as_str()) {
        // A retry of a gate whose publish went through before it could answer.
        return already_published(env, request, current.version);
    }
    let query = env.query().map_err(TaskError::from)?;
    let (record, current) = runs::start(env, run_id, request.policy).map_err(TaskError::from)?;
    own_snapshots(env, request).map_err(TaskError::from)?;
    let entries = entries(request);
    // The catalog as it will be: this run's snapshots over the published ones.
    let mut view = current.clone();
    for entry in &entries {
        view.tables.insert(entry.table.table, entry.clone());
    }
    // On Glue, the view is registered in a database of its own for Athena.
    let staged = env.catalog.stage(run_id, &view).map_err(TaskError::from)?;
    let outcomes: Vec<CheckOutcome> = checks::checks(request.policy, &request.results)
        .iter()
        .map(|c| evaluate(query, &staged, c))
        .collect();
    if let Err(e) = env.catalog.unstage(&staged) {
        tracing::warn!(error = %e, "could not remove the staged view");
    }
    for outcome in &outcomes {
        tracing::info!(check = %outcome.name, passed = outcome.passed, detail = %outcome.detail, "quality check");
    }
    let passed = outcomes.iter().all(|c| c.passed);

    // The key fingerprint of the training table published so far: a
    // different one now is a rotation, which the report names.
    let previous_fingerprint = previous_key_fingerprint(env);
    // Publish only if every check passed, and only over the catalog version
    // the run started from.
    let (publication, error) = if !passed {
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} ({})", c.name, c.detail))
            .collect();
        let why = format!(
            "{} of {} checks failed: {}",
            failed.len(),
            outcomes.len(),
            failed.join(", ")
        );
        let error = TaskError {
            name: ErrorName::QualityGateFailed,
            cause: format!(
                "{why}; nothing was published; report at {}",
                env.store.url(&report_key)
            ),
        };
        (Publication::not_published(why), Some(error))
    } else {
        match env.catalog.publish(&record.base, run_id, entries) {
            Ok(version) => (Publication::published(version), None),
            Err(e) => (Publication::not_published(e.to_string()), Some(e.into())),
        }
    };
    let mut report = Report::build(request, outcomes, publication);
    if let Some(key) = &mut report.pseudonym_key {
        key.rotated_from = previous_fingerprint.filter(|p| *p != key.fingerprint);
    }
    let json = serde_json::to_vec_pretty(&report).expect("report serializes");
    env.store.put(&report_key, &json).map_err(TaskError::from)?;
    // A verdict ends the run; a transient failure leaves it for a retry.
    let verdict = error
        .as_ref()
        .is_none_or(|e| e.name != ErrorName::Transient && e.name != ErrorName::Internal);
    if verdict {
        runs::finish(
            env,
            &record,
            report.publication.published,
            &report.publication.detail,
        )
        .map_err(TaskError::from)?;
    }
    // The page never changes the verdict: after a publish, failing the task
    // over it would make a retry publish twice.
    if let Err(e) = write_page(env, request, &report, started, error.as_ref()) {
        tracing::warn!(%run_id, error = %e, "could not write the run's page");
    }
    // Pass or fail, the shadows have served: the report holds their counts.
    delete_shadows(env, run_id);
    if let Some(error) = error {
        return Err(error);
    }
    let catalog_version = report
        .publication
        .catalog_version
        .expect("a published report has its version");
    tracing::info!(%run_id, catalog_version, "published");
    Ok(published(run_id, report, report_key, catalog_version))
}

/// The gate's answer once `run_id` is published as `catalog_version`.
fn published(
    run_id: &RunId,
    report: Report,
    report_key: String,
    catalog_version: u64,
) -> GateResult {
    GateResult {
        run_id: run_id.clone(),
        passed: true,
        checks: report.checks,
        report_key,
        catalog_version,
    }
}

/// The answer to a retried gate whose publish already went through: the
/// report says so, the run is marked finished, nothing is published twice.
fn already_published(
    env: &Env,
    request: &GateRequest,
    catalog_version: u64,
) -> Result<GateResult, TaskError> {
    let run_id = &request.run_id;
    let report_key = layout::report_key(run_id);
    let mut report: Report = env
        .store
        .get(&report_key)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| Report::build(request, Vec::new(), Publication::default()));
    report.publication = Publication::published(catalog_version);
    let json = serde_json::to_vec_pretty(&report).expect("report serializes");
    env.store.put(&report_key, &json).map_err(TaskError::from)?;
    if let Err(e) = write_page(env, request, &report, std::time::Instant::now(), None) {
        tracing::warn!(%run_id, error = %e, "could not write the run's page");
    }
    if let Some(record) = runs::load(env.store.as_ref(), run_id).map_err(TaskError::from)?
        && record.finished.is_none()
    {
        runs::finish(env, &record, true, &report.publication.detail).map_err(TaskError::from)?;
    }
    delete_shadows(env, run_id);
    Ok(published(run_id, report, report_key, catalog_version))
}

/// Writes the run's page as the gate sees it: the transitions' results, and
/// its own outcome (the `stedi` binary redraws it with every state's).
fn write_page(
    env: &Env,
    request: &GateRequest,
    report: &Report,
    started: std::time::Instant,
    error: Option<&TaskError>,
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
    let status = match error {
        None => report_html::StateStatus::Succeeded,
        Some(_) => report_html::StateStatus::Failed,
    };
    facts.states.push(report_html::StateRecord {
        name: state.clone(),
        status,
        started: None,
        seconds: started.elapsed().as_secs_f64(),
        retries: 0,
        error: error.map(|e| e.name.as_str().to_string()),
        cause: error.map(|e| e.cause.clone()),
        items: None,
    });
    facts.failure = error.map(|e| report_html::RunFailure {
        state: Some(state),
        error: e.name.as_str().to_string(),
        cause: e.cause.clone(),
    });
    page::write(store, Some(report), &facts, &definition).map_err(TaskError::from)?;
    Ok(())
}

/// Refuses results that do not describe this run's five snapshots as they
/// were sealed: a table missing, a snapshot of another run or location, a
/// row count or manifest that differs from the one sealed (a mistaken or
/// edited state machine definition must not publish a mixed catalog).
fn own_snapshots(env: &Env, request: &GateRequest) -> Result<(), Error> {
    let run_id = &request.run_id;
    let foreign = |what: String| Error::ForeignResults {
        run_id: run_id.to_string(),
        what,
    };
    let missing: Vec<&str> = Table::PRODUCED
        .iter()
        .filter(|t| !request.results.contains_key(t))
        .map(|t| t.name())
        .collect();
    if !missing.is_empty() {
        return Err(foreign(format!(
            "no result for {}; a run publishes all five tables",
            missing.join(", ")
        )));
    }
    for result in request.results.values() {
        for table in std::iter::once(&result.table).chain(result.quarantine.as_ref()) {
            let location = layout::snapshot_prefix(table.table, run_id);
            if table.location != location || table.snapshot != run_id.as_str() {
                return Err(foreign(format!(
                    "{} points at `{}` (snapshot {}), not at `{location}`",
                    table.table, table.location, table.snapshot
                )));
            }
            let manifest = tables::pinned_manifest(env.store.as_ref(), table)?
                .ok_or_else(|| foreign(format!("{} has no manifest", table.table)))?;
            if manifest.rows != table.rows {
                return Err(foreign(format!(
                    "{} claims {} rows, its snapshot holds {}",
                    table.table, table.rows, manifest.rows
                )));
            }
        }
    }
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
                run_id: Some(request.run_id.to_string()),
                policy: Some(request.policy),
            });
        }
    }
    for dataset in Dataset::ALL {
        if let Some(result) = request.results.get(&checks::trusted_table(dataset)) {
            // The records that parse, what `COUNT(*)` over the landing table
            // gives; the quarantined ones are in the quarantine table.
            let counts = &result.counts;
            entries.push(landing_entry(
                dataset,
                counts.input - counts.quarantined_total(),
            ));
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

/// The pseudonym key fingerprint in the report of the run whose
/// machine_learning_curated the catalog points at (None if there is none,
/// or it was published before reports recorded fingerprints).
fn previous_key_fingerprint(env: &Env) -> Option<String> {
    let catalog = env.catalog.load().ok()?;
    let run_id = catalog.get(Table::MachineLearningCurated)?.run_id.clone()?;
    let run_id = zones::RunId::parse(&run_id).ok()?;
    let bytes = env.store.get(&zones::layout::report_key(&run_id)).ok()?;
    // Only the key's part: a report of an older shape still names it.
    #[derive(serde::Deserialize)]
    struct KeyOnly {
        pseudonym_key: Option<zones::report::KeyUse>,
    }
    let report: KeyOnly = serde_json::from_slice(&bytes).ok()?;
    Some(report.pseudonym_key?.fingerprint)
}
