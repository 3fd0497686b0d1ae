//! Lambda `landing-to-trusted`: transitions 1, 2 and 4 (customer_trusted,
//! accelerometer_trusted, step_trainer_trusted). Each landing object is read
//! and parsed once, bad lines are quarantined in the same pass. Customers
//! (small, and deduped across objects under strict) go through the policy's
//! Polars plan whole. Readings are judged one batch of landing objects at a
//! time: each object read piece by piece and judged while parsing by the
//! policy's `ReadingRule` (and under strict the rubric's, from the same
//! pass), the batch's rows gathered into Parquet parts of a fixed number of
//! rows named by its first object, so memory depends on neither the size
//! nor the number of objects; a reduce then seals the batches' parts as
//! the snapshots and merges their counts. The state machine fans the
//! batches out as a Distributed Map ([`judge_batch`] per child, [`reduce`]
//! after it); one invocation ([`run`]) does the same work on its own cores.
//! The local runner calls the same functions.
//!
//! Deliberately absent: catalog switches (the quality gate publishes) and
//! environment reads (main.rs parses configuration once).

use std::collections::BTreeMap;
use std::time::Instant;

use lakehouse::tables::{PartInfo, PartWriter};
use lakehouse::{Env, Error, ObjectInfo, Store, erasure, map_results, tables};
use polars::prelude::*;
use zones::contract::{
    BatchRequest, BatchResult, EraseRequest, PartsWritten, ReduceRequest, TableRef, TaskError,
    TimeBucket, TransitionRequest, TransitionResult,
};
use zones::erasure::ErasureReport;
use zones::layout::{self, SnapshotRef};
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

/// A whole transition in one invocation.
pub fn run(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, TaskError> {
    Ok(run_inner(env, request)?)
}

/// What this function is asked: a whole transition, a Distributed Map
/// child's batch of landing objects, the reduce after that Map, or the
/// Erase state (after the publish). Told apart by a field only one of
/// them has (`Items`, `map_run`, `erase`), so each keeps its own
/// contract's error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Transition(TransitionRequest),
    Batch(BatchRequest),
    Reduce(ReduceRequest),
    Erase(EraseRequest),
}

impl<'de> serde::Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(d)?;
        let has = |field| value.get(field).is_some();
        let request = if has("Items") {
            serde_json::from_value(value).map(Request::Batch)
        } else if has("map_run") {
            serde_json::from_value(value).map(Request::Reduce)
        } else if has("erase") {
            serde_json::from_value(value).map(Request::Erase)
        } else {
            serde_json::from_value(value).map(Request::Transition)
        };
        request.map_err(D::Error::custom)
    }
}

/// The function's answer: a transition's result, a batch's, or an erasure report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Response {
    Transition(Box<TransitionResult>),
    Batch(Box<BatchResult>),
    Erase(Box<ErasureReport>),
}

/// The Lambda's handler: [`run`], [`judge_batch`], [`reduce`] or
/// [`erase`], by the request.
pub fn handle(env: &Env, request: &Request) -> Result<Response, TaskError> {
    match request {
        Request::Transition(r) => run(env, r).map(|r| Response::Transition(Box::new(r))),
        Request::Batch(r) => judge_batch(env, r).map(|r| Response::Batch(Box::new(r))),
        Request::Reduce(r) => reduce(env, r).map(|r| Response::Transition(Box::new(r))),
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
        _ => readings(env, request, &outputs)?,
    };
    result.seconds = started.elapsed().as_secs_f64();
    result.peak_rss_mib = lakehouse::peak_rss_mib();
    log_done(&result);
    Ok(result)
}

fn log_done(result: &TransitionResult) {
    tracing::info!(
        table = %result.transition,
        policy = %result.policy,
        rows = result.table.rows,
        input_rows = result.counts.input,
        seconds = result.seconds,
        "transition done"
    );
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

/// How the readings of transitions 2 and 4 are judged: the landing
/// dataset, the reading rules (the policy's, then under strict the
/// rubric's) built from the customer index each reads, and the snapshots
/// their rows go to. Built once per invocation, used by every batch.
struct Judge<'e> {
    store: &'e dyn Store,
    transition: Table,
    dataset: Dataset,
    rules: Vec<ReadingRule>,
    /// One per rule: the policy's table, then the rubric shadow.
    snapshots: Vec<SnapshotRef>,
    quarantine: SnapshotRef,
}

/// The landing dataset and the customer table that transition 2 or 4
/// reads; [`Error::NotServed`] for any other transition.
fn readings_of(transition: Table) -> Result<(Dataset, Table), Error> {
    match transition {
        Table::AccelerometerTrusted => Ok((Dataset::Accelerometer, Table::CustomerTrusted)),
        Table::StepTrainerTrusted => Ok((Dataset::StepTrainer, Table::CustomersCurated)),
        other => Err(Error::NotServed {
            function: "landing-to-trusted",
            transition: other,
        }),
    }
}

impl<'e> Judge<'e> {
    /// Reads the customer index (and under strict the rubric's shadow of
    /// it) that `request` names, and who the run erases.
    fn new(env: &'e Env, request: &TransitionRequest, outputs: &Outputs) -> Result<Self, Error> {
        let store = env.store.as_ref();
        let (dataset, index) = readings_of(request.transition)?;
        // Erased people's readings leave first, under both policies (and in the shadow).
        let erasure = erasure::erasure_of_run(env, &request.run_id)?;
        let rule = |policy: Policy, customers: &TableRef| -> Result<ReadingRule, Error> {
            let columns = ReadingRule::index_columns(dataset).map(col);
            let customers = tables::read_table(store, customers)?
                .select(columns)
                .collect()?;
            let rule = match dataset {
                Dataset::Accelerometer => ReadingRule::accelerometer_trusted(policy, &customers),
                _ => ReadingRule::step_trainer_trusted(policy, &customers),
            }?;
            Ok(rule.with_erasure(erasure.clone()))
        };
        let mut rules = vec![rule(request.policy, request.input(index)?)?];
        let mut snapshots = vec![outputs.table.clone()];
        if let Some(shadow) = outputs.shadow() {
            rules.push(rule(Policy::Rubric, request.rubric_input(index)?)?);
            snapshots.push(shadow.clone());
        }
        Ok(Judge {
            store,
            transition: request.transition,
            dataset,
            rules,
            snapshots,
            quarantine: quarantine_of(outputs).clone(),
        })
    }

    /// Judges `objects`: cut into batches of consecutive objects
    /// ([`tables::landing_batches`]) dealt to one worker per core (worker
    /// `w` takes batches `w`, `w + workers`, ...: what each writes follows
    /// from the listing and the number of cores alone), each worker's
    /// batches judged by [`Self::worker`]; their results merged.
    fn objects(&self, objects: &[ObjectInfo]) -> Result<BatchResult, Error> {
        let batches = tables::landing_batches(objects);
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(batches.len())
            .max(1);
        let dealt: Vec<Vec<&[ObjectInfo]>> = (0..workers)
            .map(|w| {
                let mine = batches.iter().skip(w).step_by(workers);
                mine.map(|range| &objects[range.clone()]).collect()
            })
            .collect();
        let done = lakehouse::map_bounded(&dealt, |_, batches| self.worker(batches))?;
        tracing::info!(dataset = %self.dataset, objects = objects.len(), batches = batches.len(), "judged landing objects");
        let mut all = BatchResult::empty(self.transition);
        for batch in done {
            all.merge(batch);
        }
        Ok(all)
    }

    /// One worker's batches of consecutive landing objects, in order: each
    /// object streamed piece by piece and judged while parsing; the kept
    /// rows (and the rubric shadow's) written by time bucket (the shuffle
    /// of the training table's join, [`transitions::time_bucket`]) and the
    /// quarantined records, each gathered into parts of a fixed number of
    /// rows named by the worker's first object, so memory depends on
    /// neither the objects' sizes nor their number.
    fn worker(&self, batches: &[&[ObjectInfo]]) -> Result<BatchResult, Error> {
        let store = self.store;
        let objects = batches.iter().flat_map(|b| b.iter());
        let first = objects.clone().next().map_or("", |o| o.key.as_str());
        let mut writer = BatchWriter {
            outputs: self
                .snapshots
                .iter()
                .map(|snapshot| BucketWriters {
                    by_bucket: BTreeMap::new(),
                    new: Box::new(move |bucket| {
                        PartWriter::new(store, snapshot, first, tables::PART_ROWS).in_bucket(bucket)
                    }),
                    time_column: self.rules[0].time_column(),
                })
                .collect(),
            quarantine: PartWriter::new(
                store,
                &self.quarantine,
                first,
                tables::QUARANTINE_PART_ROWS,
            ),
        };
        let rules: Vec<&ReadingRule> = self.rules.iter().collect();
        let mut counts = vec![RowCounts::default(); rules.len()];
        let mut result = BatchResult::empty(self.transition);
        for object in objects {
            let mut judged = tables::stream_landing_object(
                store,
                self.dataset,
                object,
                &rules,
                &mut |parser| writer.take(parser.take_rows(), parser.take_quarantined()),
            )?;
            writer.take(
                std::mem::take(&mut judged.rows),
                std::mem::take(&mut judged.quarantined),
            )?;
            let object_counts = &judged.counts[0];
            if let Some(n) = object_counts.dropped.get(rule::ERASED) {
                result.erased_objects.insert(object.key.clone(), *n);
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
            result.objects += 1;
            result.bytes += object.size;
        }
        let mut written = writer.outputs.into_iter().zip(counts).map(|(w, counts)| {
            Ok::<_, Error>(PartsWritten {
                counts,
                parts: w.finish()?,
            })
        });
        result.table = written.next().expect("one output per rule")?;
        result.rubric = written.next().transpose()?;
        result.quarantine = writer.quarantine.finish()?;
        Ok(result)
    }
}

/// Where a worker's rows go while its objects stream: per output (the
/// policy's rule, then the rubric's) one part writer per time bucket, and
/// one for the quarantine.
struct BatchWriter<'s> {
    outputs: Vec<BucketWriters<'s>>,
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

/// Rows one output's day writers hold together: beyond them, every day's
/// rows so far are written as parts. A sixteenth of a part: the 50x
/// accelerometer child (50 objects, 58 days) alone peaked at 286 MiB
/// holding a whole part's rows per output, 162 MiB a quarter's, 100 MiB a
/// sixteenth's, with the same 67 parts (the generated objects each hold a
/// day or two of readings; readings of all days in every object would
/// make more, smaller parts).
const BUFFERED_ROWS: usize = tables::PART_ROWS / 16;

/// One output's part writers, one per time bucket of its rows. Together
/// they hold at most [`BUFFERED_ROWS`]: beyond that, every bucket's rows so
/// far are written out as parts (with readings in time order, the days
/// already passed hold all they will get: one part each).
struct BucketWriters<'s> {
    by_bucket: BTreeMap<i64, PartWriter<'s>>,
    /// The writer of a bucket not seen yet.
    new: Box<dyn Fn(i64) -> PartWriter<'s> + 's>,
    time_column: &'static str,
}

impl BucketWriters<'_> {
    fn push(&mut self, rows: DataFrame) -> Result<(), Error> {
        for (bucket, rows) in transitions::by_time_bucket(&rows, self.time_column)? {
            let writer = self
                .by_bucket
                .entry(bucket)
                .or_insert_with(|| (self.new)(bucket));
            writer.push(rows)?;
        }
        let buffered: usize = self.by_bucket.values().map(PartWriter::buffered_rows).sum();
        if buffered > BUFFERED_ROWS {
            for writer in self.by_bucket.values_mut() {
                writer.flush()?;
            }
        }
        Ok(())
    }

    /// Every bucket's parts, in bucket order.
    fn finish(self) -> Result<Vec<PartInfo>, Error> {
        let mut parts = Vec::new();
        for writer in self.by_bucket.into_values() {
            parts.extend(writer.finish()?);
        }
        Ok(parts)
    }
}

/// Transitions 2 and 4 in one invocation: every landing object of the
/// dataset judged against the customer index ([`Judge::objects`]), then
/// sealed ([`seal_readings`]).
fn readings(
    env: &Env,
    request: &TransitionRequest,
    outputs: &Outputs,
) -> Result<TransitionResult, Error> {
    let judge = Judge::new(env, request, outputs)?;
    let objects = tables::landing_objects(env.store.as_ref(), judge.dataset)?;
    let batch = judge.objects(&objects)?;
    seal_readings(env.store.as_ref(), request, outputs, batch)
}

/// The reduce of transitions 2 and 4: each output's parts, as every batch
/// wrote them, sealed as its snapshot (the table, under strict its rubric
/// shadow, the quarantine), with the batches' merged counts. No part is
/// read again.
///
/// Errors: [`Error::NoLandingData`] when the batches judged no object.
fn seal_readings(
    store: &dyn Store,
    request: &TransitionRequest,
    outputs: &Outputs,
    batch: BatchResult,
) -> Result<TransitionResult, Error> {
    let (dataset, _) = readings_of(request.transition)?;
    if batch.objects == 0 {
        let prefix = zones::layout::landing_prefix(dataset);
        return Err(Error::NoLandingData {
            dataset,
            store: store.url(&prefix),
            prefix,
        });
    }
    if request.transition == Table::StepTrainerTrusted {
        write_time_buckets(store, request, &batch)?;
    }
    let schema = dataset.landing_schema().polars_schema();
    let table = tables::seal(store, &outputs.table, batch.table.parts, &schema)?;
    debug_assert_eq!(table.rows, batch.table.counts.kept, "{}", table.table);
    let mut result = TransitionResult::new(request, table, batch.table.counts);
    if let Some(shadow) = outputs.shadow() {
        let rubric = batch.rubric.unwrap_or_default();
        let table = tables::seal(store, shadow, rubric.parts, &schema)?;
        result = result.with_rubric(Some(table.clone()), table.rows, rubric.counts);
    }
    result.quarantine = Some(tables::seal(
        store,
        quarantine_of(outputs),
        batch.quarantine,
        &quarantine_schema(),
    )?);
    result.erased_objects = batch.erased_objects;
    Ok(result)
}

/// The time buckets the step readings were written in (the policy's table
/// and, under strict, the rubric shadow, which the training table's rubric
/// count reads), as the JSON array the training table's Distributed Map
/// reads its items from ([`layout::time_buckets_key`]). Under
/// `_map_results/`: it serves the run only, and goes with the Map's results.
fn write_time_buckets(
    store: &dyn Store,
    request: &TransitionRequest,
    batch: &BatchResult,
) -> Result<(), Error> {
    let parts = batch
        .table
        .parts
        .iter()
        .chain(batch.rubric.iter().flat_map(|r| &r.parts));
    let buckets: std::collections::BTreeSet<TimeBucket> = parts
        .filter_map(|p| layout::bucket_of_part(&p.name))
        .map(|bucket| TimeBucket { bucket })
        .collect();
    let json = serde_json::to_vec(&buckets).expect("buckets serialize");
    store.put(&layout::time_buckets_key(&request.run_id), &json)?;
    tracing::info!(
        buckets = buckets.len(),
        "wrote the time buckets of the step readings"
    );
    Ok(())
}

/// A Distributed Map child of transition 2 or 4 ([`BatchRequest`]): the
/// landing objects its items name (by the listing rule of
/// [`tables::landing_objects`]: `_`/`.` names and empty objects are left
/// out) judged against the customer index its `BatchInput` names, written
/// as parts under the run's snapshot prefixes and answered with their
/// counts and parts, for the reduce.
pub fn judge_batch(env: &Env, request: &BatchRequest) -> Result<BatchResult, TaskError> {
    Ok(judge_batch_inner(env, request)?)
}

fn judge_batch_inner(env: &Env, request: &BatchRequest) -> Result<BatchResult, Error> {
    let started = Instant::now();
    let transition = &request.batch_input;
    lakehouse::runs::begin(env, &transition.run_id, transition.policy)?;
    let (dataset, _) = readings_of(transition.transition)?;
    let outputs =
        transitions::outputs(transition.transition, transition.policy, &transition.run_id);
    let store = env.store.as_ref();
    let location = store.bucket_location();
    let mut objects = Vec::new();
    for item in &request.items {
        let key = location
            .store_key(&location.bucket, &item.key)
            .ok_or_else(|| Error::InvalidKey {
                key: item.key.clone(),
                reason: "the item is not an object of the warehouse",
            })?;
        objects.extend(tables::landing_object_of(store, dataset, key, item.size)?);
    }
    let mut batch = Judge::new(env, transition, &outputs)?.objects(&objects)?;
    batch.seconds = started.elapsed().as_secs_f64();
    batch.peak_rss_mib = lakehouse::peak_rss_mib();
    tracing::info!(
        table = %batch.transition,
        items = request.items.len(),
        objects = batch.objects,
        bytes = batch.bytes,
        input_rows = batch.table.counts.input,
        seconds = batch.seconds,
        "batch judged"
    );
    Ok(batch)
}

/// The reduce after the Distributed Map of transition 2 or 4
/// ([`ReduceRequest`]): the children's [`BatchResult`]s read from the Map
/// Run's result files ([`lakehouse::map_results`]), merged, and sealed as
/// one invocation of the transition seals them; answered with the same
/// [`TransitionResult`]. Its `seconds` run from the first child's start
/// to the end of the reduce.
///
/// Errors: a child that failed or never ran ([`Error::MapRunIncomplete`]);
/// an answer that is not a batch of this transition, or names a part
/// badly ([`Error::Damaged`]); no landing object in any batch
/// ([`Error::NoLandingData`]).
pub fn reduce(env: &Env, request: &ReduceRequest) -> Result<TransitionResult, TaskError> {
    Ok(reduce_inner(env, request)?)
}

fn reduce_inner(env: &Env, request: &ReduceRequest) -> Result<TransitionResult, Error> {
    let started = Instant::now();
    readings_of(request.transition)?;
    lakehouse::runs::begin(env, &request.run_id, request.policy)?;
    let store = env.store.as_ref();
    let details = &request.map_run.result_writer_details;
    let children =
        map_results::succeeded_outputs::<BatchResult>(store, &details.bucket, &details.key)?;
    let damaged = |what: String| Error::Damaged {
        key: format!("s3://{}/{}", details.bucket, details.key),
        what,
    };
    let mut batch = BatchResult::empty(request.transition);
    for child in children.outputs {
        if child.transition != request.transition {
            return Err(damaged(format!(
                "a child judged objects for {}, not {}",
                child.transition, request.transition
            )));
        }
        let parts = child
            .table
            .parts
            .iter()
            .chain(child.rubric.iter().flat_map(|r| &r.parts))
            .chain(&child.quarantine);
        map_results::check_part_names(&details.bucket, &details.key, parts)?;
        batch.merge(child);
    }
    let peak = [batch.peak_rss_mib, lakehouse::peak_rss_mib()];
    let outputs = transitions::outputs(request.transition, request.policy, &request.run_id);
    let mut result = seal_readings(store, &request.transition_request(), &outputs, batch)?;
    result.seconds = children.seconds.unwrap_or(0.0) + started.elapsed().as_secs_f64();
    result.peak_rss_mib = peak.into_iter().flatten().reduce(f64::max);
    log_done(&result);
    Ok(result)
}

impl lakehouse::lambda::Invocation for Request {
    const EXPECTED: &'static str = "transition request (run_id, policy, transition, inputs), Map child's batch (Items, BatchInput), reduce request (run_id, policy, transition, map_run) or erase request (run_id, policy, erase, results)";

    fn span(&self) -> tracing::Span {
        match self {
            Request::Transition(r) => r.span(),
            // A child's span carries its transition: `accelerometer_trusted`.
            Request::Batch(r) => r.batch_input.span(),
            Request::Reduce(r) => tracing::info_span!(
                "invocation",
                run_id = %r.run_id,
                transition = %r.transition,
                policy = %r.policy,
            ),
            Request::Erase(r) => tracing::info_span!(
                "invocation",
                run_id = %r.run_id,
                transition = "erase",
                policy = %r.policy,
            ),
        }
    }
}
