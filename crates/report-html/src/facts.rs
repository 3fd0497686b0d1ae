//! What the page shows beyond report.json, saved as `_runs/<run id>/facts.json`
//! so `stedi report --html` can draw the page again: each state's outcome and
//! timing, the landing inputs, sample quarantined lines, the transitions'
//! results (the page of a run that failed before the gate has no report.json).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zones::contract::TransitionResult;
use zones::{Policy, RunId, Table};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    pub run_id: RunId,
    pub policy: Policy,
    /// Who wrote these facts last: `quality-gate`, `stedi run`, `stedi run --aws`.
    pub written_by: String,
    /// RFC 3339 UTC time at which they were written.
    #[serde(default)]
    pub written_at: Option<String>,
    /// Wall seconds of the whole run, when the writer saw it whole.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Each state that ran, in the order it was entered. The gate only knows
    /// the transitions' results and itself; the runner knows every state.
    #[serde(default)]
    pub states: Vec<StateRecord>,
    /// How the run failed, if it did.
    #[serde(default)]
    pub failure: Option<RunFailure>,
    #[serde(default)]
    pub landing: Vec<LandingInput>,
    #[serde(default)]
    pub samples: Vec<QuarantineSamples>,
    /// The transitions' results (what the gate receives), so a run that failed
    /// before the gate still shows the flow of the transitions that finished.
    #[serde(default)]
    pub results: BTreeMap<Table, TransitionResult>,
    /// Versions of what produced the run (crate, state machine definition).
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
}

impl RunFacts {
    pub fn new(run_id: &RunId, policy: Policy, written_by: &str) -> RunFacts {
        RunFacts {
            run_id: run_id.clone(),
            policy,
            written_by: written_by.to_string(),
            written_at: None,
            seconds: None,
            states: Vec::new(),
            failure: None,
            landing: Vec::new(),
            samples: Vec::new(),
            results: BTreeMap::new(),
            versions: BTreeMap::new(),
        }
    }

    /// The record of state `name` (the last one if a state ran several times).
    pub fn state(&self, name: &str) -> Option<&StateRecord> {
        self.states.iter().rev().find(|s| s.name == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateStatus {
    Succeeded,
    /// The state failed and its error ended the run (or its branch).
    Failed,
    /// The state failed and a Catch routed the error to another state.
    Caught,
    /// Entered, not finished (the writer is that state).
    Running,
    /// No record of it in this run.
    NotRun,
}

impl StateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StateStatus::Succeeded => "succeeded",
            StateStatus::Failed => "failed",
            StateStatus::Caught => "caught error",
            StateStatus::Running => "running",
            StateStatus::NotRun => "not run",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateRecord {
    pub name: String,
    pub status: StateStatus,
    /// Seconds from the start of the run to entering the state (when known).
    #[serde(default)]
    pub started: Option<f64>,
    pub seconds: f64,
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
    /// A Distributed Map state: the items of its last Map Run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<MapItems>,
}

/// The items of a Distributed Map's Map Run (a batch counts as its items).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapItems {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
}

impl MapItems {
    /// `64 items` when all succeeded, else `60 of 64 items succeeded, 1 failed`.
    pub fn describe(&self) -> String {
        if self.succeeded == self.total {
            let s = if self.total == 1 { "" } else { "s" };
            format!("{} item{s}", self.total)
        } else {
            format!(
                "{} of {} items succeeded, {} failed",
                self.succeeded, self.total, self.failed
            )
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    /// The state whose error failed the run, when known.
    pub state: Option<String>,
    pub error: String,
    pub cause: String,
}

/// The landing objects of one dataset as the run saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandingInput {
    pub dataset: String,
    pub objects: u64,
    pub bytes: u64,
}

/// A few quarantined rows of one table for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineSamples {
    pub table: Table,
    pub reason: String,
    pub lines: Vec<SampleLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleLine {
    pub source: String,
    pub line: Option<u64>,
    pub raw: String,
}
