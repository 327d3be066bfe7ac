//! A change (`PATCH /items/{id}`'s service) on the durable SQLite store, for
//! items with short and long histories: with snapshots (the write side folds
//! from the latest one and the events after it) the time should not grow
//! with the history; without them (every load folds the whole stream) it
//! does. Review finding 17.
//!
//! `cargo bench -p items-local --bench change_path`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use items_aws::system::{RandomIds, SystemClock};
use items_domain::command::Actor;
use items_domain::command::UpdateItem;
use items_domain::event::{ItemCreated, ItemUpdated};
use items_domain::ports::{EventStore, Snapshot};
use items_domain::projection::{REVISION, fold_stream};
use items_domain::service::ChangeItemService;
use items_domain::{Event, EventPayload, ItemId};
use items_local::sqlite::{Database, SqliteEventStore};

const OWNER: &str = "sub-bench";

/// An item with `length` events, appended in chunks, and the snapshot the
/// write side would have kept for it.
async fn item_with_history(events: &SqliteEventStore, length: u64) -> ItemId {
    let id = ItemId(uuid::Uuid::new_v4());
    let event = |version: u64| Event {
        event_id: uuid::Uuid::new_v4(),
        item_id: id,
        version,
        occurred_at: chrono::Utc::now(),
        subject: OWNER.into(),
        payload: if version == 1 {
            EventPayload::ItemCreated(ItemCreated { name: "Pen".into(), timestamp: "t".into(), description: None })
        } else {
            EventPayload::ItemUpdated(ItemUpdated { name: Some(format!("name {version}")), ..Default::default() })
        },
    };
    let mut version = 0;
    while version < length {
        let chunk: Vec<Event> = (version + 1..=(version + 500).min(length)).map(event).collect();
        events.append(version, &chunk).await.expect("appended");
        version += chunk.len() as u64;
    }
    let item = fold_stream(&events.stream(id).await.expect("read")).expect("folds").expect("an item");
    let kept = (length / 100) * 100;
    if kept > 0 {
        let prefix = events.stream_after(id, 0, kept as usize).await.expect("read");
        let at = fold_stream(&prefix).expect("folds").expect("an item");
        events.save_snapshot(&Snapshot { item: at, revision: REVISION }).await.expect("kept");
    }
    assert_eq!(item.version, length);
    id
}

fn change_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = std::env::temp_dir().join(format!("items-bench-change-{}", uuid::Uuid::new_v4().simple()));
    let database = Database::open(&dir).expect("database");
    let events = Arc::new(SqliteEventStore::new(database));
    let owner = Actor { subject: OWNER.into(), is_admin: false };
    let mut group = c.benchmark_group("change");
    for (snapshots, every) in [("snapshots", 100), ("whole_stream", u64::MAX)] {
        let changes = ChangeItemService::new(events.clone(), Arc::new(SystemClock), Arc::new(RandomIds))
            .with_snapshot_every(every);
        for length in [10, 1_000, 20_000] {
            let id = runtime.block_on(item_with_history(&events, length));
            let mut n = 0u64;
            group.bench_function(BenchmarkId::new(format!("rename_{snapshots}"), length), |b| {
                b.iter(|| {
                    n += 1;
                    let rename = UpdateItem { name: Some(format!("bench {n}")), ..Default::default() };
                    runtime.block_on(changes.update(&owner, id, rename, None, None)).expect("renamed");
                    black_box(n)
                })
            });
        }
    }
    group.finish();
    drop(events);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, change_path);
criterion_main!(benches);
