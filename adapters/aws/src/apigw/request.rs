//! What handlers read from a request: the JSON body, `Idempotency-Key`,
//! `?limit`, and the path as the client called it.

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use items_domain::idempotency::{IdempotencyKey, InvalidIdempotencyKey};

use super::{ApiError, IDEMPOTENCY_KEY, MAX_BODY_BYTES, MAX_PAGE_LIMIT};

/// The request's `Idempotency-Key`, if any; 400 when malformed.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
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
pub(super) fn json_body(request: &ApiGatewayProxyRequest) -> Result<Vec<u8>, ApiError> {
    check_content_type(&request.headers)?;
    let body = body_bytes(request)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(413, format!("Request body is larger than {MAX_BODY_BYTES} bytes")));
    }
    Ok(body)
}

/// Content-Type may be absent (the classic clients send none); if present it must be JSON.
pub(super) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
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

pub(super) fn body_bytes(request: &ApiGatewayProxyRequest) -> Result<Vec<u8>, ApiError> {
    let body = request.body.as_deref().unwrap_or("");
    if request.is_base64_encoded {
        STANDARD.decode(body).map_err(|_| ApiError::new(400, "Request body is not valid base64"))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// `?limit`: 1 to [`MAX_PAGE_LIMIT`], or none.
pub(super) fn page_limit(request: &ApiGatewayProxyRequest) -> Result<Option<u32>, ApiError> {
    match request.query_string_parameters.first("limit") {
        None => Ok(None),
        Some(text) => match text.parse::<u32>() {
            Ok(limit) if (1..=MAX_PAGE_LIMIT).contains(&limit) => Ok(Some(limit)),
            _ => Err(ApiError::new(400, format!("`limit` must be an integer from 1 to {MAX_PAGE_LIMIT}"))),
        },
    }
}

/// The path of `/items` as the client called it (with the stage in AWS).
pub(super) fn collection_path(request: &ApiGatewayProxyRequest) -> String {
    let path = request.request_context.path.as_deref().or(request.path.as_deref()).unwrap_or("/items");
    match path.find("/items") {
        Some(end) => format!("{}/items", &path[..end]),
        None => "/items".into(),
    }
}
