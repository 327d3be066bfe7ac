//! What the SQLite store adds to the ports' contract (which the conformance
//! suite checks): durability across reopening, the data dir's lock, refusing
//! files it must not touch, and failing cleanly when the disk is full.

use std::path::PathBuf;

use items_domain::event::ItemCreated;
use items_domain::testing::at;
use items_domain::{EventPayload, ItemId};
use uuid::Uuid;

use super::*;
use std::sync::Arc;
use std::time::Duration;

use super::database::{HOT_ITEMS, open_reader};
use crate::event_source_mapping::ChangeLog;
use crate::event_source_mapping::ChangeRecord;
use chrono::Utc;
use items_domain::idempotency::IdempotencyKey;
use items_domain::idempotency::IdempotencyRecord;
use items_domain::ports::{AppendError, EventStore, ReadModel, ReplayTarget, Upsert};
use rusqlite::{Connection, params};

/// A fresh data dir, removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("items-sqlite-{}", Uuid::new_v4().simple())))
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn created(item_id: ItemId, name: &str) -> Event {
    Event {
        event_id: Uuid::new_v4(),
        item_id,
        version: 1,
        occurred_at: at("2026-01-02T03:04:05.678Z"),
        subject: "sub-1".into(),
        payload: EventPayload::ItemCreated(ItemCreated {
            name: name.into(),
            timestamp: "N/A".into(),
            description: None,
        }),
    }
}

fn item_of(event: &Event) -> Item {
    items_domain::projection::fold([event]).unwrap()
}

#[tokio::test]
async fn everything_survives_closing_and_reopening() {
    let dir = DataDir::new();
    let id = ItemId(Uuid::new_v4());
    let event = created(id, "Pen");
    let record = IdempotencyRecord {
        subject: "sub-1".into(),
        key: IdempotencyKey::parse("key-1").unwrap(),
        name: "Cup".into(),
        timestamp: "N/A".into(),
        item: item_of(&created(ItemId(Uuid::new_v4()), "Cup")),
        expires_at: at("2999-01-01T00:00:00.000Z"),
        change: None,
        description: None,
    };
    let idempotent_event = created(record.item.id, "Cup");
    {
        let database = Database::open(&dir.0).unwrap();
        let (events, read_model) = (SqliteEventStore::new(database.clone()), SqliteReadModel::new(database.clone()));
        events.append(0, std::slice::from_ref(&event)).await.unwrap();
        events.append_idempotent(&record, 0, std::slice::from_ref(&idempotent_event), Utc::now()).await.unwrap();
        read_model.upsert_if_newer(&item_of(&event)).await.unwrap();
        events.save_projected_position(1).await.unwrap();
        assert_eq!(database.head(), 2);
    }
    let database = Database::open(&dir.0).unwrap();
    let (events, read_model) = (SqliteEventStore::new(database.clone()), SqliteReadModel::new(database.clone()));
    assert_eq!(events.stream(id).await.unwrap(), vec![event.clone()]);
    assert_eq!(events.idempotency_record("sub-1", &record.key).await.unwrap(), Some(record.clone()));
    assert_eq!(read_model.get(id).await.unwrap(), Some(item_of(&event)));
    assert_eq!(events.projected_position().await.unwrap(), 1);
    assert_eq!(database.head(), 2, "the head is read from the log, not replayed");
    let after = events.read_after(1, 10).await.unwrap();
    let stream_id = idempotent_event.item_id.stream_id();
    assert_eq!(after, vec![ChangeRecord { sequence: 2, stream_id, event: Ok(idempotent_event) }]);
    assert!(matches!(
        events.append(0, &[created(id, "again")]).await,
        Err(AppendError::Conflict { expected: 0, actual: 1, .. })
    ));
}

#[tokio::test]
async fn one_process_per_data_dir() {
    let dir = DataDir::new();
    let first = Database::open(&dir.0).unwrap();
    let second = Database::open(&dir.0).err().expect("the data dir is locked");
    assert!(matches!(second, OpenError::Locked { .. }), "{second}");
    assert!(second.to_string().contains("stop it first"), "{second}");
    drop(first);
    Database::open(&dir.0).expect("the lock goes with the first database");
}

#[tokio::test]
async fn files_it_must_not_touch_are_refused_with_a_clear_error() {
    let dir = DataDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join(DATABASE_FILE);

    std::fs::write(&path, b"this is not a database, just some text that is long enough to be read").unwrap();
    let error = Database::open(&dir.0).err().expect("garbage is refused");
    assert!(matches!(error, OpenError::Unreadable { .. }), "{error}");

    std::fs::remove_file(&path).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("CREATE TABLE notes (text TEXT)").unwrap();
    drop(other);
    let error = Database::open(&dir.0).err().expect("another application's database is refused");
    assert!(matches!(error, OpenError::Foreign { .. }), "{error}");

    std::fs::remove_file(&path).unwrap();
    drop(Database::open(&dir.0).unwrap());
    let newer = Connection::open(&path).unwrap();
    newer.pragma_update(None, "user_version", schema::SCHEMA_VERSION + 1).unwrap();
    drop(newer);
    let error = Database::open(&dir.0).err().expect("a newer schema is refused");
    assert!(matches!(error, OpenError::NewerSchema { found, .. } if found == schema::SCHEMA_VERSION + 1), "{error}");
    assert!(error.to_string().contains("newer"), "{error}");
}

#[tokio::test]
async fn a_full_disk_fails_the_write_and_stores_nothing() {
    let dir = DataDir::new();
    let database = Database::open(&dir.0).unwrap();
    let events = SqliteEventStore::new(database.clone());
    events.append(0, &[created(ItemId(Uuid::new_v4()), "fits")]).await.unwrap();
    // The file may not grow: as a full disk looks to SQLite.
    let pages: u64 = database
        .writer
        .durable(|connection| {
            Ok(connection.query_row("PRAGMA page_count", [], |row| row.get(0)).map_err(unavailable)?)
        })
        .await
        .unwrap();
    database
        .writer
        .durable(move |connection| {
            connection.pragma_update(None, "max_page_count", pages).map_err(unavailable)?;
            Ok(())
        })
        .await
        .unwrap();

    let big = "x".repeat(200_000);
    let id = ItemId(Uuid::new_v4());
    let error = events.append(0, &[created(id, &big)]).await.unwrap_err();
    assert!(matches!(error, AppendError::Store(StoreError::Unavailable(_))), "{error:?}");
    assert!(events.stream(id).await.unwrap().is_empty(), "nothing of a failed write is stored");
    assert_eq!(events.read_after(0, 10).await.unwrap().len(), 1);

    database
        .writer
        .durable(|connection| {
            connection.pragma_update(None, "max_page_count", 1_073_741_823).map_err(unavailable)?;
            Ok(())
        })
        .await
        .unwrap();
    events.append(0, &[created(id, "fits again")]).await.expect("writes work again once there is room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_committed_in_groups_with_distinct_sequence_numbers() {
    let dir = DataDir::new();
    let database = Database::open(&dir.0).unwrap();
    let events = SqliteEventStore::new(database.clone());
    let appends: Vec<_> = (0..200)
        .map(|n| {
            let events = events.clone();
            tokio::spawn(
                async move { events.append(0, &[created(ItemId(Uuid::new_v4()), &format!("item {n}"))]).await },
            )
        })
        .collect();
    for append in appends {
        append.await.unwrap().unwrap();
    }
    let all = events.read_after(0, 1000).await.unwrap();
    let sequences: Vec<u64> = all.iter().map(|record| record.sequence).collect();
    assert_eq!(sequences, (1..=200).collect::<Vec<_>>());
    assert_eq!(database.head(), 200);
}

#[tokio::test]
async fn a_rebuild_replaces_the_read_model_and_sets_the_position() {
    let dir = DataDir::new();
    let database = Database::open(&dir.0).unwrap();
    let (events, read_model) = (SqliteEventStore::new(database.clone()), SqliteReadModel::new(database.clone()));
    let kept = created(ItemId(Uuid::new_v4()), "kept");
    events.append(0, std::slice::from_ref(&kept)).await.unwrap();
    let mut wrong = item_of(&kept);
    wrong.name = "tampered".into();
    read_model.upsert_if_newer(&wrong).await.unwrap();
    let stray = item_of(&created(ItemId(Uuid::new_v4()), "not in the log"));
    read_model.upsert_if_newer(&stray).await.unwrap();

    let rebuild = Rebuild::start(database.clone()).await.unwrap();
    let stats = rebuild.write(vec![item_of(&kept)]).await.unwrap();
    assert_eq!(stats.written, 1);
    assert_eq!(read_model.get(kept.item_id).await.unwrap(), Some(wrong), "untouched until the swap");
    rebuild.finish().await.unwrap();

    assert_eq!(read_model.get(kept.item_id).await.unwrap(), Some(item_of(&kept)));
    assert_eq!(read_model.get(stray.id).await.unwrap(), None);
    assert_eq!(events.projected_position().await.unwrap(), 1);
}

#[tokio::test]
async fn the_hot_items_keep_the_newest_version_and_stay_bounded() {
    let dir = DataDir::new();
    let database = Database::open(&dir.0).unwrap();
    let read_model = SqliteReadModel::new(database.clone());
    let first = item_of(&created(ItemId(Uuid::new_v4()), "v1"));
    let second = Item { name: "v2".into(), version: 2, ..first.clone() };
    let epoch = database.read_epoch();
    read_model.upsert_if_newer(&second).await.unwrap();
    // A read that started before the write finishes after it: its copy is older.
    database.remember_read(&first, epoch);
    assert_eq!(read_model.get(first.id).await.unwrap(), Some(second));

    for _ in 0..HOT_ITEMS + 10 {
        let filler = item_of(&created(ItemId(Uuid::new_v4()), "filler"));
        database.remember_read(&filler, database.read_epoch());
    }
    assert!(database.hot().items.len() <= HOT_ITEMS);
    assert_eq!(read_model.get(first.id).await.unwrap().map(|item| item.version), Some(2), "read back from the table");
}

/// Review finding 12: a GET reads X@1 and is pre-empted; the projector
/// writes X's tombstone; the cache fills up and is cleared; the GET resumes
/// and remembers X@1. Before, GET /items/X then served the deleted item for
/// good; the epoch now tells the read that a write came in between.
#[tokio::test]
async fn a_read_that_lost_a_race_with_a_delete_and_a_clear_is_not_remembered() {
    let dir = DataDir::new();
    let database = Database::open(&dir.0).unwrap();
    let read_model = SqliteReadModel::new(database.clone());
    let live = item_of(&created(ItemId(Uuid::new_v4()), "Pen"));
    read_model.upsert_if_newer(&live).await.unwrap();

    let epoch = database.read_epoch();
    let tombstone = Item { version: 2, deleted: true, ..live.clone() };
    read_model.upsert_if_newer(&tombstone).await.unwrap();
    database.forget_hot_items();
    database.remember_read(&live, epoch);

    assert_eq!(read_model.get(live.id).await.unwrap(), Some(tombstone));
}

/// Review finding 3 on the embedded store: a repair replaces a row that is
/// wrong at the right version, in the table and in the hot cache, and never
/// goes back in time.
#[tokio::test]
async fn a_repair_replaces_a_wrong_row_at_the_same_version_and_the_cached_copy() {
    let dir = DataDir::new();
    let database = Database::open(&dir.0).unwrap();
    let read_model = SqliteReadModel::new(database.clone());
    let right = item_of(&created(ItemId(Uuid::new_v4()), "Pen"));
    let wrong = Item { name: "tampered".into(), ..right.clone() };
    read_model.upsert_if_newer(&wrong).await.unwrap();
    assert_eq!(read_model.get(right.id).await.unwrap(), Some(wrong.clone()), "cached");

    assert_eq!(read_model.upsert_if_newer(&right).await.unwrap(), Upsert::AlreadyNewer);
    assert_eq!(read_model.repair(&right).await.unwrap(), Upsert::Applied);
    assert_eq!(read_model.repair(&right).await.unwrap(), Upsert::AlreadyNewer, "nothing left to repair");
    assert_eq!(read_model.get(right.id).await.unwrap(), Some(right.clone()));
    database.forget_hot_items();
    assert_eq!(read_model.get(right.id).await.unwrap(), Some(right.clone()), "in the table too");

    let newer = Item { version: 2, name: "Pencil".into(), ..right.clone() };
    read_model.upsert_if_newer(&newer).await.unwrap();
    assert_eq!(read_model.repair(&right).await.unwrap(), Upsert::AlreadyNewer);
    assert_eq!(read_model.get(right.id).await.unwrap(), Some(newer));
}

/// Review finding 7, scenario B: one row nobody can decode (a manual edit, a
/// newer binary's event type after a downgrade) is one poison record: it is
/// set aside in the persisted quarantine at once, as the Lambda sets it
/// aside, and every event after it is still projected. Before, no event after it was
/// ever projected.
#[tokio::test]
async fn an_undecodable_row_is_quarantined_and_the_feed_goes_on() {
    use crate::event_source_mapping::{Quarantine, run_change_feed};
    use items_domain::service::ProjectorService;
    let dir = DataDir::new();
    let database = Database::open(&dir.0).unwrap();
    let (events, read_model) = (SqliteEventStore::new(database.clone()), SqliteReadModel::new(database.clone()));
    let poison_item = ItemId(Uuid::new_v4());
    let mut archived = created(poison_item, "archived").to_stored();
    archived.event_type = "ItemArchived".into();
    database
        .writer
        .durable(move |connection| {
            connection
                .execute(
                    "INSERT INTO events (stream_id, version, stored) VALUES (?1, 1, ?2)",
                    params![archived.stream_id, serde_json::to_string(&archived).unwrap()],
                )
                .map_err(unavailable)?;
            Ok(())
        })
        .await
        .unwrap();
    let good = created(ItemId(Uuid::new_v4()), "after the poison");
    events.append(0, std::slice::from_ref(&good)).await.unwrap();

    let projector = Arc::new(ProjectorService::new(Arc::new(read_model.clone()), Arc::new(events.clone())));
    let feed = tokio::spawn(run_change_feed(Arc::new(events.clone()), projector, 100));
    let mut waited = 0;
    while read_model.get(good.item_id).await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(waited < 300, "the event after the poison was never projected");
    }
    feed.abort();
    let _ = feed.await;
    let quarantined = events.quarantined().await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!((quarantined[0].sequence.as_str(), quarantined[0].stream_id.clone()), ("1", poison_item.stream_id()));
    assert!(quarantined[0].reason.contains("ItemArchived"), "{}", quarantined[0].reason);
    assert_eq!(read_model.get(poison_item).await.unwrap(), None, "nothing was made up for it");
    drop((events, read_model, database));

    // Persisted: a restart still lists it.
    let database = Database::open(&dir.0).unwrap();
    let (events, read_model) = (SqliteEventStore::new(database.clone()), SqliteReadModel::new(database.clone()));
    assert_eq!(events.quarantined().await.unwrap().len(), 1);

    // A redrive while the row still cannot be read keeps the record.
    let outcome = crate::event_source_mapping::redrive(&events, &events, &read_model).await.unwrap();
    assert_eq!((outcome.items, outcome.released, outcome.kept.len()), (0, 0, 1));
    assert!(outcome.kept[0].1.contains("ItemArchived"), "{}", outcome.kept[0].1);

    // Once it can (here: the row put right), the item is projected from its
    // stream and the record released.
    let readable = created(poison_item, "archived").to_stored();
    database
        .writer
        .durable(move |connection| {
            connection
                .execute(
                    "UPDATE events SET stored = ?1 WHERE sequence = 1",
                    [serde_json::to_string(&readable).unwrap()],
                )
                .map_err(unavailable)?;
            Ok(())
        })
        .await
        .unwrap();
    let outcome = crate::event_source_mapping::redrive(&events, &events, &read_model).await.unwrap();
    assert_eq!((outcome.items, outcome.released, outcome.kept.len()), (1, 1, 0));
    assert_eq!(read_model.get(poison_item).await.unwrap().map(|item| item.name), Some("archived".into()));
    assert_eq!(events.quarantined().await.unwrap(), vec![]);
}

/// Review finding 16: expired idempotency records are removed (DynamoDB's
/// TTL does it in AWS): each keyed write takes out up to two, and opening
/// the database takes out the rest. Before, the table grew by one row per
/// keyed request for good.
#[tokio::test]
async fn expired_idempotency_records_do_not_pile_up() {
    let dir = DataDir::new();
    let start = at("2026-01-02T03:04:05.678Z");
    let rows = |database: &Arc<Database>| {
        let connection = open_reader(&database.path).unwrap();
        connection.query_row("SELECT count(*) FROM idempotency", [], |row| row.get::<_, u64>(0)).unwrap()
    };
    {
        let database = Database::open(&dir.0).unwrap();
        let events = SqliteEventStore::new(database.clone());
        for n in 0..2_000 {
            // One keyed request a second, each record live for one second.
            let now = start + chrono::TimeDelta::seconds(n);
            let event = created(ItemId(Uuid::new_v4()), "Pen");
            let record = IdempotencyRecord {
                subject: "sub-1".into(),
                key: IdempotencyKey::parse(&format!("key-{n}")).unwrap(),
                name: "Pen".into(),
                timestamp: "N/A".into(),
                item: item_of(&event),
                expires_at: now + chrono::TimeDelta::seconds(1),
                change: None,
                description: None,
            };
            events.append_idempotent(&record, 0, &[event], now).await.unwrap();
        }
        assert!(rows(&database) <= 2, "{} rows", rows(&database));
        assert_eq!(database.head(), 2_000, "the events stay");
    }
    // Written long ago: every record has expired by the next open.
    let database = Database::open(&dir.0).unwrap();
    assert_eq!(rows(&database), 0);
}

/// Issue 31: the rebuild's scan reads in item order and ends each page at an
/// item's end, so a page folds without reading streams again; an item whose
/// stream alone fills a page is split (the replay folds it from its stream).
#[tokio::test]
async fn scan_pages_end_at_an_items_end_and_segments_split_the_id_space() {
    use items_domain::event::ItemUpdated;
    use items_domain::ports::{EventLogScan, PageKey};
    let dir = DataDir::new();
    let database = Database::open(&dir.0).unwrap();
    let store = SqliteEventStore::new(database.clone());
    let stream = |id: ItemId, length: u64| -> Vec<Event> {
        (1..=length)
            .map(|version| {
                let mut event = created(id, "first");
                event.version = version;
                if version > 1 {
                    event.payload = EventPayload::ItemUpdated(ItemUpdated {
                        name: Some(format!("v{version}")),
                        timestamp: None,
                        description: None,
                    });
                }
                event
            })
            .collect()
    };
    // 300 items of 7 events (no page of 1,000 ends at a multiple of 7), one of 1,500.
    let mut lengths: Vec<(ItemId, u64)> = (0..300).map(|_| (ItemId(Uuid::new_v4()), 7)).collect();
    let long = ItemId(Uuid::new_v4());
    lengths.push((long, 1_500));
    for &(id, length) in &lengths {
        store.append(0, &stream(id, length)).await.unwrap();
    }

    for total in [1u32, 3] {
        let mut seen: Vec<(ItemId, u64)> = Vec::new();
        for segment in 0..total {
            let mut after: Option<PageKey> = None;
            loop {
                let page = store.scan_page(segment, total, after.as_ref()).await.unwrap();
                let (_, continued) = items_domain::replay::fold_page(&page.events);
                assert!(
                    continued.iter().all(|id| *id == long),
                    "pages hold whole streams, but for the one longer than a page: {continued:?}"
                );
                seen.extend(page.events.iter().map(|e| (e.item_id, e.version)));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        let mut want: Vec<(ItemId, u64)> =
            lengths.iter().flat_map(|&(id, length)| (1..=length).map(move |v| (id, v))).collect();
        want.sort();
        assert_eq!(seen, want, "{total} segments: every event once, in item order across the segments");
    }
}

/// Security review finding 8: the database and its WAL are the owner's only.
#[tokio::test]
async fn the_database_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DataDir::new();
    let database = Database::open(&dir.0).unwrap();
    SqliteEventStore::new(database.clone()).append(0, &[created(ItemId(Uuid::new_v4()), "private")]).await.unwrap();
    for name in [DATABASE_FILE.to_owned(), format!("{DATABASE_FILE}-wal")] {
        let mode = std::fs::metadata(dir.0.join(&name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

/// `GET /items?createdBy` walks the index, never the table: SQLite's own
/// plan for both queries, on a database with rows in it.
#[tokio::test]
async fn a_creators_listing_reads_the_index_not_the_table() {
    let dir = DataDir::new();
    let database = Database::open(&dir.0).unwrap();
    let read_model = SqliteReadModel::new(database.clone());
    for n in 0..50 {
        read_model.upsert_if_newer(&item_of(&created(ItemId(Uuid::new_v4()), &format!("item {n}")))).await.unwrap();
    }
    drop((read_model, database));
    let connection = Connection::open(dir.0.join(DATABASE_FILE)).unwrap();
    connection.execute_batch("ANALYZE").unwrap();
    for sql in [super::read_model::BY_CREATOR_FIRST, super::read_model::BY_CREATOR_AFTER] {
        let mut plan = connection.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let steps: Vec<String> = plan
            .query_map(
                &[&"sub-1" as &dyn rusqlite::ToSql, &10, &"2026-01-02T03:04:05.678Z", &Uuid::nil().to_string()]
                    [..plan.parameter_count()],
                |row| row.get(3),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(steps.iter().any(|step| step.contains("USING INDEX items_by_creator")), "{sql}: {steps:?}");
        assert!(!steps.iter().any(|step| step.contains("TEMP B-TREE")), "no sort: {steps:?}");
    }
}

/// Security review N9: a database another release (or a hand) left readable
/// by others is made private when opened, with its WAL.
#[cfg(unix)]
#[test]
fn an_existing_database_readable_by_others_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DataDir::new();
    drop(Database::open(&dir.0).unwrap());
    let file = dir.0.join(super::DATABASE_FILE);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let database = Database::open(&dir.0).unwrap();
    for path in [file.clone(), PathBuf::from(format!("{}-wal", file.display()))] {
        if let Ok(metadata) = std::fs::metadata(&path) {
            assert_eq!(metadata.permissions().mode() & 0o077, 0, "{}", path.display());
        }
    }
    drop(database);
}
