//! Erasure on request (`stedi erase`, the Erase state) and the pseudonym
//! key's life (fingerprint, rotation), on generated data end to end.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lakehouse::{Env, LocalStore, ObjectInfo, Store};
use polars::prelude::*;
use zones::{Dataset, ErasureKey, PseudonymKey, RunId, layout};

use crate::support::{report, stedi, stedi_ok};

fn files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// The first customers_curated customer (by email) of a published run.
fn a_curated_customer(wh: &Path) -> String {
    let rows = crate::support::query_csv(wh, "SELECT email FROM customers_curated");
    rows[1].clone()
}

/// A warehouse of `customers` generated customers after one published run
/// `one`, and the address of a customer in its training data.
fn published_with_a_customer(customers: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    stedi_ok(dir.path(), &["seed", "--customers", customers]);
    stedi_ok(dir.path(), &["run", "--run-id", "one"]);
    let email = a_curated_customer(dir.path());
    (dir, email)
}

/// The serials only `email`'s customer records hold, by the landing parser.
fn serials_only_of(wh: &Path, email: &str) -> BTreeSet<String> {
    let (mut theirs, mut others) = (BTreeSet::new(), BTreeSet::new());
    for path in files(&wh.join("customer/landing")) {
        let parsed =
            zones::landing::parse_object(Dataset::Customer, "c", &std::fs::read(path).unwrap());
        let emails = parsed.rows.column("email").unwrap().str().unwrap().clone();
        let serials = parsed
            .rows
            .column("serialNumber")
            .unwrap()
            .str()
            .unwrap()
            .clone();
        for (e, s) in emails.iter().zip(serials.iter()) {
            if let Some(s) = s {
                match e.is_some_and(|e| e.eq_ignore_ascii_case(email)) {
                    true => theirs.insert(s.to_string()),
                    false => others.insert(s.to_string()),
                };
            }
        }
    }
    theirs.difference(&others).cloned().collect()
}

/// Copies the landing data of `from` to `to` without every line that names
/// `email` (any case) or one of `serials`: landing data that never held them.
fn landing_without(from: &Path, to: &Path, email: &str, serials: &BTreeSet<String>) -> u64 {
    let email = email.to_lowercase();
    let mut removed = 0;
    for path in files(from) {
        let relative = path.strip_prefix(from).unwrap();
        if !relative.to_string_lossy().contains("/landing/") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let mut out = Vec::new();
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            let text = String::from_utf8_lossy(line);
            if text.to_lowercase().contains(&email)
                || serials.iter().any(|s| text.contains(s.as_str()))
            {
                removed += 1;
            } else {
                out.extend_from_slice(line);
            }
        }
        std::fs::create_dir_all(to.join(relative).parent().unwrap()).unwrap();
        std::fs::write(to.join(relative), out).unwrap();
    }
    removed
}

fn parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

#[test]
fn an_erased_customer_is_found_nowhere_and_every_table_is_as_if_they_never_were() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, clean) = (dir.path().join("erased"), dir.path().join("never"));
    stedi_ok(&wh, &["seed", "--customers", "300", "--seed", "7"]);
    stedi_ok(&wh, &["run", "--run-id", "before"]);
    let email = a_curated_customer(&wh);
    let serials = serials_only_of(&wh, &email);
    assert!(
        !serials.is_empty(),
        "the customer has a serial of their own"
    );
    let key = std::fs::read(wh.join("_secrets/pseudonym.key")).unwrap();
    let customer_key = PseudonymKey::new(&key).pseudonym(&email);
    // Their readings, by serial and time, to look for afterwards.
    let their_readings = crate::support::query_csv(
        &wh,
        &format!(
            "SELECT sensorReadingTime FROM step_trainer_trusted WHERE serialNumber IN ('{}')",
            serials.iter().cloned().collect::<Vec<_>>().join("','")
        ),
    );
    assert!(their_readings.len() > 1, "the customer has step readings");

    // The same landing data without them, and the same key.
    let removed = landing_without(&wh, &clean, &email, &serials);
    std::fs::create_dir_all(clean.join("_secrets")).unwrap();
    std::fs::write(clean.join("_secrets/pseudonym.key"), &key).unwrap();

    let filed = stedi_ok(&wh, &["erase", "--email", &email.to_uppercase()]);
    assert!(filed.starts_with("erasure request "), "{filed}");
    let log = files(&wh.join("_erasure"));
    assert_eq!(log.len(), 1);
    let text = std::fs::read_to_string(&log[0]).unwrap().to_lowercase();
    assert!(
        !text.contains(&email.to_lowercase()),
        "the request holds no address"
    );
    assert!(
        !text.contains(&customer_key),
        "nor the published customerKey"
    );

    let summary = stedi_ok(&wh, &["run", "--run-id", "after"]);
    stedi_ok(&clean, &["run", "--run-id", "after"]);
    assert!(
        summary.contains("verification: the person is found nowhere"),
        "{summary}"
    );

    // The erasure report: figures, and a search that found nothing.
    let erasure: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wh.join("_runs/after/erasure.json")).unwrap())
            .unwrap();
    assert_eq!(erasure["verification"]["passed"], true, "{erasure:#}");
    assert_eq!(erasure["objects_rewritten"].as_array().unwrap().len(), 3);
    let landing_removed: u64 = erasure["landing_records_removed"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        landing_removed, removed,
        "the rewrite removed the lines a clean copy lacks"
    );
    let snapshots: Vec<&str> = erasure["snapshots_deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        snapshots.contains(&"customer/trusted/before/"),
        "{snapshots:?}"
    );
    assert!(
        snapshots.contains(&"machine_learning/curated/before/"),
        "{snapshots:?}"
    );
    assert!(
        files(&wh.join("customer/trusted"))
            .iter()
            .all(|p| !p.starts_with(wh.join("customer/trusted/before")))
    );
    // History says who deleted it.
    let history = stedi_ok(&wh, &["history", "customer_trusted"]);
    let before = history.lines().find(|l| l.contains("before")).unwrap();
    assert!(before.contains("erased by after"), "{history}");

    // Counted like any other drop, and accounted.
    let run = report(&wh, "after");
    for t in run["transitions"].as_array().unwrap() {
        assert_eq!(t["accounted"], true, "{t}");
    }
    let dropped = |table: &str| {
        run["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .unwrap()["counts"]["dropped"]["erased"]
            .as_u64()
    };
    assert!(dropped("customer_trusted").unwrap() >= 1);
    assert!(dropped("accelerometer_trusted").unwrap() >= 1);
    assert!(dropped("step_trainer_trusted").unwrap() >= 1);
    assert_eq!(
        dropped("customers_curated"),
        None,
        "judged once, at landing"
    );

    // Landing, rewritten: byte for byte the data that never held them.
    for path in files(&clean) {
        let relative = path.strip_prefix(&clean).unwrap();
        if relative.to_string_lossy().contains("/landing/") {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(wh.join(relative)).unwrap(),
                "{}",
                relative.display()
            );
        }
    }
    // Every trusted and curated table of the run: byte for byte the same
    // Parquet parts and manifests as the run on data that never held them
    // (same run id, same key, same writer: the encoding is deterministic).
    // Quarantine tables: row for row but for `line`, which numbers the line
    // in the landing object as it was read, the person's lines included.
    for table in zones::Table::ALL
        .into_iter()
        .filter(|t| t.zone() != zones::Zone::Landing)
    {
        let prefix = layout::snapshot_prefix(table, &RunId::parse("after").unwrap());
        let theirs = files(&clean.join(&prefix));
        assert!(!theirs.is_empty(), "{prefix}");
        for path in theirs {
            let relative = path.strip_prefix(&clean).unwrap();
            let quarantine = table.zone() == zones::Zone::Quarantine;
            if !quarantine {
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    std::fs::read(wh.join(relative)).unwrap(),
                    "{}",
                    relative.display()
                );
            } else if relative.to_string_lossy().ends_with(".parquet") {
                let drop_line = |f: DataFrame| match f.column("line") {
                    Ok(_) => f.drop("line").unwrap(),
                    Err(_) => f,
                };
                assert_eq!(
                    drop_line(parquet(&path)),
                    drop_line(parquet(&wh.join(relative))),
                    "{}",
                    relative.display()
                );
            }
        }
    }

    // A search of every object, Parquet read back, finds neither the
    // address (any case), nor the customerKey, nor a serial of theirs.
    let lower = email.to_lowercase();
    for path in files(&wh) {
        let relative = path
            .strip_prefix(&wh)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if relative.starts_with("_secrets/") {
            continue;
        }
        if relative.ends_with(".parquet") {
            let frame = parquet(&path);
            for column in frame.columns() {
                let Ok(values) = column.str() else { continue };
                for value in values.iter().flatten() {
                    assert!(
                        !value.to_lowercase().contains(&lower),
                        "{relative}: {value}"
                    );
                    assert_ne!(value, customer_key, "{relative}");
                    assert!(!serials.contains(value), "{relative}: their serial");
                }
            }
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_lowercase();
            assert!(!text.contains(&lower), "{relative}");
            assert!(
                !serials.iter().any(|s| text.contains(s.as_str())),
                "{relative}"
            );
        }
    }

    // The request is completed, listed by id and time only.
    let status = stedi_ok(&wh, &["erase", "--status"]);
    let id = erasure["requests"][0].as_str().unwrap();
    let line = status.lines().find(|l| l.contains(id)).unwrap();
    assert!(
        line.contains("completed: 1 of 1 found") && line.contains("after"),
        "{status}"
    );
    assert!(!status.to_lowercase().contains(&lower));
    // A later run has nothing to erase and writes no erasure report.
    stedi_ok(&wh, &["run", "--run-id", "later"]);
    assert!(!wh.join("_runs/later/erasure.json").exists());
}

#[test]
fn erase_status_lists_requests_by_id_and_time_never_by_address() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "40"]);
    assert_eq!(
        stedi_ok(wh, &["erase", "--status"]),
        "no erasure requests\n"
    );
    std::fs::write(wh.join("people.txt"), "# to erase\na@x.com\n\n B@Y.com \n").unwrap();
    let filed = stedi_ok(
        wh,
        &[
            "erase",
            "--from-file",
            wh.join("people.txt").to_str().unwrap(),
        ],
    );
    assert!(filed.contains(": 2 people;"), "{filed}");
    let status = stedi_ok(wh, &["erase", "--status"]);
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines.len(), 2, "{status}");
    let fields: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(fields[2..], ["2", "pending", "-", "-"], "{status}");
    assert!(!status.contains("a@x.com") && !status.to_lowercase().contains("b@y.com"));
    let out = stedi(wh, &["erase", "--email", "not-an-address"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`not-an-address` is not an email address")
    );
    let out = stedi(wh, &["erase"]);
    assert!(
        !out.status.success(),
        "an address, a file or --status is required"
    );
    // Applied by a run, the request says that no customer record had the address.
    stedi_ok(wh, &["run", "--run-id", "one"]);
    let status = stedi_ok(wh, &["erase", "--status"]);
    assert!(
        status
            .lines()
            .nth(1)
            .unwrap()
            .contains("completed: no customer record had the address  one"),
        "{status}"
    );
}

/// A store whose landing objects another writer changes between every
/// read and the rewrite.
#[derive(Debug)]
struct ChangedUnderneath(LocalStore);

impl Store for ChangedUnderneath {
    fn list(&self, prefix: &str) -> lakehouse::Result<Vec<ObjectInfo>> {
        self.0.list(prefix)
    }
    fn get(&self, key: &str) -> lakehouse::Result<Vec<u8>> {
        self.0.get(key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> lakehouse::Result<()> {
        self.0.put(key, bytes)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> lakehouse::Result<bool> {
        self.0.put_if_absent(key, bytes)
    }
    fn delete(&self, key: &str) -> lakehouse::Result<()> {
        self.0.delete(key)
    }
    fn put_if_unchanged(&self, key: &str, bytes: &[u8], version: &str) -> lakehouse::Result<bool> {
        let mut now = self.0.get(key)?;
        now.extend_from_slice(b"{\"late\": \"a delivery stream wrote this\"}\n");
        self.0.put(key, &now)?;
        self.0.put_if_unchanged(key, bytes, version)
    }
    fn url(&self, key: &str) -> String {
        self.0.url(key)
    }
}

#[test]
fn a_landing_object_changed_between_read_and_rewrite_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60", "--seed", "3"]);
    stedi_ok(wh, &["run", "--run-id", "first"]);
    let email = a_curated_customer(wh);
    stedi_ok(wh, &["erase", "--email", &email]);
    // Run the transitions and the gate with the Erase state cut off, then
    // the Erase state's work over a store that changes underneath it.
    let mut definition: serde_json::Value =
        serde_json::from_str(stedi::runner::DEFINITION).unwrap();
    definition["States"]["QualityGate"]["End"] = true.into();
    definition["States"]["QualityGate"]
        .as_object_mut()
        .unwrap()
        .remove("Next");
    definition["States"]
        .as_object_mut()
        .unwrap()
        .remove("Erase");
    let env = Env::local(wh);
    let run_id = RunId::parse("second").unwrap();
    let output = stedi::runner::run(
        &env,
        &definition,
        &run_id,
        zones::Policy::Strict,
        &|_| {},
        None,
    )
    .expect("the run publishes");
    let results = serde_json::from_value(output["results"].clone()).unwrap();
    let objects: Vec<String> = ["customer", "accelerometer", "step_trainer"]
        .iter()
        .flat_map(|d| files(&wh.join(d).join("landing")))
        .map(|p| p.strip_prefix(wh).unwrap().to_string_lossy().to_string())
        .collect();
    let before: Vec<Vec<u8>> = objects
        .iter()
        .map(|k| std::fs::read(wh.join(k)).unwrap())
        .collect();

    let changing = Env::with_store(Arc::new(ChangedUnderneath(LocalStore::new(wh))));
    let error = lakehouse::erasure::erase(&changing, &run_id, &results).unwrap_err();
    assert_eq!(error.name(), zones::ErrorName::Transient, "{error}");
    assert!(
        error
            .to_string()
            .contains("changed between read and rewrite 3 times; it was not overwritten"),
        "{error}"
    );
    // The object holds every earlier record and the late writer's lines:
    // nothing was overwritten.
    let changed = objects
        .iter()
        .zip(&before)
        .find(|(k, b)| std::fs::read(wh.join(k)).unwrap() != **b)
        .expect("one object was changed underneath");
    let now = std::fs::read(wh.join(changed.0)).unwrap();
    assert!(now.starts_with(changed.1));
    assert!(now.ends_with(b"{\"late\": \"a delivery stream wrote this\"}\n"));
    // The request stays pending; the Erase state over the real store completes it.
    let status = stedi_ok(wh, &["erase", "--status"]);
    assert!(status.contains("pending"), "{status}");
    let report = lakehouse::erasure::erase(&env, &run_id, &results).unwrap();
    assert!(report.verification.passed, "{report:?}");
    let status = stedi_ok(wh, &["erase", "--status"]);
    assert!(status.contains("completed"), "{status}");
}

#[test]
fn the_key_has_a_fingerprint_and_rotation_is_explicit_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "60"]);
    stedi_ok(wh, &["run", "--run-id", "one"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(wh.join("_secrets/pseudonym.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is readable by its owner only");
    }
    let key = std::fs::read(wh.join("_secrets/pseudonym.key")).unwrap();
    let fingerprint = PseudonymKey::new(&key).fingerprint();
    assert_eq!(fingerprint.len(), 16);
    assert!(!String::from_utf8_lossy(&key).contains(&fingerprint));
    let one = report(wh, "one");
    assert_eq!(
        one["pseudonym_key"],
        serde_json::json!({ "fingerprint": fingerprint })
    );
    let keys_one = crate::support::query_csv(
        wh,
        "SELECT DISTINCT customerKey FROM machine_learning_curated",
    );

    let rotated = stedi_ok(wh, &["rotate-key"]);
    let new =
        PseudonymKey::new(&std::fs::read(wh.join("_secrets/pseudonym.key")).unwrap()).fingerprint();
    assert_eq!(
        rotated.trim(),
        format!(
            "pseudonym key rotated: fingerprint {fingerprint} -> {new}; the next run keys machine_learning_curated with the new key (every customerKey changes)"
        )
    );
    let summary = stedi_ok(wh, &["run", "--run-id", "two"]);
    assert!(
        summary.contains(&format!(
            "pseudonym key: fingerprint {new} (ROTATED from {fingerprint}"
        )),
        "{summary}"
    );
    assert_eq!(
        report(wh, "two")["pseudonym_key"],
        serde_json::json!({ "fingerprint": new, "rotated_from": fingerprint })
    );
    let page = std::fs::read_to_string(wh.join("_runs/two/report.html")).unwrap();
    assert!(
        page.contains(&format!("fingerprint <code>{new}</code> (rotated from <code>{fingerprint}</code>: every customerKey changed)")),
        "the page shows the key's fingerprint and the rotation"
    );
    let keys_two = crate::support::query_csv(
        wh,
        "SELECT DISTINCT customerKey FROM machine_learning_curated",
    );
    assert_eq!(keys_one.len(), keys_two.len());
    assert!(
        keys_one[1..].iter().all(|k| !keys_two.contains(k)),
        "every customerKey changed"
    );
    // The run after: same key, no rotation.
    stedi_ok(wh, &["run", "--run-id", "three"]);
    assert_eq!(
        report(wh, "three")["pseudonym_key"],
        serde_json::json!({ "fingerprint": new })
    );

    // Erasure requests are HMACs under a key of their own: a rotation of
    // the pseudonym key while one is pending leaves it matching.
    let email = a_curated_customer(wh);
    stedi_ok(wh, &["erase", "--email", &email]);
    let erasure_key = std::fs::read(wh.join("_secrets/erasure.key")).unwrap();
    assert_eq!(erasure_key.len(), 32);
    assert_ne!(
        erasure_key,
        std::fs::read(wh.join("_secrets/pseudonym.key")).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(wh.join("_secrets/erasure.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the erasure key is its owner's only");
    }
    stedi_ok(wh, &["rotate-key"]);
    // The erasure removes every older training table (their customerKeys
    // cannot be searched without the pseudonym key).
    let summary = stedi_ok(wh, &["run", "--run-id", "four"]);
    assert!(
        summary.contains("verification: the person is found nowhere"),
        "{summary}"
    );
    assert_eq!(
        crate::support::query_csv(
            wh,
            &format!("SELECT email FROM customer_trusted WHERE email = '{email}'")
        )
        .len(),
        1,
        "only the header: the person is gone"
    );
    for old in ["one", "two", "three"] {
        assert!(
            !wh.join("machine_learning/curated").join(old).exists(),
            "{old} survived the erasure"
        );
    }
    assert!(wh.join("machine_learning/curated/four").exists());
}

/// Pending requests whose key is gone: the run fails before publishing
/// anything (nobody could be matched, so the people they name would stay).
#[test]
fn a_run_refuses_pending_requests_whose_key_is_gone() {
    let (dir, email) = published_with_a_customer("60");
    let wh = dir.path();
    let filed = stedi_ok(wh, &["erase", "--email", &email]);
    let id = filed.split_whitespace().nth(2).unwrap();
    std::fs::remove_file(wh.join("_secrets/erasure.key")).unwrap();
    let out = stedi(wh, &["run", "--run-id", "two"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "Stedi.InvalidInput: the erasure key is gone (`{}` is missing) while erasure requests are pending ({id})",
            wh.join("_secrets/erasure.key").display()
        )),
        "{err}"
    );
    assert_eq!(
        crate::support::query_csv(
            wh,
            &format!("SELECT email FROM customers_curated WHERE email = '{email}'")
        )
        .len(),
        2,
        "run one's tables stay published"
    );
}

/// A replaced erasure key would match nobody, and the run would call the
/// person gone: the run refuses instead, naming the requests.
#[test]
fn a_run_refuses_pending_requests_under_another_erasure_key() {
    let (dir, email) = published_with_a_customer("60");
    let wh = dir.path();
    let filed = stedi_ok(wh, &["erase", "--email", &email]);
    let id = filed.split_whitespace().nth(2).unwrap();
    let old = ErasureKey::new(&std::fs::read(wh.join("_secrets/erasure.key")).unwrap());
    std::fs::write(wh.join("_secrets/erasure.key"), [7u8; 32]).unwrap();
    let out = stedi(wh, &["run", "--run-id", "two"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "Stedi.InvalidInput: the erasure key `{}` changed since erasure requests were filed ({id}): filed under key fingerprint {}, the key now has {}",
            wh.join("_secrets/erasure.key").display(),
            old.fingerprint(),
            ErasureKey::new(&[7u8; 32]).fingerprint()
        )),
        "{err}"
    );
    assert_eq!(
        crate::support::query_csv(
            wh,
            &format!("SELECT email FROM customers_curated WHERE email = '{email}'")
        )
        .len(),
        2,
        "run one's tables stay published, and nothing claims the person gone"
    );
}

#[test]
fn request_ids_and_subjects_are_stable() {
    let key = ErasureKey::new(&[7u8; 32]);
    // Normalised: case and surrounding blanks do not change the subject.
    assert_eq!(key.subject(" A@X.com "), key.subject("a@x.com"));
    // Domain-separated from the pseudonym of the same address under the same bytes.
    assert_ne!(
        key.subject("a@x.com"),
        PseudonymKey::new(&[7u8; 32]).pseudonym("a@x.com")
    );
    assert_eq!(
        key.subject("a@x.com"),
        "963e9940f8b9d13f6c2a1ccb9494738e218091c2a73b054238b0fd95f1a0cdcf",
        "the subject of a filed request never changes"
    );
    let id = zones::erasure::request_id(1_700_000_000_000, &[key.subject("a@x.com")]);
    assert_eq!(id.len(), 13 + 1 + 8);
    assert!(id.starts_with("1700000000000-"));
}

/// Addresses that cannot be anyone's are refused before any request is
/// filed, naming the file and line they came from.
#[test]
fn erase_refuses_what_is_not_an_address_and_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "20"]);
    for bad in ["a@b@c.com", "x@", "@test.com", "a b@test.com", "a@b"] {
        let out = crate::support::stedi(wh, &["erase", "--email", bad]);
        assert!(!out.status.success(), "{bad} was filed");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains(&format!("`{bad}` is not an email address")),
            "{bad}"
        );
    }
    let list = wh.join("erase.txt");
    std::fs::write(&list, "good@test.com\n\n# a comment\nbad@\n").unwrap();
    let out = crate::support::stedi(wh, &["erase", "--from-file", list.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "`bad@` ({} line 4) is not an email address",
            list.display()
        )),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!wh.join("_erasure").exists(), "nothing was filed");
    // On the command line as in a file, blanks around an address and its
    // case do not matter: one person.
    let filed =
        crate::support::stedi_ok(wh, &["erase", "--email", " A@X.com ", "--email", "a@x.com"]);
    assert!(filed.contains(": 1 person;"), "{filed}");
}

/// An erasure that cannot complete (a landing line holding two people's
/// records cannot be rewritten without touching the other's) is reported,
/// not hidden: the run is published and vacuumed, then fails with the
/// reason; erasure.json and `stedi erase --status` say why, and the request
/// stays pending for the next run.
#[test]
fn an_erasure_that_cannot_complete_is_reported_and_vacuum_still_runs() {
    let (dir, email) = published_with_a_customer("40");
    let wh = dir.path();
    // One line with the person's record and someone else's, back to back.
    let mut theirs = None;
    let mut other = None;
    for path in files(&wh.join("customer/landing")) {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            if line.contains(&format!("\"{email}\"")) {
                theirs.get_or_insert(line.to_string());
            } else if line.contains("\"email\"") {
                other.get_or_insert(line.to_string());
            }
        }
    }
    let (theirs, other) = (theirs.unwrap(), other.unwrap());
    std::fs::write(
        wh.join("customer/landing/joined.json"),
        format!("{theirs}{other}\n"),
    )
    .unwrap();
    stedi_ok(wh, &["erase", "--email", &email]);

    let out = stedi(wh, &["run", "--run-id", "two"]);
    assert!(!out.status.success());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("Stedi.InvalidInput: the erasure of run two is incomplete: landing object"),
        "{stderr}"
    );
    assert!(stderr.contains("done   Vacuum"), "Vacuum ran: {stderr}");
    assert!(
        stdout.contains("INCOMPLETE, the request(s) stay pending: landing object"),
        "{stdout}"
    );
    // Published: the person is out of the tables, though not out of landing.
    assert_eq!(
        crate::support::query_csv(
            wh,
            &format!("SELECT email FROM customer_trusted WHERE email = '{email}'")
        )
        .len(),
        1
    );
    let erasure: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wh.join("_runs/two/erasure.json")).unwrap()).unwrap();
    assert!(
        erasure["problem"]
            .as_str()
            .unwrap()
            .contains("customer/landing/joined.json"),
        "{erasure:#}"
    );
    // The other objects were rewritten and the older snapshots deleted all
    // the same: only the joined line still holds the person.
    assert_eq!(
        erasure["verification"]["found_in"],
        serde_json::json!(["customer/landing/joined.json"]),
        "{erasure:#}"
    );
    assert!(!wh.join("customer/trusted/one").exists());
    assert!(erasure["objects_rewritten"].as_array().unwrap().len() >= 2);
    let status = stedi_ok(wh, &["erase", "--status"]);
    assert!(
        status.contains("pending: failed (landing object") && status.contains("joined.json"),
        "{status}"
    );
    assert!(!status.contains(&email));
}
