//! What Lambda's event source mapping does for the projector, emulated for the
//! local change feeds (the embedded store's and the DynamoDB stream poller's):
//! a batch of stream records in, the function's partial batch failures
//! honoured by retrying from the first failed record, a record that keeps
//! failing set aside as a DLQ would take it.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord, StreamViewType};
use items_aws::dynamodb_codec::{EVENTS_PARTITION_KEY, EVENTS_SORT_KEY, event_to_item};
use items_aws::projector::project_events;
use items_domain::Event;
use items_domain::service::ProjectorService;

/// Backoff between retries of a failed batch, as Lambda would pause.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Attempts at one record before it is set aside, as a DLQ would take it.
pub const MAX_ATTEMPTS: u32 = 5;

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

/// The stream record DynamoDB would deliver for an inserted event.
pub fn insert_record(event: &Event, sequence_number: String) -> Result<EventRecord, serde_dynamo::Error> {
    let image: serde_dynamo::Item = event_to_item(event)?;
    let mut keys = serde_dynamo::Item::from(std::collections::HashMap::<String, serde_dynamo::AttributeValue>::new());
    for key in [EVENTS_PARTITION_KEY, EVENTS_SORT_KEY] {
        if let Some(value) = image.get(key) {
            keys.insert(key.to_owned(), value.clone());
        }
    }
    let mut record = EventRecord::default();
    record.event_id = event.event_id.to_string();
    record.event_name = "INSERT".into();
    record.event_source = Some("aws:dynamodb".into());
    record.event_version = Some("1.1".into());
    record.aws_region = "local".into();
    record.change.approximate_creation_date_time = event.occurred_at;
    record.change.keys = keys;
    record.change.new_image = image;
    record.change.sequence_number = Some(sequence_number);
    record.change.stream_view_type = Some(StreamViewType::NewImage);
    Ok(record)
}
