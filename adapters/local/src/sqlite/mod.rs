//! The durable embedded backend: the event log, the idempotency records, the
//! read model and the projector's position in one SQLite database file (WAL
//! mode), the default store of `items serve`.
//!
//! - **Durable**: an append is acknowledged only once its transaction is
//!   committed with `synchronous = FULL`, which syncs the WAL to disk.
//! - **Group commit**: one writer thread owns the only writing connection and
//!   commits every write that is waiting in one transaction (each in its own
//!   savepoint, so one failed conditional append leaves the others alone): one
//!   fsync for many requests.
//! - **Read model writes are not synced**: the read model and the projector's
//!   position are disposable (rebuilt from the log by replay), so transactions
//!   with only those commit with `synchronous = NORMAL`: they survive a crash
//!   of the process, and a power loss rolls them back to an earlier, consistent
//!   point from which the projector simply re-applies events.
//! - Reads use a small pool of other connections (WAL readers never block the
//!   writer), on tokio's blocking threads.

mod schema;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use items_domain::event::{StoredEvent, rfc3339};
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::ports::{
    AppendError, AppendPlan, EventStore, Page, PageKey, ReadModel, Snapshot, StoreError, Upsert, check_append,
};
use items_domain::replay::{EventLogScan, ReplayTarget, ScanPage, WriteStats};
use items_domain::{Event, Item, ItemId};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::watch;

use crate::event_source_mapping::{ChangeLog, ChangeRecord, Quarantined, Undecodable};
pub use schema::OpenError;
use writer::Writer;

/// The database file's name in the data dir.
pub const DATABASE_FILE: &str = "items.sqlite3";
/// Held (an advisory lock) while a process has the database open for writing.
pub const LOCK_FILE: &str = "items.lock";
/// Rows a read-model page or a replay scan page holds at most (a DynamoDB Scan
/// page is 1 MB; this is about as much).
const PAGE_ROWS: usize = 1000;
/// Read connections kept open for reuse.
const READ_POOL: usize = 8;
/// Items the read model keeps in memory for `get` (a few MiB).
const HOT_ITEMS: usize = 16_384;

/// The hot-item cache, and its epoch: bumped by every write and clear, so a
/// read can tell whether one came between the database read and remembering.
#[derive(Default)]
struct HotItems {
    items: HashMap<ItemId, Item>,
    epoch: u64,
}

impl HotItems {
    fn insert(&mut self, item: Item) {
        if self.items.len() >= HOT_ITEMS {
            // Start over rather than track recency on every read.
            self.items.clear();
        }
        self.items.insert(item.id, item);
    }
}
/// How long a reader waits for a lock before giving up (WAL readers rarely wait).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The projector position's name (one change feed per database).
const FEED: &str = "projector";

/// An open database: the writer thread, the read pool, the change-feed signal,
/// and the data dir's lock for as long as it is open.
pub struct Database {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    /// Items recently written or read, for `get` without a read transaction.
    /// Only this process writes the items table (the data dir is locked), and
    /// every write goes through [`SqliteReadModel`]; a read is remembered only
    /// if no write came between it and remembering (see [`HotItems`]).
    hot_items: Mutex<HotItems>,
    /// The sequence number of the newest committed event.
    head: watch::Sender<u64>,
    _lock: File,
}

impl Database {
    /// Opens (creating, or migrating to the current schema) the database in
    /// `data_dir`, locking the data dir. Fails with a clear error when another
    /// process has it, when the file is not a database of ours or has a newer
    /// schema, or when the data dir cannot be written.
    pub fn open(data_dir: &Path) -> Result<Arc<Self>, OpenError> {
        let lock = schema::lock_data_dir(data_dir)?;
        let path = data_dir.join(DATABASE_FILE);
        let connection = schema::open_writer(&path)?;
        remove_expired_records(&connection, Utc::now(), None)
            .map_err(|e| OpenError::Io { path: path.clone(), detail: e.to_string() })?;
        let head: u64 = connection
            .query_row("SELECT coalesce(max(sequence), 0) FROM events", [], |row| row.get(0))
            .map_err(|e| OpenError::unreadable(&path, e))?;
        let head = watch::Sender::new(head);
        let writer = Writer::start(connection, head.clone())
            .map_err(|e| OpenError::Io { path: path.clone(), detail: e.to_string() })?;
        Ok(Arc::new(Self {
            path,
            writer,
            readers: Mutex::new(Vec::new()),
            hot_items: Mutex::default(),
            head,
            _lock: lock,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `query` on a read connection, on a blocking thread.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        query: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let database = self.clone();
        tokio::task::spawn_blocking(move || database.read_now(query))
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    /// Runs a point query (a primary-key lookup, a few microseconds from the
    /// page cache) on a read connection right here: handing it to a blocking
    /// thread and back would cost more than the query. Scans use [`read`](Self::read).
    fn read_now<T>(&self, query: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => open_reader(&self.path)?,
        };
        let result = query(&connection);
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < READ_POOL {
            readers.push(connection);
        }
        result
    }

    fn hot(&self) -> std::sync::MutexGuard<'_, HotItems> {
        self.hot_items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hot_item(&self, id: ItemId) -> Option<Item> {
        self.hot().items.get(&id).cloned()
    }

    /// Remembers a committed write (`replace`: even at the version
    /// remembered, for a repair).
    fn remember_written(&self, item: &Item, replace: Replace) {
        let mut hot = self.hot();
        hot.epoch += 1;
        let keep = hot.items.get(&item.id).is_some_and(|known| match replace {
            Replace::Older => known.version >= item.version,
            Replace::OlderOrDifferent => known.version > item.version,
        });
        if !keep {
            hot.insert(item.clone());
        }
    }

    /// Remembers what a read found, unless a write came since the read
    /// began (`epoch`, from [`read_epoch`](Self::read_epoch)): a read that
    /// lost a race with a write (or with a clear) must not put an older copy
    /// back.
    fn remember_read(&self, item: &Item, epoch: u64) {
        let mut hot = self.hot();
        if hot.epoch == epoch && !hot.items.contains_key(&item.id) {
            hot.insert(item.clone());
        }
    }

    fn read_epoch(&self) -> u64 {
        self.hot().epoch
    }

    fn forget_hot_items(&self) {
        let mut hot = self.hot();
        hot.epoch += 1;
        hot.items.clear();
    }

    /// The highest event sequence number committed so far.
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    Ok(connection)
}

/// A SQLite failure as the ports see it: the detail is for logs.
fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {error}"))
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

fn decode_event(stored: &str) -> Result<Event, StoreError> {
    let stored: StoredEvent = serde_json::from_str(stored).map_err(|e| corrupt("stored event", e))?;
    stored.decode().map_err(|e| corrupt("stored event", e))
}

fn decode_item(stored: &str) -> Result<Item, StoreError> {
    serde_json::from_str(stored).map_err(|e| corrupt("stored item", e))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt("encoding", e))
}

/// The event log and idempotency records.
#[derive(Clone)]
pub struct SqliteEventStore(Arc<Database>);

impl SqliteEventStore {
    pub fn new(database: Arc<Database>) -> Self {
        Self(database)
    }
}

/// Appends `events` at `expected_version`, in the writer's transaction, by
/// the append contract ([`check_append`]).
fn append_in(connection: &Connection, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
    let Some(first) = events.first() else { return Ok(()) };
    let stream_id = first.item_id.stream_id();
    let actual: u64 = connection
        .query_row("SELECT coalesce(max(version), 0) FROM events WHERE stream_id = ?1", [&stream_id], |row| row.get(0))
        .map_err(unavailable)?;
    let stored: HashMap<u64, Option<String>> = if actual > expected_version {
        let mut statement = connection
            .prepare_cached(
                "SELECT version, json_extract(stored, '$.event_id') FROM events
                 WHERE stream_id = ?1 AND version > ?2 AND version <= ?3",
            )
            .map_err(unavailable)?;
        let rows = statement
            .query_map(params![stream_id, expected_version, expected_version + events.len() as u64], |row| {
                Ok((row.get::<_, u64>(0)?, row.get::<_, Option<String>>(1)?))
            })
            .map_err(unavailable)?;
        rows.collect::<Result<_, _>>().map_err(unavailable)?
    } else {
        HashMap::new()
    };
    let stored_id = |version| stored.get(&version)?.as_deref().and_then(|id| uuid::Uuid::parse_str(id).ok());
    if check_append(expected_version, actual, events, stored_id)? == AppendPlan::AlreadyStored {
        return Ok(());
    }
    let mut insert = connection
        .prepare_cached("INSERT INTO events (stream_id, version, stored) VALUES (?1, ?2, ?3)")
        .map_err(unavailable)?;
    for event in events {
        let stored = encode(&event.to_stored())?;
        insert.execute(params![stream_id, event.version, stored]).map_err(unavailable)?;
    }
    Ok(())
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        let events = events.to_vec();
        self.0.writer.durable(move |connection| append_in(connection, expected_version, &events)).await
    }

    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), AppendError> {
        let (record, events) = (record.clone(), events.to_vec());
        self.0
            .writer
            .durable(move |connection| {
                let existing: Option<String> = connection
                    .query_row(
                        "SELECT record FROM idempotency WHERE subject = ?1 AND key = ?2",
                        params![record.subject, record.key.as_str()],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(unavailable)?;
                if let Some(existing) = existing {
                    let existing: IdempotencyRecord =
                        serde_json::from_str(&existing).map_err(|e| corrupt("idempotency record", e))?;
                    if existing.is_live(now) {
                        return Err(AppendError::KeyTaken);
                    }
                }
                append_in(connection, expected_version, &events)?;
                // Two out for each one in: expired records never pile up.
                remove_expired_records(connection, now, Some(2))?;
                connection
                    .execute(
                        "INSERT INTO idempotency (subject, key, expires_at, record) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (subject, key) DO UPDATE SET expires_at = excluded.expires_at, record = excluded.record",
                        params![record.subject, record.key.as_str(), rfc3339::format(&record.expires_at), encode(&record)?],
                    )
                    .map_err(unavailable)?;
                Ok(())
            })
            .await
    }

    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let (subject, key) = (subject.to_owned(), key.as_str().to_owned());
        self.0.read_now(move |connection| {
            let stored: Option<String> = connection
                .query_row(
                    "SELECT record FROM idempotency WHERE subject = ?1 AND key = ?2",
                    params![subject, key],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            stored.map(|s| serde_json::from_str(&s).map_err(|e| corrupt("idempotency record", e))).transpose()
        })
    }

    async fn snapshot(&self, item_id: ItemId) -> Result<Option<Snapshot>, StoreError> {
        self.0.read_now(move |connection| {
            let stored: Option<(u32, String)> = connection
                .prepare_cached("SELECT revision, item FROM snapshots WHERE stream_id = ?1")
                .and_then(|mut statement| {
                    statement.query_row([item_id.stream_id()], |row| Ok((row.get(0)?, row.get(1)?))).optional()
                })
                .map_err(unavailable)?;
            stored.map(|(revision, item)| Ok(Snapshot { item: decode_item(&item)?, revision })).transpose()
        })
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let snapshot = snapshot.clone();
        self.0
            .writer
            .disposable(move |connection| {
                connection
                    .execute(
                        "INSERT INTO snapshots (stream_id, version, revision, item) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, revision = excluded.revision, item = excluded.item
                         WHERE excluded.version > snapshots.version OR excluded.revision <> snapshots.revision",
                        params![snapshot.item.id.stream_id(), snapshot.item.version, snapshot.revision, encode(&snapshot.item)?],
                    )
                    .map_err(unavailable)?;
                Ok(())
            })
            .await
            .map_err(store_error)
    }

    async fn stream_after(&self, item_id: ItemId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        // SQLite integers are i64: a negative LIMIT is no limit, and no
        // version is above i64::MAX.
        let limit = i64::try_from(limit).unwrap_or(-1);
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.0.read_now(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT stored FROM events WHERE stream_id = ?1 AND version > ?2 ORDER BY version LIMIT ?3",
                )
                .map_err(unavailable)?;
            let rows = statement
                .query_map(params![item_id.stream_id(), after, limit], |row| row.get::<_, String>(0))
                .map_err(unavailable)?;
            rows.map(|row| decode_event(&row.map_err(unavailable)?)).collect()
        })
    }
}

/// Replay reads: segment `s` of `n` holds the items whose id is `s` modulo `n`
/// (as in memory); pages of up to 1,000 events in log order.
#[async_trait]
impl EventLogScan for SqliteEventStore {
    async fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<&PageKey>,
    ) -> Result<ScanPage, StoreError> {
        let start: u64 = match after {
            Some(key) => key.0.parse().map_err(|_| StoreError::Corrupt("bad scan position".into()))?,
            None => 0,
        };
        let total = u128::from(total_segments.max(1));
        let rows = self.0.read(move |connection| read_events_after(connection, start, PAGE_ROWS)).await?;
        let mut page = ScanPage::default();
        if rows.len() == PAGE_ROWS {
            page.next = rows.last().map(|(sequence, _)| PageKey(sequence.to_string()));
        }
        page.events = rows
            .into_iter()
            .map(|(_, event)| event)
            .filter(|event| event.item_id.0.as_u128() % total == u128::from(segment))
            .collect();
        Ok(page)
    }

    async fn item_stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError> {
        EventStore::stream(self, item_id).await
    }
}

fn read_events_after(connection: &Connection, after: u64, max: usize) -> Result<Vec<(u64, Event)>, StoreError> {
    let mut statement = connection
        .prepare_cached("SELECT sequence, stored FROM events WHERE sequence > ?1 ORDER BY sequence LIMIT ?2")
        .map_err(unavailable)?;
    let rows = statement
        .query_map(params![after, max as u64], |row| Ok((row.get::<_, u64>(0)?, row.get::<_, String>(1)?)))
        .map_err(unavailable)?;
    rows.map(|row| {
        let (sequence, stored) = row.map_err(unavailable)?;
        Ok((sequence, decode_event(&stored)?))
    })
    .collect()
}

/// Like [`read_events_after`], decoding per row: the change feed turns a row
/// it cannot read into a poison record instead of failing the page.
fn read_records_after(connection: &Connection, after: u64, max: usize) -> Result<Vec<ChangeRecord>, StoreError> {
    let mut statement = connection
        .prepare_cached("SELECT sequence, stream_id, stored FROM events WHERE sequence > ?1 ORDER BY sequence LIMIT ?2")
        .map_err(unavailable)?;
    let rows = statement
        .query_map(params![after, max as u64], |row| {
            Ok((row.get::<_, u64>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
        })
        .map_err(unavailable)?;
    rows.map(|row| {
        let (sequence, stream_id, stored) = row.map_err(unavailable)?;
        let event = decode_event(&stored)
            .map_err(|error| Undecodable { reason: error.to_string(), stored: serde_json::from_str(&stored).ok() });
        Ok(ChangeRecord { sequence, stream_id, event })
    })
    .collect()
}

#[async_trait]
impl ChangeLog for SqliteEventStore {
    async fn read_after(&self, after: u64, max: usize) -> Result<Vec<ChangeRecord>, StoreError> {
        self.0.read(move |connection| read_records_after(connection, after, max)).await
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.head.subscribe()
    }

    async fn projected_position(&self) -> Result<u64, StoreError> {
        self.0
            .read(|connection| {
                connection
                    .query_row("SELECT position FROM projector WHERE feed = ?1", [FEED], |row| row.get(0))
                    .optional()
                    .map(Option::unwrap_or_default)
                    .map_err(unavailable)
            })
            .await
    }

    async fn save_projected_position(&self, position: u64) -> Result<(), StoreError> {
        self.0.writer.disposable(move |connection| save_position(connection, position)).await.map_err(store_error)
    }

    async fn quarantine(&self, record: &Quarantined) -> Result<(), StoreError> {
        let record = record.clone();
        // Durable: the feed moves past the record once this returns.
        self.0
            .writer
            .durable(move |connection| {
                connection
                    .execute(
                        "INSERT INTO quarantine (sequence, stream_id, reason, at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (sequence) DO UPDATE SET reason = excluded.reason, at = excluded.at",
                        params![record.sequence, record.stream_id, record.reason, rfc3339::format(&record.at)],
                    )
                    .map_err(unavailable)?;
                Ok(())
            })
            .await
            .map_err(store_error)
    }

    async fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        self.0
            .read(|connection| {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT sequence, stream_id, reason, at FROM quarantine ORDER BY CAST(sequence AS INTEGER)",
                    )
                    .map_err(unavailable)?;
                let rows = statement
                    .query_map([], |row| {
                        Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?, row.get::<_, String>(3)?))
                    })
                    .map_err(unavailable)?;
                rows.map(|row| {
                    let (sequence, stream_id, reason, at) = row.map_err(unavailable)?;
                    let at = rfc3339::parse(&at).map_err(|e| corrupt("quarantine time", e))?;
                    Ok(Quarantined { sequence, stream_id, reason, at })
                })
                .collect()
            })
            .await
    }

    async fn release(&self, sequence: &str) -> Result<(), StoreError> {
        let sequence = sequence.to_owned();
        self.0
            .writer
            .durable(move |connection| {
                connection.execute("DELETE FROM quarantine WHERE sequence = ?1", [sequence]).map_err(unavailable)?;
                Ok(())
            })
            .await
            .map_err(store_error)
    }
}

/// Removes idempotency records that have expired by `now` (at most `limit`,
/// the oldest first). DynamoDB's TTL does this job in AWS.
fn remove_expired_records(
    connection: &Connection,
    now: DateTime<Utc>,
    limit: Option<u32>,
) -> Result<usize, AppendError> {
    connection
        .prepare_cached(
            "DELETE FROM idempotency WHERE rowid IN
               (SELECT rowid FROM idempotency WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
        )
        .and_then(|mut statement| statement.execute(params![rfc3339::format(&now), limit.map_or(-1, i64::from)]))
        .map_err(|e| unavailable(e).into())
}

fn save_position(connection: &Connection, position: u64) -> Result<(), AppendError> {
    connection
        .execute(
            "INSERT INTO projector (feed, position) VALUES (?1, ?2)
             ON CONFLICT (feed) DO UPDATE SET position = excluded.position",
            params![FEED, position],
        )
        .map_err(unavailable)?;
    Ok(())
}

/// Read-model writes only fail as the store fails.
fn store_error(error: AppendError) -> StoreError {
    match error {
        AppendError::Store(error) => error,
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// The read model (the items table), fed by the projector.
#[derive(Clone)]
pub struct SqliteReadModel(Arc<Database>);

impl SqliteReadModel {
    pub fn new(database: Arc<Database>) -> Self {
        Self(database)
    }
}

/// Which stored rows a write replaces.
#[derive(Clone, Copy)]
enum Replace {
    /// Older ones: the projector's version-guarded upsert.
    Older,
    /// Older ones, and different ones at the same version: a rebuild's repair.
    OlderOrDifferent,
}

/// Writes `item` into `table` (`items`, or the rebuild's staging table).
fn upsert_into(connection: &Connection, table: &str, item: &Item, replace: Replace) -> Result<Upsert, AppendError> {
    let guard = match replace {
        Replace::Older => format!("excluded.version > {table}.version"),
        Replace::OlderOrDifferent => format!(
            "excluded.version > {table}.version OR (excluded.version = {table}.version AND excluded.item <> {table}.item)"
        ),
    };
    let sql = format!(
        "INSERT INTO {table} (id, version, item) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, item = excluded.item
         WHERE {guard}"
    );
    let stored = encode(item)?;
    let changed = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.execute(params![item.id.to_string(), item.version, stored]))
        .map_err(unavailable)?;
    Ok(if changed > 0 { Upsert::Applied } else { Upsert::AlreadyNewer })
}

#[async_trait]
impl ReadModel for SqliteReadModel {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        let stored = item.clone();
        let upsert = self
            .0
            .writer
            .disposable(move |connection| upsert_into(connection, "items", &stored, Replace::Older))
            .await
            .map_err(store_error)?;
        if upsert == Upsert::Applied {
            self.0.remember_written(item, Replace::Older);
        }
        Ok(upsert)
    }

    async fn repair(&self, item: &Item) -> Result<Upsert, StoreError> {
        let stored = item.clone();
        let upsert = self
            .0
            .writer
            .disposable(move |connection| upsert_into(connection, "items", &stored, Replace::OlderOrDifferent))
            .await
            .map_err(store_error)?;
        if upsert == Upsert::Applied {
            self.0.remember_written(item, Replace::OlderOrDifferent);
        }
        Ok(upsert)
    }

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError> {
        if let Some(item) = self.0.hot_item(id) {
            return Ok(Some(item));
        }
        let epoch = self.0.read_epoch();
        let item = self.0.read_now(move |connection| {
            let stored: Option<String> = connection
                .prepare_cached("SELECT item FROM items WHERE id = ?1")
                .and_then(|mut statement| statement.query_row([id.to_string()], |row| row.get(0)).optional())
                .map_err(unavailable)?;
            stored.as_deref().map(decode_item).transpose()
        })?;
        if let Some(item) = &item {
            self.0.remember_read(item, epoch);
        }
        Ok(item)
    }

    async fn list_page(&self, limit: Option<u32>, after: Option<&PageKey>) -> Result<Page, StoreError> {
        let after = match after {
            Some(key) => {
                Some(ItemId::parse(&key.0).ok_or_else(|| StoreError::Corrupt("page key is not an item id".into()))?)
            }
            None => None,
        };
        let page_rows = limit.map_or(PAGE_ROWS, |limit| limit as usize);
        self.0
            .read(move |connection| {
                let mut statement = connection
                    .prepare_cached("SELECT item FROM items WHERE id > ?1 ORDER BY id LIMIT ?2")
                    .map_err(unavailable)?;
                // One row more than the page tells whether there is a next page.
                let start = after.map(|id| id.to_string()).unwrap_or_default();
                let rows = statement
                    .query_map(params![start, page_rows as u64 + 1], |row| row.get::<_, String>(0))
                    .map_err(unavailable)?;
                let mut items =
                    rows.map(|row| decode_item(&row.map_err(unavailable)?)).collect::<Result<Vec<_>, _>>()?;
                let more = items.len() > page_rows;
                items.truncate(page_rows);
                let next = if more { items.last().map(|last| PageKey(last.id.to_string())) } else { None };
                Ok(Page { items, next })
            })
            .await
    }
}

/// Rebuilds the read model from the log (`items replay` on the embedded
/// store): states go into a staging table, which then replaces the items
/// table in one transaction, with the projector's position set to the log's
/// head when the rebuild started. Run while no server has the database.
pub struct Rebuild {
    database: Arc<Database>,
    position: u64,
}

impl Rebuild {
    pub async fn start(database: Arc<Database>) -> Result<Self, StoreError> {
        let position = database.head();
        database
            .writer
            .disposable(|connection| {
                connection
                    .execute_batch(
                        "DROP TABLE IF EXISTS items_rebuild;
                         CREATE TABLE items_rebuild (id TEXT PRIMARY KEY, version INTEGER NOT NULL, item TEXT NOT NULL);",
                    )
                    .map_err(unavailable)?;
                Ok(())
            })
            .await
            .map_err(store_error)?;
        Ok(Self { database, position })
    }

    /// Swaps the rebuilt table in; the items table is never half rebuilt.
    /// The quarantine is emptied with it: the rebuild read every event of the
    /// log (it stops at one it cannot read), so every set-aside record is in.
    pub async fn finish(&self) -> Result<(), StoreError> {
        let position = self.position;
        self.database
            .writer
            .durable(move |connection| {
                connection
                    .execute_batch(
                        "DELETE FROM items;
                         INSERT INTO items (id, version, item) SELECT id, version, item FROM items_rebuild;
                         DROP TABLE items_rebuild;
                         DELETE FROM quarantine;",
                    )
                    .map_err(unavailable)?;
                save_position(connection, position)
            })
            .await
            .map_err(store_error)?;
        self.database.forget_hot_items();
        Ok(())
    }
}

#[async_trait]
impl ReplayTarget for Rebuild {
    async fn write(&self, items: Vec<Item>) -> Result<WriteStats, StoreError> {
        self.database
            .writer
            .disposable(move |connection| {
                let mut stats = WriteStats::default();
                for item in &items {
                    match upsert_into(connection, "items_rebuild", item, Replace::Older)? {
                        Upsert::Applied => stats.written += 1,
                        Upsert::AlreadyNewer => stats.already_newer += 1,
                    }
                }
                Ok(stats)
            })
            .await
            .map_err(store_error)
    }
}

#[cfg(test)]
mod tests;
