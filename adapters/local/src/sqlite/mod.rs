//! The durable embedded backend: the event log, the idempotency records, the
//! read model and the projector's position in one SQLite database file (WAL
//! mode), the default store of `items serve`.
//!
//! - **Durable**: an append is acknowledged only once its transaction is
//!   committed with `synchronous = FULL`, which syncs the WAL to disk.
//! - **Group commit**: one writer thread owns the only writing connection and
//!   commits every write that is waiting in one transaction (each in its own
//!   savepoint, so one failed conditional append leaves the others alone): one
//!   fsync for many requests.
//! - **Read model writes are not synced**: the read model and the projector's
//!   position are disposable (rebuilt from the log by replay), so transactions
//!   with only those commit with `synchronous = NORMAL`: they survive a crash
//!   of the process, and a power loss rolls them back to an earlier, consistent
//!   point from which the projector simply re-applies events.
//! - Reads use a small pool of other connections (WAL readers never block the
//!   writer), on tokio's blocking threads.

mod change_log;
mod database;
mod disk_fold;
mod disk_sort;
mod event_store;
mod read_model;
mod rebuild;
mod schema;
mod scratch;
mod writer;

use items_domain::event::StoredEvent;
use items_domain::ports::StoreError;
use items_domain::{Event, Item};

pub use database::{DATABASE_FILE, Database, LOCK_FILE};
pub use disk_fold::DiskFold;
pub use disk_sort::DiskSort;
pub use event_store::SqliteEventStore;
pub use read_model::SqliteReadModel;
pub use rebuild::Rebuild;
pub use schema::OpenError;

/// A SQLite failure as the ports see it: the detail is for logs.
fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {error}"))
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

fn decode_event(stored: &str) -> Result<Event, StoreError> {
    let stored: StoredEvent = serde_json::from_str(stored).map_err(|e| corrupt("stored event", e))?;
    stored.decode().map_err(|e| corrupt("stored event", e))
}

/// An event and when it reached the log (its `occurred_at` if the row is
/// from before the store recorded that).
fn decode_recorded(stored: &str) -> Result<(Event, chrono::DateTime<chrono::Utc>), StoreError> {
    let stored: StoredEvent = serde_json::from_str(stored).map_err(|e| corrupt("stored event", e))?;
    let recorded = stored.recorded_at();
    let event = stored.decode().map_err(|e| corrupt("stored event", e))?;
    let recorded = recorded.unwrap_or(event.occurred_at);
    Ok((event, recorded))
}

fn decode_item(stored: &str) -> Result<Item, StoreError> {
    serde_json::from_str(stored).map_err(|e| corrupt("stored item", e))
}

/// One page of a query's rows (their first column), as DynamoDB pages: at
/// most `max` rows, or as many as make 1 MB; and whether rows were left. The
/// query asks for one row more than `max`.
fn read_page<T>(
    rows: &mut rusqlite::Rows<'_>,
    max: usize,
    what: &str,
    decode: impl Fn(&str) -> Result<T, StoreError>,
) -> Result<(Vec<T>, bool), StoreError> {
    let (mut page, mut bytes) = (Vec::new(), 0);
    while let Some(row) = rows.next().map_err(unavailable)? {
        if page.len() == max || bytes >= items_aws::limits::DYNAMODB_PAGE_MAX_BYTES {
            return Ok((page, true));
        }
        let stored = row.get_ref(0).map_err(unavailable)?.as_str().map_err(|e| corrupt(what, e))?;
        bytes += stored.len();
        page.push(decode(stored)?);
    }
    Ok((page, false))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt("encoding", e))
}

#[cfg(test)]
mod tests;
