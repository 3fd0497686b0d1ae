//! The five transitions. 1, 3 and 5 under strict build a Polars plan from
//! their input frames that annotates every input row with the rule that drops
//! it (`_drop`, null when kept); [`settle`] collects the plan once and splits
//! kept rows from counted drops. 5 under rubric has one rule, so a semi join
//! keeps its rows and the rest are counted. 2 and 4 judge each reading alone
//! against a customer index ([`ReadingRule`]), applied while the landing
//! object is parsed. Nothing here reads or writes storage.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::policy::{CONSENT, Policy, rule};
use crate::pseudonym::PseudonymKey;
use crate::quarantine::{QuarantineReason, QuarantinedLine, quarantine_frame};
pub use crate::reading_rule::ReadingRule;

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

/// What a transition produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub table: DataFrame,
    /// Rows set aside with a reason (machine_learning_curated only; landing
    /// quarantine happens while parsing).
    pub quarantine: Option<DataFrame>,
    /// Rows of the main input dropped, by rule.
    pub drops: BTreeMap<String, u64>,
    /// Rows of the main input (the table the transition filters).
    pub input_rows: u64,
    /// Input rows kept (for machine_learning_curated: step readings paired).
    pub kept_rows: u64,
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
    let mut drops = BTreeMap::new();
    for rule in drop_column.iter().flatten() {
        *drops.entry(rule.to_string()).or_insert(0u64) += 1;
    }
    let table = df.filter(&drop_column.is_null())?.drop(DROP)?;
    Ok(Outcome {
        input_rows: df.height() as u64,
        kept_rows: table.height() as u64,
        table,
        quarantine: None,
        drops,
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
pub fn customers_curated(
    policy: Policy,
    customer_trusted: LazyFrame,
    accelerometer_trusted: LazyFrame,
) -> PolarsResult<LazyFrame> {
    let users = accelerometer_trusted
        .select([col("user")])
        .unique(None, UniqueKeepStrategy::Any)
        .with_column(lit(true).alias("_has_readings"));
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
                drops: unpaired_steps(input_rows, kept_rows),
                input_rows,
                kept_rows,
            })
        }
        Policy::Strict => {
            strict_machine_learning(step_trainer_trusted, accelerometer_trusted, keyed_customers)
        }
    }
}

/// Rubric's drops of step readings: those no accelerometer reading pairs with.
fn unpaired_steps(input_rows: u64, kept_rows: u64) -> BTreeMap<String, u64> {
    match input_rows - kept_rows {
        0 => BTreeMap::new(),
        n => BTreeMap::from([(rule::NO_READING_AT_TIME.to_string(), n)]),
    }
}

/// machine_learning_curated under rubric, counted without building its rows:
/// all a strict run's report needs of it. Returns the outcome (its table
/// empty) and the number of rows the rubric table would have.
pub fn machine_learning_rubric_count(
    step_trainer_trusted: LazyFrame,
    accelerometer_trusted: LazyFrame,
) -> PolarsResult<(Outcome, u64)> {
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
    let outcome = Outcome {
        table: DataFrame::empty(),
        quarantine: None,
        drops: unpaired_steps(input_rows, kept_rows),
        input_rows,
        kept_rows,
    };
    Ok((outcome, rows))
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
    outcome
        .drops
        .remove(QuarantineReason::AmbiguousCustomer.as_str());
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
