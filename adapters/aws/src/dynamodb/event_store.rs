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
use items_domain::ports::{AppendError, AppendPlan, EventStore, Snapshot, StoreError, check_append};
use items_domain::{Event, Item, ItemId};

use super::store_error;
use serde_dynamo::{from_item, to_item};

use super::idempotency::{KEY_IS_FREE, StoredIdempotency};
use crate::dynamodb::codec::{EVENTS_PARTITION_KEY, EVENTS_SORT_KEY, event_from_item, recorded_item};

/// The event log in a table keyed by (`stream_id`, `version`). One file
/// with its trait impl: the condition expressions and the transactions that
/// carry them are read together.
#[derive(Clone)]
pub struct DynamoEventStore {
    client: Client,
    table: String,
}

/// Where an item's snapshot is kept: its own partition (sort key 0), so
/// readers of the item's stream, the replay scan and the projector (its event
/// filter takes `item#` partitions only) never meet it.
fn snapshot_partition(item_id: ItemId) -> String {
    format!("snap#{item_id}")
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

    /// The stream's current version, read consistently (0 when it is empty).
    async fn head(&self, item_id: ItemId) -> Result<u64, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("stream_id = :stream")
            .expression_attribute_values(":stream", AttributeValue::S(item_id.stream_id()))
            .projection_expression("version")
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("Query", e))?;
        let newest = output.items.unwrap_or_default().into_iter().next();
        Ok(newest.and_then(|item| item.get(EVENTS_SORT_KEY)?.as_n().ok()?.parse().ok()).unwrap_or(0))
    }

    /// After a refused write: the very same events stored already (our own
    /// write, retried after its answer was lost) are a success; anything else
    /// is a conflict at the stream's current version.
    async fn settle(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        let Some(first) = events.first() else { return Ok(()) };
        let stream = self.stream(first.item_id).await?;
        let actual = stream.last().map_or(0, |e| e.version);
        let stored = |version: u64| {
            let index = usize::try_from(version.checked_sub(1)?).ok()?;
            stream.get(index).filter(|e| e.version == version).cloned()
        };
        match check_append(expected_version, actual, events, stored)? {
            AppendPlan::AlreadyStored => Ok(()),
            // Refused although nobody else wrote: conflicting transactions
            // kept winning; the client may retry at the current version.
            AppendPlan::Write => {
                Err(AppendError::Conflict { item_id: first.item_id, expected: expected_version, actual })
            }
        }
    }

    /// Sends a transaction, again while DynamoDB cancels it for
    /// `TransactionConflict` (another transaction on the same items in
    /// flight): the loser tries again, then sees the winner's writes.
    async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<Result<(), Refused>, StoreError> {
        for attempt in 1..=TRANSACTION_ATTEMPTS {
            let result = self.client.transact_write_items().set_transact_items(Some(writes.clone())).send().await;
            let Err(error) = result else { return Ok(Ok(())) };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error()
            else {
                return Err(store_error("TransactWriteItems", error));
            };
            let codes: Vec<&str> =
                cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
            if codes.contains(&"ConditionalCheckFailed") {
                return Ok(Err(Refused::Conditions(
                    codes.iter().map(|code| *code == "ConditionalCheckFailed").collect(),
                )));
            }
            if !codes.contains(&"TransactionConflict") {
                return Err(store_error("TransactWriteItems", error));
            }
            tokio::time::sleep(conflict_backoff(attempt)).await;
        }
        Ok(Err(Refused::KeptConflicting))
    }

    fn encode_events(
        expected_version: u64,
        events: &[Event],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, AppendError> {
        // Shape check only (consecutive versions of one item): the stream's
        // state is for the conditional writes to check.
        check_append(expected_version, expected_version, events, |_| None)?;
        let now = chrono::Utc::now();
        events
            .iter()
            .map(|event| recorded_item(event, &now).map_err(|e| StoreError::Corrupt(e.to_string()).into()))
            .collect()
    }
}

/// Why DynamoDB refused a transaction, once `TransactionConflict` was retried.
enum Refused {
    /// These items' conditions failed (a cancellation reason per item, in order).
    Conditions(Vec<bool>),
    /// Other transactions on the same items kept winning.
    KeptConflicting,
}

/// Pause before sending again a transaction that DynamoDB cancelled because
/// another one touching the same items was in flight (`TransactionConflict`).
fn conflict_backoff(attempt: u64) -> std::time::Duration {
    std::time::Duration::from_millis(10 * attempt * attempt)
}

/// Attempts at a transaction that keeps meeting `TransactionConflict`.
const TRANSACTION_ATTEMPTS: u64 = 5;

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        let mut items = Self::encode_events(expected_version, events)?;
        if items.len() == 1 {
            // One event, the common case (every create, every change): one
            // conditional put. Its version must not exist; the caller read the
            // stream at `expected_version`, so versions stay dense without a
            // transaction (half the write units, no TransactionConflict).
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
                        // Our own write, retried after its answer was lost:
                        // the very same event, in every field.
                        let stored = failed.item().and_then(|old| event_from_item(old.clone()).ok().flatten());
                        if stored.as_ref() == Some(&events[0]) {
                            return Ok(());
                        }
                        let actual = self.head(events[0].item_id).await?;
                        Err(AppendError::Conflict { item_id: events[0].item_id, expected: expected_version, actual })
                    }
                    _ => Err(store_error("PutItem", error).into()),
                },
            };
        }
        let Some(first) = events.first() else { return Ok(()) };
        // Several events: one transaction. The stream must be at
        // `expected_version` (that version exists) and no new version may exist.
        let mut writes = Vec::with_capacity(items.len() + 1);
        if expected_version > 0 {
            writes.push(self.stream_is_at(first.item_id, expected_version)?);
        }
        for item in items {
            writes.push(self.put_new_version(item)?);
        }
        match self.transact(writes).await? {
            Ok(()) => Ok(()),
            Err(Refused::Conditions(_) | Refused::KeptConflicting) => self.settle(expected_version, events).await,
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
            .condition_expression(KEY_IS_FREE)
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(":now_ms", AttributeValue::N(now.timestamp_millis().to_string()))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut writes = vec![TransactWriteItem::builder().put(record_put).build()];
        if expected_version > 0 {
            writes.push(self.stream_is_at(item_id, expected_version)?);
        }
        for item in Self::encode_events(expected_version, events)? {
            writes.push(self.put_new_version(item)?);
        }
        match self.transact(writes).await? {
            Ok(()) => Ok(()),
            // The record's condition comes first: another request has the key.
            Err(Refused::Conditions(failed)) if failed.first() == Some(&true) => Err(AppendError::KeyTaken),
            Err(Refused::Conditions(_)) => {
                let actual = self.head(item_id).await?;
                Err(AppendError::Conflict { item_id, expected: expected_version, actual })
            }
            // Still contested: a live record means another request with this
            // key won; otherwise another change of the item did.
            Err(Refused::KeptConflicting) => {
                if self.idempotency_record(&record.subject, &record.key).await?.is_some_and(|r| r.is_live(now)) {
                    return Err(AppendError::KeyTaken);
                }
                let actual = self.head(item_id).await?;
                Err(AppendError::Conflict { item_id, expected: expected_version, actual })
            }
        }
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
        // Whose record it is, checked rather than assumed from the partition.
        if stored.subject != subject || stored.key != key.as_str() {
            return Ok(None);
        }
        stored.into_record().map(Some)
    }

    async fn snapshot(&self, item_id: ItemId) -> Result<Option<Snapshot>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(EVENTS_PARTITION_KEY, AttributeValue::S(snapshot_partition(item_id)))
            .key(EVENTS_SORT_KEY, AttributeValue::N("0".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(record) = output.item else { return Ok(None) };
        let corrupt = |what: &str| StoreError::Corrupt(format!("snapshot of item {item_id}: {what}"));
        let revision = record.get("revision").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok());
        let item = record.get("item").and_then(|v| v.as_s().ok()).ok_or_else(|| corrupt("no item"))?;
        let item: Item = serde_json::from_str(item).map_err(|e| corrupt(&e.to_string()))?;
        Ok(Some(Snapshot { item, revision: revision.ok_or_else(|| corrupt("no revision"))? }))
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let item = serde_json::to_string(&snapshot.item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(EVENTS_PARTITION_KEY, AttributeValue::S(snapshot_partition(snapshot.item.id)))
            .item(EVENTS_SORT_KEY, AttributeValue::N("0".into()))
            .item("snapshot_version", AttributeValue::N(snapshot.item.version.to_string()))
            .item("revision", AttributeValue::N(snapshot.revision.to_string()))
            .item("item", AttributeValue::S(item))
            .condition_expression(
                "attribute_not_exists(stream_id) OR snapshot_version < :version OR revision <> :revision",
            )
            .expression_attribute_values(":version", AttributeValue::N(snapshot.item.version.to_string()))
            .expression_attribute_values(":revision", AttributeValue::N(snapshot.revision.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                // A later snapshot is kept already.
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(()),
                _ => Err(store_error("PutItem", error)),
            },
        }
    }

    async fn stream_after(&self, item_id: ItemId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let mut events = Vec::new();
        let mut start = None;
        while events.len() < limit {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("stream_id = :stream AND version > :after")
                .expression_attribute_values(":stream", AttributeValue::S(item_id.stream_id()))
                .expression_attribute_values(":after", AttributeValue::N(after.to_string()))
                .consistent_read(true)
                .limit(i32::try_from(limit - events.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in output.items.unwrap_or_default() {
                match event_from_item(item) {
                    Ok(Some(event)) => events.push(event),
                    Ok(None) => {}
                    Err(error) => return Err(StoreError::Corrupt(error.to_string())),
                }
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(events)
    }
}
