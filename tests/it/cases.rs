//! The landing shapes of `fixtures/cases/` (copied from the shared cases:
//! each a warehouse's landing zone as real producers write it), each run
//! through `stedi run` under both policies, with the exact published counts,
//! quarantine by reason and repairs by kind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{query_csv, report, stedi_ok};

const TABLES: [&str; 5] = [
    "customer_trusted",
    "accelerometer_trusted",
    "customers_curated",
    "step_trainer_trusted",
    "machine_learning_curated",
];
const DATASETS: [&str; 3] = ["customer", "accelerometer", "step_trainer"];
/// The transition (index in the report) that reads each dataset's landing data.
const READS_LANDING: [usize; 3] = [0, 1, 3];

type Counts = &'static [(&'static str, u64)];

struct Case {
    name: &'static str,
    rubric: [u64; 5],
    strict: [u64; 5],
    /// Landing records read, per dataset.
    records: [u64; 3],
    /// Quarantine by reason, per dataset.
    quarantined: [Counts; 3],
    /// Repairs by kind, per dataset.
    repaired: [Counts; 3],
}

const NONE: Counts = &[];

const CASES: [Case; 6] = [
    Case {
        name: "trailing-comma-lines",
        rubric: [1, 3, 1, 3, 3],
        strict: [1, 2, 1, 2, 2],
        records: [2, 4, 4],
        quarantined: [NONE, NONE, NONE],
        repaired: [NONE, NONE, &[("trailing_comma", 3)]],
    },
    Case {
        name: "float-epochs-nulls-int-phone",
        rubric: [2, 4, 2, 4, 4],
        strict: [2, 2, 2, 2, 2],
        records: [3, 5, 5],
        quarantined: [NONE, NONE, NONE],
        repaired: [
            &[("integral_float", 3), ("number_as_string", 3)],
            NONE,
            NONE,
        ],
    },
    Case {
        name: "bom-crlf-blank-lines",
        rubric: [1, 2, 1, 2, 2],
        strict: [1, 1, 1, 1, 1],
        records: [2, 3, 3],
        quarantined: [NONE, NONE, NONE],
        repaired: [
            &[("blank_lines", 2), ("bom", 1), ("crlf", 2)],
            &[("blank_lines", 1), ("crlf", 3)],
            &[("blank_lines", 1)],
        ],
    },
    Case {
        name: "consent-zero-sentinel",
        rubric: [2, 3, 2, 3, 5],
        strict: [1, 1, 1, 1, 1],
        records: [4, 5, 5],
        quarantined: [NONE, NONE, NONE],
        repaired: [NONE, NONE, NONE],
    },
    Case {
        name: "concatenated-objects",
        rubric: [1, 4, 1, 3, 4],
        strict: [1, 3, 1, 2, 3],
        records: [2, 5, 3],
        quarantined: [NONE, NONE, NONE],
        repaired: [NONE, &[("concatenated_objects", 3)], NONE],
    },
    Case {
        name: "truncated-last-record",
        rubric: [2, 3, 2, 3, 5],
        strict: [2, 3, 2, 3, 3],
        records: [3, 4, 4],
        quarantined: [&[("malformed_json", 1)], &[("malformed_json", 1)], NONE],
        repaired: [NONE, NONE, NONE],
    },
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/cases")
        .join(name)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A fresh warehouse holding the landing zone of case `name`.
pub fn case_warehouse(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(name), dir.path());
    dir
}

fn count(warehouse: &Path, table: &str) -> u64 {
    query_csv(warehouse, &format!("SELECT COUNT(*) AS n FROM {table}"))[1]
        .parse()
        .unwrap()
}

fn map(counts: Counts) -> BTreeMap<String, u64> {
    counts.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn as_map(value: &serde_json::Value) -> BTreeMap<String, u64> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

fn check(case: &Case, policy: &str) {
    let dir = case_warehouse(case.name);
    let wh = dir.path();
    let summary = stedi_ok(wh, &["run", "--policy", policy, "--run-id", "case"]);
    let what = format!("{} {policy}", case.name);
    let expected = if policy == "rubric" {
        case.rubric
    } else {
        case.strict
    };
    let published: Vec<u64> = TABLES.iter().map(|t| count(wh, t)).collect();
    assert_eq!(published, expected, "{what}: published rows");

    let r = report(wh, "case");
    let lines = r["transitions"].as_array().unwrap();
    for line in lines {
        assert_eq!(line["accounted"], true, "{what}: {line}");
    }
    for (d, dataset) in DATASETS.iter().enumerate() {
        let line = &lines[READS_LANDING[d]];
        assert_eq!(
            line["counts"]["input"], case.records[d],
            "{what}: {dataset} records"
        );
        assert_eq!(
            as_map(&line["counts"]["quarantined"]),
            map(case.quarantined[d]),
            "{what}: {dataset} quarantine by reason"
        );
        assert_eq!(
            as_map(&line["counts"]["repaired"]),
            map(case.repaired[d]),
            "{what}: {dataset} repairs by kind"
        );
        let quarantined: u64 = case.quarantined[d].iter().map(|(_, n)| n).sum();
        assert_eq!(
            count(wh, &format!("{dataset}_quarantine")),
            quarantined,
            "{what}"
        );
        for (kind, n) in case.repaired[d] {
            assert!(
                summary.contains(&format!("{kind} {n}")),
                "{what}: summary names {kind}:\n{summary}"
            );
        }
    }
}

#[test]
fn every_case_publishes_the_expected_counts_under_both_policies() {
    for case in &CASES {
        check(case, "rubric");
        check(case, "strict");
    }
}

/// The cases' expectations here are those of the shared `expected.json`
/// (copied beside the fixtures), so the two cannot drift apart.
#[test]
fn the_expectations_are_those_of_the_shared_cases() {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    let shared: serde_json::Value = serde_json::from_str(&text).unwrap();
    for case in &CASES {
        let want = &shared[case.name];
        assert_eq!(
            want["rubric"],
            serde_json::json!(case.rubric),
            "{}",
            case.name
        );
        assert_eq!(
            want["strict"],
            serde_json::json!(case.strict),
            "{}",
            case.name
        );
        if let Some(q) = want.get("quarantine") {
            let ours: Vec<u64> = case
                .quarantined
                .iter()
                .map(|c| c.iter().map(|(_, n)| n).sum())
                .collect();
            assert_eq!(q, &serde_json::json!(ours), "{}", case.name);
        }
    }
    let names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    let mut listed: Vec<&str> = shared
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with('_'))
        .collect();
    listed.sort();
    let mut ours = names.clone();
    ours.sort();
    assert_eq!(listed, ours, "every shared case is a test here");
}

/// Strict's extra drop of a consent at the epoch is explained by its rule.
#[test]
fn the_consent_sentinel_is_named_in_the_strict_vs_rubric_explanation() {
    let dir = case_warehouse("consent-zero-sentinel");
    let wh = dir.path();
    let summary = stedi_ok(wh, &["run", "--run-id", "s"]);
    let r = report(wh, "s");
    assert_eq!(
        as_map(&r["transitions"][0]["counts"]["dropped"]),
        map(&[("implausible_consent_date", 1), ("no_research_consent", 2)])
    );
    let customer = &r["rubric_comparison"][0];
    assert_eq!(customer["table"], "customer_trusted");
    assert_eq!(
        (
            customer["strict_rows"].as_u64(),
            customer["rubric_rows"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(customer["by_rule"]["implausible_consent_date"], 1);
    assert!(summary.contains("implausible_consent_date +1"), "{summary}");
}
