//! A minimal Lambda Runtime API emulator (loopback, HTTP/1.1, keep-alive,
//! TCP_NODELAY), one per function process, so that a process that has been
//! killed can never take an invocation meant for the next one.
//!
//! Implements what runtimes call: `GET /2018-06-01/runtime/invocation/next`
//! (with the `Lambda-Runtime-*` headers), `POST .../invocation/{id}/response`,
//! `POST .../invocation/{id}/error` and `POST /2018-06-01/runtime/init/error`.
//! Blocking threads, no async runtime: a connection thread waiting on a read
//! is woken by the kernel directly, which keeps the emulator's own share of
//! the measured time to a few microseconds.
//!
//! One file: the Runtime API is small, and its three endpoints share the
//! connection handling.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PREFIX: &str = "/2018-06-01/runtime";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Response,
    Error,
    InitError,
}

/// What came back for one invocation, with the emulator's timestamps.
#[derive(Debug)]
pub struct Outcome {
    pub kind: Kind,
    pub body: Vec<u8>,
    /// When the invocation was queued (the "client" sent it).
    pub submitted: Instant,
    /// When the event was written to the runtime's pending `/next`.
    pub handed_out: Instant,
    /// When the runtime's `/response` (or `/error`) had been read in full.
    pub received: Instant,
}

struct Invocation {
    id: String,
    body: Vec<u8>,
    submitted: Instant,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Invocation>,
    in_flight: HashMap<String, (Instant, Instant)>,
    /// First `/next` seen: the runtime finished its init.
    first_next: Option<Instant>,
    /// Connections currently parked in `/next`.
    waiting: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    function_arn: String,
}

pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    outcomes: mpsc::Receiver<Outcome>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Emulator {
    pub fn start(function_name: &str) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
        });
        let (sender, outcomes) = mpsc::channel();
        let accept_shared = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.state.lock().unwrap().closed {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = accept_shared.clone();
                let sender = sender.clone();
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &shared, &sender);
                });
            }
        });
        Ok(Self { addr, shared, outcomes })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an invocation; `submitted` is the instant it counts from.
    pub fn submit(&self, body: Vec<u8>, submitted: Instant) {
        let id = format!("00000000-0000-4000-8000-{:012x}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let mut state = self.shared.state.lock().unwrap();
        state.queue.push_back(Invocation { id, body, submitted });
        self.shared.changed.notify_all();
    }

    /// The next outcome (response, error or init error).
    pub fn outcome(&self, timeout: Duration) -> anyhow::Result<Outcome> {
        self.outcomes
            .recv_timeout(timeout)
            .map_err(|_| anyhow::anyhow!("no answer from the function within {timeout:?}"))
    }

    /// When the runtime first asked for an invocation.
    pub fn first_next(&self) -> Option<Instant> {
        self.shared.state.lock().unwrap().first_next
    }

    /// Waits until the runtime is parked in `/next` (an idle, warm function).
    pub fn wait_idle(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock().unwrap();
        while state.waiting == 0 || !state.queue.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                anyhow::bail!("the function did not ask for an invocation within {timeout:?}");
            }
            state = self.shared.changed.wait_timeout(state, left).unwrap().0;
        }
        Ok(())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().closed = true;
        self.shared.changed.notify_all();
        // Wakes the accept loop so that it sees `closed`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut expect_continue = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if name.eq_ignore_ascii_case("expect") && value.eq_ignore_ascii_case("100-continue") {
                expect_continue = true;
            }
        }
    }
    if expect_continue {
        // libcurl (under awslambdaric) asks before sending larger bodies; an
        // answer that never comes would cost it a 1 s timeout.
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if content_length > 0 {
        body.resize(content_length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(Request { method, path, body }))
}

fn write_response(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    // One write: nothing for Nagle or delayed ACKs to hold back.
    stream.write_all(&bytes)
}

fn serve_connection(stream: TcpStream, shared: &Shared, outcomes: &mpsc::Sender<Outcome>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader, &mut writer)? {
        let received = Instant::now();
        let path = request.path.split('?').next().unwrap_or_default();
        let Some(rest) = path.strip_prefix(PREFIX) else {
            write_response(&mut writer, "404 Not Found", &[], br#"{"errorMessage":"not found"}"#)?;
            continue;
        };
        match (request.method.as_str(), rest) {
            ("GET", "/invocation/next") => {
                let invocation = {
                    let mut state = shared.state.lock().unwrap();
                    state.first_next.get_or_insert(received);
                    state.waiting += 1;
                    shared.changed.notify_all();
                    let invocation = loop {
                        if state.closed {
                            state.waiting -= 1;
                            return Ok(());
                        }
                        if let Some(invocation) = state.queue.pop_front() {
                            break invocation;
                        }
                        state = shared.changed.wait(state).unwrap();
                    };
                    state.waiting -= 1;
                    invocation
                };
                let deadline =
                    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(30);
                let headers = [
                    ("Lambda-Runtime-Aws-Request-Id", invocation.id.clone()),
                    ("Lambda-Runtime-Deadline-Ms", deadline.as_millis().to_string()),
                    ("Lambda-Runtime-Invoked-Function-Arn", shared.function_arn.clone()),
                    ("Lambda-Runtime-Trace-Id", format!("Root=1-00000000-{:0>24};Sampled=0", &invocation.id[24..])),
                ];
                let handed_out = Instant::now();
                shared
                    .state
                    .lock()
                    .unwrap()
                    .in_flight
                    .insert(invocation.id.clone(), (invocation.submitted, handed_out));
                write_response(&mut writer, "200 OK", &headers, &invocation.body)?;
            }
            ("POST", "/init/error") => {
                write_response(&mut writer, "202 Accepted", &[], br#"{"status":"OK"}"#)?;
                let _ = outcomes.send(Outcome {
                    kind: Kind::InitError,
                    body: request.body,
                    submitted: received,
                    handed_out: received,
                    received,
                });
            }
            ("POST", rest) if rest.starts_with("/invocation/") => {
                let mut parts = rest["/invocation/".len()..].splitn(2, '/');
                let (id, what) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                let kind = match what {
                    "response" => Kind::Response,
                    "error" => Kind::Error,
                    _ => {
                        write_response(&mut writer, "404 Not Found", &[], br#"{"errorMessage":"not found"}"#)?;
                        continue;
                    }
                };
                let Some((submitted, handed_out)) = shared.state.lock().unwrap().in_flight.remove(id) else {
                    write_response(&mut writer, "400 Bad Request", &[], br#"{"errorMessage":"unknown request id"}"#)?;
                    continue;
                };
                let _ = outcomes.send(Outcome { kind, body: request.body, submitted, handed_out, received });
                write_response(&mut writer, "202 Accepted", &[], br#"{"status":"OK"}"#)?;
            }
            _ => write_response(&mut writer, "404 Not Found", &[], br#"{"errorMessage":"not found"}"#)?,
        }
    }
    Ok(())
}
