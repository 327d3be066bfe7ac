//! Reads a DynamoDB stream for the local event source mapping: every
//! shard of the events table's stream (parents before children, as shard
//! lineage requires), turns records into the Lambda event and calls the same
//! projector handler, honouring its partial batch failures. Poison is set
//! aside in the events table's quarantine partition, as the Lambda does
//! (`items quarantine --dynamodb` lists and redrives it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{EventRecord, StreamViewType};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use items_domain::service::ProjectorService;

use items_aws::projector::project_and_set_aside;
use items_aws::quarantine::DynamoQuarantine;

use crate::event_source_mapping::Attempts;

#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub events_table: String,
    /// Records per GetRecords call (and so per handler batch).
    pub batch_size: i32,
    /// Pause when a pass over all shards found nothing.
    pub idle_wait: Duration,
    /// How often to look for new shards.
    pub shard_refresh: Duration,
}

impl PollerConfig {
    pub fn new(events_table: impl Into<String>) -> Self {
        Self {
            events_table: events_table.into(),
            batch_size: 100,
            idle_wait: Duration::from_millis(50),
            shard_refresh: Duration::from_secs(1),
        }
    }
}

#[derive(Default)]
struct Shard {
    parent: Option<String>,
    iterator: Option<String>,
    /// Sequence number of the last record handled.
    checkpoint: Option<String>,
    attempts: Attempts,
    done: bool,
}

/// Runs until the task is dropped. Errors (such as DynamoDB being down) are
/// logged and retried; nothing is skipped because of them.
pub async fn run_stream_poller(
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    config: PollerConfig,
    projector: Arc<ProjectorService>,
) {
    let mut shards: BTreeMap<String, Shard> = BTreeMap::new();
    let mut last_refresh: Option<Instant> = None;
    let mut stream_arn = String::new();
    let quarantine = DynamoQuarantine::new(dynamodb.clone(), &config.events_table);
    loop {
        if last_refresh.is_none_or(|at| at.elapsed() >= config.shard_refresh) {
            match discover_shards(&dynamodb, &streams, &config.events_table, &mut shards).await {
                Ok(arn) => {
                    if arn != stream_arn {
                        // A new stream (the table was recreated): the old shards are gone.
                        shards.clear();
                        stream_arn = arn;
                    }
                    last_refresh = Some(Instant::now());
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot describe the events stream; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let mut received = 0usize;
        let ready: Vec<String> = shards
            .iter()
            .filter(|(_, shard)| !shard.done)
            .filter(|(_, shard)| shard.parent.as_ref().is_none_or(|p| shards.get(p).is_none_or(|p| p.done)))
            .map(|(id, _)| id.clone())
            .collect();
        let mut failed = false;
        for shard_id in ready {
            let poll = poll_shard(&streams, &stream_arn, &config, &projector, &quarantine, &shard_id, &mut shards);
            match poll.await {
                Ok(count) => received += count,
                Err(error) => {
                    tracing::warn!(%error, shard_id, "stream read failed; retrying");
                    if let Some(shard) = shards.get_mut(&shard_id) {
                        shard.iterator = None;
                    }
                    failed = true;
                }
            }
        }
        if failed {
            // Look at the stream again (shards may be gone) after one pause per
            // pass, not one per failing shard.
            last_refresh = None;
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if received == 0 {
            tokio::time::sleep(config.idle_wait).await;
        }
    }
}

async fn discover_shards(
    dynamodb: &aws_sdk_dynamodb::Client,
    streams: &aws_sdk_dynamodbstreams::Client,
    table: &str,
    shards: &mut BTreeMap<String, Shard>,
) -> Result<String, String> {
    let described = dynamodb.describe_table().table_name(table).send().await.map_err(|e| e.to_string())?;
    let Some(stream_arn) = described.table.and_then(|t| t.latest_stream_arn) else {
        return Err(format!("table {table} has no stream"));
    };
    let mut start: Option<String> = None;
    let mut listed = std::collections::HashSet::new();
    loop {
        let output = streams
            .describe_stream()
            .stream_arn(&stream_arn)
            .set_exclusive_start_shard_id(start.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let Some(description) = output.stream_description else {
            break;
        };
        for shard in description.shards.unwrap_or_default() {
            let Some(shard_id) = shard.shard_id else { continue };
            listed.insert(shard_id.clone());
            shards.entry(shard_id).or_insert_with(|| Shard { parent: shard.parent_shard_id, ..Shard::default() });
        }
        start = description.last_evaluated_shard_id;
        if start.is_none() {
            break;
        }
    }
    // Shards the stream no longer lists were trimmed (older than 24 h) or
    // belong to a stream that is gone: nothing more to read there.
    shards.retain(|shard_id, _| listed.contains(shard_id));
    Ok(stream_arn)
}

async fn poll_shard(
    streams: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
    config: &PollerConfig,
    projector: &ProjectorService,
    quarantine: &DynamoQuarantine,
    shard_id: &str,
    shards: &mut BTreeMap<String, Shard>,
) -> Result<usize, String> {
    let Some(shard) = shards.get_mut(shard_id) else { return Ok(0) };
    let iterator = match shard.iterator.clone() {
        Some(iterator) => iterator,
        None => {
            let request = streams.get_shard_iterator().stream_arn(stream_arn).shard_id(shard_id);
            let request = match &shard.checkpoint {
                Some(sequence) => {
                    request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence)
                }
                None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            };
            let output = request
                .send()
                .await
                .map_err(|e| format!("GetShardIterator: {}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)))?;
            match output.shard_iterator {
                Some(iterator) => iterator,
                None => {
                    shard.done = true;
                    return Ok(0);
                }
            }
        }
    };
    let output = streams
        .get_records()
        .shard_iterator(iterator)
        .limit(config.batch_size)
        .send()
        .await
        .map_err(|e| format!("GetRecords: {}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)))?;
    let records = output.records.unwrap_or_default();
    let count = records.len();
    if records.is_empty() {
        match output.next_shard_iterator {
            Some(next) => shard.iterator = Some(next),
            // A closed shard, read to its end.
            None => shard.done = true,
        }
        return Ok(0);
    }
    let sequence_numbers: Vec<Option<String>> =
        records.iter().map(|r| r.dynamodb.as_ref().and_then(|d| d.sequence_number.clone())).collect();
    let events: Vec<EventRecord> = records.into_iter().map(lambda_record).collect();
    match project_and_set_aside(projector, quarantine, &events).await.retry {
        None => {
            shard.checkpoint = sequence_numbers.last().cloned().flatten().or(shard.checkpoint.take());
            shard.attempts = Attempts::default();
            match output.next_shard_iterator {
                Some(next) => shard.iterator = Some(next),
                None => shard.done = true,
            }
        }
        Some((failed, reason)) => {
            // Go on from the failed record: re-read after the one before it.
            if failed > 0 {
                shard.checkpoint = sequence_numbers[failed - 1].clone().or(shard.checkpoint.take());
            }
            shard.iterator = None;
            tokio::time::sleep(shard.attempts.next(failed, &reason)).await;
        }
    }
    Ok(count)
}

/// A DynamoDB Streams record as Lambda's event source mapping delivers it.
fn lambda_record(record: Record) -> EventRecord {
    let mut event = EventRecord::default();
    event.event_id = record.event_id.unwrap_or_default();
    event.event_name = record.event_name.map(|n| n.as_str().to_owned()).unwrap_or_default();
    event.event_source = record.event_source;
    event.event_version = record.event_version;
    event.aws_region = record.aws_region.unwrap_or_default();
    if let Some(change) = record.dynamodb {
        event.change.keys = change.keys.map(serde_dynamo::Item::from).unwrap_or_default();
        event.change.new_image = change.new_image.map(serde_dynamo::Item::from).unwrap_or_default();
        event.change.sequence_number = change.sequence_number;
        event.change.size_bytes = change.size_bytes.unwrap_or_default();
        event.change.stream_view_type = Some(StreamViewType::NewImage);
        if let Some(at) = change.approximate_creation_date_time {
            event.change.approximate_creation_date_time =
                chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default();
        }
    }
    event
}
