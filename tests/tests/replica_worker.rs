//! Replicas are made by a child of the daemon (`palisade --replica-worker`,
//! `palisade_plugin_host::worker`), on real processes: the replica
//! method's plugin never enters the daemon (its library is not among the
//! daemon's mappings), the method's command runs under the worker, the
//! plugin's log reaches the daemon's log, and stopping the daemon while a
//! replica is being made cancels the method's command.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_test_support::{pid_alive, wait_for, wait_until};
use palisade_tests::backup::add_to_postgresql;
use palisade_tests::cluster::{Cluster, ClusterSpec};

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn a_replica_is_made_by_a_worker_and_stopping_the_daemon_cancels_it() {
    let spec = ClusterSpec { nodes: 2, ..ClusterSpec::default() };
    let mut cluster = Cluster::prepare("replica-worker", spec);
    let pidfile = std::env::temp_dir().join(format!("palisade-replica-worker-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&pidfile);
    let script = cluster.write(
        "slow-replica.sh",
        &format!("#!/bin/sh\necho \"slow replica method: $*\"\necho $$ > {}\nexec sleep 600\n", pidfile.display()),
        0o755,
    );
    add_to_postgresql(
        &cluster,
        "node2",
        &format!("  create_replica_methods:\n  - slow\n  slow:\n    command: {}\n", script.display()),
    );

    cluster.start_node(0);
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.start_node(1);
    let sleeper = wait_for("the slow replica method to start", Duration::from_secs(60), || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse::<i32>().ok().filter(|p| pid_alive(*p))
    });
    let _ = std::fs::remove_file(&pidfile);

    // The command runs under `palisade --replica-worker`, a child of the
    // daemon, and the daemon has no replica plugin mapped.
    let daemon = cluster.node("node2").daemon_pid().unwrap();
    let worker = parent_of(sleeper).unwrap();
    assert!(cmdline(worker).contains("--replica-worker"), "the method's parent runs {:?}", cmdline(worker));
    assert_eq!(parent_of(worker), Some(daemon), "the worker is the daemon's child");
    let maps = std::fs::read_to_string(format!("/proc/{daemon}/maps")).unwrap();
    assert!(!maps.contains("libpalisade_replica_"), "a replica plugin is mapped in the daemon:\n{maps}");
    // What the method printed reached the daemon's log through the worker.
    wait_for("the method's output in node2's log", Duration::from_secs(30), || {
        cluster.node("node2").log().contains("slow replica method: --scope=").then_some(())
    });

    // SIGTERM: the daemon cancels the replica in progress, and the
    // method's command and the worker are gone with it.
    assert!(cluster.stop_node("node2", Duration::from_secs(60)), "node2's daemon did not stop");
    assert!(wait_until(Duration::from_secs(30), || !pid_alive(sleeper)), "the method's command survived the cancel");
    assert!(wait_until(Duration::from_secs(30), || !pid_alive(worker)), "the worker survived its daemon");
    let log = cluster.node("node2").log();
    assert!(log.contains("cancelling"), "{log}");
}
