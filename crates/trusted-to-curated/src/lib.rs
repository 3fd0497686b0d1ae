//! Lambda `trusted-to-curated`: transitions 3 and 5 (customers_curated,
//! machine_learning_curated). Reads this run's trusted snapshots, applies the
//! policy's plan from `zones` and writes the curated snapshot (and, for the
//! training table under strict, the quarantine of ambiguous readings). The
//! training table is built time bucket by time bucket — readings only pair at
//! equal times, so buckets are independent — writing one Parquet part per
//! bucket, which bounds memory by a bucket's join rather than the whole. The
//! local runner calls the same [`run`].
//!
//! Deliberately absent: catalog switches and environment reads.

use std::time::Instant;

use lakehouse::{Env, Error, Store, tables};
use polars::prelude::*;
use zones::contract::{TableRef, TaskError, TransitionRequest, TransitionResult};
use zones::layout;
use zones::transitions::{self, Outputs, RubricShadow, settle};
use zones::{Policy, RowCounts, Table};

/// The tables this function produces.
pub const PRODUCES: [Table; 2] = [Table::CustomersCurated, Table::MachineLearningCurated];

/// Step readings per time bucket of the training-table join.
const STEP_ROWS_PER_BUCKET: usize = 25_000;

pub fn run(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, TaskError> {
    Ok(run_inner(env, request)?)
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

/// Transition 5: the training table joined time bucket by time bucket
/// ([`training_table`]); under strict, customers keyed with their
/// pseudonyms first, and the rubric's result counted from the shadows.
fn machine_learning_curated(
    env: &Env,
    request: &TransitionRequest,
    outputs: &Outputs,
) -> Result<TransitionResult, Error> {
    let store = env.store.as_ref();
    let input = |t| -> Result<LazyFrame, Error> { tables::read_table(store, request.input(t)?) };
    // Rubric pairs readings by time alone. Strict pairs them with
    // customers, who carry their pseudonyms: keyed once here, not once per
    // bucket.
    let key = match request.policy {
        Policy::Strict => Some(env.pseudonym_key(&request.run_id)?),
        Policy::Rubric => None,
    };
    let customers = match &key {
        Some(key) => {
            transitions::keyed_customers(input(Table::CustomersCurated)?, key).collect()?
        }
        None => DataFrame::empty(),
    };
    let inputs = [
        input(Table::StepTrainerTrusted)?.collect()?,
        input(Table::AccelerometerTrusted)?.collect()?,
        customers,
    ];
    let mut result = training_table(store, request, outputs, inputs)?;
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

/// Builds machine_learning_curated bucket by bucket of reading time, one
/// part per bucket, and seals it; the buckets' counts merged, their
/// quarantined rows written as one part.
fn training_table(
    store: &dyn Store,
    request: &TransitionRequest,
    outputs: &Outputs,
    [steps, readings, keyed_customers]: [DataFrame; 3],
) -> Result<TransitionResult, Error> {
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
    let written = std::thread::scope(|scope| -> Result<Vec<tables::PartInfo>, Error> {
        let (parts, to_write) = std::sync::mpsc::sync_channel::<(usize, DataFrame)>(0);
        let span = tracing::Span::current();
        let writer = scope.spawn(move || -> Result<Vec<tables::PartInfo>, Error> {
            let _entered = span.enter();
            let mut written = Vec::new();
            for (n, mut part) in to_write {
                let name = layout::part_name(n);
                written.push(tables::write_part(store, snapshot, &name, &mut part)?);
            }
            Ok(written)
        });
        for (n, (step_rows, reading_rows)) in step_rows.iter().zip(&reading_rows).enumerate() {
            let outcome = transitions::machine_learning_curated(
                request.policy,
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
            schema.get_or_insert_with(|| outcome.table.schema().clone());
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
    let schema = schema.expect("there is at least one bucket");
    let table = tables::seal(store, snapshot, written, &schema)?;
    let mut result = TransitionResult::new(request, table, counts);
    if let (Some(snapshot), Some(mut rows)) = (&outputs.quarantine, quarantine) {
        result.quarantine = Some(tables::write_snapshot(store, snapshot, &mut rows)?);
    }
    Ok(result)
}

/// Equal-width ranges of reading time, from the earliest step reading to the
/// latest, holding about `rows_per_bucket` step readings each.
struct TimeBuckets {
    min: i64,
    width: i64,
    count: usize,
}

impl TimeBuckets {
    fn of(steps: &DataFrame, rows_per_bucket: usize) -> Result<Self, Error> {
        let times = steps.column("sensorReadingTime")?.i64()?;
        let count = steps.height().div_ceil(rows_per_bucket).max(1);
        Ok(match (times.min(), times.max()) {
            (Some(min), Some(max)) => TimeBuckets {
                min,
                width: ((max - min) / count as i64).max(1) + 1,
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
            let Some(offset) = time.and_then(|t| t.checked_sub(self.min)) else {
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

    #[test]
    fn no_step_readings_make_one_empty_bucket() {
        let steps = df!("sensorReadingTime" => Vec::<i64>::new()).expect("a frame");
        let buckets = TimeBuckets::of(&steps, 2).expect("buckets");
        assert_eq!(rows(&buckets, &[1, 2]), [Vec::<IdxSize>::new()]);
    }
}
