//! In-memory implementations of the event store and read model: the ports'
//! reference behaviour, used by tests and by the volatile local mode. No I/O;
//! everything is lost with the process.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::event::{Event, ItemId};
use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::item::Item;
use crate::ports::{
    AppendError, AppendPlan, CreatorKey, EventStore, Page, PageKey, ReadModel, Snapshot, StoreError, Upsert,
    check_append,
};
use crate::ports::{EventLogScan, ScanPage};

/// Events a replay scan page holds at most.
const SCAN_PAGE_EVENTS: usize = 1000;

#[derive(Default)]
struct Log {
    /// Every event in append order; its index + 1 is its sequence number.
    events: Vec<Event>,
    /// When each of `events` was appended (the machine's clock).
    recorded_at: Vec<chrono::DateTime<chrono::Utc>>,
    /// Positions in `events` of each stream's events, in version order.
    streams: HashMap<ItemId, Vec<usize>>,
    idempotency: HashMap<(String, IdempotencyKey), IdempotencyRecord>,
    snapshots: HashMap<ItemId, Snapshot>,
}

impl Log {
    fn version(&self, item_id: ItemId) -> u64 {
        self.streams.get(&item_id).and_then(|positions| positions.last()).map_or(0, |&p| self.events[p].version)
    }

    fn stored(&self, item_id: ItemId, version: u64) -> Option<Event> {
        let positions = self.streams.get(&item_id)?;
        let position = positions.get(usize::try_from(version.checked_sub(1)?).ok()?)?;
        Some(self.events[*position].clone())
    }

    /// Applies the append contract ([`check_append`]) and writes when needed.
    fn append(&mut self, expected_version: u64, events: &[Event]) -> Result<AppendPlan, AppendError> {
        let Some(first) = events.first() else { return Ok(AppendPlan::AlreadyStored) };
        let item_id = first.item_id;
        let plan = check_append(expected_version, self.version(item_id), events, |v| self.stored(item_id, v))?;
        if plan == AppendPlan::Write {
            self.push(events);
        }
        Ok(plan)
    }

    fn push(&mut self, events: &[Event]) -> u64 {
        for event in events {
            let position = self.events.len();
            self.events.push(event.clone());
            self.recorded_at.push(chrono::Utc::now());
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
            Err(StoreError::Unavailable(format!("in-memory {what} is switched off")))
        }
    }
}

/// An in-memory event log. Sequence numbers (1, 2, ...) follow append order.
#[derive(Default)]
pub struct InMemoryEventStore {
    log: Mutex<Log>,
    available: Availability,
}

impl InMemoryEventStore {
    /// Simulates an outage (for fault tests): every call fails as unavailable.
    pub fn set_available(&self, available: bool) {
        self.available.set(available);
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

    /// The sequence number of the newest event (0 when empty).
    pub fn head(&self) -> u64 {
        self.len() as u64
    }

    pub fn len(&self) -> usize {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        self.available.check("event store")?;
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.append(expected_version, events).map(|_| ())
    }

    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), AppendError> {
        self.available.check("event store")?;
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = (record.subject.clone(), record.key.clone());
        if log.idempotency.get(&slot).is_some_and(|existing| existing.is_live(now)) {
            return Err(AppendError::KeyTaken);
        }
        log.append(expected_version, events)?;
        log.idempotency.insert(slot, record.clone());
        Ok(())
    }

    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.available.check("event store")?;
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(log.idempotency.get(&(subject.to_owned(), key.clone())).cloned())
    }

    async fn snapshot(&self, item_id: ItemId) -> Result<Option<Snapshot>, StoreError> {
        self.available.check("event store")?;
        Ok(self.log.lock().unwrap_or_else(PoisonError::into_inner).snapshots.get(&item_id).cloned())
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.available.check("event store")?;
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = log.snapshots.get(&snapshot.item.id);
        if kept.is_none_or(|kept| kept.revision != snapshot.revision || kept.item.version < snapshot.item.version) {
            log.snapshots.insert(snapshot.item.id, snapshot.clone());
        }
        Ok(())
    }

    async fn stream_after(&self, item_id: ItemId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.available.check("event store")?;
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        // A stream's positions are in version order, version n at index n - 1.
        let positions = log.streams.get(&item_id).map(Vec::as_slice).unwrap_or_default();
        let rest = positions.get(usize::try_from(after).unwrap_or(usize::MAX)..).unwrap_or_default();
        Ok(rest.iter().take(limit).map(|&p| log.events[p].clone()).collect())
    }
}

/// Replay reads: segment `s` of `n` holds the items whose id is `s` modulo `n`;
/// pages of up to 1,000 events in append order (so each item's in version order).
#[async_trait]
impl EventLogScan for InMemoryEventStore {
    async fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<&PageKey>,
    ) -> Result<ScanPage, StoreError> {
        self.available.check("event store")?;
        let start: usize = match after {
            Some(key) => key.0.parse().map_err(|_| StoreError::Corrupt("bad scan position".into()))?,
            None => 0,
        };
        let total = u128::from(total_segments.max(1));
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let mut page = ScanPage::default();
        let mut position = start;
        while position < log.events.len() && page.events.len() < SCAN_PAGE_EVENTS {
            let event = &log.events[position];
            if event.item_id.0.as_u128() % total == u128::from(segment) {
                page.events.push(event.clone());
                page.recorded_at.push(log.recorded_at[position]);
            }
            position += 1;
        }
        if position < log.events.len() {
            page.next = Some(PageKey(position.to_string()));
        }
        Ok(page)
    }

    async fn item_stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError> {
        EventStore::stream(self, item_id).await
    }
}

/// An in-memory read model, ordered by id.
#[derive(Default)]
pub struct InMemoryReadModel {
    items: RwLock<BTreeMap<ItemId, Item>>,
    available: Availability,
    /// Items a page without a limit holds at most (all when `None`), as a
    /// DynamoDB page stops at 1 MB.
    page_size: Option<usize>,
}

impl InMemoryReadModel {
    /// Pages without a limit of at most `items` items.
    pub fn with_page_size(items: usize) -> Self {
        Self { page_size: Some(items.max(1)), ..Self::default() }
    }

    /// Simulates an outage (for fault tests): every call fails as unavailable.
    pub fn set_available(&self, available: bool) {
        self.available.set(available);
    }
}

#[async_trait]
impl ReadModel for InMemoryReadModel {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        self.available.check("read model")?;
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        match items.get(&item.id) {
            Some(current) if current.version >= item.version => Ok(Upsert::AlreadyNewer),
            _ => {
                items.insert(item.id, item.clone());
                Ok(Upsert::Applied)
            }
        }
    }

    async fn repair(&self, item: &Item) -> Result<Upsert, StoreError> {
        self.available.check("read model")?;
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        match items.get(&item.id) {
            Some(current) if current.version > item.version || current == item => Ok(Upsert::AlreadyNewer),
            _ => {
                items.insert(item.id, item.clone());
                Ok(Upsert::Applied)
            }
        }
    }

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError> {
        self.available.check("read model")?;
        Ok(self.items.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned())
    }

    async fn list_page(&self, limit: Option<u32>, after: Option<&PageKey>) -> Result<Page, StoreError> {
        self.available.check("read model")?;
        let start = match after {
            Some(key) => Bound::Excluded(
                ItemId::parse(&key.0).ok_or_else(|| StoreError::Corrupt("page key is not an item id".into()))?,
            ),
            None => Bound::Unbounded,
        };
        let items = self.items.read().unwrap_or_else(PoisonError::into_inner);
        let mut rest = items.range((start, Bound::Unbounded)).map(|(_, item)| item);
        let page: Vec<Item> = match limit.map(|limit| limit as usize).or(self.page_size) {
            Some(size) => rest.by_ref().take(size).cloned().collect(),
            None => rest.by_ref().cloned().collect(),
        };
        let next = match (rest.next(), page.last()) {
            (Some(_), Some(last)) => Some(PageKey(last.id.to_string())),
            _ => None,
        };
        Ok(Page { items: page, next })
    }

    async fn list_by_creator(
        &self,
        creator: &str,
        limit: Option<u32>,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError> {
        self.available.check("read model")?;
        let after = after.map(CreatorKey::from_page_key).transpose()?;
        // Newest first: the index's order (the key's text, fixed width, is time order);
        // each key formatted once, not at every comparison.
        let position = |item: &Item| {
            let key = CreatorKey::of(item);
            std::cmp::Reverse((key.created_at, key.id))
        };
        let mut mine: Vec<Item> = {
            let items = self.items.read().unwrap_or_else(PoisonError::into_inner);
            items.values().filter(|item| item.created_by == creator).cloned().collect()
        };
        if let Some(after) = after {
            let after = std::cmp::Reverse((after.created_at, after.id));
            mine.retain(|item| position(item) > after);
        }
        mine.sort_by_cached_key(position);
        let size = limit.map(|limit| limit as usize).or(self.page_size).unwrap_or(usize::MAX);
        let more = mine.len() > size;
        mine.truncate(size);
        let next = if more { mine.last().map(|last| CreatorKey::of(last).to_page_key()) } else { None };
        Ok(Page { items: mine, next })
    }
}

/// The log's fold in a map: for tests, and logs small enough to hold.
#[derive(Debug, Default)]
pub struct InMemoryFold(Mutex<HashMap<ItemId, Item>>);

#[async_trait]
impl crate::ports::FoldStore for InMemoryFold {
    async fn keep(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let mut states = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for item in items {
            if states.get(&item.id).is_none_or(|kept| kept.version < item.version) {
                states.insert(item.id, item);
            }
        }
        Ok(())
    }

    async fn take(&self, ids: Vec<ItemId>) -> Result<Vec<Item>, StoreError> {
        let mut states = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(ids.iter().filter_map(|id| states.remove(id)).collect())
    }

    async fn take_any(&self, limit: usize) -> Result<Vec<Item>, StoreError> {
        let mut states = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let ids: Vec<ItemId> = states.keys().take(limit).copied().collect();
        Ok(ids.iter().filter_map(|id| states.remove(id)).collect())
    }
}
