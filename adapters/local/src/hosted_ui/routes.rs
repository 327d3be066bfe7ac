//! The Hosted UI's HTTP endpoints (axum), over [`HostedUi`]'s logic. One
//! file for all of them: they share their security headers (CSP, CORS,
//! `no-store`) and error pages, which read best beside every use.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{self, HeaderMap, HeaderValue};
use http::{StatusCode, Uri};

use super::html::{self, STYLESHEET_PATH};
use super::sign_in_guard::Throttled;
use super::{AuthorizeError, HostedUi, Params, TokenError, csrf, grants, users};

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The Hosted UI's routes, to merge into the local gateway's router.
pub fn router(ui: Arc<HostedUi>) -> Router {
    Router::new()
        .route("/oauth2/authorize", get(authorize))
        .route("/login", get(login_form).post(login).layer(DefaultBodyLimit::max(FORM_LIMIT)))
        .route("/oauth2/token", post(token).options(preflight).layer(DefaultBodyLimit::max(FORM_LIMIT)))
        .route("/oauth2/revoke", post(revoke).options(preflight).layer(DefaultBodyLimit::max(FORM_LIMIT)))
        .route("/logout", get(logout))
        .route(STYLESHEET_PATH, get(stylesheet))
        .with_state(ui)
}

/// Security headers of every Hosted UI answer; `csp` for HTML pages.
fn secure(mut response: Response, csp: Option<&str>) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Codes and tokens travel in URLs: never in a Referer.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let csp = csp.unwrap_or("default-src 'none'; frame-ancestors 'none'");
    if let Ok(value) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// The pages' policy: no script at all, our stylesheet, and a form that may
/// only post here (and follow the redirect to an allowed callback's origin).
fn page_csp(ui: &HostedUi) -> String {
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {}; \
         frame-ancestors 'none'; base-uri 'none'",
        ui.redirect_origins().join(" ")
    )
}

fn html_page(ui: &HostedUi, status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure(response, Some(&page_csp(ui)))
}

fn redirect(ui: &HostedUi, location: &str) -> Response {
    let Ok(value) = HeaderValue::from_str(location) else {
        return html_page(
            ui,
            StatusCode::INTERNAL_SERVER_ERROR,
            html::error_page("Error", "server_error", "The redirect cannot be sent.", &[]),
        );
    };
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, value);
    secure(response, None)
}

fn refused(ui: &HostedUi, error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::Page { error, message, details } => {
            tracing::info!(error, "authorization request refused with an error page");
            let details: Vec<(&str, &str)> = details.iter().map(|(k, v)| (*k, v.as_str())).collect();
            html_page(
                ui,
                StatusCode::BAD_REQUEST,
                html::error_page("Sign-in is not possible", error, &message, &details),
            )
        }
        AuthorizeError::Redirect(location) => redirect(ui, &location),
    }
}

fn repeated(ui: &HostedUi, name: &str) -> Response {
    html_page(
        ui,
        StatusCode::BAD_REQUEST,
        html::error_page(
            "Sign-in is not possible",
            "invalid_request",
            "A parameter appears more than once.",
            &[("Parameter", name)],
        ),
    )
}

async fn authorize(State(ui): State<Arc<HostedUi>>, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let params = match Params::parse(query) {
        Ok(params) => params,
        Err(name) => return repeated(&ui, &name),
    };
    match ui.authorize(&params) {
        // As Cognito: the form lives at /login, with the same request.
        Ok(_) => redirect(&ui, &format!("/login?{query}")),
        Err(error) => refused(&ui, error),
    }
}

/// The sign-in form for `query`, carrying `csrf_token` (and setting its
/// cookie when `set_cookie`).
fn sign_in_form(
    ui: &HostedUi,
    status: StatusCode,
    query: &str,
    client_id: &str,
    (csrf_token, set_cookie): (&str, bool),
    username: &str,
    error: Option<&str>,
) -> Response {
    let page = html::sign_in_page(&format!("/login?{query}"), client_id, csrf_token, username, error);
    let mut response = html_page(ui, status, page);
    if set_cookie && let Some(cookie) = csrf::set_cookie(csrf_token) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

fn no_token_page(ui: &HostedUi) -> Response {
    let page = html::error_page("Error", "server_error", "The sign-in form cannot be made.", &[]);
    html_page(ui, StatusCode::INTERNAL_SERVER_ERROR, page)
}

async fn login_form(State(ui): State<Arc<HostedUi>>, uri: Uri, headers: HeaderMap) -> Response {
    let query = uri.query().unwrap_or_default();
    let params = match Params::parse(query) {
        Ok(params) => params,
        Err(name) => return repeated(&ui, &name),
    };
    match ui.authorize(&params) {
        Ok(request) => {
            let Ok((token, set_cookie)) = csrf::token_for(&headers) else {
                return no_token_page(&ui);
            };
            sign_in_form(&ui, StatusCode::OK, query, &request.client_id, (&token, set_cookie), "", None)
        }
        Err(error) => refused(&ui, error),
    }
}

/// The client's address as the server accepted it (none in-process).
fn client_address(extensions: &http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(address)| address.ip())
}

/// The largest form `/login`, `/oauth2/token` and `/oauth2/revoke` read: a
/// 128-character username and a 1,024-byte password, percent-encoded, and
/// the rest of the form fit many times over (axum's default is 2 MiB).
const FORM_LIMIT: usize = 16 * 1024;

/// The form again, 401, as for any wrong username or password.
fn wrong_password(ui: &HostedUi, query: &str, client_id: &str, csrf_token: &str, username: &str) -> Response {
    let message = Some("Incorrect username or password.");
    sign_in_form(ui, StatusCode::UNAUTHORIZED, query, client_id, (csrf_token, false), username, message)
}

/// 429 with the form and why, and when to try again.
fn throttled(
    ui: &HostedUi,
    query: &str,
    client_id: &str,
    csrf_token: &str,
    username: &str,
    why: Throttled,
) -> Response {
    let seconds = why.retry_after_secs();
    let message = match why {
        Throttled::Username { .. } => {
            format!("Too many failed sign-ins for this username. It is locked for {seconds} s; try again then.")
        }
        Throttled::Address { .. } => {
            format!("Too many failed sign-ins from your address. Try again in {seconds} s.")
        }
        Throttled::Busy => "The server is busy checking other sign-ins. Try again in a moment.".to_owned(),
        Throttled::InProgress => "A sign-in for this username is being checked. Try again in a moment.".to_owned(),
    };
    tracing::warn!(?why, "sign-in throttled");
    let mut response = sign_in_form(
        ui,
        StatusCode::TOO_MANY_REQUESTS,
        query,
        client_id,
        (csrf_token, false),
        username,
        Some(&message),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

async fn login(
    State(ui): State<Arc<HostedUi>>,
    uri: Uri,
    headers: HeaderMap,
    extensions: http::Extensions,
    body: Bytes,
) -> Response {
    let query = uri.query().unwrap_or_default();
    let params = match Params::parse(query) {
        Ok(params) => params,
        Err(name) => return repeated(&ui, &name),
    };
    let request = match ui.authorize(&params) {
        Ok(request) => request,
        Err(error) => return refused(&ui, error),
    };
    let client_id = request.client_id.as_str();
    let form = std::str::from_utf8(&body).ok().and_then(|text| Params::parse(text).ok()).unwrap_or_default();
    let cookie_token = csrf::cookie_token(&headers);
    // A page on another port of this host can set our cookie (cookies ignore
    // ports), so the double submit alone does not prove the form is ours:
    // the browser's Origin and Sec-Fetch-Site must say this origin too.
    if csrf::cross_origin(&headers) || !csrf::matches(cookie_token.as_deref(), form.get(csrf::FIELD_NAME)) {
        // A form from another site, or one whose cookie is gone: a fresh form,
        // and no password check.
        tracing::warn!(has_cookie = cookie_token.is_some(), "sign-in refused: CSRF token missing or wrong");
        let Ok(token) = grants::random_token() else {
            return no_token_page(&ui);
        };
        let message = "This sign-in form has expired or was sent from another site. Sign in again.";
        return sign_in_form(&ui, StatusCode::FORBIDDEN, query, client_id, (&token, true), "", Some(message));
    }
    let csrf_token = cookie_token.unwrap_or_default();
    let username = form.get("username").unwrap_or_default().trim().to_owned();
    let password = form.get("password").unwrap_or_default().to_owned();
    if username.is_empty() || password.is_empty() {
        let message = Some("Enter your username and password.");
        return sign_in_form(&ui, StatusCode::BAD_REQUEST, query, client_id, (&csrf_token, false), &username, message);
    }
    if users::validate_username(&username).is_err() || password.len() > users::MAX_PASSWORD_BYTES {
        // No user has such a name or password: the answer a wrong password
        // gets, without a check and without a record in the guard's tables.
        tracing::info!("sign-in failed: a username or password no user can have");
        return wrong_password(&ui, query, client_id, &csrf_token, "");
    }

    let address = client_address(&extensions);
    // The check's whole life runs in its own task: the admission, the slot,
    // the hash and the record of its outcome. A request cut off by the
    // request timeout (or a client gone) still holds its slot until the
    // hash ends and still counts its failure (security review N6).
    let check = {
        let (ui, username) = (ui.clone(), username.clone());
        tokio::spawn(async move {
            let guard = ui.sign_in_guard();
            let admission = guard.admit(address, &username, Instant::now())?;
            let _slot = guard.check_slot(&admission).await?;
            let users = ui.config().users.clone();
            let checked = tokio::task::spawn_blocking(move || users.authenticate(&username, &password)).await;
            match &checked {
                Ok(Ok(Some(_))) => guard.succeeded(&admission),
                Ok(Ok(None)) => guard.failed(&admission, Instant::now()),
                _ => {}
            }
            Ok::<_, Throttled>(checked)
        })
    };
    let checked = match check.await {
        Ok(Ok(checked)) => checked,
        Ok(Err(why)) => return throttled(&ui, query, client_id, &csrf_token, &username, why),
        Err(error) => Err(error),
    };
    let user = match checked {
        Ok(Ok(Some(user))) => user,
        Ok(Ok(None)) => {
            // Not the name tried: people type passwords into the wrong field.
            tracing::info!("sign-in failed: wrong username or password");
            return wrong_password(&ui, query, client_id, &csrf_token, &username);
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot read the development users");
            let page = html::error_page("Error", "server_error", "The users of this server cannot be read.", &[]);
            return html_page(&ui, StatusCode::INTERNAL_SERVER_ERROR, page);
        }
        Err(error) => {
            tracing::error!(%error, "password check failed");
            let page = html::error_page("Error", "server_error", "The password cannot be checked.", &[]);
            return html_page(&ui, StatusCode::INTERNAL_SERVER_ERROR, page);
        }
    };
    match ui.complete(&request, &user, Instant::now()) {
        Ok(location) => {
            tracing::info!(username, flow = ?request.response_type, "signed in");
            redirect(&ui, &location)
        }
        Err(error) => {
            tracing::error!(%error, "cannot complete the sign-in");
            let page = html::error_page("Error", error.code(), "The sign-in cannot be completed.", &[]);
            html_page(&ui, StatusCode::INTERNAL_SERVER_ERROR, page)
        }
    }
}

/// A form body, or `invalid_request`.
fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, TokenError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(FORM_CONTENT_TYPE) {
        return Err(TokenError::InvalidRequest);
    }
    let text = std::str::from_utf8(body).map_err(|_| TokenError::InvalidRequest)?;
    Params::parse(text).map_err(|_| TokenError::InvalidRequest)
}

/// `Authorization: Basic base64(client_id:client_secret)`, if sent and well formed.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    // RFC 6749 §2.3.1: both are form-encoded before the Basic encoding.
    let decode = |part: &str| {
        url::form_urlencoded::parse(format!("x={part}").as_bytes()).next().map(|(_, value)| value.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

/// Cognito's token endpoint answers browsers of any allowed callback origin.
fn with_cors(ui: &HostedUi, request_headers: &HeaderMap, mut response: Response) -> Response {
    let origin = request_headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if let Some(origin) = origin.filter(|o| ui.redirect_origins().iter().any(|allowed| allowed == o))
        && let Ok(value) = HeaderValue::from_str(origin)
    {
        response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    response.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

fn token_error(error: TokenError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(serde_json::json!({ "error": error.code() }))).into_response()
}

async fn token(State(ui): State<Arc<HostedUi>>, headers: HeaderMap, body: Bytes) -> Response {
    let result = form_params(&headers, &body).and_then(|params| {
        let grant_type = params.get("grant_type").unwrap_or_default().to_owned();
        ui.token(&params, basic_credentials(&headers), Instant::now()).inspect_err(|error| {
            // The kind of failure, never the code, verifier or token.
            tracing::info!(error = error.code(), grant_type, "token request refused");
        })
    });
    let mut response = match result {
        Ok(tokens) => axum::Json(tokens).into_response(),
        Err(error) => token_error(error),
    };
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    with_cors(&ui, &headers, secure(response, None))
}

async fn revoke(State(ui): State<Arc<HostedUi>>, headers: HeaderMap, body: Bytes) -> Response {
    let response = match form_params(&headers, &body).and_then(|params| ui.revoke(&params)) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => token_error(error),
    };
    with_cors(&ui, &headers, secure(response, None))
}

async fn preflight(State(ui): State<Arc<HostedUi>>, headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Content-Type, Authorization"));
    out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    with_cors(&ui, &headers, secure(response, None))
}

async fn logout(State(ui): State<Arc<HostedUi>>, uri: Uri) -> Response {
    let params = match Params::parse(uri.query().unwrap_or_default()) {
        Ok(params) => params,
        Err(name) => return repeated(&ui, &name),
    };
    match ui.logout(&params) {
        Ok(location) => redirect(&ui, &location),
        Err(error) => refused(&ui, error),
    }
}

async fn stylesheet() -> Response {
    let mut response = Response::new(Body::from(crate::web_app::STYLE_CSS));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    secure(response, None)
}
