//! Standby clusters on real processes: a 2-node standby cluster
//! replicating from a 2-node primary cluster (streaming through a slot, or
//! from a pgBackRest archive through `restore_command`), failover inside
//! the standby cluster, and demote-cluster / promote-cluster swapping the
//! roles of two clusters without losing data.
//!
//! Each cluster has its own etcd, as two clusters in two data centres do;
//! they only meet through PostgreSQL replication.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::ctl;

const MINUTE: Duration = Duration::from_secs(60);

/// `GET /patroni`'s role of `name`.
fn role(cluster: &Cluster, name: &str) -> String {
    cluster
        .node(name)
        .get("/patroni")
        .map(|r| r.json()["role"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// The rows of `t` on `name`, comma-joined.
fn rows(cluster: &Cluster, name: &str) -> String {
    cluster.node(name).sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t").unwrap_or_default()
}

/// Every surface that shows the role says the standby leader is one.
fn check_standby_leader_surfaces(cluster: &Cluster, leader: &str, replica: &str) {
    let l = cluster.node(leader);
    assert_eq!(l.get("/standby-leader").unwrap().status, 200);
    assert_eq!(l.get("/standby_leader").unwrap().status, 200);
    assert_eq!(l.get("/primary").unwrap().status, 503);
    assert_eq!(cluster.node(replica).get("/standby-leader").unwrap().status, 503);
    assert_eq!(cluster.node(replica).get("/replica").unwrap().status, 200);
    let metrics = l.get("/metrics").unwrap().body;
    assert!(metrics.lines().any(|m| m.starts_with("patroni_standby_leader{") && m.ends_with(" 1")), "{metrics}");
    assert!(metrics.lines().any(|m| m.starts_with("patroni_primary{") && m.ends_with(" 0")), "{metrics}");
    let list = ctl::run_with(cluster, &cluster.bin().join("palisadectl"), &["list"], "", &[]).ok().stdout;
    let line = list.lines().find(|l| l.contains(&format!(" {leader} "))).unwrap_or_default();
    assert!(line.contains("Standby Leader"), "{list}");
    let line = list.lines().find(|l| l.contains(&format!(" {replica} "))).unwrap_or_default();
    assert!(line.contains("Replica") && line.contains("streaming"), "{list}");
}

/// The primary cluster: two nodes and a permanent slot for the standby
/// cluster.
fn primary_spec() -> ClusterSpec {
    ClusterSpec {
        nodes: 2,
        extra_dcs: "    slots:\n      standby_cluster:\n        type: physical\n".into(),
        ..Default::default()
    }
}

#[test]
fn standby_cluster_streams_from_the_primary_cluster_and_fails_over_inside() {
    let primary = Cluster::start("sc-primary", primary_spec());
    let p = primary.wait_for_leader(MINUTE);
    primary.node(&p).sql("CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)").unwrap();

    let standby_dcs = format!(
        "    standby_cluster:\n      host: 127.0.0.1\n      port: {}\n      primary_slot_name: standby_cluster\n",
        primary.node(&p).pg_port
    );
    let mut standby =
        Cluster::start_standby("sc-standby", ClusterSpec { nodes: 2, extra_dcs: standby_dcs, ..Default::default() });
    let sl = standby.leader().unwrap();
    let other = standby.nodes.iter().map(|n| n.name.clone()).find(|n| *n != sl).unwrap();
    assert!(standby.node(&sl).log().contains("bootstrapped clone from remote member"), "{}", standby.logs());
    assert_eq!(role(&standby, &other), "replica");
    // The standby leader streams from the primary through the slot; its
    // replica cascades from it.
    primary.wait_sql(&p, "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_cluster'", "t", MINUTE);
    assert_eq!(standby.streaming_from(&sl), vec![other.clone()]);
    check_standby_leader_surfaces(&standby, &sl, &other);

    primary.node(&p).sql("INSERT INTO t VALUES (2)").unwrap();
    standby.wait_sql(&sl, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2", MINUTE);
    standby.wait_sql(&other, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2", MINUTE);

    // Failover inside the standby cluster: the replica becomes the standby
    // leader and streams from the primary through the same slot.
    standby.mark("kill the standby leader");
    standby.kill9(&sl, true);
    let new = standby.wait_for_standby_leader(MINUTE);
    assert_eq!(new, other);
    assert!(standby.node(&new).log().contains("promoted self to a standby leader by acquiring session lock"));
    primary.node(&p).sql("INSERT INTO t VALUES (3)").unwrap();
    standby.wait_sql(&new, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3", MINUTE);
    primary.wait_sql(&p, "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_cluster'", "t", MINUTE);
    assert_eq!(standby.node(&new).sql("SELECT pg_is_in_recovery()").unwrap(), "t");

    // The old standby leader comes back as a replica of the new one.
    let i = standby.index(&sl);
    standby.start_node(i);
    standby.wait_streaming(&new, 1, MINUTE);
    standby.wait_sql(&sl, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3", MINUTE);
    assert_eq!(rows(&primary, &p), "1,2,3");
}

/// `palisadectl -c <node1 of cluster> args...`, which must succeed.
fn palisadectl(cluster: &Cluster, args: &[&str]) -> String {
    ctl::run_with(cluster, &cluster.bin().join("palisadectl"), args, "", &[]).ok().stdout
}

#[test]
fn demote_cluster_and_promote_cluster_swap_the_roles_without_losing_data() {
    let a = Cluster::start("sc-swap-a", ClusterSpec { nodes: 2, ..Default::default() });
    let a1 = a.wait_for_leader(MINUTE);
    a.node(&a1).sql("CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1), (2), (3)").unwrap();
    let b_dcs = format!("    standby_cluster:\n      host: 127.0.0.1\n      port: {}\n", a.node(&a1).pg_port);
    let b = Cluster::start_standby("sc-swap-b", ClusterSpec { nodes: 2, extra_dcs: b_dcs, ..Default::default() });
    let b1 = b.leader().unwrap();
    for n in ["node1", "node2"] {
        b.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3", MINUTE);
    }

    // The last row goes in right before the demotion: the shutdown
    // checkpoint carries it to the standby cluster.
    a.node(&a1).sql("INSERT INTO t VALUES (4)").unwrap();
    a.mark("demote-cluster");
    b.mark("demote-cluster of the other cluster");
    let b1_port = b.node(&b1).pg_port.to_string();
    let out = palisadectl(&a, &["demote-cluster", "--host", "127.0.0.1", "--port", &b1_port, "--force"]);
    assert!(out.contains("cluster is successfully demoted"), "{out}");
    // No new initdb: the same node leads, now as the standby leader.
    assert_eq!(a.wait_for_standby_leader(MINUTE), a1);
    assert!(a.node(&a1).log().contains("Demoting self (demote-cluster)"), "{}", a.logs());
    b.wait_sql(&b1, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4", MINUTE);

    a.mark("promote-cluster of the other cluster");
    b.mark("promote-cluster");
    palisadectl(&b, &["promote-cluster", "--force"]);
    let b_leader = b.wait_for_leader(MINUTE);
    assert_eq!(b_leader, b1);
    assert_eq!(role(&b, &b1), "primary");
    b.node(&b1).sql("INSERT INTO t VALUES (5)").unwrap();

    // Every node of both clusters has every row; the roles are swapped.
    for n in ["node1", "node2"] {
        b.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4,5", MINUTE);
        a.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4,5", MINUTE);
    }
    assert_eq!(role(&a, &a1), "standby_leader");
    let a2 = a.nodes.iter().map(|n| n.name.clone()).find(|n| *n != a1).unwrap();
    a.wait_streaming(&a1, 1, MINUTE);
    assert_eq!(role(&a, &a2), "replica");
    b.wait_streaming(&b1, 1, MINUTE);
    check_standby_leader_surfaces(&a, &a1, &a2);
}
