//! Items API adapters: implementations of the domain's ports and the mapping
//! between AWS event shapes and the application services.
//!
//! - [`apigw`]: the API handlers (API Gateway REST proxy events in and out) that the
//!   Lambdas and the local gateway both run.
//! - [`stream`]: the projector handler for DynamoDB stream events.
//! - [`embedded`]: in-process event store, read model and change feed.
//! - [`dynamodb`]: the DynamoDB event store and read model, tables, stream poller.
//! - [`auth`]: Cognito access-token verification and the development identity provider.
//! - [`gateway`]: the local API Gateway emulation (axum) used by `items serve`.
//! - [`hosted_ui`]: a local Cognito Hosted UI (OAuth2 endpoints, sign-in form, users).
//! - [`web_app`]: the browser page served at `/`.

pub mod apigw;
pub mod auth;
pub mod checkpoints;
pub mod cursor;
pub mod dynamodb;
pub mod embedded;
pub mod feed;
pub mod gateway;
pub mod hosted_ui;
pub mod records;
pub mod server;
pub mod stream;
pub mod system;
pub mod web_app;
