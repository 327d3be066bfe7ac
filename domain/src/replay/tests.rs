use std::sync::Mutex;

use super::*;
use crate::event::{EventPayload, ItemCreated};
use crate::ports::{EventStore, PageKey, ReadModel, ScanPage};
use crate::testing::at;

fn created(item: u128, version: u64, name: &str) -> Event {
    Event {
        event_id: uuid::Uuid::from_u128(1000 + item * 10 + u128::from(version)),
        item_id: ItemId(uuid::Uuid::from_u128(item)),
        version,
        occurred_at: at("2026-01-02T03:04:05.678Z"),
        subject: "sub".into(),
        payload: EventPayload::ItemCreated(ItemCreated {
            name: name.into(),
            timestamp: "N/A".into(),
            description: None,
        }),
    }
}

/// A log split into segments by item id, served two events a page; can fail
/// once at a given (segment, page).
struct PagedLog {
    events: Vec<Event>,
    fail_at: Mutex<Option<(u32, usize)>>,
}

#[async_trait]
impl EventLogScan for PagedLog {
    async fn scan_page(&self, segment: u32, total: u32, after: Option<&PageKey>) -> Result<ScanPage, StoreError> {
        let mine: Vec<&Event> =
            self.events.iter().filter(|e| (e.item_id.0.as_u128() % u128::from(total)) as u32 == segment).collect();
        let start: usize = after.map_or(0, |k| k.0.parse().unwrap());
        let mut fail_at = self.fail_at.lock().unwrap();
        if *fail_at == Some((segment, start)) {
            *fail_at = None;
            return Err(StoreError::Unavailable("interrupted".into()));
        }
        drop(fail_at);
        let events: Vec<Event> = mine.iter().skip(start).take(2).map(|e| (*e).clone()).collect();
        let next = (start + 2 < mine.len()).then(|| PageKey((start + 2).to_string()));
        Ok(ScanPage { events, recorded_at: Vec::new(), skipped: 0, next })
    }

    async fn item_stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError> {
        Ok(self.events.iter().filter(|e| e.item_id == item_id).cloned().collect())
    }
}

#[derive(Default)]
struct Table(Mutex<HashMap<ItemId, Item>>);

#[async_trait]
impl ReplayTarget for Table {
    async fn write(&self, items: Vec<Item>) -> Result<WriteStats, StoreError> {
        let mut table = self.0.lock().unwrap();
        let mut stats = WriteStats::default();
        for item in items {
            match table.get(&item.id) {
                Some(current) if current.version >= item.version => stats.already_newer += 1,
                _ => {
                    table.insert(item.id, item);
                    stats.written += 1;
                }
            }
        }
        Ok(stats)
    }
}

#[derive(Default)]
struct MemoryCheckpoints(Mutex<HashMap<u32, SegmentProgress>>);

impl Checkpoints for MemoryCheckpoints {
    fn load(&self, segment: u32) -> Option<SegmentProgress> {
        self.0.lock().unwrap().get(&segment).cloned()
    }
    fn save(&self, segment: u32, progress: &SegmentProgress) -> Result<(), StoreError> {
        self.0.lock().unwrap().insert(segment, progress.clone());
        Ok(())
    }
}

fn ids(differences: &Differences) -> Vec<ItemId> {
    differences.ids.iter().copied().collect()
}

fn log() -> Vec<Event> {
    (1..=9).flat_map(|item| [created(item, 1, "first"), created(item, 2, &format!("item {item}"))]).collect()
}

fn service(log: Arc<PagedLog>, table: Arc<Table>, checkpoints: Arc<MemoryCheckpoints>) -> ReplayService {
    ReplayService::new(log, Some(table), checkpoints, Arc::new(()))
}

#[test]
fn folding_keeps_the_latest_state_of_each_item() {
    let states = fold_states(&[created(1, 2, "new"), created(1, 1, "old"), created(2, 1, "other")]);
    assert_eq!(states.len(), 2);
    assert_eq!(states[&ItemId(uuid::Uuid::from_u128(1))].name, "new");
}

#[tokio::test]
async fn given_a_log_when_replayed_then_the_table_equals_the_folded_log() {
    let table = Arc::new(Table::default());
    let log = Arc::new(PagedLog { events: log(), fail_at: Mutex::new(None) });
    let summary = service(log.clone(), table.clone(), Arc::default()).run(3).await.unwrap();

    assert_eq!(summary.events, 18);
    let expected = fold_states(&log.events);
    let report = verify(&expected, table.0.lock().unwrap().values().cloned());
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.expected, 9);
}

#[tokio::test]
async fn replaying_twice_changes_nothing_the_second_time() {
    let table = Arc::new(Table::default());
    let log = Arc::new(PagedLog { events: log(), fail_at: Mutex::new(None) });
    service(log.clone(), table.clone(), Arc::default()).run(2).await.unwrap();
    let snapshot = table.0.lock().unwrap().clone();
    let again = service(log, table.clone(), Arc::default()).run(2).await.unwrap();
    assert_eq!(again.writes.written, 0);
    assert_eq!(*table.0.lock().unwrap(), snapshot);
}

#[tokio::test]
async fn an_interrupted_replay_resumes_from_its_checkpoints() {
    let table = Arc::new(Table::default());
    let checkpoints = Arc::new(MemoryCheckpoints::default());
    let log = Arc::new(PagedLog { events: log(), fail_at: Mutex::new(Some((1, 4))) });

    let first = service(log.clone(), table.clone(), checkpoints.clone()).run(2).await;
    assert!(first.is_err(), "the run stops at the failure");
    assert_eq!(checkpoints.load(1), Some(SegmentProgress::After(PageKey("4".into()))));

    let resumed = service(log.clone(), table.clone(), checkpoints.clone()).run(2).await.unwrap();
    assert!(resumed.events < 18, "finished segments and pages were not read again");
    assert!(verify(&fold_states(&log.events), table.0.lock().unwrap().values().cloned()).is_clean());
    assert_eq!(checkpoints.load(0), Some(SegmentProgress::Done));
    assert_eq!(checkpoints.load(1), Some(SegmentProgress::Done));
}

#[tokio::test]
async fn a_dry_run_reads_everything_and_writes_nothing() {
    let log = Arc::new(PagedLog { events: log(), fail_at: Mutex::new(None) });
    let checkpoints = Arc::new(MemoryCheckpoints::default());
    let summary = ReplayService::new(log, None, checkpoints.clone(), Arc::new(())).run(2).await.unwrap();
    assert_eq!(summary.events, 18);
    assert_eq!(summary.writes, WriteStats::default());
    assert_eq!(checkpoints.load(0), None, "a dry run leaves no checkpoints");
}

#[test]
fn verify_reports_missing_stale_and_extra_items() {
    let expected = fold_states(&log());
    let mut actual: Vec<Item> = expected.values().cloned().collect();
    actual.sort_by_key(|i| i.id);
    let missing = actual.remove(0).id;
    actual[0].name = "corrupted".into();
    let stale = actual[0].id;
    let mut extra = actual[1].clone();
    extra.id = ItemId(uuid::Uuid::from_u128(999));
    actual.push(extra);

    let report = verify(&expected, actual);
    assert_eq!(ids(&report.missing), vec![missing]);
    assert_eq!(ids(&report.stale), vec![stale]);
    assert_eq!(ids(&report.extra), vec![ItemId(uuid::Uuid::from_u128(999))]);
    assert!(!report.is_clean());
}

#[tokio::test]
async fn streams_with_renames_and_deletes_split_across_pages_replay_to_the_folded_log() {
    use crate::event::ItemUpdated;
    let change = |item: u128, version: u64, payload: EventPayload| Event { payload, ..created(item, version, "") };
    let rename = |item, version, name: &str| {
        change(
            item,
            version,
            EventPayload::ItemUpdated(ItemUpdated { name: Some(name.into()), timestamp: None, description: None }),
        )
    };
    // Three events per item, two per page: most pages start in the middle of a stream.
    let events: Vec<Event> = (1..=7)
        .flat_map(|item| {
            let last =
                if item % 2 == 0 { change(item, 3, EventPayload::ItemDeleted) } else { rename(item, 3, "third") };
            [created(item, 1, "first"), rename(item, 2, "second"), last]
        })
        .collect();
    let log = Arc::new(PagedLog { events, fail_at: Mutex::new(None) });
    let table = Arc::new(Table::default());
    service(log.clone(), table.clone(), Arc::default()).run(2).await.unwrap();

    let expected = fold_states(&log.events);
    assert!(verify(&expected, table.0.lock().unwrap().values().cloned()).is_clean());
    let table = table.0.lock().unwrap();
    assert_eq!(table[&ItemId(uuid::Uuid::from_u128(1))].name, "third");
    assert!(table[&ItemId(uuid::Uuid::from_u128(2))].deleted, "a deleted item replays to its tombstone");
}

fn deleted(item: u128, version: u64) -> Event {
    Event { payload: EventPayload::ItemDeleted, ..created(item, version, "") }
}

/// Review finding 8: tombstones expire, so a deleted item without a row is
/// as the log says.
#[test]
fn verify_accepts_a_tombstone_that_expired() {
    let log = [created(1, 1, "kept"), created(2, 1, "gone"), deleted(2, 2)];
    let expected = fold_states(&log);
    let kept = expected[&ItemId(uuid::Uuid::from_u128(1))].clone();
    assert!(verify(&expected, [kept]).is_clean());
    assert_eq!(
        ids(&verify(&expected, []).missing),
        vec![ItemId(uuid::Uuid::from_u128(1))],
        "a live item must be there"
    );
}

/// Review finding 15: the log was scanned before an item changed, the table
/// read after. The recheck reads the stream and the row as they are now and
/// keeps only what still differs.
#[tokio::test]
async fn a_recheck_drops_differences_that_were_changes_in_between() {
    use crate::ports::ReadModel;
    let scanned = [created(1, 1, "old"), created(2, 1, "wrong"), created(3, 1, "new")];
    let report = verify(&fold_states(&scanned), []);
    assert_eq!(report.missing.count, 3);

    // Since the scan: item 1 was renamed (and projected), item 3 deleted
    // (its tombstone expired); item 2's row is really wrong, item 4 is
    // really extra.
    let renamed = Event {
        payload: EventPayload::ItemUpdated(crate::event::ItemUpdated {
            name: Some("renamed".into()),
            timestamp: None,
            description: None,
        }),
        ..created(1, 2, "")
    };
    let now = PagedLog {
        events: vec![created(1, 1, "old"), renamed, created(2, 1, "right"), created(3, 1, "new"), deleted(3, 2)],
        fail_at: Mutex::new(None),
    };
    let table = crate::memory::InMemoryReadModel::default();
    for item in fold_states(&now.events).into_values().filter(|item| item.id != ItemId(uuid::Uuid::from_u128(3))) {
        let item = if item.name == "right" { Item { name: "wrong".into(), ..item } } else { item };
        table.upsert_if_newer(&item).await.unwrap();
    }
    let extra = fold_states(&[created(4, 1, "stray")]).remove(&ItemId(uuid::Uuid::from_u128(4))).unwrap();
    table.upsert_if_newer(&extra).await.unwrap();
    let report = VerifyReport { extra: Differences { count: 1, ids: [extra.id].into() }, ..report };

    let rechecked = recheck(&now, &table, report).await.unwrap();
    assert_eq!(ids(&rechecked.stale), vec![ItemId(uuid::Uuid::from_u128(2))]);
    assert_eq!(rechecked.missing, Differences::default());
    assert_eq!(ids(&rechecked.extra), vec![extra.id]);
}

/// `--verify` end to end on the in-memory ports: each row is compared with
/// its expected state as it is taken out of the fold store, what is left
/// there has no row.
#[tokio::test]
async fn verifying_a_read_model_finds_missing_stale_and_extra_rows() {
    use crate::memory::{InMemoryFold, InMemoryReadModel};
    use crate::ports::{FoldStore, ReadModel};
    let mut events = log();
    events.extend([created(20, 1, "gone"), deleted(20, 2)]);
    let log = Arc::new(PagedLog { events, fail_at: Mutex::new(None) });
    let table = InMemoryReadModel::default();
    let mut expected: Vec<Item> = fold_states(&log.events).into_values().collect();
    expected.sort_by_key(|item| item.id);
    let missing = expected[0].id;
    let stale = Item { name: "wrong".into(), ..expected[1].clone() };
    let extra = Item { id: ItemId(uuid::Uuid::from_u128(999)), ..expected[2].clone() };
    for item in expected.iter().skip(2).filter(|item| !item.deleted).chain([&stale, &extra]) {
        table.upsert_if_newer(item).await.unwrap();
    }

    let fold = Arc::new(InMemoryFold::default());
    let (summary, report) = verify_read_model(log, &table, fold.clone(), 2, Arc::new(())).await.unwrap();
    assert_eq!(summary.events, 20);
    assert_eq!((report.expected, report.actual), (10, 9), "{report:?}");
    assert_eq!(
        (ids(&report.missing), ids(&report.stale), ids(&report.extra)),
        (vec![missing], vec![stale.id], vec![extra.id])
    );
    assert!(fold.take_any(usize::MAX).await.unwrap().is_empty(), "every state was taken out");
}

/// Issue 31: a report's memory is bounded: every difference is counted, the
/// first `REPORT_IDS` by id are listed; a recheck keeps the unlisted ones counted.
#[tokio::test]
async fn a_report_counts_every_difference_and_lists_the_first() {
    let events: Vec<Event> = (1..=(REPORT_IDS as u128 + 5)).map(|item| created(item, 1, "x")).collect();
    let report = verify(&fold_states(&events), []);
    assert_eq!(report.missing.count, REPORT_IDS + 5);
    assert_eq!(report.missing.unlisted(), 5);
    assert_eq!(report.missing.ids.first(), Some(&ItemId(uuid::Uuid::from_u128(1))));
    assert_eq!(report.missing.ids.last(), Some(&ItemId(uuid::Uuid::from_u128(REPORT_IDS as u128))));

    // Since then every listed item was projected; the unlisted five are not known to be.
    let now = PagedLog { events: events.clone(), fail_at: Mutex::new(None) };
    let table = crate::memory::InMemoryReadModel::default();
    for item in fold_states(&events).into_values() {
        crate::ports::ReadModel::upsert_if_newer(&table, &item).await.unwrap();
    }
    let rechecked = recheck(&now, &table, report).await.unwrap();
    assert_eq!(rechecked.missing.count, 5);
    assert!(rechecked.missing.ids.is_empty());
    assert!(!rechecked.is_clean());
}

/// Review H1: a catch-up (and the DLQ redrive, which is one) selects the
/// items whose events reached the log since the given time, not those whose
/// events say they occurred since: `items import` appends events with the
/// time they had in the file, a year back here.
#[tokio::test]
async fn a_catch_up_takes_an_event_imported_with_an_old_time() {
    let log = Arc::new(crate::memory::InMemoryEventStore::default());
    let before_import = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    let imported = Event { occurred_at: at("2025-01-01T00:00:00.000Z"), ..created(7, 1, "from a backup") };
    log.append(0, std::slice::from_ref(&imported)).await.unwrap();
    let target = Arc::new(crate::memory::InMemoryReadModel::default());

    let catch_up = ReplayService::new(
        log.clone(),
        Some(Arc::new(ReadModelTarget::new(target.clone(), 1))),
        Arc::new(NoCheckpoints),
        Arc::new(()),
    )
    .since(before_import);
    let summary = catch_up.run(1).await.unwrap();

    assert_eq!(summary.items, 1);
    assert_eq!(target.get(imported.item_id).await.unwrap().map(|item| item.name), Some("from a backup".into()));
}

/// A log of one item created, then deleted three days ago (past the read
/// table's 48 h tombstone lifetime), and one deleted just now.
fn deleted_log() -> (Vec<Event>, ItemId, ItemId) {
    let three_days_ago = chrono::Utc::now() - chrono::TimeDelta::days(3);
    let old = |version, payload| Event { occurred_at: three_days_ago, payload, ..created(1, version, "gone long ago") };
    let recent = Event { occurred_at: chrono::Utc::now(), payload: EventPayload::ItemDeleted, ..created(2, 2, "") };
    let events = vec![
        old(
            1,
            EventPayload::ItemCreated(ItemCreated {
                name: "gone long ago".into(),
                timestamp: "t".into(),
                description: None,
            }),
        ),
        old(2, EventPayload::ItemDeleted),
        created(2, 1, "gone just now"),
        recent,
    ];
    (events, ItemId(uuid::Uuid::from_u128(1)), ItemId(uuid::Uuid::from_u128(2)))
}

/// Review M4: a replay does not write a tombstone that has expired again
/// (with a fresh expiry, which undid the TTL's work), into a new table or in
/// place over an absent row; a recent one it writes. In place over a row
/// that still shows the item live (a deletion the projection missed), it
/// writes the tombstone all the same.
#[tokio::test]
async fn a_replay_leaves_out_tombstones_past_their_lifetime() {
    let (events, long_ago, just_now) = deleted_log();
    let cutoff = chrono::Utc::now() - chrono::TimeDelta::hours(48);
    let log = Arc::new(PagedLog { events, fail_at: Mutex::new(None) });

    let table = Arc::new(Table::default());
    let replay = ReplayService::new(log.clone(), Some(table.clone()), Arc::new(NoCheckpoints), Arc::new(()))
        .tombstones_expired_before(cutoff);
    let summary = replay.run(1).await.unwrap();
    assert_eq!(summary.expired_tombstones, 1);
    let written = table.0.lock().unwrap().clone();
    assert!(!written.contains_key(&long_ago), "an expired tombstone is not written again");
    assert!(written[&just_now].deleted);

    let live = Arc::new(crate::memory::InMemoryReadModel::default());
    let missed = fold_states(&log.events[..1]).remove(&long_ago).unwrap();
    live.upsert_if_newer(&missed).await.unwrap();
    let in_place = ReplayService::new(
        log.clone(),
        Some(Arc::new(ReadModelTarget::new(live.clone(), 1))),
        Arc::new(NoCheckpoints),
        Arc::new(()),
    )
    .tombstones_expired_before(cutoff);
    in_place.run(1).await.unwrap();
    assert!(live.get(long_ago).await.unwrap().unwrap().deleted, "a row still live gets its tombstone");

    let empty = Arc::new(crate::memory::InMemoryReadModel::default());
    ReplayService::new(
        log,
        Some(Arc::new(ReadModelTarget::new(empty.clone(), 1))),
        Arc::new(NoCheckpoints),
        Arc::new(()),
    )
    .tombstones_expired_before(cutoff)
    .run(1)
    .await
    .unwrap();
    assert_eq!(empty.get(long_ago).await.unwrap(), None, "no expired tombstone over an absent row");
    assert!(empty.get(just_now).await.unwrap().unwrap().deleted);
}
