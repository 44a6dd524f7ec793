//! Synchronous replication loses nothing, on real processes: a writer
//! inserts numbered rows into a 3-node cluster and records every id whose
//! commit the server acknowledged; the primary is killed (kill -9 of the
//! daemon and of the postmaster) again and again at random moments; after
//! every failover the new primary must hold every acknowledged id. Once
//! with `synchronous_mode: on` and strict mode, once in quorum mode with
//! `synchronous_node_count: 2`.
//!
//! The moments come from a seed printed at the start; set
//! `PALISADE_SYNC_INVARIANT_SEED` to replay a run.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use palisade_test_support::{pg_bin_dir, wait_for, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec, SUPERUSER_PASSWORD};

/// Primaries killed in each test.
const KILLS: usize = 10;

/// ERROR lines a killed primary's peers may log: REST calls to it fail, and
/// the DCS call in flight when a lock changes hands.
const EXPECTED_ERRORS: &[&str] = &["Request failed to", "Error communicating with DCS", "failed to update leader lock"];

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn seeded() -> (Self, u64) {
        let seed = match std::env::var("PALISADE_SYNC_INVARIANT_SEED") {
            Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("PALISADE_SYNC_INVARIANT_SEED={s:?} is not a number")),
            Err(_) => {
                let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
                u64::try_from(nanos % u128::from(u64::MAX)).unwrap()
            }
        };
        (Self(seed.max(1)), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A duration between `min` and `max` milliseconds.
    fn millis(&mut self, min: u64, max: u64) -> Duration {
        Duration::from_millis(min + self.next() % (max - min + 1))
    }
}

/// Insert `id` on the server at `port` in its own transaction. `Ok` only
/// when the commit was acknowledged: psql succeeded within five seconds and
/// PostgreSQL did not warn that it stopped waiting for the synchronous
/// standbys (a commit whose wait is cancelled is reported as done, with
/// that warning; it was never promised to survive a failover). A commit
/// still waiting for a standby after five seconds is given up: the client
/// goes away without an answer (statement_timeout does not cover that
/// wait).
fn insert(port: u16, id: u64) -> Result<(), String> {
    let mut child = Command::new(pg_bin_dir().join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-c", &format!("INSERT INTO acked (id) VALUES ({id})")])
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "2")
        .env("PGOPTIONS", "-c statement_timeout=2000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("no answer within 5 s".into());
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    if !status.success() {
        return Err(stderr.trim().to_string());
    }
    if stderr.contains("synchronous replication") || stderr.contains("might not have been replicated") {
        return Err(format!("acknowledged without the standbys: {}", stderr.trim()));
    }
    Ok(())
}

/// The writer thread: numbered inserts on whichever node accepts them.
struct Writer {
    acked: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl Writer {
    fn start(ports: Vec<u16>) -> Self {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let (mut id, mut node) = (0u64, 0usize);
            while !s.load(Ordering::Relaxed) {
                id += 1;
                match insert(ports[node], id) {
                    Ok(()) => a.lock().unwrap().push(id),
                    Err(_) => {
                        // Not the primary (any more), or down: try the next node.
                        node = (node + 1) % ports.len();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            id
        });
        Self { acked, stop, handle: Some(handle) }
    }

    fn acked(&self) -> Vec<u64> {
        self.acked.lock().unwrap().clone()
    }

    /// Stop; the number of ids tried.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().map(|h| h.join().unwrap()).unwrap_or(0)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The ids the table holds on `node`.
fn ids_on(cluster: &Cluster, node: &str) -> Result<BTreeSet<u64>, String> {
    let rows = cluster.node(node).sql("SELECT id FROM acked")?;
    Ok(rows.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// How many standbys `node`'s PostgreSQL waits for now (sync or quorum)
/// and the `sync` key names along with `node`: the smaller of the two.
fn synchronous_standbys(cluster: &Cluster, node: &str) -> usize {
    let in_postgres: usize = cluster
        .node(node)
        .sql("SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let in_key = cluster
        .read_json("sync")
        .filter(|key| key["leader"] == node)
        .and_then(|key| key["sync_standby"].as_str().map(|s| s.split(',').filter(|n| !n.is_empty()).count()))
        .unwrap_or(0);
    in_postgres.min(in_key)
}

/// What one failover showed.
struct Round {
    old: String,
    new: String,
    synchronous: usize,
    acked: usize,
    missing: Vec<u64>,
    took: Duration,
}

/// Kill the primary `KILLS` times while the writer runs; after each
/// failover compare the acknowledged ids with the new primary's table.
fn kill_primaries(label: &str, extra_dcs: &str, wanted_synchronous: usize) {
    let (mut rng, seed) = Rng::seeded();
    eprintln!("{label}: seed {seed} (replay with PALISADE_SYNC_INVARIANT_SEED={seed})");
    let spec = ClusterSpec {
        ttl: 5,
        loop_wait: 1,
        retry_timeout: 2,
        extra_dcs: extra_dcs.to_string(),
        allowed_errors: EXPECTED_ERRORS.to_vec(),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start(label, spec);
    let mut primary = cluster.wait_for_leader(Duration::from_secs(60));
    cluster.node(&primary).sql("CREATE TABLE acked (id bigint PRIMARY KEY)").unwrap();
    for n in &cluster.nodes {
        cluster.wait_sql(&n.name, "SELECT to_regclass('acked') IS NOT NULL", "t", Duration::from_secs(30));
    }
    let writer = Writer::start(cluster.nodes.iter().map(|n| n.pg_port).collect());

    let mut rounds = Vec::new();
    let mut lost_before = BTreeSet::new();
    for round in 1..=KILLS {
        // Every node streams, the primary waits for its synchronous
        // standbys and the `sync` key names them (until then no replica may
        // take over: killing the primary would stop the cluster, rightly),
        // or the time allowed for that runs out (the check at the end
        // reports it); then the writer runs a random while.
        cluster.wait_streaming(&primary, 2, Duration::from_secs(90));
        let _ = wait_until(Duration::from_secs(10), || synchronous_standbys(&cluster, &primary) >= wanted_synchronous);
        let before = writer.acked().len();
        let writing = wait_until(Duration::from_secs(30), || writer.acked().len() > before);
        assert!(writing, "{label}: the writer gets no commit through on {primary}:\n{}", cluster.logs());
        std::thread::sleep(rng.millis(200, 3000));
        let synchronous = synchronous_standbys(&cluster, &primary);

        cluster.mark(&format!("round {round}: kill -9 of {primary}'s daemon and postmaster"));
        let killed_at = Instant::now();
        cluster.kill9(&primary, true);
        let new = cluster.wait_for_new_leader(&primary, Duration::from_secs(90));
        let took = killed_at.elapsed();
        // Everything acknowledged so far was acknowledged before the new
        // primary's table is read.
        let acked = writer.acked();
        let present = wait_for(&format!("the table on {new}"), Duration::from_secs(30), || ids_on(&cluster, &new).ok());
        // Ids lost in an earlier round stay lost: report each loss once.
        let missing: Vec<u64> =
            acked.iter().copied().filter(|id| !present.contains(id) && !lost_before.contains(id)).collect();
        lost_before.extend(missing.iter().copied());
        eprintln!(
            "{label}: round {round}: {primary} -> {new} in {took:?}, {synchronous} synchronous standby(s) at the kill, \
             {} acknowledged, {} newly missing{}",
            acked.len(),
            missing.len(),
            if missing.is_empty() { String::new() } else { format!(": {missing:?}") }
        );
        rounds.push(Round { old: primary.clone(), new: new.clone(), synchronous, acked: acked.len(), missing, took });

        // The killed node comes back as a replica, cloned afresh: its WAL
        // may hold commits nobody acknowledged, which a replica must not
        // keep (pg_rewind is not what this test is about).
        let i = cluster.index(&primary);
        std::fs::remove_dir_all(&cluster.nodes[i].data_dir).unwrap();
        cluster.start_node(i);
        primary = new;
    }
    let tried = writer.finish();
    let acked = rounds.last().map_or(0, |r| r.acked);
    eprintln!("{label}: seed {seed}: {tried} inserts tried, {acked} acknowledged before the last failover");

    let lost: Vec<String> = rounds
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.missing.is_empty())
        .map(|(i, r)| format!("round {}: {} -> {}: lost {:?}", i + 1, r.old, r.new, r.missing))
        .collect();
    assert!(lost.is_empty(), "{label} (seed {seed}): acknowledged commits lost:\n{}", lost.join("\n"));
    let asynchronous: Vec<String> = rounds
        .iter()
        .enumerate()
        .filter(|(_, r)| r.synchronous < wanted_synchronous)
        .map(|(i, r)| format!("round {}: {} had {} synchronous standby(s)", i + 1, r.old, r.synchronous))
        .collect();
    assert!(
        asynchronous.is_empty(),
        "{label} (seed {seed}): the primary did not wait for {wanted_synchronous} standby(s) named in the sync key when \
         it was killed:\n{}",
        asynchronous.join("\n")
    );
    let slowest = rounds.iter().map(|r| r.took).max().unwrap_or_default();
    eprintln!("{label}: {KILLS} failovers, none lost a commit; the slowest took {slowest:?}");
}

#[test]
fn strict_synchronous_mode_loses_no_acknowledged_commit() {
    kill_primaries("syncon", "    synchronous_mode: on\n    synchronous_mode_strict: true\n", 1);
}

#[test]
fn quorum_commit_loses_no_acknowledged_commit() {
    kill_primaries(
        "syncquorum",
        "    synchronous_mode: quorum\n    synchronous_mode_strict: true\n    synchronous_node_count: 2\n",
        2,
    );
}
