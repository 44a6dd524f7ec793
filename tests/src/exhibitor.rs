//! A test double of Exhibitor's discovery endpoint (not Exhibitor): a
//! small HTTP server thread answering `GET /exhibitor/v1/cluster/list` with
//! `{"servers": [...], "port": N}` for the ZooKeeper it fronts, the list
//! changeable at run time; and [`ExhibitorFixture`], the `exhibitor`
//! plugin on a real ZooKeeper behind that endpoint, for the conformance
//! suite.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use palisade_plugin_api::{Dcs, DcsParams, DcsTiming};

use crate::conformance::DcsFixture;
use crate::plugins::PluginCluster;
use crate::zookeeper::{RawZk, ZooKeeperServer};

/// What the endpoint answers: the ZooKeeper servers and their client port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerList {
    pub servers: Vec<String>,
    pub port: u16,
}

struct Shared {
    list: Mutex<ServerList>,
    /// Answer 503 instead of the list (an Exhibitor that is down).
    failing: AtomicBool,
    requests: AtomicUsize,
    stop: AtomicBool,
}

/// The discovery endpoint double, on 127.0.0.1 and a free port; stopped
/// when dropped.
pub struct ExhibitorEndpoint {
    shared: Arc<Shared>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ExhibitorEndpoint {
    /// Serve `list` until dropped.
    pub fn start(list: ServerList) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind the Exhibitor double: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("its port: {e}"));
        let shared = Arc::new(Shared {
            list: Mutex::new(list),
            failing: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let serving = shared.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if serving.stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    answer(&serving, stream);
                }
            }
        });
        ExhibitorEndpoint { shared, port, thread: Some(thread) }
    }

    /// The endpoint's port (the `exhibitor.port` setting).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Change the list served from now on.
    pub fn set_list(&self, list: ServerList) {
        *lock(&self.shared.list) = list;
    }

    pub fn list(&self) -> ServerList {
        lock(&self.shared.list).clone()
    }

    /// Answer `503 Service Unavailable` (true) or the list again (false).
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// How many list requests were answered so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

fn answer(shared: &Shared, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers.
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
    let (status, body) = if path != "/exhibitor/v1/cluster/list" {
        ("404 Not Found", String::from("not found"))
    } else if shared.failing.load(Ordering::SeqCst) {
        ("503 Service Unavailable", String::from("unavailable"))
    } else {
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let list = lock(&shared.list).clone();
        ("200 OK", serde_json::json!({"servers": list.servers, "port": list.port}).to_string())
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl Drop for ExhibitorEndpoint {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `exhibitor` plugin, loaded through the real loader, finding a real
/// ZooKeeper through an [`ExhibitorEndpoint`].
pub struct ExhibitorFixture {
    server: Mutex<ZooKeeperServer>,
    endpoint: ExhibitorEndpoint,
    cluster: PluginCluster,
    raw: RawZk,
    /// `exhibitor.poll_interval` in seconds.
    pub poll_interval: u64,
}

impl ExhibitorFixture {
    /// A new ZooKeeper (named after `label`) behind a discovery endpoint
    /// listing it as `127.0.0.1`, polled every second.
    pub fn start(label: &str) -> Self {
        let server = ZooKeeperServer::start(label);
        let endpoint = ExhibitorEndpoint::start(ServerList { servers: vec!["127.0.0.1".into()], port: server.port() });
        let raw = server.raw();
        ExhibitorFixture {
            server: Mutex::new(server),
            endpoint,
            cluster: PluginCluster::open("exhibitor"),
            raw,
            poll_interval: 1,
        }
    }

    pub fn server(&self) -> MutexGuard<'_, ZooKeeperServer> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn endpoint(&self) -> &ExhibitorEndpoint {
        &self.endpoint
    }

    /// A raw client of the ZooKeeper behind the endpoint.
    pub fn raw(&self) -> &RawZk {
        &self.raw
    }

    /// The `exhibitor:` section pointing at the endpoint.
    pub fn section_json(&self) -> String {
        format!(r#"{{"hosts":["127.0.0.1"],"port":{},"poll_interval":{}}}"#, self.endpoint.port(), self.poll_interval)
    }

    pub fn params(&self, member: &str, group: Option<i32>) -> DcsParams {
        self.params_with(member, group, self.section_json())
    }
}

/// The plugin and the cluster its clients are made for (`params_with`,
/// `dcs_with`, `plugin_new_dcs`, `prefix`, `scope`, `timing`...).
impl std::ops::Deref for ExhibitorFixture {
    type Target = PluginCluster;

    fn deref(&self) -> &PluginCluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for ExhibitorFixture {
    fn deref_mut(&mut self) -> &mut PluginCluster {
        &mut self.cluster
    }
}

impl DcsFixture for ExhibitorFixture {
    fn new_dcs(&self, member: &str) -> Box<dyn Dcs> {
        self.dcs_with(self.params(member, None))
    }

    fn new_dcs_in_group(&self, member: &str, group: i32) -> Box<dyn Dcs> {
        self.dcs_with(self.params(member, Some(group)))
    }

    fn timing(&self) -> DcsTiming {
        self.timing
    }

    fn write_raw(&self, key: &str, value: &[u8]) {
        self.raw.put(&format!("{}{key}", self.prefix()), value);
    }

    fn read_raw(&self, key: &str) -> Option<Vec<u8>> {
        self.raw.get(&format!("{}{key}", self.prefix())).map(|n| n.value)
    }

    fn stop_store(&self) {
        self.server().stop();
    }

    fn start_store(&self) {
        self.server().start_again();
    }

    fn freeze_store(&self) {
        self.server().freeze();
    }

    fn thaw_store(&self) {
        self.server().thaw();
    }
}
