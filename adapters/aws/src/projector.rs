//! The projector's handler (the `project-events` function): a DynamoDB stream
//! batch in, partial batch failures out.

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use items_domain::Event;
use items_domain::event::DecodeError;
use items_domain::service::ProjectorService;

use crate::dynamodb_codec::{RecordError, event_from_item};
use crate::metrics::{self, Counter};

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
    let now = chrono::Utc::now();
    let processed = outcome.failed.as_ref().map_or(events.len(), |(index, _)| *index);
    for event in &events[..processed] {
        metrics::projection_lag((now - event.occurred_at).num_milliseconds() as f64);
    }
    metrics::count(Counter::RecordsProjected, outcome.applied as u64);
    metrics::count(Counter::RecordsAlreadyNewer, outcome.already_newer as u64);
    let failed_at = match outcome.failed {
        Some((index, error)) => {
            tracing::error!(%error, event_id = %events[index].event_id, "projection failed");
            Some(sequence_numbers[index].clone())
        }
        None => malformed_at,
    };
    metrics::count(Counter::RecordsFailed, u64::from(failed_at.is_some()));
    tracing::info!(
        records = batch.records.len(),
        applied = outcome.applied,
        already_newer = outcome.already_newer,
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
