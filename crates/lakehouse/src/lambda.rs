//! The shared `main` of the Lambda functions: logs as the Lambda console's
//! logging settings ask (`AWS_LAMBDA_LOG_LEVEL`, `AWS_LAMBDA_LOG_FORMAT`,
//! through the runtime's own subscriber), configuration parsed once at cold
//! start (a bad one is posted to the Runtime API's `/runtime/init/error` and
//! the process exits), one span per invocation carrying the run id, the
//! transition and the policy, and errors mapped to the stable names the
//! state machine routes on.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zones::contract::{GateFunctionRequest, GateRequest, TransitionRequest};
use zones::{ErrorName, TaskError};

use crate::{Config, Env, Error};

/// What a function is invoked with: it names the span of the invocation.
pub trait Invocation: DeserializeOwned + Send + 'static {
    /// The request's type, for the error when the payload is not one.
    const EXPECTED: &'static str;

    /// The span every line of the invocation is logged in.
    fn span(&self) -> tracing::Span;
}

impl Invocation for TransitionRequest {
    const EXPECTED: &'static str = "transition request (run_id, policy, transition, inputs)";

    fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "invocation",
            run_id = %self.run_id,
            transition = %self.transition,
            policy = %self.policy,
        )
    }
}

impl Invocation for GateRequest {
    const EXPECTED: &'static str = "quality gate request (run_id, policy, results)";

    fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "invocation",
            run_id = %self.run_id,
            transition = "quality_gate",
            policy = %self.policy,
        )
    }
}

impl Invocation for GateFunctionRequest {
    const EXPECTED: &'static str = "quality gate request (run_id, policy, results) or vacuum request (vacuum: retain_ms, keep_runs, dry_run, force)";

    fn span(&self) -> tracing::Span {
        match self {
            GateFunctionRequest::Gate(gate) => gate.span(),
            GateFunctionRequest::Vacuum(vacuum) => tracing::info_span!(
                "invocation",
                run_id = vacuum.run_id.as_ref().map_or("", |r| r.as_str()),
                transition = "vacuum",
            ),
        }
    }
}

/// Serves `handler` on the Lambda Runtime API until the sandbox is recycled.
/// Returns only when the cold start fails (after reporting it) or the
/// Runtime API connection does.
pub fn serve<Req, Resp>(
    handler: fn(&Env, &Req) -> Result<Resp, TaskError>,
) -> Result<(), lambda_runtime::Error>
where
    Req: Invocation,
    Resp: Serialize + Send + 'static,
{
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Read once at cold start: STEDI_WAREHOUSE, STEDI_GLUE_DATABASE, STEDI_ATHENA_*.
    let env = match Config::from_env().and_then(|config| {
        tracing::info!(?config, "configured");
        Env::open(&config)
    }) {
        Ok(env) => env,
        Err(e) => {
            tracing::error!(error = %e, error_type = %e.name(), "cold start failed");
            if let Err(post) = runtime.block_on(report_init_error(&e)) {
                tracing::error!(error = %post, "could not report the init error");
            }
            return Err(e.into());
        }
    };
    runtime.block_on(lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| {
            let env = env.clone();
            async move {
                let request: Req = serde_json::from_value(event.payload).map_err(|source| {
                    diagnostic(
                        Error::Request {
                            expected: Req::EXPECTED,
                            source,
                        }
                        .into(),
                    )
                })?;
                let span = request.span();
                let done = tokio::task::spawn_blocking(move || {
                    span.in_scope(|| {
                        let outcome = handler(&env, &request);
                        if let Err(e) = &outcome {
                            match e.name {
                                ErrorName::Internal => {
                                    tracing::error!(error_type = %e.name, cause = %e.cause, "invocation failed")
                                }
                                _ => {
                                    tracing::warn!(error_type = %e.name, cause = %e.cause, "invocation failed")
                                }
                            }
                        }
                        outcome
                    })
                })
                .await;
                respond(done)
            }
        },
    )))
}

/// Logs to stdout as lambda_runtime's `init_default_subscriber` does: the
/// level from `AWS_LAMBDA_LOG_LEVEL` (the console's application log level),
/// else `RUST_LOG`, else INFO, with `RUST_LOG`'s per-target directives on
/// top; JSON lines when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, text otherwise.
/// Unlike it, text has no colour codes (CloudWatch shows them raw) and
/// Lambda's FATAL means ERROR (tracing has no FATAL).
fn init_logging() {
    use lambda_runtime::tracing::subscriber::filter::{EnvFilter, LevelFilter};
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG"));
    let level = match level.as_deref().unwrap_or("INFO") {
        l if l.eq_ignore_ascii_case("FATAL") => LevelFilter::ERROR,
        l => l.parse().unwrap_or(LevelFilter::INFO),
    };
    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    let logs = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        );
    if format.eq_ignore_ascii_case("json") {
        logs.json().init()
    } else {
        logs.init()
    }
}

/// The handler's outcome as the Runtime API receives it. A handler that
/// panicked hit a bug of ours: `Stedi.Internal`, which fails the Task.
fn respond<Resp>(
    done: Result<Result<Resp, TaskError>, tokio::task::JoinError>,
) -> Result<Resp, Diagnostic> {
    match done {
        Ok(outcome) => outcome.map_err(diagnostic),
        Err(e) => Err(diagnostic(TaskError {
            name: ErrorName::Internal,
            cause: format!("the handler did not finish: {e}"),
        })),
    }
}

fn diagnostic(e: TaskError) -> Diagnostic {
    Diagnostic {
        error_type: e.name.as_str().into(),
        error_message: e.cause,
    }
}

/// Posts a cold-start failure to `/runtime/init/error`, where Lambda
/// reports it as the failed invocation's error (lambda_runtime 0.14 leaves
/// this to the function). Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`)
/// there is nobody to tell.
async fn report_init_error(e: &Error) -> Result<(), lambda_runtime::Error> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        return Ok(());
    }
    let name = e.name().as_str();
    let body = serde_json::json!({
        "errorType": name,
        "errorMessage": e.to_string(),
        "stackTrace": [],
    });
    let request = lambda_runtime_api_client::build_request()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", name)
        .header("content-type", "application/vnd.aws.lambda.error+json")
        .body(serde_json::to_vec(&body)?.into())?;
    let client = lambda_runtime_api_client::Client::builder().build()?;
    let response = client.call(request).await?;
    if !response.status().is_success() {
        return Err(format!("the Runtime API answered {}", response.status()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicked_handler_fails_the_task_as_internal() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let task = runtime.spawn(async { panic!("a bug") });
        let done: Result<Result<(), TaskError>, _> = runtime.block_on(task);
        let e = respond(done).expect_err("a panic is an error");
        assert_eq!(e.error_type, "Stedi.Internal");
        assert!(e.error_message.contains("panicked"), "{}", e.error_message);
    }

    #[test]
    fn a_task_error_keeps_its_name_and_cause() {
        let done: Result<Result<(), TaskError>, tokio::task::JoinError> = Ok(Err(TaskError {
            name: ErrorName::InvalidInput,
            cause: "no landing data".into(),
        }));
        let e = respond(done).expect_err("an error");
        assert_eq!(
            (e.error_type.as_str(), e.error_message.as_str()),
            ("Stedi.InvalidInput", "no landing data")
        );
    }

    #[test]
    fn a_payload_that_is_no_request_is_invalid_input() {
        let source = serde_json::from_value::<TransitionRequest>(serde_json::json!({"run": 1}))
            .expect_err("not a request");
        let e = diagnostic(
            Error::Request {
                expected: TransitionRequest::EXPECTED,
                source,
            }
            .into(),
        );
        assert_eq!(e.error_type, "Stedi.InvalidInput");
        assert!(e.error_message.contains("run_id"), "{}", e.error_message);
    }
}
