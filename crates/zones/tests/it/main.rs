//! Exact-value tests of the pure core on small inputs built by hand.

mod checks;
mod contract;
mod erasure;
mod landing;
mod layout;
mod schema;
mod support;
mod transitions;
