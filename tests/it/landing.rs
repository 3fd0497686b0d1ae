//! Landing objects as they really arrive: delivery-stream layouts, gzip and
//! zstd, marker and hidden files, and (locally) entries that are not
//! regular files. One listing rule (`zones::layout::landing_object`) on the
//! local directory and on S3.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lakehouse::s3::S3Store;
use lakehouse::{LocalStore, Store, tables};
use zones::{Dataset, Table};

use crate::cases::case_warehouse;
use crate::moto::Moto;
use crate::support::{query_csv, report, stedi_binary, stedi_ok};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Every published table's rows, sorted (quarantine tables by reason only:
/// their `source` names the objects, which differ between layouts).
fn published(warehouse: &Path) -> Vec<(Table, Vec<String>)> {
    Table::ALL
        .into_iter()
        .filter(|t| t.zone() != zones::Zone::Landing)
        .map(|t| {
            let sql = match t.zone() {
                zones::Zone::Quarantine => {
                    format!("SELECT reason, COUNT(*) AS n FROM {t} GROUP BY reason")
                }
                _ => format!("SELECT * FROM {t}"),
            };
            (t, query_csv(warehouse, &sql))
        })
        .collect()
}

/// The generated data set, gzip-compressed and laid out as a delivery
/// stream writes it (hour folders, names without `.json`, `.gz` added by
/// the compression, `_SUCCESS` markers, hidden checksum files, a
/// `_temporary/` folder, an empty object), publishes exactly the tables the
/// plain layout publishes.
#[test]
fn a_gzip_delivery_stream_layout_publishes_what_the_plain_layout_does() {
    let plain = tempfile::tempdir().unwrap();
    let stream = tempfile::tempdir().unwrap();
    stedi_ok(
        plain.path(),
        &["seed", "--customers", "600", "--seed", "11"],
    );
    let key = [9u8; 32];
    for wh in [plain.path(), stream.path()] {
        LocalStore::new(wh)
            .put("_secrets/pseudonym.key", &key)
            .unwrap();
    }
    let mut objects = 0;
    for dataset in Dataset::ALL {
        let landing = plain.path().join(dataset.dir()).join("landing");
        let mut files: Vec<_> = std::fs::read_dir(&landing)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let target = stream.path().join(dataset.dir()).join("landing");
        for (n, file) in files.iter().enumerate() {
            // One hour folder per object keeps the objects in the same
            // order (strict's tie-break between records is the later line).
            let hour = target.join(format!("2026/11/30/{n:02}"));
            let name = format!(
                "stedi-{}-1-2026-11-30-{n:02}-00-00-a1b2c3.gz",
                dataset.dir()
            );
            write(&hour.join(name), &gzip(&std::fs::read(file).unwrap()));
            write(&hour.join("_SUCCESS"), b"");
            write(&hour.join(".stedi.gz.crc"), b"\x00\x01crc");
            objects += 1;
        }
        write(
            &target.join("_temporary/0/_temporary/attempt/part-0"),
            b"{ half",
        );
        write(&target.join("2026/11/30/empty"), b"");
    }
    assert!(objects >= 3);
    let out = stedi_ok(plain.path(), &["run", "--run-id", "plain"]);
    assert!(out.contains("PASSED"), "{out}");
    let out = stedi_ok(stream.path(), &["run", "--run-id", "stream"]);
    assert!(out.contains("PASSED"), "{out}");
    let (want, got) = (published(plain.path()), published(stream.path()));
    for ((table, want), (_, got)) in want.iter().zip(&got) {
        assert_eq!(
            got, want,
            "{table} differs between the plain and the stream layout"
        );
    }
    assert!(
        want.iter().any(|(_, rows)| rows.len() > 100),
        "tables are not empty"
    );
    let (a, b) = (
        report(plain.path(), "plain"),
        report(stream.path(), "stream"),
    );
    for t in 0..5 {
        assert_eq!(
            a["transitions"][t]["counts"]["input"].as_u64().unwrap(),
            b["transitions"][t]["counts"]["input"].as_u64().unwrap(),
            "transition {t}: the same records were read"
        );
    }
}

/// The generated readings cut into hundreds of small objects (consecutive
/// lines, so the same order) publish exactly what the few large objects
/// publish, with the same counts, in a Parquet part per day of readings and
/// worker of each child of the transition's Distributed Map (a batch of
/// MaxItemsPerBatch objects) rather than one per object (the parts' bytes
/// are pinned by the part writer's own test in crates/lakehouse).
#[test]
fn many_small_landing_objects_are_gathered_into_few_parts() {
    let few = tempfile::tempdir().unwrap();
    let many = tempfile::tempdir().unwrap();
    stedi_ok(few.path(), &["seed", "--customers", "400", "--seed", "5"]);
    let key = [7u8; 32];
    for wh in [few.path(), many.path()] {
        LocalStore::new(wh)
            .put("_secrets/pseudonym.key", &key)
            .unwrap();
    }
    let mut small = 0;
    for dataset in Dataset::ALL {
        let landing = few.path().join(dataset.dir()).join("landing");
        let mut files: Vec<_> = std::fs::read_dir(&landing)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let target = many.path().join(dataset.dir()).join("landing");
        let text: Vec<u8> = files
            .iter()
            .flat_map(|f| std::fs::read(f).unwrap())
            .collect();
        let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
        let per_object = match dataset {
            Dataset::Customer => lines.len(),
            _ => 40,
        };
        for (n, chunk) in lines.chunks(per_object).enumerate() {
            write(&target.join(format!("{n:05}.json")), &chunk.concat());
            small += 1;
        }
    }
    assert!(small > 300, "{small} objects");
    let out = stedi_ok(few.path(), &["run", "--run-id", "few"]);
    assert!(out.contains("PASSED"), "{out}");
    let out = stedi_ok(many.path(), &["run", "--run-id", "many"]);
    assert!(out.contains("PASSED"), "{out}");
    let (want, got) = (published(few.path()), published(many.path()));
    for ((table, want), (_, got)) in want.iter().zip(&got) {
        assert_eq!(got, want, "{table} differs between few and many objects");
    }
    let (a, b) = (report(few.path(), "few"), report(many.path(), "many"));
    for t in 0..5 {
        let counts = &a["transitions"][t]["counts"];
        assert!(counts["input"].as_u64().unwrap() > 0, "{counts}");
        assert_eq!(counts, &b["transitions"][t]["counts"], "transition {t}");
    }
    let parts = |location: &str| -> Vec<String> {
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(many.path().join(location).join("_manifest.json")).unwrap(),
        )
        .unwrap();
        manifest["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    // (The rubric shadows are gone: the gate deletes them once it has run.)
    let definition: serde_json::Value = serde_json::from_str(stedi::runner::DEFINITION).unwrap();
    for (dataset, map) in [
        (Dataset::Accelerometer, "AccelerometerTrusted"),
        (Dataset::StepTrainer, "StepTrainerTrusted"),
    ] {
        assert_eq!(
            definition["States"][map]["ItemBatcher"]["MaxItemsPerBatchPath"],
            "$.map.items_per_batch"
        );
        let batch: usize = stedi::runner::MAP_SETTINGS
            .iter()
            .find(|(name, _)| *name == "${MapItemsPerBatch}")
            .unwrap()
            .1
            .parse()
            .unwrap();
        let objects = std::fs::read_dir(many.path().join(dataset.dir()).join("landing"))
            .unwrap()
            .count();
        let children = objects.div_ceil(batch);
        assert!(
            children < objects / 10,
            "{objects} objects, {children} children"
        );
        // A child's workers (one per core) each write a part per day of
        // the readings they judged (the shuffle), named by their first
        // object; the quarantine is not by day.
        let workers = std::thread::available_parallelism().unwrap().get();
        let location = format!("{}/trusted/many", dataset.dir());
        let table = parts(&location);
        let days: std::collections::BTreeSet<i64> = table
            .iter()
            .map(|p| zones::layout::bucket_of_part(p).unwrap_or_else(|| panic!("{p}: no day")))
            .collect();
        assert!(
            table.len() >= children && table.len() <= children * workers * days.len(),
            "{location}: {} parts, {children} children, {} days",
            table.len(),
            days.len()
        );
        assert!(table.len() < objects / 10, "{} parts", table.len());
        let quarantine = parts(&format!("{}/quarantine/many", dataset.dir()));
        assert!(!quarantine.is_empty() && quarantine.len() <= children * workers);
        for part in quarantine.iter().chain(&table) {
            assert!(zones::layout::is_part_name(part), "{part}");
            assert!(part.ends_with("-00000.parquet"), "{part}");
        }
    }
}

/// Objects for one landing folder, in both stores alike: plain with no
/// extension, gzip, zstd, a broken gzip, and what the rule leaves out.
fn odd_objects() -> Vec<(&'static str, Vec<u8>)> {
    let line = |user: &str, t: u64| {
        format!(r#"{{"user":"{user}","timestamp":{t},"x":1.0,"y":0.0,"z":-1.0}}"#) + "\n"
    };
    let two = format!("{}{}", line("a@x", 1), line("b@x", 2));
    let whole = gzip(format!("{}{}", line("c@x", 3), line("d@x", 4)).as_bytes());
    vec![
        (
            "accelerometer/landing/2026/11/30/03/stream-1-2026-11-30-03-00-00-x",
            two.clone().into_bytes(),
        ),
        (
            "accelerometer/landing/2026/11/30/03/stream-2.gz",
            gzip(two.as_bytes()),
        ),
        (
            "accelerometer/landing/2026/11/30/04/stream-3.zst",
            zstd::encode_all(two.as_bytes(), 1).unwrap(),
        ),
        (
            "accelerometer/landing/2026/11/30/04/stream-4.gz",
            whole[..whole.len() - 10].to_vec(),
        ),
        ("accelerometer/landing/2026/11/30/04/empty", Vec::new()),
        ("accelerometer/landing/2026/11/30/04/_SUCCESS", Vec::new()),
        (
            "accelerometer/landing/2026/11/30/04/.stream-3.zst.crc",
            b"\x00crc".to_vec(),
        ),
        (
            "accelerometer/landing/_temporary/0/part-0",
            two.into_bytes(),
        ),
        ("accelerometer/landingx/not-this.json", b"{".to_vec()),
    ]
}

/// What reading a landing folder gives: the objects listed, the rows (users,
/// sorted), the quarantine by reason and the repairs by kind.
type Read = (
    Vec<String>,
    Vec<String>,
    BTreeMap<String, u64>,
    BTreeMap<String, u64>,
);

/// What reading the accelerometer landing folder of `store` gives.
fn read(store: &dyn Store) -> Read {
    let listed = tables::landing_objects(store, Dataset::Accelerometer)
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    let landing = tables::read_landing(store, Dataset::Accelerometer).unwrap();
    let users = landing.rows.column("user").unwrap().str().unwrap();
    let mut rows: Vec<String> = users.iter().map(|u| u.unwrap().to_string()).collect();
    rows.sort();
    let mut reasons = BTreeMap::new();
    for q in &landing.quarantined {
        *reasons.entry(q.reason.as_str().to_string()).or_insert(0) += 1;
    }
    (listed, rows, reasons, landing.counts.repaired)
}

#[test]
fn the_same_listing_and_decompression_rule_reads_s3_and_the_local_directory() {
    let moto = Moto::start();
    let aws = moto.aws();
    moto.create_bucket(&aws, "lake");
    let s3 = S3Store::new(aws, "s3://lake/warehouse").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::new(dir.path());
    for (key, bytes) in odd_objects() {
        s3.put(key, &bytes).unwrap();
        local.put(key, &bytes).unwrap();
    }
    let on_s3 = read(&s3);
    assert_eq!(
        on_s3.0,
        [
            "accelerometer/landing/2026/11/30/03/stream-1-2026-11-30-03-00-00-x",
            "accelerometer/landing/2026/11/30/03/stream-2.gz",
            "accelerometer/landing/2026/11/30/04/stream-3.zst",
            "accelerometer/landing/2026/11/30/04/stream-4.gz",
        ]
    );
    assert_eq!(on_s3.1, ["a@x", "a@x", "a@x", "b@x", "b@x", "b@x", "c@x"]);
    assert_eq!(
        on_s3.2,
        BTreeMap::from([("corrupt_compression".to_string(), 1)])
    );
    assert_eq!(on_s3.3, BTreeMap::new());
    assert_eq!(read(&local), on_s3, "the local directory reads the same");
}

/// `stedi` with a deadline: a run that blocks (on a named pipe, say) fails
/// the test instead of hanging it.
fn stedi_within(warehouse: &Path, args: &[&str], limit: Duration) -> std::process::Output {
    let mut child = std::process::Command::new(stedi_binary())
        .arg("--warehouse")
        .arg(warehouse)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stedi starts");
    let began = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if began.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("stedi {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Locally only regular files are landing objects: a symbolic link (to a
/// file outside the warehouse, or to a folder), a named pipe and a file whose
/// name is not UTF-8 are quarantined by name, never opened, and the run
/// neither fails nor hangs.
#[cfg(unix)]
#[test]
fn local_landing_reads_regular_files_only() {
    use std::os::unix::ffi::OsStrExt;
    let dir = case_warehouse("trailing-comma-lines");
    let wh = dir.path();
    let landing = wh.join("accelerometer/landing");
    // Readings that would change every count if they were read.
    let outside = tempfile::tempdir().unwrap();
    let extra = concat!(
        r#"{"user":"user1@example.com","timestamp":1655564400000,"x":0.0,"y":1.0,"z":-1.0}"#,
        "\n"
    );
    write(&outside.path().join("secret.json"), extra.as_bytes());
    std::os::unix::fs::symlink(
        outside.path().join("secret.json"),
        landing.join("link.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), landing.join("linked-folder")).unwrap();
    let fifo = landing.join("pipe.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let bad_name = std::ffi::OsStr::from_bytes(b"bad-\xff.json");
    write(&landing.join(bad_name), extra.as_bytes());

    let out = stedi_within(wh, &["run", "--run-id", "odd"], Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: Vec<String> = [
        "customer_trusted",
        "accelerometer_trusted",
        "customers_curated",
        "step_trainer_trusted",
        "machine_learning_curated",
    ]
    .iter()
    .map(|t| query_csv(wh, &format!("SELECT COUNT(*) AS n FROM {t}"))[1].clone())
    .collect();
    assert_eq!(
        counts,
        ["1", "2", "1", "2", "2"],
        "nothing of the odd entries was read"
    );
    let quarantine = query_csv(
        wh,
        "SELECT source, reason, detail FROM accelerometer_quarantine",
    );
    assert_eq!(
        quarantine,
        [
            "source,reason,detail",
            "accelerometer/landing/bad-\u{fffd}.json,invalid_object_name,landing entry `accelerometer/landing/bad-\u{fffd}.json`: the name is not valid UTF-8 (shown lossily); not read",
            "accelerometer/landing/link.json,not_a_regular_file,\"landing entry `accelerometer/landing/link.json`: a symbolic link, not a regular file; not read\"",
            "accelerometer/landing/linked-folder,not_a_regular_file,\"landing entry `accelerometer/landing/linked-folder`: a symbolic link, not a regular file; not read\"",
            "accelerometer/landing/pipe.json,not_a_regular_file,\"landing entry `accelerometer/landing/pipe.json`: a named pipe, not a regular file; not read\"",
        ]
    );
    let r = report(wh, "odd");
    let accelerometer = &r["transitions"][1];
    assert_eq!(
        accelerometer["counts"]["input"],
        4 + 4,
        "each entry is one record in"
    );
    assert_eq!(accelerometer["accounted"], true);
}

/// The Glue tables of the landing zone carry the SerDe properties of the
/// Athena DDL in `infra/athena/` (the one definition of how landing JSON is
/// read), and the DDL states them alike for every dataset.
#[test]
fn glue_landing_tables_carry_the_serde_properties_of_the_athena_ddl() {
    use lakehouse::Catalog;
    use lakehouse::catalog::landing_entry;
    use lakehouse::glue::GlueCatalog;
    use zones::schema::LandingSchema;

    let moto = Moto::start();
    let aws = moto.aws();
    let catalog = GlueCatalog::new(aws.clone(), "stedi", "s3://lake/warehouse/");
    let empty = catalog.load().unwrap();
    let entries = Dataset::ALL.map(|d| landing_entry(d, 1)).to_vec();
    catalog.publish(&empty.version(), "r1", entries).unwrap();
    let client = aws_sdk_glue::Client::new(&aws.config);
    for dataset in Dataset::ALL {
        let mut ddl = LandingSchema::serde_properties(dataset.ddl()).unwrap();
        ddl.sort();
        assert_eq!(
            ddl,
            [
                ("case.insensitive".to_string(), "true".to_string()),
                ("ignore.malformed.json".to_string(), "true".to_string()),
            ],
            "{dataset}"
        );
        let table = Table::landing(dataset).name();
        let got = aws
            .block_on(client.get_table().database_name("stedi").name(table).send())
            .unwrap();
        let serde = got
            .table()
            .and_then(|t| t.storage_descriptor())
            .and_then(|s| s.serde_info())
            .unwrap();
        assert_eq!(
            serde.serialization_library(),
            Some("org.openx.data.jsonserde.JsonSerDe"),
            "{table}"
        );
        let mut glue: Vec<(String, String)> = serde
            .parameters()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        glue.sort();
        assert_eq!(glue, ddl, "{table}: Glue and the DDL disagree");
    }
}
