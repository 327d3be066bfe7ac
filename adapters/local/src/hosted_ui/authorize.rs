//! `/oauth2/authorize`, the sign-in's completion, and `/logout`.

use std::time::Instant;

use url::Url;

use super::grants::{CodeGrant, Grant, is_s256_challenge, random_token};
use super::users::DevUser;
use super::{AuthorizeError, AuthorizeRequest, HostedUi, MAX_STATE_BYTES, Params, ResponseType, TokenError, lock};

impl HostedUi {
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
                let owner = super::grants::owner(&bound.grant);
                lock(&self.codes).insert_owned(code.clone(), bound, owner, now);
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
