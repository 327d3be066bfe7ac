//! The log as the change feed reads it: records in sequence order, the
//! projector's position, and the records set aside.

use async_trait::async_trait;
use items_domain::event::rfc3339;
use items_domain::ports::{AppendError, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;

use super::database::FEED;
use super::event_store::SqliteEventStore;
use super::read_model::store_error;
use super::{corrupt, decode_event, unavailable};
use crate::event_source_mapping::{ChangeLog, ChangeRecord, Quarantine, Quarantined, Undecodable};

/// Like [`read_events_after`], decoding per row: the change feed turns a row
/// it cannot read into a poison record instead of failing the page.
pub(super) fn read_records_after(
    connection: &Connection,
    after: u64,
    max: usize,
) -> Result<Vec<ChangeRecord>, StoreError> {
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
}

#[async_trait]
impl Quarantine for SqliteEventStore {
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

pub(super) fn save_position(connection: &Connection, position: u64) -> Result<(), AppendError> {
    connection
        .execute(
            "INSERT INTO projector (feed, position) VALUES (?1, ?2)
             ON CONFLICT (feed) DO UPDATE SET position = excluded.position",
            params![FEED, position],
        )
        .map_err(unavailable)?;
    Ok(())
}
