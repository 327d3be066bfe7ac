//! The open database: the data dir's lock, the writer thread, the read
//! connection pool, the hot-item cache and the change feed's head.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use items_domain::ports::StoreError;
use items_domain::{Item, ItemId};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::watch;

use super::event_store::remove_expired_records;
use super::read_model::Replace;
use super::schema::{self, OpenError};
use super::unavailable;
use super::writer::Writer;

/// The database file's name in the data dir.
pub const DATABASE_FILE: &str = "items.sqlite3";
/// Held (an advisory lock) while a process has the database open for writing.
pub const LOCK_FILE: &str = "items.lock";
/// Rows a read-model page or a replay scan page holds at most (a DynamoDB Scan
/// page is 1 MB; this is about as much).
pub(super) const PAGE_ROWS: usize = 1000;
/// Read connections kept open for reuse.
pub(super) const READ_POOL: usize = 8;
/// Items the read model keeps in memory for `get` (a few MiB).
pub(super) const HOT_ITEMS: usize = 16_384;

/// The hot-item cache, and its epoch: bumped by every write and clear, so a
/// read can tell whether one came between the database read and remembering.
#[derive(Default)]
pub(super) struct HotItems {
    pub(super) items: HashMap<ItemId, Item>,
    pub(super) epoch: u64,
}

impl HotItems {
    pub(super) fn insert(&mut self, item: Item) {
        if self.items.len() >= HOT_ITEMS {
            // Start over rather than track recency on every read.
            self.items.clear();
        }
        self.items.insert(item.id, item);
    }
}
/// How long a reader waits for a lock before giving up (WAL readers rarely wait).
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The projector position's name (one change feed per database).
pub(super) const FEED: &str = "projector";

/// An open database: the writer thread, the read pool, the change-feed signal,
/// and the data dir's lock for as long as it is open.
pub struct Database {
    pub(super) path: PathBuf,
    pub(super) writer: Writer,
    pub(super) readers: Mutex<Vec<Connection>>,
    /// Items recently written or read, for `get` without a read transaction.
    /// Only this process writes the items table (the data dir is locked), and
    /// every write goes through [`SqliteReadModel`]; a read is remembered only
    /// if no write came between it and remembering (see [`HotItems`]).
    pub(super) hot_items: Mutex<HotItems>,
    /// The sequence number of the newest committed event.
    pub(super) head: watch::Sender<u64>,
    pub(super) _lock: File,
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
    pub(super) async fn read<T: Send + 'static>(
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
    pub(super) fn read_now<T>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
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

    pub(super) fn hot(&self) -> std::sync::MutexGuard<'_, HotItems> {
        self.hot_items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn hot_item(&self, id: ItemId) -> Option<Item> {
        self.hot().items.get(&id).cloned()
    }

    /// Remembers a committed write (`replace`: even at the version
    /// remembered, for a repair).
    pub(super) fn remember_written(&self, item: &Item, replace: Replace) {
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
    pub(super) fn remember_read(&self, item: &Item, epoch: u64) {
        let mut hot = self.hot();
        if hot.epoch == epoch && !hot.items.contains_key(&item.id) {
            hot.insert(item.clone());
        }
    }

    pub(super) fn read_epoch(&self) -> u64 {
        self.hot().epoch
    }

    pub(super) fn forget_hot_items(&self) {
        let mut hot = self.hot();
        hot.epoch += 1;
        hot.items.clear();
    }

    /// The highest event sequence number committed so far.
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }
}

pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    Ok(connection)
}
