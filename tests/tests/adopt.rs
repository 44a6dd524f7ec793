//! Adopting an existing data directory: a node that finds a running
//! standalone primary and no `initialize` key takes it over as the leader
//! of a new cluster; a node whose data directory belongs to another
//! cluster (another system identifier) refuses to join, with Patroni's
//! message.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use palisade_test_support::{command_as_test_user, pg_bin_dir, wait_for, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec, Node};

/// initdb a standalone server into `node`'s data directory, as its owner.
fn initdb(node: &Node) {
    let status = command_as_test_user(pg_bin_dir().join("initdb"))
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
        .arg(&node.data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "initdb for {}", node.name);
}

/// Start the standalone server of `node` on its port with pg_ctl.
fn pg_ctl_start(node: &Node, run_dir: &Path) {
    let opts =
        format!("-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}", node.pg_port, run_dir.display());
    let status = command_as_test_user(pg_bin_dir().join("pg_ctl"))
        .args(["start", "-w", "-t", "60", "-o", &opts, "-l"])
        .arg(node.data_dir.with_extension("standalone.log"))
        .arg("-D")
        .arg(&node.data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl start for {}", node.name);
}

fn system_identifier(node: &Node) -> String {
    node.sql("SELECT system_identifier FROM pg_control_system()").unwrap()
}

#[test]
fn a_running_standalone_primary_is_taken_over_as_the_leader_of_a_new_cluster() {
    let mut cluster = Cluster::prepare("adopt", ClusterSpec { nodes: 2, ..ClusterSpec::default() });
    let run_dir = cluster.dir().join("run/node1");
    let node1 = cluster.node("node1");
    initdb(node1);
    pg_ctl_start(node1, &run_dir);
    // What an existing server has: data, and the roles the configuration names.
    node1
        .sql(
            "ALTER ROLE postgres PASSWORD 'test-superuser-pw'; \
             CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'test-replication-pw'; \
             CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'from before palisade')",
        )
        .unwrap();
    let sysid = system_identifier(node1);
    let postmaster = node1.postmaster_pid().unwrap();
    assert!(cluster.read_key("initialize").is_none());

    cluster.start_node(0);
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    assert_eq!(leader, "node1");
    // The same server, not a new one: same postmaster, same system, same data.
    assert_eq!(cluster.node("node1").postmaster_pid(), Some(postmaster));
    assert_eq!(system_identifier(cluster.node("node1")), sysid);
    assert_eq!(cluster.node("node1").sql("SELECT v FROM t").unwrap(), "from before palisade");
    // The cluster is initialised with its system identifier.
    let initialize = wait_for("the initialize key", Duration::from_secs(30), || {
        let value = cluster.read_key("initialize")?;
        Some(String::from_utf8_lossy(&value).into_owned())
    });
    assert_eq!(initialize, sysid);
    let log = cluster.node("node1").log();
    assert!(!log.contains("trying to bootstrap a new cluster"), "{log}");
    assert!(!log.contains("initializing a new cluster"), "{log}");

    // A new member copies it and streams from it.
    cluster.start_node(1);
    assert_eq!(cluster.wait_streaming("node1", 1, Duration::from_secs(90)), vec!["node2".to_string()]);
    cluster.wait_sql("node2", "SELECT v FROM t", "from before palisade", Duration::from_secs(30));
    assert_eq!(system_identifier(cluster.node("node2")), sysid);
}

#[test]
fn a_data_directory_of_another_cluster_refuses_to_join() {
    let mut cluster = Cluster::start_first(
        "sysid",
        ClusterSpec {
            nodes: 2,
            allowed_errors: vec!["system ID mismatch, node node2 belongs to a different cluster"],
            ..ClusterSpec::default()
        },
    );
    let ours = system_identifier(cluster.node("node1"));
    // node2's data directory holds another cluster, stopped.
    initdb(cluster.node("node2"));
    let pg_version = std::fs::read(cluster.node("node2").data_dir.join("PG_VERSION")).unwrap();

    cluster.start_node(1);
    let exited = wait_until(Duration::from_secs(60), || !cluster.nodes[1].daemon_running());
    let log = cluster.node("node2").log();
    assert!(exited, "node2 keeps running:\n{log}");
    // Patroni's words, at ERROR (Patroni logs them at CRITICAL and exits too).
    let theirs = log
        .lines()
        .find(|l| l.contains("ERROR: system ID mismatch, node node2 belongs to a different cluster: "))
        .unwrap_or_else(|| panic!("no system ID mismatch ERROR line:\n{log}"));
    let (dcs, local) = theirs.rsplit_once(": ").unwrap().1.split_once(" != ").unwrap();
    assert_eq!(dcs, ours);
    assert_ne!(local, ours);
    // Nothing was touched: not started, not removed, not copied over.
    assert_eq!(std::fs::read(cluster.node("node2").data_dir.join("PG_VERSION")).unwrap(), pg_version);
    assert!(cluster.node("node2").postmaster_pid().is_none());
    assert_eq!(cluster.leader().as_deref(), Some("node1"));
    assert_eq!(cluster.node("node1").sql("SELECT count(*) FROM pg_stat_replication").unwrap(), "0");
}
