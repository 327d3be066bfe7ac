//! The ports' conformance suite on the volatile backend (in memory).

use std::sync::Arc;

use items_domain::memory::InMemoryReadModel;
use items_local::volatile::VolatileEventStore;
use items_testkit::conformance::Backend;
use items_testkit::conformance_suite;

fn volatile() -> Backend {
    let store = Arc::new(VolatileEventStore::default());
    Backend { events: store.clone(), scan: store, read_model: Arc::new(InMemoryReadModel::default()) }
}

conformance_suite!(volatile(), 3000, 1);

/// The event-sourcing guarantees, model-based (items_testkit::model), in memory.
struct InMemory;

impl items_testkit::model::MakeBackend for InMemory {
    fn make(_: &tokio::runtime::Runtime) -> items_testkit::model::ModelBackend {
        let store = Arc::new(VolatileEventStore::default());
        items_testkit::model::ModelBackend {
            events: store.clone(),
            scan: store.clone(),
            read_model: Arc::new(InMemoryReadModel::default()),
            ids: Arc::new(items_domain::testing::SequentialIds::default()),
            new_table: None,
            feed: Some(crate::change_feed(store)),
        }
    }
}

#[test]
fn the_read_model_is_the_fold_of_the_log_under_every_interleaving() {
    items_testkit::model::run::<InMemory>(256, 40, 0x17e5_2026);
}

#[tokio::test]
async fn the_memory_fold_keeps_the_newest_state_and_hands_each_back_once() {
    let fold = std::sync::Arc::new(items_domain::memory::InMemoryFold::default());
    items_testkit::conformance::a_fold_store_keeps_the_newest_state_and_hands_each_back_once(fold).await;
}
