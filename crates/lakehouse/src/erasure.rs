//! Erasure on request, the storage side (the rules are `zones::erasure`):
//! the request log `_erasure/requests/`, the erasure a run applies, and
//! the Erase state's work after a publish, modelled on
//! awslabs/amazon-s3-find-and-forget: find (the transitions name the
//! landing objects that held erased records), forget (rewrite each object
//! without them, only if it is still the version read; then delete its
//! older versions), remove at once every older snapshot that holds the
//! person, and verify by searching every object of the warehouse.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use polars::prelude::*;
use zones::erasure::{
    Completed, Erasure, ErasureReport, ErasureRequest, Failed, RewrittenObject, Verification,
    request_id,
};
use zones::{Dataset, RunId, Table, Zone, layout};

use crate::Env;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::tables;

/// How often an object that changed between read and rewrite is read and
/// rewritten again before the Erase state gives up (Stedi.Transient).
const REWRITE_ATTEMPTS: usize = 3;

/// Files a request to erase the people with `emails`: stores their
/// subjects (HMACs under the erasure key, never the addresses) with a
/// new request id and `now_ms`. The next run applies it.
pub fn file(env: &Env, emails: &[String], now_ms: u64) -> Result<ErasureRequest> {
    let key = env.erasure_key_to_file()?;
    let mut subjects: Vec<String> = emails.iter().map(|e| key.subject(e)).collect();
    subjects.sort();
    subjects.dedup();
    let request = ErasureRequest {
        id: request_id(now_ms, &subjects),
        requested_at_ms: now_ms,
        subjects,
        key_fingerprint: Some(key.fingerprint()),
        completed: None,
        failed: None,
    };
    let text = serde_json::to_vec_pretty(&request).expect("requests serialize");
    env.store
        .put_if_absent(&layout::erasure_request_key(&request.id), &text)?;
    Ok(request)
}

/// Every erasure request, oldest first.
pub fn requests(store: &dyn Store) -> Result<Vec<ErasureRequest>> {
    let mut out = Vec::new();
    for object in store.list(layout::erasure_requests_prefix())? {
        if !object.key.ends_with(".json") {
            continue;
        }
        let bytes = store.get(&object.key)?;
        out.push(serde_json::from_slice(&bytes).map_err(|e| Error::Damaged {
            key: store.url(&object.key),
            what: format!("not an erasure request: {e}"),
        })?);
    }
    out.sort_by(|a: &ErasureRequest, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The requests `run_id` applies: those filed before it started (so every
/// state of the run applies the same ones) that no other run completed.
pub fn requests_of_run(env: &Env, run_id: &RunId) -> Result<Vec<ErasureRequest>> {
    let store = env.store.as_ref();
    let started = crate::runs::load(store, run_id)?.map_or(u64::MAX, |r| r.started_at_ms);
    Ok(requests(store)?
        .into_iter()
        .filter(|r| r.requested_at_ms <= started)
        .filter(|r| r.completed.as_ref().is_none_or(|c| &c.run_id == run_id))
        .collect())
}

/// Who `run_id` erases: its requests' subjects, found in customer landing.
/// Reads nothing more (and needs no key) when no request is pending.
pub fn erasure_of_run(env: &Env, run_id: &RunId) -> Result<Arc<Erasure>> {
    erasure_with(env, run_id, |store| {
        Ok(tables::read_landing(store, Dataset::Customer)?.rows)
    })
}

/// [`erasure_of_run`] with the customer landing rows at hand.
pub fn erasure_with(
    env: &Env,
    run_id: &RunId,
    customers: impl FnOnce(&dyn Store) -> Result<DataFrame>,
) -> Result<Arc<Erasure>> {
    let requests = requests_of_run(env, run_id)?;
    if requests.is_empty() {
        return Ok(Arc::new(Erasure::none()));
    }
    let ids: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
    let key = env.erasure_key(&ids)?;
    let now = key.fingerprint();
    let other: Vec<&ErasureRequest> = requests
        .iter()
        .filter(|r| r.key_fingerprint.as_ref().is_some_and(|f| *f != now))
        .collect();
    if let Some(first) = other.first() {
        return Err(Error::ErasureKeyChanged {
            key: env.erasure_key_location(),
            requests: other.iter().map(|r| r.id.clone()).collect(),
            filed_with: first.key_fingerprint.clone().unwrap_or_default(),
            now,
        });
    }
    let customers = customers(env.store.as_ref())?;
    let subjects = requests.into_iter().flat_map(|r| r.subjects);
    Ok(Arc::new(Erasure::new(key, subjects, &customers)?))
}

/// The landing objects of `dataset` that hold erased records, with how many.
pub fn objects_holding(
    store: &dyn Store,
    erasure: &Erasure,
    dataset: Dataset,
) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    if erasure.is_empty() {
        return Ok(out);
    }
    for object in tables::landing_objects(store, dataset)? {
        if object.unreadable.is_some() {
            continue;
        }
        let (_, erased) = erasure.count(dataset, &object.key, &store.get(&object.key)?)?;
        if erased > 0 {
            out.insert(object.key, erased);
        }
    }
    Ok(out)
}

/// The Erase state: rewrites the landing objects the transitions named,
/// deletes their older versions, deletes every snapshot (and run page) of
/// earlier runs that holds an erased person, verifies by searching every
/// object, marks the requests completed and writes
/// `_runs/<run id>/erasure.json`. With no pending request it does nothing
/// and writes nothing.
///
/// Errors: an object that kept changing between read and rewrite
/// ([`Error::ObjectChanged`], Stedi.Transient: the state is retried); an
/// object that cannot be rewritten without touching others' records, or a
/// verification that still finds the person ([`Error::ErasureIncomplete`],
/// Stedi.InvalidInput). Either way the requests stay pending.
pub fn erase(
    env: &Env,
    run_id: &RunId,
    results: &BTreeMap<Table, zones::TransitionResult>,
) -> Result<ErasureReport> {
    let started = Instant::now();
    let store = env.store.as_ref();
    let requests = requests_of_run(env, run_id)?;
    if requests.is_empty() {
        return Ok(ErasureReport {
            run_id: Some(run_id.clone()),
            verification: Verification {
                passed: true,
                ..Verification::default()
            },
            ..ErasureReport::default()
        });
    }
    let erasure = erasure_of_run(env, run_id)?;
    let mut report = ErasureReport {
        run_id: Some(run_id.clone()),
        requests: requests.iter().map(|r| r.id.clone()).collect(),
        ..ErasureReport::default()
    };
    for (table, result) in results {
        if let Some(n) = result.counts.dropped.get(zones::policy::rule::ERASED) {
            report.rows_dropped.insert(table.name().to_string(), *n);
        }
    }
    // An incomplete erasure is reported (erasure.json, and on each request
    // for `stedi erase --status`); any other error is retried as it is.
    let problem = match apply(env, run_id, results, &erasure, &mut report) {
        Ok(()) => None,
        Err(Error::ErasureIncomplete { what, .. }) => Some(what),
        Err(e) => return Err(e),
    };
    report.seconds = started.elapsed().as_secs_f64();
    report.problem = problem.clone();
    let text = serde_json::to_vec_pretty(&report).expect("reports serialize");
    store.put(&layout::erasure_report_key(run_id), &text)?;
    let now = crate::runs::now_ms();
    for mut request in requests {
        match &problem {
            None => {
                let found = erasure.found(&request.subjects);
                request.completed.get_or_insert(Completed {
                    run_id: run_id.clone(),
                    at_ms: now,
                    found,
                });
                request.failed = None;
            }
            Some(problem) => {
                request.failed = Some(Failed {
                    run_id: run_id.clone(),
                    at_ms: now,
                    problem: problem.clone(),
                });
            }
        }
        let text = serde_json::to_vec_pretty(&request).expect("requests serialize");
        store.put(&layout::erasure_request_key(&request.id), &text)?;
    }
    if let Some(what) = problem {
        return Err(Error::ErasureIncomplete {
            run_id: run_id.to_string(),
            what,
        });
    }
    tracing::info!(
        requests = report.requests.len(),
        objects_rewritten = report.objects_rewritten.len(),
        snapshots_deleted = report.snapshots_deleted.len(),
        seconds = report.seconds,
        "erasure applied and verified"
    );
    Ok(report)
}

/// The Erase state's work on `report`: forget, delete, verify.
fn apply(
    env: &Env,
    run_id: &RunId,
    results: &BTreeMap<Table, zones::TransitionResult>,
    erasure: &Erasure,
    report: &mut ErasureReport,
) -> Result<()> {
    let store = env.store.as_ref();
    // Forget: readings first, customers last, so a retry after a failure
    // still finds the erased customers' serials in customer landing.
    let mut objects: Vec<(Dataset, &String)> = Vec::new();
    for dataset in [
        Dataset::StepTrainer,
        Dataset::Accelerometer,
        Dataset::Customer,
    ] {
        for result in results.values() {
            for key in result.erased_objects.keys() {
                if key.starts_with(&layout::landing_prefix(dataset)) {
                    objects.push((dataset, key));
                }
            }
        }
    }
    // An object that cannot be rewritten does not hold up the others, nor
    // the deletion of older snapshots: it is reported at the end.
    let mut not_rewritten = Vec::new();
    for (dataset, key) in objects {
        match rewrite_object(store, run_id, erasure, dataset, key) {
            Ok(Some(rewritten)) => {
                *report
                    .landing_records_removed
                    .entry(Table::landing(dataset).name().to_string())
                    .or_default() += rewritten.records_removed;
                report.objects_rewritten.push(rewritten);
            }
            Ok(None) => {}
            Err(Error::ErasureIncomplete { what, .. }) => not_rewritten.push(what),
            Err(e) => return Err(e),
        }
    }

    // Older snapshots: deleted at once, not at the end of a retention window.
    let catalog = env.catalog.load()?;
    let current: HashSet<&str> = catalog
        .tables
        .values()
        .map(|e| e.table.location.as_str())
        .collect();
    // An older training table cannot be searched by the person's
    // customerKey (an HMAC under the pseudonym key, which this function
    // cannot read): once anyone is erased, every older one goes.
    let ml = Table::MachineLearningCurated;
    let training = format!("{}/{}/", ml.dir(), ml.zone().as_str());
    let anyone = !erasure.emails().is_empty();
    for prefix in snapshot_prefixes(store)? {
        if current.contains(prefix.as_str()) {
            continue;
        }
        let objects = store.list(&prefix)?;
        let mut holds_person = anyone && prefix.starts_with(&training);
        for object in objects.iter().filter(|o| o.key.ends_with(".parquet")) {
            if holds_person {
                break;
            }
            let frame = parquet_frame(store, &object.key)?;
            holds_person = erasure.rows_found(&frame)? > 0;
        }
        if holds_person {
            for object in &objects {
                delete_all_versions(store, &object.key)?;
            }
            report.snapshots_deleted.push(prefix);
        }
    }
    // Earlier runs' pages and facts quote quarantine samples: one that
    // names an erased person goes too (its report.json, counts only, stays).
    for object in store.list(layout::runs_prefix())? {
        let derived = object.key.ends_with("/facts.json") || object.key.ends_with("/report.html");
        if derived && erasure.names(&String::from_utf8_lossy(&store.get(&object.key)?)) {
            delete_all_versions(store, &object.key)?;
            report.objects_deleted.push(object.key);
        }
    }

    report.verification = verify(store, erasure)?;
    if !not_rewritten.is_empty() {
        return Err(Error::ErasureIncomplete {
            run_id: run_id.to_string(),
            what: not_rewritten.join("; "),
        });
    }
    if !report.verification.passed {
        return Err(Error::ErasureIncomplete {
            run_id: run_id.to_string(),
            what: format!(
                "a search of the warehouse still finds an erased person in {}",
                report.verification.found_in.join(", ")
            ),
        });
    }
    Ok(())
}

/// Rewrites one landing object without the erased records, only over the
/// version read (retried when it changed), then deletes its older versions.
fn rewrite_object(
    store: &dyn Store,
    run_id: &RunId,
    erasure: &Erasure,
    dataset: Dataset,
    key: &str,
) -> Result<Option<RewrittenObject>> {
    for _ in 0..REWRITE_ATTEMPTS {
        let (bytes, version) = match store.get_versioned(key) {
            Ok(read) => read,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let rewrite =
            erasure
                .rewrite(dataset, key, &bytes)
                .map_err(|e| Error::ErasureIncomplete {
                    run_id: run_id.to_string(),
                    what: format!("landing object {} is not rewritten: {e}", store.url(key)),
                })?;
        let Some(rewrite) = rewrite else {
            return Ok(None);
        };
        if store.put_if_unchanged(key, &rewrite.bytes, &version)? {
            let older_versions_deleted = store.delete_noncurrent_versions(key)?;
            tracing::info!(
                key,
                records = rewrite.records,
                removed = rewrite.erased,
                older_versions_deleted,
                "landing object rewritten without erased records"
            );
            return Ok(Some(RewrittenObject {
                key: key.to_string(),
                records_before: rewrite.records,
                records_removed: rewrite.erased,
                older_versions_deleted,
            }));
        }
        tracing::warn!(
            key,
            "landing object changed between read and rewrite; reading it again"
        );
    }
    Err(Error::ObjectChanged {
        key: store.url(key),
        attempts: REWRITE_ATTEMPTS,
    })
}

/// Deletes an object and every older version of it.
fn delete_all_versions(store: &dyn Store, key: &str) -> Result<()> {
    store.delete(key)?;
    store.delete_noncurrent_versions(key)?;
    Ok(())
}

/// Every snapshot prefix of the warehouse: `<dir>/<zone>/<run id>/` of the
/// produced and quarantine tables, and `_runs/<run id>/rubric/<table>/`.
fn snapshot_prefixes(store: &dyn Store) -> Result<BTreeSet<String>> {
    let mut prefixes = BTreeSet::new();
    for table in Table::ALL {
        if table.zone() == Zone::Landing {
            continue;
        }
        let dir = format!("{}/{}/", table.dir(), table.zone().as_str());
        for object in store.list(&dir)? {
            if let Some((run, _)) = object.key[dir.len()..].split_once('/') {
                prefixes.insert(format!("{dir}{run}/"));
            }
        }
    }
    for object in store.list(layout::runs_prefix())? {
        let segments: Vec<&str> = object.key.split('/').collect();
        if segments.len() > 4 && segments[2] == "rubric" {
            prefixes.insert(format!("{}/", segments[..4].join("/")));
        }
    }
    Ok(prefixes)
}

fn parquet_frame(store: &dyn Store, key: &str) -> Result<DataFrame> {
    let bytes = store.get(key)?;
    ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|source| Error::Read {
            key: key.to_string(),
            source,
        })
}

/// Searches every object of the warehouse but the secrets and the request
/// log for the erased people: Parquet parts read back and searched by
/// column, landing objects parsed and judged, any other object's text
/// searched for their addresses.
pub fn verify(store: &dyn Store, erasure: &Erasure) -> Result<Verification> {
    let mut verification = Verification::default();
    for object in store.list("")? {
        let key = &object.key;
        if key.starts_with("_secrets/") || key.starts_with(layout::erasure_requests_prefix()) {
            continue;
        }
        if object.unreadable.is_some() {
            continue;
        }
        verification.objects_searched += 1;
        let found = if key.ends_with(".parquet") {
            let frame = parquet_frame(store, key)?;
            verification.parquet_rows_read += frame.height() as u64;
            erasure.rows_found(&frame)? > 0
        } else if let Some(dataset) = landing_dataset(key, object.size) {
            let bytes = store.get(key)?;
            erasure.count(dataset, key, &bytes)?.1 > 0
        } else {
            let bytes = store.get(key)?;
            erasure.names(&String::from_utf8_lossy(&bytes))
        };
        if found {
            verification.found_in.push(key.clone());
        }
    }
    verification.passed = verification.found_in.is_empty();
    Ok(verification)
}

/// The dataset whose landing table `key` belongs to, if it is a landing object.
fn landing_dataset(key: &str, size: u64) -> Option<Dataset> {
    Dataset::ALL
        .into_iter()
        .find(|d| layout::landing_object(*d, key, size).is_some())
}
