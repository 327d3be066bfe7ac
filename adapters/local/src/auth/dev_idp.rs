//! The built-in development identity provider: an RSA key kept in the local
//! data dir, its JWKS, and Cognito-shaped access tokens signed with it.
//!
//! Tokens are signed here with aws-lc-rs directly (verification uses
//! jsonwebtoken): the key lives as PKCS#8, which aws-lc-rs generates and reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::data_dir::{create_private_dir, publish_secret, read_secret};
use uuid::Uuid;

pub const KEY_FILE: &str = "dev-idp-key.pk8";
/// The development app client id, as a Cognito app client id looks.
pub const DEV_CLIENT_ID: &str = "itemslocaldevclient0000000";
/// The development machine client (client_credentials), as the stack's second app client.
pub const DEV_MACHINE_CLIENT_ID: &str = "itemslocalmachineclient000";

#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the key in {0} is not an RSA PKCS#8 key")]
    BadKey(PathBuf),
    #[error("cannot generate or use the signing key")]
    Crypto,
}

/// What to put in a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub subject: String,
    pub username: String,
    pub scopes: Vec<String>,
    pub client_id: String,
    pub ttl: Duration,
    /// Cognito groups: the token's `cognito:groups` (left out when empty, as Cognito does).
    pub groups: Vec<String>,
}

pub struct DevIdentityProvider {
    key_pair: RsaKeyPair,
    kid: String,
    issuer: String,
}

impl DevIdentityProvider {
    /// Loads the key from `data_dir`, creating one on first use.
    pub fn load_or_create(data_dir: &Path, issuer: impl Into<String>) -> Result<Self, DevIdpError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| DevIdpError::Io { path: path.clone(), source };
        let der = match read_secret(&path) {
            Ok(der) => der,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                create_private_dir(data_dir).map_err(io)?;
                let key_pair =
                    RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| DevIdpError::Crypto)?;
                let der = key_pair.as_der().map_err(|_| DevIdpError::Crypto)?;
                // `items serve` and `items token` may create it at the same time:
                // the first complete file wins and both use it.
                publish_secret(&path, der.as_ref()).map_err(io)?;
                read_secret(&path).map_err(io)?
            }
            Err(error) => return Err(io(error)),
        };
        let key_pair = RsaKeyPair::from_pkcs8(&der).map_err(|_| DevIdpError::BadKey(path.clone()))?;
        Ok(Self::from_key_pair(key_pair, issuer))
    }

    /// A provider with a fresh key that is not saved (for tests).
    pub fn ephemeral(issuer: impl Into<String>) -> Result<Self, DevIdpError> {
        let key_pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| DevIdpError::Crypto)?;
        Ok(Self::from_key_pair(key_pair, issuer))
    }

    fn from_key_pair(key_pair: RsaKeyPair, issuer: impl Into<String>) -> Self {
        // A stable kid per key: the first bytes of the modulus' SHA-256.
        let modulus = key_pair.public_key().modulus().big_endian_without_leading_zero().to_vec();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &modulus);
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Self { key_pair, kid, issuer: issuer.into() }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key set, as served at the JWKS URL.
    pub fn jwks(&self) -> Value {
        let public = self.key_pair.public_key();
        json!({
            "keys": [{
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "kid": self.kid,
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            }]
        })
    }

    /// The claims of a Cognito access token for `request`, issued now.
    pub fn access_claims(&self, request: &TokenRequest) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({
            "sub": request.subject,
            "iss": self.issuer,
            "version": 2,
            "client_id": request.client_id,
            "origin_jti": Uuid::new_v4().to_string(),
            "event_id": Uuid::new_v4().to_string(),
            "token_use": "access",
            "scope": request.scopes.join(" "),
            "auth_time": now,
            "exp": now + request.ttl.as_secs(),
            "iat": now,
            "jti": Uuid::new_v4().to_string(),
            "username": request.username,
        });
        if !request.groups.is_empty() {
            claims["cognito:groups"] = json!(request.groups);
        }
        claims
    }

    pub fn issue_access_token(&self, request: &TokenRequest) -> Result<String, DevIdpError> {
        self.sign(&self.access_claims(request))
    }

    /// Signs any claims with this key (RS256, this key's kid).
    pub fn sign(&self, claims: &Value) -> Result<String, DevIdpError> {
        self.sign_with_header(&json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}), claims)
    }

    /// Signs with a header of the caller's choosing (tests forge headers with it).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> Result<String, DevIdpError> {
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut signature)
            .map_err(|_| DevIdpError::Crypto)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// A stable user id (`sub`) for a development username: `items token` and the
/// local Hosted UI give one user the same id.
pub fn dev_subject(username: &str) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("items-api-dev-user:{username}").as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_first_uses_share_one_key() {
        let dir = std::env::temp_dir().join(format!("items-dev-idp-{}", Uuid::new_v4().simple()));
        let kids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| DevIdentityProvider::load_or_create(&dir, "iss").unwrap().kid().to_owned()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(kids.windows(2).all(|pair| pair[0] == pair[1]), "{kids:?}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary files left");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
