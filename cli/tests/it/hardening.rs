//! `items serve` made safe to expose: every route's body has a time limit, a
//! foreign `Host` is refused (DNS rebinding), the data dir and its secrets are
//! private, and a secret others could have written is not used.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Server, new_data_dir, printed, run_items};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// Sends `head` (and no more) and reads the answer until its body has come
/// in (or the server closes, or `within` passes): the answer and how long it took.
fn send_raw(server: &Server, head: &str, within: Duration) -> (String, Duration) {
    let address = server.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(within)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(read @ 1..) = stream.read(&mut chunk) {
        answer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

#[test]
fn a_sign_in_body_that_never_comes_is_cut_off_within_the_limit() {
    let server = Server::start(&[]);
    let host = server.base_url.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\n"
    );
    let (answer, waited) = send_raw(&server, &head, Duration::from_secs(20));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(waited < Duration::from_secs(15), "answered after {waited:?}");
}

#[test]
fn a_foreign_host_is_refused_and_a_configured_one_is_served() {
    let server = Server::start(&["--allowed-hosts", "items.lan:8443"]);
    let port = server.base_url.rsplit(':').next().unwrap().to_owned();
    let request = |host: &str| format!("GET /items HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    for foreign in ["evil.example", &format!("attacker.example:{port}"), "items.lan"] {
        let (answer, _) = send_raw(&server, &request(foreign), Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 403"), "{foreign}: {answer}");
        assert!(answer.contains("does not answer for that Host"), "{answer}");
    }
    for served in
        [format!("127.0.0.1:{port}"), "127.0.0.1".into(), format!("localhost:{port}"), "items.lan:8443".into()]
    {
        let (answer, _) = send_raw(&server, &request(&served), Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 401"), "{served}: the API answers (no token): {answer}");
    }
}

/// Security review finding 13: bound to every address, as for a phone on
/// the LAN (README), with the phone's name allowed, the API verifies the
/// tokens its own identity provider issues (it answered 503: its own key
/// fetch went to `0.0.0.0`, a `Host` it refuses).
#[test]
fn bound_to_every_address_the_api_accepts_its_own_tokens() {
    let server = Server::start_bound("0.0.0.0", new_data_dir(), &["--allowed-hosts", "items.lan"], &[]);
    let token = server.token(&[]);
    let request = |host: &str| {
        format!("GET /items HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
    };
    let port = server.base_url.rsplit(':').next().unwrap().to_owned();
    for host in [format!("127.0.0.1:{port}"), "items.lan".to_owned()] {
        let (answer, _) = send_raw(&server, &request(&host), Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
}

#[test]
fn the_data_dir_and_its_secrets_are_private() {
    let server = Server::start(&[]);
    let host = server.base_url.trim_start_matches("http://").to_owned();
    // Answering means start-up is over (the port accepts before it is).
    let (answer, _) =
        send_raw(&server, &format!("GET /items HTTP/1.1\r\nHost: {host}\r\n\r\n"), Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let dir = server.data_dir.clone();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_items"))
        .args(["user", "add", "alice", "--password-stdin", "--data-dir"])
        .arg(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"correct horse battery\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(mode(&dir), 0o700);
    for secret in ["cursor.key", "dev-idp-key.pk8", "users.json"] {
        assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
    }
}

#[test]
fn a_secret_others_can_write_is_not_used() {
    let dir = new_data_dir();
    Server::start_in(dir.clone(), &[]).stop();
    let key = dir.join("cursor.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
    let refused = run_items(&["serve", "--addr", "127.0.0.1:0"], &dir);
    let text = printed(&refused);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!refused.status.success());
    assert!(text.contains("can be written by other users") && text.contains("chmod 600"), "{text}");
}
