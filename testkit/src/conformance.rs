//! One conformance suite for the ports, run against every backend: the same
//! tests, so the local stores and DynamoDB behave alike. A backend's test
//! file calls [`conformance_suite!`](crate::conformance_suite) with a way to
//! make a fresh backend.
//!
//! One file: the suite is one contract, case after case, and the macro that
//! expands it for a backend lists every case once.

use std::collections::HashSet;
use std::sync::Arc;

use items_domain::event::ItemCreated;
use items_domain::event::ItemUpdated;
use items_domain::ports::{
    AppendError, CursorCodec, EventLogScan, EventStore, FoldStore, InvalidCursor, PageKey, ReadModel, Upsert,
};
use items_domain::service::{HistoryService, PointInTime, ProjectorService, QueryService, Selection};
use items_domain::testing::at;
use items_domain::{Event, EventPayload, Item, ItemId};
use uuid::Uuid;

/// Page keys shown as they are: the suite checks the backends' paging, not the sealing.
pub(crate) struct PlainCursors;

impl CursorCodec for PlainCursors {
    fn seal(&self, key: &PageKey) -> String {
        key.0.clone()
    }

    fn open(&self, cursor: &str) -> Result<PageKey, InvalidCursor> {
        Ok(PageKey(cursor.to_owned()))
    }
}

/// Fresh ids per run: backends such as a DynamoDB Local table outlive a test.
struct RandomIds;

impl items_domain::ports::IdGenerator for RandomIds {
    fn new_id(&self) -> Uuid {
        Uuid::new_v4()
    }
}

pub struct Backend {
    pub events: Arc<dyn EventStore>,
    /// The same log, as the replay reads it.
    pub scan: Arc<dyn EventLogScan>,
    pub read_model: Arc<dyn ReadModel>,
}

pub fn event(item_id: ItemId, version: u64, name: &str) -> Event {
    Event {
        event_id: Uuid::new_v4(),
        item_id,
        version,
        occurred_at: at("2026-01-02T03:04:05.678Z"),
        subject: "sub-1".into(),
        payload: EventPayload::ItemCreated(ItemCreated {
            name: name.into(),
            timestamp: "N/A".into(),
            description: None,
        }),
    }
}

pub fn item(id: ItemId, version: u64, name: &str) -> Item {
    Item {
        id,
        name: name.into(),
        timestamp: "N/A".into(),
        created_by: "sub-1".into(),
        created_at: at("2026-01-02T03:04:05.678Z"),
        version,
        deleted: false,
        description: None,
    }
}

pub fn new_id() -> ItemId {
    ItemId(Uuid::new_v4())
}

pub async fn append_then_stream_in_version_order(backend: Backend) {
    let id = new_id();
    let (one, two, three) = (event(id, 1, "a"), event(id, 2, "b"), event(id, 3, "c"));
    backend.events.append(0, std::slice::from_ref(&one)).await.unwrap();
    backend.events.append(1, &[two.clone(), three.clone()]).await.unwrap();
    assert_eq!(backend.events.stream(id).await.unwrap(), vec![one.clone(), two.clone(), three.clone()]);
    assert_eq!(backend.events.stream(new_id()).await.unwrap(), vec![]);
    // A part of it: after a version, at most so many (history pages).
    assert_eq!(backend.events.stream_after(id, 1, 1).await.unwrap(), vec![two.clone()]);
    assert_eq!(backend.events.stream_after(id, 1, 10).await.unwrap(), vec![two, three.clone()]);
    assert_eq!(backend.events.stream_after(id, 2, usize::MAX).await.unwrap(), vec![three]);
    assert_eq!(backend.events.stream_after(id, 3, 10).await.unwrap(), vec![]);
    assert_eq!(backend.events.stream_after(id, u64::MAX, 10).await.unwrap(), vec![]);
}

/// Snapshots (where the write side starts folding): the latest of a
/// revision is kept, an older one never replaces it, another revision does.
pub async fn a_snapshot_is_kept_until_a_later_one_of_its_revision(backend: Backend) {
    use items_domain::ports::Snapshot;
    let id = new_id();
    assert_eq!(backend.events.snapshot(id).await.unwrap(), None);
    let at = |version: u64, revision: u32| Snapshot { item: item(id, version, &format!("v{version}")), revision };
    backend.events.save_snapshot(&at(200, 1)).await.unwrap();
    assert_eq!(backend.events.snapshot(id).await.unwrap(), Some(at(200, 1)));
    backend.events.save_snapshot(&at(100, 1)).await.unwrap();
    assert_eq!(backend.events.snapshot(id).await.unwrap(), Some(at(200, 1)), "never an older one");
    backend.events.save_snapshot(&at(300, 1)).await.unwrap();
    assert_eq!(backend.events.snapshot(id).await.unwrap(), Some(at(300, 1)));
    backend.events.save_snapshot(&at(100, 2)).await.unwrap();
    assert_eq!(backend.events.snapshot(id).await.unwrap(), Some(at(100, 2)), "another revision replaces it");
    assert_eq!(backend.events.stream(id).await.unwrap(), vec![], "a snapshot is not an event");
    assert_eq!(backend.events.snapshot(new_id()).await.unwrap(), None);
}

pub async fn append_at_a_taken_version_is_a_conflict(backend: Backend) {
    let id = new_id();
    let original = event(id, 1, "original");
    backend.events.append(0, std::slice::from_ref(&original)).await.unwrap();

    let result = backend.events.append(0, &[event(id, 1, "intruder")]).await;
    assert_eq!(result, Err(AppendError::Conflict { item_id: id, expected: 0, actual: 1 }));
    assert_eq!(backend.events.stream(id).await.unwrap(), vec![original], "nothing was overwritten");
}

pub async fn a_multi_event_append_is_all_or_nothing(backend: Backend) {
    let id = new_id();
    let (one, two) = (event(id, 1, "a"), event(id, 2, "b"));
    backend.events.append(0, &[one.clone(), two.clone()]).await.unwrap();

    // Stale writer: thinks the stream is at 1 and appends 2 and 3.
    let result = backend.events.append(1, &[event(id, 2, "x"), event(id, 3, "y")]).await;
    assert!(matches!(result, Err(AppendError::Conflict { expected: 1, actual: 2, .. })), "{result:?}");
    assert_eq!(backend.events.stream(id).await.unwrap(), vec![one, two], "version 3 was not written");
}

pub async fn concurrent_appends_at_one_version_have_exactly_one_winner(backend: Backend) {
    let id = new_id();
    let attempts: Vec<_> = (0..8)
        .map(|n| {
            let events = backend.events.clone();
            tokio::spawn(async move { events.append(0, &[event(id, 1, &format!("writer {n}"))]).await })
        })
        .collect();
    let mut wins = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => wins += 1,
            Err(AppendError::Conflict { expected: 0, actual: 1, .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(backend.events.stream(id).await.unwrap().len(), 1);
}

pub async fn upserts_only_apply_newer_versions(backend: Backend) {
    let id = new_id();
    let read_model = &backend.read_model;
    assert_eq!(read_model.get(id).await.unwrap(), None);
    assert_eq!(read_model.upsert_if_newer(&item(id, 2, "v2")).await.unwrap(), Upsert::Applied);
    assert_eq!(read_model.upsert_if_newer(&item(id, 2, "v2 again")).await.unwrap(), Upsert::AlreadyNewer);
    assert_eq!(read_model.upsert_if_newer(&item(id, 1, "v1 late")).await.unwrap(), Upsert::AlreadyNewer);
    assert_eq!(read_model.get(id).await.unwrap(), Some(item(id, 2, "v2")));
    assert_eq!(read_model.upsert_if_newer(&item(id, 3, "v3")).await.unwrap(), Upsert::Applied);
    assert_eq!(read_model.get(id).await.unwrap().unwrap().name, "v3");
}

/// Many upserts in one call: each item version-guarded as alone, one result
/// per item in order, every row as the guard leaves it.
pub async fn upserting_many_guards_each_item_and_answers_in_order(backend: Backend) {
    let read_model = &backend.read_model;
    let ids: Vec<ItemId> = (0..40).map(|_| new_id()).collect();
    for id in &ids[..20] {
        read_model.upsert_if_newer(&item(*id, 3, "stored v3")).await.unwrap();
    }
    // Older than the stored row for the first ten, newer for the next ten, new for the rest.
    let batch: Vec<Item> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| if n < 10 { item(*id, 2, "late v2") } else { item(*id, 4, "v4") })
        .collect();
    let results: Vec<Upsert> =
        read_model.upsert_all_if_newer(&batch).await.into_iter().map(|result| result.unwrap()).collect();
    let expected: Vec<Upsert> = (0..40).map(|n| if n < 10 { Upsert::AlreadyNewer } else { Upsert::Applied }).collect();
    assert_eq!(results, expected);
    for (n, id) in ids.iter().enumerate() {
        let want = if n < 10 { item(*id, 3, "stored v3") } else { item(*id, 4, "v4") };
        assert_eq!(read_model.get(*id).await.unwrap(), Some(want));
    }
    assert_eq!(read_model.upsert_all_if_newer(&[]).await, vec![]);
}

/// A rebuild's write (review finding 3): a row wrong at the right version
/// (a hand edit, projection code fixed since) is replaced, a tombstone too; a
/// row already right, or newer, is left alone.
pub async fn repairs_replace_wrong_rows_at_the_same_version_and_never_go_back(backend: Backend) {
    let id = new_id();
    let read_model = &backend.read_model;
    assert_eq!(read_model.repair(&item(id, 2, "v2")).await.unwrap(), Upsert::Applied, "absent: written");
    assert_eq!(read_model.repair(&item(id, 2, "v2")).await.unwrap(), Upsert::AlreadyNewer, "already right");
    assert_eq!(read_model.repair(&item(id, 2, "v2 fixed")).await.unwrap(), Upsert::Applied);
    assert_eq!(read_model.get(id).await.unwrap(), Some(item(id, 2, "v2 fixed")));
    let described = Item { description: Some("told".into()), ..item(id, 2, "v2 fixed") };
    assert_eq!(read_model.repair(&described).await.unwrap(), Upsert::Applied, "the description counts");
    assert_eq!(read_model.repair(&described).await.unwrap(), Upsert::AlreadyNewer);
    let retold = Item { description: Some("retold".into()), ..described.clone() };
    assert_eq!(read_model.repair(&retold).await.unwrap(), Upsert::Applied);
    assert_eq!(read_model.get(id).await.unwrap(), Some(retold));
    assert_eq!(read_model.repair(&item(id, 2, "v2 fixed")).await.unwrap(), Upsert::Applied, "and its absence");
    let tombstone = Item { deleted: true, ..item(id, 2, "v2 fixed") };
    assert_eq!(read_model.repair(&tombstone).await.unwrap(), Upsert::Applied, "the deletion flag counts");
    assert_eq!(read_model.get(id).await.unwrap(), Some(tombstone.clone()));
    assert_eq!(read_model.repair(&item(id, 1, "v1 late")).await.unwrap(), Upsert::AlreadyNewer);
    assert_eq!(read_model.upsert_if_newer(&item(id, 3, "v3")).await.unwrap(), Upsert::Applied);
    assert_eq!(read_model.repair(&tombstone).await.unwrap(), Upsert::AlreadyNewer);
    assert_eq!(read_model.get(id).await.unwrap(), Some(item(id, 3, "v3")));
}

pub async fn projection_is_idempotent_and_order_independent(backend: Backend) {
    let projector = ProjectorService::new(backend.read_model.clone(), backend.events.clone());
    let ids: Vec<ItemId> = (0..5).map(|_| new_id()).collect();
    let events: Vec<Event> = ids.iter().map(|&id| event(id, 1, &format!("item {id}"))).collect();
    let mut shuffled: Vec<Event> = events.iter().rev().cloned().collect();
    shuffled.extend(events.iter().cloned());

    let first = projector.project_batch(&events).await;
    assert_eq!((first.applied, first.already_newer, first.failed), (5, 0, None));
    let again = projector.project_batch(&shuffled).await;
    assert_eq!((again.applied, again.already_newer, again.failed), (0, 10, None));
    for (id, event) in ids.iter().zip(&events) {
        let stored = backend.read_model.get(*id).await.unwrap().unwrap();
        assert_eq!(stored.name, format!("item {id}"));
        assert_eq!(stored.version, event.version);
    }
}

pub async fn concurrent_idempotent_creates_make_one_item(backend: Backend) {
    use items_domain::command::CreateItem;
    use items_domain::idempotency::IdempotencyKey;
    use items_domain::service::{CreateError, CreateItemService, Created};
    use items_domain::testing::{FixedClock, SequentialIds};

    let service = Arc::new(CreateItemService::new(
        backend.events.clone(),
        Arc::new(FixedClock::default()),
        Arc::new(SequentialIds::default()),
    ));
    let key = IdempotencyKey::parse(&format!("key-{}", Uuid::new_v4())).unwrap();
    let pen = CreateItem { name: "Pen".into(), timestamp: "N/A".into(), description: None };
    let attempts: Vec<_> = (0..10)
        .map(|_| {
            let (service, key, pen) = (service.clone(), key.clone(), pen.clone());
            tokio::spawn(async move { service.create_idempotent("sub-1", pen, &key).await })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut new = 0;
    for attempt in attempts {
        let created = attempt.await.unwrap().unwrap();
        if matches!(created, Created::New(_)) {
            new += 1;
        }
        ids.insert(created.item().id);
    }
    assert_eq!(new, 1, "exactly one request created");
    assert_eq!(ids.len(), 1, "every retry got the same item");
    let id = *ids.iter().next().unwrap();
    assert_eq!(backend.events.stream(id).await.unwrap().len(), 1);

    let other = CreateItem { name: "Pencil".into(), timestamp: "N/A".into(), description: None };
    assert_eq!(service.create_idempotent("sub-1", other, &key).await, Err(CreateError::KeyReused));
    let theirs = service.create_idempotent("sub-2", pen, &key).await.unwrap();
    assert!(matches!(theirs, Created::New(_)), "another subject's key is independent");
    assert_ne!(theirs.item().id, id);
}

pub async fn an_expired_idempotency_record_frees_its_key(backend: Backend) {
    use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
    let key = IdempotencyKey::parse("reused-later").unwrap();
    let (first_id, second_id) = (new_id(), new_id());
    let record = |id, expires| IdempotencyRecord {
        subject: format!("sub-{}", Uuid::new_v4()),
        key: key.clone(),
        name: "Pen".into(),
        timestamp: "N/A".into(),
        item: item(id, 1, "Pen"),
        expires_at: at(expires),
        change: None,
        description: None,
    };
    let expired = record(first_id, "2026-01-01T00:00:00Z");
    let now = at("2026-06-01T00:00:00Z");
    backend.events.append_idempotent(&expired, 0, &[event(first_id, 1, "Pen")], now).await.unwrap();
    assert_eq!(backend.events.idempotency_record(&expired.subject, &key).await.unwrap(), Some(expired.clone()));

    let mut renewed = record(second_id, "2026-06-02T00:00:00Z");
    renewed.subject = expired.subject.clone();
    backend.events.append_idempotent(&renewed, 0, &[event(second_id, 1, "Pen")], now).await.unwrap();
    assert_eq!(backend.events.idempotency_record(&renewed.subject, &key).await.unwrap(), Some(renewed.clone()));

    let third = new_id();
    let mut again = record(third, "2026-06-03T00:00:00Z");
    again.subject = renewed.subject.clone();
    let taken = backend.events.append_idempotent(&again, 0, &[event(third, 1, "Pen")], now).await;
    assert_eq!(taken, Err(AppendError::KeyTaken), "a live record keeps its key");
    assert!(backend.events.stream(third).await.unwrap().is_empty(), "and nothing was appended");
}

/// The append contract's retry rule: the very same events (equal in every
/// field) appended again are a success that writes nothing: an SDK retry
/// of a write that had landed, or a client's, never fails and never doubles
/// (review finding 5). Different events at those versions are a conflict,
/// an event with a stored id but other content too (review L9: an import of
/// a file that disagrees with the log is refused, not "already stored").
pub async fn reappending_the_same_events_is_a_success_that_writes_nothing(backend: Backend) {
    let id = new_id();
    let (one, two, three) = (event(id, 1, "a"), event(id, 2, "b"), event(id, 3, "c"));
    backend.events.append(0, std::slice::from_ref(&one)).await.unwrap();
    backend.events.append(0, std::slice::from_ref(&one)).await.expect("the same create again");
    backend.events.append(1, &[two.clone(), three.clone()]).await.unwrap();
    backend.events.append(1, &[two.clone(), three.clone()]).await.expect("the same change again");
    backend.events.append(2, std::slice::from_ref(&three)).await.expect("a retried single event");
    assert_eq!(backend.events.stream(id).await.unwrap(), vec![one.clone(), two.clone(), three.clone()]);

    let intruder = backend.events.append(0, &[event(id, 1, "a")]).await;
    assert_eq!(intruder, Err(AppendError::Conflict { item_id: id, expected: 0, actual: 3 }));
    let late = backend.events.append(1, &[event(id, 2, "x")]).await;
    assert_eq!(late, Err(AppendError::Conflict { item_id: id, expected: 1, actual: 3 }), "the current version");
    let mut changed = one.clone();
    changed.subject = "someone else".into();
    let disagreeing = backend.events.append(0, std::slice::from_ref(&changed)).await;
    assert_eq!(
        disagreeing,
        Err(AppendError::Conflict { item_id: id, expected: 0, actual: 3 }),
        "same id, other content"
    );
    let mut renamed = two.clone();
    renamed.payload =
        EventPayload::ItemUpdated(ItemUpdated { name: Some("not b".into()), timestamp: None, description: None });
    let disagreeing = backend.events.append(1, std::slice::from_ref(&renamed)).await;
    assert!(matches!(disagreeing, Err(AppendError::Conflict { .. })), "same id, other data: {disagreeing:?}");
}

/// Changes racing for one version of an existing item (review finding 4):
/// exactly one wins, every other gets a conflict naming a newer version,
/// never a store failure; with one event per change and with two.
pub async fn concurrent_changes_at_one_version_have_exactly_one_winner(backend: Backend) {
    for events_per_change in [1u64, 2] {
        let id = new_id();
        backend.events.append(0, &[event(id, 1, "a")]).await.unwrap();
        let attempts: Vec<_> = (0..8)
            .map(|n| {
                let events = backend.events.clone();
                let change: Vec<Event> =
                    (0..events_per_change).map(|k| event(id, 2 + k, &format!("writer {n}"))).collect();
                tokio::spawn(async move { events.append(1, &change).await })
            })
            .collect();
        let mut wins = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(()) => wins += 1,
                Err(AppendError::Conflict { expected: 1, actual, .. }) if actual > 1 => {}
                Err(other) => panic!("{events_per_change} event(s) per change: unexpected {other:?}"),
            }
        }
        assert_eq!(wins, 1, "{events_per_change} event(s) per change");
        assert_eq!(backend.events.stream(id).await.unwrap().len() as u64, 1 + events_per_change);
    }
}

fn keyed_record(
    subject: &str,
    key: &str,
    item: Item,
    expires_at: &str,
) -> items_domain::idempotency::IdempotencyRecord {
    use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
    IdempotencyRecord {
        subject: subject.into(),
        key: IdempotencyKey::parse(key).unwrap(),
        name: item.name.clone(),
        timestamp: item.timestamp.clone(),
        item,
        expires_at: at(expires_at),
        change: Some(r#"{"op":"update"}"#.into()),
        description: None,
    }
}

/// A record's expiry holds to the millisecond on every backend, as
/// `IdempotencyRecord::is_live` computes it (review finding 10).
pub async fn idempotency_expiry_is_exact_to_the_millisecond(backend: Backend) {
    let id = new_id();
    backend.events.append(0, &[event(id, 1, "Pen")]).await.unwrap();
    let subject = format!("sub-{}", Uuid::new_v4());
    let first = keyed_record(&subject, "k", item(id, 1, "Pen"), "2026-06-01T10:00:00.700Z");
    backend.events.append_idempotent(&first, 1, &[], at("2026-06-01T09:00:00Z")).await.unwrap();
    let stored = backend.events.idempotency_record(&subject, &first.key).await.unwrap().unwrap();
    assert_eq!(stored.expires_at, first.expires_at);

    let second = keyed_record(&subject, "k", item(id, 1, "Pen again"), "2026-06-02T00:00:00Z");
    let before = at("2026-06-01T10:00:00.300Z");
    assert!(stored.is_live(before));
    assert_eq!(backend.events.append_idempotent(&second, 1, &[], before).await, Err(AppendError::KeyTaken));
    let after = at("2026-06-01T10:00:00.800Z");
    assert!(!stored.is_live(after));
    backend.events.append_idempotent(&second, 1, &[], after).await.expect("expired 100 ms ago");
}

/// (`a#b`, `c`) and (`a`, `b#c`) are two subjects' keys, never one record
/// (review finding 11).
pub async fn idempotency_records_are_kept_per_subject_and_key_exactly(backend: Backend) {
    let id = new_id();
    backend.events.append(0, &[event(id, 1, "Pen")]).await.unwrap();
    let tag = Uuid::new_v4().simple().to_string();
    let theirs = keyed_record(&format!("{tag}#b"), "c", item(id, 1, "theirs"), "2999-01-01T00:00:00Z");
    let now = at("2026-06-01T00:00:00Z");
    backend.events.append_idempotent(&theirs, 1, &[], now).await.unwrap();
    let mine = keyed_record(&tag, "b#c", item(id, 1, "mine"), "2999-01-01T00:00:00Z");
    assert_eq!(backend.events.idempotency_record(&mine.subject, &mine.key).await.unwrap(), None);
    backend.events.append_idempotent(&mine, 1, &[], now).await.expect("a key of its own");
    assert_eq!(backend.events.idempotency_record(&mine.subject, &mine.key).await.unwrap(), Some(mine));
    assert_eq!(backend.events.idempotency_record(&theirs.subject, &theirs.key).await.unwrap(), Some(theirs));
}

/// An idempotent change that changes nothing still leaves its record (review
/// finding 9), and appends nothing.
pub async fn a_record_alone_is_kept_for_a_change_that_appends_nothing(backend: Backend) {
    let id = new_id();
    let created = event(id, 1, "Pen");
    backend.events.append(0, std::slice::from_ref(&created)).await.unwrap();
    let record = keyed_record(&format!("sub-{}", Uuid::new_v4()), "noop", item(id, 1, "Pen"), "2999-01-01T00:00:00Z");
    backend.events.append_idempotent(&record, 1, &[], at("2026-06-01T00:00:00Z")).await.unwrap();
    assert_eq!(backend.events.idempotency_record(&record.subject, &record.key).await.unwrap(), Some(record));
    assert_eq!(backend.events.stream(id).await.unwrap(), vec![created]);
}

/// Writes `count` items with long names so that the listing spans more than
/// one 1 MB DynamoDB Scan page when `count` is large enough.
pub async fn fill(read_model: &Arc<dyn ReadModel>, count: usize) -> HashSet<ItemId> {
    let name = "n".repeat(256);
    let mut ids = HashSet::new();
    let mut writes = Vec::new();
    for _ in 0..count {
        let id = new_id();
        ids.insert(id);
        let read_model = read_model.clone();
        let name = name.clone();
        writes.push(tokio::spawn(async move { read_model.upsert_if_newer(&item(id, 1, &name)).await }));
        if writes.len() == 32 {
            for write in writes.drain(..) {
                write.await.unwrap().unwrap();
            }
        }
    }
    for write in writes {
        write.await.unwrap().unwrap();
    }
    ids
}

pub async fn listing_pages_through_everything_exactly_once(backend: Backend, count: usize, min_backend_pages: usize) {
    let ids = fill(&backend.read_model, count).await;
    let mut backend_pages = 0;
    let mut after = None;
    loop {
        let page = backend.read_model.list_page(None, after.as_ref()).await.unwrap();
        backend_pages += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(backend_pages >= min_backend_pages, "the backend served {backend_pages} page(s)");
    let queries = QueryService::new(
        backend.read_model.clone(),
        Arc::new(PlainCursors),
        Arc::new(items_domain::testing::FixedClock::default()),
    );

    let everything = queries.list(Selection::All, None, None, None).await.unwrap();
    assert_eq!(everything.items.len(), count, "the unlimited listing is complete");
    assert_eq!(everything.items.iter().map(|i| i.id).collect::<HashSet<_>>(), ids);
    assert_eq!(everything.next_cursor, None);

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = queries.list(Selection::All, Some(997), cursor.as_deref(), None).await.unwrap();
        assert!(page.items.len() <= 997);
        pages += 1;
        seen.extend(page.items.iter().map(|i| i.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages >= count.div_ceil(997), "{pages} pages");
    assert_eq!(seen.len(), count, "no item twice");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);
}

/// Item lifecycles on this backend: renames and deletes appended at their
/// versions, projected in a shuffled, duplicated order; the tombstone is
/// stored (a late event cannot bring the item back) and never listed.
pub async fn renames_and_deletes_project_to_the_folded_state_with_tombstones(backend: Backend) {
    use items_domain::command::Actor;
    use items_domain::command::{CreateItem, UpdateItem};
    use items_domain::service::{ChangeItemService, CreateItemService};
    use items_domain::testing::FixedClock;

    let (clock, ids) = (Arc::new(FixedClock::default()), Arc::new(RandomIds));
    let create = CreateItemService::new(backend.events.clone(), clock.clone(), ids.clone());
    let changes = ChangeItemService::new(backend.events.clone(), clock, ids);
    let owner = Actor { subject: "sub-1".into(), is_admin: false };
    let new = |name: &str| CreateItem { name: name.into(), timestamp: "N/A".into(), description: None };
    let rename = |name: &str| UpdateItem { name: Some(name.into()), timestamp: None, description: None };
    let kept = create.create("sub-1", new("Kept")).await.unwrap().id;
    let gone = create.create("sub-1", new("Gone")).await.unwrap().id;
    changes.update(&owner, kept, rename("Kept 2"), None, None).await.unwrap();
    changes.update(&owner, kept, rename("Kept 3"), Some(2), None).await.unwrap();
    changes.update(&owner, gone, rename("Gone 2"), None, None).await.unwrap();
    changes.delete(&owner, gone, Some(2), None).await.unwrap();
    let mut log = backend.events.stream(kept).await.unwrap();
    log.extend(backend.events.stream(gone).await.unwrap());
    assert_eq!(log.len(), 6);

    // Newest first, then everything again: every event arrives out of order once.
    let mut deliveries: Vec<Event> = log.iter().rev().cloned().collect();
    deliveries.extend(log.iter().cloned());
    let projector = ProjectorService::new(backend.read_model.clone(), backend.events.clone());
    assert_eq!(projector.project_batch(&deliveries).await.failed, None);

    let survivor = backend.read_model.get(kept).await.unwrap().unwrap();
    assert_eq!((survivor.name.as_str(), survivor.version, survivor.deleted), ("Kept 3", 3, false));
    let tombstone = backend.read_model.get(gone).await.unwrap().unwrap();
    assert!(tombstone.deleted && tombstone.version == 3, "the tombstone is stored: {tombstone:?}");
    assert_eq!(
        backend.read_model.upsert_if_newer(&item(gone, 1, "Gone")).await.unwrap(),
        Upsert::AlreadyNewer,
        "a late creation does not bring it back"
    );
    let queries = QueryService::new(
        backend.read_model.clone(),
        Arc::new(PlainCursors),
        Arc::new(items_domain::testing::FixedClock::default()),
    );
    assert_eq!(queries.get(gone).await.unwrap(), None);
    let listed: HashSet<ItemId> =
        queries.list(Selection::All, None, None, None).await.unwrap().items.iter().map(|i| i.id).collect();
    assert!(listed.contains(&kept) && !listed.contains(&gone));
}

/// One creator's items come from the index, newest first, in pages that
/// hold each once, tombstones included (the service drops them); nobody
/// else's are in it. Items of the same millisecond come in an order of the
/// backend's, each once, however the pages fall.
pub async fn a_creators_items_are_listed_newest_first(backend: Backend) {
    let creator = format!("sub-{}", Uuid::new_v4());
    // Items 0 to 6, a minute apart, 7 to 9 at item 2's minute, and 10 to 49
    // all at item 5's: many of one millisecond in each index shard.
    let minute = |n: i64| {
        at("2026-03-01T00:00:00.000Z")
            + chrono::TimeDelta::minutes(match n {
                7..=9 => 2,
                10.. => 5,
                n => n,
            })
    };
    let mut expected = Vec::new();
    for n in 0..50 {
        let mine =
            Item { created_by: creator.clone(), created_at: minute(n), deleted: n == 3, ..item(new_id(), 1, "mine") };
        backend.read_model.upsert_if_newer(&mine).await.unwrap();
        let theirs =
            Item { created_by: format!("other-{creator}"), created_at: minute(n), ..item(new_id(), 1, "theirs") };
        backend.read_model.upsert_if_newer(&theirs).await.unwrap();
        expected.push(mine);
    }
    let whole = backend.read_model.list_by_creator(&creator, None, None).await.unwrap();
    assert_eq!(whole.next, None);
    // Newest first, then the larger id: each once, the tombstone too.
    expected.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    assert_eq!(whole.items, expected);
    for size in [1, 2, 3, 7] {
        let (mut listed, mut after) = (Vec::new(), None);
        loop {
            let page = backend.read_model.list_by_creator(&creator, Some(size), after.as_ref()).await.unwrap();
            assert!(page.items.len() <= size as usize);
            listed.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(listed, whole.items, "pages of {size} hold the same items in the same order");
    }
    let expected = whole.items;

    let queries = QueryService::new(
        backend.read_model.clone(),
        Arc::new(PlainCursors),
        Arc::new(items_domain::testing::FixedClock::default()),
    );
    let live: Vec<Item> = expected.into_iter().filter(|item| !item.deleted).collect();
    assert_eq!(queries.list(Selection::CreatedBy(&creator), None, None, None).await.unwrap().items, live);
    assert!(backend.read_model.list_by_creator("nobody", None, None).await.unwrap().items.is_empty());
}

/// An item as it was, folded from this backend's log at a version or a time.
pub async fn an_item_as_it_was_is_its_stream_folded_to_that_point(backend: Backend) {
    let id = new_id();
    let times = ["2026-01-01T10:00:00.000Z", "2026-01-01T11:00:00.000Z", "2026-01-01T12:00:00.000Z"];
    let payloads = [
        EventPayload::ItemCreated(ItemCreated { name: "Pen".into(), timestamp: "N/A".into(), description: None }),
        EventPayload::ItemUpdated(ItemUpdated { name: Some("Ink".into()), timestamp: None, description: None }),
        EventPayload::ItemDeleted,
    ];
    for (version, (payload, time)) in (1..).zip(payloads.into_iter().zip(times)) {
        let event = Event { occurred_at: at(time), payload, ..event(id, version, "") };
        backend.events.append(version - 1, &[event]).await.unwrap();
    }
    let history = HistoryService::new(backend.events.clone());
    let state = async |point| {
        history.item_at(id, point, None).await.unwrap().map(|item| (item.name, item.version, item.deleted))
    };
    assert_eq!(state(PointInTime::Version(1)).await, Some(("Pen".into(), 1, false)));
    assert_eq!(state(PointInTime::Version(2)).await, Some(("Ink".into(), 2, false)));
    assert_eq!(state(PointInTime::Version(3)).await, Some(("Ink".into(), 3, true)));
    assert_eq!(state(PointInTime::Version(4)).await, None);
    assert_eq!(state(PointInTime::Time(at("2026-01-01T09:00:00Z"))).await, None);
    assert_eq!(state(PointInTime::Time(at("2026-01-01T11:59:59.999Z"))).await, Some(("Ink".into(), 2, false)));
}

/// An idempotent change appends at the stream's version with its record, or
/// neither; the record's change description is stored.
pub async fn an_idempotent_change_appends_at_the_expected_version_or_not_at_all(backend: Backend) {
    use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
    let id = new_id();
    backend.events.append(0, &[event(id, 1, "Pen")]).await.unwrap();
    let record = |key: &str| IdempotencyRecord {
        subject: format!("sub-{}", Uuid::new_v4()),
        key: IdempotencyKey::parse(key).unwrap(),
        name: "Pen".into(),
        timestamp: "N/A".into(),
        item: Item { deleted: true, ..item(id, 2, "Pen") },
        expires_at: at("2999-01-01T00:00:00Z"),
        change: Some(r#"{"op":"delete"}"#.into()),
        description: None,
    };
    let deleted = Event { payload: EventPayload::ItemDeleted, ..event(id, 2, "") };
    let now = at("2026-06-01T00:00:00Z");

    let stale =
        backend.events.append_idempotent(&record("stale"), 0, &[Event { version: 1, ..deleted.clone() }], now).await;
    assert!(matches!(stale, Err(AppendError::Conflict { actual: 1, .. })), "{stale:?}");
    let stale_record = record("stale");
    assert_eq!(backend.events.idempotency_record(&stale_record.subject, &stale_record.key).await.unwrap(), None);

    let kept = record("delete-1");
    backend.events.append_idempotent(&kept, 1, std::slice::from_ref(&deleted), now).await.unwrap();
    assert_eq!(backend.events.stream(id).await.unwrap().last(), Some(&deleted));
    assert_eq!(backend.events.idempotency_record(&kept.subject, &kept.key).await.unwrap(), Some(kept));
}

/// Every event of every segment's pages, per segment.
async fn scan_all(scan: &dyn EventLogScan, total: u32) -> Vec<Vec<Event>> {
    let mut segments = Vec::new();
    for segment in 0..total {
        let mut events = Vec::new();
        let mut after: Option<PageKey> = None;
        loop {
            let page = scan.scan_page(segment, total, after.as_ref()).await.unwrap();
            events.extend(page.events);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        segments.push(events);
    }
    segments
}

/// The scan port's contract: segments are disjoint and together hold the
/// whole log; all of an item's events are in one segment, in version order;
/// records that are not events (idempotency records) are never events.
pub async fn scan_segments_are_disjoint_and_hold_each_stream_in_order(backend: Backend) {
    let mut appended: Vec<Event> = Vec::new();
    for n in 0..40u64 {
        let id = new_id();
        let mut stream = vec![event(id, 1, &format!("item {n}"))];
        for version in 2..=(n % 4 + 1) {
            let mut update = event(id, version, "");
            update.payload = EventPayload::ItemUpdated(ItemUpdated {
                name: Some(format!("v{version}")),
                timestamp: None,
                description: None,
            });
            stream.push(update);
        }
        backend.events.append(0, &stream).await.unwrap();
        appended.extend(stream);
    }
    // An idempotency record beside the events: not an event of any scan.
    let keyed = event(new_id(), 1, "keyed");
    let record = items_domain::idempotency::IdempotencyRecord {
        subject: "sub-1".into(),
        key: items_domain::idempotency::IdempotencyKey::parse("scan-key").unwrap(),
        name: "keyed".into(),
        timestamp: "N/A".into(),
        item: item(keyed.item_id, 1, "keyed"),
        expires_at: at("2099-01-01T00:00:00Z"),
        change: None,
        description: None,
    };
    backend
        .events
        .append_idempotent(&record, 0, std::slice::from_ref(&keyed), at("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    appended.push(keyed);

    let mut expected: Vec<Uuid> = appended.iter().map(|e| e.event_id).collect();
    expected.sort();
    for total in [1, 3] {
        let segments = scan_all(backend.scan.as_ref(), total).await;
        // Backends may share a log with other cases: only ours count.
        let ours: HashSet<Uuid> = expected.iter().copied().collect();
        let mut seen: Vec<Uuid> =
            segments.iter().flatten().map(|e| e.event_id).filter(|id| ours.contains(id)).collect();
        seen.sort();
        assert_eq!(seen, expected, "{total} segments hold every event once");
        let mut segment_of: std::collections::HashMap<ItemId, usize> = std::collections::HashMap::new();
        for (index, events) in segments.iter().enumerate() {
            let mut last: std::collections::HashMap<ItemId, u64> = std::collections::HashMap::new();
            for event in events.iter().filter(|e| ours.contains(&e.event_id)) {
                assert_eq!(*segment_of.entry(event.item_id).or_insert(index), index, "one item, one segment");
                let previous = last.insert(event.item_id, event.version).unwrap_or(0);
                assert!(event.version > previous, "an item's events in version order within its segment");
            }
        }
    }
}

/// The scan port's `item_stream`: the whole stream in version order, as the
/// event store's `stream`; nothing for an unknown item.
pub async fn an_item_stream_is_the_whole_stream_in_version_order(backend: Backend) {
    let id = new_id();
    let mut stream = vec![event(id, 1, "a")];
    for version in 2..=5 {
        let mut update = event(id, version, "");
        update.payload = EventPayload::ItemUpdated(ItemUpdated {
            name: Some(format!("v{version}")),
            timestamp: None,
            description: None,
        });
        stream.push(update);
    }
    backend.events.append(0, &stream[..2]).await.unwrap();
    backend.events.append(2, &stream[2..]).await.unwrap();
    assert_eq!(backend.scan.item_stream(id).await.unwrap(), stream);
    assert_eq!(backend.scan.item_stream(new_id()).await.unwrap(), vec![]);
}

/// `--verify`'s fold store: the newest state of each item wins, in whatever
/// order states come; each state is handed back once, by id or among the rest,
/// exactly as it was kept.
pub async fn a_fold_store_keeps_the_newest_state_and_hands_each_back_once(store: Arc<dyn FoldStore>) {
    let (a, b, c) = (new_id(), new_id(), new_id());
    let deleted = Item { deleted: true, ..item(c, 2, "c2 ünïcode") };
    store.keep(vec![item(a, 2, "a2"), item(b, 1, "b1")]).await.unwrap();
    store.keep(vec![item(a, 1, "a1"), item(b, 3, "b3"), deleted.clone(), item(c, 1, "c1")]).await.unwrap();

    assert_eq!(
        store.take(vec![a, new_id()]).await.unwrap(),
        vec![item(a, 2, "a2")],
        "the newer state, nothing for an unknown id"
    );
    assert_eq!(store.take(vec![a]).await.unwrap(), vec![], "handed back once");
    let mut rest = store.take_any(1).await.unwrap();
    assert_eq!(rest.len(), 1, "at most the limit");
    rest.extend(store.take_any(10).await.unwrap());
    rest.sort_by_key(|item| item.version);
    assert_eq!(rest, vec![deleted, item(b, 3, "b3")]);
    assert_eq!(store.take_any(10).await.unwrap(), vec![], "nothing left");
}

/// Expands to one `#[tokio::test]` per conformance case for a backend.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:expr, $large_listing:expr, $min_backend_pages:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn scan_segments_are_disjoint_and_hold_each_stream_in_order() {
            $crate::conformance::scan_segments_are_disjoint_and_hold_each_stream_in_order($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn an_item_stream_is_the_whole_stream_in_version_order() {
            $crate::conformance::an_item_stream_is_the_whole_stream_in_version_order($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn append_then_stream_in_version_order() {
            $crate::conformance::append_then_stream_in_version_order($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_snapshot_is_kept_until_a_later_one_of_its_revision() {
            $crate::conformance::a_snapshot_is_kept_until_a_later_one_of_its_revision($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn append_at_a_taken_version_is_a_conflict() {
            $crate::conformance::append_at_a_taken_version_is_a_conflict($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_multi_event_append_is_all_or_nothing() {
            $crate::conformance::a_multi_event_append_is_all_or_nothing($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_appends_at_one_version_have_exactly_one_winner() {
            $crate::conformance::concurrent_appends_at_one_version_have_exactly_one_winner($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn upserting_many_guards_each_item_and_answers_in_order() {
            $crate::conformance::upserting_many_guards_each_item_and_answers_in_order($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn upserts_only_apply_newer_versions() {
            $crate::conformance::upserts_only_apply_newer_versions($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn repairs_replace_wrong_rows_at_the_same_version_and_never_go_back() {
            $crate::conformance::repairs_replace_wrong_rows_at_the_same_version_and_never_go_back($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn projection_is_idempotent_and_order_independent() {
            $crate::conformance::projection_is_idempotent_and_order_independent($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_idempotent_creates_make_one_item() {
            $crate::conformance::concurrent_idempotent_creates_make_one_item($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn an_expired_idempotency_record_frees_its_key() {
            $crate::conformance::an_expired_idempotency_record_frees_its_key($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn renames_and_deletes_project_to_the_folded_state_with_tombstones() {
            $crate::conformance::renames_and_deletes_project_to_the_folded_state_with_tombstones($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_creators_items_are_listed_newest_first() {
            $crate::conformance::a_creators_items_are_listed_newest_first($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn an_item_as_it_was_is_its_stream_folded_to_that_point() {
            $crate::conformance::an_item_as_it_was_is_its_stream_folded_to_that_point($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn an_idempotent_change_appends_at_the_expected_version_or_not_at_all() {
            $crate::conformance::an_idempotent_change_appends_at_the_expected_version_or_not_at_all($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn reappending_the_same_events_is_a_success_that_writes_nothing() {
            $crate::conformance::reappending_the_same_events_is_a_success_that_writes_nothing($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_changes_at_one_version_have_exactly_one_winner() {
            $crate::conformance::concurrent_changes_at_one_version_have_exactly_one_winner($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn idempotency_expiry_is_exact_to_the_millisecond() {
            $crate::conformance::idempotency_expiry_is_exact_to_the_millisecond($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn idempotency_records_are_kept_per_subject_and_key_exactly() {
            $crate::conformance::idempotency_records_are_kept_per_subject_and_key_exactly($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_record_alone_is_kept_for_a_change_that_appends_nothing() {
            $crate::conformance::a_record_alone_is_kept_for_a_change_that_appends_nothing($backend).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn listing_pages_through_everything_exactly_once() {
            $crate::conformance::listing_pages_through_everything_exactly_once(
                $backend,
                $large_listing,
                $min_backend_pages,
            )
            .await;
        }
    };
}
