//! The one write path. Every command (create, update, delete) goes
//! load -> [`decide`] -> append through [`WritePath::write`], with one
//! idempotency rule: a request with an `Idempotency-Key` leaves a record in
//! the same atomic write as its events (also when it changed nothing), and a
//! retry is answered from that record, never decided again.

use std::sync::Arc;

use crate::command::{Actor, Command};
use crate::command::{CreateItem, Precondition};
use crate::decide::{Rejection, decide};
use crate::event::{Event, EventSchemas, ItemId};
use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::item::Item;
use crate::ports::{AppendError, Clock, EventStore, IdGenerator, Snapshot, StoreError};
use crate::projection;

use super::DEFAULT_IDEMPOTENCY_TTL;
use super::change::ChangeError;

/// Which stream a command writes to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// A new item with this id: nothing to load.
    New(ItemId),
    /// An existing item: its stream is loaded and folded first.
    Existing(ItemId),
}

impl Target {
    fn id(self) -> ItemId {
        match self {
            Target::New(id) | Target::Existing(id) => id,
        }
    }
}

/// What a write did: the item after it, and whether this was a retry
/// answered from its idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub item: Item,
    pub repeated: bool,
}

/// A snapshot is kept each time an item's version passes a multiple of this:
/// a change then reads at most about this many events, however long the
/// item's history (the review's 43,000-event item read 10 MB per change).
pub(crate) const SNAPSHOT_EVERY: u64 = 100;

/// Rounds of "read the record, decide, append" when the key's record keeps
/// changing under us (one that expired between our read and our write).
const KEY_ROUNDS: usize = 3;

pub(crate) struct WritePath {
    events: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    pub(crate) idempotency_ttl: chrono::TimeDelta,
    pub(crate) snapshot_every: u64,
    /// The event schemas this deployment may write: an older set until
    /// every reader knows the newer one (docs/deploy.md).
    pub(crate) writes: EventSchemas,
}

impl WritePath {
    pub fn new(events: Arc<dyn EventStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        Self {
            events,
            clock,
            ids,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            snapshot_every: SNAPSHOT_EVERY,
            writes: EventSchemas::CURRENT,
        }
    }

    pub fn new_id(&self) -> ItemId {
        ItemId(self.ids.new_id())
    }

    /// Load -> decide -> append at the loaded version. The answer is the fold
    /// of the stream and the new events, never the eventually consistent
    /// read model.
    pub async fn write(
        &self,
        actor: &Actor,
        target: Target,
        command: Command,
        precondition: &Precondition,
        key: Option<&IdempotencyKey>,
    ) -> Result<Written, ChangeError> {
        let request = Request::new(target, &command, precondition);
        for _ in 0..KEY_ROUNDS {
            let now = self.clock.now();
            if let Some(key) = key
                && let Some(record) = self.events.idempotency_record(&actor.subject, key).await?
                && record.is_live(now)
            {
                return request.answer_from(record);
            }
            let (state, last_at) = match target {
                Target::New(_) => (None, None),
                Target::Existing(id) => self.load(id).await?,
            };
            // Never before the event it follows: instances' clocks differ,
            // and `?at` reads a stream's times as ordered.
            let occurred_at = last_at.map_or(now, |last| now.max(last));
            let payloads = decide(state.as_ref(), &command, actor, precondition)?;
            for payload in &payloads {
                if !self.writes.holds(payload) {
                    let field = payload.schema().1.unwrap_or("this");
                    return Err(ChangeError::NotWritableYet { field, set: self.writes.set });
                }
            }
            // The stream's head: a strict fold applies every event or fails.
            let head = state.as_ref().map_or(0, |item| item.version);
            let events: Vec<Event> = payloads
                .into_iter()
                .enumerate()
                .map(|(offset, payload)| Event {
                    event_id: self.ids.new_id(),
                    item_id: target.id(),
                    version: head + offset as u64 + 1,
                    occurred_at,
                    subject: actor.subject.clone(),
                    payload,
                })
                .collect();
            let item = projection::fold_stream_onto(state, &events)
                .map_err(StoreError::from)?
                .ok_or_else(|| StoreError::Corrupt(format!("item {} has no state after a write", target.id())))?;
            let appended = match key {
                // Also when nothing changed: the record is the answer a retry
                // gets, whatever happened to the item since.
                Some(key) => {
                    let record = request.record(actor, key, &item, now + self.idempotency_ttl);
                    self.events.append_idempotent(&record, head, &events, now).await
                }
                None if events.is_empty() => Ok(()),
                None => self.events.append(head, &events).await,
            };
            return match appended {
                Ok(()) => {
                    if item.version / self.snapshot_every > head / self.snapshot_every {
                        // Best effort: without it, the next loads read further back.
                        let snapshot = Snapshot { item: item.clone(), revision: projection::REVISION };
                        let _ = self.events.save_snapshot(&snapshot).await;
                    }
                    Ok(Written { item, repeated: false })
                }
                Err(AppendError::Conflict { actual, .. }) => Err(match precondition {
                    Precondition::OneOf(_) => Rejection::VersionMismatch { current: actual }.into(),
                    Precondition::Any => ChangeError::Conflict { current: actual },
                }),
                // Another request with this key won: the next round answers from its record.
                Err(AppendError::KeyTaken) => continue,
                Err(AppendError::Store(error)) => Err(error.into()),
            };
        }
        Err(StoreError::Unavailable("idempotency record kept changing".into()).into())
    }

    /// The item's state, folded strictly: a short stream whole (read at once
    /// with the snapshot, so no extra round trip), a long one from its
    /// latest snapshot on. A snapshot that cannot be read or was folded by
    /// other projection code is passed over. Also when its last event
    /// occurred.
    async fn load(&self, id: ItemId) -> Result<(Option<Item>, Option<chrono::DateTime<chrono::Utc>>), StoreError> {
        let first = usize::try_from(self.snapshot_every).unwrap_or(usize::MAX);
        let (head, snapshot) =
            futures::future::join(self.events.stream_after(id, 0, first), self.events.snapshot(id)).await;
        let head = head?;
        let Some(last) = head.last().filter(|_| head.len() == first) else {
            return Ok((projection::fold_stream(&head)?, head.last().map(|event| event.occurred_at)));
        };
        let snapshot = snapshot
            .ok()
            .flatten()
            .filter(|snapshot| snapshot.revision == projection::REVISION && snapshot.item.version > last.version);
        let (state, after) = match snapshot {
            Some(snapshot) => {
                let version = snapshot.item.version;
                (Some(snapshot.item), version)
            }
            None => (projection::fold_stream(&head)?, last.version),
        };
        let tail = self.events.stream_after(id, after, usize::MAX).await?;
        let last_at = match tail.last() {
            Some(event) => Some(event.occurred_at),
            // Folded from a snapshot with nothing after it: its own event.
            None if after > last.version => {
                self.events.stream_after(id, after - 1, 1).await?.first().map(|event| event.occurred_at)
            }
            None => Some(last.occurred_at),
        };
        Ok((projection::fold_stream_onto(state, &tail)?, last_at))
    }
}

/// What a request asked for, to tell its retries from other requests.
enum Request {
    /// Creates keep the record shape they always had (no `change`), so
    /// records written by earlier releases still answer their retries.
    Create(CreateItem),
    Change(String),
}

impl Request {
    fn new(target: Target, command: &Command, precondition: &Precondition) -> Self {
        match (target, command) {
            (Target::New(_), Command::Create(create)) => Request::Create(create.clone()),
            _ => Request::Change(fingerprint(target.id(), command, precondition)),
        }
    }

    fn answer_from(&self, record: IdempotencyRecord) -> Result<Written, ChangeError> {
        let same = match self {
            Request::Create(create) => record.same_request(create),
            Request::Change(change) => record.same_change(change),
        };
        if same { Ok(Written { item: record.item, repeated: true }) } else { Err(ChangeError::KeyReused) }
    }

    fn record(
        &self,
        actor: &Actor,
        key: &IdempotencyKey,
        item: &Item,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> IdempotencyRecord {
        let (name, timestamp, description, change) = match self {
            Request::Create(create) => {
                (create.name.clone(), create.timestamp.clone(), create.description.clone(), None)
            }
            Request::Change(change) => (item.name.clone(), item.timestamp.clone(), None, Some(change.clone())),
        };
        IdempotencyRecord {
            subject: actor.subject.clone(),
            key: key.clone(),
            name,
            timestamp,
            description,
            item: item.clone(),
            expires_at,
            change,
        }
    }
}

/// A change request's identity: the item, what was asked, and `If-Match`
/// (one version as a number, as records written before lists were taken).
fn fingerprint(id: ItemId, command: &Command, precondition: &Precondition) -> String {
    let if_match = match precondition {
        Precondition::Any => serde_json::Value::Null,
        Precondition::OneOf(versions) if versions.len() == 1 => versions[0].into(),
        Precondition::OneOf(versions) => versions.as_slice().into(),
    };
    let asked = match command {
        Command::Update(update) => {
            let mut asked = serde_json::json!({"op": "update", "name": update.name, "timestamp": update.timestamp});
            // Only when asked: a retry of a request made before items had a
            // description keeps the fingerprint its record has.
            if let Some(description) = &update.description {
                asked["description"] = description.clone().into();
            }
            asked
        }
        Command::Delete => serde_json::json!({"op": "delete"}),
        Command::Create(create) => {
            let mut asked = serde_json::json!({"op": "create", "name": create.name, "timestamp": create.timestamp});
            if let Some(description) = &create.description {
                asked["description"] = description.clone().into();
            }
            asked
        }
    };
    serde_json::json!({"id": id, "ifMatch": if_match, "asked": asked}).to_string()
}
