//! The local Hosted UI over HTTP (in process): authorize, sign-in form, code
//! and implicit flows, the token endpoint's errors, refresh, revoke, logout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, Request, StatusCode, header};
use items_local::auth::dev_idp::{DevIdentityProvider, dev_subject};
use items_local::hosted_ui::users::UserStore;
use items_local::hosted_ui::{self, AuthorizeError, HostedUi, HostedUiConfig, Params, TokenError, check_redirect_uri};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;
use tower::ServiceExt;

const CLIENT: &str = "itemslocaldevclient0000000";
const CALLBACK: &str = "http://127.0.0.1:3000/";
const OTHER_CALLBACK: &str = "http://localhost:8080/app/callback?tenant=1";
const ISSUER: &str = "https://dev-idp.items-api.localhost";
// RFC 7636, appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const PASSWORD: &str = "correct horse battery";

struct Fixture {
    ui: Arc<HostedUi>,
    app: Router,
    idp: Arc<DevIdentityProvider>,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture_with(edit: impl FnOnce(&mut HostedUiConfig)) -> Fixture {
    let dir = std::env::temp_dir().join(format!("items-hosted-ui-{}", uuid::Uuid::new_v4().simple()));
    let users = UserStore::in_dir(&dir);
    users.add("alice", PASSWORD, false).unwrap();
    let idp = Arc::new(DevIdentityProvider::ephemeral(ISSUER).unwrap());
    let mut config = HostedUiConfig::new(CLIENT, vec![CALLBACK.into(), OTHER_CALLBACK.into()], users);
    edit(&mut config);
    let ui = Arc::new(HostedUi::new(config, idp.clone()).unwrap());
    Fixture { app: hosted_ui::router(ui.clone()), ui, idp, dir }
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).map(|v| v.to_str().unwrap()).unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn send(app: &Router, method: Method, uri: &str, form: Option<&str>) -> Reply {
    send_with_cookie(app, method, uri, form, None).await
}

async fn send_with_cookie(app: &Router, method: Method, uri: &str, form: Option<&str>, cookie: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if form.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let request = request.body(Body::from(form.unwrap_or_default().to_owned())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = String::from_utf8(to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    Reply { status, headers, body }
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        out.append_pair(name, value);
    }
    out.finish()
}

fn code_request(redirect_uri: &str) -> String {
    query(&[
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", redirect_uri),
        ("scope", "openid items/read items/write"),
        ("state", "s-123"),
        ("code_challenge_method", "S256"),
        ("code_challenge", CHALLENGE),
    ])
}

/// Parameters of a URL's query (or, with `fragment`, its fragment).
fn url_params(url: &str, fragment: bool) -> HashMap<String, String> {
    let url = url::Url::parse(url).unwrap();
    let part = if fragment {
        url.fragment().unwrap_or_default().to_owned()
    } else {
        url.query().unwrap_or_default().to_owned()
    };
    url::form_urlencoded::parse(part.as_bytes()).into_owned().collect()
}

/// The form's CSRF token (its hidden field).
fn form_token(page: &str) -> String {
    let start = page.find(r#"name="_csrf" value=""#).expect("a CSRF field") + r#"name="_csrf" value=""#.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// The `name=value` of a `Set-Cookie`.
fn set_cookie(reply: &Reply) -> String {
    let cookie = reply.headers[header::SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// Opens the sign-in form and posts it, as a browser does (its cookie and token).
async fn post_form(fixture: &Fixture, request: &str, username: &str, password: &str) -> Reply {
    let form = send(&fixture.app, Method::GET, &format!("/login?{request}"), None).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let fields = query(&[("_csrf", &form_token(&form.body)), ("username", username), ("password", password)]);
    let cookie = set_cookie(&form);
    send_with_cookie(&fixture.app, Method::POST, &format!("/login?{request}"), Some(&fields), Some(&cookie)).await
}

/// Signs in through the form as alice; returns the redirect's location.
async fn sign_in(fixture: &Fixture, request: &str, password: &str) -> Reply {
    post_form(fixture, request, "alice", password).await
}

async fn code_for(fixture: &Fixture, redirect_uri: &str) -> String {
    let reply = sign_in(fixture, &code_request(redirect_uri), PASSWORD).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    url_params(reply.location(), false)["code"].clone()
}

async fn token(fixture: &Fixture, fields: &[(&str, &str)]) -> Reply {
    send(&fixture.app, Method::POST, "/oauth2/token", Some(&query(fields))).await
}

fn exchange<'a>(code: &'a str, redirect_uri: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ]
}

/// Verifies a token's signature with the IdP's JWKS and returns its claims.
fn verified_claims(idp: &DevIdentityProvider, token: &str) -> Value {
    let jwks: JwkSet = serde_json::from_value(idp.jwks()).unwrap();
    let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.set_issuer(&[ISSUER]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims
}

fn unverified_claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[test]
fn configured_redirect_uris_are_checked() {
    assert!(check_redirect_uri("http://localhost:3000/").is_ok());
    assert!(check_redirect_uri("https://app.example.com/callback?x=1").is_ok());
    assert!(check_redirect_uri("localhost:3000/").is_err(), "not absolute");
    assert!(check_redirect_uri("/callback").is_err());
    assert!(check_redirect_uri("javascript:alert(1)").is_err());
    assert!(check_redirect_uri("ftp://example.com/").is_err());
    assert!(check_redirect_uri("http://localhost:3000/#x").is_err(), "fragments are for tokens");
    let dir = std::env::temp_dir();
    let idp = Arc::new(DevIdentityProvider::ephemeral(ISSUER).unwrap());
    let none = HostedUiConfig::new(CLIENT, vec![], UserStore::in_dir(&dir));
    assert!(HostedUi::new(none, idp.clone()).is_err());
    let bad = HostedUiConfig::new(CLIENT, vec!["nope".into()], UserStore::in_dir(&dir));
    assert!(HostedUi::new(bad, idp).is_err());
}

#[test]
fn the_allowlist_is_exact() {
    let fixture = fixture();
    let allowed = |uri: &str| {
        let params = Params::parse(&code_request(uri)).unwrap();
        !matches!(fixture.ui.authorize(&params), Err(AuthorizeError::Page { .. }))
    };
    assert!(allowed(CALLBACK));
    assert!(allowed(OTHER_CALLBACK));
    for wrong in [
        "http://127.0.0.1:3000",
        "http://127.0.0.1:3000/?x=1",
        "http://127.0.0.1:3000/#",
        "http://127.0.0.1:3001/",
        "https://127.0.0.1:3000/",
        "http://127.0.0.1:3000//",
        "http://127.0.0.1:3000/evil",
        "HTTP://127.0.0.1:3000/",
        "http://localhost:8080/app/callback",
        "http://localhost:8080/app/callback?tenant=1&x=2",
        "http://evil.example/",
        "",
    ] {
        assert!(!allowed(wrong), "{wrong:?} must be refused");
    }
}

#[tokio::test]
async fn code_flow_with_pkce_issues_access_id_and_refresh_tokens() {
    let fixture = fixture();
    let request = code_request(CALLBACK);

    let authorize = send(&fixture.app, Method::GET, &format!("/oauth2/authorize?{request}"), None).await;
    assert_eq!(authorize.status, StatusCode::FOUND);
    assert_eq!(authorize.location(), format!("/login?{request}"));

    let form = send(&fixture.app, Method::GET, authorize.location(), None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains(r#"<form method="post" action="/login?response_type=code&amp;client_id="#),
        "{}",
        form.body
    );
    assert!(form.body.contains(r#"<label for="password">Password</label>"#));
    let csp = form.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:3000 http://localhost:8080;"), "{csp}");
    assert!(!csp.contains("script-src"), "the Hosted UI runs no script");
    assert_eq!(form.headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(form.headers[header::X_FRAME_OPTIONS], "DENY");

    let wrong = sign_in(&fixture, &request, "wrong password!").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Incorrect username or password."));
    assert!(wrong.headers.get(header::LOCATION).is_none());
    let unknown = post_form(&fixture, &request, "carol", PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED, "unknown users get the same answer");
    assert!(unknown.body.contains("Incorrect username or password."));

    let signed_in = sign_in(&fixture, &request, PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::FOUND);
    assert!(signed_in.location().starts_with("http://127.0.0.1:3000/?code="), "{}", signed_in.location());
    let returned = url_params(signed_in.location(), false);
    assert_eq!(returned["state"], "s-123");
    let code = &returned["code"];

    let reply = token(&fixture, &exchange(code, CALLBACK, VERIFIER)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let tokens = reply.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);

    let access = verified_claims(&fixture.idp, tokens["access_token"].as_str().unwrap());
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["client_id"], CLIENT);
    assert_eq!(access["username"], "alice");
    assert_eq!(access["sub"], dev_subject("alice"), "the same sub as `items token --username alice`");
    assert_eq!(access["scope"], "openid items/read items/write");
    assert!(access.get("aud").is_none(), "Cognito access tokens have no aud");

    let id = verified_claims(&fixture.idp, tokens["id_token"].as_str().unwrap());
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["aud"], CLIENT);
    assert_eq!(id["sub"], access["sub"]);
    assert_eq!(id["cognito:username"], "alice");

    // Single use: the same exchange again fails.
    let again = token(&fixture, &exchange(code, CALLBACK, VERIFIER)).await;
    assert_eq!((again.status, again.json()), (StatusCode::BAD_REQUEST, serde_json::json!({"error": "invalid_grant"})));

    // Refresh: new access and id tokens, no new refresh token (as Cognito).
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let refresh = [("grant_type", "refresh_token"), ("client_id", CLIENT), ("refresh_token", refresh_token)];
    let refreshed = token(&fixture, &refresh).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let refreshed = refreshed.json();
    assert_ne!(refreshed["access_token"], tokens["access_token"]);
    assert!(refreshed.get("refresh_token").is_none());
    assert_eq!(verified_claims(&fixture.idp, refreshed["access_token"].as_str().unwrap())["username"], "alice");

    // Revoked: the refresh token stops working.
    let revoked = send(
        &fixture.app,
        Method::POST,
        "/oauth2/revoke",
        Some(&query(&[("token", refresh_token), ("client_id", CLIENT)])),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let after = token(&fixture, &refresh).await;
    assert_eq!(after.json(), serde_json::json!({"error": "invalid_grant"}));
}

#[tokio::test]
async fn implicit_flow_puts_the_tokens_in_the_fragment() {
    let fixture = fixture();
    let request = query(&[
        ("response_type", "token"),
        ("client_id", CLIENT),
        ("redirect_uri", OTHER_CALLBACK),
        ("scope", "items/read"),
        ("state", "xyz"),
    ]);
    let reply = sign_in(&fixture, &request, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let location = reply.location();
    assert!(location.starts_with("http://localhost:8080/app/callback?tenant=1#access_token="), "{location}");
    let fragment = url_params(location, true);
    assert_eq!(fragment["token_type"], "Bearer");
    assert_eq!(fragment["expires_in"], "3600");
    assert_eq!(fragment["state"], "xyz");
    assert!(!fragment.contains_key("id_token"), "no id token without openid");
    assert!(!fragment.contains_key("refresh_token"), "never a refresh token in the implicit flow");
    let access = verified_claims(&fixture.idp, &fragment["access_token"]);
    assert_eq!(access["scope"], "items/read");

    let with_openid = request.replace("scope=items%2Fread", "scope=openid+items%2Fread");
    let fragment = url_params(sign_in(&fixture, &with_openid, PASSWORD).await.location(), true);
    assert_eq!(unverified_claims(&fragment["id_token"])["token_use"], "id");
}

#[tokio::test]
async fn a_bad_client_or_redirect_uri_gets_an_error_page_and_no_redirect() {
    let fixture = fixture();
    let cases = [
        (code_request("http://evil.example/"), "redirect_mismatch"),
        (code_request(""), "redirect_mismatch"),
        (code_request("http://127.0.0.1:3000/callback"), "redirect_mismatch"),
        (code_request(CALLBACK).replace(CLIENT, "someotherclient"), "invalid_client"),
        (code_request(CALLBACK).replace(&format!("client_id={CLIENT}&"), ""), "invalid_client"),
        (format!("{}&client_id={CLIENT}", code_request(CALLBACK)), "invalid_request"),
    ];
    for (request, error) in cases {
        for (method, path) in [(Method::GET, "/oauth2/authorize"), (Method::GET, "/login"), (Method::POST, "/login")] {
            let form = (method == Method::POST).then(|| query(&[("username", "alice"), ("password", PASSWORD)]));
            let reply = send(&fixture.app, method.clone(), &format!("{path}?{request}"), form.as_deref()).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {path}?{request}");
            assert!(reply.headers.get(header::LOCATION).is_none(), "{method} {path}?{request}");
            assert!(reply.body.contains(error), "{method} {path}?{request}: {}", reply.body);
            assert!(reply.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        }
    }
    let mismatch =
        send(&fixture.app, Method::GET, &format!("/oauth2/authorize?{}", code_request("http://evil.example/")), None)
            .await;
    assert!(mismatch.body.contains("http://evil.example/"), "names the refused URL");
    assert!(mismatch.body.contains(CALLBACK), "lists the allowed ones");
    assert!(mismatch.body.contains("--redirect-uris"), "says how to allow one");
}

#[tokio::test]
async fn other_authorize_errors_go_back_to_the_redirect_uri() {
    let fixture = fixture();
    let base = code_request(CALLBACK);
    let cases = [
        (base.replace("response_type=code", "response_type=id_token"), "unsupported_response_type", false),
        (base.replace("response_type=code&", ""), "unsupported_response_type", false),
        (base.replace("openid+items%2Fread", "openid+admin"), "invalid_scope", false),
        (base.replace("code_challenge_method=S256", "code_challenge_method=plain"), "invalid_request", false),
        (base.replace(&format!("&code_challenge={CHALLENGE}"), ""), "invalid_request", false),
        (base.replace(CHALLENGE, "too-short"), "invalid_request", false),
        (
            base.replace("response_type=code", "response_type=token").replace("openid+items%2Fread", "openid+admin"),
            "invalid_scope",
            true,
        ),
    ];
    for (request, error, in_fragment) in cases {
        let reply = send(&fixture.app, Method::GET, &format!("/oauth2/authorize?{request}"), None).await;
        assert_eq!(reply.status, StatusCode::FOUND, "{request}");
        assert!(reply.location().starts_with(CALLBACK), "{request}: {}", reply.location());
        let params = url_params(reply.location(), in_fragment);
        assert_eq!(params["error"], error, "{request}");
        assert_eq!(params["state"], "s-123", "{request}");
        assert!(!params.contains_key("code") && !params.contains_key("access_token"));
    }
}

#[tokio::test]
async fn the_token_endpoint_refuses_like_cognito() {
    let fixture = fixture();
    let expect = |reply: Reply, error: &str| {
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(reply.json(), serde_json::json!({ "error": error }));
    };

    expect(token(&fixture, &[("client_id", CLIENT), ("code", "x")]).await, "invalid_request");
    expect(token(&fixture, &[("grant_type", "password"), ("client_id", CLIENT)]).await, "unsupported_grant_type");
    // The page's public client is known, but not allowed this grant.
    expect(
        token(&fixture, &[("grant_type", "client_credentials"), ("client_id", CLIENT)]).await,
        "unauthorized_client",
    );
    expect(token(&fixture, &exchange("never-issued", CALLBACK, VERIFIER)).await, "invalid_grant");
    let no_code: Vec<_> = exchange("", CALLBACK, VERIFIER).into_iter().filter(|(k, _)| *k != "code").collect();
    expect(token(&fixture, &no_code).await, "invalid_request");

    // A wrong client is refused before the code is looked at: the code still works.
    let code = code_for(&fixture, CALLBACK).await;
    let mut other_client = exchange(&code, CALLBACK, VERIFIER);
    other_client[1].1 = "someotherclient";
    expect(token(&fixture, &other_client).await, "invalid_client");
    assert_eq!(token(&fixture, &exchange(&code, CALLBACK, VERIFIER)).await.status, StatusCode::OK, "not used by that");

    // Wrong verifier, then the right one: the code was used up by the first attempt.
    let code = code_for(&fixture, CALLBACK).await;
    expect(
        token(&fixture, &exchange(&code, CALLBACK, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK")).await,
        "invalid_grant",
    );
    expect(token(&fixture, &exchange(&code, CALLBACK, VERIFIER)).await, "invalid_grant");

    // Missing verifier.
    let code = code_for(&fixture, CALLBACK).await;
    let no_verifier: Vec<_> =
        exchange(&code, CALLBACK, VERIFIER).into_iter().filter(|(k, _)| *k != "code_verifier").collect();
    expect(token(&fixture, &no_verifier).await, "invalid_grant");

    // Another (even allowed) redirect URI than the one the code was issued for.
    let code = code_for(&fixture, CALLBACK).await;
    expect(token(&fixture, &exchange(&code, OTHER_CALLBACK, VERIFIER)).await, "invalid_grant");

    // Not a form.
    let json = Request::builder()
        .method(Method::POST)
        .uri("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"grant_type":"authorization_code"}"#))
        .unwrap();
    let response = fixture.app.clone().oneshot(json).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Repeated parameters.
    let code = code_for(&fixture, CALLBACK).await;
    let mut repeated = exchange(&code, CALLBACK, VERIFIER);
    repeated.push(("code", "other"));
    expect(token(&fixture, &repeated).await, "invalid_request");

    expect(token(&fixture, &[("grant_type", "refresh_token"), ("client_id", CLIENT)]).await, "invalid_request");
    expect(
        token(&fixture, &[("grant_type", "refresh_token"), ("client_id", CLIENT), ("refresh_token", "made-up")]).await,
        "invalid_grant",
    );
}

#[tokio::test]
async fn codes_expire() {
    let short = fixture_with(|config| config.code_ttl = Duration::from_millis(50));
    let code = code_for(&short, CALLBACK).await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    let reply = token(&short, &exchange(&code, CALLBACK, VERIFIER)).await;
    assert_eq!(reply.json(), serde_json::json!({"error": "invalid_grant"}));

    // And directly, with a clock of our choosing.
    let fixture = fixture();
    let code = code_for(&fixture, CALLBACK).await;
    let params = Params::parse(&query(&exchange(&code, CALLBACK, VERIFIER))).unwrap();
    let later = Instant::now() + hosted_ui::DEFAULT_CODE_TTL + Duration::from_secs(1);
    assert_eq!(fixture.ui.token(&params, None, later), Err(TokenError::InvalidGrant));
}

#[tokio::test]
async fn refresh_tokens_expire() {
    let fixture = fixture_with(|config| config.refresh_ttl = Duration::from_secs(60));
    let code = code_for(&fixture, CALLBACK).await;
    let tokens = token(&fixture, &exchange(&code, CALLBACK, VERIFIER)).await.json();
    let refresh = query(&[
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ]);
    let params = Params::parse(&refresh).unwrap();
    assert!(fixture.ui.token(&params, None, Instant::now()).is_ok());
    assert_eq!(
        fixture.ui.token(&params, None, Instant::now() + Duration::from_secs(61)),
        Err(TokenError::InvalidGrant)
    );
}

#[tokio::test]
async fn a_refresh_token_ends_with_its_users_removal_or_password_change() {
    let fixture = fixture();
    let refresh_after = async |change: &dyn Fn()| {
        let code = code_for(&fixture, CALLBACK).await;
        let tokens = token(&fixture, &exchange(&code, CALLBACK, VERIFIER)).await.json();
        let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
        let refresh = [("grant_type", "refresh_token"), ("client_id", CLIENT), ("refresh_token", &refresh_token)];
        assert_eq!(token(&fixture, &refresh).await.status, StatusCode::OK, "before the change");
        change();
        let after = token(&fixture, &refresh).await;
        assert_eq!(after.status, StatusCode::BAD_REQUEST, "{}", after.body);
        assert_eq!(after.json()["error"], "invalid_grant");
    };
    let users = UserStore::in_dir(&fixture.dir);
    refresh_after(&|| {
        users.add("alice", "a brand new password", true).unwrap();
    })
    .await;
    let users = UserStore::in_dir(&fixture.dir);
    let sign_in_again = || users.add("alice", PASSWORD, true).unwrap();
    sign_in_again();
    refresh_after(&|| users.remove("alice").unwrap()).await;
}

#[tokio::test]
async fn token_lifetime_follows_the_settings() {
    let fixture = fixture_with(|config| config.token_ttl = Duration::from_secs(8));
    let code = code_for(&fixture, CALLBACK).await;
    let tokens = token(&fixture, &exchange(&code, CALLBACK, VERIFIER)).await.json();
    assert_eq!(tokens["expires_in"], 8);
    let claims = unverified_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 8);
}

#[tokio::test]
async fn logout_redirects_only_to_allowed_urls() {
    let fixture = fixture();
    let ok = send(
        &fixture.app,
        Method::GET,
        &format!("/logout?{}", query(&[("client_id", CLIENT), ("logout_uri", CALLBACK)])),
        None,
    )
    .await;
    assert_eq!((ok.status, ok.location()), (StatusCode::FOUND, CALLBACK));
    for params in [
        query(&[("client_id", CLIENT), ("logout_uri", "http://evil.example/")]),
        query(&[("client_id", CLIENT)]),
        query(&[("client_id", "other"), ("logout_uri", CALLBACK)]),
    ] {
        let reply = send(&fixture.app, Method::GET, &format!("/logout?{params}"), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{params}");
        assert!(reply.headers.get(header::LOCATION).is_none());
    }
}

#[tokio::test]
async fn the_token_endpoint_answers_allowed_origins_only() {
    let fixture = fixture();
    let request = |origin: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/oauth2/token")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("grant_type=authorization_code"))
            .unwrap()
    };
    let allowed = fixture.app.clone().oneshot(request("http://localhost:8080")).await.unwrap();
    assert_eq!(allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://localhost:8080");
    let other = fixture.app.clone().oneshot(request("http://evil.example")).await.unwrap();
    assert!(other.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn pages_escape_what_the_request_carries() {
    let fixture = fixture();
    let hostile = r#""><script>alert(1)</script>"#;
    let request = code_request(CALLBACK).replace("state=s-123", &query(&[("state", hostile)]));
    let form = send(&fixture.app, Method::GET, &format!("/login?{request}"), None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(!form.body.contains("<script>"), "{}", form.body);
    let wrong = post_form(&fixture, &request, hostile, "whatever password").await;
    assert!(!wrong.body.contains("<script>"), "{}", wrong.body);
    let mismatch = send(&fixture.app, Method::GET, &format!("/oauth2/authorize?{}", code_request(hostile)), None).await;
    assert!(!mismatch.body.contains("<script>"), "{}", mismatch.body);
}

#[tokio::test]
async fn the_form_carries_the_token_of_its_cookie_which_scripts_and_other_sites_never_get() {
    let fixture = fixture();
    let request = code_request(CALLBACK);
    let first = send(&fixture.app, Method::GET, &format!("/login?{request}"), None).await;
    let cookie = first.headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["Path=/login", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let cookie = set_cookie(&first);
    assert_eq!(cookie, format!("XSRF-TOKEN={}", form_token(&first.body)));

    let again = send_with_cookie(&fixture.app, Method::GET, &format!("/login?{request}"), None, Some(&cookie)).await;
    assert!(again.headers.get(header::SET_COOKIE).is_none(), "a usable cookie is kept");
    assert_eq!(format!("XSRF-TOKEN={}", form_token(&again.body)), cookie);
}

#[tokio::test]
async fn a_forged_cross_site_form_post_is_refused_and_checks_no_password() {
    let fixture = fixture();
    let request = code_request(CALLBACK);
    let login = format!("/login?{request}");
    let form = send(&fixture.app, Method::GET, &login, None).await;
    let (token, cookie) = (form_token(&form.body), set_cookie(&form));
    let other_token = form_token(&send(&fixture.app, Method::GET, &login, None).await.body);
    let fields = |csrf: &str| query(&[("_csrf", csrf), ("username", "alice"), ("password", PASSWORD)]);

    let forgeries = [
        // A page on another site: the browser sends no cookie (SameSite=Strict).
        (fields(&token), None),
        (query(&[("username", "alice"), ("password", PASSWORD)]), Some(cookie.as_str())),
        (fields(&other_token), Some(cookie.as_str())),
        (fields(""), Some("XSRF-TOKEN=")),
    ];
    for _ in 0..2 {
        for (body, cookie) in &forgeries {
            let reply = send_with_cookie(&fixture.app, Method::POST, &login, Some(body), *cookie).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{body} {cookie:?}");
            assert!(reply.headers.get(header::LOCATION).is_none(), "nobody is signed in");
            assert!(reply.body.contains("expired or was sent from another site"), "{}", reply.body);
            assert!(reply.headers.get(header::SET_COOKIE).is_some(), "a fresh form to sign in with");
        }
    }

    // Eight refused posts checked no password, so counted no failure.
    let signed_in = send_with_cookie(&fixture.app, Method::POST, &login, Some(&fields(&token)), Some(&cookie)).await;
    assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
}

/// Security review finding 5: a page on another port of this host can plant
/// the cookie (cookies ignore ports) and post a matching token; the browser's
/// Origin and Sec-Fetch-Site give it away.
#[tokio::test]
async fn a_form_post_from_another_origin_of_this_host_is_refused() {
    let fixture = fixture();
    let login = format!("/login?{}", code_request(CALLBACK));
    let form = send(&fixture.app, Method::GET, &login, None).await;
    let (token, cookie) = (form_token(&form.body), set_cookie(&form));
    let fields = query(&[("_csrf", &token), ("username", "alice"), ("password", PASSWORD)]);
    let post = |headers: &'static [(&'static str, &'static str)]| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&login)
            .header(header::HOST, "localhost:3000")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, &cookie);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        fixture.app.clone().oneshot(request.body(Body::from(fields.clone())).unwrap())
    };
    for tossed in [
        &[("origin", "http://localhost:8080")][..],
        &[("origin", "null"), ("sec-fetch-site", "same-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "http://localhost:3000"), ("sec-fetch-site", "cross-site")][..],
    ] {
        let reply = post(tossed).await.unwrap();
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{tossed:?}");
        assert!(reply.headers().get(header::LOCATION).is_none(), "nobody is signed in");
    }
    // The form posted from its own page, which sends no referrer: Chromium
    // says `Origin: null` and `Sec-Fetch-Site: same-origin`.
    for ours in [
        &[("origin", "http://localhost:3000"), ("sec-fetch-site", "same-origin")][..],
        &[("origin", "null"), ("sec-fetch-site", "same-origin")][..],
    ] {
        assert_eq!(post(ours).await.unwrap().status(), StatusCode::FOUND, "{ours:?} signs in");
    }
}

#[tokio::test]
async fn repeated_failures_lock_the_username_and_answer_429_until_the_lock_ends() {
    let fixture = fixture();
    let request = code_request(CALLBACK);
    for attempt in 1..=5 {
        let wrong = sign_in(&fixture, &request, "not the password").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }

    let locked = sign_in(&fixture, &request, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert_eq!(locked.headers[header::RETRY_AFTER], "1");
    assert!(locked.headers.get(header::LOCATION).is_none());
    assert!(locked.body.contains("Too many failed sign-ins for this username"), "{}", locked.body);
    assert!(locked.body.contains(r#"name="password""#), "the page keeps the form to try again");
    assert_eq!(post_form(&fixture, &request, "bob", "a guess").await.status, StatusCode::UNAUTHORIZED);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let after = sign_in(&fixture, &request, PASSWORD).await;
    assert_eq!(after.status, StatusCode::FOUND, "{}", after.body);
}

#[tokio::test]
async fn failures_across_usernames_hold_back_the_client_address() {
    let fixture = fixture_with(|config| config.sign_in_limits.per_address.failures_before_hold = 3);
    let request = code_request(CALLBACK);
    for name in ["ann", "ben", "cat"] {
        assert_eq!(post_form(&fixture, &request, name, "a guess").await.status, StatusCode::UNAUTHORIZED);
    }
    let held = sign_in(&fixture, &request, PASSWORD).await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(held.body.contains("from your address"), "{}", held.body);
}

const MACHINE: &str = "itemslocalmachineclient000";
const MACHINE_SECRET: &str = "a machine secret with spaces & symbols";

fn machine_fixture() -> Fixture {
    fixture_with(|config| {
        config.machine_client = Some(hosted_ui::MachineClient {
            client_id: MACHINE.into(),
            client_secret: MACHINE_SECRET.into(),
            allowed_scopes: vec!["items/read".into(), "items/write".into()],
        })
    })
}

async fn token_with_basic(fixture: &Fixture, id: &str, secret: &str, fields: &[(&str, &str)]) -> Reply {
    let encode = |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", encode(id), encode(secret)));
    let request = Request::builder()
        .method(Method::POST)
        .uri("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Body::from(query(fields)))
        .unwrap();
    let response = fixture.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = String::from_utf8(to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    Reply { status, headers, body }
}

#[tokio::test]
async fn client_credentials_give_the_machine_client_a_token_whose_sub_is_its_id() {
    let fixture = machine_fixture();
    let reply = token_with_basic(&fixture, MACHINE, MACHINE_SECRET, &[("grant_type", "client_credentials")]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let tokens = reply.json();
    assert!(tokens.get("refresh_token").is_none() && tokens.get("id_token").is_none(), "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let claims = verified_claims(&fixture.idp, tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], MACHINE);
    assert_eq!(claims["client_id"], MACHINE);
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["scope"], "items/read items/write");
    assert!(claims.get("username").is_none(), "no user behind a machine token");

    // Credentials in the form work too, and a narrower scope is granted as asked.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", MACHINE),
        ("client_secret", MACHINE_SECRET),
        ("scope", "items/read"),
    ];
    let read_only = token(&fixture, &form).await;
    assert_eq!(read_only.status, StatusCode::OK, "{}", read_only.body);
    let claims = verified_claims(&fixture.idp, read_only.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "items/read");
}

#[tokio::test]
async fn client_credentials_are_refused_like_cognito() {
    let machine = machine_fixture();
    let grant = [("grant_type", "client_credentials")];
    let cases = [
        (MACHINE, "wrong secret", &grant[..], "invalid_client"),
        ("someoneelse", MACHINE_SECRET, &grant[..], "invalid_client"),
        (CLIENT, "", &grant[..], "unauthorized_client"),
        (
            MACHINE,
            MACHINE_SECRET,
            &[("grant_type", "client_credentials"), ("scope", "items/admin")][..],
            "invalid_scope",
        ),
        (MACHINE, MACHINE_SECRET, &[("grant_type", "client_credentials"), ("scope", "openid")][..], "invalid_scope"),
    ];
    for (id, secret, fields, error) in cases {
        let reply = token_with_basic(&machine, id, secret, fields).await;
        assert_eq!(
            (reply.status, reply.json()),
            (StatusCode::BAD_REQUEST, serde_json::json!({ "error": error })),
            "{id} {fields:?}"
        );
    }
    // Without a machine client, nobody gets one.
    let plain = fixture();
    let reply = token_with_basic(&plain, MACHINE, MACHINE_SECRET, &grant).await;
    assert_eq!(reply.json(), serde_json::json!({"error": "invalid_client"}));
}

/// Security review N6: a sign-in cut off during its password check (the
/// request timeout, a client gone) still counts its failure, and holds its
/// slot until the hash ends. Before, five cut-off wrong passwords left no
/// trace and the right one then signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_cut_off_during_its_check_still_counts() {
    let fixture = fixture();
    let request = code_request(CALLBACK);
    // How long a wrong password takes here (the first failure): the cuts
    // come a quarter through the next four (after the check starts).
    let form = send(&fixture.app, Method::GET, &format!("/login?{request}"), None).await;
    let fields = query(&[("_csrf", &form_token(&form.body)), ("username", "alice"), ("password", "wrong")]);
    let (cookie, uri) = (set_cookie(&form), format!("/login?{request}"));
    let started = std::time::Instant::now();
    let first = send_with_cookie(&fixture.app, Method::POST, &uri, Some(&fields), Some(&cookie)).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    let cut_at = started.elapsed() / 4;
    for attempt in 2..=5 {
        let form = send(&fixture.app, Method::GET, &format!("/login?{request}"), None).await;
        let fields = query(&[("_csrf", &form_token(&form.body)), ("username", "alice"), ("password", "wrong")]);
        let cookie = set_cookie(&form);
        let uri = format!("/login?{request}");
        let post = send_with_cookie(&fixture.app, Method::POST, &uri, Some(&fields), Some(&cookie));
        // Cut off during the check, as the server's request timeout does.
        let cut = tokio::time::timeout(cut_at, post).await;
        assert!(cut.is_err(), "attempt {attempt} finished before it was cut off");
        // The check goes on without its request: wait for it to end.
        tokio::time::sleep(cut_at * 8).await;
    }
    let locked = sign_in(&fixture, &request, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "the five failures counted: {}", locked.body);
}
