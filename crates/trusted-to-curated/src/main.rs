//! Lambda entry point: wires lambda_runtime to [`trusted_to_curated::run`].

fn main() -> Result<(), lambda_runtime::Error> {
    lakehouse::lambda::serve(trusted_to_curated::run)
}
