//! The API through `router(state)`, without a socket: a daemon's shared
//! state over the reference in-memory DCS (`palisade-dcs-memory`),
//! requests sent with `tower::ServiceExt::oneshot`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use palisade_dcs_memory::MemoryStore;
use palisade_model::{Role, State};
use palisade_plugin_api::DcsTiming;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::{router, ApiState};
use crate::runner::{Event, RuntimeConfig, Shared, Tracked};
use crate::status::{NodeStatus, StatusBoard};

pub(super) struct Fixture {
    pub(super) app: axum::Router,
    pub(super) dcs: Arc<MemoryStore>,
    pub(super) shared: Arc<Shared>,
    pub(super) events: mpsc::UnboundedReceiver<Event>,
    _dir: tempdir::Dir,
}

/// A temporary directory removed on drop (no extra crate for it).
mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A member key's value; nobody listens on port 9 of 127.0.0.1, so the
/// member is unreachable.
fn member(name: &str) -> String {
    json!({
        "conn_url": format!("postgres://127.0.0.1:5432/postgres"),
        "api_url": "http://127.0.0.1:9/patroni",
        "state": "running", "role": if name == "a" { "primary" } else { "replica" },
    })
    .to_string()
}

fn fixture(config: Option<Value>) -> Fixture {
    fixture_in(config, None)
}

/// With `group`, a node of that Citus group: a `citus` section, and its
/// keys under `<group>/`.
fn fixture_in(config: Option<Value>, group: Option<i32>) -> Fixture {
    fixture_with(config, group, "{listen: 127.0.0.1:8008}")
}

/// With `restapi` as the `restapi` section (YAML flow style).
pub(super) fn fixture_with(config: Option<Value>, group: Option<i32>, restapi: &str) -> Fixture {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("palisade-router-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("palisade.yml");
    let yaml = format!(
        "scope: demo\nname: a\nrestapi: {restapi}\netcd3: {{hosts: 127.0.0.1:2379}}\n\
         postgresql: {{listen: 127.0.0.1:5432, data_dir: {}, authentication: \
         {{superuser: {{username: postgres, password: x}}, replication: {{username: rep, password: y}}}}}}\n",
        dir.join("data").display()
    ) + &group.map(|g| format!("citus: {{group: {g}, database: citus}}\n")).unwrap_or_default();
    std::fs::write(&path, yaml).unwrap();
    let local = palisade_config::load(Some(&path), &BTreeMap::new()).unwrap().config;
    let dcs = MemoryStore::new();
    let prefix = group.map(|g| format!("{g}/")).unwrap_or_default();
    dcs.write_raw(&format!("{prefix}leader"), b"a");
    for name in ["a", "b"] {
        dcs.write_raw(&format!("{prefix}members/{name}"), member(name).as_bytes());
    }
    if let Some(c) = config {
        dcs.write_raw(&format!("{prefix}config"), c.to_string().as_bytes());
    }
    let runtime = RuntimeConfig::new(local.clone(), serde_json::Map::new(), false);
    let mut status = NodeStatus::new("demo", "a");
    status.state = State::Running;
    status.role = Role::Primary;
    let board = StatusBoard::new(status);
    let (tx, rx) = mpsc::unbounded_channel();
    let timing = DcsTiming {
        ttl: Duration::from_secs(30),
        loop_wait: Duration::from_secs(10),
        retry_timeout: Duration::from_secs(2),
    };
    let inner: Arc<dyn palisade_plugin_api::Dcs> = Arc::new(dcs.client_in(group, "a", timing));
    let shared = Arc::new(Shared {
        dcs: palisade_plugin_host::dcs::DcsClient::new(inner, Duration::from_secs(2)),
        pg: Arc::new(crate::pg::LocalPg::new(&runtime)),
        config: RwLock::new(runtime),
        tracked: Mutex::new(Tracked::new(Role::Primary, State::Running)),
        status: board.clone(),
        peers: crate::peers::PeerClient::new(reqwest::Client::new()),
        replicas: Vec::new(),
        callback: None,
        hooks: Default::default(),
        events: tx,
        config_path: Some(path),
        env: BTreeMap::new(),
        scheduled_restart: Mutex::new(None),
        mpp: None,
        watchdog: Mutex::new(crate::watchdog::Watchdog::off()),
    });
    let app = router(ApiState::new(board, Some(Arc::clone(&shared))));
    Fixture { app, dcs, shared, events: rx, _dir: tempdir::Dir(dir) }
}

async fn send(app: &axum::Router, method: &str, path: &str, body: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").header("content-length", b.len());
    }
    let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn patch_config_merges_with_compare_and_set() {
    let mut f = fixture(Some(json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB"}}})));
    let (code, body) = send(
        &f.app,
        "PATCH",
        "/config",
        Some(r#"{"postgresql": {"parameters": {"work_mem": null, "max_connections": 200}}, "pause": true}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let stored: Value = serde_json::from_str(&f.dcs.value("config").unwrap()).unwrap();
    assert_eq!(stored, json!({"ttl": 30, "postgresql": {"parameters": {"max_connections": 200}}, "pause": true}));
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), stored);
    assert!(matches!(f.events.try_recv(), Ok(Event::Wake)));

    // Refused writes and bad values leave the stored value alone.
    let before = f.dcs.value("config");
    for (body, want) in [
        ("[1]", 400),
        ("{}", 400),
        ("null", 400),
        (r#"{"loop_wait": "often"}"#, 400),
        (r#"{"postgresql": {"parameters": {"max_connections": -5}}}"#, 400),
    ] {
        assert_eq!(send(&f.app, "PATCH", "/config", Some(body)).await.0, want, "{body}");
    }
    assert_eq!(send(&f.app, "PATCH", "/config", None).await.0, 411);
    f.dcs.refuse_writes(true);
    assert_eq!(send(&f.app, "PATCH", "/config", Some(r#"{"ttl": 20}"#)).await.0, 409);
    assert_eq!(send(&f.app, "PUT", "/config", Some(r#"{"ttl": 20}"#)).await.0, 502);
    assert_eq!(f.dcs.value("config"), before);
    f.dcs.refuse_writes(false);

    let (code, _) = send(&f.app, "PUT", "/config", Some(r#"{"ttl": 25}"#)).await;
    assert_eq!(code, 200);
    assert_eq!(f.dcs.value("config").as_deref(), Some(r#"{"ttl":25}"#));
    let (code, body) = send(&f.app, "GET", "/config", None).await;
    assert_eq!((code.as_u16(), body.as_str()), (200, r#"{"ttl":25}"#));
    let _ = &f.shared;
}

#[tokio::test]
async fn without_a_config_key() {
    let f = fixture(None);
    assert_eq!(send(&f.app, "PATCH", "/config", Some(r#"{"ttl": 20}"#)).await.0, 503);
    assert_eq!(send(&f.app, "GET", "/config", None).await.0, 502);
    assert_eq!(send(&f.app, "GET", "/failsafe", None).await.0, 502);
    assert_eq!(send(&f.app, "POST", "/failsafe", Some(r#"{"a": "http://x/patroni"}"#)).await.0, 502);
    assert!(f.dcs.value("config").is_none());
}

#[tokio::test]
async fn switchovers_are_checked_written_and_cancelled() {
    let mut f = fixture(Some(json!({})));
    // Nobody can take over: the only other member does not answer.
    let (code, body) = send(&f.app, "POST", "/switchover", Some(r#"{"leader": "a"}"#)).await;
    assert_eq!((code.as_u16(), body.as_str()), (412, "switchover is not possible: no good candidates have been found"));
    let (code, body) = send(&f.app, "POST", "/switchover", Some(r#"{"leader": "b", "candidate": "a"}"#)).await;
    assert_eq!((code.as_u16(), body.as_str()), (412, "leader name does not match"));
    assert!(f.dcs.value("failover").is_none());

    // A scheduled one is written for the leader to carry out.
    let (code, body) = send(
        &f.app,
        "POST",
        "/switchover",
        Some(r#"{"leader": "a", "member": "b", "scheduled_at": "2099-01-01T10:00:00+02:00"}"#),
    )
    .await;
    assert_eq!((code.as_u16(), body.as_str()), (202, "Switchover scheduled"));
    assert_eq!(
        f.dcs.value("failover").as_deref(),
        Some(r#"{"leader":"a","member":"b","scheduled_at":"2099-01-01T10:00:00+02:00"}"#)
    );
    assert!(matches!(f.events.try_recv(), Ok(Event::Wake)));
    let (code, body) = send(&f.app, "GET", "/cluster", None).await;
    assert_eq!(code, 200);
    let c: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(c["scheduled_switchover"], json!({"at": "2099-01-01T10:00:00+02:00", "from": "a", "to": "b"}));
    assert_eq!(c["scope"], "demo");

    let (code, body) = send(&f.app, "DELETE", "/switchover", None).await;
    assert_eq!((code.as_u16(), body.as_str()), (200, "scheduled switchover deleted"));
    assert_eq!(f.dcs.value("failover").as_deref(), Some("{}"));
    let (code, body) = send(&f.app, "DELETE", "/switchover", None).await;
    assert_eq!((code.as_u16(), body.as_str()), (404, "no switchover is scheduled"));
}

/// On a Citus node `/cluster` keeps Patroni's body for its own group and
/// adds `group` and `groups` (every group, from one read); `/metrics`
/// labels every sample with the group.
#[tokio::test]
async fn a_citus_node_shows_every_group() {
    let f = fixture_in(Some(json!({"ttl": 30, "pause": true})), Some(1));
    f.dcs.write_raw("0/leader", b"c1");
    f.dcs.write_raw("0/members/c1", member("c1").as_bytes());
    f.dcs.write_raw("2/members/w2", member("w2").as_bytes());
    f.dcs.write_raw("leader", b"not a group");
    let (code, body) = send(&f.app, "GET", "/cluster", None).await;
    assert_eq!(code, 200, "{body}");
    let c: Value = serde_json::from_str(&body).unwrap();
    let names = |v: &Value| -> Vec<String> {
        v["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&c), ["a", "b"], "the node's own group, as Patroni shows it");
    assert_eq!((c["scope"].clone(), c["group"].clone(), c["pause"].clone()), (json!("demo"), json!(1), json!(true)));
    let groups = c["groups"].as_object().unwrap();
    assert_eq!(groups.keys().collect::<Vec<_>>(), ["0", "1", "2"]);
    assert_eq!(names(&groups["0"]), ["c1"]);
    assert_eq!(groups["0"]["members"][0]["role"], "leader");
    assert_eq!(
        groups["1"],
        json!(c
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !["scope", "group", "groups"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<serde_json::Map<_, _>>())
    );
    assert_eq!(names(&groups["2"]), ["w2"]);
    assert_eq!(groups["2"]["members"][0]["role"], "replica", "group 2 has no leader");

    let (code, metrics) = send(&f.app, "GET", "/metrics", None).await;
    assert_eq!(code, 200);
    assert!(metrics.contains("patroni_primary{scope=\"demo\",name=\"a\",group=\"1\"} "), "{metrics}");

    // Without Citus, no group anywhere.
    let plain = fixture(None);
    let (_, body) = send(&plain.app, "GET", "/cluster", None).await;
    let c: Value = serde_json::from_str(&body).unwrap();
    assert!(c.get("group").is_none() && c.get("groups").is_none(), "{c}");
    let (_, metrics) = send(&plain.app, "GET", "/metrics", None).await;
    assert!(!metrics.contains("group="));
}

#[tokio::test]
async fn restarts_are_scheduled_and_reloads_requested() {
    let mut f = fixture(Some(json!({})));
    let (code, body) =
        send(&f.app, "POST", "/restart", Some(r#"{"schedule": "2099-01-01T00:00:00Z", "role": "primary"}"#)).await;
    assert_eq!((code.as_u16(), body.as_str()), (202, "Restart scheduled"));
    let scheduled = f.shared.scheduled_restart().unwrap();
    assert_eq!(scheduled.filter.role.as_deref(), Some("primary"));
    let (_, body) = send(&f.app, "GET", "/patroni", None).await;
    let st: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["scheduled_restart"]["schedule"], "2099-01-01T00:00:00+00:00", "{st}");
    assert_eq!(send(&f.app, "POST", "/restart", Some(r#"{"schedule": "2099-01-01T00:00:00Z"}"#)).await.0, 409);
    assert_eq!(send(&f.app, "DELETE", "/restart", None).await.0, 200);
    assert!(f.shared.scheduled_restart().is_none());
    assert_eq!(send(&f.app, "DELETE", "/restart", None).await.0, 404);

    while f.events.try_recv().is_ok() {}
    let (code, body) = send(&f.app, "POST", "/reload", None).await;
    assert_eq!((code.as_u16(), body.as_str()), (202, "reload scheduled"));
    assert!(matches!(f.events.try_recv(), Ok(Event::Reload)));
}

#[tokio::test]
async fn health_checks_answer_from_the_cached_status() {
    let f = fixture(Some(json!({})));
    // The status board says primary, but without the leader flag and a
    // PostgreSQL snapshot these are the answers of a node not yet up.
    for (method, path, want) in [
        ("GET", "/liveness", 503),
        ("HEAD", "/primary", 503),
        ("OPTIONS", "/replica", 503),
        ("GET", "/master", 503),
        ("GET", "/some/other/path", 503),
    ] {
        let (code, body) = send(&f.app, method, path, None).await;
        assert_eq!(code.as_u16(), want, "{method} {path}");
        if method != "GET" {
            assert!(body.is_empty(), "{method} {path} has a body: {body}");
        }
    }
    f.shared.status.update(|s| {
        s.is_leader = true;
        s.last_cycle_at = Some(std::time::Instant::now());
        s.pg = Some(crate::status::PgSnapshot { in_recovery: false, ..Default::default() });
    });
    for (method, path, want) in [
        ("GET", "/liveness", 200),
        ("HEAD", "/primary", 200),
        ("OPTIONS", "/", 200),
        ("GET", "/master", 200),
        ("GET", "/replica", 503),
    ] {
        assert_eq!(send(&f.app, method, path, None).await.0.as_u16(), want, "{method} {path}");
    }
    let (code, body) = send(&f.app, "GET", "/metrics", None).await;
    assert_eq!(code, 200);
    assert!(body.contains("patroni_primary{scope=\"demo\",name=\"a\"} 1"), "{body}");
    let (code, body) = send(&f.app, "GET", "/history", None).await;
    assert_eq!((code.as_u16(), body.as_str()), (200, "[]"));
}

/// Every field of every request body, given extreme and garbage values:
/// no panic, no 500, a 400 that names the field (or Patroni's text) for
/// what cannot be used, and the API and the stored configuration still
/// good afterwards. Raw `NaN`/`Infinity` (Python's json accepts them) and
/// numbers beyond f64 are not JSON here: 400 for the whole body.
#[tokio::test]
async fn extreme_and_garbage_values_in_every_body_field() {
    let mut f = fixture(Some(json!({"ttl": 30})));
    // Stand in for the HA loop: answer restarts and reinitializations,
    // remembering the restart timeouts it was given.
    let mut events = std::mem::replace(&mut f.events, mpsc::unbounded_channel().1);
    let timeouts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&timeouts);
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            match e {
                Event::Restart { timeout, reply, .. } => {
                    seen.lock().unwrap().push(timeout);
                    let _ = reply.send((true, "restarted successfully".into()));
                }
                Event::Reinitialize { reply, .. } => {
                    let _ = reply.send(None);
                }
                _ => {}
            }
        }
    });
    let long = format!("\"{}\"", "9".repeat(10_000));
    let values: Vec<&str> = vec![
        "0",
        "-1",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "4e18",
        "1e308",
        "-1e308",
        "0.5",
        "\"NaN\"",
        "\"nan\"",
        "\"Infinity\"",
        "\"-inf\"",
        "\"1e400\"",
        "\"9223372036854775808\"",
        "\"99999999999999999999.1\"",
        "\"abc\"",
        "\"\"",
        "[]",
        "{}",
        "true",
        "null",
        &long,
    ];
    let not_json = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"];
    let fields: [(&str, &str, &str); 24] = [
        ("POST", "/switchover", r#"{"leader": "a", "F": V}"#),
        ("POST", "/switchover", r#"{"leader": "a", "candidate": V}"#),
        ("POST", "/switchover", r#"{"leader": "a", "member": V}"#),
        ("POST", "/switchover", r#"{"leader": V}"#),
        ("POST", "/switchover", r#"{"leader": "a", "scheduled_at": V}"#),
        ("POST", "/failover", r#"{"candidate": V}"#),
        ("POST", "/failover", r#"{"candidate": "b", "leader": V}"#),
        ("POST", "/restart", r#"{"schedule": V}"#),
        ("POST", "/restart", r#"{"role": V}"#),
        ("POST", "/restart", r#"{"postgres_version": V}"#),
        ("POST", "/restart", r#"{"timeout": V}"#),
        ("POST", "/restart", r#"{"restart_pending": V}"#),
        ("POST", "/reinitialize", r#"{"force": V}"#),
        ("POST", "/reinitialize", r#"{"from_leader": V}"#),
        ("PATCH", "/config", r#"{"ttl": V}"#),
        ("PATCH", "/config", r#"{"loop_wait": V}"#),
        ("PATCH", "/config", r#"{"retry_timeout": V}"#),
        ("PATCH", "/config", r#"{"primary_start_timeout": V, "maximum_lag_on_failover": V}"#),
        ("PATCH", "/config", r#"{"member_slots_ttl": V, "synchronous_node_count": V}"#),
        ("PATCH", "/config", r#"{"postgresql": {"parameters": {"max_connections": V}}}"#),
        ("PUT", "/config", r#"{"ttl": V, "loop_wait": V, "retry_timeout": V}"#),
        ("POST", "/failsafe", r#"{"a": V}"#),
        ("POST", "/mpp", r#"{"type": V}"#),
        ("POST", "/citus", r#"{"group": V}"#),
    ];
    for (method, path, template) in fields {
        for v in values.iter().copied().chain(not_json) {
            let body = template.replace("\"F\"", "\"x\"").replace('V', v);
            let (code, text) = send(&f.app, method, path, Some(&body)).await;
            let code = code.as_u16();
            let what = format!("{method} {path} {}: {code} {text}", &body[..body.len().min(120)]);
            assert!([200, 202, 400, 404, 409, 412, 422, 502, 503].contains(&code), "{what}");
            // POST /failsafe answers 502 before reading anything when
            // failsafe_mode is off, as Patroni's does.
            if not_json.contains(&v) && path != "/failsafe" {
                assert_eq!(code, 400, "{what}");
                assert!(text.contains("not valid JSON"), "{what}");
            }
            if code == 400 {
                assert!(!text.trim().is_empty(), "400 without a message: {what}");
            }
        }
    }
    // Specific answers.
    let check = [
        ("POST", "/restart", r#"{"timeout": 0}"#, 400, "Timeout should be a positive number of seconds"),
        ("POST", "/restart", r#"{"timeout": "NaN"}"#, 400, "Timeout should be a positive number of seconds"),
        ("POST", "/restart", r#"{"timeout": 1e308}"#, 400, "Timeout should be a positive number of seconds"),
        ("POST", "/restart", r#"{"timeout": 4e18}"#, 200, "restarted successfully"),
        ("POST", "/restart", r#"{"postgres_version": "4294967296.99.99"}"#, 200, "restarted successfully"),
        ("POST", "/restart", r#"{"postgres_version": 1e308}"#, 400, "Invalid PostgreSQL version: 1e+308"),
        ("POST", "/restart", r#"{"restart_pending": "NaN"}"#, 400, "'restart_pending' must be a boolean"),
        ("POST", "/reinitialize", r#"{"force": 9223372036854775808}"#, 400, "'force' must be a boolean"),
        ("POST", "/switchover", r#"{"leader": 1e308}"#, 400, "'leader' must be a string, not a number"),
        (
            "POST",
            "/switchover",
            r#"{"leader": "a", "scheduled_at": "NaN"}"#,
            422,
            "Unable to parse scheduled timestamp",
        ),
        ("PATCH", "/config", r#"{"loop_wait": "Infinity"}"#, 400, "loop_wait: expected a positive number"),
        ("PATCH", "/config", r#"{"ttl": -1}"#, 400, "ttl: expected a positive number of seconds, found an integer -1"),
    ];
    for (method, path, body, want, text) in check {
        let (code, got) = send(&f.app, method, path, Some(body)).await;
        assert_eq!(code.as_u16(), want, "{method} {path} {body}: {got}");
        assert!(got.contains(text), "{method} {path} {body}: {got}");
    }
    let stored = |f: &Fixture| -> serde_json::Map<String, Value> {
        serde_json::from_str(&f.dcs.value("config").unwrap()).unwrap()
    };
    // A huge duration is stored as written (as Patroni stores it), and read
    // clamped to a year with a warning.
    let (code, _) = send(&f.app, "PATCH", "/config", Some(r#"{"ttl": 4e18, "loop_wait": 4000000000000000000}"#)).await;
    assert_eq!(code, 200);
    let (g, warnings) = palisade_config::GlobalConfig::from_dynamic(&stored(&f));
    assert_eq!(g.ttl, palisade_config::limits::MAX_DURATION);
    assert_eq!(g.loop_wait, palisade_config::limits::MAX_DURATION);
    assert!(warnings.iter().any(|w| w.path == "ttl" && w.message.contains("maximum")), "{warnings:?}");
    let timeouts = timeouts.lock().unwrap().clone();
    assert!(!timeouts.is_empty());
    assert!(
        timeouts.iter().flatten().all(|t| *t > 0.0 && *t <= palisade_config::limits::MAX_SECONDS as f64),
        "{timeouts:?}"
    );
    // The API still answers.
    for path in ["/config", "/patroni", "/cluster", "/history"] {
        assert_eq!(send(&f.app, "GET", path, None).await.0, 200, "{path}");
    }
}

/// `POST /failsafe` with failsafe mode on: a replica accepts only the
/// member that was leader, and then shows failsafe mode as active.
#[tokio::test]
async fn failsafe_calls_are_accepted_only_from_the_leader() {
    let f = fixture(Some(json!({"failsafe_mode": true})));
    f.shared.config.write().unwrap().global.failsafe_mode = true;
    let body = |name: &str| {
        json!({"name": name, "conn_url": format!("postgres://{name}:5432/postgres"), "api_url": format!("http://{name}:8008/patroni")})
            .to_string()
    };
    let replica = |known: Option<&str>| {
        let known = known.map(String::from);
        move |s: &mut NodeStatus| {
            s.role = Role::Replica;
            s.pg = Some(crate::status::PgSnapshot {
                in_recovery: true,
                received_location: Some(700),
                replayed_location: Some(500),
                ..Default::default()
            });
            s.known_leader.clone_from(&known);
            s.failsafe = crate::status::Failsafe::default();
        }
    };
    type Row = (&'static str, Option<&'static str>, bool, String, u16, &'static str);
    let rows: Vec<Row> = vec![
        ("the leader calls", Some("a"), true, body("a"), 200, "Accepted"),
        ("another member calls", Some("a"), true, body("c"), 500, "c is not the leader (the last known leader is a)"),
        ("no leader known", None, true, body("a"), 500, "a is not the leader (no leader is known)"),
        ("this node is a primary", Some("a"), false, body("a"), 500, "Running as a leader"),
        ("no name", Some("a"), true, json!({"conn_url": "x", "api_url": "y"}).to_string(), 400, "'name' is required"),
        (
            "bad api_url",
            Some("a"),
            true,
            json!({"name": "a", "conn_url": "x", "api_url": 5}).to_string(),
            400,
            "'api_url' must be a string",
        ),
    ];
    for (what, known, is_replica, request, code, text) in rows {
        f.shared.status.update(replica(known));
        if !is_replica {
            f.shared.status.update(|s| s.pg = Some(crate::status::PgSnapshot::default()));
        }
        let req = Request::builder()
            .method("POST")
            .uri("/failsafe")
            .header("content-type", "application/json")
            .header("content-length", request.len())
            .body(Body::from(request.clone()))
            .unwrap();
        let resp = f.app.clone().oneshot(req).await.unwrap();
        let got_code = resp.status().as_u16();
        let lsn = resp.headers().get("lsn").map(|v| v.to_str().unwrap().to_string());
        let got = String::from_utf8_lossy(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).into_owned();
        assert_eq!(got_code, code, "{what}: {got}");
        assert!(got.contains(text), "{what}: {got}");
        let status = f.shared.status.get();
        assert_eq!(status.failsafe.is_active(), code == 200, "{what}");
        if code == 200 {
            assert_eq!(lsn.as_deref(), Some("700"), "{what}: the greater of received and replayed");
            assert_eq!(status.failsafe.leader.as_ref().map(|l| l.api_url.as_str()), Some("http://a:8008/patroni"));
            let (_, patroni) = send(&f.app, "GET", "/patroni", None).await;
            assert!(patroni.contains(r#""failsafe_mode_is_active":true"#), "{patroni}");
            let (_, metrics) = send(&f.app, "GET", "/metrics", None).await;
            assert!(metrics.contains("\npatroni_failsafe_mode_is_active{scope=\"demo\",name=\"a\"} 1"), "{metrics}");
        }
    }
    let (_, metrics) = send(&f.app, "GET", "/metrics", None).await;
    assert!(metrics.contains("\npatroni_failsafe_mode_is_active{scope=\"demo\",name=\"a\"} 0"), "{metrics}");

    // The leader's `slots` are kept for our slot copies; anything but an
    // object there is refused.
    let with_slots = |slots: Value| {
        let mut b: Value = serde_json::from_str(&body("a")).unwrap();
        b["slots"] = slots;
        b.to_string()
    };
    let cases: Vec<(&str, String, u16, Option<Value>)> = vec![
        ("slots sent", with_slots(json!({"a": 900, "perm": 800})), 200, Some(json!({"a": 900, "perm": 800}))),
        ("no slots", body("a"), 200, None),
        ("null slots", with_slots(Value::Null), 200, None),
        ("slots not an object", with_slots(json!([1])), 400, None),
    ];
    for (what, request, code, want) in cases {
        f.shared.status.update(replica(Some("a")));
        let (got_code, text) = send(&f.app, "POST", "/failsafe", Some(&request)).await;
        assert_eq!(got_code, code, "{what}: {text}");
        if code == 400 {
            assert!(text.contains("'slots' must be an object"), "{what}: {text}");
        }
        assert_eq!(f.shared.status.get().failsafe.slots.clone().map(Value::Object), want, "{what}");
    }
}
