//! Verification of Cognito access tokens.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::{Map, Value};

use super::jwks::{JwksCache, JwksError};

#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Expected `iss`, matched exactly (`https://cognito-idp.<region>.amazonaws.com/<pool id>`).
    pub issuer: String,
    /// Where the signing keys are served. Separate from the issuer: a real
    /// pool serves them at `<iss>/.well-known/jwks.json`, local issuers elsewhere.
    pub jwks_url: String,
    /// Accepted `client_id`s; empty accepts any client of the pool.
    pub client_ids: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// An unknown `kid` refetches the JWKS at most this often.
    pub min_jwks_refresh: Duration,
    /// Fetched keys are used at most this long before the JWKS is fetched again.
    pub max_jwks_age: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed or invalid token: 401. The reason is for logs only.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The signing keys could not be fetched: 503.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

/// What a verified access token says about its bearer.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedClaims {
    pub subject: String,
    pub scopes: Vec<String>,
    pub claims: Map<String, Value>,
}

impl VerifiedClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The claims as API Gateway hands them to a Lambda: every value a string.
    pub fn gateway_claims(&self) -> Map<String, Value> {
        self.claims
            .iter()
            .map(|(name, value)| {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (name.clone(), Value::String(text))
            })
            .collect()
    }
}

pub struct AccessTokenVerifier {
    config: VerifierConfig,
    jwks: JwksCache,
    validation: Validation,
}

impl AccessTokenVerifier {
    pub fn new(config: VerifierConfig) -> Self {
        // The algorithm is ours, never the token header's.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // Access tokens carry no `aud`; `client_id` is checked below instead.
        validation.validate_aud = false;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let jwks = JwksCache::with_max_age(config.jwks_url.clone(), config.min_jwks_refresh, config.max_jwks_age);
        Self { config, jwks, validation }
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    pub async fn verify(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        let invalid = |reason: &str| AuthError::Invalid(reason.to_owned());
        let header = decode_header(token).map_err(|_| invalid("malformed header"))?;
        if header.alg != Algorithm::RS256 {
            return Err(invalid("algorithm is not RS256"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no kid"))?;
        let key = self.jwks.key(&kid).await.map_err(|error| match error {
            JwksError::UnknownKey => invalid("unknown kid"),
            JwksError::Unavailable(reason) => AuthError::KeysUnavailable(reason),
        })?;
        let data = decode::<Map<String, Value>>(token, &key, &self.validation)
            .map_err(|error| AuthError::Invalid(error.to_string()))?;
        let claims = data.claims;

        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("token_use") != Some("access") {
            return Err(invalid("not an access token"));
        }
        if !self.config.client_ids.is_empty() {
            let client_id = text("client_id").ok_or_else(|| invalid("no client_id"))?;
            if !self.config.client_ids.iter().any(|allowed| allowed == client_id) {
                return Err(invalid("client_id not allowed"));
            }
        }
        let issued_at = claims.get("iat").and_then(Value::as_u64).ok_or_else(|| invalid("no iat"))?;
        let now = jsonwebtoken::get_current_timestamp();
        if issued_at > now + self.config.leeway.as_secs() {
            return Err(invalid("issued in the future"));
        }
        let subject = text("sub").filter(|s| !s.is_empty()).ok_or_else(|| invalid("no sub"))?.to_owned();
        let scopes: Vec<String> = text("scope")
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        Ok(VerifiedClaims { subject, scopes, claims })
    }
}
