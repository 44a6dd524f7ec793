//! A rolling migration: Patroni and palisade nodes in one cluster, on one
//! DCS server, from the very same configuration files. Each kind must
//! follow the other, race fairly with the other over the REST API, take
//! over from the other (switchover both ways, failover after kill -9), and
//! patronictl and palisadectl must list the cluster alike. This shows that
//! the DCS plugin writes what Patroni reads and reads what Patroni writes.
//!
//! Every scenario runs once per enrolled DCS backend (the `on!` lines).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_test_support::wait_until;
use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::ctl::{palisadectl, run_bare, run_with, Output};
use palisade_tests::dcs::DcsBackend;

macro_rules! on {
    ($module:ident = $backend:expr) => {
        palisade_tests::dcs_tests!($module = $backend;
            patroni_and_palisade_nodes_share_a_cluster,
            switchovers_both_ways_a_failover_and_both_ctls_agree,
        );
    };
}

on!(etcd3 = palisade_tests::dcs::ETCD3);
on!(etcd = palisade_tests::dcs::ETCD);
on!(zookeeper = palisade_tests::dcs::ZOOKEEPER);
on!(exhibitor = palisade_tests::dcs::EXHIBITOR);
on!(consul = palisade_tests::dcs::CONSUL);
on!(kubernetes = palisade_tests::dcs::KUBERNETES);
on!(kubernetes_endpoints = palisade_tests::dcs::KUBERNETES_ENDPOINTS);

fn spec(dcs: DcsBackend) -> ClusterSpec {
    ClusterSpec { dcs, ..ClusterSpec::default() }.with_patroni_node2()
}

fn patronictl(cluster: &Cluster, args: &[&str]) -> Output {
    run_with(cluster, &palisade_tests::patroni::venv().join("bin/patronictl"), args, "", &[])
}

/// Wait until `patronictl list` and `palisadectl list` print the same
/// table (retried: a WAL position may move between the two reads), with
/// `leader` as the leader and `streaming` replicas streaming.
fn lists_agree(cluster: &Cluster, leader: &str, streaming: usize) {
    let leader_row = format!("| {leader} ");
    let same = wait_until(Duration::from_secs(60), || {
        let a = patronictl(cluster, &["list"]).stdout;
        let b = palisadectl(cluster, &["list"]).stdout;
        a == b
            && a.lines().any(|l| l.starts_with(&leader_row) && l.contains("| Leader "))
            && a.matches("| streaming |").count() == streaming
    });
    assert!(
        same,
        "patronictl:\n{}\npalisadectl:\n{}",
        patronictl(cluster, &["list"]).stdout,
        palisadectl(cluster, &["list"]).stdout
    );
    let same_json = wait_until(Duration::from_secs(30), || {
        let a = patronictl(cluster, &["list", "-f", "json"]).stdout;
        let b = palisadectl(cluster, &["list", "-f", "json"]).stdout;
        a == b && !a.is_empty()
    });
    assert!(same_json, "list -f json differs");
    // Without a configuration file, from --dcs-url alone, too.
    let url = format!("{}/service", cluster.dcs_url());
    let args = ["-d", url.as_str(), "list", cluster.scope.as_str(), "-f", "json"];
    let venv = palisade_tests::patroni::venv();
    // patronictl has no --dcs-url form for some stores (Kubernetes): then
    // both tools must refuse it alike.
    let patroni_bare = run_bare(cluster, &venv.join("bin/patronictl"), &args, &[]);
    if patroni_bare.stderr.contains("Unknown dcs scheme") {
        let ours = run_bare(cluster, &cluster.bin().join("palisadectl"), &args, &[]);
        assert_eq!((ours.code, ours.stderr.as_str()), (patroni_bare.code, patroni_bare.stderr.as_str()));
        return;
    }
    let same_bare = wait_until(Duration::from_secs(30), || {
        let a = run_bare(cluster, &venv.join("bin/patronictl"), &args, &[]).stdout;
        let b = run_bare(cluster, &cluster.bin().join("palisadectl"), &args, &[]).stdout;
        a == b && a.contains(&format!("\"Member\": \"{leader}\""))
    });
    assert!(
        same_bare,
        "list from --dcs-url {url} differs:\npatronictl: {:?}\npalisadectl: {:?}",
        run_bare(cluster, &venv.join("bin/patronictl"), &args, &[]),
        run_bare(cluster, &cluster.bin().join("palisadectl"), &args, &[])
    );
}

/// A switchover with `tool` (patronictl or palisadectl) from `from` to
/// `to`; returns once `to` leads, accepts writes, and both others stream
/// from it.
fn switchover_with(cluster: &Cluster, tool: &str, from: &str, to: &str) {
    cluster.mark(&format!("{tool} switchover {from} -> {to}"));
    let args = ["switchover", "--leader", from, "--candidate", to, "--force"];
    let out = if tool == "patronictl" { patronictl(cluster, &args) } else { palisadectl(cluster, &args) };
    assert_eq!(out.code, 0, "{tool} switchover {from} -> {to}: {out:?}\n{}", cluster.logs());
    assert!(out.stdout.contains(&format!("Successfully switched over to \"{to}\"")), "{out:?}");
    let leader = cluster.wait_for_leader(Duration::from_secs(90));
    assert_eq!(leader, to);
    cluster.wait_streaming(to, 2, Duration::from_secs(120));
}

/// Bootstrap by palisade, a switchover palisade -> Patroni (palisadectl),
/// one Patroni -> palisade (patronictl), a failover after kill -9 of the
/// palisade leader, and after each step both tools list the same cluster.
fn switchovers_both_ways_a_failover_and_both_ctls_agree(dcs: DcsBackend) {
    let mut cluster = Cluster::start("mixedctl", spec(dcs));
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1", "palisade bootstraps");
    cluster.wait_streaming("node1", 2, Duration::from_secs(120));
    cluster.insert("node1", 1, "bootstrapped by palisade");
    lists_agree(&cluster, "node1", 2);

    // palisade (node1) -> Patroni (node2), asked through palisadectl.
    switchover_with(&cluster, "palisadectl", "node1", "node2");
    cluster.insert("node2", 2, "written on Patroni");
    cluster.wait_sql("node3", "SELECT count(*) FROM t", "2", Duration::from_secs(60));
    cluster.wait_sql("node1", "SELECT count(*) FROM t", "2", Duration::from_secs(60));
    lists_agree(&cluster, "node2", 2);

    // Patroni (node2) -> palisade (node3), asked through patronictl.
    switchover_with(&cluster, "patronictl", "node2", "node3");
    cluster.insert("node3", 3, "written on palisade again");
    cluster.wait_sql("node2", "SELECT count(*) FROM t", "3", Duration::from_secs(60));
    lists_agree(&cluster, "node3", 2);

    // kill -9 of the palisade leader: one of the others takes over, and the
    // crashed node rejoins as a replica.
    cluster.mark("kill -9 of node3");
    cluster.kill9("node3", true);
    let next = cluster.wait_for_new_leader("node3", Duration::from_secs(90));
    cluster.insert(&next, 4, "after the failover");
    let other = if next == "node1" { "node2" } else { "node1" };
    cluster.wait_sql(other, "SELECT count(*) FROM t", "4", Duration::from_secs(60));
    cluster.start_node(2);
    cluster.wait_sql("node3", "SELECT count(*) FROM t", "4", Duration::from_secs(120));
    cluster.wait_streaming(&next, 2, Duration::from_secs(120));
    lists_agree(&cluster, &next, 2);
}

/// Bootstrap, GET endpoints and health checks alike from both kinds, a
/// clean stop hand-over, a crash, and a switchover across kinds through
/// the REST API.
fn patroni_and_palisade_nodes_share_a_cluster(dcs: DcsBackend) {
    let mut cluster = Cluster::start("mixed", spec(dcs));
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    assert_eq!(leader, "node1", "palisade bootstraps");
    // node2 is Patroni: it cloned palisade's primary and streams from it.
    let pid = cluster.node("node2").daemon_pid().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(String::from_utf8_lossy(&cmdline).contains("patroni"), "node2 runs Patroni");
    let streaming = cluster.wait_streaming("node1", 2, Duration::from_secs(120));
    assert_eq!(streaming, vec!["node2", "node3"]);
    cluster
        .node("node1")
        .sql("CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'from palisade')")
        .unwrap();
    for n in ["node2", "node3"] {
        cluster.wait_sql(n, "SELECT v FROM t WHERE id = 1", "from palisade", Duration::from_secs(30));
    }
    // Patroni reads palisade's member keys: its REST API lists them all.
    let members = palisade_test_support::wait_for("Patroni to see every member", Duration::from_secs(30), || {
        let c = cluster.node("node2").get("/cluster").ok()?.json();
        let names: Vec<String> =
            c["members"].as_array()?.iter().filter_map(|m| m["name"].as_str().map(String::from)).collect();
        (names.len() == 3).then_some(c)
    });
    let roles: Vec<&str> = members["members"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, vec!["leader", "replica", "replica"]);
    // Both kinds present the cluster the same way (GET /cluster, /history,
    // /config), byte for byte once the JSON is parsed.
    for path in ["/cluster", "/history", "/config"] {
        let same = palisade_test_support::wait_until(Duration::from_secs(30), || {
            let a = cluster.node("node1").get(path).map(|r| r.json());
            let b = cluster.node("node2").get(path).map(|r| r.json());
            matches!((a, b), (Ok(a), Ok(b)) if a == b && !a.is_null())
        });
        assert!(
            same,
            "{path} differs:\npalisade: {:?}\nPatroni:  {:?}",
            cluster.node("node1").get(path).map(|r| r.body),
            cluster.node("node2").get(path).map(|r| r.body)
        );
    }

    // Two replicas, one of each kind, answer every health check alike and
    // export the same metrics.
    let paths = [
        "/",
        "/primary",
        "/read-write",
        "/leader",
        "/standby-leader",
        "/replica",
        "/replica?lag=1MB",
        "/read-only",
        "/sync",
        "/read-only-sync",
        "/quorum",
        "/read-only-quorum",
        "/async",
        "/health",
        "/liveness",
        "/readiness",
    ];
    for path in paths {
        let code = |n: &str| cluster.node(n).get(path).map(|r| r.status).unwrap_or(0);
        let same = palisade_test_support::wait_until(Duration::from_secs(20), || code("node2") == code("node3"));
        assert!(same, "{path}: Patroni {} palisade {}", code("node2"), code("node3"));
    }
    let metric_names = |n: &str| -> Vec<String> {
        let text = cluster.node(n).get("/metrics").map(|r| r.body).unwrap_or_default();
        text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split('{').next()).map(String::from).collect()
    };
    let keys = |n: &str| -> Vec<String> {
        let v = cluster.node(n).get("/patroni").map(|r| r.json()).unwrap_or_default();
        let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        k.sort();
        k
    };
    let same = palisade_test_support::wait_until(Duration::from_secs(20), || keys("node2") == keys("node3"));
    assert!(same, "GET /patroni keys: Patroni {:?} palisade {:?}", keys("node2"), keys("node3"));
    // palisade also exports the three metrics newer Patroni releases added,
    // and its own `palisade_*` ones (the watchdog's state).
    let newer = ["patroni_failsafe_mode_enabled", "patroni_failsafe_member", "patroni_failover_priority"];
    let ours: Vec<String> = metric_names("node3")
        .into_iter()
        .filter(|n| !newer.contains(&n.as_str()) && !n.starts_with("palisade_"))
        .collect();
    assert_eq!(metric_names("node2"), ours);

    // The palisade leader stops cleanly: a node of either kind takes over.
    cluster.mark("SIGTERM to palisade's leader");
    assert!(cluster.stop_node("node1", Duration::from_secs(60)));
    let second = cluster.wait_for_new_leader("node1", Duration::from_secs(60));
    cluster.node(&second).sql("INSERT INTO t VALUES (2, 'after the handover')").unwrap();
    let other = if second == "node2" { "node3" } else { "node2" };
    cluster.wait_sql(other, "SELECT count(*) FROM t", "2", Duration::from_secs(60));

    // node1 comes back and follows whoever leads; then that leader crashes.
    cluster.start_node(0);
    cluster.wait_sql("node1", "SELECT count(*) FROM t", "2", Duration::from_secs(90));
    cluster.mark("kill -9 of the second leader");
    cluster.kill9(&second, true);
    let third = cluster.wait_for_new_leader(&second, Duration::from_secs(90));
    cluster.node(&third).sql("INSERT INTO t VALUES (3, 'after the crash')").unwrap();
    let survivor = ["node1", "node2", "node3"].into_iter().find(|n| *n != second && *n != third).unwrap();
    cluster.wait_sql(survivor, "SELECT count(*) FROM t", "3", Duration::from_secs(60));

    // The crashed node comes back; then a switchover crosses kinds: the
    // leader hands over to a node of the other kind through the REST API.
    cluster.start_node(cluster.index(&second));
    cluster.wait_streaming(&third, 2, Duration::from_secs(120));
    let candidate = if third == "node2" { "node1" } else { "node2" };
    cluster.mark("switchover across kinds");
    let body = format!(r#"{{"leader": "{third}", "candidate": "{candidate}"}}"#);
    let r =
        palisade_tests::http::request(cluster.node(&third).api_port, "POST", "/switchover", Some(&body), &[]).unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.body, cluster.logs());
    assert_eq!(r.body, format!("Successfully switched over to \"{candidate}\""));
    cluster.node(candidate).sql("INSERT INTO t VALUES (4, 'after the switchover')").unwrap();
    cluster.wait_sql(&third, "SELECT count(*) FROM t", "4", Duration::from_secs(90));
}
