//! Items API production adapters: what the four Lambdas link, and nothing of
//! the laptop stack (that is `items-local`).
//!
//! - [`apigw`]: the API handlers (API Gateway REST proxy events in and out) that the
//!   Lambdas and the local gateway both run.
//! - [`routes`]: the route table (method, resource, function, scope) that the local
//!   gateway, the handlers and the Pulumi program all follow.
//! - [`compose`]: one composition per function, used by the Lambda mains and `items serve`.
//! - [`projector`]: the projector's handler for DynamoDB stream batches, with partial
//!   batch failures.
//! - [`quarantine`]: where the projector sets aside what it cannot apply, on
//!   every backend (in AWS a partition of the events table), and the redrive.
//! - [`response_headers`]: the CORS and security headers of every API response, in
//!   Lambda and locally.
//! - [`dynamodb`]: the DynamoDB event store, read model, replay scan and batch writer,
//!   and table creation for local runs and tests.
//! - [`dynamodb::codec`]: the DynamoDB item codec: events and items as DynamoDB items,
//!   for the SDK and for stream records.
//! - [`cursor`]: opaque, tamper-evident page cursors.
//! - [`system`]: the real clock and id generator.
//! - [`lambda_env`]: the functions' settings and their AWS SDK configuration.
//! - [`metrics`]: the functions' counters, as CloudWatch EMF lines and Prometheus text.
//! - [`limits`]: the limits AWS puts on the API (Lambda's response size, API Gateway's
//!   timeout, payload and header sizes), in one place.

pub mod apigw;
pub mod compose;
pub mod cursor;
pub mod dynamodb;
pub mod lambda_env;
pub mod limits;
pub mod metrics;
pub mod projector;
pub mod quarantine;
pub mod response_headers;
pub mod routes;
pub mod system;
