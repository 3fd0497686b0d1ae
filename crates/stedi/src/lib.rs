//! `stedi`: the command-line face of the STEDI lakehouse: `seed` writes
//! synthetic landing data, `run` executes statemachine.asl.json through the
//! local runner (or starts it on AWS Step Functions, `sfn`),
//! `query`/`tables`/`report` look at the result, `vacuum` deletes what
//! retention no longer keeps.
//!
//! Deliberately absent: business rules (`zones`) and storage details
//! (`lakehouse`); this crate wires them to a terminal.

pub mod asl;
pub mod listing;
pub mod output;
pub mod runner;
pub mod seed;
pub mod sfn;
pub mod summary;
pub mod vacuum;
