mod consistency;
mod end_to_end;
mod support;
