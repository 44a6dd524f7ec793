//! The runner's cycle (ask, answer, act) without processes: nodes on the
//! reference in-memory DCS and a scripted PostgreSQL
//! ([`super::fake_pg::FakePg`]). Each test drives cycles by hand and waits
//! for background tasks with a deadline.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use palisade_dcs_memory::MemoryStore;
use palisade_model::{Role, State};
use palisade_plugin_api::{Dcs, DcsTiming};
use palisade_plugin_host::dcs::DcsClient;
use palisade_plugin_host::plugins::ReplicaPlugin;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::fake_pg::{FakePg, FakeReplicaMethod, SYSID};
use super::{Runner, RuntimeConfig, Shared, Tracked};
use crate::status::{NodeStatus, StatusBoard};

mod fuzz;

const DEADLINE: Duration = Duration::from_secs(20);

fn timing() -> DcsTiming {
    DcsTiming {
        ttl: Duration::from_secs(30),
        loop_wait: Duration::from_secs(10),
        retry_timeout: Duration::from_secs(5),
    }
}

/// A temporary directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Node {
    runner: Runner,
    pg: Arc<FakePg>,
    _dir: TempDir,
}

/// A node of cluster `demo` on `store`; `bootstrap` gives it a bootstrap
/// section (work_mem 4MB in `bootstrap.dcs`); a node without one clones
/// with a fake replica method.
fn node(name: &str, store: &Arc<MemoryStore>, bootstrap: bool) -> Node {
    node_with(name, store, bootstrap, None)
}

/// [`node`] with a callback plugin.
fn node_with(
    name: &str,
    store: &Arc<MemoryStore>,
    bootstrap: bool,
    callback: Option<Arc<dyn palisade_plugin_api::Callback>>,
) -> Node {
    node_on(name, store, bootstrap, callback, |dcs| dcs)
}

/// [`node_with`] whose DCS client is wrapped by `wrap`.
fn node_on(
    name: &str,
    store: &Arc<MemoryStore>,
    bootstrap: bool,
    callback: Option<Arc<dyn palisade_plugin_api::Callback>>,
    wrap: impl FnOnce(Arc<dyn Dcs>) -> Arc<dyn Dcs>,
) -> Node {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("palisade-runner-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    let path = dir.join("palisade.yml");
    let mut yaml = format!(
        "scope: demo\nname: {name}\nrestapi: {{listen: 127.0.0.1:9, connect_address: 127.0.0.1:9}}\n\
         etcd3: {{hosts: 127.0.0.1:2379}}\n\
         postgresql: {{listen: 127.0.0.1:5432, connect_address: {name}:5432, data_dir: {}, authentication: \
         {{superuser: {{username: postgres, password: x}}, replication: {{username: rep, password: y}}}}}}\n",
        dir.join("data").display()
    );
    if bootstrap {
        yaml.push_str("bootstrap: {dcs: {ttl: 30, loop_wait: 10, postgresql: {parameters: {work_mem: 4MB}}}}\n");
    } else {
        // The fake replica method below.
        yaml = yaml.replace("postgresql: {", "postgresql: {create_replica_methods: [fake], ");
    }
    std::fs::write(&path, yaml).expect("write the configuration");
    let local = palisade_config::load(Some(&path), &BTreeMap::new()).expect("a valid configuration").config;
    let dynamic = palisade_config::dynamic_from_bootstrap(&local);
    let runtime = RuntimeConfig::new(local, dynamic, false);
    let pg = FakePg::new(&runtime);
    let replicas = if bootstrap {
        Vec::new()
    } else {
        vec![ReplicaPlugin {
            method: "fake".into(),
            plugin: Box::new(FakeReplicaMethod(Arc::clone(&pg))),
            without_leader: false,
            keep_data: false,
            archive: Default::default(),
        }]
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let dcs: Arc<dyn Dcs> = wrap(Arc::new(store.client(name, timing())));
    let shared = Arc::new(Shared {
        dcs: DcsClient::new(dcs, timing().retry_timeout),
        pg: Arc::clone(&pg) as Arc<dyn crate::pg::LocalPostgres>,
        config: RwLock::new(runtime),
        tracked: Mutex::new(Tracked::new(Role::Uninitialized, State::Stopped)),
        status: StatusBoard::new(NodeStatus::new("demo", name)),
        peers: crate::peers::PeerClient::new(reqwest::Client::new()),
        replicas,
        callback,
        hooks: Default::default(),
        events: tx,
        config_path: Some(path),
        env: BTreeMap::new(),
        scheduled_restart: Mutex::new(None),
        mpp: None,
        watchdog: Mutex::new(crate::watchdog::Watchdog::off()),
    });
    Node { runner: Runner::new(shared, rx), pg, _dir: TempDir(dir) }
}

impl Node {
    /// One cycle, then wait (with a deadline) for the task it started.
    async fn cycle(&mut self) {
        let outcome = self.runner.cycle().await;
        assert!(outcome.fatal.is_none(), "fatal: {:?}", outcome.fatal);
        self.settle().await;
    }

    /// Wait for the background task to end.
    async fn settle(&mut self) {
        let started = Instant::now();
        while self.runner.task.as_ref().is_some_and(|(_, h)| !h.is_finished()) {
            assert!(started.elapsed() < DEADLINE, "the task did not end within {DEADLINE:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Cycle until `done` holds, at most `limit` cycles.
    async fn cycle_until(&mut self, what: &str, limit: usize, done: impl Fn(&Self) -> bool) {
        for _ in 0..limit {
            self.cycle().await;
            if done(self) {
                return;
            }
        }
        panic!("{what}: not after {limit} cycles; calls {:?}", self.pg.state().calls);
    }

    fn tracked(&self) -> Tracked {
        self.runner.shared.tracked()
    }
}

fn member(store: &MemoryStore, name: &str) -> Value {
    let raw = store.value(&format!("members/{name}")).unwrap_or_else(|| panic!("no member key for {name}"));
    serde_json::from_str(&raw).expect("a member key is JSON")
}

/// A new cluster: n1 bootstraps (initialize key, initdb, post_bootstrap),
/// writes the configuration and takes the leader key.
async fn bootstrapped(store: &Arc<MemoryStore>) -> Node {
    let mut n1 = node("n1", store, true);
    n1.cycle_until("n1 leads", 6, |_| store.value("leader").as_deref() == Some("n1")).await;
    n1.cycle().await;
    n1
}

#[tokio::test]
async fn the_first_node_bootstraps_the_cluster() {
    let store = MemoryStore::new();
    let n1 = bootstrapped(&store).await;
    let calls = n1.pg.state().calls;
    assert_eq!(calls[..3], ["bootstrap", "start primary", "post_bootstrap"], "{calls:?}");
    assert_eq!(store.value("initialize").as_deref(), Some(SYSID));
    let config: Value = serde_json::from_str(&store.value("config").expect("a config key")).expect("JSON");
    assert_eq!(config["postgresql"]["parameters"]["work_mem"], "4MB", "{config}");
    let m = member(&store, "n1");
    assert_eq!((m["role"].as_str(), m["state"].as_str()), (Some("primary"), Some("running")), "{m}");
    assert_eq!(n1.tracked().role, Role::Primary);
    assert!(n1.tracked().is_leader());
    assert_eq!(n1.pg.state().loaded.get("work_mem"), Some(&json!("4MB")));
}

/// The cycle that takes the leader key asks for the next cycle at once
/// (what a leader does each cycle, the replicas' slots first, must not wait
/// for `loop_wait`); the cycles after it do not.
#[tokio::test]
async fn taking_the_leader_key_runs_the_next_cycle_at_once() {
    let store = MemoryStore::new();
    let mut n1 = node("n1", &store, true);
    let woke = |n: &mut Node| {
        let mut wake = false;
        while let Ok(event) = n.runner.rx.try_recv() {
            wake |= matches!(event, super::Event::Wake);
        }
        wake
    };
    for _ in 0..6 {
        let led = store.value("leader").as_deref() == Some("n1");
        n1.cycle().await;
        let leads = store.value("leader").as_deref() == Some("n1");
        let wake = woke(&mut n1);
        assert_eq!(wake, leads && !led, "leader before {led}, after {leads}");
        if leads && led {
            return;
        }
    }
    panic!("n1 did not lead for two cycles in six");
}

#[tokio::test]
async fn a_postmaster_that_dies_during_the_cycle_is_not_served_as_running() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    assert!(n1.runner.shared.status.get().pg.is_some(), "the running primary is served");
    // The status query answered, then the postmaster died before the
    // status was published: nothing is left to check the pid against.
    n1.pg.with(|s| s.postmaster_died = true);
    n1.runner.cycle().await;
    assert!(n1.runner.shared.status.get().pg.is_none(), "a dead postmaster must not be served as running");
}

#[tokio::test]
async fn a_new_node_clones_and_follows_the_leader() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    let mut n2 = node("n2", &store, false);
    n2.cycle_until("n2 follows n1", 6, |n| {
        let s = n.pg.state();
        s.running && s.in_recovery && s.following.as_deref() == Some("n1")
    })
    .await;
    n2.cycle().await;
    let calls = n2.pg.state().calls;
    assert_eq!(calls[..2], ["copied", "start replica n1"], "{calls:?}");
    assert_eq!(n2.tracked().role, Role::Replica);
    assert_eq!(n2.tracked().following.as_deref(), Some("n1"));
    assert_eq!(member(&store, "n2")["role"], "replica");
    assert_eq!(store.value("leader").as_deref(), Some("n1"));
    // The leader keeps a slot for its replica.
    n1.cycle().await;
    assert!(n1.pg.state().slots.contains_key("n2"), "{:?}", n1.pg.state().calls);
}

/// A clone runs between cycles: once it has started PostgreSQL, the API
/// serves the replica's role and state at once, not `creating replica`
/// until the next cycle ends.
#[tokio::test]
async fn a_finished_clone_is_served_as_a_replica_before_the_next_cycle() {
    let store = MemoryStore::new();
    let _n1 = bootstrapped(&store).await;
    let n2 = node("n2", &store, false);
    let shared = Arc::clone(&n2.runner.shared);
    let cluster = shared.dcs.get_cluster().await.expect("the cluster");
    let leader = cluster.leader_member().cloned().expect("n1 leads");
    assert!(super::tasks::clone(Arc::clone(&shared), Some(leader), Some("n1".into())).await);
    let served = shared.status.get();
    assert_eq!((served.role, served.state), (Role::Replica, State::Running));
}

#[tokio::test]
async fn the_leader_keeps_permanent_slots_drops_unknown_ones_and_publishes_them() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    let mut config: Value = serde_json::from_str(&store.value("config").expect("a config key")).expect("JSON");
    config["slots"] = json!({"perm": null, "lg": {"database": "app", "plugin": "pgoutput"}, "Bad": null});
    config["ignore_slots"] = json!([{"name": "kept"}, 5]);
    let admin = store.client("admin", timing());
    assert!(admin.set_config_value(&config.to_string(), None).expect("set the config"));
    n1.pg.add_slot("stray");
    n1.pg.add_slot("kept");
    n1.cycle_until("permanent slots made, the unknown one dropped", 4, |n| {
        let s = n.pg.state().slots;
        s.contains_key("perm") && s.contains_key("lg") && !s.contains_key("stray")
    })
    .await;
    let state = n1.pg.state();
    assert!(state.slots.contains_key("kept"), "{:?}", state.calls);
    assert!(!state.slots.contains_key("Bad"), "{:?}", state.calls);
    assert!(state.calls.iter().any(|c| c == "create_logical_slot lg app pgoutput"), "{:?}", state.calls);
    // Logical slots on replicas need it: written into the configuration.
    assert!(state.hot_standby_feedback);
    n1.cycle().await;
    let status: Value = serde_json::from_str(&store.value("status").expect("a status key")).expect("JSON");
    for slot in ["perm", "lg", "n1"] {
        assert!(status["slots"][slot].is_u64(), "{slot} not published: {status}");
    }
    assert!(status["slots"].get("kept").is_none(), "{status}");
}

#[tokio::test]
async fn a_replica_copies_published_logical_slots_and_keeps_physical_copies() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    let mut config: Value = serde_json::from_str(&store.value("config").expect("a config key")).expect("JSON");
    config["slots"] = json!({"perm": null, "lg": {"database": "app", "plugin": "pgoutput"}});
    let admin = store.client("admin", timing());
    assert!(admin.set_config_value(&config.to_string(), None).expect("set the config"));
    let mut n2 = node("n2", &store, false);
    for _ in 0..8 {
        n1.cycle().await;
        n2.cycle().await;
        if n2.pg.state().calls.iter().any(|c| c.starts_with("leader_slot_states")) {
            break;
        }
    }
    let state = n2.pg.state();
    // The primary published lg's position: the replica asks for its state file.
    assert!(state.calls.iter().any(|c| c == "leader_slot_states n1 lg"), "{:?}", state.calls);
    assert!(state.slots.contains_key("perm") && state.slots.contains_key("n1"), "{:?}", state.calls);
    assert!(!state.slots.contains_key("lg"), "{:?}", state.calls);
    assert!(state.hot_standby_feedback);
}

#[tokio::test]
async fn a_leader_that_loses_its_key_demotes() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    let n2 = store.client("n2", timing());
    let conn = json!({"conn_url": "postgres://n2:5432/postgres", "api_url": "http://127.0.0.1:9/patroni",
                      "state": "running", "role": "primary", "version": "4.1.4"});
    assert!(n2.touch_member(&conn.to_string()).expect("touch_member"));
    assert!(n2.take_leader().expect("take_leader"));
    n1.cycle_until("n1 runs as a replica", 4, |n| {
        let s = n.pg.state();
        s.running && s.in_recovery
    })
    .await;
    let calls = n1.pg.state().calls;
    assert!(calls.iter().any(|c| c.starts_with("stop")), "{calls:?}");
    assert!(!n1.tracked().is_leader());
    assert!(matches!(n1.tracked().role, Role::Replica | Role::Demoted), "{:?}", n1.tracked().role);
    assert_eq!(store.value("leader").as_deref(), Some("n2"), "the new leader's key is left alone");
    n1.cycle_until("n1 follows n2", 3, |n| n.pg.state().following.as_deref() == Some("n2")).await;
}

/// A callback plugin that records `action role` for each event.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl palisade_plugin_api::Callback for Recorder {
    fn on_event(&self, event: &palisade_plugin_api::CallbackEvent) -> palisade_plugin_api::PluginResult<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{} {}", event.action, event.role));
        Ok(())
    }
}

impl Recorder {
    fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[tokio::test]
async fn a_demoted_leader_fires_on_stop_then_on_role_change_and_follows_at_once() {
    let store = MemoryStore::new();
    let recorder = Arc::new(Recorder::default());
    let mut n1 = node_with("n1", &store, true, Some(Arc::clone(&recorder) as Arc<dyn palisade_plugin_api::Callback>));
    n1.cycle_until("n1 leads", 6, |_| store.value("leader").as_deref() == Some("n1")).await;
    n1.cycle().await;
    assert_eq!(recorder.calls(), ["on_start primary"], "nothing while bootstrapping, on_start once it is done");
    let n2 = store.client("n2", timing());
    let conn = json!({"conn_url": "postgres://n2:5432/postgres", "api_url": "http://127.0.0.1:9/patroni",
                      "state": "running", "role": "primary", "version": "4.1.4"});
    assert!(n2.touch_member(&conn.to_string()).expect("touch_member"));
    assert!(n2.take_leader().expect("take_leader"));
    n1.cycle_until("n1 follows n2", 4, |n| {
        let s = n.pg.state();
        s.running && s.in_recovery && s.following.as_deref() == Some("n2")
    })
    .await;
    n1.cycle().await;
    // No on_start for the demoted primary's start, no on_reload: it
    // started following n2 directly.
    assert_eq!(recorder.calls(), ["on_start primary", "on_stop primary", "on_role_change replica"]);
}

/// Wait until `node`'s clone task has written its configuration and
/// reached the start of PostgreSQL (where the fake holds it at the gate).
async fn wait_for_replica_start(node: &Node) {
    let started = Instant::now();
    while !node.pg.state().calls.iter().any(|c| c.starts_with("start replica")) {
        assert!(started.elapsed() < DEADLINE, "the clone task did not reach its start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Defect: a dynamic configuration change that arrived while the clone
/// task owned PostgreSQL (its start had written the old configuration)
/// was marked seen and never applied.
#[tokio::test]
async fn a_config_change_during_a_task_is_applied_when_it_ends() {
    let store = MemoryStore::new();
    let _n1 = bootstrapped(&store).await;
    let mut n2 = node("n2", &store, false);
    n2.pg.open_gate(false);
    // The clone task copies, writes the configuration and waits at the gate.
    let outcome = n2.runner.cycle().await;
    assert!(outcome.fatal.is_none());
    wait_for_replica_start(&n2).await;
    assert_eq!(n2.pg.state().loaded.get("work_mem"), Some(&json!("4MB")));

    // PATCH /config, as the API writes it.
    let admin = store.client("admin", timing());
    let current = admin.get_cluster().expect("get_cluster").config.expect("a config key");
    let mut config: Value = serde_json::from_str(&current.value).expect("JSON");
    config["postgresql"]["parameters"]["work_mem"] = json!("16MB");
    assert!(admin.set_config_value(&config.to_string(), Some(&current.version)).expect("set_config_value"));

    // A cycle while the task still owns PostgreSQL takes the new version...
    let outcome = n2.runner.cycle().await;
    assert!(outcome.fatal.is_none());
    assert!(n2.runner.task.is_some(), "the clone task is still in progress");
    assert_eq!(n2.pg.state().loaded.get("work_mem"), Some(&json!("4MB")));

    // ...and once it ends, the next cycle applies it.
    n2.pg.open_gate(true);
    n2.settle().await;
    n2.cycle_until("n2 runs with work_mem 16MB", 3, |n| n.pg.state().loaded.get("work_mem") == Some(&json!("16MB")))
        .await;
    let s = n2.pg.state();
    assert!(s.running && s.in_recovery, "{s:?}");
    assert_eq!(s.calls.iter().filter(|c| *c == "apply_parameters").count(), 1, "{:?}", s.calls);
}

/// The same for a reload of the configuration file (SIGHUP,
/// `POST /reload`) while the clone task holds PostgreSQL at start.
#[tokio::test]
async fn a_reload_during_a_task_is_applied_when_it_ends() {
    let store = MemoryStore::new();
    let _n1 = bootstrapped(&store).await;
    let mut n2 = node("n2", &store, false);
    n2.pg.open_gate(false);
    let outcome = n2.runner.cycle().await;
    assert!(outcome.fatal.is_none());
    wait_for_replica_start(&n2).await;
    let path = n2.runner.shared.config_path.clone().expect("a configuration file");
    let yaml = std::fs::read_to_string(&path).expect("read the configuration");
    let yaml = yaml.replacen("listen: 127.0.0.1:5432,", "listen: 127.0.0.1:5432, parameters: {work_mem: 32MB},", 1);
    std::fs::write(&path, yaml).expect("write the configuration");
    n2.runner.reload().await;
    assert_eq!(n2.pg.state().loaded.get("work_mem"), Some(&json!("4MB")), "the task still owns PostgreSQL");

    n2.pg.open_gate(true);
    n2.settle().await;
    n2.cycle_until("n2 runs with work_mem 32MB", 3, |n| n.pg.state().loaded.get("work_mem") == Some(&json!("32MB")))
        .await;
}

/// Turn failsafe mode on in the dynamic configuration, as `PATCH /config`
/// would.
fn enable_failsafe(store: &Arc<MemoryStore>) {
    set_dynamic(store, "failsafe_mode", json!(true));
}

/// Set one key of the dynamic configuration.
fn set_dynamic(store: &Arc<MemoryStore>, key: &str, value: Value) {
    let admin = store.client("admin", timing());
    let current = admin.get_cluster().expect("get_cluster").config.expect("a config key");
    let mut config: Value = serde_json::from_str(&current.value).expect("JSON");
    config[key] = value;
    assert!(admin.set_config_value(&config.to_string(), Some(&current.version)).expect("set_config_value"));
}

/// A member's REST API that answers every request with the status and
/// body in `answer` (changeable while it runs); returns its API URL.
async fn failsafe_peer(answer: Arc<Mutex<(u16, &'static str)>>) -> String {
    failsafe_peer_with(answer, "").await
}

/// The same, with more header lines in every answer (each ending in CRLF).
async fn failsafe_peer_with(answer: Arc<Mutex<(u16, &'static str)>>, headers: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("an address").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let _ = s.read(&mut buf).await;
            let (code, body) = *answer.lock().unwrap_or_else(|p| p.into_inner());
            let reply = format!(
                "HTTP/1.1 {code} X\r\n{headers}content-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://127.0.0.1:{port}/patroni")
}

/// Register member `name` with `api_url` (a running replica) in the store.
fn add_member(store: &Arc<MemoryStore>, name: &str, api_url: &str) {
    let client = store.client(name, timing());
    let value = json!({"conn_url": format!("postgres://{name}:5432/postgres"), "api_url": api_url,
                       "state": "running", "role": "replica", "version": "4.1.4"});
    assert!(client.touch_member(&value.to_string()).expect("touch_member"));
}

fn failsafe_key(store: &MemoryStore) -> Value {
    store.value("failsafe").map_or(Value::Null, |v| serde_json::from_str(&v).expect("the failsafe key is JSON"))
}

fn is_primary(node: &Node) -> bool {
    let s = node.pg.state();
    s.running && !s.in_recovery
}

#[tokio::test]
async fn the_leader_publishes_the_failsafe_key_when_members_change() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    n1.cycle().await;
    assert_eq!(failsafe_key(&store), Value::Null, "failsafe mode is off");
    enable_failsafe(&store);
    n1.cycle_until("the key names n1", 3, |_| failsafe_key(&store) == json!({"n1": "http://127.0.0.1:9/patroni"}))
        .await;
    add_member(&store, "n2", "http://n2:8008/patroni");
    n1.cycle_until("the key names n2", 3, |_| {
        failsafe_key(&store) == json!({"n1": "http://127.0.0.1:9/patroni", "n2": "http://n2:8008/patroni"})
    })
    .await;
}

/// With failsafe mode on, a primary that cannot reach the store keeps
/// running while every member accepts it, and demotes when one refuses;
/// an error on writes alone (the store reads but has no quorum) counts
/// as the store being out of reach, unlike Patroni (#3572).
#[tokio::test]
async fn a_primary_runs_on_without_the_dcs_only_while_every_member_accepts() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    enable_failsafe(&store);
    let answer = Arc::new(Mutex::new((200, "Accepted")));
    add_member(&store, "n2", &failsafe_peer(Arc::clone(&answer)).await);
    n1.cycle_until("the key names n2", 3, |_| failsafe_key(&store).get("n2").is_some()).await;

    for (outage, what) in [(true, "the store is down"), (false, "writes fail, reads answer")] {
        if outage {
            store.go_down();
        } else {
            store.fail_writes(true);
        }
        for _ in 0..3 {
            n1.cycle().await;
            assert!(is_primary(&n1), "{what}: n1 demoted although n2 accepts: {:?}", n1.pg.state().calls);
            assert!(n1.tracked().is_leader(), "{what}");
            assert!(n1.runner.shared.status.get().failsafe.is_active(), "{what}");
        }
        store.come_back();
        store.fail_writes(false);
        n1.cycle().await;
        assert!(is_primary(&n1) && n1.tracked().is_leader(), "{what}: back to normal");
        assert!(!n1.runner.shared.status.get().failsafe.is_active(), "{what}: failsafe mode is over");
    }

    *answer.lock().unwrap() = (500, "Running as a leader");
    store.go_down();
    n1.cycle_until("n1 demotes", 3, |n| !is_primary(n)).await;
    assert!(!n1.tracked().is_leader());
    assert!(!n1.runner.shared.status.get().failsafe.is_active());
}

/// Without failsafe mode, an error on writes alone demotes a primary as
/// the store being out of reach does.
#[tokio::test]
async fn without_failsafe_a_write_error_demotes_the_primary() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    store.fail_writes(true);
    n1.cycle_until("n1 demotes", 3, |n| !is_primary(n)).await;
    assert!(!n1.tracked().is_leader());
}

/// A replica that accepted `POST /failsafe` from the leader within ttl
/// follows it even though the leader key is gone; without that call it
/// races (and wins, the old leader being unreachable).
#[tokio::test]
async fn a_replica_that_heard_from_the_leader_does_not_race() {
    let store = MemoryStore::new();
    let _n1 = bootstrapped(&store).await;
    enable_failsafe(&store);
    // The fake replica reports no WAL: lag must not keep it from racing.
    let admin = store.client("admin", timing());
    let current = admin.get_cluster().expect("get_cluster").config.expect("a config key");
    let mut config: Value = serde_json::from_str(&current.value).expect("JSON");
    config["maximum_lag_on_failover"] = json!(1_u64 << 40);
    assert!(admin.set_config_value(&config.to_string(), Some(&current.version)).expect("set_config_value"));
    let mut n2 = node("n2", &store, false);
    n2.cycle_until("n2 follows n1", 6, |n| {
        let s = n.pg.state();
        s.running && s.in_recovery && s.following.as_deref() == Some("n1")
    })
    .await;
    assert_eq!(n2.runner.shared.status.get().known_leader.as_deref(), Some("n1"));
    // n1 cannot reach the store: its key goes (its API at 127.0.0.1:9 does not answer).
    assert!(store.client("n1", timing()).delete_leader(None).expect("delete_leader"));

    let heard = palisade_ha::FailsafeLeader {
        name: "n1".into(),
        conn_url: "postgres://n1:5432/postgres".into(),
        api_url: "http://127.0.0.1:9/patroni".into(),
    };
    n2.runner.shared.status.update(|s| {
        s.failsafe.active_until = Some(crate::instant_after(Duration::from_secs(30)));
        s.failsafe.leader = Some(heard);
    });
    for _ in 0..2 {
        n2.cycle().await;
        assert_eq!(store.value("leader"), None, "n2 raced");
        let s = n2.pg.state();
        assert!(s.running && s.in_recovery && s.following.as_deref() == Some("n1"), "{s:?}");
    }
    // The call is older than ttl: n2 races and takes over.
    n2.runner.shared.status.update(|s| s.failsafe.reset());
    n2.cycle_until("n2 takes the lock", 3, |_| store.value("leader").as_deref() == Some("n2")).await;
}

fn advances(node: &Node) -> Vec<String> {
    node.pg.state().calls.into_iter().filter(|c| c.starts_with("advance_slot ")).collect()
}

/// While the store is out of reach, a replica that accepted `POST
/// /failsafe` advances its copies of the permanent and member slots to the
/// positions the leader sent (Patroni's `Failsafe.update_cluster`); without
/// failsafe mode it leaves its slots alone.
#[tokio::test]
async fn a_replica_advances_its_slot_copies_from_the_failsafe_call() {
    let store = MemoryStore::new();
    let _n1 = bootstrapped(&store).await;
    enable_failsafe(&store);
    set_dynamic(&store, "slots", json!({"perm": {"type": "physical"}}));
    set_dynamic(&store, "maximum_lag_on_failover", json!(1_u64 << 40));
    let mut n2 = node("n2", &store, false);
    n2.cycle_until("n2 follows n1 and has its slot copies", 8, |n| {
        let s = n.pg.state();
        s.in_recovery
            && s.following.as_deref() == Some("n1")
            && s.slots.contains_key("perm")
            && s.slots.contains_key("n1")
    })
    .await;
    store.go_down();
    let heard = palisade_ha::FailsafeLeader {
        name: "n1".into(),
        conn_url: "postgres://n1:5432/postgres".into(),
        api_url: "http://127.0.0.1:9/patroni".into(),
    };
    let slots = json!({"perm": 5000, "n1": 6000}).as_object().cloned();
    n2.runner.shared.status.update(|s| {
        s.failsafe.active_until = Some(crate::instant_after(Duration::from_secs(30)));
        s.failsafe.leader = Some(heard);
        s.failsafe.slots = slots;
    });
    // Failsafe mode off: slots are not touched while the store is down.
    n2.runner.shared.config.write().expect("config").global.failsafe_mode = false;
    let before = advances(&n2);
    n2.cycle().await;
    assert_eq!(advances(&n2), before, "slots moved without failsafe mode");
    n2.runner.shared.config.write().expect("config").global.failsafe_mode = true;
    n2.cycle().await;
    let moved = advances(&n2);
    for want in ["advance_slot perm 5000", "advance_slot n1 6000"] {
        assert!(moved.iter().any(|c| c == want), "{want} missing: {moved:?}");
    }
    let s = n2.pg.state();
    assert_eq!((s.slots["perm"].restart_lsn, s.slots["n1"].restart_lsn), (Some(5000), Some(6000)));
}

/// While failsafe mode keeps it running, the primary advances the slot of
/// a member that replicates from another member to the `lsn` that member
/// answered (Patroni's `update_slots`); a member streaming from it keeps
/// its slot as PostgreSQL moves it.
#[tokio::test]
async fn a_primary_in_failsafe_mode_advances_slots_of_cascading_members() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    enable_failsafe(&store);
    let accept = Arc::new(Mutex::new((200, "Accepted")));
    let peers = [
        ("n2", failsafe_peer_with(Arc::clone(&accept), "lsn: 7000\r\n").await, json!({})),
        ("n3", failsafe_peer_with(Arc::clone(&accept), "lsn: 9000\r\n").await, json!({"replicatefrom": "n2"})),
    ];
    for (name, api_url, tags) in &peers {
        let client = store.client(name, timing());
        let value = json!({"conn_url": format!("postgres://{name}:5432/postgres"), "api_url": api_url,
                           "state": "running", "role": "replica", "version": "4.1.4", "tags": tags,
                           "xlog_location": 100});
        assert!(client.touch_member(&value.to_string()).expect("touch_member"));
    }
    n1.cycle_until("the key names n2 and n3, n1 has their slots", 4, |n| {
        let key = failsafe_key(&store);
        let s = n.pg.state();
        key.get("n2").is_some() && key.get("n3").is_some() && s.slots.contains_key("n2") && s.slots.contains_key("n3")
    })
    .await;
    store.go_down();
    n1.cycle().await;
    assert!(is_primary(&n1) && n1.runner.shared.status.get().failsafe.is_active());
    assert_eq!(
        n1.runner.shared.status.get().failsafe.slots.clone().map(Value::Object),
        Some(json!({"n2": 7000, "n3": 9000}))
    );
    let moved = advances(&n1);
    assert!(moved.iter().any(|c| c == "advance_slot n3 9000"), "{moved:?}");
    assert!(!moved.iter().any(|c| c.starts_with("advance_slot n2 ")), "{moved:?}");
}

/// demote-cluster and promote-cluster as the runner carries them out: the
/// primary stops and starts again as the standby leader following the
/// remote primary, keeping the leader key; its replica keeps following it;
/// removing the section promotes the standby leader.
#[tokio::test]
async fn demote_cluster_then_promote_cluster() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    let mut n2 = node("n2", &store, false);
    n2.cycle_until("n2 follows n1", 6, |n| n.pg.state().following.as_deref() == Some("n1")).await;

    set_dynamic(&store, "standby_cluster", json!({"host": "10.0.0.9", "port": 5433}));
    n1.cycle_until("n1 is the standby leader", 4, |n| n.tracked().role == Role::StandbyLeader).await;
    let calls = n1.pg.state().calls;
    let tail: Vec<&str> = calls.iter().rev().take(2).rev().map(String::as_str).collect();
    assert_eq!(tail, ["stop fast", "start replica remote"], "{calls:?}");
    assert_eq!(store.value("leader").as_deref(), Some("n1"), "the leader key stays");
    assert!(n1.tracked().following_remote);
    n1.cycle().await;
    assert_eq!(member(&store, "n1")["role"], "standby_leader");
    // The replica points recovery at the standby leader again (with the
    // standby cluster's archive commands), and stays its replica.
    n2.cycle().await;
    assert_eq!(n2.pg.state().following.as_deref(), Some("n1"));
    assert_eq!(n2.tracked().role, Role::Replica);

    set_dynamic(&store, "standby_cluster", Value::Null);
    n1.cycle_until("n1 promotes", 4, |n| n.tracked().role == Role::Primary).await;
    assert!(!n1.pg.state().in_recovery);
    assert!(n1.pg.state().calls.iter().any(|c| c == "promote"));
}

/// demote-cluster with archiving on: once PostgreSQL is down, the WAL
/// segment holding the shutdown checkpoint goes to the archive with
/// archive_command, before the start as the standby leader (Patroni's
/// order); the leader key stays.
#[tokio::test]
async fn demote_cluster_archives_the_shutdown_checkpoint_when_archiving_is_on() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    let parameters = json!({"work_mem": "4MB", "archive_mode": "on", "archive_command": "cp %p /arch/%f"});
    set_dynamic(&store, "postgresql", json!({ "parameters": parameters }));
    n1.cycle_until("n1 has archiving on", 4, |n| {
        n.pg.state().settings.get("archive_command").and_then(Value::as_str) == Some("cp %p /arch/%f")
    })
    .await;

    set_dynamic(&store, "standby_cluster", json!({"host": "10.0.0.9", "port": 5433}));
    n1.cycle_until("n1 is the standby leader", 4, |n| n.tracked().role == Role::StandbyLeader).await;
    let calls = n1.pg.state().calls;
    let tail: Vec<&str> = calls.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(tail, ["stop fast", "archive shutdown checkpoint: cp %p /arch/%f", "start replica remote"], "{calls:?}");
    assert_eq!(store.value("leader").as_deref(), Some("n1"), "the leader key stays");
}

/// Failover inside a standby cluster: the replica that wins the lock
/// points recovery at the remote primary and, having changed sides from
/// replica to standby leader, fires `on_role_change standby_leader` (as
/// Patroni's follow does), not on_reload.
#[tokio::test]
async fn a_replica_that_becomes_the_standby_leader_fires_on_role_change() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    let recorder = Arc::new(Recorder::default());
    let mut n2 = node_with("n2", &store, false, Some(Arc::clone(&recorder) as Arc<dyn palisade_plugin_api::Callback>));
    n2.cycle_until("n2 follows n1", 6, |n| n.pg.state().following.as_deref() == Some("n1")).await;
    set_dynamic(&store, "standby_cluster", json!({"host": "10.0.0.9", "port": 5433}));
    n1.cycle_until("n1 is the standby leader", 4, |n| n.tracked().role == Role::StandbyLeader).await;
    n2.cycle().await;
    let before = recorder.calls().len();
    // The scripted replica's position lags the leader's last one.
    set_dynamic(&store, "maximum_lag_on_failover", json!(1u64 << 40));
    // n1 is gone: its key is released and its API does not answer.
    let leader = store.client("n1", timing()).get_cluster().expect("get_cluster").leader.expect("a leader key");
    assert!(store.client("n1", timing()).delete_leader(Some(&leader)).expect("delete_leader"));
    n2.cycle_until("n2 is the standby leader", 4, |n| n.tracked().role == Role::StandbyLeader).await;
    assert!(n2.tracked().following_remote);
    assert_eq!(recorder.calls()[before..], ["on_role_change standby_leader"]);
}

/// The leader key passes from `from` to `to`, a member that exists only in
/// the DCS (with a connection URL to follow).
fn move_leader(store: &Arc<MemoryStore>, from: &str, to: &str) {
    let leader = store.client(from, timing()).get_cluster().expect("get_cluster").leader.expect("a leader key");
    assert!(store.client(from, timing()).delete_leader(Some(&leader)).expect("delete_leader"));
    let client = store.client(to, timing());
    let conn = json!({"conn_url": format!("postgres://{to}:5432/postgres"), "api_url": "http://127.0.0.1:9/patroni",
                      "state": "running", "role": "primary", "version": "4.1.4"});
    assert!(client.touch_member(&conn.to_string()).expect("touch_member"));
    assert!(client.take_leader().expect("take_leader"));
}

/// A replica that follows a new leader fires what Patroni's follow fires:
/// `on_reload` when a reload applies the new recovery settings,
/// `on_restart` when they take a restart.
#[tokio::test]
async fn a_follow_fires_on_reload_or_on_restart_as_it_was_applied() {
    let store = MemoryStore::new();
    let _n1 = bootstrapped(&store).await;
    let recorder = Arc::new(Recorder::default());
    let mut n2 = node_with("n2", &store, false, Some(Arc::clone(&recorder) as Arc<dyn palisade_plugin_api::Callback>));
    n2.cycle_until("n2 follows n1", 6, |n| n.pg.state().following.as_deref() == Some("n1")).await;
    n2.cycle().await;
    let cases = [("n1", "n3", false, "on_reload replica"), ("n3", "n4", true, "on_restart replica")];
    for (from, to, restarts, want) in cases {
        let before = recorder.calls().len();
        n2.pg.with(|s| s.follow_restarts = restarts);
        move_leader(&store, from, to);
        n2.cycle_until(&format!("n2 follows {to}"), 4, |n| n.pg.state().following.as_deref() == Some(to)).await;
        n2.cycle().await;
        assert!(n2.pg.state().calls.iter().any(|c| *c == format!("follow {to}")), "{:?}", n2.pg.state().calls);
        assert_eq!(recorder.calls()[before..], [want], "following {to}");
    }
}

/// A reloaded file whose `log` section palisade would not start with (a
/// format Python could not apply) is not applied at all; once fixed, it is.
#[tokio::test]
async fn a_reload_with_a_bad_log_format_changes_nothing() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    let path = n1.runner.shared.config_path.clone().expect("a configuration file");
    let yaml = std::fs::read_to_string(&path).expect("read the configuration");
    let write = |log: &str| {
        std::fs::write(&path, format!("{yaml}tags: {{nosync: true}}\nlog: {{format: '{log}'}}\n")).expect("write")
    };
    write("%(nosuch)s");
    n1.runner.reload().await;
    let local = n1.runner.shared.config().local;
    assert!(local.tags.is_empty() && local.log.format == palisade_config::DEFAULT_LOG_FORMAT, "{local:?}");
    write("%(levelname)s %(message)s");
    n1.runner.reload().await;
    let local = n1.runner.shared.config().local;
    assert_eq!(local.tags.get("nosync"), Some(&json!(true)));
    assert_eq!(local.log.format, "%(levelname)s %(message)s");
}

/// An MPP plugin that records what the host calls (group `group`).
struct RecordingMpp {
    group: i32,
    calls: Arc<Mutex<Vec<String>>>,
}

impl palisade_plugin_api::Mpp for RecordingMpp {
    fn group(&self) -> i32 {
        self.group
    }
    fn coordinator_group(&self) -> i32 {
        0
    }
    fn set_local(&self, _: &palisade_plugin_api::MppLocal) -> palisade_plugin_api::PluginResult<()> {
        Ok(())
    }
    fn adjust_parameters(&self, parameters_json: &str) -> palisade_plugin_api::PluginResult<String> {
        Ok(parameters_json.to_string())
    }
    fn bootstrap(&self) -> palisade_plugin_api::PluginResult<()> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push("bootstrap".into());
        Ok(())
    }
    fn sync_meta_data(&self, clusters: &[palisade_plugin_api::MppCluster]) -> palisade_plugin_api::PluginResult<()> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(format!("sync_meta_data {}", clusters.len()));
        Ok(())
    }
    fn handle_event(&self, _: &[palisade_plugin_api::MppCluster], _: &str) -> palisade_plugin_api::PluginResult<()> {
        Ok(())
    }
    fn on_demote(&self) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push("on_demote".into());
    }
    fn schedule_cache_rebuild(&self) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push("schedule_cache_rebuild".into());
    }
    fn ignore_replication_slot(&self, slot: &palisade_plugin_api::MppSlot, _: bool) -> bool {
        slot.name.starts_with("citus_")
    }
}

/// The coordinator's first node: the plugin bootstraps after initdb, reads
/// its metadata again once PostgreSQL runs as a primary, and is asked to
/// sync the metadata on every cycle as the leader; its own slots are kept.
#[tokio::test]
async fn the_coordinator_calls_the_mpp_plugin_where_patroni_does() {
    let store = MemoryStore::new();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut n1 = node("n1", &store, true);
    let plugin = RecordingMpp { group: 0, calls: Arc::clone(&calls) };
    Arc::get_mut(&mut n1.runner.shared).expect("not shared yet").mpp =
        Some(Arc::new(crate::mpp::MppHost::new(Box::new(plugin))));
    n1.cycle_until("n1 leads", 6, |_| store.value("leader").as_deref() == Some("n1")).await;
    n1.pg.add_slot("citus_shard_move_slot_1_2_3");
    n1.pg.add_slot("stranger");
    n1.cycle().await;
    n1.cycle().await;
    let calls = calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let first = |what: &str| calls.iter().position(|c| c.starts_with(what));
    let bootstrap = first("bootstrap").expect("bootstrap called");
    let rebuild = first("schedule_cache_rebuild").expect("schedule_cache_rebuild called");
    let sync = first("sync_meta_data").expect("sync_meta_data called");
    assert!(bootstrap < sync && rebuild < sync, "{calls:?}");
    assert!(calls.iter().filter(|c| c.starts_with("sync_meta_data")).count() >= 2, "once per cycle: {calls:?}");
    let slots = n1.pg.state().slots;
    assert!(slots.contains_key("citus_shard_move_slot_1_2_3"), "the plugin's slot is kept: {slots:?}");
    assert!(!slots.contains_key("stranger"), "an unknown slot is dropped: {slots:?}");
}

/// What the watchdog device and the DCS were asked, in order.
type Journal = Arc<Mutex<Vec<String>>>;

fn note(journal: &Journal, what: &str) {
    journal.lock().unwrap_or_else(|p| p.into_inner()).push(what.to_string());
}

/// A DCS that notes each lock renewal in the journal, then renews.
struct NotingDcs {
    inner: Arc<dyn Dcs>,
    journal: Journal,
}

impl Dcs for NotingDcs {
    fn get_cluster(&self) -> palisade_plugin_api::PluginResult<palisade_plugin_api::DcsSnapshot> {
        self.inner.get_cluster()
    }
    fn attempt_to_acquire_leader(&self) -> palisade_plugin_api::PluginResult<bool> {
        note(&self.journal, "acquire");
        self.inner.attempt_to_acquire_leader()
    }
    fn update_leader(
        &self,
        leader: Option<&palisade_plugin_api::LeaderKey>,
    ) -> palisade_plugin_api::PluginResult<bool> {
        note(&self.journal, "renew");
        self.inner.update_leader(leader)
    }
    fn take_leader(&self) -> palisade_plugin_api::PluginResult<bool> {
        note(&self.journal, "take");
        self.inner.take_leader()
    }
    fn delete_leader(
        &self,
        leader: Option<&palisade_plugin_api::LeaderKey>,
    ) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.delete_leader(leader)
    }
    fn initialize(&self, create_new: bool, sysid: &str) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.initialize(create_new, sysid)
    }
    fn cancel_initialization(&self) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.cancel_initialization()
    }
    fn touch_member(&self, data: &str) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.touch_member(data)
    }
    fn set_config_value(&self, value: &str, version: Option<&str>) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.set_config_value(value, version)
    }
    fn set_failover_value(&self, value: &str, version: Option<&str>) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.set_failover_value(value, version)
    }
    fn set_sync_state_value(
        &self,
        value: &str,
        version: Option<&str>,
    ) -> palisade_plugin_api::PluginResult<Option<String>> {
        self.inner.set_sync_state_value(value, version)
    }
    fn delete_sync_state(&self, version: Option<&str>) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.delete_sync_state(version)
    }
    fn set_history_value(&self, value: &str) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.set_history_value(value)
    }
    fn write_status(&self, value: &str) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.write_status(value)
    }
    fn write_failsafe(&self, value: &str) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.write_failsafe(value)
    }
    fn delete_cluster(&self) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.delete_cluster()
    }
    fn set_timing(&self, timing: DcsTiming) -> palisade_plugin_api::PluginResult<()> {
        self.inner.set_timing(timing)
    }
    fn watch(&self, leader_version: Option<&str>, timeout: Duration) -> palisade_plugin_api::PluginResult<bool> {
        self.inner.watch(leader_version, timeout)
    }
    fn get_mpp_groups(
        &self,
    ) -> palisade_plugin_api::PluginResult<std::collections::BTreeMap<i32, palisade_plugin_api::DcsSnapshot>> {
        self.inner.get_mpp_groups()
    }
}

/// A watchdog device that notes what it is asked in the journal; with
/// `pg`, a close also notes whether PostgreSQL was running then.
struct NotingDevice {
    journal: Journal,
    open: bool,
    pg: Option<Arc<FakePg>>,
}

impl crate::watchdog::device::Device for NotingDevice {
    fn open(&mut self) -> Result<(), crate::watchdog::device::WatchdogError> {
        note(&self.journal, "open");
        self.open = true;
        Ok(())
    }
    fn close(&mut self) -> Result<(), crate::watchdog::device::WatchdogError> {
        if self.open {
            note(&self.journal, "close");
            if let Some(pg) = &self.pg {
                let when = if pg.state().running { "while PostgreSQL runs" } else { "once PostgreSQL stopped" };
                note(&self.journal, &format!("close {when}"));
            }
        }
        self.open = false;
        Ok(())
    }
    fn keepalive(&mut self) -> Result<(), crate::watchdog::device::WatchdogError> {
        note(&self.journal, "ping");
        Ok(())
    }
    fn has_set_timeout(&mut self) -> bool {
        false
    }
    fn set_timeout(&mut self, _: i64) -> Result<(), crate::watchdog::device::WatchdogError> {
        Ok(())
    }
    fn get_timeout(&mut self) -> Result<i64, crate::watchdog::device::WatchdogError> {
        Ok(20)
    }
    fn can_be_disabled(&mut self) -> bool {
        true
    }
    fn is_running(&self) -> bool {
        self.open
    }
    fn is_healthy(&self) -> bool {
        true
    }
    fn describe(&mut self) -> String {
        "noting device".into()
    }
}

/// n1 bootstraps with a watchdog (ttl 30, loop_wait 10, `safety_margin`)
/// whose device and DCS calls go to one journal; a few cycles as leader.
async fn leader_journal(safety_margin: i64) -> Vec<String> {
    let store = MemoryStore::new();
    let journal: Journal = Arc::default();
    let j = Arc::clone(&journal);
    let mut n1 = node_on("n1", &store, true, None, move |inner| Arc::new(NotingDcs { inner, journal: j }));
    let settings = crate::watchdog::WatchdogSettings {
        mode: palisade_ha::WatchdogMode::Required,
        timing: palisade_ha::WatchdogTiming { ttl: 30, loop_wait: 10, safety_margin },
        driver: "testing".into(),
        device: "/nowhere".into(),
    };
    let device = NotingDevice { journal: Arc::clone(&journal), open: false, pg: None };
    {
        // The configuration says the same, or the first cycle would
        // replace the device with the configured one.
        let mut config = n1.runner.shared.config.write().unwrap_or_else(|p| p.into_inner());
        let w = &mut config.local.watchdog;
        w.mode = "required".into();
        w.driver = "testing".into();
        w.device = "/nowhere".into();
        w.safety_margin = Duration::from_secs(safety_margin.unsigned_abs());
    }
    n1.runner.shared.with_watchdog(|w| *w = crate::watchdog::Watchdog::with_device(settings, Box::new(device)));
    n1.cycle_until("n1 leads", 6, |_| store.value("leader").as_deref() == Some("n1")).await;
    for _ in 0..3 {
        n1.cycle().await;
    }
    let journal = journal.lock().unwrap_or_else(|p| p.into_inner()).clone();
    journal
}

/// A leader that loses its key demotes, and closes its watchdog once
/// PostgreSQL takes no more writes, while it still shuts down (Patroni's
/// safepoint), not once it has stopped: a shutdown can wait long for a WAL
/// sender whose replica is cut off, and the device must not fire meanwhile.
#[tokio::test]
async fn a_demotion_closes_the_watchdog_at_the_safepoint_before_postgres_is_down() {
    let store = MemoryStore::new();
    let journal: Journal = Arc::default();
    let mut n1 = node("n1", &store, true);
    let settings = crate::watchdog::WatchdogSettings {
        mode: palisade_ha::WatchdogMode::Required,
        timing: palisade_ha::WatchdogTiming { ttl: 30, loop_wait: 10, safety_margin: 5 },
        driver: "testing".into(),
        device: "/nowhere".into(),
    };
    {
        let mut config = n1.runner.shared.config.write().unwrap_or_else(|p| p.into_inner());
        let w = &mut config.local.watchdog;
        w.mode = "required".into();
        w.driver = "testing".into();
        w.device = "/nowhere".into();
        w.safety_margin = Duration::from_secs(5);
    }
    let device = NotingDevice { journal: Arc::clone(&journal), open: false, pg: Some(Arc::clone(&n1.pg)) };
    n1.runner.shared.with_watchdog(|w| *w = crate::watchdog::Watchdog::with_device(settings, Box::new(device)));
    n1.cycle_until("n1 leads", 6, |_| store.value("leader").as_deref() == Some("n1")).await;
    n1.cycle().await;
    assert!(journal.lock().unwrap_or_else(|p| p.into_inner()).contains(&"open".to_string()));

    let n2 = store.client("n2", timing());
    let conn = json!({"conn_url": "postgres://n2:5432/postgres", "api_url": "http://127.0.0.1:9/patroni",
                      "state": "running", "role": "primary", "version": "4.1.4"});
    assert!(n2.touch_member(&conn.to_string()).expect("touch_member"));
    assert!(n2.take_leader().expect("take_leader"));
    n1.cycle_until("n1 stopped its primary", 4, |n| n.pg.state().calls.iter().any(|c| c.starts_with("stop"))).await;
    let journal = journal.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let closes: Vec<&String> = journal.iter().filter(|e| e.starts_with("close ")).collect();
    assert_eq!(closes, ["close while PostgreSQL runs"], "{journal:?}");
    assert!(!n1.runner.shared.with_watchdog(|w| w.is_running()));
}

/// The device is armed before the leader key is taken after a bootstrap,
/// and fed before each renewal while the new deadline (now + 25 s) falls
/// inside the lease held (the cycles here follow each other at once).
#[tokio::test]
async fn the_watchdog_is_armed_before_the_lock_and_fed_before_each_renewal() {
    let journal = leader_journal(5).await;
    let open = journal.iter().position(|e| e == "open").expect("the device was opened");
    let take = journal.iter().position(|e| e == "take").expect("the key was taken");
    assert!(open < take, "{journal:?}");
    let renewals: Vec<usize> = journal.iter().enumerate().filter(|(_, e)| *e == "renew").map(|(i, _)| i).collect();
    assert!(renewals.len() >= 3, "{journal:?}");
    for i in renewals {
        assert_eq!(journal[i - 1], "ping", "renewal {i} not preceded by a keepalive: {journal:?}");
    }
    assert!(!journal.contains(&"close".to_string()), "{journal:?}");
}

/// With no safety margin the device's deadline would outlive the lease
/// held, so it is fed after each successful renewal, as Patroni does.
#[tokio::test]
async fn without_a_margin_the_watchdog_is_fed_after_the_renewal() {
    let journal = leader_journal(0).await;
    let take = journal.iter().position(|e| e == "take").expect("the key was taken");
    let after: Vec<&str> = journal[take + 1..].iter().map(String::as_str).collect();
    assert!(after.len() >= 6, "{journal:?}");
    for pair in after.chunks(2) {
        assert_eq!(pair, ["renew", "ping"], "{journal:?}");
    }
}

/// A watch that answers at once every time (a broken DCS plugin; found by
/// `tests/tests/plugin_garbage.rs`, where the daemon ran a cycle every
/// millisecond) is acted on at once the first time, then backs off up to
/// the nap; a watch that waited for its event is always acted on at once
/// (on etcd's v2 API every renewal of the leader key wakes the replicas,
/// and the leader race must start on the deletion that follows).
#[test]
fn a_watch_that_answers_at_once_backs_off_one_that_waited_never_does() {
    let nap = Duration::from_secs(1);
    let ms = Duration::from_millis;
    let zero = Duration::ZERO;
    // (ok, woke after, quick wakes before) -> (rest, quick wakes after)
    let table: [(bool, Duration, u32, Duration, u32); 10] = [
        // A leader change: acted on at once.
        (true, ms(1), 0, zero, 1),
        // At once again: a back-off, doubling, up to the rest of the nap.
        (true, ms(1), 1, ms(100), 2),
        (true, ms(1), 2, ms(200), 3),
        (true, ms(1), 3, ms(400), 4),
        (true, ms(1), 4, ms(800), 5),
        (true, ms(1), 9, ms(999), 10),
        // Waited for its event (a renewal, the key's deletion): at once,
        // whatever came before, and the count starts again.
        (true, ms(300), 9, zero, 0),
        (true, ms(300), 0, zero, 0),
        // A failed watch waits out the nap.
        (false, ms(1), 0, ms(999), 0),
        // A watch that waited the whole nap.
        (true, nap, 3, zero, 0),
    ];
    for (ok, woke, before, rest, after) in table {
        assert_eq!(super::rest_after_watch(ok, woke, nap, before), (rest, after), "{ok} {woke:?} {before}");
    }
    // A huge count never overflows.
    assert_eq!(super::rest_after_watch(true, ms(1), nap, u32::MAX), (ms(999), u32::MAX));
    // A long nap (loop_wait at a year): the back-off stops at 1 s, since
    // the loop does not watch while it rests.
    let year = Duration::from_secs(31_536_000);
    for (before, rest) in [(1, ms(100)), (4, ms(800)), (5, ms(1000)), (20, ms(1000)), (u32::MAX, ms(1000))] {
        assert_eq!(super::rest_after_watch(true, ms(1), year, before), (rest, before.saturating_add(1)), "{before}");
    }
}

/// A DCS listing far more members than the server has replication slots
/// (found by `tests/tests/plugin_garbage.rs`: 10,000 members, an ERROR line
/// per member every cycle): the leader stops after a few failed creations
/// in a row each cycle.
#[tokio::test]
async fn a_leader_stops_creating_slots_after_failures_in_a_row() {
    let store = MemoryStore::new();
    let mut n1 = bootstrapped(&store).await;
    n1.pg.with(|s| s.max_slots = Some(4));
    for i in 0..50 {
        let value = json!({"role": "replica", "state": "running", "conn_url": "postgres://127.0.0.1:1/postgres",
            "api_url": "http://127.0.0.1:1/patroni"});
        store.write_raw(&format!("members/m{i:02}"), value.to_string().as_bytes());
    }
    for cycle in 0..3 {
        n1.pg.with(|s| s.calls.clear());
        n1.cycle().await;
        let creates = n1.pg.state().calls.iter().filter(|c| c.starts_with("create_slot")).count();
        assert!(creates <= 4 + 3, "cycle {cycle}: {creates} slot creations: {:?}", n1.pg.state().calls);
        assert!(creates >= 3, "cycle {cycle}: no slot creation tried: {:?}", n1.pg.state().calls);
    }
    assert_eq!(n1.pg.state().slots.len(), 4);
}
