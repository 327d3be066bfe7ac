//! Access-token verification as the local gateway does it on every request:
//! RS256 signature, issuer, `token_use`, `client_id`, times and scopes, with
//! the JWKS already cached (it is served once, from a loopback server, and
//! then only read from the cache).
//!
//! `cargo bench -p items-adapters --bench token_verify`

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use items_local::auth::dev_idp::{DEV_CLIENT_ID, DevIdentityProvider, TokenRequest};
use items_local::auth::{AccessTokenVerifier, AuthError, VerifierConfig};
use std::hint::black_box;

const ISSUER: &str = "https://dev-idp.items-api.localhost";

fn token_verification(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let idp = DevIdentityProvider::ephemeral(ISSUER).expect("development identity provider");
    let jwks = idp.jwks();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("loopback listener");
    let addr = listener.local_addr().expect("address");
    let app = Router::new().route("/jwks.json", get(move || async move { axum::Json(jwks.clone()) }));
    rt.spawn(async move { axum::serve(listener, app).await });

    let verifier = AccessTokenVerifier::new(VerifierConfig {
        issuer: ISSUER.to_owned(),
        jwks_url: format!("http://{addr}/jwks.json"),
        client_ids: vec![DEV_CLIENT_ID.to_owned()],
        leeway: Duration::from_secs(60),
        min_jwks_refresh: Duration::from_secs(3600),
        max_jwks_age: items_local::auth::jwks::DEFAULT_MAX_KEY_AGE,
        cached_tokens: items_local::auth::verifier::DEFAULT_CACHED_TOKENS,
    });
    let token = idp
        .issue_access_token(&TokenRequest {
            subject: "4f1e8a52-7c3b-4d59-9a41-0c6b2f2e9d11".to_owned(),
            username: "bench".to_owned(),
            scopes: vec!["items/read".to_owned(), "items/write".to_owned()],
            client_id: DEV_CLIENT_ID.to_owned(),
            ttl: Duration::from_secs(3600),
            groups: Vec::new(),
        })
        .expect("token");
    // Fills the JWKS cache.
    let claims = rt.block_on(verifier.verify(&token)).expect("the token verifies");
    assert!(claims.has_scope("items/write"));

    // Same token with the last signature byte changed: fails on the signature check.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    assert!(matches!(rt.block_on(verifier.verify(&forged)), Err(AuthError::Invalid(_))));

    let mut group = c.benchmark_group("token");
    group.bench_function("verify_valid", |b| {
        b.iter(|| rt.block_on(verifier.verify(black_box(&token))).expect("valid"));
    });
    group.bench_function("reject_bad_signature", |b| {
        b.iter(|| rt.block_on(verifier.verify(black_box(&forged))).expect_err("forged"));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = token_verification
}
criterion_main!(benches);
