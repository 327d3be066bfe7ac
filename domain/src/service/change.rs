//! Changing an item (`PATCH`, `DELETE`) and reading its history: the one
//! load -> decide -> append path, at the version the stream was read at.

use std::sync::Arc;

use crate::command::UpdateItem;
use crate::decide::{Actor, Command, Rejection, decide};
use crate::event::{Event, ItemId};
use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::item::Item;
use crate::ports::{AppendError, Clock, EventStore, IdGenerator, StoreError};
use crate::projection;

use super::DEFAULT_IDEMPOTENCY_TTL;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Another change was appended between our read and our append (only
    /// without `If-Match`; with it, the mismatch is [`Rejection::VersionMismatch`]).
    #[error("item changed concurrently; it is now at version {current}")]
    Conflict { current: u64 },
    #[error("idempotency key reused with a different request")]
    KeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a change did: the item after it (a tombstone after a delete), and
/// whether this was a retry answered from its idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub item: Item,
    pub repeated: bool,
}

/// `PATCH` and `DELETE /items/{id}`: load the item's stream, decide, append
/// at the version it was loaded at. The answer is computed from the stream,
/// never from the eventually consistent read model.
pub struct ChangeItemService {
    events: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    idempotency_ttl: chrono::TimeDelta,
}

impl ChangeItemService {
    pub fn new(events: Arc<dyn EventStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        Self { events, clock, ids, idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL }
    }

    pub fn with_idempotency_ttl(mut self, ttl: chrono::TimeDelta) -> Self {
        self.idempotency_ttl = ttl;
        self
    }

    pub async fn update(
        &self,
        actor: &Actor,
        id: ItemId,
        update: UpdateItem,
        expected_version: Option<u64>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Changed, ChangeError> {
        self.execute(actor, id, Command::Update(update), expected_version, key).await
    }

    pub async fn delete(
        &self,
        actor: &Actor,
        id: ItemId,
        expected_version: Option<u64>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Changed, ChangeError> {
        self.execute(actor, id, Command::Delete, expected_version, key).await
    }

    /// The one path of every change: load -> decide -> append at the loaded version.
    async fn execute(
        &self,
        actor: &Actor,
        id: ItemId,
        command: Command,
        expected_version: Option<u64>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Changed, ChangeError> {
        let request = change_fingerprint(id, &command, expected_version);
        if let Some(key) = key
            && let Some(record) = self.events.idempotency_record(&actor.subject, key).await?
            && record.is_live(self.clock.now())
        {
            return if record.same_change(&request) {
                Ok(Changed { item: record.item, repeated: true })
            } else {
                Err(ChangeError::KeyReused)
            };
        }
        let stream = self.events.stream(id).await?;
        let state = projection::fold(&stream);
        let payloads = decide(state.as_ref(), &command, actor, expected_version)?;
        // decide found the item, so `state` is there; the fallback is never used.
        let loaded_version = state.as_ref().map_or(0, |item| item.version);
        let now = self.clock.now();
        let events: Vec<Event> = payloads
            .into_iter()
            .enumerate()
            .map(|(offset, payload)| Event {
                event_id: self.ids.new_id(),
                item_id: id,
                version: loaded_version + offset as u64 + 1,
                occurred_at: now,
                subject: actor.subject.clone(),
                payload,
            })
            .collect();
        let item = projection::fold(stream.iter().chain(&events))
            .ok_or_else(|| StoreError::Corrupt(format!("item {id} has no state after a change")))?;
        if events.is_empty() {
            return Ok(Changed { item, repeated: false });
        }
        let appended = match key {
            Some(key) => {
                let record = IdempotencyRecord {
                    subject: actor.subject.clone(),
                    key: key.clone(),
                    name: item.name.clone(),
                    timestamp: item.timestamp.clone(),
                    item: item.clone(),
                    expires_at: now + self.idempotency_ttl,
                    change: Some(request.clone()),
                };
                self.events.append_idempotent(&record, loaded_version, &events, now).await
            }
            None => self.events.append(loaded_version, &events).await,
        };
        match appended {
            Ok(()) => Ok(Changed { item, repeated: false }),
            Err(AppendError::Conflict { actual, .. }) => match expected_version {
                Some(expected) => Err(Rejection::VersionMismatch { expected, current: actual }.into()),
                None => Err(ChangeError::Conflict { current: actual }),
            },
            // A racing retry with the same key won: answer from its record.
            Err(AppendError::KeyTaken) => match key {
                Some(key) => match self.events.idempotency_record(&actor.subject, key).await? {
                    Some(record) if record.same_change(&request) => Ok(Changed { item: record.item, repeated: true }),
                    _ => Err(ChangeError::KeyReused),
                },
                None => Err(ChangeError::KeyReused),
            },
            Err(AppendError::Store(error)) => Err(error.into()),
        }
    }
}

/// What a change request asked for, to tell its retries from other requests.
fn change_fingerprint(id: ItemId, command: &Command, expected_version: Option<u64>) -> String {
    let asked = match command {
        Command::Update(update) => {
            serde_json::json!({"op": "update", "name": update.name, "timestamp": update.timestamp})
        }
        Command::Delete => serde_json::json!({"op": "delete"}),
        Command::Create(create) => {
            serde_json::json!({"op": "create", "name": create.name, "timestamp": create.timestamp})
        }
    };
    serde_json::json!({"id": id, "ifMatch": expected_version, "asked": asked}).to_string()
}

/// One entry of an item's history, as `GET /items/{id}/events` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub event_id: uuid::Uuid,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub version: u64,
    #[serde(with = "crate::event::rfc3339")]
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub subject: String,
    pub changes: serde_json::Value,
}

impl From<&Event> for HistoryEntry {
    fn from(event: &Event) -> Self {
        Self {
            event_id: event.event_id,
            event_type: event.payload.type_name(),
            version: event.version,
            occurred_at: event.occurred_at,
            subject: event.subject.clone(),
            changes: event.payload.changes(),
        }
    }
}

/// `GET /items/{id}/events`: the audit trail, read from the event log (so it
/// outlives a deletion).
pub struct HistoryService {
    events: Arc<dyn EventStore>,
}

impl HistoryService {
    pub fn new(events: Arc<dyn EventStore>) -> Self {
        Self { events }
    }

    /// The item's events in version order; `None` for an id that never existed.
    pub async fn history(&self, id: ItemId) -> Result<Option<Vec<HistoryEntry>>, StoreError> {
        let stream = self.events.stream(id).await?;
        Ok((!stream.is_empty()).then(|| stream.iter().map(HistoryEntry::from).collect()))
    }
}
