//! Tests of the `stedi` crate: the ASL interpreter (its Map state in
//! `map`) and the seed generator.

mod asl;
mod map;
mod seed;
mod sfn;
