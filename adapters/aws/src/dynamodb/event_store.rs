use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chrono::{DateTime, Utc};
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::ports::{AppendError, EventStore, StoreError};
use items_domain::{Event, Item, ItemId};

use super::store_error;
use crate::dynamodb_codec::{
    EVENTS_PARTITION_KEY, EVENTS_SORT_KEY, event_from_item, event_to_item, from_item, to_item,
};

/// The event log in a table keyed by (`stream_id`, `version`).
#[derive(Clone)]
pub struct DynamoEventStore {
    client: Client,
    table: String,
}

/// An idempotency record in the events table: its own partition (`idem#…`,
/// version 0), which the projector skips; `expires_at` (epoch seconds) is the
/// table's TTL attribute.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredIdempotency {
    stream_id: String,
    version: u64,
    subject: String,
    key: String,
    name: String,
    timestamp: String,
    item: Item,
    expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change: Option<String>,
}

impl StoredIdempotency {
    fn stream_id(subject: &str, key: &IdempotencyKey) -> String {
        format!("idem#{subject}#{}", key.as_str())
    }

    fn new(record: &IdempotencyRecord) -> Self {
        Self {
            stream_id: Self::stream_id(&record.subject, &record.key),
            version: 0,
            subject: record.subject.clone(),
            key: record.key.as_str().to_owned(),
            name: record.name.clone(),
            timestamp: record.timestamp.clone(),
            item: record.item.clone(),
            expires_at: record.expires_at.timestamp(),
            change: record.change.clone(),
        }
    }

    fn into_record(self) -> Result<IdempotencyRecord, StoreError> {
        let corrupt = || StoreError::Corrupt("idempotency record".into());
        Ok(IdempotencyRecord {
            key: IdempotencyKey::parse(&self.key).map_err(|_| corrupt())?,
            subject: self.subject,
            name: self.name,
            timestamp: self.timestamp,
            item: self.item,
            expires_at: DateTime::from_timestamp(self.expires_at, 0).ok_or_else(corrupt)?,
            change: self.change,
        })
    }
}

/// A new version may only be written where none exists: no overwrites, ever.
const NO_SUCH_VERSION: &str = "attribute_not_exists(stream_id)";

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A transaction write of an event at a version that must not exist yet.
    fn put_new_version(&self, item: HashMap<String, AttributeValue>) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(NO_SUCH_VERSION)
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A transaction check that version `version` of the stream exists (the new
    /// versions' own conditions say that no later one does).
    fn stream_is_at(&self, item_id: ItemId, version: u64) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key(EVENTS_PARTITION_KEY, AttributeValue::S(item_id.stream_id()))
            .key(EVENTS_SORT_KEY, AttributeValue::N(version.to_string()))
            .condition_expression("attribute_exists(stream_id)")
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn conflict(item_id: ItemId, expected: u64, existing: Option<&HashMap<String, AttributeValue>>) -> AppendError {
        let actual = existing
            .and_then(|item| item.get(EVENTS_SORT_KEY))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(expected + 1);
        AppendError::Conflict { item_id, expected, actual }
    }
}

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let item_id = first.item_id;
        let mut items = Vec::with_capacity(events.len());
        for (offset, event) in events.iter().enumerate() {
            if event.item_id != item_id || event.version != expected_version + offset as u64 + 1 {
                return Err(StoreError::Corrupt("events must be consecutive versions of one item".into()).into());
            }
            let item = event_to_item(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            items.push(item);
        }

        // The common case, one event on a new stream, is a single conditional put.
        if expected_version == 0 && items.len() == 1 {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(items.pop())
                .condition_expression(NO_SUCH_VERSION)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(error) => match error.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        Err(Self::conflict(item_id, expected_version, failed.item()))
                    }
                    _ => Err(store_error("PutItem", error).into()),
                },
            };
        }

        // Otherwise one transaction: the stream must be at `expected_version`
        // (that version exists) and none of the new versions may exist.
        let mut writes = Vec::with_capacity(items.len() + 1);
        if expected_version > 0 {
            writes.push(self.stream_is_at(item_id, expected_version)?);
        }
        for item in items {
            writes.push(self.put_new_version(item)?);
        }
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                    if cancelled.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    let actual = self.stream(item_id).await?.last().map_or(0, |e| e.version);
                    Err(AppendError::Conflict { item_id, expected: expected_version, actual })
                }
                _ => Err(store_error("TransactWriteItems", error).into()),
            },
        }
    }

    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), AppendError> {
        let item_id = events.first().map(|e| e.item_id).unwrap_or(record.item.id);
        let stored = StoredIdempotency::new(record);
        let record_item = to_item(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let record_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record_item))
            // A key is free when unused or expired (TTL deletes expired records late).
            .condition_expression("attribute_not_exists(stream_id) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut writes = vec![TransactWriteItem::builder().put(record_put).build()];
        if expected_version > 0 {
            writes.push(self.stream_is_at(item_id, expected_version)?);
        }
        for (offset, event) in events.iter().enumerate() {
            if event.item_id != item_id || event.version != expected_version + offset as u64 + 1 {
                return Err(StoreError::Corrupt("events must be consecutive versions of one item".into()).into());
            }
            let item = event_to_item(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            writes.push(self.put_new_version(item)?);
        }
        // Transactions touching the same record at once are refused with
        // TransactionConflict: the loser tries again, then sees the winner's record.
        for attempt in 1..=5u64 {
            let result = self.client.transact_write_items().set_transact_items(Some(writes.clone())).send().await;
            let Err(error) = result else { return Ok(()) };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error()
            else {
                return Err(store_error("TransactWriteItems", error).into());
            };
            let codes: Vec<&str> =
                cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
            if codes.first() == Some(&"ConditionalCheckFailed") {
                return Err(AppendError::KeyTaken);
            }
            if codes.iter().skip(1).any(|code| *code == "ConditionalCheckFailed") {
                let actual = self.stream(item_id).await?.last().map_or(0, |e| e.version);
                return Err(AppendError::Conflict { item_id, expected: expected_version, actual });
            }
            if !codes.contains(&"TransactionConflict") {
                return Err(store_error("TransactWriteItems", error).into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
        }
        Err(StoreError::Unavailable("TransactWriteItems: conflicting transactions kept winning".into()).into())
    }

    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(EVENTS_PARTITION_KEY, AttributeValue::S(StoredIdempotency::stream_id(subject, key)))
            .key(EVENTS_SORT_KEY, AttributeValue::N("0".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(item) = output.item else { return Ok(None) };
        let stored: StoredIdempotency =
            from_item(item).map_err(|e| StoreError::Corrupt(format!("idempotency record: {e}")))?;
        stored.into_record().map(Some)
    }

    async fn stream(&self, item_id: ItemId) -> Result<Vec<Event>, StoreError> {
        let pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("stream_id = :stream")
            .expression_attribute_values(":stream", AttributeValue::S(item_id.stream_id()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        let mut events = Vec::with_capacity(pages.len());
        for item in pages {
            let item = item.map_err(|e| store_error("Query", e))?;
            match event_from_item(item) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => {}
                Err(error) => return Err(StoreError::Corrupt(error.to_string())),
            }
        }
        Ok(events)
    }
}
