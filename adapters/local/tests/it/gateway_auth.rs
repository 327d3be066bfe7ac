//! The local API Gateway on a real loopback port, its access tokens checked
//! against a JWKS served by a separate server on another port (so the issuer
//! and the JWKS URL differ, as with a Cognito user pool): the authorizer's
//! accept/reject matrix, claims reaching the handler, key rotation, forged
//! kids, JWKS outages, the gateway's own responses, and tokens kept out of logs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::jwks_server::{JwksServer, jwks_of};
use crate::support::tokens::*;
use items_aws::apigw::{ItemCommands, ItemQueries};
use items_aws::cursor::HmacCursorCodec;
use items_aws::response_headers::CorsPolicy;
use items_aws::system::{RandomIds, SystemClock};
use items_domain::memory::InMemoryReadModel;
use items_domain::service::{ChangeItemService, CreateItemService, HistoryService, ProjectorService, QueryService};
use items_local::auth::dev_idp::{DEV_CLIENT_ID, DevIdentityProvider, TokenRequest};
use items_local::auth::{AccessTokenVerifier, VerifierConfig};
use items_local::event_source_mapping::run_change_feed;
use items_local::gateway::{DEV_JWKS_PATH, Functions, GatewayConfig, router};
use items_local::volatile::VolatileEventStore;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use uuid::Uuid;

/// A Cognito-shaped issuer; the keys are served elsewhere (the JWKS server).
const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_GatewayAuthTest";
const LEEWAY_SECS: u64 = 60;
const CORS_ORIGIN: &str = "http://localhost:5173";
const UNAUTHORIZED: &str = r#"{"message":"Unauthorized"}"#;
const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;
const UNAVAILABLE: &str = r#"{"message":"Service unavailable, please retry"}"#;
const READ: &[&str] = &["items/read"];
const WRITE: &[&str] = &["items/write"];
/// A short refresh interval, and a wait safely past it.
const SHORT_REFRESH: Duration = Duration::from_millis(100);
const PAST_SHORT_REFRESH: Duration = Duration::from_millis(250);

// ------------------------------------------------------------------- gateway

struct Setup {
    client_ids: Vec<String>,
    min_jwks_refresh: Duration,
    max_jwks_age: Duration,
    cached_tokens: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            client_ids: vec![DEV_CLIENT_ID.to_owned()],
            min_jwks_refresh: Duration::from_secs(60),
            max_jwks_age: items_local::auth::jwks::DEFAULT_MAX_KEY_AGE,
            cached_tokens: items_local::auth::verifier::DEFAULT_CACHED_TOKENS,
        }
    }
}

/// The gateway as `items serve` wires it, on the embedded store, on a loopback port.
#[derive(Clone)]
struct Gateway {
    base: String,
    events: Arc<VolatileEventStore>,
    http: reqwest::Client,
    /// The same router, to call with a chosen peer address.
    router: axum::Router,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

impl Gateway {
    async fn start(jwks_url: &str, setup: Setup) -> Self {
        let events = Arc::new(VolatileEventStore::default());
        let read_model = Arc::new(InMemoryReadModel::default());
        let projector = Arc::new(ProjectorService::new(read_model.clone(), events.clone()));
        tokio::spawn(run_change_feed(events.clone(), projector, 100));
        let config = GatewayConfig {
            verifier: Arc::new(AccessTokenVerifier::new(VerifierConfig {
                issuer: ISSUER.to_owned(),
                jwks_url: jwks_url.to_owned(),
                client_ids: setup.client_ids,
                leeway: Duration::from_secs(LEEWAY_SECS),
                min_jwks_refresh: setup.min_jwks_refresh,
                max_jwks_age: setup.max_jwks_age,
                cached_tokens: setup.cached_tokens,
            })),
            functions: Functions {
                post_item: Arc::new(CreateItemService::new(events.clone(), Arc::new(SystemClock), Arc::new(RandomIds))),
                get_items: Arc::new(ItemQueries {
                    items: QueryService::new(
                        read_model,
                        Arc::new(HmacCursorCodec::new(b"gateway auth test cursor key")),
                        Arc::new(SystemClock),
                    ),
                    history: HistoryService::new(events.clone()),
                }),
                item_commands: Arc::new(ItemCommands {
                    changes: ChangeItemService::new(events.clone(), Arc::new(SystemClock), Arc::new(RandomIds)),
                    history: HistoryService::new(events.clone()),
                }),
            },
            dev_idp: None,
            cors: CorsPolicy::new([CORS_ORIGIN.to_owned()]),
            function_timeout: Duration::from_secs(5),
            public_metrics: false,
            buffered: items_local::gateway::body_budget(items_local::gateway::MAX_BUFFERED_BYTES),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = router(config);
        let app = router.clone().into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
        Self { base: format!("http://{addr}"), events, http, router }
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Reply { status, headers, body }
    }

    async fn call(&self, method: Method, authorization: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> = authorization.map(|a| ("authorization", a)).into_iter().collect();
        let body = (method == Method::POST).then_some(r#"{"name":"Pen","timestamp":"2026-01-01T00:00:00Z"}"#);
        self.send(method, "/items", &headers, body).await
    }

    /// `method path` with `authorization` and more headers.
    async fn as_caller(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let mut all = vec![("authorization", authorization)];
        all.extend_from_slice(headers);
        self.send(method, path, &all, body.as_deref()).await
    }

    async fn get_items(&self, authorization: &str) -> Reply {
        self.call(Method::GET, Some(authorization)).await
    }

    async fn post_item(&self, authorization: &str) -> Reply {
        self.call(Method::POST, Some(authorization)).await
    }
}

fn assert_uuid_request_id(reply: &Reply, context: &str) {
    let id = reply.header("x-amzn-requestid").unwrap_or_else(|| panic!("{context}: no x-amzn-requestid"));
    assert!(Uuid::parse_str(id).is_ok(), "{context}: x-amzn-requestid {id:?} is not a UUID");
}

fn assert_security_headers(reply: &Reply, context: &str) {
    assert_uuid_request_id(reply, context);
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{context}");
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{context}");
}

// ------------------------------------------------------------- 1. the matrix

struct Row {
    name: String,
    method: Method,
    authorization: Option<String>,
    status: u16,
}

fn row(name: impl Into<String>, method: Method, authorization: Option<String>, status: u16) -> Row {
    Row { name: name.into(), method, authorization, status }
}

#[tokio::test]
async fn token_matrix_accepts_only_valid_access_tokens_with_the_methods_scope() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    let gateway = Gateway::start(&jwks.url, Setup::default()).await;

    let read = issue(&idp, READ);
    let write = issue(&idp, WRITE);
    let read_write = issue(&idp, READ_WRITE);
    let (pkcs1_der, spki_pem) = public_key_encodings(&idp);
    let jwk_n = idp.jwks()["keys"][0]["n"].as_str().unwrap().to_owned();
    let stranger = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let t = now();
    let bearer = |token: &str| Some(format!("Bearer {token}"));

    use Method as M;
    let rows = vec![
        // Accepted.
        row("read token GET", M::GET, bearer(&read), 200),
        row("write token POST", M::POST, bearer(&write), 201),
        row("read+write token GET", M::GET, bearer(&read_write), 200),
        row("read+write token POST", M::POST, bearer(&read_write), 201),
        row(
            "expired 10 s ago, within leeway",
            M::GET,
            bearer(&signed_with(&idp, READ, |c| {
                c.insert("exp".into(), json!(t - 10));
            })),
            200,
        ),
        row(
            "iat 10 s ahead, within leeway",
            M::GET,
            bearer(&signed_with(&idp, READ, |c| {
                c.insert("iat".into(), json!(t + 10));
            })),
            200,
        ),
        // Token lifetime.
        row(
            "expired an hour ago",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("iat".into(), json!(t - 7200));
                c.insert("auth_time".into(), json!(t - 7200));
                c.insert("exp".into(), json!(t - 3600));
            })),
            401,
        ),
        row(
            "expired an hour ago (POST)",
            M::POST,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("exp".into(), json!(t - 3600));
            })),
            401,
        ),
        row(
            "nbf an hour ahead",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("nbf".into(), json!(t + 3600));
            })),
            401,
        ),
        row(
            "iat an hour ahead",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("iat".into(), json!(t + 3600));
                c.insert("exp".into(), json!(t + 7200));
            })),
            401,
        ),
        row(
            "no exp",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.remove("exp");
            })),
            401,
        ),
        row(
            "no iat",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.remove("iat");
            })),
            401,
        ),
        // Who issued it, for whom, what it is.
        row(
            "wrong issuer",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("iss".into(), json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_SomeoneElse"));
            })),
            401,
        ),
        row(
            "issuer with a trailing slash",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("iss".into(), json!(format!("{ISSUER}/")));
            })),
            401,
        ),
        row(
            "id token (token_use id, aud)",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("token_use".into(), json!("id"));
                c.insert("aud".into(), json!(DEV_CLIENT_ID));
                c.remove("client_id");
            })),
            401,
        ),
        row(
            "id token (POST)",
            M::POST,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("token_use".into(), json!("id"));
                c.insert("aud".into(), json!(DEV_CLIENT_ID));
            })),
            401,
        ),
        row(
            "no token_use",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.remove("token_use");
            })),
            401,
        ),
        row(
            "client_id not in the allowlist",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("client_id".into(), json!("someotherappclient00000000"));
            })),
            401,
        ),
        row(
            "client_id not in the allowlist (POST)",
            M::POST,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("client_id".into(), json!("someotherappclient00000000"));
            })),
            401,
        ),
        row(
            "no client_id with an allowlist",
            M::GET,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.remove("client_id");
            })),
            401,
        ),
        row(
            "no sub",
            M::POST,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.remove("sub");
            })),
            401,
        ),
        row(
            "empty sub",
            M::POST,
            bearer(&signed_with(&idp, READ_WRITE, |c| {
                c.insert("sub".into(), json!(""));
            })),
            401,
        ),
        // Algorithms and keys.
        row("alg none", M::GET, bearer(&unsigned(&idp, &json!({"alg": "none"}))), 401),
        row(
            "alg none with the real kid (POST)",
            M::POST,
            bearer(&unsigned(&idp, &json!({"alg": "none", "kid": idp.kid(), "typ": "JWT"}))),
            401,
        ),
        row(
            "alg None with the real kid",
            M::GET,
            bearer(&unsigned(&idp, &json!({"alg": "None", "kid": idp.kid()}))),
            401,
        ),
        row("HS256 keyed with the JWK n", M::GET, bearer(&hs256_with_public_key(&idp, jwk_n.as_bytes())), 401),
        row("HS256 keyed with the PKCS#1 DER", M::POST, bearer(&hs256_with_public_key(&idp, &pkcs1_der)), 401),
        row("HS256 keyed with the SPKI PEM", M::GET, bearer(&hs256_with_public_key(&idp, spki_pem.as_bytes())), 401),
        row(
            "RS384 header over an RS256 signature",
            M::GET,
            bearer(
                &idp.sign_with_header(
                    &json!({"alg": "RS384", "kid": idp.kid(), "typ": "JWT"}),
                    &idp.access_claims(&token_request(READ_WRITE)),
                )
                .unwrap(),
            ),
            401,
        ),
        row(
            "unknown kid",
            M::GET,
            bearer(
                &idp.sign_with_header(
                    &json!({"alg": "RS256", "kid": "not-a-published-kid", "typ": "JWT"}),
                    &idp.access_claims(&token_request(READ_WRITE)),
                )
                .unwrap(),
            ),
            401,
        ),
        row(
            "no kid",
            M::GET,
            bearer(
                &idp.sign_with_header(
                    &json!({"alg": "RS256", "typ": "JWT"}),
                    &idp.access_claims(&token_request(READ_WRITE)),
                )
                .unwrap(),
            ),
            401,
        ),
        row(
            "another key under the published kid",
            M::POST,
            bearer(
                &stranger
                    .sign_with_header(
                        &json!({"alg": "RS256", "kid": idp.kid(), "typ": "JWT"}),
                        &idp.access_claims(&token_request(READ_WRITE)),
                    )
                    .unwrap(),
            ),
            401,
        ),
        // Damaged tokens.
        row("tampered payload (sub, scope)", M::GET, bearer(&tamper_payload(&read)), 401),
        row("tampered payload (POST)", M::POST, bearer(&tamper_payload(&read)), 401),
        row("tampered signature", M::GET, bearer(&tamper_signature(&read)), 401),
        row("tampered signature (POST)", M::POST, bearer(&tamper_signature(&write)), 401),
        row("truncated token", M::GET, bearer(&read[..read.len() - 20]), 401),
        row("signature stripped (two parts)", M::GET, bearer(read.rsplit_once('.').unwrap().0), 401),
        row("empty signature", M::GET, bearer(&format!("{}.", read.rsplit_once('.').unwrap().0)), 401),
        row("four parts", M::GET, bearer(&format!("{read}.{}", parts(&read).2)), 401),
        // Authorization header shapes.
        row("no Authorization header", M::GET, None, 401),
        row("no Authorization header (POST)", M::POST, None, 401),
        row("empty Authorization header", M::GET, Some(String::new()), 401),
        row("blank Authorization header", M::POST, Some("   ".into()), 401),
        row("Bearer with no token", M::GET, Some("Bearer".into()), 401),
        row("Bearer and spaces", M::GET, Some("Bearer    ".into()), 401),
        row("garbage abc.def.ghi", M::GET, bearer("abc.def.ghi"), 401),
        row("garbage raw abc.def.ghi", M::POST, Some("abc.def.ghi".into()), 401),
        row("garbage `not a token`", M::GET, Some("not a token".into()), 401),
        row("Bearer <token>", M::GET, bearer(&read), 200),
        row("bearer <token>", M::GET, Some(format!("bearer {read}")), 200),
        row("BEARER <token>", M::POST, Some(format!("BEARER {write}")), 201),
        row("raw <token> (classic clients)", M::GET, Some(read.clone()), 200),
        row("raw <token> (classic clients, POST)", M::POST, Some(write.clone()), 201),
        row("extra whitespace around and inside", M::GET, Some(format!("  Bearer   {read}  ")), 200),
        row("tab between scheme and token", M::POST, Some(format!("Bearer\t{write}")), 201),
        row("Basic <token>", M::GET, Some(format!("Basic {read}")), 401),
        row("Basic <token> (POST)", M::POST, Some(format!("Basic {write}")), 401),
        row("Bearer Bearer <token>", M::GET, Some(format!("Bearer Bearer {read}")), 401),
        row("two tokens", M::GET, Some(format!("Bearer {read} {read}")), 401),
        // Scopes.
        row("write-only token GET", M::GET, bearer(&write), 403),
        row("read-only token POST", M::POST, bearer(&read), 403),
        row("no scope GET", M::GET, bearer(&issue(&idp, &[])), 403),
        row("no scope POST", M::POST, bearer(&issue(&idp, &[])), 403),
        row(
            "scope claim absent",
            M::GET,
            bearer(&signed_with(&idp, READ, |c| {
                c.remove("scope");
            })),
            403,
        ),
        row("scope items/reader", M::GET, bearer(&issue(&idp, &["items/reader"])), 403),
        row("scope ITEMS/WRITE", M::POST, bearer(&issue(&idp, &["ITEMS/WRITE"])), 403),
        row(
            "scope of another API",
            M::POST,
            bearer(&issue(&idp, &["orders/write", "aws.cognito.signin.user.admin"])),
            403,
        ),
    ];
    let mut failures = Vec::new();
    for row in &rows {
        let before = gateway.events.len();
        let reply = gateway.call(row.method.clone(), row.authorization.as_deref()).await;
        let after = gateway.events.len();
        let mut problems = Vec::new();
        if reply.status != row.status {
            problems.push(format!("status {} (expected {})", reply.status, row.status));
        }
        if reply.status >= 500 {
            problems.push("server error".to_owned());
        }
        match reply.status {
            401 if reply.body != UNAUTHORIZED => problems.push(format!("401 body {}", reply.body)),
            403 if reply.body != FORBIDDEN => problems.push(format!("403 body {}", reply.body)),
            200 if !reply.json().is_array() => problems.push(format!("200 body {}", reply.body)),
            201 if reply.json()["message"] != "Item stored" => problems.push(format!("201 body {}", reply.body)),
            _ => {}
        }
        if matches!(reply.status, 401 | 403) && reply.header("content-type") != Some("application/json") {
            problems.push(format!("content-type {:?}", reply.header("content-type")));
        }
        let stored = if row.method == Method::POST && reply.status == 201 { 1 } else { 0 };
        if after != before + stored {
            problems.push(format!("events {before} -> {after}"));
        }
        if reply.header("x-amzn-requestid").is_none() {
            problems.push("no x-amzn-requestid".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!("row `{}` ({}): {}", row.name, row.method, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
    // One fetch for the first token; unknown kids within the refresh interval add none.
    assert_eq!(jwks.hits(), 1, "JWKS fetches");
}

// ------------------------------------------------ 2. claims reach the handler

#[tokio::test]
async fn the_handler_sees_the_tokens_sub_as_the_creator() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    let gateway = Gateway::start(&jwks.url, Setup::default()).await;
    let subject = Uuid::new_v4().to_string();
    let token = idp
        .issue_access_token(&TokenRequest {
            subject: subject.clone(),
            username: "bob".into(),
            ..token_request(READ_WRITE)
        })
        .unwrap();

    let created = gateway.post_item(&format!("Bearer {token}")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let item = created.json()["item"].clone();
    assert_eq!(item["createdBy"], json!(subject), "{item}");
    assert_eq!(item["name"], json!("Pen"));
    let location = created.header("location").expect("Location").to_owned();
    assert_eq!(location, format!("/items/{}", item["id"].as_str().unwrap()));

    // Through the change feed to the read model, and back via GET.
    let started = Instant::now();
    let fetched = loop {
        let reply = gateway.send(Method::GET, &location, &[("authorization", &token)], None).await;
        if reply.status != 404 || started.elapsed() > Duration::from_secs(3) {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.json()["createdBy"], json!(subject));
    assert_eq!(fetched.json()["id"], item["id"]);
}

#[tokio::test]
async fn item_routes_reach_the_commands_function_with_each_methods_scope() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    let gateway = Gateway::start(&jwks.url, Setup::default()).await;
    let owner = format!("Bearer {}", issue(&idp, READ_WRITE));
    let reader = format!("Bearer {}", issue(&idp, READ));
    let stranger = format!(
        "Bearer {}",
        signed_with(&idp, READ_WRITE, |c| {
            c.insert("sub".into(), json!(Uuid::new_v4().to_string()));
        })
    );
    // A JSON array claim, as Cognito puts it in the token: the gateway hands it
    // on as API Gateway does, as text, and the handler reads it.
    let admin = format!(
        "Bearer {}",
        signed_with(&idp, READ_WRITE, |c| {
            c.insert("sub".into(), json!(Uuid::new_v4().to_string()));
            c.insert("cognito:groups".into(), json!(["items-admins"]));
        })
    );

    let created = gateway.post_item(&owner).await;
    let id = created.json()["item"]["id"].as_str().unwrap().to_owned();
    let item = format!("/items/{id}");
    let rename = |name: &str| format!(r#"{{"name":"{name}"}}"#);
    let no_scope = gateway.as_caller(Method::PATCH, &item, &reader, &[], Some(rename("Ink"))).await;
    assert_eq!((no_scope.status, no_scope.body.as_str()), (403, FORBIDDEN), "the gateway checks items/write");
    let not_owner = gateway.as_caller(Method::DELETE, &item, &stranger, &[], None).await;
    assert_eq!(not_owner.status, 403, "{}", not_owner.body);
    assert!(not_owner.body.contains("items-admins"), "the handler's answer: {}", not_owner.body);

    let renamed = gateway.as_caller(Method::PATCH, &item, &owner, &[("if-match", "\"1\"")], Some(rename("Ink"))).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.header("etag"), Some("\"2\""));
    assert_eq!(renamed.json()["name"], "Ink");
    let stale = gateway.as_caller(Method::PATCH, &item, &owner, &[("if-match", "\"1\"")], Some(rename("Nib"))).await;
    assert_eq!((stale.status, stale.json()["currentVersion"].as_u64()), (412, Some(2)));

    let history = gateway.as_caller(Method::GET, &format!("{item}/events"), &reader, &[], None).await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(history.json().as_array().map(Vec::len), Some(2));

    let deleted = gateway.as_caller(Method::DELETE, &item, &admin, &[], None).await;
    assert_eq!(deleted.status, 204, "an items-admins member may delete anyone's item: {}", deleted.body);
    let history = gateway.as_caller(Method::GET, &format!("{item}/events"), &reader, &[], None).await;
    assert_eq!(history.json()[2]["type"], "ItemDeleted");

    let allowed = gateway.send(Method::OPTIONS, &item, &[("origin", CORS_ORIGIN)], None).await;
    assert_eq!(allowed.header("allow"), Some("GET, PATCH, DELETE, OPTIONS"));
    assert!(allowed.header("access-control-allow-headers").is_some_and(|h| h.contains("If-Match")));
    let wrong_method = gateway.as_caller(Method::PUT, &item, &owner, &[], Some(rename("Ink"))).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(gateway.as_caller(Method::POST, &format!("{item}/events"), &owner, &[], None).await.status, 405);
}

// --------------------------------------------------------- 3. key rotation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_removed_from_the_jwks_stops_verifying_after_the_maximum_age() {
    let key_a = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let key_b = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&key_a, &key_b])).await;
    let setup = Setup { min_jwks_refresh: SHORT_REFRESH, max_jwks_age: SHORT_REFRESH, ..Setup::default() };
    let gateway = Gateway::start(&jwks.url, setup).await;
    let token_a = format!("Bearer {}", issue(&key_a, READ));
    assert_eq!(gateway.get_items(&token_a).await.status, 200);

    jwks.set_keys(jwks_of(&[&key_b]));
    assert_eq!(gateway.get_items(&token_a).await.status, 200, "still within the maximum age");
    tokio::time::sleep(PAST_SHORT_REFRESH).await;
    assert_eq!(gateway.get_items(&token_a).await.status, 401, "refetched: key A is gone");
    assert_eq!(gateway.get_items(&format!("Bearer {}", issue(&key_b, READ))).await.status, 200);

    // Past the maximum age with the JWKS down, the cached keys keep working.
    tokio::time::sleep(PAST_SHORT_REFRESH).await;
    jwks.set_failing(true);
    assert_eq!(gateway.get_items(&format!("Bearer {}", issue(&key_b, READ))).await.status, 200);
}

// ------------------------------------------------- verified-token cache

fn verifier_for(jwks_url: &str, max_jwks_age: Duration) -> AccessTokenVerifier {
    AccessTokenVerifier::new(VerifierConfig {
        issuer: ISSUER.to_owned(),
        jwks_url: jwks_url.to_owned(),
        client_ids: vec![DEV_CLIENT_ID.to_owned()],
        leeway: Duration::from_secs(LEEWAY_SECS),
        min_jwks_refresh: SHORT_REFRESH,
        max_jwks_age,
        cached_tokens: items_local::auth::verifier::DEFAULT_CACHED_TOKENS,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_token_is_cached_until_its_key_leaves_the_jwks() {
    let key_a = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let key_b = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&key_a, &key_b])).await;
    let verifier = verifier_for(&jwks.url, SHORT_REFRESH);
    let token = issue(&key_a, READ);

    let first = verifier.verify(&token).await.unwrap();
    let again = verifier.verify(&token).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "the second request is answered from the cache");
    assert_eq!(verifier.cached_tokens(), 1);
    assert!(verifier.verify(&tamper_signature(&token)).await.is_err(), "only the exact token hits");

    jwks.set_keys(jwks_of(&[&key_b]));
    tokio::time::sleep(PAST_SHORT_REFRESH).await;
    assert!(verifier.verify(&token).await.is_err(), "key A left the JWKS: the cached token goes with it");
    assert_eq!(verifier.cached_tokens(), 0);
}

#[tokio::test]
async fn a_cache_hit_still_needs_the_routes_scope() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    let gateway = Gateway::start(&jwks.url, Setup::default()).await;
    let read_only = format!("Bearer {}", issue(&idp, READ));
    for _ in 0..3 {
        assert_eq!(gateway.get_items(&read_only).await.status, 200);
        let reply = gateway.post_item(&read_only).await;
        assert_eq!((reply.status, reply.body.as_str()), (403, FORBIDDEN));
    }
    assert!(gateway.events.is_empty());
    let write_only = format!("Bearer {}", issue(&idp, WRITE));
    for _ in 0..3 {
        assert_eq!(gateway.post_item(&write_only).await.status, 201);
        assert_eq!(gateway.get_items(&write_only).await.status, 403);
    }
    assert_eq!(jwks.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_that_redirects_is_not_followed() {
    let key = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let real = JwksServer::start(jwks_of(&[&key])).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let moved = format!("http://{}/moved/jwks.json", listener.local_addr().unwrap());
    let target = real.url.clone();
    let app = axum::Router::new().route(
        "/moved/jwks.json",
        axum::routing::get(move || async move { axum::response::Redirect::temporary(&target) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let gateway = Gateway::start(&moved, Setup::default()).await;
    let reply = gateway.get_items(&format!("Bearer {}", issue(&key, READ))).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(real.hits(), 0, "the redirect was not followed");
}

#[test]
fn a_jwks_url_off_this_machine_must_be_https() {
    use items_local::auth::jwks::check_jwks_url;
    assert!(check_jwks_url("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_x/.well-known/jwks.json").is_ok());
    for local in ["http://127.0.0.1:3000/jwks.json", "http://localhost:8080/k", "http://[::1]:9/k"] {
        assert!(check_jwks_url(local).is_ok(), "{local}");
    }
    for refused in ["http://cognito-idp.eu-west-1.amazonaws.com/x/.well-known/jwks.json", "ftp://x/k", "not a url"] {
        assert!(check_jwks_url(refused).is_err(), "{refused}");
    }
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_without_a_restart() {
    let key_a = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&key_a])).await;
    let gateway = Gateway::start(&jwks.url, Setup { min_jwks_refresh: SHORT_REFRESH, ..Setup::default() }).await;

    let reply = gateway.get_items(&format!("Bearer {}", issue(&key_a, READ))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(jwks.hits(), 1);

    let key_b = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    assert_ne!(key_a.kid(), key_b.kid());
    jwks.set_keys(jwks_of(&[&key_a, &key_b]));
    tokio::time::sleep(PAST_SHORT_REFRESH).await;

    let reply = gateway.get_items(&format!("Bearer {}", issue(&key_b, READ))).await;
    assert_eq!(reply.status, 200, "key B after the refresh interval: {}", reply.body);
    assert_eq!(jwks.hits(), 2, "one refresh for the new kid");
    let reply = gateway.post_item(&format!("Bearer {}", issue(&key_b, WRITE))).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = gateway.post_item(&format!("Bearer {}", issue(&key_a, WRITE))).await;
    assert_eq!(reply.status, 201, "key A still published: {}", reply.body);
    assert_eq!(jwks.hits(), 2, "cached keys need no fetch");
    assert_eq!(gateway.events.len(), 2);
}

// ------------------------------------------------------ 4. forged-kid storm

#[tokio::test]
async fn forged_kids_do_not_cause_a_jwks_fetch_storm() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    let gateway = Gateway::start(&jwks.url, Setup::default()).await;
    let valid = format!("Bearer {}", issue(&idp, READ));

    let reply = gateway.get_items(&valid).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(jwks.hits(), 1);

    let claims = idp.access_claims(&token_request(READ_WRITE));
    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let kid = Uuid::new_v4().to_string();
        let token = idp.sign_with_header(&json!({"alg": "RS256", "kid": kid, "typ": "JWT"}), &claims).unwrap();
        let gateway = gateway.clone();
        storm.spawn(async move { gateway.get_items(&format!("Bearer {token}")).await });
    }
    let replies = storm.join_all().await;
    assert_eq!(replies.len(), 20);
    for reply in &replies {
        assert_eq!((reply.status, reply.body.as_str()), (401, UNAUTHORIZED));
    }
    let hits = jwks.hits();
    assert!(hits <= 2, "{hits} JWKS fetches for 20 forged kids (at most 1 beyond the initial one)");

    let reply = gateway.get_items(&valid).await;
    assert_eq!(reply.status, 200, "the real key still works after the storm");
    assert_eq!(jwks.hits(), hits);
}

#[tokio::test]
async fn forged_kids_on_a_cold_cache_fetch_the_jwks_once() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    let gateway = Gateway::start(&jwks.url, Setup::default()).await;
    let claims = idp.access_claims(&token_request(READ_WRITE));

    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let kid = Uuid::new_v4().to_string();
        let token = idp.sign_with_header(&json!({"alg": "RS256", "kid": kid, "typ": "JWT"}), &claims).unwrap();
        let gateway = gateway.clone();
        storm.spawn(async move { gateway.post_item(&format!("Bearer {token}")).await });
    }
    for reply in storm.join_all().await {
        assert_eq!((reply.status, reply.body.as_str()), (401, UNAUTHORIZED));
    }
    assert_eq!(jwks.hits(), 1, "one fetch (the initial one) for 20 concurrent forged kids");
    assert!(gateway.events.is_empty());
    // The fetch cached the real key.
    let reply = gateway.post_item(&format!("Bearer {}", issue(&idp, WRITE))).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(jwks.hits(), 1);
}

// ----------------------------------------------------------- 5. JWKS outage

#[tokio::test]
async fn without_cached_keys_a_jwks_outage_answers_503_then_recovers() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    jwks.set_failing(true);
    let gateway = Gateway::start(&jwks.url, Setup { min_jwks_refresh: SHORT_REFRESH, ..Setup::default() }).await;
    let read = format!("Bearer {}", issue(&idp, READ));
    let write = format!("Bearer {}", issue(&idp, WRITE));

    let reply = gateway.get_items(&read).await;
    assert_eq!((reply.status, reply.body.as_str()), (503, UNAVAILABLE));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_security_headers(&reply, "503");
    let reply = gateway.post_item(&write).await;
    assert_eq!((reply.status, reply.body.as_str()), (503, UNAVAILABLE));
    assert!(gateway.events.is_empty(), "nothing stored during the outage");
    assert!(jwks.hits() >= 1);

    // A token that is not even well-formed needs no keys: still 401.
    let reply = gateway.get_items("Bearer abc.def.ghi").await;
    assert_eq!((reply.status, reply.body.as_str()), (401, UNAUTHORIZED));
    let reply = gateway.call(Method::GET, None).await;
    assert_eq!((reply.status, reply.body.as_str()), (401, UNAUTHORIZED));

    // The endpoint is back: the next fetch after the interval succeeds.
    jwks.set_failing(false);
    tokio::time::sleep(PAST_SHORT_REFRESH).await;
    let reply = gateway.get_items(&read).await;
    assert_eq!(reply.status, 200, "after recovery: {}", reply.body);
    let reply = gateway.post_item(&write).await;
    assert_eq!(reply.status, 201, "after recovery: {}", reply.body);
    assert_eq!(gateway.events.len(), 1);
}

#[tokio::test]
async fn an_unreachable_jwks_endpoint_answers_503() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    // A port nobody listens on any more.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let gateway = Gateway::start(&format!("http://{closed}/.well-known/jwks.json"), Setup::default()).await;

    let reply = gateway.get_items(&format!("Bearer {}", issue(&idp, READ))).await;
    assert_eq!((reply.status, reply.body.as_str()), (503, UNAVAILABLE));
    let reply = gateway.post_item(&format!("Bearer {}", issue(&idp, WRITE))).await;
    assert_eq!((reply.status, reply.body.as_str()), (503, UNAVAILABLE));
    assert!(gateway.events.is_empty());
}

#[tokio::test]
async fn cached_keys_keep_working_through_a_jwks_outage() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    let gateway = Gateway::start(&jwks.url, Setup { min_jwks_refresh: SHORT_REFRESH, ..Setup::default() }).await;
    let read = format!("Bearer {}", issue(&idp, READ));
    let write = format!("Bearer {}", issue(&idp, WRITE));

    let reply = gateway.get_items(&read).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(jwks.hits(), 1);

    jwks.set_failing(true);
    tokio::time::sleep(PAST_SHORT_REFRESH).await;
    let reply = gateway.get_items(&read).await;
    assert_eq!(reply.status, 200, "cached key during the outage: {}", reply.body);
    let reply = gateway.post_item(&write).await;
    assert_eq!(reply.status, 201, "cached key during the outage: {}", reply.body);

    // An unknown kid forces a refresh, which fails: that kid cannot be checked (503) ...
    let forged = idp
        .sign_with_header(
            &json!({"alg": "RS256", "kid": "rotated-in-during-the-outage", "typ": "JWT"}),
            &idp.access_claims(&token_request(READ)),
        )
        .unwrap();
    let reply = gateway.get_items(&format!("Bearer {forged}")).await;
    assert_eq!((reply.status, reply.body.as_str()), (503, UNAVAILABLE));
    assert_eq!(jwks.hits(), 2, "the unknown kid tried one refresh");
    // ... and the failed refresh did not drop the cached key.
    let reply = gateway.get_items(&read).await;
    assert_eq!(reply.status, 200, "cached key after a failed refresh: {}", reply.body);
    let reply = gateway.post_item(&write).await;
    assert_eq!(reply.status, 201, "cached key after a failed refresh: {}", reply.body);
    assert_eq!(gateway.events.len(), 2);
}

// ------------------------------------------------------- 6. gateway behaviour

#[tokio::test]
async fn gateway_routes_headers_and_cors() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    let gateway = Gateway::start(&jwks.url, Setup::default()).await;
    let read = format!("Bearer {}", issue(&idp, READ));
    let write_only = format!("Bearer {}", issue(&idp, WRITE));

    let not_found = gateway.send(Method::GET, "/nope", &[], None).await;
    assert_eq!((not_found.status, not_found.json()), (404, json!({"message": "Not found"})));
    let not_found_with_token = gateway.send(Method::GET, "/nope", &[("authorization", &read)], None).await;
    assert_eq!(not_found_with_token.status, 404);
    // No development JWKS on this gateway.
    let dev_jwks = gateway.send(Method::GET, DEV_JWKS_PATH, &[], None).await;
    assert_eq!(dev_jwks.status, 404);

    let not_allowed = gateway.send(Method::DELETE, "/items", &[("authorization", &read)], None).await;
    assert_eq!(not_allowed.status, 405, "{}", not_allowed.body);
    assert_eq!(not_allowed.json(), json!({"message": "Method not allowed"}));
    let allow = not_allowed.header("allow").expect("Allow header");
    let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    assert!(methods.contains(&"GET") && methods.contains(&"POST"), "Allow: {allow}");
    assert!(!methods.contains(&"DELETE"), "Allow: {allow}");
    let not_allowed_anonymous = gateway.send(Method::DELETE, "/items", &[], None).await;
    assert_eq!(not_allowed_anonymous.status, 405, "the route is matched before the token");

    let unauthorized = gateway.call(Method::GET, None).await;
    assert_eq!(unauthorized.status, 401);
    let forbidden = gateway.get_items(&write_only).await;
    assert_eq!(forbidden.status, 403);
    let ok = gateway.get_items(&read).await;
    assert_eq!(ok.status, 200);
    let preflight = gateway
        .send(
            Method::OPTIONS,
            "/items",
            &[
                ("origin", CORS_ORIGIN),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization,content-type"),
            ],
            None,
        )
        .await;

    let replies = [
        ("404", &not_found),
        ("405", &not_allowed),
        ("401", &unauthorized),
        ("403", &forbidden),
        ("200", &ok),
        ("OPTIONS", &preflight),
    ];
    for (name, reply) in replies {
        assert_security_headers(reply, name);
    }
    let mut ids: Vec<&str> = replies.iter().map(|(_, r)| r.header("x-amzn-requestid").unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), replies.len(), "a request id per request");

    // Preflight: no token needed, methods and headers announced, origin echoed.
    assert_eq!(preflight.status, 204, "{}", preflight.body);
    let methods = preflight.header("access-control-allow-methods").expect("allow-methods");
    assert!(methods.split(',').any(|m| m.trim() == "POST"), "{methods}");
    let headers = preflight.header("access-control-allow-headers").expect("allow-headers");
    assert!(headers.split(',').any(|h| h.trim().eq_ignore_ascii_case("authorization")), "{headers}");
    assert_eq!(preflight.header("access-control-allow-origin"), Some(CORS_ORIGIN));
    let preflight_other = gateway.send(Method::OPTIONS, "/items", &[("origin", "https://evil.example")], None).await;
    assert_eq!(preflight_other.status, 204);
    assert_eq!(preflight_other.header("access-control-allow-origin"), None);

    // CORS on actual requests: the allowed origin echoed, any other left out.
    let allowed = gateway.send(Method::GET, "/items", &[("authorization", &read), ("origin", CORS_ORIGIN)], None).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(CORS_ORIGIN));
    assert!(allowed.headers.get_all("vary").iter().any(|v| v.to_str().unwrap().contains("Origin")));
    let other = gateway
        .send(Method::GET, "/items", &[("authorization", &read), ("origin", "https://evil.example")], None)
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
    let no_origin = gateway.get_items(&read).await;
    assert_eq!(no_origin.header("access-control-allow-origin"), None);
    // A browser must be able to read the 401 too.
    let rejected = gateway.send(Method::GET, "/items", &[("origin", CORS_ORIGIN)], None).await;
    assert_eq!(rejected.status, 401);
    assert_eq!(rejected.header("access-control-allow-origin"), Some(CORS_ORIGIN));

    // One JWKS fetch in all, for the first token verified: 404, 405 and preflights need no keys.
    assert_eq!(jwks.hits(), 1);
}

// ---------------------------------------------------------- 7. logs and tokens

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Current-thread runtime: the gateway, the JWKS server and the verifier's
/// HTTP client all run on this thread, under this thread's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn tokens_never_reach_the_logs() {
    let buffer = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let buffer = buffer.clone();
            move || buffer.clone()
        })
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    // tracing decides once per callsite whether anyone listens, on the thread that
    // first reaches it; with a single registered dispatcher it asks only that thread's
    // default, so a callsite first reached by another test's thread (no subscriber)
    // would stay disabled here too. With two registered, it asks every one of them.
    let _second_dispatcher = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());

    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    let gateway = Gateway::start(&jwks.url, Setup { min_jwks_refresh: Duration::ZERO, ..Setup::default() }).await;
    // Callsites another thread registered while this test was setting up.
    tracing::callsite::rebuild_interest_cache();

    let valid = issue(&idp, READ_WRITE);
    let expired = signed_with(&idp, READ_WRITE, |c| {
        c.insert("exp".into(), json!(now() - 3600));
    });
    let bad_signature = tamper_signature(&issue(&idp, READ_WRITE));
    let tampered = tamper_payload(&issue(&idp, READ));
    let unknown_kid = idp
        .sign_with_header(
            &json!({"alg": "RS256", "kid": "unknown-kid", "typ": "JWT"}),
            &idp.access_claims(&token_request(READ)),
        )
        .unwrap();
    let write_only = issue(&idp, WRITE);
    let sent = [
        (&valid, Method::GET, 200),
        (&valid, Method::POST, 201),
        (&expired, Method::GET, 401),
        (&bad_signature, Method::POST, 401),
        (&tampered, Method::GET, 401),
        (&unknown_kid, Method::GET, 401),
        (&write_only, Method::GET, 403),
    ];
    for (token, method, status) in &sent {
        let reply = gateway.call(method.clone(), Some(&format!("Bearer {token}"))).await;
        assert_eq!(reply.status, *status, "{}", reply.body);
    }
    let not_a_jwt = "sk_live_0123456789abcdefNOTAJWT";
    let reply = gateway.get_items(not_a_jwt).await;
    assert_eq!(reply.status, 401);

    let logs = buffer.contents();
    // The capture works: the rejections and the requests were logged.
    assert!(logs.contains("rejected token"), "nothing captured:\n{logs}");
    assert!(logs.contains("fetched JWKS"), "{logs}");
    assert!(logs.contains("status=201"), "the handler's request line: {logs}");
    for (token, _, _) in &sent {
        let (_, payload, signature) = parts(token);
        assert!(!logs.contains(token.as_str()), "a token is in the logs:\n{logs}");
        assert!(!logs.contains(signature), "a token's signature is in the logs:\n{logs}");
        assert!(!logs.contains(payload), "a token's payload is in the logs:\n{logs}");
    }
    assert!(!logs.contains(not_a_jwt), "the Authorization value is in the logs:\n{logs}");
}

/// Security review finding 12: the counters show everyone's activity as it
/// happens, so another machine (`--addr 0.0.0.0`) gets the unknown route's
/// 404; this machine gets them, with the security headers.
#[tokio::test]
async fn metrics_are_served_to_this_machine_only() {
    use tower::ServiceExt;
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let jwks = JwksServer::start(jwks_of(&[&idp])).await;
    let gateway = Gateway::start(&jwks.url, Setup::default()).await;
    let from = |peer: SocketAddr| {
        let request = axum::http::Request::get("/metrics")
            .extension(axum::extract::ConnectInfo(peer))
            .body(axum::body::Body::empty())
            .unwrap();
        gateway.router.clone().oneshot(request)
    };
    for stranger in ["192.0.2.7:5000", "[2001:db8::7]:5000"] {
        let answer = from(stranger.parse().unwrap()).await.unwrap();
        assert_eq!(answer.status(), 404, "{stranger}");
    }
    for local in ["127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
        let answer = from(local.parse().unwrap()).await.unwrap();
        assert_eq!(answer.status(), 200, "{local}");
        assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
    }
}

/// Given the development identity provider's keys in the process, the
/// verifier needs no fetch (a flood of connections once held the server's
/// fetch from itself back, and every request got 503): its tokens verify
/// with no JWKS reachable at all.
#[tokio::test]
async fn given_its_keys_the_verifier_needs_no_fetch() {
    let idp = DevIdentityProvider::ephemeral(ISSUER).unwrap();
    let unreachable =
        VerifierConfig::development(ISSUER, "http://127.0.0.1:9/jwks.json", vec![DEV_CLIENT_ID.to_owned()]);
    let token = issue(&idp, READ_WRITE);
    let without = AccessTokenVerifier::new(unreachable.clone());
    assert!(without.verify(&token).await.is_err(), "without the keys it must fetch, and cannot");
    let with = AccessTokenVerifier::new(unreachable).with_keys(&idp.jwks());
    assert_eq!(with.verify(&token).await.unwrap().subject, SUB);
}
