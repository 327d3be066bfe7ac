//! `GET /items` and `GET /items/{id}`: reads of the read model, in pages
//! bounded by a body budget and the invocation's deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::ItemId;
use crate::item::Item;
use crate::ports::{Clock, CreatorKey, CursorCodec, Page, PageKey, ReadModel, StoreError};

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

/// Which items a listing holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection<'a> {
    /// Every item, in the table's order.
    All,
    /// The items this subject (a Cognito `sub`) created, newest first.
    CreatedBy(&'a str),
}

/// What a cursor of a creator's listing starts with, before the creator and
/// the position: a cursor is good for the listing that handed it out only.
const CREATOR_CURSOR: &str = "by-creator\n";

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
    /// What is kept back before an invocation's deadline to answer in.
    pub fn reserve(&self) -> Duration {
        self.budget.reserve
    }

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
    /// cursor: an empty page is not the end. A cursor only goes on the
    /// listing (the `selection`) that handed it out.
    pub async fn list(
        &self,
        selection: Selection<'_>,
        limit: Option<u32>,
        cursor: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Listing, QueryError> {
        let mut after = match cursor {
            Some(cursor) => Some(self.open(selection, cursor)?),
            None => None,
        };
        if let Some(limit) = limit {
            // Tombstones count against the limit: a page may hold fewer items.
            let mut page = self.page(selection, Some(limit), after.as_ref()).await?;
            page.items.retain(|item| !item.deleted);
            return Ok(Listing { items: page.items, next_cursor: page.next.map(|key| self.seal(selection, &key)) });
        }
        let started = self.clock.instant();
        let by_budget = started.checked_add(self.budget.max_time);
        let by_deadline = deadline.map(|deadline| deadline.checked_sub(self.budget.reserve).unwrap_or(started));
        let stop_at = by_budget.into_iter().chain(by_deadline).min();
        let mut items: Vec<Item> = Vec::new();
        let mut body = Body::new(self.budget.body);
        loop {
            let page = self.page(selection, None, after.as_ref()).await?;
            for item in page.items.into_iter().filter(|item| !item.deleted) {
                if !body.takes(&item)
                    && let Some(last) = items.last()
                {
                    let rest = match selection {
                        Selection::All => self.read_model.position_after(last),
                        Selection::CreatedBy(_) => CreatorKey::of(last).to_page_key(),
                    };
                    return Ok(Listing { next_cursor: Some(self.seal(selection, &rest)), items });
                }
                items.push(item);
            }
            match page.next {
                None => return Ok(Listing { items, next_cursor: None }),
                Some(next) if stop_at.is_some_and(|stop_at| self.clock.instant() >= stop_at) => {
                    return Ok(Listing { items, next_cursor: Some(self.seal(selection, &next)) });
                }
                Some(next) => after = Some(next),
            }
        }
    }

    async fn page(
        &self,
        selection: Selection<'_>,
        limit: Option<u32>,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError> {
        match selection {
            Selection::All => self.read_model.list_page(limit, after).await,
            Selection::CreatedBy(creator) => self.read_model.list_by_creator(creator, limit, after).await,
        }
    }

    fn seal(&self, selection: Selection<'_>, key: &PageKey) -> String {
        match selection {
            Selection::All => self.cursors.seal(key),
            Selection::CreatedBy(creator) => {
                self.cursors.seal(&PageKey(format!("{CREATOR_CURSOR}{creator}\n{}", key.0)))
            }
        }
    }

    fn open(&self, selection: Selection<'_>, cursor: &str) -> Result<PageKey, QueryError> {
        let key = self.cursors.open(cursor).map_err(|_| QueryError::InvalidCursor)?;
        let creators = key.0.strip_prefix(CREATOR_CURSOR);
        match (selection, creators) {
            (Selection::All, None) => Ok(key),
            (Selection::CreatedBy(creator), Some(rest)) => {
                let position = rest
                    .strip_prefix(creator)
                    .and_then(|rest| rest.strip_prefix('\n'))
                    .map(|position| PageKey(position.to_owned()))
                    .ok_or(QueryError::InvalidCursor)?;
                CreatorKey::from_page_key(&position).map_err(|_| QueryError::InvalidCursor)?;
                Ok(position)
            }
            _ => Err(QueryError::InvalidCursor),
        }
    }
}
