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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{EventRecord, StreamViewType};
use items_aws::dynamodb::codec::{EVENTS_PARTITION_KEY, EVENTS_SORT_KEY, event_to_item};
use items_aws::projector::project_and_set_aside;
pub use items_aws::quarantine::{Quarantine, Quarantined, Redrive, redrive};
use items_domain::Event;
use items_domain::ports::StoreError;
use items_domain::service::ProjectorService;
use tokio::sync::watch;

/// First pause before a failed batch is delivered again, as Lambda would pause.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between deliveries while a dependency is down.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// The pause before delivery attempt `attempt + 1`: doubling from
/// [`RETRY_BACKOFF`], capped at [`MAX_RETRY_BACKOFF`].
pub fn retry_backoff(attempt: u32) -> Duration {
    RETRY_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(8)).min(MAX_RETRY_BACKOFF)
}

/// One entry of a local log as the change feed reads it: decoded per
/// row, so one bad row is one poison record, not a page nobody can read.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    pub sequence: u64,
    pub stream_id: String,
    pub event: Result<Event, Undecodable>,
}

/// A row of the log this code cannot decode.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    pub reason: String,
    /// The stored form, when it is JSON at all: the stream record carries it
    /// as DynamoDB would, and the handler's own decoding says what is wrong.
    pub stored: Option<serde_json::Value>,
}

impl ChangeRecord {
    /// The stream record DynamoDB would deliver for it.
    fn to_stream_record(&self) -> EventRecord {
        let encoded = match &self.event {
            Ok(event) => insert_record(event, self.sequence.to_string()).map_err(|error| error.to_string()),
            Err(undecodable) => Err(undecodable.reason.clone()),
        };
        encoded.unwrap_or_else(|reason| {
            tracing::error!(sequence = self.sequence, %reason, "event cannot be read from the log");
            let mut record = EventRecord::default();
            record.event_name = "INSERT".into();
            record.change.sequence_number = Some(self.sequence.to_string());
            // The key names the item, as DynamoDB's always does: only its
            // records wait behind this one.
            let key = serde_dynamo::AttributeValue::S(self.stream_id.clone());
            record.change.keys.insert(EVENTS_PARTITION_KEY.to_owned(), key);
            let stored = self.event.as_ref().err().and_then(|undecodable| undecodable.stored.as_ref());
            match stored.and_then(|stored| serde_dynamo::to_item(stored).ok()) {
                Some(image) => record.change.new_image = image,
                None => {
                    let stream_id = serde_dynamo::AttributeValue::S(self.stream_id.clone());
                    record.change.new_image.insert(EVENTS_PARTITION_KEY.to_owned(), stream_id);
                }
            }
            record
        })
    }
}

/// The stream record DynamoDB would deliver for an inserted event.
pub fn insert_record(event: &Event, sequence_number: String) -> Result<EventRecord, serde_dynamo::Error> {
    let image: serde_dynamo::Item = event_to_item(event)?;
    let mut keys = serde_dynamo::Item::from(std::collections::HashMap::<String, serde_dynamo::AttributeValue>::new());
    for key in [EVENTS_PARTITION_KEY, EVENTS_SORT_KEY] {
        if let Some(value) = image.get(key) {
            keys.insert(key.to_owned(), value.clone());
        }
    }
    let mut record = EventRecord::default();
    record.event_id = event.event_id.to_string();
    record.event_name = "INSERT".into();
    record.event_source = Some("aws:dynamodb".into());
    record.event_version = Some("1.1".into());
    record.aws_region = "local".into();
    record.change.approximate_creation_date_time = event.occurred_at;
    record.change.keys = keys;
    record.change.new_image = image;
    record.change.sequence_number = Some(sequence_number);
    record.change.stream_view_type = Some(StreamViewType::NewImage);
    Ok(record)
}

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

/// Pause after the log itself failed, before reading it again.
const LOG_RETRY: Duration = Duration::from_millis(500);

/// Feeds every committed event to the projector handler, in order, as stream
/// records in batches of up to `batch_size`, from the projector's saved
/// position (so a restart neither replays what is projected nor misses
/// anything), by the poison policy above. Runs until dropped.
pub async fn run_change_feed(log: Arc<dyn ChangeLog>, projector: Arc<ProjectorService>, batch_size: usize) {
    let mut head = log.subscribe();
    let mut checkpoint = loop {
        match log.projected_position().await {
            Ok(position) => break position,
            Err(error) => {
                tracing::error!(%error, "cannot read the projector's position; retrying");
                tokio::time::sleep(LOG_RETRY).await;
            }
        }
    };
    if let Ok(quarantined) = log.quarantined().await {
        items_aws::metrics::quarantine_size(quarantined.len() as u64);
    }
    let mut attempts = Attempts::default();
    let mut saved = (checkpoint, std::time::Instant::now());
    loop {
        let batch = match log.read_after(checkpoint, batch_size).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "cannot read the event log; retrying");
                tokio::time::sleep(LOG_RETRY).await;
                continue;
            }
        };
        if batch.is_empty() {
            items_aws::metrics::projection_backlog(0);
            save_position(log.as_ref(), &mut saved, checkpoint, Duration::ZERO).await;
            if head.changed().await.is_err() {
                return;
            }
            continue;
        }
        let records: Vec<EventRecord> = batch.iter().map(ChangeRecord::to_stream_record).collect();
        let previous = checkpoint;
        let delivered = project_and_set_aside(&projector, log.as_ref(), &records).await;
        if delivered.set_aside > 0
            && let Ok(all) = log.quarantined().await
        {
            items_aws::metrics::quarantine_size(all.len() as u64);
        }
        match delivered.retry {
            None => {
                checkpoint = batch.last().map_or(checkpoint, |record| record.sequence);
                attempts = Attempts::default();
            }
            Some((failed, reason)) => {
                checkpoint = batch[failed].sequence - 1;
                tokio::time::sleep(attempts.next(failed, &reason)).await;
            }
        }
        items_aws::metrics::projection_backlog(head.borrow().saturating_sub(checkpoint));
        if checkpoint != previous {
            save_position(log.as_ref(), &mut saved, checkpoint, SAVE_EVERY).await;
        }
    }
}

/// Runs the change feed until it has projected (or set aside) everything
/// committed when it was called, then stops: a one-shot catch-up, and what
/// the model-based test drives the local feed with.
pub async fn drain_change_feed(
    log: Arc<dyn ChangeLog>,
    projector: Arc<ProjectorService>,
    batch_size: usize,
) -> Result<(), StoreError> {
    let head = *log.subscribe().borrow();
    let feed = tokio::spawn(run_change_feed(log.clone(), projector, batch_size));
    let caught_up = loop {
        match log.projected_position().await {
            Ok(position) if position >= head => break Ok(()),
            Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(error) => break Err(error),
        }
    };
    feed.abort();
    let _ = feed.await;
    caught_up
}

/// While the projector is busy, its position is saved at most this often
/// (once idle, at once): one write fewer per batch under load. A restart
/// re-applies what came after the saved position, version-guarded.
const SAVE_EVERY: Duration = Duration::from_millis(250);

/// Saves `position` unless the last save, `saved`, is younger than `every`.
async fn save_position(log: &dyn ChangeLog, saved: &mut (u64, std::time::Instant), position: u64, every: Duration) {
    if saved.0 == position || saved.1.elapsed() < every {
        return;
    }
    match log.save_projected_position(position).await {
        Ok(()) => *saved = (position, std::time::Instant::now()),
        // Not fatal: after a restart the projector re-applies from the
        // last saved position, and its writes are version-guarded.
        Err(error) => tracing::warn!(%error, "cannot save the projector's position"),
    }
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
