//! Drives the projector handler from a change feed, as Lambda's event source
//! mapping does: a batch in, its partial failures honoured by retrying from the
//! first failed record.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use items_domain::service::ProjectorService;

use crate::stream::project_events;

/// Backoff between retries of a failed batch, as Lambda would pause.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Runs the projector handler on `records` and returns the index of the first
/// record to deliver again, if any.
pub async fn deliver(projector: &ProjectorService, records: Vec<EventRecord>) -> Option<usize> {
    let sequence_numbers: Vec<Option<String>> = records.iter().map(|r| r.change.sequence_number.clone()).collect();
    let mut batch = DynamoDbEvent::default();
    batch.records = records;
    let response = project_events(projector, batch).await;
    let failed = response.batch_item_failures.first()?;
    // An unknown identifier means the whole batch failed, as in Lambda.
    Some(sequence_numbers.iter().position(|s| s.is_some() && *s == failed.item_identifier).unwrap_or(0))
}
