//! The live REST API fuzzer (`bench rest-fuzz`): generated requests sent
//! over TCP, one connection each, to a running daemon. The in-process
//! version that runs in CI is `palisade-daemon`'s `api::fuzz_tests`; this
//! one adds what only a socket shows: request lines and headers HTTP
//! refuses, invalid bytes in headers, bodies sent slowly in chunks, bodies
//! shorter than their `Content-Length` (the sender stops writing), and
//! raw garbage.
//!
//! Each answer is checked: the connection answers or closes within
//! `STUCK`, no 5xx but those Patroni defines, every 4xx from the API says
//! what was wrong (HTTP-level refusals, answered by the HTTP server before
//! any handler, are counted apart), and the daemon's `/liveness` stays 200.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// How long a connection may take to answer or close: the server gives a
/// silent sender 30 s (request head, or body), plus a margin.
pub const STUCK: Duration = Duration::from_secs(40);

pub use palisade_test_support::python::Rng;

use palisade_test_support::rest_inputs::{BODY_KEYS as KEYS, METHODS, PATHS};

fn wild(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth == 0 { 12 } else { 15 }) {
        0 => "null".into(),
        1 => "true".into(),
        2 => "-1".into(),
        3 => "1e400".into(),
        4 => "123456789012345678901234567890".into(),
        5 => "1.5".into(),
        6 => "\"\"".into(),
        7 => format!("\"{}\"", "x".repeat(rng.below(3000))),
        8 => "\"\\ud800 é\"".into(),
        9 => "\"2099-13-45T99:00:00Z\"".into(),
        10 => "[]".into(),
        11 => "{}".into(),
        12 => {
            let n = 1 + rng.below(300);
            format!("{}1{}", "[".repeat(n), "]".repeat(n))
        }
        13 => format!("[{}, {}]", wild(rng, depth - 1), wild(rng, depth - 1)),
        _ => format!("{{\"{}\": {}}}", rng.pick(KEYS), wild(rng, depth - 1)),
    }
}

/// A body: never one that is valid as a whole for an action (the daemon
/// stays up and in its role), but every kind of wrong one.
fn body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        0 | 1 => format!("{{\"{}\": {}, \"{}\": {}}}", rng.pick(KEYS), wild(rng, 3), rng.pick(KEYS), wild(rng, 2))
            .into_bytes(),
        2 => wild(rng, 4).into_bytes(),
        3 => {
            let b = format!("{{\"leader\": \"a\", \"candidate\": {}}}", wild(rng, 2)).into_bytes();
            let cut = rng.below(b.len());
            b[..cut].to_vec()
        }
        4 => {
            let mut b = format!("{{\"{}\": \"x\"}}", rng.pick(KEYS)).into_bytes();
            let at = rng.below(b.len() + 1);
            b.splice(
                at..at,
                rng.pick::<&[u8]>(&[b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xef\xbb\xbf"]).iter().copied(),
            );
            b
        }
        5 => Vec::new(),
        6 => rng.pick::<&[u8]>(&[b"[1]", b"\"x\"", b"42", b"null", b"{,}", b"\x00"]).to_vec(),
        _ => format!("{{\"ttl\": \"{}\"}}", "a".repeat(if rng.chance(10) { 3 << 20 } else { rng.below(100_000) }))
            .into_bytes(),
    }
}

/// How a request is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Delivery {
    AtOnce,
    /// In chunks with pauses.
    Slow,
    /// Half the body, then the sender stops writing.
    Truncated,
    /// Bytes that are no HTTP request.
    Garbage,
}

/// One generated request, as bytes on the wire.
pub struct Case {
    pub method: String,
    pub path: String,
    pub head: Vec<u8>,
    pub body: Vec<u8>,
    pub delivery: Delivery,
}

pub fn generate(rng: &mut Rng, port: u16, auth: &str) -> Case {
    // A method with a tab in it, which HTTP itself refuses, now and then.
    let method = if rng.chance(3) { "G\tET".to_string() } else { rng.pick(METHODS).to_string() };
    let mut path = rng.pick(PATHS).to_string();
    match rng.below(8) {
        0 => path.push('/'),
        1 => path.push_str(rng.pick::<&str>(&["/x", "/%ff", "/..", "//", "/a%00b"])),
        2 => path.push_str(&"/a".repeat(rng.below(5000))),
        _ => {}
    }
    if rng.chance(40) {
        let q: Vec<String> = (0..1 + rng.below(4))
            .map(|_| {
                let k = rng.pick(&["lag", "tag_x", "replication_state", "mode", "", "%ff"]);
                let v = rng.pick(&["1", "-1", "1MB", "99999999999999999999999", "abc", "%zz", "", "a=b"]);
                format!("{k}={v}")
            })
            .collect();
        path = format!("{path}?{}", q.join("&"));
    }
    let body = if rng.chance(70) { body(rng) } else { Vec::new() };
    let delivery = match rng.below(40) {
        0 | 1 => Delivery::Slow,
        2 | 3 => Delivery::Truncated,
        4 => Delivery::Garbage,
        _ => Delivery::AtOnce,
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n").into_bytes();
    let mut header = |h: &[u8]| {
        head.extend_from_slice(h);
        head.extend_from_slice(b"\r\n");
    };
    match rng.below(6) {
        0 | 1 => {}
        2 | 3 => header(format!("Authorization: {auth}").as_bytes()),
        4 => header(b"Authorization: Basic dTpx"),
        _ => header(rng.pick::<&[u8]>(&[
            b"Authorization: Basic \xff\xfe",
            b"Authorization: Bearer x",
            b"Authorization:",
        ])),
    }
    if rng.chance(70) {
        header(rng.pick::<&[u8]>(&[
            b"Content-Type: application/json",
            b"Content-Type: text/plain",
            b"Content-Type: \xff",
        ]));
    }
    match rng.below(10) {
        0..=6 if !body.is_empty() || rng.chance(30) => header(format!("Content-Length: {}", body.len()).as_bytes()),
        7 => header(rng.pick::<&[u8]>(&[
            b"Content-Length: abc",
            b"Content-Length: -1",
            b"Content-Length: 99999999999999999999",
            b"Content-Length: 1\r\nContent-Length: 2",
            b"Transfer-Encoding: chunked",
        ])),
        8 => header(format!("X-Big: {}", "b".repeat(rng.below(100_000))).as_bytes()),
        _ => {}
    }
    head.extend_from_slice(b"\r\n");
    if delivery == Delivery::Garbage {
        let n = 1 + rng.below(2000);
        head = (0..n).map(|_| rng.next_u64() as u8).collect();
    }
    Case { method, path, head, body, delivery }
}

/// What came back.
#[derive(Debug)]
pub enum Outcome {
    /// A status, and the body after the headers.
    Answer(u16, Vec<u8>),
    /// The server closed the connection without an answer.
    Closed,
    /// Neither an answer nor a close within `STUCK`.
    Stuck,
    /// Could not connect or send (the daemon is gone?).
    Failed(String),
}

pub fn send(port: u16, case: &Case, rng: &mut Rng) -> Outcome {
    let mut s = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(format!("connect: {e}")),
    };
    let _ = s.set_read_timeout(Some(STUCK));
    let _ = s.set_write_timeout(Some(STUCK));
    // The server may answer (and close) before reading everything: write
    // errors then are no failure, the answer tells.
    let _ = s.write_all(&case.head);
    match case.delivery {
        Delivery::AtOnce => {
            let _ = s.write_all(&case.body);
        }
        Delivery::Garbage => {
            // Done sending: a stalled sender is `stalled_head` below.
            let _ = s.shutdown(Shutdown::Write);
        }
        Delivery::Slow => {
            for chunk in case.body.chunks(case.body.len().div_ceil(1 + rng.below(6)).max(1)) {
                std::thread::sleep(Duration::from_millis(1 + rng.below(20) as u64));
                if s.write_all(chunk).is_err() {
                    break;
                }
            }
        }
        Delivery::Truncated => {
            let _ = s.write_all(&case.body[..case.body.len() / 2]);
            let _ = s.shutdown(Shutdown::Write);
        }
    }
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Outcome::Stuck,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset after the answer (the server closed with unread
            // bytes) still counts as the answer.
            Err(_) => break,
        }
        if started.elapsed() > STUCK {
            return Outcome::Stuck;
        }
    }
    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else { return Outcome::Closed };
    let line = String::from_utf8_lossy(&got[..end]);
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    match code {
        Some(code) => Outcome::Answer(code, got[end + 4..].to_vec()),
        None => Outcome::Closed,
    }
}

/// The 5xx codes Patroni answers with (see `api::fuzz_tests` in the
/// daemon): 501, 502, 503 anywhere, 500 from `POST /failsafe`.
pub fn allowed_5xx(method: &str, path: &str, code: u16) -> bool {
    match code {
        501..=503 => true,
        500 => method == "POST" && path.split('?').next() == Some("/failsafe"),
        _ => false,
    }
}

/// The figures of a run.
#[derive(Default, Debug)]
pub struct Figures {
    pub sent: u64,
    pub codes: BTreeMap<u16, u64>,
    pub by_delivery: BTreeMap<String, u64>,
    pub closed_without_answer: u64,
    pub stuck: u64,
    pub failed: u64,
    pub unexpected_5xx: u64,
    /// 4xx with an empty body from the HTTP layer (bad request line or
    /// headers, refused before any handler).
    pub http_level_4xx: u64,
    /// 4xx with an empty body from an endpoint: a finding.
    pub empty_4xx: u64,
    pub liveness_checks: u64,
    pub liveness_failures: u64,
    pub findings: Vec<String>,
    /// How long the server took to close a connection whose sender stopped
    /// in the middle of the request head (`None`: not within 120 s).
    pub stalled_head_closed_after: Option<Duration>,
    /// The same for a sender that stopped before the announced body.
    pub stalled_body_closed_after: Option<Duration>,
}

/// A sender that stops in the middle of the request head: how long the
/// server takes to close the connection (`None`: not within `limit`).
pub fn stalled_head(port: u16, limit: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    let started = Instant::now();
    s.write_all(b"POST /restart HTTP/1.1\r\nHost: x\r\nContent-Le").ok()?;
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => Some(started.elapsed()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(started.elapsed()),
        Err(_) => None,
    }
}

/// A sender that sends a whole head announcing a body, then nothing: how
/// long until the server answers or closes (`None`: not within `limit`).
pub fn stalled_body(port: u16, auth: &str, limit: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    let started = Instant::now();
    let head = format!("PATCH /config HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 10\r\n\r\n{{");
    s.write_all(head.as_bytes()).ok()?;
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => Some(started.elapsed()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(started.elapsed()),
        Err(_) => None,
    }
}

/// `Basic <base64(user:password)>` (no crate for twenty lines).
pub fn basic_auth(user_password: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::from("Basic ");
    for chunk in user_password.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `GET /liveness` → its status.
pub fn liveness(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(STUCK)).ok()?;
    s.write_all(format!("GET /liveness HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).ok()?;
    String::from_utf8_lossy(&got).split_whitespace().nth(1)?.parse().ok()
}

/// Send `n` generated requests to the API on `port`.
pub fn run(port: u16, n: u64, seed: u64, auth: &str) -> Figures {
    let mut rng = Rng::new(seed);
    let mut f = Figures::default();
    let stalled = std::thread::spawn(move || stalled_head(port, Duration::from_secs(120)));
    let auth_b = auth.to_string();
    let stalled_b = std::thread::spawn(move || stalled_body(port, &auth_b, Duration::from_secs(120)));
    for i in 0..n {
        let case = generate(&mut rng, port, auth);
        *f.by_delivery.entry(format!("{:?}", case.delivery)).or_default() += 1;
        let outcome = send(port, &case, &mut rng);
        f.sent += 1;
        let what = || {
            let path: String = case.path.chars().take(80).collect();
            let head: String = String::from_utf8_lossy(&case.head).chars().take(400).collect();
            format!(
                "request {i} (seed {seed}): {:?} {} {path:?}, {} body bytes, head {head:?}",
                case.delivery,
                case.method,
                case.body.len()
            )
        };
        match outcome {
            Outcome::Answer(code, body) => {
                *f.codes.entry(code).or_default() += 1;
                if code >= 500 && !allowed_5xx(&case.method, &case.path, code) {
                    f.unexpected_5xx += 1;
                    f.findings.push(format!("{code}: {}", what()));
                }
                if (400..500).contains(&code)
                    && case.method != "HEAD"
                    && String::from_utf8_lossy(&body).trim().is_empty()
                {
                    // The HTTP server's own refusals (malformed requests)
                    // come before any handler and have no body.
                    if matches!(code, 400 | 431) {
                        f.http_level_4xx += 1;
                        if std::env::var_os("PALISADE_REST_FUZZ_DEBUG").is_some() && f.http_level_4xx < 15 {
                            eprintln!(
                                "HTTP-level {code}: {:?}",
                                String::from_utf8_lossy(&case.head[..case.head.len().min(300)])
                            );
                        }
                    } else {
                        f.empty_4xx += 1;
                        f.findings.push(format!("{code} with an empty body: {}", what()));
                    }
                }
            }
            Outcome::Closed => f.closed_without_answer += 1,
            Outcome::Stuck => {
                f.stuck += 1;
                f.findings.push(format!("stuck: {}", what()));
            }
            Outcome::Failed(e) => {
                f.failed += 1;
                f.findings.push(format!("{e}: {}", what()));
            }
        }
        if i % 1000 == 999 || i + 1 == n {
            f.liveness_checks += 1;
            if liveness(port) != Some(200) {
                f.liveness_failures += 1;
                f.findings.push(format!("/liveness not 200 after request {i}"));
            }
        }
    }
    f.stalled_head_closed_after = stalled.join().ok().flatten();
    f.stalled_body_closed_after = stalled_b.join().ok().flatten();
    if f.stalled_body_closed_after.is_none() {
        f.findings.push("a sender stalled before its body was not cut off within 120 s".into());
    }
    if f.stalled_head_closed_after.is_none() {
        f.findings.push("a sender stalled in the request head was not cut off within 120 s".into());
    }
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_auth_encodes_as_base64() {
        assert_eq!(super::basic_auth("fuzz:fuzz"), "Basic ZnV6ejpmdXp6");
        assert_eq!(super::basic_auth("u:p"), "Basic dTpw");
        assert_eq!(super::basic_auth("ab"), "Basic YWI=");
        assert_eq!(super::basic_auth("a"), "Basic YQ==");
    }
}
