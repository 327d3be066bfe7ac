//! Service tests with small in-test fakes of the ports. The real adapters are
//! tested against these same behaviours in the adapters' conformance suite.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;

use super::*;
use crate::event::ItemCreated;
use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::ports::{InvalidCursor, Page, PageKey};
use crate::testing::{FixedClock, SequentialIds};

#[derive(Default)]
struct FakeEvents {
    log: Mutex<Vec<Event>>,
    records: Mutex<Vec<IdempotencyRecord>>,
    down: bool,
}

#[async_trait]
impl EventStore for FakeEvents {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        if self.down {
            return Err(StoreError::Unavailable("down".into()).into());
        }
        let mut log = self.log.lock().unwrap();
        let item_id = events[0].item_id;
        let actual = log.iter().filter(|e| e.item_id == item_id).map(|e| e.version).max().unwrap_or(0);
        if actual != expected_version {
            return Err(AppendError::Conflict { item_id, expected: expected_version, actual });
        }
        log.extend_from_slice(events);
        Ok(())
    }

    /// Keeps no snapshots: every load folds the whole stream.
    async fn snapshot(&self, _item_id: ItemId) -> Result<Option<crate::ports::Snapshot>, StoreError> {
        Ok(None)
    }

    async fn save_snapshot(&self, _snapshot: &crate::ports::Snapshot) -> Result<(), StoreError> {
        Ok(())
    }

    async fn stream_after(&self, item_id: ItemId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let log = self.log.lock().unwrap();
        Ok(log.iter().filter(|e| e.item_id == item_id && e.version > after).take(limit).cloned().collect())
    }

    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        _expected_version: u64,
        events: &[Event],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AppendError> {
        let mut records = self.records.lock().unwrap();
        if records.iter().any(|r| r.subject == record.subject && r.key == record.key && r.is_live(now)) {
            return Err(AppendError::KeyTaken);
        }
        if self.down {
            return Err(StoreError::Unavailable("down".into()).into());
        }
        self.log.lock().unwrap().extend_from_slice(events);
        records.retain(|r| !(r.subject == record.subject && r.key == record.key));
        records.push(record.clone());
        Ok(())
    }

    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.records.lock().unwrap().iter().find(|r| r.subject == subject && &r.key == key).cloned())
    }
}

/// A read model that serves `page_size` items per page and can fail the nth write.
struct FakeReadModel {
    items: Mutex<BTreeMap<ItemId, Item>>,
    page_size: usize,
    fail_write_number: Option<usize>,
    writes: Mutex<usize>,
}

impl FakeReadModel {
    fn new(page_size: usize) -> Self {
        Self { items: Mutex::default(), page_size, fail_write_number: None, writes: Mutex::new(0) }
    }
}

impl FakeReadModel {
    /// Writes `item` unless `keep` says the stored one stays.
    fn write(&self, item: &Item, keep: impl Fn(&Item) -> bool) -> Result<Upsert, StoreError> {
        let mut writes = self.writes.lock().unwrap();
        *writes += 1;
        if Some(*writes) == self.fail_write_number {
            return Err(StoreError::Unavailable("throttled".into()));
        }
        let mut items = self.items.lock().unwrap();
        match items.get(&item.id) {
            Some(current) if keep(current) => Ok(Upsert::AlreadyNewer),
            _ => {
                items.insert(item.id, item.clone());
                Ok(Upsert::Applied)
            }
        }
    }
}

#[async_trait]
impl ReadModel for FakeReadModel {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        self.write(item, |current| current.version >= item.version)
    }

    async fn repair(&self, item: &Item) -> Result<Upsert, StoreError> {
        self.write(item, |current| current.version > item.version || current == item)
    }

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError> {
        Ok(self.items.lock().unwrap().get(&id).cloned())
    }

    async fn list_page(&self, limit: Option<u32>, after: Option<&PageKey>) -> Result<Page, StoreError> {
        let items = self.items.lock().unwrap();
        let size = limit.map_or(self.page_size, |l| l as usize);
        let start = after.map(|k| ItemId::parse(&k.0).unwrap());
        let rest: Vec<Item> = items.values().filter(|i| start.is_none_or(|s| i.id > s)).cloned().collect();
        let page: Vec<Item> = rest.iter().take(size).cloned().collect();
        let next = (rest.len() > size).then(|| PageKey(page.last().unwrap().id.to_string()));
        Ok(Page { items: page, next })
    }
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

fn create_service(events: Arc<FakeEvents>) -> CreateItemService {
    CreateItemService::new(events, Arc::new(FixedClock::default()), Arc::new(SequentialIds::default()))
}

fn command(name: &str) -> CreateItem {
    CreateItem { name: name.into(), timestamp: "N/A".into() }
}

async fn created_events(count: usize) -> Vec<Event> {
    let events = Arc::new(FakeEvents::default());
    let service = create_service(events.clone());
    for n in 0..count {
        service.create("sub-1", command(&format!("item {n}"))).await.unwrap();
    }
    events.log.lock().unwrap().clone()
}

#[tokio::test]
async fn create_appends_one_item_created_event_at_version_1() {
    let events = Arc::new(FakeEvents::default());
    let item = create_service(events.clone()).create("sub-1", command("Pen")).await.unwrap();

    let log = events.log.lock().unwrap().clone();
    assert_eq!(log.len(), 1);
    let event = &log[0];
    assert_eq!(event.item_id, item.id);
    assert_ne!(event.event_id, item.id.0, "event and item ids are distinct");
    assert_eq!(event.version, 1);
    assert_eq!(event.subject, "sub-1");
    assert_eq!(event.occurred_at, FixedClock::default().0);
    assert_eq!(event.payload, EventPayload::ItemCreated(ItemCreated { name: "Pen".into(), timestamp: "N/A".into() }));
    assert_eq!(item.created_by, "sub-1");
    assert_eq!(item.version, 1);
}

#[tokio::test]
async fn create_on_a_store_that_is_down_fails_and_records_nothing() {
    let events = Arc::new(FakeEvents { down: true, ..FakeEvents::default() });
    let result = create_service(events.clone()).create("sub-1", command("Pen")).await;
    assert!(matches!(result, Err(CreateError::Store(StoreError::Unavailable(_)))));
    assert!(events.log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn projecting_a_batch_twice_gives_the_same_read_model() {
    let events = created_events(3).await;
    let read_model = Arc::new(FakeReadModel::new(10));
    let projector = ProjectorService::new(read_model.clone());

    let first = projector.project_batch(&events).await;
    assert_eq!((first.applied, first.already_newer, first.failed), (3, 0, None));
    let snapshot = read_model.items.lock().unwrap().clone();

    let second = projector.project_batch(&events).await;
    assert_eq!((second.applied, second.already_newer, second.failed), (0, 3, None));
    assert_eq!(*read_model.items.lock().unwrap(), snapshot);
}

#[tokio::test]
async fn a_batch_stops_at_the_first_failure_and_reports_its_index() {
    let events = created_events(3).await;
    let read_model = Arc::new(FakeReadModel { fail_write_number: Some(2), ..FakeReadModel::new(10) });
    let outcome = ProjectorService::new(read_model.clone()).project_batch(&events).await;
    assert_eq!(outcome.applied, 1);
    assert!(matches!(outcome.failed, Some((1, StoreError::Unavailable(_)))));
    assert_eq!(read_model.items.lock().unwrap().len(), 1, "nothing after the failure was applied");
}

#[tokio::test]
async fn listing_without_limit_follows_every_page() {
    let events = created_events(7).await;
    let read_model = Arc::new(FakeReadModel::new(2));
    ProjectorService::new(read_model.clone()).project_batch(&events).await;

    let listing = QueryService::new(read_model, Arc::new(PrefixCursors)).list(None, None, None).await.unwrap();
    assert_eq!(listing.items.len(), 7);
    assert_eq!(listing.next_cursor, None);
}

#[tokio::test]
async fn listing_with_limit_pages_through_sealed_cursors() {
    let events = created_events(5).await;
    let read_model = Arc::new(FakeReadModel::new(100));
    ProjectorService::new(read_model.clone()).project_batch(&events).await;
    let queries = QueryService::new(read_model, Arc::new(PrefixCursors));

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = queries.list(Some(2), cursor.as_deref(), None).await.unwrap();
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
        let listing = queries.list(None, cursor.as_deref(), None).await.unwrap();
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
    let read_model = Arc::new(FakeReadModel::new(2));
    ProjectorService::new(read_model.clone()).project_batch(&events).await;
    let all: Vec<Item> = read_model.items.lock().unwrap().values().cloned().collect();
    // Room for exactly three items: `[`, three items, two commas, `]`.
    let three = 2 + all[..3].iter().map(embedded_size).sum::<usize>() + 2;
    let budget = ListBudget { max_body_bytes: three, max_time: Duration::from_secs(60), reserve: Duration::ZERO };
    let queries = QueryService::new(read_model, Arc::new(PrefixCursors)).with_list_budget(budget);

    let listings = follow(&queries).await;
    assert_eq!(listings.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1], "cut mid-page, at whole items");
    let seen: Vec<ItemId> = listings.concat();
    assert_eq!(seen, all.iter().map(|i| i.id).collect::<Vec<_>>(), "every item once, in order");
}

#[tokio::test]
async fn given_an_item_larger_than_the_budget_when_listing_then_it_still_comes_alone() {
    let events = created_events(2).await;
    let read_model = Arc::new(FakeReadModel::new(10));
    ProjectorService::new(read_model.clone()).project_batch(&events).await;
    let budget = ListBudget { max_body_bytes: 10, max_time: Duration::from_secs(60), reserve: Duration::ZERO };
    let queries = QueryService::new(read_model, Arc::new(PrefixCursors)).with_list_budget(budget);
    assert_eq!(follow(&queries).await.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1], "progress, one by one");
}

#[tokio::test]
async fn given_a_time_budget_when_it_is_spent_then_the_listing_stops_between_pages() {
    let events = created_events(6).await;
    let read_model = Arc::new(FakeReadModel::new(2));
    ProjectorService::new(read_model.clone()).project_batch(&events).await;
    let budget = ListBudget { max_body_bytes: usize::MAX, max_time: Duration::ZERO, reserve: Duration::ZERO };
    let queries = QueryService::new(read_model, Arc::new(PrefixCursors)).with_list_budget(budget);
    assert_eq!(follow(&queries).await.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2]);
}

/// Review finding 8: pages of tombstones only, and the invocation's
/// deadline (less the reserve) has come: the listing answers an empty page
/// with a cursor instead of reading on, and following the cursors still
/// reaches every live item.
#[tokio::test]
async fn given_only_tombstones_by_the_deadline_when_listing_then_an_empty_page_with_a_cursor() {
    let events = created_events(5).await;
    let read_model = Arc::new(FakeReadModel::new(2));
    ProjectorService::new(read_model.clone()).project_batch(&events).await;
    let mut ids: Vec<ItemId> = read_model.items.lock().unwrap().keys().copied().collect();
    ids.sort();
    for id in &ids[..4] {
        let mut items = read_model.items.lock().unwrap();
        let item = items.get_mut(id).unwrap();
        (item.version, item.deleted) = (2, true);
    }
    let budget =
        ListBudget { max_body_bytes: usize::MAX, max_time: Duration::from_secs(60), reserve: Duration::from_secs(1) };
    let queries = QueryService::new(read_model, Arc::new(PrefixCursors)).with_list_budget(budget);

    let soon = Instant::now() + Duration::from_millis(500);
    let first = queries.list(None, None, Some(soon)).await.unwrap();
    assert_eq!(first.items, vec![]);
    let mut cursor = first.next_cursor.expect("an empty page is not the end");
    let mut seen = Vec::new();
    loop {
        let listing = queries.list(None, Some(&cursor), Some(soon)).await.unwrap();
        seen.extend(listing.items.iter().map(|item| item.id));
        match listing.next_cursor {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(seen, vec![ids[4]]);
}

#[tokio::test]
async fn embedded_size_counts_the_escapes_a_json_envelope_adds() {
    let events = created_events(1).await;
    let mut item = crate::projection::fold(&events).unwrap();
    let plain = embedded_size(&item);
    assert_eq!(plain, serde_json::to_string(&serde_json::to_string(&item).unwrap()).unwrap().len() - 2);
    item.name = r#"say "hi" \ bye"#.into();
    assert_eq!(embedded_size(&item), serde_json::to_string(&serde_json::to_string(&item).unwrap()).unwrap().len() - 2);
    assert!(embedded_size(&item) > plain);
}

#[tokio::test]
async fn a_tampered_cursor_is_refused() {
    let queries = QueryService::new(Arc::new(FakeReadModel::new(10)), Arc::new(PrefixCursors));
    assert_eq!(queries.list(Some(2), Some("forged"), None).await, Err(QueryError::InvalidCursor));
}

#[tokio::test]
async fn get_returns_the_projected_item_or_none() {
    let events = created_events(1).await;
    let read_model = Arc::new(FakeReadModel::new(10));
    ProjectorService::new(read_model.clone()).project_batch(&events).await;
    let queries = QueryService::new(read_model, Arc::new(PrefixCursors));

    let item = queries.get(events[0].item_id).await.unwrap().unwrap();
    assert_eq!(item.name, "item 0");
    assert_eq!(queries.get(ItemId(uuid::Uuid::from_u128(999))).await.unwrap(), None);
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).unwrap()
}

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_first_item_and_appends_nothing() {
    let events = Arc::new(FakeEvents::default());
    let service = create_service(events.clone());
    let Created::New(first) = service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap() else {
        panic!("the first request creates");
    };
    let retry = service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap();
    assert_eq!(retry, Created::Repeated(first));
    assert_eq!(events.log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let events = Arc::new(FakeEvents::default());
    let service = create_service(events.clone());
    service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap();
    assert_eq!(service.create_idempotent("sub-1", command("Pencil"), &key("k1")).await, Err(CreateError::KeyReused));
    assert_eq!(events.log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn keys_are_per_subject() {
    let events = Arc::new(FakeEvents::default());
    let service = create_service(events.clone());
    let mine = service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap();
    let theirs = service.create_idempotent("sub-2", command("Pen"), &key("k1")).await.unwrap();
    assert!(matches!(theirs, Created::New(_)));
    assert_ne!(mine.item().id, theirs.item().id);
    assert_eq!(events.log.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_expired_key_creates_a_new_item() {
    let events = Arc::new(FakeEvents::default());
    let service = create_service(events.clone()).with_idempotency_ttl(chrono::TimeDelta::zero());
    let first = service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap();
    let second = service.create_idempotent("sub-1", command("Pen"), &key("k1")).await.unwrap();
    assert!(matches!(second, Created::New(_)));
    assert_ne!(first.item().id, second.item().id);
}
