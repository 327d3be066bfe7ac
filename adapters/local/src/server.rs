//! The HTTP server under the local gateway: HTTP/1.1 with limits a public
//! endpoint needs (request head size, time to send the head, connection
//! count), and a graceful shutdown that lets in-flight requests finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Largest request head (request line and headers); larger gets 431
    /// (API Gateway's limit; what it answers past it is unconfirmed).
    pub max_head_bytes: usize,
    /// Time a client has to send the request head (slow-loris guard).
    pub head_timeout: Duration,
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Connections one client address may hold open; more are closed at
    /// once, so one client cannot take every connection slot.
    pub max_connections_per_address: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// `Host` values served (`name:port`, lowercase); any other is refused,
    /// so a page on another site cannot reach this server through DNS
    /// rebinding. Empty serves any.
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: items_aws::limits::REQUEST_HEAD_MAX_BYTES,
            head_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_address: 128,
            shutdown_grace: Duration::from_secs(30),
            allowed_hosts: Vec::new(),
        }
    }
}

/// The size of the request line and headers as the client sent them (HTTP/1.1).
fn head_size<B>(request: &hyper::Request<B>) -> usize {
    let line = request.method().as_str().len() + 1 + request.uri().to_string().len() + " HTTP/1.1\r\n".len();
    let headers: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + 2 + value.len() + 2).sum();
    line + headers + 2
}

/// 431 for a head over the limit (what API Gateway answers is unconfirmed).
fn head_too_large() -> axum::response::Response {
    json_error(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "Request Header Fields Too Large")
}

fn json_error(status: http::StatusCode, message: &str) -> axum::response::Response {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// Whether the request's `Host` is one this server answers for.
fn host_allowed<B>(allowed: &[String], request: &hyper::Request<B>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let host = request.headers().get(http::header::HOST).and_then(|h| h.to_str().ok());
    host.is_some_and(|host| allowed.iter().any(|a| a.eq_ignore_ascii_case(host.trim())))
}

/// A client address as the server's limits count it: IPv6 by its /64 (one
/// host's share of a network, so a host cannot spread over its own
/// addresses), an IPv4-mapped IPv6 address as the IPv4 one, and every
/// loopback address (`127.0.0.0/8`, `::1`) as one: this machine.
pub fn client_key(address: std::net::IpAddr) -> std::net::IpAddr {
    if address.to_canonical().is_loopback() {
        return std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    }
    match address.to_canonical() {
        std::net::IpAddr::V6(v6) => std::net::IpAddr::V6((u128::from(v6) & !0 << 64).into()),
        v4 => v4,
    }
}

/// Open connections per client address ([`client_key`]).
struct ConnectionsPerAddress {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One connection of an address, counted until dropped.
struct Held {
    address: std::net::IpAddr,
    counts: Arc<ConnectionsPerAddress>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

impl ConnectionsPerAddress {
    fn new(max: usize) -> Self {
        Self { max: max.max(1), open: std::sync::Mutex::new(std::collections::HashMap::new()) }
    }

    /// Counts a new connection of `address`, or `None` when it holds the most.
    fn open(self: &Arc<Self>, address: std::net::IpAddr) -> Option<Held> {
        let address = client_key(address);
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Held { address, counts: self.clone() })
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting
/// and waits (up to the grace period) for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's read buffer bounds the head only roughly (it grows in steps; its
    // floor is 8 KiB): a guard against absurd heads. The exact limit is
    // checked per request below.
    http.max_buf_size((limits.max_head_bytes * 2).max(8192))
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout);
    let graceful = GracefulShutdown::new();
    let allowed_hosts: Arc<[String]> = limits.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(ConnectionsPerAddress::new(limits.max_connections_per_address));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(held) = per_address.open(remote.ip()) else {
            tracing::warn!(%remote, "connection closed: its address holds too many already");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let max_head_bytes = limits.max_head_bytes;
        let allowed_hosts = allowed_hosts.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let app = app.clone();
            let host_allowed = host_allowed(&allowed_hosts, &request);
            async move {
                if head_size(&request) > max_head_bytes {
                    return Ok(head_too_large());
                }
                if !host_allowed {
                    return Ok(json_error(http::StatusCode::FORBIDDEN, "This server does not answer for that Host"));
                }
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(remote));
                app.oneshot(request).await
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %remote, "connection ended with an error");
            }
            drop((permit, held));
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all requests finished"),
        () = tokio::time::sleep(limits.shutdown_grace) => tracing::warn!("grace period over; closing open connections"),
    }
    Ok(())
}
