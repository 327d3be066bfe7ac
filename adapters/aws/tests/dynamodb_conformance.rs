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
