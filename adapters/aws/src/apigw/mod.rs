//! The API handlers: API Gateway REST proxy events in and out. The Lambdas run
//! them and so does the local gateway, so local behaviour is production behaviour.
//!
//! API Gateway has already verified the caller's access token and its scopes;
//! the handlers read the caller from `requestContext.authorizer.claims` and
//! check the scope again, so a gateway misconfiguration cannot open a method.

mod caller;
mod commands;
mod create;
mod query;
mod request;
mod response;

use std::time::Instant;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};

use crate::routes::{self, Function, Route};
use request::{collection_path, idempotency_key, json_body, page_limit};
use response::{etag, next_link};

pub use caller::{Caller, groups_claim};
pub use commands::{ItemCommands, item_commands};
pub use create::post_item;
pub use query::{CREATED_BY_ME, ItemQueries, get_items};
pub use response::{ApiError, json_response};

/// Largest accepted `POST` and `PATCH` body. Every valid body fits: its
/// fields at their limits (256 + 64 + 2,000 characters), each character
/// sent as the longest JSON escape (12 bytes, a surrogate pair) is under
/// 28 KB; the rest leaves room for fields this code ignores.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest `?limit`.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// Request header that makes `POST /items` idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Response header on a repeated idempotent response (value `true`; the name Stripe uses on the wire).
pub const REPEAT_HEADER: &str = "idempotent-replayed";

/// Every handler's frame: the caller from the claims (401 without), the
/// route `function` serves with a scope the caller holds (405, 403), the
/// handler's answer or its error as a response, and one log line.
async fn answer(
    function: Function,
    request: ApiGatewayProxyRequest,
    handler: impl AsyncFnOnce(&Caller, Route, &ApiGatewayProxyRequest) -> Result<ApiGatewayProxyResponse, ApiError>,
) -> ApiGatewayProxyResponse {
    let started = Instant::now();
    let caller = Caller::from_request(&request);
    let routed = caller.as_ref().ok_or_else(ApiError::unauthorized).and_then(|caller| {
        let route = route(function, caller, &request)?;
        Ok((caller, route))
    });
    let response = match routed {
        Ok((caller, route)) => handler(caller, *route, &request).await.unwrap_or_else(ApiError::into_response),
        Err(error) => error.into_response(),
    };
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
