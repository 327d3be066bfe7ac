//! Cold starts, warm invocations and peak RSS of three of the Rust Lambdas and of
//! the classic Python handler (under `awslambdaric`), all behind the same
//! Runtime API emulator and the same DynamoDB Local, plus the floor: the same
//! DynamoDB calls made directly with the Rust SDK.
//!
//! Measurements of the things being compared are interleaved (one Rust
//! invocation, one classic invocation, one floor call, and again), so that
//! load from anything else on the machine falls on all of them alike.
//!
//! One file: the measurement loop, its processes and its report are one
//! procedure (a benchmark, not production code).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use items_aws::dynamodb::codec::event_to_item;
use items_aws::dynamodb::{
    DynamoReadModel, ensure_events_table, ensure_events_table_without_stream, ensure_items_table,
};
use items_domain::Item;
use items_domain::event::{Event, EventPayload, ItemCreated, ItemId};
use items_domain::ports::ReadModel;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::emulator::{Emulator, Kind};
use crate::{Series, ms};

#[derive(Debug, clap::Args)]
pub struct LambdaArgs {
    /// Folder with post-item, get-items, project-events (release builds).
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// The Runtime API floor: `lambda_echo` (answers at once, no AWS call).
    #[arg(long, default_value = "target/release/lambda_echo")]
    pub echo_bin: PathBuf,
    /// The classic handler: a Python module with `lambda_handler` (copied into
    /// a temporary folder at run time as `classic_lambda.py`).
    #[arg(long)]
    pub classic_handler: PathBuf,
    /// Python with awslambdaric and boto3 installed.
    #[arg(long)]
    pub python: PathBuf,
    /// API Gateway / DynamoDB stream event fixtures.
    #[arg(long, default_value = "adapters/aws/tests/fixtures")]
    pub fixtures: PathBuf,
    /// Cold starts per function.
    #[arg(long, default_value_t = 40)]
    pub cold: usize,
    /// Measured warm invocations for POST and for the projector.
    #[arg(long, default_value_t = 1000)]
    pub warm_post: usize,
    /// Measured warm GETs with 100 items.
    #[arg(long, default_value_t = 400)]
    pub warm_get100: usize,
    /// Measured warm GETs with 1,000 items.
    #[arg(long, default_value_t = 150)]
    pub warm_get1000: usize,
    /// Unmeasured invocations before each warm series.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// Where to write logs of the function processes.
    #[arg(long)]
    pub log_dir: PathBuf,
    /// Result file (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

const EVENTS_TABLE: &str = "bench-events";
/// The events table's key schema without a stream: isolates what the stream costs DynamoDB Local.
const EVENTS_NO_STREAM_TABLE: &str = "bench-events-no-stream";
const ITEMS_GET_TABLE: &str = "bench-items-get";
const ITEMS_PROJECTED_TABLE: &str = "bench-items-projected";
const CLASSIC_POST_TABLE: &str = "bench-classic-post";
const CLASSIC_GET_TABLE: &str = "bench-classic-get";
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start one function and what to send it.
struct Function {
    key: &'static str,
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    event: Box<dyn Fn() -> Vec<u8>>,
    check: fn(&Value) -> anyhow::Result<()>,
}

struct Running {
    emulator: Emulator,
    child: Child,
}

fn status_is(response: &Value, expected: i64) -> anyhow::Result<()> {
    match response["statusCode"].as_i64() {
        Some(status) if status == expected => Ok(()),
        _ => bail!("unexpected response: {}", truncate(&response.to_string())),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(400).collect()
}

fn item_count(response: &Value) -> Option<usize> {
    let body: Value = serde_json::from_str(response["body"].as_str()?).ok()?;
    body.as_array().map(Vec::len)
}

impl Function {
    fn spawn(&self, log_dir: &Path) -> anyhow::Result<Running> {
        let emulator = Emulator::start(self.key)?;
        let child = self.spawn_on(&emulator, log_dir)?;
        Ok(Running { emulator, child })
    }

    fn spawn_on(&self, emulator: &Emulator, log_dir: &Path) -> anyhow::Result<Child> {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(log_dir.join(format!("{}.log", self.key)))?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", emulator.runtime_api())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        unsafe {
            // Never outlive the harness.
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        command.spawn().with_context(|| format!("starting {}", self.program.display()))
    }
}

/// Waits for the next outcome, noticing a process that died instead.
fn wait_outcome(running: &mut Running, key: &str) -> anyhow::Result<crate::emulator::Outcome> {
    let deadline = Instant::now() + INVOKE_TIMEOUT;
    loop {
        match running.emulator.outcome(Duration::from_millis(200)) {
            Ok(outcome) => return Ok(outcome),
            Err(_) if Instant::now() < deadline => {
                if let Some(status) = running.child.try_wait()? {
                    bail!("{key} exited ({status}) before answering; see its log");
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// One invocation of a warm function; returns (runtime ms, client-visible ms).
fn invoke(function: &Function, running: &mut Running) -> anyhow::Result<(f64, f64, Value)> {
    running.emulator.wait_idle(INVOKE_TIMEOUT)?;
    running.emulator.submit((function.event)(), Instant::now());
    let outcome = wait_outcome(running, function.key)?;
    let done = Instant::now();
    if outcome.kind != Kind::Response {
        bail!("{}: {:?}: {}", function.key, outcome.kind, truncate(&String::from_utf8_lossy(&outcome.body)));
    }
    let response: Value = serde_json::from_slice(&outcome.body)?;
    (function.check)(&response).with_context(|| function.key)?;
    Ok((ms(outcome.received - outcome.handed_out), ms(done - outcome.submitted), response))
}

fn stop(mut running: Running) -> anyhow::Result<u64> {
    let rss = vm_hwm_kib(running.child.id())?;
    let _ = running.child.kill();
    let _ = running.child.wait();
    Ok(rss)
}

/// Peak resident set size (VmHWM) of a live process, KiB.
pub fn vm_hwm_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")
}

struct ColdSample {
    total: f64,
    init: f64,
    invoke: f64,
    rss_kib: u64,
}

/// Process start to first response, with the event queued before the start.
fn cold_start(function: &Function, log_dir: &Path) -> anyhow::Result<ColdSample> {
    let emulator = Emulator::start(function.key)?;
    let body = (function.event)();
    let spawned = Instant::now();
    emulator.submit(body, spawned);
    let child = function.spawn_on(&emulator, log_dir)?;
    let mut running = Running { emulator, child };
    let outcome = wait_outcome(&mut running, function.key);
    let rss = vm_hwm_kib(running.child.id());
    let _ = running.child.kill();
    let _ = running.child.wait();
    let outcome = outcome?;
    if outcome.kind != Kind::Response {
        bail!("{}: {:?}: {}", function.key, outcome.kind, truncate(&String::from_utf8_lossy(&outcome.body)));
    }
    (function.check)(&serde_json::from_slice(&outcome.body)?).with_context(|| function.key)?;
    let init = running.emulator.first_next().context("no /next before the response")?;
    Ok(ColdSample {
        total: ms(outcome.received - spawned),
        init: ms(init - spawned),
        invoke: ms(outcome.received - outcome.handed_out),
        rss_kib: rss?,
    })
}

fn load_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn post_event(fixture: &Value) -> Vec<u8> {
    serde_json::to_vec(fixture).unwrap_or_default()
}

fn get_event(post_fixture: &Value) -> Vec<u8> {
    let mut event = post_fixture.clone();
    event["httpMethod"] = json!("GET");
    event["requestContext"]["httpMethod"] = json!("GET");
    event["body"] = Value::Null;
    if let Some(headers) = event["headers"].as_object_mut() {
        headers.remove("Content-Type");
    }
    if let Some(headers) = event["multiValueHeaders"].as_object_mut() {
        headers.remove("Content-Type");
    }
    serde_json::to_vec(&event).unwrap_or_default()
}

/// A stream batch with one new `ItemCreated` record (a fresh item each time).
fn stream_event(fixture: &Value) -> Vec<u8> {
    let mut event = fixture.clone();
    let item_id = Uuid::new_v4().to_string();
    let record = &mut event["Records"][0]["dynamodb"];
    record["Keys"]["stream_id"]["S"] = json!(format!("item#{item_id}"));
    record["NewImage"]["stream_id"]["S"] = json!(format!("item#{item_id}"));
    record["NewImage"]["item_id"]["S"] = json!(item_id);
    record["NewImage"]["event_id"]["S"] = json!(Uuid::new_v4().to_string());
    serde_json::to_vec(&event).unwrap_or_default()
}

fn synthetic_event() -> Event {
    Event {
        event_id: Uuid::new_v4(),
        item_id: ItemId(Uuid::new_v4()),
        version: 1,
        occurred_at: chrono::Utc::now(),
        subject: "4f1e8a52-7c3b-4d59-9a41-0c6b2f2e9d11".into(),
        payload: EventPayload::ItemCreated(ItemCreated {
            name: "Pen".into(),
            timestamp: "2026-11-25T12:20:00Z".into(),
            description: None,
        }),
    }
}

/// The floor for POST: the same conditional PutItem the post-item Lambda makes.
async fn floor_put(client: &Client) -> anyhow::Result<f64> {
    floor_put_into(client, EVENTS_TABLE).await
}

async fn floor_put_into(client: &Client, table: &str) -> anyhow::Result<f64> {
    let item: HashMap<String, AttributeValue> = event_to_item(&synthetic_event())?;
    let started = Instant::now();
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(stream_id)")
        .send()
        .await?;
    Ok(ms(started.elapsed()))
}

/// The classic handler's own floor: its unconditional PutItem of a classic item.
async fn floor_classic_put(client: &Client) -> anyhow::Result<f64> {
    let item = HashMap::from([
        ("id".to_owned(), AttributeValue::S(Uuid::new_v4().to_string())),
        ("name".to_owned(), AttributeValue::S("Pen".into())),
        ("timestamp".to_owned(), AttributeValue::S("2026-11-25T12:20:00Z".into())),
    ]);
    let started = Instant::now();
    client.put_item().table_name(CLASSIC_POST_TABLE).set_item(Some(item)).send().await?;
    Ok(ms(started.elapsed()))
}

/// The floor for the projector: its version-guarded PutItem of an item.
async fn floor_project(client: &Client) -> anyhow::Result<f64> {
    let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(sample_item())?;
    let started = Instant::now();
    client
        .put_item()
        .table_name(ITEMS_PROJECTED_TABLE)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(id) OR version < :version")
        .expression_attribute_values(":version", AttributeValue::N("1".into()))
        .send()
        .await?;
    Ok(ms(started.elapsed()))
}

/// The floor for GET: a Scan of the whole table, every page.
async fn floor_scan(client: &Client, table: &str, expected: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut count = 0;
    let mut pages = client.scan().table_name(table).into_paginator().send();
    while let Some(page) = pages.next().await {
        count += page?.items.map_or(0, |items| items.len());
    }
    let elapsed = ms(started.elapsed());
    if count != expected {
        bail!("scan of {table} found {count} items, expected {expected}");
    }
    Ok(elapsed)
}

fn sample_item() -> Item {
    Item {
        id: ItemId(Uuid::new_v4()),
        name: "Pen".into(),
        timestamp: "2026-11-25T12:20:00Z".into(),
        created_by: "4f1e8a52-7c3b-4d59-9a41-0c6b2f2e9d11".into(),
        created_at: chrono::Utc::now(),
        version: 1,
        deleted: false,
        description: None,
    }
}

/// Adds `count` items to both GET tables: the Items API's items table (as the
/// projector writes them) and the classic table (as the classic POST writes them).
async fn seed(client: &Client, count: usize) -> anyhow::Result<()> {
    let read_model = DynamoReadModel::new(client.clone(), ITEMS_GET_TABLE);
    let mut classic = Vec::new();
    for _ in 0..count {
        let item = sample_item();
        read_model.upsert_if_newer(&item).await?;
        let record = HashMap::from([
            ("id".to_owned(), AttributeValue::S(item.id.to_string())),
            ("name".to_owned(), AttributeValue::S(item.name.clone())),
            ("timestamp".to_owned(), AttributeValue::S(item.timestamp.clone())),
        ]);
        classic
            .push(WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(record)).build()?).build());
    }
    for chunk in classic.chunks(25) {
        let mut pending = HashMap::from([(CLASSIC_GET_TABLE.to_owned(), chunk.to_vec())]);
        while !pending.is_empty() {
            let output = client.batch_write_item().set_request_items(Some(pending)).send().await?;
            pending = output.unprocessed_items.unwrap_or_default().into_iter().filter(|(_, v)| !v.is_empty()).collect();
        }
    }
    Ok(())
}

pub fn run(args: LambdaArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    std::fs::create_dir_all(&args.log_dir)?;
    let work = std::env::temp_dir().join(format!("items-bench-{}", std::process::id()));
    std::fs::create_dir_all(work.join("home"))?;
    std::fs::copy(&args.classic_handler, work.join("classic_lambda.py"))
        .with_context(|| format!("copying {}", args.classic_handler.display()))?;

    eprintln!("lambda: starting DynamoDB Local");
    let ddb = items_testkit::DynamoDbLocal::start()?;
    let client = rt.block_on(ddb.client());
    rt.block_on(prepare_tables(&client, args.warmup))?;
    let functions = Functions::define(&args, &work, &ddb.endpoint())?;

    let mut series = Series::default();
    cold_starts(&args, &functions, &mut series)?;
    warm_post(&args, &functions, &rt, &client, &mut series)?;
    warm_get(&args, &functions, &rt, &client, &mut series)?;
    warm_project(&args, &functions, &rt, &client, &mut series)?;

    drop(ddb);
    let _ = std::fs::remove_dir_all(&work);
    series.write(&args.out, json!({ "classic_python": functions.python_version }))
}

/// Creates and seeds the tables, then warms DynamoDB Local up (it runs on a
/// JVM: let it compile its hot paths first).
async fn prepare_tables(client: &Client, warmup: usize) -> anyhow::Result<()> {
    ensure_events_table(client, EVENTS_TABLE).await?;
    ensure_events_table_without_stream(client, EVENTS_NO_STREAM_TABLE).await?;
    for table in [ITEMS_GET_TABLE, ITEMS_PROJECTED_TABLE, CLASSIC_POST_TABLE, CLASSIC_GET_TABLE] {
        ensure_items_table(client, table).await?;
    }
    seed(client, 100).await?;
    for _ in 0..warmup * 3 {
        floor_put(client).await?;
        floor_put_into(client, EVENTS_NO_STREAM_TABLE).await?;
        floor_classic_put(client).await?;
        floor_project(client).await?;
    }
    for _ in 0..warmup / 2 {
        floor_scan(client, ITEMS_GET_TABLE, 100).await?;
        floor_scan(client, CLASSIC_GET_TABLE, 100).await?;
    }
    Ok(())
}

/// The functions under test, each with its environment and event.
struct Functions {
    post_item: Function,
    get_items: Function,
    project_events: Function,
    echo: Function,
    classic_post: Function,
    classic_get: Function,
    python_version: String,
}

impl Functions {
    fn define(args: &LambdaArgs, work: &Path, endpoint: &str) -> anyhow::Result<Self> {
        let python_version = Command::new(&args.python)
            .args(["-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"])
            .output()?;
        let python_version = String::from_utf8_lossy(&python_version.stdout).trim().to_owned();
        let home = work.join("home");
        let base_env = |name: &str| -> Vec<(String, String)> {
            [
                ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
                ("HOME", home.display().to_string()),
                ("LANG", "C.UTF-8".to_owned()),
                ("TZ", "UTC".to_owned()),
                ("AWS_REGION", "us-east-1".to_owned()),
                ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
                ("AWS_ACCESS_KEY_ID", "local".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
                ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
                ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
                ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]bench".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
        };
        let rust = |key: &'static str, table_env: Vec<(&str, &str)>, event: Box<dyn Fn() -> Vec<u8>>, check| {
            let mut env = base_env(key);
            env.push(("AWS_ENDPOINT_URL".into(), endpoint.to_owned()));
            env.push(("CURSOR_SIGNING_KEY".into(), "bench-cursor-signing-key-0123456789abcdef".into()));
            env.extend(table_env.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
            Function { key, program: args.bin_dir.join(key), args: vec![], cwd: work.to_owned(), env, event, check }
        };
        let classic = |key: &'static str, table: &str, event: Box<dyn Fn() -> Vec<u8>>, check| {
            let mut env = base_env(key);
            env.push(("TABLE_NAME".into(), table.to_owned()));
            env.push(("DYNAMODB_ENDPOINT".into(), endpoint.to_owned()));
            env.push(("AWS_EXECUTION_ENV".into(), format!("AWS_Lambda_python{python_version}")));
            Function {
                key,
                program: args.python.clone(),
                args: ["-m", "awslambdaric", "classic_lambda.lambda_handler"].map(str::to_owned).to_vec(),
                cwd: work.to_owned(),
                env,
                event,
                check,
            }
        };

        let post_fixture = load_json(&args.fixtures.join("apigw-post-items.json"))?;
        let stream_fixture = load_json(&args.fixtures.join("dynamodb-stream-insert.json"))?;
        let post_body = post_event(&post_fixture);
        let get_body = get_event(&post_fixture);
        let fixed = |body: Vec<u8>| -> Box<dyn Fn() -> Vec<u8>> { Box::new(move || body.clone()) };

        let mut echo = rust("lambda-echo", vec![], fixed(post_body.clone()), |r| status_is(r, 200));
        echo.program = args.echo_bin.clone();
        Ok(Self {
            post_item: rust("post-item", vec![("EVENTS_TABLE", EVENTS_TABLE)], fixed(post_body.clone()), |r| {
                status_is(r, 201)
            }),
            get_items: rust(
                "get-items",
                vec![("ITEMS_TABLE", ITEMS_GET_TABLE), ("EVENTS_TABLE", EVENTS_TABLE)],
                fixed(get_body.clone()),
                |r| status_is(r, 200),
            ),
            project_events: rust(
                "project-events",
                vec![("ITEMS_TABLE", ITEMS_PROJECTED_TABLE), ("EVENTS_TABLE", EVENTS_TABLE)],
                Box::new(move || stream_event(&stream_fixture)),
                |r| match r["batchItemFailures"].as_array() {
                    Some(failures) if failures.is_empty() => Ok(()),
                    _ => bail!("unexpected response: {}", truncate(&r.to_string())),
                },
            ),
            echo,
            classic_post: classic("classic-post", CLASSIC_POST_TABLE, fixed(post_body), |r| status_is(r, 200)),
            classic_get: classic("classic-get", CLASSIC_GET_TABLE, fixed(get_body), |r| status_is(r, 200)),
            python_version,
        })
    }
}

/// Phase 1, cold starts: round-robin over the functions, after one unmeasured
/// start of each (page cache, Python's bytecode cache).
fn cold_starts(args: &LambdaArgs, f: &Functions, series: &mut Series) -> anyhow::Result<()> {
    let cold_functions = [&f.post_item, &f.classic_post, &f.get_items, &f.classic_get, &f.project_events, &f.echo];
    eprintln!("lambda: {} cold starts of each of {} functions", args.cold, cold_functions.len());
    for function in cold_functions {
        cold_start(function, &args.log_dir)?;
    }
    for round in 0..args.cold {
        for function in cold_functions {
            let sample = cold_start(function, &args.log_dir)
                .with_context(|| format!("cold start {round} of {}", function.key))?;
            let key = function.key;
            series.push(&format!("cold.{key}.total_ms"), sample.total);
            series.push(&format!("cold.{key}.init_ms"), sample.init);
            series.push(&format!("cold.{key}.invoke_ms"), sample.invoke);
            series.push(&format!("cold.{key}.rss_kib"), sample.rss_kib as f64);
        }
    }
    Ok(())
}

/// Phase 2, warm POST: post-item, classic, floor PutItem, interleaved.
fn warm_post(
    args: &LambdaArgs,
    f: &Functions,
    rt: &tokio::runtime::Runtime,
    client: &Client,
    series: &mut Series,
) -> anyhow::Result<()> {
    eprintln!("lambda: warm POST x{}", args.warm_post);
    let mut rust_post = f.post_item.spawn(&args.log_dir)?;
    let mut classic_post_run = f.classic_post.spawn(&args.log_dir)?;
    let mut echo_run = f.echo.spawn(&args.log_dir)?;
    for i in 0..args.warmup + args.warm_post {
        let (echo_ms, echo_e2e_ms, _) = invoke(&f.echo, &mut echo_run)?;
        let (rt_ms, e2e_ms, _) = invoke(&f.post_item, &mut rust_post)?;
        let (ct_ms, ce2e_ms, _) = invoke(&f.classic_post, &mut classic_post_run)?;
        let floor_ms = rt.block_on(floor_put(client))?;
        let classic_floor_ms = rt.block_on(floor_classic_put(client))?;
        let no_stream_ms = rt.block_on(floor_put_into(client, EVENTS_NO_STREAM_TABLE))?;
        if i >= args.warmup {
            series.push("warm.post.echo.runtime_ms", echo_ms);
            series.push("warm.post.echo.e2e_ms", echo_e2e_ms);
            series.push("warm.post.floor_no_stream.ms", no_stream_ms);
            series.push("warm.post.classic_floor.ms", classic_floor_ms);
            series.push("warm.post.rust.runtime_ms", rt_ms);
            series.push("warm.post.rust.e2e_ms", e2e_ms);
            series.push("warm.post.classic.runtime_ms", ct_ms);
            series.push("warm.post.classic.e2e_ms", ce2e_ms);
            series.push("warm.post.floor.ms", floor_ms);
        }
    }
    series.push("rss.post-item.kib", stop(rust_post)? as f64);
    series.push("rss.classic-post.kib", stop(classic_post_run)? as f64);
    series.push("rss.lambda-echo.kib", stop(echo_run)? as f64);
    Ok(())
}

/// Phase 3, warm GET with 100, then 1,000 items.
fn warm_get(
    args: &LambdaArgs,
    f: &Functions,
    rt: &tokio::runtime::Runtime,
    client: &Client,
    series: &mut Series,
) -> anyhow::Result<()> {
    let mut rust_get = f.get_items.spawn(&args.log_dir)?;
    let mut classic_get_run = f.classic_get.spawn(&args.log_dir)?;
    for (label, items, count) in [("get100", 100, args.warm_get100), ("get1000", 1000, args.warm_get1000)] {
        if items > 100 {
            rt.block_on(seed(client, items - 100))?;
        }
        eprintln!("lambda: warm GET with {items} items x{count}");
        let warmup = if items > 100 { args.warmup / 4 } else { args.warmup };
        for i in 0..warmup + count {
            let (rt_ms, e2e_ms, rust_response) = invoke(&f.get_items, &mut rust_get)?;
            let (ct_ms, ce2e_ms, classic_response) = invoke(&f.classic_get, &mut classic_get_run)?;
            let floor_ms = rt.block_on(floor_scan(client, ITEMS_GET_TABLE, items))?;
            let classic_floor_ms = rt.block_on(floor_scan(client, CLASSIC_GET_TABLE, items))?;
            if i == 0 {
                for (name, response) in [("get-items", &rust_response), ("classic-get", &classic_response)] {
                    if item_count(response) != Some(items) {
                        bail!("{name} returned {:?} items, expected {items}", item_count(response));
                    }
                }
            }
            if i >= warmup {
                series.push(&format!("warm.{label}.rust.runtime_ms"), rt_ms);
                series.push(&format!("warm.{label}.rust.e2e_ms"), e2e_ms);
                series.push(&format!("warm.{label}.classic.runtime_ms"), ct_ms);
                series.push(&format!("warm.{label}.classic.e2e_ms"), ce2e_ms);
                series.push(&format!("warm.{label}.floor.ms"), floor_ms);
                series.push(&format!("warm.{label}.classic_floor.ms"), classic_floor_ms);
            }
        }
    }
    series.push("rss.get-items.kib", stop(rust_get)? as f64);
    series.push("rss.classic-get.kib", stop(classic_get_run)? as f64);
    Ok(())
}

/// Phase 4, warm projector invocations (one record per batch) and their floor.
fn warm_project(
    args: &LambdaArgs,
    f: &Functions,
    rt: &tokio::runtime::Runtime,
    client: &Client,
    series: &mut Series,
) -> anyhow::Result<()> {
    eprintln!("lambda: warm project-events x{}", args.warm_post);
    let mut projector = f.project_events.spawn(&args.log_dir)?;
    for i in 0..args.warmup + args.warm_post {
        let (rt_ms, e2e_ms, _) = invoke(&f.project_events, &mut projector)?;
        let floor_ms = rt.block_on(floor_project(client))?;
        if i >= args.warmup {
            series.push("warm.project.rust.runtime_ms", rt_ms);
            series.push("warm.project.rust.e2e_ms", e2e_ms);
            series.push("warm.project.floor.ms", floor_ms);
        }
    }
    series.push("rss.project-events.kib", stop(projector)? as f64);
    Ok(())
}
