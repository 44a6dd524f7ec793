//! The Kubernetes API server test double (`tests/doubles/kubernetes`, the
//! `kubernetes-test-double` binary; a test double, not Kubernetes) run as a
//! child process for one test: a free port, its data directory and
//! kubeconfig in a [`Staging`] area the test user can read, killed when
//! dropped, able to go down and come back on the same port and data, and to
//! freeze (SIGSTOP). Plus [`RawKube`], a raw client to read and write
//! objects behind the daemons' backs, and [`KubernetesDcs`], the [`TestDcs`]
//! adapter that maps Patroni's keys onto the objects Patroni's Kubernetes
//! DCS keeps (in either of its modes).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use palisade_test_support::{free_port, target_dir, ProcessGuard, ServerProcess, Staging};
use serde_json::{json, Value};

use crate::dcs::TestDcs;
use crate::http::{self, Response};

/// The double's binary (`PALISADE_KUBERNETES_DOUBLE`, default the one in
/// the target directory: `cargo build -p kubernetes-test-double`).
pub fn binary() -> PathBuf {
    std::env::var_os("PALISADE_KUBERNETES_DOUBLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("kubernetes-test-double"))
}

/// The kubeconfig context the double writes (cluster, user and context
/// share the name).
pub const CONTEXT: &str = "kubernetes-test-double";

const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct KubernetesServer {
    staging: Staging,
    label: String,
    port: u16,
    token: String,
    process: ServerProcess,
    starts: u32,
    watch_history: usize,
    args: Vec<String>,
}

impl KubernetesServer {
    /// Start a fresh double and wait until it answers; panics (with its
    /// log) when it does not.
    pub fn start(label: &str) -> Self {
        Self::start_with(label, 10_000)
    }

    /// Like [`KubernetesServer::start`], replaying at most `watch_history`
    /// changes to watches (older resourceVersions get 410 Expired).
    pub fn start_with(label: &str, watch_history: usize) -> Self {
        Self::start_with_args(label, watch_history, &[])
    }

    /// Like [`KubernetesServer::start`], over HTTPS (`--tls`): the
    /// kubeconfig names the CA ([`KubernetesServer::ca`]). [`RawKube`]
    /// speaks plain HTTP only.
    pub fn start_tls(label: &str) -> Self {
        Self::start_with_args(label, 10_000, &["--tls"])
    }

    /// Like [`KubernetesServer::start_with`], with more command-line
    /// options (`--bookmark-interval 1`, `--tls`...).
    pub fn start_with_args(label: &str, watch_history: usize, args: &[&str]) -> Self {
        let staging = Staging::new(&format!("k8s-{label}"));
        let token = format!("test-token-{}-{}", std::process::id(), free_port());
        let mut s = KubernetesServer {
            staging,
            label: label.to_string(),
            port: free_port(),
            token,
            process: ServerProcess::default(),
            starts: 0,
            watch_history,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        s.start_again();
        s
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn tls(&self) -> bool {
        self.args.iter().any(|a| a == "--tls")
    }

    /// `http(s)://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let scheme = if self.tls() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA of a server started with [`KubernetesServer::start_tls`].
    pub fn ca(&self) -> PathBuf {
        self.staging.path().join("data/tls/ca.crt")
    }

    /// The bearer token the double checks.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The kubeconfig it wrote (readable by the test user).
    pub fn kubeconfig(&self) -> PathBuf {
        self.staging.path().join("kubeconfig")
    }

    fn log_path(&self) -> PathBuf {
        self.staging.path().join("kubernetes.log")
    }

    /// What the double wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Its last lines, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Start the double again after [`KubernetesServer::stop`] (same port,
    /// token and data) and wait until it answers.
    pub fn start_again(&mut self) {
        self.starts += 1;
        let bin = binary();
        assert!(bin.exists(), "{} is missing: run `cargo build -p kubernetes-test-double` first", bin.display());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log_path().display()));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("dup the log: {e}"));
        let mut cmd = Command::new(&bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--data-dir")
            .arg(self.staging.path().join("data"))
            .arg("--token")
            .arg(&self.token)
            .arg("--watch-history")
            .arg(self.watch_history.to_string())
            .args(&self.args)
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let name = format!("k8s-{}", self.label);
        self.process.start(ProcessGuard::spawn(&name, cmd).unwrap_or_else(|e| panic!("start {}: {e}", bin.display())));
        let port = self.port;
        // Over TLS an open port has to do, once the kubeconfig is written
        // (the double binds first, then makes its certificates).
        let tls = self.tls();
        let kubeconfig = self.kubeconfig();
        let up = || {
            if tls {
                kubeconfig.exists() && TcpStream::connect(("127.0.0.1", port)).is_ok()
            } else {
                http::get(port, "/healthz").is_ok_and(|r| r.status == 200)
            }
        };
        if !self.process.wait_up(START_TIMEOUT, up) {
            panic!(
                "the Kubernetes double did not come up on port {port} (start #{}):\n{}",
                self.starts,
                self.log_tail()
            );
        }
        // The kubeconfig is for the daemons, run as the test user.
        palisade_test_support::chown_to_test_user(&self.kubeconfig());
    }

    /// Stop it (SIGTERM, then SIGKILL); the data stays for `start_again`.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// SIGKILL it, as a crash would; the data stays for `start_again`.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Freeze it (SIGSTOP): its socket stays open, nothing answers.
    pub fn freeze(&self) {
        self.process.freeze();
    }

    /// Undo [`KubernetesServer::freeze`].
    pub fn thaw(&self) {
        self.process.thaw();
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// A raw client with the server's token.
    pub fn raw(&self) -> RawKube {
        RawKube { port: self.port, token: self.token.clone() }
    }
}

/// A raw client of the double (or of any API server on 127.0.0.1 over
/// plain HTTP): one request per connection.
#[derive(Clone, Debug)]
pub struct RawKube {
    pub port: u16,
    pub token: String,
}

/// The collection path of `plural` (`configmaps`, `endpoints`, `pods`,
/// `services`, `leases`) in `ns`.
pub fn collection_path(plural: &str, ns: &str) -> String {
    match plural {
        "leases" => format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"),
        _ => format!("/api/v1/namespaces/{ns}/{plural}"),
    }
}

/// Percent-encode a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl RawKube {
    /// `method path` with `body` of `content_type`; `Err` when the server
    /// cannot be reached.
    pub fn request(&self, method: &str, path: &str, body: Option<(&str, &str)>) -> Result<Response, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n",
            self.port, self.token
        );
        if let Some((ctype, b)) = body {
            req.push_str(&format!("Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{b}", b.len()));
        } else {
            req.push_str("\r\n");
        }
        stream.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        http::parse(&raw)
    }

    fn must(&self, method: &str, path: &str, body: Option<(&str, &str)>) -> Response {
        self.request(method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// The object, `None` on 404 (panics on other errors).
    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let r = self.must("GET", &format!("{}/{name}", collection_path(plural, ns)), None);
        match r.status {
            200 => Some(r.json()),
            404 => None,
            s => panic!("GET {plural}/{name}: {s} {}", r.body),
        }
    }

    /// The list answer (`items` and `metadata.resourceVersion`) for a
    /// label selector (empty: all).
    pub fn list(&self, plural: &str, ns: &str, label_selector: &str) -> Value {
        let path = format!("{}?labelSelector={}", collection_path(plural, ns), encode(label_selector));
        let r = self.must("GET", &path, None);
        assert_eq!(r.status, 200, "LIST {path}: {}", r.body);
        r.json()
    }

    /// POST `obj`: the answer as is.
    pub fn create(&self, plural: &str, ns: &str, obj: &Value) -> Response {
        self.must("POST", &collection_path(plural, ns), Some(("application/json", &obj.to_string())))
    }

    /// PUT `obj` in place of `name`.
    pub fn replace(&self, plural: &str, ns: &str, name: &str, obj: &Value) -> Response {
        let path = format!("{}/{name}", collection_path(plural, ns));
        self.must("PUT", &path, Some(("application/json", &obj.to_string())))
    }

    /// PATCH `name` with `patch` of `content_type`
    /// (`application/merge-patch+json`...).
    pub fn patch(&self, plural: &str, ns: &str, name: &str, content_type: &str, patch: &Value) -> Response {
        let path = format!("{}/{name}", collection_path(plural, ns));
        self.must("PATCH", &path, Some((content_type, &patch.to_string())))
    }

    /// DELETE `name`, with DeleteOptions `options` when given.
    pub fn delete(&self, plural: &str, ns: &str, name: &str, options: Option<&Value>) -> Response {
        let path = format!("{}/{name}", collection_path(plural, ns));
        let body = options.map(Value::to_string);
        self.must("DELETE", &path, body.as_deref().map(|b| ("application/json", b)))
    }

    /// Create the pod `name` with `labels`, as a StatefulSet would, running
    /// on 127.0.0.1 (the status a kubelet would report). Patroni patches
    /// its own pod, so each member needs one before it starts.
    pub fn create_pod(&self, ns: &str, name: &str, labels: &BTreeMap<String, String>) -> Value {
        let pod = json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"hostname": name, "nodeName": "test-node",
                     "containers": [{"name": "postgres", "image": "postgres:15"}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1"},
        });
        let r = self.create("pods", ns, &pod);
        assert!(r.status == 201 || r.status == 409, "create pod {name}: {} {}", r.status, r.body);
        self.get("pods", ns, name).unwrap_or_else(|| panic!("pod {name} vanished"))
    }

    /// The labels of pod `name` (empty when it has none or is missing).
    pub fn pod_labels(&self, ns: &str, name: &str) -> BTreeMap<String, String> {
        self.get("pods", ns, name)
            .and_then(|p| p.pointer("/metadata/labels").cloned())
            .and_then(|l| serde_json::from_value(l).ok())
            .unwrap_or_default()
    }

    /// The annotation `key` of object `name`.
    pub fn annotation(&self, plural: &str, ns: &str, name: &str, key: &str) -> Option<String> {
        self.get(plural, ns, name)?.pointer(&format!("/metadata/annotations/{key}"))?.as_str().map(String::from)
    }
}

/// Which objects Patroni keeps its state in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `<scope>-leader`, `-config`, `-failover`, `-sync` ConfigMaps (the default).
    ConfigMaps,
    /// `use_endpoints: true`: the leader lock on the `<scope>` Endpoints.
    Endpoints,
}

/// The namespace the cluster tests use.
pub const NAMESPACE: &str = "palisade-test";

/// The labels (besides `cluster-name: <scope>`) the cluster tests give
/// their objects and pods.
pub const LABELS: &[(&str, &str)] = &[("application", "patroni")];

/// A Kubernetes double seen as a DCS: Patroni's key layout
/// (`/service/<scope>/leader`...) mapped onto Patroni's objects and
/// annotations, with a pod created for each member before it starts.
pub struct KubernetesDcs {
    server: std::sync::Mutex<KubernetesServer>,
    raw: RawKube,
    pub mode: Mode,
}

impl KubernetesDcs {
    pub fn start(label: &str, mode: Mode) -> Self {
        let server = KubernetesServer::start(label);
        let raw = server.raw();
        KubernetesDcs { server: std::sync::Mutex::new(server), raw, mode }
    }

    pub fn server(&self) -> std::sync::MutexGuard<'_, KubernetesServer> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn raw(&self) -> &RawKube {
        &self.raw
    }

    fn kind(&self) -> &'static str {
        match self.mode {
            Mode::ConfigMaps => "configmaps",
            Mode::Endpoints => "endpoints",
        }
    }

    /// The labels of a cluster's objects and pods.
    pub fn labels(scope: &str) -> BTreeMap<String, String> {
        let mut l: BTreeMap<String, String> = LABELS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        l.insert("cluster-name".into(), scope.into());
        l
    }

    /// The labels of the objects and pods of Citus group `group` of a
    /// cluster (`citus-group` added, as Patroni labels them).
    pub fn group_labels(scope: &str, group: Option<i32>) -> BTreeMap<String, String> {
        let mut l = Self::labels(scope);
        if let Some(g) = group {
            l.insert("citus-group".into(), g.to_string());
        }
        l
    }

    /// A key below the scope split into its Citus group (a leading group
    /// number directory) and the key within the group.
    pub fn group_of(rest: &str) -> (Option<i32>, &str) {
        match rest.split_once('/') {
            Some((g, key)) => match palisade_plugin_api::sdk::dcs::parse_group(g) {
                Some(group) => (Some(group), key),
                None => (None, rest),
            },
            None => (None, rest),
        }
    }

    /// Where key `rest` of `scope` lives: (plural, object name, annotation;
    /// `None`: the whole annotation map as JSON). A key of a Citus group
    /// (`1/leader`) lives in the group's objects (`<scope>-1-leader`).
    fn locate(&self, scope: &str, rest: &str) -> Option<(&'static str, String, Option<&'static str>)> {
        let (group, rest) = Self::group_of(rest);
        let scope = &match group {
            Some(g) => format!("{scope}-{g}"),
            None => scope.to_string(),
        };
        let leader = match self.mode {
            Mode::ConfigMaps => format!("{scope}-leader"),
            Mode::Endpoints => scope.to_string(),
        };
        let kind = self.kind();
        Some(match rest {
            "leader" => (kind, leader, Some("leader")),
            "failsafe" => (kind, leader, Some("failsafe")),
            "status" => (kind, leader, None),
            "config" => (kind, format!("{scope}-config"), Some("config")),
            "initialize" => (kind, format!("{scope}-config"), Some("initialize")),
            "history" => (kind, format!("{scope}-config"), Some("history")),
            "failover" => (kind, format!("{scope}-failover"), None),
            "sync" => (kind, format!("{scope}-sync"), None),
            _ => {
                let member = rest.strip_prefix("members/")?;
                ("pods", member.to_string(), Some("status"))
            }
        })
    }

    fn split(key: &str) -> Option<(&str, &str)> {
        key.strip_prefix("/service/")?.split_once('/')
    }

    fn read(&self, scope: &str, rest: &str) -> Option<Vec<u8>> {
        let (plural, name, annotation) = self.locate(scope, rest)?;
        let obj = self.raw.get(plural, NAMESPACE, &name)?;
        let ann = obj.pointer("/metadata/annotations").and_then(Value::as_object).cloned().unwrap_or_default();
        match annotation {
            Some(a) => ann.get(a).and_then(Value::as_str).map(|s| s.as_bytes().to_vec()),
            None if Self::group_of(rest).1 == "status" => {
                let optime = ann.get("optime").and_then(Value::as_str)?.parse::<u64>().ok()?;
                let mut status = json!({"optime": optime});
                for k in ["slots", "retain_slots"] {
                    if let Some(v) =
                        ann.get(k).and_then(Value::as_str).and_then(|s| serde_json::from_str::<Value>(s).ok())
                    {
                        status[k] = v;
                    }
                }
                Some(status.to_string().into_bytes())
            }
            None => (!ann.is_empty()).then(|| Value::Object(ann).to_string().into_bytes()),
        }
    }
}

impl TestDcs for KubernetesDcs {
    fn yaml_section(&self) -> String {
        let labels: String = LABELS.iter().map(|(k, v)| format!("    {k}: {v}\n")).collect();
        let endpoints = if self.mode == Mode::Endpoints { "  use_endpoints: true\n" } else { "" };
        format!(
            "kubernetes:\n  namespace: {NAMESPACE}\n  context: {CONTEXT}\n  labels:\n{labels}  pod_ip: 127.0.0.1\n  \
             ports:\n  - name: postgresql\n    port: 5432\n{endpoints}"
        )
    }

    fn dcs_url(&self) -> String {
        // patronictl has no URL form for Kubernetes; this names the server.
        format!("kubernetes://127.0.0.1:{}", self.raw.port)
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let (scope, rest) = Self::split(key)?;
        self.read(scope, rest)
    }

    fn list(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let Some((scope, _)) =
            Self::split(prefix).or_else(|| prefix.strip_prefix("/service/").map(|s| (s.trim_end_matches('/'), "")))
        else {
            return Vec::new();
        };
        let mut keys: Vec<String> =
            ["config", "failover", "failsafe", "history", "initialize", "leader", "status", "sync"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let pods = self.raw.list("pods", NAMESPACE, &format!("cluster-name={scope}"));
        for p in pods["items"].as_array().into_iter().flatten() {
            if let Some(n) = p.pointer("/metadata/name").and_then(Value::as_str) {
                keys.push(format!("members/{n}"));
            }
        }
        let mut out: Vec<(String, Vec<u8>)> = keys
            .into_iter()
            .filter_map(|rest| {
                let full = format!("/service/{scope}/{rest}");
                let v = self.read(scope, &rest)?;
                full.starts_with(prefix).then_some((full, v))
            })
            .collect();
        out.sort();
        out
    }

    fn put(&self, key: &str, value: &[u8]) {
        let (scope, rest) = Self::split(key).unwrap_or_else(|| panic!("not a Patroni key: {key}"));
        let (plural, name, annotation) = self.locate(scope, rest).unwrap_or_else(|| panic!("no object for {key}"));
        let text = String::from_utf8_lossy(value).into_owned();
        let annotations = match annotation {
            Some(a) => json!({a: text}),
            None => serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|m| {
                    Value::Object(
                        m.into_iter()
                            .map(|(k, v)| (k, v.as_str().map(|s| json!(s)).unwrap_or_else(|| json!(v.to_string()))))
                            .collect(),
                    )
                })
                .unwrap_or_else(|| panic!("{key}: not a JSON object: {text}")),
        };
        let patch = json!({"metadata": {"annotations": annotations}});
        if self.raw.get(plural, NAMESPACE, &name).is_some() {
            let r = self.raw.patch(plural, NAMESPACE, &name, "application/merge-patch+json", &patch);
            assert_eq!(r.status, 200, "patch {plural}/{name}: {}", r.body);
        } else {
            let labels = Self::group_labels(scope, Self::group_of(rest).0);
            let obj = json!({"metadata": {"name": name, "labels": labels, "annotations": annotations}});
            let r = self.raw.create(plural, NAMESPACE, &obj);
            assert_eq!(r.status, 201, "create {plural}/{name}: {}", r.body);
        }
    }

    fn stop(&mut self) {
        self.server().stop();
    }

    fn start_again(&mut self) {
        self.server().start_again();
    }

    fn freeze(&self) {
        self.server().freeze();
    }

    fn thaw(&self) {
        self.server().thaw();
    }

    fn node_env(&self) -> Vec<(String, String)> {
        vec![("KUBECONFIG".into(), self.server().kubeconfig().display().to_string())]
    }

    fn prepare_member(&self, scope: &str, name: &str) {
        self.raw.create_pod(NAMESPACE, name, &Self::labels(scope));
    }
}

impl RawKube {
    /// A raw client of the server a kubeconfig written by the double names
    /// (its `server:` port and `token:`).
    pub fn from_kubeconfig(path: &std::path::Path) -> RawKube {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("{}: no {name}", path.display()))
        };
        let server = field("server:");
        let port = server.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("server {server}"));
        RawKube { port, token: field("token:") }
    }

    /// A raw client of the double a cluster runs on (found through the
    /// `KUBECONFIG` its daemons get).
    pub fn of(dcs: &dyn TestDcs) -> RawKube {
        let env = dcs.node_env();
        let path = env.iter().find(|(k, _)| k == "KUBECONFIG").map(|(_, v)| v.clone()).expect("not a Kubernetes DCS");
        RawKube::from_kubeconfig(std::path::Path::new(&path))
    }
}
