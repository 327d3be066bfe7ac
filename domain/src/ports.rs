//! Ports: what the application needs from the outside world.

use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{Event, ItemId};
use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::item::Item;

/// Writes one call of [`ReadModel::upsert_all_if_newer`] keeps in flight at
/// most, where the store takes them one by one (DynamoDB's `PutItem`).
pub const WRITES_IN_FLIGHT: usize = 100;

/// A dependency failed. The text is for logs only, never for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused service (throttled, down).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with data this code cannot read.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Someone else appended first: the stream is not at `expected`.
    #[error("stream {item_id} is at version {actual}, not {expected}")]
    Conflict { item_id: ItemId, expected: u64, actual: u64 },
    /// A live idempotency record for this subject and key already exists.
    #[error("idempotency key already used")]
    KeyTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The event log: the source of truth.
///
/// The append contract, the same on every backend (the conformance suite
/// checks it; [`check_append`] is its rule):
/// - `events` are consecutive versions of one item, right after `expected_version`,
///   which the caller read from the stream (0 for a new stream);
/// - all or nothing, and never over an existing version;
/// - re-appending the very same events (same event ids at the same versions)
///   is a success that writes nothing: a write whose answer was lost, retried
///   (by the SDK or by us), never fails and never doubles;
/// - any other event at those versions is a [`AppendError::Conflict`] with the
///   stream's current version.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends `events` at `expected_version`, as the contract above says.
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError>;

    /// Up to `limit` of one item's events after version `after`, in version
    /// order (empty when there are none), read consistently.
    async fn stream_after(&self, item_id: ItemId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// One item's events in version order (empty when the item does not exist).
    async fn stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError> {
        self.stream_after(item_id, 0, usize::MAX).await
    }

    /// The item's latest snapshot, read consistently, if one was kept.
    async fn snapshot(&self, item_id: ItemId) -> Result<Option<Snapshot>, StoreError>;

    /// Keeps `snapshot` as the item's latest, unless a later one of the same
    /// revision is kept already.
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// Appends `events` (as [`append`](Self::append), to a stream at
    /// `expected_version`) together with `record`, atomically: both or neither.
    /// Fails with `KeyTaken` when a record for the same subject and key exists
    /// that has not expired at `now`.
    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), AppendError>;

    /// The record for `subject` and `key`, if any (expired or not), read consistently.
    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
}

/// What an append has to do, by the contract of [`EventStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendPlan {
    /// The stream is at the expected version: write the events.
    Write,
    /// These very events (equal in every field) are stored already: a
    /// retried append, nothing to write.
    AlreadyStored,
}

/// The append rule every backend applies: `actual` is the stream's current
/// version and `stored(v)` the event stored at version `v`, if any. The same
/// event id with other content (an import of a file that disagrees with the
/// log) is a conflict, never "already stored".
pub fn check_append(
    expected_version: u64,
    actual: u64,
    events: &[Event],
    stored: impl Fn(u64) -> Option<Event>,
) -> Result<AppendPlan, AppendError> {
    let Some(first) = events.first() else { return Ok(AppendPlan::AlreadyStored) };
    let item_id = first.item_id;
    for (offset, event) in events.iter().enumerate() {
        if event.item_id != item_id || event.version != expected_version + offset as u64 + 1 {
            return Err(StoreError::Corrupt("events must be consecutive versions of one item".into()).into());
        }
    }
    if actual == expected_version {
        return Ok(AppendPlan::Write);
    }
    if events.iter().all(|event| stored(event.version).as_ref() == Some(event)) {
        return Ok(AppendPlan::AlreadyStored);
    }
    Err(AppendError::Conflict { item_id, expected: expected_version, actual })
}

/// An item's state at a version, as the projection code of `revision` folded
/// it from the log: where the write side starts folding a long stream, so a
/// change reads a snapshot and the events after it, not the whole stream.
/// Only ever made from the log, so it never says more than the log does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub item: Item,
    pub revision: u32,
}

/// Result of a version-guarded write to the read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Applied,
    /// Already newer: the read model had this version or a newer one (for a
    /// [`repair`](ReadModel::repair), this very state), so nothing was written.
    AlreadyNewer,
}

/// A position in the read model, as the backend understands it. Never shown to
/// clients as is: the [`CursorCodec`] seals it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Where the next page starts; `None` when the listing is complete.
    pub next: Option<PageKey>,
}

/// The items read table, fed by the projector.
#[async_trait]
pub trait ReadModel: Send + Sync {
    /// Writes `item` unless the stored one has the same or a newer version.
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError>;

    /// Each of `items` (one per item id) as [`upsert_if_newer`](Self::upsert_if_newer):
    /// one result per item, in order. Several writes are in flight at once; a
    /// store that can take them in one transaction does (all or nothing).
    async fn upsert_all_if_newer(&self, items: &[Item]) -> Vec<Result<Upsert, StoreError>> {
        use futures::StreamExt;
        // Made before the first await: the stream then holds no closure.
        let writes: Vec<_> = items.iter().map(|item| self.upsert_if_newer(item)).collect();
        futures::stream::iter(writes).buffered(WRITES_IN_FLIGHT).collect().await
    }

    /// A rebuild's write: writes `item` unless the stored one has a newer
    /// version, or is this very state. Unlike [`upsert_if_newer`](Self::upsert_if_newer)
    /// it repairs a row that is wrong at the right version (projection code
    /// fixed since, a hand edit), and still never goes back in time, so it is
    /// safe next to the live projector.
    async fn repair(&self, item: &Item) -> Result<Upsert, StoreError>;

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError>;

    /// One page after `after`. With `limit`, at most that many items; without,
    /// one page of whatever size the backend serves (a DynamoDB Scan page is 1 MB).
    async fn list_page(&self, limit: Option<u32>, after: Option<&PageKey>) -> Result<Page, StoreError>;

    /// One page of the items `creator` created, newest first by `createdAt`
    /// (items of the same millisecond in an order of the backend's: by id,
    /// descending, here; a DynamoDB index does not say), after `after` (a
    /// [`CreatorKey`]'s page key). Read from an index of the creator's items (a DynamoDB global
    /// secondary index, an SQLite index), never from a scan of the table, so
    /// its cost does not grow with the table. Tombstones may be in it, and
    /// count against `limit`, as in [`list_page`](Self::list_page).
    async fn list_by_creator(
        &self,
        creator: &str,
        limit: Option<u32>,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError>;

    /// The position right after `item`, as [`list_page`](Self::list_page) takes it:
    /// to go on after an item in the middle of a page. Every backend here
    /// orders by, and resumes after, the item's id.
    fn position_after(&self, item: &Item) -> PageKey {
        PageKey(item.id.to_string())
    }
}

/// A position in one creator's items, newest first: the item's `createdAt`
/// and id (the index's sort key and the table's key, which together are
/// unique). Every backend's [`ReadModel::list_by_creator`] takes and gives
/// its page key in this one form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatorKey {
    pub created_at: String,
    pub id: ItemId,
}

impl CreatorKey {
    pub fn of(item: &Item) -> Self {
        Self { created_at: crate::event::rfc3339::format(&item.created_at), id: item.id }
    }

    pub fn to_page_key(&self) -> PageKey {
        PageKey(format!("{} {}", self.created_at, self.id))
    }

    pub fn from_page_key(key: &PageKey) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt("page key is not a creator position".into());
        let (created_at, id) = key.0.split_once(' ').ok_or_else(corrupt)?;
        let id = ItemId::parse(id).ok_or_else(corrupt)?;
        crate::event::rfc3339::parse(created_at).map_err(|_| corrupt())?;
        Ok(Self { created_at: created_at.to_owned(), id })
    }
}

pub trait Clock: Send + Sync {
    /// Wall-clock time: what events record.
    fn now(&self) -> DateTime<Utc>;
    /// Monotonic time: what deadlines and budgets are measured in.
    fn instant(&self) -> Instant;
}

pub trait IdGenerator: Send + Sync {
    fn new_id(&self) -> Uuid;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

/// Turns page keys into opaque, tamper-evident cursors and back.
pub trait CursorCodec: Send + Sync {
    fn seal(&self, key: &PageKey) -> String;
    fn open(&self, cursor: &str) -> Result<PageKey, InvalidCursor>;
}

// The rebuild's ports: `items replay` reads the log through these and
// writes the read model (or another table) through them.

/// One page of one segment of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    pub events: Vec<Event>,
    /// When each event reached the log (the store's clock at its append; see
    /// [`StoredEvent::recorded_at`](crate::event::StoredEvent::recorded_at)),
    /// by position in `events`. An event without one (written before stores
    /// recorded it) counts as recorded at its `occurred_at`.
    pub recorded_at: Vec<DateTime<Utc>>,
    /// Records that are not events (other partitions, such as idempotency
    /// records): counted, not replayed. An event this code cannot read is an
    /// error, never a skip.
    pub skipped: usize,
    pub next: Option<PageKey>,
}

impl ScanPage {
    /// When the event at `index` reached the log.
    pub fn recorded(&self, index: usize) -> DateTime<Utc> {
        self.recorded_at.get(index).copied().unwrap_or(self.events[index].occurred_at)
    }

    /// The page's items with an event recorded at or after `since`.
    pub fn recorded_since(&self, since: DateTime<Utc>) -> std::collections::BTreeSet<ItemId> {
        (0..self.events.len())
            .filter(|&index| self.recorded(index) >= since)
            .map(|index| self.events[index].item_id)
            .collect()
    }
}

/// Reads the event log in `total_segments` disjoint parts (a parallel Scan).
/// All events of one item are in one segment, in version order.
#[async_trait]
pub trait EventLogScan: Send + Sync {
    async fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<&PageKey>,
    ) -> Result<ScanPage, StoreError>;

    /// One item's whole stream: for a page that holds the middle of it (an
    /// update needs the state right before it).
    async fn item_stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    pub written: usize,
    /// Already at this version or newer in the target: left alone.
    pub already_newer: usize,
    /// Writes the store asked to repeat (throttling, unprocessed items).
    pub retries: usize,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, other: Self) {
        self.written += other.written;
        self.already_newer += other.already_newer;
        self.retries += other.retries;
    }
}

/// Where replayed states go.
#[async_trait]
pub trait ReplayTarget: Send + Sync {
    async fn write(&self, items: Vec<Item>) -> Result<WriteStats, StoreError>;

    /// Tombstones past their lifetime: the table's TTL has removed (or will
    /// soon remove) them, and no stream record can arrive for them any more,
    /// so they need not be written again; a target only makes sure none of
    /// these items shows live. A new table writes nothing (the default).
    async fn retire(&self, tombstones: Vec<Item>) -> Result<WriteStats, StoreError> {
        let _ = tombstones;
        Ok(WriteStats::default())
    }
}

/// How far a segment got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentProgress {
    /// Pages up to this position are written.
    After(PageKey),
    Done,
}

/// Where per-segment checkpoints are kept between runs.
pub trait Checkpoints: Send + Sync {
    fn load(&self, segment: u32) -> Option<SegmentProgress>;
    fn save(&self, segment: u32, progress: &SegmentProgress) -> Result<(), StoreError>;
}

/// Where `--verify` keeps the log's fold (each item's newest state) from
/// reading the log until it has read the table: on disk in the real thing,
/// so a verify's memory does not grow with the log.
#[async_trait]
pub trait FoldStore: Send + Sync {
    /// Keeps each state, unless a newer state of the same item is kept.
    async fn keep(&self, items: Vec<Item>) -> Result<(), StoreError>;
    /// Removes the kept states of `ids` and returns them (those it has).
    async fn take(&self, ids: Vec<ItemId>) -> Result<Vec<Item>, StoreError>;
    /// Removes and returns up to `limit` of the states left, in no order.
    async fn take_any(&self, limit: usize) -> Result<Vec<Item>, StoreError>;
}

/// Told after every page, for progress displays.
pub trait ReplayObserver: Send + Sync {
    fn page_done(&self, segment: u32, events: usize, stats: WriteStats);
}

impl ReplayObserver for () {
    fn page_done(&self, _segment: u32, _events: usize, _stats: WriteStats) {}
}
