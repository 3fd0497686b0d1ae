//! Lambda `trusted-to-curated`: transitions 3 and 5 (customers_curated,
//! machine_learning_curated). Reads this run's trusted snapshots, applies the
//! policy's plan from `zones` and writes the curated snapshot (and, for the
//! training table, the quarantine of ambiguous readings). The training
//! table is joined time bucket by time bucket — readings only pair at equal
//! times, so buckets are independent — writing one Parquet part per bucket,
//! which bounds memory by a bucket's join rather than the whole. The state
//! machine fans it out as a Distributed Map over the hours the step readings
//! were written in ([`join_buckets`] per child, reading only its hours'
//! parts of the trusted tables, and [`reduce`] after it); one invocation
//! ([`run`]) joins the whole tables. The local runner calls the same
//! functions.
//!
//! Deliberately absent: catalog switches and environment reads.

use std::time::Instant;

use lakehouse::{Env, Error, Store, map_results, tables};
use polars::prelude::*;
use zones::contract::{
    BatchRequest, JoinResult, PartInfo, PartsWritten, ReduceRequest, RubricCount, TableRef,
    TaskError, TimeBucket, TransitionRequest, TransitionResult,
};
use zones::layout;
use zones::quarantine::quarantine_schema;
use zones::transitions::{self, Outputs, RubricShadow, settle};
use zones::{Dataset, Policy, PseudonymKey, RowCounts, Table};

/// The tables this function produces.
pub const PRODUCES: [Table; 2] = [Table::CustomersCurated, Table::MachineLearningCurated];

/// Step readings per time bucket of the training-table join.
const STEP_ROWS_PER_BUCKET: usize = 25_000;

/// A whole transition in one invocation.
pub fn run(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, TaskError> {
    Ok(run_inner(env, request)?)
}

/// What this function is asked: a whole transition, a child of the
/// training table's Distributed Map (a batch of time buckets), or the
/// reduce after it. Told apart by a field only one of them has (`Items`,
/// `map_run`).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Transition(TransitionRequest),
    Batch(BatchRequest<TimeBucket>),
    Reduce(ReduceRequest),
}

impl<'de> serde::Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(d)?;
        let request = if value.get("Items").is_some() {
            serde_json::from_value(value).map(Request::Batch)
        } else if value.get("map_run").is_some() {
            serde_json::from_value(value).map(Request::Reduce)
        } else {
            serde_json::from_value(value).map(Request::Transition)
        };
        request.map_err(D::Error::custom)
    }
}

/// The function's answer: a transition's result or a batch of buckets'.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Response {
    Transition(Box<TransitionResult>),
    Batch(Box<JoinResult>),
}

/// The Lambda's handler: [`run`], [`join_buckets`] or [`reduce`], by the request.
pub fn handle(env: &Env, request: &Request) -> Result<Response, TaskError> {
    match request {
        Request::Transition(r) => run(env, r).map(|r| Response::Transition(Box::new(r))),
        Request::Batch(r) => join_buckets(env, r).map(|r| Response::Batch(Box::new(r))),
        Request::Reduce(r) => reduce(env, r).map(|r| Response::Transition(Box::new(r))),
    }
}

impl lakehouse::lambda::Invocation for Request {
    const EXPECTED: &'static str = "transition request (run_id, policy, transition, inputs), Map child's batch of time buckets (Items, BatchInput) or reduce request (run_id, policy, transition, map_run)";

    fn span(&self) -> tracing::Span {
        match self {
            Request::Transition(r) => r.span(),
            Request::Batch(r) => r.batch_input.span(),
            Request::Reduce(r) => tracing::info_span!(
                "invocation",
                run_id = %r.run_id,
                transition = %r.transition,
                policy = %r.policy,
            ),
        }
    }
}

fn run_inner(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, Error> {
    let started = Instant::now();
    lakehouse::runs::begin(env, &request.run_id, request.policy)?;
    let outputs = transitions::outputs(request.transition, request.policy, &request.run_id);
    let mut result = match request.transition {
        Table::CustomersCurated => customers_curated(env.store.as_ref(), request, &outputs)?,
        Table::MachineLearningCurated => machine_learning_curated(env, request, &outputs)?,
        other => {
            return Err(Error::NotServed {
                function: "trusted-to-curated",
                transition: other,
            });
        }
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

/// Transition 3 under the request's policy (and under strict the
/// rubric's, from the rubric shadows), each written as one part. The
/// readings are read part by part for their distinct users only
/// ([`transitions::reading_users`]): at 500x the rubric shadow of
/// accelerometer_trusted read whole held 1.8 GiB.
fn customers_curated(
    store: &dyn Store,
    request: &TransitionRequest,
    outputs: &Outputs,
) -> Result<TransitionResult, Error> {
    let users = |readings: &TableRef| -> Result<LazyFrame, Error> {
        let users = tables::fold_parts(
            store,
            readings,
            None,
            |part| Ok(transitions::reading_users(part).collect()?),
            |all: Option<DataFrame>, round| {
                let mut frames = all.into_iter().chain(round);
                let mut users = frames.next().expect("a round has a part");
                for frame in frames {
                    users.vstack_mut_owned(frame)?;
                }
                Ok(Some(transitions::reading_users(users.lazy()).collect()?))
            },
        )?;
        Ok(users.expect("a snapshot has a part").lazy())
    };
    let curate = |policy,
                  [customers, readings]: [&TableRef; 2],
                  snapshot|
     -> Result<(TableRef, RowCounts), Error> {
        let mut outcome = settle(transitions::customers_curated(
            policy,
            tables::read_table(store, customers)?,
            users(readings)?,
        )?)?;
        let table = tables::write_snapshot(store, snapshot, &mut outcome.table)?;
        Ok((table, outcome.counts))
    };
    let inputs = [Table::CustomerTrusted, Table::AccelerometerTrusted];
    let [customers, readings] = inputs.map(|t| request.input(t));
    let (table, counts) = curate(request.policy, [customers?, readings?], &outputs.table)?;
    let mut result = TransitionResult::new(request, table, counts);
    if let Some(shadow) = outputs.shadow() {
        let [customers, readings] = inputs.map(|t| request.rubric_input(t));
        let (table, counts) = curate(Policy::Rubric, [customers?, readings?], shadow)?;
        result = result.with_rubric(Some(table.clone()), table.rows, counts);
    }
    Ok(result)
}

/// Transition 5 in one invocation: the whole trusted tables joined
/// ([`join`]); under strict, customers keyed with their pseudonyms first,
/// and the rubric's result counted from the shadows.
fn machine_learning_curated(
    env: &Env,
    request: &TransitionRequest,
    outputs: &Outputs,
) -> Result<TransitionResult, Error> {
    let store = env.store.as_ref();
    let input = |t| -> Result<LazyFrame, Error> { tables::read_table(store, request.input(t)?) };
    let (key, customers) = keyed_customers(env, request, None)?;
    let inputs = [
        input(Table::StepTrainerTrusted)?.collect()?,
        input(Table::AccelerometerTrusted)?.collect()?,
        customers,
    ];
    let joined = join(store, request.policy, outputs, &layout::part_name, inputs)?;
    every_step_reading_counted(request, &joined.table.counts)?;
    let schema = joined.schema.expect("there is at least one bucket");
    let table = tables::seal(store, &outputs.table, joined.table.parts, &schema)?;
    let mut result = TransitionResult::new(request, table, joined.table.counts);
    if let (Some(snapshot), Some(mut rows)) = (&outputs.quarantine, joined.quarantine) {
        result.quarantine = Some(tables::write_snapshot(store, snapshot, &mut rows)?);
    }
    result.pseudonym_key_fingerprint = key.map(|k| k.fingerprint());
    if let Some(RubricShadow::Counted) = outputs.rubric {
        // Lazy scans, so only the time columns are read.
        let shadow =
            |t| -> Result<LazyFrame, Error> { tables::read_table(store, request.rubric_input(t)?) };
        let (counts, rows) = transitions::machine_learning_rubric_count(
            shadow(Table::StepTrainerTrusted)?,
            shadow(Table::AccelerometerTrusted)?,
        )?;
        result = result.with_rubric(None, rows, counts);
    }
    Ok(result)
}

/// Under strict, the pseudonym key and customers_curated keyed with it
/// ([`transitions::keyed_customers`]: rubric pairs readings by time
/// alone, strict with customers, who carry their pseudonyms), keyed once
/// per invocation; under rubric, neither. With `steps`, only the customers
/// of those step readings' serials (all of each serial's customers, so
/// that ambiguity is judged alike): a Map child's keyed customers grow
/// with its days, not with the customer table.
fn keyed_customers(
    env: &Env,
    request: &TransitionRequest,
    steps: Option<&DataFrame>,
) -> Result<(Option<PseudonymKey>, DataFrame), Error> {
    Ok(match request.policy {
        Policy::Strict => {
            let key = env.pseudonym_key(&request.run_id)?;
            let mut customers =
                tables::read_table(env.store.as_ref(), request.input(Table::CustomersCurated)?)?;
            if let Some(steps) = steps {
                let serials = steps
                    .clone()
                    .lazy()
                    .select([col("serialNumber")])
                    .unique(None, UniqueKeepStrategy::Any);
                customers = customers.semi_join(serials, col("serialNumber"), col("serialNumber"));
            }
            let keyed = transitions::keyed_customers(customers, &key).collect()?;
            (Some(key), keyed)
        }
        Policy::Rubric => (None, DataFrame::empty()),
    })
}

/// What a join of step and accelerometer readings wrote and counted.
struct Joined {
    table: PartsWritten,
    /// The quarantined step readings (an empty frame when none).
    quarantine: Option<DataFrame>,
    /// The training table's schema (of its first part).
    schema: Option<Schema>,
}

/// Joins step readings and accelerometer readings (and under strict the
/// keyed customers) into machine_learning_curated, bucket by bucket of
/// reading time ([`TimeBuckets`], about 25,000 step readings each), one
/// part per bucket named `name(n)` under the table's snapshot; the
/// buckets' counts merged, their quarantined rows gathered.
fn join(
    store: &dyn Store,
    policy: Policy,
    outputs: &Outputs,
    name: &(dyn Fn(usize) -> String + Sync),
    [steps, readings, keyed_customers]: [DataFrame; 3],
) -> Result<Joined, Error> {
    let snapshot = &outputs.table;
    let buckets = TimeBuckets::of(&steps, STEP_ROWS_PER_BUCKET)?;
    // One pass over each input finds every bucket's rows.
    let step_rows = buckets.rows(&steps, "sensorReadingTime")?;
    let reading_rows = buckets.rows(&readings, "timestamp")?;
    let mut schema = None;
    let mut counts = RowCounts::default();
    let mut quarantine: Option<DataFrame> = None;
    // A bucket's Parquet part is encoded and written on a second thread
    // while the next bucket is joined. Small buckets keep the two in flight
    // small and each join's hash table in cache: at 50x, buckets of 25k
    // step readings took 0.8 s and 240 MiB, of 100k 1.05 s and 300 MiB.
    let written = std::thread::scope(|scope| -> Result<Vec<PartInfo>, Error> {
        let (parts, to_write) = std::sync::mpsc::sync_channel::<(usize, DataFrame)>(0);
        let span = tracing::Span::current();
        let writer = scope.spawn(move || -> Result<Vec<PartInfo>, Error> {
            let _entered = span.enter();
            let mut written = Vec::new();
            for (n, mut part) in to_write {
                written.push(tables::write_part(store, snapshot, &name(n), &mut part)?);
            }
            Ok(written)
        });
        for (n, (step_rows, reading_rows)) in step_rows.iter().zip(&reading_rows).enumerate() {
            let outcome = transitions::machine_learning_curated(
                policy,
                steps.take(step_rows)?.lazy(),
                readings.take(reading_rows)?.lazy(),
                keyed_customers.clone().lazy(),
            )?;
            tracing::debug!(
                bucket = n,
                step_rows = step_rows.len(),
                accelerometer_rows = reading_rows.len(),
                rows = outcome.table.height(),
                quarantined = outcome.quarantine.as_ref().map_or(0, |q| q.height()),
                "joined time bucket"
            );
            schema.get_or_insert_with(|| outcome.table.schema().as_ref().clone());
            counts.merge(&outcome.counts);
            match (&mut quarantine, outcome.quarantine) {
                (None, more) => quarantine = more,
                (Some(all), Some(more)) => {
                    all.vstack_mut_owned(more)?;
                }
                (Some(_), None) => {}
            }
            if parts.send((n, outcome.table)).is_err() {
                break; // the writer stopped on an error, returned below
            }
        }
        drop(parts);
        writer.join().expect("the part writer does not panic")
    })?;
    Ok(Joined {
        table: PartsWritten {
            counts,
            parts: written,
        },
        quarantine,
        schema,
    })
}

/// A child of the training table's Distributed Map
/// (`BatchRequest<TimeBucket>`): the parts of step_trainer_trusted and
/// accelerometer_trusted the landing transitions wrote in its time buckets
/// (days, [`transitions::time_bucket`]: the shuffle) read and joined
/// ([`join`]), the table's parts written in its first bucket's folder, its
/// quarantined readings as one part there, and under strict the rubric's
/// result of its buckets counted from the shadows' parts; answered with
/// the counts and parts, for the reduce. Its memory is its buckets', not
/// the tables'.
pub fn join_buckets(
    env: &Env,
    request: &BatchRequest<TimeBucket>,
) -> Result<JoinResult, TaskError> {
    Ok(join_buckets_inner(env, request)?)
}

fn join_buckets_inner(env: &Env, request: &BatchRequest<TimeBucket>) -> Result<JoinResult, Error> {
    let started = Instant::now();
    let transition = &request.batch_input;
    training_table_only(transition.transition)?;
    lakehouse::runs::begin(env, &transition.run_id, transition.policy)?;
    let store = env.store.as_ref();
    let outputs =
        transitions::outputs(transition.transition, transition.policy, &transition.run_id);
    // Each table's parts, by bucket, from its manifest (pinned by the request).
    let bucketed = |table: &TableRef| -> Result<Bucketed, Error> {
        let manifest = tables::pinned_manifest(store, table)?.ok_or_else(|| Error::NotFound {
            store: store.url(""),
            key: layout::manifest_key(&table.location),
        })?;
        Ok(Bucketed {
            table: table.clone(),
            parts: manifest.parts,
        })
    };
    let steps = bucketed(transition.input(Table::StepTrainerTrusted)?)?;
    let readings = bucketed(transition.input(Table::AccelerometerTrusted)?)?;
    let shadows = match outputs.rubric {
        Some(RubricShadow::Counted) => Some([
            bucketed(transition.rubric_input(Table::StepTrainerTrusted)?)?,
            bucketed(transition.rubric_input(Table::AccelerometerTrusted)?)?,
        ]),
        _ => None,
    };
    // The child's buckets are joined together (they are independent, and
    // one read and one join of 16 days cost a fraction of 16 each), named
    // by the first: no two children share a bucket.
    let days: std::collections::BTreeSet<i64> = request.items.iter().map(|b| b.bucket).collect();
    let Some(&first) = days.first() else {
        return Ok(JoinResult::empty());
    };
    let step_rows = steps.frame(store, &days, Dataset::StepTrainer)?.collect()?;
    let (_, customers) = keyed_customers(env, transition, Some(&step_rows))?;
    let frames = [
        step_rows,
        readings
            .frame(store, &days, Dataset::Accelerometer)?
            .collect()?,
        customers,
    ];
    let name = |n| layout::bucket_part_name(first, &layout::part_name(n));
    let joined = join(store, transition.policy, &outputs, &name, frames)?;
    let mut result = JoinResult::empty();
    result.table = joined.table;
    if let (Some(snapshot), Some(mut rows)) = (&outputs.quarantine, joined.quarantine)
        && rows.height() > 0
    {
        result
            .quarantine
            .push(tables::write_part(store, snapshot, &name(0), &mut rows)?);
    }
    if let Some([steps, readings]) = &shadows {
        let (counts, rows) = transitions::machine_learning_rubric_count(
            steps.frame(store, &days, Dataset::StepTrainer)?,
            readings.frame(store, &days, Dataset::Accelerometer)?,
        )?;
        result.rubric = Some(RubricCount { counts, rows });
    }
    result.buckets = days.len() as u64;
    result.seconds = started.elapsed().as_secs_f64();
    result.peak_rss_mib = lakehouse::peak_rss_mib();
    tracing::info!(
        buckets = result.buckets,
        input_rows = result.table.counts.input,
        seconds = result.seconds,
        "time buckets joined"
    );
    Ok(result)
}

/// A snapshot's parts, each in its time bucket's folder.
struct Bucketed {
    table: TableRef,
    parts: Vec<PartInfo>,
}

impl Bucketed {
    /// The rows of the time buckets `days`: a scan of their parts, or none
    /// of `dataset`'s columns when they have none.
    fn frame(
        &self,
        store: &dyn Store,
        days: &std::collections::BTreeSet<i64>,
        dataset: Dataset,
    ) -> Result<LazyFrame, Error> {
        let parts: Vec<PartInfo> = self
            .parts
            .iter()
            .filter(|p| layout::bucket_of_part(&p.name).is_some_and(|b| days.contains(&b)))
            .cloned()
            .collect();
        Ok(match tables::read_parts(store, &self.table, &parts)? {
            Some(scan) => scan,
            None => DataFrame::empty_with_schema(&dataset.landing_schema().polars_schema()).lazy(),
        })
    }
}

/// [`Error::NotServed`] for any transition but machine_learning_curated.
fn training_table_only(transition: Table) -> Result<(), Error> {
    match transition {
        Table::MachineLearningCurated => Ok(()),
        other => Err(Error::NotServed {
            function: "trusted-to-curated",
            transition: other,
        }),
    }
}

/// The reduce after the training table's Distributed Map
/// ([`ReduceRequest`]): the children's [`JoinResult`]s read from the Map
/// Run's result files, checked and merged, the table and its quarantine
/// sealed from their parts; answered with the [`TransitionResult`] one
/// invocation gives. Its `seconds` run from the first child's start to its
/// own end.
///
/// Errors: a child that failed or never ran ([`Error::MapRunIncomplete`]);
/// an answer that names a part badly ([`Error::Damaged`]).
pub fn reduce(env: &Env, request: &ReduceRequest) -> Result<TransitionResult, TaskError> {
    Ok(reduce_inner(env, request)?)
}

fn reduce_inner(env: &Env, request: &ReduceRequest) -> Result<TransitionResult, Error> {
    let started = Instant::now();
    training_table_only(request.transition)?;
    lakehouse::runs::begin(env, &request.run_id, request.policy)?;
    let store = env.store.as_ref();
    let details = &request.map_run.result_writer_details;
    let children =
        map_results::succeeded_outputs::<JoinResult>(store, &details.bucket, &details.key)?;
    let mut joined = JoinResult::empty();
    for child in children.outputs {
        let parts = child.table.parts.iter().chain(&child.quarantine);
        map_results::check_part_names(&details.bucket, &details.key, parts)?;
        joined.merge(child);
    }
    every_step_reading_counted(&request.transition_request(), &joined.table.counts)?;
    let outputs = transitions::outputs(request.transition, request.policy, &request.run_id);
    let key = match request.policy {
        Policy::Strict => Some(env.pseudonym_key(&request.run_id)?),
        Policy::Rubric => None,
    };
    let peak = [joined.peak_rss_mib, lakehouse::peak_rss_mib()];
    let schema = training_table_schema(request.policy, key.as_ref())?;
    let table = tables::seal(store, &outputs.table, joined.table.parts, &schema)?;
    let mut result =
        TransitionResult::new(&request.transition_request(), table, joined.table.counts);
    if let Some(snapshot) = &outputs.quarantine {
        result.quarantine = Some(tables::seal(
            store,
            snapshot,
            joined.quarantine,
            &quarantine_schema(),
        )?);
    }
    result.pseudonym_key_fingerprint = key.map(|k| k.fingerprint());
    if let Some(RubricShadow::Counted) = outputs.rubric {
        let rubric = joined.rubric.unwrap_or_default();
        result = result.with_rubric(None, rubric.rows, rubric.counts);
    }
    result.seconds = children.seconds.unwrap_or(0.0) + started.elapsed().as_secs_f64();
    result.peak_rss_mib = peak.into_iter().flatten().reduce(f64::max);
    log_done(&result);
    Ok(result)
}

/// The training table's input is every row of step_trainer_trusted: each
/// is kept, quarantined or dropped by a rule. Counts of another total mean
/// rows were lost on the way (a time range cut wrong, a day no child took),
/// which must never publish: [`Error::Unaccounted`].
fn every_step_reading_counted(
    request: &TransitionRequest,
    counts: &RowCounts,
) -> Result<(), Error> {
    let steps = request.input(Table::StepTrainerTrusted)?;
    if counts.input == steps.rows {
        return Ok(());
    }
    Err(Error::Unaccounted {
        transition: request.transition,
        table: steps.table,
        expected: steps.rows,
        counted: counts.input,
    })
}

/// The columns of machine_learning_curated under `policy`: the plan run
/// on no rows (for a table sealed without parts).
fn training_table_schema(policy: Policy, key: Option<&PseudonymKey>) -> Result<Schema, Error> {
    let empty = |dataset: Dataset| {
        DataFrame::empty_with_schema(&dataset.landing_schema().polars_schema()).lazy()
    };
    let customers = match key {
        Some(key) => transitions::keyed_customers(empty(Dataset::Customer), key),
        None => DataFrame::empty().lazy(),
    };
    let outcome = transitions::machine_learning_curated(
        policy,
        empty(Dataset::StepTrainer),
        empty(Dataset::Accelerometer),
        customers,
    )?;
    Ok(outcome.table.schema().as_ref().clone())
}

/// Equal-width ranges of reading time, from the earliest step reading to the
/// latest, holding about `rows_per_bucket` step readings each.
struct TimeBuckets {
    min: i64,
    /// In i128, as the offsets: the range of any two i64 times fits.
    width: i128,
    count: usize,
}

impl TimeBuckets {
    fn of(steps: &DataFrame, rows_per_bucket: usize) -> Result<Self, Error> {
        let times = steps.column("sensorReadingTime")?.i64()?;
        let count = steps.height().div_ceil(rows_per_bucket).max(1);
        Ok(match (times.min(), times.max()) {
            (Some(min), Some(max)) => TimeBuckets {
                min,
                width: ((i128::from(max) - i128::from(min)) / count as i128).max(1) + 1,
                count,
            },
            // No step readings: one bucket, which no row falls in.
            _ => TimeBuckets {
                min: 0,
                width: 0,
                count: 1,
            },
        })
    }

    /// Each bucket's row positions in `frame`, in row order. Rows outside
    /// the step readings' time range pair with nothing and fall in none.
    fn rows(&self, frame: &DataFrame, time_column: &str) -> Result<Vec<IdxCa>, Error> {
        let mut rows = vec![Vec::new(); self.count];
        for (row, time) in frame.column(time_column)?.i64()?.iter().enumerate() {
            let Some(offset) = time.map(|t| i128::from(t) - i128::from(self.min)) else {
                continue;
            };
            if offset >= 0
                && self.width > 0
                && let Some(bucket) = rows.get_mut((offset / self.width) as usize)
            {
                bucket.push(row as IdxSize);
            }
        }
        Ok(rows
            .into_iter()
            .map(|r| IdxCa::from_vec(PlSmallStr::EMPTY, r))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(buckets: &TimeBuckets, times: &[i64]) -> Vec<Vec<IdxSize>> {
        let frame = df!("sensorReadingTime" => times).expect("a frame");
        let rows = buckets.rows(&frame, "sensorReadingTime").expect("rows");
        rows.iter()
            .map(|r| r.into_no_null_iter().collect())
            .collect()
    }

    #[test]
    fn buckets_split_the_step_time_range_in_row_order() {
        let steps = df!("sensorReadingTime" => [30i64, 10, 20, 50, 40, 10]).expect("a frame");
        let buckets = TimeBuckets::of(&steps, 2).expect("buckets");
        assert_eq!((buckets.min, buckets.width, buckets.count), (10, 14, 3));
        // [10, 24), [24, 38), [38, 52): every step reading in exactly one.
        assert_eq!(
            rows(&buckets, &[30, 10, 20, 50, 40, 10]),
            [vec![1, 2, 5], vec![0], vec![3, 4]]
        );
        // Readings outside the steps' range pair with nothing: in no bucket.
        assert_eq!(
            rows(&buckets, &[9, 10, 52, i64::MIN, i64::MAX, 23, 24]),
            [vec![1, 5], vec![6], vec![]]
        );
    }

    /// Times at the ends of i64 (a reading of a broken clock) span more
    /// than i64 holds: every step reading still falls in a bucket.
    #[test]
    fn the_widest_time_range_keeps_every_step_reading() {
        let times = [i64::MAX, 0, i64::MIN, -1, i64::MIN + 1];
        let steps = df!("sensorReadingTime" => times).expect("a frame");
        let buckets = TimeBuckets::of(&steps, 2).expect("buckets");
        assert_eq!(buckets.count, 3);
        // Width (2^64 - 1) / 3 + 1: [MIN, MIN + w), [MIN + w, MIN + 2w), [MIN + 2w, MAX].
        assert_eq!(rows(&buckets, &times), [vec![2, 4], vec![1, 3], vec![0]]);
    }

    #[test]
    fn no_step_readings_make_one_empty_bucket() {
        let steps = df!("sensorReadingTime" => Vec::<i64>::new()).expect("a frame");
        let buckets = TimeBuckets::of(&steps, 2).expect("buckets");
        assert_eq!(rows(&buckets, &[1, 2]), [Vec::<IdxSize>::new()]);
    }
}
