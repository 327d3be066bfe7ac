//! Projector throughput on one stream shard, by batch size: a backlog of
//! events in a fresh events table on DynamoDB Local (one table, one shard),
//! drained by the local stream poller calling the projector handler in this
//! process, as the event source mapping calls the Lambda; events/s = backlog /
//! time until the items table holds them all. One run per batch size, each on
//! fresh tables. The figures of docs/scaling.md's projector part.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use aws_sdk_dynamodb::types::Select;
use items_aws::dynamodb::{DynamoEventStore, DynamoReadModel, ensure_events_table, ensure_items_table};
use items_domain::service::ProjectorService;
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
    #[arg(long)]
    pub out: std::path::PathBuf,
}

pub fn run(args: ShardArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let ddb = items_testkit::DynamoDbLocal::start()?;
    let mut series = Series::default();
    for batch_size in &args.batch_sizes {
        let result = rt.block_on(drain(&ddb, args.backlog, *batch_size))?;
        eprintln!("shard: batch size {batch_size}: {result:.0} events/s");
        series.push(&format!("shard.batch_{batch_size}.events_per_s"), result);
    }
    drop(ddb);
    series.write(&args.out, json!({ "backlog": args.backlog, "batch_sizes": args.batch_sizes }))
}

async fn drain(ddb: &items_testkit::DynamoDbLocal, backlog: usize, batch_size: i32) -> anyhow::Result<f64> {
    let client = ddb.client().await;
    let (events_table, items_table) =
        (items_testkit::unique_table("shard-events"), items_testkit::unique_table("shard-items"));
    ensure_events_table(&client, &events_table).await?;
    ensure_items_table(&client, &items_table).await?;
    let events: Vec<_> = (0..backlog).map(crate::projection::event).collect();
    crate::projection::write_backlog_to(&client, &events_table, &events).await?;

    let streams = ddb.streams_client().await;
    let read_model = Arc::new(DynamoReadModel::new(client.clone(), &items_table));
    let history = Arc::new(DynamoEventStore::new(client.clone(), &events_table));
    let projector = Arc::new(ProjectorService::new(read_model, history));
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
