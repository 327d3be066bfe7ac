//! What the OAuth2 endpoints read and answer: form parameters, the authorize
//! request, token responses and errors, in Cognito's wire form.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Query or form parameters, each at most once (OAuth 2.0 forbids repeats).
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded`; `Err(name)` for a repeated parameter.
    pub fn parse(encoded: &str) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(encoded.as_bytes()) {
            if map.insert(name.to_string(), value.to_string()).is_some() {
                return Err(name.to_string());
            }
        }
        Ok(Self(map))
    }

    /// The value, `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// Authorization code (with PKCE).
    Code,
    /// Implicit grant: tokens in the redirect's fragment.
    Token,
}

/// A checked request to `/oauth2/authorize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub response_type: ResponseType,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
}

/// Why an authorization (or sign-out) request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or the redirect URI is wrong: shown as a page, the browser
    /// is not sent anywhere.
    Page { error: &'static str, message: String, details: Vec<(&'static str, String)> },
    /// Anything else: the browser goes back to the (allowed) redirect URI with `error`.
    Redirect(String),
}

/// The token endpoint's answer, as Cognito's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub expires_in: u64,
}

/// Token endpoint errors (RFC 6749 §5.2), all 400 but `ServerError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid_request")]
    InvalidRequest,
    #[error("invalid_client")]
    InvalidClient,
    #[error("invalid_grant")]
    InvalidGrant,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("unauthorized_client")]
    UnauthorizedClient,
    #[error("invalid_scope")]
    InvalidScope,
    #[error("server_error")]
    ServerError,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
        }
    }

    pub fn status(self) -> u16 {
        if self == Self::ServerError { 500 } else { 400 }
    }
}
