//! Application services: what the handlers call. One service per use, so each
//! function gets only the ports (and so the permissions) it needs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::command::{CreateItem, Precondition};
use crate::decide::{Actor, Command};
use crate::event::{Event, EventPayload, ItemId};
use crate::idempotency::IdempotencyKey;
use crate::item::Item;
use crate::ports::{AppendError, Clock, CursorCodec, EventStore, IdGenerator, ReadModel, StoreError, Upsert};
use crate::projection::{self, Outcome};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// The idempotency key was used by this caller for a different request.
    #[error("idempotency key reused with a different request")]
    KeyReused,
    /// Another writer took the new item's stream first. With random ids this
    /// points at a broken id generator, not at the client.
    #[error(transparent)]
    Conflict(AppendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(Item),
    /// A retry with the same idempotency key: the first request's item.
    Repeated(Item),
}

impl Created {
    pub fn item(&self) -> &Item {
        match self {
            Created::New(item) | Created::Repeated(item) => item,
        }
    }
}

/// How long idempotency keys are remembered unless configured.
pub const DEFAULT_IDEMPOTENCY_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// `POST /items`: the one write path ([`write::WritePath`]) on a new item.
pub struct CreateItemService {
    path: WritePath,
}

impl CreateItemService {
    pub fn new(events: Arc<dyn EventStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        Self { path: WritePath::new(events, clock, ids) }
    }

    pub fn with_idempotency_ttl(mut self, ttl: chrono::TimeDelta) -> Self {
        self.path.idempotency_ttl = ttl;
        self
    }

    /// Like [`create`](Self::create), remembering `key` for this subject: a retry
    /// with the same key and request gets the first item back and appends
    /// nothing, also when the retries race; a different request with the key is
    /// refused.
    pub async fn create_idempotent(
        &self,
        subject: &str,
        command: CreateItem,
        key: &IdempotencyKey,
    ) -> Result<Created, CreateError> {
        let written = self.write(subject, command, Some(key)).await?;
        Ok(if written.repeated { Created::Repeated(written.item) } else { Created::New(written.item) })
    }

    /// Records the item's creation by `subject` and returns the item as the read
    /// model will show it once projected.
    pub async fn create(&self, subject: &str, command: CreateItem) -> Result<Item, CreateError> {
        Ok(self.write(subject, command, None).await?.item)
    }

    async fn write(
        &self,
        subject: &str,
        command: CreateItem,
        key: Option<&IdempotencyKey>,
    ) -> Result<write::Written, CreateError> {
        // Who creates needs no rights beyond the scope the handler checked.
        let actor = Actor { subject: subject.to_owned(), is_admin: false };
        let id = self.path.new_id();
        self.path.write(&actor, Target::New(id), Command::Create(command), &Precondition::Any, key).await.map_err(
            |error| match error {
                ChangeError::KeyReused => CreateError::KeyReused,
                ChangeError::Store(error) => CreateError::Store(error),
                ChangeError::Conflict { current } => {
                    CreateError::Conflict(AppendError::Conflict { item_id: id, expected: 0, actual: current })
                }
                // decide refuses a create only where the new id's stream exists.
                ChangeError::Rejected(rejection) => {
                    CreateError::Conflict(AppendError::Store(StoreError::Corrupt(rejection.to_string())))
                }
            },
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("invalid cursor")]
    InvalidCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A list of items and, when the listing was cut (by a limit or a budget), where to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub items: Vec<Item>,
    pub next_cursor: Option<String>,
}

/// How much one listing without a limit may return: its JSON body's size as
/// carried inside a JSON envelope (a Lambda proxy response: quotes and
/// backslashes escaped once more), and the time spent reading pages. Past
/// either, the listing stops at a whole item and says where to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListBudget {
    pub max_body_bytes: usize,
    pub max_time: Duration,
    /// Kept back before the invocation's deadline, to answer in: reading
    /// stops this long before it.
    pub reserve: Duration,
}

impl ListBudget {
    /// No bounds: every item in one listing.
    pub const UNBOUNDED: Self = Self { max_body_bytes: usize::MAX, max_time: Duration::MAX, reserve: Duration::ZERO };
}

/// The size of `value`'s JSON as it is carried inside a JSON string (a Lambda
/// proxy response's `body`): every `"` and `\` takes one byte more.
pub fn embedded_size(value: &impl serde::Serialize) -> usize {
    let json = serde_json::to_vec(value).unwrap_or_default();
    json.len() + json.iter().filter(|&&b| b == b'"' || b == b'\\').count()
}

/// A JSON array body filled under a byte budget (sizes as [`embedded_size`]
/// counts them): what one listing or history page may hold.
pub(crate) struct Body {
    bytes: usize,
    max: usize,
    empty: bool,
}

impl Body {
    pub(crate) fn new(max: usize) -> Self {
        Self { bytes: 2, max, empty: true } // `[]`
    }

    /// Counts `value` in if it fits, or if the body is still empty (a page
    /// always makes progress); `false`: the page ends before it.
    pub(crate) fn takes(&mut self, value: &impl serde::Serialize) -> bool {
        let size = embedded_size(value) + usize::from(!self.empty);
        if !self.empty && self.bytes + size > self.max {
            return false;
        }
        self.bytes += size;
        self.empty = false;
        true
    }
}

/// `GET /items` and `GET /items/{id}`: reads the read model.
pub struct QueryService {
    read_model: Arc<dyn ReadModel>,
    cursors: Arc<dyn CursorCodec>,
    budget: ListBudget,
}

impl QueryService {
    pub fn new(read_model: Arc<dyn ReadModel>, cursors: Arc<dyn CursorCodec>) -> Self {
        Self { read_model, cursors, budget: ListBudget::UNBOUNDED }
    }

    /// Bounds listings without a limit (see [`ListBudget`]).
    pub fn with_list_budget(mut self, budget: ListBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The item, unless it does not exist or was deleted.
    pub async fn get(&self, id: ItemId) -> Result<Option<Item>, QueryError> {
        Ok(self.read_model.get(id).await?.filter(|item| !item.deleted))
    }

    /// With `limit`, one page and the cursor of the next. Without, the items
    /// from `cursor` on, pages followed until the end or until the service's
    /// [`ListBudget`] is spent, or the invocation's `deadline` (less the
    /// budget's reserve) is near, then the cursor of the rest: never a silent
    /// cut. A listing that found only tombstones by then is empty, with a
    /// cursor: an empty page is not the end.
    pub async fn list(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Listing, QueryError> {
        let mut after = match cursor {
            Some(cursor) => Some(self.cursors.open(cursor).map_err(|_| QueryError::InvalidCursor)?),
            None => None,
        };
        if let Some(limit) = limit {
            // Tombstones count against the limit: a page may hold fewer items.
            let mut page = self.read_model.list_page(Some(limit), after.as_ref()).await?;
            page.items.retain(|item| !item.deleted);
            return Ok(Listing { items: page.items, next_cursor: page.next.map(|key| self.cursors.seal(&key)) });
        }
        let started = Instant::now();
        let by_budget = started.checked_add(self.budget.max_time);
        let by_deadline = deadline.map(|deadline| deadline.checked_sub(self.budget.reserve).unwrap_or(started));
        let stop_at = by_budget.into_iter().chain(by_deadline).min();
        let mut items: Vec<Item> = Vec::new();
        let mut body = Body::new(self.budget.max_body_bytes);
        loop {
            let page = self.read_model.list_page(None, after.as_ref()).await?;
            for item in page.items.into_iter().filter(|item| !item.deleted) {
                if !body.takes(&item)
                    && let Some(last) = items.last()
                {
                    let rest = self.read_model.position_after(last);
                    return Ok(Listing { next_cursor: Some(self.cursors.seal(&rest)), items });
                }
                items.push(item);
            }
            match page.next {
                None => return Ok(Listing { items, next_cursor: None }),
                Some(next) if stop_at.is_some_and(|stop_at| Instant::now() >= stop_at) => {
                    return Ok(Listing { items, next_cursor: Some(self.cursors.seal(&next)) });
                }
                Some(next) => after = Some(next),
            }
        }
    }
}

/// What a batch did. Events after a failure are not attempted: the stream
/// source retries from the failed one, so order is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    pub applied: usize,
    pub already_newer: usize,
    /// Index of the first event that could not be applied, and why.
    pub failed: Option<(usize, StoreError)>,
}

/// The projector: applies events to the read model.
pub struct ProjectorService {
    read_model: Arc<dyn ReadModel>,
    /// Where an item's stream is read when an event does not follow on from
    /// the read model's state (a delivery out of order, or a lost write).
    history: Option<Arc<dyn EventStore>>,
}

impl ProjectorService {
    pub fn new(read_model: Arc<dyn ReadModel>) -> Self {
        Self { read_model, history: None }
    }

    /// Lets the projector fold an item's stream when an event needs the state
    /// right before it and the read model is further behind.
    pub fn with_history(mut self, events: Arc<dyn EventStore>) -> Self {
        self.history = Some(events);
        self
    }

    /// Applies one event. Idempotent: the read model's write is version-guarded.
    pub async fn apply(&self, event: &Event) -> Result<Upsert, StoreError> {
        // ItemCreated holds the whole state, so no read is needed first.
        let current = match event.payload {
            EventPayload::ItemCreated(_) => None,
            _ => self.read_model.get(event.item_id).await?,
        };
        match projection::evolve(current.as_ref(), event) {
            Outcome::Apply(item) => self.read_model.upsert_if_newer(&item).await,
            Outcome::AlreadyNewer => Ok(Upsert::AlreadyNewer),
            Outcome::NeedsHistory => {
                let Some(history) = &self.history else {
                    return Err(StoreError::Unavailable(format!(
                        "event {} of item {} needs the item's history, and this projector has no event log",
                        event.version, event.item_id
                    )));
                };
                let stream = history.stream(event.item_id).await?;
                match projection::fold_stream(&stream)? {
                    Some(item) if item.version >= event.version => self.read_model.upsert_if_newer(&item).await,
                    _ => Err(StoreError::Corrupt(format!(
                        "event {} of item {} is not in the item's stream",
                        event.version, event.item_id
                    ))),
                }
            }
        }
    }

    /// Applies events in order, stopping at the first failure.
    pub async fn project_batch(&self, events: &[Event]) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        for (index, event) in events.iter().enumerate() {
            match self.apply(event).await {
                Ok(Upsert::Applied) => outcome.applied += 1,
                Ok(Upsert::AlreadyNewer) => outcome.already_newer += 1,
                Err(error) => {
                    outcome.failed = Some((index, error));
                    break;
                }
            }
        }
        outcome
    }
}

mod change;
mod write;

use write::{Target, WritePath};

pub use change::{ChangeError, ChangeItemService, Changed, HistoryEntry, HistoryPage, HistoryService};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod change_tests;
