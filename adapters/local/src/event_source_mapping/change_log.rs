//! The port a local change feed reads: a log in sequence order, with its
//! projector position and its quarantine.

use async_trait::async_trait;
use items_domain::ports::StoreError;
use tokio::sync::watch;

use super::{ChangeRecord, Quarantine};

/// A local event log as a change feed reads it: events in sequence order
/// (1, 2, ...), a signal when new ones are committed, where the projector got
/// to, and the quarantine the feed sets poison aside in.
#[async_trait]
pub trait ChangeLog: Quarantine {
    /// Up to `max` entries after sequence number `after`.
    async fn read_after(&self, after: u64, max: usize) -> Result<Vec<ChangeRecord>, StoreError>;
    /// Changes whenever events are committed.
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// The sequence number up to which events are projected (0: none).
    async fn projected_position(&self) -> Result<u64, StoreError>;
    async fn save_projected_position(&self, position: u64) -> Result<(), StoreError>;
}
