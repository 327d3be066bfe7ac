//! Event schemas on the AWS side: the golden logs read through this crate's
//! codecs (DynamoDB items, stream records through the `project-events`
//! handler), and a mixed-version deploy through the handler on DynamoDB
//! Local.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_sdk_dynamodb::types::AttributeValue;
use items_aws::dynamodb::codec::event_from_item;
use items_aws::dynamodb::{DynamoEventStore, DynamoReadModel, ensure_events_table, ensure_items_table};
use items_aws::projector::project_events;
use items_aws::quarantine::{DynamoQuarantine, InMemoryQuarantine};
use items_domain::event::StoredEvent;
use items_domain::memory::{InMemoryEventStore, InMemoryReadModel};
use items_domain::ports::{EventStore, ReadModel};
use items_domain::service::ProjectorService;
use items_domain::testing::golden;
use items_testkit::upgrade::{self, UpgradeBackend};
use items_testkit::{DynamoDbLocal, unique_table};

fn release_file(name: &str) -> serde_json::Value {
    let path = golden::dir().join(golden::MAIN_2026_12_08).join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("a golden file")).expect("JSON")
}

/// The events table's items as main wrote them on 2026-12-08 read as it
/// read them, and fold to the read model its projector made.
#[test]
fn dynamodb_items_main_wrote_fold_to_what_its_projector_made() {
    let items: Vec<serde_dynamo::Item> = serde_json::from_value(release_file("dynamodb-items.json")).unwrap();
    let events: Vec<_> = items.into_iter().map(|item| event_from_item(item).unwrap().expect("an event")).collect();
    assert_eq!(golden::fold(events), golden::read_model(golden::MAIN_2026_12_08));
}

/// The stream records main's events table made, delivered in one batch
/// to today's `project-events` handler, make the read model its projector
/// made.
#[tokio::test]
async fn stream_records_main_wrote_project_to_what_its_projector_made() {
    let batch: DynamoDbEvent = serde_json::from_value(release_file("stream-records.json")).unwrap();
    let (events, read_model) = (Arc::new(InMemoryEventStore::default()), Arc::new(InMemoryReadModel::default()));
    let projector = ProjectorService::new(read_model.clone(), events);
    let response = project_events(&projector, &InMemoryQuarantine::default(), batch).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let expected = golden::read_model(golden::MAIN_2026_12_08);
    for (id, row) in &expected {
        assert_eq!(read_model.get(*id).await.unwrap().as_ref(), Some(row));
    }
}

/// A stream record of `stored`, as DynamoDB Streams delivers an insert.
fn insert_record(stored: &StoredEvent, sequence: usize) -> EventRecord {
    let image: serde_dynamo::Item = serde_dynamo::to_item(stored).expect("an image");
    let mut record = EventRecord::default();
    record.event_id = format!("{sequence:032}");
    record.event_name = "INSERT".into();
    for key in ["stream_id", "version"] {
        record.change.keys.insert(key.to_owned(), image.get(key).expect("a key").clone());
    }
    record.change.new_image = image;
    record.change.sequence_number = Some(format!("{sequence:024}"));
    record
}

/// A mixed-version deploy through the `project-events` handler, each
/// delivery one batch of the records not delivered yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_holds_back_only_the_item_of_a_newer_record_until_the_upgrade() {
    let local = DynamoDbLocal::shared();
    let client = local.client().await;
    let (events_table, items_table) = (unique_table("upgrade-events"), unique_table("upgrade-items"));
    ensure_events_table(&client, &events_table).await.unwrap();
    ensure_items_table(&client, &items_table).await.unwrap();
    let events: Arc<dyn EventStore> = Arc::new(DynamoEventStore::new(client.clone(), &events_table));
    let read_model: Arc<dyn ReadModel> = Arc::new(DynamoReadModel::new(client.clone(), &items_table));
    let quarantine = Arc::new(DynamoQuarantine::new(client.clone(), &events_table));
    let append_raw: upgrade::AppendRaw = {
        let (client, table) = (client.clone(), events_table.clone());
        Arc::new(move |stored| {
            let (client, table) = (client.clone(), table.clone());
            Box::pin(async move {
                let item: std::collections::HashMap<String, AttributeValue> =
                    serde_dynamo::to_item(stored.recorded(&chrono::Utc::now())).unwrap();
                client.put_item().table_name(table).set_item(Some(item)).send().await.unwrap();
            })
        })
    };
    let delivered = Arc::new(std::sync::Mutex::new(0));
    let deliver: upgrade::Deliver = {
        let quarantine = quarantine.clone();
        Arc::new(move |projector, written, _settled| {
            let (quarantine, delivered) = (quarantine.clone(), delivered.clone());
            Box::pin(async move {
                let from = std::mem::replace(&mut *delivered.lock().unwrap(), written.len());
                let mut batch = DynamoDbEvent::default();
                batch.records = written.iter().enumerate().skip(from).map(|(n, e)| insert_record(e, n + 1)).collect();
                let response = project_events(&projector, quarantine.as_ref(), batch).await;
                assert!(response.batch_item_failures.is_empty(), "poison is set aside, not retried: {response:?}");
            })
        })
    };
    upgrade::an_upgrade_applies_what_the_old_projector_held_back(UpgradeBackend {
        events,
        read_model,
        quarantine,
        append_raw,
        deliver,
    })
    .await;
}
