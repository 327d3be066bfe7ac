//! The read model (the items table), fed by the projector.

use std::sync::Arc;

use async_trait::async_trait;
use items_domain::ports::{AppendError, CreatorKey, Page, PageKey, ReadModel, StoreError, Upsert};
use items_domain::{Item, ItemId};
use rusqlite::{Connection, OptionalExtension, params};

use super::database::{Database, PAGE_ROWS};
use super::{decode_item, encode, read_page, unavailable};

/// A creator's first page, newest first: `?1` the creator, `?2` the rows.
pub(super) const BY_CREATOR_FIRST: &str = "SELECT item FROM items WHERE json_extract(item, '$.createdBy') = ?1
     ORDER BY json_extract(item, '$.createdAt') DESC, id DESC LIMIT ?2";
/// The page after a position (`?3` its `createdAt`, `?4` its id).
pub(super) const BY_CREATOR_AFTER: &str = "SELECT item FROM items WHERE json_extract(item, '$.createdBy') = ?1
       AND (json_extract(item, '$.createdAt'), id) < (?3, ?4)
     ORDER BY json_extract(item, '$.createdAt') DESC, id DESC LIMIT ?2";

/// Read-model writes only fail as the store fails.
pub(super) fn store_error(error: AppendError) -> StoreError {
    match error {
        AppendError::Store(error) => error,
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// The read model (the items table), fed by the projector.
#[derive(Clone)]
pub struct SqliteReadModel(pub(super) Arc<Database>);

impl SqliteReadModel {
    pub fn new(database: Arc<Database>) -> Self {
        Self(database)
    }
}

/// Which stored rows a write replaces.
#[derive(Clone, Copy)]
pub(super) enum Replace {
    /// Older ones: the projector's version-guarded upsert.
    Older,
    /// Older ones, and different ones at the same version: a rebuild's repair.
    OlderOrDifferent,
}

/// Writes `item` into `table` (`items`, or the rebuild's staging table).
pub(super) fn upsert_into(
    connection: &Connection,
    table: &str,
    item: &Item,
    replace: Replace,
) -> Result<Upsert, AppendError> {
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

    /// One writer job, one transaction. When it fails, each item is written
    /// on its own, so one item's failure is that item's alone.
    async fn upsert_all_if_newer(&self, items: &[Item]) -> Vec<Result<Upsert, StoreError>> {
        let stored = items.to_vec();
        let written = self
            .0
            .writer
            .disposable(move |connection| {
                stored
                    .iter()
                    .map(|item| upsert_into(connection, "items", item, Replace::Older))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
        match written {
            Ok(upserts) => {
                for (item, upsert) in items.iter().zip(&upserts) {
                    if *upsert == Upsert::Applied {
                        self.0.remember_written(item, Replace::Older);
                    }
                }
                upserts.into_iter().map(Ok).collect()
            }
            Err(error) => {
                tracing::warn!(error = %store_error(error), "batched read-model write failed; writing item by item");
                let mut results = Vec::with_capacity(items.len());
                for item in items {
                    results.push(self.upsert_if_newer(item).await);
                }
                results
            }
        }
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
                let mut rows = statement.query(params![start, page_rows as u64 + 1]).map_err(unavailable)?;
                // A shorter page than asked for (1 MB reached) has a next key too.
                let (items, more) = read_page(&mut rows, page_rows, "stored item", decode_item)?;
                let next = if more { items.last().map(|last| PageKey(last.id.to_string())) } else { None };
                Ok(Page { items, next })
            })
            .await
    }

    async fn list_by_creator(
        &self,
        creator: &str,
        limit: Option<u32>,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError> {
        let after = after.map(CreatorKey::from_page_key).transpose()?;
        let creator = creator.to_owned();
        let page_rows = limit.map_or(PAGE_ROWS, |limit| limit as usize);
        self.0
            .read(move |connection| {
                // The expressions are the index's (schema migration 5), so
                // SQLite walks it backwards from the position.
                let (sql, position) = match &after {
                    None => (BY_CREATOR_FIRST, None),
                    Some(key) => (BY_CREATOR_AFTER, Some((key.created_at.clone(), key.id.to_string()))),
                };
                let mut statement = connection.prepare_cached(sql).map_err(unavailable)?;
                let wanted = page_rows as u64 + 1;
                let mut rows = match &position {
                    None => statement.query(params![creator, wanted]),
                    Some((created_at, id)) => statement.query(params![creator, wanted, created_at, id]),
                }
                .map_err(unavailable)?;
                let (items, more) = read_page(&mut rows, page_rows, "stored item", decode_item)?;
                let next = if more { items.last().map(|last| CreatorKey::of(last).to_page_key()) } else { None };
                Ok(Page { items, next })
            })
            .await
    }
}
