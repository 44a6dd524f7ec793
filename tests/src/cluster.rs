//! A palisade cluster of real processes for tests: one DCS server (etcd
//! by default, see [`crate::dcs`]), N PostgreSQL servers and N palisade
//! (or Patroni) daemons on 127.0.0.1, run as the unprivileged
//! test user from a staging directory, every process stopped on drop (also
//! when the test panics).
#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use palisade_test_support::{
    become_subreaper, command_as_test_user, free_port, pg_bin_dir, pid_alive, signal, target_dir, wait_for, wait_until,
    ProcessGuard, Staging,
};

use crate::dcs::{DcsBackend, TestDcs, ZooKeeperDcs};
use crate::etcd::EtcdServer;
use crate::http;

/// The plugins every cluster needs besides its DCS plugin, copied next to
/// the binaries.
const PLUGINS: &[&str] = &[
    "libpalisade_replica_basebackup.so",
    "libpalisade_replica_command.so",
    "libpalisade_replica_pgbackrest.so",
    "libpalisade_replica_walg.so",
    "libpalisade_callback_script.so",
];

/// The superuser's password in every test cluster.
pub const SUPERUSER_PASSWORD: &str = "test-superuser-pw";

/// Which daemon runs the nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    #[default]
    Palisade,
    /// Patroni from a Python virtualenv (its `bin/patroni`), for
    /// side-by-side benchmarks: it reads the very same configuration.
    Patroni { venv: PathBuf },
}

/// How to build a cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub engine: Engine,
    /// The DCS the cluster runs on (etcd3 unless a test says otherwise).
    pub dcs: DcsBackend,
    pub nodes: usize,
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
    /// More keys for `bootstrap.dcs`, as YAML lines indented by 4 spaces.
    pub extra_dcs: String,
    /// Lines added to every node's `restapi` section (indented by two).
    pub restapi_extra: String,
    /// More top-level YAML for node `i` (0-based), e.g. `tags:` or `restapi:` extras.
    pub node_extra: fn(usize) -> String,
    /// Nodes (0-based) run by Patroni from this virtualenv instead of
    /// `engine`: a mixed cluster, as during a rolling migration.
    pub patroni_nodes: Vec<usize>,
    pub patroni_venv: Option<PathBuf>,
    /// ERROR lines this test expects (substrings). Any other ERROR or
    /// CRITICAL line of palisade's, or a panic, fails the test when the
    /// cluster is dropped.
    pub allowed_errors: Vec<&'static str>,
    /// Lines added to the `superuser` and `replication` roles of
    /// `postgresql.authentication` (indented by six), e.g. `sslmode:`.
    pub auth_extra: String,
    /// A `rewind` role: its lines, indented by six.
    pub rewind_auth: Option<String>,
    /// Lines added to `postgresql` (indented by two) and to
    /// `postgresql.parameters` (indented by four).
    pub postgresql_extra: String,
    pub parameters_extra: String,
    /// Replaces the `pg_hba` rows (`  - row` lines, indented by four).
    pub pg_hba: Option<String>,
    /// Environment of the harness's own psql (`PGSSLMODE`, `PGSSLCERT`...).
    pub psql_env: Vec<(String, String)>,
    /// `wal_level` of the dynamic configuration (`logical` for logical slots).
    pub wal_level: &'static str,
    /// Run `palisade` (and `palisadectl`) from this directory, with the
    /// plugins it finds by default, instead of staging the build
    /// directory's: `/usr/bin` once the Debian packages are installed.
    pub installed_bin_dir: Option<PathBuf>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            engine: Engine::Palisade,
            dcs: DcsBackend::default(),
            nodes: 3,
            ttl: 5,
            loop_wait: 1,
            retry_timeout: 2,
            extra_dcs: String::new(),
            restapi_extra: String::new(),
            node_extra: |_| String::new(),
            patroni_nodes: Vec::new(),
            patroni_venv: None,
            allowed_errors: Vec::new(),
            auth_extra: String::new(),
            rewind_auth: None,
            postgresql_extra: String::new(),
            parameters_extra: String::new(),
            pg_hba: None,
            psql_env: Vec::new(),
            wal_level: "replica",
            installed_bin_dir: None,
        }
    }
}

impl ClusterSpec {
    /// This spec with node2 run by Patroni 4.1 (a mixed cluster), with
    /// timings both accept: Patroni raises ttl below 20 and retry_timeout
    /// below 3.
    pub fn with_patroni_node2(self) -> Self {
        Self {
            ttl: 20,
            loop_wait: 2,
            retry_timeout: 3,
            patroni_nodes: vec![1],
            patroni_venv: Some(crate::patroni::venv()),
            ..self
        }
    }
}

/// One member: its ports, files and daemon process.
pub struct Node {
    pub name: String,
    pub api_port: u16,
    pub pg_port: u16,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// Environment of the harness's psql for this node.
    pub psql_env: Vec<(String, String)>,
    process: Option<ProcessGuard>,
}

impl Node {
    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The log after the last `Cluster::mark(mark)` line.
    pub fn log_after(&self, mark: &str) -> String {
        let log = self.log();
        let needle = format!("----- TEST: {mark} -----");
        match log.rfind(&needle) {
            Some(i) => log[i + needle.len()..].to_string(),
            None => log,
        }
    }

    /// The postmaster's PID from `postmaster.pid`, if the file is there.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The daemon's PID.
    pub fn daemon_pid(&self) -> Option<i32> {
        self.process.as_ref().map(ProcessGuard::pid)
    }

    pub fn daemon_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ProcessGuard::alive)
    }

    /// `GET path` on this node's REST API.
    pub fn get(&self, path: &str) -> Result<http::Response, String> {
        http::get(self.api_port, path)
    }

    /// `method path` on this node's REST API with an optional JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> http::Response {
        http::request(self.api_port, method, path, body, &[])
            .unwrap_or_else(|e| panic!("{}: {method} {path}: {e}", self.name))
    }

    /// Stop PostgreSQL behind the daemon's back (`pg_ctl stop -m fast`).
    pub fn stop_postgres(&self) {
        let status = command_as_test_user(pg_bin_dir().join("pg_ctl"))
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "{}: pg_ctl stop failed", self.name);
    }

    /// Run SQL as the superuser; the rows as `|`-separated lines.
    pub fn sql(&self, query: &str) -> Result<String, String> {
        psql_with(self.pg_port, &self.psql_env, query)
    }
}

/// Run `query` with psql against `127.0.0.1:port` as the superuser.
pub fn psql(port: u16, query: &str) -> Result<String, String> {
    psql_with(port, &[], query)
}

/// `psql` with more environment (libpq's `PGSSLMODE`...).
pub fn psql_with(port: u16, env: &[(String, String)], query: &str) -> Result<String, String> {
    psql_in(port, "postgres", env, query)
}

/// `psql` in database `db` as the superuser, with more environment; the
/// rows as `|`-separated lines.
pub fn psql_in(port: u16, db: &str, env: &[(String, String)], query: &str) -> Result<String, String> {
    let out = Command::new(pg_bin_dir().join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", db])
        .arg("-c")
        .arg(query)
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "3")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A running test cluster.
pub struct Cluster {
    pub scope: String,
    /// The DCS server and raw access to its keys.
    pub dcs: Box<dyn TestDcs>,
    pub nodes: Vec<Node>,
    pub spec: ClusterSpec,
    bin: PathBuf,
    staging: Staging,
    /// See [`ClusterSpec::allowed_errors`]; [`Cluster::allow_errors`] adds more.
    allowed_errors: Vec<String>,
}

/// Copy the daemon, palisadectl (when built), `dcs`'s plugin and the other
/// plugins into `staging` (the build directory may be under /root, which
/// the test user cannot enter). Returns the `bin` directory; plugins go to
/// the default location next to it (`../lib/palisade/plugins`).
pub fn stage_binaries(staging: &Staging, dcs: &DcsBackend) -> PathBuf {
    let target = target_dir();
    for name in ["palisade", "palisadectl"] {
        let path = target.join(name);
        if path.exists() {
            staging.install(&path, &format!("bin/{name}"));
        } else if name == "palisade" {
            panic!("{} is missing: run `cargo build --workspace` first", path.display());
        }
    }
    for plugin in PLUGINS.iter().chain([&dcs.plugin_file]) {
        let path = target.join(plugin);
        assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
        staging.install(&path, &format!("lib/palisade/plugins/{plugin}"));
    }
    staging.path().join("bin")
}

/// What a cluster whose nodes are all run by Patroni needs staged: the
/// ctl binaries when built (no plugins: the DCS may have no plugin yet).
fn stage_binaries_for_patroni(staging: &Staging) -> PathBuf {
    let target = target_dir();
    for name in ["palisade", "palisadectl"] {
        let path = target.join(name);
        if path.exists() {
            staging.install(&path, &format!("bin/{name}"));
        }
    }
    staging.path().join("bin")
}

impl Cluster {
    /// Start the DCS and `spec.nodes` members; returns once the first node
    /// leads and every other node streams from it.
    pub fn start(label: &str, spec: ClusterSpec) -> Self {
        let mut cluster = Self::start_first(label, spec.clone());
        for i in 1..spec.nodes {
            cluster.start_node(i);
        }
        if spec.nodes > 1 {
            let leader = cluster.leader().unwrap_or_default();
            cluster.wait_streaming(&leader, spec.nodes - 1, Duration::from_secs(90));
        }
        cluster
    }

    /// Start the DCS and the first node only; returns once it leads. The
    /// other nodes are configured (their files can still be changed) and
    /// started with [`Cluster::start_node`].
    pub fn start_first(label: &str, spec: ClusterSpec) -> Self {
        let mut cluster = Self::prepare(label, spec);
        // Bootstrap with the first node, then add the others so the leader
        // is known in advance.
        cluster.start_node(0);
        cluster.wait_for_leader(Duration::from_secs(60));
        cluster
    }

    /// Start a standby cluster (`spec.extra_dcs` holds its
    /// `standby_cluster` section): the DCS, the first node, which becomes the
    /// standby leader, then the others, streaming from it. Returns once
    /// every replica streams.
    pub fn start_standby(label: &str, spec: ClusterSpec) -> Self {
        let mut cluster = Self::prepare(label, spec.clone());
        cluster.start_node(0);
        let leader = cluster.wait_for_standby_leader(Duration::from_secs(90));
        for i in 1..spec.nodes {
            cluster.start_node(i);
        }
        if spec.nodes > 1 {
            cluster.wait_streaming(&leader, spec.nodes - 1, Duration::from_secs(90));
        }
        cluster
    }

    /// Wait until a member holds the leader key and serves as a standby
    /// leader (`GET /patroni` says `standby_leader`, PostgreSQL in recovery).
    pub fn wait_for_standby_leader(&self, timeout: Duration) -> String {
        wait_for("a standby leader", timeout, || {
            let leader = self.leader()?;
            let node = self.nodes.iter().find(|n| n.name == leader)?;
            let body = node.get("/patroni").ok()?.json();
            (body["role"] == "standby_leader"
                && body["state"] == "running"
                && node.sql("SELECT pg_is_in_recovery()").ok()? == "t")
                .then_some(leader)
        })
    }

    /// The DCS running and every node's configuration written, no daemon
    /// started yet (see `start_node`).
    pub fn prepare(label: &str, spec: ClusterSpec) -> Self {
        become_subreaper();
        let staging = Staging::new(label);
        // Nodes all run by Patroni on a DCS without a plugin yet: no plugins
        // to stage (palisadectl needs the DCS plugin, so it is staged
        // whenever it is built).
        let all_patroni = matches!(spec.engine, Engine::Patroni { .. })
            || (spec.patroni_venv.is_some() && (0..spec.nodes).all(|i| spec.patroni_nodes.contains(&i)));
        let bin = if let Some(installed) = &spec.installed_bin_dir {
            installed.clone()
        } else if all_patroni && !spec.dcs.is_built(&target_dir()) {
            stage_binaries_for_patroni(&staging)
        } else {
            stage_binaries(&staging, &spec.dcs)
        };
        let dcs = (spec.dcs.start)(label);
        let scope = format!("{label}-{}", std::process::id());
        let allowed_errors = spec.allowed_errors.iter().map(|e| e.to_string()).collect();
        let mut cluster = Self { scope, dcs, nodes: Vec::new(), spec: spec.clone(), bin, staging, allowed_errors };
        for i in 0..spec.nodes {
            let node = cluster.make_node(i);
            cluster.dcs.prepare_member(&cluster.scope, &node.name);
            cluster.nodes.push(node);
        }
        cluster
    }

    fn make_node(&self, i: usize) -> Node {
        let name = format!("node{}", i + 1);
        let api_port = free_port();
        let pg_port = free_port();
        let run = self.staging.dir(&format!("run/{name}"), 0o700);
        let data_dir = self.staging.path().join("data").join(&name);
        self.staging.dir("data", 0o755);
        let log_path = self.staging.path().join(format!("{name}.log"));
        let spec = &self.spec;
        let config = format!(
            "scope: {scope}\n\
             name: {name}\n\
             log:\n  level: INFO\n\
             restapi:\n  listen: 127.0.0.1:{api_port}\n  connect_address: 127.0.0.1:{api_port}\n{restapi_extra}\
             {dcs_section}\
             bootstrap:\n  dcs:\n    ttl: {ttl}\n    loop_wait: {loop_wait}\n    retry_timeout: {retry}\n    \
             maximum_lag_on_failover: 1048576\n    postgresql:\n      use_slots: true\n      parameters:\n        \
             wal_level: {wal_level}\n        hot_standby: 'on'\n        max_wal_senders: 10\n        max_replication_slots: 10\n        \
             wal_log_hints: 'on'\n{extra_dcs}  initdb:\n    - encoding: UTF8\n    - data-checksums\n\
             postgresql:\n  listen: 127.0.0.1:{pg_port}\n  connect_address: 127.0.0.1:{pg_port}\n  data_dir: {data}\n  \
             bin_dir: {bin_dir}\n  pgpass: {run}/pgpass\n{postgresql_extra}  authentication:\n    superuser:\n      \
             username: postgres\n      password: {pw}\n{auth_extra}    replication:\n      username: replicator\n      \
             password: test-replication-pw\n{auth_extra}{rewind}  parameters:\n    unix_socket_directories: '{run}'\n    \
             shared_buffers: 16MB\n{parameters_extra}  pg_hba:\n{pg_hba}{node_extra}",
            scope = self.scope,
            dcs_section = self.dcs.yaml_section(),
            ttl = spec.ttl,
            loop_wait = spec.loop_wait,
            retry = spec.retry_timeout,
            wal_level = spec.wal_level,
            extra_dcs = spec.extra_dcs,
            restapi_extra = spec.restapi_extra,
            data = data_dir.display(),
            bin_dir = pg_bin_dir().display(),
            run = run.display(),
            pw = SUPERUSER_PASSWORD,
            node_extra = (spec.node_extra)(i),
            postgresql_extra = spec.postgresql_extra,
            auth_extra = spec.auth_extra,
            rewind = spec.rewind_auth.as_ref().map(|r| format!("    rewind:\n{r}")).unwrap_or_default(),
            parameters_extra = spec.parameters_extra,
            pg_hba = spec.pg_hba.clone().unwrap_or_else(|| {
                "    - local all all trust\n    - host replication replicator 127.0.0.1/32 scram-sha-256\n    \
                 - host all all 127.0.0.1/32 scram-sha-256\n"
                    .to_string()
            }),
        );
        let config_path = self.staging.write(&format!("{name}.yml"), &config, 0o644);
        let psql_env = spec.psql_env.clone();
        Node { name, api_port, pg_port, config: config_path, data_dir, log_path, psql_env, process: None }
    }

    /// The staging directory (configs, logs, data).
    pub fn dir(&self) -> &Path {
        self.staging.path()
    }

    /// Write a file into the staging directory, owned by the test user.
    pub fn write(&self, relative: &str, contents: &str, mode: u32) -> PathBuf {
        self.staging.write(relative, contents, mode)
    }

    /// The staged `bin` directory (palisade, palisadectl).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Start (or start again) the daemon of node `i`.
    pub fn start_node(&mut self, i: usize) {
        let log = OpenOptions::new().create(true).append(true).open(&self.nodes[i].log_path).unwrap();
        let engine = match &self.spec.patroni_venv {
            Some(venv) if self.spec.patroni_nodes.contains(&i) => Engine::Patroni { venv: venv.clone() },
            _ => self.spec.engine.clone(),
        };
        let node = &mut self.nodes[i];
        let daemon = match &engine {
            Engine::Palisade => self.bin.join("palisade"),
            Engine::Patroni { venv } => venv.join("bin/patroni"),
        };
        let mut cmd = command_as_test_user(daemon);
        cmd.arg(&node.config).stdout(log.try_clone().unwrap()).stderr(log).current_dir(self.staging.path());
        cmd.envs(self.dcs.node_env());
        node.process = Some(ProcessGuard::spawn(&node.name, cmd).unwrap());
    }

    /// Insert row (`id`, `text`) into table `t` (created when missing) on
    /// `node`; panics naming the node when it fails.
    pub fn insert(&self, node: &str, id: i32, text: &str) {
        self.node(node)
            .sql(&format!(
                "CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, v text); INSERT INTO t VALUES ({id}, '{text}')"
            ))
            .unwrap_or_else(|e| panic!("insert on {node}: {e}"));
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn index(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The DCS key prefix of this cluster.
    pub fn prefix(&self) -> String {
        format!("/service/{}/", self.scope)
    }

    /// The full DCS path of this cluster's key `name` (`leader`,
    /// `members/node1`...).
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix())
    }

    /// The raw value of this cluster's key `name`, `None` when absent.
    pub fn read_key(&self, name: &str) -> Option<Vec<u8>> {
        self.dcs.get(&self.key(name))
    }

    /// This cluster's key `name` parsed as JSON (`None` when absent or
    /// not JSON).
    pub fn read_json(&self, name: &str) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.read_key(name)?).ok()
    }

    /// Write `value` at this cluster's key `name`, behind the daemons' backs.
    pub fn write_key(&self, name: &str, value: &[u8]) {
        self.dcs.put(&self.key(name), value);
    }

    /// Every key of this cluster (full paths) with its value.
    pub fn keys(&self) -> Vec<(String, Vec<u8>)> {
        self.dcs.list(&self.prefix())
    }

    /// The etcd behind the DCS, for tests of etcd-only features; panics
    /// when the cluster runs on another DCS.
    pub fn etcd(&self) -> &EtcdServer {
        self.dcs.etcd().unwrap_or_else(|| panic!("this test needs etcd, not {}", self.spec.dcs.name))
    }

    /// The ZooKeeper behind the DCS, for tests of ZooKeeper sessions;
    /// panics when the cluster runs on another DCS.
    pub fn zookeeper(&self) -> &ZooKeeperDcs {
        self.dcs.zookeeper().unwrap_or_else(|| panic!("this test needs ZooKeeper, not {}", self.spec.dcs.name))
    }

    /// The environment the DCS wants every daemon and ctl to have.
    pub fn dcs_env(&self) -> Vec<(String, String)> {
        self.dcs.node_env()
    }

    /// `--dcs-url` for palisadectl and patronictl.
    pub fn dcs_url(&self) -> String {
        self.dcs.dcs_url()
    }

    /// The leader key's value now.
    pub fn leader(&self) -> Option<String> {
        let value = self.read_key("leader")?;
        Some(String::from_utf8_lossy(&value).into_owned()).filter(|s| !s.is_empty())
    }

    /// Wait until a leader holds the lock and its PostgreSQL accepts writes.
    pub fn wait_for_leader(&self, timeout: Duration) -> String {
        wait_for("a leader that accepts writes", timeout, || {
            let leader = self.leader()?;
            let node = self.nodes.iter().find(|n| n.name == leader)?;
            (node.sql("SELECT pg_is_in_recovery()").ok()? == "f").then_some(leader)
        })
    }

    /// Wait for a leader other than `old`.
    pub fn wait_for_new_leader(&self, old: &str, timeout: Duration) -> String {
        wait_for("a new leader that accepts writes", timeout, || {
            let leader = self.leader().filter(|l| l != old)?;
            let node = self.nodes.iter().find(|n| n.name == leader)?;
            (node.sql("SELECT pg_is_in_recovery()").ok()? == "f").then_some(leader)
        })
    }

    /// The members streaming from `leader` (`pg_stat_replication`; other
    /// streams, such as pg_basebackup's, are not members).
    pub fn streaming_from(&self, leader: &str) -> Vec<String> {
        self.node(leader)
            .sql("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1")
            .map(|s| {
                s.lines()
                    .filter(|n| {
                        // A member, running as a standby (not a base backup
                        // still copying under the member's name).
                        self.nodes
                            .iter()
                            .any(|m| m.name == *n && m.sql("SELECT pg_is_in_recovery()").as_deref() == Ok("t"))
                    })
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wait until `count` replicas stream from `leader`.
    pub fn wait_streaming(&self, leader: &str, count: usize, timeout: Duration) -> Vec<String> {
        wait_for(&format!("{count} replica(s) streaming from {leader}"), timeout, || {
            let names = self.streaming_from(leader);
            (names.len() >= count).then_some(names)
        })
    }

    /// Wait until `query` returns `expected` on node `name`.
    pub fn wait_sql(&self, name: &str, query: &str, expected: &str, timeout: Duration) {
        let node = self.node(name);
        let ok = wait_until(timeout, || node.sql(query).is_ok_and(|r| r == expected));
        assert!(ok, "{name}: `{query}` did not return {expected:?} within {timeout:?}; last: {:?}", node.sql(query));
    }

    /// kill -9 the daemon of `name` and, with `postmaster`, its PostgreSQL.
    pub fn kill9(&mut self, name: &str, postmaster: bool) {
        let i = self.index(name);
        let pm = self.nodes[i].postmaster_pid();
        if let Some(p) = self.nodes[i].process.as_mut() {
            p.kill9();
        }
        if postmaster {
            if let Some(pid) = pm {
                signal(pid, Signal::SIGKILL);
                assert!(wait_until(Duration::from_secs(10), || !pid_alive(pid)), "postmaster {pid} survived SIGKILL");
            }
        }
    }

    /// SIGTERM the daemon of `name` and wait for it to exit.
    pub fn stop_node(&mut self, name: &str, timeout: Duration) -> bool {
        let i = self.index(name);
        match self.nodes[i].process.as_mut() {
            Some(p) => {
                p.signal(Signal::SIGTERM);
                p.wait_exit(timeout)
            }
            None => true,
        }
    }

    /// palisade's ERROR lines in the logs of the nodes palisade runs
    /// (PostgreSQL's own output, which shares the file, is not palisade's,
    /// and neither are the lines of nodes Patroni runs), except those
    /// matching `allowed`.
    pub fn unexpected_errors(&self, allowed: &[&str]) -> Vec<String> {
        let is_ours = |line: &str| {
            // `2026-01-31 12:00:00,123 LEVEL: ...`
            line.len() > 24 && line.as_bytes()[19] == b',' && line.as_bytes()[23] == b' '
        };
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            // Patroni's own ERROR lines are Patroni's business.
            let patroni = matches!(self.spec.engine, Engine::Patroni { .. })
                || (self.spec.patroni_venv.is_some() && self.spec.patroni_nodes.contains(&i));
            if patroni {
                continue;
            }
            for line in n.log().lines() {
                let bad = (is_ours(line) && (line[24..].starts_with("ERROR:") || line[24..].starts_with("CRITICAL:")))
                    || line.contains("panicked at");
                if bad && !allowed.iter().any(|a| line.contains(a)) {
                    out.push(format!("{}: {line}", n.name));
                }
            }
        }
        out
    }

    /// ERROR lines (substrings) this test expects from now on, besides
    /// those of [`ClusterSpec::allowed_errors`].
    pub fn allow_errors(&mut self, patterns: &[&str]) {
        self.allowed_errors.extend(patterns.iter().map(|p| p.to_string()));
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("===== {} =====\n{}", n.name, n.log())).collect::<Vec<_>>().join("\n")
    }

    /// Write a log line into every node's log file (to mark test phases).
    pub fn mark(&self, text: &str) {
        use std::io::Write;
        for n in &self.nodes {
            if let Ok(mut f) = OpenOptions::new().append(true).open(&n.log_path) {
                let _ = writeln!(f, "----- TEST: {text} -----");
            }
        }
    }

    /// The timeline `GET /patroni` of `name` reports (0 when it does not).
    pub fn timeline(&self, name: &str) -> u64 {
        self.node(name).get("/patroni").ok().and_then(|r| r.json()["timeline"].as_u64()).unwrap_or(0)
    }

    /// Restart the DCS under a healthy cluster (stopped for `downtime`,
    /// then started again on the same data) and watch for `settle` more:
    /// with the leader's session (lease, TTL key, ZooKeeper session)
    /// surviving, nothing may happen. Panics unless the leader kept its
    /// key throughout, its PostgreSQL never left read-write, no other
    /// member became a primary, the timeline did not move and nobody
    /// logged a demotion.
    pub fn assert_dcs_restart_keeps_the_leader(&mut self, downtime: Duration, settle: Duration) {
        let leader = self.wait_for_leader(Duration::from_secs(60));
        let timeline = self.timeline(&leader);
        assert!(timeline > 0, "{leader} reports no timeline");
        let primaries = |c: &Self| -> Vec<String> {
            c.nodes
                .iter()
                .filter(|n| n.sql("SELECT pg_is_in_recovery()").as_deref() == Ok("f"))
                .map(|n| n.name.clone())
                .collect()
        };
        let mark = "the DCS restarts";
        self.mark(mark);
        self.dcs.stop();
        // The store is down: only PostgreSQL is watched (a raw read of a
        // stopped store fails).
        let until = Instant::now() + downtime;
        while Instant::now() < until {
            assert_eq!(
                primaries(self),
                vec![leader.clone()],
                "while the DCS is down:
{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.mark("the DCS is back");
        self.dcs.start_again();
        let until = Instant::now() + settle;
        while Instant::now() < until {
            let now = self.leader();
            assert_eq!(
                now.as_deref(),
                Some(leader.as_str()),
                "the leader key after the DCS restart:
{}",
                self.logs()
            );
            assert_eq!(
                primaries(self),
                vec![leader.clone()],
                "after the DCS restart:
{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(
            self.timeline(&leader),
            timeline,
            "the timeline moved:
{}",
            self.logs()
        );
        for n in &self.nodes {
            let log = n.log_after(mark);
            assert!(
                !log.contains("demoted self") && !log.contains("promoted self"),
                "{}:
{log}",
                n.name
            );
        }
    }

    /// SIGSTOP the daemon of `name` (its PostgreSQL keeps running) and
    /// wait until every thread of it stopped.
    pub fn freeze_daemon(&self, name: &str) {
        let pid = self.node(name).daemon_pid().unwrap_or_else(|| panic!("{name} has no daemon"));
        signal(pid, Signal::SIGSTOP);
        let stopped = wait_until(Duration::from_secs(5), || palisade_test_support::all_threads_stopped(pid));
        assert!(stopped, "{name}'s daemon did not stop");
    }

    /// SIGCONT the daemon of `name` after [`Cluster::freeze_daemon`].
    pub fn thaw_daemon(&self, name: &str) {
        let pid = self.node(name).daemon_pid().unwrap_or_else(|| panic!("{name} has no daemon"));
        signal(pid, Signal::SIGCONT);
    }

    /// Sample which nodes' PostgreSQL accept writes, every 100 ms, from
    /// now until [`PrimaryWatch::finish`].
    pub fn watch_primaries(&self) -> PrimaryWatch {
        /// A node's name, PostgreSQL port and psql environment.
        type Target = (String, u16, Vec<(String, String)>);
        let nodes: Vec<Target> = self.nodes.iter().map(|n| (n.name.clone(), n.pg_port, n.psql_env.clone())).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let primaries: Vec<String> = nodes
                    .iter()
                    .filter(|(_, port, env)| psql_with(*port, env, "SELECT pg_is_in_recovery()").as_deref() == Ok("f"))
                    .map(|(name, _, _)| name.clone())
                    .collect();
                samples.push(primaries);
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        PrimaryWatch { stop, thread }
    }

    /// Time how long `f` takes.
    pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
        let t = Instant::now();
        let v = f();
        (v, t.elapsed())
    }
}

/// The samples of [`Cluster::watch_primaries`].
pub struct PrimaryWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Vec<String>>>,
}

impl PrimaryWatch {
    /// Stop sampling; every sample so far (the nodes that accepted writes
    /// at that moment), in order.
    pub fn finish(self) -> Vec<Vec<String>> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap_or_else(|_| panic!("the primary sampler panicked"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let keep = std::env::var_os("PALISADE_KEEP_TEST_DIRS").is_some();
        if std::thread::panicking() && !keep {
            eprintln!("cluster logs ({}):\n{}", self.staging.path().display(), self.logs());
        }
        // A test fails on ERROR lines it did not expect, whatever it
        // asserted (checked now, reported once everything is stopped).
        let unexpected = if std::thread::panicking() {
            Vec::new()
        } else {
            let allowed: Vec<&str> = self.allowed_errors.iter().map(String::as_str).collect();
            self.unexpected_errors(&allowed)
        };
        // Daemons first (so nothing restarts PostgreSQL), then the
        // postmasters, which run in sessions of their own.
        for n in &mut self.nodes {
            if let Some(mut p) = n.process.take() {
                p.kill9();
            }
        }
        for n in &self.nodes {
            if let Some(pid) = n.postmaster_pid() {
                if pid_alive(pid) {
                    signal(pid, Signal::SIGQUIT);
                    if !wait_until(Duration::from_secs(10), || !pid_alive(pid)) {
                        signal(pid, Signal::SIGKILL);
                        let _ = wait_until(Duration::from_secs(5), || !pid_alive(pid));
                    }
                }
            }
        }
        if !unexpected.is_empty() {
            // The lines first: CI keeps the head and the tail of a long
            // output and may cut the logs in between.
            eprintln!("unexpected ERROR lines:\n{}", unexpected.join("\n"));
            eprintln!("cluster logs ({}):\n{}", self.staging.path().display(), self.logs());
            panic!(
                "unexpected ERROR lines (allow them with ClusterSpec::allowed_errors or Cluster::allow_errors):\n{}",
                unexpected.join("\n")
            );
        }
    }
}
