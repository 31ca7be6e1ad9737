//! Terraform resources: schema, plan and CRUD, top-down. They know nothing of wire formats.

pub mod console;
mod docker_client;
pub mod gateway;
pub mod image;
pub mod network;
pub mod session;
pub mod sessions;
pub mod terminal;
pub mod vm;
