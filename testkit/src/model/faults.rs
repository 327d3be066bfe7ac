//! What the model breaks on purpose: a lagging, failing read model, an
//! event log that fails a write before or after it lands, and a clock the
//! model reads.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::ports::{AppendError, Clock, EventStore, Page, PageKey, ReadModel, Snapshot, StoreError, Upsert};
use items_domain::{Event, Item, ItemId};

/// The services' clock: the real time, but never the same millisecond twice
/// and never back, so events are ordered by it and a catch-up's `since`
/// (taken from the real clock) separates what came before and after.
#[derive(Debug, Default)]
pub struct Ticking {
    last: AtomicI64,
}

impl Clock for Ticking {
    fn now(&self) -> DateTime<Utc> {
        let real = Utc::now().timestamp_millis();
        let previous = self.last.fetch_max(real, Ordering::SeqCst);
        let millis = if previous >= real { self.last.fetch_add(1, Ordering::SeqCst) + 1 } else { real };
        DateTime::from_timestamp_millis(millis).unwrap_or_default()
    }

    fn instant(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
}

fn outage(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected {what} outage"))
}

/// The read model the projector writes through. It can answer `get` with
/// any state it held before (a replica lagging by `stale` writes or more:
/// the oldest it kept), and fail the writes and reads whose numbers are in
/// `fail` (counted together, from 0): a write fails before it lands.
pub struct Flaky {
    inner: Arc<dyn ReadModel>,
    stale: usize,
    fail: HashSet<usize>,
    calls: AtomicUsize,
    /// Per item, the states it held before each applied write, oldest first.
    before: Mutex<HashMap<ItemId, Vec<Option<Item>>>>,
}

impl Flaky {
    pub fn new(inner: Arc<dyn ReadModel>, stale: usize, fail: impl IntoIterator<Item = usize>) -> Self {
        Self { inner, stale, fail: fail.into_iter().collect(), calls: AtomicUsize::new(0), before: Mutex::default() }
    }

    /// Counts a call, after letting other tasks run (so concurrent steps
    /// interleave at every call, the in-memory store's too): whether it fails.
    async fn fails(&self) -> bool {
        tokio::task::yield_now().await;
        self.fail.contains(&self.calls.fetch_add(1, Ordering::SeqCst))
    }

    fn remember(&self, id: ItemId, before: Option<Item>) {
        if self.stale > 0 {
            let mut all = self.before.lock().unwrap_or_else(PoisonError::into_inner);
            all.entry(id).or_default().push(before);
        }
    }
}

#[async_trait]
impl ReadModel for Flaky {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        if self.fails().await {
            return Err(outage("read-model write"));
        }
        let before = self.inner.get(item.id).await?;
        let upsert = self.inner.upsert_if_newer(item).await?;
        if upsert == Upsert::Applied {
            self.remember(item.id, before);
        }
        Ok(upsert)
    }

    /// The backend's own batched write (SQLite's one transaction, DynamoDB's
    /// concurrent puts), with the failing items left out of it.
    async fn upsert_all_if_newer(&self, items: &[Item]) -> Vec<Result<Upsert, StoreError>> {
        let mut failing = Vec::with_capacity(items.len());
        for _ in items {
            failing.push(self.fails().await);
        }
        let sent: Vec<Item> =
            items.iter().zip(&failing).filter(|(_, failed)| !**failed).map(|(i, _)| i.clone()).collect();
        let mut before = Vec::with_capacity(sent.len());
        if self.stale > 0 {
            for item in &sent {
                before.push(self.inner.get(item.id).await.ok().flatten());
            }
        }
        let written = self.inner.upsert_all_if_newer(&sent).await;
        for ((item, result), was) in sent.iter().zip(&written).zip(before) {
            if matches!(result, Ok(Upsert::Applied)) {
                self.remember(item.id, was);
            }
        }
        let mut written = written.into_iter();
        failing
            .into_iter()
            .map(|failed| match failed {
                true => Err(outage("read-model batch write")),
                false => written.next().unwrap_or_else(|| Err(outage("a batch write without an answer"))),
            })
            .collect()
    }

    async fn repair(&self, item: &Item) -> Result<Upsert, StoreError> {
        tokio::task::yield_now().await;
        self.inner.repair(item).await
    }

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError> {
        if self.fails().await {
            return Err(outage("read-model read"));
        }
        if self.stale > 0 {
            let all = self.before.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(states) = all.get(&id).filter(|states| !states.is_empty()) {
                // `stale` writes back, or the oldest state kept.
                let back = states.len().saturating_sub(self.stale);
                return Ok(states[back].clone());
            }
        }
        self.inner.get(id).await
    }

    async fn list_page(&self, limit: Option<u32>, after: Option<&PageKey>) -> Result<Page, StoreError> {
        self.inner.list_page(limit, after).await
    }

    async fn list_by_creator(
        &self,
        creator: &str,
        limit: Option<u32>,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError> {
        self.inner.list_by_creator(creator, limit, after).await
    }
}

/// Where the next write to the event log fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Before it reaches the store: nothing is written.
    BeforeWrite,
    /// After the store wrote it: the answer is lost.
    AfterWrite,
}

/// The event log the services and the projector read and write through:
/// it fails the next write when told, and the reads whose numbers (from 0,
/// since they were set) are in [`fail_reads`](Self::fail_reads).
pub struct FaultyLog {
    inner: Arc<dyn EventStore>,
    next: Mutex<Option<Fault>>,
    reads: Mutex<(usize, HashSet<usize>)>,
    /// Writes still to meet at the gate, and the gate: they wait for each
    /// other there, so each has decided before any of them appends.
    gate: Mutex<(usize, Option<Arc<tokio::sync::Barrier>>)>,
    /// An event this build cannot read (a newer build's): a read of its
    /// item's stream that reaches it fails as corrupt.
    unreadable: Mutex<Option<(ItemId, u64)>>,
}

impl FaultyLog {
    pub fn new(inner: Arc<dyn EventStore>) -> Self {
        Self {
            inner,
            next: Mutex::default(),
            reads: Mutex::default(),
            gate: Mutex::default(),
            unreadable: Mutex::default(),
        }
    }

    /// The event of `item` at `version` cannot be read (until `None`).
    pub fn unreadable(&self, event: Option<(ItemId, u64)>) {
        *self.unreadable.lock().unwrap_or_else(PoisonError::into_inner) = event;
    }

    /// The next `writes` writes wait for each other before they reach the store.
    pub fn gate(&self, writes: usize) {
        let gate = (writes > 1).then(|| Arc::new(tokio::sync::Barrier::new(writes)));
        *self.gate.lock().unwrap_or_else(PoisonError::into_inner) = (writes, gate);
    }

    pub fn fail_reads(&self, fail: impl IntoIterator<Item = usize>) {
        *self.reads.lock().unwrap_or_else(PoisonError::into_inner) = (0, fail.into_iter().collect());
    }

    pub fn fail_next(&self, fault: Fault) {
        *self.next.lock().unwrap_or_else(PoisonError::into_inner) = Some(fault);
    }

    /// Takes back a fault no write consumed; `true` if one was left.
    pub fn unused(&self) -> bool {
        self.next.lock().unwrap_or_else(PoisonError::into_inner).take().is_some()
    }

    async fn write(
        &self,
        write: impl std::future::Future<Output = Result<(), AppendError>>,
    ) -> Result<(), AppendError> {
        let gate = {
            let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
            gate.0 = gate.0.saturating_sub(1);
            if gate.0 == 0 { gate.1.take() } else { gate.1.clone() }
        };
        if let Some(gate) = gate {
            gate.wait().await;
        }
        tokio::task::yield_now().await;
        let fault = self.next.lock().unwrap_or_else(PoisonError::into_inner).take();
        let outage = || AppendError::Store(outage("event-store"));
        match fault {
            Some(Fault::BeforeWrite) => Err(outage()),
            Some(Fault::AfterWrite) => write.await.and_then(|()| Err(outage())),
            None => write.await,
        }
    }
}

#[async_trait]
impl EventStore for FaultyLog {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        self.write(self.inner.append(expected_version, events)).await
    }

    async fn stream_after(&self, item_id: ItemId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        tokio::task::yield_now().await;
        let fails = {
            let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            reads.0 += 1;
            reads.1.contains(&(reads.0 - 1))
        };
        if fails {
            return Err(outage("event-log read"));
        }
        let events = self.inner.stream_after(item_id, after, limit).await?;
        let unreadable = *self.unreadable.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((item, version)) = unreadable
            && item == item_id
            && events.iter().any(|event| event.version == version)
        {
            return Err(StoreError::Corrupt(format!("unknown event type `ItemArchived` at version {version}")));
        }
        Ok(events)
    }

    async fn snapshot(&self, item_id: ItemId) -> Result<Option<Snapshot>, StoreError> {
        self.inner.snapshot(item_id).await
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), AppendError> {
        self.write(self.inner.append_idempotent(record, expected_version, events, now)).await
    }

    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(subject, key).await
    }
}

/// The event log as a rebuild scans it, running `hook` once, after the first
/// page it reads and before that page is written: a change made in the
/// middle of a rebuild's scan.
pub struct HookedScan {
    pub inner: Arc<dyn items_domain::ports::EventLogScan>,
    pub hook: Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
}

#[async_trait]
impl items_domain::ports::EventLogScan for HookedScan {
    async fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<&items_domain::ports::PageKey>,
    ) -> Result<items_domain::ports::ScanPage, StoreError> {
        let page = self.inner.scan_page(segment, total_segments, after).await?;
        let hook = self.hook.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(hook) = hook {
            hook.await;
        }
        Ok(page)
    }

    async fn item_stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError> {
        self.inner.item_stream(item_id).await
    }
}
