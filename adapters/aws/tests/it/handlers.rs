//! The API handlers on real API Gateway REST proxy events (as AWS sends them),
//! over the in-memory ports: status, headers, body, and what was stored.

use std::sync::Arc;

use crate::support::{body_json, deadline, header};
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use items_aws::apigw::{ItemQueries, get_items, post_item};
use items_aws::cursor::HmacCursorCodec;
use items_domain::memory::{InMemoryEventStore, InMemoryReadModel};
use items_domain::ports::{EventStore, ReadModel};
use items_domain::service::{CreateItemService, HistoryService, ProjectorService, QueryService};
use items_domain::testing::{FixedClock, SequentialIds};
use items_domain::{EventPayload, ItemId};
use serde_json::{Value, json};

const POST_EVENT: &str = include_str!("../fixtures/apigw-post-items.json");
const SUB: &str = "4f1e8a52-7c3b-4d59-9a41-0c6b2f2e9d11";

struct Api {
    events: Arc<InMemoryEventStore>,
    read_model: Arc<InMemoryReadModel>,
    create: CreateItemService,
    query: ItemQueries,
}

impl Api {
    fn new() -> Self {
        let events = Arc::new(InMemoryEventStore::default());
        let read_model = Arc::new(InMemoryReadModel::default());
        Self {
            create: CreateItemService::new(
                events.clone(),
                Arc::new(FixedClock::default()),
                Arc::new(SequentialIds::default()),
            ),
            query: ItemQueries {
                items: QueryService::new(
                    read_model.clone(),
                    Arc::new(HmacCursorCodec::new(b"test key")),
                    Arc::new(FixedClock::default()),
                ),
                history: HistoryService::new(events.clone()),
            },
            events,
            read_model,
        }
    }

    async fn post(&self, request: ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
        post_item(&self.create, request).await
    }

    async fn get(&self, request: ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
        get_items(&self.query, request, deadline()).await
    }

    /// Projects everything appended so far, as the stream would.
    async fn project(&self) {
        let events: Vec<_> = self.events.read_after(0, usize::MAX).into_iter().map(|(_, e)| e).collect();
        let outcome = ProjectorService::new(self.read_model.clone(), self.events.clone()).project_batch(&events).await;
        assert_eq!(outcome.failed, None);
    }

    async fn create_items(&self, count: usize) {
        for n in 0..count {
            let response = self.post(post_request(Some(&format!(r#"{{"name":"item {n}"}}"#)))).await;
            assert_eq!(response.status_code, 201);
        }
        self.project().await;
    }
}

fn post_request(body: Option<&str>) -> ApiGatewayProxyRequest {
    let mut event: Value = serde_json::from_str(POST_EVENT).unwrap();
    event["body"] = body.map_or(Value::Null, |b| Value::String(b.into()));
    serde_json::from_value(event).unwrap()
}

/// The same event shape, for `GET` on `resource` with `query` and path parameters.
fn get_request(resource: &str, path: &str, query: Value, path_parameters: Value) -> ApiGatewayProxyRequest {
    let mut event: Value = serde_json::from_str(POST_EVENT).unwrap();
    event["httpMethod"] = json!("GET");
    event["requestContext"]["httpMethod"] = json!("GET");
    event["resource"] = json!(resource);
    event["requestContext"]["resourcePath"] = json!(resource);
    event["path"] = json!(path);
    event["requestContext"]["path"] = json!(format!("/v1{path}"));
    event["body"] = Value::Null;
    event["queryStringParameters"] = query;
    event["pathParameters"] = path_parameters;
    serde_json::from_value(event).unwrap()
}

fn list_request(query: Value) -> ApiGatewayProxyRequest {
    get_request("/items", "/items", query, Value::Null)
}

fn assert_error(response: &ApiGatewayProxyResponse, status: i64, message: &str) {
    assert_eq!(response.status_code, status, "{:?}", response.body);
    assert_eq!(header(response, "content-type"), Some("application/json"));
    assert_eq!(body_json(response), json!({ "message": message }));
}

#[tokio::test]
async fn post_stores_an_item_created_event_and_answers_the_classic_shape() {
    let api = Api::new();
    let response = api.post(post_request(Some(r#"{"name":"Pen","timestamp":"2026-11-25T12:20:00Z"}"#))).await;

    assert_eq!(response.status_code, 201);
    let body = body_json(&response);
    let text = match &response.body {
        Some(Body::Text(text)) => text.clone(),
        _ => unreachable!(),
    };
    assert!(text.starts_with(r#"{"message":"Item stored","item":"#), "{text}");
    assert_eq!(body["item"]["name"], "Pen");
    assert_eq!(body["item"]["timestamp"], "2026-11-25T12:20:00Z");
    assert_eq!(body["item"]["createdBy"], SUB);
    assert_eq!(body["item"]["createdAt"], "2026-01-02T03:04:05.678Z");
    assert_eq!(body["item"]["version"], 1);
    let id = body["item"]["id"].as_str().unwrap();
    assert_eq!(header(&response, "location"), Some(format!("/v1/items/{id}").as_str()));

    let stored = api.events.stream(ItemId::parse(id).unwrap()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].subject, SUB);
    assert!(matches!(&stored[0].payload, EventPayload::ItemCreated(c) if c.name == "Pen"));
}

#[tokio::test]
async fn post_applies_defaults() {
    let api = Api::new();
    let body = body_json(&api.post(post_request(Some("{}"))).await);
    assert_eq!(body["item"]["name"], "Unnamed");
    assert_eq!(body["item"]["timestamp"], "N/A");
}

#[tokio::test]
async fn post_accepts_a_base64_encoded_body() {
    let api = Api::new();
    let mut request = post_request(Some("eyJuYW1lIjoiQmFzZSJ9")); // {"name":"Base"}
    request.is_base64_encoded = true;
    let response = api.post(request).await;
    assert_eq!(response.status_code, 201);
    assert_eq!(body_json(&response)["item"]["name"], "Base");
}

#[tokio::test]
async fn bad_bodies_get_a_400_and_store_nothing() {
    let cases = [
        (Some("{not json"), "Request body is not valid JSON"),
        (None, "Request body is not valid JSON"),
        (Some("[1,2]"), "Request body must be a JSON object"),
        (Some(r#"{"name":42}"#), "`name` must be a string"),
        (Some(r#"{"timestamp":{}}"#), "`timestamp` must be a string"),
        (Some(r#"{"name":""}"#), "`name` must be 1 to 256 characters"),
    ];
    let long_name = format!(r#"{{"name":"{}"}}"#, "x".repeat(257));
    let long_timestamp = format!(r#"{{"timestamp":"{}"}}"#, "1".repeat(65));
    let api = Api::new();
    for (body, message) in cases {
        assert_error(&api.post(post_request(body)).await, 400, message);
    }
    assert_error(&api.post(post_request(Some(&long_name))).await, 400, "`name` must be 1 to 256 characters");
    assert_error(&api.post(post_request(Some(&long_timestamp))).await, 400, "`timestamp` must be 0 to 64 characters");
    assert!(api.events.is_empty());
}

#[tokio::test]
async fn an_oversized_body_gets_a_413_and_stores_nothing() {
    let api = Api::new();
    let body = format!(r#"{{"name":"Pen","padding":"{}"}}"#, "x".repeat(64 * 1024));
    assert_error(&api.post(post_request(Some(&body))).await, 413, "Request body is larger than 65536 bytes");
    assert!(api.events.is_empty());
}

/// The largest valid body is taken: every field at its limit, every
/// character the longest JSON escape (a surrogate pair, 12 bytes).
#[tokio::test]
async fn the_largest_valid_body_is_stored() {
    let api = Api::new();
    let escaped = |chars: usize| "\\ud83d\\udd8a".repeat(chars);
    let body =
        format!(r#"{{"name":"{}","timestamp":"{}","description":"{}"}}"#, escaped(256), escaped(64), escaped(2000));
    assert!(body.len() > 27_000, "{}", body.len());
    let response = api.post(post_request(Some(&body))).await;
    assert_eq!(response.status_code, 201, "{:?}", response.body);
    let created = body_json(&response);
    assert_eq!(created["item"]["description"].as_str().map(|text| text.chars().count()), Some(2000));
}

#[tokio::test]
async fn a_non_json_content_type_gets_a_415_and_stores_nothing() {
    let api = Api::new();
    let mut request = post_request(Some(r#"{"name":"Pen"}"#));
    request.headers.insert("content-type", "text/plain".parse().unwrap());
    assert_error(&api.post(request).await, 415, "Content-Type must be application/json");
    assert!(api.events.is_empty());

    for accepted in ["application/json; charset=utf-8", "application/merge-patch+json"] {
        let mut request = post_request(Some(r#"{"name":"Pen"}"#));
        request.headers.insert("content-type", accepted.parse().unwrap());
        assert_eq!(api.post(request).await.status_code, 201, "{accepted}");
    }
    let mut request = post_request(Some(r#"{"name":"Pen"}"#));
    request.headers.remove("content-type");
    assert_eq!(api.post(request).await.status_code, 201, "no Content-Type, as classic clients send");
}

#[tokio::test]
async fn missing_claims_get_a_401_and_store_nothing() {
    let api = Api::new();
    let mut event: Value = serde_json::from_str(POST_EVENT).unwrap();
    event["requestContext"]["authorizer"] = Value::Null;
    let response = api.post(serde_json::from_value(event).unwrap()).await;
    assert_error(&response, 401, "Unauthorized");
    assert!(api.events.is_empty());
}

#[tokio::test]
async fn a_missing_scope_gets_a_403_and_stores_nothing() {
    let api = Api::new();
    let mut event: Value = serde_json::from_str(POST_EVENT).unwrap();
    event["requestContext"]["authorizer"]["claims"]["scope"] = json!("items/read");
    assert_error(&api.post(serde_json::from_value(event).unwrap()).await, 403, "Forbidden");
    assert!(api.events.is_empty());

    let mut event: Value = serde_json::from_str(POST_EVENT).unwrap();
    event["requestContext"]["authorizer"]["claims"]["scope"] = json!("items/write");
    let mut request: ApiGatewayProxyRequest = serde_json::from_value(event).unwrap();
    request.http_method = http::Method::GET;
    assert_error(&api.get(request).await, 403, "Forbidden");
}

#[tokio::test]
async fn a_store_outage_gets_a_503_without_internals_and_stores_nothing() {
    let api = Api::new();
    api.events.set_available(false);
    let response = api.post(post_request(Some(r#"{"name":"Pen"}"#))).await;
    assert_error(&response, 503, "Service unavailable, please retry");
    api.events.set_available(true);
    assert!(api.events.is_empty());

    api.read_model.set_available(false);
    assert_error(&api.get(list_request(Value::Null)).await, 503, "Service unavailable, please retry");
}

#[tokio::test]
async fn get_lists_every_item() {
    let api = Api::new();
    api.create_items(3).await;
    let response = api.get(list_request(Value::Null)).await;
    assert_eq!(response.status_code, 200);
    let items = body_json(&response);
    assert_eq!(items.as_array().unwrap().len(), 3);
    assert_eq!(header(&response, "link"), None);
}

#[tokio::test]
async fn get_with_limit_pages_with_link_headers() {
    let api = Api::new();
    api.create_items(5).await;
    let mut names = Vec::new();
    let mut query = json!({"limit": "2"});
    for _ in 0..10 {
        let response = api.get(list_request(query.clone())).await;
        assert_eq!(response.status_code, 200);
        let page = body_json(&response);
        assert!(page.as_array().unwrap().len() <= 2);
        names.extend(page.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()));
        let Some(link) = header(&response, "link") else { break };
        assert!(link.starts_with("</v1/items?limit=2&cursor=") && link.ends_with(">; rel=\"next\""), "{link}");
        let cursor = link.split("cursor=").nth(1).unwrap().split('>').next().unwrap();
        query = json!({"limit": "2", "cursor": cursor});
    }
    names.sort();
    assert_eq!(names, ["item 0", "item 1", "item 2", "item 3", "item 4"]);
}

#[tokio::test]
async fn bad_limits_and_tampered_cursors_get_a_400() {
    let api = Api::new();
    api.create_items(3).await;
    for limit in ["0", "1001", "-1", "ten", ""] {
        assert_error(
            &api.get(list_request(json!({ "limit": limit }))).await,
            400,
            "`limit` must be an integer from 1 to 1000",
        );
    }
    let first = api.get(list_request(json!({"limit": "1"}))).await;
    let link = header(&first, "link").unwrap();
    let cursor = link.split("cursor=").nth(1).unwrap().split('>').next().unwrap();
    let tampered = format!("A{}", &cursor[1..]);
    assert_error(&api.get(list_request(json!({"limit": "1", "cursor": tampered}))).await, 400, "Invalid cursor");
    assert_error(&api.get(list_request(json!({"cursor": "garbage"}))).await, 400, "Invalid cursor");
}

#[tokio::test]
async fn get_by_id_finds_the_item_or_404s() {
    let api = Api::new();
    api.create_items(1).await;
    let listed = body_json(&api.get(list_request(Value::Null)).await);
    let id = listed[0]["id"].as_str().unwrap().to_owned();

    let one = |id: &str| get_request("/items/{id}", &format!("/items/{id}"), Value::Null, json!({ "id": id }));
    let response = api.get(one(&id)).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(body_json(&response), listed[0]);

    assert_error(&api.get(one("8d0f7c8e-0000-4000-8000-000000000000")).await, 404, "Item not found");
    assert_error(&api.get(one("not-a-uuid")).await, 404, "Item not found");
}

fn with_key(body: &str, key: &str) -> ApiGatewayProxyRequest {
    let mut request = post_request(Some(body));
    request.headers.insert("idempotency-key", key.parse().unwrap());
    request
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response() {
    let api = Api::new();
    let first = api.post(with_key(r#"{"name":"Pen"}"#, "order-1")).await;
    assert_eq!(first.status_code, 201);
    assert_eq!(header(&first, "idempotent-replayed"), None);

    let retry = api.post(with_key(r#"{"name":"Pen"}"#, "order-1")).await;
    assert_eq!(retry.status_code, 201);
    assert_eq!(body_json(&retry), body_json(&first));
    assert_eq!(header(&retry, "location"), header(&first, "location"));
    assert_eq!(header(&retry, "idempotent-replayed"), Some("true"));
    assert_eq!(api.events.len(), 1);

    assert_error(
        &api.post(with_key(r#"{"name":"Pencil"}"#, "order-1")).await,
        422,
        "Idempotency-Key was already used with a different request",
    );
    assert_eq!(api.events.len(), 1);
}

#[tokio::test]
async fn a_malformed_idempotency_key_gets_a_400() {
    let api = Api::new();
    let long = "k".repeat(256);
    for key in ["has space", long.as_str()] {
        assert_error(
            &api.post(with_key(r#"{"name":"Pen"}"#, key)).await,
            400,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        );
    }
    assert!(api.events.is_empty());
}

#[test]
fn function_responses_carry_cors_headers_only_for_allowed_origins() {
    use items_aws::apigw::json_response;
    use items_aws::response_headers::{CorsPolicy, decorate};
    let allowed = CorsPolicy::parse("https://app.example.com");
    let mut response = json_response(200, &json!([]), http::HeaderMap::new());
    decorate(&mut response.headers, Some("https://app.example.com"), &allowed);
    assert_eq!(header(&response, "access-control-allow-origin"), Some("https://app.example.com"));
    assert!(header(&response, "access-control-expose-headers").unwrap().contains("Location"));
    assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));

    let mut other = json_response(200, &json!([]), http::HeaderMap::new());
    decorate(&mut other.headers, Some("https://evil.example.com"), &allowed);
    decorate(&mut other.headers, None, &allowed);
    assert_eq!(header(&other, "access-control-allow-origin"), None);

    let mut wildcard = json_response(200, &json!([]), http::HeaderMap::new());
    decorate(&mut wildcard.headers, Some("https://anyone.example.com"), &CorsPolicy::parse("*"));
    assert_eq!(header(&wildcard, "access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn a_listing_without_limit_stays_within_lambdas_response_limit_and_links_every_item_once() {
    use items_aws::limits::{LAMBDA_RESPONSE_MAX_BYTES, LIST_BUDGET};
    let read_model = Arc::new(InMemoryReadModel::default());
    // More than 6 MB of items: 24,000 with 180-character names.
    let mut ids = std::collections::HashSet::new();
    for n in 0..24_000u128 {
        let item = items_domain::Item {
            id: ItemId(uuid::Uuid::from_u128(n + 1)),
            name: format!("{n:0>180}"),
            timestamp: "2026-11-25T12:20:00Z".into(),
            created_by: SUB.into(),
            created_at: items_domain::testing::at("2026-11-25T12:20:05.123Z"),
            version: 1,
            deleted: false,
            description: None,
        };
        ids.insert(item.id.to_string());
        read_model.upsert_if_newer(&item).await.unwrap();
    }
    let query = ItemQueries {
        items: QueryService::new(
            read_model,
            Arc::new(HmacCursorCodec::new(b"test key")),
            Arc::new(FixedClock::default()),
        )
        .with_list_budget(LIST_BUDGET),
        history: HistoryService::new(Arc::new(InMemoryEventStore::default())),
    };

    let mut seen = std::collections::HashSet::new();
    let mut request = list_request(Value::Null);
    let mut pages = 0;
    loop {
        let response = get_items(&query, request, deadline()).await;
        assert_eq!(response.status_code, 200);
        // The whole proxy response, as Lambda would carry it.
        let payload = serde_json::to_vec(&response).unwrap().len();
        assert!(payload < LAMBDA_RESPONSE_MAX_BYTES, "{payload} bytes");
        for item in body_json(&response).as_array().unwrap() {
            assert!(seen.insert(item["id"].as_str().unwrap().to_owned()), "an item twice");
        }
        pages += 1;
        let Some(link) = header(&response, "link") else { break };
        let (path, cursor) = link.trim_start_matches('<').split_once("?cursor=").unwrap();
        assert_eq!(path, "/v1/items", "the link keeps the stage");
        let cursor = cursor.split('>').next().unwrap();
        request = list_request(json!({ "cursor": cursor }));
    }
    assert_eq!(seen, ids);
    assert!(pages >= 2);
}
