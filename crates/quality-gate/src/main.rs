//! Lambda entry point: wires lambda_runtime to [`quality_gate::run`].

fn main() -> Result<(), lambda_runtime::Error> {
    lakehouse::lambda::serve(quality_gate::run)
}
