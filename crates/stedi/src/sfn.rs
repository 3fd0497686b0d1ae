//! `stedi run --aws`: starts (or redrives) an execution of the deployed
//! state machine, prints each state as it finishes and each Distributed
//! Map Run's items as they progress (DescribeMapRun), and returns how the
//! execution ended. A redrive redrives the failed Map Runs too: Step
//! Functions re-runs only their failed items. `--stack` resolves the deployment from the SAM stack's outputs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use lakehouse::aws::{Aws, sdk_error};
use zones::contract::TransitionResult;
use zones::{Policy, Table};

use crate::asl::{Failure, MapRunCounts, Outcome, StateRun};

/// What a deployed stack tells `stedi` (its CloudFormation outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub state_machine_arn: String,
    pub warehouse: String,
    pub glue_database: String,
    pub athena_workgroup: String,
    /// The pseudonym key's secret (a stack from before it had one: None).
    pub pseudonym_secret: Option<String>,
    /// The erasure key's secret (a stack from before it had one: None).
    pub erasure_secret: Option<String>,
}

/// Reads the outputs of the SAM stack `stack`.
pub fn deployment(aws: &Aws, stack: &str) -> Result<Deployment> {
    let client = aws_sdk_cloudformation::Client::new(&aws.config);
    let out = aws
        .block_on(client.describe_stacks().stack_name(stack).send())
        .map_err(sdk_error("CloudFormation", "DescribeStacks", stack))?;
    let outputs: HashMap<&str, &str> = out
        .stacks()
        .first()
        .with_context(|| format!("no stack named `{stack}`"))?
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?, o.output_value()?)))
        .collect();
    let get = |key: &str| {
        outputs
            .get(key)
            .map(|v| v.to_string())
            .with_context(|| format!("stack `{stack}` has no output `{key}`: is it the STEDI stack (infra/template.yaml)?"))
    };
    Ok(Deployment {
        state_machine_arn: get("StateMachineArn")?,
        warehouse: get("WarehouseUri")?,
        glue_database: get("GlueDatabase")?,
        athena_workgroup: get("AthenaWorkGroup")?,
        pseudonym_secret: get("PseudonymKeySecretArn").ok(),
        erasure_secret: get("ErasureKeySecretArn").ok(),
    })
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub arn: String,
    /// The execution's name, which the definition uses as the run id.
    pub name: String,
    pub status: ExecutionStatus,
    pub error: Option<String>,
    pub cause: Option<String>,
}

#[derive(Debug)]
pub struct Executions<'a> {
    aws: &'a Aws,
    client: Client,
    /// Between two reads of a running execution's history.
    pub poll: Duration,
}

impl<'a> Executions<'a> {
    pub fn new(aws: &'a Aws) -> Self {
        Executions {
            client: Client::new(&aws.config),
            aws,
            poll: Duration::from_secs(2),
        }
    }

    /// Starts an execution named `run_id` (the definition's run id).
    pub fn start(&self, state_machine_arn: &str, run_id: &str, policy: Policy) -> Result<String> {
        let input = serde_json::json!({ "policy": policy }).to_string();
        let out = self
            .aws
            .block_on(
                self.client
                    .start_execution()
                    .state_machine_arn(state_machine_arn)
                    .name(run_id)
                    .input(input)
                    .send(),
            )
            .map_err(sdk_error(
                "Step Functions",
                "StartExecution",
                state_machine_arn,
            ))?;
        Ok(out.execution_arn().to_string())
    }

    /// Redrives a failed execution from the state that failed; returns the
    /// id of the last event before the redrive (earlier events are not reprinted).
    pub fn redrive(&self, execution_arn: &str) -> Result<i64> {
        let seen = self
            .history(execution_arn)?
            .last()
            .map_or(0, HistoryEvent::id);
        self.aws
            .block_on(
                self.client
                    .redrive_execution()
                    .execution_arn(execution_arn)
                    .send(),
            )
            .map_err(sdk_error(
                "Step Functions",
                "RedriveExecution",
                execution_arn,
            ))?;
        Ok(seen)
    }

    fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>> {
        self.aws.block_on(async {
            let mut pages = self
                .client
                .get_execution_history()
                .execution_arn(execution_arn)
                .into_paginator()
                .send();
            let mut events = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(sdk_error(
                    "Step Functions",
                    "GetExecutionHistory",
                    execution_arn,
                ))?;
                events.extend_from_slice(page.events());
            }
            Ok(events)
        })
    }

    /// Every state of the execution as it ran, and the transitions' results,
    /// read from its history.
    pub fn timeline(
        &self,
        execution_arn: &str,
    ) -> Result<(Vec<StateRun>, BTreeMap<Table, TransitionResult>)> {
        Ok(timeline_of(&self.history(execution_arn)?))
    }

    /// A Map Run's item counts (DescribeMapRun).
    fn map_run_counts(&self, map_run_arn: &str) -> Result<MapRunCounts> {
        let described = self
            .aws
            .block_on(
                self.client
                    .describe_map_run()
                    .map_run_arn(map_run_arn)
                    .send(),
            )
            .map_err(sdk_error("Step Functions", "DescribeMapRun", map_run_arn))?;
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        Ok(described
            .item_counts()
            .map(|c| MapRunCounts {
                total: count(c.total()),
                pending: count(c.pending()),
                running: count(c.running()),
                succeeded: count(c.succeeded()),
                failed: count(c.failed() + c.timed_out() + c.aborted()),
            })
            .unwrap_or_default())
    }

    /// Follows the execution until it ends, printing each event after `seen`,
    /// and each Map Run's counts whenever they change.
    pub fn follow(
        &self,
        execution_arn: &str,
        mut seen: i64,
        print: &mut dyn FnMut(String),
    ) -> Result<Ended> {
        let mut entered: HashMap<String, f64> = HashMap::new();
        let mut current = String::new();
        // Map Runs started and not yet reported ended: (state, ARN, last line).
        let mut map_runs: Vec<(String, String, String)> = Vec::new();
        loop {
            // The status first: events up to its end are in the history read after it.
            let described = self
                .aws
                .block_on(
                    self.client
                        .describe_execution()
                        .execution_arn(execution_arn)
                        .send(),
                )
                .map_err(sdk_error(
                    "Step Functions",
                    "DescribeExecution",
                    execution_arn,
                ))?;
            for event in self.history(execution_arn)? {
                if event.id() <= seen {
                    continue;
                }
                seen = event.id();
                if let Some(arn) = event
                    .map_run_started_event_details()
                    .and_then(|d| d.map_run_arn())
                {
                    map_runs.push((current.clone(), arn.to_string(), String::new()));
                }
                let ended = matches!(
                    event.r#type(),
                    HistoryEventType::MapRunSucceeded
                        | HistoryEventType::MapRunFailed
                        | HistoryEventType::MapRunAborted
                );
                if ended && let Some(i) = map_runs.iter().position(|(s, _, _)| *s == current) {
                    let (state, arn, _) = map_runs.remove(i);
                    let counts = self.map_run_counts(&arn)?;
                    print(map_run_line(&state, &counts, false));
                }
                if let Some(line) = describe(&event, &mut entered, &mut current) {
                    print(line);
                }
            }
            for (state, arn, last) in &mut map_runs {
                let line = map_run_line(state, &self.map_run_counts(arn)?, true);
                if line != *last {
                    print(line.clone());
                    *last = line;
                }
            }
            let status = described.status().clone();
            if !matches!(
                status,
                ExecutionStatus::Running | ExecutionStatus::PendingRedrive
            ) {
                return Ok(Ended {
                    arn: execution_arn.to_string(),
                    name: described.name().unwrap_or_default().to_string(),
                    status,
                    error: described.error().map(str::to_string),
                    cause: described.cause().map(str::to_string),
                });
            }
            std::thread::sleep(self.poll);
        }
    }
}

/// A Map Run's line: `  map    <state> 12/40 items succeeded, 1 failed`,
/// with the items still running while it runs.
fn map_run_line(state: &str, counts: &MapRunCounts, running: bool) -> String {
    let mut line = format!("  map    {state:<24} {}", counts.progress());
    if running {
        line.push_str(&format!(", {} running", counts.running));
    }
    line
}

/// One printed line for the events a person follows, in the local runner's format.
fn describe(
    event: &HistoryEvent,
    entered: &mut HashMap<String, f64>,
    current: &mut String,
) -> Option<String> {
    let at = event.timestamp().as_secs_f64();
    if let Some(details) = event.state_entered_event_details() {
        *current = details.name().to_string();
        entered.insert(current.clone(), at);
        return None;
    }
    if let Some(details) = event.state_exited_event_details() {
        let seconds = entered.get(details.name()).map_or(0.0, |t| at - t);
        return Some(format!("  done   {:<24} {seconds:>7.2}s", details.name()));
    }
    if *event.r#type() == HistoryEventType::ExecutionRedriven {
        return Some("  redriven".to_string());
    }
    let failure = failure_of(event)?;
    let (error, cause) = failure;
    Some(format!(
        "  failed {current:<24} {}: {}",
        error.unwrap_or("(no error name)"),
        cause.unwrap_or("(no cause)")
    ))
}

/// The error name and cause of a history event that reports a failure (a
/// Task, a Lambda function, or the execution failed); None for any other event.
fn failure_of(event: &HistoryEvent) -> Option<(Option<&str>, Option<&str>)> {
    match event.r#type() {
        HistoryEventType::TaskFailed => event
            .task_failed_event_details()
            .map(|d| (d.error(), d.cause())),
        HistoryEventType::LambdaFunctionFailed => event
            .lambda_function_failed_event_details()
            .map(|d| (d.error(), d.cause())),
        HistoryEventType::ExecutionFailed => event
            .execution_failed_event_details()
            .map(|d| (d.error(), d.cause())),
        HistoryEventType::MapRunFailed => event
            .map_run_failed_event_details()
            .map(|d| (d.error(), d.cause())),
        _ => None,
    }
}

/// The states of an execution history as they ran: entered, exited (a Task
/// whose last attempt failed yet exited had its error caught), or left
/// unfinished by the error that failed the execution; and the transitions'
/// results, from the last state output that carries them (`$.results`).
pub fn timeline_of(events: &[HistoryEvent]) -> (Vec<StateRun>, BTreeMap<Table, TransitionResult>) {
    struct Open {
        name: String,
        at: f64,
        failures: Vec<Failure>,
        last_failed: bool,
    }
    let start = events.first().map_or(0.0, |e| e.timestamp().as_secs_f64());
    let mut runs = Vec::new();
    let mut results = BTreeMap::new();
    let mut open: Option<Open> = None;
    let close = |open: Open, at: f64, exited: bool, runs: &mut Vec<StateRun>| {
        let failed = open.last_failed || !exited;
        let retries = open.failures.len().saturating_sub(usize::from(failed)) as u32;
        let last = open.failures.last().cloned();
        let outcome = match (exited, last) {
            (true, Some(f)) if failed => Outcome::Caught(f),
            (true, _) => Outcome::Succeeded,
            (false, Some(f)) => Outcome::Failed(f),
            (false, None) => Outcome::Failed(Failure {
                error: "States.Failed".into(),
                cause: String::new(),
            }),
        };
        runs.push(StateRun {
            name: open.name,
            started: Duration::from_secs_f64((open.at - start).max(0.0)),
            seconds: (at - open.at).max(0.0),
            retries,
            outcome,
        });
    };
    for event in events {
        let at = event.timestamp().as_secs_f64();
        if let Some(d) = event.state_entered_event_details() {
            if let Some(o) = open.take() {
                close(o, at, true, &mut runs);
            }
            open = Some(Open {
                name: d.name().to_string(),
                at,
                failures: Vec::new(),
                last_failed: false,
            });
        } else if let Some(d) = event.state_exited_event_details() {
            if let Some(output) = d
                .output()
                .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
                && let Some(map) = output.get("results").and_then(|r| r.as_object())
            {
                for value in map.values() {
                    if let Ok(r) = serde_json::from_value::<TransitionResult>(value.clone()) {
                        results.insert(r.transition, r);
                    }
                }
            }
            if let Some(o) = open.take() {
                close(o, at, true, &mut runs);
            }
        } else if matches!(
            event.r#type(),
            HistoryEventType::TaskSucceeded | HistoryEventType::LambdaFunctionSucceeded
        ) {
            if let Some(o) = open.as_mut() {
                o.last_failed = false;
            }
        } else {
            if let (Some((error, cause)), Some(o)) = (failure_of(event), open.as_mut()) {
                let failure = Failure {
                    error: error.unwrap_or("States.Failed").to_string(),
                    cause: cause.unwrap_or_default().to_string(),
                };
                // The Fail state's own error repeats the caught one: not a retry.
                if *event.r#type() != HistoryEventType::ExecutionFailed || o.failures.is_empty() {
                    o.failures.push(failure);
                }
                o.last_failed = true;
            }
        }
    }
    if let Some(o) = open.take() {
        let at = events.last().map_or(o.at, |e| e.timestamp().as_secs_f64());
        close(o, at, false, &mut runs);
    }
    (runs, results)
}

#[cfg(test)]
mod tests {
    use aws_sdk_sfn::primitives::DateTime;
    use aws_sdk_sfn::types::MapRunFailedEventDetails;

    use super::*;

    #[test]
    fn a_map_run_is_followed_in_the_local_runners_words() {
        let counts = MapRunCounts {
            total: 40,
            pending: 20,
            running: 2,
            succeeded: 17,
            failed: 1,
        };
        assert_eq!(
            map_run_line("AccelerometerTrusted", &counts, true),
            "  map    AccelerometerTrusted     17/40 items succeeded, 1 failed, 2 running"
        );
        assert_eq!(
            map_run_line("AccelerometerTrusted", &counts, false),
            "  map    AccelerometerTrusted     17/40 items succeeded, 1 failed"
        );
        // A Map Run that failed names its error under the Map state.
        let failed = HistoryEvent::builder()
            .id(7)
            .timestamp(DateTime::from_secs(100))
            .r#type(HistoryEventType::MapRunFailed)
            .map_run_failed_event_details(
                MapRunFailedEventDetails::builder()
                    .error("States.ExceedToleratedFailureThreshold")
                    .cause("2 of 40 items failed")
                    .build(),
            )
            .build()
            .unwrap();
        let mut current = "AccelerometerTrusted".to_string();
        assert_eq!(
            describe(&failed, &mut HashMap::new(), &mut current).as_deref(),
            Some(
                "  failed AccelerometerTrusted     States.ExceedToleratedFailureThreshold: 2 of 40 items failed"
            )
        );
    }
}
