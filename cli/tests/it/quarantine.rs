//! The poison policy with `--dynamodb`: the stream poller (what `items serve
//! --dynamodb` runs, with the `project-events` handler's code) sets a record
//! it cannot read aside in the events table's quarantine partition, as the
//! Lambda does, and goes on; `items quarantine --dynamodb` lists it and, once
//! the record reads, redrives its item.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{new_data_dir, printed, run_items};
use items_aws::dynamodb::codec::event_to_item;
use items_aws::dynamodb::{DynamoEventStore, DynamoReadModel, ensure_events_table, ensure_items_table};
use items_aws::quarantine::{DynamoQuarantine, Quarantine};
use items_domain::event::ItemCreated;
use items_domain::ports::ReadModel;
use items_domain::service::ProjectorService;
use items_domain::{Event, EventPayload, ItemId};
use items_local::stream_poller::{PollerConfig, run_stream_poller};
use items_testkit::{DynamoDbLocal, unique_table};

fn created(name: &str) -> Event {
    Event {
        event_id: uuid::Uuid::new_v4(),
        item_id: ItemId(uuid::Uuid::new_v4()),
        version: 1,
        occurred_at: chrono::Utc::now(),
        subject: "sub-owner".into(),
        payload: EventPayload::ItemCreated(ItemCreated { name: name.into(), timestamp: "t".into(), description: None }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_poller_sets_poison_aside_in_the_events_table_and_the_cli_redrives_it() {
    let local = DynamoDbLocal::shared();
    let client = local.client().await;
    let (events, items) = (unique_table("quarantine-events"), unique_table("quarantine-items"));
    ensure_events_table(&client, &events).await.unwrap();
    ensure_items_table(&client, &items).await.unwrap();
    let (poison, good) = (created("archived"), created("after the poison"));
    let mut archived: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
        event_to_item(&poison).unwrap();
    archived.insert("type".into(), aws_sdk_dynamodb::types::AttributeValue::S("ItemArchived".into()));
    client.put_item().table_name(&events).set_item(Some(archived)).send().await.unwrap();
    let item = event_to_item(&good).unwrap();
    client.put_item().table_name(&events).set_item(Some(item)).send().await.unwrap();

    let read_model = DynamoReadModel::new(client.clone(), &items);
    let projector = Arc::new(ProjectorService::new(
        Arc::new(read_model.clone()),
        Arc::new(DynamoEventStore::new(client.clone(), &events)),
    ));
    let poller = tokio::spawn(run_stream_poller(
        client.clone(),
        local.streams_client().await,
        PollerConfig::new(&events),
        projector,
    ));
    let quarantine = DynamoQuarantine::new(client.clone(), &events);
    let mut waited = Duration::ZERO;
    while read_model.get(good.item_id).await.unwrap().is_none() || quarantine.quarantined().await.unwrap().is_empty() {
        assert!(waited < Duration::from_secs(30), "the record after the poison was never projected");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    poller.abort();
    assert_eq!(read_model.get(poison.item_id).await.unwrap(), None, "nothing made up for it");

    let data_dir = new_data_dir();
    let endpoint = local.endpoint();
    let flags =
        ["--dynamodb-endpoint", endpoint.as_str(), "--events-table", events.as_str(), "--items-table", items.as_str()];
    let listed = run_items(&[&["quarantine"][..], &flags].concat(), &data_dir);
    assert!(listed.status.success(), "{}", printed(&listed));
    assert!(printed(&listed).contains("1 record(s) set aside"), "{}", printed(&listed));
    assert!(printed(&listed).contains(&poison.item_id.stream_id()), "{}", printed(&listed));

    let kept = run_items(&[&["quarantine", "--redrive"][..], &flags].concat(), &data_dir);
    assert_eq!(kept.status.code(), Some(1), "still unreadable: kept, {}", printed(&kept));

    // The code that reads it is deployed (here: the record reads now).
    let readable = event_to_item(&poison).unwrap();
    client.put_item().table_name(&events).set_item(Some(readable)).send().await.unwrap();
    let redriven = run_items(&[&["quarantine", "--redrive"][..], &flags].concat(), &data_dir);
    assert!(redriven.status.success(), "{}", printed(&redriven));
    assert!(printed(&redriven).contains("items re-projected: 1"), "{}", printed(&redriven));
    assert_eq!(read_model.get(poison.item_id).await.unwrap().map(|item| item.name), Some("archived".into()));
    assert!(quarantine.quarantined().await.unwrap().is_empty());
}

/// A mixed-version deploy through the DynamoDB stream poller (what `items
/// serve --dynamodb` runs, with the handler's code and the events table's
/// quarantine), each delivery a poller run until the scenario settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_poller_holds_back_only_the_item_of_a_newer_record_until_the_upgrade() {
    use items_testkit::upgrade::{self, UpgradeBackend};
    let local = DynamoDbLocal::shared();
    let client = local.client().await;
    let streams = local.streams_client().await;
    let (events, items) = (unique_table("upgrade-events"), unique_table("upgrade-items"));
    ensure_events_table(&client, &events).await.unwrap();
    ensure_items_table(&client, &items).await.unwrap();
    let append_raw: upgrade::AppendRaw = {
        let (client, table) = (client.clone(), events.clone());
        Arc::new(move |stored| {
            let (client, table) = (client.clone(), table.clone());
            Box::pin(async move {
                let item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
                    serde_dynamo::to_item(stored.recorded(&chrono::Utc::now())).unwrap();
                client.put_item().table_name(table).set_item(Some(item)).send().await.unwrap();
            })
        })
    };
    let deliver: upgrade::Deliver = {
        let (client, table) = (client.clone(), events.clone());
        Arc::new(move |projector, _written, settled| {
            let (client, streams, table) = (client.clone(), streams.clone(), table.clone());
            Box::pin(async move {
                let poller = tokio::spawn(run_stream_poller(client, streams, PollerConfig::new(table), projector));
                upgrade::until(&settled, "the poller's deliveries").await;
                poller.abort();
                let _ = poller.await;
            })
        })
    };
    upgrade::an_upgrade_applies_what_the_old_projector_held_back(UpgradeBackend {
        events: Arc::new(DynamoEventStore::new(client.clone(), &events)),
        read_model: Arc::new(DynamoReadModel::new(client.clone(), &items)),
        quarantine: Arc::new(DynamoQuarantine::new(client.clone(), &events)),
        append_raw,
        deliver,
    })
    .await;
}
