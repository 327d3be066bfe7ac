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

/// Which stored shapes (`schema` of each event type) a build reads, and a
/// writer may write. Each set is a release's; a set only ever adds to the one
/// before it. Readers get a set first, writers later (docs/deploy.md): an
/// event of a schema its reader does not know is never guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSchemas {
    /// The set's number, as `WRITE_EVENT_SCHEMAS` names it.
    pub set: u32,
    /// The newest schema of each event type.
    newest: &'static [(&'static str, u32)],
}

impl EventSchemas {
    /// The first release: every type at schema 1.
    pub const SET_1: Self = Self { set: 1, newest: &[("ItemCreated", 1), ("ItemUpdated", 1), ("ItemDeleted", 1)] };
    /// Items' `description`: ItemCreated and ItemUpdated at schema 2.
    pub const SET_2: Self = Self { set: 2, newest: &[("ItemCreated", 2), ("ItemUpdated", 2), ("ItemDeleted", 1)] };
    /// Every set so far, oldest first.
    pub const ALL: [Self; 2] = [Self::SET_1, Self::SET_2];
    /// What this code reads, and writes unless told to write an older set.
    pub const CURRENT: Self = Self::SET_2;

    /// Set `set`, if there is one.
    pub fn numbered(set: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|schemas| schemas.set == set)
    }

    /// The newest schema of `event_type` in this set (`None`: a type the set
    /// does not know).
    pub fn newest(&self, event_type: &str) -> Option<u32> {
        self.newest.iter().find(|(name, _)| *name == event_type).map(|(_, schema)| *schema)
    }

    /// Whether the set holds `payload`'s stored shape: its type, at the
    /// schema it is stored at, is one the set knows.
    pub fn holds(&self, payload: &EventPayload) -> bool {
        self.newest(payload.type_name()).is_some_and(|newest| payload.schema().0 <= newest)
    }

    /// Every event type with its newest schema.
    pub fn types(&self) -> impl Iterator<Item = (&'static str, u32)> {
        self.newest.iter().copied()
    }
}

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

/// Schema 2 (schema 1 had no `description`; see [`upcast`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCreated {
    pub name: String,
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A rename, a new `timestamp` or description: only the fields that
/// changed, at least one. Schema 2 (schema 1 had no `description`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ItemUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// `Some(None)`: cleared (stored as `null`); `None`: unchanged (absent).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "set_or_clear")]
    pub description: Option<Option<String>>,
}

impl ItemUpdated {
    pub fn changes_nothing(&self) -> bool {
        self.name.is_none() && self.timestamp.is_none() && self.description.is_none()
    }
}

/// A field an update sets or clears: absent, `null` or a value.
mod set_or_clear {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Option<String>>, serializer: S) -> Result<S::Ok, S::Error> {
        value.as_ref().and_then(Option::as_deref).serialize(serializer)
    }

    /// Only called when the field is present: `null` is `Some(None)`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(deserializer).map(Some)
    }
}

impl EventPayload {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventPayload::ItemCreated(_) => "ItemCreated",
            EventPayload::ItemUpdated(_) => "ItemUpdated",
            EventPayload::ItemDeleted => "ItemDeleted",
        }
    }

    /// What the event changed, as the history shows it: the fields set (a
    /// cleared description as `null`).
    pub fn changes(&self) -> serde_json::Value {
        match self {
            EventPayload::ItemCreated(created) => serde_json::to_value(created),
            EventPayload::ItemUpdated(updated) => serde_json::to_value(updated),
            EventPayload::ItemDeleted => Ok(serde_json::json!({})),
        }
        .unwrap_or_default()
    }

    /// The schema this event is stored at: the oldest that holds it, so that
    /// an event without a newer field stays readable by code one set older
    /// (during a deploy, or after a rollback); and the field that needs it.
    pub fn schema(&self) -> (u32, Option<&'static str>) {
        match self {
            EventPayload::ItemCreated(ItemCreated { description: Some(_), .. })
            | EventPayload::ItemUpdated(ItemUpdated { description: Some(_), .. }) => (2, Some("description")),
            _ => (1, None),
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
    /// Names are printed escaped (`{:?}`): they may come from a file.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("unsupported schema {schema} for event type {event_type:?}")]
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
            schema: self.payload.schema().0,
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

    /// Reads the event as this code does ([`EventSchemas::CURRENT`]).
    pub fn decode(self) -> Result<Event, DecodeError> {
        self.decode_with(&EventSchemas::CURRENT)
    }

    /// Reads the event as a build that knows `schemas` does: an older
    /// schema is upcast to the current shape ([`upcast`]); a type or schema
    /// the set does not know is refused, never guessed at.
    pub fn decode_with(self, schemas: &EventSchemas) -> Result<Event, DecodeError> {
        match schemas.newest(&self.event_type) {
            None => return Err(DecodeError::UnknownType(self.event_type)),
            Some(newest) if self.schema == 0 || self.schema > newest => {
                return Err(DecodeError::UnsupportedSchema { event_type: self.event_type, schema: self.schema });
            }
            Some(_) => {}
        }
        let payload = upcast::payload(&self.event_type, self.schema, self.data)?;
        let item_id = ItemId(self.item_id);
        if self.stream_id != item_id.stream_id() {
            return Err(DecodeError::Malformed(format!(
                "stream id {:?} does not match item id {}",
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

/// Every stored shape ever written, read into today's [`EventPayload`]: one
/// frozen struct per older schema, and a step from each to the next. Every
/// codec (DynamoDB items, stream records, SQLite rows, export lines) reads
/// through [`StoredEvent::decode`], so through here.
pub mod upcast {
    use super::{DecodeError, EventPayload, ItemCreated, ItemUpdated};
    use serde::de::DeserializeOwned;

    /// Schema 1, as the first release wrote it. Frozen: never edited.
    pub mod v1 {
        use serde::Deserialize;

        #[derive(Debug, Deserialize)]
        pub struct ItemCreated {
            pub name: String,
            pub timestamp: String,
        }

        #[derive(Debug, Deserialize)]
        pub struct ItemUpdated {
            #[serde(default)]
            pub name: Option<String>,
            #[serde(default)]
            pub timestamp: Option<String>,
        }
    }

    /// Schema 1 had no description: a created item had none, and an update
    /// left it as it was. (A `description` in schema 1 data is a field that
    /// schema did not have, ignored like any unknown field.)
    impl From<v1::ItemCreated> for ItemCreated {
        fn from(v1: v1::ItemCreated) -> Self {
            ItemCreated { name: v1.name, timestamp: v1.timestamp, description: None }
        }
    }

    impl From<v1::ItemUpdated> for ItemUpdated {
        fn from(v1: v1::ItemUpdated) -> Self {
            ItemUpdated { name: v1.name, timestamp: v1.timestamp, description: None }
        }
    }

    fn parse<T: DeserializeOwned>(event_type: &str, schema: u32, data: serde_json::Value) -> Result<T, DecodeError> {
        serde_json::from_value(data)
            .map_err(|e| DecodeError::Malformed(format!("{event_type} schema {schema} data: {e}")))
    }

    /// `data` of `event_type` at `schema`, as today's payload. The caller has
    /// checked that the schema is one this code knows.
    pub(super) fn payload(event_type: &str, schema: u32, data: serde_json::Value) -> Result<EventPayload, DecodeError> {
        let payload = match (event_type, schema) {
            ("ItemCreated", 1) => EventPayload::ItemCreated(parse::<v1::ItemCreated>(event_type, schema, data)?.into()),
            ("ItemCreated", 2) => EventPayload::ItemCreated(parse(event_type, schema, data)?),
            ("ItemUpdated", 1) => EventPayload::ItemUpdated(parse::<v1::ItemUpdated>(event_type, schema, data)?.into()),
            ("ItemUpdated", 2) => EventPayload::ItemUpdated(parse(event_type, schema, data)?),
            ("ItemDeleted", 1) => EventPayload::ItemDeleted,
            _ => return Err(DecodeError::UnsupportedSchema { event_type: event_type.to_owned(), schema }),
        };
        if let EventPayload::ItemUpdated(updated) = &payload
            && updated.changes_nothing()
        {
            return Err(DecodeError::Malformed("ItemUpdated changes nothing".into()));
        }
        Ok(payload)
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
            payload: EventPayload::ItemCreated(ItemCreated {
                name: "Pen".into(),
                timestamp: "today".into(),
                description: None,
            }),
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
        let renamed = later_event(
            2,
            EventPayload::ItemUpdated(ItemUpdated { name: Some("Ink".into()), timestamp: None, description: None }),
        );
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
            EventPayload::ItemUpdated(ItemUpdated {
                name: None,
                timestamp: Some("tomorrow".into()),
                description: None
            })
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
        stored.schema = 3;
        assert!(matches!(stored.decode(), Err(DecodeError::UnsupportedSchema { schema: 3, .. })));
        let mut stored = created_event().to_stored();
        stored.schema = 0;
        assert!(matches!(stored.decode(), Err(DecodeError::UnsupportedSchema { schema: 0, .. })));
    }

    fn described(description: Option<Option<&str>>) -> EventPayload {
        EventPayload::ItemUpdated(ItemUpdated {
            description: description.map(|text| text.map(str::to_owned)),
            ..Default::default()
        })
    }

    #[test]
    fn an_event_is_stored_at_the_oldest_schema_that_holds_it() {
        let plain = created_event();
        assert_eq!(plain.to_stored().schema, 1, "nothing of schema 2: code of set 1 can read it");
        let mut with_description = created_event();
        with_description.payload = EventPayload::ItemCreated(ItemCreated {
            name: "Pen".into(),
            timestamp: "t".into(),
            description: Some("Blue".into()),
        });
        let stored = with_description.to_stored();
        assert_eq!((stored.schema, &stored.data["description"]), (2, &serde_json::json!("Blue")));
        assert_eq!(stored.decode().unwrap(), with_description);

        let set = later_event(2, described(Some(Some("Blue"))));
        let cleared = later_event(3, described(Some(None)));
        let (set_stored, cleared_stored) = (set.to_stored(), cleared.to_stored());
        assert_eq!((set_stored.schema, &set_stored.data), (2, &serde_json::json!({"description": "Blue"})));
        assert_eq!((cleared_stored.schema, &cleared_stored.data), (2, &serde_json::json!({"description": null})));
        assert_eq!(set_stored.decode().unwrap(), set);
        assert_eq!(cleared_stored.decode().unwrap(), cleared);
        assert_eq!(
            later_event(4, described(None)).to_stored().decode(),
            Err(DecodeError::Malformed("ItemUpdated changes nothing".into()))
        );
    }

    #[test]
    fn schema_1_is_upcast_as_having_no_description() {
        // Frozen copies of schema 1 shapes, with a `description` that schema
        // never had: unknown there, so ignored, not read as a description.
        let created: StoredEvent = serde_json::from_str(
            r#"{"stream_id":"item#00000000-0000-0000-0000-000000000002","version":1,
                "event_id":"00000000-0000-0000-0000-000000000001",
                "item_id":"00000000-0000-0000-0000-000000000002","type":"ItemCreated","schema":1,
                "occurred_at":"2026-01-02T03:04:05.678Z","subject":"sub-1",
                "data":{"name":"Pen","timestamp":"today","description":"not in schema 1"}}"#,
        )
        .unwrap();
        let EventPayload::ItemCreated(created) = created.decode().unwrap().payload else { panic!("a creation") };
        assert_eq!(created.description, None);
        let updated: StoredEvent = serde_json::from_str(
            r#"{"stream_id":"item#00000000-0000-0000-0000-000000000002","version":2,
                "event_id":"00000000-0000-0000-0000-000000000003",
                "item_id":"00000000-0000-0000-0000-000000000002","type":"ItemUpdated","schema":1,
                "occurred_at":"2026-01-02T04:00:00.000Z","subject":"sub-2",
                "data":{"name":"Ink","description":null}}"#,
        )
        .unwrap();
        let EventPayload::ItemUpdated(updated) = updated.decode().unwrap().payload else { panic!("an update") };
        assert_eq!(updated.description, None, "schema 1 cannot clear what it did not have");
        // Schema 1 data that only set what schema 1 did not have changes nothing.
        let mut only_description = later_event(2, described(Some(Some("x")))).to_stored();
        only_description.schema = 1;
        assert!(matches!(only_description.decode(), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn code_of_an_older_set_refuses_what_it_cannot_read() {
        let set = later_event(2, described(Some(Some("Blue")))).to_stored();
        assert_eq!(
            set.decode_with(&EventSchemas::SET_1),
            Err(DecodeError::UnsupportedSchema { event_type: "ItemUpdated".into(), schema: 2 })
        );
        assert!(created_event().to_stored().decode_with(&EventSchemas::SET_1).is_ok());
        assert_eq!(EventSchemas::numbered(1), Some(EventSchemas::SET_1));
        assert_eq!(EventSchemas::numbered(3), None);
        assert_eq!(EventSchemas::ALL.last(), Some(&EventSchemas::CURRENT));
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
