//! The projector's handler: a DynamoDB stream batch in, partial batch failures out.

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use items_domain::Event;
use items_domain::event::DecodeError;
use items_domain::service::ProjectorService;

use crate::records::{RecordError, event_from_item};

/// What one stream record holds for the projector.
#[derive(Debug)]
pub enum Decoded {
    Event(Box<Event>),
    /// Not for the projector: a modify/remove, a non-event partition, or an
    /// event type this code does not know yet (forward compatible).
    Skip(&'static str),
}

pub fn decode_record(record: &EventRecord) -> Result<Decoded, RecordError> {
    if record.event_name != "INSERT" {
        return Ok(Decoded::Skip("not an insert"));
    }
    match event_from_item(record.change.new_image.clone()) {
        Ok(Some(event)) => Ok(Decoded::Event(Box::new(event))),
        Ok(None) => Ok(Decoded::Skip("not an event record")),
        Err(RecordError::Decode(DecodeError::UnknownType(event_type))) => {
            tracing::warn!(%event_type, "skipping event of unknown type");
            Ok(Decoded::Skip("unknown event type"))
        }
        Err(error) => Err(error),
    }
}

/// Applies a batch in order. With ReportBatchItemFailures, the first failed
/// record's sequence number is reported: Lambda retries from there, so the
/// records after it are not attempted now (they would be retried anyway).
pub async fn project_events(projector: &ProjectorService, batch: DynamoDbEvent) -> DynamoDbEventResponse {
    let mut events = Vec::with_capacity(batch.records.len());
    let mut sequence_numbers = Vec::with_capacity(batch.records.len());
    let mut malformed_at = None;
    let mut skipped = 0usize;
    for record in &batch.records {
        match decode_record(record) {
            Ok(Decoded::Event(event)) => {
                events.push(*event);
                sequence_numbers.push(record.change.sequence_number.clone());
            }
            Ok(Decoded::Skip(reason)) => {
                skipped += 1;
                tracing::debug!(reason, event_id = %record.event_id, "skipping record");
            }
            Err(error) => {
                tracing::error!(%error, event_id = %record.event_id, "malformed stream record");
                malformed_at = Some(record.change.sequence_number.clone());
                break;
            }
        }
    }
    let outcome = projector.project_batch(&events).await;
    let failed_at = match outcome.failed {
        Some((index, error)) => {
            tracing::error!(%error, event_id = %events[index].event_id, "projection failed");
            Some(sequence_numbers[index].clone())
        }
        None => malformed_at,
    };
    tracing::info!(
        records = batch.records.len(),
        applied = outcome.applied,
        ignored = outcome.ignored,
        skipped,
        failed = failed_at.is_some(),
        "projected batch"
    );
    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence_number) = failed_at {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = sequence_number;
        response.batch_item_failures.push(failure);
    }
    response
}

/// Builds the stream record DynamoDB would deliver for an inserted event, for
/// local change feeds.
pub fn insert_record(event: &Event, sequence_number: String) -> Result<EventRecord, serde_dynamo::Error> {
    let image: serde_dynamo::Item = crate::records::event_to_item(event)?;
    let mut keys = serde_dynamo::Item::from(std::collections::HashMap::<String, serde_dynamo::AttributeValue>::new());
    for key in [crate::records::EVENTS_PARTITION_KEY, crate::records::EVENTS_SORT_KEY] {
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
    record.change.stream_view_type = Some(aws_lambda_events::event::dynamodb::StreamViewType::NewImage);
    Ok(record)
}
