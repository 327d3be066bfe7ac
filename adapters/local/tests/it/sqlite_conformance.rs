//! The ports' conformance suite on the durable embedded backend (SQLite), each
//! case on a fresh database under cargo's target tmp dir.

use std::sync::Arc;

use items_local::sqlite::{Database, DiskFold, SqliteEventStore, SqliteReadModel};
use items_testkit::conformance::Backend;
use items_testkit::conformance_suite;

fn sqlite() -> Backend {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sqlite-conformance-{}", uuid::Uuid::new_v4().simple()));
    let database = Database::open(&dir).expect("a fresh database opens");
    let store = Arc::new(SqliteEventStore::new(database.clone()));
    Backend { events: store.clone(), scan: store, read_model: Arc::new(SqliteReadModel::new(database)) }
}

// 3,000 items: more than one 1,000-row page.
conformance_suite!(sqlite(), 3000, 2);

/// The event-sourcing guarantees, model-based (items_testkit::model), on SQLite.
struct Sqlite;

impl items_testkit::model::MakeBackend for Sqlite {
    fn make(_: &tokio::runtime::Runtime) -> items_testkit::model::ModelBackend {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sqlite-model-{}", uuid::Uuid::new_v4().simple()));
        let database = Database::open(&dir).expect("a fresh database opens");
        let store = Arc::new(SqliteEventStore::new(database.clone()));
        items_testkit::model::ModelBackend {
            events: store.clone(),
            scan: store.clone(),
            read_model: Arc::new(SqliteReadModel::new(database)),
            ids: Arc::new(items_domain::testing::SequentialIds::default()),
            new_table: None,
            feed: Some(crate::change_feed(store)),
        }
    }
}

#[test]
fn the_read_model_is_the_fold_of_the_log_under_every_interleaving() {
    items_testkit::model::run::<Sqlite>(128, 40, 0x17e5_2026);
}

#[tokio::test]
async fn the_disk_fold_keeps_the_newest_state_and_hands_each_back_once() {
    let fold = Arc::new(DiskFold::create(std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))).unwrap());
    let path = fold.path().to_owned();
    items_testkit::conformance::a_fold_store_keeps_the_newest_state_and_hands_each_back_once(fold).await;
    assert!(!path.exists(), "the scratch file is removed with the store");
}
