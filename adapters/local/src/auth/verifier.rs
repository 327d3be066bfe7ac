//! Verification of Cognito access tokens, with a cache of tokens already
//! verified: an RS256 check is most of a local request's cost, and a client
//! sends the same token for an hour.
//!
//! The cache is bounded, keyed by the token's SHA-256 (never the token), and
//! a hit is used only before the token's `exp` and while its signing key is
//! still in the (fresh) JWKS. It caches who the bearer is, not what they may
//! do: the gateway checks the route's scope on every request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
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
    /// Verified tokens remembered at most; 0 verifies every request.
    pub cached_tokens: usize,
}

/// Enough for every token of a busy team; each entry is about 2 KiB.
pub const DEFAULT_CACHED_TOKENS: usize = 4096;

impl VerifierConfig {
    /// Trusting `issuer`, whose keys are at `jwks_url` (a Cognito pool's
    /// `<iss>/.well-known/jwks.json`): keys refetched at most every 30 s.
    pub fn issuer(issuer: impl Into<String>, jwks_url: impl Into<String>, client_ids: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_url: jwks_url.into(),
            client_ids,
            leeway: Duration::from_secs(60),
            min_jwks_refresh: Duration::from_secs(30),
            max_jwks_age: crate::auth::jwks::DEFAULT_MAX_KEY_AGE,
            cached_tokens: DEFAULT_CACHED_TOKENS,
        }
    }

    /// Trusting the development identity provider served at `jwks_url`: its
    /// keys change when its data dir does, so they are refetched sooner.
    pub fn development(issuer: impl Into<String>, jwks_url: impl Into<String>, client_ids: Vec<String>) -> Self {
        Self { min_jwks_refresh: Duration::from_secs(5), ..Self::issuer(issuer, jwks_url, client_ids) }
    }

    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
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
    /// `claims` as API Gateway hands them to a Lambda, made once per token.
    gateway: Map<String, Value>,
}

impl VerifiedClaims {
    pub fn new(subject: String, scopes: Vec<String>, claims: Map<String, Value>) -> Self {
        let gateway = claims
            .iter()
            .map(|(name, value)| {
                let text = match value {
                    Value::String(text) => text.clone(),
                    // A list (`cognito:groups`) as the REST authorizer is
                    // reported to pass it: names joined by commas.
                    Value::Array(items) if items.iter().all(Value::is_string) => {
                        items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
                    }
                    other => other.to_string(),
                };
                (name.clone(), Value::String(text))
            })
            .collect();
        Self { subject, scopes, claims, gateway }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The claims as API Gateway hands them to a Lambda: every value a string.
    pub fn gateway_claims(&self) -> Map<String, Value> {
        self.gateway.clone()
    }
}

/// A token verified earlier.
struct Verified {
    claims: Arc<VerifiedClaims>,
    kid: String,
    /// The token's `exp` (Unix seconds): no use at or after it, leeway or not.
    expires_at: u64,
}

type TokenDigest = [u8; 32];

/// Verified tokens by digest, at most `capacity`.
struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<TokenDigest, Verified>>,
}

impl TokenCache {
    fn digest(token: &str) -> TokenDigest {
        let mut out = [0u8; 32];
        out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref());
        out
    }

    /// The claims and key id of a cached token still before its `exp`.
    fn get(&self, digest: &TokenDigest, now: u64) -> Option<(Arc<VerifiedClaims>, String)> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(digest) {
            Some(hit) if now < hit.expires_at => Some((hit.claims.clone(), hit.kid.clone())),
            Some(_) => {
                entries.remove(digest);
                None
            }
            None => None,
        }
    }

    fn insert(&self, digest: TokenDigest, verified: Verified, now: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, entry| now < entry.expires_at);
        }
        if entries.len() >= self.capacity {
            // Still full of live tokens: start over rather than track recency
            // on every hit; the next requests verify once more.
            entries.clear();
        }
        entries.insert(digest, verified);
    }

    fn forget(&self, digest: &TokenDigest) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(digest);
    }

    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

pub struct AccessTokenVerifier {
    config: VerifierConfig,
    jwks: JwksCache,
    validation: Validation,
    verified: TokenCache,
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
        let verified = TokenCache { capacity: config.cached_tokens, entries: Mutex::default() };
        Self { config, jwks, validation, verified }
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Starts with `jwks`'s keys as if just fetched: the development identity
    /// provider's own, known in the process. Its first requests then need
    /// no fetch from the server itself, which a flood of connections could
    /// hold back (every connection slot waiting on the fetch's answer).
    pub fn with_keys(mut self, jwks: &Value) -> Self {
        if let Ok(set) = serde_json::from_value(jwks.clone()) {
            self.jwks.seed(&set);
        }
        self
    }

    /// Tokens in the verified-token cache now.
    pub fn cached_tokens(&self) -> usize {
        self.verified.len()
    }

    /// Verifies an access token, or finds it verified earlier with a key the
    /// JWKS still has.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedClaims>, AuthError> {
        let digest = TokenCache::digest(token);
        let now = jsonwebtoken::get_current_timestamp();
        if let Some((claims, kid)) = self.verified.get(&digest, now) {
            // Fetches the JWKS again when it is past its age, like a miss.
            match self.jwks.key(&kid).await {
                Ok(_) => return Ok(claims),
                Err(JwksError::UnknownKey) => {
                    self.verified.forget(&digest);
                    return Err(AuthError::Invalid("signing key no longer in the JWKS".to_owned()));
                }
                Err(JwksError::Unavailable(reason)) => return Err(AuthError::KeysUnavailable(reason)),
            }
        }
        let (claims, kid, expires_at) = self.verify_signature(token).await?;
        let claims = Arc::new(claims);
        self.verified.insert(digest, Verified { claims: claims.clone(), kid, expires_at }, now);
        Ok(claims)
    }

    /// The full check: signature, then claims. Also returns the key id and `exp`.
    async fn verify_signature(&self, token: &str) -> Result<(VerifiedClaims, String, u64), AuthError> {
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
        let expires_at = claims.get("exp").and_then(Value::as_u64).ok_or_else(|| invalid("no exp"))?;
        Ok((VerifiedClaims::new(subject, scopes, claims), kid, expires_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(subject: &str, expires_at: u64) -> Verified {
        let claims = VerifiedClaims::new(subject.to_owned(), Vec::new(), Map::new());
        Verified { claims: Arc::new(claims), kid: "key-1".to_owned(), expires_at }
    }

    fn cache(capacity: usize) -> TokenCache {
        TokenCache { capacity, entries: Mutex::default() }
    }

    #[test]
    fn a_cached_token_is_used_until_its_exp_and_never_at_or_after_it() {
        let cache = cache(8);
        let digest = TokenCache::digest("token");
        cache.insert(digest, verified("alice", 1_000), 900);
        assert_eq!(
            cache.get(&digest, 999).map(|(c, kid)| (c.subject.clone(), kid)),
            Some(("alice".into(), "key-1".into()))
        );
        assert!(cache.get(&digest, 1_000).is_none(), "no leeway on a hit");
        assert_eq!(cache.len(), 0, "an expired entry is dropped when met");
    }

    #[test]
    fn tokens_are_keyed_by_their_digest_not_kept() {
        let cache = cache(8);
        cache.insert(TokenCache::digest("header.payload.signature"), verified("alice", 1_000), 0);
        assert!(cache.get(&TokenCache::digest("header.payload.signaturf"), 1).is_none());
        let entries = cache.entries.lock().unwrap();
        assert!(entries.keys().all(|digest| digest.len() == 32));
    }

    #[test]
    fn the_cache_stays_within_its_capacity_dropping_expired_tokens_first() {
        let cache = cache(3);
        cache.insert(TokenCache::digest("old"), verified("old", 10), 0);
        cache.insert(TokenCache::digest("a"), verified("a", 1_000), 0);
        cache.insert(TokenCache::digest("b"), verified("b", 1_000), 0);
        cache.insert(TokenCache::digest("c"), verified("c", 1_000), 20);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&TokenCache::digest("a"), 20).is_some(), "live tokens kept while expired ones go");
        for n in 0..100 {
            cache.insert(TokenCache::digest(&n.to_string()), verified("n", 1_000), 20);
            assert!(cache.len() <= 3);
        }
    }

    #[test]
    fn a_capacity_of_zero_caches_nothing() {
        let cache = cache(0);
        cache.insert(TokenCache::digest("t"), verified("alice", 1_000), 0);
        assert_eq!(cache.len(), 0);
    }
}
