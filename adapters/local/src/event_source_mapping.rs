//! What Lambda's event source mapping does for the projector, emulated for the
//! local change feeds (the embedded stores' and the DynamoDB stream poller's):
//! a batch of stream records in, the function's partial batch failures
//! honoured by retrying from the first failed record, a record that keeps
//! failing set aside as a DLQ would take it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord, StreamViewType};
use items_aws::dynamodb_codec::{EVENTS_PARTITION_KEY, EVENTS_SORT_KEY, event_to_item};
use items_aws::projector::project_events;
use items_domain::Event;
use items_domain::ports::StoreError;
use items_domain::service::ProjectorService;
use tokio::sync::watch;

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

/// An embedded event log as a change feed reads it: events in sequence order
/// (1, 2, ...), a signal when new ones are committed, and where the projector
/// got to.
#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// Up to `max` events after sequence number `after`, with their numbers.
    async fn read_after(&self, after: u64, max: usize) -> Result<Vec<(u64, Event)>, StoreError>;
    /// Changes whenever events are committed.
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// The sequence number up to which events are projected (0: none).
    async fn projected_position(&self) -> Result<u64, StoreError>;
    async fn save_projected_position(&self, position: u64) -> Result<(), StoreError>;
}

/// Pause after the log itself failed, before reading it again.
const LOG_RETRY: Duration = Duration::from_millis(500);

/// Feeds every committed event to the projector handler, in order, as stream
/// records in batches of up to `batch_size`, from the projector's saved
/// position (so a restart neither replays what is projected nor misses
/// anything). Runs until dropped.
pub async fn run_change_feed(log: Arc<dyn ChangeLog>, projector: Arc<ProjectorService>, batch_size: usize) {
    let mut head = log.subscribe();
    let mut checkpoint = loop {
        match log.projected_position().await {
            Ok(position) => break position,
            Err(error) => {
                tracing::error!(%error, "cannot read the projector's position; retrying");
                tokio::time::sleep(LOG_RETRY).await;
            }
        }
    };
    let mut attempts = 0u32;
    loop {
        let batch = match log.read_after(checkpoint, batch_size).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "cannot read the event log; retrying");
                tokio::time::sleep(LOG_RETRY).await;
                continue;
            }
        };
        if batch.is_empty() {
            if head.changed().await.is_err() {
                return;
            }
            continue;
        }
        let records = batch
            .iter()
            .map(|(sequence, event)| {
                insert_record(event, sequence.to_string()).unwrap_or_else(|error| {
                    // The handler reports an empty image as malformed.
                    tracing::error!(%error, "cannot encode stream record");
                    let mut record = EventRecord::default();
                    record.event_name = "INSERT".into();
                    record.change.sequence_number = Some(sequence.to_string());
                    record
                })
            })
            .collect();
        let previous = checkpoint;
        match deliver(&projector, records).await {
            None => {
                checkpoint = batch.last().map_or(checkpoint, |(sequence, _)| *sequence);
                attempts = 0;
            }
            Some(failed) => {
                checkpoint = batch[failed].0 - 1;
                attempts = if failed == 0 { attempts + 1 } else { 1 };
                if attempts >= MAX_ATTEMPTS {
                    tracing::error!(sequence = batch[failed].0, "setting aside a record that keeps failing");
                    checkpoint += 1;
                    attempts = 0;
                } else {
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        }
        if checkpoint != previous
            && let Err(error) = log.save_projected_position(checkpoint).await
        {
            // Not fatal: after a restart the projector re-applies from the
            // last saved position, and its writes are version-guarded.
            tracing::warn!(%error, "cannot save the projector's position");
        }
    }
}
