//! `stedi seed` then `stedi run` on generated data, asserting DESIGN.md's invariants.

use std::path::Path;

use zones::Table;

use crate::support::{query_csv, report, stedi, stedi_ok};

fn dump(warehouse: &Path) -> Vec<(Table, Vec<String>)> {
    Table::ALL
        .into_iter()
        .filter(|t| t.zone() != zones::Zone::Landing)
        .map(|t| (t, query_csv(warehouse, &format!("SELECT * FROM {t}"))))
        .collect()
}

/// Non-blank lines of every landing object of a dataset.
fn landing_lines(warehouse: &Path, dataset: &str) -> u64 {
    let dir = warehouse.join(dataset).join("landing");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .map(|b| {
            b.split(|c| *c == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .count() as u64
        })
        .sum()
}

#[test]
fn strict_run_keeps_the_invariants_and_reruns_identically() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "1500", "--seed", "3"]);
    let summary = stedi_ok(wh, &["run", "--run-id", "first"]);
    assert!(
        summary
            .contains("quality gate: checks PASSED (12/12 passed); published as catalog version 1"),
        "{summary}"
    );

    // Every landing row is accounted for, and the report says so.
    let first = report(wh, "first");
    assert_eq!(first["passed"], true);
    for line in first["transitions"].as_array().unwrap() {
        assert_eq!(line["accounted"], true, "{line}");
    }
    for (dataset, table) in [("customer", 0), ("accelerometer", 1), ("step_trainer", 3)] {
        assert_eq!(
            first["transitions"][table]["counts"]["input"]
                .as_u64()
                .unwrap(),
            landing_lines(wh, dataset),
            "{dataset}: landing lines read"
        );
    }
    let quarantined: u64 = ["customer", "accelerometer", "step_trainer"]
        .iter()
        .map(|d| {
            query_csv(wh, &format!("SELECT COUNT(*) AS n FROM {d}_quarantine"))[1]
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(quarantined > 0, "the generator damages some lines");

    // No identifier in the training table; a pseudonym instead.
    let header = query_csv(wh, "SELECT * FROM machine_learning_curated LIMIT 1")[0].clone();
    assert_eq!(
        header,
        "sensorReadingTime,distanceFromObject,x,y,z,customerKey"
    );
    assert!(
        zones::transitions::IDENTIFIER_COLUMNS
            .iter()
            .all(|id| !header.split(',').any(|c| c == *id))
    );

    // No reading before its owner's consent.
    let early = query_csv(
        wh,
        r#"SELECT COUNT(*) AS n FROM accelerometer_trusted a JOIN customer_trusted c ON a."user" = c.email WHERE a."timestamp" < c."shareWithResearchAsOfDate""#,
    );
    assert_eq!(early, ["n", "0"]);
    let ambiguous = query_csv(
        wh,
        "SELECT COUNT(*) AS n FROM machine_learning_quarantine WHERE reason = 'ambiguous_customer'",
    );
    assert_ne!(
        ambiguous[1], "0",
        "the reused serials make some pairings ambiguous"
    );

    // A second run over the same input publishes identical table contents.
    let before = dump(wh);
    stedi_ok(wh, &["run", "--run-id", "second"]);
    let after = dump(wh);
    assert_eq!(before, after);
    let tables = stedi_ok(wh, &["tables"]);
    assert!(
        tables.contains("second") && !tables.contains("first"),
        "{tables}"
    );

    // Listings fit a 120-column terminal; columns only when asked for.
    let columns = stedi_ok(wh, &["tables", "--columns"]);
    let one = stedi_ok(wh, &["tables", "customer_trusted"]);
    let history = stedi_ok(wh, &["history"]);
    let customers = stedi_ok(wh, &["history", "customer_trusted"]);
    // A table without snapshots of its own says so, not "no snapshot yet".
    let quarantine = stedi(wh, &["history", "customer_quarantine"]);
    assert!(!quarantine.status.success());
    assert!(
        String::from_utf8_lossy(&quarantine.stderr).contains(
            "customer_quarantine is a quarantine table (its current state: `stedi tables customer_quarantine`)"
        ),
        "{}",
        String::from_utf8_lossy(&quarantine.stderr)
    );
    for out in [&tables, &columns, &one, &history, &customers] {
        for line in out.lines() {
            assert!(
                line.chars().count() <= 120,
                "{} columns: {line}",
                line.chars().count()
            );
        }
    }
    assert!(!tables.contains("shareWithResearchAsOfDate"), "{tables}");
    assert!(columns.contains("shareWithResearchAsOfDate"), "{columns}");
    assert!(
        one.contains("shareWithResearchAsOfDate") && one.contains("customer/trusted/second/"),
        "{one}"
    );
    // Both runs published every produced table; the catalog serves the second.
    for table in Table::PRODUCED {
        assert_eq!(history.matches(table.name()).count(), 2, "{history}");
    }
    let rows = first["transitions"][0]["rows"]
        .as_u64()
        .unwrap()
        .to_string();
    let lines: Vec<&str> = customers
        .lines()
        .filter(|l| l.contains("customer_trusted"))
        .collect();
    assert_eq!(lines.len(), 2, "{customers}");
    assert!(
        lines[0].contains("first") && lines[0].contains(&rows) && !lines[0].contains('*'),
        "{customers}"
    );
    assert!(
        lines[1].contains("second") && lines[1].contains("strict") && lines[1].contains('*'),
        "{customers}"
    );
}

#[test]
fn a_run_failing_before_the_switch_leaves_the_previous_snapshot_readable() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "400"]);
    stedi_ok(wh, &["run", "--run-id", "good", "--policy", "rubric"]);
    let before = dump(wh);

    // The next run writes customer_trusted, then finds no accelerometer data.
    std::fs::rename(
        wh.join("accelerometer/landing"),
        wh.join("accelerometer/elsewhere"),
    )
    .unwrap();
    let out = stedi(wh, &["run", "--run-id", "broken"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Stedi.InvalidInput") && stderr.contains("accelerometer/landing/"),
        "{stderr}"
    );
    assert!(
        wh.join("customer/trusted/broken/part-00000.parquet")
            .exists(),
        "data was written"
    );
    std::fs::rename(
        wh.join("accelerometer/elsewhere"),
        wh.join("accelerometer/landing"),
    )
    .unwrap();

    assert_eq!(dump(wh), before, "readers still see the previous snapshot");
    assert!(stedi_ok(wh, &["tables"]).contains("good"));
}

#[test]
fn rubric_run_and_unusable_input() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    let out = stedi(wh, &["run"]);
    assert!(
        !out.status.success(),
        "an empty warehouse is unusable input"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no objects under `customer/landing/`"),
        "{stderr}"
    );

    stedi_ok(wh, &["seed", "--customers", "300"]);
    stedi_ok(wh, &["run", "--policy", "rubric", "--run-id", "r"]);
    let r = report(wh, "r");
    assert_eq!(r["policy"], "rubric");
    assert_eq!(r["rubric_comparison"], serde_json::json!([]));
    // The rubric training table keeps the reference columns, identifiers included.
    let header = query_csv(wh, "SELECT * FROM machine_learning_curated LIMIT 1")[0].clone();
    assert_eq!(
        header,
        "sensorReadingTime,serialNumber,distanceFromObject,user,timestamp,x,y,z"
    );
    let json = stedi_ok(
        wh,
        &[
            "query",
            "--format",
            "json",
            "SELECT COUNT(*) AS n FROM customers_curated",
        ],
    );
    let n: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        n["n"].as_u64().unwrap(),
        r["transitions"][2]["rows"].as_u64().unwrap()
    );
}

#[test]
fn read_commands_refuse_a_warehouse_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let commands: [&[&str]; 5] = [
        &["tables"],
        &["verify"],
        &["report"],
        &["history"],
        &["query", "SELECT 1"],
    ];
    for args in commands {
        let out = stedi(&missing, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "the warehouse {} does not exist",
                missing.display()
            )),
            "{args:?}: {stderr}"
        );
    }
    assert!(!missing.exists(), "nothing was created");
    let out = stedi(Path::new("s3:/bucket"), &["seed"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("`s3:/bucket` is neither a directory nor an S3 URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_command_refuses_a_file_as_warehouse_and_names_an_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lakehouse");
    std::fs::write(&file, "not a warehouse").unwrap();
    let commands: [&[&str]; 5] = [
        &["run"],
        &["seed"],
        &["tables"],
        &["vacuum"],
        &["erase", "--email", "a@test.com"],
    ];
    for args in commands {
        let out = stedi(&file, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr,
            format!(
                "error: the warehouse {} is not a directory (give --warehouse or STEDI_WAREHOUSE)\n",
                file.display()
            ),
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a warehouse");
    // An I/O error quotes the OS's reason once, not again as its cause.
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(wh.join("customer")).unwrap();
    std::fs::write(wh.join("customer/landing"), "a file").unwrap();
    let out = stedi(&wh, &["seed"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.matches("(os error 20)").count(), 1, "{stderr}");
    assert!(stderr.contains("customer/landing`"), "{stderr}");
}

/// A feed that changed its shape (each accelerometer object one JSON array
/// instead of JSON lines) is quarantined whole: every record is kept there,
/// and the gate refuses to publish the empty tables it would make.
#[test]
fn a_landing_table_quarantined_whole_is_not_published() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    for entry in std::fs::read_dir(wh.join("accelerometer/landing")).unwrap() {
        let path = entry.unwrap().path();
        // Bytes: the seeded lines include the feed's invalid UTF-8.
        let bytes = std::fs::read(&path).unwrap();
        let records: Vec<&[u8]> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
            .collect();
        std::fs::write(&path, [&b"["[..], &records.join(&b',')[..], b"]"].concat()).unwrap();
    }
    let out = stedi(wh, &["run", "--run-id", "arrays"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Stedi.QualityGateFailed"), "{stderr}");
    let report = report(wh, "arrays");
    assert_eq!(report["publication"]["published"], false);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["accelerometer_landing_is_readable"]);
}

#[test]
fn the_report_of_a_run_that_ended_before_its_gate_points_at_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    std::fs::remove_dir_all(wh.join("step_trainer/landing")).unwrap();
    assert!(!stedi(wh, &["run", "--run-id", "early"]).status.success());
    // Named, or as the latest run.
    for args in [&["report", "early"][..], &["report"]] {
        let out = stedi(wh, args);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(
                "run early ended before its quality gate, so it has no report.json; its page shows how far it got: `stedi report early --html`"
            ),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A strict run's page and facts.json outlive the quarantine snapshots they
/// quote: their samples show each line's shape, never an address.
#[test]
fn a_strict_run_page_quotes_no_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "200"]);
    stedi_ok(wh, &["run", "--run-id", "p1"]);
    let facts = std::fs::read_to_string(wh.join("_runs/p1/facts.json")).unwrap();
    let page = std::fs::read_to_string(wh.join("_runs/p1/report.html")).unwrap();
    let samples: serde_json::Value = serde_json::from_str(&facts).unwrap();
    assert!(
        !samples["samples"].as_array().unwrap().is_empty(),
        "the run quarantined lines"
    );
    for (name, text) in [("facts.json", &facts), ("report.html", &page)] {
        assert!(!text.contains("@test.com"), "{name} quotes an address");
    }
    assert!(facts.contains("x@x.x"), "the shape of an address is shown");
}
