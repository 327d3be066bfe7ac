//! A JWKS endpoint on its own loopback port, for verifier and gateway tests.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use items_local::auth::dev_idp::DevIdentityProvider;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A JWKS endpoint on its own port: swappable key set, switchable outage, hit count.
#[derive(Clone)]
pub struct JwksServer {
    pub url: String,
    keys: Arc<RwLock<Value>>,
    failing: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(keys: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Self {
            url: format!("http://{addr}/eu-west-1_GatewayAuthTest/.well-known/jwks.json"),
            keys: Arc::new(RwLock::new(keys)),
            failing: Arc::new(AtomicBool::new(false)),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/eu-west-1_GatewayAuthTest/.well-known/jwks.json", get(serve_jwks))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    pub fn set_keys(&self, keys: Value) {
        *self.keys.write().unwrap() = keys;
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub async fn serve_jwks(State(server): State<JwksServer>) -> Response {
    server.hits.fetch_add(1, Ordering::SeqCst);
    if server.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "JWKS outage").into_response();
    }
    let keys = server.keys.read().unwrap().clone();
    axum::Json(keys).into_response()
}

/// One JWKS with the keys of all these providers.
pub fn jwks_of(idps: &[&DevIdentityProvider]) -> Value {
    let keys: Vec<Value> = idps.iter().flat_map(|idp| idp.jwks()["keys"].as_array().unwrap().clone()).collect();
    json!({ "keys": keys })
}
