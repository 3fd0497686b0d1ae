mod aws;
mod browser;
mod consistency;
mod end_to_end;
mod moto;
mod run_safety;
mod support;
