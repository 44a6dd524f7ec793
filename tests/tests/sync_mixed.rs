//! Synchronous mode in a mixed cluster (Patroni 4.1 and palisade nodes on
//! one etcd): whichever kind leads, both kinds agree on who is synchronous,
//! refuse the same switchovers, and switchovers in both directions leave a
//! `sync` key that matches the new leader's `synchronous_standby_names`;
//! after a crash of a palisade leader only the Patroni node it published
//! as synchronous takes over.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use palisade_test_support::{wait_for, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec};
use serde_json::Value;

fn spec() -> ClusterSpec {
    ClusterSpec {
        // node2 is Patroni. sync_priority makes the choices known in advance:
        // node2 first, then node3, then node1.
        extra_dcs: "    synchronous_mode: on\n".into(),
        node_extra: |i| format!("tags:\n  sync_priority: {}\n", [1, 3, 2][i]),
        allowed_errors: vec!["Request failed to", "failed to update leader lock"],
        ..ClusterSpec::default()
    }
    .with_patroni_node2()
}

fn sync_key(cluster: &Cluster) -> Option<Value> {
    cluster.read_json("sync")
}

/// Wait until `sync` names `leader` and `standby`, and the leader's
/// PostgreSQL lists `standby` and reports it `sync`.
fn wait_sync(cluster: &Cluster, leader: &str, standby: &str) {
    let ok = wait_until(Duration::from_secs(120), || {
        let Some(key) = sync_key(cluster) else { return false };
        let pg = cluster.node(leader);
        key["leader"] == leader
            && key["sync_standby"] == standby
            && pg.sql("SHOW synchronous_standby_names").as_deref() == Ok(standby)
            && pg
                .sql(&format!("SELECT sync_state FROM pg_stat_replication WHERE application_name = '{standby}'"))
                .as_deref()
                == Ok("sync")
    });
    assert!(
        ok,
        "wanted {leader} with synchronous {standby}; key {:?}, ssn {:?}\n{}",
        sync_key(cluster),
        cluster.node(leader).sql("SHOW synchronous_standby_names"),
        cluster.logs()
    );
}

/// Member roles as node `n`'s `GET /cluster` shows them.
fn roles(cluster: &Cluster, n: &str) -> BTreeMap<String, String> {
    let view = cluster.node(n).get("/cluster").map(|r| r.json()).unwrap_or_default();
    view["members"]
        .as_array()
        .map(|ms| {
            ms.iter().filter_map(|m| Some((m["name"].as_str()?.to_string(), m["role"].as_str()?.to_string()))).collect()
        })
        .unwrap_or_default()
}

/// Every node, Patroni's and palisade's, presents the same roles, with
/// `leader` and `standby` as said; `/sync` answers 200 on the synchronous
/// standby only, whichever kind answers.
fn all_agree(cluster: &Cluster, leader: &str, standby: &str) {
    let want: BTreeMap<String, String> = ["node1", "node2", "node3"]
        .into_iter()
        .map(|n| {
            let role = if n == leader {
                "leader"
            } else if n == standby {
                "sync_standby"
            } else {
                "replica"
            };
            (n.to_string(), role.to_string())
        })
        .collect();
    for n in ["node1", "node2", "node3"] {
        let same = wait_until(Duration::from_secs(30), || roles(cluster, n) == want);
        assert!(same, "{n} shows {:?}, wanted {want:?}", roles(cluster, n));
        let code = |path: &str| cluster.node(n).get(path).map(|r| r.status).unwrap_or(0);
        let sync_code = if n == standby { 200 } else { 503 };
        assert!(
            wait_until(Duration::from_secs(20), || code("/sync") == sync_code),
            "{n}: /sync answered {}, wanted {sync_code}",
            code("/sync")
        );
        let async_code = if n == standby || n == leader { 503 } else { 200 };
        assert_eq!(code("/async"), async_code, "{n}: /async");
    }
}

fn switchover(cluster: &Cluster, via: &str, leader: &str, candidate: &str) -> (u16, String) {
    let body = format!(r#"{{"leader": "{leader}", "candidate": "{candidate}"}}"#);
    let r = palisade_tests::http::request(cluster.node(via).api_port, "POST", "/switchover", Some(&body), &[]).unwrap();
    (r.status, r.body)
}

#[test]
fn switchovers_in_both_directions_keep_the_sync_key_valid_for_both_kinds() {
    let mut cluster = Cluster::start("sync-mixed", spec());
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    assert_eq!(leader, "node1", "palisade bootstraps");
    cluster.wait_streaming("node1", 2, Duration::from_secs(120));

    // A palisade leader makes the Patroni node its synchronous standby.
    wait_sync(&cluster, "node1", "node2");
    all_agree(&cluster, "node1", "node2");
    cluster.node("node1").sql("CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)").unwrap();

    // Both kinds refuse a switchover to the asynchronous node alike.
    for via in ["node1", "node2"] {
        assert_eq!(
            switchover(&cluster, via, "node1", "node3"),
            (412, "candidate name does not match with sync_standby".to_string()),
            "through {via}"
        );
    }

    // palisade -> Patroni: the synchronous Patroni node takes over and makes
    // the palisade node with the higher sync_priority synchronous.
    cluster.mark("switchover from palisade to Patroni");
    let (code, body) = switchover(&cluster, "node1", "node1", "node2");
    assert_eq!((code, body.as_str()), (200, "Successfully switched over to \"node2\""), "{}", cluster.logs());
    wait_sync(&cluster, "node2", "node3");
    all_agree(&cluster, "node2", "node3");
    cluster.node("node2").sql("INSERT INTO t VALUES (2)").unwrap();
    // node1 rejoins as a replica of the Patroni leader.
    cluster.wait_streaming("node2", 2, Duration::from_secs(120));

    // Patroni -> palisade, asked through Patroni's own API.
    cluster.mark("switchover from Patroni to palisade");
    let (code, body) = switchover(&cluster, "node2", "node2", "node3");
    assert_eq!((code, body.as_str()), (200, "Successfully switched over to \"node3\""), "{}", cluster.logs());
    wait_sync(&cluster, "node3", "node2");
    all_agree(&cluster, "node3", "node2");
    cluster.node("node3").sql("INSERT INTO t VALUES (3)").unwrap();
    let rows = wait_for("every row on the synchronous standby", Duration::from_secs(30), || {
        let n = cluster.node("node2").sql("SELECT count(*) FROM t").ok()?;
        (n == "3").then_some(n)
    });
    assert_eq!(rows, "3");

    // The palisade leader crashes: the Patroni node palisade published as
    // synchronous takes over; the asynchronous palisade node does not.
    cluster.mark("kill -9 of the palisade leader");
    cluster.kill9("node3", true);
    let new = cluster.wait_for_new_leader("node3", Duration::from_secs(90));
    assert_eq!(new, "node2", "only the synchronous standby may take over");
    assert_eq!(cluster.node("node2").sql("SELECT count(*) FROM t").unwrap(), "3");
    wait_sync(&cluster, "node2", "node1");
}
