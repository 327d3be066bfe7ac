//! The projector under concurrent application, as properties: batches that
//! interleave, shuffle and repeat many items' events, with a failure injected
//! on one item. Whatever the interleaving, an item's events are applied one
//! at a time, the failure reported is the first in batch order, and a retry
//! from it (what Lambda does) leaves the read model equal to the fold of the
//! log. A failing case prints its inputs; `PROPTEST_RNG_SEED=<n>` replays.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use proptest::prelude::*;

use super::*;
use crate::event::{Event, EventPayload, ItemCreated, ItemId, ItemUpdated};
use crate::item::Item;
use crate::memory::{InMemoryEventStore, InMemoryReadModel};
use crate::ports::{EventStore, Page, PageKey, ReadModel, StoreError, Upsert};
use crate::projection::fold;
use crate::testing::at;

/// The in-memory read model, watched: it fails some items' first `failures`
/// writes, and records any moment two writes of one item overlap.
struct Watched {
    inner: InMemoryReadModel,
    failing: HashMap<ItemId, AtomicUsize>,
    in_flight: Mutex<HashSet<ItemId>>,
    overlaps: AtomicUsize,
    failed: Mutex<Vec<ItemId>>,
}

impl Watched {
    fn new(failing: &[ItemId], failures: usize) -> Self {
        Self {
            inner: InMemoryReadModel::default(),
            failing: failing.iter().map(|id| (*id, AtomicUsize::new(failures))).collect(),
            in_flight: Mutex::default(),
            overlaps: AtomicUsize::new(0),
            failed: Mutex::default(),
        }
    }
}

#[async_trait]
impl ReadModel for Watched {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        if !self.in_flight.lock().unwrap().insert(item.id) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        // A write takes time: let the other items' writes in.
        tokio::task::yield_now().await;
        let failing = self
            .failing
            .get(&item.id)
            .is_some_and(|left| left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok());
        let result = if failing {
            self.failed.lock().unwrap().push(item.id);
            Err(StoreError::Unavailable("throttled".into()))
        } else {
            self.inner.upsert_if_newer(item).await
        };
        self.in_flight.lock().unwrap().remove(&item.id);
        result
    }

    async fn repair(&self, item: &Item) -> Result<Upsert, StoreError> {
        self.inner.repair(item).await
    }

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError> {
        tokio::task::yield_now().await;
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

/// Item `n`'s stream: a create and `length - 1` renames.
fn stream(n: u128, length: u64) -> Vec<Event> {
    let id = ItemId(uuid::Uuid::from_u128(n + 1));
    (1..=length)
        .map(|version| Event {
            event_id: uuid::Uuid::from_u128((n + 1) << 32 | u128::from(version)),
            item_id: id,
            version,
            occurred_at: at("2026-01-02T03:04:05.678Z"),
            subject: "owner".into(),
            payload: if version == 1 {
                EventPayload::ItemCreated(ItemCreated {
                    name: format!("item {n}"),
                    timestamp: "t".into(),
                    description: None,
                })
            } else {
                EventPayload::ItemUpdated(ItemUpdated {
                    name: Some(format!("item {n} v{version}")),
                    timestamp: None,
                    description: None,
                })
            },
        })
        .collect()
}

/// A batch: every event of every stream at least once, in the order the
/// keys give (`order[i]` sorts event `i`), some repeated at other places.
fn batch(streams: &[Vec<Event>], order: &[u32], repeats: &[(usize, u32)]) -> Vec<Event> {
    let all: Vec<&Event> = streams.iter().flatten().collect();
    let mut keyed: Vec<(u32, usize, &Event)> =
        all.iter().enumerate().map(|(i, event)| (order[i % order.len()], i, *event)).collect();
    for &(source, key) in repeats {
        keyed.push((key, all.len() + keyed.len(), all[source % all.len()]));
    }
    keyed.sort_by_key(|(key, tie, _)| (*key, *tie));
    keyed.into_iter().map(|(_, _, event)| event.clone()).collect()
}

/// Stream lengths, ordering keys, repeats, failing items, failures per
/// failing item, and whether the batch keeps stream order.
type Case = (Vec<u64>, Vec<u32>, Vec<(usize, u32)>, Vec<usize>, usize, bool);

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(1..5u64, 1..12),
        proptest::collection::vec(any::<u32>(), 1..60),
        proptest::collection::vec((any::<usize>(), any::<u32>()), 0..6),
        proptest::collection::vec(any::<usize>(), 0..3),
        1..3usize,
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_application_keeps_item_order_reports_the_first_failure_and_converges_on_retry(
        (lengths, order, repeats, failing, failures, in_order) in case()
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let streams: Vec<Vec<Event>> =
                lengths.iter().enumerate().map(|(n, length)| stream(n as u128, *length)).collect();
            // In stream order (as one shard delivers) or shuffled (as redeliveries may).
            let order: Vec<u32> = if in_order { (0..).take(order.len().max(60)).collect() } else { order };
            let batch = batch(&streams, &order, &repeats);
            let log = Arc::new(InMemoryEventStore::default());
            for events in &streams {
                log.append(0, events).await.unwrap();
            }
            let failing: Vec<ItemId> = failing.iter().map(|n| streams[n % streams.len()][0].item_id).collect();
            let read_model = Arc::new(Watched::new(&failing, failures));
            let projector = ProjectorService::new(read_model.clone(), log.clone()).with_concurrency(8);

            let outcome = projector.project_batch(&batch).await;
            prop_assert_eq!(read_model.overlaps.load(Ordering::SeqCst), 0, "two writes of one item at once");
            let failed = read_model.failed.lock().unwrap().clone();
            match &outcome.failed {
                None => prop_assert!(failed.is_empty()),
                Some((index, error)) => {
                    prop_assert!(matches!(error, StoreError::Unavailable(_)));
                    prop_assert!(failed.contains(&batch[*index].item_id), "the reported event is one that failed");
                    // The first failure in batch order: each item fails where
                    // it fails alone, one event after another.
                    let mut first = usize::MAX;
                    for id in &failing {
                        let indices: Vec<usize> = (0..batch.len()).filter(|i| batch[*i].item_id == *id).collect();
                        let alone: Vec<Event> = indices.iter().map(|i| batch[*i].clone()).collect();
                        let fresh = Arc::new(Watched::new(&[*id], failures));
                        let sequential = ProjectorService::new(fresh, log.clone()).with_concurrency(1);
                        if let Some((local, _)) = sequential.project_batch(&alone).await.failed {
                            first = first.min(indices[local]);
                        }
                    }
                    prop_assert_eq!(*index, first);
                    // Every event before it in batch order whose item did not
                    // fail was applied (or found newer) by this batch.
                    for event in batch[..*index].iter().filter(|e| !failed.contains(&e.item_id)) {
                        let row = read_model.inner.get(event.item_id).await.unwrap();
                        prop_assert!(row.is_some_and(|row| row.version >= event.version));
                    }
                }
            }
            // Lambda retries from the reported record until the batch passes.
            let mut from = outcome.failed.map_or(batch.len(), |(index, _)| index);
            while from < batch.len() {
                let retry = projector.project_batch(&batch[from..]).await;
                from = retry.failed.map_or(batch.len(), |(index, _)| from + index);
            }
            let want: HashMap<ItemId, Item> =
                streams.iter().map(|events| (events[0].item_id, fold(events).unwrap())).collect();
            for (id, item) in &want {
                let row = read_model.inner.get(*id).await.unwrap();
                prop_assert_eq!(row.as_ref(), Some(item));
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn one_at_a_time_is_still_available() {
    let streams: Vec<Vec<Event>> = (0..5).map(|n| stream(n, 3)).collect();
    let batch: Vec<Event> = streams.iter().flatten().cloned().collect();
    let log = Arc::new(InMemoryEventStore::default());
    let read_model = Arc::new(Watched::new(&[streams[2][0].item_id], 1));
    let projector = ProjectorService::new(read_model.clone(), log).with_concurrency(1);
    let outcome = projector.project_batch(&batch).await;
    // One after another: the first failure stops the batch there.
    assert_eq!(outcome.failed.map(|(index, _)| index), Some(6));
    assert_eq!(outcome.applied, 6);
    assert_eq!(read_model.inner.get(streams[3][0].item_id).await.unwrap(), None);
}
