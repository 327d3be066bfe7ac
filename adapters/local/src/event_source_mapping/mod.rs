//! What Lambda's event source mapping does for the projector, emulated for the
//! local change feeds (of the SQLite and volatile stores, and the DynamoDB stream poller):
//! a batch of stream records in, the function's partial batch failures
//! honoured by retrying from the first failed record.
//!
//! The poison policy (docs/architecture.md), the same as in AWS, where the
//! handler applies it ([`project_and_set_aside`]): a record is never
//! skipped. A poison record (one this code cannot apply) is set aside at
//! once in the quarantine, where `GET /metrics` and `items quarantine` show
//! it, and the feed goes on; later events of the same item then fail too
//! (their stream cannot be folded past it), so its read-model row never
//! moves past an event it did not apply; `items quarantine --redrive`
//! re-projects the items once the code can read them. A transient failure
//! (the store is down) is retried with capped backoff for as long as it
//! lasts.
//!
//! The parts: [`ChangeLog`], a local log as a feed reads it; the stream
//! records DynamoDB would deliver (`records`); the feed loop that hands them
//! to the handler (`feed`); and here, the retry policy of a delivery that a
//! dependency failed.

use std::time::Duration;

mod change_log;
mod feed;
mod records;

pub use change_log::ChangeLog;
pub use feed::{drain_change_feed, run_change_feed};
pub use items_aws::quarantine::{Quarantine, Quarantined, Redrive, redrive};
pub use records::{ChangeRecord, Undecodable, insert_record};

/// First pause before a failed batch is delivered again, as Lambda would pause.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between deliveries while a dependency is down.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// The pause before delivery attempt `attempt + 1`: doubling from
/// [`RETRY_BACKOFF`], capped at [`MAX_RETRY_BACKOFF`].
pub fn retry_backoff(attempt: u32) -> Duration {
    RETRY_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(8)).min(MAX_RETRY_BACKOFF)
}

/// Failed deliveries of the record at the head of the feed: each waits
/// longer, up to [`MAX_RETRY_BACKOFF`], for as long as the failure lasts.
#[derive(Debug, Default)]
pub struct Attempts {
    transient: u32,
}

impl Attempts {
    /// Counts a failure of the record at `failed` in the batch (records
    /// before it were applied, so a failure past 0 is a new record's first)
    /// and answers the pause before the next delivery.
    pub fn next(&mut self, failed: usize, reason: &str) -> Duration {
        if failed > 0 {
            *self = Self::default();
        }
        self.transient += 1;
        tracing::warn!(attempt = self.transient, %reason, "projection waits for its store");
        retry_backoff(self.transient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use items_domain::service::ProjectorService;
    use std::sync::Arc;

    #[test]
    fn a_dependency_failure_is_retried_for_as_long_as_it_lasts_with_capped_backoff() {
        let mut attempts = Attempts::default();
        let pauses: Vec<Duration> = (0..50).map(|_| attempts.next(0, "down")).collect();
        assert_eq!(pauses[0], RETRY_BACKOFF);
        assert_eq!(pauses[1], RETRY_BACKOFF * 2);
        assert_eq!(pauses[49], MAX_RETRY_BACKOFF, "never longer than the cap");
        // A later record of the batch failing starts its own count.
        attempts.next(0, "down");
        assert_eq!(attempts.next(3, "down"), RETRY_BACKOFF);
    }

    /// Review finding 7, scenario A: the read model is down for 4 s while a
    /// deletion waits to be projected. The feed waits for it and applies it; before, it set the
    /// deletion aside after about 1 s, for good.
    #[tokio::test]
    async fn a_deletion_waits_out_a_read_model_outage_and_is_applied() {
        use crate::volatile::VolatileEventStore;
        use items_domain::command::Actor;
        use items_domain::command::CreateItem;
        use items_domain::memory::InMemoryReadModel;
        use items_domain::ports::{EventStore, ReadModel};
        use items_domain::service::{ChangeItemService, CreateItemService};
        use items_domain::testing::{FixedClock, SequentialIds};

        let events = Arc::new(VolatileEventStore::default());
        let read_model = Arc::new(InMemoryReadModel::default());
        let (clock, ids) = (Arc::new(FixedClock::default()), Arc::new(SequentialIds::default()));
        let projector = Arc::new(ProjectorService::new(read_model.clone(), events.clone() as Arc<dyn EventStore>));
        let feed = tokio::spawn(run_change_feed(events.clone(), projector, 10));
        let create = CreateItemService::new(events.clone(), clock.clone(), ids.clone());
        let item = create
            .create("owner", CreateItem { name: "Pen".into(), timestamp: "t".into(), description: None })
            .await
            .unwrap();
        while read_model.get(item.id).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        read_model.set_available(false);
        let changes = ChangeItemService::new(events.clone(), clock, ids);
        let owner = Actor { subject: "owner".into(), is_admin: false };
        changes.delete(&owner, item.id, None, None).await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        read_model.set_available(true);

        let mut waited = Duration::ZERO;
        while !read_model.get(item.id).await.unwrap().is_some_and(|item| item.deleted) {
            assert!(waited < Duration::from_secs(20), "the deletion was never applied");
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += Duration::from_millis(50);
        }
        assert!(events.quarantined().await.unwrap().is_empty(), "nothing was set aside");
        feed.abort();
    }
}
