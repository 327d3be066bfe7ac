//! The laptop stack: gateway, Hosted UI, limits, and the local stores' conformance: one test binary for the crate (one link, not one per file).

mod support;

mod aws_limits;
mod gateway_auth;
mod hosted_ui;
mod server_limits;
mod sqlite_conformance;
mod volatile_conformance;
