//! The walking skeleton's promises, on real processes: a 3-node cluster
//! bootstraps through the DCS and replicates; it survives a crash of the
//! primary, a clean stop of the leader, the loss of the DCS, a restart of
//! the DCS, and garbage written into the DCS by somebody else.
//!
//! Each scenario takes the DCS backend and runs once per enrolled backend
//! (the `on!` lines at the end: one per backend).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::dcs::DcsBackend;

/// Every scenario of this file that holds on any DCS, run on one backend.
macro_rules! on {
    ($module:ident = $backend:expr) => {
        palisade_tests::dcs_tests!($module = $backend;
            three_nodes_bootstrap_and_replicate,
            the_primary_crashes_and_a_replica_takes_over,
            sigterm_hands_leadership_over_without_waiting_for_the_ttl,
            losing_the_dcs_demotes_the_leader_and_the_cluster_recovers,
            a_dcs_restart_the_sessions_survive_changes_nothing,
            garbage_in_the_dcs_is_logged_and_skipped,
        );
    };
}

on!(etcd3 = palisade_tests::dcs::ETCD3);
on!(etcd = palisade_tests::dcs::ETCD);
on!(zookeeper = palisade_tests::dcs::ZOOKEEPER);
on!(consul = palisade_tests::dcs::CONSUL);
on!(kubernetes = palisade_tests::dcs::KUBERNETES);
on!(kubernetes_endpoints = palisade_tests::dcs::KUBERNETES_ENDPOINTS);
on!(kubernetes_lease = palisade_tests::dcs::KUBERNETES_LEASE);

/// ERROR lines these scenarios may legitimately log.
const EXPECTED_ERRORS: &[&str] = &["Error communicating with DCS", "failed to update leader lock", "Request failed to"];

fn replicas_of(cluster: &Cluster, leader: &str) -> Vec<String> {
    cluster.nodes.iter().map(|n| n.name.clone()).filter(|n| n != leader).collect()
}

fn three_nodes_bootstrap_and_replicate(dcs: DcsBackend) {
    let cluster = Cluster::start("bootstrap", ClusterSpec { dcs, ..ClusterSpec::default() });
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    assert_eq!(leader, "node1", "the first node started initialises the cluster");

    // Exactly one leader: one primary, two replicas, both streaming.
    let primaries: Vec<&str> = cluster
        .nodes
        .iter()
        .filter(|n| n.sql("SELECT pg_is_in_recovery()").as_deref() == Ok("f"))
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(primaries, vec!["node1"]);
    assert_eq!(cluster.wait_streaming(&leader, 2, Duration::from_secs(30)), vec!["node2", "node3"]);

    // A row written on the leader is read on both replicas.
    cluster.insert(&leader, 1, "hello");
    for r in replicas_of(&cluster, &leader) {
        cluster.wait_sql(&r, "SELECT v FROM t WHERE id = 1", "hello", Duration::from_secs(30));
    }

    // The replicas stream through the slots Patroni would create.
    let slots = cluster.node(&leader).sql("SELECT slot_name FROM pg_replication_slots ORDER BY 1").unwrap();
    assert_eq!(slots, "node2\nnode3");
    // Replicas keep copies of the other members' slots (as Patroni 4 does),
    // so that whoever is promoted next has a slot for everybody.
    cluster.wait_sql(
        "node2",
        "SELECT string_agg(slot_name, ',' ORDER BY 1) FROM pg_replication_slots",
        "node1,node3",
        Duration::from_secs(30),
    );
    cluster.wait_sql(
        "node3",
        "SELECT string_agg(slot_name, ',' ORDER BY 1) FROM pg_replication_slots",
        "node1,node2",
        Duration::from_secs(30),
    );

    // The DCS holds Patroni's keys and JSON.
    let initialize = cluster.read_key("initialize").unwrap();
    let sysid = cluster.node(&leader).sql("SELECT system_identifier FROM pg_control_system()").unwrap();
    assert_eq!(String::from_utf8_lossy(&initialize), sysid);
    let member =
        palisade_test_support::wait_for("node2 published as a streaming replica", Duration::from_secs(30), || {
            let v = cluster.read_json("members/node2")?;
            (v["replication_state"] == "streaming").then_some(v)
        });
    assert_eq!(member["role"], "replica");
    assert_eq!(member["state"], "running");
    assert_eq!(member["replication_state"], "streaming");
    assert_eq!(member["conn_url"], format!("postgres://127.0.0.1:{}/postgres", cluster.node("node2").pg_port));
    let config = cluster.read_json("config").unwrap();
    assert_eq!(config["ttl"], 5);
    let mut names: Vec<String> = cluster.keys().into_iter().map(|(k, _)| k).collect();
    names.sort();
    for key in ["config", "initialize", "leader", "members/node1", "members/node2", "members/node3"] {
        assert!(names.contains(&cluster.key(key)), "{key} is not among {names:?}");
    }

    // The API says the same.
    let status = cluster.node(&leader).get("/patroni").unwrap().json();
    assert_eq!(status["role"], "primary");
    assert_eq!(status["patroni"]["scope"], cluster.scope.as_str());
    assert_eq!(cluster.node("node2").get("/replica").unwrap().status, 200);
    assert_eq!(cluster.node(&leader).get("/primary").unwrap().status, 200);
    assert_eq!(cluster.node("node2").get("/primary").unwrap().status, 503);

    let errors = cluster.unexpected_errors(EXPECTED_ERRORS);
    assert!(errors.is_empty(), "unexpected errors:\n{}", errors.join("\n"));
}

fn the_primary_crashes_and_a_replica_takes_over(dcs: DcsBackend) {
    let mut cluster = Cluster::start("crash", ClusterSpec { dcs, ..ClusterSpec::default() });
    let old = cluster.wait_for_leader(Duration::from_secs(30));
    let replicas = replicas_of(&cluster, &old);
    cluster.insert(&old, 1, "committed before the crash");
    // Both replicas have it: it must survive whatever happens next.
    for r in &replicas {
        cluster.wait_sql(r, "SELECT count(*) FROM t WHERE id = 1", "1", Duration::from_secs(30));
    }

    cluster.mark("kill -9 of the leader's daemon and postmaster");
    cluster.kill9(&old, true);
    let new = cluster.wait_for_new_leader(&old, Duration::from_secs(60));
    assert!(replicas.contains(&new));
    // The new leader already had slots for the others, the old leader's included.
    let slots =
        cluster.node(&new).sql("SELECT string_agg(slot_name, ',' ORDER BY 1) FROM pg_replication_slots").unwrap();
    let mut expected: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).filter(|n| *n != new).collect();
    expected.sort();
    assert_eq!(slots, expected.join(","));
    cluster.insert(&new, 2, "written on the new leader");
    let other = replicas.iter().find(|r| **r != new).unwrap().clone();
    assert_eq!(cluster.wait_streaming(&new, 1, Duration::from_secs(60)), vec![other.clone()]);
    cluster.wait_sql(
        &other,
        "SELECT string_agg(v, ',' ORDER BY id) FROM t",
        "committed before the crash,written on the new leader",
        Duration::from_secs(30),
    );

    cluster.mark("the old primary comes back");
    let i = cluster.index(&old);
    cluster.start_node(i);
    cluster.wait_sql(&old, "SELECT count(*) FROM t WHERE id = 2", "1", Duration::from_secs(90));
    assert_eq!(cluster.node(&old).sql("SELECT pg_is_in_recovery()").unwrap(), "t");
    assert_eq!(cluster.leader().as_deref(), Some(new.as_str()));
    let mut streaming = cluster.wait_streaming(&new, 2, Duration::from_secs(60));
    streaming.sort();
    let mut expected = vec![old.clone(), other];
    expected.sort();
    assert_eq!(streaming, expected);
    assert!(cluster.node(&old).log().contains("starting as a secondary"), "{}", cluster.node(&old).log());

    let errors = cluster.unexpected_errors(EXPECTED_ERRORS);
    assert!(errors.is_empty(), "unexpected errors:\n{}", errors.join("\n"));
}

fn sigterm_hands_leadership_over_without_waiting_for_the_ttl(dcs: DcsBackend) {
    // A long ttl: a handover that waited for the lock to expire would be obvious.
    let spec = ClusterSpec { dcs, ttl: 60, loop_wait: 2, retry_timeout: 10, ..ClusterSpec::default() };
    let mut cluster = Cluster::start("sigterm", spec);
    let old = cluster.wait_for_leader(Duration::from_secs(30));
    cluster.insert(&old, 1, "x");

    cluster.mark("SIGTERM to the leader's daemon");
    let (exited, _) = Cluster::timed(|| cluster.stop_node(&old, Duration::from_secs(60)));
    assert!(exited, "the daemon exits after stopping PostgreSQL");
    assert!(
        cluster.node(&old).postmaster_pid().is_none_or(|p| !palisade_test_support::pid_alive(p)),
        "PostgreSQL was stopped"
    );
    assert!(cluster.node(&old).log().contains("Leader key released"));
    // Well within the 60 s ttl: the lock was released, not left to expire.
    let (new, took) = Cluster::timed(|| cluster.wait_for_new_leader(&old, Duration::from_secs(30)));
    assert!(took < Duration::from_secs(30));
    cluster.wait_sql(&new, "SELECT v FROM t WHERE id = 1", "x", Duration::from_secs(10));
}

fn losing_the_dcs_demotes_the_leader_and_the_cluster_recovers(dcs: DcsBackend) {
    let spec = ClusterSpec { dcs, ttl: 6, loop_wait: 1, retry_timeout: 2, ..ClusterSpec::default() };
    let mut cluster = Cluster::start("lostdcs", spec);
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    cluster.insert(&leader, 1, "before");

    cluster.mark("the DCS stops");
    cluster.allow_errors(EXPECTED_ERRORS);
    cluster.dcs.stop();
    // Within ttl the leader stops accepting writes (failsafe mode is off).
    let demoted = palisade_test_support::wait_until(Duration::from_secs(6), || {
        cluster.node(&leader).sql("SELECT pg_is_in_recovery()").as_deref() != Ok("f")
    });
    assert!(demoted, "the leader still accepts writes after ttl without a DCS:\n{}", cluster.logs());
    assert!(cluster.node(&leader).log().contains("demoted self because DCS is not accessible and I was a leader"));
    // Nobody else promotes without the DCS.
    std::thread::sleep(Duration::from_secs(2));
    for n in &cluster.nodes {
        assert_ne!(n.sql("SELECT pg_is_in_recovery()").as_deref(), Ok("f"), "{} is a primary without a DCS", n.name);
    }

    cluster.mark("the DCS is back");
    cluster.dcs.start_again();
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    cluster.insert(&leader, 2, "after");
    cluster.wait_streaming(&leader, 2, Duration::from_secs(60));
    for r in replicas_of(&cluster, &leader) {
        cluster.wait_sql(&r, "SELECT count(*) FROM t", "2", Duration::from_secs(30));
    }
    // Exactly one leader afterwards.
    let primaries = cluster.nodes.iter().filter(|n| n.sql("SELECT pg_is_in_recovery()").as_deref() == Ok("f")).count();
    assert_eq!(primaries, 1);
}

/// The DCS restarts quickly (well within retry_timeout and the ttl, so
/// the leader's session survives): no failover, no demotion, the same
/// timeline.
fn a_dcs_restart_the_sessions_survive_changes_nothing(dcs: DcsBackend) {
    let spec = ClusterSpec { dcs, ttl: 30, loop_wait: 2, retry_timeout: 10, ..ClusterSpec::default() };
    let mut cluster = Cluster::start("dcsrestart", spec);
    cluster.allow_errors(EXPECTED_ERRORS);
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    cluster.insert(&leader, 1, "before");
    cluster.assert_dcs_restart_keeps_the_leader(Duration::from_secs(2), Duration::from_secs(10));
    cluster.insert(&leader, 2, "after");
    for r in replicas_of(&cluster, &leader) {
        cluster.wait_sql(&r, "SELECT count(*) FROM t", "2", Duration::from_secs(30));
    }
}

fn garbage_in_the_dcs_is_logged_and_skipped(dcs: DcsBackend) {
    let cluster = Cluster::start("garbage", ClusterSpec { dcs, ..ClusterSpec::default() });
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    cluster.mark("garbage written into the DCS");
    cluster.write_key("members/intruder", b"{this is not json");
    cluster.write_key("members/listy", b"[1, 2, 3]");
    cluster.write_key("history", b"not a history");
    cluster.write_key("config", b"\xff\xfe garbage");
    std::thread::sleep(Duration::from_secs(4));

    for n in &cluster.nodes {
        let log = n.log();
        assert!(log.contains("ignoring the value of DCS key 'members/intruder'"), "{}:\n{log}", n.name);
        assert!(log.contains("ignoring the value of DCS key 'members/listy'"), "{}:\n{log}", n.name);
        // Logged once, not every cycle.
        assert_eq!(log.matches("ignoring the value of DCS key 'members/intruder'").count(), 1, "{}", n.name);
    }
    // Everybody is still up, the leader kept its lock and restored the config.
    let mut cluster = cluster;
    for i in 0..cluster.nodes.len() {
        assert!(cluster.nodes[i].daemon_running(), "{} died", cluster.nodes[i].name);
    }
    assert_eq!(cluster.leader().as_deref(), Some(leader.as_str()));
    let config = palisade_test_support::wait_for("the leader to rewrite config", Duration::from_secs(30), || {
        cluster.read_json("config").filter(|c| c["ttl"] == 5)
    });
    assert_eq!(config["ttl"], 5, "the leader rewrote the dynamic configuration");
    cluster.insert(&leader, 1, "still works");
    for r in replicas_of(&cluster, &leader) {
        cluster.wait_sql(&r, "SELECT v FROM t WHERE id = 1", "still works", Duration::from_secs(30));
    }
}

#[test]
fn a_crashed_daemon_leaves_postgres_running_and_the_next_one_adopts_it() {
    let spec = ClusterSpec { ttl: 30, loop_wait: 2, retry_timeout: 5, ..ClusterSpec::default() };
    let mut cluster = Cluster::start("adopt", spec);
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let postmaster = cluster.node(&leader).postmaster_pid().unwrap();

    cluster.mark("kill -9 of the leader's daemon only");
    cluster.kill9(&leader, false);
    std::thread::sleep(Duration::from_secs(2));
    assert!(palisade_test_support::pid_alive(postmaster), "PostgreSQL must outlive its daemon");
    cluster.insert(&leader, 1, "written while the daemon is down");

    let i = cluster.index(&leader);
    cluster.start_node(i);
    palisade_test_support::wait_for("the restarted daemon to act as leader", Duration::from_secs(30), || {
        let log = cluster.node(&leader).log_after("kill -9 of the leader's daemon only");
        log.contains(&format!("no action. I am ({leader}), the leader with the lock")).then_some(())
    });
    assert_eq!(cluster.node(&leader).postmaster_pid(), Some(postmaster), "the same postmaster, adopted");
    assert_eq!(cluster.leader().as_deref(), Some(leader.as_str()));
}

/// ZooKeeper restarts and the leader's session does not survive it (the
/// session-expiry half of "ZooKeeper restarted while the cluster runs";
/// the other half is `a_dcs_restart_the_sessions_survive_changes_nothing`).
/// ZooKeeper resets every session's timer when it starts, so a session
/// expires across a restart only when its client does not come back
/// within the session timeout: the leader loses ZooKeeper, demotes
/// itself, and its daemon is frozen (SIGSTOP) until ZooKeeper, back, has
/// expired its session. Then exactly one new leader, the others stream
/// from it, the old leader rejoins on a new session, and at no sampled
/// moment do two nodes accept writes.
#[test]
fn zookeeper_restart_expiring_the_leaders_session_leaves_one_leader() {
    let ttl = 10;
    let spec = ClusterSpec {
        dcs: palisade_tests::dcs::ZOOKEEPER,
        ttl,
        loop_wait: 1,
        retry_timeout: 3,
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start("zkexpiry", spec);
    cluster.allow_errors(EXPECTED_ERRORS);
    let old = cluster.wait_for_leader(Duration::from_secs(30));
    cluster.insert(&old, 1, "before");
    for r in replicas_of(&cluster, &old) {
        cluster.wait_sql(&r, "SELECT count(*) FROM t", "1", Duration::from_secs(30));
    }
    let leader_path = cluster.key("leader");
    let member_path = cluster.key(&format!("members/{old}"));
    let session = cluster.zookeeper().znode(&leader_path).expect("the leader znode").ephemeral_owner;
    assert_ne!(session, 0, "the leader znode is ephemeral");
    assert_eq!(cluster.zookeeper().znode(&member_path).map(|n| n.ephemeral_owner), Some(session));
    let expiring = format!("Expiring session 0x{session:x},");
    let watch = cluster.watch_primaries();

    cluster.mark("ZooKeeper stops");
    cluster.dcs.stop();
    // Without ZooKeeper the leader demotes itself (failsafe mode is off).
    let demoted = palisade_test_support::wait_until(Duration::from_secs(u64::from(ttl) + 20), || {
        cluster.node(&old).log_after("ZooKeeper stops").contains("demoted self because DCS is not accessible")
            && cluster.node(&old).sql("SELECT pg_is_in_recovery()").as_deref() != Ok("f")
    });
    assert!(demoted, "{old} still accepts writes without ZooKeeper:\n{}", cluster.logs());
    // Freeze it once the demotion is over (PostgreSQL back as a standby, a
    // later cycle failing on the DCS), not in the middle of starting
    // PostgreSQL, whose waits would time out across the freeze.
    let settled = palisade_test_support::wait_until(Duration::from_secs(60), || {
        let log = cluster.node(&old).log_after("ZooKeeper stops");
        log.split_once("demoted self because DCS is not accessible")
            .is_some_and(|(_, after)| after.contains("Error communicating with DCS"))
            && cluster.node(&old).sql("SELECT pg_is_in_recovery()").as_deref() == Ok("t")
    });
    assert!(settled, "{old} did not settle as a standby without ZooKeeper:\n{}", cluster.node(&old).log());
    cluster.mark("the old leader's daemon freezes");
    cluster.freeze_daemon(&old);
    cluster.mark("ZooKeeper starts again");
    cluster.dcs.start_again();

    // ZooKeeper expires the frozen daemon's session about ttl after it is
    // back: the leader and member znodes go with it, and a replica takes over.
    let new = cluster.wait_for_new_leader(&old, Duration::from_secs(90));
    let zk_log = cluster.zookeeper().server().log();
    assert!(zk_log.contains(&expiring), "ZooKeeper did not expire session {session:x}:\n{zk_log}");
    let leader = cluster.zookeeper().znode(&leader_path).expect("the new leader znode");
    assert_eq!(leader.value, new.as_bytes());
    assert_ne!(leader.ephemeral_owner, session);
    assert_eq!(cluster.zookeeper().znode(&member_path), None, "{old}'s member znode went with its session");

    cluster.mark("the old leader's daemon resumes");
    cluster.thaw_daemon(&old);
    // It finds its session expired, opens a new one, publishes itself
    // again and follows the new leader.
    let member = palisade_test_support::wait_for("the old leader's member znode", Duration::from_secs(60), || {
        cluster.zookeeper().znode(&member_path)
    });
    assert_ne!(member.ephemeral_owner, session, "a new session owns {old}'s member znode");
    assert_ne!(member.ephemeral_owner, 0);
    let streaming = cluster.wait_streaming(&new, 2, Duration::from_secs(90));
    assert!(streaming.contains(&old), "{old} does not stream from {new}: {streaming:?}");
    cluster.insert(&new, 2, "after");
    for r in replicas_of(&cluster, &new) {
        cluster.wait_sql(&r, "SELECT count(*) FROM t", "2", Duration::from_secs(30));
    }
    // Its daemon says so: ZooKeeper refused the old session as expired
    // (when the plugin, finding its znodes not renewed for ttl, tries to
    // close it), or the client gave it up first; and the new session is
    // the one owning the member znode.
    let resumed = cluster.node(&old).log_after("the old leader's daemon resumes");
    let gave_up = format!("ZooKeeper session {session:x} is Expired");
    assert!(
        resumed.contains("due to session expired") || resumed.contains(&gave_up),
        "{old} did not find its session expired:\n{resumed}"
    );
    let opened = format!("ZooKeeper session {:x} on", member.ephemeral_owner);
    assert!(resumed.contains(&opened), "{old} did not open session {:x}:\n{resumed}", member.ephemeral_owner);

    // Exactly one leader, and never two primaries at once.
    let samples = watch.finish();
    assert_eq!(cluster.leader().as_deref(), Some(new.as_str()));
    let primaries: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.sql("SELECT pg_is_in_recovery()").as_deref() == Ok("f"))
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(primaries, vec![new.clone()]);
    assert_eq!(cluster.node(&old).sql("SELECT pg_is_in_recovery()").as_deref(), Ok("t"));
    let two: Vec<&Vec<String>> = samples.iter().filter(|s| s.len() > 1).collect();
    assert!(two.is_empty(), "two primaries at once: {two:?}\n{}", cluster.logs());
    assert!(samples.iter().any(|s| *s == vec![old.clone()]), "the sampler saw {old} as the primary");
    assert!(samples.iter().any(|s| *s == vec![new.clone()]), "the sampler saw {new} as the primary");
}
