//! The AWS Glue Data Catalog behind the [`Catalog`] interface.
//!
//! Each table is a Glue table whose location is its current snapshot prefix.
//! Publishing switches a table with one `UpdateTable` (Glue archives the
//! previous version), guarded twice: the database's `stedi.catalog_version`
//! parameter and each table's `VersionId` must still be what `load` saw.
//! Glue has no multi-table transaction: the guards are all checked before the
//! first switch, so a conflict found then publishes nothing; a publisher
//! racing inside the switch itself (milliseconds) is refused by Glue's
//! `VersionId` check and reported with the tables already switched.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_glue::Client;
use aws_sdk_glue::types::{Column, DatabaseInput, SerDeInfo, StorageDescriptor, TableInput};
use zones::contract::{ColumnDef, TableRef};
use zones::{Policy, Table};

use crate::aws::{Aws, sdk_error};
use crate::catalog::{Catalog, CatalogState, CatalogVersion, Entry, Format};
use crate::error::{Error, Result};

/// Database parameter counting publishes.
const VERSION_PARAMETER: &str = "stedi.catalog_version";
/// Database parameter naming the run that published the current version.
const PUBLISHED_BY_PARAMETER: &str = "stedi.published_by";

const DATABASE_DESCRIPTION: &str = "STEDI lakehouse: landing, trusted and curated tables";

#[derive(Debug, Clone)]
pub struct GlueCatalog {
    aws: Arc<Aws>,
    client: Client,
    database: String,
    /// The warehouse root as an `s3://bucket/prefix/` URL: table locations
    /// are this plus the snapshot prefix.
    warehouse_url: String,
}

impl GlueCatalog {
    pub fn new(aws: Arc<Aws>, database: &str, warehouse_url: &str) -> GlueCatalog {
        let mut warehouse_url = warehouse_url.to_string();
        if !warehouse_url.ends_with('/') {
            warehouse_url.push('/');
        }
        GlueCatalog {
            client: Client::new(&aws.config),
            aws,
            database: database.to_string(),
            warehouse_url,
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The database a run's view is staged in (see [`staging_database`]).
    pub fn staging_database(&self, run_id: &str) -> String {
        staging_database(&self.database, run_id)
    }

    /// The database's catalog version and the run that published it; None
    /// if the database does not exist.
    async fn database_version(&self, database: &str) -> Result<Option<(u64, Option<String>)>> {
        match self.client.get_database().name(database).send().await {
            Ok(out) => {
                let params = out.database().and_then(|d| d.parameters());
                let param = |k: &str| params.and_then(|p| p.get(k)).cloned();
                Ok(Some((
                    param(VERSION_PARAMETER)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    param(PUBLISHED_BY_PARAMETER),
                )))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error("Glue", "GetDatabase", database)(e)),
        }
    }

    async fn ensure_database(&self, database: &str, description: &str) -> Result<()> {
        let input = DatabaseInput::builder()
            .name(database)
            .description(description)
            .build()
            .map_err(|e| Error::BuildRequest {
                service: "Glue",
                what: "database input",
                message: e.to_string(),
            })?;
        match self
            .client
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("Glue", "CreateDatabase", database)(e)),
        }
    }

    async fn set_database_version(&self, version: u64, run_id: &str) -> Result<()> {
        let input = DatabaseInput::builder()
            .name(&self.database)
            .description(DATABASE_DESCRIPTION)
            .parameters(VERSION_PARAMETER, version.to_string())
            .parameters(PUBLISHED_BY_PARAMETER, run_id)
            .build()
            .map_err(|e| Error::BuildRequest {
                service: "Glue",
                what: "database input",
                message: e.to_string(),
            })?;
        self.client
            .update_database()
            .name(&self.database)
            .database_input(input)
            .send()
            .await
            .map_err(sdk_error("Glue", "UpdateDatabase", &self.database))?;
        Ok(())
    }

    async fn tables(&self, database: &str) -> Result<CatalogState> {
        let mut state = CatalogState {
            database: Some(database.to_string()),
            ..CatalogState::default()
        };
        let Some((version, published_by)) = self.database_version(database).await? else {
            return Ok(state);
        };
        state.version = version;
        state.published_by = published_by;
        let mut pages = self
            .client
            .get_tables()
            .database_name(database)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk_error("Glue", "GetTables", database))?;
            for table in page.table_list() {
                let Some(name) = Table::from_name(table.name()) else {
                    continue; // a table someone else keeps in the database
                };
                state.tables.insert(name, self.entry(name, table)?);
                if let Some(v) = table.version_id() {
                    state.table_versions.insert(name, v.to_string());
                }
            }
        }
        Ok(state)
    }

    async fn table_version(&self, database: &str, table: Table) -> Result<Option<String>> {
        match self
            .client
            .get_table()
            .database_name(database)
            .name(table.name())
            .send()
            .await
        {
            Ok(out) => Ok(out.table().and_then(|t| t.version_id()).map(str::to_string)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error("Glue", "GetTable", format!("{database}.{table}"))(e)),
        }
    }

    /// Creates the table, or switches it with `UpdateTable` guarded by `version`.
    async fn put_table(&self, database: &str, entry: &Entry, version: Option<&str>) -> Result<()> {
        let input = self.table_input(entry)?;
        let target = format!("{database}.{}", entry.table.table);
        match version {
            None => {
                self.client
                    .create_table()
                    .database_name(database)
                    .table_input(input)
                    .send()
                    .await
                    .map_err(sdk_error("Glue", "CreateTable", target))?;
            }
            Some(version) => {
                match self
                    .client
                    .update_table()
                    .database_name(database)
                    .table_input(input)
                    .version_id(version)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_concurrent_modification_exception()) =>
                    {
                        return Err(Error::TableConflict {
                            table: target,
                            expected: Some(version.to_string()),
                            found: None,
                        });
                    }
                    Err(e) => return Err(sdk_error("Glue", "UpdateTable", target)(e)),
                }
            }
        }
        Ok(())
    }

    /// The Glue definition of an entry: Parquet snapshots, or JSON lines
    /// (the OpenX SerDe Athena reads the landing zone with).
    fn table_input(&self, entry: &Entry) -> Result<TableInput> {
        let t = &entry.table;
        let columns = t
            .columns
            .iter()
            .map(|c| Column::builder().name(&c.name).r#type(&c.ty).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::BuildRequest {
                service: "Glue",
                what: "column",
                message: e.to_string(),
            })?;
        let (input_format, output_format, serde, classification) = match entry.format {
            Format::Parquet => (
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                SerDeInfo::builder()
                    .serialization_library(
                        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                    )
                    .build(),
                "parquet",
            ),
            Format::Json => (
                "org.apache.hadoop.mapred.TextInputFormat",
                "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                SerDeInfo::builder()
                    .serialization_library("org.openx.data.jsonserde.JsonSerDe")
                    // Lines we quarantine must not fail analysts' queries.
                    .parameters("ignore.malformed.json", "true")
                    .parameters("case.insensitive", "true")
                    .build(),
                "json",
            ),
        };
        let mut table = TableInput::builder()
            .name(t.table.name())
            .table_type("EXTERNAL_TABLE")
            .parameters("classification", classification)
            .parameters("stedi.snapshot", &t.snapshot)
            .parameters("stedi.rows", t.rows.to_string())
            .storage_descriptor(
                StorageDescriptor::builder()
                    .set_columns(Some(columns))
                    .location(format!("{}{}", self.warehouse_url, t.location))
                    .input_format(input_format)
                    .output_format(output_format)
                    .serde_info(serde)
                    .build(),
            );
        if let Some(run_id) = &entry.run_id {
            table = table.parameters("stedi.run_id", run_id);
        }
        if let Some(crc) = t.manifest_crc32c {
            table = table.parameters("stedi.manifest_crc32c", format!("{crc:08x}"));
        }
        if let Some(policy) = entry.policy {
            table = table.parameters("stedi.policy", policy.to_string());
        }
        table.build().map_err(|e| Error::BuildRequest {
            service: "Glue",
            what: "table input",
            message: e.to_string(),
        })
    }

    /// An entry from its Glue table (the inverse of `table_input`).
    fn entry(&self, name: Table, table: &aws_sdk_glue::types::Table) -> Result<Entry> {
        let params = table.parameters();
        let param = |k: &str| params.and_then(|p| p.get(k)).cloned();
        let sd = table.storage_descriptor();
        let url = sd.and_then(|s| s.location()).unwrap_or_default();
        let location =
            url.strip_prefix(&self.warehouse_url)
                .ok_or_else(|| Error::CatalogEntry {
                    table: format!("{}.{name}", self.database),
                    problem: format!(
                        "points at `{url}`, outside the warehouse {}",
                        self.warehouse_url
                    ),
                })?;
        let format = match param("classification").as_deref() {
            Some("json") => Format::Json,
            _ => Format::Parquet,
        };
        Ok(Entry {
            table: TableRef {
                table: name,
                location: location.to_string(),
                snapshot: param("stedi.snapshot").unwrap_or_default(),
                rows: param("stedi.rows")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0),
                manifest_crc32c: param("stedi.manifest_crc32c")
                    .and_then(|c| u32::from_str_radix(&c, 16).ok()),
                columns: sd
                    .map(|s| s.columns())
                    .unwrap_or_default()
                    .iter()
                    .map(|c| ColumnDef {
                        name: c.name().to_string(),
                        ty: c.r#type().unwrap_or("string").to_string(),
                    })
                    .collect(),
            },
            format,
            run_id: param("stedi.run_id"),
            policy: param("stedi.policy").and_then(|p| p.parse::<Policy>().ok()),
        })
    }

    async fn drop_database(&self, database: &str) -> Result<()> {
        match self.client.delete_database().name(database).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("Glue", "DeleteDatabase", database)(e)),
        }
    }
}

/// The database a run's view is staged in:
/// `<database>_run_<run id, lowercased, _ for . and ->_<crc32c of the run id>`.
/// Glue names are lowercase `[a-z0-9_]`, so the readable part alone would
/// give `Run-1`, `run_1` and `run.1` one database; the checksum of the exact
/// id keeps them apart.
pub fn staging_database(database: &str, run_id: &str) -> String {
    let id: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let hash = crc32c::crc32c(run_id.as_bytes());
    format!("{database}_run_{id}_{hash:08x}")
}

impl Catalog for GlueCatalog {
    fn load(&self) -> Result<CatalogState> {
        self.aws.block_on(self.tables(&self.database))
    }

    fn publish(&self, base: &CatalogVersion, run_id: &str, entries: Vec<Entry>) -> Result<u64> {
        self.aws.block_on(async {
            self.ensure_database(&self.database, DATABASE_DESCRIPTION)
                .await?;
            let (found, published_by) = self
                .database_version(&self.database)
                .await?
                .unwrap_or_default();
            if found != base.version {
                return Err(Error::PublishConflict {
                    run_id: run_id.to_string(),
                    expected: base.version,
                    found,
                    published_by,
                });
            }
            // Every guard first: a conflict found here publishes nothing.
            let mut versions = BTreeMap::new();
            for entry in &entries {
                let table = entry.table.table;
                let found = self.table_version(&self.database, table).await?;
                let expected = base.table_versions.get(&table).cloned();
                if found != expected {
                    return Err(Error::TableConflict {
                        table: format!("{}.{table}", self.database),
                        expected,
                        found,
                    });
                }
                versions.insert(table, found);
            }
            for (done, entry) in entries.iter().enumerate() {
                let version = versions[&entry.table.table].as_deref();
                if let Err(e) = self.put_table(&self.database, entry, version).await {
                    if done > 0 {
                        let switched: Vec<String> = entries[..done]
                            .iter()
                            .map(|e| e.table.table.to_string())
                            .collect();
                        tracing::error!(switched = ?switched, "publish stopped part-way");
                    }
                    return Err(e);
                }
            }
            let version = base.version + 1;
            self.set_database_version(version, run_id).await?;
            Ok(version)
        })
    }

    /// Registers the view in its own database, `<database>_run_<run id>`,
    /// so Athena runs the same check texts over unpublished snapshots.
    fn stage(&self, run_id: &str, view: &CatalogState) -> Result<CatalogState> {
        let database = self.staging_database(run_id);
        self.aws.block_on(async {
            // A retried gate finds the database of its previous attempt.
            self.drop_database(&database).await?;
            self.ensure_database(
                &database,
                "STEDI lakehouse: a run's tables under quality checks",
            )
            .await?;
            for entry in view.tables.values() {
                self.put_table(&database, entry, None).await?;
            }
            Ok::<(), Error>(())
        })?;
        Ok(CatalogState {
            database: Some(database),
            table_versions: BTreeMap::new(),
            ..view.clone()
        })
    }

    fn unstage(&self, staged: &CatalogState) -> Result<()> {
        match &staged.database {
            Some(db) if *db != self.database => self.aws.block_on(self.drop_database(db)),
            _ => Ok(()),
        }
    }

    /// The databases named like [`staging_database`] of this database.
    fn staging_areas(&self) -> Result<Vec<String>> {
        self.aws.block_on(async {
            let mut names = Vec::new();
            let mut pages = self.client.get_databases().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(sdk_error("Glue", "GetDatabases", &self.database))?;
                names.extend(
                    page.database_list()
                        .iter()
                        .map(|d| d.name().to_string())
                        .filter(|n| is_staging_database(&self.database, n)),
                );
            }
            names.sort();
            Ok(names)
        })
    }

    fn staging_area(&self, run_id: &str) -> Option<String> {
        Some(self.staging_database(run_id))
    }

    fn drop_staging_area(&self, name: &str) -> Result<()> {
        debug_assert!(is_staging_database(&self.database, name));
        self.aws.block_on(self.drop_database(name))
    }
}

/// Whether `name` has the shape of a [`staging_database`] of `database`:
/// `<database>_run_<[a-z0-9_]+>_<8 hex digits>`.
pub fn is_staging_database(database: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(&format!("{database}_run_")) else {
        return false;
    };
    match rest.rsplit_once('_') {
        Some((id, hash)) => {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && hash.len() == 8
                && hash
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_databases_of_different_run_ids_differ() {
        let names: std::collections::BTreeSet<String> =
            ["run-1", "run_1", "run.1", "Run-1", "RUN_1"]
                .iter()
                .map(|id| staging_database("stedi", id))
                .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        let name = staging_database("stedi", "20261123T095013Z-3fa2");
        assert!(
            name.starts_with("stedi_run_20261123t095013z_3fa2_"),
            "{name}"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
        assert!(is_staging_database("stedi", &name));
        assert!(!is_staging_database("stedi", "stedi"));
        assert!(!is_staging_database("stedi", "stedi_run_x"));
        assert!(!is_staging_database("other", &name));
    }
}
