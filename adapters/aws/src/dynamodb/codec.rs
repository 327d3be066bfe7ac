//! The DynamoDB item codec: events and items as DynamoDB items, shared by the
//! DynamoDB adapter, the projector's stream decoder and the local change feeds
//! (so a local feed hands the projector exactly what a DynamoDB stream would).

use chrono::{DateTime, Utc};
use items_domain::Event;
use items_domain::event::{DecodeError, EventSchemas, STREAM_PREFIX, StoredEvent};

/// Attribute names of the events table's key.
pub const EVENTS_PARTITION_KEY: &str = "stream_id";
pub const EVENTS_SORT_KEY: &str = "version";
/// Attribute name of the items table's key.
pub const ITEMS_KEY: &str = "id";
/// The items table's global secondary index of each creator's items, newest
/// first, and its key attributes (`pulumi/tables.ts` declares the same).
/// Its partition key is a shard of the creator ([`creator_shard`]), not the
/// creator: a partition takes at most 1,000 writes/s (DynamoDB developer
/// guide, "Key range throughput exceeded"), every new entry of a creator
/// lands at the end of its key range (`createdAt` only grows), and whether
/// split-for-heat relieves such a range is not documented, so one
/// creator's writes were capped there (deploy review N2).
pub const ITEMS_BY_CREATOR_INDEX: &str = "by-creator-shard";
pub const ITEMS_CREATOR_KEY: &str = "createdBy";
/// The index's partition key: `<createdBy>#<shard>`.
pub const ITEMS_CREATOR_SHARD_KEY: &str = "creatorShard";
/// Shards of one creator's index entries: their write rate is capped at
/// this many index partitions' (about 16,000 writes/s), past the read
/// table's own on-demand start (4,000 writes/s) and near an account's
/// default per-table quota (40,000). A creator's listing reads them all.
pub const CREATOR_SHARDS: u32 = 16;

/// The index shard of `id`'s entry: a fixed function of the id, so a row
/// written again lands where it was.
pub fn creator_shard(created_by: &str, id: items_domain::ItemId) -> String {
    creator_shard_number(created_by, id.0.as_u128() as u32 % CREATOR_SHARDS)
}

/// Shard `n` of `created_by`'s entries.
pub fn creator_shard_number(created_by: &str, n: u32) -> String {
    format!("{created_by}#{n:02}")
}
/// RFC 3339 UTC with milliseconds, fixed width: text order is time order.
pub const ITEMS_CREATED_AT_KEY: &str = "createdAt";

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot map record: {0}")]
    Mapping(#[from] serde_dynamo::Error),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl RecordError {
    /// Written by newer code (a type or schema this code does not know):
    /// it applies once code that knows it is deployed, unlike a record
    /// that is broken.
    pub fn is_newer(&self) -> bool {
        matches!(self, RecordError::Decode(DecodeError::UnknownType(_) | DecodeError::UnsupportedSchema { .. }))
    }
}

/// An event as a DynamoDB item (SDK or Lambda-event attribute values).
pub fn event_to_item<I: From<serde_dynamo::Item>>(event: &Event) -> Result<I, serde_dynamo::Error> {
    serde_dynamo::to_item(event.to_stored())
}

/// An event as this log stores it when it is appended at `at` (the stored
/// form's `recorded_at`: the catch-up and the redrive select by it).
pub fn recorded_item<I: From<serde_dynamo::Item>>(event: &Event, at: &DateTime<Utc>) -> Result<I, serde_dynamo::Error> {
    serde_dynamo::to_item(event.to_stored().recorded(at))
}

/// When an event record reached the log, if it says.
pub fn recorded_at(item: &serde_dynamo::Item) -> Option<DateTime<Utc>> {
    match item.get("recorded_at") {
        Some(serde_dynamo::AttributeValue::S(at)) => items_domain::event::rfc3339::parse(at).ok(),
        _ => None,
    }
}

/// Reads an event back. Records that are not events (other partitions of the
/// table, such as idempotency records) give `Ok(None)`.
pub fn event_from_item<I>(item: I) -> Result<Option<Event>, RecordError>
where
    I: Into<serde_dynamo::Item>,
{
    event_from_item_with(item, &EventSchemas::CURRENT)
}

/// Like [`event_from_item`], as code of the schema set `schemas` reads it
/// (see [`StoredEvent::decode_with`]).
pub fn event_from_item_with<I>(item: I, schemas: &EventSchemas) -> Result<Option<Event>, RecordError>
where
    I: Into<serde_dynamo::Item>,
{
    let item: serde_dynamo::Item = item.into();
    let is_event = matches!(
        item.get(EVENTS_PARTITION_KEY),
        Some(serde_dynamo::AttributeValue::S(stream_id)) if stream_id.starts_with(STREAM_PREFIX)
    );
    if !is_event {
        return Ok(None);
    }
    let stored: StoredEvent = serde_dynamo::from_item(item)?;
    Ok(Some(stored.decode_with(schemas)?))
}
