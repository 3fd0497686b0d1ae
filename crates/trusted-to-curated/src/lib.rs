//! Lambda `trusted-to-curated`: transitions 3 and 5 (customers_curated,
//! machine_learning_curated). Reads this run's trusted snapshots, applies the
//! policy's plan from `zones` and writes the curated snapshot (and, for the
//! training table under strict, the quarantine of ambiguous readings). The
//! local runner calls the same [`run`].
//!
//! Deliberately absent: catalog switches and environment reads.

use std::time::Instant;

use lakehouse::handler;
use lakehouse::{Env, Error};
use polars::prelude::*;
use zones::contract::{TaskError, TransitionRequest, TransitionResult};
use zones::transitions::{self, Outcome, settle};
use zones::{Policy, Table};

/// The tables this function produces.
pub const PRODUCES: [Table; 2] = [Table::CustomersCurated, Table::MachineLearningCurated];

pub fn run(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, TaskError> {
    Ok(run_inner(env, request)?)
}

fn run_inner(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, Error> {
    let started = Instant::now();
    let store = env.store.as_ref();
    let produce = |policy: Policy, input: &dyn Fn(Table) -> lakehouse::Result<LazyFrame>| -> lakehouse::Result<Outcome> {
        Ok(match request.transition {
            Table::CustomersCurated => settle(transitions::customers_curated(
                policy,
                input(Table::CustomerTrusted)?,
                input(Table::AccelerometerTrusted)?,
            )?)?,
            Table::MachineLearningCurated => transitions::machine_learning_curated(
                policy,
                input(Table::StepTrainerTrusted)?,
                input(Table::AccelerometerTrusted)?,
                input(Table::CustomersCurated)?,
                &env.key,
            )?,
            other => return Err(Error::InvalidRequest(format!("trusted-to-curated does not produce `{other}`"))),
        })
    };
    let outcome = produce(request.policy, &|t| handler::input(store, request, t))?;
    let rubric = if handler::wants_rubric_shadow(request) {
        Some(produce(Policy::Rubric, &|t| handler::rubric_input(store, request, t))?)
    } else {
        None
    };
    let produced = handler::write_outcome(store, request, outcome, rubric, None)?;
    handler::finish(store, request, started, produced)
}
