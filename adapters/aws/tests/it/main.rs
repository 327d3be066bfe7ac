//! Handlers, the projector and the DynamoDB adapter, against fixtures and DynamoDB Local: one test binary for the crate (one link, not one per file).

mod support;

mod command_handlers;
mod dynamodb_conformance;
mod handlers;
mod projector_handler;
mod schemas;
