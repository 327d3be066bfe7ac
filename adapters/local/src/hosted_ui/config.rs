//! The Hosted UI's configuration: its app client, redirect URIs, machine
//! client, lifetimes and sign-in limits, checked as Cognito checks them.

use std::time::Duration;

use url::Url;

use super::sign_in_guard::SignInLimits;
use super::users::UserStore;

/// The scopes the development app client may ask for (as the Pulumi stack's client).
pub const CLIENT_SCOPES: [&str; 4] = ["openid", "email", items_aws::routes::READ_SCOPE, items_aws::routes::WRITE_SCOPE];
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(300);
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
pub(super) const MAX_STATE_BYTES: usize = 2048;

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
