//! A rolling migration: Patroni and palisade nodes in one cluster, on one
//! etcd, from the very same configuration files. Each kind must follow the
//! other, race fairly with the other over the REST API, and take over from
//! the other.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_tests::cluster::{Cluster, ClusterSpec};

fn spec() -> ClusterSpec {
    ClusterSpec::default().with_patroni_node2()
}

#[test]
fn patroni_and_palisade_nodes_share_a_cluster() {
    let mut cluster = Cluster::start("mixed", spec());
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
    // palisade also exports the three metrics newer Patroni releases added.
    let newer = ["patroni_failsafe_mode_enabled", "patroni_failsafe_member", "patroni_failover_priority"];
    let ours: Vec<String> = metric_names("node3").into_iter().filter(|n| !newer.contains(&n.as_str())).collect();
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
