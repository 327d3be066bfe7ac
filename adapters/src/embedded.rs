//! The embedded backend: an in-process event log and read model, and a change
//! feed that drives the projector asynchronously, like a DynamoDB stream. Reads
//! are eventually consistent, as in AWS.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::ports::{AppendError, EventStore, Page, PageKey, ReadModel, StoreError, Upsert};
use items_domain::service::ProjectorService;
use items_domain::{Event, Item, ItemId};
use tokio::sync::watch;

use crate::feed::{RETRY_BACKOFF, deliver};
use crate::stream::insert_record;

#[derive(Default)]
struct Log {
    /// Every event in append order; its index + 1 is its sequence number.
    events: Vec<Event>,
    /// Positions in `events` of each stream's events, in version order.
    streams: HashMap<ItemId, Vec<usize>>,
    idempotency: HashMap<(String, IdempotencyKey), IdempotencyRecord>,
}

impl Log {
    fn version(&self, item_id: ItemId) -> u64 {
        self.streams.get(&item_id).and_then(|positions| positions.last()).map_or(0, |&p| self.events[p].version)
    }

    /// Checks that `events` continue `item_id`'s stream at `expected_version`.
    fn check_append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        let Some(first) = events.first() else { return Ok(()) };
        let item_id = first.item_id;
        let actual = self.version(item_id);
        if actual != expected_version {
            return Err(AppendError::Conflict { item_id, expected: expected_version, actual });
        }
        for (offset, event) in events.iter().enumerate() {
            if event.item_id != item_id || event.version != expected_version + offset as u64 + 1 {
                return Err(StoreError::Corrupt("events must be consecutive versions of one item".into()).into());
            }
        }
        Ok(())
    }

    fn push(&mut self, events: &[Event]) -> u64 {
        for event in events {
            let position = self.events.len();
            self.events.push(event.clone());
            self.streams.entry(event.item_id).or_default().push(position);
        }
        self.events.len() as u64
    }
}

/// An on/off switch that simulates an outage (for fault tests): while off,
/// every call fails as unavailable.
struct Availability(AtomicBool);

impl Default for Availability {
    fn default() -> Self {
        Self(AtomicBool::new(true))
    }
}

impl Availability {
    fn set(&self, available: bool) {
        self.0.store(available, Ordering::SeqCst);
    }

    fn check(&self, what: &str) -> Result<(), StoreError> {
        if self.0.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!("embedded {what} is switched off")))
        }
    }
}

/// An in-process event log with a change feed.
pub struct EmbeddedEventStore {
    log: Mutex<Log>,
    /// The sequence number of the newest event.
    head: watch::Sender<u64>,
    available: Availability,
}

impl Default for EmbeddedEventStore {
    fn default() -> Self {
        Self { log: Mutex::default(), head: watch::Sender::new(0), available: Availability::default() }
    }
}

impl EmbeddedEventStore {
    /// Simulates an outage (for fault tests): every call fails as unavailable.
    pub fn set_available(&self, available: bool) {
        self.available.set(available);
    }

    fn check_available(&self) -> Result<(), StoreError> {
        self.available.check("event store")
    }

    /// Up to `max` events after sequence number `after`, with their numbers.
    pub fn read_after(&self, after: u64, max: usize) -> Vec<(u64, Event)> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(log.events.len());
        log.events[start..]
            .iter()
            .take(max)
            .enumerate()
            .map(|(offset, event)| ((start + offset + 1) as u64, event.clone()))
            .collect()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    pub fn len(&self) -> usize {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl EventStore for EmbeddedEventStore {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        self.check_available()?;
        let head = {
            let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            log.check_append(expected_version, events)?;
            log.push(events)
        };
        self.head.send_replace(head);
        Ok(())
    }

    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), AppendError> {
        self.check_available()?;
        let head = {
            let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = (record.subject.clone(), record.key.clone());
            if log.idempotency.get(&slot).is_some_and(|existing| existing.is_live(now)) {
                return Err(AppendError::KeyTaken);
            }
            log.check_append(0, events)?;
            log.idempotency.insert(slot, record.clone());
            log.push(events)
        };
        self.head.send_replace(head);
        Ok(())
    }

    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.check_available()?;
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(log.idempotency.get(&(subject.to_owned(), key.clone())).cloned())
    }

    async fn stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError> {
        self.check_available()?;
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(log
            .streams
            .get(&item_id)
            .map(|positions| positions.iter().map(|&p| log.events[p].clone()).collect())
            .unwrap_or_default())
    }
}

/// Replay reads: segment `s` of `n` holds the items whose id is `s` modulo `n`;
/// pages of up to 1,000 events in append order (so each item's in version order).
#[async_trait]
impl items_domain::replay::EventLogScan for EmbeddedEventStore {
    async fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<&PageKey>,
    ) -> Result<items_domain::replay::ScanPage, StoreError> {
        self.check_available()?;
        let start: usize = match after {
            Some(key) => key.0.parse().map_err(|_| StoreError::Corrupt("bad scan position".into()))?,
            None => 0,
        };
        let total = u128::from(total_segments.max(1));
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let mut page = items_domain::replay::ScanPage::default();
        let mut position = start;
        while position < log.events.len() && page.events.len() < 1000 {
            let event = &log.events[position];
            if event.item_id.0.as_u128() % total == u128::from(segment) {
                page.events.push(event.clone());
            }
            position += 1;
        }
        if position < log.events.len() {
            page.next = Some(PageKey(position.to_string()));
        }
        Ok(page)
    }
}

/// An in-process read model, ordered by id.
#[derive(Default)]
pub struct EmbeddedReadModel {
    items: RwLock<BTreeMap<ItemId, Item>>,
    available: Availability,
}

impl EmbeddedReadModel {
    /// Simulates an outage (for fault tests): every call fails as unavailable.
    pub fn set_available(&self, available: bool) {
        self.available.set(available);
    }

    fn check_available(&self) -> Result<(), StoreError> {
        self.available.check("read model")
    }
}

#[async_trait]
impl ReadModel for EmbeddedReadModel {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        self.check_available()?;
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        match items.get(&item.id) {
            Some(current) if current.version >= item.version => Ok(Upsert::Stale),
            _ => {
                items.insert(item.id, item.clone());
                Ok(Upsert::Applied)
            }
        }
    }

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError> {
        self.check_available()?;
        Ok(self.items.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned())
    }

    async fn list_page(&self, limit: Option<u32>, after: Option<&PageKey>) -> Result<Page, StoreError> {
        self.check_available()?;
        let start = match after {
            Some(key) => Bound::Excluded(
                ItemId::parse(&key.0).ok_or_else(|| StoreError::Corrupt("page key is not an item id".into()))?,
            ),
            None => Bound::Unbounded,
        };
        let items = self.items.read().unwrap_or_else(PoisonError::into_inner);
        let mut rest = items.range((start, Bound::Unbounded)).map(|(_, item)| item);
        let page: Vec<Item> = match limit {
            Some(limit) => rest.by_ref().take(limit as usize).cloned().collect(),
            None => rest.by_ref().cloned().collect(),
        };
        let next = match (rest.next(), page.last()) {
            (Some(_), Some(last)) => Some(PageKey(last.id.to_string())),
            _ => None,
        };
        Ok(Page { items: page, next })
    }
}

/// Attempts at one record before it is set aside, as a DLQ would take it.
pub const MAX_ATTEMPTS: u32 = 5;

/// Feeds every appended event to the projector handler, in order, as stream
/// records in batches of up to `batch_size`; retries from the first failed
/// record, and sets a record aside after [`MAX_ATTEMPTS`]. Runs until dropped.
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
