//! Health checks tell the truth about PostgreSQL, at once: a replica whose
//! postmaster was killed in maintenance mode fails `/replica` on the next
//! request (not at the next HA cycle), and around a crash recovery of the
//! primary and a promotion the status code never contradicts the body it
//! comes with, nor PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use palisade_tests::cluster::{Cluster, ClusterSpec, Node};
use serde_json::Value;

/// Every violation seen while polling `node`'s health checks for `window`:
/// a 200 on `/` whose body is not a primary, a 200 on `/replica` whose body
/// is not a running replica, a 200 on `/health` that is not running, or a
/// `/patroni` that claims a running server whose postmaster is gone.
fn poll_consistency(node: &Node, window: Duration, until: impl Fn() -> bool) -> Vec<String> {
    let mut bad = Vec::new();
    let end = Instant::now() + window;
    while Instant::now() < end && !until() {
        for path in ["/", "/primary", "/replica", "/read-only", "/health", "/patroni"] {
            let Ok(r) = node.get(path) else { continue };
            let body: Value = r.json();
            let role = body["role"].as_str().unwrap_or("");
            let state = body["state"].as_str().unwrap_or("");
            let ok = match (path, r.status) {
                ("/" | "/primary", 200) => role == "primary",
                ("/replica", 200) => role == "replica" && state == "running",
                ("/health", 200) => state == "running",
                ("/patroni", _) if state == "running" => node.postmaster_pid().is_some_and(pid_alive),
                _ => true,
            };
            if !ok {
                bad.push(format!("{} {path}: {} {body}", node.name, r.status));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bad
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['R', 'S', 'D', 'I', 'T', 't', 'W']))
        })
        .unwrap_or(false)
}

fn in_recovery(cluster: &Cluster, name: &str) -> Option<bool> {
    cluster.node(name).sql("SELECT pg_is_in_recovery()").ok().map(|r| r == "t")
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn health_checks_follow_postgres_through_a_crash_and_a_promotion() {
    let cluster = Cluster::start("health-truth", ClusterSpec { nodes: 2, ..ClusterSpec::default() });
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let replica = cluster.nodes.iter().map(|n| n.name.clone()).find(|n| *n != leader).unwrap();
    cluster.wait_streaming(&leader, 1, Duration::from_secs(60));
    wait_for("the replica's /replica to answer 200", Duration::from_secs(20), || {
        (cluster.node(&replica).get("/replica").ok()?.status == 200).then_some(())
    });

    // 1. Maintenance mode: the replica's postmaster dies and nothing
    // restarts it. The very next health check says so.
    cluster.mark("pause, then kill -9 of the replica's postmaster");
    let r = cluster.node(&leader).call("PATCH", "/config", Some(r#"{"pause": true}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("the replica to say it is paused", Duration::from_secs(20), || {
        (cluster.node(&replica).get("/patroni").ok()?.json()["pause"] == true).then_some(())
    });
    let pid = cluster.node(&replica).postmaster_pid().unwrap();
    kill9_pid(pid);
    wait_for("the replica's postmaster to die", Duration::from_secs(10), || (!pid_alive(pid)).then_some(()));
    let r = cluster.node(&replica).get("/replica").unwrap();
    assert_eq!(r.status, 503, "a dead replica must fail /replica at once: {}", r.body);
    assert_ne!(r.json()["state"], "running", "{}", r.body);
    let r = cluster.node(&replica).get("/patroni").unwrap();
    assert_ne!(r.json()["state"], "running", "/patroni must not claim a dead server runs: {}", r.body);
    let bad = poll_consistency(cluster.node(&replica), Duration::from_secs(3), || false);
    assert!(bad.is_empty(), "while paused and dead:\n{}", bad.join("\n"));
    assert_eq!(cluster.node(&replica).get("/replica").unwrap().status, 503, "it stays down while paused");

    cluster.mark("resume: the replica's PostgreSQL is started again");
    let r = cluster.node(&leader).call("PATCH", "/config", Some(r#"{"pause": null}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("the replica to be back", Duration::from_secs(60), || {
        (cluster.node(&replica).get("/replica").ok()?.status == 200).then_some(())
    });

    // 2. The primary's postmaster dies: the daemon starts it again as the
    // primary. Throughout, a 200 comes with a body that says primary.
    cluster.mark("kill -9 of the primary's postmaster");
    let before = cluster.node(&leader).get("/patroni").unwrap().json()["postmaster_start_time"].clone();
    let pid = cluster.node(&leader).postmaster_pid().unwrap();
    kill9_pid(pid);
    wait_for("the primary's postmaster to die", Duration::from_secs(10), || (!pid_alive(pid)).then_some(()));
    let first = cluster.node(&leader).get("/").unwrap();
    let body = first.json();
    assert!(
        body["state"] != "running" || body["postmaster_start_time"] != before,
        "right after the kill, / must not describe the dead server as running: {}",
        first.body
    );
    let bad = poll_consistency(cluster.node(&leader), Duration::from_secs(60), || {
        in_recovery(&cluster, &leader) == Some(false)
    });
    assert!(bad.is_empty(), "around the crash recovery:\n{}", bad.join("\n"));
    assert_eq!(cluster.leader().as_deref(), Some(leader.as_str()), "same leader, restarted in place");
    wait_for("/ to show the restarted primary", Duration::from_secs(10), || {
        let r = cluster.node(&leader).get("/").ok()?;
        let b = r.json();
        (r.status == 200 && b["role"] == "primary" && b["state"] == "running" && b["postmaster_start_time"] != before)
            .then_some(())
    });

    // 3. A switchover: the new primary answers 200 on / only once it is one.
    cluster.wait_streaming(&leader, 1, Duration::from_secs(60));
    cluster.mark("switchover");
    let body = format!(r#"{{"leader": "{leader}", "candidate": "{replica}"}}"#);
    let r = cluster.node(&leader).call("POST", "/switchover", Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    let bad = poll_consistency(cluster.node(&replica), Duration::from_secs(60), || {
        cluster.leader().as_deref() == Some(replica.as_str()) && in_recovery(&cluster, &replica) == Some(false)
    });
    assert!(bad.is_empty(), "around the promotion:\n{}", bad.join("\n"));
    wait_for("/ on the new primary", Duration::from_secs(10), || {
        let r = cluster.node(&replica).get("/").ok()?;
        (r.status == 200 && r.json()["role"] == "primary").then_some(())
    });
    assert_eq!(in_recovery(&cluster, &replica), Some(false));

    let errors = cluster.unexpected_errors(&[]);
    assert!(errors.is_empty(), "unexpected errors:\n{}", errors.join("\n"));
}

/// SIGKILL a postmaster that belongs to the test user.
fn kill9_pid(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
}
