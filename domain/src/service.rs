//! Application services: what the handlers call. One service per use, so each
//! function gets only the ports (and so the permissions) it needs.
//!
//! - [`CreateItemService`] (`post-item`), [`ChangeItemService`] and
//!   [`HistoryService`] (`item-commands`): the one write path and the log.
//! - [`QueryService`] (`get-items`): the read model, in bounded pages.
//! - [`ProjectorService`] (`project-events`): events onto the read model.

mod body;
mod change;
mod create;
mod history;
mod project;
mod query;
mod write;

pub use body::{BodyBudget, plain_size};
pub use change::{ChangeError, ChangeItemService, Changed};
pub use create::{CreateError, CreateItemService, Created, DEFAULT_IDEMPOTENCY_TTL};
pub use history::{HistoryEntry, HistoryPage, HistoryService, PointInTime};
pub use project::{BatchOutcome, DEFAULT_CONCURRENCY, ProjectorService};
pub use query::{ListBudget, Listing, QueryError, QueryService, Selection};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod change_tests;

#[cfg(test)]
mod project_tests;
