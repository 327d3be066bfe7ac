//! A scratch SQLite file beside the data, thrown away at the end: no journal,
//! no syncs, one connection and a small page cache, so the work it holds
//! (`--verify`'s fold, an export's sort) keeps memory flat however large the
//! log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use items_domain::ports::StoreError;
use rusqlite::Connection;

use super::unavailable;

/// The page cache, in KiB (SQLite's `cache_size` takes a negative number as
/// KiB): what a scratch file costs in memory.
const CACHE_KIB: i64 = 8 * 1024;

/// One scratch database, removed when dropped.
pub(super) struct Scratch {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
    purpose: &'static str,
}

impl Scratch {
    /// A new database in `dir` (which must exist) named after `purpose`, with `schema`.
    pub(super) fn create(dir: &Path, purpose: &'static str, schema: &str) -> Result<Self, StoreError> {
        let path = dir.join(format!("{purpose}-{}.sqlite3", uuid::Uuid::new_v4().simple()));
        let connection = Connection::open(&path).map_err(unavailable)?;
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = OFF;
                 PRAGMA synchronous = OFF;
                 PRAGMA locking_mode = EXCLUSIVE;
                 PRAGMA temp_store = FILE;
                 PRAGMA cache_size = -{CACHE_KIB};
                 {schema}"
            ))
            .map_err(unavailable)?;
        Ok(Self { connection: Arc::new(Mutex::new(connection)), path, purpose })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for blocking work on a blocking thread.
    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `work` in one transaction on a blocking thread.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            let transaction = connection.transaction().map_err(unavailable)?;
            let result = work(&transaction)?;
            transaction.commit().map_err(unavailable)?;
            Ok(result)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("{} task failed: {e}", self.purpose)))?
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
