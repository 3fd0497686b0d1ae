//! The local stand-in for Athena: Polars SQL over catalog tables.

use polars::prelude::*;
use polars::sql::SQLContext;
use zones::Table;

use crate::catalog::{CatalogState, Entry, Format};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::tables;

/// Runs `sql` over the tables of `catalog`; only the tables the query names are read.
pub fn execute(store: &dyn Store, catalog: &CatalogState, sql: &str) -> Result<DataFrame> {
    let names = polars::sql::extract_table_identifiers(sql, false, true).map_err(Error::Query)?;
    let mut context = SQLContext::new();
    for name in names {
        let entry = Table::from_name(&name)
            .and_then(|t| catalog.get(t))
            .ok_or_else(|| Error::MissingTable {
                table: name.clone(),
            })?;
        context.register(&name, frame(store, entry)?);
    }
    context
        .execute(sql)
        .and_then(LazyFrame::collect)
        .map_err(Error::Query)
}

fn frame(store: &dyn Store, entry: &Entry) -> Result<LazyFrame> {
    match entry.format {
        Format::Parquet => tables::read_table(store, &entry.table),
        Format::Json => {
            let dataset = zones::Dataset::ALL
                .into_iter()
                .find(|d| Table::landing(*d) == entry.table.table)
                .ok_or_else(|| {
                    Error::InvalidRequest(format!("{} is not a landing table", entry.table.table))
                })?;
            Ok(tables::read_landing(store, dataset)?.rows.lazy())
        }
    }
}
