use lakehouse::{LocalStore, Store};

#[test]
fn list_is_sorted_recursive_and_skips_hidden_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store.put("customer/landing/b.json", b"2").unwrap();
    store.put("customer/landing/a.json", b"1").unwrap();
    store
        .put("customer/trusted/s1/part-00000.parquet", b"p")
        .unwrap();
    std::fs::write(dir.path().join("customer/landing/.a.json.1.tmp"), b"half").unwrap();

    let keys: Vec<_> = store
        .list("customer/")
        .unwrap()
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    assert_eq!(
        keys,
        [
            ("customer/landing/a.json".to_string(), 1),
            ("customer/landing/b.json".to_string(), 1),
            ("customer/trusted/s1/part-00000.parquet".to_string(), 1)
        ]
    );
    assert_eq!(store.list("customer/landing/a").unwrap().len(), 1);
    assert!(store.list("nothing/here/").unwrap().is_empty());
}

/// A listing says when each object was written and gives a token that
/// changes with its content, as S3's LastModified and ETag do.
#[test]
fn list_gives_each_object_its_modification_time_and_an_etag() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let now_ms = lakehouse::runs::now_ms();
    store.put("a/one.json", b"1").unwrap();
    let before = store.list("a/").unwrap().remove(0);
    let modified = std::fs::metadata(dir.path().join("a/one.json"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert_eq!(before.modified_ms, modified.as_millis() as u64);
    assert!(before.modified_ms.abs_diff(now_ms) < 60_000, "{before:?}");
    assert!(
        before.etag.starts_with("\"1-") && before.etag.ends_with('"'),
        "{before:?}"
    );
    store.put("a/one.json", b"22").unwrap();
    let after = store.list("a/").unwrap().remove(0);
    assert_ne!(after.etag, before.etag);
    assert!(after.etag.starts_with("\"2-"), "{after:?}");
}

#[test]
fn put_if_absent_and_missing_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    assert!(store.put_if_absent("_catalog/catalog.lock", b"1").unwrap());
    assert!(!store.put_if_absent("_catalog/catalog.lock", b"2").unwrap());
    assert_eq!(store.get("_catalog/catalog.lock").unwrap(), b"1");
    let err = store.get("missing.json").unwrap_err();
    assert_eq!(err.name(), zones::ErrorName::InvalidInput);
    assert!(err.to_string().contains("missing.json"), "{err}");
}

#[test]
fn sealing_a_snapshot_removes_parts_an_earlier_attempt_left() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let prefix = "customer/trusted/run-1/";
    let snapshot = snapshot(zones::Table::CustomerTrusted, prefix);
    let mut df = df!("a" => [1i64, 2]).unwrap();
    // A first attempt wrote three parts; the retry writes one.
    for n in 0..3 {
        let name = zones::layout::part_name(n);
        lakehouse::tables::write_part(&store, &snapshot, &name, &mut df).unwrap();
    }
    let table_ref = lakehouse::tables::write_snapshot(&store, &snapshot, &mut df).unwrap();
    let keys: Vec<_> = store
        .list(prefix)
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        keys,
        [
            "customer/trusted/run-1/_manifest.json",
            "customer/trusted/run-1/part-00000.parquet"
        ]
    );
    let manifest = lakehouse::tables::read_manifest(&store, prefix)
        .unwrap()
        .unwrap();
    let bytes = store.get(&keys[1]).unwrap();
    assert_eq!(manifest.rows, 2);
    assert_eq!(manifest.parts.len(), 1);
    assert_eq!(manifest.parts[0].name, "part-00000.parquet");
    assert_eq!(manifest.parts[0].rows, 2);
    assert_eq!(manifest.parts[0].size, bytes.len() as u64);
    assert_eq!(manifest.parts[0].crc32c, crc32c::crc32c(&bytes));
    assert_eq!(table_ref.rows, 2);
    let rows = lakehouse::tables::read_table(&store, &table_ref)
        .unwrap()
        .collect()
        .unwrap()
        .height();
    assert_eq!(rows, 2);
}

#[test]
fn keys_that_could_leave_the_root_are_refused_before_any_file_is_touched() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("warehouse");
    let store = LocalStore::new(&root);
    std::fs::write(parent.path().join("outside.txt"), b"keep").unwrap();
    for key in [
        "../outside.txt",
        "a/../../outside.txt",
        "customer/quarantine/../",
        "/etc/passwd",
        "",
        "a//b",
        "./a",
        "customer/trusted/./part-00000.parquet",
    ] {
        for err in [
            store.put(key, b"x").unwrap_err(),
            store.put_if_absent(key, b"x").unwrap_err(),
            store.delete(key).unwrap_err(),
            store.get(key).unwrap_err(),
        ] {
            assert!(
                matches!(err, lakehouse::Error::InvalidKey { .. }),
                "{key}: {err}"
            );
            assert_eq!(err.name(), zones::ErrorName::Internal);
        }
    }
    assert!(store.list("../").is_err());
    assert!(store.list("customer/quarantine/../").is_err());
    assert_eq!(
        std::fs::read(parent.path().join("outside.txt")).unwrap(),
        b"keep"
    );
    assert!(!root.exists(), "nothing was created");
}

#[test]
fn writes_leave_no_temporary_files_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store.put("_secrets/k", b"one").unwrap();
    store.put("_secrets/k", b"two").unwrap();
    assert!(store.put_if_absent("_secrets/j", b"j").unwrap());
    assert!(!store.put_if_absent("_secrets/j", b"other").unwrap());
    let names: Vec<String> = std::fs::read_dir(dir.path().join("_secrets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, ["j", "k"]);
    assert_eq!(store.get("_secrets/k").unwrap(), b"two");
    assert_eq!(store.get("_secrets/j").unwrap(), b"j");

    // A write that fails (its directory is a file) leaves nothing either.
    std::fs::write(dir.path().join("blocked"), b"a file").unwrap();
    assert!(store.put("blocked/k", b"x").is_err());
    assert!(store.put_if_absent("blocked/k", b"x").is_err());
    let all: Vec<_> = walk(dir.path());
    assert_eq!(all, ["_secrets/j", "_secrets/k", "blocked"]);
}

/// Every file under `dir`, hidden ones included, relative and sorted.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_damaged_part_is_refused_naming_the_object() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let prefix = "accelerometer/trusted/r1/";
    let mut df = df!("timestamp" => [1i64, 2, 3], "x" => [0.5f64, 1.5, 2.5]).unwrap();
    let table_ref = lakehouse::tables::write_snapshot(
        &store,
        &snapshot(zones::Table::AccelerometerTrusted, prefix),
        &mut df,
    )
    .unwrap();
    let key = format!("{prefix}part-00000.parquet");
    let original = store.get(&key).unwrap();
    // Every single-bit flip of the part is caught, wherever it falls.
    for bit in (0..original.len() * 8).step_by(7) {
        let mut flipped = original.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        store.put(&key, &flipped).unwrap();
        let err = match lakehouse::tables::read_table(&store, &table_ref) {
            Err(e) => e,
            Ok(_) => panic!("bit {bit}: a flipped part was read"),
        };
        assert!(
            matches!(&err, lakehouse::Error::Damaged { key: k, .. } if k.ends_with("accelerometer/trusted/r1/part-00000.parquet")),
            "bit {bit}: {err}"
        );
        assert!(err.to_string().contains("CRC32C"), "{err}");
        assert!(lakehouse::tables::verify(&store, &table_ref).is_err());
    }
    // A truncated part is refused by its size.
    store.put(&key, &original[..original.len() - 1]).unwrap();
    let err = lakehouse::tables::verify(&store, &table_ref).unwrap_err();
    assert!(
        err.to_string().ends_with(&format!(
            "{} bytes, the snapshot manifest says {}",
            original.len() - 1,
            original.len()
        )),
        "{err}"
    );
    store.put(&key, &original).unwrap();
    assert_eq!(
        lakehouse::tables::verify(&store, &table_ref).unwrap(),
        (1, original.len() as u64)
    );
}

#[test]
fn a_snapshot_written_again_after_it_was_sealed_is_refused() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let prefix = "customer/trusted/r1/";
    let mut df = df!("email" => ["a@x", "b@x"]).unwrap();
    let snapshot = snapshot(zones::Table::CustomerTrusted, prefix);
    let sealed = lakehouse::tables::write_snapshot(&store, &snapshot, &mut df).unwrap();
    assert!(sealed.manifest_crc32c.is_some());

    // Another writer seals the same prefix again with other rows.
    let mut other = df!("email" => ["a@x", "b@x", "evil@x"]).unwrap();
    lakehouse::tables::write_snapshot(&store, &snapshot, &mut other).unwrap();
    let refused = |err: lakehouse::Error| {
        assert!(
            err.to_string().contains(
                "snapshot r1 of customer_trusted was written again or damaged after it was sealed"
            ),
            "{err}"
        );
    };
    match lakehouse::tables::read_table(&store, &sealed) {
        Err(e) => refused(e),
        Ok(_) => panic!("a rewritten snapshot was read"),
    }
    refused(lakehouse::tables::verify(&store, &sealed).unwrap_err());

    // Without its manifest, a pinned snapshot is not read by listing.
    store.delete(&format!("{prefix}_manifest.json")).unwrap();
    let err = match lakehouse::tables::read_table(&store, &sealed) {
        Err(e) => e,
        Ok(_) => panic!("a snapshot without its manifest was read"),
    };
    assert!(
        err.to_string()
            .contains("the manifest of customer_trusted snapshot r1 is missing"),
        "{err}"
    );
}

/// A local listing never follows a symbolic link and never opens what is
/// not a regular file; such entries, and names that are not UTF-8, are
/// listed as unreadable (size 0) so the landing reader can report them.
#[cfg(unix)]
#[test]
fn list_marks_what_is_not_a_regular_file_and_never_follows_links() {
    use lakehouse::Unreadable;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("f.json"), b"outside").unwrap();
    let store = LocalStore::new(dir.path());
    store.put("a/landing/ok.json", b"12").unwrap();
    let landing = dir.path().join("a/landing");
    std::os::unix::fs::symlink(outside.path().join("f.json"), landing.join("file-link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), landing.join("dir-link")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(landing.join("pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(landing.join(std::ffi::OsStr::from_bytes(b"n\xffme")), b"1").unwrap();

    let listed: Vec<_> = store
        .list("a/")
        .unwrap()
        .into_iter()
        .map(|o| (o.key, o.size, o.unreadable))
        .collect();
    let not_regular = |kind| Some(Unreadable::NotARegularFile(kind));
    assert_eq!(
        listed,
        [
            (
                "a/landing/dir-link".to_string(),
                0,
                not_regular("a symbolic link")
            ),
            (
                "a/landing/file-link".to_string(),
                0,
                not_regular("a symbolic link")
            ),
            (
                "a/landing/n\u{fffd}me".to_string(),
                0,
                Some(Unreadable::InvalidName)
            ),
            ("a/landing/ok.json".to_string(), 2, None),
            ("a/landing/pipe".to_string(), 0, not_regular("a named pipe")),
        ]
    );
}

/// A run's lease holds while its process may run: not once that process is
/// gone (a killed `stedi run`), so vacuum does not keep its snapshots for ever.
#[test]
fn a_lease_holds_only_while_its_process_may_be_running() {
    use lakehouse::runs::LeaseHolder;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let run = zones::RunId::parse("r1").unwrap();
    let key = zones::layout::run_lease_key(&run);
    assert!(!LeaseHolder::holds(&store, &run).unwrap(), "no lease");

    let mut holder = LeaseHolder::me();
    store
        .put(&key, &serde_json::to_vec(&holder).unwrap())
        .unwrap();
    assert!(LeaseHolder::holds(&store, &run).unwrap(), "this process");

    let mut child = std::process::Command::new("true").spawn().unwrap();
    holder.pid = child.id();
    child.wait().unwrap();
    store
        .put(&key, &serde_json::to_vec(&holder).unwrap())
        .unwrap();
    assert!(
        !LeaseHolder::holds(&store, &run).unwrap(),
        "a process that is gone"
    );

    holder.host = "another-host".into();
    store
        .put(&key, &serde_json::to_vec(&holder).unwrap())
        .unwrap();
    assert!(
        LeaseHolder::holds(&store, &run).unwrap(),
        "another host: may run"
    );

    store.put(&key, b"not a lease").unwrap();
    assert!(
        LeaseHolder::holds(&store, &run).unwrap(),
        "unreadable: held"
    );
}

/// Where a test writes a snapshot: `table` under `prefix`, of run `r1` (or
/// the run the prefix names).
fn snapshot(table: zones::Table, prefix: &str) -> zones::layout::SnapshotRef {
    zones::layout::SnapshotRef {
        table,
        location: prefix.to_string(),
        snapshot: prefix
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap()
            .to_string(),
    }
}
