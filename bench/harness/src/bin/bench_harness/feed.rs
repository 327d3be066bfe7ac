//! The embedded store's projection throughput, without concurrent writes: a
//! backlog of creates appended to a fresh SQLite store (the durable default
//! of `items serve`), then drained by its change feed as `items serve` runs
//! it, once per projector concurrency; events/s = backlog / time until the
//! projector's position reaches the log's head.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use items_aws::compose;
use items_domain::ports::EventStore;
use items_local::backend::FEED_BATCH;
use items_local::event_source_mapping::{ChangeLog, run_change_feed};
use items_local::sqlite::{Database, SqliteEventStore, SqliteReadModel};
use serde_json::json;

use crate::Series;

#[derive(Debug, clap::Args)]
pub struct FeedArgs {
    /// Events in each backlog.
    #[arg(long, default_value_t = 50_000)]
    pub backlog: usize,
    /// Items a batch applies at once (1: one record after another), comma-separated.
    #[arg(long, default_value = "1,32", value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    #[arg(long)]
    pub out: std::path::PathBuf,
}

pub fn run(args: FeedArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let mut series = Series::default();
    for &concurrency in &args.concurrency {
        let result = rt.block_on(drain(args.backlog, concurrency))?;
        eprintln!("feed: {concurrency} at once: {result:.0} events/s");
        series.push(&format!("feed.concurrency_{concurrency}.events_per_s"), result);
    }
    series.write(&args.out, json!({ "backlog": args.backlog, "concurrency": args.concurrency }))
}

async fn drain(backlog: usize, concurrency: usize) -> anyhow::Result<f64> {
    let dir = tempfile_dir()?;
    let database = Database::open(&dir)?;
    let events = Arc::new(SqliteEventStore::new(database.clone()));
    // Appended 64 at a time, so the writer's group commit takes many per sync.
    futures::stream::iter(0..backlog)
        .map(|n| {
            let events = events.clone();
            async move { events.append(0, &[crate::projection::event(n)]).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let head = database.head();
    let read_model = Arc::new(SqliteReadModel::new(database));
    let projector = Arc::new(compose::project_events(read_model, events.clone()).with_concurrency(concurrency));
    let started = Instant::now();
    let feed = tokio::spawn(run_change_feed(events.clone(), projector, FEED_BATCH));
    while events.projected_position().await? < head {
        if started.elapsed() > Duration::from_secs(600) {
            feed.abort();
            bail!("{concurrency} at once: not drained in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    feed.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(backlog as f64 / elapsed.as_secs_f64())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("items-bench-feed-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
