//! `items` end to end: serve, replay, tokens, load and faults, as a user runs them: one test binary for the crate (one link, not one per file).

mod support;

mod durable_store;
mod e2e;
mod hardening;
mod hosted_ui_serve;
mod load_faults;
mod quarantine;
mod replay;
mod transfer;
