//! The browser page (`web/`), built into the binary and served at `/` by
//! `items serve`, with a `/config.json` that tells it where to sign in.
//!
//! The same files are deployable as static files with a hand-written
//! `config.json` (see `web/config.example.json` and docs/deploy.md).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use http::header::{self, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

pub const INDEX_HTML: &str = include_str!("../../../web/index.html");
/// The views and their wiring; imports the two modules below.
pub const APP_JS: &str = include_str!("../../../web/app.js");
/// Sign-in on the Hosted UI and the tokens (an ES module).
pub const AUTH_JS: &str = include_str!("../../../web/auth.js");
/// The API client (an ES module).
pub const API_JS: &str = include_str!("../../../web/api.js");
pub const STYLE_CSS: &str = include_str!("../../../web/style.css");

/// What `/config.json` tells the page. Empty URLs mean "this server".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebAppConfig {
    /// Base URL of the Hosted UI (`https://<domain>.auth.<region>.amazoncognito.com`),
    /// or empty for the local Hosted UI on this server.
    pub hosted_ui_url: String,
    /// The app client the page signs in with.
    pub client_id: String,
    /// Space-separated scopes to ask for.
    pub scopes: String,
    /// `code` (authorization code with PKCE, the default) or `token` (implicit).
    pub response_type: String,
    /// Base URL of the API (the stage URL on AWS), or empty for this server.
    pub api_url: String,
    /// The callback URL, exactly as allowed on the client; absent: the page's own URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

impl WebAppConfig {
    pub const DEFAULT_SCOPES: &str = "openid items/read items/write";

    /// The page's Content-Security-Policy: its own script and style only, and
    /// requests to this server, the Hosted UI and the API.
    pub fn content_security_policy(&self) -> String {
        let mut connect = vec!["'self'".to_owned()];
        for url in [&self.hosted_ui_url, &self.api_url] {
            if let Ok(parsed) = Url::parse(url) {
                let origin = parsed.origin().ascii_serialization();
                if parsed.origin().is_tuple() && !connect.contains(&origin) {
                    connect.push(origin);
                }
            }
        }
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src {}; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            connect.join(" ")
        )
    }
}

struct Served {
    config_json: String,
    csp: String,
}

/// `GET /`, `/index.html`, `/app.js` (with the modules it imports, `/auth.js`
/// and `/api.js`), `/style.css` and `/config.json`.
pub fn router(config: &WebAppConfig) -> Router {
    let served = Arc::new(Served {
        config_json: serde_json::to_string_pretty(config).unwrap_or_else(|_| "{}".to_owned()),
        csp: config.content_security_policy(),
    });
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/auth.js", get(|| async { asset(AUTH_JS, "text/javascript; charset=utf-8") }))
        .route("/api.js", get(|| async { asset(API_JS, "text/javascript; charset=utf-8") }))
        .route("/style.css", get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }))
        .route("/config.json", get(config_json))
        .with_state(served)
}

fn with_headers(body: impl Into<Body>, content_type: &'static str, csp: Option<&str>) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The page's URL carries the authorization code or tokens on return from the Hosted UI.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let csp = csp.unwrap_or("default-src 'none'; frame-ancestors 'none'");
    if let Ok(value) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    with_headers(body, content_type, None)
}

async fn index(State(served): State<Arc<Served>>) -> Response {
    with_headers(INDEX_HTML, "text/html; charset=utf-8", Some(&served.csp))
}

async fn config_json(State(served): State<Arc<Served>>) -> Response {
    let mut response = with_headers(served.config_json.clone(), "application/json", None);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_allows_the_hosted_ui_and_the_api_origins_only() {
        let config = WebAppConfig {
            hosted_ui_url: "https://items-dev.auth.eu-west-1.amazoncognito.com".into(),
            client_id: "client".into(),
            scopes: WebAppConfig::DEFAULT_SCOPES.into(),
            response_type: "code".into(),
            api_url: "https://abc.execute-api.eu-west-1.amazonaws.com/v1".into(),
            redirect_uri: None,
        };
        let csp = config.content_security_policy();
        assert!(csp.contains(
            "connect-src 'self' https://items-dev.auth.eu-west-1.amazoncognito.com https://abc.execute-api.eu-west-1.amazonaws.com;"
        ), "{csp}");
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe-inline"));

        let local = WebAppConfig { hosted_ui_url: String::new(), api_url: String::new(), ..config };
        assert!(local.content_security_policy().contains("connect-src 'self';"));
    }
}
