//! Workspace-level integration tests live in `it/`: the `stedi` binary end to
//! end on generated data, and consistency between the state machine, the
//! handlers, the crates and the error names.
