//! Tests of the I/O layer on a temporary local warehouse.

mod catalog;
mod map_results;
mod store;
mod tables;
