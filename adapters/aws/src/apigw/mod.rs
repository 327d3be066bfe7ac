//! The API handlers: API Gateway REST proxy events in and out. The Lambdas run
//! them and so does the local gateway, so local behaviour is production behaviour.
//!
//! API Gateway has already verified the caller's access token and its scopes;
//! the handlers read the caller from `requestContext.authorizer.claims` and
//! check the scope again, so a gateway misconfiguration cannot open a method.

mod commands;

use std::time::Instant;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::{CONTENT_TYPE, ETAG, HeaderValue, LINK, LOCATION};
use items_domain::ItemId;
use items_domain::command::CreateItem;
use items_domain::idempotency::{IdempotencyKey, InvalidIdempotencyKey};
use items_domain::ports::StoreError;
use items_domain::service::{CreateError, CreateItemService, Created, QueryError, QueryService};
use serde::Serialize;

use crate::routes::{self, Function, Operation, Route};

pub use commands::{CommandFunctions, item_commands};

/// Largest accepted `POST /items` body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest `?limit`.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// Request header that makes `POST /items` idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Response header on a repeated idempotent response (the name Stripe uses; value `true`). A wire name: it keeps the word "replayed".
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The authenticated caller, as API Gateway's Cognito authorizer describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub scopes: Vec<String>,
    /// The access token's `cognito:groups`.
    pub groups: Vec<String>,
}

/// `cognito:groups` in any form it reaches a handler: a JSON array (a direct
/// invocation), JSON array text (the local gateway), a comma-separated string
/// (what a REST API's Cognito authorizer is reported to pass) or a bracketed,
/// space-separated one (an HTTP API's JWT authorizer). Group names hold
/// neither commas nor spaces in our pools, so all forms read the same.
pub fn groups_claim(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::Array(groups) => groups.iter().filter_map(|g| g.as_str()).map(str::to_owned).collect(),
        serde_json::Value::String(text) => {
            if let Ok(groups) = serde_json::from_str::<Vec<String>>(text) {
                return groups;
            }
            let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
            inner.split(|c: char| c == ',' || c.is_whitespace()).filter(|g| !g.is_empty()).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

impl Caller {
    /// Reads `requestContext.authorizer.claims` (string values; `scope` is one
    /// space-separated string). `None` when there is no usable `sub`.
    pub fn from_request(request: &ApiGatewayProxyRequest) -> Option<Self> {
        let claims = request.request_context.authorizer.fields.get("claims")?;
        let subject = claims.get("sub")?.as_str()?.trim();
        if subject.is_empty() {
            return None;
        }
        let scopes = claims
            .get("scope")
            .and_then(|scope| scope.as_str())
            .map(|scope| scope.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let groups = claims.get("cognito:groups").map(groups_claim).unwrap_or_default();
        Some(Self { subject: subject.to_owned(), scopes, groups })
    }

    pub fn is_in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// A client-facing error: a status and a message safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// The item's version, for a failed precondition or a conflict.
    pub current_version: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), current_version: None }
    }

    pub fn with_current_version(status: u16, message: impl Into<String>, current_version: u64) -> Self {
        Self { current_version: Some(current_version), ..Self::new(status, message) }
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized")
    }

    pub fn forbidden() -> Self {
        Self::new(403, "Forbidden")
    }

    pub fn into_response(self) -> ApiGatewayProxyResponse {
        let body = match self.current_version {
            Some(version) => serde_json::json!({ "message": self.message, "currentVersion": version }),
            None => serde_json::json!({ "message": self.message }),
        };
        json_response(self.status, &body, HeaderMap::new())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        // The detail goes to the log, never to the client.
        tracing::error!(%error, "store error");
        match error {
            StoreError::Unavailable(_) => Self::new(503, "Service unavailable, please retry"),
            StoreError::Corrupt(_) => Self::new(500, "Internal server error"),
        }
    }
}

pub fn json_response(status: u16, body: &impl Serialize, mut headers: HeaderMap) -> ApiGatewayProxyResponse {
    let body = serde_json::to_string(body).unwrap_or_else(|_| r#"{"message":"Internal server error"}"#.into());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body));
    response
}

/// Every handler's frame: the caller from the claims, the handler's answer
/// or its error as a response, and one log line.
async fn answer(
    request: ApiGatewayProxyRequest,
    handler: impl AsyncFnOnce(Option<&Caller>, &ApiGatewayProxyRequest) -> Result<ApiGatewayProxyResponse, ApiError>,
) -> ApiGatewayProxyResponse {
    let started = Instant::now();
    let caller = Caller::from_request(&request);
    let response = handler(caller.as_ref(), &request).await.unwrap_or_else(ApiError::into_response);
    log_request(&request, &response, caller.as_ref(), started);
    response
}

/// The route a request is for, from its `httpMethod` and `resource` as API
/// Gateway sets them: one `function` serves, with a scope the caller holds.
fn route(function: Function, caller: &Caller, request: &ApiGatewayProxyRequest) -> Result<&'static Route, ApiError> {
    let route = request
        .resource
        .as_deref()
        .and_then(|resource| routes::find(&request.http_method, resource))
        .filter(|route| route.function == function)
        .ok_or_else(|| ApiError::new(405, "Method not allowed"))?;
    if !caller.has_scope(route.scope) {
        return Err(ApiError::forbidden());
    }
    Ok(route)
}

/// `POST /items` (the `post-item` function).
pub async fn post_item(service: &CreateItemService, request: ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
    answer(request, async |caller, request| create(service, caller, request).await).await
}

async fn create(
    service: &CreateItemService,
    caller: Option<&Caller>,
    request: &ApiGatewayProxyRequest,
) -> Result<ApiGatewayProxyResponse, ApiError> {
    let caller = caller.ok_or_else(ApiError::unauthorized)?;
    route(Function::PostItem, caller, request)?;
    let body = json_body(request)?;
    let command = CreateItem::from_json(&body).map_err(|e| ApiError::new(400, e.to_string()))?;
    let key = idempotency_key(&request.headers)?;
    let created = match &key {
        Some(key) => service.create_idempotent(&caller.subject, command, key).await,
        None => service.create(&caller.subject, command).await.map(Created::New),
    }
    .map_err(|error| match error {
        CreateError::Store(error) => ApiError::from(error),
        CreateError::KeyReused => ApiError::new(422, "Idempotency-Key was already used with a different request"),
        CreateError::Conflict(conflict) => {
            tracing::error!(%conflict, "new item's stream already existed");
            ApiError::new(500, "Internal server error")
        }
    })?;
    let item = created.item();
    match created {
        Created::New(_) => crate::metrics::count(crate::metrics::Counter::ItemsCreated, 1),
        Created::Repeated(_) => crate::metrics::count(crate::metrics::Counter::IdempotentRepeats, 1),
    }
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("{}/{}", collection_path(request), item.id)) {
        headers.insert(LOCATION, location);
    }
    if matches!(created, Created::Repeated(_)) {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(json_response(201, &Stored { message: "Item stored", item }, headers))
}

/// The request's `Idempotency-Key`, if any; 400 when malformed.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map_err(|_| InvalidIdempotencyKey)
            .and_then(IdempotencyKey::parse)
            .map(Some)
            .map_err(|e| ApiError::new(400, e.to_string())),
    }
}

/// A JSON body of at most [`MAX_BODY_BYTES`], with a JSON `Content-Type` if any.
fn json_body(request: &ApiGatewayProxyRequest) -> Result<Vec<u8>, ApiError> {
    check_content_type(&request.headers)?;
    let body = body_bytes(request)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(413, format!("Request body is larger than {MAX_BODY_BYTES} bytes")));
    }
    Ok(body)
}

/// `ETag: "<version>"`: what `If-Match` sends back.
fn etag(version: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{version}\"")).ok()
}

/// The classic response shape, `message` first.
#[derive(Serialize)]
struct Stored<'a> {
    message: &'static str,
    item: &'a items_domain::Item,
}

/// Content-Type may be absent (the classic clients send none); if present it must be JSON.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::new(415, "Content-Type must be application/json"))
    }
}

fn body_bytes(request: &ApiGatewayProxyRequest) -> Result<Vec<u8>, ApiError> {
    let body = request.body.as_deref().unwrap_or("");
    if request.is_base64_encoded {
        STANDARD.decode(body).map_err(|_| ApiError::new(400, "Request body is not valid base64"))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// `?limit`: 1 to [`MAX_PAGE_LIMIT`], or none.
fn page_limit(request: &ApiGatewayProxyRequest) -> Result<Option<u32>, ApiError> {
    match request.query_string_parameters.first("limit") {
        None => Ok(None),
        Some(text) => match text.parse::<u32>() {
            Ok(limit) if (1..=MAX_PAGE_LIMIT).contains(&limit) => Ok(Some(limit)),
            _ => Err(ApiError::new(400, format!("`limit` must be an integer from 1 to {MAX_PAGE_LIMIT}"))),
        },
    }
}

/// `Link: <path?limit=N&cursor=C>; rel="next"` when a page has a next one.
fn next_link(path: &str, limit: Option<u32>, next: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(next) = next {
        let limit = limit.map(|l| format!("limit={l}&")).unwrap_or_default();
        if let Ok(link) = HeaderValue::from_str(&format!("<{path}?{limit}cursor={next}>; rel=\"next\"")) {
            headers.insert(LINK, link);
        }
    }
    headers
}

/// The path of `/items` as the client called it (with the stage in AWS).
fn collection_path(request: &ApiGatewayProxyRequest) -> String {
    let path = request.request_context.path.as_deref().or(request.path.as_deref()).unwrap_or("/items");
    match path.find("/items") {
        Some(end) => format!("{}/items", &path[..end]),
        None => "/items".into(),
    }
}

/// `GET /items` and `GET /items/{id}` (the `get-items` function). A listing
/// stops reading in time to answer before `deadline`, the invocation's.
pub async fn get_items(
    service: &QueryService,
    request: ApiGatewayProxyRequest,
    deadline: Instant,
) -> ApiGatewayProxyResponse {
    answer(request, async |caller, request| read(service, caller, request, deadline).await).await
}

async fn read(
    service: &QueryService,
    caller: Option<&Caller>,
    request: &ApiGatewayProxyRequest,
    deadline: Instant,
) -> Result<ApiGatewayProxyResponse, ApiError> {
    let caller = caller.ok_or_else(ApiError::unauthorized)?;
    if route(Function::GetItems, caller, request)?.operation == Operation::GetItem {
        let not_found = || ApiError::new(404, "Item not found");
        let id = request.path_parameters.get("id").and_then(|id| ItemId::parse(id)).ok_or_else(not_found)?;
        let item = service.get(id).await.map_err(query_error)?.ok_or_else(not_found)?;
        let mut headers = HeaderMap::new();
        if let Some(etag) = etag(item.version) {
            headers.insert(ETAG, etag);
        }
        return Ok(json_response(200, &item, headers));
    }
    let limit = page_limit(request)?;
    let cursor = request.query_string_parameters.first("cursor");
    let listing = service.list(limit, cursor, Some(deadline)).await.map_err(query_error)?;
    let headers = next_link(&collection_path(request), limit, listing.next_cursor.as_deref());
    Ok(json_response(200, &listing.items, headers))
}

fn query_error(error: QueryError) -> ApiError {
    match error {
        QueryError::InvalidCursor => ApiError::new(400, "Invalid cursor"),
        QueryError::Store(error) => ApiError::from(error),
    }
}

/// One structured line per request.
fn log_request(
    request: &ApiGatewayProxyRequest,
    response: &ApiGatewayProxyResponse,
    caller: Option<&Caller>,
    started: Instant,
) {
    tracing::info!(
        request_id = request.request_context.request_id.as_deref().unwrap_or(""),
        route = format!("{} {}", request.http_method, request.resource.as_deref().unwrap_or("")),
        status = response.status_code,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        subject = caller.map_or("", |c| c.subject.as_str()),
        "request"
    );
}
