//! A real single-node etcd for one test: free ports, a data directory in a
//! [`Staging`] area, killed when dropped (also when the test panics), and
//! able to go down and come back on the same ports and data ("etcd down,
//! then back"). Plus a raw client to read and write keys behind a plugin's
//! back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use palisade_test_support::{free_port, wait_until, ProcessGuard, Staging};

/// The etcd binary (`PALISADE_ETCD`, default `/usr/bin/etcd`).
pub fn etcd_binary() -> PathBuf {
    PathBuf::from(std::env::var("PALISADE_ETCD").unwrap_or_else(|_| "/usr/bin/etcd".to_string()))
}

/// One key as etcd holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawKv {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

/// Server certificate files for an etcd that speaks TLS to its clients
/// (and requires client certificates signed by `ca`).
#[derive(Clone, Debug)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct EtcdServer {
    staging: Staging,
    tls: Option<EtcdTls>,
    name: String,
    client_port: u16,
    peer_port: u16,
    process: Option<ProcessGuard>,
    starts: u32,
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

impl EtcdServer {
    /// Start a fresh etcd and wait until it answers; panics (with its log)
    /// when it does not.
    pub fn start(label: &str) -> Self {
        Self::start_with(label, None)
    }

    /// Like [`EtcdServer::start`], with TLS on the client port.
    pub fn start_tls(label: &str, tls: EtcdTls) -> Self {
        Self::start_with(label, Some(tls))
    }

    fn start_with(label: &str, tls: Option<EtcdTls>) -> Self {
        let staging = Staging::new(&format!("etcd-{label}"));
        let mut server = EtcdServer {
            staging,
            tls,
            name: format!("etcd-{label}"),
            client_port: free_port(),
            peer_port: free_port(),
            process: None,
            starts: 0,
        };
        server.start_again();
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.staging.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.staging.path().join("etcd.log")
    }

    /// `127.0.0.1:<client port>`, the form `etcd3.host` takes.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `http(s)://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host_port())
    }

    /// What etcd wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Start etcd again after [`EtcdServer::stop`] (same ports, same data)
    /// and wait until it answers.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "etcd is already running");
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log_path().display()));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("dup the etcd log: {e}"));
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new(etcd_binary());
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(self.client_url())
            .arg("--advertise-client-urls")
            .arg(self.client_url())
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("{}={peer}", self.name))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        if let Some(tls) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let guard =
            ProcessGuard::spawn(&self.name, cmd).unwrap_or_else(|e| panic!("start {}: {e}", etcd_binary().display()));
        self.process = Some(guard);
        let port = self.client_port;
        // Over TLS an open port has to do: /health would need a client certificate.
        let check = if self.tls.is_some() { listening } else { healthy };
        let ready = wait_until(START_TIMEOUT, || {
            if !self.process.as_mut().is_some_and(|p| p.alive()) {
                return true;
            }
            check(port)
        });
        let alive = self.process.as_mut().is_some_and(|p| p.alive());
        if !(ready && alive && check(port)) {
            panic!("etcd did not come up on port {port} (start #{}):\n{}", self.starts, self.log());
        }
    }

    /// Stop etcd (SIGTERM, then SIGKILL); the data stays for `start_again`.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop(Duration::from_secs(10));
        }
    }

    /// Freeze etcd (SIGSTOP): it keeps its sockets but answers nothing.
    pub fn freeze(&self) {
        if let Some(p) = &self.process {
            p.signal(Signal::SIGSTOP);
        }
    }

    /// Undo [`EtcdServer::freeze`].
    pub fn thaw(&self) {
        if let Some(p) = &self.process {
            p.signal(Signal::SIGCONT);
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.alive())
    }

    /// A raw etcd client, to check what a plugin wrote or to write behind
    /// its back (plain http only: not for a server started with TLS).
    pub fn raw(&self) -> RawClient {
        RawClient::new(&self.client_url())
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // A frozen process does not act on SIGTERM until it runs again.
        self.thaw();
        self.stop();
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(500)).is_ok()
}

/// Whether etcd on 127.0.0.1:`port` reports itself healthy (`GET /health`).
fn healthy(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

/// A blocking wrapper around `etcd-client` with its own small runtime.
pub struct RawClient {
    runtime: tokio::runtime::Runtime,
    client: etcd_client::Client,
}

impl RawClient {
    pub fn new(url: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime for the raw etcd client: {e}"));
        let client = runtime
            .block_on(etcd_client::Client::connect([url], None))
            .unwrap_or_else(|e| panic!("connect to etcd at {url}: {e}"));
        RawClient { runtime, client }
    }

    pub fn put(&self, key: &str, value: &[u8]) {
        let mut c = self.client.clone();
        self.runtime.block_on(c.put(key, value, None)).unwrap_or_else(|e| panic!("put {key}: {e}"));
    }

    /// Put `value` at `key` on a new lease of `ttl` seconds; returns the lease id.
    pub fn put_with_lease(&self, key: &str, value: &[u8], ttl: i64) -> i64 {
        let mut c = self.client.clone();
        self.runtime.block_on(async {
            let lease = c.lease_grant(ttl, None).await.unwrap_or_else(|e| panic!("grant a lease: {e}")).id();
            c.put(key, value, Some(etcd_client::PutOptions::new().with_lease(lease)))
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e}"));
            lease
        })
    }

    /// Every key under `prefix`, in key order.
    pub fn get_prefix(&self, prefix: &str) -> Vec<RawKv> {
        let mut c = self.client.clone();
        let resp = self
            .runtime
            .block_on(c.get(prefix, Some(etcd_client::GetOptions::new().with_prefix())))
            .unwrap_or_else(|e| panic!("get {prefix}: {e}"));
        resp.kvs()
            .iter()
            .map(|kv| RawKv {
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                value: kv.value().to_vec(),
                create_revision: kv.create_revision(),
                mod_revision: kv.mod_revision(),
                lease: kv.lease(),
            })
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<RawKv> {
        self.get_prefix(key).into_iter().find(|kv| kv.key == key)
    }

    /// The TTL lease `id` was granted with, or `None` when it does not exist.
    pub fn lease_granted_ttl(&self, id: i64) -> Option<i64> {
        let mut c = self.client.clone();
        let resp = self.runtime.block_on(c.lease_time_to_live(id, None)).ok()?;
        (resp.ttl() > 0).then(|| resp.granted_ttl())
    }

    /// Create the `root` user with `password` and turn authentication on.
    /// This client cannot read or write keys afterwards.
    pub fn enable_auth(&self, password: &str) {
        let mut c = self.client.clone();
        self.runtime.block_on(async {
            c.user_add("root", password, None).await.unwrap_or_else(|e| panic!("add the root user: {e}"));
            c.user_grant_role("root", "root").await.unwrap_or_else(|e| panic!("grant the root role: {e}"));
            c.auth_enable().await.unwrap_or_else(|e| panic!("enable authentication: {e}"));
        });
    }
}
