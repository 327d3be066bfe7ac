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

pub mod csrf;
pub mod grants;
pub mod html;
mod routes;
pub mod sign_in_guard;
pub mod users;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::auth::dev_idp::{DevIdentityProvider, TokenRequest};
use grants::{CodeGrant, Expiring, Grant, is_s256_challenge, pkce_s256_matches, random_token};
pub use routes::router;
use sign_in_guard::{SignInGuard, SignInLimits};
use users::{DevUser, UserStore};

/// The scopes the development app client may ask for (as the Pulumi stack's client).
pub const CLIENT_SCOPES: [&str; 4] = ["openid", "email", "items/read", "items/write"];
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(300);
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_STATE_BYTES: usize = 2048;

/// A confidential app client with the client_credentials grant (CI, back ends).
#[derive(Clone)]
pub struct MachineClient {
    pub client_id: String,
    pub client_secret: String,
    pub allowed_scopes: Vec<String>,
}

pub struct HostedUiConfig {
    /// The one browser app client this Hosted UI serves.
    pub client_id: String,
    /// The machine client, if any.
    pub machine_client: Option<MachineClient>,
    /// Allowed callback and sign-out URLs, compared character for character.
    pub redirect_uris: Vec<String>,
    pub allowed_scopes: Vec<String>,
    /// Lifetime of access and id tokens.
    pub token_ttl: Duration,
    pub code_ttl: Duration,
    pub refresh_ttl: Duration,
    pub users: UserStore,
    /// Concurrent password checks, address backoff and username lockout.
    pub sign_in_limits: SignInLimits,
}

impl HostedUiConfig {
    /// The development client's settings with these redirect URIs and users.
    pub fn new(client_id: impl Into<String>, redirect_uris: Vec<String>, users: UserStore) -> Self {
        Self {
            client_id: client_id.into(),
            machine_client: None,
            redirect_uris,
            allowed_scopes: CLIENT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            token_ttl: Duration::from_secs(3600),
            code_ttl: DEFAULT_CODE_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            users,
            sign_in_limits: SignInLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostedUiConfigError {
    #[error("redirect URI {uri:?} {problem}")]
    RedirectUri { uri: String, problem: &'static str },
    #[error("at least one redirect URI is needed")]
    NoRedirectUris,
}

/// Checks a configured callback URL: absolute http(s), with a host, no fragment.
pub fn check_redirect_uri(uri: &str) -> Result<Url, HostedUiConfigError> {
    let problem = |problem| HostedUiConfigError::RedirectUri { uri: uri.to_owned(), problem };
    let url = Url::parse(uri).map_err(|_| problem("is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(problem("must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(problem("has no host"));
    }
    if url.fragment().is_some() {
        return Err(problem("must not have a fragment"));
    }
    Ok(url)
}

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

pub struct HostedUi {
    config: HostedUiConfig,
    idp: Arc<DevIdentityProvider>,
    /// Origins of the redirect URIs (CSP `form-action`, CORS of the token endpoint).
    redirect_origins: Vec<String>,
    codes: Mutex<Expiring<CodeGrant>>,
    refresh_tokens: Mutex<Expiring<Grant>>,
    sign_in_guard: SignInGuard,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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

    /// Checks a request to `/oauth2/authorize` (or `/login`), in Cognito's
    /// order: client and redirect URI first (a page), then the rest (a redirect).
    pub fn authorize(&self, params: &Params) -> Result<AuthorizeRequest, AuthorizeError> {
        let client_id = params.get("client_id").unwrap_or_default();
        if client_id != self.config.client_id {
            return Err(AuthorizeError::Page {
                error: "invalid_client",
                message: if client_id.is_empty() {
                    "The request has no client_id.".to_owned()
                } else {
                    "This Hosted UI does not know the client_id of the request.".to_owned()
                },
                details: vec![("client_id", client_id.to_owned()), ("Known client", self.config.client_id.clone())],
            });
        }
        let redirect_uri = params.get("redirect_uri").unwrap_or_default();
        if !self.config.redirect_uris.iter().any(|allowed| allowed == redirect_uri) {
            return Err(self.redirect_mismatch("redirect_uri", redirect_uri, "callback"));
        }

        let response_type = match params.get("response_type") {
            Some("code") => ResponseType::Code,
            Some("token") => ResponseType::Token,
            _ => {
                return Err(AuthorizeError::Redirect(error_redirect(
                    redirect_uri,
                    ResponseType::Code,
                    "unsupported_response_type",
                    "response_type must be code or token",
                    params.get("state"),
                )));
            }
        };
        let refuse = |error: &str, description: &str| {
            AuthorizeError::Redirect(error_redirect(
                redirect_uri,
                response_type,
                error,
                description,
                params.get("state"),
            ))
        };
        let state = params.get("state").map(str::to_owned);
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_BYTES) {
            return Err(refuse("invalid_request", "state is too long"));
        }
        let scopes: Vec<String> = match params.get("scope") {
            None => self.config.allowed_scopes.clone(),
            Some(scope) => scope.split_whitespace().map(str::to_owned).collect(),
        };
        if scopes.is_empty() || scopes.iter().any(|s| !self.config.allowed_scopes.contains(s)) {
            return Err(refuse("invalid_scope", "a requested scope is not allowed for this client"));
        }
        let code_challenge = match response_type {
            ResponseType::Token => None,
            ResponseType::Code => {
                if params.get("code_challenge_method") != Some("S256") {
                    return Err(refuse("invalid_request", "code_challenge_method must be S256 (PKCE is required)"));
                }
                match params.get("code_challenge") {
                    Some(challenge) if is_s256_challenge(challenge) => Some(challenge.to_owned()),
                    _ => return Err(refuse("invalid_request", "code_challenge must be a base64url SHA-256 digest")),
                }
            }
        };
        Ok(AuthorizeRequest {
            response_type,
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state,
            code_challenge,
        })
    }

    fn redirect_mismatch(&self, parameter: &'static str, uri: &str, kind: &str) -> AuthorizeError {
        let message = if uri.is_empty() {
            format!("The request has no {parameter}.")
        } else {
            format!(
                "The application asked to return to a URL that is not an allowed {kind} URL of this client \
                 (they are compared character for character, trailing slash included). Locally, restart \
                 items serve with --redirect-uris URL; on Cognito, add the URL to the app client's {kind} URLs."
            )
        };
        let mut details = vec![(parameter, uri.to_owned())];
        details.extend(self.config.redirect_uris.iter().map(|allowed| ("Allowed", allowed.clone())));
        AuthorizeError::Page { error: "redirect_mismatch", message, details }
    }

    /// After a successful sign-in: where the browser goes (with a code, or
    /// with the tokens in the fragment).
    pub fn complete(&self, request: &AuthorizeRequest, user: &DevUser, now: Instant) -> Result<String, TokenError> {
        let grant = Grant {
            client_id: request.client_id.clone(),
            username: user.username.clone(),
            subject: user.sub.clone(),
            scopes: request.scopes.clone(),
            credential: user.password_hash.clone(),
            groups: user.groups.clone(),
        };
        let mut url = Url::parse(&request.redirect_uri).map_err(|_| TokenError::ServerError)?;
        match (request.response_type, &request.code_challenge) {
            (ResponseType::Code, Some(challenge)) => {
                let code = random_token().map_err(|_| TokenError::ServerError)?;
                let bound =
                    CodeGrant { grant, redirect_uri: request.redirect_uri.clone(), code_challenge: challenge.clone() };
                lock(&self.codes).insert(code.clone(), bound, now);
                let mut pairs = url.query_pairs_mut();
                pairs.append_pair("code", &code);
                if let Some(state) = &request.state {
                    pairs.append_pair("state", state);
                }
            }
            (ResponseType::Code, None) => return Err(TokenError::InvalidRequest),
            (ResponseType::Token, _) => {
                let tokens = self.issue(&grant, false)?;
                let mut fragment = url::form_urlencoded::Serializer::new(String::new());
                fragment.append_pair("access_token", &tokens.access_token);
                if let Some(id_token) = &tokens.id_token {
                    fragment.append_pair("id_token", id_token);
                }
                fragment.append_pair("token_type", &tokens.token_type);
                fragment.append_pair("expires_in", &tokens.expires_in.to_string());
                if let Some(state) = &request.state {
                    fragment.append_pair("state", state);
                }
                url.set_fragment(Some(&fragment.finish()));
            }
        }
        Ok(url.into())
    }

    /// `POST /oauth2/token`. `basic` is the `Authorization: Basic` client id and secret, if sent.
    pub fn token(
        &self,
        params: &Params,
        basic: Option<(String, String)>,
        now: Instant,
    ) -> Result<TokenResponse, TokenError> {
        let grant_type = params.get("grant_type").ok_or(TokenError::InvalidRequest)?;
        if grant_type == "client_credentials" {
            return self.client_credentials(params, basic);
        }
        if !matches!(grant_type, "authorization_code" | "refresh_token") {
            return Err(TokenError::UnsupportedGrantType);
        }
        if params.get("client_id") != Some(self.config.client_id.as_str()) {
            return Err(TokenError::InvalidClient);
        }
        if grant_type == "refresh_token" {
            let refresh_token = params.get("refresh_token").ok_or(TokenError::InvalidRequest)?;
            let mut grant =
                lock(&self.refresh_tokens).get(refresh_token, now).map_err(|_| TokenError::InvalidGrant)?.clone();
            let Some(user) = self.still_signed_in(&grant)? else {
                // Removed, or the password changed: the session ends here.
                lock(&self.refresh_tokens).remove(refresh_token);
                return Err(TokenError::InvalidGrant);
            };
            // As Cognito: refreshed tokens carry the user's groups of now.
            grant.groups = user.groups;
            return self.issue(&grant, false);
        }

        let code = params.get("code").ok_or(TokenError::InvalidRequest)?;
        let redirect_uri = params.get("redirect_uri").ok_or(TokenError::InvalidRequest)?;
        // Used up by this attempt, whatever its outcome.
        let bound = lock(&self.codes).take(code, now).map_err(|_| TokenError::InvalidGrant)?;
        if bound.grant.client_id != self.config.client_id || bound.redirect_uri != redirect_uri {
            return Err(TokenError::InvalidGrant);
        }
        let verifier = params.get("code_verifier").ok_or(TokenError::InvalidGrant)?;
        if !pkce_s256_matches(verifier, &bound.code_challenge) {
            return Err(TokenError::InvalidGrant);
        }
        let tokens = self.issue(&bound.grant, true)?;
        if let Some(refresh_token) = &tokens.refresh_token {
            lock(&self.refresh_tokens).insert(refresh_token.clone(), bound.grant, now);
        }
        Ok(tokens)
    }

    /// The client_credentials grant: the machine client, authenticated by its
    /// secret (HTTP Basic, or `client_id` and `client_secret` in the form).
    fn client_credentials(
        &self,
        params: &Params,
        basic: Option<(String, String)>,
    ) -> Result<TokenResponse, TokenError> {
        let (client_id, secret) = match basic {
            Some(credentials) => credentials,
            None => (
                params.get("client_id").unwrap_or_default().to_owned(),
                params.get("client_secret").unwrap_or_default().to_owned(),
            ),
        };
        // The browser client is known but has no secret and not this grant.
        let refused =
            if client_id == self.config.client_id { TokenError::UnauthorizedClient } else { TokenError::InvalidClient };
        let Some(machine) = &self.config.machine_client else {
            return Err(refused);
        };
        let same =
            |a: &str, b: &str| aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok();
        if !(same(&client_id, &machine.client_id) && same(&secret, &machine.client_secret)) {
            return Err(refused);
        }
        let scopes: Vec<String> = match params.get("scope") {
            None => machine.allowed_scopes.clone(),
            Some(scope) => scope.split_whitespace().map(str::to_owned).collect(),
        };
        if scopes.is_empty() || scopes.iter().any(|s| !machine.allowed_scopes.contains(s)) {
            return Err(TokenError::InvalidScope);
        }
        let request = TokenRequest {
            subject: machine.client_id.clone(),
            username: String::new(),
            scopes,
            client_id: machine.client_id.clone(),
            ttl: self.config.token_ttl,
            groups: Vec::new(),
        };
        let mut claims = self.idp.access_claims(&request);
        // A machine token names no user: `sub` is the client id, as Cognito's.
        if let Some(claims) = claims.as_object_mut() {
            claims.remove("username");
        }
        let access_token = self.idp.sign(&claims).map_err(|_| TokenError::ServerError)?;
        Ok(TokenResponse {
            access_token,
            id_token: None,
            refresh_token: None,
            token_type: "Bearer".to_owned(),
            expires_in: self.config.token_ttl.as_secs(),
        })
    }

    /// The grant's user, if they still exist with the password they signed in with.
    fn still_signed_in(&self, grant: &Grant) -> Result<Option<DevUser>, TokenError> {
        let users = self.config.users.list().map_err(|error| {
            tracing::error!(%error, "cannot read the users file");
            TokenError::ServerError
        })?;
        Ok(users.into_iter().find(|user| user.username == grant.username && user.password_hash == grant.credential))
    }

    /// `POST /oauth2/revoke`: forgets a refresh token (unknown tokens are fine, RFC 7009).
    pub fn revoke(&self, params: &Params) -> Result<(), TokenError> {
        if params.get("client_id") != Some(self.config.client_id.as_str()) {
            return Err(TokenError::InvalidClient);
        }
        let token = params.get("token").ok_or(TokenError::InvalidRequest)?;
        lock(&self.refresh_tokens).remove(token);
        Ok(())
    }

    /// `GET /logout`: where to send the browser after signing out.
    pub fn logout(&self, params: &Params) -> Result<String, AuthorizeError> {
        let client_id = params.get("client_id").unwrap_or_default();
        if client_id != self.config.client_id {
            return Err(AuthorizeError::Page {
                error: "invalid_client",
                message: "Sign-out needs the client_id of a known app client.".to_owned(),
                details: vec![("client_id", client_id.to_owned())],
            });
        }
        let logout_uri = params.get("logout_uri").unwrap_or_default();
        if !self.config.redirect_uris.iter().any(|allowed| allowed == logout_uri) {
            return Err(self.redirect_mismatch("logout_uri", logout_uri, "sign-out"));
        }
        Ok(logout_uri.to_owned())
    }

    /// Tokens for a grant: access, id (with `openid`), refresh (code flow).
    fn issue(&self, grant: &Grant, with_refresh: bool) -> Result<TokenResponse, TokenError> {
        let request = TokenRequest {
            subject: grant.subject.clone(),
            username: grant.username.clone(),
            scopes: grant.scopes.clone(),
            client_id: grant.client_id.clone(),
            ttl: self.config.token_ttl,
            groups: grant.groups.clone(),
        };
        let access = self.idp.access_claims(&request);
        let access_token = self.idp.sign(&access).map_err(|_| TokenError::ServerError)?;
        let id_token = if grant.scopes.iter().any(|s| s == "openid") {
            Some(self.idp.sign(&self.id_claims(grant, &access)).map_err(|_| TokenError::ServerError)?)
        } else {
            None
        };
        let refresh_token =
            if with_refresh { Some(random_token().map_err(|_| TokenError::ServerError)?) } else { None };
        Ok(TokenResponse {
            access_token,
            id_token,
            refresh_token,
            token_type: "Bearer".to_owned(),
            expires_in: self.config.token_ttl.as_secs(),
        })
    }

    /// A Cognito id token's claims, from the same sign-in as `access`.
    fn id_claims(&self, grant: &Grant, access: &Value) -> Value {
        json!({
            "sub": grant.subject,
            "aud": grant.client_id,
            "iss": self.idp.issuer(),
            "token_use": "id",
            "cognito:username": grant.username,
            "origin_jti": access["origin_jti"],
            "event_id": access["event_id"],
            "auth_time": access["auth_time"],
            "iat": access["iat"],
            "exp": access["exp"],
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }
}

/// The redirect URI with `error` (in the query for the code flow, in the
/// fragment for the implicit flow, as OAuth 2.0 says).
fn error_redirect(
    redirect_uri: &str,
    response_type: ResponseType,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> String {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return redirect_uri.to_owned();
    };
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    pairs.append_pair("error", error);
    pairs.append_pair("error_description", description);
    if let Some(state) = state {
        pairs.append_pair("state", state);
    }
    let encoded = pairs.finish();
    match response_type {
        ResponseType::Code => {
            let query = match url.query() {
                Some(existing) if !existing.is_empty() => format!("{existing}&{encoded}"),
                _ => encoded,
            };
            url.set_query(Some(&query));
        }
        ResponseType::Token => url.set_fragment(Some(&encoded)),
    }
    url.into()
}
