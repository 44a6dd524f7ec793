//! A real single-node etcd for one test: free ports, a data directory in a
//! [`Staging`] area, killed when dropped (also when the test panics), and
//! able to go down and come back on the same ports and data ("etcd down,
//! then back"). Every test etcd serves the v2 API too (`--enable-v2=true`),
//! so a test can run on either API. Plus raw clients (v3: [`RawClient`],
//! v2: [`RawV2Client`]) to read and write keys behind a plugin's back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use palisade_test_support::{free_port, ProcessGuard, ServerProcess, Staging};

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
    /// TLS on the peer port too (same files, peer client certificates required).
    peer_tls: bool,
    name: String,
    client_port: u16,
    peer_port: u16,
    process: ServerProcess,
    starts: u32,
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

impl EtcdServer {
    /// Start a fresh etcd and wait until it answers; panics (with its log)
    /// when it does not.
    pub fn start(label: &str) -> Self {
        Self::start_with(label, None, false)
    }

    /// Like [`EtcdServer::start`], with TLS on the client port.
    pub fn start_tls(label: &str, tls: EtcdTls) -> Self {
        Self::start_with(label, Some(tls), false)
    }

    /// Like [`EtcdServer::start_tls`], with TLS on the peer port too (the
    /// same files; a client of the peer port needs a certificate of `ca`).
    pub fn start_tls_with_tls_peers(label: &str, tls: EtcdTls) -> Self {
        Self::start_with(label, Some(tls), true)
    }

    fn start_with(label: &str, tls: Option<EtcdTls>, peer_tls: bool) -> Self {
        let staging = Staging::new(&format!("etcd-{label}"));
        let mut server = EtcdServer {
            staging,
            tls,
            peer_tls,
            name: format!("etcd-{label}"),
            client_port: free_port(),
            peer_port: free_port(),
            process: ServerProcess::default(),
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

    /// The client port, e.g. for `_etcd-client` SRV records.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The peer port (`--listen-peer-urls`), e.g. for `_etcd-server` SRV records.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
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
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log_path().display()));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("dup the etcd log: {e}"));
        let peer_scheme = if self.peer_tls { "https" } else { "http" };
        let peer = format!("{peer_scheme}://127.0.0.1:{}", self.peer_port);
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
            .arg("--enable-v2=true")
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
            if self.peer_tls {
                cmd.arg("--peer-cert-file")
                    .arg(&tls.cert)
                    .arg("--peer-key-file")
                    .arg(&tls.key)
                    .arg("--peer-trusted-ca-file")
                    .arg(&tls.ca)
                    .arg("--peer-client-cert-auth");
            }
        }
        let guard =
            ProcessGuard::spawn(&self.name, cmd).unwrap_or_else(|e| panic!("start {}: {e}", etcd_binary().display()));
        self.process.start(guard);
        let port = self.client_port;
        // Over TLS an open port has to do: /health would need a client certificate.
        let check = if self.tls.is_some() { listening } else { healthy };
        if !self.process.wait_up(START_TIMEOUT, || check(port)) {
            panic!("etcd did not come up on port {port} (start #{}):\n{}", self.starts, self.log());
        }
    }

    /// Stop etcd (SIGTERM, then SIGKILL); the data stays for `start_again`.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Freeze etcd (SIGSTOP): it keeps its sockets but answers nothing.
    pub fn freeze(&self) {
        self.process.freeze();
    }

    /// Undo [`EtcdServer::freeze`].
    pub fn thaw(&self) {
        self.process.thaw();
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// A raw etcd client, to check what a plugin wrote or to write behind
    /// its back (plain http only: not for a server started with TLS).
    pub fn raw(&self) -> RawClient {
        RawClient::new(&self.client_url())
    }

    /// A raw client of the v2 keys API (plain http only).
    pub fn raw_v2(&self) -> RawV2Client {
        RawV2Client::new(self.client_port)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
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

/// One key as the v2 API holds it (`value` in bytes, like [`RawKv`]'s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawV2Node {
    pub key: String,
    pub value: Vec<u8>,
    pub modified_index: u64,
    /// Seconds left before it expires; `None` without a TTL.
    pub ttl: Option<i64>,
}

/// An answer of the v2 API.
#[derive(Clone, Debug)]
pub struct RawV2Response {
    pub status: u16,
    /// `X-Etcd-Index`, 0 when absent.
    pub etcd_index: u64,
    pub body: serde_json::Value,
}

/// A blocking client of etcd's v2 keys API on `127.0.0.1:<port>` (plain
/// http, one connection per request), optionally with basic auth. Test
/// code: it panics when etcd cannot be reached.
#[derive(Clone, Debug)]
pub struct RawV2Client {
    port: u16,
    auth: Option<(String, String)>,
}

fn v2_encode(s: &[u8]) -> String {
    let mut out = String::new();
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn v2_path(key: &str) -> String {
    let segments: Vec<String> = key.trim_start_matches('/').split('/').map(|s| v2_encode(s.as_bytes())).collect();
    format!("/v2/keys/{}", segments.join("/"))
}

fn v2_base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn v2_leaves(node: &serde_json::Value, out: &mut Vec<RawV2Node>) {
    if node.get("dir").and_then(serde_json::Value::as_bool) == Some(true) {
        for n in node.get("nodes").and_then(serde_json::Value::as_array).into_iter().flatten() {
            v2_leaves(n, out);
        }
    } else {
        out.push(RawV2Node {
            key: node.get("key").and_then(serde_json::Value::as_str).unwrap_or_default().to_string(),
            value: node.get("value").and_then(serde_json::Value::as_str).unwrap_or_default().as_bytes().to_vec(),
            modified_index: node.get("modifiedIndex").and_then(serde_json::Value::as_u64).unwrap_or_default(),
            ttl: node.get("ttl").and_then(serde_json::Value::as_i64),
        });
    }
}

impl RawV2Client {
    pub fn new(port: u16) -> Self {
        RawV2Client { port, auth: None }
    }

    /// The same client, sending `user`/`password` with every request.
    pub fn with_auth(&self, user: &str, password: &str) -> Self {
        RawV2Client { port: self.port, auth: Some((user.to_string(), password.to_string())) }
    }

    /// One request: `path` (with its query), an optional body of
    /// `content_type`. Panics when etcd does not answer.
    pub fn request(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> RawV2Response {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("connect to etcd on port {}: {e}", self.port));
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let mut head = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n", self.port);
        if let Some((user, password)) = &self.auth {
            head.push_str(&format!("Authorization: Basic {}\r\n", v2_base64(format!("{user}:{password}").as_bytes())));
        }
        let body = body.unwrap_or(("application/x-www-form-urlencoded", b""));
        head.push_str(&format!("Content-Type: {}\r\nContent-Length: {}\r\n\r\n", body.0, body.1.len()));
        let mut request = head.into_bytes();
        request.extend_from_slice(body.1);
        s.write_all(&request).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let etcd_index = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("x-etcd-index")))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        RawV2Response { status, etcd_index, body: serde_json::from_str(body).unwrap_or(serde_json::Value::Null) }
    }

    fn put_form(&self, key: &str, value: &[u8], ttl: Option<u64>) {
        let mut form = format!("value={}", v2_encode(value));
        if let Some(ttl) = ttl {
            form.push_str(&format!("&ttl={ttl}"));
        }
        let r = self.request("PUT", &v2_path(key), Some(("application/x-www-form-urlencoded", form.as_bytes())));
        assert!(matches!(r.status, 200 | 201), "PUT {key}: HTTP {} {}", r.status, r.body);
    }

    /// Set `key` to `value` (no TTL).
    pub fn put(&self, key: &str, value: &[u8]) {
        self.put_form(key, value, None);
    }

    /// Set `key` to `value`, expiring after `ttl` seconds.
    pub fn put_with_ttl(&self, key: &str, value: &[u8], ttl: u64) {
        self.put_form(key, value, Some(ttl));
    }

    /// The key, `None` when it does not exist (or is a directory).
    pub fn get(&self, key: &str) -> Option<RawV2Node> {
        let r = self.request("GET", &v2_path(key), None);
        if r.status == 404 {
            return None;
        }
        assert_eq!(r.status, 200, "GET {key}: {}", r.body);
        let mut out = Vec::new();
        v2_leaves(&r.body["node"], &mut out);
        out.into_iter().find(|n| n.key == key)
    }

    /// Every key at or below the directory `prefix` (recursive), in key order.
    pub fn get_prefix(&self, prefix: &str) -> Vec<RawV2Node> {
        let r = self.request("GET", &format!("{}?recursive=true", v2_path(prefix.trim_end_matches('/'))), None);
        if r.status == 404 {
            return Vec::new();
        }
        assert_eq!(r.status, 200, "GET {prefix}: {}", r.body);
        let mut out = Vec::new();
        v2_leaves(&r.body["node"], &mut out);
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Delete `key` and everything below it (nothing when it does not exist).
    pub fn delete_recursive(&self, key: &str) {
        let r = self.request("DELETE", &format!("{}?recursive=true", v2_path(key.trim_end_matches('/'))), None);
        assert!(matches!(r.status, 200 | 404), "DELETE {key}: HTTP {} {}", r.status, r.body);
    }

    /// etcd's current index (`X-Etcd-Index`).
    pub fn etcd_index(&self) -> u64 {
        self.request("GET", "/v2/keys/", None).etcd_index
    }

    /// Turn on v2 authentication: a `root` user with `password`, and the
    /// `guest` role (requests without credentials) stripped of its access.
    pub fn enable_auth(&self, password: &str) {
        let user = format!(r#"{{"user":"root","password":"{password}"}}"#);
        let r = self.request("PUT", "/v2/auth/users/root", Some(("application/json", user.as_bytes())));
        assert!(matches!(r.status, 200 | 201), "add the root user: HTTP {} {}", r.status, r.body);
        let r = self.request("PUT", "/v2/auth/enable", None);
        assert_eq!(r.status, 200, "enable authentication: {}", r.body);
        let revoke = r#"{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}"#;
        let r = self.with_auth("root", password).request(
            "PUT",
            "/v2/auth/roles/guest",
            Some(("application/json", revoke.as_bytes())),
        );
        assert_eq!(r.status, 200, "revoke the guest role: {}", r.body);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::v2_base64(b"root:pw"), "cm9vdDpwdw==");
        assert_eq!(super::v2_base64(b"ab"), "YWI=");
        assert_eq!(super::v2_base64(b"abc"), "YWJj");
    }
}
