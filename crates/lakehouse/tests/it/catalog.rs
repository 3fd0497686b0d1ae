use std::sync::Arc;

use lakehouse::catalog::{Catalog, CatalogState, CatalogVersion, Entry, Format, LocalCatalog};
use lakehouse::{Error, LocalStore, Store};
use zones::contract::TableRef;
use zones::{ErrorName, Table};

/// A catalog version as a run saw it at its start.
fn at(version: u64) -> CatalogVersion {
    CatalogVersion {
        version,
        ..CatalogVersion::default()
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
            manifest_crc32c: None,
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
            "r1",
            vec![
                entry(Table::CustomerTrusted, "r1"),
                entry(Table::CustomersCurated, "r1"),
            ],
        )
        .unwrap();
    assert_eq!(v1, 1);
    let v2 = catalog
        .publish(&at(1), "r2", vec![entry(Table::CustomerTrusted, "r2")])
        .unwrap();
    assert_eq!(v2, 2);
    let state = catalog.load().unwrap();
    assert_eq!(state.version, 2);
    assert_eq!(state.published_by.as_deref(), Some("r2"));
    assert_eq!(
        state.get(Table::CustomerTrusted).unwrap().table.snapshot,
        "r2"
    );
    assert_eq!(
        state.get(Table::CustomersCurated).unwrap().table.snapshot,
        "r1",
        "untouched entries stay"
    );
    let keys: Vec<String> = store
        .list("_catalog/")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        keys,
        [
            "_catalog/catalog.json",
            "_catalog/log/00000000000000000001.json",
            "_catalog/log/00000000000000000002.json",
        ]
    );
    // The copy equals the latest version.
    let copy: CatalogState =
        serde_json::from_slice(&store.get("_catalog/catalog.json").unwrap()).unwrap();
    assert_eq!(copy, state);
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
    let seen_by_first = first.load().unwrap().version();
    let seen_by_second = second.load().unwrap().version();
    first
        .publish(
            &seen_by_first,
            "first",
            vec![entry(Table::CustomerTrusted, "first")],
        )
        .unwrap();
    let err = second
        .publish(
            &seen_by_second,
            "second",
            vec![entry(Table::CustomerTrusted, "second")],
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::PublishConflict {
                expected: 0,
                found: 1,
                published_by: Some(by),
                ..
            } if by == "first"
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

#[test]
fn the_compare_and_swap_refuses_a_version_created_after_the_check() {
    // Injected interleaving: another publisher creates version 1 between
    // this publisher's load (which saw 0) and its put of version 1.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()));
    let racer = CatalogState {
        version: 1,
        published_by: Some("racer".into()),
        ..CatalogState::default()
    };
    #[derive(Debug)]
    struct Interleaved {
        inner: Arc<LocalStore>,
        racer: Vec<u8>,
    }
    impl Store for Interleaved {
        fn list(&self, prefix: &str) -> lakehouse::Result<Vec<lakehouse::store::ObjectInfo>> {
            self.inner.list(prefix)
        }
        fn get(&self, key: &str) -> lakehouse::Result<Vec<u8>> {
            self.inner.get(key)
        }
        fn put(&self, key: &str, bytes: &[u8]) -> lakehouse::Result<()> {
            self.inner.put(key, bytes)
        }
        fn put_if_absent(&self, key: &str, bytes: &[u8]) -> lakehouse::Result<bool> {
            // The racer wins the version first.
            self.inner.put_if_absent(key, &self.racer)?;
            self.inner.put_if_absent(key, bytes)
        }
        fn delete(&self, key: &str) -> lakehouse::Result<()> {
            self.inner.delete(key)
        }
        fn url(&self, key: &str) -> String {
            self.inner.url(key)
        }
    }
    let interleaved = Arc::new(Interleaved {
        inner: store.clone(),
        racer: serde_json::to_vec(&racer).unwrap(),
    });
    let err = LocalCatalog::new(interleaved)
        .publish(&at(0), "late", vec![entry(Table::CustomerTrusted, "late")])
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "run late started from catalog version 0, and run racer published version 1 since"
        ),
        "{err}"
    );
    let state = LocalCatalog::new(store).load().unwrap();
    assert_eq!(state, racer);
}

#[test]
fn a_warehouse_from_before_the_log_is_read_from_its_catalog_document() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()));
    let old = CatalogState {
        version: 7,
        ..CatalogState::default()
    };
    store
        .put("_catalog/catalog.json", &serde_json::to_vec(&old).unwrap())
        .unwrap();
    let catalog = LocalCatalog::new(store.clone());
    assert_eq!(catalog.load().unwrap().version, 7);
    let v = catalog
        .publish(&at(7), "r8", vec![entry(Table::CustomerTrusted, "r8")])
        .unwrap();
    assert_eq!(v, 8);
    assert!(store.get("_catalog/log/00000000000000000008.json").is_ok());
    assert_eq!(catalog.load().unwrap().version, 8);
}
