//! The volatile backend (`items serve --in-memory`): an in-process
//! event log and read model (the domain's in-memory ports) whose change feed
//! drives the projector asynchronously, like a DynamoDB stream. Everything is
//! lost when the process stops; the durable default is [`crate::sqlite`].

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use items_domain::Event;
use items_domain::ItemId;
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::memory::InMemoryEventStore;
use items_domain::ports::{AppendError, EventStore, PageKey, StoreError};
use items_domain::ports::{EventLogScan, ScanPage};
use tokio::sync::watch;

use crate::event_source_mapping::{ChangeLog, ChangeRecord, Quarantine, Quarantined};
use items_aws::quarantine::InMemoryQuarantine;

/// An in-process event log that announces every append to its change feed.
pub struct VolatileEventStore {
    log: InMemoryEventStore,
    /// The sequence number of the newest event.
    head: watch::Sender<u64>,
    /// Where the projector got to (kept in memory, like everything else here).
    projected: AtomicU64,
    quarantine: InMemoryQuarantine,
}

impl Default for VolatileEventStore {
    fn default() -> Self {
        Self {
            log: InMemoryEventStore::default(),
            head: watch::Sender::new(0),
            projected: AtomicU64::new(0),
            quarantine: InMemoryQuarantine::default(),
        }
    }
}

impl VolatileEventStore {
    /// Simulates an outage (for fault tests): every call fails as unavailable.
    pub fn set_available(&self, available: bool) {
        self.log.set_available(available);
    }

    /// Up to `max` events after sequence number `after`, with their numbers.
    pub fn read_after(&self, after: u64, max: usize) -> Vec<(u64, Event)> {
        self.log.read_after(after, max)
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
impl EventStore for VolatileEventStore {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        self.log.append(expected_version, events).await?;
        self.announce();
        Ok(())
    }

    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), AppendError> {
        self.log.append_idempotent(record, expected_version, events, now).await?;
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

    async fn stream_after(&self, item_id: ItemId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.log.stream_after(item_id, after, limit).await
    }

    async fn snapshot(&self, item_id: ItemId) -> Result<Option<items_domain::ports::Snapshot>, StoreError> {
        self.log.snapshot(item_id).await
    }

    async fn save_snapshot(&self, snapshot: &items_domain::ports::Snapshot) -> Result<(), StoreError> {
        self.log.save_snapshot(snapshot).await
    }
}

#[async_trait]
impl EventLogScan for VolatileEventStore {
    async fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<&PageKey>,
    ) -> Result<ScanPage, StoreError> {
        self.log.scan_page(segment, total_segments, after).await
    }

    async fn item_stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError> {
        EventStore::stream(self, item_id).await
    }
}

#[async_trait]
impl ChangeLog for VolatileEventStore {
    async fn read_after(&self, after: u64, max: usize) -> Result<Vec<ChangeRecord>, StoreError> {
        let records = self.log.read_after(after, max).into_iter().map(|(sequence, event)| ChangeRecord {
            sequence,
            stream_id: event.item_id.stream_id(),
            event: Ok(event),
        });
        Ok(records.collect())
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    async fn projected_position(&self) -> Result<u64, StoreError> {
        Ok(self.projected.load(Ordering::SeqCst))
    }

    async fn save_projected_position(&self, position: u64) -> Result<(), StoreError> {
        self.projected.store(position, Ordering::SeqCst);
        Ok(())
    }
}

#[async_trait]
impl Quarantine for VolatileEventStore {
    async fn quarantine(&self, record: &Quarantined) -> Result<(), StoreError> {
        self.quarantine.quarantine(record).await
    }

    async fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        self.quarantine.quarantined().await
    }

    async fn release(&self, sequence: &str) -> Result<(), StoreError> {
        self.quarantine.release(sequence).await
    }
}
