//! What every transition handler does around its `zones` plan: resolve the
//! run's input snapshots, write the outputs under the run's snapshot prefix
//! (the same keys on a retry), and describe the result.

use std::collections::BTreeMap;
use std::time::Instant;

use polars::prelude::*;
use zones::contract::{TransitionRequest, TransitionResult};
use zones::transitions::Outcome;
use zones::{Policy, Table, layout};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::tables;

/// An input snapshot produced earlier in this run, named in the request.
pub fn input(store: &dyn Store, request: &TransitionRequest, table: Table) -> Result<LazyFrame> {
    let table_ref = request.inputs.get(&table).ok_or_else(|| {
        Error::InvalidRequest(format!("{} needs input `{table}`, which the request does not name", request.transition))
    })?;
    tables::read_table(store, table_ref)
}

/// The rubric shadow of an input (strict runs only).
pub fn rubric_input(store: &dyn Store, request: &TransitionRequest, table: Table) -> Result<LazyFrame> {
    let table_ref = request.rubric_inputs.get(&table).and_then(Option::as_ref).ok_or_else(|| {
        Error::InvalidRequest(format!(
            "{} under strict needs the rubric shadow of `{table}`, which the request does not name",
            request.transition
        ))
    })?;
    tables::read_table(store, table_ref)
}

/// Rows quarantined while parsing landing data, for [`complete`].
#[derive(Debug)]
pub struct LandingQuarantine {
    pub table: Table,
    pub frame: DataFrame,
}

/// Writes the outcome (and under strict its rubric shadow) and builds the result.
pub fn complete(
    store: &dyn Store,
    request: &TransitionRequest,
    started: Instant,
    landing_quarantine: Option<LandingQuarantine>,
    mut outcome: Outcome,
    rubric: Option<Outcome>,
) -> Result<TransitionResult> {
    let run_id = &request.run_id;
    let table = request.transition;
    let table_ref =
        tables::write_table(store, table, &layout::snapshot_prefix(table, run_id), run_id, &mut outcome.table)?;

    let mut quarantined = BTreeMap::new();
    let mut landing_lines_quarantined = 0;
    let quarantine = match (landing_quarantine, outcome.quarantine.take()) {
        (Some(LandingQuarantine { table: q, mut frame }), None) => {
            count_reasons(&frame, &mut quarantined)?;
            landing_lines_quarantined = frame.height() as u64;
            Some(tables::write_table(store, q, &layout::snapshot_prefix(q, run_id), run_id, &mut frame)?)
        }
        (None, Some(mut frame)) => {
            count_reasons(&frame, &mut quarantined)?;
            let q = Table::MachineLearningQuarantine;
            Some(tables::write_table(store, q, &layout::snapshot_prefix(q, run_id), run_id, &mut frame)?)
        }
        (None, None) => None,
        (Some(_), Some(_)) => unreachable!("a transition quarantines either while parsing or while joining"),
    };

    let (rubric_ref, rubric_dropped) = match rubric {
        Some(mut shadow) => {
            let prefix = layout::rubric_shadow_prefix(run_id, table);
            (Some(tables::write_table(store, table, &prefix, run_id, &mut shadow.table)?), shadow.drops)
        }
        None => (None, BTreeMap::new()),
    };

    let result = TransitionResult {
        transition: table,
        policy: request.policy,
        table: table_ref,
        quarantine,
        rubric: rubric_ref,
        input_rows: outcome.input_rows + landing_lines_quarantined,
        kept_rows: outcome.kept_rows,
        quarantined,
        dropped: outcome.drops,
        rubric_dropped,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_mib: crate::peak_rss_mib(),
    };
    tracing::info!(
        table = %table,
        policy = %request.policy,
        rows = result.table.rows,
        input_rows = result.input_rows,
        seconds = result.seconds,
        "transition done"
    );
    Ok(result)
}

fn count_reasons(frame: &DataFrame, into: &mut BTreeMap<String, u64>) -> Result<()> {
    for reason in frame.column("reason")?.str()?.iter().flatten() {
        *into.entry(reason.to_string()).or_default() += 1;
    }
    Ok(())
}

/// Whether a strict run must also compute the rubric shadow.
pub fn wants_rubric_shadow(request: &TransitionRequest) -> bool {
    request.policy == Policy::Strict
}
