//! What every transition handler does around its `zones` plan: resolve the
//! run's input snapshots, write the outputs under the run's snapshot prefix
//! (the same keys on a retry), and describe the result.

use std::collections::BTreeMap;
use std::time::Instant;

use polars::prelude::*;
use zones::contract::{TableRef, TransitionRequest, TransitionResult};
use zones::transitions::Outcome;
use zones::{Policy, Table, layout};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::tables;

/// An input snapshot produced earlier in this run, named in the request.
pub fn input(store: &dyn Store, request: &TransitionRequest, table: Table) -> Result<LazyFrame> {
    let table_ref = request.inputs.get(&table).ok_or(Error::MissingInput {
        transition: request.transition,
        input: table,
    })?;
    tables::read_table(store, table_ref)
}

/// The rubric shadow of an input (strict runs only).
pub fn rubric_input(
    store: &dyn Store,
    request: &TransitionRequest,
    table: Table,
) -> Result<LazyFrame> {
    let table_ref = request
        .rubric_inputs
        .get(&table)
        .and_then(Option::as_ref)
        .ok_or(Error::MissingShadow {
            transition: request.transition,
            input: table,
        })?;
    tables::read_table(store, table_ref)
}

/// What a transition wrote, before its result is described.
#[derive(Debug)]
pub struct Produced {
    pub table: TableRef,
    /// Rows of the main input, quarantined landing lines included.
    pub input_rows: u64,
    pub kept_rows: u64,
    pub drops: BTreeMap<String, u64>,
    /// Lossless repairs made while reading landing data, by kind (empty
    /// for transitions that read tables).
    pub repaired: BTreeMap<String, u64>,
    /// The quarantine table (landing lines that failed to parse, or
    /// machine_learning_curated's ambiguous readings).
    pub quarantine: Option<Quarantine>,
    /// Under strict: what the rubric policy gives on the same input.
    pub rubric: Option<Shadow>,
    /// Landing objects that held erased records, with how many.
    pub erased_objects: BTreeMap<String, u64>,
    /// The fingerprint of the pseudonym key used (machine_learning_curated under strict).
    pub pseudonym_key_fingerprint: Option<String>,
}

/// A transition's quarantine table.
#[derive(Debug)]
pub enum Quarantine {
    /// Its rows, to be written as one part by [`finish`].
    Rows(Table, DataFrame),
    /// Already written part by part while landing objects streamed, and
    /// its rows counted by reason.
    Written(TableRef, BTreeMap<String, u64>),
}

/// The rubric policy's result for a table of a strict run.
#[derive(Debug)]
pub struct Shadow {
    /// The shadow snapshot, when a later transition reads it.
    pub table: Option<TableRef>,
    pub rows: u64,
    pub drops: BTreeMap<String, u64>,
}

/// Writes an in-memory outcome (and its rubric shadow) as single-part snapshots.
/// `landing_quarantine` holds the lines that failed to parse, if the input was landing data.
pub fn write_outcome(
    store: &dyn Store,
    request: &TransitionRequest,
    mut outcome: Outcome,
    rubric: Option<Outcome>,
    landing_quarantine: Option<(Table, DataFrame)>,
) -> Result<Produced> {
    let (run_id, table) = (&request.run_id, request.transition);
    let table_ref = tables::write_table(
        store,
        table,
        &layout::snapshot_prefix(table, run_id),
        run_id,
        &mut outcome.table,
    )?;
    let rubric = match rubric {
        Some(mut shadow) => {
            let prefix = layout::rubric_shadow_prefix(run_id, table);
            let written = tables::write_table(store, table, &prefix, run_id, &mut shadow.table)?;
            Some(Shadow {
                rows: written.rows,
                table: Some(written),
                drops: shadow.drops,
            })
        }
        None => None,
    };
    let unparsed = landing_quarantine
        .as_ref()
        .map_or(0, |(_, frame)| frame.height() as u64);
    let quarantine = match (landing_quarantine, outcome.quarantine.take()) {
        (Some((table, frame)), None) => Some(Quarantine::Rows(table, frame)),
        (None, Some(frame)) => Some(Quarantine::Rows(Table::MachineLearningQuarantine, frame)),
        (None, None) => None,
        (Some(_), Some(_)) => {
            unreachable!("a transition quarantines either while parsing or while joining")
        }
    };
    Ok(Produced {
        table: table_ref,
        input_rows: outcome.input_rows + unparsed,
        kept_rows: outcome.kept_rows,
        drops: outcome.drops,
        repaired: BTreeMap::new(),
        quarantine,
        rubric,
        erased_objects: BTreeMap::new(),
        pseudonym_key_fingerprint: None,
    })
}

/// Writes the quarantine table and describes the transition's result.
pub fn finish(
    store: &dyn Store,
    request: &TransitionRequest,
    started: Instant,
    produced: Produced,
) -> Result<TransitionResult> {
    let run_id = &request.run_id;
    let mut quarantined = BTreeMap::new();
    let quarantine = match produced.quarantine {
        Some(Quarantine::Written(table, reasons)) => {
            quarantined = reasons;
            Some(table)
        }
        Some(Quarantine::Rows(table, mut frame)) => {
            count_reasons(&frame, &mut quarantined)?;
            Some(tables::write_table(
                store,
                table,
                &layout::snapshot_prefix(table, run_id),
                run_id,
                &mut frame,
            )?)
        }
        None => None,
    };
    let (rubric, rubric_rows, rubric_dropped) = match produced.rubric {
        Some(shadow) => (shadow.table, Some(shadow.rows), shadow.drops),
        None => (None, None, BTreeMap::new()),
    };
    let result = TransitionResult {
        transition: request.transition,
        policy: request.policy,
        table: produced.table,
        quarantine,
        rubric,
        rubric_rows,
        input_rows: produced.input_rows,
        kept_rows: produced.kept_rows,
        quarantined,
        dropped: produced.drops,
        repaired: produced.repaired,
        rubric_dropped,
        erased_objects: produced.erased_objects,
        pseudonym_key_fingerprint: produced.pseudonym_key_fingerprint,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_mib: crate::peak_rss_mib(),
    };
    tracing::info!(
        table = %request.transition,
        policy = %request.policy,
        rows = result.table.rows,
        input_rows = result.input_rows,
        seconds = result.seconds,
        "transition done"
    );
    Ok(result)
}

/// Adds per-rule counts (drops or quarantine reasons) into a running total.
pub fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (rule, n) in from {
        *into.entry(rule.clone()).or_default() += n;
    }
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
