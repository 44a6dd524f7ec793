//! A seeded fuzzer of the REST API, in process: generated requests to every
//! endpoint through `router(state)` over the test state of `router_tests`
//! (a daemon's shared state over the in-memory DCS, no live PostgreSQL).
//!
//! Every request is generated from a small deterministic generator: the
//! method, the path (the endpoints, Patroni's health-check words, and
//! mangled forms of them), the query string, the headers (authorization,
//! content type, content length) and the body (each endpoint's valid
//! bodies, then values of the wrong type, deep nesting, huge numbers,
//! invalid UTF-8, truncated text, bodies sent slowly in chunks and bodies
//! whose sender fails half-way). Each answer is checked:
//! - no panic, and an answer within a bound (no stuck request);
//! - no 5xx but those Patroni defines (see `allowed_5xx`);
//! - every 4xx says what was wrong in its body;
//! - a 4xx changes nothing: the DCS keys, the scheduled restart and the
//!   events sent to the HA loop are as before.
//!
//! `PALISADE_FUZZ_REST_CASES` (default 3000) and `PALISADE_FUZZ_REST_SEED`
//! choose the run; a failure prints the seed and the request.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, StatusCode};
use hyper::body::Frame;
use serde_json::json;
use tower::ServiceExt;

use super::router_tests::{fixture_with, Fixture};
use crate::runner::Event;

use palisade_test_support::python::Rng;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// `u:p` in base64: the credentials of the fixture with authentication.
const GOOD_AUTH: &str = "Basic dTpw";

use palisade_test_support::rest_inputs::{BODY_KEYS as KEYS, METHODS, PATHS};

/// A valid body for `path`, as a JSON text.
fn valid_body(rng: &mut Rng, path: &str) -> String {
    let options: &[&str] = match path {
        "/switchover" => &[
            r#"{"leader": "a", "candidate": "b"}"#,
            r#"{"leader": "a"}"#,
            r#"{"leader": "a", "member": "b", "scheduled_at": "2099-01-01T10:00:00+02:00"}"#,
        ],
        "/failover" => &[r#"{"candidate": "b"}"#, r#"{"leader": "a", "candidate": "b"}"#],
        "/restart" => &[
            "{}",
            r#"{"schedule": "2099-01-01T00:00:00Z", "role": "primary"}"#,
            r#"{"restart_pending": true, "timeout": 5, "postgres_version": "15.2"}"#,
        ],
        "/reinitialize" => &["{}", r#"{"force": true}"#, r#"{"from_leader": false}"#],
        "/config" => &[
            r#"{"ttl": 25}"#,
            r#"{"loop_wait": 5, "retry_timeout": 5}"#,
            r#"{"postgresql": {"parameters": {"work_mem": "8MB", "max_connections": 200}}}"#,
            r#"{"pause": true}"#,
        ],
        "/failsafe" => {
            &[r#"{"name": "a", "api_url": "http://127.0.0.1:9/patroni", "conn_url": "postgres://x", "slots": {}}"#]
        }
        "/mpp" | "/citus" => &[
            r#"{"type": "before_demote", "group": 1, "leader": "x", "timeout": 30, "cooldown": 10}"#,
            r#"{"type": "after_promote", "group": 1, "leader": "x", "timeout": 30, "cooldown": 10}"#,
        ],
        _ => &["{}", r#"{"a": 1}"#],
    };
    rng.pick(options).to_string()
}

/// A JSON value of any kind, as text, with nesting up to `depth`.
fn wild(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth == 0 { 14 } else { 17 }) {
        0 => "null".into(),
        1 => "true".into(),
        2 => "-1".into(),
        3 => "0".into(),
        4 => "1e400".into(),
        5 => "123456789012345678901234567890".into(),
        6 => "-9223372036854775809".into(),
        7 => "1.5".into(),
        8 => "\"\"".into(),
        9 => format!("\"{}\"", "x".repeat(rng.below(5000))),
        10 => "\"\\u0000\\ud800 é 𝄞\"".into(),
        11 => "\"2099-13-45T99:00:00Z\"".into(),
        12 => "[]".into(),
        13 => "{}".into(),
        14 => {
            // Deep nesting, beyond serde_json's recursion limit at times.
            let n = 1 + rng.below(300);
            let (open, close) = if rng.chance(50) { ("[", "]") } else { ("{\"k\":", "}") };
            format!("{}1{}", open.repeat(n), close.repeat(n))
        }
        15 => format!("[{}, {}]", wild(rng, depth - 1), wild(rng, depth - 1)),
        _ => format!("{{\"{}\": {}}}", rng.pick(KEYS), wild(rng, depth - 1)),
    }
}

/// A body for `path`: valid, or one of many wrong forms.
fn body_for(rng: &mut Rng, path: &str) -> Vec<u8> {
    let valid = valid_body(rng, path);
    match rng.below(12) {
        0..=2 => valid.into_bytes(),
        3 | 4 => {
            // One field of a valid body with a value of another kind.
            let mut fields: Vec<String> = Vec::new();
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(&valid) {
                for (k, v) in m {
                    fields.push(format!("{}: {v}", json!(k)));
                }
            }
            let key = if fields.is_empty() || rng.chance(30) { rng.pick(KEYS).to_string() } else { String::new() };
            let i = rng.below(fields.len().max(1));
            let replaced =
                format!("{}: {}", json!(if key.is_empty() { field_name(&fields, i) } else { key }), wild(rng, 3));
            if i < fields.len() {
                fields[i] = replaced;
            } else {
                fields.push(replaced);
            }
            format!("{{{}}}", fields.join(", ")).into_bytes()
        }
        5 => wild(rng, 4).into_bytes(),
        6 => {
            // Truncated.
            let b = valid.into_bytes();
            let cut = rng.below(b.len());
            b[..cut].to_vec()
        }
        7 => {
            // Invalid UTF-8 inside or outside strings.
            let mut b = valid.into_bytes();
            let at = rng.below(b.len() + 1);
            let bad: &[u8] = rng.pick::<&[u8]>(&[b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80", b"\xef\xbb\xbf"]);
            b.splice(at..at, bad.iter().copied());
            b
        }
        8 => Vec::new(),
        9 => rng.pick(&[&b"[1]"[..], b"\"x\"", b"42", b"null", b"  ", b"{\"a\":1}{}", b"{,}", b"\x00"]).to_vec(),
        10 => {
            // Duplicate and unknown keys.
            format!(r#"{{"leader": "a", "leader": {}, "zzz": {}}}"#, wild(rng, 2), wild(rng, 2)).into_bytes()
        }
        _ => {
            // Large: sometimes over the body limit.
            let n = if rng.chance(20) { 3 << 20 } else { rng.below(200_000) };
            format!(r#"{{"leader": "{}"}}"#, "a".repeat(n)).into_bytes()
        }
    }
}

fn field_name(fields: &[String], i: usize) -> String {
    fields
        .get(i)
        .and_then(|f| serde_json::from_str::<serde_json::Value>(&format!("{{{f}}}")).ok())
        .and_then(|v| v.as_object().and_then(|m| m.keys().next().cloned()))
        .unwrap_or_else(|| "leader".into())
}

/// A path, valid or mangled, with a query string at times.
fn path(rng: &mut Rng) -> String {
    let mut p = rng.pick(PATHS).to_string();
    match rng.below(10) {
        0 => p.push('/'),
        1 => p.push_str(&format!("/{}", rng.pick(&["x", "%ff", "..", "%2e%2e", "a%00b", "replica"]))),
        2 => p = format!("/{p}"),
        3 => p = p.to_uppercase(),
        4 => p.push_str(&"/a".repeat(rng.below(3000))),
        _ => {}
    }
    if rng.chance(50) {
        let mut parts = Vec::new();
        for _ in 0..rng.below(5) {
            let key = rng.pick(&["lag", "tag_nofailover", "tag_x", "replication_state", "mode", "x", "", "%ff"]);
            let value = rng.pick(&[
                "1",
                "-1",
                "1MB",
                "10 kB",
                "99999999999999999999999",
                "1e400",
                "abc",
                "%ff%fe",
                "",
                "true",
                "streaming",
                "%zz",
                "a=b",
            ]);
            parts.push(if rng.chance(10) { key.to_string() } else { format!("{key}={value}") });
        }
        p = format!("{p}?{}", parts.join(if rng.chance(90) { "&" } else { "&&;" }));
    }
    p
}

/// A body sent in chunks with pauses, failing at the end when `broken`
/// (a sender that goes away half-way).
struct Slow {
    chunks: VecDeque<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
    broken: bool,
}

impl hyper::body::Body for Slow {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.pause.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let next = tokio::time::Instant::now() + Duration::from_millis(2);
        self.pause.as_mut().reset(next);
        match self.chunks.pop_front() {
            Some(c) => Poll::Ready(Some(Ok(Frame::data(c)))),
            None if self.broken => {
                self.broken = false;
                Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "sender went away"))))
            }
            None => Poll::Ready(None),
        }
    }
}

/// One generated request, kept in a form that prints.
#[derive(Debug)]
struct Case {
    method: String,
    uri: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    /// 0: at once; 1: slowly in chunks; 2: slowly, then the sender fails.
    delivery: u8,
    auth_fixture: bool,
}

/// The endpoints that change something, with their methods.
const ACTIONS: &[(&str, &str)] = &[
    ("POST", "/switchover"),
    ("POST", "/failover"),
    ("POST", "/restart"),
    ("POST", "/reload"),
    ("POST", "/reinitialize"),
    ("POST", "/mpp"),
    ("POST", "/citus"),
    ("POST", "/failsafe"),
    ("DELETE", "/switchover"),
    ("DELETE", "/restart"),
    ("PATCH", "/config"),
    ("PUT", "/config"),
];

fn generate(rng: &mut Rng) -> Case {
    let (method, uri) = if rng.chance(60) {
        // Mostly an endpoint with its own method, so that bodies reach
        // the handlers.
        let (m, p) = rng.pick(ACTIONS);
        let mut uri = p.to_string();
        if rng.chance(10) {
            uri.push_str(rng.pick::<&str>(&["?x=1", "/", "?%ff"]));
        }
        (m.to_string(), uri)
    } else {
        (rng.pick(METHODS).to_string(), path(rng))
    };
    let bare = uri.split('?').next().unwrap_or("").to_string();
    let with_body = !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS") || rng.chance(5);
    let body = if with_body && rng.chance(90) { body_for(rng, &bare) } else { Vec::new() };
    let mut headers = Vec::new();
    match rng.below(8) {
        0 | 1 => {}
        2..=4 => headers.push(("authorization", GOOD_AUTH.as_bytes().to_vec())),
        5 => headers.push(("authorization", b"Basic dTpx".to_vec())),
        6 => headers.push((
            "authorization",
            rng.pick(&[&b"Basic"[..], b"Basic %%%", b"Bearer dTpw", b"Basic \xff\xfe", b"basic dTpw"]).to_vec(),
        )),
        _ => headers.push(("authorization", format!("Basic {}", "A".repeat(rng.below(20_000))).into_bytes())),
    }
    match rng.below(6) {
        0..=2 => headers.push(("content-type", b"application/json".to_vec())),
        3 => headers.push((
            "content-type",
            rng.pick(&[&b"text/plain"[..], b"\xff", b"application/json; charset=latin1"]).to_vec(),
        )),
        _ => {}
    }
    match rng.below(8) {
        0..=4 if !body.is_empty() || rng.chance(50) => {
            headers.push(("content-length", body.len().to_string().into_bytes()))
        }
        5 => headers
            .push(("content-length", rng.pick(&[&b"abc"[..], b"-1", b"99999999999999999999", b"0", b"1, 2"]).to_vec())),
        _ => {}
    }
    if rng.chance(10) {
        headers.push(("x-forwarded-for", b"10.0.0.1, \xff".to_vec()));
    }
    let delivery = match rng.below(20) {
        0 => 1,
        1 => 2,
        _ => 0,
    };
    Case { method, uri, headers, body, delivery, auth_fixture: rng.chance(50) }
}

impl Case {
    /// The request, or `None` when `http` cannot even build it (an HTTP
    /// server refuses such a request line before any handler).
    fn request(&self) -> Option<Request<Body>> {
        let mut b = Request::builder().method(Method::from_bytes(self.method.as_bytes()).ok()?).uri(&self.uri);
        for (k, v) in &self.headers {
            b = b.header(*k, HeaderValue::from_bytes(v).ok()?);
        }
        let body = match self.delivery {
            0 => Body::from(self.body.clone()),
            d => {
                let chunks = self.body.chunks(self.body.len().div_ceil(4).max(1)).map(Bytes::copy_from_slice).collect();
                Body::new(Slow { chunks, pause: Box::pin(tokio::time::sleep(Duration::ZERO)), broken: d == 2 })
            }
        };
        b.body(body).ok()
    }

    fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(300).collect();
        let uri: String = self.uri.chars().take(300).collect();
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(&v[..v.len().min(60)])))
            .collect();
        format!(
            "{} {uri} {headers:?} delivery={} auth_fixture={} body ({} bytes): {body}",
            self.method,
            self.delivery,
            self.auth_fixture,
            self.body.len()
        )
    }
}

/// The 5xx codes Patroni answers with: 501 for methods and paths it does
/// not serve, 502 when the DCS cannot be read or written (`GET /config`,
/// `PUT /config`, failsafe), 503 from health checks and from actions that
/// failed or could not be carried out (switchover, restart, reinitialize,
/// `PATCH /config` without a `config` key), and 500 from `POST /failsafe`
/// when the caller is not the leader.
fn allowed_5xx(method: &str, path: &str, code: u16) -> bool {
    match code {
        501..=503 => true,
        500 => method == "POST" && path == "/failsafe",
        _ => false,
    }
}

/// What a valid request may change: the DCS keys, the scheduled restart.
fn state(f: &Fixture) -> (Vec<(String, String)>, String) {
    let restart = f.shared.scheduled_restart().map(|s| crate::runner::member::scheduled_restart_json(&s));
    let restart = format!("{restart:?}");
    (f.dcs.keys(), restart)
}

/// Play the HA loop's part: answer restarts and reinitializations, and
/// clear a switchover written for a leader that will not carry it out
/// (as the leader does when no candidate can take over), so that the
/// request waiting for its result ends at once. Returns how many events.
fn serve_event(f: &Fixture, ev: Event, rng: &mut Rng) -> usize {
    match ev {
        Event::Restart { reply, .. } => {
            let _ = reply.send((rng.chance(50), "restarted (fuzz)".into()));
        }
        Event::Reinitialize { reply, .. } => {
            let _ = reply.send(rng.chance(50).then(|| "not now (fuzz)".into()));
        }
        Event::Wake if f.dcs.value("failover").is_some_and(|v| !v.contains("scheduled_at")) => {
            f.dcs.write_raw("failover", b"{}");
        }
        _ => {}
    }
    1
}

async fn run_one(f: &mut Fixture, case: &Case, rng: &mut Rng) -> Result<Option<(u16, Vec<u8>, usize)>, String> {
    let Some(req) = case.request() else { return Ok(None) };
    let app = f.app.clone();
    let mut task = tokio::spawn(async move {
        let resp = app.oneshot(req).await.unwrap_or_else(|e| match e {});
        let code = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((code, body.to_vec()))
    });
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    let mut events = 0;
    let answer = loop {
        tokio::select! {
            r = &mut task => break r,
            Some(ev) = f.events.recv() => events += serve_event(f, ev, rng),
            () = &mut deadline => {
                task.abort();
                return Err("no answer within 30 s (stuck request)".into());
            }
        }
    };
    while let Ok(ev) = f.events.try_recv() {
        events += serve_event(f, ev, rng);
    }
    match answer {
        Ok(Ok((code, body))) => Ok(Some((code, body, events))),
        Ok(Err(e)) => Err(format!("the answer's body could not be read: {e}")),
        Err(e) if e.is_panic() => Err(format!("panic: {e}")),
        Err(e) => Err(format!("the request task failed: {e}")),
    }
}

fn check(case: &Case, code: u16, body: &[u8], events: usize, changed: bool) -> Result<(), String> {
    let path = case.uri.split('?').next().unwrap_or("");
    if code >= 500 && !allowed_5xx(&case.method, path, code) {
        return Err(format!("{code} is not an answer Patroni gives here"));
    }
    if (400..500).contains(&code) {
        // A HEAD answer has no body by definition.
        if case.method != "HEAD" && String::from_utf8_lossy(body).trim().is_empty() {
            return Err(format!("{code} with an empty body: it does not say what was wrong"));
        }
        if changed || events > 0 {
            return Err(format!("{code} but the state changed (DCS or scheduled restart changed, {events} events)"));
        }
    }
    if !(100..600).contains(&code) || StatusCode::from_u16(code).is_err() {
        return Err(format!("invalid status {code}"));
    }
    Ok(())
}

#[tokio::test]
async fn generated_requests_to_every_endpoint() {
    let cases = env_u64("PALISADE_FUZZ_REST_CASES", 3000);
    let seed = env_u64("PALISADE_FUZZ_REST_SEED", 0x5eed_0012);
    let mut rng = Rng::new(seed);
    let config = || Some(json!({"ttl": 30, "loop_wait": 10, "failsafe_mode": true}));
    let mut open = fixture_with(config(), None, "{listen: 127.0.0.1:8008}");
    let mut guarded =
        fixture_with(config(), None, "{listen: 127.0.0.1:8008, authentication: {username: u, password: p}}");
    let mut codes = std::collections::BTreeMap::<u16, u64>::new();
    let mut unsendable = 0u64;
    let mut messages = std::collections::BTreeSet::<(u16, String)>::new();
    for i in 0..cases {
        if i % 200 == 199 {
            // Now and then the DCS refuses writes, fails them, or is down.
            let mode = rng.below(6);
            for f in [&open, &guarded] {
                f.dcs.come_back();
                f.dcs.refuse_writes(mode == 3);
                f.dcs.fail_writes(mode == 4);
                if mode == 5 {
                    f.dcs.go_down();
                }
            }
        }
        let case = generate(&mut rng);
        let f = if case.auth_fixture { &mut guarded } else { &mut open };
        let before = state(f);
        let fail = |why: String| -> ! {
            panic!(
                "REST fuzz case {i} of seed {seed} (rerun with PALISADE_FUZZ_REST_SEED={seed} \
                 PALISADE_FUZZ_REST_CASES={}): {why}\n  request: {}",
                i + 1,
                case.describe()
            )
        };
        let (code, body, events) = match run_one(f, &case, &mut rng).await {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                unsendable += 1;
                continue;
            }
            Err(why) => fail(why),
        };
        let changed = state(f) != before;
        if let Err(why) = check(&case, code, &body, events, changed) {
            fail(format!("{why}; answer: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
        }
        *codes.entry(code).or_default() += 1;
        if (400..500).contains(&code) {
            let text: String = String::from_utf8_lossy(&body).chars().take(70).collect();
            messages.insert((code, text));
        }
    }
    eprintln!(
        "REST fuzz: seed {seed}, {cases} cases, {unsendable} not buildable as HTTP requests, codes {codes:?}, \
         {} distinct 4xx messages",
        messages.len()
    );
    if std::env::var_os("PALISADE_FUZZ_REST_VERBOSE").is_some() {
        for (code, text) in &messages {
            eprintln!("  {code} {text}");
        }
    }
}
