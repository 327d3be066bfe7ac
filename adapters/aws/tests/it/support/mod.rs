//! Reading handler responses, and an invocation's deadline, for the handler tests.

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use serde_json::Value;

pub fn body_json(response: &ApiGatewayProxyResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

pub fn header<'a>(response: &'a ApiGatewayProxyResponse, name: &str) -> Option<&'a str> {
    response.headers.get(name).and_then(|v| v.to_str().ok())
}

/// An invocation's deadline: the functions' timeout from now.
pub fn deadline() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(10)
}
