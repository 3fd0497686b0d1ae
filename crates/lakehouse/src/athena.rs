//! Athena behind the [`QueryEngine`] interface: the same check texts the
//! local engine runs through Polars SQL, run where the tables live.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_athena::Client;
use aws_sdk_athena::types::{
    ColumnInfo, QueryExecutionContext, QueryExecutionState, ResultConfiguration, Row,
};
use polars::prelude::*;

use crate::aws::{Aws, sdk_error};
use crate::catalog::CatalogState;
use crate::error::{Error, Result};
use crate::query::QueryEngine;

/// How a query is waited for.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    pub first: Duration,
    pub max: Duration,
    /// A query still running after this is cancelled.
    pub timeout: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling {
            first: Duration::from_millis(200),
            max: Duration::from_secs(5),
            timeout: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AthenaEngine {
    aws: Arc<Aws>,
    client: Client,
    workgroup: String,
    /// Results location when the workgroup does not enforce its own.
    output_location: Option<String>,
    pub polling: Polling,
}

impl AthenaEngine {
    pub fn new(aws: Arc<Aws>, workgroup: &str, output_location: Option<String>) -> AthenaEngine {
        AthenaEngine {
            client: Client::new(&aws.config),
            aws,
            workgroup: workgroup.to_string(),
            output_location,
            polling: Polling::default(),
        }
    }

    /// Starts `sql` in `database`, waits for it, and reads all result pages.
    pub async fn run(&self, database: &str, sql: &str) -> Result<DataFrame> {
        let mut start = self
            .client
            .start_query_execution()
            .query_string(sql)
            .work_group(&self.workgroup)
            .query_execution_context(QueryExecutionContext::builder().database(database).build());
        if let Some(output) = &self.output_location {
            start = start.result_configuration(
                ResultConfiguration::builder()
                    .output_location(output)
                    .build(),
            );
        }
        let started = start.send().await.map_err(sdk_error(
            "Athena",
            "StartQueryExecution",
            &self.workgroup,
        ))?;
        let id = started
            .query_execution_id()
            .ok_or_else(|| Error::UnexpectedAnswer {
                service: "Athena",
                op: "StartQueryExecution",
                detail: "no query execution id".into(),
            })?
            .to_string();
        self.wait(&id).await?;
        self.results(&id).await
    }

    /// Polls with exponential backoff until the query ends.
    async fn wait(&self, id: &str) -> Result<()> {
        let began = Instant::now();
        let mut delay = self.polling.first;
        loop {
            let out = self
                .client
                .get_query_execution()
                .query_execution_id(id)
                .send()
                .await
                .map_err(sdk_error("Athena", "GetQueryExecution", id))?;
            let status = out.query_execution().and_then(|q| q.status());
            match status.and_then(|s| s.state()) {
                Some(QueryExecutionState::Succeeded) => return Ok(()),
                Some(state @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => {
                    let reason = status
                        .and_then(|s| s.athena_error().and_then(|e| e.error_message()))
                        .or_else(|| status.and_then(|s| s.state_change_reason()))
                        .unwrap_or("no reason given");
                    return Err(Error::QueryFailed {
                        id: id.to_string(),
                        state: state.as_str().to_string(),
                        reason: reason.to_string(),
                    });
                }
                _ => {}
            }
            if began.elapsed() >= self.polling.timeout {
                let _ = self
                    .client
                    .stop_query_execution()
                    .query_execution_id(id)
                    .send()
                    .await;
                return Err(Error::QueryFailed {
                    id: id.to_string(),
                    state: "CANCELLED".into(),
                    reason: format!(
                        "still running after {} s; stopped",
                        self.polling.timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.polling.max);
        }
    }

    async fn results(&self, id: &str) -> Result<DataFrame> {
        let mut pages = self
            .client
            .get_query_results()
            .query_execution_id(id)
            .into_paginator()
            .send();
        let mut columns: Vec<ColumnInfo> = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
        let mut first_page = true;
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk_error("Athena", "GetQueryResults", id))?;
            let Some(set) = page.result_set() else {
                continue;
            };
            if first_page {
                columns = set
                    .result_set_metadata()
                    .map(|m| m.column_info().to_vec())
                    .unwrap_or_default();
            }
            let mut page_rows = set.rows();
            // A SELECT's first row repeats the column labels.
            if first_page && page_rows.first().is_some_and(|r| is_header(r, &columns)) {
                page_rows = &page_rows[1..];
            }
            rows.extend_from_slice(page_rows);
            first_page = false;
        }
        frame(&columns, &rows)
    }
}

fn is_header(row: &Row, columns: &[ColumnInfo]) -> bool {
    row.data().len() == columns.len()
        && row
            .data()
            .iter()
            .zip(columns)
            .all(|(d, c)| d.var_char_value() == Some(c.label().unwrap_or(c.name())))
}

/// Athena returns every value as text; typed back by the column's type.
pub fn frame(columns: &[ColumnInfo], rows: &[Row]) -> Result<DataFrame> {
    let series = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let texts: Vec<Option<&str>> = rows
                .iter()
                .map(|r| r.data().get(i).and_then(|d| d.var_char_value()))
                .collect();
            let name = PlSmallStr::from(c.name());
            let parse_err = |v: &str| Error::UnexpectedAnswer {
                service: "Athena",
                op: "GetQueryResults",
                detail: format!("`{v}` in {} column `{}`", c.r#type(), c.name()),
            };
            let column: Column = match c.r#type() {
                "tinyint" | "smallint" | "integer" | "int" | "bigint" => {
                    Column::new(name, parse_all::<i64>(&texts, parse_err)?)
                }
                "double" | "float" | "real" | "decimal" => {
                    Column::new(name, parse_all::<f64>(&texts, parse_err)?)
                }
                "boolean" => {
                    let values: Vec<Option<bool>> =
                        texts.iter().map(|t| t.map(|v| v == "true")).collect();
                    Column::new(name, values)
                }
                _ => Column::new(name, texts),
            };
            Ok(column)
        })
        .collect::<Result<Vec<_>>>()?;
    DataFrame::new_infer_height(series).map_err(Error::Query)
}

/// Each text parsed as `T`; a NULL stays one.
fn parse_all<T: std::str::FromStr>(
    texts: &[Option<&str>],
    err: impl Fn(&str) -> Error,
) -> Result<Vec<Option<T>>> {
    texts
        .iter()
        .map(|t| t.map(|v| v.parse::<T>().map_err(|_| err(v))).transpose())
        .collect()
}

impl QueryEngine for AthenaEngine {
    fn execute(&self, view: &CatalogState, sql: &str) -> Result<DataFrame> {
        let database = view.database.as_deref().ok_or(Error::ViewNotInGlue)?;
        self.aws.block_on(self.run(database, sql))
    }
}
