//! Tests of the `stedi` crate: the ASL interpreter and the seed generator.

mod asl;
mod seed;
mod sfn;
