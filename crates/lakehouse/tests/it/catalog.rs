use std::sync::Arc;

use lakehouse::catalog::{Catalog, CatalogState, Entry, Format, LocalCatalog};
use lakehouse::{Error, LocalStore, Store};
use zones::contract::TableRef;
use zones::{ErrorName, Table};

/// A catalog as loaded at `version`.
fn at(version: u64) -> CatalogState {
    CatalogState {
        version,
        ..CatalogState::default()
    }
}

fn entry(table: Table, snapshot: &str) -> Entry {
    Entry {
        table: TableRef {
            table,
            location: format!("x/{snapshot}/"),
            snapshot: snapshot.into(),
            rows: 1,
            columns: vec![],
        },
        format: Format::Parquet,
        run_id: Some(snapshot.into()),
        policy: None,
    }
}

#[test]
fn publish_switches_all_entries_and_bumps_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()));
    let catalog = LocalCatalog::new(store.clone());
    assert_eq!(catalog.load().unwrap().version, 0);
    let v1 = catalog
        .publish(
            &at(0),
            vec![
                entry(Table::CustomerTrusted, "r1"),
                entry(Table::CustomersCurated, "r1"),
            ],
        )
        .unwrap();
    assert_eq!(v1, 1);
    let v2 = catalog
        .publish(&at(1), vec![entry(Table::CustomerTrusted, "r2")])
        .unwrap();
    assert_eq!(v2, 2);
    let state = catalog.load().unwrap();
    assert_eq!(
        state.get(Table::CustomerTrusted).unwrap().table.snapshot,
        "r2"
    );
    assert_eq!(
        state.get(Table::CustomersCurated).unwrap().table.snapshot,
        "r1",
        "untouched entries stay"
    );
    assert!(
        store
            .list("_catalog/")
            .unwrap()
            .iter()
            .all(|o| !o.key.ends_with(".lock")),
        "lock released"
    );
}

#[test]
fn two_publishers_racing_cannot_silently_overwrite() {
    // Both read version 0; the first switches; the second must be refused.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()));
    let (first, second) = (
        LocalCatalog::new(store.clone()),
        LocalCatalog::new(store.clone()),
    );
    let seen_by_first = first.load().unwrap().version;
    let seen_by_second = second.load().unwrap().version;
    first
        .publish(
            &at(seen_by_first),
            vec![entry(Table::CustomerTrusted, "first")],
        )
        .unwrap();
    let err = second
        .publish(
            &at(seen_by_second),
            vec![entry(Table::CustomerTrusted, "second")],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CatalogConflict {
                expected: 0,
                found: 1
            }
        ),
        "{err}"
    );
    assert_eq!(err.name(), ErrorName::PublishConflict);
    assert_eq!(
        first
            .load()
            .unwrap()
            .get(Table::CustomerTrusted)
            .unwrap()
            .table
            .snapshot,
        "first"
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_stale_lock_left_by_a_crash_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()));
    let stale = now() - lakehouse::catalog::STALE_LOCK_SECONDS - 5;
    store
        .put("_catalog/catalog.lock", stale.to_string().as_bytes())
        .unwrap();
    let version = LocalCatalog::new(store.clone())
        .publish(&at(0), vec![entry(Table::CustomerTrusted, "r")])
        .unwrap();
    assert_eq!(version, 1);
}

#[test]
fn a_held_lock_is_a_transient_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()));
    store
        .put("_catalog/catalog.lock", now().to_string().as_bytes())
        .unwrap();
    let err = LocalCatalog::new(store.clone())
        .publish(&at(0), vec![entry(Table::CustomerTrusted, "r")])
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::Transient);
    assert_eq!(LocalCatalog::new(store.clone()).load().unwrap().version, 0);
}
