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
        /// Run queries on Polars' streaming engine, whose memory does not
        /// grow with the tables (the quality gate's checks at 500x: a join
        /// of 7.6M readings 204 MB instead of 820). The pipeline's engine
        /// streams; `stedi query` does not: the engine of Polars 0.55
        /// aborts the process on some forms over millions of rows (`NOT IN
        /// (SELECT ...)`), which the gate's checks avoid
        /// (`zones::checks`) and a query someone types may not.
        pub streaming: bool,
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
            let plan = context.execute(sql).map_err(Error::Query)?;
            if !self.streaming {
                return plan.collect().map_err(Error::Query);
            }
            // One plan, one sink: one frame (several are only for
            // `collect_all` of several plans).
            plan.collect_with_engine(Engine::Streaming)
                .map(|result| result.unwrap_single())
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
