//! `items serve`'s default store, durable: restarts and crashes lose nothing
//! that was acknowledged, one server per data dir, clear errors for files and
//! folders it cannot use, and replay / verify on it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{Server, new_data_dir, printed, run_items, run_items_in};
use serde_json::{Value, json};
use tokio::task::JoinSet;

const DATABASE: &str = "items.sqlite3";

async fn post(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    body: Value,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = client.post(server.url("/items")).header("Authorization", format!("Bearer {token}")).json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

async fn listed(client: &reqwest::Client, server: &Server, token: &str) -> Vec<Value> {
    let response = client.get(server.url("/items")).header("Authorization", format!("Bearer {token}")).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls `GET /items` until it holds at least `count` items.
async fn wait_for_count(client: &reqwest::Client, server: &Server, token: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let items = listed(client, server, token).await;
        if items.len() >= count {
            return items;
        }
        assert!(Instant::now() < deadline, "{} of {count} items listed after a minute", items.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Events per item id in the log, read straight from the database file.
fn events_per_item(data_dir: &Path) -> HashMap<String, usize> {
    let connection =
        rusqlite::Connection::open_with_flags(data_dir.join(DATABASE), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = connection.prepare("SELECT stream_id FROM events").unwrap();
    let rows = statement.query_map([], |row| row.get::<_, String>(0)).unwrap();
    let mut counts = HashMap::new();
    for stream_id in rows {
        let id = stream_id.unwrap().trim_start_matches("item#").to_owned();
        *counts.entry(id).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_keeps_every_item_and_idempotency_record() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let token = server.token(&[]);
    let mut ids = HashSet::new();
    for n in 0..20 {
        let key = format!("key-{n}");
        let response = post(&client, &server, &token, json!({"name": format!("item {n}")}), Some(&key)).await;
        assert_eq!(response.status(), 201);
        ids.insert(response.json::<Value>().await.unwrap()["item"]["id"].as_str().unwrap().to_owned());
    }
    wait_for_count(&client, &server, &token, 20).await;
    let data_dir = server.stop();

    let server = Server::start_in(data_dir, &[]);
    let items = listed(&client, &server, &token).await;
    let listed_ids: HashSet<String> = items.iter().map(|item| item["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed_ids, ids, "the read model is kept, not rebuilt at start");

    let retry = post(&client, &server, &token, json!({"name": "item 3"}), Some("key-3")).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let repeated = retry.json::<Value>().await.unwrap()["item"]["id"].as_str().unwrap().to_owned();
    assert!(ids.contains(&repeated), "the retry after a restart gets the first item");
    let reused = post(&client, &server, &token, json!({"name": "another"}), Some("key-3")).await;
    assert_eq!(reused.status(), 422);
    assert_eq!(listed(&client, &server, &token).await.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_nothing_acknowledged() {
    let server = Server::start(&[]);
    let token = server.token(&[]);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut posts = JoinSet::new();
    for n in 0..2000 {
        let (client, url, token) = (client.clone(), server.url("/items"), token.clone());
        let (acknowledged, answered) = (acknowledged.clone(), answered.clone());
        posts.spawn(async move {
            let sent = client
                .post(url)
                .header("Authorization", format!("Bearer {token}"))
                .json(&json!({"name": format!("load {n}")}));
            if let Ok(response) = sent.send().await
                && response.status() == 201
                && let Ok(body) = response.json::<Value>().await
            {
                acknowledged.lock().unwrap().push(body["item"]["id"].as_str().unwrap().to_owned());
            }
            answered.fetch_add(1, Ordering::SeqCst);
        });
    }
    // Kill it in the middle: once some requests were answered, not all.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "no load got through");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let data_dir = server.kill();
    while posts.join_next().await.is_some() {}
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() < 2000, "the kill came after every request was answered");

    let log = events_per_item(&data_dir);
    for id in &acknowledged {
        assert_eq!(log.get(id), Some(&1), "item {id} got a 201, so its event is in the log, once");
    }

    let server = Server::start_in(data_dir, &[]);
    let client = reqwest::Client::new();
    let items = wait_for_count(&client, &server, &token, log.len()).await;
    let listed_ids: Vec<&str> = items.iter().map(|item| item["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = listed_ids.iter().copied().collect();
    assert_eq!(unique.len(), listed_ids.len(), "no item twice");
    assert_eq!(unique.len(), log.len(), "the projection completes: every logged item is listed");
    for id in &acknowledged {
        assert!(unique.contains(id.as_str()), "acknowledged item {id} is listed after the restart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_exits_at_once() {
    let server = Server::start(&[]);
    let started = Instant::now();
    let second = run_items(&["serve", "--addr", "127.0.0.1:0"], &server.data_dir);
    assert!(!second.status.success());
    assert!(started.elapsed() < Duration::from_secs(10), "it does not wait for the lock");
    let text = printed(&second);
    assert!(text.contains("is using the data dir") && text.contains("stop it first"), "{text}");

    let replay = run_items(&["replay"], &server.data_dir);
    assert_eq!(replay.status.code(), Some(3), "replay refuses to run beside the server: {}", printed(&replay));
}

#[test]
fn a_corrupt_database_is_a_clear_error_at_start() {
    let data_dir = new_data_dir();
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join(DATABASE), "not a database, whatever it was ".repeat(200)).unwrap();
    let output = run_items(&["serve", "--addr", "127.0.0.1:0"], &data_dir);
    let text = printed(&output);
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(!output.status.success());
    assert!(text.contains("cannot read the database") && text.contains(DATABASE), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn a_read_only_data_dir_is_a_clear_error_at_start() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let data_dir = new_data_dir();
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_items"));
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Root may write anywhere: run the server as nobody, who owns the folder.
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        std::os::unix::fs::chown(&data_dir, Some(65534), Some(65534)).unwrap();
        command.uid(65534).gid(65534).env("HOME", &data_dir);
    }
    let output = command.output().expect("items serve runs");
    let text = printed(&output);
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("cannot write to the data dir"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_and_verify_on_the_embedded_store() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let token = server.token(&[]);
    for n in 0..50 {
        assert_eq!(post(&client, &server, &token, json!({"name": format!("item {n}")}), None).await.status(), 201);
    }
    let items = wait_for_count(&client, &server, &token, 50).await;
    let data_dir = server.stop();
    let cleanup = scopeguard(&data_dir);

    let verified = run_items(&["replay", "--verify"], &data_dir);
    assert!(verified.status.success(), "{}", printed(&verified));
    assert!(printed(&verified).contains("matches the event log"), "{}", printed(&verified));

    // Damage the read model: one item renamed, one gone, one that never was.
    let connection = rusqlite::Connection::open(data_dir.join(DATABASE)).unwrap();
    let (renamed, removed) = (items[0]["id"].as_str().unwrap(), items[1]["id"].as_str().unwrap());
    connection
        .execute("UPDATE items SET item = json_set(item, '$.name', 'tampered') WHERE id = ?1", [renamed])
        .unwrap();
    connection.execute("DELETE FROM items WHERE id = ?1", [removed]).unwrap();
    connection
        .execute(
            "INSERT INTO items (id, version, item) SELECT '00000000-0000-4000-8000-000000000000', version, \
             json_set(item, '$.id', '00000000-0000-4000-8000-000000000000') FROM items LIMIT 1",
            [],
        )
        .unwrap();
    drop(connection);
    let different = run_items(&["replay", "--verify"], &data_dir);
    assert_eq!(different.status.code(), Some(1), "{}", printed(&different));
    let report = printed(&different);
    for line in [format!("missing: 1 {removed}"), format!("stale: 1 {renamed}"), "extra: 1".to_owned()] {
        assert!(report.contains(&line), "{line} in {report}");
    }

    let dry = run_items(&["replay", "--dry-run"], &data_dir);
    assert!(dry.status.success() && printed(&dry).contains("events read:    50"), "{}", printed(&dry));
    assert_eq!(run_items(&["replay", "--verify"], &data_dir).status.code(), Some(1), "a dry run writes nothing");

    let rebuilt = run_items(&["replay"], &data_dir);
    assert!(rebuilt.status.success(), "{}", printed(&rebuilt));
    let verified = run_items(&["replay", "--verify"], &data_dir);
    assert!(verified.status.success(), "{}", printed(&verified));

    let refused = run_items(&["replay", "--into", "items-v2"], &data_dir);
    assert!(!refused.status.success() && printed(&refused).contains("for DynamoDB"), "{}", printed(&refused));
    drop(cleanup);
}

/// Issue 31: `--verify` holds neither the log's fold nor the table: it runs
/// with its data segment limited far below what it reads (the old verify,
/// which held both, needs about twice the items' size), and still reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_runs_in_memory_far_below_the_size_of_the_read_model() {
    use futures::StreamExt;
    use items_domain::ports::EventStore;
    use items_local::sqlite::{Database, SqliteEventStore};
    const ITEMS: usize = 12_000;
    const LIMIT: u64 = VERIFY_DATA_LIMIT_MIB << 20;
    let data_dir = new_data_dir();
    let cleanup = scopeguard(&data_dir);
    {
        let database = Database::open(&data_dir).unwrap();
        let store = Arc::new(SqliteEventStore::new(database));
        // Fat items (8 KiB names; the store takes what the API validated), so
        // the table is large without a slow test.
        futures::stream::iter(0..ITEMS)
            .map(|n| {
                let store = store.clone();
                async move {
                    let event = items_domain::Event {
                        event_id: uuid::Uuid::new_v4(),
                        item_id: items_domain::ItemId(uuid::Uuid::new_v4()),
                        version: 1,
                        occurred_at: chrono::Utc::now(),
                        subject: "sub-1".into(),
                        payload: items_domain::EventPayload::ItemCreated(items_domain::event::ItemCreated {
                            name: format!("{n:08}{}", "x".repeat(8 << 10)),
                            timestamp: "N/A".into(),
                            description: None,
                        }),
                    };
                    store.append(0, &[event]).await
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
    }
    let rebuilt = run_items(&["replay"], &data_dir);
    assert!(rebuilt.status.success(), "{}", printed(&rebuilt));
    let input = std::fs::metadata(data_dir.join(DATABASE)).unwrap().len();
    assert!(input > 3 * LIMIT, "the database ({input} bytes) is far larger than the limit ({LIMIT} bytes)");

    let verified = run_items_in(&["replay", "--verify"], &data_dir, Some(LIMIT));
    assert!(verified.status.success(), "{}", printed(&verified));
    assert!(printed(&verified).contains(&format!("expected items: {ITEMS}")), "{}", printed(&verified));

    let connection = rusqlite::Connection::open(data_dir.join(DATABASE)).unwrap();
    connection.execute("DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY id LIMIT 2000)", []).unwrap();
    drop(connection);
    let behind = run_items_in(&["replay", "--verify"], &data_dir, Some(LIMIT));
    assert_eq!(behind.status.code(), Some(1), "{}", printed(&behind));
    assert!(printed(&behind).contains("missing: 2000 "), "{}", printed(&behind));
    drop(cleanup);
}

/// The data segment `--verify` is given in the test above: what a page or
/// two of these fat items, SQLite's caches and the threads take (it fails at
/// 32), a third of the database, and a third of what holding the fold and
/// the rows (about 200 MB) would take.
const VERIFY_DATA_LIMIT_MIB: u64 = 64;

/// Removes a data dir when dropped.
fn scopeguard(dir: &Path) -> impl Drop + use<> {
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    Remove(dir.to_owned())
}

/// `items quarantine` lists what the change feed set aside; `--redrive`
/// projects those items from their whole streams once they fold (here: a
/// record set aside by an older build that could not read it) and releases
/// the records.
#[tokio::test]
async fn quarantine_lists_and_redrives_set_aside_records() {
    use items_domain::ports::{EventStore, ReadModel};
    use items_local::event_source_mapping::{Quarantine, Quarantined};
    use items_local::sqlite::{Database, SqliteEventStore, SqliteReadModel};
    let data_dir = new_data_dir();
    let _cleanup = scopeguard(&data_dir);
    let empty = run_items(&["quarantine"], &data_dir);
    assert!(empty.status.success() && printed(&empty).contains("0 record(s) set aside"), "{}", printed(&empty));

    let id = items_domain::ItemId(uuid::Uuid::new_v4());
    let event = items_domain::Event {
        event_id: uuid::Uuid::new_v4(),
        item_id: id,
        version: 1,
        occurred_at: chrono::Utc::now(),
        subject: "sub-1".into(),
        payload: items_domain::EventPayload::ItemCreated(items_domain::event::ItemCreated {
            name: "Pen".into(),
            timestamp: "N/A".into(),
            description: None,
        }),
    };
    {
        let database = Database::open(&data_dir).unwrap();
        let events = SqliteEventStore::new(database);
        events.append(0, &[event]).await.unwrap();
        let reason = "unknown event type `ItemArchived`".to_owned();
        events
            .quarantine(&Quarantined {
                sequence: "1".into(),
                stream_id: id.stream_id(),
                reason,
                at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
    let listed = run_items(&["quarantine"], &data_dir);
    assert!(printed(&listed).contains(&format!("1  {}  unknown event type", id.stream_id())), "{}", printed(&listed));
    assert!(printed(&listed).contains("1 record(s) set aside"));

    let redriven = run_items(&["quarantine", "--redrive"], &data_dir);
    assert!(redriven.status.success(), "{}", printed(&redriven));
    assert!(printed(&redriven).contains("records released:   1"), "{}", printed(&redriven));
    let database = Database::open(&data_dir).unwrap();
    assert_eq!(SqliteReadModel::new(database.clone()).get(id).await.unwrap().map(|item| item.name), Some("Pen".into()));
    assert_eq!(SqliteEventStore::new(database).quarantined().await.unwrap(), vec![]);
}
