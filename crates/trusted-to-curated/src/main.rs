//! Lambda entry point: wires lambda_runtime to [`trusted_to_curated::handle`] (a transition, a Map child's time buckets, or the reduce).

fn main() -> Result<(), lambda_runtime::Error> {
    lakehouse::lambda::serve(trusted_to_curated::handle)
}
