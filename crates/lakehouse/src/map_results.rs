//! A Distributed Map's results as Step Functions' ResultWriter writes them
//! (Transformation `NONE`, output type JSON): under `<prefix>/<map run id>/`,
//! `manifest.json` names the result files, and each `SUCCEEDED_n.json`,
//! `FAILED_n.json` or `PENDING_n.json` is a JSON array of child executions
//! with their input and, for those that succeeded, their output as a JSON
//! string. A Map Run's results never travel in a state's payload (256 KiB):
//! the step after the Map reads them here.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use zones::contract::PartInfo;
use zones::layout;

use crate::error::{Error, Result};
use crate::store::Store;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Manifest {
    destination_bucket: String,
    map_run_arn: String,
    result_files: ResultFiles,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct ResultFiles {
    #[serde(default)]
    succeeded: Vec<ResultFile>,
    #[serde(default)]
    failed: Vec<ResultFile>,
    #[serde(default)]
    pending: Vec<ResultFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultFile {
    key: String,
    size: u64,
}

/// One child execution as a result file lists it (the fields read here).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Child {
    status: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    output: Option<String>,
    /// ISO 8601 (`2025-02-04T01:49:50.099Z`).
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    stop_date: Option<String>,
}

/// The children of a Map Run that all succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct MapRunResults<T> {
    /// Their outputs, in the order the result files list them.
    pub outputs: Vec<T>,
    /// From the earliest child's start to the latest child's stop, when
    /// the files give both (a redriven Map Run's span includes its first
    /// attempt).
    pub seconds: Option<f64>,
}

/// Checks the part names the children of the Map Run whose ResultWriter
/// manifest is `key` of `bucket` answered with: they come back from S3
/// and are joined to a snapshot prefix, so each must be a part name as
/// `zones::layout` makes them ([`layout::is_part_name`]).
///
/// Errors: [`Error::Damaged`] naming the first other name.
pub fn check_part_names<'p>(
    bucket: &str,
    key: &str,
    parts: impl IntoIterator<Item = &'p PartInfo>,
) -> Result<()> {
    match parts.into_iter().find(|p| !layout::is_part_name(&p.name)) {
        Some(part) => Err(Error::Damaged {
            key: format!("s3://{bucket}/{key}"),
            what: format!("a child names the part `{}`", part.name),
        }),
        None => Ok(()),
    }
}

/// The outputs of every child execution of the Map Run whose ResultWriter
/// manifest is the object `key` of `bucket` (`ResultWriterDetails`), in
/// the order the result files list them, each parsed as a `T`, and the
/// Map Run's span.
///
/// Errors: the manifest, or a result file it names, outside the warehouse
/// ([`Error::InvalidKey`]) or missing ([`Error::NotFound`]); a child that
/// failed or never ran, which a Map with tolerated failures lets through
/// ([`Error::MapRunIncomplete`]); a file, or a child's output, that is
/// not what Step Functions writes ([`Error::Damaged`]).
pub fn succeeded_outputs<T: DeserializeOwned>(
    store: &dyn Store,
    bucket: &str,
    key: &str,
) -> Result<MapRunResults<T>> {
    let location = store.bucket_location();
    let store_key = |bucket: &str, key: &str| -> Result<String> {
        location
            .store_key(bucket, key)
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidKey {
                key: format!("s3://{bucket}/{key}"),
                reason: "it is outside the warehouse",
            })
    };
    let manifest_key = store_key(bucket, key)?;
    let manifest: Manifest = parse(store, &manifest_key, &store.get(&manifest_key)?)?;
    let files = &manifest.result_files;
    let count = |files: &[ResultFile]| -> Result<u64> {
        let mut children = 0;
        for file in files {
            let key = store_key(&manifest.destination_bucket, &file.key)?;
            children += parse::<Vec<Child>>(store, &key, &store.get(&key)?)?.len() as u64;
        }
        Ok(children)
    };
    let (failed, pending) = (count(&files.failed)?, count(&files.pending)?);
    if failed + pending > 0 {
        return Err(Error::MapRunIncomplete {
            map_run: manifest.map_run_arn,
            manifest: store.url(&manifest_key),
            failed,
            pending,
        });
    }
    let mut outputs = Vec::new();
    let (mut first_start, mut last_stop) = (u64::MAX, 0);
    for file in &files.succeeded {
        let key = store_key(&manifest.destination_bucket, &file.key)?;
        let bytes = store.get(&key)?;
        let damaged = |what: String| Error::Damaged {
            key: store.url(&key),
            what,
        };
        if bytes.len() as u64 != file.size {
            return Err(damaged(format!(
                "{} bytes, the Map Run's manifest says {}",
                bytes.len(),
                file.size
            )));
        }
        for child in parse::<Vec<Child>>(store, &key, &bytes)? {
            let epoch_ms = |date: &Option<String>| {
                let date = humantime::parse_rfc3339(date.as_deref()?).ok()?;
                let since = date.duration_since(std::time::UNIX_EPOCH).ok()?;
                Some(since.as_millis() as u64)
            };
            first_start = first_start.min(epoch_ms(&child.start_date).unwrap_or(u64::MAX));
            last_stop = last_stop.max(epoch_ms(&child.stop_date).unwrap_or(0));
            let output = match (child.status.as_str(), &child.output) {
                ("SUCCEEDED", Some(output)) => output,
                ("SUCCEEDED", None) => {
                    return Err(damaged(format!(
                        "child execution `{}` has no output (OutputDetails.Included false?)",
                        child.name
                    )));
                }
                (status, _) => {
                    return Err(damaged(format!(
                        "child execution `{}` is listed as {status} in a SUCCEEDED file",
                        child.name
                    )));
                }
            };
            outputs.push(serde_json::from_str(output).map_err(|e| {
                damaged(format!(
                    "the output of child execution `{}` is not what the Map's Task answers: {e}",
                    child.name
                ))
            })?);
        }
    }
    tracing::debug!(
        manifest = manifest_key,
        children = outputs.len(),
        "read a Map Run's results"
    );
    Ok(MapRunResults {
        outputs,
        seconds: (first_start <= last_stop).then(|| (last_stop - first_start) as f64 / 1000.0),
    })
}

fn parse<T: DeserializeOwned>(store: &dyn Store, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Damaged {
        key: store.url(key),
        what: format!("not a Distributed Map result file as Step Functions writes it: {e}"),
    })
}
