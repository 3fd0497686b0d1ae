//! The local runner: executes statemachine.asl.json with its Task resources
//! resolved to the in-process handlers, the same `run` functions the Lambdas serve.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use lakehouse::runs::LeaseHolder;
use lakehouse::{BucketLocation, Env, runs};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use zones::contract::TransitionResult;
use zones::{ErrorName, Policy, RunId, Table, TaskError};

use crate::asl::{
    Event, Failure, Interpreter, Invoker, MapRunCounts, ObjectSummary, Outcome, StateRun, Storage,
};

/// The definition the runner executes, compiled in from the repository root.
pub const DEFINITION: &str = zones::STATE_MACHINE;

/// Each `${...}` substitution of the definition and the Lambda crate serving it.
pub const RESOURCES: [(&str, &str); 3] = [
    ("${LandingToTrustedFunctionArn}", "landing-to-trusted"),
    ("${TrustedToCuratedFunctionArn}", "trusted-to-curated"),
    ("${QualityGateFunctionArn}", "quality-gate"),
];

/// The `${...}` substitutions that say where the warehouse is, for a
/// Distributed Map's ItemReader and ResultWriter: its bucket and its key
/// prefix (ending in `/`, or empty). On AWS the SAM template substitutes
/// the stack's bucket and the prefix of its `STEDI_WAREHOUSE`; the local
/// runner those of the warehouse it runs on (`Store::bucket_location`).
pub const WAREHOUSE_BUCKET: &str = "${WarehouseBucket}";
pub const WAREHOUSE_PREFIX: &str = "${WarehousePrefix}";

/// The Distributed Maps' settings the definition takes as substitutions
/// (made numbers by `States.StringToJson`), with the values the local
/// runner gives them: the SAM template's parameters of the same names and
/// defaults (tests/it/consistency.rs holds the two together).
pub const MAP_SETTINGS: [(&str, &str); 2] = [
    ("${MapMaxConcurrency}", "100"),
    ("${MapItemsPerBatch}", "64"),
];

/// How many children of a Distributed Map the local runner runs at once
/// (see [`run`]).
pub const LOCAL_MAP_WORKERS: usize = 1;

/// The definition with the warehouse's bucket and prefix in place of
/// [`WAREHOUSE_BUCKET`] and [`WAREHOUSE_PREFIX`], and the [`MAP_SETTINGS`],
/// as SAM's DefinitionSubstitutions place them on AWS.
pub fn substitute(warehouse: &BucketLocation, definition: &Value) -> Value {
    match definition {
        Value::String(text) => Value::String(
            MAP_SETTINGS.iter().fold(
                text.replace(WAREHOUSE_BUCKET, &warehouse.bucket)
                    .replace(WAREHOUSE_PREFIX, &warehouse.prefix),
                |text, (name, value)| text.replace(name, value),
            ),
        ),
        Value::Array(values) => values.iter().map(|v| substitute(warehouse, v)).collect(),
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| (k.clone(), substitute(warehouse, v)))
            .collect(),
        other => other.clone(),
    }
}

/// Resolves Task resources to in-process handlers, and S3 reads and writes
/// to the run's warehouse.
pub struct LocalInvoker<'e> {
    pub env: &'e Env,
    pub run_id: &'e RunId,
    /// The warehouse as the Map states' S3 calls name it (`Store::bucket_location`).
    pub warehouse: BucketLocation,
    /// Where to save each request as `<function>/<transition>.json`, the
    /// events `cargo lambda invoke --data-file` sends to a function.
    pub save_requests: Option<&'e Path>,
    /// The transitions' results so far (the page of a run that fails before
    /// the gate draws them).
    pub results: Mutex<BTreeMap<Table, TransitionResult>>,
}

impl Invoker for LocalInvoker<'_> {
    fn invoke(&self, resource: &str, input: Value) -> Result<Value, Failure> {
        if let Some(dir) = self.save_requests {
            save_request(dir, resource, &input).map_err(|e| Failure {
                error: "States.Runtime".into(),
                cause: format!("saving the request of {resource}: {e}"),
            })?;
        }
        let output = match resource {
            "${LandingToTrustedFunctionArn}" => call(self.env, landing_to_trusted::handle, input),
            "${TrustedToCuratedFunctionArn}" => call(self.env, trusted_to_curated::handle, input),
            "${QualityGateFunctionArn}" => call(self.env, quality_gate::handle, input),
            other => Err(Failure {
                error: "States.Runtime".into(),
                cause: format!("the local runner has no handler for resource `{other}`"),
            }),
        }?;
        if let Ok(result) = serde_json::from_value::<TransitionResult>(output.clone()) {
            self.results
                .lock()
                .expect("not poisoned")
                .insert(result.transition, result);
        }
        Ok(output)
    }
}

/// The store key of the S3 object `bucket`/`key`; objects outside the
/// warehouse are refused.
fn store_key<'k>(
    warehouse: &BucketLocation,
    bucket: &str,
    key: &'k str,
) -> Result<&'k str, Failure> {
    warehouse.store_key(bucket, key).ok_or_else(|| Failure {
        error: "States.Runtime".into(),
        cause: format!(
            "s3://{bucket}/{key} is outside the warehouse (s3://{}/{}), the only bucket the local runner has",
            warehouse.bucket, warehouse.prefix
        ),
    })
}

fn store_failure(e: lakehouse::Error) -> Failure {
    Failure {
        error: e.name().as_str().into(),
        cause: e.to_string(),
    }
}

impl Storage for LocalInvoker<'_> {
    fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectSummary>, Failure> {
        let listed = self
            .env
            .store
            .list(store_key(&self.warehouse, bucket, prefix)?)
            .map_err(store_failure)?;
        Ok(listed
            .into_iter()
            .map(|o| ObjectSummary {
                key: self.warehouse.bucket_key(&o.key),
                size: o.size,
                etag: o.etag,
                last_modified_ms: o.modified_ms,
            })
            .collect())
    }

    fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, Failure> {
        let key = store_key(&self.warehouse, bucket, key)?;
        self.env.store.get(key).map_err(store_failure)
    }

    fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), Failure> {
        let key = store_key(&self.warehouse, bucket, key)?;
        self.env.store.put(key, bytes).map_err(store_failure)
    }

    fn map_run_record(&self, map_run_id: &str) -> Result<Option<Vec<u8>>, Failure> {
        let key = zones::layout::map_run_record_key(self.run_id, map_run_id);
        match self.env.store.get(&key) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(lakehouse::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_failure(e)),
        }
    }

    fn save_map_run_record(&self, map_run_id: &str, bytes: &[u8]) -> Result<(), Failure> {
        let key = zones::layout::map_run_record_key(self.run_id, map_run_id);
        self.env.store.put(&key, bytes).map_err(store_failure)
    }
}

fn save_request(dir: &Path, resource: &str, input: &Value) -> std::io::Result<()> {
    let function = RESOURCES
        .iter()
        .find(|(r, _)| *r == resource)
        .map_or("unknown", |(_, f)| f);
    // A Map child's batch and the reduce after the Map are named apart
    // from the transition they serve (the last child's batch is kept).
    let name = match (
        input["transition"].as_str(),
        &input["BatchInput"]["transition"],
    ) {
        (Some(transition), _) if input.get("map_run").is_some() => format!("{transition}.reduce"),
        (Some(transition), _) => transition.to_string(),
        (None, Value::String(transition)) => format!("{transition}.batch"),
        (None, _) if input.get("vacuum").is_some() => "vacuum".into(),
        (None, _) => "request".into(),
    };
    let dir = dir.join(function);
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::to_string_pretty(input).expect("values serialize");
    std::fs::write(dir.join(format!("{name}.json")), text + "\n")
}

fn call<Req: DeserializeOwned, Resp: Serialize>(
    env: &Env,
    handler: fn(&Env, &Req) -> Result<Resp, TaskError>,
    input: Value,
) -> Result<Value, Failure> {
    let request: Req = serde_json::from_value(input).map_err(|e| Failure {
        error: zones::ErrorName::InvalidInput.as_str().into(),
        cause: format!("the request does not match the handler's contract: {e}"),
    })?;
    // A handler that panics hit a bug of ours: the Task fails with
    // `Stedi.Internal`, as `lakehouse::lambda` answers on AWS, and the run
    // (a Map's other children, the run's page) goes on to its end.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(env, &request)));
    match outcome {
        Ok(Ok(response)) => Ok(serde_json::to_value(response).expect("responses serialize")),
        Ok(Err(e)) => Err(Failure {
            error: e.name.as_str().into(),
            cause: e.cause,
        }),
        Err(panic) => Err(Failure {
            error: zones::ErrorName::Internal.as_str().into(),
            cause: format!(
                "the handler panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            ),
        }),
    }
}

/// Executes `definition` for one run and returns the execution's output.
///
/// Every state checks the run's record first (`lakehouse::runs`): a run id
/// that finished, or that the catalog points at, is refused; one that was
/// cut off (a killed process, a failure a retry may fix) resumes, writing its
/// own keys again. A run that ends on a verdict about its data is marked
/// finished here (the gate marks its own verdicts).
///
/// Whatever the outcome, the run's page (`_runs/<run id>/report.html`) is then
/// written again with every state's outcome and seconds.
pub fn run(
    env: &Env,
    definition: &Value,
    run_id: &RunId,
    policy: Policy,
    observer: &(dyn Fn(&Event) + Sync),
    save_requests: Option<&Path>,
) -> Result<Value, Failure> {
    let invoker = LocalInvoker {
        env,
        run_id,
        warehouse: env.store.bucket_location(),
        save_requests,
        results: Mutex::default(),
    };
    // As on AWS: the run id is the execution's name, the input names the policy.
    let input = json!({ "policy": policy });
    // A run id that already finished is refused at its first state: its page
    // stays the one of the run that finished.
    let finished_before =
        matches!(runs::load(env.store.as_ref(), run_id), Ok(Some(r)) if r.finished.is_some());
    let started = std::time::Instant::now();
    let mut interpreter = Interpreter::new(&invoker, observer)
        .with_execution(run_id, &input)
        .with_storage(&invoker);
    interpreter.clock = env.clock;
    // A Distributed Map's children run one at a time here: each child
    // judges its batches of objects on every core itself
    // (`lakehouse::map_bounded`), as a Lambda does on its own vCPUs, so
    // two at once only hold twice the batches (at 50x, 4 children of 16
    // objects: peak 322 MiB two at a time, 291 MiB one at a time, the
    // same seconds).
    interpreter.workers = LOCAL_MAP_WORKERS;
    let result = interpreter.execute(&substitute(&invoker.warehouse, definition), input);
    if let Err(failure) = &result
        && [ErrorName::InvalidInput, ErrorName::PublishConflict]
            .iter()
            .any(|n| n.as_str() == failure.error)
        && let Ok(Some(record)) = runs::load(env.store.as_ref(), run_id)
        && record.finished.is_none()
    {
        let detail = format!("{}: {}", failure.error, failure.cause);
        runs::finish(env, &record, false, &detail).map_err(|e| Failure {
            error: e.name().as_str().into(),
            cause: format!("marking run {run_id} finished after `{detail}`: {e}"),
        })?;
    }
    // Whatever the outcome, the run's page again, with every state's outcome.
    let results = std::mem::take(&mut *invoker.results.lock().expect("not poisoned"));
    let run = RunSeen {
        run_id,
        policy,
        definition,
        timeline: &interpreter.timeline(),
        map_runs: &interpreter.map_run_counts(),
        results: &results,
        failure: result.as_ref().err(),
        seconds: started.elapsed().as_secs_f64(),
        written_by: "stedi run",
    };
    if finished_before {
        return result;
    }
    if let Err(e) = write_page(env, &run) {
        tracing::warn!(%run_id, error = %e, "could not write the run's page");
    }
    result
}

/// What a runner saw of one execution, for its page.
#[derive(Debug)]
pub struct RunSeen<'a> {
    pub run_id: &'a RunId,
    pub policy: Policy,
    pub definition: &'a Value,
    pub timeline: &'a [StateRun],
    /// Each Distributed Map state's items, by state name.
    pub map_runs: &'a BTreeMap<String, MapRunCounts>,
    pub results: &'a BTreeMap<Table, TransitionResult>,
    pub failure: Option<&'a Failure>,
    pub seconds: f64,
    pub written_by: &'a str,
}

/// Writes the run's page with every state's outcome: the gate's report.json
/// and facts when the gate ran in this execution, else what the runner saw.
pub fn write_page(env: &Env, run: &RunSeen) -> anyhow::Result<String> {
    use quality_gate::page;
    use report_html::{MapItems, RunFailure, StateRecord, StateStatus};
    let store = env.store.as_ref();
    let gate = page::gate_state(run.definition);
    let gate_ran = run.timeline.iter().any(|s| Some(&s.name) == gate.as_ref());
    let (report, facts) = if gate_ran {
        page::load(store, run.run_id)?
    } else {
        (None, None)
    };
    let definition_text = run.definition.to_string();
    let mut facts = match facts {
        Some(facts) => facts,
        None => page::gather(
            store,
            run.run_id,
            run.policy,
            run.results,
            run.written_by,
            &definition_text,
        ),
    };
    facts.written_by = run.written_by.to_string();
    facts.written_at = Some(page::now());
    facts.seconds = Some(run.seconds);
    if facts.results.is_empty() {
        facts.results = run.results.clone();
    }
    facts.states = run
        .timeline
        .iter()
        .map(|s| {
            let (status, failure) = match &s.outcome {
                Outcome::Succeeded => (StateStatus::Succeeded, None),
                Outcome::Failed(f) => (StateStatus::Failed, Some(f)),
                Outcome::Caught(f) => (StateStatus::Caught, Some(f)),
            };
            StateRecord {
                name: s.name.clone(),
                status,
                started: Some(s.started.as_secs_f64()),
                seconds: s.seconds,
                retries: s.retries,
                error: failure.map(|f| f.error.clone()),
                cause: failure.map(|f| f.cause.clone()),
                items: run.map_runs.get(&s.name).map(|c| MapItems {
                    total: c.total as u64,
                    succeeded: c.succeeded as u64,
                    failed: c.failed as u64,
                }),
            }
        })
        .collect();
    // The state whose error ended the run: the one a Catch routed, else the
    // last state that failed.
    facts.failure = run.failure.map(|f| {
        let origin = run
            .timeline
            .iter()
            .rev()
            .find(|s| matches!(&s.outcome, Outcome::Caught(c) if c.error == f.error))
            .or_else(|| {
                run.timeline
                    .iter()
                    .rev()
                    .find(|s| matches!(s.outcome, Outcome::Failed(_)))
            });
        RunFailure {
            state: origin.map(|s| s.name.clone()),
            error: f.error.clone(),
            cause: f.cause.clone(),
        }
    });
    Ok(page::write(store, report.as_ref(), &facts, run.definition)?)
}

/// A fresh run id: the UTC time `now_ms` (epoch milliseconds) and a random
/// suffix, e.g. `20261123T095013Z-3fa2`.
pub fn new_run_id(now_ms: u64) -> RunId {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms);
    let now = humantime::format_rfc3339_seconds(time).to_string();
    let compact: String = now.chars().filter(|c| *c != '-' && *c != ':').collect();
    RunId::parse(&format!("{compact}-{:04x}", fastrand::u16(..)))
        .expect("a time and hex digits make a valid run id")
}

/// The local runner's claim on a run id while it executes it,
/// `_runs/<run id>/lease.json` (process id, host, boot), created only if
/// absent and removed when dropped. Step Functions never runs two executions
/// of one name; this keeps a second `stedi run --run-id X` from writing into
/// the snapshots of an `X` that is still running. A lease whose process is
/// gone (same host and boot, no such process) was left by a crash, and is
/// broken.
#[derive(Debug)]
pub struct Lease<'e> {
    env: &'e Env,
    key: String,
}

impl<'e> Lease<'e> {
    pub fn take(env: &'e Env, run_id: &RunId) -> anyhow::Result<Lease<'e>> {
        let key = zones::layout::run_lease_key(run_id);
        let me = LeaseHolder::me();
        let bytes = serde_json::to_vec_pretty(&me).expect("holders serialize");
        for _ in 0..2 {
            if env.store.put_if_absent(&key, &bytes)? {
                return Ok(Lease { env, key });
            }
            let holder: Option<LeaseHolder> = env
                .store
                .get(&key)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match holder {
                Some(h) if h.is_gone(&me) => {
                    tracing::warn!(%run_id, pid = h.pid, "breaking the lease of a process that is gone");
                    env.store.delete(&key)?;
                }
                Some(h) => anyhow::bail!(
                    "run {run_id} is being run by process {} on {} since {}; wait for it, or delete {} if it is gone",
                    h.pid,
                    h.host,
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(h.started_at_ms)
                    ),
                    env.store.url(&key)
                ),
                None => anyhow::bail!(
                    "run {run_id} has a lease {} that is not readable; delete it if no process is running the run",
                    env.store.url(&key)
                ),
            }
        }
        anyhow::bail!(
            "run {run_id}: could not take its lease {}",
            env.store.url(&key)
        )
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.env.store.delete(&self.key) {
            tracing::warn!(key = self.key, error = %e, "could not release the run's lease");
        }
    }
}
