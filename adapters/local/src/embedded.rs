//! The embedded backend: an in-process event log and read model (the domain's
//! in-memory ports) and a change feed that drives the projector
//! asynchronously, like a DynamoDB stream. Reads are eventually consistent, as
//! in AWS.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use items_domain::Event;
use items_domain::ItemId;
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::memory::InMemoryEventStore;
use items_domain::ports::{AppendError, EventStore, PageKey, StoreError};
use items_domain::replay::{EventLogScan, ScanPage};
use items_domain::service::ProjectorService;
use tokio::sync::watch;

use crate::event_source_mapping::{MAX_ATTEMPTS, RETRY_BACKOFF, deliver, insert_record};

pub use items_domain::memory::InMemoryReadModel as EmbeddedReadModel;

/// An in-process event log that announces every append to its change feed.
pub struct EmbeddedEventStore {
    log: InMemoryEventStore,
    /// The sequence number of the newest event.
    head: watch::Sender<u64>,
}

impl Default for EmbeddedEventStore {
    fn default() -> Self {
        Self { log: InMemoryEventStore::default(), head: watch::Sender::new(0) }
    }
}

impl EmbeddedEventStore {
    /// Simulates an outage (for fault tests): every call fails as unavailable.
    pub fn set_available(&self, available: bool) {
        self.log.set_available(available);
    }

    /// Up to `max` events after sequence number `after`, with their numbers.
    pub fn read_after(&self, after: u64, max: usize) -> Vec<(u64, Event)> {
        self.log.read_after(after, max)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    pub fn len(&self) -> usize {
        self.log.len()
    }

    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    fn announce(&self) {
        let head = self.log.head();
        // Concurrent appends may announce out of order: keep the highest.
        self.head.send_if_modified(|current| {
            let newer = head > *current;
            *current = (*current).max(head);
            newer
        });
    }
}

#[async_trait]
impl EventStore for EmbeddedEventStore {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        self.log.append(expected_version, events).await?;
        self.announce();
        Ok(())
    }

    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), AppendError> {
        self.log.append_idempotent(record, events, now).await?;
        self.announce();
        Ok(())
    }

    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.log.idempotency_record(subject, key).await
    }

    async fn stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError> {
        self.log.stream(item_id).await
    }
}

#[async_trait]
impl EventLogScan for EmbeddedEventStore {
    async fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<&PageKey>,
    ) -> Result<ScanPage, StoreError> {
        self.log.scan_page(segment, total_segments, after).await
    }
}

/// Feeds every appended event to the projector handler, in order, as stream
/// records in batches of up to `batch_size`, through the local event source
/// mapping. Runs until dropped.
pub async fn run_change_feed(store: Arc<EmbeddedEventStore>, projector: Arc<ProjectorService>, batch_size: usize) {
    let mut head = store.subscribe();
    let mut checkpoint = 0u64;
    let mut attempts = 0u32;
    loop {
        let batch = store.read_after(checkpoint, batch_size);
        if batch.is_empty() {
            if head.changed().await.is_err() {
                return;
            }
            continue;
        }
        let records = batch
            .iter()
            .map(|(sequence, event)| {
                insert_record(event, sequence.to_string()).unwrap_or_else(|error| {
                    // The handler reports an empty image as malformed.
                    tracing::error!(%error, "cannot encode stream record");
                    let mut record = aws_lambda_events::event::dynamodb::EventRecord::default();
                    record.event_name = "INSERT".into();
                    record.change.sequence_number = Some(sequence.to_string());
                    record
                })
            })
            .collect();
        match deliver(&projector, records).await {
            None => {
                checkpoint = batch.last().map_or(checkpoint, |(sequence, _)| *sequence);
                attempts = 0;
            }
            Some(failed) => {
                checkpoint = batch[failed].0 - 1;
                attempts = if failed == 0 { attempts + 1 } else { 1 };
                if attempts >= MAX_ATTEMPTS {
                    tracing::error!(sequence = batch[failed].0, "setting aside a record that keeps failing");
                    checkpoint += 1;
                    attempts = 0;
                } else {
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        }
    }
}
