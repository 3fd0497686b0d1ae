//! The local runner: executes statemachine.asl.json with its Task resources
//! resolved to the in-process handlers, the same `run` functions the Lambdas serve.

use std::path::Path;

use lakehouse::{Env, runs};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use zones::{ErrorName, Policy, RunId, TaskError};

use crate::asl::{Event, Failure, Interpreter, Invoker};

/// The definition the runner executes, compiled in from the repository root.
pub const DEFINITION: &str = include_str!("../../../statemachine.asl.json");

/// Each `${...}` substitution of the definition and the Lambda crate serving it.
pub const RESOURCES: [(&str, &str); 3] = [
    ("${LandingToTrustedFunctionArn}", "landing-to-trusted"),
    ("${TrustedToCuratedFunctionArn}", "trusted-to-curated"),
    ("${QualityGateFunctionArn}", "quality-gate"),
];

/// Resolves Task resources to in-process handlers.
pub struct LocalInvoker<'e> {
    pub env: &'e Env,
    /// Where to save each request as `<function>/<transition>.json`, the
    /// events `cargo lambda invoke --data-file` sends to a function.
    pub save_requests: Option<&'e Path>,
}

impl Invoker for LocalInvoker<'_> {
    fn invoke(&self, resource: &str, input: Value) -> Result<Value, Failure> {
        if let Some(dir) = self.save_requests {
            save_request(dir, resource, &input).map_err(|e| Failure {
                error: "States.Runtime".into(),
                cause: format!("saving the request of {resource}: {e}"),
            })?;
        }
        match resource {
            "${LandingToTrustedFunctionArn}" => call(self.env, landing_to_trusted::run, input),
            "${TrustedToCuratedFunctionArn}" => call(self.env, trusted_to_curated::run, input),
            "${QualityGateFunctionArn}" => call(self.env, quality_gate::run, input),
            other => Err(Failure {
                error: "States.Runtime".into(),
                cause: format!("the local runner has no handler for resource `{other}`"),
            }),
        }
    }
}

fn save_request(dir: &Path, resource: &str, input: &Value) -> std::io::Result<()> {
    let function = RESOURCES
        .iter()
        .find(|(r, _)| *r == resource)
        .map_or("unknown", |(_, f)| f);
    let name = input["transition"].as_str().unwrap_or("request");
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
    match handler(env, &request) {
        Ok(response) => Ok(serde_json::to_value(response).expect("responses serialize")),
        Err(e) => Err(Failure {
            error: e.name.as_str().into(),
            cause: e.cause,
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
pub fn run(
    env: &Env,
    definition: &Value,
    run_id: &RunId,
    policy: Policy,
    observer: &dyn Fn(&Event),
    save_requests: Option<&Path>,
) -> Result<Value, Failure> {
    let invoker = LocalInvoker { env, save_requests };
    // As on AWS: the run id is the execution's name, the input names the policy.
    let input = json!({ "policy": policy });
    let interpreter = Interpreter::new(&invoker, observer).with_execution(run_id, &input);
    let result = interpreter.execute(definition, input);
    if let Err(failure) = &result
        && [ErrorName::InvalidInput, ErrorName::PublishConflict]
            .iter()
            .any(|n| n.as_str() == failure.error)
        && let Ok(Some(record)) = runs::load(env, run_id)
        && record.finished.is_none()
    {
        let detail = format!("{}: {}", failure.error, failure.cause);
        runs::finish(env, &record, false, &detail).map_err(|e| Failure {
            error: e.name().as_str().into(),
            cause: format!("marking run {run_id} finished after `{detail}`: {e}"),
        })?;
    }
    result
}

/// A fresh run id: the UTC time and a random suffix, e.g. `20261123T095013Z-3fa2`.
pub fn new_run_id() -> RunId {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = now.chars().filter(|c| *c != '-' && *c != ':').collect();
    RunId::parse(&format!("{compact}-{:04x}", fastrand::u16(..)))
        .expect("a time and hex digits make a valid run id")
}
