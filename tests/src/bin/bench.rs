//! Benchmarks that print figures (never tests): failover and switchover
//! times on a real 3-node cluster, REST health-check throughput, and the
//! daemons' memory.
//!
//! ```text
//! cargo run --release -p palisade-tests --bin bench -- [failover|switchover|rest|rss|all] [--runs N]
//!     [--ttl S] [--loop-wait S] [--retry-timeout S] [--seconds S] [--patroni VENV]
//! ```
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

struct Options {
    what: String,
    runs: usize,
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
    seconds: u64,
    patroni: Option<std::path::PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench [failover|switchover|rest|rss|all] [--runs N] [--ttl S] [--loop-wait S] [--retry-timeout S] [--seconds S] [--patroni VENV]"
    );
    std::process::exit(2)
}

fn parse() -> Options {
    let mut o =
        Options { what: "all".into(), runs: 5, ttl: 10, loop_wait: 1, retry_timeout: 3, seconds: 5, patroni: None };
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
            "--ttl" => o.ttl = num("--ttl") as u32,
            "--loop-wait" => o.loop_wait = num("--loop-wait") as u32,
            "--retry-timeout" => o.retry_timeout = num("--retry-timeout") as u32,
            "--seconds" => o.seconds = num("--seconds"),
            "--patroni" => o.patroni = Some(args.next().map(Into::into).unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            w if !w.starts_with('-') => o.what = w.to_string(),
            _ => usage(),
        }
    }
    o
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn show(label: &str, runs: &[Duration]) {
    let secs: Vec<String> = runs.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect();
    println!(
        "{label}: median {:.2} s  (min {:.2}, max {:.2}; runs: {})",
        median(runs.to_vec()).as_secs_f64(),
        runs.iter().min().unwrap().as_secs_f64(),
        runs.iter().max().unwrap().as_secs_f64(),
        secs.join(", ")
    );
}

fn spec(o: &Options, engine: &Engine) -> ClusterSpec {
    ClusterSpec {
        engine: engine.clone(),
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

fn failover(o: &Options) {
    for (name, engine) in engines(o) {
        failover_with(o, name, &engine);
    }
}

fn failover_with(o: &Options, name: &str, engine: &Engine) {
    println!(
        "== {name}: failover after kill -9 of the leader's daemon and postmaster (ttl {} s, loop_wait {} s, retry_timeout {} s)",
        o.ttl, o.loop_wait, o.retry_timeout
    );
    let mut c = Cluster::start("bench-failover", spec(o, engine));
    let mut times = Vec::new();
    for run in 0..o.runs {
        let old = c.wait_for_leader(Duration::from_secs(60));
        c.wait_streaming(&old, 2, Duration::from_secs(120));
        let t0 = Instant::now();
        c.kill9(&old, true);
        let (new, took) = leader_accepting_writes(&c, &old, t0);
        println!("  run {}: {old} killed, {new} accepted a write after {:.2} s", run + 1, took.as_secs_f64());
        times.push(took);
        let i = c.index(&old);
        c.start_node(i);
        c.wait_streaming(&new, 2, Duration::from_secs(120));
    }
    show(&format!("{name} failover (kill -9 to first write on the new leader)"), &times);
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
        let old = c.wait_for_leader(Duration::from_secs(60));
        if !wait_until(Duration::from_secs(90), || c.streaming_from(&old).len() >= 2) {
            // The old leader did not rejoin: report the runs made so far.
            println!("  run {}: the replicas of {old} are not all streaming after 90 s; stopping here", run + 1);
            break;
        }
        let candidate = c.streaming_from(&old).into_iter().next().unwrap_or_default();
        let body = format!("{{\"leader\": \"{old}\", \"candidate\": \"{candidate}\"}}");
        let t0 = Instant::now();
        let r = palisade_tests::http::request(c.node(&old).api_port, "POST", "/switchover", Some(&body), &[]);
        match r {
            Ok(r) if r.status == 200 => {}
            Ok(r) => {
                println!("  run {}: POST /switchover answered {}: {}", run + 1, r.status, r.body);
                return;
            }
            Err(e) => {
                println!("  run {}: POST /switchover failed: {e}", run + 1);
                return;
            }
        }
        let (new, took) = leader_accepting_writes(&c, &old, t0);
        println!("  run {}: {old} -> {new}: first write after {:.2} s", run + 1, took.as_secs_f64());
        times.push(took);
    }
    show(&format!("{name} switchover"), &times);
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

fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn rss(o: &Options) {
    for (name, engine) in engines(o) {
        rss_with(o, name, &engine);
    }
}

fn rss_with(o: &Options, name: &str, engine: &Engine) {
    println!("== {name}: daemon memory (VmRSS after 10 s of steady state) and CPU time");
    let mut c = Cluster::start("bench-rss", spec(o, engine));
    std::thread::sleep(Duration::from_secs(10));
    for i in 0..c.nodes.len() {
        let role = if c.leader().as_deref() == Some(c.nodes[i].name.as_str()) { "leader" } else { "replica" };
        let pid = c.nodes[i].daemon_pid().unwrap();
        let _ = c.nodes[i].daemon_running();
        match (rss_kib(pid), cpu_seconds(pid)) {
            (Some(k), Some(cpu)) => {
                println!(
                    "  {name} {} ({role}): {:.1} MiB RSS, {cpu:.2} s CPU since start",
                    c.nodes[i].name,
                    k as f64 / 1024.0
                )
            }
            _ => println!("  {name} {} ({role}): cannot read /proc/{pid}", c.nodes[i].name),
        }
    }
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
        "all" => {
            rss(&o);
            rest(&o);
            failover(&o);
            switchover(&o);
        }
        _ => usage(),
    }
}
