//! Create, query and projector services, given / when / then, on the
//! in-memory ports (held to the ports' contract by the conformance suite).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::*;
use crate::command::CreateItem;
use crate::event::{Event, EventPayload, ItemCreated, ItemId};
use crate::idempotency::IdempotencyKey;
use crate::item::Item;
use crate::memory::{InMemoryEventStore, InMemoryReadModel};
use crate::ports::{CursorCodec, InvalidCursor, Page, PageKey, ReadModel, StoreError, Upsert};
use crate::testing::{FixedClock, SequentialIds};

/// The in-memory read model, failing its `n`th write (a throttled write).
struct FailingWrite {
    inner: InMemoryReadModel,
    fail_write_number: usize,
    writes: AtomicUsize,
}

#[async_trait]
impl ReadModel for FailingWrite {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        if self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_write_number {
            return Err(StoreError::Unavailable("throttled".into()));
        }
        self.inner.upsert_if_newer(item).await
    }

    async fn repair(&self, item: &Item) -> Result<Upsert, StoreError> {
        self.inner.repair(item).await
    }

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError> {
        self.inner.get(id).await
    }

    async fn list_page(&self, limit: Option<u32>, after: Option<&PageKey>) -> Result<Page, StoreError> {
        self.inner.list_page(limit, after).await
    }

    async fn list_by_creator(
        &self,
        creator: &str,
        limit: Option<u32>,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError> {
        self.inner.list_by_creator(creator, limit, after).await
    }
}

/// Every event in the log, in append order.
fn logged(events: &InMemoryEventStore) -> Vec<Event> {
    events.read_after(0, usize::MAX).into_iter().map(|(_, event)| event).collect()
}

/// Every item in the read model (tombstones too), in id order.
async fn stored(read_model: &impl ReadModel) -> Vec<Item> {
    read_model.list_page(Some(u32::MAX), None).await.unwrap().items
}

fn queries(read_model: Arc<dyn ReadModel>) -> QueryService {
    QueryService::new(read_model, Arc::new(PrefixCursors), Arc::new(FixedClock::default()))
}

/// Cursors as `sealed:<key>`; anything else is tampered.
struct PrefixCursors;

impl CursorCodec for PrefixCursors {
    fn seal(&self, key: &PageKey) -> String {
        format!("sealed:{}", key.0)
    }
    fn open(&self, cursor: &str) -> Result<PageKey, InvalidCursor> {
        cursor.strip_prefix("sealed:").map(|k| PageKey(k.into())).ok_or(InvalidCursor)
    }
}

fn create_service(events: Arc<InMemoryEventStore>) -> CreateItemService {
    CreateItemService::new(events, Arc::new(FixedClock::default()), Arc::new(SequentialIds::default()))
}

fn command(name: &str) -> CreateItem {
    CreateItem { name: name.into(), timestamp: "N/A".into(), description: None }
}

async fn created_events(count: usize) -> Vec<Event> {
    let events = Arc::new(InMemoryEventStore::default());
    let service = create_service(events.clone());
    for n in 0..count {
        service.create("sub-1", command(&format!("item {n}"))).await.unwrap();
    }
    logged(&events)
}

#[tokio::test]
async fn create_appends_one_item_created_event_at_version_1() {
    let events = Arc::new(InMemoryEventStore::default());
    let item = create_service(events.clone()).create("sub-1", command("Pen")).await.unwrap();

    let log = logged(&events);
    assert_eq!(log.len(), 1);
    let event = &log[0];
    assert_eq!(event.item_id, item.id);
    assert_ne!(event.event_id, item.id.0, "event and item ids are distinct");
    assert_eq!(event.version, 1);
    assert_eq!(event.subject, "sub-1");
    assert_eq!(event.occurred_at, FixedClock::default().0);
    assert_eq!(
        event.payload,
        EventPayload::ItemCreated(ItemCreated { name: "Pen".into(), timestamp: "N/A".into(), description: None })
    );
    assert_eq!(item.created_by, "sub-1");
    assert_eq!(item.version, 1);
}

#[tokio::test]
async fn create_on_a_store_that_is_down_fails_and_records_nothing() {
    let events = Arc::new(InMemoryEventStore::default());
    events.set_available(false);
    let result = create_service(events.clone()).create("sub-1", command("Pen")).await;
    assert!(matches!(result, Err(CreateError::Store(StoreError::Unavailable(_)))));
    events.set_available(true);
    assert!(events.is_empty());
}

#[tokio::test]
async fn projecting_a_batch_twice_gives_the_same_read_model() {
    let events = created_events(3).await;
    let read_model = Arc::new(InMemoryReadModel::default());
    let projector = ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default()));

    let first = projector.project_batch(&events).await;
    assert_eq!((first.applied, first.already_newer, first.failed), (3, 0, None));
    let snapshot = stored(&*read_model).await;

    let second = projector.project_batch(&events).await;
    assert_eq!((second.applied, second.already_newer, second.failed), (0, 3, None));
    assert_eq!(stored(&*read_model).await, snapshot);
}

#[tokio::test]
async fn one_at_a_time_a_batch_stops_at_the_first_failure_and_reports_its_index() {
    let events = created_events(3).await;
    let read_model = Arc::new(FailingWrite {
        inner: InMemoryReadModel::default(),
        fail_write_number: 2,
        writes: AtomicUsize::new(0),
    });
    let projector =
        ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default())).with_concurrency(1);
    let outcome = projector.project_batch(&events).await;
    assert_eq!(outcome.applied, 1);
    assert!(matches!(outcome.failed, Some((1, StoreError::Unavailable(_)))));
    assert_eq!(stored(&read_model.inner).await.len(), 1, "nothing after the failure was applied");
}

#[tokio::test]
async fn concurrently_a_batch_reports_its_first_failure_and_the_other_items_are_applied() {
    let events = created_events(3).await;
    let read_model = Arc::new(FailingWrite {
        inner: InMemoryReadModel::default(),
        fail_write_number: 2,
        writes: AtomicUsize::new(0),
    });
    let outcome =
        ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default())).project_batch(&events).await;
    assert!(matches!(outcome.failed, Some((1, StoreError::Unavailable(_)))));
    assert_eq!(outcome.applied, 2, "the other items' events, before and after it");
    let stored: Vec<ItemId> = stored(&read_model.inner).await.iter().map(|item| item.id).collect();
    assert!(!stored.contains(&events[1].item_id), "the failed item is not applied");
    assert_eq!(stored.len(), 2);
}

#[tokio::test]
async fn listing_without_limit_follows_every_page() {
    let events = created_events(7).await;
    let read_model = Arc::new(InMemoryReadModel::with_page_size(2));
    ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default())).project_batch(&events).await;

    let listing = queries(read_model).list(Selection::All, None, None, None).await.unwrap();
    assert_eq!(listing.items.len(), 7);
    assert_eq!(listing.next_cursor, None);
}

#[tokio::test]
async fn listing_with_limit_pages_through_sealed_cursors() {
    let events = created_events(5).await;
    let read_model = Arc::new(InMemoryReadModel::with_page_size(100));
    ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default())).project_batch(&events).await;
    let queries = queries(read_model);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = queries.list(Selection::All, Some(2), cursor.as_deref(), None).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|i| i.id));
        match page.next_cursor {
            Some(next) => {
                assert!(next.starts_with("sealed:"));
                cursor = Some(next);
            }
            None => break,
        }
    }
    let mut expected: Vec<ItemId> = events.iter().map(|e| e.item_id).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

/// Follows `next_cursor` to the end; every listing's ids, in order.
async fn follow(queries: &QueryService) -> Vec<Vec<ItemId>> {
    let mut listings = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let listing = queries.list(Selection::All, None, cursor.as_deref(), None).await.unwrap();
        listings.push(listing.items.iter().map(|i| i.id).collect());
        match listing.next_cursor {
            Some(next) => cursor = Some(next),
            None => return listings,
        }
    }
}

#[tokio::test]
async fn given_a_byte_budget_when_listing_without_limit_then_it_stops_at_a_whole_item_and_the_cursor_goes_on() {
    let events = created_events(7).await;
    let read_model = Arc::new(InMemoryReadModel::with_page_size(2));
    ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default())).project_batch(&events).await;
    let all: Vec<Item> = stored(&*read_model).await;
    // Room for exactly three items: `[`, three items, two commas, `]`.
    let size = |item: &Item| serde_json::to_vec(item).unwrap().len();
    let three = 2 + all[..3].iter().map(size).sum::<usize>() + 2;
    let body = BodyBudget { max_bytes: three, ..BodyBudget::UNBOUNDED };
    let budget = ListBudget { body, max_time: Duration::from_secs(60), reserve: Duration::ZERO };
    let queries = queries(read_model).with_list_budget(budget);

    let listings = follow(&queries).await;
    assert_eq!(listings.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1], "cut mid-page, at whole items");
    let seen: Vec<ItemId> = listings.concat();
    assert_eq!(seen, all.iter().map(|i| i.id).collect::<Vec<_>>(), "every item once, in order");
}

#[tokio::test]
async fn given_an_item_larger_than_the_budget_when_listing_then_it_still_comes_alone() {
    let events = created_events(2).await;
    let read_model = Arc::new(InMemoryReadModel::with_page_size(10));
    ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default())).project_batch(&events).await;
    let body = BodyBudget { max_bytes: 10, ..BodyBudget::UNBOUNDED };
    let budget = ListBudget { body, max_time: Duration::from_secs(60), reserve: Duration::ZERO };
    let queries = queries(read_model).with_list_budget(budget);
    assert_eq!(follow(&queries).await.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1], "progress, one by one");
}

#[tokio::test]
async fn given_a_time_budget_when_it_is_spent_then_the_listing_stops_between_pages() {
    let events = created_events(6).await;
    let read_model = Arc::new(InMemoryReadModel::with_page_size(2));
    ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default())).project_batch(&events).await;
    let budget = ListBudget { max_time: Duration::ZERO, ..ListBudget::UNBOUNDED };
    let queries = queries(read_model).with_list_budget(budget);
    assert_eq!(follow(&queries).await.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2]);
}

/// Review finding 8: pages of tombstones only, and the invocation's
/// deadline (less the reserve) has come: the listing answers an empty page
/// with a cursor instead of reading on, and following the cursors still
/// reaches every live item.
#[tokio::test]
async fn given_only_tombstones_by_the_deadline_when_listing_then_an_empty_page_with_a_cursor() {
    let events = created_events(5).await;
    let read_model = Arc::new(InMemoryReadModel::with_page_size(2));
    ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default())).project_batch(&events).await;
    let all = stored(&*read_model).await;
    let ids: Vec<ItemId> = all.iter().map(|item| item.id).collect();
    for item in &all[..4] {
        let tombstone = Item { version: 2, deleted: true, ..item.clone() };
        assert_eq!(read_model.upsert_if_newer(&tombstone).await, Ok(Upsert::Applied));
    }
    let budget =
        ListBudget { max_time: Duration::from_secs(60), reserve: Duration::from_secs(1), ..ListBudget::UNBOUNDED };
    let queries = queries(read_model).with_list_budget(budget);

    let soon = Instant::now() + Duration::from_millis(500);
    let first = queries.list(Selection::All, None, None, Some(soon)).await.unwrap();
    assert_eq!(first.items, vec![]);
    let mut cursor = first.next_cursor.expect("an empty page is not the end");
    let mut seen = Vec::new();
    loop {
        let listing = queries.list(Selection::All, None, Some(&cursor), Some(soon)).await.unwrap();
        seen.extend(listing.items.iter().map(|item| item.id));
        match listing.next_cursor {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(seen, vec![ids[4]]);
}

#[tokio::test]
async fn the_body_budget_counts_sizes_by_the_transport_s_rule() {
    let events = created_events(4).await;
    let read_model = Arc::new(InMemoryReadModel::default());
    ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default())).project_batch(&events).await;
    let plain = serde_json::to_vec(&stored(&*read_model).await).unwrap().len();
    // A transport that doubles every byte: the same budget holds half as much.
    let body = BodyBudget { max_bytes: plain, size_of: |json| json.len() * 2 };
    let budget = ListBudget { body, ..ListBudget::UNBOUNDED };
    let listings = follow(&queries(read_model.clone()).with_list_budget(budget)).await;
    assert_eq!(listings.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
    let unbounded = follow(&queries(read_model)).await;
    assert_eq!(unbounded.iter().map(Vec::len).collect::<Vec<_>>(), [4]);
}

#[tokio::test]
async fn a_tampered_cursor_is_refused() {
    let queries = queries(Arc::new(InMemoryReadModel::default()));
    assert_eq!(queries.list(Selection::All, Some(2), Some("forged"), None).await, Err(QueryError::InvalidCursor));
}

#[tokio::test]
async fn get_returns_the_projected_item_or_none() {
    let events = created_events(1).await;
    let read_model = Arc::new(InMemoryReadModel::with_page_size(10));
    ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default())).project_batch(&events).await;
    let queries = queries(read_model);

    let item = queries.get(events[0].item_id).await.unwrap().unwrap();
    assert_eq!(item.name, "item 0");
    assert_eq!(queries.get(ItemId(uuid::Uuid::from_u128(999))).await.unwrap(), None);
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).unwrap()
}

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_first_item_and_appends_nothing() {
    let events = Arc::new(InMemoryEventStore::default());
    let service = create_service(events.clone());
    let Created::New(first) = service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap() else {
        panic!("the first request creates");
    };
    let retry = service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap();
    assert_eq!(retry, Created::Repeated(first));
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let events = Arc::new(InMemoryEventStore::default());
    let service = create_service(events.clone());
    service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap();
    assert_eq!(service.create_idempotent("sub-1", command("Pencil"), &key("k1")).await, Err(CreateError::KeyReused));
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn keys_are_per_subject() {
    let events = Arc::new(InMemoryEventStore::default());
    let service = create_service(events.clone());
    let mine = service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap();
    let theirs = service.create_idempotent("sub-2", command("Pen"), &key("k1")).await.unwrap();
    assert!(matches!(theirs, Created::New(_)));
    assert_ne!(mine.item().id, theirs.item().id);
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn an_expired_key_creates_a_new_item() {
    let events = Arc::new(InMemoryEventStore::default());
    let service = create_service(events.clone()).with_idempotency_ttl(chrono::TimeDelta::zero());
    let first = service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap();
    let second = service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap();
    assert!(matches!(second, Created::New(_)));
    assert_ne!(first.item().id, second.item().id);
}

/// Items of two creators, one a minute apart; every third of "ann"'s is deleted.
async fn given_items_of_two_creators(read_model: &InMemoryReadModel) -> Vec<Item> {
    let mut anns = Vec::new();
    for n in 0..12u32 {
        let creator = if n % 4 == 3 { "bob" } else { "ann" };
        let item = Item {
            id: ItemId(uuid::Uuid::from_u128(u128::from(1000 - n))),
            name: format!("item {n}"),
            timestamp: "t".into(),
            created_by: creator.into(),
            created_at: crate::testing::at("2026-01-01T00:00:00.000Z") + chrono::TimeDelta::minutes(i64::from(n / 2)),
            version: 1,
            deleted: creator == "ann" && n % 3 == 0,
            description: None,
        };
        read_model.upsert_if_newer(&item).await.unwrap();
        if creator == "ann" && !item.deleted {
            anns.push(item);
        }
    }
    // Newest first; two items share each minute, the larger id first.
    anns.sort_by_key(|item| std::cmp::Reverse((item.created_at, item.id)));
    anns
}

#[tokio::test]
async fn a_creators_listing_holds_their_live_items_newest_first_in_pages() {
    let read_model = Arc::new(InMemoryReadModel::with_page_size(3));
    let anns = given_items_of_two_creators(&read_model).await;
    let queries = queries(read_model.clone());
    let everything = queries.list(Selection::CreatedBy("ann"), None, None, None).await.unwrap();
    assert_eq!(everything.items, anns);
    assert_eq!(everything.next_cursor, None);

    for limit in [1, 2, 5] {
        let (mut seen, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let page = queries.list(Selection::CreatedBy("ann"), Some(limit), cursor.as_deref(), None).await.unwrap();
            seen.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, anns, "pages of {limit}");
    }
    let bobs = queries.list(Selection::CreatedBy("bob"), None, None, None).await.unwrap().items;
    assert_eq!(bobs.iter().map(|item| item.name.as_str()).collect::<Vec<_>>(), ["item 11", "item 7", "item 3"]);
    assert!(queries.list(Selection::CreatedBy("nobody"), None, None, None).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn a_cursor_only_goes_on_the_listing_that_handed_it_out() {
    let read_model = Arc::new(InMemoryReadModel::with_page_size(100));
    given_items_of_two_creators(&read_model).await;
    let queries = queries(read_model);
    let of_ann = queries.list(Selection::CreatedBy("ann"), Some(1), None, None).await.unwrap().next_cursor.unwrap();
    let of_all = queries.list(Selection::All, Some(1), None, None).await.unwrap().next_cursor.unwrap();
    for (selection, cursor) in [
        (Selection::CreatedBy("bob"), &of_ann),
        (Selection::CreatedBy("an"), &of_ann),
        (Selection::All, &of_ann),
        (Selection::CreatedBy("ann"), &of_all),
    ] {
        assert_eq!(
            queries.list(selection, Some(1), Some(cursor), None).await,
            Err(QueryError::InvalidCursor),
            "{selection:?}"
        );
    }
    assert!(queries.list(Selection::CreatedBy("ann"), Some(1), Some(&of_ann), None).await.is_ok());
}
