//! What handlers answer: JSON bodies, client-facing errors, `ETag` and `Link`.

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderValue, LINK};
use items_domain::ports::StoreError;
use serde::Serialize;

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

    /// No such item (or not a UUID: no item has that id), or a deleted one.
    pub fn not_found() -> Self {
        Self::new(404, "Item not found")
    }

    pub fn into_response(self) -> ApiGatewayProxyResponse {
        let body = match self.current_version {
            Some(version) => serde_json::json!({ "message": self.message, "currentVersion": version }),
            None => serde_json::json!({ "message": self.message }),
        };
        json_response(self.status, &body, HeaderMap::new())
    }
}

impl From<crate::limits::GatewayAnswer> for ApiError {
    fn from(answer: crate::limits::GatewayAnswer) -> Self {
        Self::new(answer.status, answer.message)
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

/// `ETag: "<version>"`: what `If-Match` sends back.
pub(super) fn etag(version: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{version}\"")).ok()
}

/// `Link: <path?query&limit=N&cursor=C>; rel="next"` when a page has a next
/// one: the same `query` (such as `createdBy`) and limit, form-encoded.
pub(super) fn next_link(path: &str, query: &[(&str, &str)], limit: Option<u32>, next: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(next) = next {
        let mut target = form_urlencoded::Serializer::new(String::new());
        target.extend_pairs(query);
        if let Some(limit) = limit {
            target.append_pair("limit", &limit.to_string());
        }
        target.append_pair("cursor", next);
        if let Ok(link) = HeaderValue::from_str(&format!("<{path}?{}>; rel=\"next\"", target.finish())) {
            headers.insert(LINK, link);
        }
    }
    headers
}

/// A body the command rules refuse: 400 with the rule's message.
impl From<items_domain::ValidationError> for ApiError {
    fn from(error: items_domain::ValidationError) -> Self {
        ApiError::new(400, error.to_string())
    }
}
