//! Replay throughput against its floor, on one DynamoDB Local:
//!
//! - floor: a parallel Scan of the events table and BatchWriteItem of the same
//!   records, as they are, into a copy table: no decoding, no domain logic;
//! - `replay --into`: the replay service with BatchWriteItem (a new table);
//! - `replay` into the live table: the replay service with the read model's
//!   repair (a conditional PutItem).
//!
//! `cargo run --release -p items-bench --bin replay_bench -- [EVENTS] [SEGMENTS]`
//! (defaults 10000 and 4). Prints a Markdown table. Loopback only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::StreamExt;
use items_aws::dynamodb::codec::event_to_item;
use items_aws::dynamodb::{
    BatchWriter, DynamoEventStore, DynamoReadModel, ensure_events_table, ensure_events_table_without_stream,
    ensure_items_table,
};
use items_domain::event::{Event, EventPayload, ItemCreated, ItemId};
use items_domain::ports::ReplayTarget;
use items_domain::replay::{NoCheckpoints, ReadModelTarget, ReplayService};
use items_testkit::DynamoDbLocal;

type Record = HashMap<String, AttributeValue>;

async fn batch_write(client: &Client, table: &str, records: Vec<Record>) -> anyhow::Result<()> {
    for chunk in records.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|r| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(r.clone())).build().unwrap())
                    .build()
            })
            .collect();
        while !requests.is_empty() {
            let output = client.batch_write_item().request_items(table, requests).send().await?;
            requests = output.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
        }
    }
    Ok(())
}

async fn seed(client: &Client, table: &str, count: usize) -> anyhow::Result<()> {
    let records: Vec<Record> = (0..count)
        .map(|n| {
            let event = Event {
                event_id: uuid::Uuid::new_v4(),
                item_id: ItemId(uuid::Uuid::new_v4()),
                version: 1,
                occurred_at: chrono::Utc::now(),
                subject: "bench".into(),
                payload: EventPayload::ItemCreated(ItemCreated {
                    name: format!("item {n}"),
                    timestamp: "N/A".into(),
                    description: None,
                }),
            };
            event_to_item(&event).expect("an event maps to an item")
        })
        .collect();
    futures::stream::iter(records.chunks(500).map(<[Record]>::to_vec))
        .map(|chunk| batch_write(client, table, chunk))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The floor: parallel Scan, BatchWriteItem of the raw records.
async fn floor(client: &Client, from: &str, to: &str, segments: i32) -> anyhow::Result<usize> {
    let runs = (0..segments).map(|segment| async move {
        let mut copied = 0;
        let mut start = None;
        loop {
            let output = client
                .scan()
                .table_name(from)
                .segment(segment)
                .total_segments(segments)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            let items = output.items.unwrap_or_default();
            copied += items.len();
            batch_write(client, to, items).await?;
            start = output.last_evaluated_key;
            if start.is_none() {
                return anyhow::Ok(copied);
            }
        }
    });
    let mut total = 0;
    for result in futures::future::join_all(runs).await {
        total += result?;
    }
    Ok(total)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let segments: u32 = args.next().map_or(Ok(4), |a| a.parse())?;
    let local = DynamoDbLocal::start()?;
    let client = local.client().await;
    let (log, copy, fresh, live) = ("bench-events", "bench-copy", "bench-fresh", "bench-live");
    ensure_events_table(&client, log).await?;
    // The copies have no stream, like the items tables replay writes to.
    ensure_events_table_without_stream(&client, copy).await?;
    ensure_events_table_without_stream(&client, "bench-warm-up").await?;
    ensure_items_table(&client, live).await?;
    seed(&client, log, events).await?;
    // DynamoDB Local runs on the JVM: warm it up so the first contender does
    // not pay for the JIT.
    floor(&client, log, "bench-warm-up", segments as i32).await?;

    let started = Instant::now();
    let copied = floor(&client, log, copy, segments as i32).await?;
    let floor_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(copied == events, "the floor copied {copied} of {events}");

    let scan = Arc::new(DynamoEventStore::new(client.clone(), log));
    let mut results = Vec::new();
    let targets: [(&str, Arc<dyn ReplayTarget>); 2] = [
        ("replay --into (BatchWriteItem)", {
            ensure_items_table(&client, fresh).await?;
            Arc::new(BatchWriter::new(client.clone(), fresh))
        }),
        (
            "replay into the live table (conditional repair PutItem)",
            Arc::new(ReadModelTarget::new(Arc::new(DynamoReadModel::new(client.clone(), live)), 32)),
        ),
    ];
    for (name, target) in targets {
        let service = ReplayService::new(scan.clone(), Some(target), Arc::new(NoCheckpoints), Arc::new(()));
        let started = Instant::now();
        let summary = service.run(segments).await?;
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(summary.writes.written == events, "{name} wrote {}", summary.writes.written);
        results.push((name, seconds));
    }

    let floor_rate = events as f64 / floor_seconds;
    println!("| {events} events, {segments} segments | seconds | events/s | ratio to floor |");
    println!("|---|---:|---:|---:|");
    println!("| floor: parallel Scan + BatchWriteItem, raw records | {floor_seconds:.2} | {floor_rate:.0} | 1.00 |");
    for (name, seconds) in results {
        let rate = events as f64 / seconds;
        println!("| {name} | {seconds:.2} | {rate:.0} | {:.2} |", rate / floor_rate);
    }
    Ok(())
}
