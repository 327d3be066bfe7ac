//! `--verify`'s fold store on disk: a scratch SQLite file beside the data,
//! written without a journal or syncs (it is thrown away at the end), with a
//! small page cache, so a verify's memory stays flat however large the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use items_domain::Item;
use items_domain::event::ItemId;
use items_domain::ports::{FoldStore, StoreError};
use rusqlite::{Connection, params};

use super::{decode_item, encode, unavailable};

/// The scratch file's page cache, in KiB (SQLite's `cache_size` takes a
/// negative number as KiB): what the fold costs in memory.
const CACHE_KIB: i64 = 8 * 1024;

/// A scratch database in `dir` named after `purpose`, with `schema`: no
/// journal, no syncs, one connection, a small cache (it is thrown away).
pub(super) fn scratch(dir: &Path, purpose: &str, schema: &str) -> Result<(Connection, PathBuf), StoreError> {
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
    Ok((connection, path))
}

/// The log's fold in a scratch file, removed when dropped.
pub struct DiskFold {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl DiskFold {
    /// A new, empty scratch file in `dir` (which must exist): it needs about
    /// as much free space as the read model takes.
    pub fn create(dir: &Path) -> Result<Self, StoreError> {
        let (connection, path) = scratch(
            dir,
            "verify",
            "CREATE TABLE fold (id TEXT PRIMARY KEY, version INTEGER NOT NULL, item TEXT NOT NULL) WITHOUT ROWID;",
        )?;
        Ok(Self { connection: Arc::new(Mutex::new(connection)), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` in one transaction on a blocking thread.
    async fn run<T: Send + 'static>(
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
        .map_err(|e| StoreError::Unavailable(format!("fold task failed: {e}")))?
    }
}

impl Drop for DiskFold {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn take_rows(connection: &Connection, sql: &str, param: impl rusqlite::ToSql) -> Result<Vec<Item>, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(unavailable)?;
    let rows = statement.query_map([param], |row| row.get::<_, String>(0)).map_err(unavailable)?;
    rows.map(|row| decode_item(&row.map_err(unavailable)?)).collect()
}

#[async_trait]
impl FoldStore for DiskFold {
    async fn keep(&self, items: Vec<Item>) -> Result<(), StoreError> {
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "INSERT INTO fold (id, version, item) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET version = excluded.version, item = excluded.item
                     WHERE excluded.version > fold.version",
                )
                .map_err(unavailable)?;
            for item in &items {
                statement.execute(params![item.id.to_string(), item.version, encode(item)?]).map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn take(&self, ids: Vec<ItemId>) -> Result<Vec<Item>, StoreError> {
        self.run(move |connection| {
            let mut taken = Vec::with_capacity(ids.len());
            for id in ids {
                taken.extend(take_rows(connection, "DELETE FROM fold WHERE id = ?1 RETURNING item", id.to_string())?);
            }
            Ok(taken)
        })
        .await
    }

    async fn take_any(&self, limit: usize) -> Result<Vec<Item>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(-1);
        self.run(move |connection| {
            take_rows(connection, "DELETE FROM fold WHERE id IN (SELECT id FROM fold LIMIT ?1) RETURNING item", limit)
        })
        .await
    }
}
