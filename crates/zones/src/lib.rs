//! `zones`: the pure core of the STEDI lakehouse.
//!
//! Dataset schemas (parsed from the Athena DDL in `infra/athena/`), the
//! landing parser with its quarantine, the two policies, the five transitions
//! as Polars plans and what each writes, the row accounting every unit of
//! work produces (`counts`), the quality checks as SQL text, the run report, the
//! retention rules (what vacuum deletes), and the request/response contract
//! passed between states.
//!
//! Deliberately absent: any I/O, environment variables, clocks or AWS crates.
//! Bytes and frames come in, frames and plain values go out; the `lakehouse`
//! crate does the reading, writing, cataloguing and querying.

pub mod checks;
pub mod contract;
pub mod counts;
pub mod erasure;
pub mod landing;
pub mod layout;
pub mod policy;
pub mod pseudonym;
pub mod quarantine;
pub mod reading_rule;
pub mod report;
pub mod retention;
pub mod run_id;
pub mod schema;
pub mod transitions;

/// `statemachine.asl.json`, compiled in: the local runner executes it and the
/// run report draws it, in the `stedi` binary and in the quality-gate Lambda alike.
pub const STATE_MACHINE: &str = include_str!("../../../statemachine.asl.json");

pub use contract::{
    ErrorName, GateRequest, GateResult, TableRef, TaskError, TransitionRequest, TransitionResult,
};
pub use counts::RowCounts;
pub use layout::{Table, Zone};
pub use policy::Policy;
pub use pseudonym::{ErasureKey, PseudonymKey};
pub use run_id::RunId;
pub use schema::Dataset;
