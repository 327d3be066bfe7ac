//! Load and faults, end to end: the real `items` binary over HTTP on loopback,
//! under thousands of concurrent creates, concurrent retries with idempotency
//! keys, a DynamoDB outage, bad stream records and a SIGTERM with requests in
//! flight.
//!
//! Every test is bounded in requests and time. Time bounds only guard against
//! hangs; the speeds they measure are printed (run with `--nocapture`), never
//! asserted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::Server;
use aws_sdk_dynamodb::types::AttributeValue;
use items_aws::dynamodb::{ensure_events_table, ensure_items_table};
use items_testkit::{DynamoDbLocal, unique_table};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// A DynamoDB item as the SDK returns it.
type Record = HashMap<String, AttributeValue>;

/// These tests load a small machine: one at a time, so they neither starve each
/// other nor blur each other's numbers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Guards against a hung request; far above any healthy latency.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn dynamodb_server(local: &DynamoDbLocal, events: &str, items: &str) -> Server {
    let endpoint = local.endpoint();
    Server::start(&["--dynamodb", "--dynamodb-endpoint", &endpoint, "--events-table", events, "--items-table", items])
}

fn http_client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client")
}

/// One answer, whatever its status.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    /// The `idempotent-replayed` header, if any.
    repeat: Option<String>,
    /// The body as JSON, or as a JSON string when it is not JSON.
    body: Value,
    latency: Duration,
}

impl Reply {
    fn id(&self) -> String {
        self.body["item"]["id"].as_str().unwrap_or_default().to_owned()
    }

    /// An error the way the API promises them: a JSON object with a `message`.
    fn is_json_error(&self) -> bool {
        self.body.as_object().is_some_and(|body| body.get("message").is_some_and(Value::is_string))
    }
}

async fn reply(started: Instant, response: reqwest::Response) -> Result<Reply, reqwest::Error> {
    let status = response.status().as_u16();
    let repeat = response.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap_or("<not text>").to_owned());
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Reply { status, repeat, body, latency: started.elapsed() })
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> Result<Reply, reqwest::Error> {
    let started = Instant::now();
    let mut request = client.post(format!("{url}/items")).header("Authorization", format!("Bearer {token}")).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    reply(started, request.send().await?).await
}

async fn get(client: &reqwest::Client, url: &str, token: &str, path: &str) -> Result<Reply, reqwest::Error> {
    let started = Instant::now();
    reply(started, client.get(format!("{url}{path}")).header("Authorization", token).send().await?).await
}

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("an item id").to_owned()
}

/// Polls `GET /items` until every id of `ids` is listed; returns the listing.
async fn wait_until_all_listed(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    ids: &HashSet<String>,
    within: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let listing = get(client, &server.base_url, token, "/items").await.expect("GET /items answers");
        assert_eq!(listing.status, 200, "GET /items: {listing:?}");
        let items = listing.body.as_array().expect("a JSON array").clone();
        let listed: HashSet<String> = items.iter().map(id_of).collect();
        let missing = ids.difference(&listed).count();
        if missing == 0 {
            return items;
        }
        assert!(Instant::now() < deadline, "{missing} of {} items still not listed after {within:?}", ids.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every record of a table, read with a paginated Scan (small pages, so that
/// pagination is exercised too).
async fn scan_all(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Record> {
    dynamodb
        .scan()
        .table_name(table)
        .limit(500)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|record| record.unwrap_or_else(|e| panic!("Scan {table}: {e:?}")))
        .collect()
}

fn text(record: &Record, attribute: &str) -> String {
    record.get(attribute).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// The records of the events table whose `stream_id` starts with `prefix`.
async fn records_with_prefix(dynamodb: &aws_sdk_dynamodb::Client, events: &str, prefix: &str) -> Vec<Record> {
    scan_all(dynamodb, events).await.into_iter().filter(|r| text(r, "stream_id").starts_with(prefix)).collect()
}

/// The item ids of the event records (`item#<id>`) of the events table.
async fn event_item_ids(dynamodb: &aws_sdk_dynamodb::Client, events: &str) -> Vec<String> {
    records_with_prefix(dynamodb, events, "item#")
        .await
        .iter()
        .map(|r| text(r, "stream_id").trim_start_matches("item#").to_owned())
        .collect()
}

/// The records of the items table, by id.
async fn read_table(dynamodb: &aws_sdk_dynamodb::Client, items: &str) -> BTreeMap<String, Record> {
    scan_all(dynamodb, items).await.into_iter().map(|r| (text(&r, "id"), r)).collect()
}

fn distinct(ids: &[String]) -> HashSet<String> {
    ids.iter().cloned().collect()
}

/// `p50 / p99 / max` of some latencies, for the report.
fn latency_summary(latencies: &[Duration]) -> String {
    if latencies.is_empty() {
        return "none".into();
    }
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    format!("p50 {:?} / p99 {:?} / max {:?}", at(0.5), at(0.99), sorted[sorted.len() - 1])
}

/// 2,000 creates, 64 in flight on one client: every one answered 201, every
/// one listed exactly once, one event and one read-table item each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_posts_lose_nothing() {
    const POSTS: usize = 2000;
    const IN_FLIGHT: usize = 64;
    let _serial = SERIAL.lock().await;
    let local = DynamoDbLocal::shared();
    let (events, items) = (unique_table("load-events"), unique_table("load-items"));
    let server = dynamodb_server(local, &events, &items);
    let token = server.token(&[]);
    let client = http_client(IN_FLIGHT);

    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    let started = Instant::now();
    for _ in 0..IN_FLIGHT {
        let (client, url, token, next) = (client.clone(), server.base_url.clone(), token.clone(), next.clone());
        workers.spawn(async move {
            let mut replies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= POSTS {
                    return replies;
                }
                let body = json!({"name": format!("load-{i:04}"), "timestamp": format!("t-{i}")});
                replies.push((i, post(&client, &url, &token, &body, None).await));
            }
        });
    }
    let mut replies = Vec::with_capacity(POSTS);
    while let Some(done) = workers.join_next().await {
        replies.extend(done.expect("a POST worker"));
    }
    let post_time = started.elapsed();
    let last_created = Instant::now();

    let mut created: HashMap<String, Value> = HashMap::new();
    let mut failures = Vec::new();
    let mut latencies = Vec::new();
    for (i, reply) in replies {
        match reply {
            Ok(reply) if reply.status == 201 && reply.body["item"]["name"] == format!("load-{i:04}") => {
                latencies.push(reply.latency);
                let previous = created.insert(reply.id(), reply.body["item"].clone());
                assert!(previous.is_none(), "two 201s with the item id {}", reply.id());
            }
            other => failures.push(format!("POST #{i}: {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {POSTS} POSTs did not get their 201; first ones: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(created.len(), POSTS);

    let ids: HashSet<String> = created.keys().cloned().collect();
    let listed = wait_until_all_listed(&client, &server, &token, &ids, Duration::from_secs(60)).await;
    let projection_lag = last_created.elapsed();
    let listed_ids: Vec<String> = listed.iter().map(id_of).collect();
    assert_eq!(listed.len(), POSTS, "only the created items are listed");
    assert_eq!(distinct(&listed_ids).len(), POSTS, "no item is listed twice");
    assert_eq!(distinct(&listed_ids), ids);
    for item in &listed {
        assert_eq!(item, &created[&id_of(item)], "listed as the 201 described it");
    }

    let dynamodb = local.client().await;
    let event_ids = event_item_ids(&dynamodb, &events).await;
    assert_eq!(event_ids.len(), POSTS, "one event per 201, no more");
    assert_eq!(distinct(&event_ids), ids);
    let table = read_table(&dynamodb, &items).await;
    assert_eq!(table.len(), POSTS, "one read-table item per event");
    assert_eq!(table.keys().cloned().collect::<HashSet<_>>(), ids);

    eprintln!(
        "[load_faults] {POSTS} POSTs, {IN_FLIGHT} in flight: {:.2} s ({:.0} POST/s), latency {}; \
         all listed {:.2} s after the last 201",
        post_time.as_secs_f64(),
        POSTS as f64 / post_time.as_secs_f64(),
        latency_summary(&latencies),
        projection_lag.as_secs_f64(),
    );
}

/// 500 keys, each sent 1 to 4 times at once: one item per key, every answer
/// for a key is that item, and exactly the first is not marked as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_idempotency_keys_make_one_item_per_key() {
    const KEYS: usize = 500;
    const KEYS_IN_FLIGHT: usize = 16;
    let _serial = SERIAL.lock().await;
    // How often each key is sent: 1 to 4, from a fixed-seed LCG (Knuth's MMIX constants).
    let mut state: u64 = 0x1DE4_7E57;
    let copies: Arc<Vec<usize>> = Arc::new(
        (0..KEYS)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                1 + (state >> 33) as usize % 4
            })
            .collect(),
    );
    let sent: usize = copies.iter().sum();
    let spread: Vec<usize> = (1..=4).map(|n| copies.iter().filter(|&&c| c == n).count()).collect();
    assert!(spread.iter().all(|&n| n > 0), "every retry count occurs: {spread:?}");

    let local = DynamoDbLocal::shared();
    let (events, items) = (unique_table("idem-events"), unique_table("idem-items"));
    let server = dynamodb_server(local, &events, &items);
    let token = server.token(&[]);
    let client = http_client(KEYS_IN_FLIGHT * 4);

    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    let started = Instant::now();
    for _ in 0..KEYS_IN_FLIGHT {
        let (client, url, token, next, copies) =
            (client.clone(), server.base_url.clone(), token.clone(), next.clone(), copies.clone());
        workers.spawn(async move {
            let mut results = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= KEYS {
                    return results;
                }
                // The retries of one key race each other.
                let mut retries = JoinSet::new();
                for _ in 0..copies[k] {
                    let (client, url, token) = (client.clone(), url.clone(), token.clone());
                    retries.spawn(async move {
                        let body = json!({"name": format!("retried-{k:03}"), "timestamp": "t"});
                        post(&client, &url, &token, &body, Some(&format!("key-{k:03}"))).await
                    });
                }
                let mut replies = Vec::new();
                while let Some(done) = retries.join_next().await {
                    replies.push(done.expect("a retry"));
                }
                results.push((k, replies));
            }
        });
    }
    let mut results = Vec::with_capacity(KEYS);
    while let Some(done) = workers.join_next().await {
        results.extend(done.expect("a key worker"));
    }
    let post_time = started.elapsed();

    let mut item_of_key: HashMap<usize, Value> = HashMap::new();
    let mut failures = Vec::new();
    let mut latencies = Vec::new();
    for (k, replies) in results {
        let replies: Vec<Reply> = match replies.into_iter().collect::<Result<Vec<_>, _>>() {
            Ok(replies) => replies,
            Err(error) => {
                failures.push(format!("key-{k:03}: {error:?}"));
                continue;
            }
        };
        latencies.extend(replies.iter().map(|r| r.latency));
        if replies.len() != copies[k] || replies.iter().any(|r| r.status != 201) {
            failures.push(format!("key-{k:03}: not all 201: {replies:?}"));
            continue;
        }
        let item = &replies[0].body["item"];
        if item["name"] != format!("retried-{k:03}") || replies.iter().any(|r| &r.body["item"] != item) {
            failures.push(format!("key-{k:03}: the answers describe different items: {replies:?}"));
        }
        let fresh = replies.iter().filter(|r| r.repeat.is_none()).count();
        let repeats_marked = replies.iter().filter(|r| r.repeat.as_deref() == Some("true")).count();
        if fresh != 1 || fresh + repeats_marked != replies.len() {
            failures.push(format!("key-{k:03}: {fresh} fresh answers, {repeats_marked} marked repeats: {replies:?}"));
        }
        item_of_key.insert(k, item.clone());
    }
    assert!(
        failures.is_empty(),
        "{} of {KEYS} keys went wrong; first ones: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let ids: HashSet<String> = item_of_key.values().map(id_of).collect();
    assert_eq!(ids.len(), KEYS, "one distinct item per key");

    let listed = wait_until_all_listed(&client, &server, &token, &ids, Duration::from_secs(60)).await;
    let listed_ids: Vec<String> = listed.iter().map(id_of).collect();
    assert_eq!(listed.len(), KEYS, "one listed item per key, whatever the retries");
    assert_eq!(distinct(&listed_ids), ids);

    let dynamodb = local.client().await;
    let event_ids = event_item_ids(&dynamodb, &events).await;
    assert_eq!(event_ids.len(), KEYS, "one event per key");
    assert_eq!(distinct(&event_ids), ids);
    assert_eq!(records_with_prefix(&dynamodb, &events, "idem#").await.len(), KEYS, "one idempotency record per key");
    assert_eq!(read_table(&dynamodb, &items).await.len(), KEYS, "one read-table item per key");

    eprintln!(
        "[load_faults] {KEYS} keys sent {sent} times (1/2/3/4 copies: {spread:?}), {KEYS_IN_FLIGHT} keys in flight: \
         {:.2} s ({:.0} POST/s), latency {}",
        post_time.as_secs_f64(),
        sent as f64 / post_time.as_secs_f64(),
        latency_summary(&latencies),
    );
}

/// One request of the background traffic during the outage.
#[derive(Debug)]
struct Observed {
    what: &'static str,
    started: Instant,
    outcome: Result<Reply, String>,
}

/// Clients that keep creating and listing until told to stop.
struct Traffic {
    stop: Arc<AtomicBool>,
    workers: JoinSet<Vec<Observed>>,
}

impl Traffic {
    fn start(client: &reqwest::Client, server: &Server, token: &str, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = JoinSet::new();
        for w in 0..workers {
            let (client, url, token, stop) = (client.clone(), server.base_url.clone(), token.to_owned(), stop.clone());
            set.spawn(async move {
                let mut observed = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let (what, outcome) = if n.is_multiple_of(2) {
                        let body = json!({"name": format!("traffic-{w}-{n}")});
                        ("POST /items", post(&client, &url, &token, &body, None).await)
                    } else {
                        ("GET /items", get(&client, &url, &token, "/items").await)
                    };
                    observed.push(Observed { what, started, outcome: outcome.map_err(|e| format!("{e:?}")) });
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                observed
            });
        }
        Self { stop, workers: set }
    }

    async fn finish(mut self) -> Vec<Observed> {
        self.stop.store(true, Ordering::Relaxed);
        let mut observed = Vec::new();
        let all = async {
            while let Some(done) = self.workers.join_next().await {
                observed.extend(done.expect("a traffic worker"));
            }
        };
        tokio::time::timeout(Duration::from_secs(90), all).await.expect("the traffic ends: no request hangs");
        observed
    }
}

/// DynamoDB Local is killed under traffic: the API answers 503 (JSON) quickly,
/// stays up, and works again by itself once DynamoDB is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_outage_fails_fast_and_recovers() {
    /// No single answer may take longer than this (a hang guard, not a speed goal).
    const ANSWER_BOUND: Duration = Duration::from_secs(15);
    const OUTAGE: Duration = Duration::from_secs(8);
    let _serial = SERIAL.lock().await;
    let local = DynamoDbLocal::start().expect("DynamoDB Local starts");
    let (events, items) = (unique_table("outage-events"), unique_table("outage-items"));
    let mut server = dynamodb_server(&local, &events, &items);
    let token = server.token(&[]);
    let client = http_client(8);
    let url = server.base_url.clone();

    let mut before = HashSet::new();
    for i in 0..5 {
        let reply = post(&client, &url, &token, &json!({"name": format!("before-{i}")}), None).await.unwrap();
        assert_eq!(reply.status, 201, "{reply:?}");
        before.insert(reply.id());
    }
    wait_until_all_listed(&client, &server, &token, &before, Duration::from_secs(30)).await;
    let mut visible_before = Vec::new();
    for i in 0..3 {
        visible_before.push(time_to_visible(&client, &server, &token, &format!("sample-before-{i}")).await);
    }

    // The outage, under traffic.
    let traffic = Traffic::start(&client, &server, &token, 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    local.stop();
    let stopped = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let observed = traffic.finish().await;

    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut during = Vec::new();
    let mut first_failure: Option<Duration> = None;
    for seen in &observed {
        let reply = match &seen.outcome {
            Ok(reply) => reply,
            Err(error) => panic!("{} got no HTTP answer (connection error): {error}", seen.what),
        };
        *statuses.entry(reply.status).or_default() += 1;
        assert!(reply.latency <= ANSWER_BOUND, "{} took {:?}: {reply:?}", seen.what, reply.latency);
        match reply.status {
            200 | 201 => {
                assert!(seen.started < stopped, "{} succeeded without DynamoDB: {reply:?}", seen.what);
            }
            503 | 504 => {
                assert!(reply.is_json_error(), "{} {}: not a JSON error: {reply:?}", seen.what, reply.status);
                during.push(reply.latency);
                let at = (seen.started + reply.latency).saturating_duration_since(stopped);
                first_failure = Some(first_failure.map_or(at, |f| f.min(at)));
            }
            other => panic!("{} answered {other} during the outage: {reply:?}", seen.what),
        }
    }
    let started_during = observed.iter().filter(|seen| seen.started >= stopped).count();
    assert!(started_during >= 4, "the traffic went on during the outage ({started_during} requests)");
    assert!(!during.is_empty(), "the outage was noticed: {statuses:?}");
    assert!(server.is_running(), "items serve survives the outage");
    eprintln!(
        "[load_faults] outage: {} requests ({statuses:?}); failed answers' latency {}; first failure {:?} after the stop",
        observed.len(),
        latency_summary(&during),
        first_failure.unwrap_or_default(),
    );

    // DynamoDB Local is back, in memory: empty, without the tables.
    local.resume().expect("DynamoDB Local restarts");
    let resumed = Instant::now();
    let dynamodb = local.client().await;
    let tables = dynamodb.list_tables().send().await.expect("ListTables").table_names().to_vec();
    assert!(
        !tables.contains(&events) && !tables.contains(&items),
        "in-memory DynamoDB Local restarts empty: {tables:?}"
    );
    // items serve creates its tables only at start-up: while they are missing it
    // answers 503 (not 500, no hang) and waits for them.
    let mut without_tables = Vec::new();
    for _ in 0..3 {
        for reply in [
            post(&client, &url, &token, &json!({"name": "no-table"}), None).await.expect("an answer"),
            get(&client, &url, &token, "/items").await.expect("an answer"),
        ] {
            assert_eq!(reply.status, 503, "{reply:?}");
            assert!(reply.is_json_error(), "{reply:?}");
            assert!(reply.latency <= ANSWER_BOUND, "{reply:?}");
            without_tables.push(reply.latency);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // In AWS the tables outlive any outage; here they are recreated, as an
    // operator would restore them, and the running server must pick them up.
    ensure_events_table(&dynamodb, &events).await.expect("the events table is recreated");
    ensure_items_table(&dynamodb, &items).await.expect("the items table is recreated");
    let recreated = Instant::now();

    let mut after = HashSet::new();
    let deadline = recreated + Duration::from_secs(60);
    let first_created = loop {
        let reply = post(&client, &url, &token, &json!({"name": "after-0"}), None).await.expect("an answer");
        match reply.status {
            201 => {
                after.insert(reply.id());
                break recreated.elapsed();
            }
            503 | 504 if reply.is_json_error() => {}
            _ => panic!("while recovering: {reply:?}"),
        }
        assert!(Instant::now() < deadline, "POST still fails 60 s after the tables are back: {reply:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for i in 1..20 {
        let reply = post(&client, &url, &token, &json!({"name": format!("after-{i}")}), None).await.unwrap();
        assert_eq!(reply.status, 201, "after recovery: {reply:?}");
        after.insert(reply.id());
    }
    let listed = wait_until_all_listed(&client, &server, &token, &after, Duration::from_secs(60)).await;
    let projected = recreated.elapsed();
    let listed_ids: Vec<String> = listed.iter().map(id_of).collect();
    // What was stored before the restart went with DynamoDB Local's memory.
    assert_eq!(distinct(&listed_ids), after, "exactly the items created after the recovery are listed");
    assert_eq!(listed_ids.len(), after.len(), "none twice");
    let one = after.iter().next().unwrap();
    let reply = get(&client, &url, &token, &format!("/items/{one}")).await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let mut visible_after = Vec::new();
    for i in 0..3 {
        visible_after.push(time_to_visible(&client, &server, &token, &format!("sample-after-{i}")).await);
    }

    // No item without its event.
    let event_ids = distinct(&event_item_ids(&dynamodb, &events).await);
    let table = read_table(&dynamodb, &items).await;
    for id in table.keys() {
        assert!(event_ids.contains(id), "item {id} is in the read table without its event");
    }
    assert!(after.is_subset(&event_ids));
    assert!(server.is_running());
    eprintln!(
        "[load_faults] recovery: 503 without tables in {without_tables:?}; \
         tables recreated {:.2} s after the restart; first 201 {:.2} s later; \
         20 new items listed {:.2} s after the tables were back; 201-to-GET delay before the outage \
         {visible_before:?}, after it {visible_after:?}",
        recreated.duration_since(resumed).as_secs_f64(),
        first_created.as_secs_f64(),
        projected.as_secs_f64(),
    );
}

/// Creates an item and measures how long until `GET /items/{id}` finds it.
async fn time_to_visible(client: &reqwest::Client, server: &Server, token: &str, name: &str) -> Duration {
    let (id, item) = create(client, server, token, name).await;
    let created = Instant::now();
    loop {
        let reply = get(client, &server.base_url, token, &format!("/items/{id}")).await.expect("an answer");
        if reply.status == 200 {
            assert_eq!(reply.body, item);
            return created.elapsed();
        }
        assert_eq!(reply.status, 404, "{reply:?}");
        assert!(created.elapsed() < Duration::from_secs(30), "item {id} not visible within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stream records the projector cannot use, written straight into the events
/// table: `(what, record)`.
fn bad_records() -> Vec<(&'static str, Record)> {
    let s = |text: &str| AttributeValue::S(text.to_owned());
    let event = |event_type: &str, schema: u32| -> Record {
        let id = uuid::Uuid::new_v4();
        HashMap::from([
            ("stream_id".to_owned(), s(&format!("item#{id}"))),
            ("version".to_owned(), AttributeValue::N("1".into())),
            ("event_id".to_owned(), s(&uuid::Uuid::new_v4().to_string())),
            ("item_id".to_owned(), s(&id.to_string())),
            ("type".to_owned(), s(event_type)),
            ("schema".to_owned(), AttributeValue::N(schema.to_string())),
            ("occurred_at".to_owned(), s("2026-01-01T00:00:00.000Z")),
            ("subject".to_owned(), s("someone")),
            (
                "data".to_owned(),
                AttributeValue::M(HashMap::from([("name".to_owned(), s("bad")), ("timestamp".to_owned(), s("t"))])),
            ),
        ])
    };
    let garbage = HashMap::from([
        ("stream_id".to_owned(), s(&format!("item#{}", uuid::Uuid::new_v4()))),
        ("version".to_owned(), AttributeValue::N("1".into())),
        ("type".to_owned(), s("ItemCreated")),
        ("data".to_owned(), s("\u{1}{{ not an event ]]")),
    ]);
    vec![
        ("garbage data", garbage),
        ("an unsupported schema", event("ItemCreated", 99)),
        ("an unknown event type", event("ItemArchived", 1)),
    ]
}

/// `POST /items` that must succeed: `(id, item)`.
async fn create(client: &reqwest::Client, server: &Server, token: &str, name: &str) -> (String, Value) {
    let reply = post(client, &server.base_url, token, &json!({"name": name}), None).await.expect("an answer");
    assert_eq!(reply.status, 201, "{reply:?}");
    (reply.id(), reply.body["item"].clone())
}

/// Bad records in the log do not stop the projection of the good ones; a
/// restarted server re-reads the whole stream (every record a duplicate) and the
/// read table converges to the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_converges_with_duplicates_and_bad_records() {
    let _serial = SERIAL.lock().await;
    let local = DynamoDbLocal::shared();
    let dynamodb = local.client().await;
    let (events, items) = (unique_table("bad-events"), unique_table("bad-items"));
    let mut first = dynamodb_server(local, &events, &items);
    let token = first.token(&[]);
    let client = http_client(8);

    let mut created: HashMap<String, Value> = HashMap::new();
    for i in 0..10 {
        created.extend([create(&client, &first, &token, &format!("good-{i}")).await]);
    }
    for (what, record) in bad_records() {
        dynamodb.put_item().table_name(&events).set_item(Some(record)).send().await.expect(what);
    }
    let bad_written = Instant::now();
    for i in 10..20 {
        created.extend([create(&client, &first, &token, &format!("good-{i}")).await]);
    }
    let ids: HashSet<String> = created.keys().cloned().collect();
    let listed = wait_until_all_listed(&client, &first, &token, &ids, Duration::from_secs(60)).await;
    let past_bad = bad_written.elapsed();
    assert_eq!(listed.len(), 20, "the bad records made no item: {listed:#?}");
    for item in &listed {
        assert_eq!(item, &created[&id_of(item)]);
    }
    assert_eq!(read_table(&dynamodb, &items).await.len(), 20);

    // Still healthy, and the stream is not stuck behind the bad records.
    assert!(first.is_running());
    let (later, item) = create(&client, &first, &token, "later").await;
    created.insert(later.clone(), item.clone());
    wait_until_all_listed(&client, &first, &token, &HashSet::from([later.clone()]), Duration::from_secs(30)).await;
    let reply = get(&client, &first.base_url, &token, &format!("/items/{later}")).await.unwrap();
    assert_eq!((reply.status, &reply.body), (200, &item));

    first.terminate();
    let status = first.wait_exit(Duration::from_secs(10)).expect("the first server stops");
    assert!(status.success(), "{status:?}");

    // A new server's poller starts from the stream's beginning: every record is
    // delivered again. Three items are taken out of the read table first; only
    // the redelivery can bring them back.
    let snapshot = read_table(&dynamodb, &items).await;
    assert_eq!(snapshot.len(), 21);
    let removed: Vec<String> = snapshot.keys().take(3).cloned().collect();
    for id in &removed {
        dynamodb
            .delete_item()
            .table_name(&items)
            .key("id", AttributeValue::S(id.clone()))
            .send()
            .await
            .expect("DeleteItem");
    }
    let restarted = Instant::now();
    let second = dynamodb_server(local, &events, &items);
    let token = second.token(&[]);
    wait_until_all_listed(&client, &second, &token, &distinct(&removed), Duration::from_secs(60)).await;
    let redelivered = restarted.elapsed();
    let (marker, _) = create(&client, &second, &token, "marker").await;
    wait_until_all_listed(&client, &second, &token, &HashSet::from([marker.clone()]), Duration::from_secs(30)).await;

    let mut table = read_table(&dynamodb, &items).await;
    assert!(table.remove(&marker).is_some());
    assert_eq!(table, snapshot, "duplicates changed nothing; the removed items came back as they were");
    let listed = get(&client, &second.base_url, &token, "/items").await.unwrap();
    assert_eq!(listed.body.as_array().map(Vec::len), Some(22), "{listed:?}");
    eprintln!(
        "[load_faults] bad records: the 20 good items listed {:.2} s after the bad records were written; \
         a restarted server re-projected the whole stream in {:.2} s",
        past_bad.as_secs_f64(),
        redelivered.as_secs_f64(),
    );
}

/// The head of a `POST /items` with a JSON body of `length` bytes.
fn post_head(token: &str, length: usize) -> String {
    format!(
        "POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Reads one HTTP/1.1 response with a `Content-Length` body: `(status, body)`.
/// An error if the connection ends before the whole response arrived.
async fn read_response(stream: &mut TcpStream) -> Result<(u16, Vec<u8>), String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) => return Err(format!("closed after {} bytes of the response head", buffer.len())),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(error) => return Err(format!("{error} after {} bytes of the response head", buffer.len())),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {head:?}"))?;
    let length: usize = head
        .lines()
        .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, value)| value.trim().parse().ok())
        .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) => return Err(format!("closed after {} of {length} body bytes", body.len())),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(error) => return Err(format!("{error} after {} of {length} body bytes", body.len())),
        }
    }
    body.truncate(length);
    Ok((status, body))
}

/// SIGTERM with requests in flight: they are all answered in full, new
/// connections are refused, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    /// Connections whose request is half sent when the signal arrives.
    const HELD: usize = 50;
    /// Fresh POSTs fired as the signal is sent, racing it.
    const BURST: usize = 50;
    let _serial = SERIAL.lock().await;
    let mut server = Server::start(&[]);
    let token = server.token(&[]);
    let addr = server.base_url.trim_start_matches("http://").to_owned();

    // A first request on each connection proves the server accepted it; the
    // second stops halfway through its body, so its handler is waiting for it.
    let mut held = Vec::new();
    for i in 0..HELD {
        let mut stream = TcpStream::connect(&addr).await.expect("connects");
        let body = json!({"name": format!("warm-up-{i}")}).to_string();
        stream.write_all(format!("{}{body}", post_head(&token, body.len())).as_bytes()).await.unwrap();
        let (status, _) = read_response(&mut stream).await.expect("the warm-up is answered");
        assert_eq!(status, 201);
        let body = json!({"name": format!("in-flight-{i}")}).to_string();
        let (sent, rest) = body.split_at(body.len() / 2);
        stream.write_all(format!("{}{sent}", post_head(&token, body.len())).as_bytes()).await.unwrap();
        held.push((i, stream, rest.to_owned()));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let mut burst = JoinSet::new();
    for i in 0..BURST {
        let (client, url, token) = (client.clone(), server.base_url.clone(), token.clone());
        burst.spawn(async move { post(&client, &url, &token, &json!({"name": format!("burst-{i}")}), None).await });
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    server.terminate();
    let signalled = Instant::now();

    // The server is shutting down: it no longer accepts connections...
    let refused = loop {
        match TcpStream::connect(&addr).await {
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => break signalled.elapsed(),
            // Caught in the accept queue as the listener closed: refused next time.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(error) => panic!("connecting during the shutdown: {error}"),
            Ok(_) => {}
        }
        assert!(signalled.elapsed() < Duration::from_secs(10), "still accepting 10 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // ...and still finishes the requests it had begun.
    for (i, stream, rest) in &mut held {
        stream.write_all(rest.as_bytes()).await.unwrap_or_else(|e| panic!("in-flight #{i}: body refused: {e}"));
    }
    let mut finished = 0;
    for (i, mut stream, _) in held {
        let answer = tokio::time::timeout(Duration::from_secs(15), read_response(&mut stream))
            .await
            .unwrap_or_else(|_| panic!("in-flight #{i}: no answer within 15 s"))
            .unwrap_or_else(|e| panic!("in-flight #{i}: {e}"));
        assert_eq!(answer.0, 201, "in-flight #{i}: {}", String::from_utf8_lossy(&answer.1));
        let body: Value = serde_json::from_slice(&answer.1).expect("a JSON body");
        assert_eq!(body["item"]["name"], format!("in-flight-{i}"));
        finished += 1;
    }

    let mut answered = 0;
    let mut not_connected = 0;
    let mut no_answer = Vec::new();
    while let Some(done) = burst.join_next().await {
        match done.expect("a burst POST") {
            Ok(reply) => {
                assert_eq!(reply.status, 201, "a burst POST got an answer, so a whole 201: {reply:?}");
                assert!(reply.body["item"]["id"].is_string(), "{reply:?}");
                answered += 1;
            }
            Err(error) if error.is_connect() => not_connected += 1,
            // Sent on a connection the server had not begun to read (just accepted,
            // or still in the accept queue) when the signal came: closed without
            // any response, never with a partial one. hyper's graceful shutdown
            // closes such connections at once; nothing was processed.
            Err(error) if format!("{error:?}").contains("IncompleteMessage") => {
                no_answer.push("closed before any response")
            }
            Err(error) if format!("{error:?}").contains("ConnectionReset") && !error.is_body() => {
                no_answer.push("reset before any response")
            }
            Err(error) => panic!("a burst POST broke (mid-response, or hung): {error:?}"),
        }
    }
    let status = server.wait_exit(Duration::from_secs(10)).expect("the server exits within 10 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    eprintln!(
        "[load_faults] shutdown: {finished}/{HELD} held requests finished after SIGTERM; burst of {BURST}: \
         {answered} answered 201, {not_connected} refused, {} dropped before any response {:?}; \
         connections refused {:?} after the signal, exit 0 {:?} after it",
        no_answer.len(),
        no_answer.iter().fold(BTreeMap::<&str, usize>::new(), |mut kinds, kind| {
            *kinds.entry(kind).or_default() += 1;
            kinds
        }),
        refused,
        signalled.elapsed(),
    );
}
