use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use items_domain::ports::{AppendError, EventStore, StoreError};
use items_domain::{Event, ItemId};

use super::store_error;
use crate::records::{EVENTS_PARTITION_KEY, EVENTS_SORT_KEY, event_from_item, event_to_item};

/// The event log in a table keyed by (`stream_id`, `version`).
#[derive(Clone)]
pub struct DynamoEventStore {
    client: Client,
    table: String,
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

    fn conflict(
        item_id: ItemId,
        expected: u64,
        existing: Option<&std::collections::HashMap<String, AttributeValue>>,
    ) -> AppendError {
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
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .key(EVENTS_PARTITION_KEY, AttributeValue::S(item_id.stream_id()))
                .key(EVENTS_SORT_KEY, AttributeValue::N(expected_version.to_string()))
                .condition_expression("attribute_exists(stream_id)")
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            writes.push(TransactWriteItem::builder().condition_check(check).build());
        }
        for item in items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(NO_SUCH_VERSION)
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            writes.push(TransactWriteItem::builder().put(put).build());
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
