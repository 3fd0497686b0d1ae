//! The query engine: SQL over a catalog view. [`PolarsSql`] (feature `sql`)
//! is the local stand-in for Athena (`athena::AthenaEngine`); both run the
//! same texts.

use polars::prelude::*;

use crate::catalog::CatalogState;
use crate::error::Result;
#[cfg(feature = "sql")]
pub use local::PolarsSql;

pub trait QueryEngine: Send + Sync + std::fmt::Debug {
    /// Runs `sql` over the tables of `view`.
    fn execute(&self, view: &CatalogState, sql: &str) -> Result<DataFrame>;
}

#[cfg(feature = "sql")]
mod local {
    use std::sync::Arc;

    use polars::prelude::*;
    use polars::sql::SQLContext;
    use zones::Table;

    use super::QueryEngine;
    use crate::catalog::{CatalogState, Entry, Format};
    use crate::error::{Error, Result};
    use crate::store::Store;
    use crate::tables;

    /// Polars SQL over the snapshots in the store.
    #[derive(Debug, Clone)]
    pub struct PolarsSql {
        pub store: Arc<dyn Store>,
    }

    impl QueryEngine for PolarsSql {
        /// Only the tables the query names are read.
        fn execute(&self, view: &CatalogState, sql: &str) -> Result<DataFrame> {
            let names =
                polars::sql::extract_table_identifiers(sql, false, true).map_err(Error::Query)?;
            let mut context = SQLContext::new();
            for name in names {
                let entry = Table::from_name(&name)
                    .and_then(|t| view.get(t))
                    .ok_or_else(|| Error::MissingTable {
                        table: name.clone(),
                    })?;
                context.register(&name, frame(self.store.as_ref(), entry)?);
            }
            context
                .execute(sql)
                .and_then(LazyFrame::collect)
                .map_err(Error::Query)
        }
    }

    fn frame(store: &dyn Store, entry: &Entry) -> Result<LazyFrame> {
        match entry.format {
            Format::Parquet => tables::read_table(store, &entry.table),
            Format::Json => {
                let dataset = zones::Dataset::ALL
                    .into_iter()
                    .find(|d| Table::landing(*d) == entry.table.table)
                    .ok_or_else(|| Error::CatalogEntry {
                        table: entry.table.table.to_string(),
                        problem: "is JSON lines, but not a landing table".into(),
                    })?;
                Ok(tables::read_landing(store, dataset)?.rows.lazy())
            }
        }
    }
}
