//! Dataset and table definitions. Landing schemas are parsed from the Athena
//! DDL files under `infra/athena/`, the single source of truth for field
//! names, types and optionality.

use std::fmt;
use std::sync::LazyLock;

use polars::prelude::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

/// The three raw feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    Customer,
    Accelerometer,
    StepTrainer,
}

impl Dataset {
    pub const ALL: [Dataset; 3] = [
        Dataset::Customer,
        Dataset::Accelerometer,
        Dataset::StepTrainer,
    ];

    /// Folder name under the warehouse root, as in the public starter data.
    pub fn dir(self) -> &'static str {
        match self {
            Dataset::Customer => "customer",
            Dataset::Accelerometer => "accelerometer",
            Dataset::StepTrainer => "step_trainer",
        }
    }

    pub fn landing_schema(self) -> &'static LandingSchema {
        static SCHEMAS: LazyLock<[LandingSchema; 3]> = LazyLock::new(|| {
            Dataset::ALL.map(|d| {
                LandingSchema::from_ddl(d.ddl())
                    .unwrap_or_else(|e| panic!("infra/athena/{}_landing.sql: {e}", d.dir()))
            })
        });
        &SCHEMAS[self as usize]
    }

    /// The Athena DDL text of this dataset's landing table.
    pub fn ddl(self) -> &'static str {
        match self {
            Dataset::Customer => include_str!("../../../infra/athena/customer_landing.sql"),
            Dataset::Accelerometer => {
                include_str!("../../../infra/athena/accelerometer_landing.sql")
            }
            Dataset::StepTrainer => include_str!("../../../infra/athena/step_trainer_landing.sql"),
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir())
    }
}

/// Hive column types used by the landing tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    BigInt,
    Int,
    Double,
}

impl ColumnType {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "string" => Some(ColumnType::String),
            "bigint" => Some(ColumnType::BigInt),
            "int" | "integer" => Some(ColumnType::Int),
            "double" => Some(ColumnType::Double),
            _ => None,
        }
    }

    pub fn dtype(self) -> DataType {
        match self {
            ColumnType::String => DataType::String,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Int => DataType::Int32,
            ColumnType::Double => DataType::Float64,
        }
    }

    /// The JSON type a landing value must have, for error messages.
    pub fn json_kind(self) -> &'static str {
        match self {
            ColumnType::String => "a string",
            ColumnType::BigInt | ColumnType::Int => "an integer",
            ColumnType::Double => "a number",
        }
    }
}

/// The Hive type name of a Polars type, as Glue and Athena spell it.
pub fn hive_type(dtype: &DataType) -> String {
    match dtype {
        DataType::String => "string".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Int32 => "int".into(),
        DataType::UInt32 => "bigint".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        other => format!("{other}").to_ascii_lowercase(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandingColumn {
    pub name: String,
    pub ty: ColumnType,
    /// Optional fields may be absent or null; all others are required.
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandingSchema {
    pub table: String,
    pub columns: Vec<LandingColumn>,
}

impl LandingSchema {
    /// Parses the column list of a `CREATE EXTERNAL TABLE` statement: one
    /// column per line, `` `name` type [COMMENT 'optional: ...'] ``.
    pub fn from_ddl(ddl: &str) -> Result<Self, String> {
        let start = ddl
            .find("CREATE EXTERNAL TABLE")
            .ok_or("no CREATE EXTERNAL TABLE statement")?;
        let body = &ddl[start..];
        let open = body.find('(').ok_or("no column list")?;
        let table = body[..open]
            .split_whitespace()
            .last()
            .ok_or("no table name")?
            .trim_matches('`')
            .to_string();
        let close = body
            .find("\n)")
            .ok_or("column list is not closed by a line `)`")?;
        let mut columns = Vec::new();
        for line in body[open + 1..close].lines() {
            let line = line.trim().trim_end_matches(',');
            if line.is_empty() || line.starts_with("--") {
                continue;
            }
            let mut words = line.split_whitespace();
            let name = words
                .next()
                .ok_or("empty column line")?
                .trim_matches('`')
                .to_string();
            let ty_word = words
                .next()
                .ok_or_else(|| format!("column `{name}` has no type"))?;
            let ty = ColumnType::parse(ty_word)
                .ok_or_else(|| format!("column `{name}` has unsupported type `{ty_word}`"))?;
            let rest = words.collect::<Vec<_>>().join(" ");
            let optional = rest.starts_with("COMMENT 'optional");
            columns.push(LandingColumn { name, ty, optional });
        }
        if columns.is_empty() {
            return Err("no columns".into());
        }
        Ok(LandingSchema { table, columns })
    }

    /// The `WITH SERDEPROPERTIES ('k' = 'v', ...)` of a DDL text, in order:
    /// how Athena reads the landing table (the Glue table carries the same).
    pub fn serde_properties(ddl: &str) -> Result<Vec<(String, String)>, String> {
        let start = ddl
            .find("WITH SERDEPROPERTIES")
            .ok_or("no WITH SERDEPROPERTIES")?;
        let body = &ddl[start..];
        let open = body.find('(').ok_or("SERDEPROPERTIES has no list")?;
        let close = body.find(')').ok_or("SERDEPROPERTIES list is not closed")?;
        body[open + 1..close]
            .split(',')
            .map(|pair| {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("`{}` is not 'key' = 'value'", pair.trim()))?;
                let unquote = |s: &str| s.trim().trim_matches('\'').to_string();
                Ok((unquote(k), unquote(v)))
            })
            .collect()
    }

    pub fn polars_schema(&self) -> Schema {
        self.columns
            .iter()
            .map(|c| Field::new(c.name.as_str().into(), c.ty.dtype()))
            .collect()
    }
}
