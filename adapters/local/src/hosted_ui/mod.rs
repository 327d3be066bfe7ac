//! A local Hosted UI: Cognito's OAuth2 endpoints on the development identity
//! provider, so a browser signs in locally the way it does against a user pool.
//!
//! - `GET /oauth2/authorize`: `response_type=code` (PKCE S256 required) or
//!   `token` (implicit); checks the client and the redirect URI against the
//!   allowlist (an error page, never a redirect, when they are wrong), then
//!   sends the browser to the sign-in form at `/login`.
//! - `POST /login`: checks the form's CSRF token ([`csrf`]) and the sign-in
//!   limits ([`sign_in_guard`]), then the password (Argon2id, `users.json`), then
//!   redirects to `redirect_uri?code=…&state=…` or
//!   `redirect_uri#access_token=…&id_token=…&token_type=Bearer&expires_in=…&state=…`.
//! - `POST /oauth2/token`: `authorization_code` (single-use codes bound to
//!   client, redirect URI and challenge) and `refresh_token` grants, answered
//!   as Cognito does (`{"error":"invalid_grant"}` with 400 on failure); and
//!   `client_credentials` for the machine client (HTTP Basic or form
//!   credentials): an access token whose `sub` is the client id.
//! - `POST /oauth2/revoke`, `GET /logout?client_id=…&logout_uri=…`.
//!
//! Tokens: access tokens as `items token` issues them (`token_use: access`,
//! scopes, `username`, the user's stable `sub`), id tokens with
//! `token_use: id` and `aud` = the client id (which the API refuses).

mod authorize;
mod config;
pub mod csrf;
pub mod grants;
pub mod html;
mod routes;
pub mod sign_in_guard;
mod token;
pub mod users;
mod wire;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::auth::dev_idp::DevIdentityProvider;
use grants::{CodeGrant, Expiring, Grant};
use sign_in_guard::SignInGuard;

use config::MAX_STATE_BYTES;
pub use config::{
    CLIENT_SCOPES, DEFAULT_CODE_TTL, DEFAULT_REFRESH_TTL, HostedUiConfig, HostedUiConfigError, MachineClient,
    check_redirect_uri,
};
pub use routes::router;
pub use wire::{AuthorizeError, AuthorizeRequest, Params, ResponseType, TokenError, TokenResponse};

pub struct HostedUi {
    config: HostedUiConfig,
    idp: Arc<DevIdentityProvider>,
    /// Origins of the redirect URIs (CSP `form-action`, CORS of the token endpoint).
    redirect_origins: Vec<String>,
    codes: Mutex<Expiring<CodeGrant>>,
    refresh_tokens: Mutex<Expiring<Grant>>,
    sign_in_guard: SignInGuard,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HostedUi {
    pub fn new(config: HostedUiConfig, idp: Arc<DevIdentityProvider>) -> Result<Self, HostedUiConfigError> {
        if config.redirect_uris.is_empty() {
            return Err(HostedUiConfigError::NoRedirectUris);
        }
        let mut redirect_origins = Vec::new();
        for uri in &config.redirect_uris {
            let origin = check_redirect_uri(uri)?.origin().ascii_serialization();
            if !redirect_origins.contains(&origin) {
                redirect_origins.push(origin);
            }
        }
        let codes = Mutex::new(Expiring::new(config.code_ttl));
        let refresh_tokens = Mutex::new(Expiring::new(config.refresh_ttl));
        let sign_in_guard = SignInGuard::new(&config.sign_in_limits);
        Ok(Self { config, idp, redirect_origins, codes, refresh_tokens, sign_in_guard })
    }

    pub fn config(&self) -> &HostedUiConfig {
        &self.config
    }

    pub fn redirect_origins(&self) -> &[String] {
        &self.redirect_origins
    }

    pub fn sign_in_guard(&self) -> &SignInGuard {
        &self.sign_in_guard
    }
}
