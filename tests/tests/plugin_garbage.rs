//! Issue 12, "Plugin results": the real `palisade` daemon with a DCS plugin
//! whose answers are garbage (the test plugin `tests/plugins/garbage`,
//! staged as the `etcd3` plugin of a one-node cluster). For each mode the
//! daemon runs a while, then the plugin answers validly again:
//!
//! - the daemon stays up, its REST API answers (`/liveness` 200, `/patroni`
//!   valid JSON), nothing panics, its memory stays under a generous cap;
//! - it logs what was wrong, naming the key and the problem, once per
//!   problem (not once per cycle), and no log line runs away;
//! - it never becomes a primary on garbage;
//! - once the plugin answers validly, the node bootstraps and leads.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use palisade_test_support::{target_dir, wait_for, Staging};
use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::dcs::{DcsBackend, TestDcs};

/// How long each garbage mode runs (about 15 cycles at `loop_wait` 1).
const PHASE: Duration = Duration::from_secs(15);
/// The daemon's resident memory may not pass this (it is about 10 MiB on a
/// sane DCS; a huge snapshot is parsed a few times over).
const RSS_CAP_KIB: u64 = 1024 * 1024;
/// No line of the daemon's log may be longer (a plugin's error message of
/// a megabyte must not be written whole, every cycle).
const LINE_CAP: usize = 64 << 10;

/// The "store" of the garbage plugin: it lives inside the daemon (an
/// in-memory store in the plugin), so the test only holds the mode file
/// the plugin reads at every call. `put("mode", ...)` writes it; stopping
/// the store means mode `errors`, starting it again `valid`.
struct ModeFile {
    staging: Staging,
    path: PathBuf,
}

impl ModeFile {
    fn set(&self, mode: &str) {
        self.staging.write("mode", mode, 0o644);
    }
}

impl TestDcs for ModeFile {
    fn yaml_section(&self) -> String {
        // Never contacted: the plugin standing in as etcd3 ignores it.
        "etcd3:\n  hosts: 127.0.0.1:2379\n".into()
    }
    fn dcs_url(&self) -> String {
        "etcd3://127.0.0.1:2379".into()
    }
    fn get(&self, _key: &str) -> Option<Vec<u8>> {
        None
    }
    fn list(&self, _prefix: &str) -> Vec<(String, Vec<u8>)> {
        Vec::new()
    }
    fn put(&self, key: &str, value: &[u8]) {
        assert_eq!(key, "mode", "the garbage plugin's store only takes its mode");
        self.set(std::str::from_utf8(value).unwrap());
    }
    fn stop(&mut self) {
        self.set("errors");
    }
    fn start_again(&mut self) {
        self.set("valid");
    }
    fn freeze(&self) {
        self.set("errors");
    }
    fn thaw(&self) {
        self.set("valid");
    }
    fn node_env(&self) -> Vec<(String, String)> {
        vec![
            ("PALISADE_TEST_GARBAGE_AS".into(), "etcd3".into()),
            ("PALISADE_TEST_GARBAGE_MODE_FILE".into(), self.path.display().to_string()),
        ]
    }
}

const GARBAGE: DcsBackend = DcsBackend {
    name: "garbage",
    plugin_file: "libpalisade_dcs_garbage.so",
    patroni_extra: "",
    start: |label| {
        let staging = Staging::new(&format!("{label}-mode"));
        let path = staging.path().join("mode");
        let dcs = ModeFile { staging, path };
        dcs.set("valid");
        Box::new(dcs)
    },
};

fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What one garbage mode must show.
struct Expect {
    mode: &'static str,
    /// Lead on valid answers first, then switch to `mode`.
    lead_first: bool,
    /// The cluster's ttl: `/liveness` fails a primary whose cycle took
    /// longer, and a debug build takes seconds for a snapshot of 100,000
    /// members (tests do not assert on speed).
    ttl: u32,
    /// Whether the node may lead in this mode (only when its lock in the
    /// plugin's store is real).
    may_lead: bool,
    /// Substrings the log must hold after the phase.
    logged: &'static [&'static str],
    /// Substrings that must be logged exactly once, however many cycles.
    once: &'static [&'static str],
    /// A line every cycle logs in this mode: it shows that enough cycles
    /// ran for `once` to mean something, and that the loop did not spin.
    per_cycle: Option<&'static str>,
    /// ERROR lines this mode causes.
    errors: &'static [&'static str],
}

/// Start a one-node cluster on the garbage plugin in `e.mode`, watch it for
/// [`PHASE`], then switch the plugin to `valid` and wait for the node to
/// lead.
fn run(label: &str, e: Expect) {
    let spec =
        ClusterSpec { dcs: GARBAGE, nodes: 1, ttl: e.ttl, allowed_errors: e.errors.to_vec(), ..ClusterSpec::default() };
    let mut cluster = Cluster::prepare(label, spec);
    // The plugin answers to the configuration's `etcd3` section.
    let plugins = cluster.dir().join("lib/palisade/plugins");
    std::fs::copy(target_dir().join("libpalisade_dcs_garbage.so"), plugins.join("libpalisade_dcs_etcd3.so")).unwrap();
    cluster.dcs.put("mode", if e.lead_first { b"valid".as_slice() } else { e.mode.as_bytes() });
    cluster.start_node(0);
    if e.lead_first {
        wait_leading(&cluster, "valid");
        cluster.mark(&format!("valid -> {}", e.mode));
        cluster.dcs.put("mode", e.mode.as_bytes());
    }
    let started = Instant::now();
    let pid = cluster.nodes[0].daemon_pid().unwrap();
    let (mut max_rss, mut samples, mut leading, mut seen_live) = (0, 0, Vec::new(), false);
    while started.elapsed() < PHASE {
        assert!(cluster.nodes[0].daemon_running(), "{}: the daemon exited:\n{}", e.mode, cluster.logs());
        let node = &cluster.nodes[0];
        max_rss = max_rss.max(rss_kib(pid).unwrap_or(0));
        // The API may not be listening yet right at the start, and
        // `/liveness` says 503 until the first cycle ended.
        if let Ok(live) = node.get("/liveness") {
            seen_live |= live.status == 200;
            assert!(live.status == 200 || !seen_live, "{}: /liveness {} {}", e.mode, live.status, live.body);
            let patroni = node.get("/patroni").unwrap();
            let body: serde_json::Value = serde_json::from_str(&patroni.body)
                .unwrap_or_else(|err| panic!("{}: /patroni is not JSON ({err}): {}", e.mode, patroni.body));
            assert!(body["state"].is_string(), "{}: /patroni without a state: {body}", e.mode);
            samples += 1;
            if body["role"] == "primary" || node.get("/primary").is_ok_and(|r| r.status == 200) {
                leading.push(format!("{:?}: {body}", started.elapsed()));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(samples > 10 && seen_live, "{}: the REST API answered only {samples} times", e.mode);
    assert!(e.may_lead || leading.is_empty(), "{}: primary on garbage: {leading:?}", e.mode);
    assert!(max_rss < RSS_CAP_KIB, "{}: the daemon's RSS reached {max_rss} KiB", e.mode);

    let log = cluster.nodes[0].log();
    assert!(!log.contains("panicked at"), "{}: a panic in the daemon:\n{log}", e.mode);
    if let Some(long) = log.lines().find(|l| l.len() > LINE_CAP) {
        panic!("{}: a log line of {} bytes: {}...", e.mode, long.len(), &long[..200]);
    }
    for text in e.logged {
        assert!(log.contains(text), "{}: nothing logged with '{text}':\n{log}", e.mode);
    }
    if let Some(text) = e.per_cycle {
        // loop_wait is 1 s; a watch answering at once backs off to it.
        let n = log.lines().filter(|l| l.contains(text)).count();
        let most = 3 * PHASE.as_secs() as usize;
        assert!((8..=most).contains(&n), "{}: '{text}' logged {n} times in {PHASE:?}:\n{log}", e.mode);
    }
    for text in e.once {
        let n = log.lines().filter(|l| l.contains(text)).count();
        assert_eq!(n, 1, "{}: '{text}' logged {n} times (once per problem, not per cycle):\n{log}", e.mode);
    }

    // Valid answers again: the node carries on and leads.
    cluster.mark(&format!("{} -> valid", e.mode));
    cluster.dcs.put("mode", b"valid");
    wait_leading(&cluster, &format!("{} -> valid", e.mode));
    assert!(cluster.nodes[0].daemon_running());
    eprintln!("{}: {samples} API samples, RSS at most {max_rss} KiB", e.mode);
}

/// Wait until node1 runs as the primary that holds the lock.
fn wait_leading(cluster: &Cluster, phase: &str) {
    let node = &cluster.nodes[0];
    // Right after garbage, the node may still demote once (its lock ran
    // out while the plugin failed): wait for a primary that stays.
    let leads = || {
        let body = node.get("/patroni").ok()?.json();
        (body["role"] == "primary"
            && body["state"] == "running"
            && node.get("/primary").ok()?.status == 200
            && node.sql("SELECT pg_is_in_recovery()").ok()? == "f")
            .then_some(())
    };
    wait_for(&format!("{phase}: node1 leads"), Duration::from_secs(90), || {
        leads()?;
        std::thread::sleep(Duration::from_secs(3));
        leads()
    });
}

#[test]
fn a_dcs_plugin_failing_every_call_is_logged_and_never_leads() {
    run(
        "garbage-errors",
        Expect {
            mode: "errors",
            lead_first: false,
            ttl: 5,
            may_lead: false,
            logged: &[
                "Error communicating with DCS",
                "garbage plugin panics in get_cluster on purpose",
                "forged line from the garbage plugin",
            ],
            once: &[],
            per_cycle: Some("Error communicating with DCS"),
            errors: &["Error communicating with DCS", "garbage plugin panics", "forged line from the garbage plugin"],
        },
    );
}

#[test]
fn malformed_dcs_plugin_results_are_logged_once_and_never_lead() {
    run(
        "garbage-malformed",
        Expect {
            mode: "malformed",
            lead_first: false,
            ttl: 5,
            may_lead: false,
            logged: &[],
            once: &[
                "dynamic configuration: maximum_lag_on_failover: expected an integer, found a list",
                "dynamic configuration: synchronous_mode: expected on, off or quorum, found a mapping",
                "ignoring the value of DCS key 'members/garbage-a'",
                "ignoring the value of DCS key 'members/garbage-b'",
                "ignoring the value of DCS key 'sync': quorum: -7 is not a count",
                "ignoring the value of DCS key 'history'",
                "ignoring the value of DCS key 'failsafe'",
                "ignoring the value of DCS key 'status': slots: expected a mapping",
            ],
            per_cycle: Some("waiting for leader to bootstrap"),
            errors: &[],
        },
    );
}

#[test]
fn huge_dcs_plugin_results_keep_the_daemon_bounded() {
    run(
        "garbage-huge",
        Expect {
            mode: "huge",
            lead_first: true,
            ttl: 60,
            may_lead: true,
            logged: &["more replication slots this cycle: the last 3 attempts failed"],
            // Every cycle wants a slot per member; the server has 10.
            once: &["Failed to create physical replication slot 'huge_000010'"],
            per_cycle: None,
            errors: &["replication slot", "Error communicating with DCS", "failed to update leader lock"],
        },
    );
}

#[test]
fn mixed_dcs_plugin_results_never_stop_the_daemon() {
    run(
        "garbage-mixed",
        Expect {
            mode: "mixed 12",
            lead_first: false,
            // Its huge answers list 10,000 members.
            ttl: 30,
            may_lead: true,
            logged: &["Error communicating with DCS"],
            once: &[],
            per_cycle: None,
            // Whatever failed at random.
            errors: &[
                "Error communicating with DCS",
                "garbage plugin panics",
                "DCS plugin failed in",
                "DCS is not accessible",
                "did not finish within",
                "replication slot",
                // A promotion cut short by a demotion (the DCS failed right
                // after it) leaves its checkpoint to a server shutting down.
                "Exception during CHECKPOINT",
            ],
        },
    );
}
