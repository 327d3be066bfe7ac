//! Rebuilding the read model from the event log: scan the log in disjoint
//! segments, fold each page's events with the projector's own code, write the
//! states, checkpoint per page so an interrupted run can resume. `--verify`'s
//! comparison is in [`verify`].

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::event::{Event, ItemId};
use crate::item::Item;
use crate::ports::{
    Checkpoints, EventLogScan, ReplayObserver, ReplayTarget, ScanPage, SegmentProgress, StoreError, WriteStats,
};
use crate::projection::{self, Outcome};

/// Checkpoints that are not kept (a run that will not be resumed).
#[derive(Debug, Default)]
pub struct NoCheckpoints;

impl Checkpoints for NoCheckpoints {
    fn load(&self, _segment: u32) -> Option<SegmentProgress> {
        None
    }
    fn save(&self, _segment: u32, _progress: &SegmentProgress) -> Result<(), StoreError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplaySummary {
    pub events: usize,
    pub skipped: usize,
    pub items: usize,
    pub writes: WriteStats,
    pub pages: usize,
    /// Deleted items whose tombstone had expired: not written again.
    pub expired_tombstones: usize,
}

impl std::ops::AddAssign for ReplaySummary {
    fn add_assign(&mut self, other: Self) {
        self.events += other.events;
        self.skipped += other.skipped;
        self.items += other.items;
        self.writes += other.writes;
        self.pages += other.pages;
        self.expired_tombstones += other.expired_tombstones;
    }
}

/// The latest state of each item in `events` (each item's events in version
/// order, items interleaved in any way), by the projector's rules.
pub fn fold_states<'a>(events: impl IntoIterator<Item = &'a Event>) -> HashMap<ItemId, Item> {
    fold_page(events).0
}

/// Like [`fold_states`] for one page of a scan, which may begin in the middle
/// of an item's stream: those items are left out of the states and listed
/// apart, to be folded from their whole stream.
pub fn fold_page<'a>(events: impl IntoIterator<Item = &'a Event>) -> (HashMap<ItemId, Item>, Vec<ItemId>) {
    let mut states: HashMap<ItemId, Item> = HashMap::new();
    let mut continued: Vec<ItemId> = Vec::new();
    let mut skipped: std::collections::HashSet<ItemId> = std::collections::HashSet::new();
    for event in events {
        if skipped.contains(&event.item_id) {
            continue;
        }
        match projection::evolve(states.get(&event.item_id), event) {
            Outcome::Apply(item) => {
                states.insert(item.id, item);
            }
            Outcome::AlreadyNewer => {}
            Outcome::NeedsHistory => {
                states.remove(&event.item_id);
                skipped.insert(event.item_id);
                continued.push(event.item_id);
            }
        }
    }
    (states, continued)
}

/// Writes through the read model's [`repair`](crate::ports::ReadModel::repair):
/// never back in time, so safe next to live projection and other replays,
/// and a row wrong at the right version is put right.
pub struct ReadModelTarget {
    read_model: Arc<dyn crate::ports::ReadModel>,
    concurrency: usize,
}

impl ReadModelTarget {
    pub fn new(read_model: Arc<dyn crate::ports::ReadModel>, concurrency: usize) -> Self {
        Self { read_model, concurrency: concurrency.max(1) }
    }
}

#[async_trait]
impl ReplayTarget for ReadModelTarget {
    async fn write(&self, items: Vec<Item>) -> Result<WriteStats, StoreError> {
        use futures::StreamExt;
        let results: Vec<Result<crate::ports::Upsert, StoreError>> = futures::stream::iter(items)
            .map(|item| {
                let read_model = self.read_model.clone();
                async move { read_model.repair(&item).await }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut stats = WriteStats::default();
        for result in results {
            match result? {
                crate::ports::Upsert::Applied => stats.written += 1,
                crate::ports::Upsert::AlreadyNewer => stats.already_newer += 1,
            }
        }
        Ok(stats)
    }

    /// Writes a tombstone only over a row that still shows the item live (a
    /// deletion the projection missed); an absent row or a tombstone is left.
    async fn retire(&self, tombstones: Vec<Item>) -> Result<WriteStats, StoreError> {
        let mut stats = WriteStats::default();
        for tombstone in tombstones {
            match self.read_model.get(tombstone.id).await? {
                Some(row) if !row.deleted => match self.read_model.repair(&tombstone).await? {
                    crate::ports::Upsert::Applied => stats.written += 1,
                    crate::ports::Upsert::AlreadyNewer => stats.already_newer += 1,
                },
                _ => stats.already_newer += 1,
            }
        }
        Ok(stats)
    }
}

pub struct ReplayService {
    scan: Arc<dyn EventLogScan>,
    /// `None` for a dry run: read and validate, write nothing.
    target: Option<Arc<dyn ReplayTarget>>,
    checkpoints: Arc<dyn Checkpoints>,
    observer: Arc<dyn ReplayObserver>,
    /// A catch-up: only items with an event at or after this time.
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Tombstones of deletions recorded before this are past their lifetime.
    expired_before: Option<chrono::DateTime<chrono::Utc>>,
}

impl ReplayService {
    pub fn new(
        scan: Arc<dyn EventLogScan>,
        target: Option<Arc<dyn ReplayTarget>>,
        checkpoints: Arc<dyn Checkpoints>,
        observer: Arc<dyn ReplayObserver>,
    ) -> Self {
        Self { scan, target, checkpoints, observer, since: None, expired_before: None }
    }

    /// A catch-up after a rebuild into a new table and the switch to it (or
    /// a redrive): every item with an event recorded in the log at or after
    /// `since` ([`ScanPage::recorded_since`]) is folded from its whole stream
    /// and written (version-guarded by the target), so changes made while
    /// the rebuild ran, deletions and imports of old events included, reach
    /// the new table. Take `since` some minutes before the rebuild started:
    /// the stores that record the time are several machines' clocks.
    pub fn since(mut self, since: chrono::DateTime<chrono::Utc>) -> Self {
        // Stores keep times to the millisecond: a finer `since` would miss
        // what was recorded in its own millisecond.
        let millis = since.timestamp_millis();
        self.since = Some(chrono::DateTime::from_timestamp_millis(millis).unwrap_or(since));
        self
    }

    /// Tombstones of deletions recorded in the log before `cutoff` (now less
    /// the read table's tombstone lifetime) are past their lifetime: the
    /// replay retires them ([`ReplayTarget::retire`]) instead of writing them
    /// again with a fresh expiry. A deletion's time is when it reached the
    /// log: stream records of it can arrive until the stream drops them.
    pub fn tombstones_expired_before(mut self, cutoff: chrono::DateTime<chrono::Utc>) -> Self {
        self.expired_before = Some(cutoff);
        self
    }

    /// Replays every segment concurrently; the first error stops the run
    /// (what was checkpointed stays done).
    pub async fn run(&self, total_segments: u32) -> Result<ReplaySummary, StoreError> {
        let total_segments = total_segments.max(1);
        let runs = (0..total_segments).map(|segment| self.run_segment(segment, total_segments));
        let mut summary = ReplaySummary::default();
        for result in futures::future::join_all(runs).await {
            summary += result?;
        }
        Ok(summary)
    }

    async fn run_segment(&self, segment: u32, total_segments: u32) -> Result<ReplaySummary, StoreError> {
        let mut summary = ReplaySummary::default();
        let after = match self.checkpoints.load(segment) {
            Some(SegmentProgress::Done) => return Ok(summary),
            Some(SegmentProgress::After(key)) => Some(key),
            None => None,
        };
        let mut page = self.scan.scan_page(segment, total_segments, after.as_ref()).await?;
        loop {
            // The next page is read while this one is folded and written.
            let next = async {
                match &page.next {
                    Some(key) => self.scan.scan_page(segment, total_segments, Some(key)).await.map(Some),
                    None => Ok(None),
                }
            };
            let (next, applied) = futures::future::join(next, self.apply(&page)).await;
            let (items, stats, expired_tombstones) = applied?;
            summary += ReplaySummary {
                events: page.events.len(),
                skipped: page.skipped,
                items,
                writes: stats,
                pages: 1,
                expired_tombstones,
            };
            self.observer.page_done(segment, page.events.len(), stats);
            let progress = match &page.next {
                Some(next) => SegmentProgress::After(next.clone()),
                None => SegmentProgress::Done,
            };
            if self.target.is_some() {
                self.checkpoints.save(segment, &progress)?;
            }
            match next? {
                Some(next) => page = next,
                None => return Ok(summary),
            }
        }
    }

    /// Folds one page and writes its states: how many items, the writes, and
    /// how many tombstones were past their lifetime.
    async fn apply(&self, page: &ScanPage) -> Result<(usize, WriteStats, usize), StoreError> {
        // Items folded from their whole stream: those the page holds only
        // part of, or in a catch-up, every item with a recent event.
        let (mut states, refold) = match self.since {
            None => fold_page(&page.events),
            // By when each event reached the log, not by the time it carries:
            // an import keeps its events' old times.
            Some(since) => (HashMap::new(), page.recorded_since(since).into_iter().collect()),
        };
        // When each deletion reached the log (only when tombstones can
        // expire): from the page, or for an item folded from its whole
        // stream, the deletion's own time.
        let expiring = self.expired_before.is_some();
        let mut deleted_at: HashMap<ItemId, chrono::DateTime<chrono::Utc>> = HashMap::new();
        for (index, event) in page.events.iter().enumerate().filter(|_| expiring) {
            if event.payload == crate::event::EventPayload::ItemDeleted {
                deleted_at.insert(event.item_id, page.recorded(index));
            }
        }
        for item_id in refold {
            let stream = self.scan.item_stream(item_id).await?;
            if let Some(last) =
                stream.last().filter(|last| expiring && last.payload == crate::event::EventPayload::ItemDeleted)
            {
                deleted_at.entry(item_id).or_insert(last.occurred_at);
            }
            if let Some(item) = projection::fold_stream(&stream)? {
                states.insert(item_id, item);
            }
        }
        let items = states.len();
        let expired = |item: &Item| match (self.expired_before, item.deleted) {
            (Some(cutoff), true) => deleted_at.get(&item.id).is_some_and(|at| *at < cutoff),
            _ => false,
        };
        let (expired, states): (Vec<Item>, Vec<Item>) = states.into_values().partition(expired);
        let mut stats = match &self.target {
            Some(target) if !states.is_empty() => target.write(states).await?,
            _ => WriteStats::default(),
        };
        let retired = expired.len();
        if let (Some(target), false) = (&self.target, expired.is_empty()) {
            stats += target.retire(expired).await?;
        }
        Ok((items, stats, retired))
    }
}

mod verify;
pub use verify::*;

#[cfg(test)]
mod tests;
