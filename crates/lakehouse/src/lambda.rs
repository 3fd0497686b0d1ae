//! The shared `main` of the Lambda functions: JSON logs for CloudWatch,
//! configuration parsed once from the environment, errors mapped to the
//! stable names the state machine routes on.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zones::TaskError;

use crate::{Config, Env};

/// Serves `handler` on the Lambda runtime API until the sandbox is recycled.
pub fn serve<Req, Resp>(
    handler: fn(&Env, &Req) -> Result<Resp, TaskError>,
) -> Result<(), lambda_runtime::Error>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time()
        .init();
    // Read once at cold start: STEDI_WAREHOUSE, STEDI_GLUE_DATABASE, STEDI_ATHENA_*.
    let config = Config::from_env()?;
    tracing::info!(?config, "configured");
    let env = Env::open(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| {
            let env = env.clone();
            async move {
                // Parsed here, not by the runtime, so that a request that
                // breaks the contract (an invalid run id, say) is a verdict
                // the state machine routes, not the runtime's own error.
                let request: Req =
                    serde_json::from_value(event.payload).map_err(|e| Diagnostic {
                        error_type: zones::ErrorName::InvalidInput.as_str().into(),
                        error_message: format!(
                            "the request does not match the function's contract: {e}"
                        ),
                    })?;
                tokio::task::spawn_blocking(move || handler(&env, &request))
                    .await
                    .map_err(|e| Diagnostic {
                        error_type: "Stedi.Internal".into(),
                        error_message: e.to_string(),
                    })?
                    .map_err(|e| Diagnostic {
                        error_type: e.name.as_str().into(),
                        error_message: e.cause,
                    })
            }
        },
    )))
}
