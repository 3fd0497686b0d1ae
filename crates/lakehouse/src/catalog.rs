//! The catalog: which snapshot each table name means. [`LocalCatalog`] is a
//! log of JSON documents in the store, one per version; `glue::GlueCatalog`
//! is the AWS Glue Data Catalog. Both refuse to publish over a catalog that
//! changed since the publishing run started (optimistic concurrency: a run
//! records the [`CatalogVersion`] it started from, see `runs`).

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
    /// The run that published `version` (none before the first publish).
    #[serde(default)]
    pub published_by: Option<String>,
    pub tables: BTreeMap<Table, Entry>,
    /// Glue only: each table's `VersionId` when loaded (the per-table guard).
    #[serde(skip)]
    pub table_versions: BTreeMap<Table, String>,
    /// Glue only: the database these tables are registered in, which is
    /// where Athena finds them.
    #[serde(skip)]
    pub database: Option<String>,
}

/// What a publish is guarded by: the catalog's version as a run saw it when
/// it started. Recorded in the run's record, so it survives between states.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogVersion {
    pub version: u64,
    /// Glue only: each table's `VersionId`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub table_versions: BTreeMap<Table, String>,
    /// The run that published `version`.
    #[serde(default)]
    pub published_by: Option<String>,
}

/// Where table names are resolved to snapshots.
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// The published state; empty before the first publish.
    fn load(&self) -> Result<CatalogState>;

    /// Switches `entries` to the snapshots of run `run_id`, if nothing was
    /// published since `base` (else [`Error::PublishConflict`], naming the
    /// run that published since); returns the new catalog version. Tables
    /// not in `entries` keep their entry.
    fn publish(&self, base: &CatalogVersion, run_id: &str, entries: Vec<Entry>) -> Result<u64>;

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

    /// The staging areas [`Catalog::stage`] registered that still exist (a
    /// gate that crashed before it unstaged leaves one). None locally.
    fn staging_areas(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// The name of the staging area of `run_id`, where the catalog has them.
    fn staging_area(&self, run_id: &str) -> Option<String> {
        let _ = run_id;
        None
    }

    /// Drops a staging area listed by [`Catalog::staging_areas`] (an absent one succeeds).
    fn drop_staging_area(&self, name: &str) -> Result<()> {
        let _ = name;
        Ok(())
    }
}

impl CatalogState {
    pub fn get(&self, table: Table) -> Option<&Entry> {
        self.tables.get(&table)
    }

    /// The guard a run records when it starts.
    pub fn version(&self) -> CatalogVersion {
        CatalogVersion {
            version: self.version,
            table_versions: self.table_versions.clone(),
            published_by: self.published_by.clone(),
        }
    }

    /// Whether a table of the catalog points at a snapshot of `run_id`.
    pub fn references_run(&self, run_id: &str) -> bool {
        self.tables
            .values()
            .any(|e| e.run_id.as_deref() == Some(run_id))
    }
}

/// The entry of a landing table: its prefix, read as JSON through the DDL
/// schema; `rows` are the records that parse under it (what `COUNT(*)` over
/// the table gives through Polars SQL).
pub fn landing_entry(dataset: Dataset, rows: u64) -> Entry {
    let schema = dataset.landing_schema();
    Entry {
        table: TableRef {
            table: Table::landing(dataset),
            location: layout::landing_prefix(dataset),
            snapshot: String::new(),
            rows,
            manifest_crc32c: None,
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

/// The catalog in the store: `_catalog/log/<version>.json` holds the whole
/// catalog as of each version, and a publish is the creation of the next
/// version's document only if it is absent (a compare-and-swap, as Delta
/// Lake's log does): of two runs publishing from the same version, exactly
/// one creates it, the other gets [`Error::PublishConflict`]. No lock, so
/// nothing a crash leaves behind can block a later run.
/// `_catalog/catalog.json` is a copy of the latest version for people and
/// older readers; a warehouse that has only it (written before the log)
/// is read from it, and its next publish starts the log.
#[derive(Debug, Clone)]
pub struct LocalCatalog {
    store: Arc<dyn Store>,
}

impl Catalog for LocalCatalog {
    fn load(&self) -> Result<CatalogState> {
        let latest = self
            .store
            .list(layout::catalog_log_prefix())?
            .into_iter()
            .filter_map(|o| layout::catalog_log_version(&o.key).map(|_| o.key))
            .max();
        let key = latest.as_deref().unwrap_or(layout::catalog_key());
        match self.store.get(key) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::CatalogFormat {
                key: key.into(),
                source,
            }),
            Err(Error::NotFound { .. }) if latest.is_none() => Ok(CatalogState::default()),
            Err(e) => Err(e),
        }
    }

    fn publish(&self, base: &CatalogVersion, run_id: &str, entries: Vec<Entry>) -> Result<u64> {
        let mut state = self.load()?;
        if state.version != base.version {
            return Err(conflict(base, run_id, &state));
        }
        state.version += 1;
        state.published_by = Some(run_id.to_string());
        for entry in entries {
            state.tables.insert(entry.table.table, entry);
        }
        let bytes = serde_json::to_vec_pretty(&state).expect("catalog state serializes");
        if !self
            .store
            .put_if_absent(&layout::catalog_log_key(state.version), &bytes)?
        {
            // Another run created this version between our load and our put.
            return Err(conflict(base, run_id, &self.load()?));
        }
        // The convenience copy: the log above is what `load` reads.
        if let Err(e) = self.store.put(layout::catalog_key(), &bytes) {
            tracing::warn!(error = %e, "could not refresh the catalog copy");
        }
        Ok(state.version)
    }
}

/// The error of a publish whose base is no longer the catalog's version.
pub fn conflict(base: &CatalogVersion, run_id: &str, found: &CatalogState) -> Error {
    Error::PublishConflict {
        run_id: run_id.to_string(),
        expected: base.version,
        found: found.version,
        published_by: found.published_by.clone(),
    }
}

impl LocalCatalog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        LocalCatalog { store }
    }
}
