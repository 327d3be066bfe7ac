//! `/oauth2/token` (authorization code, refresh token, client credentials),
//! `/oauth2/revoke`, and the tokens they issue.

use std::time::Instant;

use serde_json::{Value, json};

use super::grants::{Grant, pkce_s256_matches, random_token};
use super::users::DevUser;
use super::{HostedUi, Params, TokenError, TokenResponse, lock};
use crate::auth::dev_idp::TokenRequest;

impl HostedUi {
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
            let owner = super::grants::owner(&bound.grant);
            lock(&self.refresh_tokens).insert_owned(refresh_token.clone(), bound.grant, owner, now);
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

    /// Tokens for a grant: access, id (with `openid`), refresh (code flow).
    pub(super) fn issue(&self, grant: &Grant, with_refresh: bool) -> Result<TokenResponse, TokenError> {
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
