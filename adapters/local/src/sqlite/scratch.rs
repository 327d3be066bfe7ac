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
        // Created private (0600) before SQLite opens it: it holds the log
        // (security review N9), and a killed run leaves it behind.
        crate::data_dir::open_private(&path)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_scratch_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("scratch-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let scratch = Scratch::create(&dir, "test", "CREATE TABLE t (x)").unwrap();
        let mode = std::fs::metadata(scratch.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        drop(scratch);
        let _ = std::fs::remove_dir_all(dir);
    }
}
