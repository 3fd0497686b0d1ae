//! Tests of the I/O layer on a temporary local warehouse.

mod catalog;
mod store;
mod tables;
