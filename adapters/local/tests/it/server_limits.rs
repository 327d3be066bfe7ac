//! The HTTP server's limits and graceful shutdown, over real sockets.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use items_local::server::{ServerLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

struct Running {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: ServerLimits) -> Running {
    let app = Router::new().route("/", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            "finished"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(serve(listener, app, limits, async {
        let _ = stopped.await;
    }));
    Running { addr, stop: Some(stop), done }
}

async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_normal_request_is_served() {
    let server = start(ServerLimits::default()).await;
    let response = raw(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"));
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_431() {
    let server = start(ServerLimits { max_head_bytes: 8192, ..ServerLimits::default() }).await;
    let request =
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\nConnection: close\r\n\r\n", "a".repeat(20_000));
    let response = raw(server.addr, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let server = start(ServerLimits { head_timeout: Duration::from_millis(300), ..ServerLimits::default() }).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the server closed the connection instead of waiting forever");
    assert!(started.elapsed() >= Duration::from_millis(250), "not before the timeout");
}

/// Security review finding 11: one address cannot take every connection
/// slot; its connections past the cap are closed at once, and a closed one
/// frees its place.
#[tokio::test]
async fn an_address_holds_at_most_its_share_of_connections() {
    let server = start(ServerLimits { max_connections_per_address: 3, ..ServerLimits::default() }).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let stream = TcpStream::connect(server.addr).await.unwrap();
        idle.push(stream);
    }
    // The server counts a connection when it accepts it: give it the three.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = TcpStream::connect(server.addr).await.unwrap();
    let _ = fourth.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), fourth.read_to_end(&mut answer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed unanswered: {:?}", String::from_utf8_lossy(&answer));

    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = raw(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let mut server = start(ServerLimits::default()).await;
    let addr = server.addr;
    let in_flight =
        tokio::spawn(async move { raw(addr, b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.stop.take().unwrap().send(()).unwrap();

    let response = in_flight.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("finished"));
    tokio::time::timeout(Duration::from_secs(5), server.done).await.unwrap().unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "no longer accepting");
}
