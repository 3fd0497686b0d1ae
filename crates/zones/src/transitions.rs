//! The five transitions. 1, 3 and 5 under strict build a Polars plan from
//! their input frames that annotates every input row with the rule that drops
//! it (`_drop`, null when kept); [`settle`] collects the plan once and splits
//! kept rows from counted drops. 5 under rubric has one rule, so a semi join
//! keeps its rows and the rest are counted. 2 and 4 judge each reading alone
//! against a customer index ([`ReadingRule`]), applied while the landing
//! object is parsed. [`outputs`] decides what a transition writes beside
//! its table. Nothing here reads or writes storage.

use polars::prelude::*;

use crate::counts::RowCounts;
use crate::layout::{SnapshotRef, Table};
use crate::policy::{CONSENT, Policy, rule};
use crate::pseudonym::PseudonymKey;
use crate::quarantine::{QuarantineReason, QuarantinedLine, quarantine_frame};
pub use crate::reading_rule::ReadingRule;
use crate::run_id::RunId;

/// The column that carries a row's drop rule while a plan is annotated.
const DROP: &str = "_drop";

/// Columns machine_learning_curated must never carry under strict.
pub const IDENTIFIER_COLUMNS: [&str; 6] = [
    "email",
    "user",
    "customerName",
    "phone",
    "birthDay",
    "serialNumber",
];

/// The width of a time bucket, in milliseconds: one day. Readings pair
/// only at equal times, so the training table's join is cut by time
/// ([`time_bucket`]): the landing transitions write their kept readings by
/// bucket (the shuffle), and the training table joins one bucket of both
/// tables at a time. The generated data has the density of the public
/// data (1,000 customers' readings within 11 hours) and spreads larger
/// scales over more days (a chunk of 1,000 customers every 28 hours), so a
/// day holds at most one chunk at every scale: a training-table child's
/// memory is a day's, and a landing object (one chunk) writes one or two
/// parts per table. An hour made 12 buckets per chunk: at 500x, 6,000
/// buckets and parts of a few thousand rows. Data denser than a chunk a
/// day would want a narrower width.
pub const BUCKET_MS: i64 = 24 * 60 * 60 * 1000;

/// The time bucket of a reading taken at `time_ms` (epoch milliseconds).
pub fn time_bucket(time_ms: i64) -> i64 {
    time_ms.div_euclid(BUCKET_MS)
}

/// `rows` split by the time bucket of their `time_column`, in bucket
/// order, each keeping the rows' order. A row without a time has no bucket
/// (`ComputeError`): readings are kept only with one.
pub fn by_time_bucket(rows: &DataFrame, time_column: &str) -> PolarsResult<Vec<(i64, DataFrame)>> {
    let mut buckets: std::collections::BTreeMap<i64, Vec<IdxSize>> = Default::default();
    for (row, time) in rows.column(time_column)?.i64()?.iter().enumerate() {
        let time = time.ok_or_else(
            || polars_err!(ComputeError: "row {row} has no {time_column}: it has no time bucket"),
        )?;
        buckets
            .entry(time_bucket(time))
            .or_default()
            .push(row as IdxSize);
    }
    if let [(&bucket, _)] = buckets.iter().collect::<Vec<_>>()[..] {
        return Ok(vec![(bucket, rows.clone())]);
    }
    buckets
        .into_iter()
        .map(|(bucket, rows_of)| {
            let taken = rows.take(&IdxCa::from_vec(PlSmallStr::EMPTY, rows_of))?;
            Ok((bucket, taken))
        })
        .collect()
}

/// What a transition's plan produced from frames.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub table: DataFrame,
    /// Rows set aside with a reason (machine_learning_curated only; landing
    /// quarantine happens while parsing).
    pub quarantine: Option<DataFrame>,
    /// Where the rows of the main input (the table the transition filters)
    /// went; for machine_learning_curated `kept` counts step readings
    /// paired, not the rows of `table`.
    pub counts: RowCounts,
}

/// What a transition writes beside its table, decided by the table, the
/// policy and the run alone; the transition functions write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// The table's snapshot.
    pub table: SnapshotRef,
    /// The quarantine table written alongside: the landing dataset's for
    /// transitions 1, 2 and 4 (records that cannot be read),
    /// machine_learning_quarantine for 5 (readings several customers could
    /// explain; empty under rubric); none for 3.
    pub quarantine: Option<SnapshotRef>,
    /// Under strict, the rubric policy's result of the same input, so the
    /// report can explain the difference rule by rule; none under rubric.
    pub rubric: Option<RubricShadow>,
}

/// How a strict run keeps the rubric policy's result of a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RubricShadow {
    /// Written as a shadow snapshot (under `_runs/<run id>/rubric/`),
    /// because the next transition's shadow reads it.
    Written(SnapshotRef),
    /// Only counted: no state reads the training table's shadow (per time,
    /// step readings times accelerometer readings).
    Counted,
}

impl Outputs {
    /// The rubric shadow's snapshot, when it is written.
    pub fn shadow(&self) -> Option<&SnapshotRef> {
        match &self.rubric {
            Some(RubricShadow::Written(snapshot)) => Some(snapshot),
            Some(RubricShadow::Counted) | None => None,
        }
    }
}

/// What the transition producing `table` writes under `policy` in run `run_id`.
pub fn outputs(table: Table, policy: Policy, run_id: &RunId) -> Outputs {
    let quarantine = match table {
        Table::CustomerTrusted => Some(Table::CustomerQuarantine),
        Table::AccelerometerTrusted => Some(Table::AccelerometerQuarantine),
        Table::StepTrainerTrusted => Some(Table::StepTrainerQuarantine),
        Table::MachineLearningCurated => Some(Table::MachineLearningQuarantine),
        _ => None,
    };
    let rubric = match (policy, table) {
        (Policy::Rubric, _) => None,
        (Policy::Strict, Table::MachineLearningCurated) => Some(RubricShadow::Counted),
        (Policy::Strict, _) => Some(RubricShadow::Written(SnapshotRef::rubric_shadow(
            table, run_id,
        ))),
    };
    Outputs {
        table: SnapshotRef::of(table, run_id),
        quarantine: quarantine.map(|q| SnapshotRef::of(q, run_id)),
        rubric,
    }
}

fn null_str() -> Expr {
    lit(NULL).cast(DataType::String)
}

fn left_join() -> JoinArgs {
    JoinArgs {
        maintain_order: MaintainOrderJoin::Left,
        ..JoinArgs::new(JoinType::Left)
    }
}

fn inner_join() -> JoinArgs {
    JoinArgs {
        maintain_order: MaintainOrderJoin::LeftRight,
        ..JoinArgs::new(JoinType::Inner)
    }
}

/// Collects an annotated plan and splits kept rows from dropped ones.
pub fn settle(annotated: LazyFrame) -> PolarsResult<Outcome> {
    split(annotated.collect()?)
}

fn split(df: DataFrame) -> PolarsResult<Outcome> {
    let drop_column = df.column(DROP)?.str()?.clone();
    let table = df.filter(&drop_column.is_null())?.drop(DROP)?;
    let mut drops: std::collections::BTreeMap<&str, u64> = Default::default();
    for rule in drop_column.iter().flatten() {
        *drops.entry(rule).or_default() += 1;
    }
    let counts = drops
        .into_iter()
        .map(|(rule, n)| RowCounts::dropped(rule, n))
        .chain([RowCounts::kept(table.height() as u64)])
        .sum();
    Ok(Outcome {
        table,
        quarantine: None,
        counts,
    })
}

/// 1. customer_landing -> customer_trusted.
pub fn customer_trusted(policy: Policy, landing: LazyFrame) -> LazyFrame {
    let no_consent = col(CONSENT).is_null();
    match policy {
        Policy::Rubric => landing.with_column(
            when(no_consent)
                .then(lit(rule::NO_RESEARCH_CONSENT))
                .otherwise(null_str())
                .alias(DROP),
        ),
        Policy::Strict => {
            // One row per email: the record with the latest lastUpdateDate wins
            // (ties: the later line); it is kept only if it carries consent, so
            // a later record without consent revokes an earlier one. A consent
            // time at or before the epoch is a "no" written as a date.
            let rows = landing.with_row_index("_row", None);
            let latest = rows.clone().group_by([col("email")]).agg([col("_row")
                .sort_by(
                    [col("lastUpdateDate"), col("_row")],
                    SortMultipleOptions::default(),
                )
                .last()
                .alias("_latest")]);
            rows.join(latest, [col("email")], [col("email")], left_join())
                .with_column(
                    when(col("_row").neq(col("_latest")))
                        .then(lit(rule::SUPERSEDED))
                        .when(no_consent)
                        .then(lit(rule::NO_RESEARCH_CONSENT))
                        .when(col(CONSENT).lt_eq(lit(0i64)))
                        .then(lit(rule::IMPLAUSIBLE_CONSENT_DATE))
                        .otherwise(null_str())
                        .alias(DROP),
                )
                .drop(cols(["_row", "_latest"]))
        }
    }
}

/// 3. customer_trusted + accelerometer_trusted -> customers_curated.
///
/// Of the readings only their distinct users count ([`reading_users`]):
/// the readings may be given as those users alone, gathered part by part.
pub fn customers_curated(
    policy: Policy,
    customer_trusted: LazyFrame,
    accelerometer_trusted: LazyFrame,
) -> PolarsResult<LazyFrame> {
    let users = reading_users(accelerometer_trusted).with_column(lit(true).alias("_has_readings"));
    let rows = customer_trusted.with_row_index("_row", None);
    let names: Vec<Expr> = crate::schema::Dataset::Customer
        .landing_schema()
        .columns
        .iter()
        .map(|c| col(c.name.as_str()))
        .collect();
    let first_of_kind = col("_row").eq(col("_row").min().over(names)?);
    Ok(rows
        .join(users, [col("email")], [col("user")], left_join())
        .with_column(
            when(col("_has_readings").is_null())
                .then(lit(rule::NO_READINGS))
                .when(lit(policy == Policy::Rubric).and(first_of_kind.not()))
                .then(lit(rule::DUPLICATE_ROW))
                .otherwise(null_str())
                .alias(DROP),
        )
        .drop(cols(["_row", "_has_readings"])))
}

/// The distinct users of accelerometer readings (a frame of one column,
/// `user`): all of [`customers_curated`] reads of them.
pub fn reading_users(accelerometer_trusted: LazyFrame) -> LazyFrame {
    accelerometer_trusted
        .select([col("user")])
        .unique(None, UniqueKeepStrategy::Any)
}

/// 5. step_trainer_trusted + accelerometer_trusted (+ customers_curated under
///    strict, as [`keyed_customers`]; rubric does not read it) ->
///    machine_learning_curated.
pub fn machine_learning_curated(
    policy: Policy,
    step_trainer_trusted: LazyFrame,
    accelerometer_trusted: LazyFrame,
    keyed_customers: LazyFrame,
) -> PolarsResult<Outcome> {
    match policy {
        Policy::Rubric => {
            // A step reading is kept when any accelerometer reading (of
            // anyone) shares its time, and pairs with each of them.
            let times = accelerometer_trusted.clone().select([col("timestamp")]);
            let steps = step_trainer_trusted.collect()?;
            let kept = steps
                .clone()
                .lazy()
                .join(
                    times,
                    [col("sensorReadingTime")],
                    [col("timestamp")],
                    JoinArgs::new(JoinType::Semi),
                )
                .collect()?;
            let (input_rows, kept_rows) = (steps.height() as u64, kept.height() as u64);
            let table = kept
                .lazy()
                .join(
                    accelerometer_trusted,
                    [col("sensorReadingTime")],
                    [col("timestamp")],
                    inner_join(),
                )
                .select([
                    col("sensorReadingTime"),
                    col("serialNumber"),
                    col("distanceFromObject"),
                    col("user"),
                    col("sensorReadingTime").alias("timestamp"),
                    col("x"),
                    col("y"),
                    col("z"),
                ])
                .collect()?;
            Ok(Outcome {
                table,
                // Rubric never quarantines here; the table exists all the same.
                quarantine: Some(quarantine_frame(&[])),
                counts: paired_steps(input_rows, kept_rows),
            })
        }
        Policy::Strict => {
            strict_machine_learning(step_trainer_trusted, accelerometer_trusted, keyed_customers)
        }
    }
}

/// Rubric's counts of step readings: `kept` of `input` pair with an
/// accelerometer reading, the rest are dropped.
fn paired_steps(input_rows: u64, kept_rows: u64) -> RowCounts {
    let mut counts = RowCounts::kept(kept_rows);
    counts.merge(&RowCounts::dropped(
        rule::NO_READING_AT_TIME,
        input_rows - kept_rows,
    ));
    counts
}

/// machine_learning_curated under rubric, counted without building its rows:
/// all a strict run's report needs of it. Returns the step readings' counts
/// and the number of rows the rubric table would have.
pub fn machine_learning_rubric_count(
    step_trainer_trusted: LazyFrame,
    accelerometer_trusted: LazyFrame,
) -> PolarsResult<(RowCounts, u64)> {
    // Readings pair only at equal times: per time, the step readings times
    // the accelerometer readings there. Only the time columns are read;
    // both are sorted and their runs of equal times walked side by side (a
    // group_by allocates a group per distinct time: 0.3 s at 50x, not 0.14).
    let time_runs = |frame: LazyFrame, column: &str| -> PolarsResult<(u64, Vec<(i64, u64)>)> {
        let frame = frame.select([col(column)]).collect()?;
        let times = frame.column(column)?.i64()?;
        let sorted = times.drop_nulls().sort(false);
        let sorted = sorted.rechunk();
        let runs = sorted.cont_slice()?.chunk_by(|a, b| a == b);
        let runs = runs.map(|run| (run[0], run.len() as u64)).collect();
        Ok((times.len() as u64, runs))
    };
    let (input_rows, steps) = time_runs(step_trainer_trusted, "sensorReadingTime")?;
    let (_, readings) = time_runs(accelerometer_trusted, "timestamp")?;
    let (mut kept_rows, mut rows, mut r) = (0, 0, 0);
    for (time, step_count) in steps {
        r += readings[r..].partition_point(|&(t, _)| t < time);
        if let Some(&(t, reading_count)) = readings.get(r)
            && t == time
        {
            kept_rows += step_count;
            rows += step_count * reading_count;
        }
    }
    Ok((paired_steps(input_rows, kept_rows), rows))
}

/// The customer side of transition 5 under strict: customers_curated's
/// serial, e-mail and consent, with each customer's pseudonym. Build it once
/// per run and pass it to every [`machine_learning_curated`] call.
pub fn keyed_customers(customers_curated: LazyFrame, key: &PseudonymKey) -> LazyFrame {
    let key = key.clone();
    customers_curated.select([
        col("serialNumber"),
        col("email").alias("_email"),
        col(CONSENT).alias("_consent"),
        col("email")
            .map(
                move |c: Column| {
                    let out: StringChunked = c
                        .str()?
                        .iter()
                        .map(|e| e.map(|e| key.pseudonym(e)))
                        .collect();
                    Ok(out.into_column())
                },
                |_, field| Ok(Field::new(field.name().clone(), DataType::String)),
            )
            .alias("customerKey"),
    ])
}

fn strict_machine_learning(
    step_trainer_trusted: LazyFrame,
    accelerometer_trusted: LazyFrame,
    customers: LazyFrame,
) -> PolarsResult<Outcome> {
    let steps = step_trainer_trusted;
    // Confirmations: a curated customer's accelerometer reading at a time on or
    // after their consent, keyed by their serial. A step reading's candidates
    // are the customers with its serial who had consented by then; those
    // confirmed are exactly the confirmations at its (serial, time). Joining
    // on (serial, time) keeps this linear even when a serial has many owners.
    let confirmations = accelerometer_trusted
        .clone()
        .select([col("user"), col("timestamp")])
        .unique(None, UniqueKeepStrategy::Any)
        .join(customers, [col("user")], [col("_email")], inner_join())
        .filter(col("_consent").lt_eq(col("timestamp")))
        .group_by([col("serialNumber"), col("timestamp")])
        .agg([
            len().alias("_matches"),
            col("user").first().alias("_email"),
            col("customerKey").first().alias("customerKey"),
        ]);
    let annotated = steps
        .join(
            confirmations,
            [col("serialNumber"), col("sensorReadingTime")],
            [col("serialNumber"), col("timestamp")],
            left_join(),
        )
        .with_column(
            when(col("_matches").is_null())
                .then(lit(rule::NO_CONFIRMED_CUSTOMER))
                .when(col("_matches").gt(lit(1)))
                .then(lit(QuarantineReason::AmbiguousCustomer.as_str()))
                .otherwise(null_str())
                .alias(DROP),
        );
    let df = annotated.collect()?;
    let ambiguous_mask = df
        .column(DROP)?
        .str()?
        .equal(QuarantineReason::AmbiguousCustomer.as_str());
    let ambiguous = df.filter(&ambiguous_mask)?;
    let mut outcome = split(df)?;
    // The plan marks ambiguous readings like drops; they are quarantined.
    let reason = QuarantineReason::AmbiguousCustomer.as_str();
    if let Some(n) = outcome.counts.dropped.remove(reason) {
        outcome.counts.quarantined.insert(reason.to_string(), n);
    }
    outcome.quarantine = Some(ambiguous_quarantine(&ambiguous)?);
    // One output row per accelerometer reading of the confirmed customer.
    outcome.table = outcome
        .table
        .lazy()
        .join(
            accelerometer_trusted,
            [col("_email"), col("sensorReadingTime")],
            [col("user"), col("timestamp")],
            inner_join(),
        )
        .select([
            col("sensorReadingTime"),
            col("distanceFromObject"),
            col("x"),
            col("y"),
            col("z"),
            col("customerKey"),
        ])
        .collect()?;
    Ok(outcome)
}

/// Step readings that several candidate customers could explain, as quarantine rows.
fn ambiguous_quarantine(ambiguous: &DataFrame) -> PolarsResult<DataFrame> {
    let matches = ambiguous.column("_matches")?.cast(&DataType::Int64)?;
    let times = ambiguous.column("sensorReadingTime")?.i64()?.clone();
    let serials = ambiguous.column("serialNumber")?.str()?.clone();
    let distances = ambiguous.column("distanceFromObject")?.i32()?.clone();
    let mut lines = Vec::with_capacity(ambiguous.height());
    for i in 0..ambiguous.height() {
        let (time, serial, distance) = (times.get(i), serials.get(i), distances.get(i));
        let raw = serde_json::json!({
            "sensorReadingTime": time, "serialNumber": serial, "distanceFromObject": distance,
        });
        lines.push(QuarantinedLine {
            source: crate::layout::Table::StepTrainerTrusted.name().to_string(),
            line: None,
            reason: QuarantineReason::AmbiguousCustomer,
            detail: format!(
                "{} candidate customers with serial {} have an accelerometer reading at {}",
                matches.i64()?.get(i).unwrap_or_default(),
                serial.unwrap_or_default(),
                time.unwrap_or_default(),
            ),
            raw: raw.to_string(),
        });
    }
    Ok(quarantine_frame(&lines))
}
