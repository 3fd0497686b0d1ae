//! Lambda `landing-to-trusted`: transitions 1, 2 and 4 (customer_trusted,
//! accelerometer_trusted, step_trainer_trusted). Each landing object is read
//! and parsed once, bad lines are quarantined in the same pass. Customers
//! (small, and deduped across objects under strict) go through the policy's
//! Polars plan whole; readings are streamed object by object, one object per
//! core in flight, judged while parsing by the policy's `ReadingRule` (and
//! under strict the rubric's, from the same pass), each object writing its own
//! Parquet part, so memory stays bounded. The local runner calls the same [`run`].
//!
//! Deliberately absent: catalog switches (the quality gate publishes) and
//! environment reads (main.rs parses configuration once).

use std::collections::BTreeMap;
use std::time::Instant;

use lakehouse::handler::{self, Produced, Shadow};
use lakehouse::{Env, Error, erasure, tables};
use polars::prelude::*;
use zones::contract::{EraseRequest, TaskError, TransitionRequest, TransitionResult};
use zones::erasure::ErasureReport;
use zones::quarantine::{QuarantinedLine, quarantine_frame};
use zones::transitions::{self, ReadingRule, settle};
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

/// What this function is asked: a transition, or the Erase state (after
/// the publish). Told apart by the request's `erase` field, so each keeps
/// its own contract's error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Transition(TransitionRequest),
    Erase(EraseRequest),
}

impl<'de> serde::Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(d)?;
        if value.get("erase").is_some() {
            serde_json::from_value(value)
                .map(Request::Erase)
                .map_err(D::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(Request::Transition)
                .map_err(D::Error::custom)
        }
    }
}

/// The function's answer: a transition's result or an erasure report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Response {
    Transition(Box<TransitionResult>),
    Erase(Box<ErasureReport>),
}

/// The Lambda's handler: [`run`] or [`erase`], by the request.
pub fn handle(env: &Env, request: &Request) -> Result<Response, TaskError> {
    match request {
        Request::Transition(r) => run(env, r).map(|r| Response::Transition(Box::new(r))),
        Request::Erase(r) => erase(env, r).map(|r| Response::Erase(Box::new(r))),
    }
}

/// The Erase state: applies the run's pending erasure requests after its
/// publish (`lakehouse::erasure::erase`): rewrites the landing objects the
/// transitions named in `erased_objects`, deletes their older versions and
/// every older snapshot holding an erased person, verifies, and writes
/// `_runs/<run id>/erasure.json`. Served here because this function already
/// parses landing objects, judges erasure while it does, and may read and
/// write landing data.
pub fn erase(env: &Env, request: &EraseRequest) -> Result<ErasureReport, TaskError> {
    lakehouse::runs::check_published(env, &request.run_id)?;
    Ok(erasure::erase(env, &request.run_id, &request.results)?)
}

fn run_inner(env: &Env, request: &TransitionRequest) -> Result<TransitionResult, Error> {
    let started = Instant::now();
    lakehouse::runs::begin(env, &request.run_id, request.policy)?;
    let store = env.store.as_ref();
    let produced = match request.transition {
        Table::CustomerTrusted => customers(env, request)?,
        Table::AccelerometerTrusted => {
            readings(env, request, Dataset::Accelerometer, Table::CustomerTrusted)?
        }
        Table::StepTrainerTrusted => {
            readings(env, request, Dataset::StepTrainer, Table::CustomersCurated)?
        }
        other => {
            return Err(Error::NotServed {
                function: "landing-to-trusted",
                transition: other,
            });
        }
    };
    handler::finish(store, request, started, produced)
}

fn customers(env: &Env, request: &TransitionRequest) -> Result<Produced, Error> {
    let store = env.store.as_ref();
    let landing = tables::read_landing(store, Dataset::Customer)?;
    // Erased people's records leave first, under both policies.
    let erasure = erasure::erasure_with(env, &request.run_id, |_| Ok(landing.rows.clone()))?;
    let (rows, quarantined, erased) = erasure.split_customers(landing.rows, landing.quarantined)?;
    let erased_objects = erasure::objects_holding(store, &erasure, Dataset::Customer)?;
    let rows = rows.lazy();
    let outcome = settle(transitions::customer_trusted(request.policy, rows.clone()))?;
    let rubric = match handler::wants_rubric_shadow(request) {
        true => Some(settle(transitions::customer_trusted(Policy::Rubric, rows))?),
        false => None,
    };
    let quarantine = (Table::CustomerQuarantine, quarantine_frame(&quarantined));
    let mut produced = handler::write_outcome(store, request, outcome, rubric, Some(quarantine))?;
    produced.repaired = landing.repaired;
    produced.input_rows += erased;
    zones::erasure::add_erased(&mut produced.drops, erased);
    if let Some(shadow) = &mut produced.rubric {
        zones::erasure::add_erased(&mut shadow.drops, erased);
    }
    produced.erased_objects = erased_objects;
    Ok(produced)
}

/// What one landing object of readings contributed.
struct Part {
    /// The object's key and its erased records, if it held any.
    erased: Option<(String, u64)>,
    schema: SchemaRef,
    part: tables::PartInfo,
    input_rows: u64,
    kept_rows: u64,
    drops: BTreeMap<String, u64>,
    repaired: BTreeMap<String, u64>,
    quarantined: Vec<QuarantinedLine>,
    rubric: Option<(u64, BTreeMap<String, u64>, tables::PartInfo)>,
}

/// Streams the landing objects of `dataset` against the customer table `index`.
fn readings(
    env: &Env,
    request: &TransitionRequest,
    dataset: Dataset,
    index: Table,
) -> Result<Produced, Error> {
    let store = env.store.as_ref();
    // Erased people's readings leave first, under both policies (and in the shadow).
    let erasure = erasure::erasure_of_run(env, &request.run_id)?;
    let rule = |policy: Policy, customers: &DataFrame| -> Result<ReadingRule, Error> {
        let rule = match dataset {
            Dataset::Accelerometer => ReadingRule::accelerometer_trusted(policy, customers),
            _ => ReadingRule::step_trainer_trusted(policy, customers),
        }?;
        Ok(rule.with_erasure(erasure.clone()))
    };
    let mut rules = vec![rule(
        request.policy,
        &handler::input(store, request, index)?.collect()?,
    )?];
    let shadow = handler::wants_rubric_shadow(request);
    if shadow {
        rules.push(rule(
            Policy::Rubric,
            &handler::rubric_input(store, request, index)?.collect()?,
        )?);
    }
    let rules: Vec<&ReadingRule> = rules.iter().collect();
    let (run_id, table) = (&request.run_id, request.transition);
    let prefix = layout::snapshot_prefix(table, run_id);
    let shadow_prefix = layout::rubric_shadow_prefix(run_id, table);
    let objects = tables::landing_objects(store, dataset)?;

    // One pass per object: parse, judge by each rule, write each rule's part.
    let parts: Vec<Part> = lakehouse::map_bounded(&objects, |n, object| -> Result<Part, Error> {
        let parsed = tables::read_landing_object(store, dataset, object, &rules)?;
        let erased = parsed.kept[0].1.get(zones::policy::rule::ERASED).copied();
        let mut kept = parsed.kept.into_iter();
        let (mut rows, drops) = kept.next().expect("one output per rule");
        let part = tables::write_part(store, &prefix, n, &mut rows)?;
        let rubric = match kept.next() {
            Some((mut shadow_rows, shadow_drops)) => {
                let shadow_part = tables::write_part(store, &shadow_prefix, n, &mut shadow_rows)?;
                Some((shadow_rows.height() as u64, shadow_drops, shadow_part))
            }
            None => None,
        };
        tracing::debug!(
            key = object.key,
            bytes = object.size,
            records = parsed.records,
            rows = rows.height(),
            quarantined = parsed.quarantined.len(),
            "judged landing object"
        );
        Ok(Part {
            erased: erased.map(|n| (object.key.clone(), n)),
            schema: rows.schema().clone(),
            part,
            input_rows: parsed.records,
            kept_rows: rows.height() as u64,
            drops,
            repaired: parsed.repaired,
            quarantined: parsed.quarantined,
            rubric,
        })
    })?;
    tracing::info!(%dataset, objects = objects.len(), "streamed landing objects");

    let schema = parts[0].schema.clone();
    let (mut drops, mut rubric_drops, mut repaired, mut quarantined) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        Vec::new(),
    );
    let (mut input_rows, mut kept_rows, mut rubric_rows) = (0, 0, 0);
    let (mut written, mut shadow_written) = (Vec::new(), Vec::new());
    let mut erased_objects = BTreeMap::new();
    for part in parts {
        erased_objects.extend(part.erased);
        input_rows += part.input_rows;
        kept_rows += part.kept_rows;
        handler::add_counts(&mut drops, &part.drops);
        handler::add_counts(&mut repaired, &part.repaired);
        quarantined.extend(part.quarantined);
        written.push(part.part);
        if let Some((rows, part_drops, shadow_part)) = part.rubric {
            rubric_rows += rows;
            handler::add_counts(&mut rubric_drops, &part_drops);
            shadow_written.push(shadow_part);
        }
    }
    let rubric = match shadow {
        true => Some(Shadow {
            table: Some(tables::seal(
                store,
                table,
                &shadow_prefix,
                run_id,
                shadow_written,
                rubric_rows,
                &schema,
            )?),
            rows: rubric_rows,
            drops: rubric_drops,
        }),
        false => None,
    };
    Ok(Produced {
        table: tables::seal(store, table, &prefix, run_id, written, kept_rows, &schema)?,
        input_rows,
        kept_rows,
        drops,
        repaired,
        quarantine: Some((Table::quarantine(dataset), quarantine_frame(&quarantined))),
        rubric,
        erased_objects,
        pseudonym_key_fingerprint: None,
    })
}

impl lakehouse::lambda::Invocation for Request {
    const EXPECTED: &'static str = "transition request (run_id, policy, transition, inputs) or erase request (run_id, policy, erase, results)";

    fn span(&self) -> tracing::Span {
        match self {
            Request::Transition(r) => r.span(),
            Request::Erase(r) => tracing::info_span!(
                "invocation",
                run_id = %r.run_id,
                transition = "erase",
                policy = %r.policy,
            ),
        }
    }
}
