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

/// `cognito:groups` in the forms it reaches a handler: a JSON array (a
/// direct invocation) or one string of names separated by commas (what a REST
/// API's Cognito authorizer is reported to pass, every claim a string; AWS
/// does not document the form, docs/architecture.md; the local gateway
/// passes the same). Only names of letters, digits, `-` and `_` (the groups
/// this stack creates) are read: a claim with any other character is refused
/// whole and logged, so no other encoding (`["items-admins"]`, `[a b]`) can
/// read as a group. A comma in a group name cannot be told from two names:
/// the pool must not have such groups (docs/deploy.md).
pub fn groups_claim(value: &serde_json::Value) -> Vec<String> {
    let names: Vec<&str> = match value {
        serde_json::Value::Array(groups) => groups.iter().map(|g| g.as_str().unwrap_or("\u{0}")).collect(),
        serde_json::Value::String(text) if text.is_empty() => Vec::new(),
        serde_json::Value::String(text) => text.split(',').map(str::trim).collect(),
        _ => vec!["\u{0}"],
    };
    let plain =
        |name: &&str| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !names.iter().all(plain) {
        tracing::warn!(claim = %value, "cognito:groups in a form this API does not read: no groups taken from it");
        return Vec::new();
    }
    names.into_iter().map(str::to_owned).collect()
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
