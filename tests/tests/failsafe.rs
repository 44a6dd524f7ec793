//! Failsafe mode on real processes: a 3-node cluster with
//! `failsafe_mode: true` loses its etcd in three ways (stopped: refused
//! connections; frozen with SIGSTOP: timeouts; authentication switched on:
//! every request refused). While every member answers `POST /failsafe`,
//! the primary keeps accepting writes for longer than ttl; with one member
//! gone too, it demotes; when etcd is back the cluster is healthy, with the
//! same leader when nobody had to demote. A replica accepts `POST
//! /failsafe` only from the member that was leader, and while etcd is
//! stopped its copy of a permanent physical slot follows the primary's
//! slot through those calls. In a mixed cluster,
//! Patroni replicas accept a palisade primary's calls and the reverse.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use palisade_test_support::wait_until;
use palisade_tests::cluster::{Cluster, ClusterSpec};
use serde_json::{json, Value};

const TTL: u32 = 10;

/// ERROR lines an outage of the DCS legitimately causes.
const EXPECTED_ERRORS: &[&str] =
    &["Error communicating with DCS", "failed to update leader lock", "failed to acquire the leader lock"];

fn spec() -> ClusterSpec {
    ClusterSpec {
        ttl: TTL,
        loop_wait: 1,
        retry_timeout: 2,
        extra_dcs: "    failsafe_mode: true\n".into(),
        allowed_errors: EXPECTED_ERRORS.to_vec(),
        ..ClusterSpec::default()
    }
}

/// Writes acknowledged by a primary, to check none is lost.
struct Writer {
    next: i32,
    acked: Vec<i32>,
}

impl Writer {
    fn insert(&mut self, cluster: &Cluster, node: &str) -> Result<(), String> {
        let id = self.next;
        self.next += 1;
        cluster
            .node(node)
            .sql(&format!("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY); INSERT INTO t VALUES ({id})"))?;
        self.acked.push(id);
        Ok(())
    }

    /// Keep writing to `leader` for longer than ttl: every write must
    /// succeed, and no other member may run as a primary meanwhile.
    fn keep_writing_past_ttl(&mut self, cluster: &Cluster, leader: &str, what: &str) {
        let until = Instant::now() + Duration::from_secs(u64::from(cluster.spec.ttl) + 5);
        while Instant::now() < until {
            if let Err(e) = self.insert(cluster, leader) {
                panic!("{what}: the primary {leader} refused a write: {e}\n{}", cluster.logs());
            }
            for n in cluster.nodes.iter().filter(|n| n.name != leader) {
                assert_ne!(
                    n.sql("SELECT pg_is_in_recovery()").as_deref(),
                    Ok("f"),
                    "{what}: {} is a primary too",
                    n.name
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The `failsafe` key, as stored in the DCS.
fn failsafe_key(cluster: &Cluster) -> Value {
    cluster.read_json("failsafe").unwrap_or(Value::Null)
}

/// Wait until the leader publishes every member in the `failsafe` key.
fn wait_for_topology(cluster: &Cluster) {
    let want: Value = cluster
        .nodes
        .iter()
        .map(|n| (n.name.clone(), json!(format!("http://127.0.0.1:{}/patroni", n.api_port))))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let ok = wait_until(Duration::from_secs(30), || failsafe_key(cluster) == want);
    assert!(ok, "the failsafe key is {} (want {want})", failsafe_key(cluster));
}

/// The permanent physical slot of the first test.
const SLOT: &str = "fsperm";

/// Whether `node`'s copy of [`SLOT`] is at `lsn` or beyond.
fn slot_copy_reached(cluster: &Cluster, node: &str, lsn: &str) -> bool {
    cluster
        .node(node)
        .sql(&format!("SELECT restart_lsn >= '{lsn}'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{SLOT}'"))
        .as_deref()
        == Ok("t")
}

fn replicas(cluster: &Cluster, leader: &str) -> Vec<String> {
    cluster.nodes.iter().map(|n| n.name.clone()).filter(|n| n != leader).collect()
}

fn failsafe_body(name: &str) -> String {
    json!({"name": name, "conn_url": "postgres://127.0.0.1:1/postgres", "api_url": "http://127.0.0.1:1/patroni"})
        .to_string()
}

/// The primary reports failsafe mode as active in `/patroni` and `/metrics`.
fn failsafe_is_active(cluster: &Cluster, leader: &str) -> bool {
    let node = cluster.node(leader);
    let patroni = node.get("/patroni").map(|r| r.json()).unwrap_or(Value::Null);
    let metrics = node.get("/metrics").map(|r| r.body).unwrap_or_default();
    patroni["failsafe_mode_is_active"] == json!(true)
        && metrics.lines().any(|l| l.starts_with("patroni_failsafe_mode_is_active{") && l.ends_with(" 1"))
}

/// etcd is back: the leader is `leader` again, every replica streams from
/// it and has every acknowledged write, and failsafe mode is over.
fn healthy_with(cluster: &Cluster, leader: &str, writer: &mut Writer) {
    let now = cluster.wait_for_leader(Duration::from_secs(60));
    assert_eq!(now, leader, "the leader changed although it never demoted:\n{}", cluster.logs());
    writer.insert(cluster, leader).unwrap();
    cluster.wait_streaming(leader, 2, Duration::from_secs(60));
    let count = writer.acked.len().to_string();
    for r in replicas(cluster, leader) {
        cluster.wait_sql(&r, "SELECT count(*) FROM t", &count, Duration::from_secs(30));
    }
    let over = wait_until(Duration::from_secs(30), || !failsafe_is_active(cluster, leader));
    assert!(over, "failsafe mode still active on {leader} with etcd back");
    // A replica that accepted the leader's last `POST /failsafe` keeps that
    // member as its leader for ttl, even once the DCS answers (Patroni's
    // `Failsafe.update_cluster`, and ours): a switchover started sooner waits
    // for it. Every member must be out of failsafe mode before going on.
    for r in replicas(cluster, leader) {
        let out = wait_until(Duration::from_secs(60), || {
            cluster
                .node(&r)
                .get("/patroni")
                .map(|x| x.json()["failsafe_mode_is_active"] != json!(true))
                .unwrap_or(false)
        });
        assert!(out, "failsafe mode still active on {r} more than a ttl after etcd came back");
    }
}

#[test]
fn failsafe_keeps_the_primary_while_every_member_answers() {
    let spec = ClusterSpec {
        extra_dcs: format!("    failsafe_mode: true\n    slots:\n      {SLOT}:\n        type: physical\n"),
        ..spec()
    };
    let mut cluster = Cluster::start("failsafe", spec);
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    let mut writer = Writer { next: 1, acked: Vec::new() };
    writer.insert(&cluster, &leader).unwrap();
    cluster.wait_streaming(&leader, 2, Duration::from_secs(60));
    wait_for_topology(&cluster);
    let others = replicas(&cluster, &leader);
    let has_slot = format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{SLOT}'");
    for r in &others {
        cluster.wait_sql(r, &has_slot, "1", Duration::from_secs(30));
    }

    // A replica accepts POST /failsafe only from the member that was leader.
    let r = cluster.node(&others[0]).call("POST", "/failsafe", Some(&failsafe_body(&others[1])));
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.contains(&format!("{} is not the leader", others[1])), "{}", r.body);
    let r = cluster.node(&others[0]).call("POST", "/failsafe", Some(&failsafe_body(&leader)));
    assert_eq!((r.status, r.body.as_str()), (200, "Accepted"));
    assert!(r.header("lsn").is_some_and(|l| l.parse::<u64>().is_ok_and(|l| l > 0)), "{:?}", r.headers);
    // And the leader, a primary, accepts nobody.
    let r = cluster.node(&leader).call("POST", "/failsafe", Some(&failsafe_body(&others[0])));
    assert_eq!((r.status, r.body.as_str()), (500, "Running as a leader"));
    let topology = cluster.node(&others[1]).get("/failsafe").unwrap();
    assert_eq!(topology.status, 200);
    assert_eq!(topology.json(), failsafe_key(&cluster));

    // 1. etcd stopped (refused connections), every member reachable.
    cluster.mark("etcd stops; every member is reachable");
    cluster.dcs.stop();
    writer.insert(&cluster, &leader).unwrap();
    // The primary's permanent slot moves (as a consumer would move it):
    // the replicas' copies follow through POST /failsafe alone.
    let moved = cluster
        .node(&leader)
        .sql(&format!("SELECT end_lsn FROM pg_replication_slot_advance('{SLOT}', pg_current_wal_lsn())"))
        .unwrap();
    for r in &others {
        assert!(!slot_copy_reached(&cluster, r, &moved), "{r}'s copy of {SLOT} is at {moved} already");
    }
    writer.keep_writing_past_ttl(&cluster, &leader, "etcd stopped");
    assert!(failsafe_is_active(&cluster, &leader), "failsafe mode is not reported active on {leader}");
    assert!(cluster.node(&leader).log().contains("continue to run as a leader because failsafe mode is enabled"));
    for r in &others {
        let reached = wait_until(Duration::from_secs(10), || slot_copy_reached(&cluster, r, &moved));
        assert!(reached, "{r}'s copy of {SLOT} did not reach {moved} while etcd was stopped:\n{}", cluster.logs());
    }
    cluster.mark("etcd is back");
    cluster.dcs.start_again();
    healthy_with(&cluster, &leader, &mut writer);
    wait_for_topology(&cluster);

    // 2. etcd frozen (SIGSTOP): every request times out.
    cluster.mark("etcd frozen; every member is reachable");
    cluster.dcs.freeze();
    writer.keep_writing_past_ttl(&cluster, &leader, "etcd frozen");
    cluster.mark("etcd thawed");
    cluster.dcs.thaw();
    healthy_with(&cluster, &leader, &mut writer);
    for n in &cluster.nodes {
        let since = n.log_after("etcd stops; every member is reachable");
        assert!(!since.contains("demot"), "{} demoted while every member answered:\n{since}", n.name);
    }
    wait_for_topology(&cluster);

    // 3. etcd stopped and one member gone: the primary demotes.
    cluster.mark("etcd stops and a replica dies");
    cluster.dcs.stop();
    cluster.kill9(&others[1], true);
    let demoted = wait_until(Duration::from_secs(u64::from(TTL)), || {
        cluster.node(&leader).sql("SELECT pg_is_in_recovery()").as_deref() != Ok("f")
    });
    assert!(demoted, "{leader} still accepts writes although {} does not answer:\n{}", others[1], cluster.logs());
    assert!(cluster.node(&leader).log().contains("demoted self because DCS is not accessible and I was a leader"));
    for n in &cluster.nodes {
        assert_ne!(n.sql("SELECT pg_is_in_recovery()").as_deref(), Ok("f"), "{} is a primary without a DCS", n.name);
    }
    cluster.mark("etcd and the replica are back");
    cluster.dcs.start_again();
    let i = cluster.index(&others[1]);
    cluster.start_node(i);
    let leader = cluster.wait_for_leader(Duration::from_secs(90));
    writer.insert(&cluster, &leader).unwrap();
    cluster.wait_streaming(&leader, 2, Duration::from_secs(90));
    let ids: Vec<String> = writer.acked.iter().map(i32::to_string).collect();
    cluster.wait_sql(
        &leader,
        "SELECT string_agg(id::text, ',' ORDER BY id) FROM t",
        &ids.join(","),
        Duration::from_secs(10),
    );
    wait_for_topology(&cluster);

    // 4. etcd refuses every request (authentication switched on behind the
    // members' backs): failsafe mode engages as for any other DCS error.
    cluster.mark("etcd requires authentication");
    cluster.etcd().raw().enable_auth("failsafe-root");
    writer.keep_writing_past_ttl(&cluster, &leader, "etcd refuses unauthenticated requests");
    assert!(failsafe_is_active(&cluster, &leader), "failsafe mode is not reported active on {leader}");
}

/// A mixed cluster (node2 is Patroni 4.1): Patroni's replica accepts the
/// palisade primary's `POST /failsafe`, and palisade's replicas accept
/// Patroni's, so either primary outlives the DCS.
#[test]
fn failsafe_works_across_patroni_and_palisade_members() {
    let spec = spec().with_patroni_node2();
    let mut cluster = Cluster::start("failsafe-mixed", spec);
    let first = cluster.wait_for_leader(Duration::from_secs(90));
    assert_eq!(first, "node1", "palisade bootstraps");
    let mut writer = Writer { next: 1, acked: Vec::new() };
    writer.insert(&cluster, &first).unwrap();

    for leader in ["node1", "node2"] {
        if leader != first {
            cluster.mark("switchover to Patroni's node2");
            let r =
                cluster.node(&first).call("POST", "/switchover", Some(r#"{"leader": "node1", "candidate": "node2"}"#));
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(cluster.wait_for_new_leader(&first, Duration::from_secs(90)), leader);
        }
        cluster.wait_streaming(leader, 2, Duration::from_secs(120));
        wait_for_topology(&cluster);
        cluster.mark(&format!("etcd stops under {leader}"));
        cluster.dcs.stop();
        writer.keep_writing_past_ttl(&cluster, leader, &format!("etcd stopped under {leader}"));
        cluster.mark(&format!("etcd is back under {leader}"));
        cluster.dcs.start_again();
        healthy_with(&cluster, leader, &mut writer);
    }
}
