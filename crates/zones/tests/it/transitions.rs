//! Every transition under both policies on one small hand-built story:
//! - a@x consents at 100, has a reading before consent (90);
//! - b@x never consents; c@x consents, then a later record revokes it;
//! - d@x first refuses, then a later record consents at 300;
//! - e@x's record arrives twice; f@x consents but has no reading;
//! - g@x consents at 50 and shares serial S1 with a@x (and c@x): at time 100
//!   both a@x and g@x have a reading, so the S1 reading at 100 is ambiguous.

use polars::prelude::*;
use zones::landing::parse_judged;
use zones::policy::rule;
use zones::transitions::{self, Outcome, ReadingRule, settle};
use zones::{Dataset, Policy, PseudonymKey, RowCounts};

use crate::support::{canonical, drops, rows};

fn customer(email: &str, serial: &str, last_update: i64, consent: Option<i64>) -> String {
    let consent = consent.map_or(String::new(), |c| {
        format!(r#","shareWithResearchAsOfDate":{c}"#)
    });
    format!(
        r#"{{"customerName":"N","email":"{email}","phone":"1","birthDay":"1900-01-01","serialNumber":"{serial}","registrationDate":1,"lastUpdateDate":{last_update}{consent}}}"#
    )
}

fn customer_landing() -> LazyFrame {
    let lines = [
        customer("a@x", "S1", 10, Some(100)),
        customer("b@x", "S1", 10, None),
        customer("c@x", "S1", 10, Some(100)),
        customer("c@x", "S1", 20, None),
        customer("d@x", "S2", 10, None),
        customer("d@x", "S2", 20, Some(300)),
        customer("e@x", "S3", 10, Some(100)),
        customer("e@x", "S3", 10, Some(100)),
        customer("f@x", "S4", 10, Some(100)),
        customer("g@x", "S1", 10, Some(50)),
    ];
    rows(
        Dataset::Customer,
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

fn accelerometer_landing() -> Vec<u8> {
    let readings = [
        ("a@x", 90, 1),
        ("a@x", 100, 2),
        ("a@x", 110, 3),
        ("a@x", 110, 4),
        ("b@x", 100, 5),
        ("c@x", 100, 6),
        ("d@x", 200, 7),
        ("d@x", 300, 8),
        ("e@x", 110, 9),
        ("z@x", 100, 10),
        ("g@x", 100, 11),
    ];
    let lines: Vec<String> = readings
        .iter()
        .map(|(u, t, x)| format!(r#"{{"user":"{u}","timestamp":{t},"x":{x},"y":0,"z":0}}"#))
        .collect();
    lines.join("\n").into_bytes()
}

fn step_landing() -> Vec<u8> {
    let readings = [
        ("S1", 90, 190),
        ("S1", 100, 200),
        ("S1", 110, 210),
        ("S2", 250, 250),
        ("S2", 300, 300),
        ("S3", 110, 111),
        ("S9", 100, 999),
    ];
    let lines: Vec<String> = readings
        .iter()
        .map(|(s, t, d)| {
            format!(r#"{{"sensorReadingTime":{t},"serialNumber":"{s}","distanceFromObject":{d}}}"#)
        })
        .collect();
    lines.join("\n").into_bytes()
}

/// Transitions 2 and 4: parse the landing bytes, judging each reading by the rule.
fn judged(dataset: Dataset, bytes: &[u8], rule: &ReadingRule) -> Outcome {
    let mut parsed = parse_judged(dataset, "test.json", bytes, &[rule]);
    assert!(parsed.quarantined.is_empty());
    Outcome {
        table: parsed.rows.remove(0),
        quarantine: None,
        counts: parsed.counts.remove(0),
    }
}

/// Runs the five transitions in order; returns their outcomes.
fn pipeline(policy: Policy) -> [Outcome; 5] {
    let key = PseudonymKey::new(b"test-key");
    let customer_trusted =
        settle(transitions::customer_trusted(policy, customer_landing())).unwrap();
    let rule = ReadingRule::accelerometer_trusted(policy, &customer_trusted.table).unwrap();
    let accelerometer_trusted = judged(Dataset::Accelerometer, &accelerometer_landing(), &rule);
    let customers_curated = settle(
        transitions::customers_curated(
            policy,
            customer_trusted.table.clone().lazy(),
            accelerometer_trusted.table.clone().lazy(),
        )
        .unwrap(),
    )
    .unwrap();
    let rule = ReadingRule::step_trainer_trusted(policy, &customers_curated.table).unwrap();
    let step_trainer_trusted = judged(Dataset::StepTrainer, &step_landing(), &rule);
    let machine_learning = transitions::machine_learning_curated(
        policy,
        step_trainer_trusted.table.clone().lazy(),
        accelerometer_trusted.table.clone().lazy(),
        transitions::keyed_customers(customers_curated.table.clone().lazy(), &key),
    )
    .unwrap();
    [
        customer_trusted,
        accelerometer_trusted,
        customers_curated,
        step_trainer_trusted,
        machine_learning,
    ]
}

fn column(outcome: &Outcome, name: &str) -> Vec<String> {
    let mut values: Vec<String> = outcome
        .table
        .column(name)
        .unwrap()
        .as_materialized_series()
        .iter()
        .map(|v| match v {
            AnyValue::String(s) => s.to_string(),
            other => other.to_string(),
        })
        .collect();
    values.sort();
    values
}

/// Every input row accounted for, and the counts agree with the frames.
fn accounted(outcome: &Outcome) {
    let counts = &outcome.counts;
    assert!(counts.is_balanced(), "{counts:?}");
    let quarantined = outcome.quarantine.as_ref().map_or(0, |q| q.height() as u64);
    assert_eq!(counts.quarantined_total(), quarantined, "{counts:?}");
}

#[test]
fn strict_policy() {
    let [customer, accelerometer, curated, step, ml] = pipeline(Policy::Strict);
    for o in [&customer, &accelerometer, &curated, &step, &ml] {
        accounted(o);
    }

    // One row per email, latest record wins; c@x revoked, d@x consented later.
    assert_eq!(
        column(&customer, "email"),
        ["a@x", "d@x", "e@x", "f@x", "g@x"]
    );
    assert_eq!(
        customer.counts.dropped,
        drops(&[(rule::NO_RESEARCH_CONSENT, 2), (rule::SUPERSEDED, 3)])
    );
    assert_eq!(customer.counts.input, 10);

    // No reading before its owner's consent; b, c (revoked) and z are not trusted customers.
    assert_eq!(
        column(&accelerometer, "x"),
        ["11.0", "2.0", "3.0", "4.0", "8.0", "9.0"]
    );
    assert_eq!(
        accelerometer.counts.dropped,
        drops(&[(rule::BEFORE_CONSENT, 2), (rule::USER_NOT_TRUSTED, 3)])
    );

    assert_eq!(column(&curated, "email"), ["a@x", "d@x", "e@x", "g@x"]);
    assert_eq!(curated.counts.dropped, drops(&[(rule::NO_READINGS, 1)]));

    // S1's earliest consent is g@x's (50), so S1@90 stays; S2@250 precedes d@x's consent.
    assert_eq!(
        column(&step, "distanceFromObject"),
        ["111", "190", "200", "210", "300"]
    );
    assert_eq!(
        step.counts.dropped,
        drops(&[(rule::BEFORE_CONSENT, 1), (rule::SERIAL_NOT_CURATED, 1)])
    );

    // S1@90: only g@x had consented, and g@x has no reading at 90: dropped.
    // S1@100: a@x and g@x both have a reading at 100: quarantined, not guessed.
    // S1@110: only a@x has readings at 110 (two): two rows.
    let key = PseudonymKey::new(b"test-key");
    let (a, d, e) = (
        key.pseudonym("a@x"),
        key.pseudonym("d@x"),
        key.pseudonym("e@x"),
    );
    let mut expected = vec![
        format!("sensorReadingTime=110 distanceFromObject=111 x=9.0 y=0.0 z=0.0 customerKey={e}"),
        format!("sensorReadingTime=110 distanceFromObject=210 x=3.0 y=0.0 z=0.0 customerKey={a}"),
        format!("sensorReadingTime=110 distanceFromObject=210 x=4.0 y=0.0 z=0.0 customerKey={a}"),
        format!("sensorReadingTime=300 distanceFromObject=300 x=8.0 y=0.0 z=0.0 customerKey={d}"),
    ];
    expected.sort();
    assert_eq!(canonical(&ml.table), expected);
    assert_eq!(
        ml.counts,
        RowCounts {
            input: 5,
            kept: 3,
            quarantined: drops(&[("ambiguous_customer", 1)]),
            dropped: drops(&[(rule::NO_CONFIRMED_CUSTOMER, 1)]),
            repaired: Default::default(),
        }
    );
    let quarantine = ml
        .quarantine
        .as_ref()
        .expect("strict quarantines ambiguous readings");
    assert_eq!(
        canonical(
            &quarantine
                .select(["line", "reason", "detail", "raw"])
                .unwrap()
        ),
        [
            r#"line=null reason=ambiguous_customer detail=2 candidate customers with serial S1 have an accelerometer reading at 100 raw={"distanceFromObject":200,"sensorReadingTime":100,"serialNumber":"S1"}"#
        ]
    );
    for identifier in zones::transitions::IDENTIFIER_COLUMNS {
        assert!(
            ml.table.column(identifier).is_err(),
            "{identifier} must not be in machine_learning_curated"
        );
    }
}

#[test]
fn rubric_policy() {
    let [customer, accelerometer, curated, step, ml] = pipeline(Policy::Rubric);
    for o in [&customer, &accelerometer, &curated, &step, &ml] {
        accounted(o);
    }
    assert_eq!(
        column(&customer, "email"),
        ["a@x", "c@x", "d@x", "e@x", "e@x", "f@x", "g@x"]
    );
    assert_eq!(
        customer.counts.dropped,
        drops(&[(rule::NO_RESEARCH_CONSENT, 3)])
    );

    assert_eq!(
        column(&accelerometer, "x"),
        [
            "1.0", "11.0", "2.0", "3.0", "4.0", "6.0", "7.0", "8.0", "9.0"
        ]
    );
    assert_eq!(
        accelerometer.counts.dropped,
        drops(&[(rule::USER_NOT_TRUSTED, 2)])
    );

    assert_eq!(
        column(&curated, "email"),
        ["a@x", "c@x", "d@x", "e@x", "g@x"]
    );
    assert_eq!(
        curated.counts.dropped,
        drops(&[(rule::DUPLICATE_ROW, 1), (rule::NO_READINGS, 1)])
    );

    assert_eq!(
        column(&step, "distanceFromObject"),
        ["111", "190", "200", "210", "250", "300"]
    );
    assert_eq!(step.counts.dropped, drops(&[(rule::SERIAL_NOT_CURATED, 1)]));

    // Joined on time alone: 90 -> 1, 100 -> 3 (a, c, g), 110 -> 3 twice (S1 and S3), 300 -> 1.
    assert_eq!(ml.table.height(), 11);
    assert_eq!(ml.counts.kept, 5);
    assert_eq!(ml.counts.dropped, drops(&[(rule::NO_READING_AT_TIME, 1)]));
    assert_eq!(
        ml.table.get_column_names(),
        [
            "sensorReadingTime",
            "serialNumber",
            "distanceFromObject",
            "user",
            "timestamp",
            "x",
            "y",
            "z"
        ]
    );
    // a@x: 90, 100, 110 x2 for S1 and again x2 for S3.
    assert_eq!(
        column(&ml, "user"),
        [
            "a@x", "a@x", "a@x", "a@x", "a@x", "a@x", "c@x", "d@x", "e@x", "e@x", "g@x"
        ]
    );
}

#[test]
fn pseudonym_is_hmac_sha256() {
    // RFC 4231, test case 2.
    assert_eq!(
        PseudonymKey::new(b"Jefe").pseudonym("what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn rubric_count_matches_the_rubric_table() {
    let [_, accelerometer, _, step, ml] = pipeline(Policy::Rubric);
    let (counts, rows) = transitions::machine_learning_rubric_count(
        step.table.clone().lazy(),
        accelerometer.table.clone().lazy(),
    )
    .unwrap();
    assert_eq!(rows, ml.table.height() as u64);
    assert_eq!(rows, 11);
    assert_eq!(counts, ml.counts);
}

/// A consent time at or before the epoch is "no" written as a date: strict
/// drops the customer under its own rule (also when it is the latest record
/// and supersedes a real consent), rubric keeps it (`IS NOT NULL`).
#[test]
fn a_consent_at_or_before_the_epoch_is_no_consent_under_strict_only() {
    let lines = [
        customer("zero@x", "S1", 10, Some(0)),
        customer("negative@x", "S2", 10, Some(-1)),
        customer("one@x", "S3", 10, Some(1)),
        customer("later@x", "S4", 10, Some(100)),
        customer("later@x", "S4", 20, Some(0)),
        customer("none@x", "S5", 10, None),
    ];
    let landing = rows(
        Dataset::Customer,
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let strict = settle(transitions::customer_trusted(
        Policy::Strict,
        landing.clone(),
    ))
    .unwrap();
    assert_eq!(column(&strict, "email"), ["one@x"]);
    assert_eq!(
        strict.counts.dropped,
        drops(&[
            (rule::IMPLAUSIBLE_CONSENT_DATE, 3),
            (rule::NO_RESEARCH_CONSENT, 1),
            (rule::SUPERSEDED, 1),
        ])
    );
    let rubric = settle(transitions::customer_trusted(Policy::Rubric, landing)).unwrap();
    assert_eq!(
        column(&rubric, "email"),
        ["later@x", "later@x", "negative@x", "one@x", "zero@x"]
    );
    assert_eq!(
        rubric.counts.dropped,
        drops(&[(rule::NO_RESEARCH_CONSENT, 1)])
    );
}

/// What each transition writes beside its table, under each policy: the
/// quarantine table, and under strict the rubric shadow (written when the
/// next transition's shadow reads it, only counted for the training table).
#[test]
fn each_transition_writes_its_quarantine_and_under_strict_its_rubric_shadow() {
    use zones::Table::*;
    use zones::layout::SnapshotRef;
    use zones::transitions::{RubricShadow, outputs};
    let run = zones::RunId::parse("r1").unwrap();
    for (table, quarantine) in [
        (CustomerTrusted, Some(CustomerQuarantine)),
        (AccelerometerTrusted, Some(AccelerometerQuarantine)),
        (CustomersCurated, None),
        (StepTrainerTrusted, Some(StepTrainerQuarantine)),
        (MachineLearningCurated, Some(MachineLearningQuarantine)),
    ] {
        let rubric = outputs(table, Policy::Rubric, &run);
        let strict = outputs(table, Policy::Strict, &run);
        for o in [&rubric, &strict] {
            assert_eq!(o.table, SnapshotRef::of(table, &run), "{table}");
            assert_eq!(
                o.quarantine,
                quarantine.map(|q| SnapshotRef::of(q, &run)),
                "{table}"
            );
        }
        assert_eq!(rubric.rubric, None, "{table}");
        let shadow = match table {
            MachineLearningCurated => RubricShadow::Counted,
            _ => RubricShadow::Written(SnapshotRef::rubric_shadow(table, &run)),
        };
        assert_eq!(strict.rubric, Some(shadow), "{table}");
    }
    let strict = outputs(CustomerTrusted, Policy::Strict, &run);
    assert_eq!(
        (
            strict.table.location.as_str(),
            strict.shadow().map(|s| s.location.as_str()),
            strict.quarantine.as_ref().map(|q| q.location.as_str())
        ),
        (
            "customer/trusted/r1/",
            Some("_runs/r1/rubric/customer_trusted/"),
            Some("customer/quarantine/r1/")
        )
    );
    assert_eq!(
        outputs(MachineLearningCurated, Policy::Strict, &run).shadow(),
        None
    );
}

/// A request names the snapshots its transition reads; one it does not
/// name is an error naming the transition and the input.
#[test]
fn a_request_names_its_inputs_and_a_missing_one_is_named() {
    use zones::Table::*;
    use zones::contract::{MissingInput, TableRef, TransitionRequest};
    let snapshot = |table| TableRef {
        table,
        location: format!("{table}/r1/"),
        snapshot: "r1".into(),
        rows: 1,
        columns: Vec::new(),
        manifest_crc32c: None,
    };
    let request = TransitionRequest {
        run_id: zones::RunId::parse("r1").unwrap(),
        policy: Policy::Strict,
        transition: CustomersCurated,
        inputs: [(CustomerTrusted, snapshot(CustomerTrusted))].into(),
        rubric_inputs: [(CustomerTrusted, None)].into(),
    };
    assert_eq!(
        request.input(CustomerTrusted),
        Ok(&snapshot(CustomerTrusted))
    );
    let missing = request.input(AccelerometerTrusted).unwrap_err();
    assert_eq!(
        missing,
        MissingInput::Table {
            transition: CustomersCurated,
            input: AccelerometerTrusted
        }
    );
    assert_eq!(
        missing.to_string(),
        "customers_curated needs input `accelerometer_trusted`, which the request does not name"
    );
    // A shadow named as null (a rubric run's) is no shadow.
    assert_eq!(
        request
            .rubric_input(CustomerTrusted)
            .unwrap_err()
            .to_string(),
        "customers_curated under strict needs the rubric shadow of `customer_trusted`, which the request does not name"
    );
}

/// Readings split by day (the shuffle of the training table's join): each
/// in the bucket of its time, bucket order, row order kept; a reading
/// without a time has none.
#[test]
fn readings_are_split_by_the_day_of_their_time() {
    use zones::transitions::{BUCKET_MS, by_time_bucket, time_bucket};
    assert_eq!(BUCKET_MS, 86_400_000);
    assert_eq!(time_bucket(1_655_560_129_236), 19_161);
    assert_eq!(time_bucket(0), 0);
    assert_eq!(time_bucket(-1), -1, "before the epoch: the day before");
    let day = BUCKET_MS;
    let rows = df!(
        "timestamp" => [2 * day + 5, day, 2 * day, day + day - 1, -3],
        "x" => [1.0, 2.0, 3.0, 4.0, 5.0],
    )
    .unwrap();
    let split: Vec<(i64, Vec<f64>)> = by_time_bucket(&rows, "timestamp")
        .unwrap()
        .into_iter()
        .map(|(b, df)| {
            (
                b,
                df.column("x")
                    .unwrap()
                    .f64()
                    .unwrap()
                    .into_no_null_iter()
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        split,
        [(-1, vec![5.0]), (1, vec![2.0, 4.0]), (2, vec![1.0, 3.0])]
    );
    // One day: the frame itself.
    let one = df!("timestamp" => [day, day + 1]).unwrap();
    assert_eq!(
        by_time_bucket(&one, "timestamp").unwrap(),
        [(1, one.clone())]
    );
    let untimed = df!("timestamp" => [Some(day), None]).unwrap();
    let error = by_time_bucket(&untimed, "timestamp").unwrap_err();
    assert!(
        error.to_string().contains("row 1 has no timestamp"),
        "{error}"
    );
}

#[test]
fn the_consent_index_holds_each_keys_earliest_consent() {
    use zones::reading_rule::ConsentIndex;
    let customers = df!(
        "serialNumber" => [Some("S1"), Some("S2"), Some("S1"), None, Some("S3"), Some("S1")],
        "shareWithResearchAsOfDate" => [Some(300i64), Some(5), Some(100), Some(1), None, Some(200)],
    )
    .unwrap();
    let index = ConsentIndex::new(&customers, "serialNumber").unwrap();
    assert_eq!(index.len(), 2, "S3 has no consent, the null serial no key");
    assert_eq!(index.get("S1"), Some(100));
    assert_eq!(index.get("S2"), Some(5));
    assert_eq!(index.get("S3"), None);
    assert_eq!(index.get("S"), None);
    assert_eq!(index.get(""), None);
    // A key is a key's exact bytes.
    assert_eq!(index.get("s1"), None);
    assert_eq!(index.get("S1 "), None);
    assert!(format!("{index:?}").contains("keys: 2"));

    let other = df!("email" => ["a@x"], "shareWithResearchAsOfDate" => ["100"]).unwrap();
    let error = ConsentIndex::new(&other, "email").unwrap_err().to_string();
    assert!(error.contains("expected `Int64`, got `str`"), "{error}");
}
