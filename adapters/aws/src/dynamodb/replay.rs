//! Replay on DynamoDB: a parallel Scan of the events table, and a
//! BatchWriteItem writer for tables no one else writes to.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use items_domain::Item;
use items_domain::ports::{EventLogScan, ReplayTarget, ScanPage, WriteStats};
use items_domain::ports::{PageKey, StoreError};

use super::{DynamoEventStore, store_error};
use crate::dynamodb::codec::{EVENTS_PARTITION_KEY, EVENTS_SORT_KEY, event_from_item, recorded_at};

/// A scan position: the events table's key, as JSON.
fn encode_key(key: &HashMap<String, AttributeValue>) -> Option<PageKey> {
    let stream_id = key.get(EVENTS_PARTITION_KEY)?.as_s().ok()?;
    let version = key.get(EVENTS_SORT_KEY)?.as_n().ok()?;
    Some(PageKey(serde_json::json!({ "stream_id": stream_id, "version": version }).to_string()))
}

fn decode_key(key: &PageKey) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let value: serde_json::Value =
        serde_json::from_str(&key.0).map_err(|_| StoreError::Corrupt("bad scan checkpoint".into()))?;
    let (Some(stream_id), Some(version)) = (value["stream_id"].as_str(), value["version"].as_str()) else {
        return Err(StoreError::Corrupt("bad scan checkpoint".into()));
    };
    Ok(HashMap::from([
        (EVENTS_PARTITION_KEY.to_owned(), AttributeValue::S(stream_id.to_owned())),
        (EVENTS_SORT_KEY.to_owned(), AttributeValue::N(version.to_owned())),
    ]))
}

#[async_trait]
impl EventLogScan for DynamoEventStore {
    async fn scan_page(
        &self,
        segment: u32,
        total_segments: u32,
        after: Option<&PageKey>,
    ) -> Result<ScanPage, StoreError> {
        let output = self
            .client()
            .scan()
            .table_name(self.table())
            .segment(i32::try_from(segment).unwrap_or(0))
            .total_segments(i32::try_from(total_segments).unwrap_or(1))
            .set_exclusive_start_key(after.map(decode_key).transpose()?)
            .send()
            .await
            .map_err(|e| store_error("Scan", e))?;
        let mut page =
            ScanPage { next: output.last_evaluated_key.as_ref().and_then(encode_key), ..ScanPage::default() };
        for item in output.items.unwrap_or_default() {
            let item = serde_dynamo::Item::from(item);
            let recorded = recorded_at(&item);
            // An event this code cannot read stops the replay: a rebuild
            // without it would be a read model that is not the log's fold.
            match event_from_item(item) {
                Ok(Some(event)) => {
                    page.recorded_at.push(recorded.unwrap_or(event.occurred_at));
                    page.events.push(event);
                }
                Ok(None) => page.skipped += 1,
                Err(error) => return Err(StoreError::Corrupt(error.to_string())),
            }
        }
        Ok(page)
    }

    async fn item_stream(&self, item_id: items_domain::ItemId) -> Result<Vec<items_domain::Event>, StoreError> {
        items_domain::ports::EventStore::stream(self, item_id).await
    }
}

/// BatchWriteItem in batches of 25, retrying unprocessed items with
/// exponential backoff and jitter.
///
/// BatchWriteItem cannot carry a condition, so these writes are not
/// version-guarded: use it only for a table that nothing else writes to
/// (`items replay --into <new table>`). Replays into a live table go through
/// the projector's conditional upsert instead.
pub struct BatchWriter {
    client: Client,
    table: String,
    max_retries: u32,
}

impl BatchWriter {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), max_retries: 10 }
    }
}

/// 25 ms doubling per attempt, capped at 2 s, with full jitter.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 25u64.saturating_mul(1 << attempt.min(7)).min(2000);
    let mut random = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut random);
    Duration::from_millis(u64::from_le_bytes(random) % (ceiling + 1))
}

#[async_trait]
impl ReplayTarget for BatchWriter {
    async fn write(&self, items: Vec<Item>) -> Result<WriteStats, StoreError> {
        let mut stats = WriteStats::default();
        for chunk in items.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for item in chunk {
                let record = super::read_model::record(item)?;
                let put = PutRequest::builder()
                    .set_item(Some(record))
                    .build()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            let mut attempt = 0;
            while !requests.is_empty() {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests.clone())
                    .send()
                    .await
                    .map_err(|e| store_error("BatchWriteItem", e))?;
                let unprocessed = output.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
                stats.written += requests.len() - unprocessed.len();
                if unprocessed.is_empty() {
                    break;
                }
                attempt += 1;
                if attempt > self.max_retries {
                    return Err(StoreError::Unavailable(format!(
                        "BatchWriteItem: {} items still unprocessed after {} retries",
                        unprocessed.len(),
                        self.max_retries
                    )));
                }
                stats.retries += unprocessed.len();
                tokio::time::sleep(backoff(attempt)).await;
                requests = unprocessed;
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_positions_round_trip() {
        let key = HashMap::from([
            ("stream_id".to_owned(), AttributeValue::S("item#abc".into())),
            ("version".to_owned(), AttributeValue::N("3".into())),
        ]);
        assert_eq!(decode_key(&encode_key(&key).unwrap()).unwrap(), key);
        assert!(decode_key(&PageKey("{}".into())).is_err());
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        for attempt in 0..20 {
            assert!(backoff(attempt) <= Duration::from_millis(2000));
        }
        assert!(backoff(1) <= Duration::from_millis(50));
    }
}
