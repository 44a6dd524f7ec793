//! Synchronous replication on real processes: the `sync` key and
//! PostgreSQL's `synchronous_standby_names` agree; the synchronous standby
//! is the only one that may take over after a crash, and the only one a
//! switchover may go to; without it, strict mode blocks commits and
//! non-strict mode lets them go on.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use palisade_test_support::{pg_bin_dir, wait_for, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec, SUPERUSER_PASSWORD};
use palisade_tests::ctl::palisadectl;
use serde_json::Value;

const EXPECTED_ERRORS: &[&str] = &["Error communicating with DCS", "failed to update leader lock", "Request failed to"];

fn spec(extra_dcs: &str, nodes: usize) -> ClusterSpec {
    ClusterSpec {
        nodes,
        extra_dcs: extra_dcs.to_string(),
        allowed_errors: EXPECTED_ERRORS.to_vec(),
        ..Default::default()
    }
}

/// The `sync` key as stored.
fn sync_key(cluster: &Cluster) -> Option<Value> {
    cluster.read_json("sync")
}

/// Wait until `sync` names `leader` and exactly one standby, PostgreSQL
/// lists that standby alone in `synchronous_standby_names` and reports it
/// `sync`; returns its name.
fn wait_one_sync_standby(cluster: &Cluster, leader: &str) -> String {
    wait_for("the sync key and synchronous_standby_names to agree on one standby", Duration::from_secs(60), || {
        let key = sync_key(cluster)?;
        if key["leader"] != leader || key["quorum"] != 0 {
            return None;
        }
        let standby = key["sync_standby"].as_str()?.to_string();
        if standby.contains(',') {
            return None;
        }
        let pg = cluster.node(leader);
        let ssn = pg.sql("SHOW synchronous_standby_names").ok()?;
        let state =
            pg.sql(&format!("SELECT sync_state FROM pg_stat_replication WHERE application_name = '{standby}'")).ok()?;
        (ssn == standby && state == "sync").then_some(standby)
    })
}

/// Insert a row on `node`, giving up after three seconds. `true` when it
/// committed in time; `false` when the commit waited for a synchronous
/// standby (statement_timeout does not cover that wait, so the client gives
/// up: the row commits later, when a standby acknowledges it).
fn write_without_waiting(cluster: &Cluster, node: &str, id: i32) -> bool {
    let n = cluster.node(node);
    let mut child = Command::new(pg_bin_dir().join("psql"))
        .args(["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", &n.pg_port.to_string(), "-U", "postgres"])
        .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("CREATE TABLE IF NOT EXISTS w (id int primary key); INSERT INTO w VALUES ({id})"))
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "3")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let done = wait_until(Duration::from_secs(3), || child.try_wait().ok().flatten().is_some());
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        return false;
    }
    child.wait().is_ok_and(|s| s.success())
}

#[test]
fn on_mode_publishes_the_standby_postgres_waits_for_and_fails_over_to_it_only() {
    let mut cluster = Cluster::start("sync-on", spec("    synchronous_mode: true\n", 3));
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    cluster.wait_streaming(&leader, 2, Duration::from_secs(60));
    let sync = wait_one_sync_standby(&cluster, &leader);
    let other = cluster.nodes.iter().map(|n| n.name.clone()).find(|n| *n != leader && *n != sync).unwrap();

    // What the API and palisadectl show.
    let status = |n: &str, path: &str| cluster.node(n).get(path).map(|r| r.status).unwrap_or(0);
    assert!(wait_until(Duration::from_secs(20), || status(&sync, "/sync") == 200 && status(&other, "/sync") == 503));
    assert_eq!(status(&other, "/async"), 200);
    assert_eq!(status(&sync, "/async"), 503);
    assert_eq!(status(&leader, "/read-only-sync"), 200);
    assert_eq!(cluster.node(&sync).get("/patroni").unwrap().json()["sync_standby"], true);
    assert!(cluster.node(&other).get("/patroni").unwrap().json().get("sync_standby").is_none());
    let metrics = cluster.node(&sync).get("/metrics").unwrap().body;
    assert!(metrics.lines().any(|l| l.starts_with("patroni_sync_standby{") && l.ends_with(" 1")), "{metrics}");
    let view = cluster.node(&leader).get("/cluster").unwrap().json();
    let role =
        |name: &str| view["members"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap()["role"].clone();
    assert_eq!(role(&sync), "sync_standby");
    assert_eq!(role(&other), "replica");
    let ctl_role = |name: &str| -> Value {
        let out = palisadectl(&cluster, &["list", "-f", "json"]).ok().stdout;
        let list: Value = serde_json::from_str(&out).unwrap();
        list.as_array().unwrap().iter().find(|m| m["Member"] == name).map(|m| m["Role"].clone()).unwrap_or_default()
    };
    assert_eq!(ctl_role(&sync), "Sync Standby");
    assert_eq!(ctl_role(&other), "Replica");

    // A restart of the synchronous standby first asks the leader to replace
    // it: its member key says nosync until the restart is over.
    let member_tags = |name: &str| -> Value {
        cluster.read_json(&format!("members/{name}")).map(|v| v["tags"].clone()).unwrap_or_default()
    };
    let port = cluster.node(&sync).api_port;
    let restart = std::thread::spawn(move || palisade_tests::http::request(port, "POST", "/restart", Some("{}"), &[]));
    wait_for("the restarting standby to publish nosync", Duration::from_secs(30), || {
        (member_tags(&sync)["nosync"] == true).then_some(())
    });
    let r = restart.join().unwrap().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(wait_until(Duration::from_secs(30), || member_tags(&sync).get("nosync").is_none()));
    // The leader moved the synchronous role to the other standby.
    assert_eq!(wait_one_sync_standby(&cluster, &leader), other);
    let (sync, other) = (other, sync);
    assert!(wait_until(Duration::from_secs(20), || status(&sync, "/sync") == 200 && status(&other, "/sync") == 503));

    // A switchover to the asynchronous node is refused with Patroni's words.
    let body = format!(r#"{{"leader": "{leader}", "candidate": "{other}"}}"#);
    let r = cluster.node(&leader).call("POST", "/switchover", Some(&body));
    assert_eq!((r.status, r.body.as_str()), (412, "candidate name does not match with sync_standby"));

    // A crash of the primary: only the synchronous standby takes over.
    cluster.node(&leader).sql("CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)").unwrap();
    cluster.mark("kill -9 of the leader's daemon and postmaster");
    cluster.kill9(&leader, true);
    let new = cluster.wait_for_new_leader(&leader, Duration::from_secs(60));
    assert_eq!(new, sync, "the failover went to the synchronous standby");
    assert_eq!(cluster.node(&new).sql("SELECT count(*) FROM t").unwrap(), "1");
    // The new leader claims the key and makes the other node synchronous.
    assert_eq!(wait_one_sync_standby(&cluster, &new), other);
    assert!(cluster.node(&new).log().contains("Synchronous standby status assigned to"));
}

#[test]
fn without_its_synchronous_standby_non_strict_mode_writes_and_strict_mode_waits() {
    // Non-strict: the leader drops the standby and writes go on.
    let mut cluster = Cluster::start("sync-relaxed", spec("    synchronous_mode: on\n", 2));
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let standby = wait_one_sync_standby(&cluster, &leader);
    cluster.mark("the synchronous standby stops");
    assert!(cluster.stop_node(&standby, Duration::from_secs(60)));
    wait_for("sync to drop the standby", Duration::from_secs(30), || {
        let key = sync_key(&cluster)?;
        key["sync_standby"].is_null().then_some(())
    });
    cluster.wait_sql(&leader, "SHOW synchronous_standby_names", "", Duration::from_secs(30));
    assert!(write_without_waiting(&cluster, &leader, 1), "non-strict mode lets writes go on");
    drop(cluster);

    // Strict: commits wait until a standby is back.
    let mut cluster =
        Cluster::start("sync-strict", spec("    synchronous_mode: on\n    synchronous_mode_strict: true\n", 2));
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let standby = wait_one_sync_standby(&cluster, &leader);
    assert!(write_without_waiting(&cluster, &leader, 1), "the standby acknowledges");
    cluster.mark("the synchronous standby stops");
    assert!(cluster.stop_node(&standby, Duration::from_secs(60)));
    // Give the leader a few cycles: it must keep waiting for the standby.
    wait_for("the leader to say commits are delayed", Duration::from_secs(30), || {
        cluster.node(&leader).log().contains("synchronous_mode_strict is requested").then_some(())
    });
    assert!(!write_without_waiting(&cluster, &leader, 2), "strict mode blocks commits");
    assert_eq!(cluster.node(&leader).sql("SHOW synchronous_standby_names").unwrap(), standby);
    assert_eq!(sync_key(&cluster).unwrap()["sync_standby"], standby.as_str());
    cluster.mark("the standby comes back");
    cluster.start_node(cluster.index(&standby));
    assert!(
        wait_until(Duration::from_secs(90), || write_without_waiting(&cluster, &leader, 3)),
        "writes go on once the standby is back"
    );
}

/// Wait until `sync` names `leader` with these voters and quorum, and the
/// leader's PostgreSQL has `ssn` and reports every voter `quorum`.
fn wait_quorum_state(cluster: &Cluster, leader: &str, voters: &[&str], quorum: u64, ssn: &str) {
    let want = voters.join(",");
    let ok = wait_until(Duration::from_secs(90), || {
        let Some(key) = sync_key(cluster) else { return false };
        let pg = cluster.node(leader);
        let states = pg
            .sql("SELECT string_agg(application_name || '=' || sync_state, ',' ORDER BY 1) FROM pg_stat_replication")
            .unwrap_or_default();
        key["leader"] == leader
            && key["quorum"] == quorum
            && key["sync_standby"].as_str() == Some(want.as_str())
            && pg.sql("SHOW synchronous_standby_names").as_deref() == Ok(ssn)
            && voters.iter().all(|v| states.split(',').any(|s| s == format!("{v}=quorum")))
    });
    assert!(
        ok,
        "wanted leader {leader}, voters {want}, quorum {quorum}, {ssn}; key {:?}, ssn {:?}",
        sync_key(cluster),
        cluster.node(leader).sql("SHOW synchronous_standby_names")
    );
}

#[test]
fn quorum_mode_publishes_any_and_the_quorum_and_fails_over_within_it() {
    let mut cluster =
        Cluster::start("sync-quorum", spec("    synchronous_mode: quorum\n    synchronous_node_count: 2\n", 3));
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let mut standbys: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).filter(|n| *n != leader).collect();
    standbys.sort();
    let names: Vec<&str> = standbys.iter().map(String::as_str).collect();
    wait_quorum_state(&cluster, &leader, &names, 0, &format!("ANY 2 ({})", names.join(",")));
    for s in &standbys {
        let ok = wait_until(Duration::from_secs(20), || {
            cluster.node(s).get("/quorum").map(|r| r.status) == Ok(200)
                && cluster.node(s).get("/sync").map(|r| r.status) == Ok(503)
        });
        assert!(ok, "{s} answers /quorum 200 and /sync 503");
        assert_eq!(cluster.node(s).get("/patroni").unwrap().json()["quorum_standby"], true);
    }
    let view = cluster.node(&leader).get("/cluster").unwrap().json();
    let roles: Vec<&str> = view["members"].as_array().unwrap().iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles.iter().filter(|r| **r == "quorum_standby").count(), 2, "{view}");
    let out = palisadectl(&cluster, &["list", "-f", "json"]).ok().stdout;
    let list: Value = serde_json::from_str(&out).unwrap();
    let quorum_rows = list.as_array().unwrap().iter().filter(|m| m["Role"] == "Quorum Standby").count();
    assert_eq!(quorum_rows, 2, "palisadectl list: {out}");
    assert!(write_without_waiting(&cluster, &leader, 1), "both standbys acknowledge");

    // A crash of the primary: one of the voters takes over, and the state
    // comes to rest again around the survivors.
    cluster.mark("kill -9 of the leader's daemon and postmaster");
    cluster.kill9(&leader, true);
    let new = cluster.wait_for_new_leader(&leader, Duration::from_secs(60));
    assert!(standbys.contains(&new));
    let other = standbys.iter().find(|s| **s != new).unwrap().clone();
    wait_quorum_state(&cluster, &new, &[&other], 0, &format!("ANY 1 ({other})"));
    assert_eq!(cluster.node(&new).sql("SELECT count(*) FROM w").unwrap(), "1");
}
