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
    let mut df = df!("a" => [1i64, 2]).unwrap();
    // A first attempt wrote three parts; the retry writes one.
    for n in 0..3 {
        lakehouse::tables::write_part(&store, prefix, n, &mut df).unwrap();
    }
    let table_ref = lakehouse::tables::write_table(
        &store,
        zones::Table::CustomerTrusted,
        prefix,
        "run-1",
        &mut df,
    )
    .unwrap();
    let keys: Vec<_> = store
        .list(prefix)
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["customer/trusted/run-1/part-00000.parquet"]);
    assert_eq!(table_ref.rows, 2);
    let rows = lakehouse::tables::read_table(&store, &table_ref)
        .unwrap()
        .collect()
        .unwrap()
        .height();
    assert_eq!(rows, 2);
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
