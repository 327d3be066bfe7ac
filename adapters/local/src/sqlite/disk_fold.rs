//! `--verify`'s fold store on disk, in a scratch SQLite file (`Scratch`), so a
//! verify's memory stays flat however large the log.

use std::path::Path;

use async_trait::async_trait;
use items_domain::Item;
use items_domain::event::ItemId;
use items_domain::ports::{FoldStore, StoreError};
use rusqlite::{Connection, params};

use super::scratch::Scratch;
use super::{decode_item, encode, unavailable};

/// The log's fold in a scratch file, removed when dropped.
pub struct DiskFold(Scratch);

impl DiskFold {
    /// A new, empty scratch file in `dir` (which must exist): it needs about
    /// as much free space as the read model takes.
    pub fn create(dir: &Path) -> Result<Self, StoreError> {
        Scratch::create(
            dir,
            "verify",
            "CREATE TABLE fold (id TEXT PRIMARY KEY, version INTEGER NOT NULL, item TEXT NOT NULL) WITHOUT ROWID;",
        )
        .map(Self)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
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
        self.0
            .run(move |connection| {
                let mut statement = connection
                    .prepare_cached(
                        "INSERT INTO fold (id, version, item) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET version = excluded.version, item = excluded.item
                     WHERE excluded.version > fold.version",
                    )
                    .map_err(unavailable)?;
                for item in &items {
                    statement
                        .execute(params![item.id.to_string(), item.version, encode(item)?])
                        .map_err(unavailable)?;
                }
                Ok(())
            })
            .await
    }

    async fn take(&self, ids: Vec<ItemId>) -> Result<Vec<Item>, StoreError> {
        self.0
            .run(move |connection| {
                let mut taken = Vec::with_capacity(ids.len());
                for id in ids {
                    taken.extend(take_rows(
                        connection,
                        "DELETE FROM fold WHERE id = ?1 RETURNING item",
                        id.to_string(),
                    )?);
                }
                Ok(taken)
            })
            .await
    }

    async fn take_any(&self, limit: usize) -> Result<Vec<Item>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(-1);
        self.0
            .run(move |connection| {
                take_rows(
                    connection,
                    "DELETE FROM fold WHERE id IN (SELECT id FROM fold LIMIT ?1) RETURNING item",
                    limit,
                )
            })
            .await
    }
}
