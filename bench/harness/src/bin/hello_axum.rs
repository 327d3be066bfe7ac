//! The ceiling for the local gateway benchmark: an axum "hello world" on the
//! same tokio and axum versions as `items serve`, with nothing else in it.
//!
//! `cargo run --release -p items-bench --bin hello_axum -- 127.0.0.1:3100`

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3100".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("hello_axum listening on http://{}", listener.local_addr()?);
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    axum::serve(listener, app).await?;
    Ok(())
}
