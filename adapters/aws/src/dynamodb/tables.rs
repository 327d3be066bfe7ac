//! Creates the tables when missing (local mode and tests; in AWS, Pulumi does).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableDescription, TableStatus,
};
use items_domain::ports::StoreError;

use super::store_error;
use crate::dynamodb::codec::{
    EVENTS_PARTITION_KEY, EVENTS_SORT_KEY, ITEMS_BY_CREATOR_INDEX, ITEMS_CREATED_AT_KEY, ITEMS_CREATOR_SHARD_KEY,
    ITEMS_KEY,
};

fn attribute(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The table's description, or `None` when there is no such table.
async fn describe(client: &Client, table: &str) -> Result<Option<TableDescription>, StoreError> {
    match client.describe_table().table_name(table).send().await {
        Ok(output) => Ok(output.table),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(None),
        Err(error) => Err(store_error("DescribeTable", error)),
    }
}

/// How long a new table, or an index added to a table, may take to become
/// usable. In AWS a table takes seconds; an index backfills from the table's
/// items, which on a large table can take far longer (then run with the index
/// declared by Pulumi instead).
const ACTIVE_WITHIN: Duration = Duration::from_secs(15 * 60);

/// What in the table is not yet `ACTIVE`: the table, its indexes.
fn pending(described: &TableDescription) -> Vec<String> {
    let table = described.table_status().filter(|status| **status != TableStatus::Active);
    let indexes = described
        .global_secondary_indexes()
        .iter()
        .filter(|index| index.index_status().is_some_and(|status| *status != IndexStatus::Active));
    table
        .map(|_| format!("table {}", described.table_name().unwrap_or("?")))
        .into_iter()
        .chain(indexes.map(|index| format!("index {}", index.index_name().unwrap_or("?"))))
        .collect()
}

/// Waits until the table and every index on it are `ACTIVE`. Until then AWS
/// refuses reads of a new index (ValidationException) and writes to a new
/// table (ResourceNotFoundException); DynamoDB Local answers a Query of a
/// `CREATING` index with InternalFailure, for about a second after it is added.
async fn until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let pending = match describe(client, table).await? {
            None => vec![format!("table {table} (not yet described)")],
            Some(described) => pending(&described),
        };
        if pending.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= ACTIVE_WITHIN {
            return Err(StoreError::Unavailable(format!(
                "{} not ACTIVE after {} s",
                pending.join(", "),
                ACTIVE_WITHIN.as_secs()
            )));
        }
        tracing::info!(table, pending = %pending.join(", "), "waiting for ACTIVE");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The table's description when it exists, once it and its indexes are
/// `ACTIVE` (another process may have created it a moment ago).
async fn existing(client: &Client, table: &str) -> Result<Option<TableDescription>, StoreError> {
    let described = describe(client, table).await?;
    if described.as_ref().is_some_and(|described| !pending(described).is_empty()) {
        until_active(client, table).await?;
    }
    Ok(described)
}

/// The events table: (`stream_id` S, `version` N), stream `NEW_IMAGE`.
pub async fn ensure_events_table(client: &Client, table: &str) -> Result<bool, StoreError> {
    ensure_events_table_with(client, table, true).await
}

/// The events table's key schema without a stream (benchmarks: what the stream costs).
pub async fn ensure_events_table_without_stream(client: &Client, table: &str) -> Result<bool, StoreError> {
    ensure_events_table_with(client, table, false).await
}

async fn ensure_events_table_with(client: &Client, table: &str, with_stream: bool) -> Result<bool, StoreError> {
    if existing(client, table).await?.is_some() {
        return Ok(false);
    }
    let mut create = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(EVENTS_PARTITION_KEY, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(EVENTS_SORT_KEY, ScalarAttributeType::N)?)
        .key_schema(key(EVENTS_PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(EVENTS_SORT_KEY, KeyType::Range)?);
    if with_stream {
        let stream = StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::NewImage)
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        create = create.stream_specification(stream);
    }
    create.send().await.map_err(|e| store_error("CreateTable", e))?;
    until_active(client, table).await?;
    Ok(true)
}

/// The items table: `id` S (also the classic single table's shape), with
/// the `by-creator-shard` index (`creatorShard` S, `createdAt` S, every
/// attribute projected). A table from before the index gets it added (its
/// rows enter it when written again: `items replay` writes every row
/// without a shard).
pub async fn ensure_items_table(client: &Client, table: &str) -> Result<bool, StoreError> {
    let corrupt = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Corrupt(e.to_string());
    let key_schema = vec![key(ITEMS_CREATOR_SHARD_KEY, KeyType::Hash)?, key(ITEMS_CREATED_AT_KEY, KeyType::Range)?];
    let projection = Projection::builder().projection_type(ProjectionType::All).build();
    let index_attributes = [
        attribute(ITEMS_CREATOR_SHARD_KEY, ScalarAttributeType::S)?,
        attribute(ITEMS_CREATED_AT_KEY, ScalarAttributeType::S)?,
    ];
    if let Some(described) = existing(client, table).await? {
        if !described.global_secondary_indexes().iter().any(|index| index.index_name() == Some(ITEMS_BY_CREATOR_INDEX))
        {
            let create = CreateGlobalSecondaryIndexAction::builder()
                .index_name(ITEMS_BY_CREATOR_INDEX)
                .set_key_schema(Some(key_schema))
                .projection(projection)
                .build()
                .map_err(corrupt)?;
            client
                .update_table()
                .table_name(table)
                .set_attribute_definitions(Some(index_attributes.to_vec()))
                .global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().create(create).build())
                .send()
                .await
                .map_err(|e| store_error("UpdateTable", e))?;
            until_active(client, table).await?;
        }
        return Ok(false);
    }
    let index = GlobalSecondaryIndex::builder()
        .index_name(ITEMS_BY_CREATOR_INDEX)
        .set_key_schema(Some(key_schema))
        .projection(projection)
        .build()
        .map_err(corrupt)?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(
            [vec![attribute(ITEMS_KEY, ScalarAttributeType::S)?], index_attributes.to_vec()].concat(),
        ))
        .key_schema(key(ITEMS_KEY, KeyType::Hash)?)
        .global_secondary_indexes(index)
        .send()
        .await
        .map_err(|e| store_error("CreateTable", e))?;
    until_active(client, table).await?;
    Ok(true)
}
