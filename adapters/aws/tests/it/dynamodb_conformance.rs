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
    let store = Arc::new(DynamoEventStore::new(client.clone(), events));
    Backend { events: store.clone(), scan: store, read_model: Arc::new(DynamoReadModel::new(client, items)) }
}

// 3,000 items of ~400 bytes: over 1 MB, so more than one Scan page.
conformance_suite!(dynamodb().await, 3000, 2);

/// The event-sourcing guarantees, model-based (items_testkit::model), on
/// DynamoDB Local: fewer cases, each on fresh tables.
struct DynamoDb;

impl items_testkit::model::MakeBackend for DynamoDb {
    fn make(runtime: &tokio::runtime::Runtime) -> items_testkit::model::ModelBackend {
        let Backend { read_model, .. } = runtime.block_on(dynamodb());
        let local = DynamoDbLocal::shared();
        let client = runtime.block_on(local.client());
        let events = unique_table("events");
        runtime.block_on(ensure_events_table(&client, &events)).unwrap();
        let store = Arc::new(DynamoEventStore::new(client.clone(), events));
        // `items replay --into`: a new table, filled with BatchWriteItem.
        let handle = runtime.handle().clone();
        let new_table: items_testkit::model::NewTable = Arc::new(move || {
            let table = unique_table("items-into");
            // Called by the model outside its runtime's tasks.
            handle.block_on(ensure_items_table(&client, &table)).unwrap();
            let rows: Arc<dyn items_domain::ports::ReadModel> = Arc::new(DynamoReadModel::new(client.clone(), &table));
            (rows, Arc::new(items_aws::dynamodb::BatchWriter::new(client.clone(), &table)))
        });
        items_testkit::model::ModelBackend {
            events: store.clone(),
            scan: store,
            read_model,
            ids: Arc::new(items_domain::testing::SequentialIds::default()),
            new_table: Some(new_table),
            // The stream poller has no "caught up" to stop at here; its own
            // test runs it (cli/tests/it/quarantine.rs).
            feed: None,
        }
    }
}

#[test]
fn the_read_model_is_the_fold_of_the_log_under_every_interleaving() {
    items_testkit::model::run::<DynamoDb>(24, 30, 0x17e5_2026);
}

/// Review finding 8: tombstones expire. The projector's tombstone carries
/// the read table's TTL attribute, `TOMBSTONE_LIFETIME` from now; a live
/// item carries none (DynamoDB's TTL would delete it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_expires_and_a_live_item_does_not() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use items_aws::dynamodb::{TOMBSTONE_LIFETIME, TTL_ATTRIBUTE};
    use items_domain::ports::ReadModel;
    let client = DynamoDbLocal::shared().client().await;
    let items = unique_table("items");
    ensure_items_table(&client, &items).await.unwrap();
    let read_model = DynamoReadModel::new(client.clone(), &items);
    let live = items_testkit::conformance::item(items_testkit::conformance::new_id(), 1, "Pen");
    let tombstone = items_domain::Item { version: 2, deleted: true, ..live.clone() };
    let other = items_testkit::conformance::item(items_testkit::conformance::new_id(), 1, "Cup");
    read_model.upsert_if_newer(&live).await.unwrap();
    read_model.upsert_if_newer(&other).await.unwrap();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    read_model.upsert_if_newer(&tombstone).await.unwrap();
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();

    let stored = |id: items_domain::ItemId| {
        let (client, items) = (client.clone(), items.clone());
        async move {
            let output =
                client.get_item().table_name(items).key("id", AttributeValue::S(id.to_string())).send().await.unwrap();
            output.item.unwrap()
        }
    };
    let expires_at: u64 = stored(tombstone.id).await[TTL_ATTRIBUTE].as_n().unwrap().parse().unwrap();
    let lifetime = TOMBSTONE_LIFETIME.as_secs();
    assert!((before + lifetime..=after + lifetime).contains(&expires_at), "{expires_at}");
    assert!(!stored(other.id).await.contains_key(TTL_ATTRIBUTE));
    assert_eq!(read_model.get(tombstone.id).await.unwrap(), Some(tombstone), "the attribute is not part of the item");
}

/// A read table from before the creator index (`items serve --dynamodb`
/// on an older data set) gets the index added, filled from its items.
#[tokio::test]
async fn a_read_table_without_the_creator_index_gets_it_with_its_items() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, IndexStatus, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    use items_domain::ports::ReadModel;
    let client = DynamoDbLocal::shared().client().await;
    let table = unique_table("old-items");
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
        .send()
        .await
        .unwrap();
    let read_model = DynamoReadModel::new(client.clone(), &table);
    let item = items_testkit::conformance::item(items_testkit::conformance::new_id(), 1, "from before");
    read_model.upsert_if_newer(&item).await.unwrap();

    assert!(!ensure_items_table(&client, &table).await.unwrap(), "the table was there");
    let described = client.describe_table().table_name(&table).send().await.unwrap();
    let indexes = described.table().unwrap().global_secondary_indexes();
    assert_eq!(
        indexes.iter().map(|i| i.index_name().unwrap()).collect::<Vec<_>>(),
        [items_aws::dynamodb::codec::ITEMS_BY_CREATOR_INDEX]
    );
    // It returns once the index is usable: DynamoDB Local keeps a new index
    // CREATING for about a second, and a Query of it meanwhile fails.
    assert_eq!(indexes[0].index_status(), Some(&IndexStatus::Active));
    let mine = read_model.list_by_creator(&item.created_by, None, None).await.unwrap();
    assert_eq!(mine.items, [item]);
    assert!(!ensure_items_table(&client, &table).await.unwrap(), "and a second look changes nothing");
}

/// DynamoDB Local never phones home: the one command line the project
/// starts it with passes `-disableTelemetry`, and a run of it that served a
/// request leaves no metadata file with telemetry on in its working folder
/// (without the flag it leaves `"telemetryEnabled":"true"` there).
#[tokio::test]
async fn dynamodb_local_runs_without_telemetry() {
    let dir = items_testkit::dynamodb_local_dir().unwrap();
    let port = items_testkit::free_port();
    let mut command = items_testkit::dynamodb_local_command(&dir, port);
    let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    assert!(args.iter().any(|a| a == "-disableTelemetry"), "{args:?}");
    let work = std::env::temp_dir().join(unique_table("ddb-local-work"));
    std::fs::create_dir_all(&work).unwrap();
    let mut child = command
        .current_dir(&work)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "test"))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while client.list_tables().send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "DynamoDB Local did not answer");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let _ = child.kill();
    let _ = child.wait();
    let enabled = items_testkit::telemetry_enabled_in(&work);
    let _ = std::fs::remove_dir_all(&work);
    assert!(!enabled, "DynamoDB Local ran with telemetry on");
}

/// A row written before the index was sharded has no shard, so the index
/// does not hold it; writing it again at its version (what `items replay`
/// does to every row) puts it there, and spreads one creator's rows over
/// the shards.
#[tokio::test]
async fn a_row_from_before_the_sharded_index_enters_it_when_replayed() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use items_aws::dynamodb::codec::{CREATOR_SHARDS, ITEMS_CREATOR_SHARD_KEY};
    use items_domain::ports::{ReadModel, Upsert};
    let local = DynamoDbLocal::shared();
    let client = local.client().await;
    let table = unique_table("items-unsharded");
    ensure_items_table(&client, &table).await.unwrap();
    let read_model = DynamoReadModel::new(client.clone(), &table);
    let creator = format!("sub-{}", uuid::Uuid::new_v4());
    let mut shards = std::collections::BTreeSet::new();
    let mut items = Vec::new();
    for n in 0..40 {
        let item = items_domain::Item {
            id: items_domain::ItemId(uuid::Uuid::new_v4()),
            name: format!("old {n}"),
            timestamp: "t".into(),
            description: None,
            created_by: creator.clone(),
            created_at: items_domain::testing::at("2026-01-01T00:00:00.000Z") + chrono::TimeDelta::seconds(n),
            version: 1,
            deleted: false,
        };
        // As the release before wrote it: no shard attribute.
        let mut row: std::collections::HashMap<String, AttributeValue> = serde_dynamo::to_item(&item).unwrap();
        assert!(row.remove(ITEMS_CREATOR_SHARD_KEY).is_none());
        client.put_item().table_name(&table).set_item(Some(row)).send().await.unwrap();
        items.push(item);
    }
    assert!(read_model.list_by_creator(&creator, None, None).await.unwrap().items.is_empty(), "not in the index");
    for item in &items {
        assert_eq!(read_model.repair(item).await.unwrap(), Upsert::Applied, "written again for its shard");
        assert_eq!(read_model.repair(item).await.unwrap(), Upsert::AlreadyNewer, "once");
        let row = client
            .get_item()
            .table_name(&table)
            .key("id", AttributeValue::S(item.id.to_string()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        shards.insert(row[ITEMS_CREATOR_SHARD_KEY].as_s().unwrap().clone());
    }
    items.reverse();
    assert_eq!(read_model.list_by_creator(&creator, None, None).await.unwrap().items, items);
    assert!(shards.len() > 4 && shards.len() <= CREATOR_SHARDS as usize, "{shards:?}");
}
