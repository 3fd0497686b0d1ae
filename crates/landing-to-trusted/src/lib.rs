//! Lambda `landing-to-trusted`: transitions 1, 2 and 4 (customer_trusted,
//! accelerometer_trusted, step_trainer_trusted). Parses every landing object
//! of the dataset once, quarantines bad lines, applies the policy's plan from
//! `zones` and writes the snapshot. The local runner calls the same [`run`].
//!
//! Deliberately absent: catalog switches (the quality gate publishes) and
//! environment reads (main.rs parses configuration once).

use std::time::Instant;

use lakehouse::handler::{self, LandingQuarantine};
use lakehouse::{Env, Error, tables};
use polars::prelude::*;
use zones::contract::{TaskError, TransitionRequest, TransitionResult};
use zones::landing::quarantine_frame;
use zones::transitions::{self, settle};
use zones::{Dataset, Policy, Table};

/// The tables this function produces.
pub const PRODUCES: [Table; 3] = [Table::CustomerTrusted, Table::AccelerometerTrusted, Table::StepTrainerTrusted];

pub fn run(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, TaskError> {
    Ok(run_inner(env, request)?)
}

fn run_inner(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, Error> {
    let started = Instant::now();
    let store = env.store.as_ref();
    let dataset = match request.transition {
        Table::CustomerTrusted => Dataset::Customer,
        Table::AccelerometerTrusted => Dataset::Accelerometer,
        Table::StepTrainerTrusted => Dataset::StepTrainer,
        other => return Err(Error::InvalidRequest(format!("landing-to-trusted does not produce `{other}`"))),
    };
    let landing = tables::read_landing(store, dataset)?;

    let plan = |policy: Policy, input: &dyn Fn(Table) -> lakehouse::Result<LazyFrame>| -> lakehouse::Result<_> {
        let rows = landing.rows.clone().lazy();
        Ok(match dataset {
            Dataset::Customer => transitions::customer_trusted(policy, rows),
            Dataset::Accelerometer => transitions::accelerometer_trusted(policy, rows, input(Table::CustomerTrusted)?),
            Dataset::StepTrainer => transitions::step_trainer_trusted(policy, rows, input(Table::CustomersCurated)?),
        })
    };
    let outcome = settle(plan(request.policy, &|t| handler::input(store, request, t))?)?;
    let rubric = if handler::wants_rubric_shadow(request) {
        Some(settle(plan(Policy::Rubric, &|t| handler::rubric_input(store, request, t))?)?)
    } else {
        None
    };
    let quarantine = LandingQuarantine { table: Table::quarantine(dataset), frame: quarantine_frame(&landing.quarantined) };
    handler::complete(store, request, started, Some(quarantine), outcome, rubric)
}
