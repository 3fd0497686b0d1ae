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
#[cfg(feature = "lambda")]
pub mod lambda;
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
pub use query::QueryEngine;
pub use store::{LocalStore, ObjectInfo, Store, Unreadable};
use zones::{PseudonymKey, layout};

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
    /// Where the pseudonym key lives.
    pub key: Arc<KeySource>,
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

/// Where the pseudonym key lives.
#[derive(Debug, Default)]
pub enum KeySource {
    /// `_secrets/pseudonym.key` in the warehouse (owner-only locally),
    /// created by the first run that needs it.
    #[default]
    Warehouse,
    /// An AWS Secrets Manager secret, created by the SAM template.
    #[cfg(feature = "secrets")]
    SecretsManager(secrets::SecretKey),
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
            })),
            #[cfg(not(feature = "sql"))]
            query: None,
            store,
            clock: Clock::System,
            key: Arc::default(),
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
            {
                return Err(Error::Config {
                    setting: "STEDI_GLUE_DATABASE / STEDI_ATHENA_WORKGROUP / STEDI_PSEUDONYM_SECRET",
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
        let env = match &config.pseudonym_secret {
            None => env,
            #[cfg(feature = "secrets")]
            Some(secret) => Env {
                key: Arc::new(KeySource::SecretsManager(secrets::SecretKey::new(
                    aws.clone(),
                    secret,
                ))),
                ..env
            },
            #[cfg(not(feature = "secrets"))]
            Some(secret) => return Err(not_built("STEDI_PSEUDONYM_SECRET", secret, "secrets")),
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

    /// The warehouse's pseudonym key, created on first use. Once a strict
    /// training table with pseudonyms is published, a missing key is an
    /// error, never silently replaced: every `customerKey` would change.
    pub fn pseudonym_key(&self) -> Result<PseudonymKey> {
        let store = self.store.as_ref();
        #[cfg(feature = "secrets")]
        if let KeySource::SecretsManager(secret) = self.key.as_ref() {
            // The stack creates the secret: gone is an error whether or not
            // pseudonyms were published, and the function cannot create one.
            return match secret.get()? {
                Some(bytes) => checked_key(secret.secret_id(), bytes),
                None => Err(Error::KeyGone {
                    key: format!("Secrets Manager secret {}", secret.secret_id()),
                    run_id: self
                        .published_keyed_run()?
                        .unwrap_or_else(|| "none yet".into()),
                }),
            };
        }
        if let Err(Error::NotFound { .. }) = store.get(layout::pseudonym_key_key()) {
            let published = self.catalog.load()?;
            if let Some(entry) = published.get(zones::Table::MachineLearningCurated)
                && entry.policy == Some(zones::Policy::Strict)
            {
                return Err(Error::KeyGone {
                    key: store.url(layout::pseudonym_key_key()),
                    run_id: entry.run_id.clone().unwrap_or_default(),
                });
            }
        }
        load_or_create_key(store)
    }

    /// The run whose strict training table (keyed with pseudonyms) the
    /// catalog points at, if any.
    #[cfg(feature = "secrets")]
    fn published_keyed_run(&self) -> Result<Option<String>> {
        let published = self.catalog.load()?;
        Ok(published
            .get(zones::Table::MachineLearningCurated)
            .filter(|e| e.policy == Some(zones::Policy::Strict))
            .and_then(|e| e.run_id.clone()))
    }
}

/// A key read from `location`, refused if shorter than [`MIN_KEY_BYTES`].
fn checked_key(location: &str, bytes: Vec<u8>) -> Result<PseudonymKey> {
    if bytes.len() < MIN_KEY_BYTES {
        return Err(Error::Damaged {
            key: location.to_string(),
            what: format!(
                "the pseudonym key is {} bytes, fewer than {MIN_KEY_BYTES}: anyone could recompute the pseudonyms; restore the key",
                bytes.len()
            ),
        });
    }
    Ok(PseudonymKey::new(&bytes))
}

/// A setting that asks for a service this build leaves out (a Lambda
/// function links only the AWS SDKs it uses).
#[cfg(not(all(
    feature = "s3",
    feature = "glue",
    feature = "athena",
    feature = "secrets"
)))]
fn not_built(setting: &'static str, value: &str, feature: &str) -> Error {
    Error::Config {
        setting,
        problem: format!(
            "is `{value}`, but this build has no {feature} support (lakehouse feature `{feature}`)"
        ),
    }
}

/// The shortest pseudonym key accepted: 32 bytes, HMAC-SHA-256's block of security.
pub const MIN_KEY_BYTES: usize = 32;

/// Reads the warehouse's pseudonym key, creating a random 32-byte one first
/// if absent (atomically with its content: never an empty key). A key shorter
/// than [`MIN_KEY_BYTES`] is refused, never used.
pub fn load_or_create_key(store: &dyn Store) -> Result<PseudonymKey> {
    let key = layout::pseudonym_key_key();
    let checked = |bytes: Vec<u8>| checked_key(&store.url(key), bytes);
    match store.get(key) {
        Ok(bytes) => return checked(bytes),
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(Error::NoRandomness)?;
    // put_if_absent: two first runs racing agree on one key.
    store.put_if_absent(key, &secret)?;
    checked(store.get(key)?)
}

/// Rotates the pseudonym key: a new random 32-byte key replaces the
/// warehouse's now (locally `_secrets/pseudonym.key`, owner-only). The next
/// run keys machine_learning_curated with it, and its report names the old
/// fingerprint as `rotated_from`. Returns the old key's fingerprint (None if
/// there was no key) and the new one's. The only way to a new key once
/// pseudonyms were published: a missing key is refused ([`Error::KeyGone`]).
///
/// Errors: [`Error::ErasurePending`] while erasure requests wait (they are
/// HMACs under the current key: after a rotation nothing would match them).
pub fn rotate_key(env: &Env, now_ms: u64) -> Result<(Option<String>, String)> {
    let store = env.store.as_ref();
    let key = layout::pseudonym_key_key();
    let pending: Vec<String> = erasure::requests(store)?
        .into_iter()
        .filter(|r| r.completed.is_none())
        .map(|r| r.id)
        .collect();
    if !pending.is_empty() {
        return Err(Error::ErasurePending { requests: pending });
    }
    #[cfg(feature = "secrets")]
    if let KeySource::SecretsManager(secret) = env.key.as_ref() {
        let old = secret.get()?.map(|b| PseudonymKey::new(&b).fingerprint());
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(Error::NoRandomness)?;
        secret.put(&bytes)?;
        let new = PseudonymKey::new(&bytes).fingerprint();
        tracing::info!(old = old.as_deref(), new = %new, now_ms, "pseudonym key rotated in Secrets Manager");
        return Ok((old, new));
    }
    let old = match store.get(key) {
        Ok(bytes) => Some(PseudonymKey::new(&bytes).fingerprint()),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(Error::NoRandomness)?;
    store.put(key, &secret)?;
    let new = PseudonymKey::new(&secret).fingerprint();
    tracing::info!(old = old.as_deref(), new = %new, now_ms, "pseudonym key rotated");
    Ok((old, new))
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
