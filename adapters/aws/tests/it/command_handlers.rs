//! `PATCH`, `DELETE /items/{id}` and `GET /items/{id}/events` on API Gateway
//! REST proxy events (the `item-commands` function), over the in-memory ports:
//! every status the API reference lists, and what was stored.

use std::sync::Arc;

use crate::support::{body_json, deadline, header};
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use items_aws::apigw::{Caller, ItemCommands, ItemQueries, get_items, groups_claim, item_commands, post_item};
use items_aws::cursor::HmacCursorCodec;
use items_domain::ItemId;
use items_domain::event::EventSchemas;
use items_domain::memory::{InMemoryEventStore, InMemoryReadModel};
use items_domain::ports::EventStore;
use items_domain::service::{ChangeItemService, CreateItemService, HistoryService, ProjectorService, QueryService};
use items_domain::testing::{FixedClock, SequentialIds};
use serde_json::{Value, json};

const EVENT: &str = include_str!("../fixtures/apigw-post-items.json");
/// The fixture's caller, who creates the items here.
const OWNER: &str = "4f1e8a52-7c3b-4d59-9a41-0c6b2f2e9d11";
const OTHER: &str = "7d0c9b8a-1111-4222-8333-944455566677";
const ADMIN: &str = "a1b2c3d4-0000-4000-8000-00000000ad01";

struct Api {
    events: Arc<InMemoryEventStore>,
    read_model: Arc<InMemoryReadModel>,
    create: CreateItemService,
    query: ItemQueries,
    commands: ItemCommands,
}

/// Who calls, with which scopes and `cognito:groups` (as the authorizer passes it).
struct As<'a> {
    sub: &'a str,
    scope: &'a str,
    groups: Option<Value>,
}

const OWNER_RW: As = As { sub: OWNER, scope: "items/read items/write", groups: None };
const OTHER_RW: As = As { sub: OTHER, scope: "items/read items/write", groups: None };

fn admin(groups: Value) -> As<'static> {
    As { sub: ADMIN, scope: "items/read items/write", groups: Some(groups) }
}

fn request(
    method: &str,
    resource: &str,
    id: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
    caller: &As,
) -> ApiGatewayProxyRequest {
    let mut event: Value = serde_json::from_str(EVENT).unwrap();
    let path = resource.replace("{id}", id);
    event["httpMethod"] = json!(method);
    event["requestContext"]["httpMethod"] = json!(method);
    event["resource"] = json!(resource);
    event["requestContext"]["resourcePath"] = json!(resource);
    event["path"] = json!(path);
    event["requestContext"]["path"] = json!(format!("/v1{path}"));
    event["body"] = body.map_or(Value::Null, |b| json!(b));
    event["pathParameters"] = if resource.contains("{id}") { json!({ "id": id }) } else { Value::Null };
    for (name, value) in headers {
        event["headers"][*name] = json!(value);
    }
    let claims = &mut event["requestContext"]["authorizer"]["claims"];
    claims["sub"] = json!(caller.sub);
    claims["username"] = json!(caller.sub);
    claims["scope"] = json!(caller.scope);
    if let Some(groups) = &caller.groups {
        claims["cognito:groups"] = groups.clone();
    }
    serde_json::from_value(event).unwrap()
}

impl Api {
    fn new() -> Self {
        let events = Arc::new(InMemoryEventStore::default());
        let read_model = Arc::new(InMemoryReadModel::default());
        let ids = Arc::new(SequentialIds::default());
        let clock = Arc::new(FixedClock::default());
        Self {
            create: CreateItemService::new(events.clone(), clock.clone(), ids.clone()),
            query: ItemQueries {
                items: QueryService::new(
                    read_model.clone(),
                    Arc::new(HmacCursorCodec::new(b"test key")),
                    clock.clone(),
                ),
                history: HistoryService::new(events.clone()),
            },
            commands: ItemCommands {
                changes: ChangeItemService::new(events.clone(), clock, ids),
                history: HistoryService::new(events.clone()),
            },
            events,
            read_model,
        }
    }

    /// An item "Pen" created by the owner, projected.
    async fn item(&self) -> String {
        let created =
            post_item(&self.create, request("POST", "/items", "", Some(r#"{"name":"Pen"}"#), &[], &OWNER_RW)).await;
        assert_eq!(created.status_code, 201);
        self.project().await;
        body_json(&created)["item"]["id"].as_str().unwrap().to_owned()
    }

    async fn project(&self) {
        let events: Vec<_> = self.events.read_after(0, usize::MAX).into_iter().map(|(_, e)| e).collect();
        let projector = ProjectorService::new(self.read_model.clone(), self.events.clone());
        assert_eq!(projector.project_batch(&events).await.failed, None);
    }

    async fn call(
        &self,
        method: &str,
        id: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
        caller: &As<'_>,
    ) -> ApiGatewayProxyResponse {
        let resource = if method == "GET" { "/items/{id}/events" } else { "/items/{id}" };
        item_commands(&self.commands, request(method, resource, id, body, headers, caller)).await
    }

    async fn get(&self, id: &str) -> ApiGatewayProxyResponse {
        get_items(&self.query, request("GET", "/items/{id}", id, None, &[], &OWNER_RW), deadline()).await
    }

    async fn stream_len(&self, id: &str) -> usize {
        self.events.stream(ItemId::parse(id).unwrap()).await.unwrap().len()
    }
}

#[tokio::test]
async fn get_by_id_carries_the_version_as_etag() {
    let api = Api::new();
    let id = api.item().await;
    assert_eq!(header(&api.get(&id).await, "etag"), Some(r#""1""#));
}

#[tokio::test]
async fn patch_renames_and_answers_200_with_the_new_version_from_the_stream() {
    let api = Api::new();
    let id = api.item().await;
    let response = api.call("PATCH", &id, Some(r#"{"name":"Ink"}"#), &[("If-Match", r#""1""#)], &OWNER_RW).await;
    assert_eq!(response.status_code, 200, "{:?}", response.body);
    assert_eq!(header(&response, "etag"), Some(r#""2""#));
    let item = body_json(&response);
    assert_eq!(
        (item["name"].as_str(), item["version"].as_u64(), item["createdBy"].as_str()),
        (Some("Ink"), Some(2), Some(OWNER))
    );
    assert!(item.get("deleted").is_none(), "{item}");

    // Before any projection the answer is already the new state; after it, GET agrees.
    api.project().await;
    assert_eq!(body_json(&api.get(&id).await)["name"], "Ink");
    assert_eq!(header(&api.get(&id).await, "etag"), Some(r#""2""#));
}

#[tokio::test]
async fn patch_to_the_same_values_appends_nothing() {
    let api = Api::new();
    let id = api.item().await;
    let response = api.call("PATCH", &id, Some(r#"{"name":"Pen"}"#), &[], &OWNER_RW).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(body_json(&response)["version"], 1);
    assert_eq!(api.stream_len(&id).await, 1);
}

#[tokio::test]
async fn bad_patch_bodies_get_a_400_and_store_nothing() {
    let api = Api::new();
    let id = api.item().await;
    for (body, message) in [
        ("{}", "Request body must set `name`, `timestamp` or `description`"),
        (r#"{"colour":"blue"}"#, "Request body must set `name`, `timestamp` or `description`"),
        (r#"{"name":""}"#, "`name` must be 1 to 256 characters"),
        (r#"{"name":5}"#, "`name` must be a string"),
        ("[]", "Request body must be a JSON object"),
        ("{", "Request body is not valid JSON"),
    ] {
        let response = api.call("PATCH", &id, Some(body), &[], &OWNER_RW).await;
        assert_eq!((response.status_code, body_json(&response)), (400, json!({ "message": message })), "{body}");
    }
    let bad_if_match = api.call("PATCH", &id, Some(r#"{"name":"Ink"}"#), &[("If-Match", "1")], &OWNER_RW).await;
    assert_eq!(bad_if_match.status_code, 400);
    let bad_key =
        api.call("PATCH", &id, Some(r#"{"name":"Ink"}"#), &[("Idempotency-Key", "has space")], &OWNER_RW).await;
    assert_eq!(bad_key.status_code, 400);
    let not_json = api.call("PATCH", &id, Some("name=Ink"), &[("Content-Type", "text/plain")], &OWNER_RW).await;
    assert_eq!(not_json.status_code, 415);
    assert_eq!(api.stream_len(&id).await, 1);
}

#[tokio::test]
async fn a_stale_if_match_gets_412_with_the_current_version() {
    let api = Api::new();
    let id = api.item().await;
    assert_eq!(api.call("PATCH", &id, Some(r#"{"name":"Ink"}"#), &[], &OWNER_RW).await.status_code, 200);
    for (method, body) in [("PATCH", Some(r#"{"name":"Nib"}"#)), ("DELETE", None)] {
        let stale = api.call(method, &id, body, &[("If-Match", r#""1""#)], &OWNER_RW).await;
        assert_eq!(stale.status_code, 412, "{method}");
        assert_eq!(body_json(&stale)["currentVersion"], 2);
    }
    assert_eq!(api.stream_len(&id).await, 2);
}

/// Review finding 14, RFC 9110 §13.1.1: a weak tag never matches (412, not
/// 400); a list matches when one member does; `*` holds for an existing
/// item. On a deleted item `*` gets 404, not the 412 the review expected:
/// §13.2.1 has a server ignore preconditions when the request would fail
/// without them, and a DELETE of a deleted item is a 404.
#[tokio::test]
async fn if_match_takes_lists_star_and_never_matches_a_weak_tag() {
    let api = Api::new();
    let id = api.item().await;
    let weak = api.call("PATCH", &id, Some(r#"{"name":"Ink"}"#), &[("If-Match", r#"W/"1""#)], &OWNER_RW).await;
    assert_eq!(weak.status_code, 412);
    assert_eq!(body_json(&weak)["currentVersion"], 1);
    let star = api.call("PATCH", &id, Some(r#"{"name":"Ink"}"#), &[("If-Match", "*")], &OWNER_RW).await;
    assert_eq!(star.status_code, 200);
    let listed = api.call("PATCH", &id, Some(r#"{"name":"Nib"}"#), &[("If-Match", r#""1", "2""#)], &OWNER_RW).await;
    assert_eq!(listed.status_code, 200, "at version 2, one of the list");
    let stale = api.call("DELETE", &id, None, &[("If-Match", r#""1", "2""#)], &OWNER_RW).await;
    assert_eq!(stale.status_code, 412, "at version 3, none of the list");
    assert_eq!(api.stream_len(&id).await, 3);
    assert_eq!(api.call("DELETE", &id, None, &[("If-Match", "*")], &OWNER_RW).await.status_code, 204);
    assert_eq!(api.call("DELETE", &id, None, &[("If-Match", "*")], &OWNER_RW).await.status_code, 404);
}

/// Review finding 17: `GET /items/{id}/events` pages like `GET /items`:
/// `?limit`, and `Link: <…?limit=N&cursor=V>; rel="next"` (with the stage in
/// the path) while more events follow.
#[tokio::test]
async fn the_history_pages_with_a_link() {
    let api = Api::new();
    let id = api.item().await;
    for name in ["Ink", "Nib"] {
        let body = format!(r#"{{"name":"{name}"}}"#);
        assert_eq!(api.call("PATCH", &id, Some(&body), &[], &OWNER_RW).await.status_code, 200);
    }
    let page = |query: Value| {
        let mut request = request("GET", "/items/{id}/events", &id, None, &[], &OWNER_RW);
        request.query_string_parameters = serde_json::from_value(query).unwrap();
        item_commands(&api.commands, request)
    };
    let first = page(json!({"limit": "2"})).await;
    assert_eq!(first.status_code, 200);
    let versions = |response: &ApiGatewayProxyResponse| {
        body_json(response).as_array().unwrap().iter().map(|e| e["version"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(versions(&first), [1, 2]);
    let link = first.headers.get("link").unwrap().to_str().unwrap();
    assert_eq!(link, format!("</v1/items/{id}/events?limit=2&cursor=2>; rel=\"next\""));
    let last = page(json!({"limit": "2", "cursor": "2"})).await;
    assert_eq!(versions(&last), [3]);
    assert!(last.headers.get("link").is_none(), "the end");
    assert_eq!(versions(&page(json!({})).await), [1, 2, 3], "without a limit, all that fit");
    assert_eq!(page(json!({"cursor": "two"})).await.status_code, 400);
    assert_eq!(page(json!({"limit": "0"})).await.status_code, 400);
}

#[tokio::test]
async fn only_the_creator_or_an_items_admin_may_change_an_item() {
    let api = Api::new();
    let id = api.item().await;
    for (method, body) in [("PATCH", Some(r#"{"name":"Mine"}"#)), ("DELETE", None)] {
        let refused = api.call(method, &id, body, &[], &OTHER_RW).await;
        assert_eq!(refused.status_code, 403, "{method}");
        assert_eq!(
            body_json(&refused),
            json!({"message": "Only the item's creator or a member of items-admins may change it"})
        );
        let not_admin = api.call(method, &id, body, &[], &admin(json!("items-readers"))).await;
        assert_eq!(not_admin.status_code, 403, "{method}: another group is no admin");
    }
    assert_eq!(api.stream_len(&id).await, 1);

    // Every form the claim is read in (others grant nothing:
    // a_groups_claim_in_another_form_grants_nothing).
    for (n, groups) in
        [json!("items-admins"), json!("staff,items-admins"), json!("staff, items-admins"), json!(["items-admins"])]
            .into_iter()
            .enumerate()
    {
        let renamed =
            api.call("PATCH", &id, Some(&format!(r#"{{"name":"Checked {n}"}}"#)), &[], &admin(groups.clone())).await;
        assert_eq!(renamed.status_code, 200, "{groups}");
    }
    let deleted = api.call("DELETE", &id, None, &[], &admin(json!("items-admins"))).await;
    assert_eq!(deleted.status_code, 204);
}

#[tokio::test]
async fn delete_answers_204_then_the_item_is_gone_but_its_history_stays() {
    let api = Api::new();
    let id = api.item().await;
    api.call("PATCH", &id, Some(r#"{"timestamp":"later"}"#), &[], &OWNER_RW).await;
    let deleted = api.call("DELETE", &id, None, &[], &OWNER_RW).await;
    assert_eq!(deleted.status_code, 204);
    assert!(deleted.body.is_none());
    api.project().await;

    assert_eq!(api.get(&id).await.status_code, 404);
    let listed = get_items(&api.query, request("GET", "/items", "", None, &[], &OWNER_RW), deadline()).await;
    assert_eq!(body_json(&listed), json!([]));
    for (method, body) in [("DELETE", None), ("PATCH", Some(r#"{"name":"Back"}"#))] {
        let gone = api.call(method, &id, body, &[], &OWNER_RW).await;
        assert_eq!((gone.status_code, body_json(&gone)), (404, json!({"message": "Item not found"})), "{method}");
    }

    let history = api.call("GET", &id, None, &[], &As { sub: OTHER, scope: "items/read", groups: None }).await;
    assert_eq!(history.status_code, 200, "anyone who may read sees the audit trail");
    let entries = body_json(&history);
    let summary: Vec<(&str, u64)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(summary, [("ItemCreated", 1), ("ItemUpdated", 2), ("ItemDeleted", 3)]);
    assert_eq!(entries[1]["changes"], json!({"timestamp": "later"}));
    assert_eq!(entries[2]["subject"], OWNER);
    assert!(entries[0]["eventId"].is_string() && entries[0]["occurredAt"].is_string());
}

#[tokio::test]
async fn unknown_ids_get_404_everywhere() {
    let api = Api::new();
    for id in ["00000000-0000-4000-8000-000000000999", "not-a-uuid"] {
        for (method, body) in [("PATCH", Some(r#"{"name":"Ink"}"#)), ("DELETE", None), ("GET", None)] {
            let response = api.call(method, id, body, &[], &OWNER_RW).await;
            assert_eq!(response.status_code, 404, "{method} {id}");
        }
    }
}

#[tokio::test]
async fn scopes_are_checked_per_method() {
    let api = Api::new();
    let id = api.item().await;
    let read_only = As { sub: OWNER, scope: "items/read", groups: None };
    let write_only = As { sub: OWNER, scope: "items/write", groups: None };
    assert_eq!(api.call("PATCH", &id, Some(r#"{"name":"Ink"}"#), &[], &read_only).await.status_code, 403);
    assert_eq!(api.call("DELETE", &id, None, &[], &read_only).await.status_code, 403);
    assert_eq!(api.call("GET", &id, None, &[], &write_only).await.status_code, 403);
    let mut anonymous = request("DELETE", "/items/{id}", &id, None, &[], &OWNER_RW);
    anonymous.request_context.authorizer.fields.clear();
    assert_eq!(item_commands(&api.commands, anonymous).await.status_code, 401);
    assert_eq!(api.stream_len(&id).await, 1);
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_change_happen_once() {
    let api = Api::new();
    let id = api.item().await;
    let key = [("Idempotency-Key", "rename-42")];
    let first = api.call("PATCH", &id, Some(r#"{"name":"Ink"}"#), &key, &OWNER_RW).await;
    let retry = api.call("PATCH", &id, Some(r#"{"name":"Ink"}"#), &key, &OWNER_RW).await;
    assert_eq!((first.status_code, retry.status_code), (200, 200));
    assert_eq!(body_json(&first), body_json(&retry));
    assert_eq!(header(&retry, "idempotent-replayed"), Some("true"));
    let other = api.call("PATCH", &id, Some(r#"{"name":"Nib"}"#), &key, &OWNER_RW).await;
    assert_eq!(other.status_code, 422);

    let delete_key = [("Idempotency-Key", "delete-42")];
    assert_eq!(api.call("DELETE", &id, None, &delete_key, &OWNER_RW).await.status_code, 204);
    let retried = api.call("DELETE", &id, None, &delete_key, &OWNER_RW).await;
    assert_eq!(retried.status_code, 204, "a retried delete is not a 404");
    assert_eq!(header(&retried, "idempotent-replayed"), Some("true"));
    assert_eq!(api.stream_len(&id).await, 3);
}

#[test]
fn the_caller_reads_groups_from_the_claims() {
    let event = request("DELETE", "/items/{id}", "x", None, &[], &admin(json!("staff,items-admins")));
    let caller = Caller::from_request(&event).unwrap();
    assert!(caller.is_in_group("items-admins") && caller.is_in_group("staff"));
    assert_eq!(groups_claim(&json!(5)), Vec::<String>::new());
    assert_eq!(groups_claim(&json!("")), Vec::<String>::new());
    assert_eq!(groups_claim(&json!(["staff", "items-admins"])), ["staff", "items-admins"]);
    assert_eq!(groups_claim(&json!("staff, items-admins")), ["staff", "items-admins"]);
}

/// Security review finding 7: only plain names are read, and no encoding of
/// another group name can read as `items-admins`.
#[test]
fn a_groups_claim_in_another_form_grants_nothing() {
    for claim in [
        json!(r#"["items-admins"]"#),
        json!("[staff items-admins]"),
        json!("staff,,items-admins"),
        json!(["items admins"]),
        json!(["staff", 7]),
        json!({"items-admins": true}),
    ] {
        assert_eq!(groups_claim(&claim), Vec::<String>::new(), "{claim}");
    }
}

/// `request` with `query` as its query string (one value per name).
fn with_query(mut request: ApiGatewayProxyRequest, query: &[(&str, &str)]) -> ApiGatewayProxyRequest {
    let pairs = query.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned()));
    request.query_string_parameters = std::collections::HashMap::<String, String>::from_iter(pairs).into();
    request
}

impl Api {
    async fn get_at(&self, id: &str, query: &[(&str, &str)]) -> ApiGatewayProxyResponse {
        let request = with_query(request("GET", "/items/{id}", id, None, &[], &OWNER_RW), query);
        get_items(&self.query, request, deadline()).await
    }

    async fn list(&self, query: &[(&str, &str)], caller: &As<'_>) -> ApiGatewayProxyResponse {
        let request = with_query(request("GET", "/items", "", None, &[], caller), query);
        get_items(&self.query, request, deadline()).await
    }
}

#[tokio::test]
async fn an_item_as_it_was_at_a_version_or_a_time_comes_from_its_stream_also_once_deleted() {
    let api = Api::new();
    let id = api.item().await;
    api.call("PATCH", &id, Some(r#"{"name":"Ink"}"#), &[], &OWNER_RW).await;
    assert_eq!(api.call("DELETE", &id, None, &[], &OWNER_RW).await.status_code, 204);
    api.project().await;
    assert_eq!(api.get(&id).await.status_code, 404, "as it is: deleted");

    for (version, name) in [("1", "Pen"), ("2", "Ink")] {
        let response = api.get_at(&id, &[("version", version)]).await;
        assert_eq!(response.status_code, 200, "{:?}", response.body);
        assert_eq!(header(&response, "etag"), Some(format!("\"{version}\"").as_str()));
        let item = body_json(&response);
        assert_eq!((item["name"].as_str(), item["version"].to_string().as_str()), (Some(name), version));
        assert_eq!(item["createdBy"], OWNER);
        assert!(item.get("deleted").is_none(), "a live state has no tombstone flag");
    }
    let deleted = api.get_at(&id, &[("version", "3")]).await;
    assert_eq!(
        (deleted.status_code, body_json(&deleted)),
        (410, json!({"message": "The item was deleted at version 3", "currentVersion": 3}))
    );
    let missing = api.get_at(&id, &[("version", "4")]).await;
    assert_eq!((missing.status_code, body_json(&missing)), (404, json!({"message": "The item has no version 4"})));

    // The fixed clock stamps every event at 2026-01-02T03:04:05.678Z.
    assert_eq!(api.get_at(&id, &[("at", "2026-01-02T03:04:05.678Z")]).await.status_code, 410);
    let before = api.get_at(&id, &[("at", "2026-01-02T04:04:05.677+01:00")]).await;
    assert_eq!(
        (before.status_code, body_json(&before)),
        (404, json!({"message": "The item did not exist at that time"}))
    );
    let unknown = api.get_at("00000000-0000-4000-8000-000000000999", &[("version", "1")]).await;
    assert_eq!(unknown.status_code, 404);

    for bad in [
        vec![("version", "0")],
        vec![("version", "two")],
        vec![("version", "-1")],
        vec![("at", "yesterday")],
        vec![("at", "2026-01-02T03:04:05")],
        vec![("version", "1"), ("at", "2026-01-02T03:04:05Z")],
    ] {
        let response = api.get_at(&id, &bad).await;
        assert_eq!(response.status_code, 400, "{bad:?}: {:?}", response.body);
        assert!(body_json(&response)["message"].is_string());
    }
}

#[tokio::test]
async fn my_items_are_the_callers_newest_first_and_an_admin_may_list_anyones() {
    let api = Api::new();
    let mine = [api.item().await, api.item().await, api.item().await];
    let theirs = post_item(&api.create, request("POST", "/items", "", Some(r#"{"name":"Cup"}"#), &[], &OTHER_RW)).await;
    assert_eq!(theirs.status_code, 201);
    api.call("DELETE", &mine[1], None, &[], &OWNER_RW).await;
    api.project().await;
    let ids = |response: &ApiGatewayProxyResponse| -> Vec<String> {
        assert_eq!(response.status_code, 200, "{:?}", response.body);
        body_json(response).as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap().to_owned()).collect()
    };
    // One clock time: the same `createdAt`, then the larger id first.
    let expected = vec![mine[2].clone(), mine[0].clone()];
    assert_eq!(ids(&api.list(&[("createdBy", "me")], &OWNER_RW).await), expected);
    assert_eq!(ids(&api.list(&[("createdBy", OWNER)], &OWNER_RW).await), expected, "one's own sub is `me`");
    assert_eq!(ids(&api.list(&[("createdBy", OWNER)], &admin(json!("items-admins"))).await), expected);
    assert_eq!(ids(&api.list(&[("createdBy", "me")], &OTHER_RW).await).len(), 1);
    assert_eq!(ids(&api.list(&[], &OWNER_RW).await).len(), 3, "without it: everyone's");

    let first = api.list(&[("createdBy", "me"), ("limit", "1")], &OWNER_RW).await;
    assert_eq!(ids(&first), [mine[2].clone()]);
    let link = header(&first, "link").unwrap();
    assert!(link.starts_with("</v1/items?createdBy=me&limit=1&cursor="), "{link}");
    let cursor_of = |link: &str| link.split("cursor=").nth(1).unwrap().split('>').next().unwrap().to_owned();
    let cursor = cursor_of(link);
    // The next pages: the tombstone counts against the limit, as in the listing.
    let (mut rest, mut next) = (Vec::new(), Some(cursor.clone()));
    while let Some(cursor) = next {
        let page = api.list(&[("createdBy", "me"), ("limit", "1"), ("cursor", &cursor)], &OWNER_RW).await;
        rest.extend(ids(&page));
        next = header(&page, "link").map(cursor_of);
    }
    assert_eq!(rest, [mine[0].clone()]);
    let cursor = cursor.as_str();
    let elsewhere = api.list(&[("limit", "1"), ("cursor", cursor)], &OWNER_RW).await;
    assert_eq!((elsewhere.status_code, body_json(&elsewhere)), (400, json!({"message": "Invalid cursor"})));

    // One read rule (security review N3): any reader lists anyone's items,
    // the same ones the whole listing shows them.
    let theirs = ids(&api.list(&[("createdBy", OWNER)], &OTHER_RW).await);
    assert_eq!(theirs, expected);
    let everyone = body_json(&api.list(&[], &OTHER_RW).await);
    let owners: Vec<String> = everyone
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["createdBy"] == OWNER)
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(owners.len(), theirs.len());
    assert!(owners.iter().all(|id| theirs.contains(id)));
    for bad in ["", "a\u{7}b", &"x".repeat(129)] {
        let response = api.list(&[("createdBy", bad)], &admin(json!("items-admins"))).await;
        assert_eq!(response.status_code, 400, "{bad:?}");
    }
}

/// An item's description through the handlers: given on creation, changed
/// and cleared by PATCH (an unchanged one records nothing), shown by GET,
/// in the history (`null` when cleared), and as it was at each version.
#[tokio::test]
async fn a_description_is_set_changed_and_cleared_through_the_api() {
    let api = Api::new();
    let body = r#"{"name":"Pen","description":"Blue ink\nrefillable"}"#;
    let created = post_item(&api.create, request("POST", "/items", "", Some(body), &[], &OWNER_RW)).await;
    assert_eq!(created.status_code, 201, "{:?}", created.body);
    assert_eq!(body_json(&created)["item"]["description"], "Blue ink\nrefillable");
    let id = body_json(&created)["item"]["id"].as_str().unwrap().to_owned();

    let same = api.call("PATCH", &id, Some(r#"{"description":"Blue ink\nrefillable"}"#), &[], &OWNER_RW).await;
    assert_eq!((same.status_code, api.stream_len(&id).await), (200, 1), "the same text records nothing");
    let changed = api.call("PATCH", &id, Some(r#"{"description":"Red"}"#), &[("If-Match", "\"1\"")], &OWNER_RW).await;
    assert_eq!(changed.status_code, 200, "{:?}", changed.body);
    assert_eq!(
        (body_json(&changed)["description"].as_str(), body_json(&changed)["version"].as_u64()),
        (Some("Red"), Some(2))
    );
    let cleared = api.call("PATCH", &id, Some(r#"{"description":null}"#), &[], &OWNER_RW).await;
    assert_eq!(cleared.status_code, 200);
    assert_eq!(body_json(&cleared).get("description"), None, "absent when the item has none");
    let stranger = api.call("PATCH", &id, Some(r#"{"description":"Mine"}"#), &[], &OTHER_RW).await;
    assert_eq!(stranger.status_code, 403);
    let bad = api.call("PATCH", &id, Some("{\"description\":\"bell\\u0007\"}"), &[], &OWNER_RW).await;
    assert_eq!(bad.status_code, 400);
    assert_eq!(api.stream_len(&id).await, 3);

    api.project().await;
    assert_eq!(body_json(&api.get(&id).await).get("description"), None);
    let history = body_json(&api.call("GET", &id, None, &[], &OWNER_RW).await);
    let changes: Vec<&Value> = history.as_array().unwrap().iter().map(|event| &event["changes"]).collect();
    assert_eq!(
        changes,
        [
            &json!({"name": "Pen", "timestamp": "N/A", "description": "Blue ink\nrefillable"}),
            &json!({"description": "Red"}),
            &json!({"description": null}),
        ]
    );
    for (version, description) in [(1, Some("Blue ink\nrefillable")), (2, Some("Red")), (3, None)] {
        let item = body_json(&api.get_at(&id, &[("version", &version.to_string())]).await);
        assert_eq!(item["description"].as_str(), description, "at version {version}");
    }
}

/// During a rollout (`WRITE_EVENT_SCHEMAS=1`) a description is refused with
/// a 400 that says why, and nothing is stored; the rest works.
#[tokio::test]
async fn with_the_write_gate_closed_a_description_gets_a_400_and_stores_nothing() {
    let mut api = Api::new();
    let clock = Arc::new(FixedClock::default());
    let ids = Arc::new(SequentialIds::default());
    api.create =
        CreateItemService::new(api.events.clone(), clock.clone(), ids.clone()).with_writes(EventSchemas::SET_1);
    api.commands.changes = ChangeItemService::new(api.events.clone(), clock, ids).with_writes(EventSchemas::SET_1);
    let refused =
        "`description` cannot be stored yet: this deployment writes event schema set 1 until every reader is upgraded";
    let body = r#"{"name":"Pen","description":"Blue"}"#;
    let created = post_item(&api.create, request("POST", "/items", "", Some(body), &[], &OWNER_RW)).await;
    assert_eq!((created.status_code, body_json(&created)), (400, json!({ "message": refused })));
    assert!(api.events.read_after(0, usize::MAX).is_empty());
    let id = api.item().await;
    let changed = api.call("PATCH", &id, Some(r#"{"description":"Blue"}"#), &[], &OWNER_RW).await;
    assert_eq!((changed.status_code, body_json(&changed)), (400, json!({ "message": refused })));
    let cleared = api.call("PATCH", &id, Some(r#"{"description":null}"#), &[], &OWNER_RW).await;
    assert_eq!(cleared.status_code, 200, "nothing to clear: nothing to write");
    assert_eq!(api.stream_len(&id).await, 1);
}
