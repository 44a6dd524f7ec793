//! The campaign's nodes: PostgreSQL and a palisade daemon per network
//! namespace, run as the unprivileged test user (`ip netns exec NS setpriv
//! ... -- palisade node.yml`, which keeps the PID, so signals reach the
//! daemon itself), from binaries staged where that user can read them.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use palisade_test_support::{pg_bin_dir, pid_alive, signal, test_user, test_user_ids, wait_until, ProcessGuard};

/// The superuser's password in the campaign's cluster.
pub const PASSWORD: &str = "chaos-superuser-pw";
/// PostgreSQL's port in every namespace (each has its own addresses).
pub const PG_PORT: u16 = 5432;
/// The REST API's port in every namespace.
pub const API_PORT: u16 = 8008;
/// `watchdog.safety_margin` with `--watchdog`: the device's timeout is
/// `ttl - 2` (8 s with ttl 10; 6 s with the smallest ttl a config fault
/// sets, 8), so a leader whose loop stopped is reset 2 s before its leader
/// key can expire, and a loop that waits `loop_wait` (at most 2 s) plus a
/// DCS call cut at `retry_timeout` (3 s) still feeds it in time. Patroni's
/// default, 5, would leave 3 s with ttl 8: less than such a cycle.
pub const WATCHDOG_SAFETY_MARGIN: u64 = 2;

/// The cluster settings the campaign starts with.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub ttl: u64,
    pub loop_wait: u64,
    pub retry_timeout: u64,
    /// `synchronous_mode` and `synchronous_mode_strict`.
    pub strict: bool,
    /// Each daemon runs with `watchdog: mode: required` on Patroni's
    /// `testing` driver, writing to the FIFO [`Node::watchdog_device`].
    pub watchdog: bool,
}

/// One member: its namespace, addresses, files and daemon.
pub struct Node {
    pub name: String,
    pub index: usize,
    pub namespace: String,
    pub cluster_ip: Ipv4Addr,
    pub control_ip: Ipv4Addr,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// The FIFO the node's watchdog writes to (with `--watchdog`).
    pub watchdog_device: PathBuf,
    daemon: Option<ProcessGuard>,
    /// The daemon's PID (0 when none runs), for a watchdog fire, which
    /// comes on the device's thread.
    daemon_pid: Arc<AtomicI32>,
}

impl Node {
    /// The node's REST API over its control link.
    pub fn api(&self) -> SocketAddr {
        SocketAddr::from((self.control_ip, API_PORT))
    }

    /// The postmaster's PID from `postmaster.pid`, if it is alive.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        pid_alive(pid).then_some(pid)
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(ProcessGuard::pid)
    }

    /// What a reset of this machine kills, for another thread:
    /// `reset()` kills the node's daemon and PostgreSQL with SIGKILL (see
    /// [`reset`]).
    pub fn resetter(&self) -> impl Fn() + Send + Sync + 'static {
        let (pid, data_dir) = (Arc::clone(&self.daemon_pid), self.data_dir.clone());
        move || reset(pid.load(Ordering::SeqCst), &data_dir)
    }

    pub fn daemon_running(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(ProcessGuard::alive)
    }

    /// Start (or start again) the daemon in the node's namespace.
    pub fn start_daemon(&mut self, bin: &Path, workdir: &Path, env: &[(String, String)]) -> Result<(), String> {
        let log = OpenOptions::new().create(true).append(true).open(&self.log_path).map_err(|e| e.to_string())?;
        let (uid, gid) = test_user_ids();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespace, "setpriv"])
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--init-groups")
            .arg("--")
            .arg(bin.join("palisade"))
            .arg(&self.config)
            .env("HOME", "/tmp")
            .env("USER", test_user())
            .env("LOGNAME", test_user())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .current_dir(workdir);
        let guard =
            ProcessGuard::spawn(&self.name, cmd).map_err(|e| format!("{}: start the daemon: {e}", self.name))?;
        self.daemon_pid.store(guard.pid(), Ordering::SeqCst);
        self.daemon = Some(guard);
        Ok(())
    }

    /// SIGKILL the daemon only (its PostgreSQL runs on).
    pub fn kill_daemon(&mut self) {
        self.daemon_pid.store(0, Ordering::SeqCst);
        if let Some(mut p) = self.daemon.take() {
            p.kill9();
        }
    }

    /// Send `sig` to the daemon.
    pub fn signal_daemon(&self, sig: Signal) {
        if let Some(p) = &self.daemon {
            p.signal(sig);
        }
    }

    /// Write a marker line into the daemon's log.
    pub fn mark(&self, text: &str) {
        use std::io::Write;
        if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log_path) {
            let _ = writeln!(f, "----- CHAOS: {text} -----");
        }
    }

    /// Stop everything of this node: the daemon (SIGKILL, so it cannot
    /// restart anything), then its postmaster (SIGQUIT, SIGKILL).
    pub fn shut_down(&mut self) {
        if let Some(pid) = self.daemon_pid() {
            signal(pid, Signal::SIGCONT);
        }
        self.kill_daemon();
        if let Some(pid) = self.postmaster_pid() {
            signal(pid, Signal::SIGCONT);
            signal(pid, Signal::SIGQUIT);
            if !wait_until(Duration::from_secs(10), || !pid_alive(pid)) {
                signal(pid, Signal::SIGKILL);
                let _ = wait_until(Duration::from_secs(5), || !pid_alive(pid));
            }
        }
    }
}

/// The children of `pid` (from `/proc/*/stat`).
fn children(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).ok().and_then(|stat| {
                // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
                let after = &stat[stat.rfind(')')? + 1..];
                after.split_whitespace().nth(1)?.parse::<i32>().ok()
            }) == Some(pid)
        })
        .collect()
}

/// What a hardware watchdog's reset does to a node, as far as the
/// campaign can: every process of it dies at once, with nothing written
/// after. The daemon (`daemon_pid`, 0 for none) is frozen, then PostgreSQL
/// (the postmaster in `data_dir`'s `postmaster.pid`) is frozen and killed
/// with its children (the backends, which could otherwise finish a COMMIT
/// in flight), then the daemon's process group.
pub fn reset(daemon_pid: i32, data_dir: &Path) {
    if daemon_pid > 0 {
        signal(daemon_pid, Signal::SIGSTOP);
    }
    let postmaster = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 0 && pid_alive(*pid));
    if let Some(pm) = postmaster {
        signal(pm, Signal::SIGSTOP);
        for child in children(pm) {
            signal(child, Signal::SIGKILL);
        }
        signal(pm, Signal::SIGKILL);
    }
    if daemon_pid > 0 {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(daemon_pid), Signal::SIGKILL);
        signal(daemon_pid, Signal::SIGKILL);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Write node `i`'s configuration under `dir` and return the node (its
/// daemon not started).
#[allow(clippy::too_many_arguments)]
pub fn make_node(
    staging: &palisade_test_support::Staging,
    scope: &str,
    i: usize,
    namespace: String,
    cluster_ip: Ipv4Addr,
    control_ip: Ipv4Addr,
    dcs_section: &str,
    s: &ClusterSettings,
) -> Node {
    let name = format!("node{}", i + 1);
    let run = staging.dir(&format!("run/{name}"), 0o700);
    staging.dir("data", 0o755);
    let data_dir = staging.path().join("data").join(&name);
    let log_path = staging.path().join(format!("{name}.log"));
    let sync = if s.strict { "on" } else { "off" };
    let watchdog_device = staging.path().join(format!("watchdog.{name}.fifo"));
    let watchdog = if s.watchdog {
        format!(
            "watchdog:\n  mode: required\n  driver: testing\n  device: {}\n  safety_margin: {WATCHDOG_SAFETY_MARGIN}\n",
            watchdog_device.display()
        )
    } else {
        String::new()
    };
    let config = format!(
        "scope: {scope}\n\
         name: {name}\n\
         log:\n  level: INFO\n\
         restapi:\n  listen: 0.0.0.0:{API_PORT}\n  connect_address: {cluster_ip}:{API_PORT}\n\
         {dcs_section}\
         bootstrap:\n  dcs:\n    ttl: {ttl}\n    loop_wait: {loop_wait}\n    retry_timeout: {retry}\n    \
         maximum_lag_on_failover: 1048576\n    synchronous_mode: {sync}\n    synchronous_mode_strict: {sync}\n    \
         postgresql:\n      use_slots: true\n      use_pg_rewind: true\n      parameters:\n        \
         wal_level: replica\n        hot_standby: 'on'\n        max_wal_senders: 10\n        \
         max_replication_slots: 10\n        wal_log_hints: 'on'\n  initdb:\n    - encoding: UTF8\n    - data-checksums\n\
         postgresql:\n  listen: 0.0.0.0:{PG_PORT}\n  connect_address: {cluster_ip}:{PG_PORT}\n  data_dir: {data}\n  \
         bin_dir: {bin_dir}\n  pgpass: {run}/pgpass\n  remove_data_directory_on_rewind_failure: true\n  \
         remove_data_directory_on_diverged_timelines: true\n  authentication:\n    superuser:\n      \
         username: postgres\n      password: {PASSWORD}\n    replication:\n      username: replicator\n      \
         password: chaos-replication-pw\n  parameters:\n    unix_socket_directories: '{run}'\n    \
         shared_buffers: 16MB\n  pg_hba:\n    - local all all trust\n    \
         - host replication replicator 10.0.0.0/8 scram-sha-256\n    - host all all 10.0.0.0/8 scram-sha-256\n    \
         - host all all 127.0.0.1/32 scram-sha-256\n{watchdog}",
        ttl = s.ttl,
        loop_wait = s.loop_wait,
        retry = s.retry_timeout,
        data = data_dir.display(),
        bin_dir = pg_bin_dir().display(),
        run = run.display(),
    );
    let config = staging.write(&format!("{name}.yml"), &config, 0o644);
    Node {
        name,
        index: i,
        namespace,
        cluster_ip,
        control_ip,
        config,
        data_dir,
        log_path,
        watchdog_device,
        daemon: None,
        daemon_pid: Arc::new(AtomicI32::new(0)),
    }
}
