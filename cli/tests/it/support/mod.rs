//! Runs the real `items` binary on a free port, as a user would.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use items_testkit::free_port;
use serde_json::Value;

pub struct Server {
    child: Child,
    pub base_url: String,
    pub data_dir: PathBuf,
    /// Whether dropping the server removes its data dir.
    owns_data_dir: bool,
}

/// A fresh data dir path (not created).
pub fn new_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("items-e2e-{}", uuid::Uuid::new_v4().simple()))
}

impl Server {
    /// `items serve` with `extra` arguments on a fresh data dir, ready to take requests.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_in(new_data_dir(), extra)
    }

    /// `items serve` on `data_dir` (removed when the server is dropped).
    pub fn start_in(data_dir: PathBuf, extra: &[&str]) -> Self {
        Self::start_with(data_dir, extra, &[])
    }

    /// `items serve` on `data_dir` with `extra` arguments and `env` settings.
    pub fn start_with(data_dir: PathBuf, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_bound("127.0.0.1", data_dir, extra, env)
    }

    /// `items serve` bound to `ip` (such as `0.0.0.0`), reached over 127.0.0.1.
    pub fn start_bound(ip: &str, data_dir: PathBuf, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_items"))
            .args(["serve", "--addr", &format!("{ip}:{port}"), "--data-dir"])
            .arg(&data_dir)
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("items serve starts");
        let mut server = Self { child, base_url: format!("http://127.0.0.1:{port}"), data_dir, owns_data_dir: true };
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(server.is_running(), "items serve exited before listening");
            assert!(Instant::now() < deadline, "items serve did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `items token` with `args`, against this server's data dir.
    pub fn token(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_items"))
            .arg("token")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .output()
            .expect("items token runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM, as a service manager would to stop the server.
    pub fn terminate(&self) {
        // SAFETY: sending a signal to our own child process.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "cannot signal items serve");
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Server {
    /// SIGKILL, as a crash would end it; returns the data dir, kept.
    pub fn kill(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.owns_data_dir = false;
        self.data_dir.clone()
    }

    /// SIGTERM and a clean exit; returns the data dir, kept.
    pub fn stop(mut self) -> PathBuf {
        self.terminate();
        let status = self.wait_exit(Duration::from_secs(30)).expect("items serve stops after SIGTERM");
        assert!(status.success(), "items serve exited with {status}");
        self.owns_data_dir = false;
        self.data_dir.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// Runs `items` with `args` to its end (a command that must not hang), with
/// what it printed.
pub fn run_items(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    run_items_in(args, data_dir, None)
}

/// [`run_items`] with its data segment (`RLIMIT_DATA`: heap and private
/// writable mappings) limited to `data_limit` bytes: an allocation past it
/// fails, and the process aborts.
pub fn run_items_in(args: &[&str], data_dir: &std::path::Path, data_limit: Option<u64>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_items"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(limit) = data_limit {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                let limit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command.spawn().expect("items runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("items {args:?} did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("items output")
}

/// What a command printed, both streams.
pub fn printed(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The claims of a JWT, unverified (to read back what a token says).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Every item `GET /items` lists, following each `Link: <…>; rel="next"`,
/// and how many pages that took.
pub async fn list_all(client: &reqwest::Client, server: &Server, token: &str) -> (Vec<Value>, usize) {
    let mut url = server.url("/items");
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        let response = client.get(&url).header("Authorization", format!("Bearer {token}")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let next = response.headers().get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            server.url(link.trim_start_matches('<').split('>').next().unwrap())
        });
        items.extend(response.json::<Vec<Value>>().await.unwrap());
        match next {
            Some(next) => url = next,
            None => return (items, pages),
        }
    }
}

/// Polls `GET /items` (every page) until `id` shows up; panics after `within`.
pub async fn wait_until_listed(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    id: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (items, _) = list_all(client, server, token).await;
        if let Some(item) = items.into_iter().find(|item| item["id"] == id) {
            return item;
        }
        assert!(Instant::now() < deadline, "item {id} not listed within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
