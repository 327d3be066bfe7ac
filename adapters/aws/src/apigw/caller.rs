//! The caller, as API Gateway's Cognito authorizer describes it in the proxy event.

use aws_lambda_events::apigw::ApiGatewayProxyRequest;

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
