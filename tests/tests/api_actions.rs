//! The REST API's promises on real processes: health checks in every role,
//! switchover and failover (now and scheduled), restarts, reinit, dynamic
//! configuration with pending restarts, pause, and bad requests that
//! change nothing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_test_support::{wait_for, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec};
use serde_json::Value;

fn spec(nodes: usize) -> ClusterSpec {
    ClusterSpec { nodes, ttl: 10, loop_wait: 1, retry_timeout: 3, ..ClusterSpec::default() }
}

/// The health paths and the codes Patroni gives on a running primary, a
/// running asynchronous replica, and a node whose PostgreSQL is stopped.
const HEALTH: &[(&str, u16, u16, u16)] = &[
    ("/", 200, 503, 503),
    ("/primary", 200, 503, 503),
    ("/read-write", 200, 503, 503),
    ("/leader", 200, 503, 503),
    ("/standby-leader", 503, 503, 503),
    ("/standby_leader", 503, 503, 503),
    ("/replica", 503, 200, 503),
    ("/replica?lag=16MB", 503, 200, 503),
    ("/replica?tag_nosuch=1", 503, 503, 503),
    ("/read-only", 200, 200, 503),
    ("/synchronous", 503, 503, 503),
    ("/sync", 503, 503, 503),
    ("/read-only-sync", 200, 503, 503),
    ("/quorum", 503, 503, 503),
    ("/read-only-quorum", 200, 503, 503),
    ("/asynchronous", 503, 200, 503),
    ("/async", 503, 200, 503),
    ("/async?lag=1GB", 503, 200, 503),
    ("/health", 200, 200, 503),
    ("/liveness", 200, 200, 200),
    ("/readiness", 200, 200, 503),
];

fn check_health(cluster: &Cluster, node: &str, column: usize) {
    let n = cluster.node(node);
    let mut wrong = Vec::new();
    for row in HEALTH {
        let want = [row.1, row.2, row.3][column];
        for method in ["GET", "HEAD", "OPTIONS"] {
            let got = n.call(method, row.0, None).status;
            if got != want {
                wrong.push(format!("{method} {} gave {got}, expected {want}", row.0));
            }
        }
    }
    assert!(wrong.is_empty(), "{node}:\n{}", wrong.join("\n"));
}

fn leader_of(cluster: &Cluster, via: &str) -> Option<String> {
    let c = cluster.node(via).get("/cluster").ok()?.json();
    c["members"].as_array()?.iter().find(|m| m["role"] == "leader").and_then(|m| m["name"].as_str()).map(String::from)
}

fn in_recovery(cluster: &Cluster, node: &str) -> Option<bool> {
    cluster.node(node).sql("SELECT pg_is_in_recovery()").ok().map(|r| r == "t")
}

#[test]
fn health_checks_and_pause() {
    let mut cluster = Cluster::start("api-health", spec(3));
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    assert_eq!(leader, "node1");
    cluster.wait_streaming("node1", 2, Duration::from_secs(60));
    // The replicas' health needs their member state to say `streaming`.
    wait_until(Duration::from_secs(30), || cluster.node("node2").call("GET", "/replica", None).status == 200);
    check_health(&cluster, "node1", 0);
    check_health(&cluster, "node2", 1);
    let patroni = cluster.node("node1").get("/patroni").unwrap().json();
    assert_eq!(patroni["role"], "primary");
    assert!(patroni.get("pause").is_none());

    // Pause: the answer is the new configuration, and every node says so.
    cluster.mark("pause");
    let r = cluster.node("node2").call("PATCH", "/config", Some(r#"{"pause": true}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["pause"], true);
    for n in ["node1", "node2", "node3"] {
        wait_for(&format!("{n} to say it is paused"), Duration::from_secs(20), || {
            (cluster.node(n).get("/patroni").ok()?.json()["pause"] == true).then_some(())
        });
    }
    assert_eq!(cluster.node("node3").get("/cluster").unwrap().json()["pause"], true);

    // A stopped PostgreSQL stays stopped while paused, and fails every check
    // but liveness.
    cluster.node("node3").stop_postgres();
    wait_until(Duration::from_secs(20), || cluster.node("node3").call("GET", "/health", None).status == 503);
    check_health(&cluster, "node3", 2);

    // The leader's PostgreSQL dies: nothing is promoted while paused.
    cluster.mark("kill the leader's PostgreSQL while paused");
    let pid = cluster.node("node1").postmaster_pid().unwrap();
    palisade_test_support::signal(pid, nix::sys::signal::Signal::SIGKILL);
    std::thread::sleep(Duration::from_secs(15)); // longer than ttl
    assert_eq!(in_recovery(&cluster, "node2"), Some(true), "node2 must not be promoted while paused");
    assert!(cluster.node("node3").sql("SELECT 1").is_err(), "node3's PostgreSQL must stay stopped while paused");
    // As in Patroni, a paused leader without PostgreSQL gives up the lock.
    assert_eq!(cluster.leader(), None, "the paused leader without PostgreSQL releases its lock");

    // Resume: the cluster heals itself again.
    cluster.mark("resume");
    let r = cluster.node("node1").call("PATCH", "/config", Some(r#"{"pause": null}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json().get("pause").is_none());
    let healed = wait_until(Duration::from_secs(90), || {
        let primaries = ["node1", "node2", "node3"].iter().filter(|n| in_recovery(&cluster, n) == Some(false)).count();
        let replicas = ["node1", "node2", "node3"].iter().filter(|n| in_recovery(&cluster, n) == Some(true)).count();
        primaries == 1 && replicas == 2
    });
    assert!(healed, "the cluster did not heal after resume\n{}", cluster.logs());
    assert!(cluster.node("node2").get("/patroni").unwrap().json().get("pause").is_none());
    let _ = cluster.stop_node("node1", Duration::from_secs(30));
}

fn insert(cluster: &Cluster, node: &str, id: i32) {
    cluster
        .node(node)
        .sql(&format!("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY); INSERT INTO t VALUES ({id})"))
        .unwrap_or_else(|e| panic!("insert on {node}: {e}"));
}

fn history(cluster: &Cluster, node: &str) -> Vec<Value> {
    cluster.node(node).get("/history").unwrap().json().as_array().cloned().unwrap_or_default()
}

fn in_seconds(s: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(s)).to_rfc3339()
}

#[test]
fn switchover_failover_and_bad_requests() {
    let mut cluster = Cluster::start("api-switch", spec(3));
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.wait_streaming("node1", 2, Duration::from_secs(60));
    insert(&cluster, "node1", 1);

    // Bad requests get 400 (411 without a length) and change nothing.
    cluster.mark("bad requests");
    let n1 = cluster.node("node1");
    let bad: &[(&str, &str, Option<&str>, u16)] = &[
        ("POST", "/switchover", Some("not json"), 400),
        ("POST", "/switchover", Some("[1, 2]"), 400),
        ("POST", "/switchover", Some("{}"), 400),
        ("POST", "/switchover", Some(r#"{"leader": 5}"#), 400),
        ("POST", "/switchover", Some(r#"{"leader": "node1", "candidate": "ghost"}"#), 400),
        ("POST", "/switchover", Some(r#"{"leader": "node1", "candidate": "node1"}"#), 400),
        ("POST", "/switchover", None, 411),
        ("POST", "/failover", Some(r#"{"leader": null}"#), 400),
        ("POST", "/switchover", Some(r#"{"leader": "node1", "scheduled_at": "2020-01-01T00:00:00+00:00"}"#), 422),
        ("POST", "/switchover", Some(r#"{"leader": "node1", "scheduled_at": "2099-01-01T00:00:00"}"#), 400),
        ("POST", "/restart", Some(r#"{"role": "boss"}"#), 400),
        ("POST", "/restart", Some(r#"{"timeout": -1}"#), 400),
        ("POST", "/restart", Some(r#"{"colour": "blue"}"#), 400),
        ("POST", "/restart", Some("nope"), 400),
        ("POST", "/reinitialize", Some(r#"{"force": "perhaps"}"#), 400),
        ("PATCH", "/config", Some(r#"{"ttl": "soon"}"#), 400),
        ("PATCH", "/config", Some(r#"{"postgresql": {"parameters": {"max_connections": 0}}}"#), 400),
        ("PATCH", "/config", Some("{"), 400),
        ("PUT", "/config", Some(r#"{"loop_wait": []}"#), 400),
        ("POST", "/mpp", Some("[]"), 400),
    ];
    let config_before = n1.get("/config").unwrap().body;
    for (method, path, body, code) in bad {
        let r = n1.call(method, path, *body);
        assert_eq!(r.status, *code, "{method} {path} {body:?}: {}", r.body);
        if r.status == 400 && r.header("content-type") == Some("application/json") {
            assert!(r.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "{method} {path}: {}", r.body);
        }
    }
    assert_eq!(n1.get("/config").unwrap().body, config_before, "a bad request changed the configuration");
    assert!(n1.get("/cluster").unwrap().json().get("scheduled_switchover").is_none());
    assert_eq!(cluster.leader().as_deref(), Some("node1"));
    assert_eq!(n1.call("DELETE", "/switchover", None).status, 404);

    // A switchover to a named candidate.
    cluster.mark("switchover to node2");
    let r = n1.call("POST", "/switchover", Some(r#"{"leader": "node1", "candidate": "node2"}"#));
    assert_eq!((r.status, r.body.as_str()), (200, "Successfully switched over to \"node2\""));
    insert(&cluster, "node2", 2);
    assert_eq!(cluster.wait_streaming("node2", 2, Duration::from_secs(60)), vec!["node1", "node3"]);
    cluster.wait_sql("node1", "SELECT count(*) FROM t", "2", Duration::from_secs(30));
    wait_until(Duration::from_secs(30), || history(&cluster, "node3").len() == 1);
    let h = history(&cluster, "node3");
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0][0], 1);
    assert_eq!(h[0][4], "node2", "{h:?}");

    // A switchover without a candidate: some healthy replica takes over.
    cluster.mark("switchover without a candidate");
    let r = cluster.node("node3").call("POST", "/switchover", Some(r#"{"leader": "node2"}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    let third = leader_of(&cluster, "node1").unwrap();
    assert_ne!(third, "node2");
    assert_eq!(r.body, format!("Successfully switched over to \"{third}\""));
    insert(&cluster, &third, 3);
    cluster.wait_streaming(&third, 2, Duration::from_secs(60));
    wait_until(Duration::from_secs(30), || history(&cluster, "node1").len() == 2);
    assert_eq!(history(&cluster, "node1")[1][4], third.as_str());

    // A scheduled switchover can be cancelled before its time...
    cluster.mark("scheduled switchover, cancelled");
    let body = format!(r#"{{"leader": "{third}", "scheduled_at": "{}"}}"#, in_seconds(120));
    let r = cluster.node(&third).call("POST", "/switchover", Some(&body));
    assert_eq!((r.status, r.body.as_str()), (202, "Switchover scheduled"));
    let c = cluster.node("node1").get("/cluster").unwrap().json();
    assert_eq!(c["scheduled_switchover"]["from"], third.as_str(), "{c}");
    let r = cluster.node("node1").call("DELETE", "/switchover", None);
    assert_eq!((r.status, r.body.as_str()), (200, "scheduled switchover deleted"));
    assert_eq!(cluster.node("node1").call("DELETE", "/switchover", None).status, 404);
    assert!(cluster.node("node1").get("/cluster").unwrap().json().get("scheduled_switchover").is_none());

    // ...and happens at its time when it is not.
    cluster.mark("scheduled switchover");
    let body = format!(r#"{{"leader": "{third}", "candidate": "node2", "scheduled_at": "{}"}}"#, in_seconds(6));
    let r = cluster.node("node2").call("POST", "/switchover", Some(&body));
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(cluster.leader().as_deref(), Some(third.as_str()), "a scheduled switchover waits for its time");
    let fourth = cluster.wait_for_new_leader(&third, Duration::from_secs(60));
    assert_eq!(fourth, "node2");
    insert(&cluster, "node2", 4);
    cluster.wait_streaming("node2", 2, Duration::from_secs(60));

    // A failover while the leader is down, to a named candidate. The
    // candidate must say it is running first: a member still "starting"
    // (no WAL position in GET /patroni) is no candidate, as in Patroni.
    let running = |name: &str| {
        cluster.node(name).get("/patroni").is_ok_and(|r| {
            let j = r.json();
            j["state"] == "running" && j.get("xlog").is_some()
        })
    };
    assert!(wait_until(Duration::from_secs(30), || running(&third)), "{third} runs");
    cluster.mark("failover with the leader down");
    cluster.kill9("node2", true);
    let other = if third == "node1" { "node3" } else { "node1" };
    let body = format!(r#"{{"candidate": "{third}"}}"#);
    let r = cluster.node(other).call("POST", "/failover", Some(&body));
    let want = format!("Successfully failed over to \"{third}\"");
    assert_eq!((r.status, r.body.as_str()), (200, want.as_str()), "{}", cluster.logs());
    insert(&cluster, &third, 5);
    cluster.wait_sql(other, "SELECT count(*) FROM t", "5", Duration::from_secs(60));
}

/// A dynamic configuration change that arrives while a new replica's
/// start is under way (its configuration written, PostgreSQL not yet
/// accepting connections, the clone task still owning it) is applied once
/// the task ends. node2's recovery is held by a `restore_command` that
/// waits for a file the test creates after `PATCH /config` was accepted
/// and node2 cycled with the new version.
#[test]
fn config_change_during_replica_start_is_applied() {
    let mut cluster = Cluster::start_first("api-config-race", spec(2));
    let release = cluster.dir().join("release-node2");
    let hold = cluster.write(
        "hold-recovery.sh",
        &format!("#!/bin/sh\nwhile [ ! -e '{}' ]; do sleep 0.1; done\nexit 1\n", release.display()),
        0o755,
    );
    let n2 = cluster.node("node2");
    let yml = std::fs::read_to_string(&n2.config).unwrap().replacen(
        "\npostgresql:\n",
        &format!("\npostgresql:\n  recovery_conf:\n    restore_command: '{} %f %p'\n", hold.display()),
        1,
    );
    std::fs::write(&n2.config, yml).unwrap();
    cluster.start_node(1);
    let (n1, n2) = (cluster.node("node1"), cluster.node("node2"));
    wait_for("node2's postmaster, held in recovery", Duration::from_secs(90), || n2.postmaster_pid());
    assert!(n2.sql("SELECT 1").is_err(), "node2 must not accept connections yet");

    cluster.mark("change work_mem");
    let r = n1.call("PATCH", "/config", Some(r#"{"postgresql": {"parameters": {"work_mem": "12MB"}}}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    // Two cycles of node2 after the change, both with the clone task
    // still in progress: it has taken the new version.
    wait_until(Duration::from_secs(30), || {
        n2.log_after("change work_mem").matches("bootstrap from a member in progress").count() >= 2
    });
    assert!(n2.sql("SELECT 1").is_err(), "node2 was released too early");

    cluster.mark("release node2");
    std::fs::write(&release, "").unwrap();
    cluster.wait_streaming("node1", 1, Duration::from_secs(60));
    cluster.wait_sql("node2", "SHOW work_mem", "12MB", Duration::from_secs(30));
    cluster.wait_sql("node1", "SHOW work_mem", "12MB", Duration::from_secs(30));
    let errors = cluster.unexpected_errors(&[]);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn config_restarts_and_reinit() {
    let cluster = Cluster::start("api-restart", spec(2));
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.wait_streaming("node1", 1, Duration::from_secs(60));
    let (n1, n2) = (cluster.node("node1"), cluster.node("node2"));
    assert!(n1.get("/config").unwrap().json()["ttl"] == 10);
    let metrics = n1.get("/metrics").unwrap();
    assert!(metrics.body.contains("patroni_primary{scope=\""), "{}", metrics.body);
    assert!(metrics.body.contains(",name=\"node1\"} 1\n"));

    // One parameter applies on reload, one needs a restart.
    cluster.mark("change parameters");
    let patch = r#"{"postgresql": {"parameters": {"work_mem": "8MB", "max_connections": 150}}}"#;
    let r = n2.call("PATCH", "/config", Some(patch));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["postgresql"]["parameters"]["max_connections"], 150);
    for n in [n1, n2] {
        wait_for(&format!("{} to apply work_mem", n.name), Duration::from_secs(30), || {
            (n.sql("SHOW work_mem").ok()? == "8MB").then_some(())
        });
        let st = wait_for(&format!("{} to report a pending restart", n.name), Duration::from_secs(30), || {
            let st = n.get("/patroni").ok()?.json();
            (st["pending_restart"] == true).then_some(st)
        });
        let reason = &st["pending_restart_reason"]["max_connections"];
        assert_eq!((reason["old_value"].as_str(), reason["new_value"].as_str()), (Some("100"), Some("150")), "{st}");
    }

    // A restart filtered to another role does nothing.
    let pid2 = n2.postmaster_pid().unwrap();
    let r = n2.call("POST", "/restart", Some(r#"{"role": "primary"}"#));
    assert_eq!((r.status, r.body.as_str()), (503, "restart conditions are not satisfied"));
    assert_eq!(n2.postmaster_pid(), Some(pid2));

    // restart_pending restarts the node that needs it.
    cluster.mark("restart the leader");
    let pid1 = n1.postmaster_pid().unwrap();
    let r = n1.call("POST", "/restart", Some(r#"{"restart_pending": true}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(n1.postmaster_pid(), Some(pid1));
    assert_eq!(n1.sql("SHOW max_connections").unwrap(), "150");
    wait_until(Duration::from_secs(20), || n1.get("/patroni").is_ok_and(|r| r.json().get("pending_restart").is_none()));
    assert_eq!(cluster.leader().as_deref(), Some("node1"), "a restart keeps the leader");
    // Once restarted, nothing is pending, so the same request does nothing.
    let r = n1.call("POST", "/restart", Some(r#"{"restart_pending": true}"#));
    assert_eq!(r.status, 503, "{}", r.body);

    // A scheduled restart: listed, exclusive, cancellable, and carried out.
    cluster.mark("scheduled restart");
    let body = format!(r#"{{"schedule": "{}"}}"#, in_seconds(300));
    assert_eq!(n2.call("POST", "/restart", Some(&body)).status, 202);
    let st = n2.get("/patroni").unwrap().json();
    assert!(st["scheduled_restart"]["schedule"].as_str().is_some(), "{st}");
    assert_eq!(n2.call("POST", "/restart", Some(&body)).status, 409);
    let r = n2.call("DELETE", "/restart", None);
    assert_eq!((r.status, r.body.as_str()), (200, "scheduled restart deleted"));
    assert_eq!(n2.call("DELETE", "/restart", None).status, 404);
    let body = format!(r#"{{"schedule": "{}", "restart_pending": true}}"#, in_seconds(4));
    assert_eq!(n2.call("POST", "/restart", Some(&body)).status, 202);
    wait_until(Duration::from_secs(60), || n2.postmaster_pid().is_some_and(|p| p != pid2));
    cluster.wait_sql("node2", "SHOW max_connections", "150", Duration::from_secs(30));
    wait_until(Duration::from_secs(20), || {
        n2.get("/patroni").is_ok_and(|r| r.json().get("scheduled_restart").is_none())
    });

    // POST /reload re-reads the file: a tag added there shows up.
    let mut yml = std::fs::read_to_string(&n2.config).unwrap();
    yml.push_str("tags:\n  nofailover: true\n");
    std::fs::write(&n2.config, yml).unwrap();
    assert_eq!(n2.call("POST", "/reload", None).status, 202);
    wait_for("the reloaded tag", Duration::from_secs(20), || {
        (n2.get("/patroni").ok()?.json()["tags"]["nofailover"] == true).then_some(())
    });

    // Reinitialize: refused on the leader, rebuilds the replica.
    cluster.mark("reinitialize");
    let r = n1.call("POST", "/reinitialize", None);
    assert_eq!((r.status, r.body.as_str()), (503, "I am the leader, can not reinitialize"));
    let marker = n2.data_dir.join("palisade-test-marker");
    std::fs::write(&marker, "remove me").unwrap();
    let r = n2.call("POST", "/reinitialize", Some(r#"{"force": true}"#));
    assert_eq!((r.status, r.body.as_str()), (200, "reinitialize started"), "{}", cluster.logs());
    assert!(wait_until(Duration::from_secs(60), || !marker.exists()), "the data directory was not rebuilt");
    n1.sql("CREATE TABLE after_reinit (id int)").unwrap();
    cluster.wait_sql("node2", "SELECT count(*) FROM after_reinit", "0", Duration::from_secs(60));
    assert_eq!(cluster.wait_streaming("node1", 1, Duration::from_secs(60)), vec!["node2"]);
}
