//! Events and their stored form.
//!
//! The stored form ([`StoredEvent`]) is the contract with every event log that has
//! ever been written: fields are only ever added, `schema` says which shape `data`
//! has, and decoding never fails on fields it does not know.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identity of an item, and so of its event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub Uuid);

impl ItemId {
    /// The event-log partition that holds this item's events.
    pub fn stream_id(&self) -> String {
        format!("{STREAM_PREFIX}{}", self.0)
    }

    pub fn parse(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok().map(Self)
    }

    /// The item whose stream `stream_id` is (the inverse of [`stream_id`](Self::stream_id)).
    pub fn from_stream_id(stream_id: &str) -> Option<Self> {
        stream_id.strip_prefix(STREAM_PREFIX).and_then(Self::parse)
    }
}

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Prefix of every item stream id in the event log; other partitions (such as
/// idempotency records) use other prefixes and are not events.
pub const STREAM_PREFIX: &str = "item#";

/// Current version of the stored shape of `data` for each event type.
pub const SCHEMA_VERSION: u32 = 1;

/// A domain event with its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: Uuid,
    pub item_id: ItemId,
    /// Position in the item's stream, starting at 1.
    pub version: u64,
    pub occurred_at: DateTime<Utc>,
    /// Cognito `sub` of the caller whose request caused the event.
    pub subject: String,
    pub payload: EventPayload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventPayload {
    ItemCreated(ItemCreated),
    ItemUpdated(ItemUpdated),
    ItemDeleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCreated {
    pub name: String,
    pub timestamp: String,
}

/// A rename or a new `timestamp`: only the fields that changed, at least one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ItemUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

impl EventPayload {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventPayload::ItemCreated(_) => "ItemCreated",
            EventPayload::ItemUpdated(_) => "ItemUpdated",
            EventPayload::ItemDeleted => "ItemDeleted",
        }
    }

    /// What the event changed, as the history shows it: the fields set.
    pub fn changes(&self) -> serde_json::Value {
        match self {
            EventPayload::ItemCreated(created) => {
                serde_json::json!({ "name": created.name, "timestamp": created.timestamp })
            }
            EventPayload::ItemUpdated(updated) => {
                let mut changes = serde_json::Map::new();
                if let Some(name) = &updated.name {
                    changes.insert("name".into(), name.clone().into());
                }
                if let Some(timestamp) = &updated.timestamp {
                    changes.insert("timestamp".into(), timestamp.clone().into());
                }
                serde_json::Value::Object(changes)
            }
            EventPayload::ItemDeleted => serde_json::json!({}),
        }
    }
}

/// The stored, versioned form of an event: one record in the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub stream_id: String,
    pub version: u64,
    pub event_id: Uuid,
    pub item_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema: u32,
    pub occurred_at: String,
    pub subject: String,
    pub data: serde_json::Value,
    /// When the event reached this log: the appending store's clock (for an
    /// imported event, the import's time), never the deciding writer's or a
    /// file's. A catch-up and a redrive select by it, so an event that
    /// arrives late with an old `occurred_at` is still caught up. Set by the
    /// store; not part of an export. Absent in logs written before it, where
    /// `occurred_at` stands for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Written by newer code. Never skipped: a projector that meets one
    /// waits (fails the record) until code that knows it is deployed.
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("unsupported schema {schema} for event type `{event_type}`")]
    UnsupportedSchema { event_type: String, schema: u32 },
    #[error("malformed event: {0}")]
    Malformed(String),
}

impl Event {
    pub fn to_stored(&self) -> StoredEvent {
        // Each type's `data` is its changes, as the history shows them; a
        // deletion changes no field and stores `null`, not `{}`: DynamoDB
        // Local's stream serves an empty map in a form the AWS SDK cannot
        // parse, and a record nobody can read would stop the projector.
        let data = match self.payload {
            EventPayload::ItemDeleted => serde_json::Value::Null,
            _ => self.payload.changes(),
        };
        StoredEvent {
            stream_id: self.item_id.stream_id(),
            version: self.version,
            event_id: self.event_id,
            item_id: self.item_id.0,
            event_type: self.payload.type_name().to_owned(),
            schema: SCHEMA_VERSION,
            occurred_at: rfc3339::format(&self.occurred_at),
            subject: self.subject.clone(),
            data,
            recorded_at: None,
        }
    }
}

impl StoredEvent {
    /// The same event, as a store records it at `at`.
    pub fn recorded(mut self, at: &DateTime<Utc>) -> Self {
        self.recorded_at = Some(rfc3339::format(at));
        self
    }

    /// When the event reached the log ([`recorded_at`](Self::recorded_at)),
    /// if the store recorded it and it reads as a time.
    pub fn recorded_at(&self) -> Option<DateTime<Utc>> {
        self.recorded_at.as_deref().and_then(|at| rfc3339::parse(at).ok())
    }

    pub fn decode(self) -> Result<Event, DecodeError> {
        let payload = match self.event_type.as_str() {
            // Every type this code knows is at schema 1.
            "ItemCreated" | "ItemUpdated" | "ItemDeleted" if self.schema != SCHEMA_VERSION => {
                return Err(DecodeError::UnsupportedSchema { event_type: self.event_type, schema: self.schema });
            }
            "ItemCreated" => {
                let created: ItemCreated = serde_json::from_value(self.data)
                    .map_err(|e| DecodeError::Malformed(format!("ItemCreated data: {e}")))?;
                EventPayload::ItemCreated(created)
            }
            "ItemUpdated" => {
                let updated: ItemUpdated = serde_json::from_value(self.data)
                    .map_err(|e| DecodeError::Malformed(format!("ItemUpdated data: {e}")))?;
                if updated.name.is_none() && updated.timestamp.is_none() {
                    return Err(DecodeError::Malformed("ItemUpdated changes nothing".into()));
                }
                EventPayload::ItemUpdated(updated)
            }
            "ItemDeleted" => EventPayload::ItemDeleted,
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        };
        let item_id = ItemId(self.item_id);
        if self.stream_id != item_id.stream_id() {
            return Err(DecodeError::Malformed(format!(
                "stream id `{}` does not match item id {}",
                self.stream_id, item_id
            )));
        }
        if self.version == 0 {
            return Err(DecodeError::Malformed("version 0".into()));
        }
        let occurred_at =
            rfc3339::parse(&self.occurred_at).map_err(|e| DecodeError::Malformed(format!("occurred_at: {e}")))?;
        Ok(Event {
            event_id: self.event_id,
            item_id,
            version: self.version,
            occurred_at,
            subject: self.subject,
            payload,
        })
    }
}

/// RFC 3339 UTC timestamps with millisecond precision, as the API shows them.
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(at: &DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc))
    }

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FixedClock, at};

    fn created_event() -> Event {
        Event {
            event_id: Uuid::from_u128(1),
            item_id: ItemId(Uuid::from_u128(2)),
            version: 1,
            occurred_at: FixedClock::default().0,
            subject: "sub-1".into(),
            payload: EventPayload::ItemCreated(ItemCreated { name: "Pen".into(), timestamp: "today".into() }),
        }
    }

    #[test]
    fn stored_form_is_the_documented_json() {
        let stored = serde_json::to_value(created_event().to_stored()).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({
                "stream_id": "item#00000000-0000-0000-0000-000000000002",
                "version": 1,
                "event_id": "00000000-0000-0000-0000-000000000001",
                "item_id": "00000000-0000-0000-0000-000000000002",
                "type": "ItemCreated",
                "schema": 1,
                "occurred_at": "2026-01-02T03:04:05.678Z",
                "subject": "sub-1",
                "data": {"name": "Pen", "timestamp": "today"}
            })
        );
    }

    #[test]
    fn round_trips_through_the_stored_form() {
        let event = created_event();
        assert_eq!(event.to_stored().decode().unwrap(), event);
    }

    #[test]
    fn a_stored_event_written_by_version_1_stays_readable() {
        // Frozen copy of what the first release wrote, with a field added later.
        let written: StoredEvent = serde_json::from_str(
            r#"{"stream_id":"item#00000000-0000-0000-0000-000000000002","version":1,
                "event_id":"00000000-0000-0000-0000-000000000001",
                "item_id":"00000000-0000-0000-0000-000000000002","type":"ItemCreated","schema":1,
                "occurred_at":"2026-01-02T03:04:05.678Z","subject":"sub-1",
                "data":{"name":"Pen","timestamp":"today","colour":"blue"},"added_later":true}"#,
        )
        .unwrap();
        let event = written.decode().unwrap();
        assert_eq!(event.occurred_at, at("2026-01-02T03:04:05.678Z"));
        assert_eq!(event.payload, created_event().payload);
    }

    fn later_event(version: u64, payload: EventPayload) -> Event {
        Event { event_id: Uuid::from_u128(u128::from(version)), version, payload, ..created_event() }
    }

    #[test]
    fn updates_and_deletes_store_only_what_changed() {
        let renamed =
            later_event(2, EventPayload::ItemUpdated(ItemUpdated { name: Some("Ink".into()), timestamp: None }));
        let stored = serde_json::to_value(renamed.to_stored()).unwrap();
        assert_eq!(stored["type"], "ItemUpdated");
        assert_eq!(stored["version"], 2);
        assert_eq!(stored["data"], serde_json::json!({"name": "Ink"}));
        assert_eq!(renamed.to_stored().decode().unwrap(), renamed);

        let deleted = later_event(3, EventPayload::ItemDeleted);
        let stored = serde_json::to_value(deleted.to_stored()).unwrap();
        assert_eq!((stored["type"].as_str(), &stored["data"]), (Some("ItemDeleted"), &serde_json::Value::Null));
        assert_eq!(deleted.to_stored().decode().unwrap(), deleted);
    }

    #[test]
    fn stored_updates_and_deletes_stay_readable() {
        // Frozen copies of this release's ItemUpdated and ItemDeleted.
        let updated: StoredEvent = serde_json::from_str(
            r#"{"stream_id":"item#00000000-0000-0000-0000-000000000002","version":2,
                "event_id":"00000000-0000-0000-0000-000000000003",
                "item_id":"00000000-0000-0000-0000-000000000002","type":"ItemUpdated","schema":1,
                "occurred_at":"2026-01-02T04:00:00.000Z","subject":"sub-2","data":{"timestamp":"tomorrow"}}"#,
        )
        .unwrap();
        assert_eq!(
            updated.decode().unwrap().payload,
            EventPayload::ItemUpdated(ItemUpdated { name: None, timestamp: Some("tomorrow".into()) })
        );
        let deleted: StoredEvent = serde_json::from_str(
            r#"{"stream_id":"item#00000000-0000-0000-0000-000000000002","version":3,
                "event_id":"00000000-0000-0000-0000-000000000004",
                "item_id":"00000000-0000-0000-0000-000000000002","type":"ItemDeleted","schema":1,
                "occurred_at":"2026-01-02T05:00:00.000Z","subject":"sub-2","data":null}"#,
        )
        .unwrap();
        assert_eq!(deleted.decode().unwrap().payload, EventPayload::ItemDeleted);
    }

    #[test]
    fn an_update_that_changes_nothing_is_malformed() {
        let mut stored = later_event(2, EventPayload::ItemDeleted).to_stored();
        stored.event_type = "ItemUpdated".into();
        assert!(matches!(stored.decode(), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn unknown_types_are_reported_as_such() {
        let mut stored = created_event().to_stored();
        stored.event_type = "ItemArchived".into();
        assert_eq!(stored.decode(), Err(DecodeError::UnknownType("ItemArchived".into())));
    }

    #[test]
    fn a_newer_schema_is_not_guessed_at() {
        let mut stored = created_event().to_stored();
        stored.schema = 2;
        assert!(matches!(stored.decode(), Err(DecodeError::UnsupportedSchema { schema: 2, .. })));
    }

    #[test]
    fn malformed_data_is_rejected() {
        let mut stored = created_event().to_stored();
        stored.data = serde_json::json!({"name": 5});
        assert!(matches!(stored.decode(), Err(DecodeError::Malformed(_))));

        let mut stored = created_event().to_stored();
        stored.stream_id = "item#someone-else".into();
        assert!(matches!(stored.decode(), Err(DecodeError::Malformed(_))));

        let mut stored = created_event().to_stored();
        stored.occurred_at = "yesterday".into();
        assert!(matches!(stored.decode(), Err(DecodeError::Malformed(_))));
    }
}
