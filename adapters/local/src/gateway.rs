//! A local API Gateway (REST, Lambda proxy, Cognito authorizer) in front of the
//! same handler functions the Lambdas run.
//!
//! Per request, in API Gateway's order: match the resource and method, verify
//! the access token (401), check the method's scope (403), map the HTTP request
//! to the proxy event with the claims in `requestContext.authorizer.claims`, call
//! the function, map its proxy response back to HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body as LambdaBody;
use aws_lambda_events::query_map::QueryMap;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use items_aws::apigw::{self, ApiError, ItemCommands};
use items_aws::limits::{
    BAD_GATEWAY, LAMBDA_RESPONSE_MAX_BYTES, PAYLOAD_TOO_LARGE, REQUEST_PAYLOAD_MAX_BYTES, TIMED_OUT,
};
use items_aws::response_headers::{self, CorsPolicy};
use items_aws::routes::{self, Function, Route};
use items_domain::service::CreateItemService;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::dev_idp::DevIdentityProvider;
use crate::auth::{AccessTokenVerifier, AuthError};

/// Time a client has to send the whole body once the head is in.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Path of the development identity provider's JWKS on this server.
pub const DEV_JWKS_PATH: &str = "/dev-idp/.well-known/jwks.json";
pub const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

/// The functions behind the API, one per Lambda.
pub struct Functions {
    pub post_item: Arc<CreateItemService>,
    pub get_items: Arc<apigw::ItemQueries>,
    pub item_commands: Arc<ItemCommands>,
}

pub struct GatewayConfig {
    pub verifier: Arc<AccessTokenVerifier>,
    pub functions: Functions,
    /// Serves the development identity provider's JWKS when set.
    pub dev_idp: Option<Arc<DevIdentityProvider>>,
    /// Origins allowed by CORS, as the Lambdas' `CORS_ALLOWED_ORIGINS`.
    pub cors: CorsPolicy,
    /// Integration timeout, as API Gateway's (it answers 504 past it).
    pub function_timeout: Duration,
    /// `GET /metrics` for every client; otherwise for this machine's only
    /// (`items serve --public-metrics`).
    pub public_metrics: bool,
    /// Request body bytes held at once across every connection.
    pub buffered: Arc<BodyBudget>,
}

/// What the gateway holds of request bodies at once, across connections:
/// each may be API Gateway's 10 MiB, so a few clients could otherwise make
/// the server hold gigabytes.
pub const MAX_BUFFERED_BYTES: usize = 64 << 20;

/// Request body bytes the gateway may hold at once, in all and per client.
///
/// Room is taken for what arrives, as it arrives, never for what a head
/// declares: a request without a body holds nothing, and a client that
/// declares 10 MiB and sends nothing holds nothing (security review N1:
/// seven such heads used to stall every other client). Room is never
/// waited for, so nothing queues behind a large body: a body that does
/// not fit is answered `503` at once. One client (address) may hold at
/// most a quarter of the budget (room for API Gateway's largest body),
/// so it cannot take all of it.
pub struct BodyBudget {
    room: tokio::sync::Semaphore,
    per_client: usize,
    held: std::sync::Mutex<HashMap<std::net::IpAddr, usize>>,
}

/// A budget of `bytes` of request bodies held at once.
pub fn body_budget(bytes: usize) -> Arc<BodyBudget> {
    let bytes = bytes.min(tokio::sync::Semaphore::MAX_PERMITS);
    Arc::new(BodyBudget {
        room: tokio::sync::Semaphore::new(bytes),
        per_client: (bytes / 4).max(REQUEST_PAYLOAD_MAX_BYTES.min(bytes)),
        held: std::sync::Mutex::new(HashMap::new()),
    })
}

/// What one request holds of the budget: given back when it is dropped
/// (once the function has answered, since the body lives in its event).
struct Held<'a> {
    budget: &'a BodyBudget,
    client: Option<std::net::IpAddr>,
    bytes: usize,
    permits: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl<'a> Held<'a> {
    fn new(budget: &'a BodyBudget, client: Option<std::net::IpAddr>) -> Self {
        Self { budget, client, bytes: 0, permits: None }
    }

    /// Room for `bytes` more, if the client's share and the budget have it now.
    fn take(&mut self, bytes: usize) -> bool {
        let Ok(more) = u32::try_from(bytes) else { return false };
        if more == 0 {
            return true;
        }
        let mut held = self.budget.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let client = self.client.map(|client| held.entry(client).or_default());
        if client.as_ref().is_some_and(|client| **client + bytes > self.budget.per_client) {
            return false;
        }
        let Ok(permit) = self.budget.room.try_acquire_many(more) else { return false };
        match &mut self.permits {
            Some(permits) => permits.merge(permit),
            None => self.permits = Some(permit),
        }
        if let Some(client) = client {
            *client += bytes;
        }
        self.bytes += bytes;
        true
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.filter(|_| self.bytes > 0) else { return };
        let mut held = self.budget.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bytes) = held.get_mut(&client) {
            *bytes = bytes.saturating_sub(self.bytes);
            if *bytes == 0 {
                held.remove(&client);
            }
        }
    }
}

/// A request matched to a route of the table, as API Gateway matches it.
struct Matched {
    route: &'static Route,
    path_parameters: HashMap<String, String>,
}

/// Matches a path and method to a route: 404 for an unknown path, 405 (with
/// `Allow`) for a method the resource does not have.
fn route(method: &Method, path: &str) -> Result<Matched, ApiError> {
    let (resource, id) = routes::resource(path).ok_or_else(|| ApiError::new(404, "Not found"))?;
    let route = routes::find(method, resource).ok_or_else(|| ApiError::new(405, "Method not allowed"))?;
    let path_parameters = id.map(|id| ("id".to_owned(), id.to_owned())).into_iter().collect();
    Ok(Matched { route, path_parameters })
}

/// The token from `Authorization: <token>` (as the classic clients send it) or
/// `Authorization: Bearer <token>` (any case, any spacing).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let token = match value.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None => value,
    };
    (!token.is_empty()).then_some(token)
}

pub fn router(config: GatewayConfig) -> Router {
    let state = Arc::new(config);
    let mut router = Router::new();
    if state.dev_idp.is_some() {
        router = router.route(DEV_JWKS_PATH, get(dev_jwks));
    }
    router = router.route(METRICS_PATH, get(metrics));
    router.fallback(handle).with_state(state)
}

/// The functions' counters (the ones the Lambdas send as EMF), in Prometheus text.
pub const METRICS_PATH: &str = "/metrics";

/// The counters show what everyone does as it happens: a client on another
/// machine (`--addr 0.0.0.0`) gets the unknown route's 404 unless asked for.
async fn metrics(State(gateway): State<Arc<GatewayConfig>>, request: Request) -> Response {
    let peer = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let local = peer.is_some_and(|ip| ip.to_canonical().is_loopback());
    let mut response = if gateway.public_metrics || local {
        let mut response = items_aws::metrics::prometheus_text().into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
        response
    } else {
        proxy_to_http(ApiError::new(404, "Not found").into_response())
    };
    response_headers::decorate(response.headers_mut(), None, &gateway.cors);
    response
}

async fn dev_jwks(State(gateway): State<Arc<GatewayConfig>>) -> Response {
    match &gateway.dev_idp {
        Some(idp) => axum::Json(idp.jwks()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn handle(State(gateway): State<Arc<GatewayConfig>>, request: Request) -> Response {
    let request_id = Uuid::new_v4().to_string();
    let origin = response_headers::origin(request.headers()).map(str::to_owned);
    let path = request.uri().path().to_owned();
    let mut response = if request.method() == Method::OPTIONS {
        preflight(&path)
    } else {
        match invoke(&gateway, request, &request_id).await {
            Ok(response) => response,
            Err(error) => {
                let status = error.status;
                let mut response = proxy_to_http(error.into_response());
                if let (405, Some((resource, _))) = (status, routes::resource(&path)) {
                    insert(response.headers_mut(), header::ALLOW, &routes::allowed_methods(resource));
                }
                response
            }
        }
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), id);
    }
    response_headers::decorate(response.headers_mut(), origin.as_deref(), &gateway.cors);
    response
}

fn preflight(path: &str) -> Response {
    let Some((resource, _)) = routes::resource(path) else {
        return proxy_to_http(ApiError::new(404, "Not found").into_response());
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    let methods = routes::allowed_methods(resource);
    insert(headers, header::ALLOW, &methods);
    insert(headers, header::ACCESS_CONTROL_ALLOW_METHODS, &methods);
    insert(headers, header::ACCESS_CONTROL_ALLOW_HEADERS, &routes::ALLOW_HEADERS.join(", "));
    insert(headers, header::ACCESS_CONTROL_MAX_AGE, &routes::PREFLIGHT_MAX_AGE.to_string());
    response
}

/// Header values made from the route table, which holds only visible ASCII.
fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

async fn invoke(gateway: &GatewayConfig, request: Request, request_id: &str) -> Result<Response, ApiError> {
    let matched = route(request.method(), request.uri().path())?;
    let token = bearer_token(request.headers()).ok_or_else(ApiError::unauthorized)?;
    let claims = match gateway.verifier.verify(token).await {
        Ok(claims) => claims,
        Err(AuthError::Invalid(reason)) => {
            // The reason, never the token.
            tracing::info!(request_id, %reason, "rejected token");
            return Err(ApiError::unauthorized());
        }
        Err(AuthError::KeysUnavailable(reason)) => {
            tracing::error!(request_id, %reason, "cannot verify tokens: JWKS unavailable");
            return Err(ApiError::new(503, "Service unavailable, please retry"));
        }
    };
    if !claims.has_scope(matched.route.scope) {
        return Err(ApiError::forbidden());
    }
    let client = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let holder = client.map(crate::server::client_key);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or_default();
    if declared > REQUEST_PAYLOAD_MAX_BYTES {
        return Err(PAYLOAD_TOO_LARGE.into());
    }
    // Held until the function answers: the body lives in its event.
    let mut held = Held::new(&gateway.buffered, holder);
    let event = proxy_request(request, &matched, claims.gateway_claims(), request_id, client, &mut held).await?;
    // The invocation's deadline, as Lambda gives it to the function.
    let deadline = std::time::Instant::now() + gateway.function_timeout;
    let call = async {
        match matched.route.function {
            Function::PostItem => apigw::post_item(&gateway.functions.post_item, event).await,
            Function::GetItems => apigw::get_items(&gateway.functions.get_items, event, deadline).await,
            Function::ItemCommands => apigw::item_commands(&gateway.functions.item_commands, event).await,
        }
    };
    match tokio::time::timeout(gateway.function_timeout, call).await {
        Ok(response) if within_lambda_limit(&response) => Ok(proxy_to_http(response)),
        Ok(_) => {
            tracing::error!(request_id, "function response over Lambda's {LAMBDA_RESPONSE_MAX_BYTES}-byte limit");
            Err(BAD_GATEWAY.into())
        }
        Err(_) => Err(TIMED_OUT.into()),
    }
}

/// Reads a body of at most API Gateway's limit, taking room in the budget
/// for each piece as it arrives.
async fn read_body(body: Body, held: &mut Held<'_>, request_id: &str) -> Result<axum::body::Bytes, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|_| ApiError::new(400, "Request body could not be read"))?;
        if collected.len() + piece.len() > REQUEST_PAYLOAD_MAX_BYTES {
            return Err(PAYLOAD_TOO_LARGE.into());
        }
        if !held.take(piece.len()) {
            tracing::warn!(request_id, held = held.bytes, "request bodies held at once are at their bound");
            return Err(ApiError::new(503, "Service unavailable, please retry"));
        }
        collected.extend_from_slice(&piece);
    }
    Ok(collected.into())
}

/// Whether Lambda would return `response`: its JSON payload is within the
/// synchronous invocation limit. Serialized only when it might not be.
fn within_lambda_limit(response: &ApiGatewayProxyResponse) -> bool {
    let body = match &response.body {
        Some(LambdaBody::Text(text)) => text.len(),
        Some(LambdaBody::Binary(bytes)) => bytes.len(),
        _ => 0,
    };
    // Escaping at most doubles a JSON body; 64 KiB covers headers and envelope.
    if body * 2 + 64 * 1024 < LAMBDA_RESPONSE_MAX_BYTES {
        return true;
    }
    serde_json::to_vec(response).is_ok_and(|payload| payload.len() <= LAMBDA_RESPONSE_MAX_BYTES)
}

/// The Lambda proxy event API Gateway would send for this request.
async fn proxy_request(
    request: Request,
    matched: &Matched,
    claims: serde_json::Map<String, Value>,
    request_id: &str,
    client: Option<std::net::IpAddr>,
    held: &mut Held<'_>,
) -> Result<ApiGatewayProxyRequest, ApiError> {
    let source_ip = client.map(|ip| ip.to_string());
    let (parts, body) = request.into_parts();
    let body = tokio::time::timeout(BODY_READ_TIMEOUT, read_body(body, held, request_id))
        .await
        .map_err(|_| ApiError::new(408, "Request body was not received in time"))??;

    let mut single: HashMap<String, String> = HashMap::new();
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        single.insert(name.to_string(), value.to_string());
        multi.entry(name.to_string()).or_default().push(value.to_string());
    }
    let mut multi_value_headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        multi_value_headers.append(name.clone(), value.clone());
    }

    let mut event = ApiGatewayProxyRequest::default();
    event.resource = Some(matched.route.resource.to_owned());
    event.path = Some(parts.uri.path().to_owned());
    event.http_method = parts.method.clone();
    event.headers = parts.headers;
    event.multi_value_headers = multi_value_headers;
    event.query_string_parameters = QueryMap::from(single);
    event.multi_value_query_string_parameters = QueryMap::from(multi);
    event.path_parameters = matched.path_parameters.clone();
    if !body.is_empty() {
        match std::str::from_utf8(&body) {
            Ok(text) => event.body = Some(text.to_owned()),
            Err(_) => {
                event.body = Some(STANDARD.encode(&body));
                event.is_base64_encoded = true;
            }
        }
    }
    let context = &mut event.request_context;
    context.request_id = Some(request_id.to_owned());
    context.stage = Some("local".into());
    context.resource_path = Some(matched.route.resource.to_owned());
    context.path = Some(parts.uri.path().to_owned());
    context.http_method = parts.method;
    context.protocol = Some("HTTP/1.1".into());
    context.request_time_epoch = chrono::Utc::now().timestamp_millis();
    context.identity.source_ip = source_ip;
    context.authorizer.fields.insert("claims".into(), Value::Object(claims));
    Ok(event)
}

fn proxy_to_http(proxy: ApiGatewayProxyResponse) -> Response {
    let status = u16::try_from(proxy.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match proxy.body {
        Some(LambdaBody::Text(text)) => Body::from(text),
        Some(LambdaBody::Binary(bytes)) => Body::from(bytes),
        _ => Body::empty(),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in &proxy.multi_value_headers {
        headers.append(name.clone(), value.clone());
    }
    for (name, value) in &proxy.headers {
        headers.insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each client's share is its own: one past it is refused, another
    /// still takes room; room comes back when a request is done.
    #[test]
    fn one_clients_share_does_not_take_anothers() {
        let budget = body_budget(64 << 20);
        let (one, other) = (Some("192.0.2.1".parse().unwrap()), Some("198.51.100.7".parse().unwrap()));
        let mut first = Held::new(&budget, one);
        assert!(first.take(10 << 20));
        let mut second = Held::new(&budget, one);
        assert!(!second.take(7 << 20), "past its 16 MiB share");
        let mut elsewhere = Held::new(&budget, other);
        assert!(elsewhere.take(10 << 20), "another client's room");
        drop((first, second));
        let mut again = Held::new(&budget, one);
        assert!(again.take(15 << 20), "given back once answered");
        assert!(!Held::new(&budget, None).take(40 << 20), "never more than the whole");
    }
}
