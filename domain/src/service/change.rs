//! Changing an item (`PATCH`, `DELETE`) through the one write path, and
//! reading its history.

use std::sync::Arc;

use crate::command::{Precondition, UpdateItem};
use crate::decide::{Actor, Command, Rejection};
use crate::event::{Event, ItemId};
use crate::idempotency::IdempotencyKey;
use crate::item::Item;
use crate::ports::{Clock, EventStore, IdGenerator, StoreError};

use super::write::{Target, WritePath};

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

/// `PATCH` and `DELETE /items/{id}`: the one write path
/// ([`super::write::WritePath`]) on an existing item.
pub struct ChangeItemService {
    path: WritePath,
}

impl ChangeItemService {
    pub fn new(events: Arc<dyn EventStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        Self { path: WritePath::new(events, clock, ids) }
    }

    pub fn with_idempotency_ttl(mut self, ttl: chrono::TimeDelta) -> Self {
        self.path.idempotency_ttl = ttl;
        self
    }

    /// Keeps a snapshot each time an item's version passes a multiple of
    /// `every` (default [`SNAPSHOT_EVERY`](super::write::SNAPSHOT_EVERY); tests
    /// take small ones to reach them).
    pub fn with_snapshot_every(mut self, every: u64) -> Self {
        self.path.snapshot_every = every.max(1);
        self
    }

    pub async fn update(
        &self,
        actor: &Actor,
        id: ItemId,
        update: UpdateItem,
        precondition: impl Into<Precondition>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Changed, ChangeError> {
        self.execute(actor, id, Command::Update(update), precondition.into(), key).await
    }

    pub async fn delete(
        &self,
        actor: &Actor,
        id: ItemId,
        precondition: impl Into<Precondition>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Changed, ChangeError> {
        self.execute(actor, id, Command::Delete, precondition.into(), key).await
    }

    async fn execute(
        &self,
        actor: &Actor,
        id: ItemId,
        command: Command,
        precondition: Precondition,
        key: Option<&IdempotencyKey>,
    ) -> Result<Changed, ChangeError> {
        let written = self.path.write(actor, Target::Existing(id), command, &precondition, key).await?;
        Ok(Changed { item: written.item, repeated: written.repeated })
    }
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

/// One page of an item's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// The version the next page starts after; `None` at the end.
    pub next: Option<u64>,
}

/// Events read per query while filling a history page without a limit.
const HISTORY_CHUNK: usize = 1000;

/// `GET /items/{id}/events`: the audit trail, read from the event log (so it
/// outlives a deletion), in pages.
pub struct HistoryService {
    events: Arc<dyn EventStore>,
    max_body_bytes: usize,
}

impl HistoryService {
    pub fn new(events: Arc<dyn EventStore>) -> Self {
        Self { events, max_body_bytes: usize::MAX }
    }

    /// Bounds a page without a limit to a body of this size, as carried in a
    /// JSON envelope (see [`super::ListBudget`]).
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// The item's events after version `after`, in version order: with
    /// `limit`, at most that many; without, as many as fit the body budget
    /// (every one, for all but the longest histories). `None` for an id that
    /// never existed.
    pub async fn history(&self, id: ItemId, limit: Option<u32>, after: u64) -> Result<Option<HistoryPage>, StoreError> {
        let page = match limit {
            Some(limit) => {
                // One more than the page tells whether there is a next one.
                let limit = limit as usize;
                let mut events = self.events.stream_after(id, after, limit + 1).await?;
                let more = events.len() > limit;
                events.truncate(limit);
                let next = if more { events.last().map(|event| event.version) } else { None };
                HistoryPage { entries: events.iter().map(HistoryEntry::from).collect(), next }
            }
            None => self.fill(id, after).await?,
        };
        Ok((after > 0 || !page.entries.is_empty()).then_some(page))
    }

    async fn fill(&self, id: ItemId, mut after: u64) -> Result<HistoryPage, StoreError> {
        let mut entries: Vec<HistoryEntry> = Vec::new();
        let mut body = super::Body::new(self.max_body_bytes);
        loop {
            let events = self.events.stream_after(id, after, HISTORY_CHUNK).await?;
            for event in &events {
                let entry = HistoryEntry::from(event);
                if !body.takes(&entry)
                    && let Some(last) = entries.last()
                {
                    let next = Some(last.version);
                    return Ok(HistoryPage { entries, next });
                }
                entries.push(entry);
            }
            match events.last() {
                Some(last) if events.len() == HISTORY_CHUNK => after = last.version,
                _ => return Ok(HistoryPage { entries, next: None }),
            }
        }
    }
}
