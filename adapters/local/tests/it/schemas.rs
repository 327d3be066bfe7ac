//! Event schemas on the embedded store: the database main wrote on
//! 2026-12-08 opens and reads as it did, and a mixed-version deploy through
//! the SQLite change feed.

use std::sync::Arc;

use items_domain::command::{Actor, UpdateItem};
use items_domain::ports::{EventStore, ReadModel};
use items_domain::service::ChangeItemService;
use items_domain::testing::golden;
use items_local::event_source_mapping::drain_change_feed;
use items_local::sqlite::{Database, SqliteEventStore, SqliteReadModel};
use items_testkit::upgrade::{self, UpgradeBackend};

fn fresh_dir(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", uuid::Uuid::new_v4().simple()))
}

/// main's database, opened by this code: its log folds to its read model,
/// its rows read as it wrote them, and its items take a description, which
/// its change feed projects.
#[tokio::test]
async fn the_database_main_wrote_reads_as_it_did_and_takes_descriptions() {
    let dir = fresh_dir("golden-sqlite");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(golden::dir().join(golden::MAIN_2026_12_08).join("items.sqlite3"), dir.join("items.sqlite3"))
        .unwrap();
    let database = Database::open(&dir).expect("main's database opens");
    let (events, read_model) = (Arc::new(SqliteEventStore::new(database.clone())), SqliteReadModel::new(database));
    let expected = golden::read_model(golden::MAIN_2026_12_08);
    let mut streams = Vec::new();
    for (id, row) in &expected {
        assert_eq!(read_model.get(*id).await.unwrap().as_ref(), Some(row), "main's row reads as it wrote it");
        streams.extend(events.stream_after(*id, 0, usize::MAX).await.unwrap());
    }
    assert_eq!(golden::fold(streams), expected);

    let (id, live) = expected.iter().find(|(_, row)| !row.deleted).expect("a live item");
    let clock = Arc::new(items_aws::system::SystemClock);
    let changes = ChangeItemService::new(events.clone(), clock, Arc::new(items_aws::system::RandomIds));
    let owner = Actor { subject: live.created_by.clone(), is_admin: false };
    let describe = UpdateItem { description: Some(Some("Now with one".into())), ..Default::default() };
    let changed = changes.update(&owner, *id, describe, Some(live.version), None).await.unwrap();
    let projector =
        Arc::new(items_domain::service::ProjectorService::new(Arc::new(read_model.clone()), events.clone()));
    drain_change_feed(events, projector, 100).await.unwrap();
    let row = read_model.get(*id).await.unwrap().unwrap();
    assert_eq!(row, changed.item);
    assert_eq!(
        (row.description.as_deref(), row.version, &row.name),
        (Some("Now with one"), live.version + 1, &live.name)
    );
}

/// A mixed-version deploy through the SQLite change feed (the local event
/// source mapping, with the handler's code and the persisted quarantine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_holds_back_only_the_item_of_a_newer_record_until_the_upgrade() {
    let database = Database::open(&fresh_dir("upgrade-sqlite")).expect("a fresh database opens");
    let store = Arc::new(SqliteEventStore::new(database.clone()));
    let append_raw: upgrade::AppendRaw = {
        let path = database.path().to_owned();
        Arc::new(move |stored| {
            let path = path.clone();
            Box::pin(async move {
                // As another release's binary wrote the row: its own connection.
                let (stream_id, version) = (stored.stream_id.clone(), stored.version);
                let row = serde_json::to_string(&stored.recorded(&chrono::Utc::now())).unwrap();
                let connection = rusqlite::Connection::open(&path).unwrap();
                connection.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                connection
                    .execute(
                        "INSERT INTO events (stream_id, version, stored) VALUES (?1, ?2, ?3)",
                        rusqlite::params![stream_id, version, row],
                    )
                    .unwrap();
            })
        })
    };
    let deliver: upgrade::Deliver = {
        let store = store.clone();
        Arc::new(move |projector, _written, _settled| {
            let store = store.clone();
            Box::pin(async move {
                let drained = drain_change_feed(store, projector, 100);
                tokio::time::timeout(upgrade::SETTLE, drained).await.expect("the feed catches up").unwrap();
            })
        })
    };
    upgrade::an_upgrade_applies_what_the_old_projector_held_back(UpgradeBackend {
        events: store.clone(),
        read_model: Arc::new(SqliteReadModel::new(database)),
        quarantine: store,
        append_raw,
        deliver,
    })
    .await;
}
