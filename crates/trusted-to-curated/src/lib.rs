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

use std::collections::BTreeMap;
use std::time::Instant;

use lakehouse::handler::{self, Produced, Quarantine, Shadow};
use lakehouse::{Env, Error, Store, tables};
use polars::prelude::*;
use zones::contract::{TaskError, TransitionRequest, TransitionResult};
use zones::transitions::{self, settle};
use zones::{Policy, Table, layout};

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
    let store = env.store.as_ref();
    let strict = handler::wants_rubric_shadow(request);
    let produced = match request.transition {
        Table::CustomersCurated => {
            let curate = |policy,
                          input: &dyn Fn(Table) -> lakehouse::Result<LazyFrame>|
             -> lakehouse::Result<_> {
                Ok(settle(transitions::customers_curated(
                    policy,
                    input(Table::CustomerTrusted)?,
                    input(Table::AccelerometerTrusted)?,
                )?)?)
            };
            let outcome = curate(request.policy, &|t| handler::input(store, request, t))?;
            let rubric = match strict {
                true => Some(curate(Policy::Rubric, &|t| {
                    handler::rubric_input(store, request, t)
                })?),
                false => None,
            };
            handler::write_outcome(store, request, outcome, rubric, None)?
        }
        Table::MachineLearningCurated => {
            let input = |t| handler::input(store, request, t).and_then(|f| Ok(f.collect()?));
            // Rubric pairs readings by time alone. Strict pairs them with
            // customers, who carry their pseudonyms: keyed once here, not
            // once per bucket.
            let key = match request.policy {
                Policy::Strict => Some(env.pseudonym_key()?),
                Policy::Rubric => None,
            };
            let customers = match &key {
                Some(key) => transitions::keyed_customers(
                    handler::input(store, request, Table::CustomersCurated)?,
                    key,
                )
                .collect()?,
                None => DataFrame::empty(),
            };
            let inputs = [
                input(Table::StepTrainerTrusted)?,
                input(Table::AccelerometerTrusted)?,
                customers,
            ];
            let mut produced = training_table(store, request, inputs)?;
            produced.pseudonym_key_fingerprint = key.map(|k| k.fingerprint());
            if strict {
                // No later state reads this shadow: count it, don't write it.
                // Lazy scans, so only the time columns are read.
                let (outcome, rows) = transitions::machine_learning_rubric_count(
                    handler::rubric_input(store, request, Table::StepTrainerTrusted)?,
                    handler::rubric_input(store, request, Table::AccelerometerTrusted)?,
                )?;
                produced.rubric = Some(Shadow {
                    table: None,
                    rows,
                    drops: outcome.drops,
                });
            }
            produced
        }
        other => {
            return Err(Error::NotServed {
                function: "trusted-to-curated",
                transition: other,
            });
        }
    };
    handler::finish(store, request, started, produced)
}

/// Builds machine_learning_curated bucket by bucket of reading time, one part per bucket.
fn training_table(
    store: &dyn Store,
    request: &TransitionRequest,
    [steps, readings, keyed_customers]: [DataFrame; 3],
) -> Result<Produced, Error> {
    let prefix = &layout::snapshot_prefix(Table::MachineLearningCurated, &request.run_id);
    let buckets = TimeBuckets::of(&steps, STEP_ROWS_PER_BUCKET)?;
    // One pass over each input finds every bucket's rows.
    let step_rows = buckets.rows(&steps, "sensorReadingTime")?;
    let reading_rows = buckets.rows(&readings, "timestamp")?;
    let (mut rows, mut schema) = (0, None);
    let (mut input_rows, mut kept_rows, mut drops) = (0, 0, BTreeMap::new());
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
                written.push(tables::write_part(store, prefix, n, &mut part)?);
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
            rows += outcome.table.height() as u64;
            schema.get_or_insert_with(|| outcome.table.schema().clone());
            input_rows += outcome.input_rows;
            kept_rows += outcome.kept_rows;
            handler::add_counts(&mut drops, &outcome.drops);
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
    let table = Table::MachineLearningCurated;
    Ok(Produced {
        table: tables::seal(
            store,
            table,
            prefix,
            &request.run_id,
            written,
            rows,
            &schema,
        )?,
        input_rows,
        kept_rows,
        drops,
        repaired: Default::default(),
        quarantine: quarantine.map(|q| Quarantine::Rows(Table::MachineLearningQuarantine, q)),
        rubric: None,
        erased_objects: Default::default(),
        pseudonym_key_fingerprint: None,
    })
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
