//! Items API laptop stack: what emulates AWS on a developer's machine, in front
//! of the same handlers the Lambdas run (`items-aws`). Nothing here is deployed.
//!
//! - [`gateway`]: the local API Gateway (REST, Lambda proxy, Cognito authorizer) on axum.
//! - [`server`]: the HTTP server under it, with the limits a public endpoint needs.
//! - [`auth`]: Cognito access-token verification (JWT/JWKS) and the development identity provider.
//! - [`hosted_ui`]: a local Cognito Hosted UI (OAuth2 endpoints, sign-in form, users).
//! - [`web_app`]: the browser page served at `/`.
//! - [`backend`]: the stores behind `items serve` opened in one place, their projection running.
//! - [`sqlite`]: the durable embedded store (event log, idempotency records, read model,
//!   projector position in one SQLite file), the default of `items serve`.
//! - [`volatile`]: the volatile in-process store (`items serve --in-memory`).
//! - [`event_source_mapping`]: what Lambda's event source mapping does for the projector:
//!   batches in, partial batch failures honoured, retries, records set aside; and the
//!   change feed that drives it from a local store's log (SQLite or volatile).
//! - [`stream_poller`]: reads a DynamoDB stream (DynamoDB Local) into that mapping.
//! - [`checkpoints`]: replay checkpoints in a file, for `items replay --resume`.
//! - [`data_dir`]: the private data dir and the secrets in it.

pub mod auth;
pub mod backend;
pub mod checkpoints;
pub mod data_dir;
pub mod event_source_mapping;
pub mod gateway;
pub mod hosted_ui;
pub mod server;
pub mod sqlite;
pub mod stream_poller;
pub mod volatile;
pub mod web_app;
