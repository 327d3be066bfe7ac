//! `GET /items` and `GET /items/{id}`: reads of the read model, in pages
//! bounded by a body budget and the invocation's deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::ItemId;
use crate::item::Item;
use crate::ports::{Clock, CursorCodec, ReadModel, StoreError};

use super::body::{Body, BodyBudget};

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

/// How much one listing without a limit may return: its JSON body (as the
/// transport carries it), and the time spent reading pages. Past either, the
/// listing stops at a whole item and says where to go on.
#[derive(Debug, Clone, Copy)]
pub struct ListBudget {
    pub body: BodyBudget,
    pub max_time: Duration,
    /// Kept back before the invocation's deadline, to answer in: reading
    /// stops this long before it.
    pub reserve: Duration,
}

impl ListBudget {
    /// No bounds: every item in one listing.
    pub const UNBOUNDED: Self = Self { body: BodyBudget::UNBOUNDED, max_time: Duration::MAX, reserve: Duration::ZERO };
}

/// `GET /items` and `GET /items/{id}`: reads the read model.
pub struct QueryService {
    read_model: Arc<dyn ReadModel>,
    cursors: Arc<dyn CursorCodec>,
    clock: Arc<dyn Clock>,
    budget: ListBudget,
}

impl QueryService {
    pub fn new(read_model: Arc<dyn ReadModel>, cursors: Arc<dyn CursorCodec>, clock: Arc<dyn Clock>) -> Self {
        Self { read_model, cursors, clock, budget: ListBudget::UNBOUNDED }
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
        let started = self.clock.instant();
        let by_budget = started.checked_add(self.budget.max_time);
        let by_deadline = deadline.map(|deadline| deadline.checked_sub(self.budget.reserve).unwrap_or(started));
        let stop_at = by_budget.into_iter().chain(by_deadline).min();
        let mut items: Vec<Item> = Vec::new();
        let mut body = Body::new(self.budget.body);
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
                Some(next) if stop_at.is_some_and(|stop_at| self.clock.instant() >= stop_at) => {
                    return Ok(Listing { items, next_cursor: Some(self.cursors.seal(&next)) });
                }
                Some(next) => after = Some(next),
            }
        }
    }
}
