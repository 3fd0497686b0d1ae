//! The gate's check texts, run over small tables that break each rule a
//! known number of times.

use std::collections::BTreeMap;

use polars::prelude::*;
use polars::sql::SQLContext;
use zones::Policy;
use zones::checks::{Expect, checks};

fn violations(tables: &[(&str, DataFrame)]) -> BTreeMap<String, i64> {
    let mut context = SQLContext::new();
    for (name, frame) in tables {
        context.register(name, frame.clone().lazy());
    }
    checks(Policy::Strict, &BTreeMap::new())
        .into_iter()
        .filter(|c| c.expect == Expect::NoViolations)
        .map(|c| {
            let result = context.execute(&c.sql).and_then(|f| f.collect());
            let result = result.unwrap_or_else(|e| panic!("{}: {e}", c.name));
            let count = result.column("violations").expect("violations");
            let count = count.cast(&DataType::Int64).expect("an integer");
            (c.name, count.i64().expect("i64").get(0).expect("one row"))
        })
        .collect()
}

#[test]
fn each_check_counts_exactly_the_rows_that_break_its_rule() {
    let consent = "shareWithResearchAsOfDate";
    let customer_trusted = df!(
        "email" => ["a@x", "b@x", "b@x", "c@x"],
        consent => [Some(100i64), Some(200), Some(250), None],
    )
    .expect("customers");
    let accelerometer_trusted = df!(
        // d@x is no trusted customer; a@x reads once before consenting
        // (b@x's 220 is before one of its two records' consent).
        "user" => ["a@x", "a@x", "b@x", "d@x", "d@x"],
        "timestamp" => [100i64, 99, 220, 500, 501],
    )
    .expect("readings");
    let customers_curated = df!(
        "email" => ["a@x", "b@x"],
        "serialNumber" => ["S1", "S2"],
        consent => [100i64, 200],
    )
    .expect("curated");
    let step_trainer_trusted = df!(
        // S3 belongs to no curated customer; S1 at 50 is before consent.
        "serialNumber" => ["S1", "S1", "S2", "S3"],
        "sensorReadingTime" => [100i64, 50, 200, 300],
    )
    .expect("steps");
    let found = violations(&[
        ("customer_trusted", customer_trusted),
        ("accelerometer_trusted", accelerometer_trusted),
        ("customers_curated", customers_curated),
        ("step_trainer_trusted", step_trainer_trusted),
    ]);
    let expected: BTreeMap<String, i64> = [
        ("customer_trusted_has_consent", 1),
        ("accelerometer_users_are_trusted_customers", 2),
        ("customer_trusted_one_row_per_email", 1),
        ("no_accelerometer_reading_before_consent", 2),
        ("no_step_reading_before_consent", 2),
    ]
    .into_iter()
    .map(|(name, n)| (name.to_string(), n))
    .collect();
    assert_eq!(found, expected);
}
