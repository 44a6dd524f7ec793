//! What a daemon promises about DCS values written by others (issue 12,
//! "DCS values"), checked by one function, [`check_read`], on one read of
//! the store: no panic; every value that cannot be read is reported by its
//! key with a reason and skipped; the dynamic configuration, the
//! `GET /cluster` view, the failsafe topology and [`palisade_ha::decide`]
//! (its questions answered from the case's generator) all end.
//!
//! Both fuzzers call it: the bounded, seeded test
//! `runner::tests::fuzz::generated_dcs_values_are_reported_and_skipped_and_decisions_are_made`
//! (generated reads, [`stored_keys`]) and the cargo fuzz target
//! `dcs_values` (reads made from the fuzzer's bytes, [`stored_from_bytes`]).
//! The generators below also feed the runner half of that test (a DCS
//! plugin returning garbage).

use std::collections::BTreeMap;

use palisade_ha::{Answers, Ask, DataDir, Input, Local, Me, PeerStatus, Pg, Step};
use palisade_model::{Role, State};
use palisade_plugin_api::sdk::dcs::{assemble, assemble_groups, Keys, Stored};
use palisade_plugin_api::DcsSnapshot;
use palisade_plugin_host::snapshot::cluster_from_snapshot;
use serde_json::{Map, Value};

/// SplitMix64: tiny, deterministic, good enough to pick shapes.
pub use palisade_test_support::python::Rng;

use crate::runner::RuntimeConfig;

/// The system identifier of the cluster the cases read (the runner tests'
/// scripted PostgreSQL has it too).
pub const SYSID: &str = "7000000000000000001";

/// `PALISADE_FUZZ_CASES`, or `default`: the cases a bounded fuzz test runs.
pub fn cases(default: usize) -> usize {
    std::env::var("PALISADE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `PALISADE_FUZZ_SEED`, or a fixed seed: the first case's seed.
pub fn first_seed() -> u64 {
    std::env::var("PALISADE_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5EED_0DC5)
}

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
pub const NAMES: &[&str] = &["n1", "n2", "n3", "", "N1", "n1/x", "é", "\u{0}", "a b", "n2 "];

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A random scalar as JSON text (possibly not valid JSON: `1e309`).
pub fn scalar(rng: &mut Rng) -> String {
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
pub fn json(rng: &mut Rng, depth: usize) -> String {
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
pub fn bytes(rng: &mut Rng) -> String {
    let n = rng.below(64);
    let raw: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
    String::from_utf8_lossy(&raw).into_owned()
}

/// A valid value of each key kind, as Patroni writes it.
pub fn valid(kind: &str, rng: &mut Rng) -> String {
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
pub fn mutate(text: &str, rng: &mut Rng) -> String {
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
pub fn value(kind: &str, rng: &mut Rng) -> String {
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
pub fn stored_keys(rng: &mut Rng) -> Vec<Stored> {
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
pub fn local_config() -> palisade_config::LocalConfig {
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

/// One bounded case: a generated store read (from `seed`) through
/// [`check_read`]. The number of values reported and skipped.
pub fn one_case(seed: u64, base: &palisade_config::LocalConfig) -> usize {
    let mut rng = Rng::new(seed);
    let found = stored_keys(&mut rng);
    check_read(&found, &mut rng, base)
}

/// A read of the store made from a fuzzer's bytes, and the seed of the
/// generator that answers the decision's questions (the last 8 bytes).
/// The rest is split at `0xff`: each part is one key, chosen by its first
/// byte (a key of the cluster, of Citus group 1, a member of `NAMES`, a
/// key that is not the cluster's), and its value, the remaining bytes read
/// as plugins read them (invalid UTF-8 replaced).
pub fn stored_from_bytes(data: &[u8]) -> (Vec<Stored>, u64) {
    let (body, seed) = match data.len().checked_sub(8) {
        Some(at) => {
            let mut s = [0u8; 8];
            s.copy_from_slice(&data[at..]);
            (&data[..at], u64::from_le_bytes(s))
        }
        None => (data, 0),
    };
    let mut found = Vec::new();
    for (i, part) in body.split(|b| *b == 0xff).enumerate() {
        let Some((&which, value)) = part.split_first() else { continue };
        let which = usize::from(which);
        let prefix = if which & 0x80 != 0 { "/service/demo/1/" } else { "/service/demo/" };
        let which = which & 0x7f;
        let key = if which < KINDS.len() {
            format!("{prefix}{}", KINDS[which].0)
        } else if which < KINDS.len() + NAMES.len() {
            format!("{prefix}members/{}", NAMES[which - KINDS.len()])
        } else if which % 2 == 0 {
            format!("{prefix}members/{}", String::from_utf8_lossy(&part[1..part.len().min(4)]))
        } else {
            ["/service/other/leader", "/service/demo/members/a/b", "/service/demo/nonsense", "/service/demo"][which % 4]
                .to_string()
        };
        found.push(Stored {
            key,
            value: String::from_utf8_lossy(value).into_owned(),
            version: i.to_string(),
            session: (i % 3).to_string(),
        });
    }
    (found, seed)
}

/// What a daemon does with one read of the store (`found`): the snapshot
/// of the cluster and of every Citus group, then for each the cluster
/// (problems reported by key and skipped), the dynamic configuration in
/// force, the `GET /cluster` view, the failsafe pieces and the decision in
/// a local state chosen by `rng`, which also answers the decision's
/// questions. Panics when a promise is broken. The number of values
/// reported and skipped.
pub fn check_read(found: &[Stored], rng: &mut Rng, base: &palisade_config::LocalConfig) -> usize {
    let keys = Keys::new("/service/", "demo", None);
    let groups = assemble_groups(&keys, found);
    let snapshot: DcsSnapshot = assemble(&keys, found);
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
        let local = local(rng);
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
                            let st = peer(&n, rng);
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
