//! The ports' conformance suite on a real DynamoDB Local (started by the testkit).

use std::sync::Arc;

use items_aws::dynamodb::{DynamoEventStore, DynamoReadModel, ensure_events_table, ensure_items_table};
use items_testkit::conformance::Backend;
use items_testkit::conformance_suite;
use items_testkit::{DynamoDbLocal, unique_table};

async fn dynamodb() -> Backend {
    let local = DynamoDbLocal::shared();
    let client = local.client().await;
    let (events, items) = (unique_table("events"), unique_table("items"));
    ensure_events_table(&client, &events).await.unwrap();
    ensure_items_table(&client, &items).await.unwrap();
    Backend {
        events: Arc::new(DynamoEventStore::new(client.clone(), events)),
        read_model: Arc::new(DynamoReadModel::new(client, items)),
    }
}

// 3,000 items of ~400 bytes: over 1 MB, so more than one Scan page.
conformance_suite!(dynamodb().await, 3000, 2);

/// The event-sourcing guarantees, model-based (items_testkit::model), on
/// DynamoDB Local: fewer cases, each on fresh tables.
struct DynamoDb;

impl items_testkit::model::MakeBackend for DynamoDb {
    fn make(runtime: &tokio::runtime::Runtime) -> items_testkit::model::ModelBackend {
        let Backend { events: _, read_model } = runtime.block_on(dynamodb());
        let local = DynamoDbLocal::shared();
        let client = runtime.block_on(local.client());
        let events = unique_table("events");
        runtime.block_on(ensure_events_table(&client, &events)).unwrap();
        let store = Arc::new(DynamoEventStore::new(client, events));
        items_testkit::model::ModelBackend {
            events: store.clone(),
            scan: store,
            read_model,
            ids: Arc::new(items_domain::testing::SequentialIds::default()),
        }
    }
}

#[test]
fn the_read_model_is_the_fold_of_the_log_under_every_interleaving() {
    items_testkit::model::run::<DynamoDb>(24, 30, 0x17e5_2026);
}
