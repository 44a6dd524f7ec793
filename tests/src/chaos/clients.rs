//! The campaign's clients, over each node's control link: one writer per
//! node and the watcher, all timed on one monotonic [`Clock`].
//!
//! A writer inserts one row at a time (`INSERT ... RETURNING` the timeline
//! and LSN it was written at) and records it only once COMMIT returned.
//! A write that does not answer within [`WRITE_TIMEOUT`] is abandoned by
//! closing its connection, never by cancelling it: PostgreSQL reports a
//! cancelled wait for a synchronous standby as a *successful* COMMIT (with
//! a warning), which would count a write no standby has as acknowledged.
//! That is also why no `statement_timeout` is set.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::launch::{PASSWORD, PG_PORT};
use super::record::{Millis, NodeView, Round, Write};

/// How long a writer waits for its connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a writer waits for its INSERT to commit before abandoning it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the watcher looks at every node.
pub const ROUND_EVERY: Duration = Duration::from_millis(200);

/// Milliseconds since the campaign started, one clock for every record.
#[derive(Clone, Copy, Debug)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Clock(Instant::now())
    }

    pub fn now(&self) -> Millis {
        self.0.elapsed().as_millis() as Millis
    }
}

/// `method path` to a REST API at `addr`, with a timeout for the whole
/// exchange. `Err` when it cannot be reached or does not answer in time.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<crate::http::Response, String> {
    use std::io::{Read, Write as _};
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    stream.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    crate::http::parse(&raw)
}

/// `0/3000060` as bytes.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The superuser's connection to node `ip`'s PostgreSQL over its control link.
pub(crate) fn pg_config(ip: Ipv4Addr) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(ip.to_string())
        .port(PG_PORT)
        .user("postgres")
        .password(PASSWORD)
        .dbname("postgres")
        .application_name("palisade-chaos")
        .connect_timeout(CONNECT_TIMEOUT);
    c
}

/// Connect within [`CONNECT_TIMEOUT`], the connection driven on the current runtime.
async fn connect(ip: Ipv4Addr) -> Option<tokio_postgres::Client> {
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT * 2, pg_config(ip).connect(tokio_postgres::NoTls)).await.ok()?.ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(client)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

/// The writers and the watcher, running until [`Clients::stop`].
pub struct Clients {
    stop: Arc<AtomicBool>,
    pub writes: Arc<Mutex<Vec<Write>>>,
    pub rounds: Arc<Mutex<Vec<Round>>>,
    threads: Vec<JoinHandle<()>>,
    writing: Arc<AtomicBool>,
}

/// What the clients need of one node.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub control_ip: Ipv4Addr,
    pub api: SocketAddr,
}

impl Clients {
    /// Start the watcher now; the writers start writing after [`Clients::start_writing`].
    pub fn start(clock: Clock, targets: Vec<Target>) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let writing = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(Mutex::new(Vec::new()));
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let next_id = Arc::new(AtomicU64::new(1));
        let mut threads = Vec::new();
        for t in &targets {
            let (t, stop, writing, writes, next_id) =
                (t.clone(), stop.clone(), writing.clone(), writes.clone(), next_id.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("writer-{}", t.name))
                    .spawn(move || writer(clock, t, stop, writing, writes, next_id))
                    .expect("a writer thread"),
            );
        }
        let (stop2, rounds2) = (stop.clone(), rounds.clone());
        threads.push(
            std::thread::Builder::new()
                .name("watcher".into())
                .spawn(move || watcher(clock, targets, stop2, rounds2))
                .expect("the watcher thread"),
        );
        Clients { stop, writes, rounds, threads, writing }
    }

    pub fn start_writing(&self) {
        self.writing.store(true, Ordering::Relaxed);
    }

    /// Stop writing (the watcher goes on).
    pub fn stop_writing(&self) {
        self.writing.store(false, Ordering::Relaxed);
    }

    /// The watcher's latest round.
    pub fn last_round(&self) -> Option<Round> {
        self.rounds.lock().unwrap_or_else(|p| p.into_inner()).last().cloned()
    }

    /// The rounds since `since` (by their start).
    pub fn rounds_since(&self, since: Millis) -> Vec<Round> {
        self.rounds.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|r| r.at >= since).cloned().collect()
    }

    pub fn write_count(&self) -> usize {
        self.writes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Stop every thread and wait for them.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop();
    }
}

fn writer(
    clock: Clock,
    t: Target,
    stop: Arc<AtomicBool>,
    writing: Arc<AtomicBool>,
    writes: Arc<Mutex<Vec<Write>>>,
    next_id: Arc<AtomicU64>,
) {
    let rt = runtime();
    rt.block_on(async move {
        let mut client: Option<tokio_postgres::Client> = None;
        while !stop.load(Ordering::Relaxed) {
            if !writing.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let Some(c) = client.as_ref() else {
                client = connect(t.control_ip).await;
                if client.is_none() {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                continue;
            };
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let sql = format!(
                "INSERT INTO chaos_writes (id, node) VALUES ({id}, '{}') \
                 RETURNING substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8), pg_current_wal_lsn()::text",
                t.name
            );
            let started = clock.now();
            let result = tokio::time::timeout(WRITE_TIMEOUT, c.simple_query(&sql)).await;
            let acked = clock.now();
            match result {
                Ok(Ok(messages)) => {
                    let row = messages.iter().find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((r.get(0).map(str::to_string), r.get(1).map(str::to_string)))
                        }
                        _ => None,
                    });
                    let timeline = row.as_ref().and_then(|(tl, _)| u32::from_str_radix(tl.as_deref()?, 16).ok());
                    let lsn = row.as_ref().and_then(|(_, lsn)| parse_lsn(lsn.as_deref()?));
                    match (timeline, lsn) {
                        (Some(timeline), Some(lsn)) => writes.lock().unwrap_or_else(|p| p.into_inner()).push(Write {
                            id,
                            node: t.name.clone(),
                            started,
                            acked,
                            timeline,
                            lsn,
                        }),
                        _ => eprintln!("chaos: {}: write {id} committed without its timeline and LSN: {row:?}", t.name),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(Err(_)) => {
                    // Read-only, shutting down, gone: try again shortly, on
                    // a new connection if this one is closed.
                    if c.is_closed() {
                        client = None;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => {
                    // No answer in time: abandon the write by closing the
                    // connection (never by cancelling it, see above).
                    client = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

fn watcher(clock: Clock, targets: Vec<Target>, stop: Arc<AtomicBool>, rounds: Arc<Mutex<Vec<Round>>>) {
    let rt = runtime();
    rt.block_on(async move {
        let mut clients: Vec<Option<tokio_postgres::Client>> = targets.iter().map(|_| None).collect();
        while !stop.load(Ordering::Relaxed) {
            let at = clock.now();
            let mut nodes = Vec::new();
            for (t, client) in targets.iter().zip(clients.iter_mut()) {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    *client = connect(t.control_ip).await;
                }
                let mut in_recovery = None;
                if let Some(c) = client.as_ref() {
                    match tokio::time::timeout(Duration::from_secs(1), c.simple_query("SELECT pg_is_in_recovery()"))
                        .await
                    {
                        Ok(Ok(messages)) => {
                            in_recovery = messages.iter().find_map(|m| match m {
                                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v == "t"),
                                _ => None,
                            })
                        }
                        _ => *client = None,
                    }
                }
                let api = t.api;
                let (patroni, liveness) = tokio::task::spawn_blocking(move || {
                    let timeout = Duration::from_secs(1);
                    let patroni = http(api, "GET", "/patroni", None, timeout).ok().map(|r| r.json());
                    let liveness = http(api, "GET", "/liveness", None, timeout).ok().map(|r| r.status);
                    (patroni, liveness)
                })
                .await
                .unwrap_or((None, None));
                let text = |key: &str| patroni.as_ref().and_then(|p| p[key].as_str().map(str::to_string));
                nodes.push(NodeView {
                    node: t.name.clone(),
                    in_recovery,
                    timeline: patroni.as_ref().and_then(|p| p["timeline"].as_u64()).map(|t| t as u32),
                    role: text("role"),
                    state: text("state"),
                    replication_state: text("replication_state"),
                    liveness,
                });
            }
            rounds.lock().unwrap_or_else(|p| p.into_inner()).push(Round { at, nodes });
            let spent = Duration::from_millis(clock.now().saturating_sub(at));
            tokio::time::sleep(ROUND_EVERY.saturating_sub(spent)).await;
        }
    });
}
