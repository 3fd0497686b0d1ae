//! Lambda `landing-to-trusted`: transitions 1, 2 and 4 (customer_trusted,
//! accelerometer_trusted, step_trainer_trusted). Each landing object is read
//! and parsed once, bad lines are quarantined in the same pass. Customers
//! (small, and deduped across objects under strict) go through the policy's
//! Polars plan whole; readings are streamed in batches of consecutive objects,
//! one batch per core in flight, each object read piece by piece and judged
//! while parsing by the policy's `ReadingRule` (and under strict the
//! rubric's, from the same pass), the batch's rows gathered into Parquet
//! parts of a fixed number of rows, so memory depends on neither the size nor
//! the number of objects. The local runner calls the same [`run`].
//!
//! Deliberately absent: catalog switches (the quality gate publishes) and
//! environment reads (main.rs parses configuration once).

use std::collections::BTreeMap;
use std::time::Instant;

use lakehouse::tables::{PartInfo, PartWriter};
use lakehouse::{Env, Error, erasure, tables};
use polars::prelude::*;
use zones::contract::{EraseRequest, TableRef, TaskError, TransitionRequest, TransitionResult};
use zones::erasure::ErasureReport;
use zones::layout::SnapshotRef;
use zones::policy::rule;
use zones::quarantine::{self, QuarantinedLine, quarantine_frame, quarantine_schema};
use zones::transitions::{self, Outputs, ReadingRule, settle};
use zones::{Dataset, Policy, RowCounts, Table};

/// The tables this function produces.
pub const PRODUCES: [Table; 3] = [
    Table::CustomerTrusted,
    Table::AccelerometerTrusted,
    Table::StepTrainerTrusted,
];

pub fn run(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, TaskError> {
    Ok(run_inner(env, request)?)
}

/// What this function is asked: a transition, or the Erase state (after
/// the publish). Told apart by the request's `erase` field, so each keeps
/// its own contract's error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Transition(TransitionRequest),
    Erase(EraseRequest),
}

impl<'de> serde::Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(d)?;
        if value.get("erase").is_some() {
            serde_json::from_value(value)
                .map(Request::Erase)
                .map_err(D::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(Request::Transition)
                .map_err(D::Error::custom)
        }
    }
}

/// The function's answer: a transition's result or an erasure report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Response {
    Transition(Box<TransitionResult>),
    Erase(Box<ErasureReport>),
}

/// The Lambda's handler: [`run`] or [`erase`], by the request.
pub fn handle(env: &Env, request: &Request) -> Result<Response, TaskError> {
    match request {
        Request::Transition(r) => run(env, r).map(|r| Response::Transition(Box::new(r))),
        Request::Erase(r) => erase(env, r).map(|r| Response::Erase(Box::new(r))),
    }
}

/// The Erase state: applies the run's pending erasure requests after its
/// publish (`lakehouse::erasure::erase`): rewrites the landing objects the
/// transitions named in `erased_objects`, deletes their older versions and
/// every older snapshot holding an erased person, verifies, and writes
/// `_runs/<run id>/erasure.json`. Served here because this function already
/// parses landing objects, judges erasure while it does, and may read and
/// write landing data.
pub fn erase(env: &Env, request: &EraseRequest) -> Result<ErasureReport, TaskError> {
    lakehouse::runs::check_published(env, &request.run_id)?;
    Ok(erasure::erase(env, &request.run_id, &request.results)?)
}

fn run_inner(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, Error> {
    let started = Instant::now();
    lakehouse::runs::begin(env, &request.run_id, request.policy)?;
    let outputs = transitions::outputs(request.transition, request.policy, &request.run_id);
    let mut result = match request.transition {
        Table::CustomerTrusted => customers(env, request, &outputs)?,
        Table::AccelerometerTrusted => readings(
            env,
            request,
            &outputs,
            Dataset::Accelerometer,
            Table::CustomerTrusted,
        )?,
        Table::StepTrainerTrusted => readings(
            env,
            request,
            &outputs,
            Dataset::StepTrainer,
            Table::CustomersCurated,
        )?,
        other => {
            return Err(Error::NotServed {
                function: "landing-to-trusted",
                transition: other,
            });
        }
    };
    result.seconds = started.elapsed().as_secs_f64();
    result.peak_rss_mib = lakehouse::peak_rss_mib();
    tracing::info!(
        table = %result.transition,
        policy = %result.policy,
        rows = result.table.rows,
        input_rows = result.counts.input,
        seconds = result.seconds,
        "transition done"
    );
    Ok(result)
}

/// The quarantine table a landing transition writes.
fn quarantine_of(outputs: &Outputs) -> &SnapshotRef {
    outputs
        .quarantine
        .as_ref()
        .expect("a landing transition writes a quarantine table")
}

/// Transition 1: every customer landing record parsed, erased people's
/// records removed, the rest through the policy's plan (and under strict
/// the rubric's); each output written as one part.
fn customers(
    env: &Env,
    request: &TransitionRequest,
    outputs: &Outputs,
) -> Result<TransitionResult, Error> {
    let store = env.store.as_ref();
    let landing = tables::read_landing(store, Dataset::Customer)?;
    // Erased people's records leave first, under both policies.
    let erasure = erasure::erasure_with(env, &request.run_id, |_| Ok(landing.rows.clone()))?;
    let (rows, quarantined, erased) = erasure.split_customers(landing.rows, landing.quarantined)?;
    // The records the plans do not see: quarantined or erased.
    let mut set_aside = RowCounts {
        repaired: landing.counts.repaired,
        ..quarantine::counts(&quarantined)
    };
    set_aside.merge(&RowCounts::dropped(rule::ERASED, erased));
    let judged = |policy, snapshot| -> Result<(TableRef, RowCounts), Error> {
        let mut outcome = settle(transitions::customer_trusted(policy, rows.clone().lazy()))?;
        let mut counts = set_aside.clone();
        counts.merge(&outcome.counts);
        debug_assert_eq!(counts.input, landing.counts.input);
        Ok((
            tables::write_snapshot(store, snapshot, &mut outcome.table)?,
            counts,
        ))
    };
    let (table, counts) = judged(request.policy, &outputs.table)?;
    let mut result = TransitionResult::new(request, table, counts);
    if let Some(shadow) = outputs.shadow() {
        let (table, counts) = judged(Policy::Rubric, shadow)?;
        result = result.with_rubric(Some(table.clone()), table.rows, counts);
    }
    result.quarantine = Some(tables::write_snapshot(
        store,
        quarantine_of(outputs),
        &mut quarantine_frame(&quarantined),
    )?);
    result.erased_objects = erasure::objects_holding(store, &erasure, Dataset::Customer)?;
    Ok(result)
}

/// What one batch of landing objects of readings wrote and counted.
struct Batch {
    /// Per output (the policy's table, then under strict its rubric
    /// shadow): the batch's counts, and the parts written.
    counts: Vec<RowCounts>,
    parts: Vec<Vec<PartInfo>>,
    quarantine: Vec<PartInfo>,
    /// The batch's last quarantined records, when few: written with the
    /// other batches' into shared parts.
    quarantine_rest: Option<DataFrame>,
    /// The batch's landing objects that held erased records, with how many.
    erased: BTreeMap<String, u64>,
}

/// A batch keeps at most this many quarantined records for the shared parts.
const QUARANTINE_REST_ROWS: usize = 4096;

/// Where a batch's rows go while its objects stream: one part writer per
/// output (the policy's rule, then the rubric's), one for the quarantine.
struct BatchWriter<'s> {
    outputs: Vec<PartWriter<'s>>,
    quarantine: PartWriter<'s>,
}

impl BatchWriter<'_> {
    fn take(&mut self, rows: Vec<DataFrame>, lines: Vec<QuarantinedLine>) -> Result<(), Error> {
        for (writer, rows) in self.outputs.iter_mut().zip(rows) {
            writer.push(rows)?;
        }
        if !lines.is_empty() {
            self.quarantine.push(quarantine_frame(&lines))?;
        }
        Ok(())
    }
}

/// Transitions 2 and 4: streams the landing objects of `dataset` against
/// the customer table `index`, batch by batch ([`tables::landing_batches`]),
/// one batch per core in flight: each object is parsed piece by piece and
/// judged while parsing, and the batch's kept rows (and its rubric
/// shadow's, and its quarantined records) are gathered into parts of a
/// fixed number of rows named by the batch, so memory depends on neither
/// the objects' sizes nor their number. Then the reduce: each output's
/// parts sealed as one snapshot, the batches' counts merged.
fn readings(
    env: &Env,
    request: &TransitionRequest,
    outputs: &Outputs,
    dataset: Dataset,
    index: Table,
) -> Result<TransitionResult, Error> {
    let store = env.store.as_ref();
    // Erased people's readings leave first, under both policies (and in the shadow).
    let erasure = erasure::erasure_of_run(env, &request.run_id)?;
    let rule = |policy: Policy, customers: &TableRef| -> Result<ReadingRule, Error> {
        let customers = tables::read_table(store, customers)?.collect()?;
        let rule = match dataset {
            Dataset::Accelerometer => ReadingRule::accelerometer_trusted(policy, &customers),
            _ => ReadingRule::step_trainer_trusted(policy, &customers),
        }?;
        Ok(rule.with_erasure(erasure.clone()))
    };
    // One output per rule: the policy's table, then the rubric's shadow.
    let mut rules = vec![rule(request.policy, request.input(index)?)?];
    let mut snapshots = vec![&outputs.table];
    if let Some(shadow) = outputs.shadow() {
        rules.push(rule(Policy::Rubric, request.rubric_input(index)?)?);
        snapshots.push(shadow);
    }
    let rules: Vec<&ReadingRule> = rules.iter().collect();
    let quarantine = quarantine_of(outputs);
    let objects = tables::landing_objects(store, dataset)?;
    let batches = tables::landing_batches(&objects);

    let mut done: Vec<Batch> =
        lakehouse::map_bounded(&batches, |b, range| -> Result<Batch, Error> {
            let mut writer = BatchWriter {
                outputs: snapshots
                    .iter()
                    .map(|s| PartWriter::new(store, s, b, tables::PART_ROWS))
                    .collect(),
                quarantine: PartWriter::new(store, quarantine, b, tables::QUARANTINE_PART_ROWS),
            };
            let mut counts = vec![RowCounts::default(); rules.len()];
            let mut erased = BTreeMap::new();
            for object in &objects[range.clone()] {
                let mut judged =
                    tables::stream_landing_object(store, dataset, object, &rules, &mut |parser| {
                        writer.take(parser.take_rows(), parser.take_quarantined())
                    })?;
                writer.take(
                    std::mem::take(&mut judged.rows),
                    std::mem::take(&mut judged.quarantined),
                )?;
                let object_counts = &judged.counts[0];
                if let Some(n) = object_counts.dropped.get(rule::ERASED) {
                    erased.insert(object.key.clone(), *n);
                }
                tracing::debug!(
                    key = object.key,
                    bytes = object.size,
                    records = object_counts.input,
                    rows = object_counts.kept,
                    quarantined = object_counts.quarantined_total(),
                    "judged landing object"
                );
                for (all, object) in counts.iter_mut().zip(&judged.counts) {
                    all.merge(object);
                }
            }
            tracing::debug!(
                batch = b,
                objects = range.len(),
                records = counts[0].input,
                "judged a batch of landing objects"
            );
            let parts = writer
                .outputs
                .into_iter()
                .map(PartWriter::finish)
                .collect::<Result<_, _>>()?;
            let (quarantine, quarantine_rest) =
                writer.quarantine.finish_keeping(QUARANTINE_REST_ROWS)?;
            Ok(Batch {
                counts,
                parts,
                quarantine,
                quarantine_rest,
                erased,
            })
        })?;
    tracing::info!(%dataset, objects = objects.len(), batches = batches.len(), "streamed landing objects");

    // The reduce: every batch's parts of an output sealed as its snapshot,
    // the batches' counts merged; the quarantine's rests gathered first.
    let mut rests = PartWriter::gathering(store, quarantine, tables::QUARANTINE_PART_ROWS);
    let mut quarantine_parts = Vec::new();
    for batch in &mut done {
        quarantine_parts.append(&mut batch.quarantine);
        if let Some(rest) = batch.quarantine_rest.take() {
            rests.push(rest)?;
        }
    }
    quarantine_parts.extend(rests.finish()?);
    let schema = dataset.landing_schema().polars_schema();
    let mut sealed = Vec::new();
    for (n, snapshot) in snapshots.iter().enumerate() {
        let parts = done
            .iter_mut()
            .flat_map(|b| std::mem::take(&mut b.parts[n]));
        let table = tables::seal(store, snapshot, parts.collect(), &schema)?;
        let counts: RowCounts = done.iter().map(|b| &b.counts[n]).sum();
        debug_assert_eq!(table.rows, counts.kept, "{}", table.table);
        sealed.push((table, counts));
    }
    let mut sealed = sealed.into_iter();
    let (table, counts) = sealed.next().expect("one output per rule");
    let mut result = TransitionResult::new(request, table, counts);
    if let Some((shadow, counts)) = sealed.next() {
        result = result.with_rubric(Some(shadow.clone()), shadow.rows, counts);
    }
    result.quarantine = Some(tables::seal(
        store,
        quarantine,
        quarantine_parts,
        &quarantine_schema(),
    )?);
    result.erased_objects = done.into_iter().flat_map(|b| b.erased).collect();
    Ok(result)
}

impl lakehouse::lambda::Invocation for Request {
    const EXPECTED: &'static str = "transition request (run_id, policy, transition, inputs) or erase request (run_id, policy, erase, results)";

    fn span(&self) -> tracing::Span {
        match self {
            Request::Transition(r) => r.span(),
            Request::Erase(r) => tracing::info_span!(
                "invocation",
                run_id = %r.run_id,
                transition = "erase",
                policy = %r.policy,
            ),
        }
    }
}
