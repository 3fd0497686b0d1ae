//! The catalog: which snapshot each table name means. [`LocalCatalog`] is one
//! JSON document in the store, switched atomically; `glue::GlueCatalog` is
//! the AWS Glue Data Catalog. Both refuse to publish over a catalog that
//! changed since it was loaded.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zones::contract::{ColumnDef, TableRef};
use zones::{Dataset, Policy, Table, layout};

use crate::error::{Error, Result};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON lines read through the landing schema (the Athena JSON SerDe).
    Json,
    Parquet,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub table: TableRef,
    pub format: Format,
    pub run_id: Option<String>,
    pub policy: Option<Policy>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogState {
    /// Incremented by every publish; guards against concurrent publishers.
    pub version: u64,
    pub tables: BTreeMap<Table, Entry>,
    /// Glue only: each table's `VersionId` when loaded (the per-table guard).
    #[serde(skip)]
    pub table_versions: BTreeMap<Table, String>,
    /// Glue only: the database these tables are registered in, which is
    /// where Athena finds them.
    #[serde(skip)]
    pub database: Option<String>,
}

/// Where table names are resolved to snapshots.
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// The published state; empty before the first publish.
    fn load(&self) -> Result<CatalogState>;

    /// Switches `entries` to their new snapshots, if nothing was published
    /// since `current` was loaded; returns the new catalog version. Tables
    /// not in `entries` keep their entry.
    fn publish(&self, current: &CatalogState, entries: Vec<Entry>) -> Result<u64>;

    /// Makes `view` (published tables and a run's unpublished snapshots)
    /// queryable by the query engine under the name `run_id`.
    fn stage(&self, run_id: &str, view: &CatalogState) -> Result<CatalogState> {
        let _ = run_id;
        Ok(view.clone())
    }

    /// Removes what [`Catalog::stage`] registered.
    fn unstage(&self, staged: &CatalogState) -> Result<()> {
        let _ = staged;
        Ok(())
    }
}

impl CatalogState {
    pub fn get(&self, table: Table) -> Option<&Entry> {
        self.tables.get(&table)
    }
}

/// The entry of a landing table: its prefix, read as JSON through the DDL schema.
pub fn landing_entry(dataset: Dataset, lines: u64) -> Entry {
    let schema = dataset.landing_schema();
    Entry {
        table: TableRef {
            table: Table::landing(dataset),
            location: layout::landing_prefix(dataset),
            snapshot: String::new(),
            rows: lines,
            columns: schema
                .columns
                .iter()
                .map(|c| ColumnDef {
                    name: c.name.clone(),
                    ty: zones::schema::hive_type(&c.ty.dtype()),
                })
                .collect(),
        },
        format: Format::Json,
        run_id: None,
        policy: None,
    }
}

/// A publish lock older than this was left by a crashed publisher.
pub const STALE_LOCK_SECONDS: u64 = 600;

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The catalog document in the store (`_catalog/catalog.json`).
#[derive(Debug, Clone)]
pub struct LocalCatalog {
    store: Arc<dyn Store>,
}

impl Catalog for LocalCatalog {
    fn load(&self) -> Result<CatalogState> {
        let key = layout::catalog_key();
        match self.store.get(key) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::CatalogFormat {
                key: key.into(),
                source,
            }),
            Err(Error::NotFound { .. }) => Ok(CatalogState::default()),
            Err(e) => Err(e),
        }
    }

    /// Switches all `entries` in one atomic write of the document, under a lock.
    fn publish(&self, current: &CatalogState, entries: Vec<Entry>) -> Result<u64> {
        self.lock()?;
        let result = self.publish_locked(current.version, entries);
        let unlocked = self.store.delete(layout::catalog_lock_key());
        let version = result?;
        unlocked?;
        Ok(version)
    }
}

impl LocalCatalog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        LocalCatalog { store }
    }

    /// Takes the publish lock. A lock older than [`STALE_LOCK_SECONDS`] was
    /// left by a publisher that crashed (a publish takes milliseconds): it is
    /// broken once.
    fn lock(&self) -> Result<()> {
        let key = layout::catalog_lock_key();
        let now = unix_seconds();
        for _ in 0..2 {
            if self.store.put_if_absent(key, now.to_string().as_bytes())? {
                return Ok(());
            }
            let taken_at = self
                .store
                .get(key)
                .ok()
                .and_then(|b| String::from_utf8(b).ok()?.trim().parse::<u64>().ok());
            match taken_at {
                Some(at) if now.saturating_sub(at) > STALE_LOCK_SECONDS => {
                    tracing::warn!(key, taken_at = at, "breaking a stale catalog lock");
                    self.store.delete(key)?;
                }
                _ => break,
            }
        }
        Err(Error::CatalogLocked {
            key: self.store.url(key),
        })
    }

    fn publish_locked(&self, expected_version: u64, entries: Vec<Entry>) -> Result<u64> {
        let mut state = self.load()?;
        if state.version != expected_version {
            return Err(Error::CatalogConflict {
                expected: expected_version,
                found: state.version,
            });
        }
        state.version += 1;
        for entry in entries {
            state.tables.insert(entry.table.table, entry);
        }
        let bytes = serde_json::to_vec_pretty(&state).expect("catalog state serializes");
        self.store.put(layout::catalog_key(), &bytes)?;
        Ok(state.version)
    }
}
