//! The projector handler on real DynamoDB stream event JSON: applies inserts,
//! skips what is not an event, reports the first failure for Lambda to retry.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use items_aws::dynamodb::codec::event_to_item;
use items_aws::projector::project_events;
use items_aws::quarantine::{InMemoryQuarantine, Quarantine};
use items_domain::event::ItemCreated;
use items_domain::memory::{InMemoryEventStore, InMemoryReadModel};
use items_domain::ports::ReadModel;
use items_domain::service::ProjectorService;
use items_domain::testing::at;
use items_domain::{Event, EventPayload, ItemId};
use serde_json::{Value, json};
use uuid::Uuid;

const INSERT_EVENT: &str = include_str!("../fixtures/dynamodb-stream-insert.json");

fn fixture() -> Value {
    serde_json::from_str(INSERT_EVENT).unwrap()
}

fn batch(records: Vec<Value>) -> DynamoDbEvent {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn created(name: &str) -> Event {
    Event {
        event_id: Uuid::new_v4(),
        item_id: ItemId(Uuid::new_v4()),
        version: 1,
        occurred_at: at("2026-11-25T12:20:05.123Z"),
        subject: "sub-1".into(),
        payload: EventPayload::ItemCreated(ItemCreated {
            name: name.into(),
            timestamp: "N/A".into(),
            description: None,
        }),
    }
}

/// The fixture's record from AWS, carrying `event` instead, as JSON.
fn record(event: &Event, sequence: u32) -> Value {
    let mut record = fixture()["Records"][0].clone();
    let image: serde_dynamo::Item = event_to_item(event).unwrap();
    let image = serde_json::to_value(image).unwrap();
    record["eventID"] = json!(event.event_id.to_string());
    record["dynamodb"]["Keys"] = json!({"stream_id": image["stream_id"], "version": image["version"]});
    record["dynamodb"]["NewImage"] = image;
    record["dynamodb"]["SequenceNumber"] = json!(format!("{sequence:024}"));
    record
}

/// Version `version` of the item `id`, named `name`.
fn version_of(id: ItemId, version: u64, name: &str) -> Event {
    Event { item_id: id, version, ..created(name) }
}

fn failures(response: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap_or_default()).collect()
}

#[tokio::test]
async fn an_insert_from_aws_is_projected() {
    let read_model = Arc::new(InMemoryReadModel::default());
    let projector = ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default()));
    let event: DynamoDbEvent = serde_json::from_value(fixture()).unwrap();

    let response = project_events(&projector, &InMemoryQuarantine::default(), event).await;
    assert!(response.batch_item_failures.is_empty());
    let id = ItemId::parse("0b9c2f4e-3d1a-4c5b-8e7f-6a5b4c3d2e1f").unwrap();
    let item = read_model.get(id).await.unwrap().unwrap();
    assert_eq!(item.name, "Pen");
    assert_eq!(item.timestamp, "2026-11-25T12:20:00Z");
    assert_eq!(item.created_by, "4f1e8a52-7c3b-4d59-9a41-0c6b2f2e9d11");
    assert_eq!(item.version, 1);
}

#[tokio::test]
async fn duplicates_and_out_of_order_records_converge() {
    let read_model = Arc::new(InMemoryReadModel::default());
    let projector = ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default()));
    let id = ItemId(Uuid::new_v4());
    let (older, newer) = (version_of(id, 1, "older"), version_of(id, 2, "newer"));
    let other = created("other");

    let batch_of =
        batch(vec![record(&newer, 1), record(&older, 2), record(&other, 3), record(&newer, 4), record(&older, 5)]);
    let response = project_events(&projector, &InMemoryQuarantine::default(), batch_of).await;
    assert!(response.batch_item_failures.is_empty());
    let item = read_model.get(id).await.unwrap().unwrap();
    assert_eq!((item.name.as_str(), item.version), ("newer", 2), "an older version never overwrites a newer one");
    assert_eq!(read_model.get(other.item_id).await.unwrap().unwrap().name, "other");
    let all = read_model.list_page(None, None).await.unwrap();
    assert_eq!(all.items.len(), 2);
}

/// A record whose image cannot be decoded is set aside in the quarantine
/// (its sequence number, its item's stream, why), and its item's later
/// records wait behind it; another item's record after it is applied, and
/// nothing is handed back to Lambda to retry.
#[tokio::test]
async fn a_malformed_record_is_set_aside_and_holds_back_its_own_item_only() {
    let read_model = Arc::new(InMemoryReadModel::default());
    let projector = ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default()));
    let quarantine = InMemoryQuarantine::default();
    let (good, after) = (created("good"), created("after"));
    let bad = created("bad");
    let mut malformed = record(&bad, 2);
    malformed["dynamodb"]["NewImage"]["data"] = json!({"M": {"name": {"N": "5"}}});
    let later_of_bad = version_of(bad.item_id, 2, "later");

    let batch_of = batch(vec![record(&good, 1), malformed, record(&later_of_bad, 3), record(&after, 4)]);
    let response = project_events(&projector, &quarantine, batch_of).await;
    assert!(failures(&response).is_empty(), "poison is not retried by Lambda");
    let set_aside = quarantine.quarantined().await.unwrap();
    assert_eq!(set_aside.len(), 1);
    assert_eq!(
        (set_aside[0].sequence.clone(), set_aside[0].stream_id.clone()),
        (format!("{:024}", 2), bad.item_id.stream_id())
    );
    assert!(read_model.get(good.item_id).await.unwrap().is_some());
    assert_eq!(read_model.get(bad.item_id).await.unwrap(), None, "the item's later record waits for it");
    assert_eq!(read_model.get(after.item_id).await.unwrap().unwrap().name, "after", "other items go on");
}

/// A record without a readable item key is set aside too, and the batch
/// goes on.
#[tokio::test]
async fn a_record_without_a_readable_key_is_set_aside() {
    let read_model = Arc::new(InMemoryReadModel::default());
    let projector = ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default()));
    let quarantine = InMemoryQuarantine::default();
    let (bad, after) = (created("bad"), created("after"));
    let mut malformed = record(&bad, 1);
    malformed["dynamodb"]["NewImage"]["data"] = json!({"M": {"name": {"N": "5"}}});
    malformed["dynamodb"]["Keys"] = json!({"stream_id": {"S": "item#not-a-uuid"}, "version": {"N": "1"}});

    let response = project_events(&projector, &quarantine, batch(vec![malformed, record(&after, 2)])).await;
    assert!(failures(&response).is_empty());
    assert_eq!(quarantine.quarantined().await.unwrap()[0].stream_id, "item#not-a-uuid");
    assert!(read_model.get(after.item_id).await.unwrap().is_some());
}

/// A dependency failure is handed back (Lambda retries from it, for as long
/// as the record may live), never set aside.
#[tokio::test]
async fn a_dependency_failure_is_retried_not_set_aside() {
    let read_model = Arc::new(InMemoryReadModel::default());
    let projector = ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default()));
    let quarantine = InMemoryQuarantine::default();
    read_model.set_available(false);
    let response = project_events(&projector, &quarantine, batch(vec![record(&created("x"), 7)])).await;
    assert_eq!(failures(&response), vec![format!("{:024}", 7)]);
    assert!(quarantine.quarantined().await.unwrap().is_empty());
}

#[tokio::test]
async fn modifies_and_other_partitions_are_skipped() {
    let read_model = Arc::new(InMemoryReadModel::default());
    let projector = ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default()));
    let mut modify = record(&created("modified"), 2);
    modify["eventName"] = json!("MODIFY");
    let mut idempotency = record(&created("not an event"), 3);
    idempotency["dynamodb"]["NewImage"]["stream_id"] = json!({"S": "idem#abc"});
    let real = created("real");

    let response =
        project_events(&projector, &InMemoryQuarantine::default(), batch(vec![modify, idempotency, record(&real, 4)]))
            .await;
    assert!(response.batch_item_failures.is_empty());
    let all = read_model.list_page(None, None).await.unwrap();
    assert_eq!(all.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["real"]);
}

/// An event of a type this code does not know (a newer writer during a
/// rolling deploy) is never skipped: its record is set aside, and its item
/// waits for a projector that knows it (skipping it would let v3 move the
/// row past v2 for good). Other items' records in the batch are applied at
/// once. After the upgrade, the redrive brings the item to its last version.
#[tokio::test]
async fn an_unknown_event_type_holds_back_its_item_until_the_redrive() {
    use items_domain::memory::InMemoryEventStore;
    use items_domain::ports::EventStore;
    let read_model = Arc::new(InMemoryReadModel::default());
    let log = Arc::new(InMemoryEventStore::default());
    let quarantine = InMemoryQuarantine::default();
    let id = ItemId(Uuid::new_v4());
    // The log holds v2 as the newer writer wrote it; here it reads as a
    // rename, so a projector that went on with v3 would fold past v2.
    let (one, two, three) = (version_of(id, 1, "Pen"), renamed(id, 2, "Pen 2"), renamed(id, 3, "Ink"));
    log.append(0, &[one.clone(), two.clone(), three.clone()]).await.unwrap();
    let projector = ProjectorService::new(read_model.clone(), log.clone());
    project_events(&projector, &quarantine, batch(vec![record(&one, 1)])).await;

    let mut archived = record(&two, 2);
    archived["dynamodb"]["NewImage"]["type"] = json!({"S": "ItemArchived"});
    let (y, z) = (created("y"), created("z"));
    let records = vec![archived, record(&three, 3), record(&y, 4), record(&z, 5)];
    let response = project_events(&projector, &quarantine, batch(records)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(quarantine.quarantined().await.unwrap()[0].sequence, format!("{:024}", 2));
    assert_eq!(read_model.get(id).await.unwrap().unwrap().version, 1, "v3 was not applied past v2");
    assert_eq!(read_model.get(y.item_id).await.unwrap().unwrap().name, "y");
    assert_eq!(read_model.get(z.item_id).await.unwrap().unwrap().name, "z");

    let redriven = items_aws::quarantine::redrive(&quarantine, log.as_ref(), read_model.as_ref()).await.unwrap();
    assert_eq!((redriven.items, redriven.released), (1, 1));
    assert_eq!(read_model.get(id).await.unwrap().unwrap().name, "Ink");
    assert!(quarantine.quarantined().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_store_failure_reports_the_failed_record() {
    let read_model = Arc::new(InMemoryReadModel::default());
    let projector = ProjectorService::new(read_model.clone(), Arc::new(InMemoryEventStore::default()));
    read_model.set_available(false);
    let response = project_events(
        &projector,
        &InMemoryQuarantine::default(),
        batch(vec![record(&created("x"), 7), record(&created("y"), 8)]),
    )
    .await;
    assert_eq!(failures(&response), vec![format!("{:024}", 7)]);
}

/// A rename at `version`.
fn renamed(id: ItemId, version: u64, name: &str) -> Event {
    let update = items_domain::event::ItemUpdated { name: Some(name.into()), timestamp: None, description: None };
    Event { payload: EventPayload::ItemUpdated(update), ..version_of(id, version, "") }
}

#[tokio::test]
async fn shuffled_and_duplicated_stream_batches_with_renames_and_deletes_end_as_the_log_folds() {
    use items_domain::memory::InMemoryEventStore;
    use items_domain::ports::EventStore;
    let (kept, gone) = (ItemId(Uuid::new_v4()), ItemId(Uuid::new_v4()));
    let log = [
        version_of(kept, 1, "Pen"),
        renamed(kept, 2, "Ink"),
        renamed(kept, 3, "Nib"),
        version_of(gone, 1, "Cup"),
        renamed(gone, 2, "Mug"),
        Event { payload: EventPayload::ItemDeleted, ..version_of(gone, 3, "") },
    ];
    // The events table the function reads an item's history from.
    let events = Arc::new(InMemoryEventStore::default());
    for id in [kept, gone] {
        let stream: Vec<Event> = log.iter().filter(|e| e.item_id == id).cloned().collect();
        events.append(0, &stream).await.unwrap();
    }
    // Every delivery order a retrying stream could produce, each twice.
    let orders: [&[usize]; 4] = [&[0, 1, 2, 3, 4, 5], &[5, 4, 3, 2, 1, 0], &[2, 0, 5, 1, 3, 4], &[3, 5, 0, 2, 4, 1]];
    for order in orders {
        let read_model = Arc::new(InMemoryReadModel::default());
        let projector = ProjectorService::new(read_model.clone(), events.clone());
        let records: Vec<Value> =
            order.iter().chain(order.iter()).enumerate().map(|(n, &i)| record(&log[i], n as u32 + 1)).collect();
        let response = project_events(&projector, &InMemoryQuarantine::default(), batch(records)).await;
        assert!(failures(&response).is_empty(), "{order:?}");
        let survivor = read_model.get(kept).await.unwrap().unwrap();
        assert_eq!((survivor.name.as_str(), survivor.version), ("Nib", 3), "{order:?}");
        let tombstone = read_model.get(gone).await.unwrap().unwrap();
        assert!(tombstone.deleted && tombstone.version == 3, "{order:?}: never resurrected");
    }
}
