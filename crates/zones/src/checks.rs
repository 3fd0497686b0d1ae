//! The quality gate's checks, written as SQL text that runs unchanged on
//! Polars SQL (locally) and on Athena. Reserved words (`user`, `timestamp`)
//! and camel-case names are double-quoted so both engines read them alike.

use crate::contract::TransitionResult;
use crate::layout::Table;
use crate::policy::Policy;
use crate::schema::Dataset;
use crate::transitions::IDENTIFIER_COLUMNS;

/// How a check's result is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The query returns one row whose `violations` column must be 0.
    NoViolations,
    /// The query's result columns must include none of these.
    ColumnsExclude(&'static [&'static str]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub sql: String,
    pub expect: Expect,
}

fn check(name: impl Into<String>, sql: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        sql: sql.into(),
        expect: Expect::NoViolations,
    }
}

/// The checks of a run under `policy`. Accounting checks compare the written
/// tables with the counts the transitions reported (`results`).
pub fn checks(
    policy: Policy,
    results: &std::collections::BTreeMap<Table, TransitionResult>,
) -> Vec<Check> {
    let mut all = vec![
        check(
            "customer_trusted_has_consent",
            r#"SELECT COUNT(*) AS violations FROM customer_trusted WHERE "shareWithResearchAsOfDate" IS NULL"#,
        ),
        check(
            "accelerometer_users_are_trusted_customers",
            // An anti-join (a reading whose user matches no email): the
            // same count as `NOT IN (SELECT email ...)`, which the
            // streaming engine of local Polars SQL aborts on at 500x.
            r#"SELECT COUNT(*) AS violations FROM accelerometer_trusted a LEFT JOIN customer_trusted c ON a."user" = c.email WHERE a."user" IS NULL OR c.email IS NULL"#,
        ),
    ];
    if policy == Policy::Strict {
        all.extend([
            check(
                "customer_trusted_one_row_per_email",
                r#"SELECT COUNT(*) AS violations FROM (SELECT email FROM customer_trusted GROUP BY email HAVING COUNT(*) > 1) d"#,
            ),
            check(
                "no_accelerometer_reading_before_consent",
                r#"SELECT COUNT(*) AS violations FROM accelerometer_trusted a JOIN customer_trusted c ON a."user" = c.email WHERE a."timestamp" < c."shareWithResearchAsOfDate""#,
            ),
            check(
                "no_step_reading_before_consent",
                r#"SELECT COUNT(*) AS violations FROM step_trainer_trusted s LEFT JOIN (SELECT "serialNumber", MIN("shareWithResearchAsOfDate") AS consent FROM customers_curated GROUP BY "serialNumber") c ON s."serialNumber" = c."serialNumber" WHERE c.consent IS NULL OR s."sensorReadingTime" < c.consent"#,
            ),
            Check {
                name: "machine_learning_curated_has_no_identifier".into(),
                sql: "SELECT * FROM machine_learning_curated LIMIT 0".into(),
                expect: Expect::ColumnsExclude(&IDENTIFIER_COLUMNS),
            },
        ]);
    }
    for dataset in Dataset::ALL {
        let trusted = trusted_table(dataset);
        if let Some(result) = results.get(&trusted) {
            all.push(check(
                format!("{}_landing_rows_accounted_for", dataset.dir()),
                format!(
                    "SELECT {landing} - t.n - q.n - {dropped} AS violations \
                     FROM (SELECT COUNT(*) AS n FROM {trusted}) t \
                     CROSS JOIN (SELECT COUNT(*) AS n FROM {quarantine}) q",
                    landing = result.counts.input,
                    dropped = result.counts.dropped_total(),
                    quarantine = Table::quarantine(dataset),
                ),
            ));
            // A landing table none of whose records could be read: the
            // feed changed its shape (say, one JSON array instead of JSON
            // lines). Every record is safe in quarantine, but publishing
            // would replace the tables built from it with empty ones.
            all.push(check(
                format!("{}_landing_is_readable", dataset.dir()),
                format!(
                    "SELECT CASE WHEN q.n > 0 AND q.n = {landing} THEN q.n ELSE 0 END AS violations \
                     FROM (SELECT COUNT(*) AS n FROM {quarantine}) q",
                    landing = result.counts.input,
                    quarantine = Table::quarantine(dataset),
                ),
            ));
        }
    }
    all
}

/// The trusted table each landing dataset flows into.
pub fn trusted_table(dataset: Dataset) -> Table {
    match dataset {
        Dataset::Customer => Table::CustomerTrusted,
        Dataset::Accelerometer => Table::AccelerometerTrusted,
        Dataset::StepTrainer => Table::StepTrainerTrusted,
    }
}
