//! Fidelity of the Consul test double (`tests/doubles/consul`, not Consul):
//! its HTTP API against Consul's documented behaviour, through plain HTTP,
//! and real Patroni 4.1 (py-consul) running on it. Where Patroni and the
//! double disagree, the double is wrong.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_test_support::{wait_for, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec, Engine};
use palisade_tests::consul::{ConsulDcs, ConsulOptions, ConsulServer, ConsulTls, RawConsul};
use palisade_tests::dcs::DcsBackend;
use palisade_tests::http::{request, Response};
use serde_json::{json, Value};

fn put(raw: &RawConsul, path: &str, body: &str) -> Response {
    raw.request("PUT", path, Some(body))
}

fn session(raw: &RawConsul, body: &str) -> String {
    let r = put(raw, "/v1/session/create", body);
    assert_eq!(r.status, 200, "session create {body}: {}", r.body);
    r.json()["ID"].as_str().unwrap().to_string()
}

fn index(r: &Response) -> u64 {
    r.header("X-Consul-Index").and_then(|i| i.parse().ok()).unwrap_or_else(|| panic!("no X-Consul-Index: {r:?}"))
}

#[test]
fn kv_reads_writes_and_compare_and_set() {
    let server = ConsulServer::start("kv");
    let raw = server.raw();

    let r = raw.request("GET", "/v1/kv/a/b", None);
    assert_eq!(r.status, 404, "an absent key");
    assert!(index(&r) >= 1, "a 404 still carries the index");
    assert_eq!(r.header("X-Consul-KnownLeader"), Some("true"));
    assert_eq!(r.header("X-Consul-LastContact"), Some("0"));

    assert_eq!(put(&raw, "/v1/kv/a/b?flags=42", "{\"x\":1}").body, "true");
    let r = raw.request("GET", "/v1/kv/a/b", None);
    assert_eq!(r.status, 200);
    let e = &r.json()[0];
    assert_eq!(e["Key"], "a/b");
    assert_eq!(e["Value"], "eyJ4IjoxfQ==", "the value in base64");
    assert_eq!(e["Flags"], 42);
    assert_eq!(e["LockIndex"], 0);
    assert!(e.get("Session").is_none(), "no Session field without a lock holder: {e}");
    assert_eq!(e["CreateIndex"], e["ModifyIndex"]);
    assert_eq!(index(&r), e["ModifyIndex"].as_u64().unwrap(), "a key's read returns its ModifyIndex");
    assert_eq!(raw.request("GET", "/v1/kv/a/b?raw", None).body, "{\"x\":1}");
    let empty = put(&raw, "/v1/kv/a/empty", "");
    assert_eq!(empty.body, "true");
    assert_eq!(raw.request("GET", "/v1/kv/a/empty", None).json()[0]["Value"], Value::Null, "an empty value is null");

    // cas: 0 creates only; N writes only over ModifyIndex N.
    let m = raw.get("a/b").unwrap().modify_index;
    for (path, expected) in [
        ("/v1/kv/a/b?cas=0".to_string(), "false"),
        (format!("/v1/kv/a/b?cas={}", m + 100), "false"),
        (format!("/v1/kv/a/b?cas={m}"), "true"),
        (format!("/v1/kv/a/b?cas={m}"), "false"),
        ("/v1/kv/a/new?cas=0".to_string(), "true"),
    ] {
        assert_eq!(put(&raw, &path, "v").body, expected, "PUT {path}");
    }
    assert_eq!(raw.get("a/b").unwrap().flags, 0, "a write without ?flags sets 0");

    // recurse and keys (with a separator).
    put(&raw, "/v1/kv/a/c/d", "1");
    let keys: Vec<String> = raw.list("a/").iter().map(|k| k.key.clone()).collect();
    assert_eq!(keys, ["a/b", "a/c/d", "a/empty", "a/new"]);
    let r = raw.request("GET", "/v1/kv/a/?keys&separator=/", None);
    assert_eq!(r.json(), json!(["a/b", "a/c/", "a/empty", "a/new"]));
    assert_eq!(raw.request("GET", "/v1/kv/zzz/?recurse", None).status, 404);
    assert_eq!(raw.request("GET", "/v1/kv/a/b?stale&consistent", None).status, 400);
    assert_eq!(raw.request("GET", "/v1/kv/a/b?consistent", None).status, 200);
    assert_eq!(raw.request("GET", "/v1/kv/a/b?dc=elsewhere", None).status, 500, "No path to datacenter");

    // DELETE with cas, then recurse.
    let m = raw.get("a/new").unwrap().modify_index;
    assert_eq!(raw.request("DELETE", &format!("/v1/kv/a/new?cas={}", m + 1), None).body, "false");
    assert_eq!(raw.request("DELETE", &format!("/v1/kv/a/new?cas={m}"), None).body, "true");
    assert!(raw.get("a/new").is_none());
    assert!(raw.delete_tree("a/"));
    assert!(raw.list("a/").is_empty());
    assert_eq!(put(&raw, "/v1/kv/big", &"x".repeat(600 * 1024)).status, 413, "values are limited to 512 KiB");
}

#[test]
fn sessions_locks_and_their_invalidation() {
    let server = ConsulServer::start_with(
        "sessions",
        ConsulOptions { session_ttl_min: Some("1s".into()), ..ConsulOptions::default() },
    );
    let raw = server.raw();
    // As Patroni creates it (py-consul's keys, Patroni's ttl appended).
    let a = session(
        &raw,
        r#"{"name": "demo-p1", "checks": [], "lockdelay": "0.001s", "behavior": "delete", "ttl": "1.0s"}"#,
    );
    let info = raw.session_info(&a).unwrap();
    assert_eq!(info["Name"], "demo-p1");
    assert_eq!(info["TTL"], "1.0s");
    assert_eq!(info["Behavior"], "delete");
    assert_eq!(info["LockDelay"], 1_000_000, "LockDelay in nanoseconds");
    assert_eq!(info["NodeChecks"], Value::Null, "an empty checks list takes out serfHealth");
    let b = session(&raw, r#"{"Name":"other","TTL":"60s","LockDelay":"0s"}"#);
    assert_eq!(raw.session_info(&b).unwrap()["NodeChecks"], json!(["serfHealth"]));

    // acquire / release.
    for (path, expected) in [
        (format!("/v1/kv/lock?acquire={a}"), "true"),
        (format!("/v1/kv/lock?acquire={b}"), "false"),
        (format!("/v1/kv/lock?release={b}"), "false"),
        (format!("/v1/kv/lock?acquire={a}"), "true"),
    ] {
        assert_eq!(put(&raw, &path, "p1").body, expected, "PUT {path}");
    }
    let kv = raw.get("lock").unwrap();
    assert_eq!((kv.session.as_deref(), kv.lock_index), (Some(a.as_str()), 1));
    let r = put(&raw, "/v1/kv/lock?acquire=00000000-0000-0000-0000-000000000000", "x");
    assert_eq!(r.status, 500);
    assert!(r.body.starts_with("invalid session"), "{}", r.body);
    let r = put(&raw, "/v1/session/create", r#"{"ttl":"0.5s"}"#);
    assert_eq!(r.status, 500);
    assert!(r.body.starts_with("Invalid Session TTL"), "{}", r.body);
    let r = put(&raw, "/v1/session/create", r#"{"checks":["no-such-check"]}"#);
    assert_eq!((r.status, r.body.as_str()), (500, "Missing check 'no-such-check' registration"));

    // Renewal keeps it; without it, the session goes after 2×TTL and takes
    // its lock with it (Behavior=delete).
    let started = Instant::now();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        let r = put(&raw, &format!("/v1/session/renew/{a}"), "");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()[0]["ID"], a.as_str());
    }
    assert!(raw.get("lock").is_some(), "renewed for {:?}", started.elapsed());
    let gone = wait_until(Duration::from_secs(10), || raw.get("lock").is_none());
    assert!(gone, "the lock of an expired delete-session is deleted");
    assert!(raw.session_info(&a).is_none());
    let r = put(&raw, &format!("/v1/session/renew/{a}"), "");
    assert_eq!(r.status, 404, "renewing a gone session: {}", r.body);

    // Release behaviour, destroy, and the lock-delay on re-acquisition.
    let c = session(&raw, r#"{"TTL":"60s","LockDelay":"2s"}"#);
    assert_eq!(put(&raw, &format!("/v1/kv/lock2?acquire={c}"), "c").body, "true");
    assert_eq!(put(&raw, &format!("/v1/session/destroy/{c}"), "").body, "true");
    let kv = raw.get("lock2").unwrap();
    assert_eq!((kv.session.clone(), kv.value_str()), (None, "c".to_string()), "released, value kept");
    assert_eq!(put(&raw, &format!("/v1/kv/lock2?acquire={b}"), "b").body, "false", "within lock-delay");
    let taken =
        wait_until(Duration::from_secs(10), || put(&raw, &format!("/v1/kv/lock2?acquire={b}"), "b").body == "true");
    assert!(taken, "the lock is free after the lock-delay");
    let list = raw.request("GET", "/v1/session/list", None).json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn blocking_queries_wait_for_a_newer_index() {
    let server = ConsulServer::start("blocking");
    let raw = server.raw();
    raw.put("svc/leader", "one");
    raw.put("other", "x");
    let idx = index(&raw.request("GET", "/v1/kv/svc/leader", None));

    // Timeout: the same index after `wait`.
    let t = Instant::now();
    let r = raw.request("GET", &format!("/v1/kv/svc/leader?index={idx}&wait=1s"), None);
    assert!(t.elapsed() >= Duration::from_millis(900), "it waited: {:?}", t.elapsed());
    assert_eq!((r.status, index(&r)), (200, idx));

    // A write elsewhere does not wake it; a write to the key does.
    let woke = std::thread::scope(|s| {
        let waiter = s.spawn(|| raw.request("GET", &format!("/v1/kv/svc/leader?index={idx}&wait=20s"), None));
        std::thread::sleep(Duration::from_millis(300));
        raw.put("other", "y");
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiter.is_finished(), "a write to another key woke the watch");
        raw.put("svc/leader", "two");
        waiter.join().unwrap()
    });
    assert!(index(&woke) > idx);
    assert_eq!(woke.json()[0]["Value"], "dHdv");

    // A prefix watch wakes on a deletion below it; a key watch on its deletion.
    let pidx = index(&raw.request("GET", "/v1/kv/svc/?recurse", None));
    let r = std::thread::scope(|s| {
        let waiter = s.spawn(|| raw.request("GET", &format!("/v1/kv/svc/?recurse&index={pidx}&wait=20s"), None));
        std::thread::sleep(Duration::from_millis(300));
        raw.delete("svc/leader");
        waiter.join().unwrap()
    });
    assert_eq!(r.status, 404);
    assert!(index(&r) > pidx);
    assert_eq!(raw.request("GET", "/v1/kv/x?index=abc", None).status, 400);
}

/// A one-request-at-a-time HTTP endpoint answering with the status in `code`.
fn status_endpoint(code: Arc<AtomicU16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream: TcpStream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let c = code.load(Ordering::SeqCst);
            let _ = write!(stream, "HTTP/1.1 {c} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

#[test]
fn agent_services_checks_catalog_and_health() {
    let server = ConsulServer::start("agent");
    let raw = server.raw();
    let code = Arc::new(AtomicU16::new(200));
    let port = status_endpoint(code.clone());
    // As Patroni registers its service (py-consul's lowercase keys).
    let body = json!({"name": "demo", "id": "demo/node1", "address": "127.0.0.1", "port": 5432,
        "tags": ["primary", "master"], "enabletagoverride": true,
        "checks": [{"http": format!("http://127.0.0.1:{port}/primary"), "interval": "1s",
                    "DeregisterCriticalServiceAfter": "150.0s"}]});
    let r = put(&raw, "/v1/agent/service/register", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let services = raw.request("GET", "/v1/agent/services", None).json();
    assert_eq!(services["demo/node1"]["Service"], "demo");
    assert_eq!(services["demo/node1"]["Port"], 5432);
    assert_eq!(
        raw.service_tags("demo"),
        [("demo/node1".to_string(), vec!["primary".to_string(), "master".to_string()])]
    );
    let entry = &raw.catalog_service("demo")[0];
    assert_eq!(entry["ServiceAddress"], "127.0.0.1");
    assert_eq!(entry["ServiceEnableTagOverride"], true);
    assert_eq!(entry["Node"], "consul-agent");
    assert_eq!(raw.request("GET", "/v1/catalog/service/demo?tag=replica", None).json(), json!([]));

    // The HTTP check is polled: 200 passing, 429 warning, 503 critical.
    let status = |raw: &RawConsul| {
        raw.request("GET", "/v1/agent/checks", None).json()["service:demo/node1"]["Status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (c, want) in [(200, "passing"), (429, "warning"), (503, "critical"), (200, "passing")] {
        code.store(c, Ordering::SeqCst);
        let seen = wait_until(Duration::from_secs(10), || status(&raw) == want);
        assert!(seen, "HTTP {c} -> {want}, got {}", status(&raw));
        let passing = raw.request("GET", "/v1/health/service/demo?passing", None).json();
        assert_eq!(passing.as_array().unwrap().len(), usize::from(want == "passing"), "{passing}");
    }
    let health = raw.health_service("demo");
    let ids: Vec<&str> =
        health[0]["Checks"].as_array().unwrap().iter().map(|c| c["CheckID"].as_str().unwrap()).collect();
    assert_eq!(ids, ["serfHealth", "service:demo/node1"]);

    // Re-registration with other tags (a switchover) replaces them.
    let body = json!({"Name": "demo", "ID": "demo/node1", "Port": 5432, "Tags": ["replica"]});
    assert_eq!(put(&raw, "/v1/agent/service/register", &body.to_string()).status, 200);
    assert_eq!(raw.service_tags("demo")[0].1, ["replica"]);

    // TTL checks.
    let r = put(&raw, "/v1/agent/check/register", r#"{"Name":"t","CheckID":"t1","TTL":"30s"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let check = |raw: &RawConsul| raw.request("GET", "/v1/agent/checks", None).json()["t1"]["Status"].clone();
    assert_eq!(check(&raw), "critical", "a new check starts critical");
    assert_eq!(put(&raw, "/v1/agent/check/pass/t1?note=fine", "").status, 200);
    assert_eq!(check(&raw), "passing");
    assert_eq!(put(&raw, "/v1/agent/check/warn/t1", "").status, 200);
    assert_eq!(check(&raw), "warning");
    let r = put(&raw, "/v1/agent/check/pass/service:demo/node1", "");
    assert_eq!(r.status, 500, "not a TTL check: {}", r.body);
    assert_eq!(put(&raw, "/v1/agent/check/pass/nope", "").status, 404);
    // A session tied to the check goes when it turns critical.
    let s = session(&raw, r#"{"Checks":["serfHealth","t1"],"LockDelay":"0s"}"#);
    assert_eq!(put(&raw, &format!("/v1/kv/held?acquire={s}"), "x").body, "true");
    assert_eq!(put(&raw, "/v1/agent/check/fail/t1", "").status, 200);
    assert!(raw.session_info(&s).is_none());
    assert_eq!(raw.get("held").unwrap().session, None);

    assert_eq!(put(&raw, "/v1/agent/service/deregister/demo/node1", "").status, 200);
    assert!(raw.catalog_service("demo").is_empty());
    assert_eq!(put(&raw, "/v1/agent/service/deregister/demo/node1", "").status, 404);
    assert_eq!(put(&raw, "/v1/agent/check/deregister/t1", "").status, 200);

    let me = raw.request("GET", "/v1/agent/self", None).json();
    assert_eq!(
        (me["Config"]["Datacenter"].as_str(), me["Config"]["NodeName"].as_str()),
        (Some("dc1"), Some("consul-agent"))
    );
    assert_eq!(raw.request("GET", "/v1/status/leader", None).json(), "127.0.0.1:8300");
    assert_eq!(raw.request("GET", "/v1/status/peers", None).json(), json!(["127.0.0.1:8300"]));
}

#[test]
fn acl_tokens_are_enforced_when_acls_are_on() {
    let server =
        ConsulServer::start_with("acl", ConsulOptions { acl_token: Some("s3cret".into()), ..Default::default() });
    let port = server.port();
    let anonymous = request(port, "GET", "/v1/kv/x", None, &[]).unwrap();
    assert_eq!(anonymous.status, 403);
    assert!(anonymous.body.starts_with("Permission denied"), "{}", anonymous.body);
    let wrong = request(port, "PUT", "/v1/kv/x", Some("v"), &[("X-Consul-Token", "nope")]).unwrap();
    assert_eq!((wrong.status, wrong.body.as_str()), (403, "ACL not found"));
    let ok = request(port, "PUT", "/v1/kv/x", Some("v"), &[("X-Consul-Token", "s3cret")]).unwrap();
    assert_eq!((ok.status, ok.body.as_str()), (200, "true"));
    assert_eq!(request(port, "GET", "/v1/kv/x?token=s3cret", None, &[]).unwrap().status, 200);
    assert_eq!(request(port, "GET", "/v1/kv/x", None, &[("Authorization", "Bearer s3cret")]).unwrap().status, 200);
    assert_eq!(request(port, "GET", "/v1/status/leader", None, &[]).unwrap().status, 200, "status needs no token");
    assert_eq!(server.raw().get("x").unwrap().value_str(), "v");
}

#[test]
fn state_survives_kill_9_and_a_frozen_agent_answers_nothing() {
    let mut server = ConsulServer::start("restart");
    let raw = server.raw();
    raw.put("k", "v1");
    let s = session(&raw, r#"{"TTL":"60s"}"#);
    assert_eq!(put(&raw, &format!("/v1/kv/l?acquire={s}"), "x").body, "true");
    let before = raw.get("k").unwrap();
    server.kill9();
    assert!(raw.try_request("GET", "/v1/kv/k", None).is_err(), "down");
    server.start_again();
    assert_eq!(raw.get("k").unwrap(), before, "the data and its indexes are back");
    assert_eq!(raw.get("l").unwrap().session.as_deref(), Some(s.as_str()), "the lock and its session too");
    raw.put("k", "v2");
    assert!(raw.get("k").unwrap().modify_index > before.modify_index, "the index goes on from where it was");

    server.freeze();
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    stream.write_all(b"GET /v1/kv/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    assert!(stream.read(&mut buf).is_err(), "a frozen agent answers nothing");
    server.thaw();
    assert_eq!(raw.get("k").unwrap().value_str(), "v2");
}

#[test]
fn https_with_client_certificates() {
    let staging = palisade_test_support::Staging::new("consul-tls-certs");
    let dir = staging.path();
    let (tls, client_cert, client_key) = ConsulTls::with_client_cert(dir);
    let ca = tls.ca_file.clone();
    let server = ConsulServer::start_with("tls", ConsulOptions { tls: Some(tls), ..Default::default() });
    server.raw().put("k", "over-tls");
    let curl = |extra: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", ca.to_str().unwrap()])
            .args(extra)
            .arg(format!("{}/v1/kv/k?raw", server.https_url()))
            .output()
            .unwrap_or_else(|e| panic!("run curl: {e}"));
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, body) = curl(&["--cert", client_cert.to_str().unwrap(), "--key", client_key.to_str().unwrap()]);
    assert!(ok && body == "over-tls", "with a client certificate: {ok} {body:?}");
    let (ok, _) = curl(&[]);
    assert!(!ok, "verify_incoming: no client certificate, no answer");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("{}/v1/status/leader", server.https_url())])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the server certificate is not trusted without the CA");
}

#[test]
fn https_checks_are_verified_with_the_agents_ca_and_tls_server_name() {
    let staging = palisade_test_support::Staging::new("consul-tls-checks");
    let dir = staging.path();
    palisade_test_support::certs::ca(dir, "ca");
    let (cert, key) = palisade_test_support::certs::leaf(dir, "ca", "consul");
    let tls = ConsulTls { ca_file: dir.join("ca.crt"), cert_file: cert, key_file: key, verify_incoming: false };
    let server = ConsulServer::start_with("tlschecks", ConsulOptions { tls: Some(tls), ..Default::default() });
    let raw = server.raw();
    let url = format!("{}/v1/status/leader", server.https_url());
    // (service, TLSServerName, TLSSkipVerify, expected status)
    let cases = [
        ("by-ip", "", false, "passing"),
        ("by-name", "localhost", false, "passing"),
        ("wrong-name", "elsewhere.example", false, "critical"),
        ("skip-verify", "elsewhere.example", true, "passing"),
    ];
    for (name, server_name, skip, _) in cases {
        let body = json!({"Name": name, "Port": 1,
            "Check": {"HTTP": url, "Interval": "1s", "TLSServerName": server_name, "TLSSkipVerify": skip}});
        assert_eq!(put(&raw, "/v1/agent/service/register", &body.to_string()).status, 200);
    }
    for (name, _, _, want) in cases {
        let status = || {
            raw.request("GET", "/v1/agent/checks", None).json()[format!("service:{name}")]["Status"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let seen = wait_until(Duration::from_secs(15), || {
            let checks = raw.request("GET", "/v1/agent/checks", None).json();
            let c = &checks[format!("service:{name}")];
            c["Status"] == want && !c["Output"].as_str().unwrap_or_default().is_empty()
        });
        assert!(seen, "{name}: want {want}, got {} ({})", status(), raw.request("GET", "/v1/agent/checks", None).body);
    }
}

#[test]
fn the_command_line_says_it_is_a_test_double_and_refuses_what_it_does_not_serve() {
    let bin = palisade_tests::consul::consul_double_binary();
    let out = std::process::Command::new(&bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("TEST DOUBLE") && help.contains("NOT Consul"), "{help}");
    let dir = std::env::temp_dir().join(format!("consul-double-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.json");
    std::fs::write(&cfg, r#"{"datacenter":"dc1","ui_config":{"enabled":true}}"#).unwrap();
    let out = std::process::Command::new(&bin)
        .args(["agent", "-config-file", cfg.to_str().unwrap(), "-data-dir", dir.join("d").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ui_config"), "{out:?}");
    let _ = std::fs::remove_dir_all(dir);
}

// ---------- real Patroni 4.1 on the double ----------

/// Patroni's `consul:` section with `register_service: true`, on a double
/// with Consul's default `session_ttl_min` (Patroni's sessions of
/// `ttl / 2` = 10 s meet it). Only Patroni nodes run in these clusters:
/// they check the double against Patroni alone. The dcs-consul plugin is
/// staged (when built) for palisadectl only; the mixed clusters with
/// Palisade nodes are in tests/tests/mixed_cluster.rs (`dcs::CONSUL`).
const CONSUL_FOR_PATRONI: DcsBackend = DcsBackend {
    name: "consul",
    plugin_file: "libpalisade_dcs_consul.so",
    patroni_extra: "consul",
    start: |label| Box::new(ConsulDcs::start(label).with_section_extra("  register_service: true\n")),
};

fn patroni_spec(nodes: usize) -> ClusterSpec {
    ClusterSpec {
        engine: Engine::Patroni { venv: palisade_tests::patroni::venv() },
        dcs: CONSUL_FOR_PATRONI,
        nodes,
        ttl: 20,
        loop_wait: 2,
        retry_timeout: 3,
        ..ClusterSpec::default()
    }
}

fn raw_of(cluster: &Cluster) -> RawConsul {
    let url = cluster.dcs_url();
    let port = url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("port of {url}"));
    RawConsul { port, token: None }
}

/// Patroni's service name for a scope (lowercase, `[^a-z0-9-]` replaced).
fn service_name(scope: &str) -> String {
    scope.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect()
}

#[test]
fn patroni_bootstraps_on_the_double_and_the_session_ttl_frees_its_leader_key() {
    let mut cluster = Cluster::start("consulpatroni", patroni_spec(1));
    let raw = raw_of(&cluster);
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(90)), "node1", "{}", cluster.logs());
    let prefix = format!("service/{}/", cluster.scope);

    // The leader key is held by Patroni's session, as Patroni creates it.
    let leader = raw.get(&format!("{prefix}leader")).unwrap();
    assert_eq!(leader.value_str(), "node1");
    let sid = leader.session.clone().expect("the leader key is held by a session");
    let info = raw.session_info(&sid).expect("Patroni's session");
    assert_eq!(info["TTL"], "10.0s", "ttl 20 halved: Consul doubles it");
    assert_eq!(info["Behavior"], "delete");
    assert_eq!(info["Name"], json!(format!("{}-node1", cluster.scope)));

    // Patroni's layout: initialize, config, members/node1 (held by the
    // same session), and its status keys.
    let keys = wait_for("Patroni's keys", Duration::from_secs(30), || {
        let keys: Vec<String> = raw.list(&prefix).iter().map(|k| k.key[prefix.len()..].to_string()).collect();
        ["config", "initialize", "leader", "members/node1", "status"]
            .iter()
            .all(|k| keys.iter().any(|x| x == k))
            .then_some(keys)
    });
    assert!(!keys.iter().any(|k| k.starts_with('/')), "{keys:?}");
    let member = raw.get(&format!("{prefix}members/node1")).unwrap();
    assert_eq!(member.session.as_deref(), Some(sid.as_str()));
    let data: Value = serde_json::from_slice(&member.value).unwrap();
    assert_eq!(data["role"], "primary");
    let config: Value = serde_json::from_slice(&raw.get(&format!("{prefix}config")).unwrap().value).unwrap();
    assert_eq!(config["ttl"], 20);
    let sysid = raw.get(&format!("{prefix}initialize")).unwrap().value_str();
    assert!(sysid.len() >= 16 && sysid.chars().all(|c| c.is_ascii_digit()), "{sysid}");

    // register_service: the catalogue shows the primary, its check passing.
    let name = service_name(&cluster.scope);
    let tags = wait_for("the registered service", Duration::from_secs(30), || {
        raw.service_tags(&name).into_iter().find(|(id, _)| id == &format!("{}/node1", cluster.scope))
    });
    assert!(tags.1.contains(&"primary".to_string()), "{tags:?}");
    let passing = wait_until(Duration::from_secs(30), || {
        raw.request("GET", &format!("/v1/health/service/{name}?passing"), None)
            .json()
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    assert!(passing, "the HTTP check on Patroni's REST API passes: {:?}", raw.health_service(&name));

    // kill -9: nobody renews the session; after (up to) 2×TTL it is
    // invalidated and, Behavior=delete, the leader and member keys go.
    cluster.kill9("node1", true);
    let t = Instant::now();
    let freed = wait_until(Duration::from_secs(40), || raw.get(&format!("{prefix}leader")).is_none());
    assert!(freed, "the leader key outlived its session: {:?}", raw.get(&format!("{prefix}leader")));
    assert!(t.elapsed() >= Duration::from_secs(5), "not before the TTL: {:?}", t.elapsed());
    assert!(raw.session_info(&sid).is_none());
    assert!(raw.get(&format!("{prefix}members/node1")).is_none(), "the member key went with the session");
    assert!(raw.get(&format!("{prefix}config")).is_some(), "keys without a session stay");
    let critical = wait_until(Duration::from_secs(30), || {
        raw.request("GET", &format!("/v1/health/service/{name}?passing"), None).json() == json!([])
    });
    assert!(critical, "the service check fails with Patroni gone");
}

#[test]
fn two_patroni_nodes_switch_over_and_fail_over_on_the_double() {
    let mut cluster = Cluster::start("consulpatroni2", patroni_spec(2));
    let raw = raw_of(&cluster);
    let first = cluster.wait_for_leader(Duration::from_secs(90));
    let other = if first == "node1" { "node2" } else { "node1" }.to_string();
    cluster.wait_streaming(&first, 1, Duration::from_secs(120));
    let name = service_name(&cluster.scope);
    let tags_of = |raw: &RawConsul, node: &str| {
        raw.service_tags(&name).into_iter().find(|(id, _)| id.ends_with(&format!("/{node}"))).map(|(_, t)| t)
    };
    let roles = wait_until(Duration::from_secs(60), || {
        tags_of(&raw, &first).is_some_and(|t| t.contains(&"primary".into()))
            && tags_of(&raw, &other).is_some_and(|t| t.contains(&"replica".into()))
    });
    assert!(roles, "catalogue: {:?}", raw.service_tags(&name));

    // Switchover through Patroni's REST API.
    cluster.mark(&format!("switchover {first} -> {other}"));
    let body = json!({"leader": first, "candidate": other}).to_string();
    let r = request(cluster.node(&first).api_port, "POST", "/switchover", Some(&body), &[]).unwrap();
    assert_eq!(r.status, 200, "switchover: {} {}\n{}", r.status, r.body, cluster.logs());
    assert_eq!(cluster.wait_for_new_leader(&first, Duration::from_secs(90)), other);
    let swapped = wait_until(Duration::from_secs(60), || {
        tags_of(&raw, &other).is_some_and(|t| t.contains(&"primary".into()))
            && tags_of(&raw, &first).is_some_and(|t| t.contains(&"replica".into()))
    });
    assert!(swapped, "catalogue after the switchover: {:?}", raw.service_tags(&name));
    cluster.wait_streaming(&other, 1, Duration::from_secs(120));

    // patronictl reads the cluster through the double (`?consistent` reads).
    let patronictl = palisade_tests::patroni::venv().join("bin/patronictl");
    let listed = wait_until(Duration::from_secs(60), || {
        let out = palisade_tests::ctl::run_with(&cluster, &patronictl, &["list"], "", &[]);
        out.code == 0
            && out.stdout.lines().any(|l| l.contains(&format!("| {other} ")) && l.contains("| Leader "))
            && out.stdout.lines().any(|l| l.contains(&format!("| {first} ")) && l.contains("| Replica "))
    });
    assert!(listed, "patronictl list: {:?}", palisade_tests::ctl::run_with(&cluster, &patronictl, &["list"], "", &[]));

    // Failover after kill -9 of the leader: the session expires, the other
    // node takes the lock.
    cluster.mark(&format!("kill -9 of {other}"));
    cluster.kill9(&other, true);
    assert_eq!(cluster.wait_for_new_leader(&other, Duration::from_secs(120)), first, "{}", cluster.logs());
}
