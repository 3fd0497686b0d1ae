//! The Map state. `ProcessorConfig.Mode` `INLINE` (the default) runs the
//! ItemProcessor over an array of the state's input, and the first failed
//! iteration fails the state. `DISTRIBUTED` runs a Map Run as Step
//! Functions does: items from the input or read from S3 (`ItemReader`:
//! `s3:listObjectsV2`, or `s3:getObject` of a JSON array), `ItemSelector`,
//! `ItemBatcher`, one child execution per item or batch, failures counted
//! against `ToleratedFailureCount`/`ToleratedFailurePercentage` (beyond
//! them the state fails with `States.ExceedToleratedFailureThreshold`), and
//! the results written to S3 in AWS's layout (`ResultWriter`).
//!
//! Locally the children run on at most [`Interpreter::workers`] threads, and
//! MaxConcurrency bounds them further. A Map Run's id follows from the
//! execution's name and the state's name, so an execution run again under
//! the same name (the local runner's resume of a run id) finds what the Map
//! Run's earlier attempt left ([`Storage::map_run_record`]) and re-runs only
//! the children that did not succeed, as a redrive of the Map Run does on
//! AWS; a Retry of the Map state within one execution starts afresh, as a
//! new Map Run does on AWS.
//!
//! Not supported (a definition using them fails with `States.Runtime`):
//! `ItemReader` input types other than the listing and a JSON array (and
//! the other `ReaderConfig` fields: `Transformation`, `ItemsPointer`, CSV's),
//! `ResultWriter.WriterConfig`, JSONata.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Failure, Interpreter, Scope, parameters_with_context, read_path, str_field};

/// Object storage as Step Functions' S3 integrations see it: the
/// ItemReader's ListObjectsV2 and GetObject, the ResultWriter's PutObject,
/// and (locally only) the record a Map Run keeps for its redrive.
/// Failures carry the error a Task would report (`Stedi.Transient`, ...);
/// the Map wraps them in `States.ItemReaderFailed` or
/// `States.ResultWriterFailed`.
pub trait Storage: Sync {
    /// Every object of `bucket` whose key starts with `prefix`, in key order.
    fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectSummary>, Failure>;
    fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, Failure>;
    /// Writes the whole object.
    fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), Failure>;
    /// What the Map Run `map_run_id` saved of its last attempt in an
    /// earlier execution of the same name, if it saved anything.
    fn map_run_record(&self, map_run_id: &str) -> Result<Option<Vec<u8>>, Failure>;
    fn save_map_run_record(&self, map_run_id: &str, bytes: &[u8]) -> Result<(), Failure>;
}

/// One object of a listing, an item of an `s3:listObjectsV2` ItemReader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// The entity tag, quoted as S3 quotes it.
    pub etag: String,
    /// Epoch milliseconds.
    pub last_modified_ms: u64,
}

impl ObjectSummary {
    /// The item Step Functions makes of it: `LastModified` in epoch seconds.
    fn item(&self) -> Value {
        json!({
            "Etag": self.etag,
            "Key": self.key,
            "LastModified": self.last_modified_ms / 1000,
            "Size": self.size,
            "StorageClass": "STANDARD",
        })
    }
}

/// A Map Run's items by state, as DescribeMapRun's `itemCounts` (a batch's
/// child execution counts as its items).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapRunCounts {
    pub total: usize,
    /// Not started yet (or never, once the Map Run failed).
    pub pending: usize,
    pub running: usize,
    /// Succeeded, in this attempt or (redriven) an earlier one.
    pub succeeded: usize,
    pub failed: usize,
}

impl MapRunCounts {
    /// `12/40 items succeeded, 1 failed`: how `stedi run` reports a Map Run,
    /// locally and when following one on AWS.
    pub fn progress(&self) -> String {
        format!(
            "{}/{} items succeeded, {} failed",
            self.succeeded, self.total, self.failed
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapRunStatus {
    Running,
    Succeeded,
    Failed,
}

/// The Map state: items, children, result.
pub(super) fn run(
    interpreter: &Interpreter,
    name: &str,
    state: &Value,
    input: Value,
    scope: &Scope,
) -> Result<Value, Failure> {
    let processor = state
        .get("ItemProcessor")
        .or_else(|| state.get("Iterator"))
        .ok_or_else(|| Failure::runtime(format!("map `{name}` has no ItemProcessor")))?;
    let config = processor.get("ProcessorConfig").unwrap_or(&Value::Null);
    match str_field(config, "Mode").unwrap_or("INLINE") {
        "INLINE" => inline(interpreter, name, state, processor, &input, scope),
        "DISTRIBUTED" => {
            let express = match str_field(config, "ExecutionType") {
                Some("STANDARD") => false,
                Some("EXPRESS") => true,
                other => {
                    return Err(Failure::runtime(format!(
                        "map `{name}`: a DISTRIBUTED ItemProcessor needs ExecutionType STANDARD or EXPRESS, not {other:?}"
                    )));
                }
            };
            let map = DistributedMap::new(interpreter, name, state, &input, scope, express)?;
            map.run(processor, &input)
        }
        other => Err(Failure::runtime(format!(
            "map `{name}`: ProcessorConfig.Mode must be INLINE or DISTRIBUTED, not `{other}`"
        ))),
    }
}

/// Fields only a Distributed Map has.
const DISTRIBUTED_ONLY: [&str; 8] = [
    "ItemReader",
    "ItemBatcher",
    "ResultWriter",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "Label",
];

fn inline(
    interpreter: &Interpreter,
    name: &str,
    state: &Value,
    processor: &Value,
    input: &Value,
    scope: &Scope,
) -> Result<Value, Failure> {
    if let Some(field) = DISTRIBUTED_ONLY.iter().find(|f| state.get(**f).is_some()) {
        return Err(Failure::runtime(format!(
            "map `{name}`: {field} needs ProcessorConfig.Mode DISTRIBUTED"
        )));
    }
    let items = items_at_path(name, state, input)?;
    let inputs = select(state, input, items, scope.context)?;
    let failed = AtomicBool::new(false);
    let outcomes = pool(
        inputs.len(),
        concurrency(name, state, input, interpreter.workers)?,
        |i| {
            let outcome = interpreter.run(processor, inputs[i].clone(), scope);
            if outcome.is_err() {
                failed.store(true, Ordering::SeqCst);
            }
            outcome
        },
        || failed.load(Ordering::SeqCst),
    );
    // Iterations start in index order, so every one left unstarted comes
    // after a failed one: the first failure (by index) fails the state.
    outcomes
        .into_iter()
        .flatten()
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// The array at the state's ItemsPath (default `$`).
fn items_at_path(name: &str, state: &Value, input: &Value) -> Result<Vec<Value>, Failure> {
    let path = str_field(state, "ItemsPath").unwrap_or("$");
    match read_path(input, path)? {
        Value::Array(items) => Ok(items),
        other => Err(Failure::runtime(format!(
            "map `{name}`: ItemsPath {path} selects {}, not an array",
            kind(&other)
        ))),
    }
}

/// Each item through the ItemSelector (or the older Parameters), which reads
/// the state's input as `$` and the item as `$$.Map.Item.Value`.
fn select(
    state: &Value,
    input: &Value,
    items: Vec<Value>,
    context: &Value,
) -> Result<Vec<Value>, Failure> {
    let Some(selector) = state
        .get("ItemSelector")
        .or_else(|| state.get("Parameters"))
    else {
        return Ok(items);
    };
    let mut context = context.clone();
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            context["Map"] = json!({ "Item": { "Index": index, "Value": item } });
            parameters_with_context(selector, input, &context)
        })
        .collect()
}

/// How many items run at once: MaxConcurrency (0, or none: unbounded),
/// never more than `workers`.
fn concurrency(name: &str, state: &Value, input: &Value, workers: usize) -> Result<usize, Failure> {
    let max = number(name, state, "MaxConcurrency", input)?.map_or(0, |n| n as usize);
    Ok(if max == 0 { workers } else { max.min(workers) }.max(1))
}

/// A non-negative number given as `field`, or read from the state's input
/// at the reference path `<field>Path`.
fn number(name: &str, object: &Value, field: &str, input: &Value) -> Result<Option<f64>, Failure> {
    let path_field = format!("{field}Path");
    let value = match (object.get(field), str_field(object, &path_field)) {
        (Some(_), Some(_)) => {
            return Err(Failure::runtime(format!(
                "map `{name}`: give {field} or {path_field}, not both"
            )));
        }
        (Some(value), None) => value.clone(),
        (None, Some(path)) => read_path(input, path)?,
        (None, None) => return Ok(None),
    };
    match value.as_f64() {
        Some(n) if n >= 0.0 => Ok(Some(n)),
        _ => Err(Failure::runtime(format!(
            "map `{name}`: {field} must be a non-negative number, not {value}"
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Runs `work(i)` for every `i` in `0..n` on at most `workers` threads,
/// starting them in index order; once `stop()` holds, no further index
/// starts (its slot stays None).
fn pool<R: Send>(
    n: usize,
    workers: usize,
    work: impl Fn(usize) -> R + Sync,
    stop: impl Fn() -> bool + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|threads| {
        for _ in 0..workers.min(n) {
            threads.spawn(|| {
                while !stop() {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(slot) = slots.get(i) else { break };
                    let result = work(i);
                    *slot.lock().expect("not poisoned") = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| slot.into_inner().expect("not poisoned"))
        .collect()
}

/// When a Distributed Map fails: a number of failed items beyond
/// ToleratedFailureCount, or a share of all items beyond
/// ToleratedFailurePercentage; with neither, any failed item.
struct Tolerance {
    count: Option<f64>,
    percentage: Option<f64>,
}

impl Tolerance {
    fn exceeded(&self, failed: usize, total: usize) -> bool {
        if failed == 0 {
            return false;
        }
        if self.count.is_none() && self.percentage.is_none() {
            return true;
        }
        self.count.is_some_and(|c| failed as f64 > c)
            || self
                .percentage
                .is_some_and(|p| failed as f64 * 100.0 > p * total as f64)
    }

    fn describe(&self) -> String {
        match (self.count, self.percentage) {
            (None, None) => "no tolerated failure".into(),
            (Some(c), None) => format!("ToleratedFailureCount {c}"),
            (None, Some(p)) => format!("ToleratedFailurePercentage {p}"),
            (Some(c), Some(p)) => {
                format!("ToleratedFailureCount {c} or ToleratedFailurePercentage {p}")
            }
        }
    }
}

/// A Distributed Map state about to run its Map Run.
struct DistributedMap<'i, 's> {
    interpreter: &'i Interpreter<'i>,
    name: &'i str,
    state: &'i Value,
    scope: &'s Scope<'s>,
    /// Each child execution's input, and how many items it holds.
    children: Vec<(Value, usize)>,
    tolerance: Tolerance,
    concurrency: usize,
    /// `<id>`: a UUID-shaped digest of the execution's and the state's names.
    id: String,
    /// `<state machine>/<label>`, the name of the children's state machine.
    machine: String,
    express: bool,
}

const ARN_PREFIX: &str = "arn:aws:states:local:000000000000";

impl<'i, 's> DistributedMap<'i, 's> {
    fn new(
        interpreter: &'i Interpreter<'i>,
        name: &'i str,
        state: &'i Value,
        input: &Value,
        scope: &'s Scope<'s>,
        express: bool,
    ) -> Result<Self, Failure> {
        let items = read_items(interpreter, name, state, input, scope.context)?;
        let items = select(state, input, items, scope.context)?;
        let percentage = number(name, state, "ToleratedFailurePercentage", input)?;
        if percentage.is_some_and(|p| p > 100.0) {
            return Err(Failure::runtime(format!(
                "map `{name}`: ToleratedFailurePercentage must be at most 100"
            )));
        }
        let context = scope.context;
        let execution = context["Execution"]["Name"].as_str().unwrap_or_default();
        let machine = context["StateMachine"]["Name"].as_str().unwrap_or("local");
        let label = str_field(state, "Label").unwrap_or(name);
        Ok(DistributedMap {
            interpreter,
            name,
            state,
            scope,
            children: batch(name, state, input, context, items)?,
            tolerance: Tolerance {
                count: number(name, state, "ToleratedFailureCount", input)?,
                percentage,
            },
            concurrency: concurrency(name, state, input, interpreter.workers)?,
            id: uuid_shaped(&[execution, name]),
            machine: format!("{machine}/{label}"),
            express,
        })
    }

    fn arn(&self) -> String {
        format!("{ARN_PREFIX}:mapRun:{}:{}", self.machine, self.id)
    }

    fn report(&self, counts: MapRunCounts, status: MapRunStatus) {
        if self.scope.recorded && status != MapRunStatus::Running {
            let mut ended = self
                .interpreter
                .map_run_counts
                .lock()
                .expect("not poisoned");
            ended.insert(self.name.to_string(), counts);
        }
        self.interpreter.emit(
            self.scope,
            super::Event::MapRun {
                state: self.name.to_string(),
                map_run_arn: self.arn(),
                counts,
                status,
            },
        );
    }

    fn run(&self, processor: &Value, input: &Value) -> Result<Value, Failure> {
        let previous = self.previous_attempt()?;
        let (results, counts) = self.run_children(processor, &previous);
        self.save_attempt(&results)?;
        let failed = self.tolerance.exceeded(counts.failed, counts.total);
        let output = match self.state.get("ResultWriter") {
            Some(writer) => self.write_results(writer, input, &results),
            None => results
                .succeeded
                .iter()
                .map(output_of)
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
        };
        let status = if failed || output.is_err() {
            MapRunStatus::Failed
        } else {
            MapRunStatus::Succeeded
        };
        self.report(counts, status);
        if failed {
            let first = &results.failed[0];
            return Err(Failure::new(
                "States.ExceedToleratedFailureThreshold",
                format!(
                    "map run {}: {} of {} items failed, beyond {} (first failed child: {}: {})",
                    self.arn(),
                    counts.failed,
                    counts.total,
                    self.tolerance.describe(),
                    first["Error"].as_str().unwrap_or_default(),
                    first["Cause"].as_str().unwrap_or_default(),
                ),
            ));
        }
        output
    }

    /// Runs the children that did not succeed in `previous`, in item order
    /// on the pool, until the failures go beyond the tolerance; returns every
    /// child as the result files list it, and the final counts.
    fn run_children(&self, processor: &Value, previous: &Previous) -> (Results, MapRunCounts) {
        let inputs: Vec<String> = self.children.iter().map(|(c, _)| c.to_string()).collect();
        let reused: Vec<Option<&Value>> = inputs
            .iter()
            .map(|i| previous.succeeded.get(i.as_str()))
            .collect();
        let total = self.children.iter().map(|(_, n)| n).sum();
        let done: usize = reused
            .iter()
            .zip(&self.children)
            .filter(|(r, _)| r.is_some())
            .map(|(_, (_, n))| n)
            .sum();
        let counts = Mutex::new(MapRunCounts {
            total,
            pending: total - done,
            succeeded: done,
            ..MapRunCounts::default()
        });
        self.report(*counts.lock().expect("not poisoned"), MapRunStatus::Running);
        let todo: Vec<usize> = (0..inputs.len()).filter(|&i| reused[i].is_none()).collect();
        let ran = pool(
            todo.len(),
            self.concurrency,
            |k| {
                let i = todo[k];
                let (child_input, items) = &self.children[i];
                {
                    let mut c = counts.lock().expect("not poisoned");
                    c.pending -= items;
                    c.running += items;
                }
                let started = self.interpreter.clock.now_ms();
                let child = self.child(&inputs[i]);
                let scope = Scope {
                    context: &child.context(child_input),
                    recorded: false,
                };
                let outcome = self.interpreter.run(processor, child_input.clone(), &scope);
                let mut c = counts.lock().expect("not poisoned");
                c.running -= items;
                match outcome {
                    Ok(_) => c.succeeded += items,
                    Err(_) => c.failed += items,
                }
                self.report(*c, MapRunStatus::Running);
                let redrives = previous.redrives.get(inputs[i].as_str()).copied();
                let stopped = self.interpreter.clock.now_ms();
                child.entry(&inputs[i], started, stopped, redrives, &outcome)
            },
            || {
                let c = counts.lock().expect("not poisoned");
                self.tolerance.exceeded(c.failed, c.total)
            },
        );
        let mut ran = ran.into_iter();
        let mut results = Results::default();
        for (input, reused) in inputs.iter().zip(reused) {
            match reused {
                Some(entry) => results.succeeded.push(entry.clone()),
                None => match ran.next().flatten() {
                    Some(Ran::Succeeded(entry)) => results.succeeded.push(entry),
                    Some(Ran::Failed(entry)) => results.failed.push(entry),
                    None => results.pending.push(json!({
                        "Input": input,
                        "InputDetails": { "Included": true },
                        "Status": "PENDING",
                    })),
                },
            }
        }
        let counts = counts.into_inner().expect("not poisoned");
        (results, counts)
    }

    /// The child execution whose input is `input`: named by a digest of the
    /// Map Run's id and its input, so a redrive finds it under the same name.
    fn child(&self, input: &str) -> Child {
        let name = uuid_shaped(&[&self.id, input]);
        let kind = if self.express { "express" } else { "execution" };
        Child {
            arn: format!("{ARN_PREFIX}:{kind}:{}:{name}", self.machine),
            machine_arn: format!("{ARN_PREFIX}:stateMachine:{}", self.machine),
            machine: self.machine.clone(),
            name,
        }
    }

    /// What the Map Run's last attempt in an earlier execution of the same
    /// name left, if this is the Map Run's first start in this execution.
    fn previous_attempt(&self) -> Result<Previous, Failure> {
        let first = self
            .interpreter
            .map_runs
            .lock()
            .expect("not poisoned")
            .insert(self.id.clone());
        let Some(storage) = self.interpreter.storage.filter(|_| first) else {
            return Ok(Previous::default());
        };
        let Some(bytes) = storage.map_run_record(&self.id)? else {
            return Ok(Previous::default());
        };
        let record: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::runtime(format!(
                "map run {}: its record is not JSON: {e}",
                self.arn()
            ))
        })?;
        let entries = |status: &str| {
            record[status]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| Some((e["Input"].as_str()?.to_string(), e)))
                .collect::<Vec<_>>()
        };
        Ok(Previous {
            succeeded: entries("Succeeded")
                .into_iter()
                .map(|(input, e)| (input, e.clone()))
                .collect(),
            redrives: entries("Failed")
                .into_iter()
                .map(|(input, e)| (input, e["RedriveCount"].as_u64().unwrap_or(0)))
                .collect(),
        })
    }

    /// Saves the children that succeeded (in any attempt) and those that
    /// failed in this one, for a redrive.
    fn save_attempt(&self, results: &Results) -> Result<(), Failure> {
        let Some(storage) = self.interpreter.storage else {
            return Ok(());
        };
        let record = json!({
            "Failed": results.failed,
            "MapRunArn": self.arn(),
            "Succeeded": results.succeeded,
        });
        storage.save_map_run_record(&self.id, &serde_json::to_vec(&record).expect("JSON"))
    }

    /// Writes `<Prefix>/<map run id>/` `SUCCEEDED_0.json`, `FAILED_0.json`
    /// and `PENDING_0.json` (each only when it lists a child) and
    /// `manifest.json`; the state's result names the manifest.
    fn write_results(
        &self,
        writer: &Value,
        input: &Value,
        results: &Results,
    ) -> Result<Value, Failure> {
        let name = self.name;
        if writer.get("WriterConfig").is_some() {
            return Err(Failure::runtime(format!(
                "map `{name}`: ResultWriter.WriterConfig is not supported by the local runner"
            )));
        }
        match str_field(writer, "Resource") {
            Some("arn:aws:states:::s3:putObject") => {}
            other => {
                return Err(Failure::runtime(format!(
                    "map `{name}`: ResultWriter.Resource must be arn:aws:states:::s3:putObject, not {other:?}"
                )));
            }
        }
        let storage = storage_for(self.interpreter, name, "ResultWriter")?;
        let params = parameters_with_context(
            writer.get("Parameters").unwrap_or(&Value::Null),
            input,
            self.scope.context,
        )?;
        let bucket = params["Bucket"].as_str().ok_or_else(|| {
            Failure::runtime(format!(
                "map `{name}`: ResultWriter.Parameters has no Bucket"
            ))
        })?;
        let base = match params["Prefix"].as_str().unwrap_or_default() {
            "" => format!("{}/", self.id),
            p if p.ends_with('/') => format!("{p}{}/", self.id),
            p => format!("{p}/{}/", self.id),
        };
        let put = |key: &str, bytes: &[u8]| {
            storage.put_object(bucket, key, bytes).map_err(|f| {
                Failure::new(
                    "States.ResultWriterFailed",
                    format!("map `{name}`: writing s3://{bucket}/{key}: {f}"),
                )
            })
        };
        let mut files = Map::new();
        for (status, entries) in [
            ("FAILED", &results.failed),
            ("PENDING", &results.pending),
            ("SUCCEEDED", &results.succeeded),
        ] {
            let mut listed = Vec::new();
            if !entries.is_empty() {
                let key = format!("{base}{status}_0.json");
                let bytes = serde_json::to_vec(entries).expect("JSON");
                put(&key, &bytes)?;
                listed.push(json!({ "Key": key, "Size": bytes.len() }));
            }
            files.insert(status.to_string(), Value::Array(listed));
        }
        let manifest = json!({
            "DestinationBucket": bucket,
            "MapRunArn": self.arn(),
            "ResultFiles": files,
        });
        let key = format!("{base}manifest.json");
        put(&key, &serde_json::to_vec(&manifest).expect("JSON"))?;
        Ok(json!({
            "MapRunArn": self.arn(),
            "ResultWriterDetails": { "Bucket": bucket, "Key": key },
        }))
    }
}

fn storage_for<'i>(
    interpreter: &Interpreter<'i>,
    name: &str,
    field: &str,
) -> Result<&'i dyn Storage, Failure> {
    interpreter.storage.ok_or_else(|| {
        Failure::runtime(format!(
            "map `{name}`: {field} needs S3 storage, and this interpreter has none"
        ))
    })
}

/// What an earlier attempt of a Map Run left, by child input (its JSON text).
#[derive(Debug, Default)]
struct Previous {
    /// The result-file entries of the children that succeeded.
    succeeded: HashMap<String, Value>,
    /// How often each child that failed had been redriven.
    redrives: HashMap<String, u64>,
}

/// A Map Run's children as its result files list them.
#[derive(Debug, Default)]
struct Results {
    succeeded: Vec<Value>,
    failed: Vec<Value>,
    pending: Vec<Value>,
}

/// A child execution that ran, as its result file lists it.
enum Ran {
    Succeeded(Value),
    Failed(Value),
}

/// A child execution's names.
struct Child {
    name: String,
    arn: String,
    machine: String,
    machine_arn: String,
}

impl Child {
    /// The context object of the child execution (`$$.Execution.Name` is
    /// the child's, as on AWS).
    fn context(&self, input: &Value) -> Value {
        json!({
            "Execution": { "Id": self.arn, "Input": input, "Name": self.name },
            "StateMachine": { "Id": self.machine_arn, "Name": self.machine },
        })
    }

    /// The child as a ResultWriter file lists it (Transformation NONE):
    /// `redrives` is how often it had been redriven before this attempt,
    /// when it failed in an earlier one.
    fn entry(
        &self,
        input: &str,
        started_ms: u64,
        stopped_ms: u64,
        redrives: Option<u64>,
        outcome: &Result<Value, Failure>,
    ) -> Ran {
        let redrive_count = redrives.map_or(0, |n| n + 1);
        let mut entry = json!({
            "ExecutionArn": self.arn,
            "Input": input,
            "InputDetails": { "Included": true },
            "Name": self.name,
            "RedriveCount": redrive_count,
            "StartDate": iso_date(started_ms),
            "StateMachineArn": self.machine_arn,
            "StopDate": iso_date(stopped_ms),
        });
        let fields = entry.as_object_mut().expect("an object");
        match outcome {
            Ok(output) => {
                fields.insert("Output".into(), output.to_string().into());
                fields.insert("OutputDetails".into(), json!({ "Included": true }));
                fields.insert("RedriveStatus".into(), "NOT_REDRIVABLE".into());
                fields.insert(
                    "RedriveStatusReason".into(),
                    "Execution is SUCCEEDED and cannot be redriven".into(),
                );
                fields.insert("Status".into(), "SUCCEEDED".into());
                Ran::Succeeded(entry)
            }
            Err(failure) => {
                fields.insert("Cause".into(), failure.cause.clone().into());
                fields.insert("Error".into(), failure.error.clone().into());
                fields.insert("RedriveStatus".into(), "REDRIVABLE_BY_MAP_RUN".into());
                fields.insert("Status".into(), "FAILED".into());
                Ran::Failed(entry)
            }
        }
    }
}

/// A succeeded child's output, from its result-file entry.
fn output_of(entry: &Value) -> Result<Value, Failure> {
    let text = entry["Output"].as_str().unwrap_or("null");
    serde_json::from_str(text)
        .map_err(|e| Failure::runtime(format!("a recorded child output is not JSON: {e}")))
}

/// ISO 8601 in UTC with milliseconds, as Step Functions writes dates in
/// result files (`2025-02-04T01:49:50.099Z`).
fn iso_date(epoch_ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(epoch_ms);
    humantime::format_rfc3339_millis(time).to_string()
}

/// A UUID-shaped (8-4-4-4-12 hex) digest of `parts`: ids that are the same
/// whenever the parts are.
fn uuid_shaped(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let hex: String = hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The Map's items: from its ItemReader, else the array at its ItemsPath;
/// at most ReaderConfig.MaxItems of them.
fn read_items(
    interpreter: &Interpreter,
    name: &str,
    state: &Value,
    input: &Value,
    context: &Value,
) -> Result<Vec<Value>, Failure> {
    let Some(reader) = state.get("ItemReader") else {
        return items_at_path(name, state, input);
    };
    if state.get("ItemsPath").is_some() {
        return Err(Failure::runtime(format!(
            "map `{name}`: give ItemReader or ItemsPath, not both"
        )));
    }
    let config = reader.get("ReaderConfig").unwrap_or(&Value::Null);
    let supported = ["InputType", "MaxItems", "MaxItemsPath"];
    if let Some(field) = config
        .as_object()
        .and_then(|c| c.keys().find(|k| !supported.contains(&k.as_str())))
    {
        return Err(Failure::runtime(format!(
            "map `{name}`: ReaderConfig.{field} is not supported by the local runner"
        )));
    }
    let storage = storage_for(interpreter, name, "ItemReader")?;
    let params = parameters_with_context(
        reader.get("Parameters").unwrap_or(&Value::Null),
        input,
        context,
    )?;
    let bucket = params["Bucket"].as_str().ok_or_else(|| {
        Failure::runtime(format!("map `{name}`: ItemReader.Parameters has no Bucket"))
    })?;
    let failed = |what: String, cause: String| {
        Failure::new(
            "States.ItemReaderFailed",
            format!("map `{name}`: {what}: {cause}"),
        )
    };
    let mut items = match str_field(reader, "Resource") {
        Some("arn:aws:states:::s3:listObjectsV2") => {
            let prefix = params["Prefix"].as_str().unwrap_or_default();
            storage
                .list_objects(bucket, prefix)
                .map_err(|f| failed(format!("listing s3://{bucket}/{prefix}"), f.to_string()))?
                .iter()
                .map(ObjectSummary::item)
                .collect()
        }
        Some("arn:aws:states:::s3:getObject") => {
            let key = params["Key"].as_str().ok_or_else(|| {
                Failure::runtime(format!("map `{name}`: ItemReader.Parameters has no Key"))
            })?;
            if str_field(config, "InputType") != Some("JSON") {
                return Err(Failure::runtime(format!(
                    "map `{name}`: the local runner reads s3:getObject items with ReaderConfig.InputType JSON only, not {}",
                    config.get("InputType").unwrap_or(&Value::Null)
                )));
            }
            let object = format!("s3://{bucket}/{key}");
            let bytes = storage
                .get_object(bucket, key)
                .map_err(|f| failed(format!("reading {object}"), f.to_string()))?;
            match serde_json::from_slice(&bytes) {
                Ok(Value::Array(items)) => items,
                Ok(other) => {
                    return Err(failed(
                        object,
                        format!("holds {}, not a JSON array", kind(&other)),
                    ));
                }
                Err(e) => return Err(failed(object, format!("not JSON: {e}"))),
            }
        }
        other => {
            return Err(Failure::runtime(format!(
                "map `{name}`: ItemReader.Resource {other:?} is not supported (arn:aws:states:::s3:listObjectsV2 or arn:aws:states:::s3:getObject)"
            )));
        }
    };
    if let Some(max) = number(name, config, "MaxItems", input)?.filter(|&m| m > 0.0) {
        items.truncate(max as usize);
    }
    Ok(items)
}

/// The children's inputs and how many items each holds: each item alone,
/// or with an ItemBatcher `{"Items": [...], "BatchInput": {...}}` of
/// consecutive items, at most MaxItemsPerBatch of them and at most
/// MaxInputBytesPerBatch bytes of JSON (the whole input, BatchInput included).
fn batch(
    name: &str,
    state: &Value,
    input: &Value,
    context: &Value,
    items: Vec<Value>,
) -> Result<Vec<(Value, usize)>, Failure> {
    let Some(batcher) = state.get("ItemBatcher") else {
        return Ok(items.into_iter().map(|item| (item, 1)).collect());
    };
    let max_items = number(name, batcher, "MaxItemsPerBatch", input)?.map(|n| n as usize);
    let max_bytes = number(name, batcher, "MaxInputBytesPerBatch", input)?.map(|n| n as usize);
    if max_items.is_none() && max_bytes.is_none() {
        return Err(Failure::runtime(format!(
            "map `{name}`: ItemBatcher needs MaxItemsPerBatch or MaxInputBytesPerBatch"
        )));
    }
    let batch_input = batcher
        .get("BatchInput")
        .map(|template| parameters_with_context(template, input, context))
        .transpose()?;
    let envelope = |items: Vec<Value>| {
        let mut fields = Map::new();
        if let Some(batch_input) = &batch_input {
            fields.insert("BatchInput".into(), batch_input.clone());
        }
        fields.insert("Items".into(), Value::Array(items));
        Value::Object(fields)
    };
    // An item adds its JSON, and a comma after the first.
    let empty = envelope(Vec::new()).to_string().len();
    let (max_items, max_bytes) = (
        max_items.unwrap_or(usize::MAX),
        max_bytes.unwrap_or(usize::MAX),
    );
    let mut batches = Vec::new();
    let mut current = Vec::new();
    let mut bytes = empty;
    for (index, item) in items.into_iter().enumerate() {
        let size = item.to_string().len();
        if !current.is_empty() && (current.len() >= max_items || bytes + 1 + size > max_bytes) {
            let n = current.len();
            batches.push((envelope(std::mem::take(&mut current)), n));
            bytes = empty;
        }
        if current.is_empty() && bytes + size > max_bytes {
            return Err(Failure::runtime(format!(
                "map `{name}`: item {index} alone makes a batch of {} bytes, over MaxInputBytesPerBatch {max_bytes}",
                bytes + size
            )));
        }
        bytes += size + usize::from(!current.is_empty());
        current.push(item);
    }
    if !current.is_empty() {
        let n = current.len();
        batches.push((envelope(current), n));
    }
    Ok(batches)
}
