//! Lambda entry point: wires lambda_runtime to [`quality_gate::handle`] (the gate, or a vacuum).

fn main() -> Result<(), lambda_runtime::Error> {
    lakehouse::lambda::serve(quality_gate::handle)
}
