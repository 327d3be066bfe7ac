//! End to end: the `items` binary serving over HTTP, tokens from `items token`,
//! on the embedded store and on a real DynamoDB Local.

use std::time::Duration;

use crate::support::{Server, claims, wait_until_listed};
use items_testkit::{DynamoDbLocal, unique_table};
use serde_json::{Value, json};

/// The quick start's story: create with the printed curl, see it in GET, and the
/// errors a new user meets.
async fn create_and_list(server: &Server, visible_within: Duration) {
    let client = reqwest::Client::new();
    let token = server.token(&[]);
    let subject = claims(&token)["sub"].as_str().unwrap().to_owned();

    let response = client
        .post(server.url("/items"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(r#"{"name":"Pen","timestamp":"2026-11-25"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Item stored");
    let id = body["item"]["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/items/{id}"));
    assert_eq!(body["item"]["createdBy"], subject.as_str());

    let listed = wait_until_listed(&client, server, &token, &id, visible_within).await;
    assert_eq!(listed, body["item"]);
    let one = client.get(server.url(&location)).header("Authorization", &token).send().await.unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.unwrap(), body["item"]);

    let no_token = client.post(server.url("/items")).json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    assert_eq!(no_token.json::<Value>().await.unwrap(), json!({"message": "Unauthorized"}));

    let read_only = server.token(&["--scope", "items/read"]);
    let forbidden = client
        .post(server.url("/items"))
        .header("Authorization", format!("Bearer {read_only}"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    let bad_json = client
        .post(server.url("/items"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    assert_eq!(bad_json.json::<Value>().await.unwrap(), json!({"message": "Request body is not valid JSON"}));

    let all: Vec<Value> =
        client.get(server.url("/items")).header("Authorization", &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(all.len(), 1, "the rejected requests stored nothing");
}

#[tokio::test]
async fn embedded_default_serves_end_to_end() {
    let server = Server::start(&[]);
    create_and_list(&server, Duration::from_secs(1)).await;
}

/// `items serve --dynamodb` on the shared DynamoDB Local, with fresh tables named after `prefix`.
fn dynamodb_server(prefix: &str) -> Server {
    let endpoint = DynamoDbLocal::shared().endpoint();
    let (events, items) = (unique_table(&format!("{prefix}-events")), unique_table(&format!("{prefix}-items")));
    Server::start(&["--dynamodb", "--dynamodb-endpoint", &endpoint, "--events-table", &events, "--items-table", &items])
}

#[tokio::test]
async fn dynamodb_mode_serves_end_to_end_through_the_stream_poller() {
    let server = dynamodb_server("e2e");
    create_and_list(&server, Duration::from_secs(20)).await;
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start(&[]);
    // SAFETY: sending a signal to our own child process.
    let sent = unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = server.wait_exit(Duration::from_secs(10)).expect("the server exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// A listing larger than its budget comes in pages linked by `Link`, every
/// item once (the budget lowered with the Lambda's own setting, so a few
/// hundred items make three pages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_listing_is_paged_by_link_headers() {
    let server = Server::start_with(crate::support::new_data_dir(), &[], &[("ITEMS_LIST_MAX_BODY_BYTES", "20000")]);
    let client = reqwest::Client::new();
    let token = server.token(&[]);
    let mut ids = std::collections::HashSet::new();
    for n in 0..240 {
        let response = client
            .post(server.url("/items"))
            .header("Authorization", format!("Bearer {token}"))
            .json(&json!({"name": format!("item {n:0>40}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        ids.insert(response.json::<Value>().await.unwrap()["item"]["id"].as_str().unwrap().to_owned());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (items, pages) = crate::support::list_all(&client, &server, &token).await;
        let listed: std::collections::HashSet<String> =
            items.iter().map(|item| item["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(listed.len(), items.len(), "no item twice");
        if listed == ids {
            assert!(pages >= 3, "{pages} pages");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{} of {} items listed", listed.len(), ids.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An item's life with three people: its owner renames it, someone else may
/// not touch it, an `items-admins` member deletes it; the list follows, and
/// the history says who did what.
async fn lifecycle(server: &Server, visible_within: Duration) {
    let client = reqwest::Client::new();
    let owner = server.token(&["--username", "alice"]);
    let other = server.token(&["--username", "bob"]);
    let admin = server.token(&["--username", "root", "--group", "items-admins"]);
    let sub = |token: &str| claims(token)["sub"].as_str().unwrap().to_owned();
    let call = |method: reqwest::Method, path: String, token: &str| {
        client.request(method, server.url(&path)).header("Authorization", format!("Bearer {token}"))
    };

    let created: Value = call(reqwest::Method::POST, "/items".into(), &owner)
        .json(&json!({"name": "Pen"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["item"]["id"].as_str().unwrap().to_owned();
    let item = format!("/items/{id}");
    wait_until_listed(&client, server, &owner, &id, visible_within).await;

    let taken = call(reqwest::Method::PATCH, item.clone(), &other).json(&json!({"name": "Mine"})).send().await.unwrap();
    assert_eq!(taken.status(), 403);
    let renamed = call(reqwest::Method::PATCH, item.clone(), &owner)
        .header("If-Match", "\"1\"")
        .json(&json!({"name": "Fountain pen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    assert_eq!(renamed.headers()["etag"], "\"2\"");
    let stale = call(reqwest::Method::DELETE, item.clone(), &owner).header("If-Match", "\"1\"").send().await.unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(stale.json::<Value>().await.unwrap()["currentVersion"], 2);

    // The rename reaches the list through the projector.
    let deadline = std::time::Instant::now() + visible_within;
    while wait_until_listed(&client, server, &owner, &id, visible_within).await["name"] != "Fountain pen" {
        assert!(std::time::Instant::now() < deadline, "the rename was not projected in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // "My items": the owner's listing from the by-creator index, newest first.
    let listing = |query: String, token: String| {
        let request = call(reqwest::Method::GET, format!("/items?{query}"), &token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let ids: Vec<String> = match status {
                200 => response
                    .json::<Vec<Value>>()
                    .await
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            (status, ids)
        }
    };
    let deadline = std::time::Instant::now() + visible_within;
    while !listing("createdBy=me".into(), owner.clone()).await.1.contains(&id) {
        assert!(std::time::Instant::now() < deadline, "the item was not in its creator's listing in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!listing("createdBy=me".into(), other.clone()).await.1.contains(&id), "not in someone else's");
    let owners = format!("createdBy={}", sub(&owner));
    // One read rule: anyone's items, to any reader.
    assert!(listing(owners.clone(), other.clone()).await.1.contains(&id), "another's items, to a reader");
    assert!(listing(owners, admin.clone()).await.1.contains(&id));

    assert_eq!(call(reqwest::Method::DELETE, item.clone(), &other).send().await.unwrap().status(), 403);
    assert_eq!(call(reqwest::Method::DELETE, item.clone(), &admin).send().await.unwrap().status(), 204);
    let deadline = std::time::Instant::now() + visible_within;
    loop {
        let gone = call(reqwest::Method::GET, item.clone(), &owner).send().await.unwrap().status() == 404;
        let (listed, _) = crate::support::list_all(&client, server, &owner).await;
        if gone && listed.iter().all(|listed| listed["id"] != id.as_str()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the deletion was not projected in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let history: Value =
        call(reqwest::Method::GET, format!("{item}/events"), &other).send().await.unwrap().json().await.unwrap();
    let who: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["type"].as_str().unwrap(), entry["subject"].as_str().unwrap()))
        .collect();
    let (owner_sub, admin_sub) = (sub(&owner), sub(&admin));
    assert_eq!(
        who,
        [("ItemCreated", owner_sub.as_str()), ("ItemUpdated", owner_sub.as_str()), ("ItemDeleted", admin_sub.as_str())]
    );

    // The item as it was, from its stream, after its deletion.
    for (query, status, name) in [("version=1", 200, "Pen"), ("version=2", 200, "Fountain pen"), ("version=3", 410, "")]
    {
        let then = call(reqwest::Method::GET, format!("{item}?{query}"), &other).send().await.unwrap();
        assert_eq!(then.status().as_u16(), status, "{query}");
        if status == 200 {
            assert_eq!(then.headers()["etag"], format!("\"{}\"", &query[8..]));
            assert_eq!(then.json::<Value>().await.unwrap()["name"], name);
        }
    }
    let created_at = history[0]["occurredAt"].as_str().unwrap();
    let at_creation = call(reqwest::Method::GET, format!("{item}?at={created_at}"), &other).send().await.unwrap();
    assert_eq!(at_creation.json::<Value>().await.unwrap()["version"], 1, "at its first event's time");
}

#[tokio::test]
async fn an_items_life_with_owner_stranger_and_admin_on_the_embedded_store() {
    let server = Server::start(&[]);
    lifecycle(&server, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn an_items_life_with_owner_stranger_and_admin_on_dynamodb() {
    let server = dynamodb_server("life");
    lifecycle(&server, Duration::from_secs(20)).await;
}

/// The value of a Prometheus text line `name value`.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn metrics_count_what_the_functions_did() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let token = server.token(&[]);
    let auth = format!("Bearer {token}");
    let created: Value = client
        .post(server.url("/items"))
        .header("Authorization", &auth)
        .json(&json!({"name": "Pen"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = format!("/items/{}", created["item"]["id"].as_str().unwrap());
    let repeat = || {
        client
            .post(server.url("/items"))
            .header("Authorization", &auth)
            .header("Idempotency-Key", "metrics-1")
            .json(&json!({"name": "Cup"}))
            .send()
    };
    assert_eq!(repeat().await.unwrap().status(), 201);
    assert_eq!(repeat().await.unwrap().status(), 201);
    let renamed = client.patch(server.url(&item)).header("Authorization", &auth).json(&json!({"name": "Ink"}));
    assert_eq!(renamed.send().await.unwrap().status(), 200);
    assert_eq!(client.delete(server.url(&item)).header("Authorization", &auth).send().await.unwrap().status(), 204);

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let text = loop {
        let response = client.get(server.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = response.text().await.unwrap();
        if metric(&text, "items_records_projected_total") >= 4.0 || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(metric(&text, "items_created_total"), 2.0, "{text}");
    assert_eq!(metric(&text, "items_idempotent_repeats_total"), 1.0);
    assert_eq!(metric(&text, "items_updated_total"), 1.0);
    assert_eq!(metric(&text, "items_deleted_total"), 1.0);
    assert_eq!(metric(&text, "items_records_projected_total"), 4.0, "two creations, a rename and a deletion");
    assert_eq!(metric(&text, "items_records_failed_total"), 0.0);
    assert_eq!(metric(&text, "items_projection_lag_milliseconds_count"), 4.0);
}
