//! Lambda entry point: wires lambda_runtime to [`landing_to_trusted::handle`] (a transition or the Erase state).

fn main() -> Result<(), lambda_runtime::Error> {
    lakehouse::lambda::serve(landing_to_trusted::handle)
}
