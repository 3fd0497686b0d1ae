mod aws;
mod consistency;
mod end_to_end;
mod moto;
mod run_safety;
mod support;
