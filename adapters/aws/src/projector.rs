//! The projector's handler (the `project-events` function): a DynamoDB stream
//! batch in, partial batch failures out.

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use std::collections::HashSet;

use items_domain::ports::StoreError;
use items_domain::service::ProjectorService;
use items_domain::{Event, ItemId};

use crate::dynamodb::codec::{EVENTS_PARTITION_KEY, RecordError, event_from_item_with, recorded_at};
use crate::metrics::{self, Counter};
use crate::quarantine::{Quarantine, Quarantined};
use items_domain::event::EventSchemas;

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
pub fn decode_record(record: &EventRecord, schemas: &EventSchemas) -> Result<Decoded, RecordError> {
    if record.event_name != "INSERT" {
        return Ok(Decoded::Skip("not an insert"));
    }
    match event_from_item_with(record.change.new_image.clone(), schemas)? {
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
    /// Every item's first failed record, in batch order (`failed` is the
    /// first): one per item held back.
    pub failures: Vec<(usize, Failure)>,
}

/// When a record's event reached the log, which is where the projection lag
/// counts from: an imported event's own time may be weeks old.
fn reached_log(record: &EventRecord, event: &Event) -> chrono::DateTime<chrono::Utc> {
    recorded_at(&record.change.new_image).unwrap_or(event.occurred_at)
}

/// The item a record belongs to, read from its key alone: a record whose
/// image cannot be decoded still names its stream, so only that item waits.
fn record_item(record: &EventRecord) -> Option<ItemId> {
    ItemId::from_stream_id(&record_stream(record)?)
}

/// Applies a batch's records (each item's in order, items at once; see
/// [`ProjectorService::project_batch`]), and says which record failed first
/// and why. A record this code cannot decode holds back its own item's later
/// records only: every other item's records are applied, so when the
/// retries run out only that item's records reach the on-failure
/// destination.
pub async fn project_records(projector: &ProjectorService, records: &[EventRecord]) -> Projected {
    let mut events = Vec::with_capacity(records.len());
    let mut positions = Vec::with_capacity(records.len());
    let mut projected = Projected::default();
    let mut undecodable: Vec<(usize, Failure)> = Vec::new();
    let mut held: HashSet<ItemId> = HashSet::new();
    for (position, record) in records.iter().enumerate() {
        if record_item(record).is_some_and(|item| held.contains(&item)) {
            continue;
        }
        match decode_record(record, projector.reads()) {
            Ok(Decoded::Event(event)) => {
                events.push(*event);
                positions.push(position);
            }
            Ok(Decoded::Skip(reason)) => {
                projected.skipped += 1;
                tracing::debug!(reason, event_id = %record.event_id, "skipping record");
            }
            Err(error) => {
                tracing::error!(%error, newer = error.is_newer(), event_id = %record.event_id, "stream record cannot be decoded");
                if error.is_newer() {
                    // Deployed out of order (docs/deploy.md): visible apart from corruption.
                    metrics::count(Counter::RecordsOfNewerCode, 1);
                }
                undecodable.push((position, Failure::Poison(error.to_string())));
                // Its item's later records wait behind it. A record whose
                // key names no item holds back nothing it could name.
                if let Some(item) = record_item(record) {
                    held.insert(item);
                }
            }
        }
    }
    let outcome = projector.project_batch(&events).await;
    let now = chrono::Utc::now();
    let processed = outcome.failed.as_ref().map_or(events.len(), |(index, _)| *index);
    for (event, position) in events[..processed].iter().zip(&positions) {
        metrics::projection_lag((now - reached_log(&records[*position], event)).num_milliseconds() as f64);
    }
    metrics::count(Counter::RecordsProjected, outcome.applied as u64);
    metrics::count(Counter::RecordsAlreadyNewer, outcome.already_newer as u64);
    projected.applied = outcome.applied;
    projected.already_newer = outcome.already_newer;
    let mut failures = undecodable;
    for (index, error) in outcome.failures {
        tracing::error!(%error, event_id = %events[index].event_id, "projection failed");
        failures.push((positions[index], Failure::from_store(error)));
    }
    // In batch order: Lambda retries from the first.
    failures.sort_by_key(|(position, _)| *position);
    projected.failed = failures.first().cloned();
    projected.failures = failures;
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

/// The poison policy, the same on every backend: a record this code cannot
/// apply is set aside in the quarantine at once (with its item's later
/// records of the batch, which wait behind it: the redrive folds the whole
/// stream) and the batch goes on; only a dependency failure is handed back,
/// to be retried from that record until the dependency is back. A record
/// that cannot be set aside (the quarantine is down too) is handed back the
/// same way.
pub async fn project_and_set_aside(
    projector: &ProjectorService,
    quarantine: &dyn Quarantine,
    records: &[EventRecord],
) -> Delivered {
    let projected = project_records(projector, records).await;
    let mut delivered = Delivered::default();
    for (position, failure) in projected.failures {
        let reason = match failure {
            Failure::Transient(reason) => reason,
            Failure::Poison(reason) => {
                let record = &records[position];
                let quarantined = Quarantined {
                    sequence: record.change.sequence_number.clone().unwrap_or_else(|| record.event_id.clone()),
                    stream_id: record_stream(record).unwrap_or_default(),
                    reason,
                    at: chrono::Utc::now(),
                };
                match quarantine.quarantine(&quarantined).await {
                    Ok(()) => {
                        tracing::error!(sequence = %quarantined.sequence, stream_id = %quarantined.stream_id,
                            reason = %quarantined.reason, "poison record set aside in the quarantine");
                        metrics::count(Counter::RecordsQuarantined, 1);
                        delivered.set_aside += 1;
                        continue;
                    }
                    Err(error) => format!("cannot set a poison record aside: {error}"),
                }
            }
        };
        if delivered.retry.as_ref().is_none_or(|(first, _)| position < *first) {
            delivered.retry = Some((position, reason));
        }
    }
    delivered
}

/// What a delivery of a batch left to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The first record to deliver again (a dependency failed), and why.
    pub retry: Option<(usize, String)>,
    /// Records set aside in the quarantine.
    pub set_aside: usize,
}

/// The item stream a record belongs to, from its key.
fn record_stream(record: &EventRecord) -> Option<String> {
    match record.change.keys.get(EVENTS_PARTITION_KEY)? {
        serde_dynamo::AttributeValue::S(stream_id) => Some(stream_id.clone()),
        _ => None,
    }
}

/// The `project-events` handler. Poison is set aside in the quarantine
/// ([`project_and_set_aside`]); with ReportBatchItemFailures, the first
/// record that failed for a dependency is reported: Lambda retries the
/// batch from there (the stack allows retries until the record is 23 hours
/// old), and what was already applied after it is applied again,
/// version-guarded.
pub async fn project_events(
    projector: &ProjectorService,
    quarantine: &dyn Quarantine,
    batch: DynamoDbEvent,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    if let Some((position, _)) = project_and_set_aside(projector, quarantine, &batch.records).await.retry {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = batch.records[position].change.sequence_number.clone();
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use items_domain::event::ItemCreated;
    use items_domain::{EventPayload, ItemId};

    /// A record of newer code (an unknown type, a newer schema) is counted
    /// apart from a broken one: it says a writer was deployed first.
    #[tokio::test]
    async fn records_of_newer_code_are_counted_apart() {
        use items_domain::memory::{InMemoryEventStore, InMemoryReadModel};
        let record = |stored: items_domain::event::StoredEvent| {
            let mut record = EventRecord::default();
            record.event_name = "INSERT".into();
            record.change.new_image = serde_dynamo::to_item(&stored).unwrap();
            record.change.keys.insert(EVENTS_PARTITION_KEY.into(), record.change.new_image["stream_id"].clone());
            record
        };
        let event = |item: u128| Event {
            event_id: uuid::Uuid::from_u128(item),
            item_id: ItemId(uuid::Uuid::from_u128(item)),
            version: 1,
            occurred_at: items_domain::testing::at("2026-12-01T00:00:00.000Z"),
            subject: "sub".into(),
            payload: EventPayload::ItemCreated(ItemCreated {
                name: "Pen".into(),
                timestamp: "t".into(),
                description: None,
            }),
        };
        let mut unknown = event(1).to_stored();
        unknown.event_type = "ItemArchived".into();
        let mut newer = event(2).to_stored();
        newer.schema = 3;
        let mut broken = event(3).to_stored();
        broken.data = serde_json::json!({"name": 5});
        let projector = ProjectorService::new(
            std::sync::Arc::new(InMemoryReadModel::default()),
            std::sync::Arc::new(InMemoryEventStore::default()),
        );
        let before = metrics::total(Counter::RecordsOfNewerCode);
        let projected = project_records(&projector, &[record(unknown), record(newer), record(broken)]).await;
        assert_eq!(projected.failures.len(), 3);
        assert_eq!(metrics::total(Counter::RecordsOfNewerCode) - before, 2, "the broken one is not of newer code");
    }

    /// The projection lag of an imported event counts from its import, not
    /// from the year-old time it carries (review H1's variant).
    #[test]
    fn the_lag_counts_from_when_the_event_reached_the_log() {
        let event = Event {
            event_id: uuid::Uuid::from_u128(1),
            item_id: ItemId(uuid::Uuid::from_u128(2)),
            version: 1,
            occurred_at: items_domain::testing::at("2025-12-01T00:00:00.000Z"),
            subject: "sub".into(),
            payload: EventPayload::ItemCreated(ItemCreated {
                name: "Pen".into(),
                timestamp: "t".into(),
                description: None,
            }),
        };
        let imported = items_domain::testing::at("2026-12-01T00:00:00.000Z");
        let mut record = EventRecord::default();
        record.change.new_image = crate::dynamodb::codec::recorded_item(&event, &imported).unwrap();
        assert_eq!(reached_log(&record, &event), imported);
        record.change.new_image = crate::dynamodb::codec::event_to_item(&event).unwrap();
        assert_eq!(reached_log(&record, &event), event.occurred_at, "a log from before recorded_at");
    }
}
