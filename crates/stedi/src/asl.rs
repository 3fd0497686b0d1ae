//! An interpreter for the subset of the Amazon States Language that
//! statemachine.asl.json uses: Task, Parallel, Map (inline, and distributed
//! with ItemReader, ItemBatcher, ResultWriter and tolerated failures: `map`),
//! Choice, Pass, Succeed, Fail; InputPath, Parameters, ResultSelector,
//! ResultPath, OutputPath; Retry (with backoff, max delay and full jitter)
//! and Catch.
//!
//! Task resources are resolved through an [`Invoker`] and the S3 reads and
//! writes of a Distributed Map through a [`Storage`], so the same definition
//! runs here with in-process handlers and a local warehouse, and on AWS with
//! Lambda ARNs and a bucket.

mod map;

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lakehouse::Clock;
use serde_json::{Map, Value, json};
use serde_json_path::JsonPath;

pub use map::{MapRunCounts, MapRunStatus, ObjectSummary, Storage};

/// A failed task or state, as Step Functions names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    fn new(error: &str, cause: impl Into<String>) -> Self {
        Failure {
            error: error.to_string(),
            cause: cause.into(),
        }
    }
    fn runtime(cause: impl Into<String>) -> Self {
        Failure::new("States.Runtime", cause)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

impl std::error::Error for Failure {}

/// Runs a Task's resource. Called from several threads at once when a Map
/// runs its items concurrently.
pub trait Invoker: Sync {
    fn invoke(&self, resource: &str, input: Value) -> Result<Value, Failure>;
}

/// What the interpreter reports as it goes. The states of a Distributed
/// Map's child executions are not reported (on AWS each child is an
/// execution of its own); their Map Run's progress is.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Entered {
        state: String,
    },
    Succeeded {
        state: String,
        seconds: f64,
    },
    Retrying {
        state: String,
        error: String,
        attempt: u32,
        delay: Duration,
    },
    Failed {
        state: String,
        error: String,
    },
    /// The state failed, and a Catch routed the error to `next`.
    Caught {
        state: String,
        error: String,
        next: String,
    },
    /// A Distributed Map state's Map Run: reported when it starts (items
    /// that succeeded in an earlier attempt already count as succeeded),
    /// each time a child execution ends, and when it ends.
    MapRun {
        state: String,
        map_run_arn: String,
        counts: MapRunCounts,
        status: MapRunStatus,
    },
}

/// How one state ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// Failed, and the error ended the execution (or its branch).
    Failed(Failure),
    /// Failed, and a Catch routed the error to another state.
    Caught(Failure),
}

/// One state as it ran: the execution's timeline is a list of these, in the
/// order the states were entered (a state inside an inline Map appears once
/// per item; the states of a Distributed Map's children do not appear).
#[derive(Debug, Clone, PartialEq)]
pub struct StateRun {
    pub name: String,
    /// From the start of the execution to entering the state.
    pub started: Duration,
    pub seconds: f64,
    pub retries: u32,
    pub outcome: Outcome,
}

/// Where states run: the context object `$$` they read, and whether they
/// are recorded in the timeline and reported to the observer (the
/// execution and its inline Maps' iterations are; a Distributed Map's
/// child executions are not).
struct Scope<'s> {
    context: &'s Value,
    recorded: bool,
}

/// What happened while one state ran, beside its result.
#[derive(Debug, Default)]
struct Attempts {
    retries: u32,
    /// The error a Catch routed.
    caught: Option<Failure>,
}

pub struct Interpreter<'a> {
    invoker: &'a dyn Invoker,
    storage: Option<&'a dyn Storage>,
    observer: &'a (dyn Fn(&Event) + Sync),
    started: Instant,
    timeline: Mutex<Vec<StateRun>>,
    /// The item counts of each Distributed Map state's last Map Run, by
    /// state name (its children do not appear in the timeline).
    map_run_counts: Mutex<BTreeMap<String, MapRunCounts>>,
    /// The ids of the Map Runs started in this execution: a Map Run's first
    /// start redrives what an earlier execution of the same name left
    /// (`map`), a later one (a Retry of the Map state) starts afresh.
    map_runs: Mutex<HashSet<String>>,
    /// Multiplies every retry delay; 1.0 honours the definition, 0.0 skips waits (tests).
    pub retry_time_scale: f64,
    /// The context object `$$` reads (`$$.Execution.Name`, ...).
    pub context: Value,
    /// At most this many items of one Map run at once here, whatever its
    /// MaxConcurrency allows (AWS runs up to 10,000 child executions; one
    /// machine has its cores). Default: the number of cores.
    pub workers: usize,
    /// The time of the StartDate and StopDate of a Map Run's result files.
    pub clock: Clock,
}

impl<'a> Interpreter<'a> {
    pub fn new(invoker: &'a dyn Invoker, observer: &'a (dyn Fn(&Event) + Sync)) -> Self {
        Interpreter {
            invoker,
            storage: None,
            observer,
            started: Instant::now(),
            timeline: Mutex::default(),
            map_run_counts: Mutex::default(),
            map_runs: Mutex::default(),
            retry_time_scale: 1.0,
            context: Value::Null,
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            clock: Clock::System,
        }
    }

    /// Sets the context object as Step Functions gives it to an execution
    /// named `name` started with `input`.
    pub fn with_execution(mut self, name: &str, input: &Value) -> Self {
        self.context = json!({ "Execution": { "Name": name, "Input": input } });
        self
    }

    /// The S3 buckets a Distributed Map's ItemReader reads and ResultWriter
    /// writes, and where its Map Runs are remembered for a redrive. Without
    /// it, a Map with either field fails (`States.Runtime`).
    pub fn with_storage(mut self, storage: &'a dyn Storage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Every state that ran so far, in the order entered, with its outcome.
    pub fn timeline(&self) -> Vec<StateRun> {
        self.timeline.lock().expect("not poisoned").clone()
    }

    /// How each Distributed Map state's last Map Run ended, by state name:
    /// its items succeeded, failed and never started.
    pub fn map_run_counts(&self) -> BTreeMap<String, MapRunCounts> {
        self.map_run_counts.lock().expect("not poisoned").clone()
    }

    fn emit(&self, scope: &Scope, event: Event) {
        if scope.recorded {
            (self.observer)(&event);
        }
    }

    /// Records how state `name` ended.
    fn record(&self, name: &str, entered: Instant, attempts: &Attempts, failure: Option<&Failure>) {
        let outcome = match (failure, &attempts.caught) {
            (Some(f), _) => Outcome::Failed(f.clone()),
            (None, Some(f)) => Outcome::Caught(f.clone()),
            (None, None) => Outcome::Succeeded,
        };
        self.timeline.lock().expect("not poisoned").push(StateRun {
            name: name.to_string(),
            started: entered.duration_since(self.started),
            seconds: entered.elapsed().as_secs_f64(),
            retries: attempts.retries,
            outcome,
        });
    }

    /// Executes a state machine definition.
    pub fn execute(&self, definition: &Value, input: Value) -> Result<Value, Failure> {
        let scope = Scope {
            context: &self.context,
            recorded: true,
        };
        self.run(definition, input, &scope)
    }

    /// Runs the states of a definition, a Parallel branch or a Map's
    /// ItemProcessor from StartAt to their end.
    fn run(&self, definition: &Value, input: Value, scope: &Scope) -> Result<Value, Failure> {
        let states = definition
            .get("States")
            .and_then(Value::as_object)
            .ok_or_else(|| Failure::runtime("definition has no States object"))?;
        let mut name = definition
            .get("StartAt")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::runtime("definition has no StartAt"))?
            .to_string();
        let mut data = input;
        loop {
            let state = states
                .get(&name)
                .ok_or_else(|| Failure::runtime(format!("no state named `{name}`")))?;
            self.emit(
                scope,
                Event::Entered {
                    state: name.clone(),
                },
            );
            let started = Instant::now();
            let mut attempts = Attempts::default();
            let step = self.step(&name, state, data, scope, &mut attempts);
            if scope.recorded {
                self.record(&name, started, &attempts, step.as_ref().err());
            }
            match step {
                Ok(Step::Next(next, output)) => {
                    let event = match attempts.caught {
                        Some(failure) => Event::Caught {
                            state: name.clone(),
                            error: failure.error,
                            next: next.clone(),
                        },
                        None => Event::Succeeded {
                            state: name.clone(),
                            seconds: started.elapsed().as_secs_f64(),
                        },
                    };
                    self.emit(scope, event);
                    name = next;
                    data = output;
                }
                Ok(Step::End(output)) => {
                    self.emit(
                        scope,
                        Event::Succeeded {
                            state: name.clone(),
                            seconds: started.elapsed().as_secs_f64(),
                        },
                    );
                    return Ok(output);
                }
                Err(failure) => {
                    self.emit(
                        scope,
                        Event::Failed {
                            state: name.clone(),
                            error: failure.error.clone(),
                        },
                    );
                    return Err(failure);
                }
            }
        }
    }

    fn step(
        &self,
        name: &str,
        state: &Value,
        input: Value,
        scope: &Scope,
        attempts: &mut Attempts,
    ) -> Result<Step, Failure> {
        let kind = str_field(state, "Type")
            .ok_or_else(|| Failure::runtime(format!("state `{name}` has no Type")))?;
        let context = scope.context;
        match kind {
            "Pass" => {
                let effective = input_path(state, &input)?;
                let result = match (state.get("Result"), state.get("Parameters")) {
                    (Some(result), _) => result.clone(),
                    (None, Some(params)) => parameters_with_context(params, &effective, context)?,
                    (None, None) => effective,
                };
                self.finish(state, &input, result)
            }
            "Task" => self.guarded(name, state, input, scope, attempts, |effective| {
                let resource = str_field(state, "Resource")
                    .ok_or_else(|| Failure::runtime(format!("task `{name}` has no Resource")))?;
                let payload = match state.get("Parameters") {
                    Some(params) => parameters_with_context(params, &effective, context)?,
                    None => effective,
                };
                self.invoker.invoke(resource, payload)
            }),
            "Parallel" => self.guarded(name, state, input, scope, attempts, |effective| {
                let branches =
                    state
                        .get("Branches")
                        .and_then(Value::as_array)
                        .ok_or_else(|| {
                            Failure::runtime(format!("parallel `{name}` has no Branches"))
                        })?;
                let payload = match state.get("Parameters") {
                    Some(params) => parameters_with_context(params, &effective, context)?,
                    None => effective,
                };
                branches
                    .iter()
                    .map(|b| self.run(b, payload.clone(), scope))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array)
            }),
            "Map" => self.guarded(name, state, input, scope, attempts, |effective| {
                map::run(self, name, state, effective, scope)
            }),
            "Choice" => {
                let effective = input_path(state, &input)?;
                let choices = state
                    .get("Choices")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for choice in &choices {
                    if rule_matches(choice, &effective)? {
                        let next = str_field(choice, "Next").ok_or_else(|| {
                            Failure::runtime(format!("a choice of `{name}` has no Next"))
                        })?;
                        return Ok(Step::Next(next.to_string(), output_path(state, effective)?));
                    }
                }
                match str_field(state, "Default") {
                    Some(next) => Ok(Step::Next(next.to_string(), output_path(state, effective)?)),
                    None => Err(Failure::new(
                        "States.NoChoiceMatched",
                        format!("no choice of `{name}` matched"),
                    )),
                }
            }
            "Succeed" => Ok(Step::End(output_path(state, input_path(state, &input)?)?)),
            "Fail" => {
                let error = match str_field(state, "ErrorPath") {
                    Some(p) => read_path(&input, p)?
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    None => str_field(state, "Error")
                        .unwrap_or("States.Failed")
                        .to_string(),
                };
                let cause = match str_field(state, "CausePath") {
                    Some(p) => read_path(&input, p)?
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    None => str_field(state, "Cause").unwrap_or_default().to_string(),
                };
                Err(Failure { error, cause })
            }
            other => Err(Failure::runtime(format!(
                "state `{name}` has unsupported Type `{other}`"
            ))),
        }
    }

    /// Runs a Task/Parallel/Map body with Retry and Catch around it.
    fn guarded(
        &self,
        name: &str,
        state: &Value,
        input: Value,
        scope: &Scope,
        attempts: &mut Attempts,
        body: impl Fn(Value) -> Result<Value, Failure>,
    ) -> Result<Step, Failure> {
        let effective = input_path(state, &input)?;
        let retriers = state
            .get("Retry")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut tries = vec![0u32; retriers.len()];
        let failure = loop {
            match body(effective.clone()) {
                Ok(result) => {
                    let result = match state.get("ResultSelector") {
                        Some(selector) => {
                            parameters_with_context(selector, &result, scope.context)?
                        }
                        None => result,
                    };
                    return self.finish(state, &input, result);
                }
                Err(failure) => {
                    let Some(i) = retriers
                        .iter()
                        .position(|r| error_matches(r, &failure.error))
                    else {
                        break failure;
                    };
                    let retrier = &retriers[i];
                    let max_attempts = retrier
                        .get("MaxAttempts")
                        .and_then(Value::as_u64)
                        .unwrap_or(3) as u32;
                    if tries[i] >= max_attempts {
                        break failure;
                    }
                    let delay = retry_delay(retrier, tries[i]) * self.retry_time_scale;
                    tries[i] += 1;
                    attempts.retries += 1;
                    let delay = Duration::from_secs_f64(delay.max(0.0));
                    self.emit(
                        scope,
                        Event::Retrying {
                            state: name.to_string(),
                            error: failure.error.clone(),
                            attempt: tries[i],
                            delay,
                        },
                    );
                    std::thread::sleep(delay);
                }
            }
        };
        let catchers = state
            .get("Catch")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for catcher in catchers {
            if error_matches(catcher, &failure.error) {
                let next = str_field(catcher, "Next")
                    .ok_or_else(|| Failure::runtime("a Catch has no Next"))?;
                let error_output = json!({ "Error": failure.error, "Cause": failure.cause });
                let result_path = catcher.get("ResultPath").cloned().unwrap_or(json!("$"));
                let output = apply_result_path(&result_path, input, error_output)?;
                attempts.caught = Some(failure);
                return Ok(Step::Next(next.to_string(), output));
            }
        }
        Err(failure)
    }

    /// ResultPath, OutputPath, then Next or End.
    fn finish(&self, state: &Value, input: &Value, result: Value) -> Result<Step, Failure> {
        let result_path = state.get("ResultPath").cloned().unwrap_or(json!("$"));
        let output = output_path(
            state,
            apply_result_path(&result_path, input.clone(), result)?,
        )?;
        if state.get("End").and_then(Value::as_bool) == Some(true) {
            return Ok(Step::End(output));
        }
        let next = str_field(state, "Next")
            .ok_or_else(|| Failure::runtime("a state has neither Next nor End"))?;
        Ok(Step::Next(next.to_string(), output))
    }
}

enum Step {
    Next(String, Value),
    End(Value),
}

fn str_field<'v>(value: &'v Value, field: &str) -> Option<&'v str> {
    value.get(field).and_then(Value::as_str)
}

/// The backoff before retry number `attempt` (0-based), in seconds.
fn retry_delay(retrier: &Value, attempt: u32) -> f64 {
    let interval = retrier
        .get("IntervalSeconds")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    let rate = retrier
        .get("BackoffRate")
        .and_then(Value::as_f64)
        .unwrap_or(2.0);
    let mut delay = interval * rate.powi(attempt as i32);
    if let Some(max) = retrier.get("MaxDelaySeconds").and_then(Value::as_f64) {
        delay = delay.min(max);
    }
    if str_field(retrier, "JitterStrategy") == Some("FULL") {
        delay *= fastrand::f64();
    }
    delay
}

fn error_matches(rule: &Value, error: &str) -> bool {
    rule.get("ErrorEquals")
        .and_then(Value::as_array)
        .is_some_and(|names| {
            names.iter().filter_map(Value::as_str).any(|name| {
                name == error
                    || name == "States.ALL"
                    || (name == "States.TaskFailed"
                        && error != "States.Timeout"
                        && !error.starts_with("States.Runtime"))
            })
        })
}

fn input_path(state: &Value, input: &Value) -> Result<Value, Failure> {
    match state.get("InputPath") {
        None => Ok(input.clone()),
        Some(Value::Null) => Ok(json!({})),
        Some(Value::String(path)) => read_path(input, path),
        Some(other) => Err(Failure::runtime(format!(
            "InputPath must be a string, not {other}"
        ))),
    }
}

fn output_path(state: &Value, output: Value) -> Result<Value, Failure> {
    match state.get("OutputPath") {
        None => Ok(output),
        Some(Value::Null) => Ok(json!({})),
        Some(Value::String(path)) => read_path(&output, path),
        Some(other) => Err(Failure::runtime(format!(
            "OutputPath must be a string, not {other}"
        ))),
    }
}

/// Reads a JSONPath that must select exactly one node.
pub fn read_path(value: &Value, path: &str) -> Result<Value, Failure> {
    let parsed = JsonPath::parse(path)
        .map_err(|e| Failure::runtime(format!("invalid path `{path}`: {e}")))?;
    parsed.query(value).exactly_one().cloned().map_err(|_| {
        Failure::runtime(format!(
            "path `{path}` does not select exactly one value of the input"
        ))
    })
}

/// Evaluates a Parameters/ResultSelector template: keys ending in `.$` are
/// paths into the input, or into the context object when they start with `$$`.
fn parameters_with_context(
    template: &Value,
    input: &Value,
    context: &Value,
) -> Result<Value, Failure> {
    match template {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                match key.strip_suffix(".$") {
                    Some(name) => {
                        let path = value
                            .as_str()
                            .ok_or_else(|| Failure::runtime(format!("`{key}` must name a path")))?;
                        let resolved = reference(path, input, context)
                            .map_err(|f| Failure::new(&f.error, format!("`{key}`: {}", f.cause)))?;
                        out.insert(name.to_string(), resolved);
                    }
                    None => {
                        out.insert(key.clone(), parameters_with_context(value, input, context)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|v| parameters_with_context(v, input, context))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// The value a `.$` field names: a path into the input (`$...`), into the
/// context object (`$$...`), or an intrinsic function's result
/// (`States.Format(...)` or `States.StringToJson(...)`, the ones the local
/// runner knows).
fn reference(text: &str, input: &Value, context: &Value) -> Result<Value, Failure> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("$$") {
        read_path(context, &format!("${rest}"))
    } else if text.starts_with('$') {
        read_path(input, text)
    } else if let Some(arguments) = text
        .strip_prefix("States.Format(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        format_intrinsic(arguments, input, context)
    } else if let Some(arguments) = text
        .strip_prefix("States.StringToJson(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        string_to_json(arguments, input, context)
    } else {
        Err(Failure::runtime(format!(
            "`{text}` is neither a path nor States.Format(...) or States.StringToJson(...), the intrinsic functions the local runner knows"
        )))
    }
}

/// The arguments of an intrinsic function call `name(...)`: quoted strings
/// (`\'`, `\{`, `\}` and `\\` escape; escaped characters marked),
/// numbers, and paths into the input or the context.
fn intrinsic_arguments(
    name: &str,
    arguments: &str,
    input: &Value,
    context: &Value,
) -> Result<Vec<Argument>, Failure> {
    let failure = |cause: String| Failure::new("States.IntrinsicFailure", cause);
    let mut args = Vec::new();
    let mut chars = arguments.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        if first == '\'' {
            // A quoted string: its characters, the escaped ones marked.
            chars.next();
            let mut text = Vec::new();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c @ ('\'' | '{' | '}' | '\\')) => text.push((c, true)),
                        other => {
                            return Err(failure(format!(
                                "{name}: `\\{}` is not an escape",
                                other.map(String::from).unwrap_or_default()
                            )));
                        }
                    },
                    Some('\'') => break,
                    Some(c) => text.push((c, false)),
                    None => return Err(failure(format!("{name}: an unterminated string"))),
                }
            }
            args.push(Argument::Text(text));
        } else {
            let token: String = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
            let token = token.trim();
            let value = match serde_json::from_str::<Value>(token) {
                Ok(number @ Value::Number(_)) => number,
                _ => reference(token, input, context)?,
            };
            args.push(Argument::Value(value));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            Some(',') | None => {}
            Some(c) => {
                return Err(failure(format!("{name}: `{c}` after an argument, not `,`")));
            }
        }
    }
    Ok(args)
}

/// `States.StringToJson(arg)`: the JSON value a string holds (a quoted
/// string or a path to one): what turns a SAM substitution, always text,
/// into a number or an object.
fn string_to_json(arguments: &str, input: &Value, context: &Value) -> Result<Value, Failure> {
    let failure = |cause: String| Failure::new("States.IntrinsicFailure", cause);
    let mut args = intrinsic_arguments("States.StringToJson", arguments, input, context)?;
    let text = match (args.pop(), args.is_empty()) {
        (Some(Argument::Text(text)), true) => text.into_iter().map(|(c, _)| c).collect(),
        (Some(Argument::Value(Value::String(text))), true) => text,
        _ => {
            return Err(failure(
                "States.StringToJson: takes one argument, a string".into(),
            ));
        }
    };
    serde_json::from_str(&text)
        .map_err(|e| failure(format!("States.StringToJson: `{text}` is not JSON: {e}")))
}

/// `States.Format('template {}', arg, ...)`: each `{}` of the template
/// (a quoted string; `\'`, `\{`, `\}` and `\\` escape) replaced by the
/// next argument, a string as it is, a number, boolean or null as its JSON
/// text. An argument is a quoted string, a number, or a path.
fn format_intrinsic(arguments: &str, input: &Value, context: &Value) -> Result<Value, Failure> {
    let failure = |cause: String| Failure::new("States.IntrinsicFailure", cause);
    let args = intrinsic_arguments("States.Format", arguments, input, context)?;
    let mut args = args.into_iter();
    let Some(Argument::Text(template)) = args.next() else {
        return Err(failure(
            "States.Format: the first argument must be a quoted template".into(),
        ));
    };
    let mut out = String::new();
    let mut template = template.into_iter().peekable();
    while let Some((c, escaped)) = template.next() {
        if c == '{' && !escaped && template.next_if(|&(c, e)| c == '}' && !e).is_some() {
            let text = match args.next() {
                Some(Argument::Text(text)) => text.into_iter().map(|(c, _)| c).collect(),
                Some(Argument::Value(Value::String(text))) => text,
                Some(Argument::Value(
                    value @ (Value::Number(_) | Value::Bool(_) | Value::Null),
                )) => value.to_string(),
                Some(Argument::Value(other)) => {
                    return Err(failure(format!(
                        "States.Format: an argument is {other}, not a string, number, boolean or null"
                    )));
                }
                None => {
                    return Err(failure(
                        "States.Format: more {} in the template than arguments".into(),
                    ));
                }
            };
            out.push_str(&text);
        } else {
            out.push(c);
        }
    }
    if args.next().is_some() {
        return Err(failure(
            "States.Format: more arguments than {} in the template".into(),
        ));
    }
    Ok(Value::String(out))
}

/// An argument of an intrinsic function.
enum Argument {
    /// A quoted string, each character with whether it was escaped.
    Text(Vec<(char, bool)>),
    Value(Value),
}

/// Places `result` into `input` at a reference path (`$`, `$.a.b`), or
/// discards it when the path is null.
fn apply_result_path(path: &Value, input: Value, result: Value) -> Result<Value, Failure> {
    let path = match path {
        Value::Null => return Ok(input),
        Value::String(p) => p.as_str(),
        other => {
            return Err(Failure::runtime(format!(
                "ResultPath must be a string or null, not {other}"
            )));
        }
    };
    if path == "$" {
        return Ok(result);
    }
    let fields = path
        .strip_prefix("$.")
        .ok_or_else(|| Failure::runtime(format!("ResultPath `{path}` must start with `$.`")))?
        .split('.')
        .collect::<Vec<_>>();
    if fields
        .iter()
        .any(|f| f.is_empty() || f.contains(['[', ']', '*']))
    {
        return Err(Failure::runtime(format!(
            "ResultPath `{path}` must be a plain field path"
        )));
    }
    let mut root = input;
    let mut cursor = &mut root;
    for field in fields {
        if !cursor.is_object() {
            *cursor = Value::Object(Map::new());
        }
        cursor = cursor
            .as_object_mut()
            .expect("just made an object")
            .entry(field.to_string())
            .or_insert(Value::Null);
    }
    *cursor = result;
    Ok(root)
}

/// Evaluates one Choice rule (with And/Or/Not) against the state's input.
fn rule_matches(rule: &Value, input: &Value) -> Result<bool, Failure> {
    if let Some(all) = rule.get("And").and_then(Value::as_array) {
        return all
            .iter()
            .try_fold(true, |acc, r| Ok(acc && rule_matches(r, input)?));
    }
    if let Some(any) = rule.get("Or").and_then(Value::as_array) {
        return any
            .iter()
            .try_fold(false, |acc, r| Ok(acc || rule_matches(r, input)?));
    }
    if let Some(not) = rule.get("Not") {
        return Ok(!rule_matches(not, input)?);
    }
    let variable = str_field(rule, "Variable")
        .ok_or_else(|| Failure::runtime("a choice rule has no Variable"))?;
    let parsed = JsonPath::parse(variable)
        .map_err(|e| Failure::runtime(format!("invalid path `{variable}`: {e}")))?;
    let found = parsed.query(input).exactly_one().ok().cloned();
    if let Some(expected) = rule.get("IsPresent").and_then(Value::as_bool) {
        return Ok(found.is_some() == expected);
    }
    let value = found.ok_or_else(|| {
        Failure::runtime(format!("choice variable `{variable}` is not in the input"))
    })?;
    if let Some(expected) = rule.get("IsNull").and_then(Value::as_bool) {
        return Ok(value.is_null() == expected);
    }
    for (op, expected) in rule.as_object().into_iter().flatten() {
        let matched = match op.as_str() {
            "StringEquals" => value.as_str() == expected.as_str(),
            "BooleanEquals" => value.as_bool() == expected.as_bool(),
            "NumericEquals" => value.as_f64() == expected.as_f64(),
            "NumericGreaterThan" => value
                .as_f64()
                .zip(expected.as_f64())
                .is_some_and(|(a, b)| a > b),
            "NumericLessThan" => value
                .as_f64()
                .zip(expected.as_f64())
                .is_some_and(|(a, b)| a < b),
            _ => continue,
        };
        return Ok(matched);
    }
    Err(Failure::runtime(format!(
        "choice rule on `{variable}` has no supported comparison"
    )))
}
