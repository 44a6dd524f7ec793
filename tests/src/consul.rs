//! The Consul test double (`tests/doubles/consul`, not Consul) for one
//! test: run as a child process from the target dir on a free port with its
//! data dir in a [`Staging`] area, killed when dropped (also when the test
//! panics), able to go down and come back on the same port and data, and
//! to be frozen (SIGSTOP). Plus [`RawConsul`], a plain HTTP client of its
//! API to check what a plugin (or Patroni) wrote and to write behind its
//! back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use palisade_test_support::{free_port, target_dir, ProcessGuard, ServerProcess, Staging};
use serde_json::Value;

use crate::http::{request, Response};

/// The double's binary in the build directory (`PALISADE_CONSUL_DOUBLE`
/// overrides it).
pub fn consul_double_binary() -> PathBuf {
    match std::env::var("PALISADE_CONSUL_DOUBLE") {
        Ok(p) => PathBuf::from(p),
        Err(_) => target_dir().join("consul-test-double"),
    }
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the agent's configuration file.
#[derive(Clone, Debug, Default)]
pub struct ConsulOptions {
    /// Turn ACLs on (`default_policy: deny`) with this management token.
    pub acl_token: Option<String>,
    /// `session_ttl_min` (Consul's default: `10s`).
    pub session_ttl_min: Option<String>,
    /// Serve HTTPS too (on [`ConsulServer::https_port`]) with these files.
    pub tls: Option<ConsulTls>,
    /// `log_level` (`debug` logs every HTTP request, as Consul does: see
    /// [`ConsulServer::requests`]).
    pub log_level: Option<String>,
}

/// The agent's `tls.defaults`: its certificate and key, and the CA that
/// client certificates must be signed by when `verify_incoming`.
#[derive(Clone, Debug)]
pub struct ConsulTls {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub verify_incoming: bool,
}

impl ConsulTls {
    /// A CA `ca` in `dir`, the agent's certificate signed by it (client
    /// certificates required), and a client certificate and key signed by
    /// it too: the agent's TLS and the client's files.
    pub fn with_client_cert(dir: &Path) -> (Self, PathBuf, PathBuf) {
        palisade_test_support::certs::ca(dir, "ca");
        let (cert_file, key_file) = palisade_test_support::certs::leaf(dir, "ca", "consul");
        let (client_cert, client_key) = palisade_test_support::certs::leaf(dir, "ca", "client");
        let tls = ConsulTls { ca_file: dir.join("ca.crt"), cert_file, key_file, verify_incoming: true };
        (tls, client_cert, client_key)
    }
}

pub struct ConsulServer {
    staging: Staging,
    port: u16,
    https_port: Option<u16>,
    options: ConsulOptions,
    process: ServerProcess,
    starts: u32,
}

impl ConsulServer {
    /// Start a fresh agent and wait until it answers; panics (with its log)
    /// when it does not.
    pub fn start(label: &str) -> Self {
        Self::start_with(label, ConsulOptions::default())
    }

    pub fn start_with(label: &str, options: ConsulOptions) -> Self {
        let staging = Staging::new(&format!("consul-{label}"));
        let https_port = options.tls.as_ref().map(|_| free_port());
        let mut server = ConsulServer {
            staging,
            port: free_port(),
            https_port,
            options,
            process: ServerProcess::default(),
            starts: 0,
        };
        let mut config = serde_json::json!({
            "datacenter": "dc1",
            "node_name": format!("consul-{label}"),
            "ports": {"http": server.port},
            "server": true,
        });
        if let Some(token) = &server.options.acl_token {
            config["acl"] = serde_json::json!({"enabled": true, "default_policy": "deny",
                "tokens": {"initial_management": token}});
        }
        if let (Some(tls), Some(port)) = (&server.options.tls, server.https_port) {
            config["ports"]["https"] = serde_json::json!(port);
            config["tls"] = serde_json::json!({"defaults": {
                "ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file,
                "verify_incoming": tls.verify_incoming}});
        }
        if let Some(min) = &server.options.session_ttl_min {
            config["session_ttl_min"] = serde_json::json!(min);
        }
        if let Some(level) = &server.options.log_level {
            config["log_level"] = serde_json::json!(level);
        }
        server.staging.write("consul.json", &config.to_string(), 0o644);
        server.start_again();
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.staging.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.staging.path().join("consul.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HTTPS port, when started with [`ConsulOptions::tls`].
    pub fn https_port(&self) -> Option<u16> {
        self.https_port
    }

    /// `https://127.0.0.1:<https port>` (panics without TLS).
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port.expect("the Consul double was started without TLS"))
    }

    /// `127.0.0.1:<port>`, the form `consul.host` takes.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>`, the form `consul.url` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.host_port())
    }

    /// What the double wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The HTTP requests the agent finished so far, as `(method, url)`
    /// from its debug log (needs [`ConsulOptions::log_level`] `debug`).
    pub fn requests(&self) -> Vec<(String, String)> {
        let marker = "[DEBUG] agent.http: Request finished: ";
        self.log()
            .lines()
            .filter_map(|l| l.split_once(marker).map(|(_, rest)| rest.to_string()))
            .filter_map(|rest| {
                let field = |name: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(name).map(str::to_string));
                Some((field("method=")?, field("url=")?))
            })
            .collect()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Start the agent again after [`ConsulServer::stop`] (same port, same
    /// data) and wait until it answers.
    pub fn start_again(&mut self) {
        self.starts += 1;
        let binary = consul_double_binary();
        assert!(
            binary.exists(),
            "{} is missing: run `cargo build -p consul-test-double` (or `cargo build --workspace`) first",
            binary.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log_path().display()));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("dup the Consul double's log: {e}"));
        let mut cmd = Command::new(&binary);
        cmd.arg("agent")
            .arg("-config-file")
            .arg(self.staging.path().join("consul.json"))
            .arg("-data-dir")
            .arg(self.data_dir())
            .arg("-http-port")
            .arg(self.port.to_string())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let guard = ProcessGuard::spawn(&format!("consul-double:{}", self.port), cmd)
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        self.process.start(guard);
        let port = self.port;
        if !self.process.wait_up(START_TIMEOUT, || leader_known(port)) {
            panic!("the Consul double did not come up on port {port} (start #{}):\n{}", self.starts, self.log_tail(50));
        }
    }

    /// Stop the agent (SIGTERM, then SIGKILL); the data stays for `start_again`.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// SIGKILL the agent, as a crash would; the data stays for `start_again`.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Freeze the agent (SIGSTOP): it keeps its socket but answers nothing.
    pub fn freeze(&self) {
        self.process.freeze();
    }

    /// Undo [`ConsulServer::freeze`].
    pub fn thaw(&self) {
        self.process.thaw();
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// A raw client (with the management token when ACLs are on).
    pub fn raw(&self) -> RawConsul {
        RawConsul { port: self.port, token: self.options.acl_token.clone() }
    }
}

impl Drop for ConsulServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- Consul double log (last lines):\n{}", self.log_tail(40));
        }
        self.stop();
    }
}

fn leader_known(port: u16) -> bool {
    crate::http::get(port, "/v1/status/leader").is_ok_and(|r| r.status == 200 && r.body.contains(':'))
}

/// One KV entry as the API returns it, the value decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawConsulKv {
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    pub session: Option<String>,
    pub lock_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
}

impl RawConsulKv {
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// Percent-encode a KV key for the URL path (keeping `/`).
pub fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64_decode(input: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in input.bytes().take_while(|c| *c != b'=') {
        let Some(v) = T.iter().position(|x| *x == c) else { continue };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Decode one entry of a KV answer.
pub fn kv_from_json(v: &Value) -> RawConsulKv {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    RawConsulKv {
        key: v.get("Key").and_then(Value::as_str).unwrap_or_default().to_string(),
        value: v.get("Value").and_then(Value::as_str).map(base64_decode).unwrap_or_default(),
        flags: n("Flags"),
        session: v.get("Session").and_then(Value::as_str).map(str::to_string),
        lock_index: n("LockIndex"),
        create_index: n("CreateIndex"),
        modify_index: n("ModifyIndex"),
    }
}

/// A blocking client of the Consul HTTP API on `127.0.0.1:<port>` (one
/// connection per request). Test code: it panics when the agent cannot be
/// reached.
#[derive(Clone, Debug)]
pub struct RawConsul {
    pub port: u16,
    pub token: Option<String>,
}

impl RawConsul {
    /// One request; `Err` only when the agent cannot be reached.
    pub fn try_request(&self, method: &str, path: &str, body: Option<&str>) -> Result<Response, String> {
        let headers: Vec<(&str, &str)> = self.token.as_deref().map(|t| ("X-Consul-Token", t)).into_iter().collect();
        request(self.port, method, path, body, &headers)
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        self.try_request(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path} to the Consul double on port {}: {e}", self.port))
    }

    fn boolean(&self, method: &str, path: &str, body: Option<&str>) -> bool {
        let r = self.request(method, path, body);
        assert_eq!(r.status, 200, "{method} {path}: HTTP {} {}", r.status, r.body);
        r.body.trim() == "true"
    }

    pub fn get(&self, key: &str) -> Option<RawConsulKv> {
        let r = self.request("GET", &format!("/v1/kv/{}", encode_key(key)), None);
        if r.status == 404 {
            return None;
        }
        assert_eq!(r.status, 200, "GET {key}: {}", r.body);
        r.json().as_array().and_then(|a| a.first()).map(kv_from_json)
    }

    /// Every key starting with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Vec<RawConsulKv> {
        let r = self.request("GET", &format!("/v1/kv/{}?recurse", encode_key(prefix)), None);
        if r.status == 404 {
            return Vec::new();
        }
        assert_eq!(r.status, 200, "GET {prefix}?recurse: {}", r.body);
        r.json().as_array().map(|a| a.iter().map(kv_from_json).collect()).unwrap_or_default()
    }

    pub fn put(&self, key: &str, value: &str) -> bool {
        self.boolean("PUT", &format!("/v1/kv/{}", encode_key(key)), Some(value))
    }

    /// `?cas=<index>` (0: only when absent).
    pub fn put_cas(&self, key: &str, value: &str, cas: u64) -> bool {
        self.boolean("PUT", &format!("/v1/kv/{}?cas={cas}", encode_key(key)), Some(value))
    }

    pub fn delete(&self, key: &str) -> bool {
        self.boolean("DELETE", &format!("/v1/kv/{}", encode_key(key)), None)
    }

    pub fn delete_tree(&self, prefix: &str) -> bool {
        self.boolean("DELETE", &format!("/v1/kv/{}?recurse", encode_key(prefix)), None)
    }

    /// The session's info, `None` when it does not exist.
    pub fn session_info(&self, id: &str) -> Option<Value> {
        let r = self.request("GET", &format!("/v1/session/info/{id}"), None);
        assert_eq!(r.status, 200, "session info {id}: {}", r.body);
        r.json().as_array().and_then(|a| a.first().cloned())
    }

    /// `/v1/catalog/service/<name>` as JSON.
    pub fn catalog_service(&self, name: &str) -> Vec<Value> {
        let r = self.request("GET", &format!("/v1/catalog/service/{}", encode_key(name)), None);
        assert_eq!(r.status, 200, "catalog service {name}: {}", r.body);
        r.json().as_array().cloned().unwrap_or_default()
    }

    /// `(ServiceID, ServiceTags)` of each instance of the service.
    pub fn service_tags(&self, name: &str) -> Vec<(String, Vec<String>)> {
        self.catalog_service(name)
            .iter()
            .map(|s| {
                let id = s["ServiceID"].as_str().unwrap_or_default().to_string();
                let tags = s["ServiceTags"]
                    .as_array()
                    .map(|t| t.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                (id, tags)
            })
            .collect()
    }

    /// `/v1/health/service/<name>` as JSON.
    pub fn health_service(&self, name: &str) -> Vec<Value> {
        let r = self.request("GET", &format!("/v1/health/service/{}", encode_key(name)), None);
        assert_eq!(r.status, 200, "health service {name}: {}", r.body);
        r.json().as_array().cloned().unwrap_or_default()
    }
}

/// The Consul double as a cluster's DCS ([`crate::dcs::TestDcs`]): the
/// `consul:` section points at it (`host`), plus `section_extra` lines
/// (indented by two, e.g. `  register_service: true\n`). Keys are full
/// paths (`/service/<scope>/leader`), stored without the leading `/` as
/// Patroni stores them.
pub struct ConsulDcs {
    pub server: ConsulServer,
    pub section_extra: String,
}

impl ConsulDcs {
    pub fn start(label: &str) -> Self {
        ConsulDcs { server: ConsulServer::start(label), section_extra: String::new() }
    }

    /// With agent options, e.g. a lower `session_ttl_min` for clusters whose
    /// `ttl` is below 20 (the session TTL is half of it, and Consul refuses
    /// one below `session_ttl_min`, 10s by default).
    pub fn start_with(label: &str, options: ConsulOptions) -> Self {
        ConsulDcs { server: ConsulServer::start_with(label, options), section_extra: String::new() }
    }

    /// With more lines in the `consul:` section.
    pub fn with_section_extra(mut self, lines: &str) -> Self {
        self.section_extra = lines.to_string();
        self
    }
}

fn consul_key(key: &str) -> &str {
    key.trim_start_matches('/')
}

impl crate::dcs::TestDcs for ConsulDcs {
    fn yaml_section(&self) -> String {
        format!("consul:\n  host: {}\n{}", self.server.host_port(), self.section_extra)
    }

    fn dcs_url(&self) -> String {
        format!("consul://{}", self.server.host_port())
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.server.raw().get(consul_key(key)).map(|kv| kv.value)
    }

    fn list(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.server.raw().list(consul_key(prefix)).into_iter().map(|kv| (format!("/{}", kv.key), kv.value)).collect()
    }

    fn put(&self, key: &str, value: &[u8]) {
        let value = String::from_utf8_lossy(value);
        assert!(self.server.raw().put(consul_key(key), &value), "PUT {key} to the Consul double");
    }

    fn stop(&mut self) {
        self.server.stop();
    }

    fn start_again(&mut self) {
        self.server.start_again();
    }

    fn freeze(&self) {
        self.server.freeze();
    }

    fn thaw(&self) {
        self.server.thaw();
    }
}
