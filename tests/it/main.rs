mod aws;
mod cases;
mod consistency;
mod end_to_end;
mod landing;
mod moto;
mod support;
