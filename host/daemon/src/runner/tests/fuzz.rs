//! Fuzzing of what others write into the DCS (issue 12, "DCS values").
//!
//! A small seeded generator (no crate: [`Rng`] is SplitMix64) makes key
//! values of every kind the snapshot reads: random bytes (invalid UTF-8
//! replaced, as plugins read it), valid Patroni values mutated (fields
//! removed, replaced by values of another type, truncated), wrong-typed
//! JSON, deep nesting, huge numbers, NaN-like strings. Each case goes
//! through what a daemon does with a snapshot:
//! - [`palisade_plugin_api::sdk::dcs::assemble`] (the found keys),
//! - [`palisade_plugin_host::snapshot::cluster_from_snapshot`] (values that
//!   cannot be read are reported by key and skipped),
//! - the dynamic configuration in force ([`RuntimeConfig::new`] from the
//!   `config` key) and its HA settings,
//! - the `GET /cluster` view and the failsafe topology built from it,
//! - [`palisade_ha::decide`] for several local states, answering its
//!   questions with random answers and fuzzed `GET /patroni` bodies.
//!
//! The runner half feeds such snapshots (and plugin errors, huge member
//! lists) to a real [`super::Runner`] through a DCS wrapper.
//!
//! `PALISADE_FUZZ_CASES` (default 3000 for the pure half; the runner
//! half runs one round of two cycles per 150 cases) and `PALISADE_FUZZ_SEED` (default a fixed seed) make a longer
//! or different run; a failing case prints its seed, which reproduces it
//! alone with `PALISADE_FUZZ_CASES=1 PALISADE_FUZZ_SEED=<seed>`.

use std::panic::AssertUnwindSafe;

use palisade_ha::{Answers, Ask, DataDir, Input, Local, Me, PeerStatus, Pg, Step};
use palisade_plugin_api::sdk::dcs::{assemble, assemble_groups, Keys, Stored};
use palisade_plugin_api::DcsSnapshot;
use palisade_plugin_host::snapshot::cluster_from_snapshot;
use serde_json::Map;

use super::*;

/// SplitMix64: tiny, deterministic, good enough to pick shapes.
use palisade_test_support::python::Rng;

/// Numbers and strings that parsers trip on.
const NASTY_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "-0",
    "1e309",
    "-1e309",
    "1e308",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "4294967296",
    "2147483648",
    "1.5",
    "0.0000001",
    "123456789012345678901234567890",
    "1E400",
];

const NASTY_STRINGS: &[&str] = &[
    "",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "null",
    "true",
    "0x10",
    " 12 ",
    "12abc",
    "-5",
    "99999999999999999999",
    "0/0",
    "FFFFFFFF/FFFFFFFF",
    "1/2/3",
    "postgres://",
    "postgres://h:99999/x",
    "postgres://[::1",
    "http://",
    "http://h:0/x",
    "://",
    "é",
    "\u{0}",
    "\u{FFFD}\u{FFFD}",
    "n1",
    "n2",
    "primary",
    "replica",
    "running",
    "on",
    "quorum",
    "2026-13-45T99:99:99",
    "2026-01-01T00:00:00+00:00",
    "a\nb",
    "\\ud800",
];

/// Names members and leaders get.
const NAMES: &[&str] = &["n1", "n2", "n3", "", "N1", "n1/x", "é", "\u{0}", "a b", "n2 "];

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A random scalar as JSON text (possibly not valid JSON: `1e309`).
fn scalar(rng: &mut Rng) -> String {
    match rng.below(7) {
        0 => rng.pick(NASTY_NUMBERS).to_string(),
        1 => json_string(rng.pick::<&str>(NASTY_STRINGS)),
        2 => rng.pick(&["true", "false", "null"]).to_string(),
        3 => (rng.next_u64() as i64).to_string(),
        4 => format!("{}", rng.next_u64() % 100),
        5 => json_string(rng.pick::<&str>(NASTY_NUMBERS)),
        _ => format!("\"{}\"", rng.pick(&["\\ud800", "\\udc00x", "\\u0000", "\\uFFFF"])),
    }
}

/// Random JSON text of depth at most `depth` (shallow: the deep cases are
/// made separately, as text).
fn json(rng: &mut Rng, depth: usize) -> String {
    if depth == 0 || rng.one_in(3) {
        return scalar(rng);
    }
    let n = rng.below(4);
    if rng.one_in(2) {
        let items: Vec<String> = (0..n).map(|_| json(rng, depth - 1)).collect();
        format!("[{}]", items.join(","))
    } else {
        const FIELDS: &[&str] = &[
            "role",
            "state",
            "conn_url",
            "api_url",
            "xlog_location",
            "timeline",
            "tags",
            "ttl",
            "loop_wait",
            "leader",
            "member",
            "sync_standby",
            "quorum",
            "optime",
            "slots",
            "retain_slots",
            "postgresql",
            "synchronous_mode",
            "failsafe_mode",
            "scheduled_at",
            "candidate",
            "nofailover",
            "",
        ];
        let items: Vec<String> =
            (0..n).map(|_| format!("{}:{}", json_string(rng.pick::<&str>(FIELDS)), json(rng, depth - 1))).collect();
        format!("{{{}}}", items.join(","))
    }
}

/// Arrays or objects nested `depth` deep, as text.
fn deep(rng: &mut Rng) -> String {
    let depth = 50 + rng.below(5000);
    if rng.one_in(2) {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    } else {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    }
}

/// Random bytes read the way plugins read them.
fn bytes(rng: &mut Rng) -> String {
    let n = rng.below(64);
    let raw: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
    String::from_utf8_lossy(&raw).into_owned()
}

/// A valid value of each key kind, as Patroni writes it.
fn valid(kind: &str, rng: &mut Rng) -> String {
    let name = rng.pick(&["n1", "n2", "n3"]).to_string();
    match kind {
        "member" => serde_json::json!({
            "conn_url": format!("postgres://127.0.0.1:5432/{name}"),
            "api_url": format!("http://127.0.0.1:8008/patroni"),
            "state": "running",
            "role": rng.pick(&["primary", "replica", "standby_leader"]),
            "xlog_location": rng.next_u64() % 100_000,
            "timeline": 1 + rng.below(3),
            "tags": {"nofailover": rng.one_in(4), "clonefrom": rng.one_in(2)},
            "version": "4.0.0",
        })
        .to_string(),
        "config" => serde_json::json!({
            "ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1_048_576,
            "synchronous_mode": rng.pick(&["on", "quorum", "off"]), "synchronous_node_count": 1,
            "failsafe_mode": rng.one_in(2), "check_timeline": true,
            "postgresql": {"use_pg_rewind": true, "parameters": {"max_connections": 100, "wal_level": "replica"}},
            "slots": {"s1": {"type": "physical"}, "l1": {"type": "logical", "database": "d", "plugin": "p"}},
            "standby_cluster": null,
        })
        .to_string(),
        "sync" => serde_json::json!({"leader": name, "sync_standby": "n2,n3", "quorum": 1}).to_string(),
        "failover" => serde_json::json!({"leader": "n1", "member": name,
            "scheduled_at": "2026-01-01T00:00:00+00:00"})
        .to_string(),
        "history" => "[[1,25165984,\"no recovery target specified\",\"2026-01-01T00:00:00+00:00\",\"n1\"]]".into(),
        "status" => serde_json::json!({"optime": rng.next_u64() % 1_000_000, "slots": {"n2": 1000},
            "retain_slots": ["n2"]})
        .to_string(),
        "failsafe" => serde_json::json!({"n1": "http://127.0.0.1:8008/patroni",
            "n2": "http://127.0.0.1:8009/patroni"})
        .to_string(),
        "leader" => name,
        "initialize" => SYSID.to_string(),
        _ => (rng.next_u64() % 1_000_000).to_string(),
    }
}

/// Mutate a JSON value's text: drop, retype or add fields, nest it, or cut it.
fn mutate(text: &str, rng: &mut Rng) -> String {
    match rng.below(6) {
        0 | 1 => match serde_json::from_str::<Value>(text) {
            Ok(mut v) => {
                mutate_value(&mut v, rng, 3);
                v.to_string()
            }
            Err(_) => text.to_string(),
        },
        2 => {
            // Cut at a random character boundary.
            let cut = rng.below(text.len() + 1);
            let cut = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            text[..cut].to_string()
        }
        3 => format!("[{text}]"),
        4 => {
            // Splice a scalar over a random byte range.
            let a = rng.below(text.len() + 1);
            let (a, b) = (a, (a + rng.below(8)).min(text.len()));
            if text.is_char_boundary(a) && text.is_char_boundary(b) {
                format!("{}{}{}", &text[..a], scalar(rng), &text[b..])
            } else {
                text.to_string()
            }
        }
        _ => format!("{text}{}", scalar(rng)),
    }
}

fn mutate_value(v: &mut Value, rng: &mut Rng, depth: usize) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            match rng.below(4) {
                0 => {
                    map.remove(&key);
                }
                1 if depth > 0 => {
                    if let Some(inner) = map.get_mut(&key) {
                        mutate_value(inner, rng, depth - 1);
                    }
                }
                _ => {
                    let replacement = serde_json::from_str(&json(rng, 2)).unwrap_or(Value::Null);
                    map.insert(key, replacement);
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = rng.below(items.len());
            if depth > 0 && rng.one_in(2) {
                mutate_value(&mut items[i], rng, depth - 1);
            } else {
                items[i] = serde_json::from_str(&json(rng, 2)).unwrap_or(Value::Null);
            }
        }
        _ => *v = serde_json::from_str(&json(rng, 2)).unwrap_or(Value::Null),
    }
}

/// A value for a key of `kind`.
pub(super) fn value(kind: &str, rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => bytes(rng),
        1 => json(rng, 4),
        2 => scalar(rng),
        3 if rng.one_in(4) => deep(rng),
        4..=6 => mutate(&valid(kind, rng), rng),
        _ => valid(kind, rng),
    }
}

/// The key kinds of one cluster: (key relative to the cluster, value kind).
const KINDS: &[(&str, &str)] = &[
    ("leader", "leader"),
    ("config", "config"),
    ("sync", "sync"),
    ("failover", "failover"),
    ("history", "history"),
    ("status", "status"),
    ("failsafe", "failsafe"),
    ("initialize", "initialize"),
    ("optime/leader", "optime"),
];

/// One generated read of the store: some keys of `/service/demo/` (and of
/// Citus groups and other places, which must be skipped).
fn stored_keys(rng: &mut Rng) -> Vec<Stored> {
    let mut found = Vec::new();
    let prefix = if rng.one_in(5) { format!("/service/demo/{}/", rng.below(3)) } else { "/service/demo/".into() };
    let mut put = |key: String, value: String, rng: &mut Rng| {
        found.push(Stored {
            key,
            value,
            version: if rng.one_in(10) { bytes(rng) } else { rng.below(1000).to_string() },
            session: if rng.one_in(10) { String::new() } else { rng.below(5).to_string() },
        })
    };
    for (rel, kind) in KINDS {
        if !rng.one_in(4) {
            let v = value(kind, rng);
            put(format!("{prefix}{rel}"), v, rng);
        }
    }
    for _ in 0..rng.below(6) {
        let name = if rng.one_in(5) { bytes(rng) } else { rng.pick(NAMES).to_string() };
        let v = value("member", rng);
        put(format!("{prefix}members/{name}"), v, rng);
    }
    // Keys that are not the cluster's: other scopes, nested, unknown.
    for _ in 0..rng.below(3) {
        let key = rng
            .pick(&["/service/other/leader", "/service/demo/members/a/b", "/service/demo/nonsense", "/service/demo"])
            .to_string();
        let v = value("member", rng);
        put(key, v, rng);
    }
    found
}

/// The local states a decision is made in.
fn local(rng: &mut Rng) -> Local {
    let initialized = DataDir::Initialized { sysid: Some(SYSID.into()) };
    let wal = rng.next_u64() % 200_000;
    match rng.below(5) {
        0 => Local::default(),
        1 => Local {
            data_dir: initialized,
            pg: Pg::Running { in_recovery: false, timeline: Some(1 + rng.below(3) as u32), wal_position: wal },
            role: Role::Primary,
            state: State::Running,
            on_start_called: true,
            ..Default::default()
        },
        2 => Local {
            data_dir: initialized,
            pg: Pg::Running { in_recovery: true, timeline: Some(1), wal_position: wal },
            role: Role::Replica,
            state: State::Running,
            on_start_called: true,
            following: Some(rng.pick(NAMES).to_string()),
            ..Default::default()
        },
        3 => Local {
            data_dir: initialized,
            pg: Pg::Stopped,
            cluster_state: Some(rng.pick(&["in production", "shut down", "shut down in recovery"]).to_string()),
            role: *rng.pick(&[Role::Primary, Role::Replica]),
            state: State::Stopped,
            on_start_called: true,
            ..Default::default()
        },
        _ => Local {
            data_dir: initialized,
            pg: Pg::Running { in_recovery: true, timeline: None, wal_position: wal },
            role: Role::Replica,
            state: State::Running,
            task: Some(palisade_ha::Task::Start),
            ..Default::default()
        },
    }
}

/// A fuzzed `GET /patroni` answer.
fn peer(name: &str, rng: &mut Rng) -> PeerStatus {
    if rng.one_in(4) {
        return PeerStatus::unreachable(name);
    }
    let body = if rng.one_in(2) {
        mutate(
            &serde_json::json!({"role": "replica", "timeline": 1, "xlog": {"received_location": rng.next_u64() % 200_000,
                "replayed_location": 5}, "tags": {}})
            .to_string(),
            rng,
        )
    } else {
        json(rng, 4)
    };
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    PeerStatus::from_api_response(name, &body)
}

/// The local configuration of node `n2` (the dynamic part comes from the
/// generated `config` key).
fn local_config() -> palisade_config::LocalConfig {
    let dir = std::env::temp_dir().join(format!("palisade-fuzz-dcs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    let path = dir.join("palisade.yml");
    let yaml = format!(
        "scope: demo\nname: n2\nrestapi: {{listen: 127.0.0.1:9, connect_address: 127.0.0.1:9}}\n\
         etcd3: {{hosts: 127.0.0.1:2379}}\n\
         postgresql: {{listen: 127.0.0.1:5432, connect_address: n2:5432, data_dir: {}, authentication: \
         {{superuser: {{username: postgres, password: x}}, replication: {{username: rep, password: y}}}}}}\n\
         bootstrap: {{dcs: {{ttl: 30}}}}\n",
        dir.join("data").display()
    );
    std::fs::write(&path, yaml).expect("write the configuration");
    let config = palisade_config::load(Some(&path), &BTreeMap::new()).expect("a valid configuration").config;
    let _ = std::fs::remove_dir_all(&dir);
    config
}

/// The keys a snapshot problem may name.
fn known_key(key: &str) -> bool {
    KINDS.iter().any(|(rel, _)| *rel == key) || key.strip_prefix("members/").is_some_and(|n| !n.contains('/'))
}

/// The keys of `s` whose value is not even of the right JSON type: each
/// must be reported.
fn must_report(s: &DcsSnapshot) -> Vec<&'static str> {
    let parsed = |v: &str| serde_json::from_str::<Value>(v).ok();
    let not_object = |v: Option<&str>| v.is_some_and(|v| !parsed(v).is_some_and(|v| v.is_object()));
    let mut keys = Vec::new();
    if not_object(s.config.as_ref().map(|c| c.value.as_str())) {
        keys.push("config");
    }
    if not_object(s.sync.as_ref().map(|c| c.value.as_str())) {
        keys.push("sync");
    }
    if not_object(s.failsafe.as_deref()) {
        keys.push("failsafe");
    }
    if s.history.as_ref().is_some_and(|h| !parsed(&h.value).is_some_and(|v| v.is_array())) {
        keys.push("history");
    }
    if s.status.as_ref().is_some_and(|v| parsed(v).is_none()) {
        keys.push("status");
    }
    keys
}

/// One case: a generated store read through snapshot, config and decision.
fn one_case(seed: u64, base: &palisade_config::LocalConfig) -> usize {
    let mut rng = Rng::new(seed);
    let found = stored_keys(&mut rng);
    let keys = Keys::new("/service/", "demo", None);
    let groups = assemble_groups(&keys, &found);
    let snapshot: DcsSnapshot = assemble(&keys, &found);
    let mut problems = 0;
    for s in std::iter::once(snapshot).chain(groups.into_values()) {
        let must_report = must_report(&s);
        let (cluster, found_problems) = cluster_from_snapshot(s);
        for key in must_report {
            assert!(found_problems.iter().any(|p| p.key == key), "the bad '{key}' value is not reported");
        }
        for p in &found_problems {
            assert!(known_key(&p.key), "a problem names an unknown key: {p}");
            assert!(!p.problem.is_empty(), "a problem without a reason: {p:?}");
            // The message is what gets logged; it must be printable.
            let _ = p.to_string();
        }
        problems += found_problems.len();
        // What a daemon does with the snapshot: the dynamic configuration
        // in force, then the decision.
        let runtime = RuntimeConfig::new(base.clone(), cluster.config_data().clone(), false);
        let settings = runtime.settings();
        let _ = cluster.timeline();
        let _ = cluster.leader_member();
        // What GET /cluster and `palisadectl list` serve from it, and the
        // failsafe pieces built from the members and the `failsafe` key.
        let view =
            palisade_model::cluster_as_json(&cluster, palisade_model::ViewModes::from_config(cluster.config_data()));
        assert!(serde_json::to_string(&view).is_ok());
        let _ = palisade_ha::failsafe_topology(&cluster, "n2", "http://127.0.0.1:8009/patroni");
        if let Some(key) = &cluster.failsafe {
            let _ = palisade_ha::failsafe_members(key);
        }
        let me = Me {
            name: rng.pick(&["n1", "n2", "n3", "n4"]).to_string(),
            tags: Map::new(),
            can_bootstrap: rng.one_in(2),
            can_clone_without_leader: rng.one_in(4),
        };
        let local = local(&mut rng);
        let mut answers = Answers::default();
        let now = 1_800_000_000.0 + rng.below(100_000) as f64;
        let mut decided = false;
        for _ in 0..12 {
            let input = Input {
                now,
                me: &me,
                settings: &settings,
                cluster: &cluster,
                old_members: &cluster.members,
                old_leader: cluster.leader.as_ref().map(|l| l.name.as_str()),
                local: &local,
                scheduled_restart: None,
                answers: &answers,
            };
            match palisade_ha::decide(&input) {
                Step::Decided(_) => {
                    decided = true;
                    break;
                }
                Step::Ask(ask) => match ask {
                    Ask::UpdateLock { .. } => answers.update_lock = Some(rng.one_in(2)),
                    Ask::AcquireLock => answers.acquire_lock = Some(rng.one_in(2)),
                    Ask::Initialize => answers.initialize = Some(rng.one_in(2)),
                    Ask::MyPosition => {
                        answers.my_position = Some((rng.next_u64() % 200_000, rng.one_in(2).then_some(1)))
                    }
                    Ask::SyncPrepromote => answers.sync_prepromote = Some(rng.one_in(2)),
                    Ask::ActivateWatchdog => answers.watchdog_activated = Some(rng.one_in(2)),
                    Ask::Failsafe(members) => {
                        answers.failsafe = Some(members.iter().map(|(n, _)| (n.clone(), rng.one_in(2))).collect())
                    }
                    Ask::PeerStatuses(names) => {
                        for n in names {
                            let st = peer(&n, &mut rng);
                            answers.peers.insert(n, st);
                        }
                    }
                },
            }
        }
        assert!(decided, "decide kept asking");
    }
    problems
}

pub(super) fn cases(default: usize) -> usize {
    std::env::var("PALISADE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub(super) fn first_seed() -> u64 {
    std::env::var("PALISADE_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5EED_0DC5)
}

/// Run `case` for `n` seeds from the first; a panic names its seed.
pub(super) fn run_seeds(what: &str, n: usize, mut case: impl FnMut(u64) -> usize) -> usize {
    let first = first_seed();
    let mut total = 0;
    for i in 0..n as u64 {
        let seed = first.wrapping_add(i);
        match std::panic::catch_unwind(AssertUnwindSafe(|| case(seed))) {
            Ok(found) => total += found,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{what}: case with seed {seed} failed (rerun: PALISADE_FUZZ_CASES=1 PALISADE_FUZZ_SEED={seed}): {msg}");
            }
        }
    }
    eprintln!("{what}: {n} cases from seed {first}, {total} values reported and skipped");
    total
}

#[test]
fn generated_dcs_values_are_reported_and_skipped_and_decisions_are_made() {
    let base = local_config();
    let n = cases(3000);
    let reported = run_seeds("DCS values", n, |seed| one_case(seed, &base));
    // The generator does make garbage (a test that cannot fail is no test).
    assert!(n < 100 || reported > n / 10, "only {reported} problems in {n} cases");
}

// --- Plugin results: a DCS plugin whose answers are garbage ---

use palisade_plugin_api::{ErrorKind, LeaderKey, MemberKey, PluginError, PluginResult, VersionedValue};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A DCS plugin that, while `on`, returns generated garbage: snapshots
/// with fuzzed values in every key kind, huge member lists, and errors
/// (of every kind) on any call. Off, it is the store's own client.
struct GarbageDcs {
    inner: Arc<dyn Dcs>,
    rng: Mutex<Rng>,
    on: Arc<AtomicBool>,
    /// Snapshots that were altered.
    altered: Arc<AtomicUsize>,
}

impl GarbageDcs {
    fn rng(&self) -> std::sync::MutexGuard<'_, Rng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An error for one call in six while on.
    fn fail(&self, call: &str) -> PluginResult<()> {
        if !self.on.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut rng = self.rng();
        if !rng.one_in(6) {
            return Ok(());
        }
        let kind = *rng.pick(&[
            ErrorKind::DcsUnavailable,
            ErrorKind::Config,
            ErrorKind::Panic,
            ErrorKind::Timeout,
            ErrorKind::Other,
        ]);
        let message =
            if rng.one_in(2) { bytes(&mut rng) } else { format!("{call} failed: {}", "x".repeat(rng.below(100_000))) };
        Err(PluginError::new(kind, message))
    }

    fn mangle(&self, s: &mut DcsSnapshot) {
        let mut rng = self.rng();
        let rng = &mut *rng;
        let versioned = |kind: &str, rng: &mut Rng| {
            Some(VersionedValue { value: value(kind, rng), version: rng.below(1000).to_string() })
        };
        for _ in 0..1 + rng.below(3) {
            match rng.below(11) {
                0 => s.config = versioned("config", rng),
                1 => s.sync = versioned("sync", rng),
                2 => s.failover = versioned("failover", rng),
                3 => s.history = versioned("history", rng),
                4 => s.status = Some(value("status", rng)),
                5 => s.failsafe = Some(value("failsafe", rng)),
                6 => s.initialize = Some(value("initialize", rng)),
                7 => s.leader_optime = Some(value("optime", rng)),
                8 => {
                    s.leader = Some(LeaderKey {
                        name: value("leader", rng),
                        version: bytes(rng),
                        session: rng.below(3).to_string(),
                    })
                }
                9 => {
                    // A huge member list.
                    let n = 500 + rng.below(2500);
                    for i in 0..n {
                        let v = if i % 10 == 0 { value("member", rng) } else { valid("member", rng) };
                        s.members.push(MemberKey {
                            name: format!("m{i}"),
                            value: v,
                            version: "1".into(),
                            session: String::new(),
                        });
                    }
                }
                _ => {
                    for m in s.members.iter_mut() {
                        if rng.one_in(2) {
                            m.value = value("member", rng);
                        }
                    }
                }
            }
        }
        self.altered.fetch_add(1, Ordering::SeqCst);
    }
}

impl Dcs for GarbageDcs {
    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        self.fail("get_cluster")?;
        let mut s = self.inner.get_cluster()?;
        if self.on.load(Ordering::SeqCst) {
            self.mangle(&mut s);
        }
        Ok(s)
    }
    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        self.fail("attempt_to_acquire_leader")?;
        self.inner.attempt_to_acquire_leader()
    }
    fn update_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.fail("update_leader")?;
        self.inner.update_leader(leader)
    }
    fn take_leader(&self) -> PluginResult<bool> {
        self.fail("take_leader")?;
        self.inner.take_leader()
    }
    fn delete_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.fail("delete_leader")?;
        self.inner.delete_leader(leader)
    }
    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool> {
        self.fail("initialize")?;
        self.inner.initialize(create_new, sysid)
    }
    fn cancel_initialization(&self) -> PluginResult<bool> {
        self.fail("cancel_initialization")?;
        self.inner.cancel_initialization()
    }
    fn touch_member(&self, data: &str) -> PluginResult<bool> {
        self.fail("touch_member")?;
        self.inner.touch_member(data)
    }
    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.fail("set_config_value")?;
        self.inner.set_config_value(value, version)
    }
    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.fail("set_failover_value")?;
        self.inner.set_failover_value(value, version)
    }
    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>> {
        self.fail("set_sync_state_value")?;
        self.inner.set_sync_state_value(value, version)
    }
    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool> {
        self.fail("delete_sync_state")?;
        self.inner.delete_sync_state(version)
    }
    fn set_history_value(&self, value: &str) -> PluginResult<bool> {
        self.fail("set_history_value")?;
        self.inner.set_history_value(value)
    }
    fn write_status(&self, value: &str) -> PluginResult<bool> {
        self.fail("write_status")?;
        self.inner.write_status(value)
    }
    fn write_failsafe(&self, value: &str) -> PluginResult<bool> {
        self.fail("write_failsafe")?;
        self.inner.write_failsafe(value)
    }
    fn delete_cluster(&self) -> PluginResult<bool> {
        self.fail("delete_cluster")?;
        self.inner.delete_cluster()
    }
    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()> {
        self.fail("set_timing")?;
        self.inner.set_timing(timing)
    }
    fn watch(&self, leader_version: Option<&str>, timeout: Duration) -> PluginResult<bool> {
        self.fail("watch")?;
        self.inner.watch(leader_version, timeout)
    }
    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>> {
        self.fail("get_mpp_groups")?;
        self.inner.get_mpp_groups()
    }
}

/// A primary and a replica whose DCS plugin answers garbage for a while:
/// every cycle ends (no panic, a fatal stop only with a message), and once
/// the plugin answers sanely again the cluster is as it was: n1 leads and
/// n2 follows it.
#[tokio::test]
async fn garbage_from_the_dcs_plugin_is_logged_and_the_loop_carries_on() {
    let rounds = (cases(3000) / 150).max(1);
    let first = first_seed();
    let store = MemoryStore::new();
    let on = Arc::new(AtomicBool::new(false));
    let altered = Arc::new(AtomicUsize::new(0));
    let wrap = |seed: u64| {
        let on = Arc::clone(&on);
        let altered = Arc::clone(&altered);
        move |inner: Arc<dyn Dcs>| -> Arc<dyn Dcs> {
            Arc::new(GarbageDcs { inner, rng: Mutex::new(Rng::new(seed)), on, altered })
        }
    };
    let mut n1 = node_on("n1", &store, true, None, wrap(first));
    n1.cycle_until("n1 leads", 6, |_| store.value("leader").as_deref() == Some("n1")).await;
    let mut n2 = node_on("n2", &store, false, None, wrap(first.wrapping_add(1)));
    n2.cycle_until("n2 follows n1", 6, |n| n.pg.state().following.as_deref() == Some("n1")).await;

    // Invalid UTF-8 in the store itself, read as plugins read it.
    store.write_raw("members/zz", b"{\"role\":\"\xff\xfe\",\"state\":\x80}");
    on.store(true, Ordering::SeqCst);
    let mut fatal = 0;
    let mut fatal_kinds: Vec<String> = Vec::new();
    for round in 0..rounds {
        for node in [&mut n1, &mut n2] {
            let started = Instant::now();
            let outcome = node.runner.cycle().await;
            node.settle().await;
            if std::env::var("PALISADE_FUZZ_VERBOSE").is_ok() {
                eprintln!("round {round}: {:?} fatal {:?}", started.elapsed(), outcome.fatal);
            }
            if let Some(message) = outcome.fatal {
                assert!(!message.trim().is_empty(), "round {round} (seed {first}): a fatal stop without a message");
                fatal += 1;
                let short: String = message.chars().take(60).collect();
                if !fatal_kinds.contains(&short) {
                    fatal_kinds.push(short);
                }
            }
        }
    }
    on.store(false, Ordering::SeqCst);
    let healed = |n1: &Node, n2: &Node| {
        store.value("leader").as_deref() == Some("n1")
            && is_primary(n1)
            && n2.pg.state().following.as_deref() == Some("n1")
    };
    for _ in 0..20 {
        if healed(&n1, &n2) {
            break;
        }
        for node in [&mut n1, &mut n2] {
            let _ = node.runner.cycle().await;
            node.settle().await;
        }
    }
    assert!(healed(&n1, &n2), "seed {first}: not healed after the garbage: {:?} / {:?}", n1.pg.state(), n2.pg.state());
    let altered = altered.load(Ordering::SeqCst);
    assert!(rounds < 10 || altered > rounds, "only {altered} snapshots altered in {rounds} rounds");
    eprintln!(
        "plugin results: {rounds} rounds from seed {first}, {altered} garbage snapshots, {fatal} fatal stops \
         {fatal_kinds:?}"
    );
}
