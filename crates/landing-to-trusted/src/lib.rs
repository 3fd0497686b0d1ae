//! Lambda `landing-to-trusted`: transitions 1, 2 and 4 (customer_trusted,
//! accelerometer_trusted, step_trainer_trusted). Each landing object is read
//! and parsed once, bad lines are quarantined in the same pass, and the
//! policy's plan from `zones` filters the rows. Customers (small, and deduped
//! across objects under strict) are processed whole; readings are streamed
//! object by object in parallel against an index of the customers, each object
//! writing its own Parquet part, one object per core in flight, so memory stays
//! bounded. The local runner calls the same [`run`].
//!
//! Deliberately absent: catalog switches (the quality gate publishes) and
//! environment reads (main.rs parses configuration once).

use std::collections::BTreeMap;
use std::time::Instant;

use lakehouse::handler::{self, Produced, Shadow};
use lakehouse::{Env, Error, Store, tables};
use polars::prelude::*;
use zones::contract::{TaskError, TransitionRequest, TransitionResult};
use zones::landing::{QuarantinedLine, parse_object, quarantine_frame};
use zones::transitions::{self, settle};
use zones::{Dataset, Policy, Table, layout};

/// The tables this function produces.
pub const PRODUCES: [Table; 3] = [
    Table::CustomerTrusted,
    Table::AccelerometerTrusted,
    Table::StepTrainerTrusted,
];

pub fn run(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, TaskError> {
    Ok(run_inner(env, request)?)
}

fn run_inner(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, Error> {
    let started = Instant::now();
    let store = env.store.as_ref();
    let produced = match request.transition {
        Table::CustomerTrusted => customers(store, request)?,
        Table::AccelerometerTrusted => readings(
            store,
            request,
            Dataset::Accelerometer,
            Table::CustomerTrusted,
        )?,
        Table::StepTrainerTrusted => readings(
            store,
            request,
            Dataset::StepTrainer,
            Table::CustomersCurated,
        )?,
        other => {
            return Err(Error::InvalidRequest(format!(
                "landing-to-trusted does not produce `{other}`"
            )));
        }
    };
    handler::finish(store, request, started, produced)
}

fn customers(store: &dyn Store, request: &TransitionRequest) -> Result<Produced, Error> {
    let landing = tables::read_landing(store, Dataset::Customer)?;
    let rows = landing.rows.lazy();
    let outcome = settle(transitions::customer_trusted(request.policy, rows.clone()))?;
    let rubric = match handler::wants_rubric_shadow(request) {
        true => Some(settle(transitions::customer_trusted(Policy::Rubric, rows))?),
        false => None,
    };
    let quarantine = (
        Table::CustomerQuarantine,
        quarantine_frame(&landing.quarantined),
    );
    handler::write_outcome(store, request, outcome, rubric, Some(quarantine))
}

/// What one landing object of readings contributed.
struct Part {
    schema: SchemaRef,
    input_rows: u64,
    kept_rows: u64,
    drops: BTreeMap<String, u64>,
    quarantined: Vec<QuarantinedLine>,
    rubric: Option<(u64, BTreeMap<String, u64>)>,
}

/// Streams the landing objects of `dataset` against the customer table `index`.
fn readings(
    store: &dyn Store,
    request: &TransitionRequest,
    dataset: Dataset,
    index: Table,
) -> Result<Produced, Error> {
    let plan = |policy: Policy, rows: LazyFrame, index: &DataFrame| match dataset {
        Dataset::Accelerometer => {
            transitions::accelerometer_trusted(policy, rows, index.clone().lazy())
        }
        _ => transitions::step_trainer_trusted(policy, rows, index.clone().lazy()),
    };
    let customers = handler::input(store, request, index)?.collect()?;
    let rubric_customers = match handler::wants_rubric_shadow(request) {
        true => Some(handler::rubric_input(store, request, index)?.collect()?),
        false => None,
    };
    let (run_id, table) = (&request.run_id, request.transition);
    let prefix = layout::snapshot_prefix(table, run_id);
    let shadow_prefix = layout::rubric_shadow_prefix(run_id, table);
    let objects = tables::landing_objects(store, dataset)?;

    let parts: Vec<Part> = lakehouse::map_bounded(&objects, |n, object| -> Result<Part, Error> {
        let parsed = parse_object(dataset, &object.key, &store.get(&object.key)?);
        let rows = parsed.rows.lazy();
        let mut outcome = settle(plan(request.policy, rows.clone(), &customers))?;
        tables::write_part(store, &prefix, n, &mut outcome.table)?;
        let rubric = match &rubric_customers {
            Some(index) => {
                let mut shadow = settle(plan(Policy::Rubric, rows, index))?;
                tables::write_part(store, &shadow_prefix, n, &mut shadow.table)?;
                Some((shadow.kept_rows, shadow.drops))
            }
            None => None,
        };
        Ok(Part {
            schema: outcome.table.schema().clone(),
            input_rows: parsed.lines,
            kept_rows: outcome.kept_rows,
            drops: outcome.drops,
            quarantined: parsed.quarantined,
            rubric,
        })
    })?;
    tracing::info!(%dataset, objects = objects.len(), "streamed landing objects");

    let merge = |into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>| {
        for (rule, n) in from {
            *into.entry(rule.clone()).or_default() += n;
        }
    };
    let schema = parts[0].schema.clone();
    let (mut drops, mut rubric_drops, mut quarantined) =
        (BTreeMap::new(), BTreeMap::new(), Vec::new());
    let (mut input_rows, mut kept_rows, mut rubric_rows) = (0, 0, 0);
    for part in parts {
        input_rows += part.input_rows;
        kept_rows += part.kept_rows;
        merge(&mut drops, &part.drops);
        quarantined.extend(part.quarantined);
        if let Some((rows, part_drops)) = &part.rubric {
            rubric_rows += rows;
            merge(&mut rubric_drops, part_drops);
        }
    }
    let rubric = rubric_customers.map(|_| Shadow {
        table: Some(tables::table_ref(
            table,
            &shadow_prefix,
            run_id,
            rubric_rows,
            &schema,
        )),
        rows: rubric_rows,
        drops: rubric_drops,
    });
    Ok(Produced {
        table: tables::table_ref(table, &prefix, run_id, kept_rows, &schema),
        input_rows,
        kept_rows,
        drops,
        quarantine: Some((Table::quarantine(dataset), quarantine_frame(&quarantined))),
        rubric,
    })
}
