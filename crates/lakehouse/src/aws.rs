//! What the S3 store, the Glue catalog and the Athena engine share: one SDK
//! configuration from the standard AWS chain (environment, profile, IMDS,
//! `AWS_ENDPOINT_URL` included) and one runtime their synchronous
//! interfaces block on. Throttling and 5xx responses are retried by the SDK's
//! standard retry strategy (exponential backoff with jitter); what is left
//! after that becomes an [`Error::Aws`] naming the service, call and target.
//! Every client speaks through one HTTPS client, hyper with rustls on ring
//! (the crypto Polars' cloud code links anyway; the SDKs' default client
//! would add aws-lc).

use std::future::Future;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use crate::error::{Error, Result};

/// Attempts per SDK call, the first included.
pub const MAX_ATTEMPTS: u32 = 5;

/// Error codes that mean "slow down", whatever their HTTP status.
const THROTTLING: [&str; 5] = [
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
];

pub struct Aws {
    /// `None` only while dropping (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    pub config: aws_config::SdkConfig,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("region", &self.config.region())
            .field("endpoint_url", &self.config.endpoint_url())
            .finish()
    }
}

impl Aws {
    /// Loads the configuration from the standard chain.
    pub fn from_env() -> Result<Arc<Aws>> {
        Aws::with_loader(aws_config::defaults(BehaviorVersion::latest()))
    }

    /// Loads the configuration `loader` describes (tests name an endpoint
    /// and credentials here), with the standard retry strategy and the
    /// HTTPS client of rustls on ring.
    pub fn with_loader(loader: aws_config::ConfigLoader) -> Result<Arc<Aws>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stedi-aws")
            .enable_all()
            .build()
            .map_err(Error::io("starting the AWS runtime", "tokio"))?;
        let config = runtime.block_on(
            loader
                .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
                .http_client(
                    aws_smithy_http_client::Builder::new()
                        .tls_provider(Provider::Rustls(CryptoMode::Ring))
                        .build_https(),
                )
                .load(),
        );
        Ok(Arc::new(Aws {
            runtime: Some(runtime),
            config,
        }))
    }

    /// Runs `future` to completion from synchronous code (never from inside
    /// an async task; the Lambda handlers run on a blocking thread).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime().block_on(future)
    }

    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(future)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }
}

impl Drop for Aws {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime
        // (the Lambda runtime owns the handler that owns us).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Turns an SDK error into an [`Error::Aws`], classified as transient when
/// retrying later may succeed (timeouts, connection failures, 5xx, throttling).
pub fn sdk_error<E>(
    service: &'static str,
    op: &'static str,
    target: impl Into<String>,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let target = target.into();
    move |err| {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_string);
        let transient = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            _ => {
                status.is_some_and(|s| s == 429 || s >= 500)
                    || code.as_deref().is_some_and(|c| THROTTLING.contains(&c))
            }
        };
        // The service's own words when it answered; the whole chain when
        // it did not (timeouts, connection errors).
        let message = match (&code, err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            _ => DisplayErrorContext(&err).to_string(),
        };
        let message = match status {
            Some(status) => format!("{message} (HTTP {status})"),
            None => message,
        };
        Error::Aws {
            service,
            op,
            target,
            status,
            code,
            message,
            transient,
        }
    }
}
