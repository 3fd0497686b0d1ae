//! `lakehouse`: the I/O edge of the STEDI pipeline.
//!
//! A [`Store`] (a local directory standing in for S3), the local catalog
//! (standing in for Glue) with its atomic, version-guarded switch, the query
//! engine (Polars SQL standing in for Athena), Parquet snapshots, and the
//! handler plumbing every Lambda shares.
//!
//! Deliberately absent: business rules (they live in `zones`) and reading
//! the environment (configuration is parsed once by the binaries and passed in).

pub mod catalog;
pub mod error;
pub mod handler;
pub mod lambda;
pub mod query;
pub mod store;
pub mod tables;

use std::sync::Arc;

pub use error::{Error, Result};
pub use store::{LocalStore, Store};
use zones::{PseudonymKey, layout};

/// Everything a handler needs, built once at start-up by a binary.
#[derive(Debug, Clone)]
pub struct Env {
    pub store: Arc<dyn Store>,
    pub key: PseudonymKey,
}

impl Env {
    /// A local warehouse: the directory is the bucket; the pseudonym key is
    /// read from `_secrets/pseudonym.key`, created on first use.
    pub fn local(root: impl Into<std::path::PathBuf>) -> Result<Env> {
        let store: Arc<dyn Store> = Arc::new(LocalStore::new(root));
        let key = load_or_create_key(store.as_ref())?;
        Ok(Env { store, key })
    }
}

/// Reads the warehouse's pseudonym key, creating a random 32-byte one first if absent.
pub fn load_or_create_key(store: &dyn Store) -> Result<PseudonymKey> {
    let key = layout::pseudonym_key_key();
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| Error::InvalidRequest(format!("no randomness for a key: {e}")))?;
    // put_if_absent: two first runs racing agree on one key.
    store.put_if_absent(key, &secret)?;
    Ok(PseudonymKey::new(&store.get(key)?))
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
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
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
