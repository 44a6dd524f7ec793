//! The campaign itself: the network, the DCS, three nodes, the clients,
//! then faults one after the other, each undone and healed from before the
//! next, and at the end the final state, the checker's verdicts and the
//! report.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use palisade_test_support::{become_subreaper, is_root, pid_alive, signal, Staging};

use super::check::{check, heal_from, healthy, report, Verdicts};
use super::clients::{http, Clients, Clock, Target};
use super::faults::{draw, Aim, Kind, Rng, TTLS};
use super::launch::{make_node, ClusterSettings, Node};
use super::record::{Fault, FinalState, Fire, History, Millis, Settings};
use super::topology::{Net, Relay};
use crate::dcs::{DcsBackend, TestDcs};
use crate::watchdog::WatchdogDevice;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    pub dcs: DcsBackend,
    /// Stop after this many faults...
    pub faults: Option<usize>,
    /// ...or after this many minutes of faults (whichever comes first).
    pub minutes: Option<f64>,
    pub cluster: ClusterSettings,
    /// Where to write the Markdown report.
    pub report: Option<PathBuf>,
    /// Print each fault and heal as it happens.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 1,
            dcs: crate::dcs::ETCD3,
            faults: Some(20),
            minutes: None,
            cluster: ClusterSettings { ttl: 10, loop_wait: 1, retry_timeout: 3, strict: true, watchdog: false },
            report: None,
            verbose: true,
        }
    }
}

/// What a campaign ends with.
pub struct Outcome {
    pub history: History,
    pub verdicts: Verdicts,
    /// The Markdown report (also written to [`Options::report`]).
    pub report: String,
    /// The directory with the nodes' logs, when kept (a failed campaign).
    pub kept: Option<PathBuf>,
}

/// How long the cluster may take, after a fault is undone, to be healthy
/// again: 3 x ttl (the largest ttl the campaign can set) plus the fault's
/// own recovery, bounded by this allowance (a PostgreSQL restart with
/// crash recovery, pg_rewind or a new base backup).
pub const RECOVERY_ALLOWANCE: Duration = Duration::from_secs(30);
/// How long the cluster must look healthy, round after round, before the
/// next fault: a fault whose effect has not shown yet (a killed postmaster
/// still seen running) must not pass for healed.
pub const SETTLE: Duration = Duration::from_secs(3);
/// With `--watchdog`, how long after a device fired (and the campaign
/// killed its node, as a reset would) the node's daemon is started again:
/// the machine's boot.
pub const REBOOT_DELAY: Duration = Duration::from_secs(3);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Make SIGINT and SIGTERM stop the campaign at its next wait, which then
/// unwinds and so tears everything down.
fn catch_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Sleep `d`, checking for SIGINT/SIGTERM every 100 ms (then panics, which
/// unwinds through every guard).
fn pause(d: Duration) {
    let until = Instant::now() + d;
    loop {
        if interrupted() {
            panic!("palisade-chaos: interrupted by a signal; tearing down");
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Everything the campaign runs, dropped in this order: the clients, the
/// nodes (daemons, then postmasters), the watchdog devices, the DCS relays,
/// the DCS, the files, the network.
struct Campaign {
    clients: Clients,
    nodes: Vec<Node>,
    /// One per node with `--watchdog`.
    _devices: Vec<WatchdogDevice>,
    /// Fires reported by the devices' threads (node index, when), not yet
    /// taken into `fires`.
    fired: Arc<Mutex<Vec<(usize, Millis)>>>,
    /// The fires so far, each with the fault it came with.
    fires: Vec<Fire>,
    /// The fault injected last (`None` before the first).
    current_fault: Option<usize>,
    _relays: Vec<Relay>,
    dcs: Box<dyn TestDcs>,
    staging: Staging,
    net: Net,
    bin: PathBuf,
    clock: Clock,
    env: Vec<(String, String)>,
    log: Vec<String>,
    verbose: bool,
}

/// The DCS section of a node's configuration with every `127.0.0.1:port`
/// replaced by the relay on the bridge address, and the ports to relay.
fn rewrite_dcs_section(section: &str, bridge: std::net::Ipv4Addr) -> (String, Vec<u16>) {
    let mut ports = Vec::new();
    let mut rest = section;
    while let Some(i) = rest.find("127.0.0.1:") {
        let after = &rest[i + "127.0.0.1:".len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(p) = digits.parse::<u16>() {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        rest = after;
    }
    let mut out = section.replace("127.0.0.1:", &format!("{bridge}:"));
    // Exhibitor's section names its hosts without a port (the endpoint's
    // port is a setting of its own, relayed through `serve_through`).
    if out.starts_with("exhibitor:") {
        out = out.replace("'127.0.0.1'", &format!("'{bridge}'"));
    }
    // The etcd plugins would otherwise learn etcd's members from etcd
    // itself, which advertises 127.0.0.1: inside a namespace, that is the
    // namespace's own loopback.
    if out.starts_with("etcd3:") || out.starts_with("etcd:") {
        out.push_str("  use_proxies: true\n");
    }
    (out, ports)
}

/// The environment of the daemons: a `KUBECONFIG` naming the API server
/// on `127.0.0.1` is copied into the campaign's files with the relay's
/// address instead (its ports added to `ports`), since the Kubernetes
/// plugin finds the API server there (`bypass_api_service` is off).
fn node_env(
    dcs: &dyn TestDcs,
    staging: &Staging,
    bridge: std::net::Ipv4Addr,
    ports: &mut Vec<u16>,
) -> Result<Vec<(String, String)>, String> {
    let mut env = dcs.node_env();
    for (key, value) in env.iter_mut().filter(|(k, _)| k == "KUBECONFIG") {
        let text = std::fs::read_to_string(&*value).map_err(|e| format!("{key} {value}: {e}"))?;
        let (text, more) = rewrite_dcs_section(&text, bridge);
        for p in more {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        *value = staging.write("kubeconfig", &text, 0o644).display().to_string();
    }
    Ok(env)
}

/// Run SQL on node `ip` as the superuser (over its control link).
fn sql(ip: std::net::Ipv4Addr, query: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut c = super::clients::pg_config(ip);
        c.connect_timeout(Duration::from_secs(3));
        let (client, conn) = c.connect(tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let msgs = tokio::time::timeout(Duration::from_secs(30), client.simple_query(query))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    })
}

impl Campaign {
    fn say(&mut self, line: String) {
        if self.verbose {
            eprintln!("chaos: {line}");
        }
        self.log.push(line);
    }

    /// Start node `i`'s daemon, unless it runs (a watchdog reset's boot
    /// may have started it while a fault waited to).
    fn start_daemon(&mut self, i: usize) -> Result<(), String> {
        if self.nodes[i].daemon_running() {
            return Ok(());
        }
        let (bin, dir, env) = (self.bin.clone(), self.staging.path().to_path_buf(), self.env.clone());
        self.nodes[i].start_daemon(&bin, &dir, &env)
    }

    /// Sleep `d`, checking for SIGINT/SIGTERM and booting the nodes a
    /// watchdog reset, every 100 ms.
    fn pause(&mut self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            self.tend_watchdogs();
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            pause(left.min(Duration::from_millis(100)));
        }
    }

    /// Take the devices' new fires into the record, and start the daemon of
    /// each node reset [`REBOOT_DELAY`] ago again.
    fn tend_watchdogs(&mut self) {
        let new = std::mem::take(&mut *self.fired.lock().unwrap_or_else(|p| p.into_inner()));
        for (i, at) in new {
            let node = self.nodes[i].name.clone();
            self.nodes[i].mark(&format!("watchdog fired: {node} reset (daemon and PostgreSQL killed)"));
            let during = self.current_fault.map_or("before the first fault".to_string(), |f| format!("with fault {f}"));
            self.say(format!("  watchdog fired on {node} at {:.1} s ({during}): reset", at as f64 / 1000.0));
            self.fires.push(Fire { node, at, fault: self.current_fault, restarted: None });
        }
        let now = self.clock.now();
        for k in 0..self.fires.len() {
            let f = &self.fires[k];
            if f.restarted.is_some() || now < f.at + REBOOT_DELAY.as_millis() as Millis {
                continue;
            }
            let Some(i) = self.nodes.iter().position(|n| n.name == f.node) else { continue };
            // The reset killed the daemon; wait until it is reaped as gone.
            let r = self.start_daemon(i);
            let now = self.clock.now();
            self.fires[k].restarted = Some(now);
            let node = self.nodes[i].name.clone();
            self.say(format!("  {node} booted after the reset: daemon started{}", err_note(r)));
        }
    }

    /// When the heal of the fault in progress is timed from: its end, or
    /// the boot of a node its watchdog reset (see [`heal_from`]); a node
    /// reset and not yet booted counts as from now.
    fn heal_start(&self, ended: Millis) -> Millis {
        let Some(index) = self.current_fault else { return ended };
        let fault = Fault { index, description: String::new(), node: None, started: ended, ended };
        let pending = self.fires.iter().any(|f| f.fault == Some(index) && f.restarted.is_none());
        let from = heal_from(&fault, &self.fires);
        if pending {
            from.max(self.clock.now())
        } else {
            from
        }
    }

    /// The index of the primary in the watcher's latest round (by
    /// `pg_is_in_recovery()` and the daemon's role), if exactly one.
    fn primary(&self) -> Option<usize> {
        let round = self.clients.last_round()?;
        let primaries: Vec<usize> = round
            .nodes
            .iter()
            .filter(|v| v.in_recovery == Some(false) && v.role.as_deref() == Some("primary"))
            .filter_map(|v| self.nodes.iter().position(|n| n.name == v.node))
            .collect();
        (primaries.len() == 1).then(|| primaries[0])
    }

    fn resolve(&self, aim: Aim) -> usize {
        let primary = self.primary().unwrap_or(0);
        match aim {
            Aim::Primary => primary,
            Aim::Replica(k) => {
                let replicas: Vec<usize> = (0..self.nodes.len()).filter(|&i| i != primary).collect();
                replicas[k % replicas.len()]
            }
        }
    }

    /// Wait until the cluster has looked healthy for [`SETTLE`], at most
    /// `bound` from `since`; when it became healthy, or the last reason it
    /// was not.
    ///
    /// A watchdog fire of the fault in progress moves `since` to when its
    /// node was booted again (the heal is timed from there, as the checker
    /// does).
    fn wait_healthy(&mut self, since: Millis, bound: Duration) -> Result<Millis, String> {
        let mut healthy_since: Option<Millis> = None;
        let mut seen = since;
        let mut last_problem = "no round of the watcher yet".to_string();
        loop {
            self.tend_watchdogs();
            let since = self.heal_start(since);
            let deadline = since + bound.as_millis() as Millis + SETTLE.as_millis() as Millis;
            if healthy_since.is_some_and(|h| h < since) {
                healthy_since = None;
            }
            for round in self.clients.rounds_since(seen) {
                seen = round.at + 1;
                if round.at < since {
                    continue;
                }
                match healthy(&round) {
                    Ok(_) => {
                        healthy_since.get_or_insert(round.at);
                    }
                    Err(why) => {
                        healthy_since = None;
                        last_problem = why;
                    }
                }
                if let Some(h) = healthy_since {
                    if round.at.saturating_sub(h) >= SETTLE.as_millis() as Millis {
                        return Ok(h);
                    }
                }
            }
            if self.clock.now() > deadline {
                return Err(last_problem);
            }
            pause(Duration::from_millis(100));
        }
    }

    fn start(opts: &Options) -> Result<Campaign, String> {
        let backend = opts.dcs;
        let target = palisade_test_support::target_dir();
        if !backend.is_built(&target) || !target.join("palisade").exists() {
            return Err(format!(
                "{} needs the daemon and {} in {} (or PALISADE_BUILD_DIR): {}",
                backend.name,
                backend.plugin_file,
                target.display(),
                build_command(backend.name)
            ));
        }
        let net = Net::create(3)?;
        let staging = Staging::new("chaos");
        let bin = crate::cluster::stage_binaries(&staging, &backend);
        let dcs = (backend.start)(&format!("chaos{}", net.octet));
        let (section, mut ports) = rewrite_dcs_section(&dcs.yaml_section(), net.bridge_ip());
        for p in dcs.serve_through(net.bridge_ip()) {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let env = node_env(dcs.as_ref(), &staging, net.bridge_ip(), &mut ports)?;
        let mut relays = Vec::new();
        for p in ports {
            relays.push(Relay::start(SocketAddr::from((net.bridge_ip(), p)), SocketAddr::from(([127, 0, 0, 1], p)))?);
        }
        let scope = format!("chaos-{}-{}", net.octet, std::process::id());
        let mut nodes = Vec::new();
        for i in 0..3 {
            let node = make_node(
                &staging,
                &scope,
                i,
                net.namespace(i),
                net.cluster_ip(i),
                net.control_ip(i),
                // Kubernetes: each pod's IP is its node's cluster-link address.
                &section.replace("pod_ip: 127.0.0.1", &format!("pod_ip: {}", net.cluster_ip(i))),
                &opts.cluster,
            );
            dcs.prepare_member(&scope, &node.name);
            nodes.push(node);
        }
        let clock = Clock::start();
        let targets: Vec<Target> =
            nodes.iter().map(|n| Target { name: n.name.clone(), control_ip: n.control_ip, api: n.api() }).collect();
        let clients = Clients::start(clock, targets);
        let fired: Arc<Mutex<Vec<(usize, Millis)>>> = Arc::default();
        let devices = if opts.cluster.watchdog {
            nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    // Read before the daemon opens it (the testing driver's
                    // open fails when nobody reads).
                    let device = WatchdogDevice::start(&node.watchdog_device);
                    let (reset, fired) = (node.resetter(), Arc::clone(&fired));
                    device.on_every_fire(move || {
                        reset();
                        fired.lock().unwrap_or_else(|p| p.into_inner()).push((i, clock.now()));
                    });
                    device
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Campaign {
            clients,
            nodes,
            _devices: devices,
            fired,
            fires: Vec::new(),
            current_fault: None,
            _relays: relays,
            dcs,
            staging,
            net,
            bin,
            clock,
            env,
            log: Vec::new(),
            verbose: opts.verbose,
        })
    }

    /// Bootstrap node1, then the others; make the writes table.
    fn bootstrap(&mut self) -> Result<(), String> {
        self.say(format!(
            "network 10.{}.0.0/16 (namespaces {}..{}), files in {}",
            self.net.octet,
            self.net.namespace(0),
            self.net.namespace(2),
            self.staging.path().display()
        ));
        self.start_daemon(0)?;
        let t0 = Instant::now();
        while self.primary().is_none() {
            if t0.elapsed() > Duration::from_secs(120) {
                return Err("node1 did not bootstrap a primary within 120 s".into());
            }
            self.pause(Duration::from_millis(200));
        }
        self.start_daemon(1)?;
        self.start_daemon(2)?;
        let now = self.clock.now();
        self.wait_healthy(now, Duration::from_secs(180)).map_err(|e| format!("the cluster did not come up: {e}"))?;
        // Only now: in strict mode a primary without a synchronous standby
        // commits nothing.
        let primary = self.primary().ok_or("no primary once healthy")?;
        sql(
            self.nodes[primary].control_ip,
            "CREATE TABLE chaos_writes (id bigint PRIMARY KEY, node text NOT NULL, at timestamptz DEFAULT now())",
        )
        .map_err(|e| format!("create the writes table: {e}"))?;
        self.say("cluster healthy; writers start".into());
        Ok(())
    }

    /// Inject one fault and undo it; its record (the end is when it was undone).
    fn inject(&mut self, index: usize, kind: &Kind, aim: Aim, ttl: &mut u64, loop_wait: &mut u64) -> Fault {
        let node = kind.has_target().then(|| self.resolve(aim));
        let name = node.map(|i| self.nodes[i].name.clone());
        let who = name.clone().map(|n| format!("{n} ({aim})")).unwrap_or_default();
        for n in &self.nodes {
            n.mark(&format!("fault {index}: {kind:?} {who}"));
        }
        let started = self.clock.now();
        self.current_fault = Some(index);
        let secs = |d: &Duration| format!("{:.1} s", d.as_secs_f64());
        let description = match (kind, node) {
            (Kind::KillDaemon { restart_after }, Some(i)) => {
                self.nodes[i].kill_daemon();
                self.pause(*restart_after);
                let r = self.start_daemon(i);
                format!("kill -9 daemon {who}, restarted after {}{}", secs(restart_after), err_note(r))
            }
            (Kind::KillPostmaster, Some(i)) => match self.nodes[i].postmaster_pid() {
                Some(pid) => {
                    signal(pid, Signal::SIGKILL);
                    format!("kill -9 postmaster {who}")
                }
                None => format!("kill -9 postmaster {who} (none was running)"),
            },
            (Kind::KillBoth { restart_after }, Some(i)) => {
                let pm = self.nodes[i].postmaster_pid();
                self.nodes[i].kill_daemon();
                if let Some(pid) = pm {
                    signal(pid, Signal::SIGKILL);
                }
                self.pause(*restart_after);
                let r = self.start_daemon(i);
                format!(
                    "kill -9 daemon and postmaster {who}, daemon restarted after {}{}",
                    secs(restart_after),
                    err_note(r)
                )
            }
            (Kind::StopDaemon { hold }, Some(i)) => {
                self.nodes[i].signal_daemon(Signal::SIGSTOP);
                self.pause(*hold);
                self.nodes[i].signal_daemon(Signal::SIGCONT);
                let than = if hold.as_secs() >= *ttl { "longer" } else { "shorter" };
                format!("SIGSTOP daemon {who} for {} ({than} than ttl {ttl} s)", secs(hold))
            }
            (Kind::StopPostmaster { hold }, Some(i)) => match self.nodes[i].postmaster_pid() {
                Some(pid) => {
                    signal(pid, Signal::SIGSTOP);
                    self.pause(*hold);
                    if pid_alive(pid) {
                        signal(pid, Signal::SIGCONT);
                    }
                    format!("SIGSTOP postmaster {who} for {}", secs(hold))
                }
                None => format!("SIGSTOP postmaster {who} (none was running)"),
            },
            (Kind::DcsStop { hold }, _) => {
                self.dcs.stop();
                self.pause(*hold);
                self.dcs.start_again();
                format!("DCS stopped for {}", secs(hold))
            }
            (Kind::DcsFreeze { hold }, _) => {
                self.dcs.freeze();
                self.pause(*hold);
                self.dcs.thaw();
                format!("DCS frozen for {}", secs(hold))
            }
            (Kind::Partition { hold }, Some(i)) => {
                let r = self.net.partition(i);
                self.pause(*hold);
                let r2 = self.net.heal(i);
                format!("partition {who} for {}{}{}", secs(hold), err_note(r), err_note(r2))
            }
            (Kind::Switchover, Some(i)) => {
                let body = format!("{{\"leader\": \"{}\"}}", self.nodes[i].name);
                let answer = http(self.nodes[i].api(), "POST", "/switchover", Some(&body), Duration::from_secs(60));
                format!("switchover from {who}: {}", answer_note(answer))
            }
            (Kind::Restart, Some(i)) => {
                let answer = http(self.nodes[i].api(), "POST", "/restart", Some("{}"), Duration::from_secs(90));
                format!("restart via REST of {who}: {}", answer_note(answer))
            }
            (Kind::SetTtl(v), _) | (Kind::SetLoopWait(v), _) => {
                let key = if matches!(kind, Kind::SetTtl(_)) { "ttl" } else { "loop_wait" };
                let at = self.primary().unwrap_or(0);
                let body = format!("{{\"{key}\": {v}}}");
                let answer = http(self.nodes[at].api(), "PATCH", "/config", Some(&body), Duration::from_secs(10));
                if answer.as_ref().is_ok_and(|r| r.status == 200) {
                    if key == "ttl" {
                        *ttl = *v;
                    } else {
                        *loop_wait = *v;
                    }
                }
                let status = answer.map_or_else(|e| format!("no answer ({e})"), |r| r.status.to_string());
                format!("config key rewritten: {key} {v} (PATCH /config: {status})")
            }
            (_, None) => unreachable!("every fault with a target has one"),
        };
        let ended = self.clock.now();
        Fault { index, description, node: name, started, ended }
    }

    /// Read the final state from the one primary.
    fn final_state(&self) -> FinalState {
        let Some(p) = self.primary() else { return FinalState::default() };
        let node = &self.nodes[p];
        let ids: BTreeSet<u64> = sql(node.control_ip, "SELECT id FROM chaos_writes")
            .map(|rows| rows.iter().filter_map(|r| r.first()?.as_deref()?.parse().ok()).collect())
            .unwrap_or_default();
        let history = http(node.api(), "GET", "/history", None, Duration::from_secs(5))
            .ok()
            .and_then(|r| r.json().as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                let tl = e.get(0)?.as_u64()? as u32;
                let lsn = e.get(1)?.as_u64()?;
                Some((tl, lsn))
            })
            .collect();
        FinalState { primary: Some(node.name.clone()), ids, history }
    }

    /// `panicked at` lines in the daemons' logs.
    fn panics(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| {
                std::fs::read_to_string(&n.log_path)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("panicked at"))
                    .map(|l| format!("{}: {l}", n.name))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The build a campaign on `dcs` needs: the daemon, the DCS plugin, the
/// plugins every node stages, and this binary.
pub fn build_command(dcs: &str) -> String {
    // Two commands: `--bin` applies to every package named with `-p`, so
    // one command would build the campaign alone and none of the plugins.
    // `kubernetes-endpoints` and `kubernetes-lease` are modes of one plugin,
    // which runs on the Kubernetes test double; Consul runs on its double.
    let plugin = dcs.split('-').next().unwrap_or(dcs);
    let double = match plugin {
        "kubernetes" => " -p kubernetes-test-double",
        "consul" => " -p consul-test-double",
        _ => "",
    };
    format!(
        "cargo build -p palisade-daemon -p palisade-dcs-{plugin}{double} -p palisade-replica-basebackup \
         -p palisade-replica-command -p palisade-replica-pgbackrest -p palisade-replica-walg \
         -p palisade-callback-script && cargo build -p palisade-tests --bin palisade-chaos"
    )
}

fn err_note(r: Result<(), String>) -> String {
    r.err().map(|e| format!(" (error: {e})")).unwrap_or_default()
}

fn answer_note(r: Result<crate::http::Response, String>) -> String {
    match r {
        Ok(r) => format!("{} {}", r.status, r.body.trim().chars().take(80).collect::<String>()),
        Err(e) => format!("no answer ({e})"),
    }
}

/// Run a campaign. `Err` when it could not be set up (not root, binaries
/// missing, the cluster never came up); a campaign that ran returns its
/// [`Outcome`], whatever the verdicts.
pub fn run(opts: &Options) -> Result<Outcome, String> {
    if !is_root() {
        return Err("palisade-chaos must run as root: it makes network namespaces".into());
    }
    become_subreaper();
    catch_signals();
    let mut c = Campaign::start(opts)?;
    c.say(format!(
        "seed {}, dcs {}, {} mode, ttl {} loop_wait {} retry_timeout {}{}",
        opts.seed,
        opts.dcs.name,
        if opts.cluster.strict { "strict synchronous" } else { "asynchronous" },
        opts.cluster.ttl,
        opts.cluster.loop_wait,
        opts.cluster.retry_timeout,
        if opts.cluster.watchdog { ", watchdog required (a test device per node that resets it)" } else { "" }
    ));
    c.bootstrap()?;
    c.clients.start_writing();
    let max_ttl = TTLS.iter().copied().chain([opts.cluster.ttl]).max().unwrap_or(opts.cluster.ttl);
    let heal_bound = Duration::from_secs(3 * max_ttl) + RECOVERY_ALLOWANCE;
    let mut rng = Rng::new(opts.seed);
    let (mut ttl, mut loop_wait) = (opts.cluster.ttl, opts.cluster.loop_wait);
    let mut faults = Vec::new();
    let began = Instant::now();
    let mut gave_up = None;
    for index in 1.. {
        if opts.faults.is_some_and(|n| index > n)
            || opts.minutes.is_some_and(|m| began.elapsed().as_secs_f64() > m * 60.0)
        {
            break;
        }
        let plan = draw(&mut rng, ttl);
        let fault = c.inject(index, &plan.kind, plan.aim, &mut ttl, &mut loop_wait);
        let ended = fault.ended;
        c.say(format!("fault {index}: {} ({} writes so far)", fault.description, c.clients.write_count()));
        faults.push(fault);
        // Healed, then paused; a watchdog that fired in the pause resets a
        // node, so wait for the heal again before the next fault.
        loop {
            let fires = c.fires.len();
            match c.wait_healthy(ended, heal_bound) {
                Ok(at) => {
                    let from = c.heal_start(ended);
                    c.say(format!("  healed after {:.1} s", at.saturating_sub(from) as f64 / 1000.0));
                }
                Err(why) => {
                    c.say(format!("  NOT healed within {} s: {why}; the campaign stops here", heal_bound.as_secs()));
                    gave_up = Some(index);
                    break;
                }
            }
            let fires = c.fires.len().max(fires);
            c.pause(plan.pause_after);
            if c.fires.len() == fires {
                break;
            }
        }
        if gave_up.is_some() {
            break;
        }
    }
    // The end: a few more writes on the healed cluster, then the state.
    if gave_up.is_none() {
        c.pause(Duration::from_secs(2));
    }
    c.clients.stop_writing();
    c.pause(Duration::from_secs(1));
    let final_state = c.final_state();
    let settings = Settings {
        seed: opts.seed,
        dcs: opts.dcs.name.to_string(),
        strict: opts.cluster.strict,
        ttl,
        heal_bound: heal_bound.as_millis() as Millis,
        watchdog: opts.cluster.watchdog,
    };
    c.clients.stop();
    let writes = std::mem::take(&mut *c.clients.writes.lock().unwrap_or_else(|p| p.into_inner()));
    let rounds = std::mem::take(&mut *c.clients.rounds.lock().unwrap_or_else(|p| p.into_inner()));
    c.tend_watchdogs();
    let fires = c.fires.clone();
    let history = History { settings, writes, rounds, faults, fires, final_state };
    let verdicts = check(&history);
    let mut text = report(&history, &verdicts);
    text.push_str(&campaign_notes(opts, &c, heal_bound, gave_up, began.elapsed(), loop_wait));
    let kept = (!verdicts.passed()).then(|| {
        // Keep the logs and data of a failed campaign.
        std::env::set_var("PALISADE_KEEP_TEST_DIRS", "1");
        c.staging.path().to_path_buf()
    });
    if let Some(path) = &opts.report {
        std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    drop(c);
    Ok(Outcome { history, verdicts, report: text, kept })
}

/// The campaign's own part of the report: how to reproduce it and what it
/// did besides the verdicts.
fn campaign_notes(
    opts: &Options,
    c: &Campaign,
    heal_bound: Duration,
    gave_up: Option<usize>,
    took: Duration,
    loop_wait: u64,
) -> String {
    let mut s = String::from("\n## Campaign\n\n");
    let limit = match (opts.faults, opts.minutes) {
        (Some(n), Some(m)) => format!("--faults {n} --minutes {m}"),
        (Some(n), None) => format!("--faults {n}"),
        (None, Some(m)) => format!("--minutes {m}"),
        (None, None) => String::new(),
    };
    s.push_str(&format!(
        "Reproduce (as root, after `{build}`):\n\n\
         ```sh\ntarget/debug/palisade-chaos --seed {seed} --dcs {dcs} {limit} --ttl {ttl} --loop-wait {lw} --retry-timeout {rt}{mode}{watchdog}\n```\n\n",
        build = build_command(opts.dcs.name),
        seed = opts.seed,
        dcs = opts.dcs.name,
        ttl = opts.cluster.ttl,
        lw = opts.cluster.loop_wait,
        rt = opts.cluster.retry_timeout,
        mode = if opts.cluster.strict { "" } else { " --async" },
        watchdog = if opts.cluster.watchdog { " --watchdog" } else { "" },
    ));
    s.push_str(&format!(
        "- ran for {:.1} min; heal bound {} s (3 x the largest ttl the campaign can set, plus {} s for the \
         fault's own recovery); the cluster must also stay healthy for {} s before the next fault\n",
        took.as_secs_f64() / 60.0,
        heal_bound.as_secs(),
        RECOVERY_ALLOWANCE.as_secs(),
        SETTLE.as_secs()
    ));
    s.push_str(&format!("- loop_wait at the end: {loop_wait} s\n"));
    if opts.cluster.watchdog {
        s.push_str(&format!(
            "- watchdog: `mode: required`, `driver: testing`, `safety_margin: {}` (the device's timeout is ttl - {} s); \
             a device that fires resets its node (its PostgreSQL and daemon killed with SIGKILL), which boots {} s \
             later (its daemon started again); fires: {}\n",
            super::launch::WATCHDOG_SAFETY_MARGIN,
            super::launch::WATCHDOG_SAFETY_MARGIN,
            REBOOT_DELAY.as_secs(),
            c.fires.len()
        ));
    }
    if let Some(i) = gave_up {
        s.push_str(&format!("- **stopped after fault {i}: the cluster did not heal within the bound**\n"));
    }
    let panics = c.panics();
    s.push_str(&format!("- daemon panics in the logs: {}\n", panics.len()));
    for p in panics.iter().take(10) {
        s.push_str(&format!("  - `{p}`\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcs_sections_and_kubeconfigs_name_the_relay() {
        let bridge = std::net::Ipv4Addr::new(10, 97, 0, 1);
        // (section, rewritten, ports found)
        let cases: &[(&str, &str, &[u16])] = &[
            ("etcd3:\n  hosts: 127.0.0.1:2379\n", "etcd3:\n  hosts: 10.97.0.1:2379\n  use_proxies: true\n", &[2379]),
            ("zookeeper:\n  hosts: ['127.0.0.1:2181']\n", "zookeeper:\n  hosts: ['10.97.0.1:2181']\n", &[2181]),
            // The endpoint's port is relayed through `serve_through`.
            (
                "exhibitor:\n  hosts: ['127.0.0.1']\n  port: 8181\n  poll_interval: 2\n",
                "exhibitor:\n  hosts: ['10.97.0.1']\n  port: 8181\n  poll_interval: 2\n",
                &[],
            ),
            // A kubeconfig.
            (
                "clusters:\n- name: k\n  cluster:\n    server: http://127.0.0.1:28775\n",
                "clusters:\n- name: k\n  cluster:\n    server: http://10.97.0.1:28775\n",
                &[28775],
            ),
            // Kubernetes' section: `pod_ip` is set per node by the campaign.
            ("kubernetes:\n  pod_ip: 127.0.0.1\n", "kubernetes:\n  pod_ip: 127.0.0.1\n", &[]),
        ];
        for (section, want, want_ports) in cases {
            let (got, ports) = rewrite_dcs_section(section, bridge);
            assert_eq!(&got, want, "{section}");
            assert_eq!(&ports, want_ports, "{section}");
        }
    }

    #[test]
    fn build_commands_name_the_plugin_and_its_double() {
        for (dcs, plugin, double) in [
            ("etcd3", "palisade-dcs-etcd3 ", None),
            ("exhibitor", "palisade-dcs-exhibitor ", None),
            ("consul", "palisade-dcs-consul ", Some("consul-test-double")),
            ("kubernetes", "palisade-dcs-kubernetes ", Some("kubernetes-test-double")),
            ("kubernetes-endpoints", "palisade-dcs-kubernetes ", Some("kubernetes-test-double")),
        ] {
            let cmd = build_command(dcs);
            assert!(cmd.contains(plugin), "{dcs}: {cmd}");
            let (libraries, campaign) = cmd.split_once(" && ").expect("two commands");
            assert!(!libraries.contains("--bin"), "{dcs}: {cmd}");
            assert_eq!(campaign, "cargo build -p palisade-tests --bin palisade-chaos", "{dcs}");
            assert_eq!(cmd.contains("test-double"), double.is_some(), "{dcs}: {cmd}");
            if let Some(d) = double {
                assert!(cmd.contains(d), "{dcs}: {cmd}");
            }
        }
    }
}
