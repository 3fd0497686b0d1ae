mod aws;
mod consistency;
mod end_to_end;
mod lambda_runtime_api;
mod moto;
mod support;
