//! The event log and the idempotency records, and the replay's scan of the log.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use items_domain::event::{STREAM_PREFIX, rfc3339};
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::ports::{
    AppendError, AppendPlan, EventLogScan, EventStore, PageKey, ScanPage, Snapshot, StoreError, check_append,
};
use items_domain::{Event, ItemId};
use rusqlite::{Connection, OptionalExtension, params};

use super::database::{Database, PAGE_ROWS};
use super::read_model::store_error;
use super::{corrupt, decode_event, decode_item, decode_recorded, encode, read_page, unavailable};

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
    // Only on a refused append: the events stored at those versions, to tell
    // a retry of the very same events from a conflict.
    let stored: HashMap<u64, String> = if actual > expected_version {
        let mut statement = connection
            .prepare_cached(
                "SELECT version, stored FROM events WHERE stream_id = ?1 AND version > ?2 AND version <= ?3",
            )
            .map_err(unavailable)?;
        let rows = statement
            .query_map(params![stream_id, expected_version, expected_version + events.len() as u64], |row| {
                Ok((row.get::<_, u64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(unavailable)?;
        rows.collect::<Result<_, _>>().map_err(unavailable)?
    } else {
        HashMap::new()
    };
    let stored_event = |version| decode_event(stored.get(&version)?).ok();
    if check_append(expected_version, actual, events, stored_event)? == AppendPlan::AlreadyStored {
        return Ok(());
    }
    let mut insert = connection
        .prepare_cached("INSERT INTO events (stream_id, version, stored) VALUES (?1, ?2, ?3)")
        .map_err(unavailable)?;
    let now = chrono::Utc::now();
    for event in events {
        let stored = encode(&event.to_stored().recorded(&now))?;
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

/// Replay reads, in item order (the log's `(stream_id, version)` index):
/// segment `s` of `n` holds the items whose id falls in the `s`-th of `n`
/// equal ranges of the id space, so segments read disjoint parts of the
/// index. A page ends at an item's end (unless one item alone fills it):
/// pages fold without reading streams again, and the rebuild writes each
/// item once.
#[async_trait]
impl EventLogScan for SqliteEventStore {
    async fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<&PageKey>,
    ) -> Result<ScanPage, StoreError> {
        let (low, high) = segment_range(segment, total_segments);
        let start = match after {
            Some(key) => {
                let (id, version) = key.0.split_once('/').ok_or_else(|| bad_position(key))?;
                let id = ItemId::parse(id).ok_or_else(|| bad_position(key))?;
                (id.stream_id(), version.parse::<i64>().map_err(|_| bad_position(key))?)
            }
            None => (low.stream_id(), 0),
        };
        // Past every stream id of the last range ('~' sorts after hex digits and '-').
        let end = high.map_or_else(|| format!("{STREAM_PREFIX}~"), |high| high.stream_id());
        let (mut events, more) = self
            .0
            .read(move |connection| {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT stored FROM events WHERE (stream_id, version) > (?1, ?2) AND stream_id < ?3
                         ORDER BY stream_id, version LIMIT ?4",
                    )
                    .map_err(unavailable)?;
                let mut rows =
                    statement.query(params![start.0, start.1, end, PAGE_ROWS as u64 + 1]).map_err(unavailable)?;
                read_page(&mut rows, PAGE_ROWS, "stored event", decode_recorded)
            })
            .await?;
        let mut page = ScanPage::default();
        if more {
            // Leave the last item's events to the next page, unless it is the only one.
            let last = events[events.len() - 1].0.item_id;
            if events[0].0.item_id != last {
                events.truncate(events.iter().rposition(|(event, _)| event.item_id != last).map_or(0, |i| i + 1));
            }
            page.next = events.last().map(|(event, _)| PageKey(format!("{}/{}", event.item_id, event.version)));
        }
        (page.events, page.recorded_at) = events.into_iter().unzip();
        Ok(page)
    }

    async fn item_stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError> {
        EventStore::stream(self, item_id).await
    }
}

fn bad_position(key: &PageKey) -> StoreError {
    StoreError::Corrupt(format!("bad scan position {:?}", key.0))
}

/// The ids of segment `segment` of `total`: from the first (inclusive) up to
/// the second (exclusive; `None` for the last segment: to the end).
fn segment_range(segment: u32, total: u32) -> (ItemId, Option<ItemId>) {
    let total = u128::from(total.max(1));
    let segment = u128::from(segment).min(total - 1);
    let width = u128::MAX / total;
    let id = |n: u128| ItemId(uuid::Uuid::from_u128(n * width));
    (id(segment), (segment + 1 < total).then(|| id(segment + 1)))
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
