//! What the local Hosted UI remembers between requests: authorization codes
//! (single use, short-lived, bound to client, redirect URI and PKCE challenge)
//! and refresh tokens. In memory: a restart signs everyone out, as it should
//! for a development server.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Who signed in, for which client, with what: what a code or a refresh token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub client_id: String,
    pub username: String,
    pub subject: String,
    pub scopes: Vec<String>,
    /// The user's password hash when they signed in: a refresh is refused once
    /// the user is removed or their password changed.
    pub credential: String,
    /// The user's Cognito groups when the tokens were issued.
    pub groups: Vec<String>,
}

/// An authorization code's binding, checked at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    pub grant: Grant,
    pub redirect_uri: String,
    /// The PKCE S256 challenge sent to `/oauth2/authorize`.
    pub code_challenge: String,
}

/// Why a code or refresh token cannot be used; all are `invalid_grant` to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeemError {
    Unknown,
    Expired,
}

/// Random, URL-safe, unguessable (256 bits).
pub fn random_token() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Codes or refresh tokens kept at most: past it, the one closest to
/// expiring makes room (a development server signs that session out rather
/// than grow without bound).
pub const MAX_ENTRIES: usize = 10_000;

/// Codes or refresh tokens one user of one client keeps at most: past it,
/// that user's own closest to expiring makes room, so one account signing
/// in again and again cannot push everyone else's out (security review N8).
pub const MAX_PER_OWNER: usize = 20;

/// One-time secrets that expire: codes and refresh tokens, each with its
/// owner (a client's user).
#[derive(Debug)]
pub struct Expiring<T> {
    ttl: Duration,
    max: usize,
    entries: HashMap<String, (T, Instant, String)>,
}

/// Whose a code or token is: the client and the username.
pub fn owner(grant: &Grant) -> String {
    format!("{}\n{}", grant.client_id, grant.username)
}

impl<T> Expiring<T> {
    pub fn new(ttl: Duration) -> Self {
        Self::bounded(ttl, MAX_ENTRIES)
    }

    pub fn bounded(ttl: Duration, max: usize) -> Self {
        Self { ttl, max: max.max(1), entries: HashMap::new() }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Remembers `value` under `key` until `now + ttl`, as its own owner's.
    pub fn insert(&mut self, key: String, value: T, now: Instant) {
        let owner = key.clone();
        self.insert_owned(key, value, owner, now);
    }

    /// Remembers `value` under `key` until `now + ttl`, as `owner`'s. An
    /// owner keeps [`MAX_PER_OWNER`] at most (its own closest to expiring
    /// makes room); when all are full, expired entries are forgotten, then
    /// if need be the one closest to expiring.
    pub fn insert_owned(&mut self, key: String, value: T, owner: String, now: Instant) {
        let theirs = self.entries.iter().filter(|(_, (_, _, whose))| *whose == owner);
        if theirs.clone().count() >= MAX_PER_OWNER {
            let soonest = theirs.min_by_key(|(_, (_, expires, _))| *expires).map(|(key, _)| key.clone());
            if let Some(soonest) = soonest {
                self.entries.remove(&soonest);
            }
        }
        if self.entries.len() >= self.max {
            self.entries.retain(|_, (_, expires, _)| *expires > now);
        }
        if self.entries.len() >= self.max {
            let soonest = self.entries.iter().min_by_key(|(_, (_, expires, _))| *expires).map(|(key, _)| key.clone());
            if let Some(soonest) = soonest {
                self.entries.remove(&soonest);
            }
        }
        self.entries.insert(key, (value, now + self.ttl, owner));
    }

    /// Takes the value out: a second call with the same key fails.
    pub fn take(&mut self, key: &str, now: Instant) -> Result<T, RedeemError> {
        let (value, expires, _) = self.entries.remove(key).ok_or(RedeemError::Unknown)?;
        if expires <= now {
            return Err(RedeemError::Expired);
        }
        Ok(value)
    }

    /// Reads the value, leaving it in place (refresh tokens are reusable until they expire).
    pub fn get(&mut self, key: &str, now: Instant) -> Result<&T, RedeemError> {
        let expired = match self.entries.get(key) {
            None => return Err(RedeemError::Unknown),
            Some((_, expires, _)) => *expires <= now,
        };
        if expired {
            self.entries.remove(key);
            return Err(RedeemError::Expired);
        }
        self.entries.get(key).map(|(value, _, _)| value).ok_or(RedeemError::Unknown)
    }

    pub fn remove(&mut self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether `challenge` is a well-formed S256 challenge: base64url of 32 bytes, no padding.
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && URL_SAFE_NO_PAD.decode(challenge).is_ok_and(|bytes| bytes.len() == 32)
}

/// RFC 7636: a verifier is 43 to 128 unreserved characters, and
/// `BASE64URL(SHA256(verifier))` must equal the challenge.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636, appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn pkce_s256_follows_rfc_7636() {
        assert!(is_s256_challenge(CHALLENGE));
        assert!(pkce_s256_matches(VERIFIER, CHALLENGE));
        assert!(!pkce_s256_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", CHALLENGE), "another verifier");
        assert!(!pkce_s256_matches(CHALLENGE, CHALLENGE), "plain is not S256");
        assert!(!pkce_s256_matches("short", CHALLENGE), "too short");
        assert!(!pkce_s256_matches(&"a".repeat(129), CHALLENGE), "too long");
        assert!(!pkce_s256_matches(&format!("{VERIFIER} "), CHALLENGE), "reserved characters");
        assert!(!is_s256_challenge("abc"));
        assert!(!is_s256_challenge(&format!("{}=", &CHALLENGE[..42])));
        assert!(!is_s256_challenge(&"*".repeat(43)));
    }

    #[test]
    fn codes_are_single_use_and_expire() {
        let start = Instant::now();
        let mut codes = Expiring::new(Duration::from_secs(300));
        codes.insert("a".into(), 1, start);
        codes.insert("b".into(), 2, start);
        assert_eq!(codes.take("a", start + Duration::from_secs(10)), Ok(1));
        assert_eq!(codes.take("a", start + Duration::from_secs(10)), Err(RedeemError::Unknown), "used once");
        assert_eq!(codes.take("b", start + Duration::from_secs(300)), Err(RedeemError::Expired));
        assert_eq!(codes.take("b", start), Err(RedeemError::Unknown), "an expired code is gone");
        assert_eq!(codes.take("never issued", start), Err(RedeemError::Unknown));
    }

    #[test]
    fn when_full_expired_entries_are_forgotten_first() {
        let start = Instant::now();
        let mut tokens = Expiring::bounded(Duration::from_secs(1), 1);
        tokens.insert("old".into(), (), start);
        tokens.insert("new".into(), (), start + Duration::from_secs(2));
        assert_eq!(tokens.len(), 1);
        assert!(tokens.get("new", start + Duration::from_secs(2)).is_ok());
        assert!(tokens.get("new", start + Duration::from_secs(2)).is_ok(), "get leaves it in place");
        assert_eq!(tokens.get("new", start + Duration::from_secs(3)), Err(RedeemError::Expired));
        assert!(tokens.is_empty());
    }

    /// Security review finding 10: refresh tokens were an unbounded map.
    #[test]
    fn at_the_bound_the_entry_closest_to_expiring_makes_room() {
        let start = Instant::now();
        let mut tokens = Expiring::bounded(Duration::from_secs(60), 2);
        tokens.insert("first".into(), 1, start);
        tokens.insert("second".into(), 2, start + Duration::from_secs(1));
        tokens.insert("third".into(), 3, start + Duration::from_secs(2));
        assert_eq!(tokens.len(), 2);
        let now = start + Duration::from_secs(3);
        assert_eq!(tokens.get("first", now), Err(RedeemError::Unknown), "the oldest made room");
        assert_eq!((tokens.get("second", now).copied(), tokens.get("third", now).copied()), (Ok(2), Ok(3)));
    }

    #[test]
    fn random_tokens_differ() {
        let a = random_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token().unwrap());
    }

    /// Security review N8: one user signing in again and again replaces
    /// their own oldest tokens, never another user's.
    #[test]
    fn one_owner_cannot_push_out_anothers() {
        let start = Instant::now();
        let mut tokens = Expiring::bounded(Duration::from_secs(60), 100);
        tokens.insert_owned("bob".into(), 0, "web\nbob".into(), start);
        for n in 0..1_000u64 {
            tokens.insert_owned(format!("alice {n}"), n, "web\nalice".into(), start + Duration::from_millis(n));
        }
        assert_eq!(tokens.get("bob", start), Ok(&0), "bob is still signed in");
        assert_eq!(tokens.len(), MAX_PER_OWNER + 1);
        assert!(tokens.get("alice 999", start).is_ok(), "alice's newest kept");
        assert_eq!(tokens.get("alice 0", start), Err(RedeemError::Unknown), "alice's oldest made room");
    }
}
