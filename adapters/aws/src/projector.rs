//! The projector's handler (the `project-events` function): a DynamoDB stream
//! batch in, partial batch failures out.

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use std::collections::HashSet;

use items_domain::event::STREAM_PREFIX;
use items_domain::ports::StoreError;
use items_domain::service::ProjectorService;
use items_domain::{Event, ItemId};

use crate::dynamodb::codec::{EVENTS_PARTITION_KEY, RecordError, event_from_item};
use crate::metrics::{self, Counter};

/// What one stream record holds for the projector.
#[derive(Debug)]
pub enum Decoded {
    Event(Box<Event>),
    /// Not for the projector: a modify/remove, or a non-event partition
    /// (idempotency records).
    Skip(&'static str),
}

/// Decodes one record. An event this code cannot read, an unknown type
/// included, is an error, never a skip: skipping it would let the version
/// guard move past an event that was never applied (the poison policy in
/// docs/architecture.md).
pub fn decode_record(record: &EventRecord) -> Result<Decoded, RecordError> {
    if record.event_name != "INSERT" {
        return Ok(Decoded::Skip("not an insert"));
    }
    match event_from_item(record.change.new_image.clone())? {
        Some(event) => Ok(Decoded::Event(Box::new(event))),
        None => Ok(Decoded::Skip("not an event record")),
    }
}

/// Why a record was not projected. Lambda's event source mapping sees only
/// the failed record's sequence number and retries either kind alike; the
/// local ones read the kind (see `items_local::event_source_mapping`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A dependency failed (throttled, unreachable): the same record will
    /// apply once it is back.
    Transient(String),
    /// This code cannot apply the record (undecodable, an unknown type, a
    /// stream it cannot fold): retrying changes nothing until the code or
    /// the data does.
    Poison(String),
}

impl Failure {
    fn from_store(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(reason) => Failure::Transient(reason),
            StoreError::Corrupt(reason) => Failure::Poison(reason),
        }
    }
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct Projected {
    pub applied: usize,
    pub already_newer: usize,
    pub skipped: usize,
    /// The index (in the batch's records) of the first record that failed,
    /// and why. That item's later records were not attempted; other items'
    /// records after it may have been applied (a retry from the failed
    /// record applies them again, which the version guard makes harmless).
    pub failed: Option<(usize, Failure)>,
}

/// The item a record belongs to, read from its key alone: a record whose
/// image cannot be decoded still names its stream, so only that item waits.
fn record_item(record: &EventRecord) -> Option<ItemId> {
    match record.change.keys.get(EVENTS_PARTITION_KEY)? {
        serde_dynamo::AttributeValue::S(stream_id) => stream_id.strip_prefix(STREAM_PREFIX)?.parse().ok().map(ItemId),
        _ => None,
    }
}

/// Applies a batch's records (each item's in order, items at once; see
/// [`ProjectorService::project_batch`]), and says which record failed first
/// and why. A record this code cannot decode holds back its own item's later
/// records only: every other item's records are applied, so when the
/// retries run out only that item's records reach the on-failure
/// destination. A record without a readable key holds back the rest of the
/// batch, as nothing says whose it is.
pub async fn project_records(projector: &ProjectorService, records: &[EventRecord]) -> Projected {
    let mut events = Vec::with_capacity(records.len());
    let mut positions = Vec::with_capacity(records.len());
    let mut projected = Projected::default();
    let mut undecodable: Option<(usize, Failure)> = None;
    let mut held: HashSet<ItemId> = HashSet::new();
    for (position, record) in records.iter().enumerate() {
        if record_item(record).is_some_and(|item| held.contains(&item)) {
            continue;
        }
        match decode_record(record) {
            Ok(Decoded::Event(event)) => {
                events.push(*event);
                positions.push(position);
            }
            Ok(Decoded::Skip(reason)) => {
                projected.skipped += 1;
                tracing::debug!(reason, event_id = %record.event_id, "skipping record");
            }
            Err(error) => {
                tracing::error!(%error, event_id = %record.event_id, "stream record cannot be decoded");
                undecodable.get_or_insert((position, Failure::Poison(error.to_string())));
                match record_item(record) {
                    Some(item) => {
                        held.insert(item);
                    }
                    None => break,
                }
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
    projected.applied = outcome.applied;
    projected.already_newer = outcome.already_newer;
    let failed = outcome.failed.map(|(index, error)| {
        tracing::error!(%error, event_id = %events[index].event_id, "projection failed");
        (positions[index], Failure::from_store(error))
    });
    // The first failure in batch order: Lambda retries from it.
    projected.failed = match (failed, undecodable) {
        (Some(failed), Some(undecodable)) => Some(if failed.0 < undecodable.0 { failed } else { undecodable }),
        (failed, undecodable) => failed.or(undecodable),
    };
    metrics::count(Counter::RecordsFailed, u64::from(projected.failed.is_some()));
    tracing::info!(
        records = records.len(),
        applied = projected.applied,
        already_newer = projected.already_newer,
        skipped = projected.skipped,
        failed = projected.failed.is_some(),
        "projected batch"
    );
    projected
}

/// The `project-events` handler. With ReportBatchItemFailures, the first
/// failed record's sequence number is reported: Lambda retries the batch
/// from there, and what was already applied after it is applied again,
/// version-guarded.
pub async fn project_events(projector: &ProjectorService, batch: DynamoDbEvent) -> DynamoDbEventResponse {
    let projected = project_records(projector, &batch.records).await;
    let mut response = DynamoDbEventResponse::default();
    if let Some((position, _)) = projected.failed {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = batch.records[position].change.sequence_number.clone();
        response.batch_item_failures.push(failure);
    }
    response
}
