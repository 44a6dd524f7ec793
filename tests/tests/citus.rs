//! A Citus cluster on real processes (etcd3, PostgreSQL 15 with the Citus
//! TEST DOUBLE, see `palisade_tests::citus_double`): a coordinator group
//! (0) and two worker groups (1, 2) of two nodes each, one scope.
//!
//! What it shows, on one cluster shared by the steps (six PostgreSQL
//! servers take a while to start):
//! - the Citus default: each group bootstrapped in quorum synchronous mode;
//! - `pg_dist_node` on the coordinator's primary names each worker group's
//!   primary, at start, after a switchover and after a kill -9 failover of
//!   a worker's primary;
//! - a worker switchover goes on while the coordinator is down, and the
//!   coordinator's `pg_dist_node` catches up once it runs again;
//! - during the worker switchover, a client running "distributed
//!   transactions" through the coordinator (the double's
//!   `citus_test_double_distributed_write`) sees no error, only waits: the
//!   coordinator held the worker's metadata lock between the worker's
//!   `before_demote` and `after_promote` (the double recorded the
//!   `-demoted` row update).
//!
//! A second, smaller cluster mixes Patroni 4.1 and palisade nodes (both
//! groups of two, one node of each kind) and shows that their `POST /citus`
//! events work both ways.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_test_support::{target_dir, wait_for};
use palisade_tests::citus_double::{distributed_write_sql, CitusDoubleTree};
use palisade_tests::cluster::{Cluster, ClusterSpec, SUPERUSER_PASSWORD};

/// `citus.database` of every node: not `postgres`, so the plugin creates it.
const CITUS_DB: &str = "citus";
const MPP_PLUGIN: &str = "libpalisade_mpp_citus.so";

/// Nodes 1-2 form the coordinator group, 3-4 worker group 1, 5-6 group 2.
fn group_of(i: usize) -> usize {
    i / 2
}

/// psql as the superuser against `127.0.0.1:port`, database `db`.
fn psql_db(port: u16, db: &str, query: &str) -> Result<String, String> {
    palisade_tests::cluster::psql_in(port, db, &[], query)
}

/// The leader key of `group`.
fn group_leader(c: &Cluster, group: usize) -> Option<String> {
    let v = c.read_key(&format!("{group}/leader"))?;
    Some(String::from_utf8_lossy(&v).into_owned()).filter(|s| !s.is_empty())
}

/// Wait until `group` has a leader other than `not` whose PostgreSQL
/// accepts writes.
fn wait_group_primary(c: &Cluster, group: usize, not: Option<&str>, timeout: Duration) -> String {
    wait_for(&format!("a primary in group {group} (not {not:?})"), timeout, || {
        let leader = group_leader(c, group).filter(|l| Some(l.as_str()) != not)?;
        (c.node(&leader).sql("SELECT pg_is_in_recovery()").ok()? == "f").then_some(leader)
    })
}

/// `host:port` of the primary row of `group` in the coordinator's
/// `pg_dist_node`.
fn registered_primary(coordinator_port: u16, group: usize) -> Option<String> {
    psql_db(
        coordinator_port,
        CITUS_DB,
        &format!(
            "SELECT nodename || ':' || nodeport FROM pg_dist_node WHERE groupid = {group} AND noderole = 'primary'"
        ),
    )
    .ok()
    .filter(|s| !s.is_empty())
}

fn address(c: &Cluster, name: &str) -> String {
    format!("127.0.0.1:{}", c.node(name).pg_port)
}

/// Wait until the coordinator's `pg_dist_node` names `primary` as the
/// primary of `group`.
fn wait_registered(c: &Cluster, coordinator: &str, group: usize, primary: &str, timeout: Duration) {
    let want = address(c, primary);
    let port = c.node(coordinator).pg_port;
    let ok = palisade_test_support::wait_until(timeout, || registered_primary(port, group).as_deref() == Some(&want));
    assert!(
        ok,
        "pg_dist_node does not name {primary} ({want}) as the primary of group {group}: {:?}\n{:?}",
        registered_primary(port, group),
        psql_db(port, CITUS_DB, "SELECT * FROM pg_dist_node ORDER BY nodeid")
    );
}

/// One "distributed transaction" of the client, as the coordinator runs it.
struct Write {
    id: u32,
    took: Duration,
    result: Result<String, String>,
}

/// A client that writes into worker group 1 through the coordinator until
/// told to stop.
fn start_client(coordinator_port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Write>> {
    std::thread::spawn(move || {
        let mut done = Vec::new();
        let mut id = 0;
        while !stop.load(Ordering::Relaxed) {
            id += 1;
            let started = Instant::now();
            let statement = distributed_write_sql(
                1,
                &format!("INSERT INTO dist_t VALUES ({id})"),
                &format!("user=postgres password={SUPERUSER_PASSWORD} dbname=postgres"),
            );
            let result = psql_db(coordinator_port, CITUS_DB, &statement);
            done.push(Write { id, took: started.elapsed(), result });
        }
        done
    })
}

/// A cluster of `spec` whose nodes all run the PostgreSQL tree with the
/// double, with the MPP plugin installed next to the other plugins.
fn prepare(label: &str, spec: ClusterSpec, tree: &CitusDoubleTree) -> Cluster {
    let plugin = target_dir().join(MPP_PLUGIN);
    assert!(plugin.exists(), "{} is missing: run `cargo build -p palisade-mpp-citus` first", plugin.display());
    let c = Cluster::prepare(label, spec);
    let real_bin = palisade_test_support::pg_bin_dir();
    for n in &c.nodes {
        let text = std::fs::read_to_string(&n.config).unwrap();
        let text = text.replace(
            &format!("bin_dir: {}\n", real_bin.display()),
            &format!("bin_dir: {}\n", tree.bin_dir().display()),
        );
        assert!(text.contains(&tree.bin_dir().display().to_string()), "bin_dir not replaced in {}", n.config.display());
        std::fs::write(&n.config, text).unwrap();
    }
    std::fs::copy(&plugin, c.bin().join("../lib/palisade/plugins").join(MPP_PLUGIN)).unwrap();
    c
}

/// How many times the coordinator moved a primary row to `<host>-demoted`
/// (a worker's `before_demote` that paused its group), as the double
/// recorded it on the coordinator's primary `port`.
fn demoted_updates(port: u16) -> usize {
    psql_db(
        port,
        CITUS_DB,
        "SELECT count(*) FROM citus_test_double_calls WHERE func = 'citus_update_node' \
         AND args->>'new_node_name' LIKE '%-demoted'",
    )
    .unwrap()
    .parse()
    .unwrap()
}

/// Switch `group` over from `leader` to `candidate`, once the candidate
/// streams and the group's `sync` key names it (quorum synchronous mode,
/// the Citus default, accepts no other candidate). Right after a
/// switchover the key still names the former primary, which is only then
/// restarting as a replica: a leader that looks again before it streams
/// drops it from the quorum, and refuses it as a candidate.
fn switchover(c: &Cluster, group: usize, leader: &str, candidate: &str) {
    wait_for(&format!("{candidate} streaming, as {leader} sees it"), Duration::from_secs(60), || {
        let resp = c.node(leader).call("GET", "/cluster", None);
        let v: serde_json::Value = serde_json::from_str(&resp.body).ok()?;
        let members = v["members"].as_array()?;
        members.iter().any(|m| m["name"] == candidate && m["state"] == "streaming").then_some(())
    });
    wait_for(&format!("{candidate} in the sync key of group {group}"), Duration::from_secs(60), || {
        let sync = c.read_json(&format!("{group}/sync"))?;
        let standbys = sync["sync_standby"].as_str()?.to_string();
        (sync["leader"] == leader && standbys.split(',').any(|s| s == candidate)).then_some(())
    });
    let body = format!(r#"{{"leader": "{leader}", "candidate": "{candidate}"}}"#);
    let resp = c.node(leader).call("POST", "/switchover", Some(&body));
    assert_eq!(resp.status, 200, "switchover {leader} -> {candidate}: {}", resp.body);
}

#[test]
fn citus_groups_keep_pg_dist_node_current_and_worker_switchover_only_makes_clients_wait() {
    let tree = CitusDoubleTree::install();
    let spec = ClusterSpec {
        nodes: 6,
        // The coordinator keeps a worker's metadata lock for at most the
        // worker's ttl: room for a switchover on a busy machine.
        ttl: 15,
        loop_wait: 1,
        retry_timeout: 3,
        node_extra: |i| format!("citus:\n  group: {}\n  database: {CITUS_DB}\n", group_of(i)),
        // A failover of a worker primary: the coordinator cannot reach it
        // meanwhile (Patroni logs these too).
        allowed_errors: vec!["Exception when working with pg_dist_node", "Exception when executing query"],
        ..ClusterSpec::default()
    };
    let mut c = prepare("citus", spec, &tree);
    // Each group bootstraps on its own (its own initialize key).
    for i in [0, 2, 4] {
        c.start_node(i);
    }
    let coordinator = wait_group_primary(&c, 0, None, Duration::from_secs(120));
    let w1 = wait_group_primary(&c, 1, None, Duration::from_secs(120));
    let w2 = wait_group_primary(&c, 2, None, Duration::from_secs(120));
    for i in [1, 3, 5] {
        c.start_node(i);
    }
    for (group, leader) in [(0, &coordinator), (1, &w1), (2, &w2)] {
        c.wait_streaming(leader, 1, Duration::from_secs(120));
        let config = c.read_json(&format!("{group}/config")).expect("config key");
        assert_eq!(config["synchronous_mode"], "quorum", "group {group}: the Citus default");
    }
    let coord_port = c.node(&coordinator).pg_port;

    // The coordinator registered itself and both workers' primaries.
    wait_registered(&c, &coordinator, 0, &coordinator, Duration::from_secs(60));
    wait_registered(&c, &coordinator, 1, &w1, Duration::from_secs(60));
    wait_registered(&c, &coordinator, 2, &w2, Duration::from_secs(60));
    // Workers have the extension too (the plugin's bootstrap on every group).
    let ext = psql_db(c.node(&w1).pg_port, CITUS_DB, "SELECT extname FROM pg_extension WHERE extname = 'citus'");
    assert_eq!(ext.as_deref(), Ok("citus"), "worker group 1 primary");

    // --- worker switchover with a client writing through the coordinator
    psql_db(coord_port, CITUS_DB, "CREATE EXTENSION IF NOT EXISTS dblink").unwrap();
    c.node(&w1).sql("CREATE TABLE dist_t (id int PRIMARY KEY)").unwrap();
    let candidate = c.nodes.iter().map(|n| n.name.clone()).find(|n| group_of(c.index(n)) == 1 && *n != w1).unwrap();
    c.wait_streaming(&w1, 1, Duration::from_secs(60));
    let stop = Arc::new(AtomicBool::new(false));
    let client = start_client(coord_port, Arc::clone(&stop));
    // Some writes before the switchover.
    std::thread::sleep(Duration::from_secs(2));
    c.mark("worker switchover");
    switchover(&c, 1, &w1, &candidate);
    let new_w1 = wait_group_primary(&c, 1, Some(&w1), Duration::from_secs(60));
    assert_eq!(new_w1, candidate);
    wait_registered(&c, &coordinator, 1, &new_w1, Duration::from_secs(30));
    // Some writes after it.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let writes = client.join().unwrap();

    let failed: Vec<String> =
        writes.iter().filter_map(|w| w.result.as_ref().err().map(|e| format!("write {}: {e}", w.id))).collect();
    assert!(failed.is_empty(), "the client saw errors during the switchover:\n{}", failed.join("\n"));
    let to_new = writes.iter().filter(|w| w.result.as_deref() == Ok(address(&c, &new_w1).as_str())).count();
    let to_old = writes.iter().filter(|w| w.result.as_deref() == Ok(address(&c, &w1).as_str())).count();
    assert!(to_old > 0 && to_new > 0, "writes went to the old ({to_old}) and the new ({to_new}) primary");
    // Every write is on the new primary (those before the switchover came
    // over with the WAL).
    let count = c.node(&new_w1).sql("SELECT count(*) FROM dist_t").unwrap();
    assert_eq!(count, writes.len().to_string(), "rows on the new primary of group 1");
    // The coordinator held the metadata lock: the double recorded the
    // primary row moved to `<host>-demoted` (before_demote), then to the
    // new primary, in the transaction the waiting writes queued behind.
    assert_ne!(
        demoted_updates(coord_port),
        0,
        "no citus_update_node to a -demoted name: the switchover did not pause clients"
    );
    let longest = writes.iter().map(|w| w.took).max().unwrap_or_default();
    eprintln!("{} writes through the coordinator during the switchover, the longest waited {longest:?}", writes.len());

    // --- kill -9 of worker group 2's primary: failover, then pg_dist_node
    c.mark("worker 2 primary killed");
    c.allow_errors(&["Request to Citus coordinator leader"]);
    c.kill9(&w2, true);
    let new_w2 = wait_group_primary(&c, 2, Some(&w2), Duration::from_secs(90));
    wait_registered(&c, &coordinator, 2, &new_w2, Duration::from_secs(60));
    // Group 1 is still registered where it is.
    assert_eq!(registered_primary(coord_port, 1), Some(address(&c, &new_w1)));

    // --- a worker switchover while the coordinator is down: the worker
    // goes on without it (its events fail or find no coordinator leader),
    // and the coordinator catches up once it runs again.
    c.mark("coordinator down");
    let coordinator_replica =
        c.nodes.iter().map(|n| n.name.clone()).find(|n| group_of(c.index(n)) == 0 && *n != coordinator).unwrap();
    c.kill9(&coordinator, true);
    c.kill9(&coordinator_replica, true);
    switchover(&c, 1, &new_w1, &w1);
    assert_eq!(wait_group_primary(&c, 1, Some(&new_w1), Duration::from_secs(60)), w1);
    c.mark("coordinator back");
    c.start_node(c.index(&coordinator));
    c.start_node(c.index(&coordinator_replica));
    let coordinator = wait_group_primary(&c, 0, None, Duration::from_secs(120));
    wait_registered(&c, &coordinator, 1, &w1, Duration::from_secs(60));
    wait_registered(&c, &coordinator, 2, &new_w2, Duration::from_secs(60));
}

/// Patroni 4.1 and palisade nodes in one Citus cluster speak the same
/// `POST /citus`: a Patroni worker's switchover pauses its group on a
/// palisade coordinator, and a palisade worker's on a Patroni coordinator;
/// each coordinator keeps `pg_dist_node` naming the worker's primary.
/// node1 (palisade) and node2 (Patroni) form the coordinator group, node3
/// (Patroni) and node4 (palisade) worker group 1.
#[test]
fn patroni_and_palisade_nodes_share_a_citus_cluster() {
    let tree = CitusDoubleTree::install();
    let spec = ClusterSpec {
        nodes: 4,
        node_extra: |i| format!("citus:\n  group: {}\n  database: {CITUS_DB}\n", group_of(i)),
        allowed_errors: vec!["Exception when working with pg_dist_node", "Exception when executing query"],
        ..ClusterSpec::default().with_patroni_node2()
    };
    let spec = ClusterSpec { patroni_nodes: vec![1, 2], ..spec };
    let mut c = prepare("citus-mixed", spec, &tree);
    c.start_node(0);
    c.start_node(2);
    assert_eq!(wait_group_primary(&c, 0, None, Duration::from_secs(120)), "node1");
    assert_eq!(wait_group_primary(&c, 1, None, Duration::from_secs(120)), "node3");
    c.start_node(1);
    c.start_node(3);
    c.wait_streaming("node1", 1, Duration::from_secs(120));
    c.wait_streaming("node3", 1, Duration::from_secs(120));
    // palisade's coordinator registers Patroni's worker primary.
    wait_registered(&c, "node1", 1, "node3", Duration::from_secs(60));

    // A Patroni worker switches over through a palisade coordinator.
    let before = demoted_updates(c.node("node1").pg_port);
    switchover(&c, 1, "node3", "node4");
    assert_eq!(wait_group_primary(&c, 1, Some("node3"), Duration::from_secs(90)), "node4");
    wait_registered(&c, "node1", 1, "node4", Duration::from_secs(60));
    assert!(
        demoted_updates(c.node("node1").pg_port) > before,
        "Patroni's before_demote did not pause the group on the palisade coordinator"
    );

    // The coordinator moves to Patroni; a palisade worker switches over
    // through it.
    switchover(&c, 0, "node1", "node2");
    assert_eq!(wait_group_primary(&c, 0, Some("node1"), Duration::from_secs(90)), "node2");
    wait_registered(&c, "node2", 1, "node4", Duration::from_secs(60));
    let before = demoted_updates(c.node("node2").pg_port);
    switchover(&c, 1, "node4", "node3");
    assert_eq!(wait_group_primary(&c, 1, Some("node4"), Duration::from_secs(90)), "node3");
    wait_registered(&c, "node2", 1, "node3", Duration::from_secs(60));
    assert!(
        demoted_updates(c.node("node2").pg_port) > before,
        "palisade's before_demote did not pause the group on the Patroni coordinator"
    );
}
