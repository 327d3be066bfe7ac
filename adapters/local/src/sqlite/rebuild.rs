//! `items replay` on the embedded store: a staging table swapped in at the end.

use std::sync::Arc;

use async_trait::async_trait;
use items_domain::Item;
use items_domain::ports::{ReplayTarget, StoreError, Upsert, WriteStats};

use super::change_log::save_position;
use super::database::Database;
use super::read_model::{Replace, store_error, upsert_into};
use super::unavailable;

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
