//! Projection in local DynamoDB mode (`items serve --dynamodb`: the stream
//! poller calls the same projector handler as the Lambda):
//!
//! - throughput: events already in the events table before the server starts
//!   (a backlog, written with BatchWriteItem) are projected from the stream's
//!   trim horizon; events/s = events after the first one / time from the first
//!   to the last one becoming visible in the items table;
//! - lag: `POST /items` answered `201` -> `GET /items/{id}` answers `200`,
//!   polling every 2 ms, one item at a time, with a random 0-50 ms pause
//!   between samples so that they fall on every phase of the poller's cycle.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, Select, WriteRequest};
use items_aws::dynamodb::codec::event_to_item;
use items_aws::dynamodb::{ensure_events_table, ensure_items_table};
use items_domain::event::{Event, EventPayload, ItemCreated, ItemId};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Series, ms};

#[derive(Debug, clap::Args)]
pub struct ProjectionArgs {
    /// The `items` binary (release build).
    #[arg(long, default_value = "target/release/items")]
    pub items_bin: PathBuf,
    /// Events in the backlog.
    #[arg(long, default_value_t = 5000)]
    pub backlog: usize,
    /// POST-to-visible samples.
    #[arg(long, default_value_t = 300)]
    pub samples: usize,
    #[arg(long)]
    pub log_dir: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
}

const EVENTS_TABLE: &str = "projection-events";
const ITEMS_TABLE: &str = "projection-items";

pub fn event(n: usize) -> Event {
    Event {
        event_id: Uuid::new_v4(),
        item_id: ItemId(Uuid::new_v4()),
        version: 1,
        occurred_at: chrono::Utc::now(),
        subject: "4f1e8a52-7c3b-4d59-9a41-0c6b2f2e9d11".into(),
        payload: EventPayload::ItemCreated(ItemCreated {
            name: format!("Item {n}"),
            timestamp: "N/A".into(),
            description: None,
        }),
    }
}

async fn write_backlog(client: &Client, events: &[Event]) -> anyhow::Result<()> {
    write_backlog_to(client, EVENTS_TABLE, events).await
}

/// Writes `events` to `table` with BatchWriteItem (25 at a time, retrying what is unprocessed).
pub async fn write_backlog_to(client: &Client, table: &str, events: &[Event]) -> anyhow::Result<()> {
    for chunk in events.chunks(25) {
        let mut writes = Vec::new();
        for event in chunk {
            let item: HashMap<String, AttributeValue> = event_to_item(event)?;
            writes
                .push(WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build()?).build());
        }
        let mut pending = HashMap::from([(table.to_owned(), writes)]);
        while !pending.is_empty() {
            let output = client.batch_write_item().set_request_items(Some(pending)).send().await?;
            pending = output.unprocessed_items.unwrap_or_default().into_iter().filter(|(_, v)| !v.is_empty()).collect();
        }
    }
    Ok(())
}

async fn visible(client: &Client, id: ItemId) -> anyhow::Result<bool> {
    let output = client.get_item().table_name(ITEMS_TABLE).key("id", AttributeValue::S(id.to_string())).send().await?;
    Ok(output.item.is_some())
}

async fn count_items(client: &Client) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut pages = client.scan().table_name(ITEMS_TABLE).select(Select::Count).into_paginator().send();
    while let Some(page) = pages.next().await {
        count += usize::try_from(page?.count).unwrap_or(0);
    }
    Ok(count)
}

async fn wait_until(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(poll).await;
    }
}

pub fn run(args: ProjectionArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    std::fs::create_dir_all(&args.log_dir)?;
    let data_dir = std::env::temp_dir().join(format!("items-bench-projection-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)?;

    eprintln!("projection: starting DynamoDB Local, writing a backlog of {} events", args.backlog);
    let ddb = items_testkit::DynamoDbLocal::start()?;
    let client = rt.block_on(ddb.client());
    let backlog: Vec<Event> = (0..args.backlog).map(event).collect();
    rt.block_on(async {
        ensure_events_table(&client, EVENTS_TABLE).await?;
        ensure_items_table(&client, ITEMS_TABLE).await?;
        write_backlog(&client, &backlog).await
    })?;

    let port = items_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(args.log_dir.join("items-serve-dynamodb.log"))?;
    let mut command = Command::new(&args.items_bin);
    command
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--dynamodb", "--dynamodb-endpoint", &ddb.endpoint()])
        .args(["--events-table", EVENTS_TABLE, "--items-table", ITEMS_TABLE, "--data-dir"])
        .arg(&data_dir)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    eprintln!("projection: starting items serve --dynamodb; draining the backlog");
    let started = Instant::now();
    let mut server = command.spawn().context("starting items serve")?;
    let result = rt.block_on(async {
        let first = backlog[0].item_id;
        let first_at = wait_until(
            "first backlog event projected",
            Duration::from_secs(120),
            Duration::from_millis(5),
            async || visible(&client, first).await,
        )
        .await?;
        // Every backlog event projected: the projector applies a batch's
        // items at once, so the last event appended is no marker for the rest.
        let last_at = wait_until(
            "every backlog event projected",
            Duration::from_secs(300),
            Duration::from_millis(20),
            async || Ok(count_items(&client).await? == args.backlog),
        )
        .await?;

        let token = Command::new(&args.items_bin).args(["token", "--data-dir"]).arg(&data_dir).output()?;
        if !token.status.success() {
            bail!("items token failed: {}", String::from_utf8_lossy(&token.stderr));
        }
        let token = String::from_utf8(token.stdout)?.trim().to_owned();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        wait_until("items serve answering", Duration::from_secs(60), Duration::from_millis(50), async || {
            Ok(http
                .get(format!("{base}/items?limit=1"))
                .bearer_auth(&token)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200))
        })
        .await?;

        eprintln!("projection: {} POST-to-visible samples", args.samples);
        let mut series = Series::default();
        series.push("projection.backlog.events", args.backlog as f64);
        series.push("projection.backlog.first_visible_ms", ms(first_at - started));
        series.push("projection.backlog.drain_ms", ms(last_at - first_at));
        series.push("projection.backlog.events_per_s", (args.backlog - 1) as f64 / (last_at - first_at).as_secs_f64());
        let body = json!({"name": "Lag probe", "timestamp": "2026-11-25T12:20:00Z"});
        for i in 0..args.samples + 5 {
            let sent = Instant::now();
            let response = http.post(format!("{base}/items")).bearer_auth(&token).json(&body).send().await?;
            let accepted = Instant::now();
            if response.status() != 201 {
                bail!("POST /items answered {}", response.status());
            }
            let created: Value = response.json().await?;
            let id = created["item"]["id"].as_str().context("no item id in the POST answer")?.to_owned();
            let url = format!("{base}/items/{id}");
            let seen =
                wait_until("POSTed item visible", Duration::from_secs(30), Duration::from_millis(2), async || {
                    let status = http.get(&url).bearer_auth(&token).send().await?.status();
                    if status != 200 && status != 404 {
                        bail!("GET {url} answered {status}");
                    }
                    Ok(status == 200)
                })
                .await?;
            if i >= 5 {
                series.push("projection.lag_ms", ms(seen - accepted));
                series.push("projection.post_ms", ms(accepted - sent));
            }
            let pause = (Uuid::new_v4().as_u128() % 50) as u64;
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        series.push("projection.serve_rss_kib", crate::lambda::vm_hwm_kib(server.id())? as f64);
        anyhow::Ok(series)
    });
    let _ = server.kill();
    let _ = server.wait();
    drop(ddb);
    let _ = std::fs::remove_dir_all(&data_dir);
    result?.write(&args.out, json!({ "poller_idle_wait_ms": 50, "poller_batch_size": 100 }))
}
