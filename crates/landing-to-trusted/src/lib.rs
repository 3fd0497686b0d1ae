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

use lakehouse::handler::{self, Produced, Quarantine, Shadow};
use lakehouse::tables::{PartInfo, PartWriter};
use lakehouse::{Env, Error, erasure, tables};
use polars::prelude::*;
use zones::contract::{EraseRequest, TaskError, TransitionRequest, TransitionResult};
use zones::erasure::ErasureReport;
use zones::landing;
use zones::quarantine::{QuarantinedLine, quarantine_frame, quarantine_schema};
use zones::transitions::{self, ReadingRule, settle};
use zones::{Dataset, Policy, Table, layout};

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
    let store = env.store.as_ref();
    let produced = match request.transition {
        Table::CustomerTrusted => customers(env, request)?,
        Table::AccelerometerTrusted => {
            readings(env, request, Dataset::Accelerometer, Table::CustomerTrusted)?
        }
        Table::StepTrainerTrusted => {
            readings(env, request, Dataset::StepTrainer, Table::CustomersCurated)?
        }
        other => {
            return Err(Error::NotServed {
                function: "landing-to-trusted",
                transition: other,
            });
        }
    };
    handler::finish(store, request, started, produced)
}

fn customers(env: &Env, request: &TransitionRequest) -> Result<Produced, Error> {
    let store = env.store.as_ref();
    let landing = tables::read_landing(store, Dataset::Customer)?;
    // Erased people's records leave first, under both policies.
    let erasure = erasure::erasure_with(env, &request.run_id, |_| Ok(landing.rows.clone()))?;
    let (rows, quarantined, erased) = erasure.split_customers(landing.rows, landing.quarantined)?;
    let erased_objects = erasure::objects_holding(store, &erasure, Dataset::Customer)?;
    let rows = rows.lazy();
    let outcome = settle(transitions::customer_trusted(request.policy, rows.clone()))?;
    let rubric = match handler::wants_rubric_shadow(request) {
        true => Some(settle(transitions::customer_trusted(Policy::Rubric, rows))?),
        false => None,
    };
    let quarantine = (Table::CustomerQuarantine, quarantine_frame(&quarantined));
    let mut produced = handler::write_outcome(store, request, outcome, rubric, Some(quarantine))?;
    produced.repaired = landing.repaired;
    produced.input_rows += erased;
    zones::erasure::add_erased(&mut produced.drops, erased);
    if let Some(shadow) = &mut produced.rubric {
        zones::erasure::add_erased(&mut shadow.drops, erased);
    }
    produced.erased_objects = erased_objects;
    Ok(produced)
}

/// Parts written under one prefix, and the rows they hold.
type Written = (Vec<PartInfo>, u64);

/// What one batch of landing objects of readings contributed.
struct Batch {
    /// The batch's landing objects that held erased records, with how many.
    erased: BTreeMap<String, u64>,
    input_rows: u64,
    drops: BTreeMap<String, u64>,
    repaired: BTreeMap<String, u64>,
    /// The parts of the table, of its rubric shadow (strict runs), of the
    /// quarantine, each with its rows.
    parts: Written,
    rubric: Option<(Written, BTreeMap<String, u64>)>,
    quarantine: Written,
    /// The batch's last quarantined records, when few: written with the
    /// other batches' into shared parts.
    quarantine_rest: Option<DataFrame>,
    quarantined: BTreeMap<String, u64>,
}

/// A batch keeps at most this many quarantined records for the shared parts.
const QUARANTINE_REST_ROWS: usize = 4096;

/// Where a batch's rows go while its objects stream: one part writer per
/// output (the policy's rule, then the rubric's), one for the quarantine.
struct BatchWriter<'s> {
    outputs: Vec<PartWriter<'s>>,
    quarantine: PartWriter<'s>,
    quarantined: BTreeMap<String, u64>,
}

impl BatchWriter<'_> {
    fn take(&mut self, rows: Vec<DataFrame>, lines: Vec<QuarantinedLine>) -> Result<(), Error> {
        for (writer, rows) in self.outputs.iter_mut().zip(rows) {
            writer.push(rows)?;
        }
        if !lines.is_empty() {
            for line in &lines {
                *self
                    .quarantined
                    .entry(line.reason.as_str().to_string())
                    .or_default() += 1;
            }
            self.quarantine.push(quarantine_frame(&lines))?;
        }
        Ok(())
    }
}

/// Streams the landing objects of `dataset` against the customer table
/// `index`, batch by batch ([`tables::landing_batches`]), one batch per
/// core in flight: each object is parsed piece by piece and judged while
/// parsing, and the batch's kept rows (and its rubric shadow's, and its
/// quarantined records) are gathered into parts of a fixed number of rows
/// named by the batch, so memory depends on neither the objects' sizes nor
/// their number.
fn readings(
    env: &Env,
    request: &TransitionRequest,
    dataset: Dataset,
    index: Table,
) -> Result<Produced, Error> {
    let store = env.store.as_ref();
    // Erased people's readings leave first, under both policies (and in the shadow).
    let erasure = erasure::erasure_of_run(env, &request.run_id)?;
    let rule = |policy: Policy, customers: &DataFrame| -> Result<ReadingRule, Error> {
        let rule = match dataset {
            Dataset::Accelerometer => ReadingRule::accelerometer_trusted(policy, customers),
            _ => ReadingRule::step_trainer_trusted(policy, customers),
        }?;
        Ok(rule.with_erasure(erasure.clone()))
    };
    let mut rules = vec![rule(
        request.policy,
        &handler::input(store, request, index)?.collect()?,
    )?];
    let shadow = handler::wants_rubric_shadow(request);
    if shadow {
        rules.push(rule(
            Policy::Rubric,
            &handler::rubric_input(store, request, index)?.collect()?,
        )?);
    }
    let rules: Vec<&ReadingRule> = rules.iter().collect();
    let (run_id, table) = (&request.run_id, request.transition);
    let quarantine_table = Table::quarantine(dataset);
    let prefix = layout::snapshot_prefix(table, run_id);
    let shadow_prefix = layout::rubric_shadow_prefix(run_id, table);
    let quarantine_prefix = layout::snapshot_prefix(quarantine_table, run_id);
    let objects = tables::landing_objects(store, dataset)?;
    let batches = tables::landing_batches(&objects);

    let done: Vec<Batch> = lakehouse::map_bounded(&batches, |b, range| -> Result<Batch, Error> {
        let mut prefixes = vec![prefix.as_str()];
        if shadow {
            prefixes.push(shadow_prefix.as_str());
        }
        let mut writer = BatchWriter {
            outputs: prefixes
                .iter()
                .map(|p| PartWriter::new(store, p, b, tables::PART_ROWS))
                .collect(),
            quarantine: PartWriter::new(store, &quarantine_prefix, b, tables::QUARANTINE_PART_ROWS),
            quarantined: BTreeMap::new(),
        };
        let (mut input_rows, mut drops, mut repaired) = (0, Vec::new(), BTreeMap::new());
        let mut erased = BTreeMap::new();
        drops.resize(rules.len(), BTreeMap::new());
        for object in &objects[range.clone()] {
            let (rows_before, quarantined_before) = (
                writer.outputs[0].pushed(),
                writer.quarantined.values().sum::<u64>(),
            );
            let mut judged =
                tables::stream_landing_object(store, dataset, object, &rules, &mut |parser| {
                    writer.take(parser.take_rows(), parser.take_quarantined())
                })?;
            let kept = std::mem::take(&mut judged.kept);
            if let Some(n) = kept[0].1.get(zones::policy::rule::ERASED) {
                erased.insert(object.key.clone(), *n);
            }
            let mut rows = Vec::with_capacity(kept.len());
            for ((frame, object_drops), drops) in kept.into_iter().zip(&mut drops) {
                handler::add_counts(drops, &object_drops);
                rows.push(frame);
            }
            writer.take(rows, std::mem::take(&mut judged.quarantined))?;
            tracing::debug!(
                key = object.key,
                bytes = object.size,
                records = judged.records,
                rows = writer.outputs[0].pushed() - rows_before,
                quarantined = writer.quarantined.values().sum::<u64>() - quarantined_before,
                "judged landing object"
            );
            input_rows += judged.records;
            handler::add_counts(&mut repaired, &judged.repaired);
        }
        tracing::debug!(
            batch = b,
            objects = range.len(),
            records = input_rows,
            "judged a batch of landing objects"
        );
        let mut outputs = writer.outputs.into_iter();
        let mut drops = drops.into_iter();
        let parts = outputs.next().expect("one output per rule").finish()?;
        let main_drops = drops.next().expect("one per rule");
        let rubric = match outputs.next() {
            Some(w) => Some((w.finish()?, drops.next().expect("one per rule"))),
            None => None,
        };
        let (quarantine_parts, quarantine_rows, quarantine_rest) =
            writer.quarantine.finish_keeping(QUARANTINE_REST_ROWS)?;
        Ok(Batch {
            erased,
            input_rows,
            drops: main_drops,
            repaired,
            parts,
            rubric,
            quarantine: (quarantine_parts, quarantine_rows),
            quarantine_rest,
            quarantined: writer.quarantined,
        })
    })?;
    tracing::info!(%dataset, objects = objects.len(), batches = batches.len(), "streamed landing objects");

    let (mut drops, mut rubric_drops, mut repaired, mut quarantined) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
    );
    let (mut input_rows, mut kept_rows, mut rubric_rows, mut quarantine_rows) = (0, 0, 0, 0);
    let (mut written, mut shadow_written, mut quarantine_written) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut quarantine_rests =
        PartWriter::gathering(store, &quarantine_prefix, tables::QUARANTINE_PART_ROWS);
    let mut erased_objects = BTreeMap::new();
    for batch in done {
        erased_objects.extend(batch.erased);
        input_rows += batch.input_rows;
        kept_rows += batch.parts.1;
        handler::add_counts(&mut drops, &batch.drops);
        handler::add_counts(&mut repaired, &batch.repaired);
        handler::add_counts(&mut quarantined, &batch.quarantined);
        written.extend(batch.parts.0);
        quarantine_rows += batch.quarantine.1;
        quarantine_written.extend(batch.quarantine.0);
        if let Some(rest) = batch.quarantine_rest {
            quarantine_rests.push(rest)?;
        }
        if let Some(((parts, rows), part_drops)) = batch.rubric {
            rubric_rows += rows;
            handler::add_counts(&mut rubric_drops, &part_drops);
            shadow_written.extend(parts);
        }
    }
    let (rest_parts, rest_rows) = quarantine_rests.finish()?;
    quarantine_written.extend(rest_parts);
    quarantine_rows += rest_rows;
    let schema = dataset.landing_schema().polars_schema();
    // A table without rows is one empty part, so that it has a schema.
    let or_empty = |parts: &mut Vec<PartInfo>, prefix: &str, empty: DataFrame| {
        if parts.is_empty() {
            parts.push(tables::write_part(store, prefix, 0, &mut { empty })?);
        }
        Ok::<_, Error>(())
    };
    or_empty(&mut written, &prefix, landing::empty_rows(dataset))?;
    or_empty(
        &mut quarantine_written,
        &quarantine_prefix,
        quarantine_frame(&[]),
    )?;
    let rubric = match shadow {
        true => {
            or_empty(
                &mut shadow_written,
                &shadow_prefix,
                landing::empty_rows(dataset),
            )?;
            Some(Shadow {
                table: Some(tables::seal(
                    store,
                    table,
                    &shadow_prefix,
                    run_id,
                    shadow_written,
                    rubric_rows,
                    &schema,
                )?),
                rows: rubric_rows,
                drops: rubric_drops,
            })
        }
        false => None,
    };
    let quarantine = tables::seal(
        store,
        quarantine_table,
        &quarantine_prefix,
        run_id,
        quarantine_written,
        quarantine_rows,
        &quarantine_schema(),
    )?;
    Ok(Produced {
        table: tables::seal(store, table, &prefix, run_id, written, kept_rows, &schema)?,
        input_rows,
        kept_rows,
        drops,
        repaired,
        quarantine: Some(Quarantine::Written(quarantine, quarantined)),
        rubric,
        erased_objects,
        pseudonym_key_fingerprint: None,
    })
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
