//! The event log and the idempotency records, and the replay's scan of the log.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use items_domain::event::rfc3339;
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::ports::{
    AppendError, AppendPlan, EventLogScan, EventStore, PageKey, ScanPage, Snapshot, StoreError, check_append,
};
use items_domain::{Event, ItemId};
use rusqlite::{Connection, OptionalExtension, params};

use super::database::{Database, PAGE_ROWS};
use super::read_model::store_error;
use super::{corrupt, decode_event, decode_item, encode, unavailable};

/// The event log and idempotency records.
#[derive(Clone)]
pub struct SqliteEventStore(pub(super) Arc<Database>);

impl SqliteEventStore {
    pub fn new(database: Arc<Database>) -> Self {
        Self(database)
    }
}

/// Appends `events` at `expected_version`, in the writer's transaction, by
/// the append contract ([`check_append`]).
pub(super) fn append_in(connection: &Connection, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
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

pub(super) fn read_events_after(
    connection: &Connection,
    after: u64,
    max: usize,
) -> Result<Vec<(u64, Event)>, StoreError> {
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

/// Removes idempotency records that have expired by `now` (at most `limit`,
/// the oldest first). DynamoDB's TTL does this job in AWS.
pub(super) fn remove_expired_records(
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
