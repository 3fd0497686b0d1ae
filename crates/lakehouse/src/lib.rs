//! `lakehouse`: the I/O edge of the STEDI pipeline.
//!
//! A [`Store`] (a local directory, or S3), a [`Catalog`] (a JSON document in
//! the store, or the Glue Data Catalog) with its atomic, version-guarded
//! publish, a [`QueryEngine`] (Polars SQL, or Athena), Parquet snapshots
//! (written part by part, then sealed), and the Lambda `main` every function
//! shares.
//!
//! Deliberately absent: business rules (they live in `zones`) and reading
//! the environment outside [`Config::from_env`].

// Each AWS service is a feature, so a Lambda function links only the SDKs
// it uses: the transitions `s3`, the quality gate `athena` (with `glue` and
// `s3`), the CLI all of them. `lambda` is the functions' shared `main`.
#[cfg(feature = "athena")]
pub mod athena;
#[cfg(feature = "s3")]
pub mod aws;
pub mod catalog;
pub mod erasure;
pub mod error;
#[cfg(feature = "glue")]
pub mod glue;
pub mod keys;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod map_results;
pub mod query;
pub mod runs;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "secrets")]
pub mod secrets;
pub mod store;
pub mod tables;
pub mod vacuum;

use std::sync::Arc;

pub use catalog::Catalog;
pub use error::{Error, Result};
pub use keys::{KeySource, Keys, MIN_KEY_BYTES, rotate_key};
pub use query::QueryEngine;
pub use store::{BucketLocation, LocalStore, ObjectInfo, Store, Unreadable};

/// Where the warehouse lives and which catalog and query engine serve it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `STEDI_WAREHOUSE`: a directory, or `s3://bucket/prefix`.
    pub warehouse: String,
    /// `STEDI_GLUE_DATABASE`: publish to this Glue database instead of the
    /// catalog document in the warehouse (needs an S3 warehouse).
    pub glue_database: Option<String>,
    /// `STEDI_ATHENA_WORKGROUP`: run queries and checks through Athena in
    /// this workgroup instead of Polars SQL (needs Glue).
    pub athena_workgroup: Option<String>,
    /// `STEDI_ATHENA_OUTPUT`: results location, if the workgroup sets none.
    pub athena_output: Option<String>,
    /// `STEDI_PSEUDONYM_SECRET`: the AWS Secrets Manager secret (id or ARN)
    /// holding the pseudonym key, instead of `_secrets/pseudonym.key` in the
    /// warehouse (lakehouse feature `secrets`).
    pub pseudonym_secret: Option<String>,
    /// `STEDI_ERASURE_SECRET`: the AWS Secrets Manager secret (id or ARN)
    /// holding the erasure key, instead of `_secrets/erasure.key` in the
    /// warehouse (lakehouse feature `secrets`).
    pub erasure_secret: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Config> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Ok(Config {
            warehouse: var("STEDI_WAREHOUSE").ok_or_else(|| Error::Config {
                setting: "STEDI_WAREHOUSE",
                problem: "is not set".into(),
            })?,
            glue_database: var("STEDI_GLUE_DATABASE"),
            athena_workgroup: var("STEDI_ATHENA_WORKGROUP"),
            athena_output: var("STEDI_ATHENA_OUTPUT"),
            pseudonym_secret: var("STEDI_PSEUDONYM_SECRET"),
            erasure_secret: var("STEDI_ERASURE_SECRET"),
        })
    }
}

/// Everything a handler needs, built once at start-up by a binary.
#[derive(Debug, Clone)]
pub struct Env {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<dyn Catalog>,
    /// Absent in a build without a query engine (a transition function:
    /// no `sql` feature, no Athena configured); see [`Env::query`].
    pub query: Option<Arc<dyn QueryEngine>>,
    /// The time runs record and vacuum decides by.
    pub clock: Clock,
    /// Where the pseudonym key and the erasure key live.
    pub keys: Arc<Keys>,
}

/// Where the times of runs and vacuums come from: the system clock, or a
/// fixed instant (`stedi run --as-of`, `stedi vacuum --as-of`, a simulation
/// of days of runs). Epoch milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    System,
    Fixed(u64),
}

impl Clock {
    /// Milliseconds since the epoch, as this clock tells.
    pub fn now_ms(self) -> u64 {
        match self {
            Clock::System => runs::now_ms(),
            Clock::Fixed(ms) => ms,
        }
    }
}

impl Env {
    /// A local warehouse: the directory is the bucket, the catalog a
    /// document in it, Polars SQL the query engine (feature `sql`).
    pub fn local(root: impl Into<std::path::PathBuf>) -> Env {
        Env::with_store(Arc::new(LocalStore::new(root)))
    }

    /// `store` with the catalog document in it and Polars SQL.
    pub fn with_store(store: Arc<dyn Store>) -> Env {
        Env {
            catalog: Arc::new(catalog::LocalCatalog::new(store.clone())),
            #[cfg(feature = "sql")]
            query: Some(Arc::new(query::PolarsSql {
                store: store.clone(),
                streaming: true,
            })),
            #[cfg(not(feature = "sql"))]
            query: None,
            store,
            clock: Clock::System,
            keys: Arc::default(),
        }
    }

    /// This environment with its clock fixed at `now_ms` (epoch milliseconds).
    pub fn at(self, now_ms: u64) -> Env {
        Env {
            clock: Clock::Fixed(now_ms),
            ..self
        }
    }

    /// The query engine: Athena when configured, else Polars SQL.
    ///
    /// Errors: [`Error::Config`] in a build without the `sql` feature and
    /// without Athena configured (a transition function, which never queries).
    pub fn query(&self) -> Result<&dyn QueryEngine> {
        self.query.as_deref().ok_or(Error::Config {
            setting: "STEDI_ATHENA_WORKGROUP",
            problem:
                "is not set, and this build has no local query engine (lakehouse feature `sql`)"
                    .into(),
        })
    }

    pub fn open(config: &Config) -> Result<Env> {
        if !config.warehouse.starts_with("s3://") && config.warehouse.starts_with("s3:") {
            return Err(Error::Config {
                setting: "STEDI_WAREHOUSE",
                problem: format!(
                    "`{}` is neither a directory nor an S3 URL (s3://bucket/prefix)",
                    config.warehouse
                ),
            });
        }
        if !config.warehouse.starts_with("s3://") {
            if config.glue_database.is_some()
                || config.athena_workgroup.is_some()
                || config.pseudonym_secret.is_some()
                || config.erasure_secret.is_some()
            {
                return Err(Error::Config {
                    setting: "STEDI_GLUE_DATABASE / STEDI_ATHENA_WORKGROUP / STEDI_PSEUDONYM_SECRET / STEDI_ERASURE_SECRET",
                    problem: format!("need the warehouse in S3, not `{}`", config.warehouse),
                });
            }
            return Ok(Env::local(&config.warehouse));
        }
        if config.athena_workgroup.is_some() && config.glue_database.is_none() {
            return Err(Error::Config {
                setting: "STEDI_ATHENA_WORKGROUP",
                problem: "needs STEDI_GLUE_DATABASE: Athena reads tables from Glue".into(),
            });
        }
        Env::open_aws(config)
    }

    #[cfg(feature = "s3")]
    fn open_aws(config: &Config) -> Result<Env> {
        let aws = aws::Aws::from_env()?;
        let store: Arc<dyn Store> = Arc::new(s3::S3Store::new(aws.clone(), &config.warehouse)?);
        let env = Env::with_store(store.clone());
        let env = Env {
            keys: Arc::new(Keys::from_config(&aws, config)?),
            ..env
        };
        let env = match &config.glue_database {
            None => env,
            #[cfg(feature = "glue")]
            Some(database) => Env {
                catalog: Arc::new(glue::GlueCatalog::new(
                    aws.clone(),
                    database,
                    &store.url(""),
                )),
                ..env
            },
            #[cfg(not(feature = "glue"))]
            Some(database) => return Err(not_built("STEDI_GLUE_DATABASE", database, "glue")),
        };
        match &config.athena_workgroup {
            None => Ok(env),
            #[cfg(feature = "athena")]
            Some(workgroup) => Ok(Env {
                query: Some(Arc::new(athena::AthenaEngine::new(
                    aws,
                    workgroup,
                    config.athena_output.clone(),
                ))),
                ..env
            }),
            #[cfg(not(feature = "athena"))]
            Some(workgroup) => Err(not_built("STEDI_ATHENA_WORKGROUP", workgroup, "athena")),
        }
    }

    #[cfg(not(feature = "s3"))]
    fn open_aws(config: &Config) -> Result<Env> {
        Err(not_built("STEDI_WAREHOUSE", &config.warehouse, "s3"))
    }
}

/// A setting that asks for a service this build leaves out (a Lambda
/// function links only the AWS SDKs it uses).
#[cfg(not(all(
    feature = "s3",
    feature = "glue",
    feature = "athena",
    feature = "secrets"
)))]
pub(crate) fn not_built(setting: &'static str, value: &str, feature: &str) -> Error {
    Error::Config {
        setting,
        problem: format!(
            "is `{value}`, but this build has no {feature} support (lakehouse feature `{feature}`)"
        ),
    }
}

/// Peak resident set size of this process, in MiB (Linux; None elsewhere).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Maps `f` over `items` on one plain thread per core, starting an item only
/// when a thread is free, so at most that many items are in flight. (A rayon
/// `par_iter` whose items run Polars plans does not bound this: its workers
/// keep stealing new items while they wait on Polars' own thread pool.)
pub fn map_bounded<T: Sync, R: Send, E: Send>(
    items: &[T],
    f: impl Fn(usize, &T) -> std::result::Result<R, E> + Sync,
) -> std::result::Result<Vec<R>, E> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<std::result::Result<R, E>>>> =
        items.iter().map(|_| Mutex::new(None)).collect();
    // The workers log in the caller's span (the invocation's).
    let span = tracing::Span::current();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let _entered = span.enter();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(i, item);
                    *results[i]
                        .lock()
                        .expect("no worker panics while holding it") = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("not poisoned")
                .expect("every item ran")
        })
        .collect()
}
