//! A JWKS fetched over HTTP(S) and cached by `kid`.
//!
//! An unknown `kid` triggers a refresh at most once per `min_refresh_interval`,
//! so forged kids cannot cause a fetch storm, and a rotated key is picked up
//! without a restart. Keys older than `max_age` are fetched again before use,
//! so a key removed from the issuer's JWKS stops verifying within that time
//! (while the endpoint is down, the cached keys keep working). Redirects are
//! never followed, and a JWKS that is not on this machine must be HTTPS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use tokio::sync::{Mutex, RwLock};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// No key with this id, and the JWKS was fetched recently or just now.
    #[error("unknown key id")]
    UnknownKey,
    /// The JWKS could not be fetched, so the key id cannot be checked.
    #[error("JWKS unavailable: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// When `keys` were fetched.
    fetched: Option<Instant>,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// How long fetched keys are used before the JWKS is fetched again.
pub const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_secs(15 * 60);

pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    min_refresh_interval: Duration,
    max_age: Duration,
    cache: RwLock<Cache>,
    refreshing: Mutex<()>,
}

/// A JWKS URL this cache will fetch: HTTPS, or plain HTTP on this machine
/// (the development identity provider, test servers).
pub fn check_jwks_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("JWKS URL {url}: {e}"))?;
    let local = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if local => Ok(()),
        _ => Err(format!("JWKS URL {url} must be https (plain http only on this machine)")),
    }
}

impl JwksCache {
    pub fn new(url: impl Into<String>, min_refresh_interval: Duration) -> Self {
        Self::with_max_age(url, min_refresh_interval, DEFAULT_MAX_KEY_AGE)
    }

    pub fn with_max_age(url: impl Into<String>, min_refresh_interval: Duration, max_age: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            // A JWKS that moved is an error to look at, not a place to follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            url: url.into(),
            http,
            min_refresh_interval,
            max_age,
            cache: RwLock::default(),
            refreshing: Mutex::new(()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Starts with `set`'s keys, as if fetched now.
    pub fn seed(&mut self, set: &JwkSet) {
        let cache = self.cache.get_mut();
        cache.keys = rsa_signing_keys(set);
        cache.fetched = Some(Instant::now());
        cache.last_attempt = cache.fetched;
    }

    /// The key for `kid`, fetching the JWKS if the key is not cached and the
    /// last fetch is older than the refresh interval.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, JwksError> {
        {
            let cache = self.cache.read().await;
            if let Some(key) = cache.keys.get(kid)
                && self.fresh(&cache)
            {
                return Ok(key.clone());
            }
        }
        // One refresh at a time; whoever waited re-checks what it fetched.
        let _refreshing = self.refreshing.lock().await;
        {
            let cache = self.cache.read().await;
            let cached = cache.keys.get(kid);
            if let Some(key) = cached
                && self.fresh(&cache)
            {
                return Ok(key.clone());
            }
            if cache.last_attempt.is_some_and(|at| at.elapsed() < self.min_refresh_interval) {
                // Fetched (or tried) a moment ago: an old key stays usable
                // until a fetch succeeds; an unknown one is unknown.
                return match (cached, &cache.last_error) {
                    (Some(key), _) => Ok(key.clone()),
                    (None, Some(error)) => Err(JwksError::Unavailable(error.clone())),
                    (None, None) => Err(JwksError::UnknownKey),
                };
            }
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.last_attempt = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched JWKS");
                cache.keys = keys;
                cache.fetched = cache.last_attempt;
                cache.last_error = None;
                cache.keys.get(kid).cloned().ok_or(JwksError::UnknownKey)
            }
            Err(error) => {
                // Keys already cached stay usable while the endpoint is down.
                tracing::warn!(url = %self.url, %error, "JWKS fetch failed");
                cache.last_error = Some(error.clone());
                cache.keys.get(kid).cloned().ok_or(JwksError::Unavailable(error))
            }
        }
    }

    fn fresh(&self, cache: &Cache) -> bool {
        cache.fetched.is_some_and(|at| at.elapsed() < self.max_age)
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
        let response = self.http.get(&self.url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let set: JwkSet = response.json().await.map_err(|e| e.to_string())?;
        Ok(rsa_signing_keys(&set))
    }
}

/// The RS256 signing keys of a set, by `kid`; other keys are left out.
pub fn rsa_signing_keys(set: &JwkSet) -> HashMap<String, Arc<DecodingKey>> {
    set.keys
        .iter()
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
        .filter(|jwk| matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256)))
        .filter(|jwk| matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature)))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, Arc::new(key)))
        })
        .collect()
}
