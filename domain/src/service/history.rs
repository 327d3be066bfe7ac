//! `GET /items/{id}/events`: an item's history, read from the log in pages.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::event::{Event, ItemId};
use crate::item::Item;
use crate::ports::{EventStore, StoreError};
use crate::projection::fold_stream_onto;

use super::body::{Body, BodyBudget};

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

/// A point in an item's history: `?version=N` or `?at=<time>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointInTime {
    /// Right after the event at this version.
    Version(u64),
    /// The stream from its first event up to the first event that occurred
    /// after this time (not included). A change is stamped no earlier than
    /// the event it follows, but logs from before that rule may hold a later
    /// version with an earlier time: it still comes after, since it was
    /// decided on that event.
    Time(DateTime<Utc>),
}

/// Events read per query while filling a history page without a limit.
const HISTORY_CHUNK: usize = 1000;

/// `GET /items/{id}/events`: the audit trail, read from the event log (so it
/// outlives a deletion), in pages.
pub struct HistoryService {
    events: Arc<dyn EventStore>,
    budget: BodyBudget,
}

impl HistoryService {
    pub fn new(events: Arc<dyn EventStore>) -> Self {
        Self { events, budget: BodyBudget::UNBOUNDED }
    }

    /// Bounds a page without a limit to this body budget (the listing's).
    pub fn with_body_budget(mut self, budget: BodyBudget) -> Self {
        self.budget = budget;
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
        let mut body = Body::new(self.budget);
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

    /// The item as it was at `point`: its stream folded up to that point
    /// (a tombstone, `deleted`, from its deletion on), from the item's
    /// snapshot when the point is at or after it (so a long stream costs at
    /// most the events after its last snapshot), else from the first event.
    /// `None` when the item did not exist yet, or has no such version. Read
    /// from the log, so it outlives a deletion. Reading stops at `stop_by`
    /// (the invocation's deadline less what answering needs) with
    /// [`StoreError::Unavailable`]: a client retries, a function is never
    /// held to its timeout (security review N5).
    pub async fn item_at(
        &self,
        id: ItemId,
        point: PointInTime,
        stop_by: Option<std::time::Instant>,
    ) -> Result<Option<Item>, StoreError> {
        let mut state = self.snapshot_before(id, point).await;
        loop {
            let after = state.as_ref().map_or(0, |item| item.version);
            let wanted = match point {
                PointInTime::Version(version) if version <= after => return Ok(state),
                PointInTime::Version(version) => {
                    usize::try_from(version - after).unwrap_or(usize::MAX).min(HISTORY_CHUNK)
                }
                PointInTime::Time(_) => HISTORY_CHUNK,
            };
            if stop_by.is_some_and(|stop_by| std::time::Instant::now() >= stop_by) {
                return Err(StoreError::Unavailable(format!(
                    "the item's history did not fold before the deadline (at version {after})"
                )));
            }
            let events = self.events.stream_after(id, after, wanted).await?;
            let read = events.len();
            let upto = match point {
                PointInTime::Version(_) => read,
                PointInTime::Time(at) => events.iter().position(|event| event.occurred_at > at).unwrap_or(read),
            };
            state = fold_stream_onto(state, &events[..upto])?;
            if upto < read || read < wanted {
                // Past the point in time, or at the stream's end before the version.
                return Ok(match point {
                    PointInTime::Version(version) => state.filter(|item| item.version == version),
                    PointInTime::Time(_) => state,
                });
            }
        }
    }

    /// The item's snapshot, if one of this projection code's revision is at
    /// or before `point` (for a time, its own event's time). Best effort:
    /// without one, the fold starts at the first event.
    async fn snapshot_before(&self, id: ItemId, point: PointInTime) -> Option<Item> {
        let snapshot = self.events.snapshot(id).await.ok().flatten()?;
        let item = Some(snapshot.item).filter(|_| snapshot.revision == crate::projection::REVISION)?;
        match point {
            PointInTime::Version(version) => (item.version <= version).then_some(item),
            PointInTime::Time(at) => {
                let own = self.events.stream_after(id, item.version - 1, 1).await.ok()?;
                own.first().filter(|event| event.version == item.version && event.occurred_at <= at).map(|_| item)
            }
        }
    }
}
