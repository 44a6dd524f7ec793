//! Benchmarks that print figures (never tests): failover and switchover
//! times on a real 3-node cluster, REST health-check throughput, the
//! daemons' memory, the commit latency of each replication mode, and the
//! failover time of a synchronous cluster, and how long a diverged former
//! primary takes to rejoin through pg_rewind.
//!
//! ```text
//! cargo run --release -p palisade-tests --bin bench -- [failover|switchover|rest|rss|commit-latency|sync-failover|rewind|all]
//!     [--runs N] [--inserts N] [--ttl S] [--loop-wait S] [--retry-timeout S] [--seconds S] [--patroni VENV]
//!     [--dcs NAME[,NAME...]]
//! cargo run --release -p palisade-tests --bin bench -- replica-create [--runs N] [--rows N]
//! ```
//!
//! `replica-create` (not part of `all`) fills the leader with `--rows` rows
//! (default 1,000,000), backs it up into a local pgBackRest repository, and
//! times building a replica of that same database with `basebackup` and
//! with the `pgbackrest` plugin: a new member (daemon start to streaming),
//! then `--runs` minus one `POST /reinitialize` each (request to
//! streaming).
//!
//! `commit-latency` times `--inserts` single-row INSERTs (each its own
//! transaction, one connection, psql's `\timing`) on the leader of one
//! cluster switched in turn (`PATCH /config`) to asynchronous replication,
//! `synchronous_mode: on`, and quorum commit with `synchronous_node_count`
//! 1 and 2; it prints the median and the 99th percentile of each.
//! `sync-failover` times, in `on` mode (strict and not) and in quorum mode,
//! the kill -9 of the primary's daemon and postmaster to the first write
//! the new primary commits.
//! `rewind` makes the leader of a 2-node cluster with `use_pg_rewind` hold
//! WAL its replica lacks (the replica stops receiving, a writer commits,
//! kill -9 while it writes), lets the replica take over, starts the old
//! primary's daemon again and times that start to the old primary
//! streaming from the new one; from its log it reads how much of that
//! went to pg_rewind itself (its command to its exit) and to crash
//! recovery in single-user mode.
//!
//! `fast-failover` (not part of `all`) times the failover of palisade's
//! recommended fast configuration (ttl 5, loop_wait 1, retry_timeout 2,
//! `watchdog: required` with a 3 s timeout through the `testing` driver,
//! each node's device read by the harness) next to Patroni at its
//! minimum ttl (20, loop_wait 1, retry_timeout 3, the same watchdog with
//! its default safety margin) when `--patroni` is given, on the first DCS
//! backend: kill -9 of the leader's daemon and postmaster to the first
//! write the new primary commits, and the time from the lease's expiry
//! (the leader key seen gone, polled every 5 ms) to that write. `--ttl`
//! and `--loop-wait` change palisade's settings (to check that the race
//! starts on the watch event, not at the next loop: with a long
//! `loop_wait`, expiry to first write stays well under it).
//!
//! `gaps` (not part of `all`) prints, in one run and next to Patroni's
//! when `--patroni` is given, the figures issue 13 set targets for:
//! `GET /patroni` requests/s with 1 and 16 clients, `GET /metrics` and
//! `GET /primary` with 16 (a connection per request, `--seconds` each, on
//! the leader), `--runs` cold bootstraps of 3 nodes started at once (to
//! `/cluster` showing the leader running and every replica streaming),
//! `--runs` switchovers (to the first write on the new leader, and to
//! `/cluster` showing the old primary streaming), `--failovers` kill -9
//! failovers (lease expiry, polled every 5 ms, to the first write) and
//! the daemons' RSS. `--runs` defaults to 10 for `gaps`. The latest
//! output is kept in docs/benchmarks.md.
//!
//! `--dcs etcd3,etcd,zookeeper` names the DCS backends to run on (see
//! `palisade_tests::dcs`; default: every enrolled backend whose plugin is
//! built). `failover` and `rss` run once per backend, with the same `ttl`,
//! `loop_wait` and `retry_timeout`, and end with the backends side by side:
//! the failover time after kill -9 and the daemons' RSS with that DCS
//! plugin loaded. The other measurements run on the first backend.
//!
//! With `--patroni VENV` (a virtualenv with `pip install 'patroni[etcd3]'
//! psycopg2-binary`), every measurement is also made on a Patroni cluster
//! started from the very same configuration files, and both are printed
//! side by side. Patroni raises `ttl` below 20, `loop_wait` below 1 and
//! `retry_timeout` below 3, so compare with settings both accept.
//!
//! Run as root (the servers run as the unprivileged test user), after
//! `cargo build --workspace --release` (or a debug build: the binaries are
//! taken from the profile this bench was built with).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_test_support::wait_until;
use palisade_tests::cluster::{psql, Cluster, ClusterSpec, Engine};
use palisade_tests::dcs::{self, DcsBackend};

struct Options {
    what: String,
    runs: usize,
    inserts: usize,
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
    seconds: u64,
    patroni: Option<std::path::PathBuf>,
    rows: u64,
    /// `rest-fuzz`: how many requests, the seed, and a running daemon's
    /// API port (else the bench starts a cluster).
    requests: u64,
    seed: u64,
    port: Option<u16>,
    auth: String,
    /// The DCS backends to run on, the first for the measurements that
    /// do not compare backends.
    dcs: Vec<DcsBackend>,
    /// `gaps`: how many kill -9 failovers.
    failovers: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench [failover|switchover|rest|rss|commit-latency|sync-failover|rewind|all] [--runs N] [--inserts N] \
         [--ttl S] [--loop-wait S] [--retry-timeout S] [--seconds S] [--patroni VENV] [--dcs NAME[,NAME...]]\n       \
         bench replica-create [--runs N] [--rows N]\n       \
         bench fast-failover [--runs N] [--ttl S] [--loop-wait S] [--patroni VENV] [--dcs NAME]\n       \
         bench gaps [--runs N] [--failovers N] [--seconds S] [--patroni VENV] [--dcs NAME]\n       \
         bench rest-fuzz [--requests N] [--seed S] [--port P --auth USER:PASSWORD] [--patroni VENV] [--dcs NAME]"
    );
    std::process::exit(2)
}

fn parse() -> Options {
    let mut o = Options {
        what: "all".into(),
        runs: 5,
        inserts: 1000,
        ttl: 10,
        loop_wait: 1,
        retry_timeout: 3,
        seconds: 5,
        patroni: None,
        rows: 1_000_000,
        requests: 100_000,
        seed: 12,
        port: None,
        auth: "fuzz:fuzz".into(),
        dcs: Vec::new(),
        failovers: 3,
    };
    let mut dcs_names: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} needs a number");
                usage()
            })
        };
        match a.as_str() {
            "--runs" => o.runs = num("--runs") as usize,
            "--failovers" => o.failovers = num("--failovers") as usize,
            "--inserts" => o.inserts = (num("--inserts") as usize).max(1),
            "--ttl" => o.ttl = num("--ttl") as u32,
            "--loop-wait" => o.loop_wait = num("--loop-wait") as u32,
            "--retry-timeout" => o.retry_timeout = num("--retry-timeout") as u32,
            "--seconds" => o.seconds = num("--seconds"),
            "--rows" => o.rows = num("--rows").max(1),
            "--requests" => o.requests = num("--requests"),
            "--seed" => o.seed = num("--seed"),
            "--port" => o.port = Some(num("--port") as u16),
            "--auth" => o.auth = args.next().unwrap_or_else(|| usage()),
            "--patroni" => o.patroni = Some(args.next().map(Into::into).unwrap_or_else(|| usage())),
            "--dcs" => dcs_names = Some(args.next().unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            w if !w.starts_with('-') => o.what = w.to_string(),
            _ => usage(),
        }
    }
    o.dcs = choose_dcs(dcs_names.as_deref());
    if o.what == "gaps" && !std::env::args().any(|a| a == "--runs") {
        o.runs = 10;
    }
    o
}

/// The backends `--dcs` names (each must be enrolled and built), or every
/// enrolled backend whose plugin is built.
fn choose_dcs(names: Option<&str>) -> Vec<DcsBackend> {
    let target = palisade_test_support::target_dir();
    let enrolled = || dcs::BACKENDS.iter().map(|b| b.name).collect::<Vec<_>>().join(", ");
    let Some(names) = names else {
        let built: Vec<DcsBackend> = dcs::BACKENDS.iter().filter(|b| b.is_built(&target)).copied().collect();
        if built.is_empty() {
            eprintln!("bench: no DCS plugin is built in {} (enrolled: {})", target.display(), enrolled());
            std::process::exit(2);
        }
        return built;
    };
    let chosen: Vec<DcsBackend> = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            let Some(b) = dcs::backend(n) else {
                eprintln!("bench: --dcs {n}: not an enrolled DCS backend (enrolled: {})", enrolled());
                std::process::exit(2);
            };
            if !b.is_built(&target) {
                eprintln!("bench: --dcs {n}: {} is not built in {}", b.plugin_file, target.display());
                std::process::exit(2);
            }
            b
        })
        .collect();
    if chosen.is_empty() {
        usage()
    }
    chosen
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn show(label: &str, runs: &[Duration]) {
    if runs.is_empty() {
        println!("{label}: no run completed");
        return;
    }
    let secs: Vec<String> = runs.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect();
    println!(
        "{label}: median {:.2} s  (min {:.2}, max {:.2}; runs: {})",
        median(runs.to_vec()).as_secs_f64(),
        runs.iter().min().unwrap().as_secs_f64(),
        runs.iter().max().unwrap().as_secs_f64(),
        secs.join(", ")
    );
}

/// The cluster every measurement uses, on the first DCS backend.
fn spec(o: &Options, engine: &Engine) -> ClusterSpec {
    spec_on(o, engine, o.dcs[0])
}

fn spec_on(o: &Options, engine: &Engine, dcs: DcsBackend) -> ClusterSpec {
    ClusterSpec {
        engine: engine.clone(),
        dcs,
        ttl: o.ttl,
        loop_wait: o.loop_wait,
        retry_timeout: o.retry_timeout,
        // A benchmark reports figures; it does not judge the logs.
        allowed_errors: vec![""],
        ..ClusterSpec::default()
    }
}

/// The daemons to measure: palisade, and Patroni when asked.
fn engines(o: &Options) -> Vec<(&'static str, Engine)> {
    let mut v = vec![("palisade", Engine::Palisade)];
    if let Some(venv) = &o.patroni {
        v.push(("patroni", Engine::Patroni { venv: venv.clone() }));
    }
    v
}

/// Wait until `port` accepts a write; how long that took from `since`.
fn first_write(port: u16, since: Instant, timeout: Duration) -> Option<Duration> {
    let ok = wait_until(timeout, || {
        psql(port, "CREATE TABLE IF NOT EXISTS bench (id serial primary key, at timestamptz default now()); INSERT INTO bench DEFAULT VALUES").is_ok()
    });
    ok.then(|| since.elapsed())
}

fn leader_accepting_writes(c: &Cluster, not: &str, since: Instant) -> (String, Duration) {
    let deadline = Duration::from_secs(120);
    let leader = palisade_test_support::wait_for("a new leader", deadline, || c.leader().filter(|l| l != not));
    let took = first_write(c.node(&leader).pg_port, since, deadline).expect("the new leader accepts writes");
    (leader, took)
}

/// The failover time on every chosen DCS backend, then side by side.
fn failover(o: &Options) {
    let mut rows = Vec::new();
    for (name, engine) in engines(o) {
        for dcs in &o.dcs {
            let times = failover_in(o, name, &engine, *dcs, "", "failover");
            rows.push((format!("{name} on {}", dcs.name), times));
        }
    }
    println!(
        "== failover after kill -9, side by side (ttl {} s, loop_wait {} s, retry_timeout {} s; kill -9 to first write)",
        o.ttl, o.loop_wait, o.retry_timeout
    );
    for (label, times) in rows {
        show(&format!("  {label:<24}"), &times);
    }
}

/// Failovers of a cluster on `dcs` whose dynamic configuration has
/// `extra_dcs`; `what` names the figure. Returns the times measured.
fn failover_in(
    o: &Options,
    name: &str,
    engine: &Engine,
    dcs: DcsBackend,
    extra_dcs: &str,
    what: &str,
) -> Vec<Duration> {
    println!(
        "== {name} on {}: {what} after kill -9 of the leader's daemon and postmaster (ttl {} s, loop_wait {} s, retry_timeout {} s)",
        dcs.name, o.ttl, o.loop_wait, o.retry_timeout
    );
    let mut c =
        Cluster::start("bench-failover", ClusterSpec { extra_dcs: extra_dcs.to_string(), ..spec_on(o, engine, dcs) });
    let mut times = Vec::new();
    for run in 0..o.runs {
        let old = c.wait_for_leader(Duration::from_secs(60));
        c.wait_streaming(&old, 2, Duration::from_secs(120));
        // In synchronous mode only a standby the sync key names may take
        // over: kill the primary once there is one.
        if !extra_dcs.is_empty() && !wait_until(Duration::from_secs(60), || sync_key_names_standby(&c, &old)) {
            println!("  run {}: the sync key names no standby of {old} after 60 s; stopping here", run + 1);
            break;
        }
        let t0 = Instant::now();
        c.kill9(&old, true);
        let (new, took) = leader_accepting_writes(&c, &old, t0);
        println!("  run {}: {old} killed, {new} accepted a write after {:.2} s", run + 1, took.as_secs_f64());
        times.push(took);
        let i = c.index(&old);
        c.start_node(i);
        c.wait_streaming(&new, 2, Duration::from_secs(120));
    }
    show(&format!("{name} on {} {what} (kill -9 to first write on the new leader)", dcs.name), &times);
    times
}

/// Poll `f` every `every` until it holds or `timeout` passes.
fn poll(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(every);
    }
    false
}

/// The fast-failover settings: (label, ttl, loop_wait, retry_timeout,
/// each node's `watchdog` section).
type FastSettings = (&'static str, u32, u32, u32, fn(usize) -> String);

fn watchdog_section(i: usize, safety_margin: u32) -> String {
    format!(
        "watchdog:\n  mode: required\n  driver: testing\n  device: watchdog.node{}.fifo\n  safety_margin: {safety_margin}\n",
        i + 1
    )
}

/// Fast failover made safe by the watchdog, next to Patroni at its minimum.
fn fast_failover(o: &Options) {
    // palisade's ttl and loop_wait are the defaults of this command unless given.
    let explicit = |flag: &str| std::env::args().any(|a| a == flag);
    let ttl = if explicit("--ttl") { o.ttl } else { 5 };
    let loop_wait = if explicit("--loop-wait") { o.loop_wait } else { 1 };
    let mut settings: Vec<(Engine, FastSettings)> =
        vec![(Engine::Palisade, ("palisade", ttl, loop_wait, 2, |i| watchdog_section(i, 2)))];
    if let Some(venv) = &o.patroni {
        settings.push((Engine::Patroni { venv: venv.clone() }, ("patroni", 20, 1, 3, |i| watchdog_section(i, 5))));
    }
    let mut rows = Vec::new();
    for (engine, s) in &settings {
        let (kill, expiry) = fast_failover_in(o, engine, *s);
        rows.push((s, kill, expiry));
    }
    println!("== fast failover, side by side (kill -9 of the leader's daemon and postmaster; watchdog required, testing driver)");
    for ((name, ttl, loop_wait, retry, _), kill, expiry) in rows {
        let label = format!("{name} ttl {ttl} loop_wait {loop_wait} retry_timeout {retry}");
        show(&format!("  {label:<46} kill -9 to first write"), &kill);
        show(&format!("  {label:<46} lease expiry to first write"), &expiry);
    }
}

fn fast_failover_in(o: &Options, engine: &Engine, s: FastSettings) -> (Vec<Duration>, Vec<Duration>) {
    let (name, ttl, loop_wait, retry_timeout, node_extra) = s;
    let dcs = o.dcs[0];
    println!(
        "== {name} on {}: fast failover (ttl {ttl} s, loop_wait {loop_wait} s, retry_timeout {retry_timeout} s, \
         watchdog required)",
        dcs.name
    );
    let spec = ClusterSpec {
        engine: engine.clone(),
        dcs,
        ttl,
        loop_wait,
        retry_timeout,
        node_extra,
        allowed_errors: vec![""],
        ..ClusterSpec::default()
    };
    let mut c = Cluster::prepare("bench-fast", spec);
    // Each node's watchdog device, read before its daemon opens it.
    let devices: Vec<palisade_tests::watchdog::WatchdogDevice> = (0..c.nodes.len())
        .map(|i| palisade_tests::watchdog::WatchdogDevice::start(&c.dir().join(format!("watchdog.node{}.fifo", i + 1))))
        .collect();
    c.start_node(0);
    c.wait_for_leader(Duration::from_secs(90));
    for i in 1..c.nodes.len() {
        c.start_node(i);
    }
    let (mut kill, mut expiry) = (Vec::new(), Vec::new());
    for run in 0..o.runs {
        let old = c.wait_for_leader(Duration::from_secs(60));
        c.wait_streaming(&old, 2, Duration::from_secs(120));
        let device = &devices[c.index(&old)];
        if !wait_until(Duration::from_secs(30), || device.state().armed && !device.state().pings.is_empty()) {
            println!("  run {}: {old}'s watchdog is not armed; stopping here", run + 1);
            break;
        }
        let KillToWrite { new, t0, expired, gone, wrote } = kill_until_write(&mut c, &old, u64::from(ttl));
        assert!(wrote.is_some(), "{new} accepts no write");
        let took = wrote.unwrap_or_else(Instant::now).duration_since(t0);
        let after_expiry = (t0 + took).saturating_duration_since(expired);
        println!(
            "  run {}: {old} killed, lease gone after {:.2} s, {new} accepted a write after {:.2} s ({:.2} s after the lease expired)",
            run + 1,
            expired.duration_since(t0).as_secs_f64(),
            took.as_secs_f64(),
            after_expiry.as_secs_f64()
        );
        kill.push(took);
        if gone {
            expiry.push(after_expiry);
        }
        let i = c.index(&old);
        c.start_node(i);
        c.wait_streaming(&new, 2, Duration::from_secs(120));
    }
    (kill, expiry)
}

/// What [`kill_until_write`] saw.
struct KillToWrite {
    /// The member that took over.
    new: String,
    /// When the leader was killed.
    t0: Instant,
    /// When its key was seen gone (or naming another member).
    expired: Instant,
    /// Whether that happened within 3 × ttl.
    gone: bool,
    /// When the new leader committed its first write, if it did within 120 s.
    wrote: Option<Instant>,
}

/// Kill -9 the leader `old` (daemon and postmaster), follow its key until
/// the lease runs out (polled every 5 ms, for up to 3 × `ttl` s), then write
/// on the new leader until a write commits.
fn kill_until_write(c: &mut Cluster, old: &str, ttl: u64) -> KillToWrite {
    // One client for the whole poll (etcd's raw client connects once).
    let raw = c.dcs.etcd().map(|e| e.raw());
    let key = c.key("leader");
    let holder = |c: &Cluster| match &raw {
        Some(r) => r.get(&key).map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
        None => c.leader(),
    };
    let t0 = Instant::now();
    c.kill9(old, true);
    let gone = poll(Duration::from_secs(ttl * 3), Duration::from_millis(5), || holder(c).as_deref() != Some(old));
    let expired = Instant::now();
    let new =
        palisade_test_support::wait_for("a new leader", Duration::from_secs(120), || c.leader().filter(|l| l != old));
    let port = c.node(&new).pg_port;
    let wrote = poll(Duration::from_secs(120), Duration::from_millis(5), || {
        psql(port, "CREATE TABLE IF NOT EXISTS bench (id serial primary key, at timestamptz default now()); INSERT INTO bench DEFAULT VALUES").is_ok()
    })
    .then(Instant::now);
    KillToWrite { new, t0, expired, gone, wrote }
}

/// The replication modes compared, as `bootstrap.dcs` lines and as a
/// `PATCH /config` body.
const MODES: &[(&str, &str, &str)] = &[
    ("async", "", r#"{"synchronous_mode": false, "synchronous_mode_strict": false, "synchronous_node_count": 1}"#),
    ("on", "    synchronous_mode: on\n", r#"{"synchronous_mode": true, "synchronous_node_count": 1}"#),
    (
        "on, strict",
        "    synchronous_mode: on\n    synchronous_mode_strict: true\n",
        r#"{"synchronous_mode": true, "synchronous_mode_strict": true}"#,
    ),
    (
        "quorum, 1 of 2",
        "    synchronous_mode: quorum\n",
        r#"{"synchronous_mode": "quorum", "synchronous_mode_strict": false, "synchronous_node_count": 1}"#,
    ),
    (
        "quorum, 2 of 2",
        "    synchronous_mode: quorum\n    synchronous_node_count: 2\n",
        r#"{"synchronous_mode": "quorum", "synchronous_mode_strict": false, "synchronous_node_count": 2}"#,
    ),
];

fn sync_failover(o: &Options) {
    for (name, engine) in engines(o) {
        for (mode, dcs, _) in MODES.iter().filter(|m| ["on", "on, strict", "quorum, 1 of 2"].contains(&m.0)) {
            failover_in(o, name, &engine, o.dcs[0], dcs, &format!("failover in synchronous mode {mode}"));
        }
    }
}

/// Whether the `sync` key names `leader` and at least one standby.
fn sync_key_names_standby(c: &Cluster, leader: &str) -> bool {
    c.read_json("sync")
        .is_some_and(|key| key["leader"] == leader && key["sync_standby"].as_str().is_some_and(|s| !s.is_empty()))
}

/// Whether the leader's PostgreSQL replicates as `mode` says, from its
/// `synchronous_standby_names` and `pg_stat_replication`.
fn mode_in_effect(c: &Cluster, leader: &str, mode: &str) -> bool {
    let node = c.node(leader);
    let Ok(ssn) = node.sql("SHOW synchronous_standby_names") else { return false };
    let Ok(states) = node.sql("SELECT sync_state FROM pg_stat_replication") else { return false };
    let count = |s: &str| states.lines().filter(|l| *l == s).count();
    match mode {
        "async" => ssn.is_empty() && count("async") == 2,
        "on" | "on, strict" => !ssn.is_empty() && !ssn.starts_with("ANY") && count("sync") == 1,
        "quorum, 1 of 2" => ssn.starts_with("ANY 1 ") && count("quorum") == 2,
        "quorum, 2 of 2" => ssn.starts_with("ANY 2 ") && count("quorum") == 2,
        _ => false,
    }
}

/// The `Time: ... ms` lines of psql's `\timing` for `n` single-row
/// INSERTs on one connection (after 20 not counted).
fn insert_latencies(port: u16, n: usize) -> Result<Vec<Duration>, String> {
    let mut script = String::from(
        "CREATE TABLE IF NOT EXISTS bench_latency (id bigserial PRIMARY KEY, at timestamptz DEFAULT now());\n",
    );
    script.push_str(&"INSERT INTO bench_latency DEFAULT VALUES;\n".repeat(20));
    script.push_str("\\timing on\n");
    script.push_str(&"INSERT INTO bench_latency DEFAULT VALUES;\n".repeat(n));
    let mut child = std::process::Command::new(palisade_test_support::pg_bin_dir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres"])
        .env("PGPASSWORD", palisade_tests::cluster::SUPERUSER_PASSWORD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let times: Vec<Duration> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("Time: ")?.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .collect();
    if times.len() == n {
        Ok(times)
    } else {
        Err(format!("{} timings for {n} inserts", times.len()))
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn commit_latency(o: &Options) {
    for (name, engine) in engines(o) {
        commit_latency_with(o, name, &engine);
    }
}

fn commit_latency_with(o: &Options, name: &str, engine: &Engine) {
    println!("== {name}: commit latency of a single-row INSERT on the leader, {} per mode, one connection", o.inserts);
    let c = Cluster::start("bench-latency", spec(o, engine));
    let leader = c.wait_for_leader(Duration::from_secs(60));
    c.wait_streaming(&leader, 2, Duration::from_secs(120));
    let api = c.node(&leader).api_port;
    for (mode, _, patch) in MODES {
        match palisade_tests::http::request(api, "PATCH", "/config", Some(patch), &[]) {
            Ok(r) if r.status == 200 => {}
            Ok(r) => {
                println!("  {name} {mode:<15} PATCH /config answered {}: {}", r.status, r.body);
                continue;
            }
            Err(e) => {
                println!("  {name} {mode:<15} PATCH /config failed: {e}");
                continue;
            }
        }
        if !wait_until(Duration::from_secs(60), || mode_in_effect(&c, &leader, mode)) {
            let ssn = c.node(&leader).sql("SHOW synchronous_standby_names").unwrap_or_default();
            println!("  {name} {mode:<15} not in effect after 60 s (synchronous_standby_names '{ssn}'); skipped");
            continue;
        }
        match insert_latencies(c.node(&leader).pg_port, o.inserts) {
            Ok(t) => println!(
                "  {name} {mode:<15} median {:.3} ms  p99 {:.3} ms  (min {:.3}, max {:.3})",
                median(t.clone()).as_secs_f64() * 1000.0,
                percentile(t.clone(), 99.0).as_secs_f64() * 1000.0,
                t.iter().min().unwrap().as_secs_f64() * 1000.0,
                t.iter().max().unwrap().as_secs_f64() * 1000.0,
            ),
            Err(e) => println!("  {name} {mode:<15} inserts failed: {e}"),
        }
    }
}

fn switchover(o: &Options) {
    for (name, engine) in engines(o) {
        switchover_with(o, name, &engine);
    }
}

fn switchover_with(o: &Options, name: &str, engine: &Engine) {
    println!("== {name}: switchover to a named candidate (POST /switchover to first write accepted on it)");
    let c = Cluster::start("bench-switchover", spec(o, engine));
    let mut times = Vec::new();
    for run in 0..o.runs {
        let Some((old, t0)) = switch_over(&c, &format!("run {}", run + 1)) else {
            break;
        };
        let (new, took) = leader_accepting_writes(&c, &old, t0);
        println!("  run {}: {old} -> {new}: first write after {:.2} s", run + 1, took.as_secs_f64());
        times.push(took);
    }
    show(&format!("{name} switchover"), &times);
}

/// Once both replicas of the leader stream, switch over to one of them:
/// the old leader and when the request was sent, or `None` (said under
/// `label`) when the replicas did not rejoin or the request failed.
fn switch_over(c: &Cluster, label: &str) -> Option<(String, Instant)> {
    let old = c.wait_for_leader(Duration::from_secs(60));
    if !wait_until(Duration::from_secs(90), || c.streaming_from(&old).len() >= 2) {
        // The old leader did not rejoin: report the runs made so far.
        println!("  {label}: the replicas of {old} are not all streaming after 90 s; stopping here");
        return None;
    }
    let candidate = c.streaming_from(&old).into_iter().next().unwrap_or_default();
    let body = format!("{{\"leader\": \"{old}\", \"candidate\": \"{candidate}\"}}");
    let t0 = Instant::now();
    match palisade_tests::http::request(c.node(&old).api_port, "POST", "/switchover", Some(&body), &[]) {
        Ok(r) if r.status == 200 => Some((old, t0)),
        Ok(r) => {
            println!("  {label}: POST /switchover answered {}: {}", r.status, r.body);
            None
        }
        Err(e) => {
            println!("  {label}: POST /switchover failed: {e}");
            None
        }
    }
}

/// Health checks per second against `path` from `conns` clients, each
/// opening a new connection per check as HAProxy does (Patroni's server
/// speaks HTTP/1.0 and closes every connection anyway).
fn hammer(port: u16, path: &'static str, conns: usize, seconds: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..conns {
        let (stop, count, failed) = (Arc::clone(&stop), Arc::clone(&count), Arc::clone(&failed));
        threads.push(std::thread::spawn(move || {
            let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
            let mut got = Vec::with_capacity(4096);
            while !stop.load(Ordering::Relaxed) {
                got.clear();
                let ok = TcpStream::connect(("127.0.0.1", port))
                    .and_then(|mut s| {
                        s.write_all(req.as_bytes())?;
                        s.read_to_end(&mut got)
                    })
                    .is_ok_and(|_| got.starts_with(b"HTTP/1.") && got.windows(4).any(|w| w == b"\r\n\r\n"));
                if ok {
                    count.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        println!("    ({failed} checks failed)");
    }
    count.load(Ordering::Relaxed) as f64 / seconds as f64
}

fn rest(o: &Options) {
    for (name, engine) in engines(o) {
        println!(
            "== {name}: REST health checks (GET /primary on the leader, GET /replica on the replica, \
             a connection per check, {} s each)",
            o.seconds
        );
        let c = Cluster::start("bench-rest", ClusterSpec { nodes: 2, ..spec(o, &engine) });
        let leader = c.wait_for_leader(Duration::from_secs(60));
        let replica = c.nodes.iter().find(|n| n.name != leader).map(|n| n.api_port);
        let targets = [("/primary", Some(c.node(&leader).api_port)), ("/replica", replica)];
        for (path, port) in targets {
            let Some(port) = port else { continue };
            for conns in [1, 16] {
                let rate = hammer(port, path, conns, o.seconds);
                println!("  {name} {path:<8} {conns:>2} client(s): {rate:.0} requests/s");
            }
        }
    }
}

/// How one line of the `gaps` table shows a daemon's figures.
type GapsCell = Box<dyn Fn(&Gaps) -> String>;

/// One daemon's figures for `gaps`.
#[derive(Default)]
struct Gaps {
    patroni_1: f64,
    patroni_16: f64,
    metrics_16: f64,
    primary_16: f64,
    /// Cold bootstraps: to the first leader running, to every member
    /// streaming (both as `/cluster` shows them).
    boot_leader: Vec<Duration>,
    boot_streaming: Vec<Duration>,
    /// Switchovers: to the first write on the new leader, to `/cluster`
    /// showing every replica (the old primary among them) streaming.
    switch_write: Vec<Duration>,
    switch_streaming: Vec<Duration>,
    /// kill -9 of the leader: lease expiry to the first write.
    expiry_write: Vec<Duration>,
    rss_kib: Vec<u64>,
}

/// `/cluster` as one of the nodes answers it: (leader running, the names
/// of the members shown streaming).
fn cluster_view(c: &Cluster) -> Option<(Option<String>, Vec<String>)> {
    let body = c.nodes.iter().find_map(|n| n.get("/cluster").ok().filter(|r| r.status == 200))?.json();
    let members = body["members"].as_array()?;
    let leader = members
        .iter()
        .find(|m| m["role"] == "leader" && m["state"] == "running")
        .and_then(|m| m["name"].as_str().map(String::from));
    let streaming = members
        .iter()
        .filter(|m| m["role"] != "leader" && m["state"] == "streaming")
        .filter_map(|m| m["name"].as_str().map(String::from))
        .collect();
    Some((leader, streaming))
}

/// Poll `/cluster` (every 20 ms) until its leader runs and `count` others
/// stream; the times since `t0` at which each was first seen.
fn watch_cluster(
    c: &Cluster,
    t0: Instant,
    count: usize,
    must_stream: Option<&str>,
) -> (Option<Duration>, Option<Duration>) {
    let (mut leader_at, mut streaming_at) = (None, None);
    let deadline = t0 + Duration::from_secs(120);
    while Instant::now() < deadline && streaming_at.is_none() {
        if let Some((leader, streaming)) = cluster_view(c) {
            if leader.is_some() && leader_at.is_none() {
                leader_at = Some(t0.elapsed());
            }
            let named = must_stream.is_none_or(|m| streaming.iter().any(|s| s == m));
            if leader.is_some() && streaming.len() >= count && named {
                streaming_at = Some(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (leader_at, streaming_at)
}

fn gaps_of(o: &Options, name: &str, engine: &Engine) -> Gaps {
    let mut g = Gaps::default();
    let failovers = o.failovers;
    println!("== {name}: {} cold bootstraps of 3 nodes started at once (to /cluster showing them)", o.runs);
    for run in 0..o.runs {
        let mut c = Cluster::prepare("bench-boot", spec(o, engine));
        let t0 = Instant::now();
        for i in 0..c.nodes.len() {
            c.start_node(i);
        }
        let (leader, streaming) = watch_cluster(&c, t0, 2, None);
        let secs = |d: Option<Duration>| d.map_or_else(|| "never".to_string(), |d| format!("{:.2} s", d.as_secs_f64()));
        println!("  run {}: leader running after {}, all streaming after {}", run + 1, secs(leader), secs(streaming));
        g.boot_leader.extend(leader);
        g.boot_streaming.extend(streaming);
    }

    println!("== {name}: REST throughput, memory, {} switchovers and {failovers} failovers on one cluster", o.runs);
    let mut c = Cluster::start("bench-gaps", spec(o, engine));
    let leader = c.wait_for_leader(Duration::from_secs(60));
    c.wait_streaming(&leader, 2, Duration::from_secs(120));
    let port = c.node(&leader).api_port;
    g.patroni_1 = hammer(port, "/patroni", 1, o.seconds);
    g.patroni_16 = hammer(port, "/patroni", 16, o.seconds);
    g.metrics_16 = hammer(port, "/metrics", 16, o.seconds);
    g.primary_16 = hammer(port, "/primary", 16, o.seconds);
    println!(
        "  GET /patroni {:.0}/s (1 client), {:.0}/s (16); /metrics {:.0}/s (16); /primary {:.0}/s (16)",
        g.patroni_1, g.patroni_16, g.metrics_16, g.primary_16
    );
    std::thread::sleep(Duration::from_secs(5));
    for n in &c.nodes {
        if let Some(k) = n.daemon_pid().and_then(rss_kib) {
            g.rss_kib.push(k);
        }
    }
    println!("  RSS: {:?} KiB", g.rss_kib);

    for run in 0..o.runs {
        let Some((old, t0)) = switch_over(&c, &format!("switchover {}", run + 1)) else {
            break;
        };
        let (new, took) = leader_accepting_writes(&c, &old, t0);
        let (_, streaming) = watch_cluster(&c, t0, 2, Some(&old));
        let shown = streaming.map_or_else(|| "never".into(), |d| format!("{:.2} s", d.as_secs_f64()));
        println!(
            "  switchover {}: {old} -> {new}: first write after {:.2} s, /cluster shows {old} streaming after {shown}",
            run + 1,
            took.as_secs_f64()
        );
        g.switch_write.push(took);
        g.switch_streaming.extend(streaming);
    }

    for run in 0..failovers {
        let old = c.wait_for_leader(Duration::from_secs(60));
        c.wait_streaming(&old, 2, Duration::from_secs(120));
        let KillToWrite { new, t0, expired, gone, wrote } = kill_until_write(&mut c, &old, u64::from(o.ttl.max(20)));
        let after = wrote.unwrap_or_else(Instant::now).saturating_duration_since(expired);
        println!(
            "  failover {}: {old} killed, lease gone after {:.2} s, {new} wrote {:.2} s after the expiry",
            run + 1,
            expired.duration_since(t0).as_secs_f64(),
            after.as_secs_f64()
        );
        if gone && wrote.is_some() {
            g.expiry_write.push(after);
        }
        let i = c.index(&old);
        c.start_node(i);
        c.wait_streaming(&new, 2, Duration::from_secs(120));
    }
    g
}

/// The gaps issue 13 names, palisade next to Patroni (see the module's
/// documentation).
fn gaps(o: &Options) {
    let rows: Vec<(&str, Gaps)> = engines(o).into_iter().map(|(name, e)| (name, gaps_of(o, name, &e))).collect();
    let f = |d: &[Duration], pick: fn(&[Duration]) -> Duration| {
        if d.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2} s", pick(d).as_secs_f64())
        }
    };
    let med = |d: &[Duration]| median(d.to_vec());
    let max = |d: &[Duration]| d.iter().max().copied().unwrap_or_default();
    let outliers = |d: &[Duration]| format!("{}/{}", d.iter().filter(|d| d.as_secs_f64() >= 10.0).count(), d.len());
    let lines: Vec<(&str, GapsCell)> = vec![
        ("GET /patroni, 1 client (req/s)", Box::new(|g| format!("{:.0}", g.patroni_1))),
        ("GET /patroni, 16 clients (req/s)", Box::new(|g| format!("{:.0}", g.patroni_16))),
        ("GET /metrics, 16 clients (req/s)", Box::new(|g| format!("{:.0}", g.metrics_16))),
        ("GET /primary, 16 clients (req/s)", Box::new(|g| format!("{:.0}", g.primary_16))),
        ("bootstrap to leader running, median", Box::new(move |g| f(&g.boot_leader, med))),
        ("bootstrap to leader running, max", Box::new(move |g| f(&g.boot_leader, max))),
        ("bootstrap to all streaming, median", Box::new(move |g| f(&g.boot_streaming, med))),
        ("bootstrap to all streaming, max", Box::new(move |g| f(&g.boot_streaming, max))),
        ("bootstraps taking 10 s or more", Box::new(move |g| outliers(&g.boot_streaming))),
        ("switchover to first write, median", Box::new(move |g| f(&g.switch_write, med))),
        ("switchover to first write, max", Box::new(move |g| f(&g.switch_write, max))),
        ("switchover to old primary streaming, median", Box::new(move |g| f(&g.switch_streaming, med))),
        ("switchover to old primary streaming, max", Box::new(move |g| f(&g.switch_streaming, max))),
        ("switchovers taking 10 s or more", Box::new(move |g| outliers(&g.switch_streaming))),
        ("lease expiry to first write, median", Box::new(move |g| f(&g.expiry_write, med))),
        ("lease expiry to first write, max", Box::new(move |g| f(&g.expiry_write, max))),
        (
            "daemon RSS, max of 3 nodes (MiB)",
            Box::new(|g| format!("{:.1}", g.rss_kib.iter().max().copied().unwrap_or(0) as f64 / 1024.0)),
        ),
    ];
    println!(
        "== gaps, side by side (3 nodes on {}, ttl {} s, loop_wait {} s, retry_timeout {} s; {} s per REST figure, \
         a connection per request)",
        o.dcs[0].name, o.ttl, o.loop_wait, o.retry_timeout, o.seconds
    );
    let header: Vec<String> = rows.iter().map(|(n, _)| format!("{n:>12}")).collect();
    println!("  {:<46}{}", "", header.join(""));
    for (label, value) in &lines {
        let cells: Vec<String> = rows.iter().map(|(_, g)| format!("{:>12}", value(g))).collect();
        println!("  {label:<46}{}", cells.join(""));
    }
}

/// The live REST API fuzzer (see `palisade_tests::rest_fuzz`): `--requests`
/// generated requests with `--seed` to the leader of a 2-node cluster the
/// bench starts (its API with `restapi.authentication` fuzz:fuzz), or to
/// the daemon on `--port` (authenticated with `--auth`).
fn rest_fuzz(o: &Options) {
    let report = |name: &str, port: u16, auth: &str| {
        let auth = palisade_tests::rest_fuzz::basic_auth(auth);
        let started = Instant::now();
        let f = palisade_tests::rest_fuzz::run(port, o.requests, o.seed, &auth);
        let took = started.elapsed().as_secs_f64();
        println!("== {name}: REST fuzz, seed {}, {} requests in {took:.1} s", o.seed, f.sent);
        println!("  by delivery: {:?}", f.by_delivery);
        println!("  answers by code: {:?}", f.codes);
        println!(
            "  closed without an answer: {}; stuck (no answer or close within {} s): {}; connection failures: {}",
            f.closed_without_answer,
            palisade_tests::rest_fuzz::STUCK.as_secs(),
            f.stuck,
            f.failed
        );
        println!(
            "  5xx Patroni does not define: {}; 4xx from an endpoint with an empty body: {}; \
             HTTP-level refusals (400/431 before any handler, no body): {}",
            f.unexpected_5xx, f.empty_4xx, f.http_level_4xx
        );
        println!("  /liveness checks: {} ({} not 200)", f.liveness_checks, f.liveness_failures);
        match f.stalled_head_closed_after {
            Some(d) => println!("  a sender stalled mid-head was cut off after {:.1} s", d.as_secs_f64()),
            None => println!("  a sender stalled mid-head was NOT cut off within 120 s"),
        }
        match f.stalled_body_closed_after {
            Some(d) => println!("  a sender stalled before its body was answered after {:.1} s", d.as_secs_f64()),
            None => println!("  a sender stalled before its body was NOT answered within 120 s"),
        }
        for finding in f.findings.iter().take(20) {
            println!("  finding: {finding}");
        }
    };
    if let Some(port) = o.port {
        report("the daemon on --port", port, &o.auth);
        return;
    }
    for (name, engine) in engines(o) {
        let extra = "  authentication:\n    username: fuzz\n    password: fuzz\n".to_string();
        let c = Cluster::start("bench-fuzz", ClusterSpec { nodes: 2, restapi_extra: extra, ..spec(o, &engine) });
        let leader = c.wait_for_leader(Duration::from_secs(60));
        report(name, c.node(&leader).api_port, "fuzz:fuzz");
    }
}

/// User plus system CPU time of `pid` (and its threads), from /proc.
fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3; utime and stime are 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Seconds since midnight of a log line's `2026-01-31 12:00:00,123` stamp.
fn stamp(line: &str) -> Option<f64> {
    let t = line.get(11..23)?;
    let (hms, ms) = t.split_once(',')?;
    let mut parts = hms.split(':').map(|p| p.parse::<f64>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    Some(h * 3600.0 + m * 60.0 + sec + ms.parse::<f64>().ok()? / 1000.0)
}

/// Seconds between the first line containing `from` and the first later
/// line containing `to`, in `log`.
fn between(log: &str, from: &str, to: &str) -> Option<Duration> {
    let lines: Vec<&str> = log.lines().collect();
    let i = lines.iter().position(|l| l.contains(from))?;
    let j = lines[i..].iter().position(|l| l.contains(to))? + i;
    let mut d = stamp(lines[j])? - stamp(lines[i])?;
    if d < 0.0 {
        d += 86400.0;
    }
    Some(Duration::from_secs_f64(d))
}

fn rewind(o: &Options) {
    for (name, engine) in engines(o) {
        rewind_with(o, name, &engine);
    }
}

fn rewind_with(o: &Options, name: &str, engine: &Engine) {
    println!(
        "== {name}: a diverged former primary rejoins through pg_rewind (2 nodes, ttl {} s, loop_wait {} s)",
        o.ttl, o.loop_wait
    );
    let spec = ClusterSpec { nodes: 2, postgresql_extra: "  use_pg_rewind: true\n".into(), ..spec(o, engine) };
    let mut c = Cluster::start("bench-rewind", spec);
    let (mut total, mut rewind, mut crash) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..o.runs {
        let old = c.wait_for_leader(Duration::from_secs(60));
        c.wait_streaming(&old, 1, Duration::from_secs(120));
        c.node(&old).sql("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, v text); DELETE FROM t").unwrap();
        let d = palisade_tests::diverge::diverge(&mut c, &old);
        let mark = format!("bench rewind run {}", run + 1);
        c.mark(&mark);
        let t0 = Instant::now();
        let i = c.index(&old);
        c.start_node(i);
        let ok = wait_until(Duration::from_secs(300), || c.streaming_from(&d.new).contains(&old));
        let took = t0.elapsed();
        if !ok {
            println!("  run {}: {old} does not stream from {} after 300 s; stopping here", run + 1, d.new);
            break;
        }
        let log = c.node(&old).log_after(&mark);
        let pg_rewind = between(&log, "running pg_rewind from dbname=", "pg_rewind exit code=0");
        let recovery = between(&log, "doing crash recovery in a single user mode", "running pg_rewind from ");
        let secs = |d: Option<Duration>| d.map_or_else(|| "?".to_string(), |d| format!("{:.2} s", d.as_secs_f64()));
        println!(
            "  run {}: {old} ({} rows only it had) streams from {} after {:.2} s; pg_rewind {}, crash recovery {}",
            run + 1,
            d.rows_only_on_old,
            d.new,
            took.as_secs_f64(),
            secs(pg_rewind),
            secs(recovery)
        );
        total.push(took);
        rewind.extend(pg_rewind);
        crash.extend(recovery);
    }
    show(&format!("{name} rewind (daemon start to streaming)"), &total);
    show(&format!("{name} of which pg_rewind"), &rewind);
    show(&format!("{name} of which crash recovery in single-user mode (to the pg_rewind decision)"), &crash);
    if !total.is_empty() && !rewind.is_empty() {
        let share = median(rewind.clone()).as_secs_f64() / median(total.clone()).as_secs_f64() * 100.0;
        println!("{name}: pg_rewind's share of the median rejoin: {share:.0} %");
    }
}

fn rss_kib(pid: i32) -> Option<u64> {
    proc_kib(pid, "status", "VmRSS:")
}

/// The `field` (KiB) of `/proc/<pid>/<file>`.
fn proc_kib(pid: i32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Where a process's RSS goes: its own anonymous memory (heap, stacks),
/// the pages of files it maps (code, shared with every process mapping
/// them, kept in the page cache) and its proportional share (PSS).
fn rss_parts(pid: i32) -> String {
    let mib = |k: Option<u64>| k.map_or_else(|| "?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
    format!(
        "anonymous {} + files {} MiB, PSS {} MiB",
        mib(proc_kib(pid, "status", "RssAnon:")),
        mib(proc_kib(pid, "status", "RssFile:")),
        mib(proc_kib(pid, "smaps_rollup", "Pss:"))
    )
}

/// The RSS (KiB) of each file a process maps, and of its anonymous memory,
/// largest first: `(KiB, name)` from `/proc/<pid>/smaps`.
fn rss_by_mapping(pid: i32) -> Vec<(u64, String)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else { return Vec::new() };
    let mut by: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut name = String::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // address perms offset dev inode [path]
            let path = f.nth(4).unwrap_or("[anonymous]");
            name =
                std::path::Path::new(path).file_name().map_or(path.to_string(), |n| n.to_string_lossy().into_owned());
        } else if first == "Rss:" {
            *by.entry(name.clone()).or_default() += f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    let mut v: Vec<(u64, String)> = by.into_iter().map(|(n, k)| (k, n)).filter(|(k, _)| *k > 0).collect();
    v.sort_by(|a, b| b.cmp(a));
    v
}

/// The daemons' memory with each chosen DCS plugin loaded, then side by side.
fn rss(o: &Options) {
    let mut rows = Vec::new();
    for (name, engine) in engines(o) {
        for dcs in &o.dcs {
            let kib = rss_with(o, name, &engine, *dcs);
            rows.push((format!("{name} on {}", dcs.name), kib));
        }
    }
    println!("== daemon RSS by DCS plugin, side by side (VmRSS after 10 s of steady state)");
    for (label, kib) in rows {
        if kib.is_empty() {
            println!("  {label:<24} no figure");
            continue;
        }
        let mib: Vec<String> = kib.iter().map(|k| format!("{:.1}", *k as f64 / 1024.0)).collect();
        let max = kib.iter().max().copied().unwrap_or(0) as f64 / 1024.0;
        println!("  {label:<24} max {max:.1} MiB  (per node: {} MiB)", mib.join(", "));
    }
}

/// The RSS (KiB) of each node's daemon of a cluster on `dcs`.
fn rss_with(o: &Options, name: &str, engine: &Engine, dcs: DcsBackend) -> Vec<u64> {
    println!("== {name} on {}: daemon memory (VmRSS after 10 s of steady state) and CPU time", dcs.name);
    let mut c = Cluster::start("bench-rss", spec_on(o, engine, dcs));
    std::thread::sleep(Duration::from_secs(10));
    let mut kib = Vec::new();
    for i in 0..c.nodes.len() {
        let role = if c.leader().as_deref() == Some(c.nodes[i].name.as_str()) { "leader" } else { "replica" };
        let pid = c.nodes[i].daemon_pid().unwrap();
        let _ = c.nodes[i].daemon_running();
        match (rss_kib(pid), cpu_seconds(pid)) {
            (Some(k), Some(cpu)) => {
                kib.push(k);
                println!(
                    "  {name} {} ({role}): {:.1} MiB RSS ({}), {cpu:.2} s CPU since start",
                    c.nodes[i].name,
                    k as f64 / 1024.0,
                    rss_parts(pid)
                )
            }
            _ => println!("  {name} {} ({role}): cannot read /proc/{pid}", c.nodes[i].name),
        }
        if i == 0 {
            let parts: Vec<String> =
                rss_by_mapping(pid).iter().take(8).map(|(k, n)| format!("{n} {:.2}", *k as f64 / 1024.0)).collect();
            let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
            println!("  {name} {} RSS by mapping (MiB): {}; {threads} threads", c.nodes[i].name, parts.join(", "));
            if let Ok(dir) = std::env::var("BENCH_KEEP_SMAPS") {
                let _ = std::fs::copy(format!("/proc/{pid}/smaps"), format!("{dir}/{name}-{}.smaps", dcs.name));
                let mut threads = String::new();
                for t in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
                    let p = t.path();
                    let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
                    let sc = std::fs::read_to_string(p.join("syscall")).unwrap_or_default();
                    threads.push_str(&format!("{} {}", comm.trim(), sc));
                }
                let _ = std::fs::write(format!("{dir}/{name}-{}.threads", dcs.name), threads);
                let _ = std::fs::write(format!("{dir}/{name}-{}.pid", dcs.name), pid.to_string());
                if let Some(s) = std::env::var("BENCH_HOLD_SECONDS").ok().and_then(|s| s.parse().ok()) {
                    std::thread::sleep(Duration::from_secs(s));
                }
            }
        }
    }
    kib
}

fn main() {
    if !palisade_test_support::is_root() {
        eprintln!("bench: run as root (the servers run as the unprivileged test user)");
        std::process::exit(1);
    }
    let o = parse();
    match o.what.as_str() {
        "failover" => failover(&o),
        "switchover" => switchover(&o),
        "rest" => rest(&o),
        "rss" => rss(&o),
        "commit-latency" => commit_latency(&o),
        "sync-failover" => sync_failover(&o),
        "replica-create" => replica_create(&o),
        "rewind" => rewind(&o),
        "fast-failover" => fast_failover(&o),
        "rest-fuzz" => rest_fuzz(&o),
        "gaps" => gaps(&o),
        "all" => {
            rss(&o);
            rest(&o);
            failover(&o);
            switchover(&o);
            commit_latency(&o);
            sync_failover(&o);
            rewind(&o);
        }
        _ => usage(),
    }
}

/// Replica creation time by `basebackup` and by the `pgbackrest` plugin,
/// for the same database (see the module's documentation).
fn replica_create(o: &Options) {
    use palisade_tests::backup::{add_to_postgresql, archive_parameters, time_reinitialize, PgBackRest, STANZA};
    let spec = ClusterSpec {
        nodes: 3,
        ttl: o.ttl,
        loop_wait: o.loop_wait,
        retry_timeout: o.retry_timeout,
        parameters_extra: archive_parameters(),
        ..ClusterSpec::default()
    };
    let mut c = Cluster::prepare("bench-replica", spec);
    let repo = PgBackRest::prepare(&c);
    add_to_postgresql(
        &c,
        "node3",
        &format!(
            "  create_replica_methods:\n  - pgbackrest\n  pgbackrest:\n    stanza: {STANZA}\n    config: {}\n",
            repo.conf.display()
        ),
    );
    c.start_node(0);
    let leader = c.wait_for_leader(Duration::from_secs(60));
    let fill = format!(
        "CREATE TABLE bench AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, {}) g; CHECKPOINT",
        o.rows
    );
    c.node(&leader).sql(&fill).unwrap_or_else(|e| panic!("filling the database: {e}"));
    let size = c.node(&leader).sql("SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database").unwrap();
    let (label, backup_time) = Cluster::timed(|| repo.stanza_create_and_backup(&c));
    println!(
        "replica-create: {} rows, {size} in all databases; pgBackRest full backup {label} took {:.2} s",
        o.rows,
        backup_time.as_secs_f64()
    );

    let mut results = Vec::new();
    for (node, method) in [("node2", "basebackup"), ("node3", "pgbackrest")] {
        let i = c.index(node);
        let ((), first) = Cluster::timed(|| {
            c.start_node(i);
            palisade_test_support::wait_for(&format!("{node} streaming"), Duration::from_secs(600), || {
                c.streaming_from(&leader).iter().any(|m| m == node).then_some(())
            })
        });
        let again: Vec<Duration> =
            (1..o.runs).map(|_| time_reinitialize(&c, node, &leader, Duration::from_secs(600))).collect();
        results.push((method, first, again));
    }
    for (method, first, again) in results {
        println!("replica-create {method}: new member to streaming {:.2} s", first.as_secs_f64());
        show(&format!("replica-create {method}: reinitialize to streaming"), &again);
    }
}
