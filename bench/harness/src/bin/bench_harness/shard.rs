//! Projector throughput on one stream shard, by batch size: a backlog of
//! events in a fresh events table on DynamoDB Local (one table, one shard),
//! drained by the local stream poller calling the projector handler in this
//! process, as the event source mapping calls the Lambda; events/s = backlog /
//! time until the items table holds them all. One run per batch size and
//! projector concurrency, each on fresh tables. The figures of
//! docs/scaling.md's projector part.
//!
//! `--latency-ms` puts DynamoDB's own latency in front of the store: a
//! decorator on the projector's ports ([`Slow`]) waits that long before every
//! read-model and log call, as a round trip to DynamoDB would. With
//! `--store memory` the ports behind it are the in-memory ones and the
//! batches are handed to the projector's handler one after another, as the
//! event source mapping hands one shard's batches to the Lambda: what is
//! measured is the handler against DynamoDB's latency, not DynamoDB Local's
//! own CPU (which, on this machine, takes about a thousand writes a second).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::Select;
use items_aws::dynamodb::{DynamoEventStore, DynamoReadModel, ensure_events_table, ensure_items_table};
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::memory::{InMemoryEventStore, InMemoryReadModel};
use items_domain::ports::{AppendError, EventStore, Page, PageKey, ReadModel, Snapshot, StoreError, Upsert};
use items_domain::service::ProjectorService;
use items_domain::{Event, Item, ItemId};
use items_local::stream_poller::{PollerConfig, run_stream_poller};
use serde_json::json;

use crate::Series;

#[derive(Debug, clap::Args)]
pub struct ShardArgs {
    /// Events in each backlog.
    #[arg(long, default_value_t = 3000)]
    pub backlog: usize,
    /// Batch sizes (records per GetRecords call and handler batch), comma-separated.
    #[arg(long, default_value = "10,100,1000", value_delimiter = ',')]
    pub batch_sizes: Vec<i32>,
    /// Items a batch applies at once (1: one record after another), comma-separated.
    #[arg(long, default_value = "32", value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// A DynamoDB round trip's latency, added before every call of the projector.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// What the projector writes to: `dynamodb-local` (through the local
    /// stream poller) or `memory` (the handler called batch after batch).
    #[arg(long, default_value = "dynamodb-local")]
    pub store: String,
    #[arg(long)]
    pub out: std::path::PathBuf,
}

pub fn run(args: ShardArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let ddb = items_testkit::DynamoDbLocal::start()?;
    let mut series = Series::default();
    let latency = Duration::from_millis(args.latency_ms);
    for &concurrency in &args.concurrency {
        for batch_size in &args.batch_sizes {
            let result = match args.store.as_str() {
                "memory" => rt.block_on(handle(args.backlog, *batch_size, concurrency, latency))?,
                "dynamodb-local" => rt.block_on(drain(&ddb, args.backlog, *batch_size, concurrency, latency))?,
                other => bail!("--store {other}: memory or dynamodb-local"),
            };
            eprintln!(
                "shard: batch size {batch_size}, {concurrency} at once, {} ms per call: {result:.0} events/s",
                args.latency_ms
            );
            let key = format!(
                "shard.{}.latency_{}.concurrency_{concurrency}.batch_{batch_size}",
                args.store, args.latency_ms
            );
            series.push(&format!("{key}.events_per_s"), result);
        }
    }
    drop(ddb);
    series.write(
        &args.out,
        json!({
            "backlog": args.backlog,
            "batch_sizes": args.batch_sizes,
            "concurrency": args.concurrency,
            "latency_ms": args.latency_ms,
            "store": args.store,
        }),
    )
}

/// A port with DynamoDB's round trip in front: every call waits `latency`
/// first, then goes to DynamoDB Local.
struct Slow<T> {
    inner: T,
    latency: Duration,
}

impl<T> Slow<T> {
    async fn wait(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }
}

#[async_trait]
impl<T: ReadModel> ReadModel for Slow<T> {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        self.wait().await;
        self.inner.upsert_if_newer(item).await
    }

    async fn repair(&self, item: &Item) -> Result<Upsert, StoreError> {
        self.wait().await;
        self.inner.repair(item).await
    }

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError> {
        self.wait().await;
        self.inner.get(id).await
    }

    async fn list_page(&self, limit: Option<u32>, after: Option<&PageKey>) -> Result<Page, StoreError> {
        self.wait().await;
        self.inner.list_page(limit, after).await
    }

    async fn list_by_creator(
        &self,
        creator: &str,
        limit: Option<u32>,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError> {
        self.wait().await;
        self.inner.list_by_creator(creator, limit, after).await
    }
}

#[async_trait]
impl<T: EventStore> EventStore for Slow<T> {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        self.wait().await;
        self.inner.append(expected_version, events).await
    }

    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
        events: &[Event],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AppendError> {
        self.wait().await;
        self.inner.append_idempotent(record, expected_version, events, now).await
    }

    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.wait().await;
        self.inner.idempotency_record(subject, key).await
    }

    async fn stream_after(&self, item_id: ItemId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.wait().await;
        self.inner.stream_after(item_id, after, limit).await
    }

    async fn snapshot(&self, item_id: ItemId) -> Result<Option<Snapshot>, StoreError> {
        self.wait().await;
        self.inner.snapshot(item_id).await
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.wait().await;
        self.inner.save_snapshot(snapshot).await
    }
}

/// The handler on in-memory ports behind [`Slow`]: the backlog's stream
/// records in batches of `batch_size`, one batch after another.
async fn handle(backlog: usize, batch_size: i32, concurrency: usize, latency: Duration) -> anyhow::Result<f64> {
    let events: Vec<Event> = (0..backlog).map(crate::projection::event).collect();
    let records = events
        .iter()
        .enumerate()
        .map(|(n, event)| items_local::event_source_mapping::insert_record(event, n.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let read_model = Arc::new(Slow { inner: InMemoryReadModel::default(), latency });
    let history = Arc::new(Slow { inner: InMemoryEventStore::default(), latency });
    let projector = ProjectorService::new(read_model, history).with_concurrency(concurrency);
    let started = Instant::now();
    for batch in records.chunks(usize::try_from(batch_size.max(1))?) {
        let projected = items_aws::projector::project_records(&projector, batch).await;
        if let Some((index, failure)) = projected.failed {
            bail!("record {index} of a batch failed: {failure:?}");
        }
    }
    Ok(backlog as f64 / started.elapsed().as_secs_f64())
}

async fn drain(
    ddb: &items_testkit::DynamoDbLocal,
    backlog: usize,
    batch_size: i32,
    concurrency: usize,
    latency: Duration,
) -> anyhow::Result<f64> {
    let client = ddb.client().await;
    let (events_table, items_table) =
        (items_testkit::unique_table("shard-events"), items_testkit::unique_table("shard-items"));
    ensure_events_table(&client, &events_table).await?;
    ensure_items_table(&client, &items_table).await?;
    let events: Vec<_> = (0..backlog).map(crate::projection::event).collect();
    crate::projection::write_backlog_to(&client, &events_table, &events).await?;

    let streams = ddb.streams_client().await;
    let read_model = Arc::new(Slow { inner: DynamoReadModel::new(client.clone(), &items_table), latency });
    let history = Arc::new(Slow { inner: DynamoEventStore::new(client.clone(), &events_table), latency });
    let projector = Arc::new(ProjectorService::new(read_model, history).with_concurrency(concurrency));
    let config = PollerConfig { batch_size, ..PollerConfig::new(&events_table) };
    let started = Instant::now();
    let poller = tokio::spawn(run_stream_poller(client.clone(), streams, config, projector));
    let deadline = started + Duration::from_secs(600);
    loop {
        let mut count = 0usize;
        let mut pages = client.scan().table_name(&items_table).select(Select::Count).into_paginator().send();
        while let Some(page) = pages.next().await {
            count += usize::try_from(page?.count).unwrap_or(0);
        }
        if count >= backlog {
            break;
        }
        if Instant::now() > deadline {
            poller.abort();
            bail!("batch size {batch_size}: {count} of {backlog} projected in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    poller.abort();
    Ok(backlog as f64 / elapsed.as_secs_f64())
}
