//! Changes, history and the projector's catch-up, given / when / then, on the
//! in-memory ports (the adapters run the same behaviours in the conformance suite).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;
use crate::command::Actor;
use crate::command::CreateItem;
use crate::command::UpdateItem;
use crate::decide::Rejection;
use crate::event::ItemUpdated;
use crate::event::{Event, EventPayload, ItemId};
use crate::idempotency::IdempotencyKey;
use crate::idempotency::IdempotencyRecord;
use crate::item::Item;
use crate::memory::{InMemoryEventStore, InMemoryReadModel};
use crate::ports::{AppendError, CursorCodec, EventStore, ReadModel, StoreError};
use crate::projection;
use crate::projection::{REVISION, fold_stream};
use crate::testing::{FixedClock, SequentialIds};

const OWNER: &str = "owner-sub";

fn owner() -> Actor {
    Actor { subject: OWNER.into(), is_admin: false }
}

fn stranger() -> Actor {
    Actor { subject: "stranger-sub".into(), is_admin: false }
}

fn admin() -> Actor {
    Actor { subject: "admin-sub".into(), is_admin: true }
}

fn rename(name: &str) -> UpdateItem {
    UpdateItem { name: Some(name.into()), timestamp: None, description: None }
}

struct World {
    events: Arc<InMemoryEventStore>,
    ids: Arc<SequentialIds>,
    changes: ChangeItemService,
    id: ItemId,
}

/// Given an item "Pen" created by the owner.
async fn given_an_item() -> World {
    let events = Arc::new(InMemoryEventStore::default());
    let ids = Arc::new(SequentialIds::default());
    let create = CreateItemService::new(events.clone(), Arc::new(FixedClock::default()), ids.clone());
    let item = create
        .create(OWNER, CreateItem { name: "Pen".into(), timestamp: "t".into(), description: None })
        .await
        .unwrap();
    let changes = ChangeItemService::new(events.clone(), Arc::new(FixedClock::default()), ids.clone());
    World { events, ids, changes, id: item.id }
}

impl World {
    async fn stream(&self) -> Vec<Event> {
        self.events.stream(self.id).await.unwrap()
    }
}

#[tokio::test]
async fn given_an_item_when_the_owner_renames_it_then_the_answer_comes_from_the_stream() {
    let world = given_an_item().await;
    let changed = world.changes.update(&owner(), world.id, rename("Ink"), None, None).await.unwrap();
    assert_eq!((changed.item.name.as_str(), changed.item.version, changed.repeated), ("Ink", 2, false));
    assert_eq!(changed.item.created_by, OWNER, "ownership does not move");
    let stream = world.stream().await;
    assert_eq!(stream.len(), 2);
    assert_eq!(
        stream[1].payload,
        EventPayload::ItemUpdated(ItemUpdated { name: Some("Ink".into()), timestamp: None, description: None })
    );
    assert_eq!(stream[1].subject, OWNER);
}

#[tokio::test]
async fn given_an_item_when_updated_to_what_it_is_then_nothing_is_appended() {
    let world = given_an_item().await;
    let update = UpdateItem { name: Some("Pen".into()), timestamp: Some("t".into()), description: None };
    let changed = world.changes.update(&owner(), world.id, update, None, None).await.unwrap();
    assert_eq!(changed.item.version, 1);
    assert_eq!(world.stream().await.len(), 1);
}

#[tokio::test]
async fn given_an_item_when_a_stranger_changes_it_then_refused_and_an_admin_may() {
    let world = given_an_item().await;
    let refused = world.changes.delete(&stranger(), world.id, None, None).await;
    assert_eq!(refused, Err(ChangeError::Rejected(Rejection::NotOwner)));
    let refused = world.changes.update(&stranger(), world.id, rename("Mine"), None, None).await;
    assert_eq!(refused, Err(ChangeError::Rejected(Rejection::NotOwner)));
    assert_eq!(world.stream().await.len(), 1);

    let renamed = world.changes.update(&admin(), world.id, rename("Checked"), None, None).await.unwrap();
    assert_eq!(renamed.item.version, 2);
    assert_eq!(world.stream().await[1].subject, "admin-sub", "the history names who changed it");
}

#[tokio::test]
async fn given_a_stale_if_match_then_version_mismatch_and_nothing_appended() {
    let world = given_an_item().await;
    world.changes.update(&owner(), world.id, rename("Ink"), Some(1), None).await.unwrap();
    let stale = world.changes.update(&owner(), world.id, rename("Nib"), Some(1), None).await;
    assert_eq!(stale, Err(ChangeError::Rejected(Rejection::VersionMismatch { current: 2 })));
    let stale = world.changes.delete(&owner(), world.id, Some(1), None).await;
    assert_eq!(stale, Err(ChangeError::Rejected(Rejection::VersionMismatch { current: 2 })));
    assert_eq!(world.stream().await.len(), 2);
}

#[tokio::test]
async fn given_a_deleted_item_then_changes_find_nothing_and_unknown_ids_neither() {
    let world = given_an_item().await;
    let deleted = world.changes.delete(&owner(), world.id, None, None).await.unwrap();
    assert!(deleted.item.deleted);
    assert_eq!(deleted.item.version, 2);
    for result in [
        world.changes.delete(&owner(), world.id, None, None).await,
        world.changes.update(&admin(), world.id, rename("Back"), None, None).await,
        world.changes.delete(&owner(), ItemId(uuid::Uuid::from_u128(999)), None, None).await,
    ] {
        assert_eq!(result, Err(ChangeError::Rejected(Rejection::NotFound)));
    }
    assert_eq!(world.stream().await.len(), 2);
}

/// An event store where another writer appends right before our append,
/// counting its stream reads.
struct Racing {
    inner: Arc<InMemoryEventStore>,
    rival: Mutex<Option<Event>>,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl EventStore for Racing {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        let rival = self.rival.lock().unwrap().take();
        if let Some(rival) = rival {
            self.inner.append(rival.version - 1, &[rival]).await?;
        }
        self.inner.append(expected_version, events).await
    }
    async fn stream_after(&self, item_id: ItemId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.stream_after(item_id, after, limit).await
    }

    async fn snapshot(&self, item_id: ItemId) -> Result<Option<crate::ports::Snapshot>, StoreError> {
        self.inner.snapshot(item_id).await
    }

    async fn save_snapshot(&self, snapshot: &crate::ports::Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
        events: &[Event],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AppendError> {
        self.inner.append_idempotent(record, expected_version, events, now).await
    }
    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(subject, key).await
    }
}

#[tokio::test]
async fn given_a_concurrent_change_then_exactly_one_wins_and_the_other_is_told() {
    for if_match in [None, Some(1)] {
        let world = given_an_item().await;
        let rival = Event {
            event_id: uuid::Uuid::from_u128(500),
            item_id: world.id,
            version: 2,
            occurred_at: FixedClock::default().0,
            subject: "admin-sub".into(),
            payload: EventPayload::ItemUpdated(ItemUpdated {
                name: Some("Theirs".into()),
                timestamp: None,
                description: None,
            }),
        };
        let racing =
            Arc::new(Racing { inner: world.events.clone(), rival: Mutex::new(Some(rival)), reads: Default::default() });
        let changes =
            ChangeItemService::new(racing, Arc::new(FixedClock::default()), Arc::new(SequentialIds::default()));
        let lost = changes.update(&owner(), world.id, rename("Mine"), if_match, None).await;
        let expected = match if_match {
            None => ChangeError::Conflict { current: 2 },
            Some(_) => ChangeError::Rejected(Rejection::VersionMismatch { current: 2 }),
        };
        assert_eq!(lost, Err(expected));
        let stream = world.stream().await;
        assert_eq!(stream.len(), 2, "the winner's event only: no lost update");
        assert_eq!(projection::fold(&stream).unwrap().name, "Theirs");
    }
}

#[tokio::test]
async fn given_an_idempotency_key_then_a_retried_change_is_answered_once() {
    let world = given_an_item().await;
    let key = IdempotencyKey::parse("rename-1").unwrap();
    let first = world.changes.update(&owner(), world.id, rename("Ink"), None, Some(&key)).await.unwrap();
    let retry = world.changes.update(&owner(), world.id, rename("Ink"), None, Some(&key)).await.unwrap();
    assert_eq!((retry.item.clone(), retry.repeated), (first.item, true));
    assert_eq!(world.stream().await.len(), 2);

    let other = world.changes.update(&owner(), world.id, rename("Nib"), None, Some(&key)).await;
    assert_eq!(other, Err(ChangeError::KeyReused));

    let delete_key = IdempotencyKey::parse("delete-1").unwrap();
    world.changes.delete(&owner(), world.id, None, Some(&delete_key)).await.unwrap();
    let retried = world.changes.delete(&owner(), world.id, None, Some(&delete_key)).await.unwrap();
    assert!(retried.repeated && retried.item.deleted, "a retried delete succeeds again, not 404");
    assert_eq!(world.stream().await.len(), 3);
}

/// The write gate (`WRITE_EVENT_SCHEMAS`): while writers still write set 1,
/// a change that needs schema 2 is refused and stores nothing; one that
/// needs nothing newer goes through, stored at schema 1.
#[tokio::test]
async fn given_writers_of_set_1_then_a_description_is_refused_and_nothing_is_stored() {
    let world = given_an_item().await;
    let clock = Arc::new(FixedClock::default());
    let old = ChangeItemService::new(world.events.clone(), clock.clone(), world.ids.clone())
        .with_writes(crate::event::EventSchemas::SET_1);
    let describe = UpdateItem { description: Some(Some("Blue".into())), ..Default::default() };
    let refused = old.update(&owner(), world.id, describe.clone(), None, None).await;
    assert_eq!(refused, Err(ChangeError::NotWritableYet { field: "description", set: 1 }));
    assert_eq!(world.stream().await.len(), 1, "nothing stored");
    let renamed = old.update(&owner(), world.id, rename("Ink"), None, None).await.unwrap();
    assert_eq!(renamed.item.version, 2);
    assert_eq!(world.stream().await[1].to_stored().schema, 1);

    let create = CreateItemService::new(world.events.clone(), clock, world.ids.clone())
        .with_writes(crate::event::EventSchemas::SET_1);
    let described = CreateItem { name: "Cup".into(), timestamp: "t".into(), description: Some("Blue".into()) };
    assert!(matches!(
        create.create(OWNER, described).await,
        Err(CreateError::NotWritableYet { field: "description", set: 1 })
    ));
    // Once open, the same change is stored, and a retried key compares the description too.
    let changed = world.changes.update(&owner(), world.id, describe, None, None).await.unwrap();
    assert_eq!(changed.item.description.as_deref(), Some("Blue"));
    assert_eq!(world.stream().await[2].to_stored().schema, 2);
}

#[tokio::test]
async fn given_a_key_then_a_retry_with_another_description_is_another_request() {
    let world = given_an_item().await;
    let key = IdempotencyKey::parse("describe-1").unwrap();
    let blue = UpdateItem { description: Some(Some("Blue".into())), ..Default::default() };
    let red = UpdateItem { description: Some(Some("Red".into())), ..Default::default() };
    world.changes.update(&owner(), world.id, blue.clone(), None, Some(&key)).await.unwrap();
    assert!(world.changes.update(&owner(), world.id, blue, None, Some(&key)).await.unwrap().repeated);
    assert_eq!(world.changes.update(&owner(), world.id, red, None, Some(&key)).await, Err(ChangeError::KeyReused));

    let create = CreateItemService::new(world.events.clone(), Arc::new(FixedClock::default()), world.ids.clone());
    let key = IdempotencyKey::parse("create-1").unwrap();
    let cup = |description: &str| CreateItem {
        name: "Cup".into(),
        timestamp: "t".into(),
        description: Some(description.into()),
    };
    create.create_idempotent(OWNER, cup("Blue"), &key).await.unwrap();
    assert!(matches!(create.create_idempotent(OWNER, cup("Blue"), &key).await, Ok(Created::Repeated(_))));
    assert!(matches!(create.create_idempotent(OWNER, cup("Red"), &key).await, Err(CreateError::KeyReused)));
}

#[tokio::test]
async fn the_history_lists_every_change_and_outlives_the_item() {
    let world = given_an_item().await;
    world.changes.update(&owner(), world.id, rename("Ink"), None, None).await.unwrap();
    world.changes.delete(&admin(), world.id, None, None).await.unwrap();
    let history = HistoryService::new(world.events.clone());
    let page = history.history(world.id, None, 0).await.unwrap().unwrap();
    assert_eq!(page.next, None);
    let entries = page.entries;
    let summary: Vec<(&str, u64, &str)> =
        entries.iter().map(|e| (e.event_type, e.version, e.subject.as_str())).collect();
    assert_eq!(summary, [("ItemCreated", 1, OWNER), ("ItemUpdated", 2, OWNER), ("ItemDeleted", 3, "admin-sub")]);
    assert_eq!(entries[1].changes, serde_json::json!({"name": "Ink"}));
    assert_eq!(
        serde_json::to_value(&entries[2]).unwrap().as_object().unwrap().keys().collect::<Vec<_>>(),
        ["changes", "eventId", "occurredAt", "subject", "type", "version"]
    );
    assert_eq!(history.history(ItemId(uuid::Uuid::from_u128(999)), None, 0).await.unwrap(), None);
}

/// Review finding 17: a long history comes in pages, with a limit or within
/// the body budget, and following them yields every event once, in order.
/// Before, it was one body, over Lambda's 6 MB for a busy item.
#[tokio::test]
async fn a_long_history_comes_in_pages_that_together_hold_every_event() {
    let world = given_an_item().await;
    for n in 0..2_100 {
        world.changes.update(&owner(), world.id, rename(&format!("name {n}")), None, None).await.unwrap();
    }
    let follow = |history: HistoryService, limit: Option<u32>| async move {
        let (mut versions, mut pages, mut after) = (Vec::new(), 0, 0);
        loop {
            let page = history.history(world.id, limit, after).await.unwrap().unwrap();
            pages += 1;
            versions.extend(page.entries.iter().map(|entry| entry.version));
            match page.next {
                Some(next) => after = next,
                None => return (versions, pages),
            }
        }
    };
    let every: Vec<u64> = (1..=2_101).collect();
    let (versions, pages) = follow(HistoryService::new(world.events.clone()), Some(1000)).await;
    assert_eq!((versions.as_slice(), pages), (every.as_slice(), 3));
    let (versions, pages) = follow(HistoryService::new(world.events.clone()), None).await;
    assert_eq!((versions.as_slice(), pages), (every.as_slice(), 1), "unbounded: one page, over several reads");
    let budget = HistoryService::new(world.events.clone())
        .with_body_budget(BodyBudget { max_bytes: 64 * 1024, ..BodyBudget::UNBOUNDED });
    let (versions, pages) = follow(budget, None).await;
    assert_eq!(versions, every);
    assert!(pages > 3, "{pages} pages of at most 64 KiB");
}

/// Cursors that are the page keys themselves (sealing is tested elsewhere).
struct KeyCursors;

impl CursorCodec for KeyCursors {
    fn seal(&self, key: &crate::ports::PageKey) -> String {
        key.0.clone()
    }
    fn open(&self, cursor: &str) -> Result<crate::ports::PageKey, crate::ports::InvalidCursor> {
        Ok(crate::ports::PageKey(cursor.to_owned()))
    }
}

/// A tiny deterministic shuffle (no rand in the domain).
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    for i in (1..out.len()).rev() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.swap(i, (state >> 33) as usize % (i + 1));
    }
    out
}

#[tokio::test]
async fn given_shuffled_and_duplicated_deliveries_then_the_read_model_ends_as_the_log_folds() {
    let world = given_an_item().await;
    let kept = {
        let create = CreateItemService::new(world.events.clone(), Arc::new(FixedClock::default()), world.ids.clone());
        create
            .create(OWNER, CreateItem { name: "Kept".into(), timestamp: "t".into(), description: None })
            .await
            .unwrap()
    };
    world.changes.update(&owner(), world.id, rename("Ink"), None, None).await.unwrap();
    world
        .changes
        .update(
            &owner(),
            world.id,
            UpdateItem { name: None, timestamp: Some("later".into()), description: None },
            None,
            None,
        )
        .await
        .unwrap();
    world.changes.update(&owner(), kept.id, rename("Kept too"), None, None).await.unwrap();
    world.changes.delete(&owner(), world.id, None, None).await.unwrap();
    let mut log = world.stream().await;
    log.extend(world.events.stream(kept.id).await.unwrap());
    let duplicated: Vec<Event> = log.iter().chain(log.iter()).cloned().collect();

    for seed in 0..50 {
        let read_model = Arc::new(InMemoryReadModel::default());
        let projector = ProjectorService::new(read_model.clone(), world.events.clone());
        let outcome = projector.project_batch(&shuffled(&duplicated, seed)).await;
        assert_eq!(outcome.failed, None, "seed {seed}");
        let deleted = read_model.get(world.id).await.unwrap().unwrap();
        assert!(deleted.deleted && deleted.version == 4, "seed {seed}: {deleted:?}");
        let survivor = read_model.get(kept.id).await.unwrap().unwrap();
        assert_eq!((survivor.name.as_str(), survivor.version), ("Kept too", 2), "seed {seed}");
        let queries = QueryService::new(read_model, Arc::new(KeyCursors), Arc::new(FixedClock::default()));
        let listed: Vec<ItemId> =
            queries.list(Selection::All, None, None, None).await.unwrap().items.iter().map(|i| i.id).collect();
        assert_eq!(listed, [kept.id], "seed {seed}: deleted items are never listed");
        assert_eq!(queries.get(world.id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn when_the_log_is_down_an_event_out_of_order_fails_instead_of_guessing() {
    let world = given_an_item().await;
    world.changes.update(&owner(), world.id, rename("Ink"), None, None).await.unwrap();
    world.changes.update(&owner(), world.id, rename("Nib"), None, None).await.unwrap();
    let stream = world.stream().await;
    let read_model = Arc::new(InMemoryReadModel::default());
    let projector = ProjectorService::new(read_model.clone(), world.events.clone());
    world.events.set_available(false);
    let outcome = projector.project_batch(&[stream[0].clone(), stream[2].clone(), stream[1].clone()]).await;
    assert_eq!(outcome.applied, 1);
    assert!(matches!(outcome.failed, Some((1, StoreError::Unavailable(_)))), "{outcome:?}");
    assert_eq!(read_model.get(world.id).await.unwrap().unwrap().name, "Pen", "nothing guessed");
}

#[tokio::test]
async fn given_a_keyed_change_that_changed_nothing_when_retried_after_another_change_then_it_is_only_repeated() {
    // Review finding 9: A's no-op PATCH with key K is answered, its response
    // lost; B renames the item; A's retry of K must not rename it back.
    let world = given_an_item().await;
    let key = IdempotencyKey::parse("k-noop").unwrap();
    let same = UpdateItem { name: Some("Pen".into()), timestamp: None, description: None };
    let first = world.changes.update(&owner(), world.id, same.clone(), None, Some(&key)).await.unwrap();
    assert_eq!((first.item.version, first.repeated), (1, false));
    world.changes.update(&admin(), world.id, rename("Ink"), None, None).await.unwrap();

    let retry = world.changes.update(&owner(), world.id, same, None, Some(&key)).await.unwrap();
    assert_eq!(retry, Changed { item: first.item, repeated: true });
    let stream = world.stream().await;
    assert_eq!(stream.len(), 2, "the retry appended nothing");
    assert_eq!(fold_stream(&stream).unwrap().unwrap().name, "Ink");
}

/// Review finding 17, the write side: a change of a long-lived item folds
/// from its latest snapshot and the events after it, not the whole stream.
/// The snapshots are kept as versions pass multiples of `SNAPSHOT_EVERY`;
/// one folded by other projection code (another revision) is passed over.
#[tokio::test]
async fn a_change_of_a_long_stream_folds_from_its_snapshot() {
    use crate::ports::Snapshot;
    let world = given_an_item().await;
    for n in 0..249 {
        world.changes.update(&owner(), world.id, rename(&format!("name {n}")), None, None).await.unwrap();
    }
    let kept = world.events.snapshot(world.id).await.unwrap().expect("a snapshot");
    assert_eq!((kept.item.version, kept.item.name.as_str(), kept.revision), (200, "name 198", REVISION));

    // Marked, to see that the next change starts from it (a real snapshot
    // is the fold of the log, so a change never tells the difference).
    let marked = Snapshot { item: Item { timestamp: "from the snapshot".into(), ..kept.item.clone() }, ..kept };
    world
        .events
        .save_snapshot(&Snapshot { item: Item { version: 201, ..marked.item.clone() }, ..marked })
        .await
        .unwrap();
    let stale = world.events.stream(world.id).await.unwrap().len();
    assert_eq!(stale, 250);
    let changed = world.changes.update(&owner(), world.id, rename("Ink"), None, None).await.unwrap();
    assert_eq!((changed.item.version, changed.item.timestamp.as_str()), (251, "from the snapshot"));

    let foreign = Snapshot {
        item: Item { version: 251, timestamp: "another revision".into(), ..changed.item.clone() },
        revision: REVISION + 1,
    };
    world.events.save_snapshot(&foreign).await.unwrap();
    let changed = world.changes.update(&owner(), world.id, rename("Nib"), None, None).await.unwrap();
    assert_eq!((changed.item.version, changed.item.timestamp.as_str()), (252, "t"), "folded from the log");
}

/// An item's stream with one event per version at the given times: created
/// "Pen", renamed "Ink", renamed "Nib", deleted.
async fn given_a_stream_at(times: [&str; 4]) -> (HistoryService, ItemId) {
    let events = Arc::new(InMemoryEventStore::default());
    let id = ItemId(uuid::Uuid::from_u128(7));
    let payloads = [
        EventPayload::ItemCreated(crate::event::ItemCreated {
            name: "Pen".into(),
            timestamp: "t".into(),
            description: None,
        }),
        EventPayload::ItemUpdated(ItemUpdated { name: Some("Ink".into()), timestamp: None, description: None }),
        EventPayload::ItemUpdated(ItemUpdated { name: Some("Nib".into()), timestamp: None, description: None }),
        EventPayload::ItemDeleted,
    ];
    for (version, (payload, time)) in (1..).zip(payloads.into_iter().zip(times)) {
        let event = Event {
            event_id: uuid::Uuid::from_u128(100 + u128::from(version)),
            item_id: id,
            version,
            occurred_at: crate::testing::at(time),
            subject: OWNER.into(),
            payload,
        };
        events.append(version - 1, &[event]).await.unwrap();
    }
    (HistoryService::new(events), id)
}

const TIMES: [&str; 4] =
    ["2026-01-01T10:00:00.000Z", "2026-01-01T11:00:00.000Z", "2026-01-01T12:00:00.000Z", "2026-01-01T13:00:00.000Z"];

#[tokio::test]
async fn an_item_at_a_version_is_its_stream_folded_to_that_version_also_after_its_deletion() {
    let (history, id) = given_a_stream_at(TIMES).await;
    let name_at = async |version| {
        history
            .item_at(id, PointInTime::Version(version), None)
            .await
            .unwrap()
            .map(|item| (item.name, item.version, item.deleted))
    };
    assert_eq!(name_at(1).await, Some(("Pen".into(), 1, false)));
    assert_eq!(name_at(2).await, Some(("Ink".into(), 2, false)));
    assert_eq!(name_at(3).await, Some(("Nib".into(), 3, false)));
    assert_eq!(name_at(4).await, Some(("Nib".into(), 4, true)), "the deletion is a tombstone");
    assert_eq!(name_at(5).await, None, "no such version");
    assert_eq!(name_at(0).await, None, "versions start at 1");
    let unknown = ItemId(uuid::Uuid::from_u128(8));
    assert_eq!(history.item_at(unknown, PointInTime::Version(1), None).await.unwrap(), None);
}

#[tokio::test]
async fn an_item_at_a_time_is_its_stream_up_to_the_first_event_after_it() {
    use crate::testing::at;
    let (history, id) = given_a_stream_at(TIMES).await;
    let version_at =
        async |time| history.item_at(id, PointInTime::Time(at(time)), None).await.unwrap().map(|item| item.version);
    assert_eq!(version_at("2026-01-01T09:59:59.999Z").await, None, "before it existed");
    assert_eq!(version_at("2026-01-01T10:00:00.000Z").await, Some(1), "an event at the very time counts");
    assert_eq!(version_at("2026-01-01T11:30:00.000Z").await, Some(2));
    assert_eq!(version_at("2030-01-01T00:00:00.000Z").await, Some(4));

    // Version 3's clock ran behind version 2's: at 11:45, version 2 had not
    // happened by version 3's clock, and version 3 was decided on version 2.
    let (history, id) =
        given_a_stream_at([TIMES[0], "2026-01-01T12:00:00.000Z", "2026-01-01T11:30:00.000Z", TIMES[3]]).await;
    let at_1145 = history.item_at(id, PointInTime::Time(at("2026-01-01T11:45:00.000Z")), None).await.unwrap();
    assert_eq!(at_1145.map(|item| item.version), Some(1), "stops at the first event after the time");
}

#[tokio::test]
async fn an_item_at_a_version_far_down_a_long_stream_reads_it_in_chunks() {
    let world = given_an_item().await;
    for n in 0..2_500 {
        world.changes.update(&owner(), world.id, rename(&format!("name {n}")), None, None).await.unwrap();
    }
    let history = HistoryService::new(world.events.clone());
    let at = history.item_at(world.id, PointInTime::Version(2_001), None).await.unwrap().unwrap();
    assert_eq!((at.name.as_str(), at.version), ("name 1999", 2_001));
    let now = history.item_at(world.id, PointInTime::Time(FixedClock::default().0), None).await.unwrap().unwrap();
    assert_eq!(now.version, 2_501, "every event at the clock's time");
}

/// Review L6: instances' clocks differ. Given v2 written by an instance whose
/// clock runs ahead, when an instance whose clock is behind writes v3, then
/// v3 does not occur before v2: `?at` reads a stream's times as ordered.
#[tokio::test]
async fn given_a_change_from_a_clock_ahead_when_a_slower_clock_changes_then_time_does_not_go_back() {
    let world = given_an_item().await;
    let ahead = ChangeItemService::new(
        world.events.clone(),
        Arc::new(FixedClock(crate::testing::at("2026-01-02T03:04:10.000Z"))),
        world.ids.clone(),
    );
    ahead.update(&owner(), world.id, rename("Ink"), None, None).await.unwrap();
    let behind = ChangeItemService::new(
        world.events.clone(),
        Arc::new(FixedClock(crate::testing::at("2026-01-02T03:04:08.000Z"))),
        world.ids.clone(),
    )
    .with_snapshot_every(2);
    behind.update(&owner(), world.id, rename("Nib"), None, None).await.unwrap();
    behind.delete(&owner(), world.id, None, None).await.unwrap();

    let times: Vec<_> = world.stream().await.iter().map(|event| event.occurred_at).collect();
    assert_eq!(times.len(), 4);
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "{times:?}");
    assert_eq!(times[2], crate::testing::at("2026-01-02T03:04:10.000Z"));
}

/// Security review N5: `?version`/`?at` at or after an item's snapshot fold
/// from it, so a long stream costs one or two reads, not one per 1,000
/// events; a point before it folds from the start; a snapshot of other
/// projection code is passed over; and reading stops at the deadline.
#[tokio::test]
async fn an_item_as_it_was_folds_from_its_snapshot_and_stops_at_the_deadline() {
    let world = given_an_item().await;
    for n in 0..4_999 {
        world.changes.update(&owner(), world.id, rename(&format!("name {n}")), None, None).await.unwrap();
    }
    let counting = Arc::new(Racing { inner: world.events.clone(), rival: Mutex::new(None), reads: Default::default() });
    let history = HistoryService::new(counting.clone());
    let reads = |history: &Racing| history.reads.swap(0, std::sync::atomic::Ordering::Relaxed);
    let last = history.item_at(world.id, PointInTime::Version(5_000), None).await.unwrap().unwrap();
    assert_eq!((last.name.as_str(), last.version), ("name 4998", 5_000));
    assert!(reads(&counting) <= 1, "from the snapshot at 5,000");
    assert_eq!(history.item_at(world.id, PointInTime::Version(u64::MAX), None).await.unwrap(), None);
    assert!(reads(&counting) <= 2, "past the end: the snapshot and one read");
    let now = history
        .item_at(world.id, PointInTime::Time(crate::testing::at("2999-01-01T00:00:00.000Z")), None)
        .await
        .unwrap();
    assert_eq!(now.map(|item| item.version), Some(5_000));
    assert!(reads(&counting) <= 2, "the snapshot's own event and one read");
    let early = history.item_at(world.id, PointInTime::Version(150), None).await.unwrap().unwrap();
    assert_eq!((early.name.as_str(), early.version), ("name 148", 150));

    // Another revision's snapshot (here: wrong) is not trusted.
    let wrong = Item { name: "not from this code".into(), ..last.clone() };
    world.events.save_snapshot(&crate::ports::Snapshot { item: wrong, revision: REVISION + 1 }).await.unwrap();
    let trusted = history.item_at(world.id, PointInTime::Version(5_000), None).await.unwrap().unwrap();
    assert_eq!(trusted.name, "name 4998");

    reads(&counting);
    let past = std::time::Instant::now().checked_sub(std::time::Duration::from_secs(1));
    let stopped = history.item_at(world.id, PointInTime::Version(4_000), past).await;
    assert!(matches!(stopped, Err(StoreError::Unavailable(_))), "{stopped:?}");
    assert!(reads(&counting) <= 1);
}
