//! DynamoDB adapters: the event store, the read model, the replay scan and
//! batch writer, and table creation for local runs and tests.

pub mod codec;
mod event_store;
mod idempotency;
mod read_model;
mod replay;
mod tables;

pub use event_store::DynamoEventStore;
pub use read_model::{DynamoReadModel, TOMBSTONE_LIFETIME, TTL_ATTRIBUTE};
pub use replay::BatchWriter;
pub use tables::{ensure_events_table, ensure_events_table_without_stream, ensure_items_table};

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use items_domain::ports::StoreError;

/// Maps an SDK failure (after the SDK's own retries) to the port's error. The
/// detail is for logs; clients only see "unavailable".
pub(crate) fn store_error<E, R>(operation: &str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!("{operation}: {}", DisplayErrorContext(&error)))
}

/// Table names, from `EVENTS_TABLE` and `ITEMS_TABLE` as in the Lambdas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub events: String,
    pub items: String,
}

impl Default for TableNames {
    fn default() -> Self {
        Self { events: "items-api-events".into(), items: "items-api-items".into() }
    }
}
