//! The mpp-citus plugin, loaded through the real loader, against real
//! PostgreSQL 15 servers running the Citus TEST DOUBLE (tests/doubles/citus;
//! not Citus: see docs/testing-doubles.md for what that does and does not
//! prove).
//!
//! The HA loop is played by the test: it hands the plugin the clusters of
//! every group as the DCS would show them, and the events worker primaries
//! would send, and checks `pg_dist_node` and the calls the double recorded.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::thread;
use std::time::Duration;

use palisade_plugin_api::host::open;
use palisade_plugin_api::{Mpp, MppCluster, MppLocal, MppMember, PluginKind, PluginParams};
use palisade_test_support::{become_subreaper, pg_bin_dir, wait_until, Staging};
use palisade_tests::citus_double::{distributed_write_sql, recorded_calls, CitusDoubleTree, DoubleServer};
use palisade_tests::plugins::plugin_file;
use serde_json::{json, Value};

fn load(group: i32, database: &str) -> Box<dyn Mpp> {
    let path = plugin_file(PluginKind::Mpp, "citus");
    let plugin = open(&path, PluginKind::Mpp, Some("citus")).unwrap_or_else(|e| panic!("load: {e}"));
    let params = PluginParams {
        scope: "demo".into(),
        name: if group == 0 { "c1".into() } else { format!("w{group}a") },
        config_json: json!({"group": group, "database": database}).to_string(),
    };
    plugin.new_mpp(params).unwrap_or_else(|e| panic!("construct the citus plugin: {e}"))
}

/// The parameters the plugin wants, as postgresql.conf settings.
fn citus_settings(mpp: &dyn Mpp) -> Vec<(String, String)> {
    let input = json!({"max_connections": 20, "max_prepared_transactions": 0, "shared_preload_libraries": ""});
    let out: Value = serde_json::from_str(&mpp.adjust_parameters(&input.to_string()).unwrap()).unwrap();
    out.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), String::from)))
        .collect()
}

fn local(server: &DoubleServer) -> MppLocal {
    MppLocal {
        conn: vec![
            ("host".into(), server.socket_dir.display().to_string()),
            ("port".into(), server.port.to_string()),
            ("user".into(), "postgres".into()),
        ],
        database: "postgres".into(),
        conn_url: server.conn_url(),
    }
}

fn member(name: &str, server: &DoubleServer, role: &str, state: &str) -> MppMember {
    MppMember {
        name: name.into(),
        conn_url: Some(server.conn_url()),
        role: Some(role.into()),
        state: Some(state.into()),
        noloadbalance: false,
    }
}

fn pg_dist_node(coordinator: &DoubleServer) -> String {
    coordinator
        .sql("citus", "SELECT groupid, nodeport, noderole, nodename FROM pg_catalog.pg_dist_node ORDER BY groupid, noderole, nodeport")
        .unwrap()
}

fn rows(list: &[(i32, &DoubleServer, &str)]) -> String {
    list.iter().map(|(g, s, role)| format!("{g}|{}|{role}|127.0.0.1", s.port)).collect::<Vec<_>>().join("\n")
}

/// Bootstrap creates the extension (and on the coordinator registers it);
/// `sync_meta_data` registers, updates and removes workers with the calls
/// Patroni makes.
#[test]
fn bootstrap_and_sync_against_the_double() {
    become_subreaper();
    let tree = CitusDoubleTree::install();
    let staging = Staging::new("citus-plugin");
    let coordinator_plugin = load(0, "citus");
    assert_eq!((coordinator_plugin.group(), coordinator_plugin.coordinator_group()), (0, 0));
    let settings = citus_settings(coordinator_plugin.as_ref());
    assert!(settings.contains(&("shared_preload_libraries".into(), "citus".into())), "{settings:?}");
    assert!(settings.contains(&("max_prepared_transactions".into(), "40".into())), "{settings:?}");

    let coordinator = DoubleServer::start(&tree, &staging, "c1", &settings);
    let w1a = DoubleServer::start(&tree, &staging, "w1a", &settings);
    let w1b = DoubleServer::start(&tree, &staging, "w1b", &settings);
    let w2a = DoubleServer::start(&tree, &staging, "w2a", &settings);
    assert_eq!(coordinator.sql("postgres", "SHOW shared_preload_libraries").unwrap(), "citus");

    coordinator_plugin.set_local(&local(&coordinator)).unwrap();
    coordinator_plugin.bootstrap().unwrap();
    assert_eq!(
        coordinator.sql("citus", "SELECT extversion FROM pg_extension WHERE extname = 'citus'").unwrap(),
        "12.1-1"
    );
    assert_eq!(pg_dist_node(&coordinator), rows(&[(0, &coordinator, "primary")]));
    assert_eq!(
        recorded_calls(&coordinator, "citus"),
        [format!(
            r#"citus_set_coordinator_host|{{"host": "127.0.0.1", "port": {}, "node_role": "primary", "node_cluster": "default"}}"#,
            coordinator.port
        )]
    );
    // Bootstrap again: the database and extension exist, nothing fails.
    coordinator_plugin.bootstrap().unwrap();

    // A worker: the extension in its database, no coordinator row.
    let worker_plugin = load(1, "postgres");
    worker_plugin.set_local(&local(&w1a)).unwrap();
    worker_plugin.bootstrap().unwrap();
    assert_eq!(w1a.sql("postgres", "SELECT count(*) FROM pg_extension WHERE extname = 'citus'").unwrap(), "1");
    assert_eq!(w1a.sql("postgres", "SELECT count(*) FROM pg_catalog.pg_dist_node").unwrap(), "0");
    // A worker never touches pg_dist_node, whatever it is handed.
    worker_plugin.sync_meta_data(&[]).unwrap();

    let coordinator_cluster = MppCluster {
        group: 0,
        leader: Some("c1".into()),
        members: vec![member("c1", &coordinator, "primary", "running")],
    };
    let group1 = |leader: &str, members: Vec<MppMember>| MppCluster { group: 1, leader: Some(leader.into()), members };

    // Group 1 with a primary and a replica.
    let clusters = vec![
        coordinator_cluster.clone(),
        group1("w1a", vec![member("w1a", &w1a, "primary", "running"), member("w1b", &w1b, "replica", "running")]),
    ];
    coordinator_plugin.sync_meta_data(&clusters).unwrap();
    let want = rows(&[(0, &coordinator, "primary"), (1, &w1a, "primary"), (1, &w1b, "secondary")]);
    // The secondary can only be added once the primary's row is committed: a second cycle.
    let synced = wait_until(Duration::from_secs(20), || {
        coordinator_plugin.sync_meta_data(&clusters).unwrap();
        pg_dist_node(&coordinator) == want
    });
    assert!(synced, "pg_dist_node: {}", pg_dist_node(&coordinator));

    // A failover of group 1 (w1a gone, w1b promoted) and a new group 2.
    let clusters = vec![
        coordinator_cluster.clone(),
        group1("w1b", vec![member("w1b", &w1b, "primary", "running")]),
        MppCluster { group: 2, leader: Some("w2a".into()), members: vec![member("w2a", &w2a, "primary", "running")] },
    ];
    let want = rows(&[(0, &coordinator, "primary"), (1, &w1b, "primary"), (2, &w2a, "primary")]);
    let synced = wait_until(Duration::from_secs(20), || {
        coordinator_plugin.sync_meta_data(&clusters).unwrap();
        thread::sleep(Duration::from_millis(200));
        let now = pg_dist_node(&coordinator);
        now.contains(&format!("1|{}|primary|", w1b.port)) && now.contains(&format!("2|{}|primary|", w2a.port))
    });
    assert!(synced, "pg_dist_node: {}", pg_dist_node(&coordinator));
    let calls = recorded_calls(&coordinator, "citus");
    assert!(
        calls.iter().any(|c| c.starts_with("citus_add_node|") && c.contains(r#""groupid": 2"#)),
        "group 2 added: {calls:#?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("citus_update_node|") && c.contains(r#""force": true"#)),
        "the primary's row was moved with force: {calls:#?}"
    );
    // The gone node w1a took the promoted secondary's row for the failover;
    // once in sync it is removed.
    let removed = wait_until(Duration::from_secs(20), || {
        coordinator_plugin.sync_meta_data(&clusters).unwrap();
        thread::sleep(Duration::from_millis(200));
        pg_dist_node(&coordinator) == want
    });
    assert!(removed, "pg_dist_node: {}", pg_dist_node(&coordinator));
    let calls = recorded_calls(&coordinator, "citus");
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("citus_remove_node|") && c.contains(&format!(r#""nodeport": {}"#, w1a.port))),
        "w1a removed: {calls:#?}"
    );

    // Bad values from the host are errors naming the key, never panics.
    let mut bad = local(&coordinator);
    bad.conn_url = "postgres://h:99999/x".into();
    assert!(coordinator_plugin.set_local(&bad).unwrap_err().message.starts_with("conn_url:"));
    let err = coordinator_plugin.handle_event(&clusters, r#"{"type": "after_promote", "group": "x"}"#).unwrap_err();
    assert!(err.message.starts_with("citus event.group:"), "{err}");
}

/// A worker switchover: between `before_demote` and `after_promote` the
/// coordinator holds the group's metadata lock, so a distributed
/// transaction through the coordinator waits and then runs on the new
/// primary; it never fails.
#[test]
fn switchover_makes_distributed_transactions_wait() {
    become_subreaper();
    let tree = CitusDoubleTree::install();
    let staging = Staging::new("citus-switchover");
    let plugin = load(0, "citus");
    let settings = citus_settings(plugin.as_ref());
    let coordinator = DoubleServer::start(&tree, &staging, "c1", &settings);
    let w1a = DoubleServer::start(&tree, &staging, "w1a", &settings);
    let w1b = DoubleServer::start(&tree, &staging, "w1b", &settings);
    plugin.set_local(&local(&coordinator)).unwrap();
    plugin.bootstrap().unwrap();
    coordinator.sql("citus", "CREATE EXTENSION dblink").unwrap();
    for w in [&w1a, &w1b] {
        w.sql("postgres", "CREATE TABLE t (i int)").unwrap();
    }

    let coordinator_cluster = MppCluster {
        group: 0,
        leader: Some("c1".into()),
        members: vec![member("c1", &coordinator, "primary", "running")],
    };
    let group1 = |leader: &str, members: Vec<MppMember>| MppCluster { group: 1, leader: Some(leader.into()), members };
    let before = vec![
        coordinator_cluster.clone(),
        group1("w1a", vec![member("w1a", &w1a, "primary", "running"), member("w1b", &w1b, "replica", "running")]),
    ];
    let want = rows(&[(0, &coordinator, "primary"), (1, &w1a, "primary"), (1, &w1b, "secondary")]);
    let synced = wait_until(Duration::from_secs(20), || {
        plugin.sync_meta_data(&before).unwrap();
        thread::sleep(Duration::from_millis(100));
        pg_dist_node(&coordinator) == want
    });
    assert!(synced, "pg_dist_node: {}", pg_dist_node(&coordinator));

    let write =
        |i: u32| distributed_write_sql(1, &format!("INSERT INTO t VALUES ({i})"), "user=postgres dbname=postgres");
    // Outside a switchover a distributed transaction runs on the primary.
    assert_eq!(coordinator.sql("citus", &write(0)).unwrap(), format!("127.0.0.1:{}", w1a.port));

    // before_demote from w1a: returns once the row is paused, with the lock held.
    let event = |kind: &str, leader: &str| {
        json!({"type": kind, "group": 1, "leader": leader, "timeout": 30, "cooldown": 10}).to_string()
    };
    plugin.handle_event(&before, &event("before_demote", "w1a")).unwrap();
    let lock_held = coordinator
        .sql(
            "citus",
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted",
        )
        .unwrap();
    assert_eq!(lock_held, "1", "the metadata lock is held after before_demote");

    // A client's distributed transaction now waits on the lock.
    let client_port = coordinator.port;
    let query = write(1);
    let client = thread::spawn(move || {
        let out = Command::new(pg_bin_dir().join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &client_port.to_string(), "-d", "citus", "-c", &query])
            .output()
            .expect("run psql");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    });
    let waiting = wait_until(Duration::from_secs(20), || {
        coordinator
            .sql(
                "citus",
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE '%citus_test_double_distributed_write%' AND pid <> pg_backend_pid()",
            )
            .is_ok_and(|n| n == "1")
    });
    assert!(waiting, "the distributed transaction waits on the metadata lock");

    // w1a stops; w1b takes the leader key and promotes.
    let during = vec![
        coordinator_cluster.clone(),
        group1("w1b", vec![member("w1a", &w1a, "primary", "stopped"), member("w1b", &w1b, "replica", "running")]),
    ];
    plugin.handle_event(&during, &event("before_promote", "w1b")).unwrap();
    // Still waiting: nothing is committed before after_promote.
    thread::sleep(Duration::from_millis(500));
    assert!(!client.is_finished(), "the client must wait until after_promote");
    let after = vec![
        coordinator_cluster.clone(),
        group1("w1b", vec![member("w1a", &w1a, "replica", "running"), member("w1b", &w1b, "primary", "running")]),
    ];
    plugin.handle_event(&after, &event("after_promote", "w1b")).unwrap();

    let (ok, out, err) = client.join().unwrap();
    assert!(ok, "the distributed transaction failed: {err}");
    assert_eq!(out, format!("127.0.0.1:{}", w1b.port), "it ran on the new primary");
    assert_eq!(w1b.sql("postgres", "SELECT string_agg(i::text, ',') FROM t").unwrap(), "1");
    assert_eq!(
        pg_dist_node(&coordinator),
        rows(&[(0, &coordinator, "primary"), (1, &w1b, "primary"), (1, &w1a, "secondary")])
    );
    let updates: Vec<String> =
        recorded_calls(&coordinator, "citus").into_iter().filter(|c| c.starts_with("citus_update_node|")).collect();
    assert!(!updates.is_empty() && updates.iter().all(|c| c.contains(r#""lock_cooldown": 10000"#)), "{updates:#?}");
    assert!(
        updates.iter().any(|c| c.contains(r#""new_node_name": "127.0.0.1-demoted""#)),
        "the primary's row was paused first: {updates:#?}"
    );
}

/// A `before_demote` that no `after_promote` follows (the worker's
/// switchover failed): the row stays paused while the event's `timeout`
/// runs, and afterwards the next `sync_meta_data` puts the primary back
/// and commits, so the waiting transaction goes on.
#[test]
fn paused_group_resumes_after_the_timeout() {
    become_subreaper();
    let tree = CitusDoubleTree::install();
    let staging = Staging::new("citus-timeout");
    let plugin = load(0, "citus");
    let settings = citus_settings(plugin.as_ref());
    let coordinator = DoubleServer::start(&tree, &staging, "c1", &settings);
    let w1a = DoubleServer::start(&tree, &staging, "w1a", &settings);
    plugin.set_local(&local(&coordinator)).unwrap();
    plugin.bootstrap().unwrap();
    coordinator.sql("citus", "CREATE EXTENSION dblink").unwrap();
    w1a.sql("postgres", "CREATE TABLE t (i int)").unwrap();

    let clusters = vec![
        MppCluster {
            group: 0,
            leader: Some("c1".into()),
            members: vec![member("c1", &coordinator, "primary", "running")],
        },
        MppCluster { group: 1, leader: Some("w1a".into()), members: vec![member("w1a", &w1a, "primary", "running")] },
    ];
    let want = rows(&[(0, &coordinator, "primary"), (1, &w1a, "primary")]);
    let synced = wait_until(Duration::from_secs(20), || {
        plugin.sync_meta_data(&clusters).unwrap();
        thread::sleep(Duration::from_millis(100));
        pg_dist_node(&coordinator) == want
    });
    assert!(synced, "pg_dist_node: {}", pg_dist_node(&coordinator));

    let event = json!({"type": "before_demote", "group": 1, "leader": "w1a", "timeout": 10, "cooldown": 5});
    plugin.handle_event(&clusters, &event.to_string()).unwrap();
    let held = || {
        coordinator
            .sql(
                "citus",
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted",
            )
            .unwrap()
            == "1"
    };
    // The DCS still shows w1a as the running primary; within the timeout
    // sync_meta_data does not undo the pause.
    plugin.sync_meta_data(&clusters).unwrap();
    assert!(held(), "the metadata lock is held while the event's timeout runs");

    let port = coordinator.port;
    let client = thread::spawn(move || {
        Command::new(pg_bin_dir().join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &port.to_string(), "-d", "citus", "-c"])
            .arg(distributed_write_sql(1, "INSERT INTO t VALUES (7)", "user=postgres dbname=postgres"))
            .output()
            .expect("run psql")
    });
    let resumed = wait_until(Duration::from_secs(60), || {
        plugin.sync_meta_data(&clusters).unwrap();
        thread::sleep(Duration::from_millis(200));
        !held()
    });
    assert!(resumed, "the lock is released once the timeout has passed");
    let out = client.join().unwrap();
    assert!(out.status.success(), "the waiting transaction failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w1a.sql("postgres", "SELECT string_agg(i::text, ',') FROM t").unwrap(), "7");
    assert_eq!(pg_dist_node(&coordinator), want);
    let updates: Vec<String> =
        recorded_calls(&coordinator, "citus").into_iter().filter(|c| c.starts_with("citus_update_node|")).collect();
    assert_eq!(updates.len(), 2, "paused, then resumed: {updates:#?}");
    // The pause carries the event's cooldown; the resume comes from
    // sync_meta_data, with Patroni's default.
    assert!(updates[0].contains(r#""lock_cooldown": 5000"#) && updates[0].contains("-demoted"), "{updates:#?}");
    assert!(updates[1].contains(r#""lock_cooldown": 10000"#), "{updates:#?}");
}

/// A member in a scenario step: name, address, role, state.
type StepMember = (&'static str, &'static str, &'static str, &'static str);

/// One scenario step: the clusters of every group as the DCS shows them
/// (`group -> (leader, [(name, address, role, state)])`), and either a
/// `sync_meta_data` or an event.
struct Step {
    clusters: Vec<(i32, &'static str, Vec<StepMember>)>,
    event: Option<Value>,
}

fn scenario() -> Vec<Step> {
    let coordinator = (0, "c1", vec![("c1", "10.0.0.1", "primary", "running")]);
    let event =
        |kind: &str, leader: &str| json!({"type": kind, "group": 1, "leader": leader, "timeout": 30, "cooldown": 7});
    vec![
        // Two worker groups appear.
        Step {
            clusters: vec![
                coordinator.clone(),
                (
                    1,
                    "w1a",
                    vec![("w1a", "10.0.0.11", "primary", "running"), ("w1b", "10.0.0.12", "replica", "running")],
                ),
                (2, "w2a", vec![("w2a", "10.0.0.21", "primary", "running")]),
            ],
            event: None,
        },
        // A switchover of group 1 from w1a to w1b.
        Step {
            clusters: vec![
                coordinator.clone(),
                (
                    1,
                    "w1a",
                    vec![("w1a", "10.0.0.11", "primary", "running"), ("w1b", "10.0.0.12", "replica", "running")],
                ),
            ],
            event: Some(event("before_demote", "w1a")),
        },
        Step {
            clusters: vec![
                coordinator.clone(),
                (
                    1,
                    "w1b",
                    vec![("w1a", "10.0.0.11", "primary", "stopped"), ("w1b", "10.0.0.12", "replica", "running")],
                ),
            ],
            event: Some(event("before_promote", "w1b")),
        },
        Step {
            clusters: vec![
                coordinator.clone(),
                (
                    1,
                    "w1b",
                    vec![("w1a", "10.0.0.11", "replica", "running"), ("w1b", "10.0.0.12", "primary", "running")],
                ),
            ],
            event: Some(event("after_promote", "w1b")),
        },
        // A new replica in group 1, a failover of group 2 to a node never registered.
        Step {
            clusters: vec![
                coordinator.clone(),
                (
                    1,
                    "w1b",
                    vec![
                        ("w1a", "10.0.0.11", "replica", "running"),
                        ("w1b", "10.0.0.12", "primary", "running"),
                        ("w1c", "10.0.0.13", "replica", "running"),
                    ],
                ),
                (2, "w2b", vec![("w2b", "10.0.0.22", "primary", "running")]),
            ],
            event: None,
        },
    ]
}

fn step_json(step: &Step) -> Value {
    let clusters: Vec<Value> = step
        .clusters
        .iter()
        .map(|(group, leader, members)| {
            let members: Vec<Value> =
                members.iter().map(|(name, host, role, state)| json!([name, host, role, state])).collect();
            json!({"group": group, "leader": leader, "members": members})
        })
        .collect();
    json!({"clusters": clusters, "event": step.event})
}

fn mpp_clusters(step: &Step) -> Vec<MppCluster> {
    step.clusters
        .iter()
        .map(|(group, leader, members)| MppCluster {
            group: *group,
            leader: Some(leader.to_string()),
            members: members
                .iter()
                .map(|(name, host, role, state)| MppMember {
                    name: name.to_string(),
                    conn_url: Some(format!("postgres://{host}:5432/postgres")),
                    role: Some(role.to_string()),
                    state: Some(state.to_string()),
                    noloadbalance: false,
                })
                .collect(),
        })
        .collect()
}

/// Patroni 4.1's own `CitusHandler` (from the test virtualenv, with its
/// own connection pool) runs the scenario against one coordinator; it
/// waits after each step until the handler's queue is empty.
const PATRONI_SCENARIO: &str = r#"
import json, sys, time
from patroni.dcs import Cluster, Leader, Member, Status, SyncState
from patroni.postgresql.connection import ConnectionPool
from patroni.postgresql.mpp.citus import CitusHandler

setup = json.loads(sys.stdin.readline())

class Config:
    superuser = {'username': 'postgres'}

class Postgresql:
    name = 'c1'
    database = 'postgres'
    connection_string = 'postgres://10.0.0.1:5432/postgres'
    config = Config()
    def __init__(self):
        self.connection_pool = ConnectionPool()
        self.connection_pool.conn_kwargs = {'host': setup['host'], 'port': setup['port'], 'user': 'postgres',
                                            'dbname': 'postgres'}
    def is_primary(self):
        return True

def cluster_of(c):
    members = [Member.from_node(1, n, None, json.dumps({'conn_url': 'postgres://%s:5432/postgres' % h,
                                                       'role': r, 'state': s}))
               for n, h, r, s in c['members']]
    leader = next((m for m in members if m.name == c['leader']), None)
    return Cluster(None, None, Leader(1, None, leader) if leader else None, Status.empty(), members, None,
                   SyncState.empty(), None, None, {})

def coordinator_view(step):
    groups = {c['group']: cluster_of(c) for c in step['clusters']}
    own = groups.pop(0)
    return Cluster(*own[:-1], groups)

def settle(h):
    for _ in range(600):
        with h._condition:
            if not h._tasks:
                return
        time.sleep(0.05)
    raise Exception('the handler did not settle')

pg = Postgresql()
h = CitusHandler(pg, {'group': 0, 'database': 'citus'})
h.bootstrap()
print('bootstrapped', flush=True)
for line in sys.stdin:
    step = json.loads(line)
    view = coordinator_view(step)
    if step['event'] is None:
        h.sync_meta_data(view)
    else:
        h.handle_event(view, step['event'])
    settle(h)
    print('done', flush=True)
"#;

/// The plugin runs the same calls as Patroni's own Citus handler: the same
/// scenario (two worker groups, a switchover of group 1 with its events,
/// a new replica, a failover of group 2) against two coordinators running
/// the test double, one driven by Patroni 4.1's `CitusHandler`, one by
/// the plugin; the calls each double recorded (function and arguments, in
/// order) are the same.
#[test]
fn the_plugin_makes_the_calls_patronis_handler_makes() {
    use palisade_test_support::python::{patroni_python, run_lines};

    become_subreaper();
    let tree = CitusDoubleTree::install();
    let staging = Staging::new("citus-vs-patroni");
    let plugin = load(0, "citus");
    let settings = citus_settings(plugin.as_ref());
    let theirs = DoubleServer::start(&tree, &staging, "patroni", &settings);
    let ours = DoubleServer::start(&tree, &staging, "palisade", &settings);

    let steps = scenario();
    let mut inputs = vec![json!({"host": theirs.socket_dir.display().to_string(), "port": theirs.port}).to_string()];
    inputs.extend(steps.iter().map(|s| step_json(s).to_string()));
    // The first line is the setup (Patroni bootstraps), then one per step.
    let answers = run_lines(&patroni_python(), PATRONI_SCENARIO, &inputs[..]);
    assert_eq!(answers[0], "bootstrapped");
    assert!(answers[1..].iter().all(|a| a == "done"), "{answers:?}");

    let mut mine = local(&ours);
    mine.conn_url = "postgres://10.0.0.1:5432/postgres".into();
    plugin.set_local(&mine).unwrap();
    plugin.bootstrap().unwrap();
    let activity = |pattern: &str| {
        ours.sql(
            "citus",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'Patroni citus' AND query LIKE '{pattern}'"
            ),
        )
        .is_ok_and(|n| n == "1")
    };
    for (i, step) in steps.iter().enumerate() {
        let clusters = mpp_clusters(step);
        match &step.event {
            None => plugin.sync_meta_data(&clusters).unwrap(),
            Some(event) => plugin.handle_event(&clusters, &event.to_string()).unwrap(),
        }
        // Wait until the step's work is visible: its last statement on the
        // plugin's connection, or the committed rows.
        let settled = wait_until(Duration::from_secs(30), || match i {
            0 => pg_dist_node(&ours).lines().count() == 4,
            1 => activity("%citus_update_node%10.0.0.11-demoted%"),
            2 => activity("%citus_update_node(2, %10.0.0.12%, 5432, true, 7000)"),
            3 => pg_dist_node(&ours).contains("1|5432|primary|10.0.0.12"),
            _ => pg_dist_node(&ours).contains("10.0.0.13") && pg_dist_node(&ours).contains("10.0.0.22"),
        });
        assert!(settled, "step {i}: pg_dist_node {}", pg_dist_node(&ours));
    }

    let calls = |server: &DoubleServer| -> Vec<String> {
        server
            .sql("citus", "SELECT func || ' ' || args::text FROM pg_catalog.citus_test_double_calls ORDER BY id")
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
    let (patroni_calls, our_calls) = (calls(&theirs), calls(&ours));
    assert!(patroni_calls.len() >= 6, "Patroni's handler made its calls: {patroni_calls:#?}");
    assert_eq!(our_calls, patroni_calls, "the plugin's calls differ from Patroni's");
    assert_eq!(pg_dist_node(&ours), pg_dist_node(&theirs));
}

/// The coordinator's PostgreSQL goes away and comes back: the plugin's
/// statements fail meanwhile (logged, as Patroni logs them), and once the
/// server answers again the plugin reconnects, reads `pg_dist_node` again
/// and brings it in line with what the DCS says by then.
#[test]
fn the_plugin_reconnects_after_the_coordinator_restarts() {
    become_subreaper();
    let tree = CitusDoubleTree::install();
    let staging = Staging::new("citus-restart");
    let plugin = load(0, "citus");
    let settings = citus_settings(plugin.as_ref());
    let mut coordinator = DoubleServer::start(&tree, &staging, "c1", &settings);
    let w1a = DoubleServer::start(&tree, &staging, "w1a", &settings);
    let w1b = DoubleServer::start(&tree, &staging, "w1b", &settings);
    plugin.set_local(&local(&coordinator)).unwrap();
    plugin.bootstrap().unwrap();
    let coordinator_cluster = MppCluster {
        group: 0,
        leader: Some("c1".into()),
        members: vec![member("c1", &coordinator, "primary", "running")],
    };
    let group1 = |leader: &str, primary: &DoubleServer| MppCluster {
        group: 1,
        leader: Some(leader.into()),
        members: vec![member(leader, primary, "primary", "running")],
    };
    fn sync_until(plugin: &dyn Mpp, coordinator: &DoubleServer, clusters: &[MppCluster], want: &str) -> bool {
        wait_until(Duration::from_secs(30), || {
            plugin.sync_meta_data(clusters).unwrap();
            thread::sleep(Duration::from_millis(100));
            coordinator.sql("citus", "SELECT 1").is_ok() && pg_dist_node(coordinator) == want
        })
    }
    let before = [coordinator_cluster.clone(), group1("w1a", &w1a)];
    let want = rows(&[(0, &coordinator, "primary"), (1, &w1a, "primary")]);
    assert!(sync_until(plugin.as_ref(), &coordinator, &before, &want), "pg_dist_node: {}", pg_dist_node(&coordinator));

    coordinator.stop();
    // Group 1 fails over while the coordinator's server is down.
    let after = [coordinator_cluster.clone(), group1("w1b", &w1b)];
    for _ in 0..3 {
        plugin.sync_meta_data(&after).unwrap();
        thread::sleep(Duration::from_millis(100));
    }
    coordinator.start_again();
    plugin.schedule_cache_rebuild();
    let want = rows(&[(0, &coordinator, "primary"), (1, &w1b, "primary")]);
    assert!(sync_until(plugin.as_ref(), &coordinator, &after, &want), "pg_dist_node: {}", pg_dist_node(&coordinator));
}
