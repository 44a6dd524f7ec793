//! The HTTP API: one handler that routes by path, Consul's headers on every
//! answer, blocking queries, ACL enforcement, write-through persistence and
//! the agent's timers (session TTLs, TTL checks, HTTP/TCP check probes).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::store::{ApiError, Behavior, Check, CheckKind, Persisted, Service, SessionRequest, Store, SERF_CHECK};
use crate::util::{base64_encode, format_duration, parse_duration, percent_decode};

pub const STATE_FILE: &str = "consul-test-double-state.json";
const MAX_VALUE_SIZE: usize = 512 * 1024;
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_WAIT: Duration = Duration::from_secs(600);
const MIN_CHECK_INTERVAL_NS: u64 = 1_000_000_000;
const MIN_DEREGISTER_NS: u64 = 60_000_000_000;

pub struct App {
    pub config: Config,
    pub node_id: String,
    store: Mutex<Store>,
    changes: tokio::sync::watch::Sender<u64>,
    state_file: PathBuf,
    /// When each HTTP/TCP check runs next, and those running now.
    probes: Mutex<(HashMap<String, Instant>, HashSet<String>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl App {
    /// Load the state from the data dir (empty when there is none).
    pub fn open(config: Config) -> Result<Arc<App>, String> {
        let dir = config.data_dir.clone().ok_or("-data-dir is required")?;
        std::fs::create_dir_all(&dir).map_err(|e| format!("data dir {}: {e}", dir.display()))?;
        let state_file = dir.join(STATE_FILE);
        let persisted: Persisted = match std::fs::read(&state_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!("{}: unreadable state ({e}); remove the data dir to start afresh", state_file.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(e) => return Err(format!("{}: {e}", state_file.display())),
        };
        let node_id = match &config.node_id {
            Some(id) => id.clone(),
            None => {
                let f = dir.join("node-id");
                match std::fs::read_to_string(&f) {
                    Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
                    _ => {
                        let id = crate::util::uuid();
                        std::fs::write(&f, &id).map_err(|e| format!("{}: {e}", f.display()))?;
                        id
                    }
                }
            }
        };
        let mut store = Store::new(persisted, &config.node_name, Instant::now());
        store.session_ttl_min_ns = config.session_ttl_min_ns;
        let (changes, _) = tokio::sync::watch::channel(store.p.index);
        Ok(Arc::new(App {
            config,
            node_id,
            store: Mutex::new(store),
            changes,
            state_file,
            probes: Mutex::new((HashMap::new(), HashSet::new())),
        }))
    }

    /// Run `f` on the store; when it wrote anything, persist (atomic rename)
    /// and wake the blocking queries.
    fn mutate<T>(&self, f: impl FnOnce(&mut Store, Instant) -> T) -> T {
        let mut s = lock(&self.store);
        let before = s.p.index;
        let out = f(&mut s, Instant::now());
        if s.p.index != before {
            self.persist(&s);
            self.changes.send_replace(s.p.index);
        }
        out
    }

    fn persist(&self, s: &Store) {
        let tmp = self.state_file.with_extension("json.tmp");
        let written = serde_json::to_vec(&s.p)
            .map_err(|e| e.to_string())
            .and_then(|b| std::fs::write(&tmp, b).map_err(|e| e.to_string()))
            .and_then(|()| std::fs::rename(&tmp, &self.state_file).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("[ERROR] consul-test-double: cannot persist the state to {}: {e}", self.state_file.display());
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&lock(&self.store))
    }

    fn leader_addr(&self) -> String {
        format!("{}:8300", self.config.bind_addr)
    }
}

/// Serve the API on the configured addresses (HTTP and/or HTTPS) until the
/// process ends.
pub async fn serve(app: Arc<App>) -> Result<(), String> {
    let http = match app.config.http_port {
        Some(p) => {
            let addr = format!("{}:{p}", app.config.client_addr);
            Some(tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("listen on {addr}: {e}"))?)
        }
        None => None,
    };
    let https = match app.config.https_port {
        Some(p) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls_config(&app.config.tls)?);
            let addr = format!("{}:{p}", app.config.client_addr);
            Some((tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("listen on {addr}: {e}"))?, acceptor))
        }
        None => None,
    };
    tokio::spawn(timers(app.clone()));
    let router = axum::Router::new().fallback(handle).with_state(app.clone());
    let mut addrs = Vec::new();
    if let Some(l) = &http {
        addrs.push(format!("HTTP on {}", l.local_addr().map_err(|e| e.to_string())?));
    }
    if let Some((l, _)) = &https {
        addrs.push(format!("HTTPS on {}", l.local_addr().map_err(|e| e.to_string())?));
    }
    println!(
        "==> consul-test-double (a test double, not Consul) agent running: {}, datacenter {}, node {}",
        addrs.join(", "),
        app.config.datacenter,
        app.config.node_name
    );
    let tls_router = router.clone();
    let serve_https = async move {
        match https {
            Some((listener, acceptor)) => serve_tls(tls_router, listener, acceptor).await,
            None => std::future::pending().await,
        }
    };
    let serve_http = async move {
        match http {
            Some(listener) => axum::serve(listener, router).await.map_err(|e| e.to_string()),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = serve_http => r,
        r = serve_https => r,
    }
}

/// Serve on an already bound plain-HTTP listener (for in-process use).
pub async fn serve_on(app: Arc<App>, listener: tokio::net::TcpListener) -> Result<(), String> {
    tokio::spawn(timers(app.clone()));
    let router = axum::Router::new().fallback(handle).with_state(app);
    axum::serve(listener, router).await.map_err(|e| e.to_string())
}

async fn serve_tls(
    router: axum::Router,
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> Result<(), String> {
    loop {
        let (stream, remote) = listener.accept().await.map_err(|e| format!("accept: {e}"))?;
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    eprintln!("[WARN] TLS handshake with {remote} failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let svc = hyper_util::service::TowerToHyperService::new(router);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
        });
    }
}

fn tls_config(t: &crate::config::Tls) -> Result<Arc<rustls::ServerConfig>, String> {
    use std::io::BufReader;
    let open = |p: &std::path::Path, what: &str| {
        std::fs::File::open(p).map(BufReader::new).map_err(|e| format!("tls.defaults.{what} {}: {e}", p.display()))
    };
    let cert_file = t.cert_file.as_deref().ok_or("tls.defaults.cert_file is required for HTTPS")?;
    let key_file = t.key_file.as_deref().ok_or("tls.defaults.key_file is required for HTTPS")?;
    let certs = rustls_pemfile::certs(&mut open(cert_file, "cert_file")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.defaults.cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("tls.defaults.cert_file {}: no certificate in it", cert_file.display()));
    }
    let key = rustls_pemfile::private_key(&mut open(key_file, "key_file")?)
        .map_err(|e| format!("tls.defaults.key_file {}: {e}", key_file.display()))?
        .ok_or_else(|| format!("tls.defaults.key_file {}: no private key in it", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if t.verify_incoming {
        let ca = t.ca_file.as_deref().ok_or("tls.defaults.verify_incoming needs tls.defaults.ca_file")?;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut open(ca, "ca_file")?) {
            let c = c.map_err(|e| format!("tls.defaults.ca_file {}: {e}", ca.display()))?;
            roots.add(c).map_err(|e| format!("tls.defaults.ca_file {}: {e}", ca.display()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("tls.defaults.ca_file: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config =
        builder.with_single_cert(certs, key).map_err(|e| format!("tls.defaults cert_file/key_file: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

// ---------- timers and probes ----------

async fn timers(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        app.mutate(|s, now| {
            for id in s.expire_sessions(now) {
                eprintln!("[INFO] session {id} invalidated: TTL expired");
            }
            s.run_check_timers(now);
        });
        let due: Vec<Check> = {
            let checks: Vec<Check> = app.read(|s| s.p.checks.values().cloned().collect());
            let mut probes = lock(&app.probes);
            let now = Instant::now();
            let live: HashSet<&str> = checks.iter().map(|c| c.id.as_str()).collect();
            probes.0.retain(|id, _| live.contains(id.as_str()));
            let mut due = Vec::new();
            for c in checks {
                let interval = match &c.kind {
                    CheckKind::Http { interval_ns, .. } | CheckKind::Tcp { interval_ns, .. } => *interval_ns,
                    _ => continue,
                };
                let next = *probes.0.entry(c.id.clone()).or_insert(now);
                if next <= now && !probes.1.contains(&c.id) {
                    probes.0.insert(c.id.clone(), now + Duration::from_nanos(interval));
                    probes.1.insert(c.id.clone());
                    due.push(c);
                }
            }
            due
        };
        for c in due {
            let app = app.clone();
            tokio::spawn(async move {
                let (status, output) = probe(&c, app.config.tls.ca_file.as_deref()).await;
                app.mutate(|s, now| {
                    // The definition may have changed or gone meanwhile.
                    if s.p.checks.get(&c.id).is_some_and(|cur| cur.kind == c.kind) {
                        s.set_check_status(&c.id, status, &output, now);
                    }
                });
                lock(&app.probes).1.remove(&c.id);
            });
        }
    }
}

async fn probe(c: &Check, ca_file: Option<&std::path::Path>) -> (&'static str, String) {
    match &c.kind {
        CheckKind::Http { url, timeout_ns, method, header, .. } => {
            let t = Duration::from_nanos(*timeout_ns);
            let tls = (&c.tls_server_name, c.tls_skip_verify, ca_file);
            match tokio::time::timeout(t, http_probe(url, method, header, tls)).await {
                Ok(Ok((code, reason, body))) => {
                    let status = match code {
                        200..=299 => "passing",
                        429 => "warning",
                        _ => "critical",
                    };
                    (status, format!("HTTP {method} {url}: {code} {reason} Output: {body}"))
                }
                Ok(Err(e)) => ("critical", format!("Get \"{url}\": {e}")),
                Err(_) => ("critical", format!("Get \"{url}\": context deadline exceeded (Client.Timeout exceeded)")),
            }
        }
        CheckKind::Tcp { address, timeout_ns, .. } => {
            let t = Duration::from_nanos(*timeout_ns);
            match tokio::time::timeout(t, tokio::net::TcpStream::connect(address.as_str())).await {
                Ok(Ok(_)) => ("passing", format!("TCP connect {address}: Success")),
                Ok(Err(e)) => ("critical", format!("dial tcp {address}: {e}")),
                Err(_) => ("critical", format!("dial tcp {address}: i/o timeout")),
            }
        }
        _ => ("critical", String::from("not a probed check")),
    }
}

/// How an HTTPS check verifies the server: `TLSServerName`, `TLSSkipVerify`
/// and the agent's `ca_file` (the system's roots without one), as Consul does.
type CheckTls<'a> = (&'a String, bool, Option<&'a std::path::Path>);

async fn http_probe(
    url: &str,
    method: &str,
    header: &[(String, String)],
    tls: CheckTls<'_>,
) -> Result<(u16, String, String), String> {
    let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => return Err(format!("unsupported protocol scheme in {url:?}")),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default_port = if https { 443 } else { 80 };
    let addr = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:{default_port}") };
    let tcp = tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("dial tcp {addr}: {e}"))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: Consul Health Check\r\nAccept: text/plain, text/*, */*\r\nConnection: close\r\n"
    );
    for (k, v) in header {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if !https {
        return exchange(tcp, &req).await;
    }
    let (server_name, skip_verify, ca_file) = tls;
    let host = hostport.rsplit_once(':').map(|(h, _)| h).unwrap_or(hostport).trim_matches(|c| c == '[' || c == ']');
    let name = if server_name.is_empty() { host.to_string() } else { server_name.clone() };
    let name =
        rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| format!("TLSServerName {name:?}: {e}"))?;
    let config = check_tls_config(skip_verify, ca_file)?;
    let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| format!("tls: {e}"))?;
    exchange(stream, &req).await
}

async fn exchange<S>(mut s: S, req: &str) -> Result<(u16, String, String), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.len() < 8192 {
        match s.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A TLS peer closing without close_notify: what came is the answer.
            Err(_) if !buf.is_empty() => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.splitn(3, ' ');
    let _ = parts.next();
    let code = parts.next().and_then(|c| c.parse().ok()).ok_or_else(|| format!("malformed HTTP response {line:?}"))?;
    let reason = parts.next().unwrap_or_default().to_string();
    Ok((code, reason, body.chars().take(4096).collect()))
}

fn check_tls_config(skip_verify: bool, ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = if skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider))).with_no_client_auth()
    } else {
        let bundle =
            ca_file.map(std::path::Path::to_path_buf).unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
        let file = std::fs::File::open(&bundle).map_err(|e| format!("CA {}: {e}", bundle.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
            let c = c.map_err(|e| format!("CA {}: {e}", bundle.display()))?;
            let _ = roots.add(c);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `TLSSkipVerify`: any server certificate (signatures still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ---------- requests and answers ----------

struct Req {
    method: Method,
    path: String,
    query: Vec<(String, Option<String>)>,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn q(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    fn token(&self) -> Option<String> {
        if let Some(t) = self.headers.get("x-consul-token").and_then(|v| v.to_str().ok()) {
            return Some(t.to_string());
        }
        if let Some(t) = self
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        {
            return Some(t.trim().to_string());
        }
        self.q("token").map(str::to_string)
    }

    fn json_body(&self) -> Result<Map<String, Value>, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(ApiError::new(400, format!("Request decode failed: expected a JSON object, got {other}"))),
            Err(e) => Err(ApiError::new(400, format!("Request decode failed: {e}"))),
        }
    }
}

/// A field of a JSON body, matched as Consul's decoder does: without regard
/// to case or underscores (`lock_delay`, `lockdelay`, `LockDelay`).
fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let want: String = name.chars().filter(|c| *c != '_').map(|c| c.to_ascii_lowercase()).collect();
    m.iter()
        .find(|(k, _)| k.chars().filter(|c| *c != '_').map(|c| c.to_ascii_lowercase()).collect::<String>() == want)
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn field_str(m: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match field(m, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => {
            Err(ApiError::new(400, format!("Request decode failed: {name}: expected a string, got {other}")))
        }
    }
}

fn field_strings(m: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    match field(m, name) {
        None => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                // ServiceChecks are objects {"ID": ..., "Namespace": ...}.
                Value::Object(o) => field_str(o, "ID")?
                    .ok_or_else(|| ApiError::new(400, format!("Request decode failed: {name}: entry without ID"))),
                other => Err(ApiError::new(400, format!("Request decode failed: {name}: unexpected {other}"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ApiError::new(400, format!("Request decode failed: {name}: expected a list, got {other}"))),
    }
}

/// A duration field: a Go duration string, or a number (nanoseconds; for
/// LockDelay, numbers below 1000 are seconds, as Consul reads them).
fn field_duration(m: &Map<String, Value>, name: &str, small_is_seconds: bool) -> Result<Option<u64>, ApiError> {
    match field(m, name) {
        None => Ok(None),
        Some(Value::String(s)) => {
            parse_duration(s).map(Some).map_err(|e| ApiError::new(400, format!("Request decode failed: {name}: {e}")))
        }
        Some(Value::Number(n)) => {
            let v = n.as_f64().unwrap_or(-1.0);
            if v < 0.0 {
                return Err(ApiError::new(400, format!("Request decode failed: {name}: negative duration")));
            }
            Ok(Some(if small_is_seconds && v < 1000.0 { (v * 1e9) as u64 } else { v as u64 }))
        }
        Some(other) => {
            Err(ApiError::new(400, format!("Request decode failed: {name}: expected a duration, got {other}")))
        }
    }
}

struct Reply {
    status: u16,
    body: Body,
    index: Option<u64>,
}

enum Body {
    Json(Value),
    Raw(Vec<u8>),
    Text(String),
}

impl Reply {
    fn json(v: Value) -> Self {
        Reply { status: 200, body: Body::Json(v), index: None }
    }

    fn indexed(status: u16, v: Value, index: u64) -> Self {
        Reply { status, body: Body::Json(v), index: Some(index) }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply { status: e.status, body: Body::Text(e.message), index: None }
    }
}

fn finish(r: Reply, consistency: &str) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (ctype, bytes) = match r.body {
        Body::Json(v) => ("application/json", v.to_string().into_bytes()),
        Body::Raw(b) => ("text/plain; charset=utf-8", b),
        Body::Text(t) => ("text/plain; charset=utf-8", t.into_bytes()),
    };
    let mut resp = (status, bytes).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static(ctype));
    h.insert("vary", HeaderValue::from_static("Accept-Encoding"));
    if let Some(i) = r.index {
        if let Ok(v) = HeaderValue::from_str(&i.to_string()) {
            h.insert("x-consul-index", v);
        }
        h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
        h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
        if let Ok(v) = HeaderValue::from_str(consistency) {
            h.insert("x-consul-effective-consistency", v);
        }
    }
    resp
}

fn parse_query(q: Option<&str>) -> Vec<(String, Option<String>)> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), Some(percent_decode(v, true))),
            None => (percent_decode(p, true), None),
        })
        .collect()
}

async fn handle(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req { method, path: percent_decode(uri.path(), false), query: parse_query(uri.query()), headers, body };
    let consistency = if req.has("consistent") {
        "consistent"
    } else if req.has("stale") {
        "stale"
    } else {
        "leader"
    };
    let started = Instant::now();
    let reply = match route(&app, &req).await {
        Ok(r) => r,
        Err(e) => e.into(),
    };
    if app.config.log_requests {
        log_request(&req.method, &uri, started.elapsed());
    }
    finish(reply, consistency)
}

/// Consul's debug line for a finished HTTP request (its URL as received,
/// the `token` parameter hidden as Consul hides it).
fn log_request(method: &Method, uri: &Uri, latency: Duration) {
    let mut url = uri.path().to_string();
    if let Some(q) = uri.query() {
        let hidden: Vec<String> = q
            .split('&')
            .map(|p| if p.starts_with("token=") { "token=<hidden>".to_string() } else { p.to_string() })
            .collect();
        url = format!("{url}?{}", hidden.join("&"));
    }
    eprintln!("[DEBUG] agent.http: Request finished: method={method} url={url} latency={latency:?}");
}

fn method_not_allowed(req: &Req) -> ApiError {
    ApiError::new(405, format!("method {} not allowed", req.method))
}

fn want(req: &Req, m: &[Method]) -> Result<(), ApiError> {
    if m.contains(&req.method) {
        Ok(())
    } else {
        Err(method_not_allowed(req))
    }
}

const READ: &[Method] = &[Method::GET, Method::HEAD];
const WRITE: &[Method] = &[Method::PUT, Method::POST];

async fn route(app: &Arc<App>, req: &Req) -> Result<Reply, ApiError> {
    let path = req.path.clone();
    if let Some(dc) = req.q("dc") {
        if !dc.is_empty() && dc != app.config.datacenter {
            return Err(ApiError::new(500, "No path to datacenter"));
        }
    }
    if req.has("stale") && req.has("consistent") {
        return Err(ApiError::new(400, "Cannot specify ?stale with ?consistent, conflicting semantics."));
    }
    if path == "/v1/status/leader" {
        want(req, READ)?;
        return Ok(Reply::json(json!(app.leader_addr())));
    }
    if path == "/v1/status/peers" {
        want(req, READ)?;
        return Ok(Reply::json(json!([app.leader_addr()])));
    }
    if let Some(key) = path.strip_prefix("/v1/kv/").or((path == "/v1/kv").then_some("")) {
        return kv(app, req, key).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/session/") {
        return session(app, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/agent/") {
        return agent(app, req, rest);
    }
    if let Some(rest) = path.strip_prefix("/v1/catalog/") {
        return catalog(app, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/health/") {
        return health(app, req, rest).await;
    }
    Err(ApiError::new(404, format!("404 page not found: {path} is not served by consul-test-double")))
}

fn acl(app: &App, req: &Req, perm: &str, resource: &str) -> Result<(), ApiError> {
    let a = &app.config.acl;
    if !a.enabled {
        return Ok(());
    }
    match req.token().filter(|t| !t.is_empty() && t != "anonymous") {
        None => {
            if a.default_deny {
                Err(ApiError::new(
                    403,
                    format!("Permission denied: anonymous token lacks permission '{perm}' on {resource:?}"),
                ))
            } else {
                Ok(())
            }
        }
        Some(t) if Some(&t) == a.management_token.as_ref() => Ok(()),
        Some(_) => Err(ApiError::new(403, "ACL not found")),
    }
}

/// Run a (possibly blocking) read: with `?index=N` wait until the answer's
/// index passes N or `?wait` (default 5m, at most 10m) runs out.
async fn blocking(app: &Arc<App>, req: &Req, f: impl Fn(&Store) -> Reply) -> Result<Reply, ApiError> {
    let min = match req.q("index") {
        None => 0,
        Some(i) => i.parse::<u64>().map_err(|_| ApiError::new(400, format!("Invalid index: {i:?}")))?,
    };
    let wait = match req.q("wait") {
        None => DEFAULT_WAIT,
        Some(w) => {
            Duration::from_nanos(parse_duration(w).map_err(|e| ApiError::new(400, format!("Invalid wait time: {e}")))?)
                .min(MAX_WAIT)
        }
    };
    let mut rx = app.changes.subscribe();
    let first = app.read(&f);
    if min == 0 || first.index.unwrap_or(0) > min {
        return Ok(first);
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(app.read(&f));
                }
                let r = app.read(&f);
                if r.index.unwrap_or(0) > min {
                    return Ok(r);
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(app.read(&f)),
        }
    }
}

fn entry_json(key: &str, e: &crate::store::Entry) -> Value {
    let mut m = Map::new();
    m.insert("LockIndex".into(), json!(e.lock_index));
    m.insert("Key".into(), json!(key));
    m.insert("Flags".into(), json!(e.flags));
    m.insert("Value".into(), if e.value.is_empty() { Value::Null } else { json!(base64_encode(&e.value)) });
    if !e.session.is_empty() {
        m.insert("Session".into(), json!(e.session));
    }
    m.insert("CreateIndex".into(), json!(e.create_index));
    m.insert("ModifyIndex".into(), json!(e.modify_index));
    Value::Object(m)
}

fn parse_u64(req: &Req, name: &str) -> Result<Option<u64>, ApiError> {
    match req.q(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ApiError::new(400, format!("Invalid {name} value: {v:?}"))),
    }
}

async fn kv(app: &Arc<App>, req: &Req, key: &str) -> Result<Reply, ApiError> {
    let key = key.to_string();
    match req.method {
        Method::GET | Method::HEAD => {
            acl(app, req, "key:read", &key)?;
            if req.has("keys") {
                let sep = req.q("separator").unwrap_or_default().to_string();
                blocking(app, req, |s| {
                    let mut keys: Vec<String> = Vec::new();
                    for (k, _) in s.list(&key) {
                        let mut k = k.clone();
                        if !sep.is_empty() {
                            if let Some(pos) = k[key.len()..].find(&sep) {
                                k.truncate(key.len() + pos + sep.len());
                            }
                        }
                        if keys.last() != Some(&k) {
                            keys.push(k);
                        }
                    }
                    let idx = s.prefix_index(&key);
                    if keys.is_empty() {
                        Reply { status: 404, body: Body::Text(String::new()), index: Some(idx) }
                    } else {
                        Reply::indexed(200, json!(keys), idx)
                    }
                })
                .await
            } else if req.has("recurse") {
                blocking(app, req, |s| {
                    let entries: Vec<Value> = s.list(&key).into_iter().map(|(k, e)| entry_json(k, e)).collect();
                    let idx = s.prefix_index(&key);
                    if entries.is_empty() {
                        Reply { status: 404, body: Body::Text(String::new()), index: Some(idx) }
                    } else {
                        Reply::indexed(200, Value::Array(entries), idx)
                    }
                })
                .await
            } else {
                let raw = req.has("raw");
                blocking(app, req, |s| {
                    let idx = s.key_index(&key);
                    match s.get(&key) {
                        None => Reply { status: 404, body: Body::Text(String::new()), index: Some(idx) },
                        Some(e) if raw => Reply { status: 200, body: Body::Raw(e.value.clone()), index: Some(idx) },
                        Some(e) => Reply::indexed(200, json!([entry_json(&key, e)]), idx),
                    }
                })
                .await
            }
        }
        Method::PUT => {
            acl(app, req, "key:write", &key)?;
            if key.is_empty() {
                return Err(ApiError::new(400, "Missing key name"));
            }
            if req.body.len() > MAX_VALUE_SIZE {
                return Err(ApiError::new(
                    413,
                    format!("Request body({} bytes) too large, max size: {MAX_VALUE_SIZE} bytes.", req.body.len()),
                ));
            }
            let flags = parse_u64(req, "flags")?.unwrap_or(0);
            let cas = parse_u64(req, "cas")?;
            let value = req.body.to_vec();
            let ok = if let Some(sess) = req.q("release") {
                let sess = sess.to_string();
                app.mutate(|s, _| s.release(&key, value, flags, &sess))?
            } else if let Some(sess) = req.q("acquire") {
                let sess = sess.to_string();
                app.mutate(|s, now| s.acquire(&key, value, flags, &sess, now))?
            } else if let Some(cas) = cas {
                app.mutate(|s, _| s.put_cas(&key, value, flags, cas))
            } else {
                app.mutate(|s, _| s.put(&key, value, flags))
            };
            Ok(Reply::json(json!(ok)))
        }
        Method::DELETE => {
            acl(app, req, "key:write", &key)?;
            let ok = if req.has("recurse") {
                app.mutate(|s, _| s.delete_tree(&key))
            } else {
                if key.is_empty() {
                    return Err(ApiError::new(400, "Missing key name"));
                }
                match parse_u64(req, "cas")? {
                    Some(cas) => app.mutate(|s, _| s.delete_cas(&key, cas)),
                    None => app.mutate(|s, _| s.delete(&key)),
                }
            };
            Ok(Reply::json(json!(ok)))
        }
        _ => Err(method_not_allowed(req)),
    }
}

fn session_json(s: &crate::store::Session) -> Value {
    json!({
        "ID": s.id,
        "Name": s.name,
        "Node": s.node,
        "LockDelay": s.lock_delay_ns,
        "Behavior": s.behavior.as_str(),
        "TTL": s.ttl,
        "NodeChecks": if s.node_checks.is_empty() { Value::Null } else { json!(s.node_checks) },
        "ServiceChecks": if s.service_checks.is_empty() {
            Value::Null
        } else {
            Value::Array(s.service_checks.iter().map(|c| json!({"ID": c, "Namespace": ""})).collect())
        },
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    })
}

async fn session(app: &Arc<App>, req: &Req, rest: &str) -> Result<Reply, ApiError> {
    let (op, id) = rest.split_once('/').unwrap_or((rest, ""));
    let id = id.to_string();
    match op {
        "create" => {
            want(req, WRITE)?;
            acl(app, req, "session:write", &app.config.node_name)?;
            let b = req.json_body()?;
            let behavior = match field_str(&b, "Behavior")?.as_deref() {
                None | Some("") => None,
                Some("release") => Some(Behavior::Release),
                Some("delete") => Some(Behavior::Delete),
                Some(other) => return Err(ApiError::new(400, format!("Invalid Behavior setting '{other}'"))),
            };
            let r = SessionRequest {
                name: field_str(&b, "Name")?.unwrap_or_default(),
                node: field_str(&b, "Node")?.filter(|n| !n.is_empty()),
                lock_delay_ns: field_duration(&b, "LockDelay", true)?,
                behavior,
                ttl: field_str(&b, "TTL")?.unwrap_or_default(),
                checks: field_strings(&b, "Checks")?,
                node_checks: field_strings(&b, "NodeChecks")?,
                service_checks: field_strings(&b, "ServiceChecks")?,
            };
            let id = app.mutate(|s, now| s.create_session(r, now))?;
            Ok(Reply::json(json!({ "ID": id })))
        }
        "destroy" => {
            want(req, WRITE)?;
            acl(app, req, "session:write", &app.config.node_name)?;
            app.mutate(|s, now| s.destroy_session(&id, now));
            Ok(Reply::json(json!(true)))
        }
        "renew" => {
            want(req, WRITE)?;
            acl(app, req, "session:write", &app.config.node_name)?;
            match app.mutate(|s, now| s.renew_session(&id, now)) {
                Some(s) => {
                    let idx = app.read(|st| st.p.session_index.max(1));
                    Ok(Reply::indexed(200, json!([session_json(&s)]), idx))
                }
                None => Err(ApiError::new(404, format!("Session id '{id}' not found"))),
            }
        }
        "info" | "list" | "node" => {
            want(req, READ)?;
            acl(app, req, "session:read", &id)?;
            let op = op.to_string();
            blocking(app, req, |s| {
                let list: Vec<Value> =
                    s.p.sessions
                        .values()
                        .filter(|x| match op.as_str() {
                            "info" => x.id == id,
                            "node" => x.node == id,
                            _ => true,
                        })
                        .map(session_json)
                        .collect();
                Reply::indexed(200, Value::Array(list), s.p.session_index.max(1))
            })
            .await
        }
        _ => Err(ApiError::new(404, format!("404 page not found: /v1/session/{rest}"))),
    }
}

fn node_json(app: &App) -> Value {
    let a = &app.config.bind_addr;
    json!({
        "ID": app.node_id,
        "Node": app.config.node_name,
        "Address": a,
        "Datacenter": app.config.datacenter,
        "TaggedAddresses": {"lan": a, "lan_ipv4": a, "wan": a, "wan_ipv4": a},
        "Meta": {"consul-network-segment": ""},
    })
}

fn check_type(c: &Check) -> &'static str {
    match c.kind {
        CheckKind::Serf => "",
        CheckKind::Ttl { .. } => "ttl",
        CheckKind::Http { .. } => "http",
        CheckKind::Tcp { .. } => "tcp",
    }
}

fn serf_check() -> Check {
    Check {
        id: SERF_CHECK.into(),
        name: "Serf Health Status".into(),
        notes: String::new(),
        status: "passing".into(),
        output: "Agent alive and reachable".into(),
        service_id: String::new(),
        kind: CheckKind::Serf,
        deregister_after_ns: 0,
        tls_server_name: String::new(),
        tls_skip_verify: false,
        create_index: 1,
        modify_index: 1,
    }
}

fn check_json(app: &App, s: &Store, c: &Check) -> Value {
    let svc = s.p.services.get(&c.service_id);
    let mut def = Map::new();
    match &c.kind {
        CheckKind::Http { url, interval_ns, timeout_ns, method, .. } => {
            def.insert("HTTP".into(), json!(url));
            def.insert("Method".into(), json!(method));
            def.insert("Interval".into(), json!(format_duration(*interval_ns)));
            def.insert("Timeout".into(), json!(format_duration(*timeout_ns)));
            def.insert("TLSServerName".into(), json!(c.tls_server_name));
            def.insert("TLSSkipVerify".into(), json!(c.tls_skip_verify));
        }
        CheckKind::Tcp { address, interval_ns, timeout_ns } => {
            def.insert("TCP".into(), json!(address));
            def.insert("Interval".into(), json!(format_duration(*interval_ns)));
            def.insert("Timeout".into(), json!(format_duration(*timeout_ns)));
        }
        CheckKind::Ttl { ttl_ns } => {
            def.insert("TTL".into(), json!(format_duration(*ttl_ns)));
        }
        CheckKind::Serf => {}
    }
    if c.deregister_after_ns > 0 {
        def.insert("DeregisterCriticalServiceAfter".into(), json!(format_duration(c.deregister_after_ns)));
    }
    json!({
        "Node": app.config.node_name,
        "CheckID": c.id,
        "Name": c.name,
        "Status": c.status,
        "Notes": c.notes,
        "Output": c.output,
        "ServiceID": c.service_id,
        "ServiceName": svc.map(|x| x.name.clone()).unwrap_or_default(),
        "ServiceTags": svc.map(|x| x.tags.clone()).unwrap_or_default(),
        "Type": check_type(c),
        "Interval": def.get("Interval").cloned().unwrap_or(json!("")),
        "Timeout": def.get("Timeout").cloned().unwrap_or(json!("")),
        "ExposedPort": 0,
        "Definition": Value::Object(def),
        "CreateIndex": c.create_index,
        "ModifyIndex": c.modify_index,
    })
}

fn agent_service_json(app: &App, svc: &Service) -> Value {
    json!({
        "ID": svc.id,
        "Service": svc.name,
        "Tags": svc.tags,
        "Meta": svc.meta,
        "Port": svc.port,
        "Address": svc.address,
        "TaggedAddresses": {},
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": svc.enable_tag_override,
        "Datacenter": app.config.datacenter,
        "ContentHash": format!("{:016x}", svc.modify_index),
    })
}

/// A check definition from a registration body; `None` for an empty one
/// (Consul ignores those).
fn parse_check(
    m: &Map<String, Value>,
    default_id: &str,
    default_name: &str,
    service_id: &str,
) -> Result<Option<Check>, ApiError> {
    if m.is_empty() {
        return Ok(None);
    }
    for unsupported in [
        "Args",
        "ScriptArgs",
        "Script",
        "DockerContainerID",
        "GRPC",
        "H2PING",
        "UDP",
        "AliasNode",
        "AliasService",
        "OSService",
    ] {
        if field(m, unsupported).is_some() {
            return Err(ApiError::new(
                400,
                format!("{unsupported} checks are not run by consul-test-double (a test double, not Consul): only HTTP, TCP and TTL checks"),
            ));
        }
    }
    let interval = field_duration(m, "Interval", false)?.unwrap_or(0);
    let timeout = field_duration(m, "Timeout", false)?.filter(|t| *t > 0).unwrap_or(10_000_000_000);
    let kind = if let Some(url) = field_str(m, "HTTP")? {
        if interval == 0 {
            return Err(ApiError::new(400, "Invalid check: Interval must be > 0 for an HTTP check"));
        }
        let mut header = Vec::new();
        if let Some(Value::Object(h)) = field(m, "Header") {
            for (k, v) in h {
                for x in v.as_array().into_iter().flatten() {
                    header.push((k.clone(), x.as_str().unwrap_or_default().to_string()));
                }
            }
        }
        CheckKind::Http {
            url,
            interval_ns: interval.max(MIN_CHECK_INTERVAL_NS),
            timeout_ns: timeout,
            method: field_str(m, "Method")?.filter(|x| !x.is_empty()).unwrap_or_else(|| "GET".into()),
            header,
        }
    } else if let Some(address) = field_str(m, "TCP")? {
        if interval == 0 {
            return Err(ApiError::new(400, "Invalid check: Interval must be > 0 for a TCP check"));
        }
        CheckKind::Tcp { address, interval_ns: interval.max(MIN_CHECK_INTERVAL_NS), timeout_ns: timeout }
    } else if let Some(ttl) = field_duration(m, "TTL", false)? {
        CheckKind::Ttl { ttl_ns: ttl }
    } else {
        return Err(ApiError::new(400, "Invalid check: must provide TTL or HTTP/TCP and Interval"));
    };
    let status = field_str(m, "Status")?.unwrap_or_else(|| "critical".into());
    if !["passing", "warning", "critical"].contains(&status.as_str()) {
        return Err(ApiError::new(400, format!("Invalid check status: {status:?}")));
    }
    let id = field_str(m, "CheckID")?.or(field_str(m, "ID")?).filter(|x| !x.is_empty()).unwrap_or(default_id.into());
    let name = field_str(m, "Name")?.filter(|x| !x.is_empty()).unwrap_or(default_name.into());
    if name.is_empty() {
        return Err(ApiError::new(400, "Missing check name"));
    }
    let dereg = field_duration(m, "DeregisterCriticalServiceAfter", false)?.unwrap_or(0);
    Ok(Some(Check {
        id,
        name,
        notes: field_str(m, "Notes")?.unwrap_or_default(),
        status,
        output: String::new(),
        service_id: field_str(m, "ServiceID")?.filter(|x| !x.is_empty()).unwrap_or(service_id.into()),
        kind,
        deregister_after_ns: if dereg > 0 { dereg.max(MIN_DEREGISTER_NS) } else { 0 },
        tls_server_name: field_str(m, "TLSServerName")?.unwrap_or_default(),
        tls_skip_verify: field(m, "TLSSkipVerify").and_then(Value::as_bool).unwrap_or(false),
        create_index: 0,
        modify_index: 0,
    }))
}

const SERVICE_FIELDS: &[&str] =
    &["ID", "Name", "Tags", "Address", "Port", "Meta", "EnableTagOverride", "Check", "Checks"];

fn register_service(app: &Arc<App>, req: &Req) -> Result<Reply, ApiError> {
    let b = req.json_body()?;
    let name =
        field_str(&b, "Name")?.filter(|n| !n.is_empty()).ok_or_else(|| ApiError::new(400, "Missing service name"))?;
    acl(app, req, "service:write", &name)?;
    for k in b.keys() {
        let norm: String = k.chars().filter(|c| *c != '_').map(|c| c.to_ascii_lowercase()).collect();
        if !SERVICE_FIELDS.iter().any(|f| f.to_ascii_lowercase() == norm) {
            eprintln!("[WARN] service {name:?}: field {k:?} is accepted but not acted on by consul-test-double");
        }
    }
    let id = field_str(&b, "ID")?.filter(|x| !x.is_empty()).unwrap_or_else(|| name.clone());
    let port = match field(&b, "Port") {
        None => 0,
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| ApiError::new(400, format!("Invalid Port: {v}")))?,
    };
    let meta: BTreeMap<String, String> = match field(&b, "Meta") {
        Some(Value::Object(m)) => {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
        }
        _ => BTreeMap::new(),
    };
    let svc = Service {
        id: id.clone(),
        name: name.clone(),
        tags: field_strings(&b, "Tags")?.unwrap_or_default(),
        address: field_str(&b, "Address")?.unwrap_or_default(),
        port,
        meta,
        enable_tag_override: field(&b, "EnableTagOverride").and_then(Value::as_bool).unwrap_or(false),
        create_index: 0,
        modify_index: 0,
    };
    let mut defs: Vec<Map<String, Value>> = Vec::new();
    if let Some(Value::Object(c)) = field(&b, "Check") {
        defs.push(c.clone());
    }
    if let Some(Value::Array(cs)) = field(&b, "Checks") {
        defs.extend(cs.iter().filter_map(|c| c.as_object().cloned()));
    }
    defs.retain(|d| !d.is_empty());
    let mut checks = Vec::new();
    let many = defs.len() > 1;
    for (i, d) in defs.iter().enumerate() {
        let default_id = if many { format!("service:{id}:{}", i + 1) } else { format!("service:{id}") };
        if let Some(c) = parse_check(d, &default_id, &format!("Service '{name}' check"), &id)? {
            checks.push(c);
        }
    }
    let replace = req.q("replace-existing-checks").is_some_and(|v| v.is_empty() || v == "true" || v == "1");
    app.mutate(|s, now| s.register_service(svc, checks, replace, now));
    Ok(Reply::json(Value::Null).with_empty())
}

impl Reply {
    fn with_empty(self) -> Self {
        Reply { status: self.status, body: Body::Text(String::new()), index: self.index }
    }
}

fn agent(app: &Arc<App>, req: &Req, rest: &str) -> Result<Reply, ApiError> {
    let (group, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match (group, tail) {
        ("self", "") => {
            want(req, READ)?;
            acl(app, req, "agent:read", &app.config.node_name)?;
            let c = &app.config;
            Ok(Reply::json(json!({
                "Config": {
                    "Datacenter": c.datacenter,
                    "PrimaryDatacenter": c.datacenter,
                    "NodeName": c.node_name,
                    "NodeID": app.node_id,
                    "Revision": "test-double",
                    "Server": c.server,
                    "Version": "1.20.0-consul-test-double",
                    "BuildDate": "2026-01-01T00:00:00Z",
                },
                "DebugConfig": {
                    "SessionTTLMin": format_duration(c.session_ttl_min_ns),
                    "ACLsEnabled": c.acl.enabled,
                },
                "Coord": null,
                "Member": {
                    "Name": c.node_name, "Addr": c.bind_addr, "Port": 8301,
                    "Tags": {"dc": c.datacenter, "role": if c.server { "consul" } else { "node" }, "id": app.node_id},
                    "Status": 1,
                },
                "Meta": {"consul-network-segment": ""},
                "Stats": {},
                "xDS": {},
            })))
        }
        ("members", "") => {
            want(req, READ)?;
            let c = &app.config;
            Ok(Reply::json(json!([{"Name": c.node_name, "Addr": c.bind_addr, "Port": 8301,
                "Tags": {"dc": c.datacenter}, "Status": 1}])))
        }
        ("services", "") => {
            want(req, READ)?;
            acl(app, req, "service:read", "")?;
            Ok(Reply::json(app.read(|s| {
                Value::Object(s.p.services.values().map(|x| (x.id.clone(), agent_service_json(app, x))).collect())
            })))
        }
        ("service", "register") => {
            want(req, WRITE)?;
            register_service(app, req)
        }
        ("service", t) if t.starts_with("deregister/") => {
            want(req, WRITE)?;
            let id = &t["deregister/".len()..];
            let name = app.read(|s| s.p.services.get(id).map(|x| x.name.clone()));
            let Some(name) = name else {
                return Err(ApiError::new(
                    404,
                    format!("Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."),
                ));
            };
            acl(app, req, "service:write", &name)?;
            app.mutate(|s, now| s.deregister_service(id, now));
            Ok(Reply::json(Value::Null).with_empty())
        }
        ("service", id) if !id.is_empty() => {
            want(req, READ)?;
            acl(app, req, "service:read", id)?;
            match app.read(|s| s.p.services.get(id).map(|x| agent_service_json(app, x))) {
                Some(v) => Ok(Reply::json(v)),
                None => Err(ApiError::new(404, format!("unknown service ID: {id}"))),
            }
        }
        ("checks", "") => {
            want(req, READ)?;
            acl(app, req, "node:read", &app.config.node_name)?;
            Ok(Reply::json(app.read(|s| {
                let mut m = Map::new();
                m.insert(SERF_CHECK.into(), check_json(app, s, &serf_check()));
                for c in s.p.checks.values() {
                    m.insert(c.id.clone(), check_json(app, s, c));
                }
                Value::Object(m)
            })))
        }
        ("check", "register") => {
            want(req, WRITE)?;
            acl(app, req, "node:write", &app.config.node_name)?;
            let b = req.json_body()?;
            let c = parse_check(&b, "", "", "")?.ok_or_else(|| ApiError::new(400, "Missing check name"))?;
            let c = Check { id: if c.id.is_empty() { c.name.clone() } else { c.id }, ..c };
            app.mutate(|s, now| s.register_check(c, now))?;
            Ok(Reply::json(Value::Null).with_empty())
        }
        ("check", t) => {
            want(req, WRITE)?;
            acl(app, req, "node:write", &app.config.node_name)?;
            let (op, id) = t.split_once('/').unwrap_or((t, ""));
            let exists = app.read(|s| s.p.checks.get(id).map(|c| matches!(c.kind, CheckKind::Ttl { .. })));
            if op == "deregister" {
                if exists.is_none() {
                    return Err(ApiError::new(
                        404,
                        format!("Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."),
                    ));
                }
                app.mutate(|s, now| s.deregister_check(id, now));
                return Ok(Reply::json(Value::Null).with_empty());
            }
            let (status, output) = match op {
                "pass" => ("passing".to_string(), req.q("note").unwrap_or_default().to_string()),
                "warn" => ("warning".to_string(), req.q("note").unwrap_or_default().to_string()),
                "fail" => ("critical".to_string(), req.q("note").unwrap_or_default().to_string()),
                "update" => {
                    let b = req.json_body()?;
                    let st = field_str(&b, "Status")?.unwrap_or_default();
                    if !["passing", "warning", "critical"].contains(&st.as_str()) {
                        return Err(ApiError::new(400, format!("Invalid check status: {st:?}")));
                    }
                    (st, field_str(&b, "Output")?.unwrap_or_default())
                }
                _ => return Err(ApiError::new(404, format!("404 page not found: /v1/agent/check/{t}"))),
            };
            match exists {
                None => Err(ApiError::new(
                    404,
                    format!("Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."),
                )),
                Some(false) => Err(ApiError::new(500, format!("CheckID {id:?} does not have associated TTL"))),
                Some(true) => {
                    app.mutate(|s, now| s.set_check_status(id, &status, &output, now));
                    Ok(Reply::json(Value::Null).with_empty())
                }
            }
        }
        _ => Err(ApiError::new(404, format!("404 page not found: /v1/agent/{rest}"))),
    }
}

fn tags_match(req: &Req, tags: &[String]) -> bool {
    req.query.iter().filter(|(k, _)| k == "tag").all(|(_, v)| v.as_ref().is_some_and(|t| tags.contains(t)))
}

async fn catalog(app: &Arc<App>, req: &Req, rest: &str) -> Result<Reply, ApiError> {
    want(req, READ)?;
    let (op, name) = rest.split_once('/').unwrap_or((rest, ""));
    let name = name.to_string();
    match op {
        "datacenters" => Ok(Reply::json(json!([app.config.datacenter]))),
        "nodes" => {
            acl(app, req, "node:read", "")?;
            blocking(app, req, |s| Reply::indexed(200, json!([node_json(app)]), s.p.catalog_index.max(1))).await
        }
        "services" => {
            acl(app, req, "service:read", "")?;
            blocking(app, req, |s| {
                let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
                m.insert("consul".into(), Vec::new());
                for x in s.p.services.values() {
                    let tags = m.entry(x.name.clone()).or_default();
                    for t in &x.tags {
                        if !tags.contains(t) {
                            tags.push(t.clone());
                        }
                    }
                }
                Reply::indexed(200, json!(m), s.p.catalog_index.max(1))
            })
            .await
        }
        "service" => {
            acl(app, req, "service:read", &name)?;
            blocking(app, req, |s| {
                let node = node_json(app);
                let list: Vec<Value> =
                    s.p.services
                        .values()
                        .filter(|x| x.name == name && tags_match(req, &x.tags))
                        .map(|x| {
                            json!({
                                "ID": app.node_id,
                                "Node": app.config.node_name,
                                "Address": app.config.bind_addr,
                                "Datacenter": app.config.datacenter,
                                "TaggedAddresses": node["TaggedAddresses"],
                                "NodeMeta": node["Meta"],
                                "ServiceKind": "",
                                "ServiceID": x.id,
                                "ServiceName": x.name,
                                "ServiceTags": x.tags,
                                "ServiceAddress": x.address,
                                "ServiceWeights": {"Passing": 1, "Warning": 1},
                                "ServiceMeta": x.meta,
                                "ServicePort": x.port,
                                "ServiceEnableTagOverride": x.enable_tag_override,
                                "CreateIndex": x.create_index,
                                "ModifyIndex": x.modify_index,
                            })
                        })
                        .collect();
                Reply::indexed(200, Value::Array(list), s.p.catalog_index.max(1))
            })
            .await
        }
        _ => Err(ApiError::new(404, format!("404 page not found: /v1/catalog/{rest}"))),
    }
}

async fn health(app: &Arc<App>, req: &Req, rest: &str) -> Result<Reply, ApiError> {
    want(req, READ)?;
    let (op, name) = rest.split_once('/').unwrap_or((rest, ""));
    let name = name.to_string();
    match op {
        "service" => {
            acl(app, req, "service:read", &name)?;
            let passing = req.q("passing").is_some_and(|v| v != "false" && v != "0");
            blocking(app, req, |s| {
                let serf = serf_check();
                let list: Vec<Value> =
                    s.p.services
                        .values()
                        .filter(|x| x.name == name && tags_match(req, &x.tags))
                        .filter_map(|x| {
                            let checks: Vec<&Check> = std::iter::once(&serf)
                                .chain(s.p.checks.values().filter(|c| c.service_id == x.id))
                                .collect();
                            if passing && checks.iter().any(|c| c.status != "passing") {
                                return None;
                            }
                            Some(json!({
                                "Node": node_json(app),
                                "Service": agent_service_json(app, x),
                                "Checks": checks.iter().map(|c| check_json(app, s, c)).collect::<Vec<_>>(),
                            }))
                        })
                        .collect();
                Reply::indexed(200, Value::Array(list), s.p.catalog_index.max(1))
            })
            .await
        }
        "checks" => {
            acl(app, req, "service:read", &name)?;
            blocking(app, req, |s| {
                let list: Vec<Value> =
                    s.p.checks
                        .values()
                        .filter(|c| s.p.services.get(&c.service_id).is_some_and(|x| x.name == name))
                        .map(|c| check_json(app, s, c))
                        .collect();
                Reply::indexed(200, Value::Array(list), s.p.catalog_index.max(1))
            })
            .await
        }
        "node" => {
            acl(app, req, "node:read", &name)?;
            blocking(app, req, |s| {
                let list: Vec<Value> = if name == app.config.node_name {
                    std::iter::once(check_json(app, s, &serf_check()))
                        .chain(s.p.checks.values().map(|c| check_json(app, s, c)))
                        .collect()
                } else {
                    Vec::new()
                };
                Reply::indexed(200, Value::Array(list), s.p.catalog_index.max(1))
            })
            .await
        }
        _ => Err(ApiError::new(404, format!("404 page not found: /v1/health/{rest}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn call(port: u16, method: &str, path: &str, body: &str) -> (u16, Option<u64>, String) {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let index = head.lines().find_map(|l| l.strip_prefix("x-consul-index: ")).map(|v| v.trim().parse().unwrap());
        (status, index, body.to_string())
    }

    async fn start() -> (u16, PathBuf) {
        let dir = std::env::temp_dir().join(format!("ctd-server-{}-{}", std::process::id(), crate::util::uuid()));
        let config = Config { data_dir: Some(dir.clone()), node_name: "n1".into(), ..Config::default() };
        let app = App::open(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve_on(app, listener));
        (port, dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_reads_table() {
        let (port, dir) = start().await;
        assert_eq!(call(port, "PUT", "/v1/kv/p/a", "1").await.2, "true");
        assert_eq!(call(port, "PUT", "/v1/kv/q", "1").await.2, "true");
        // (watched path, write that must wake it (None: timeout), status once answered)
        type Write = Option<(&'static str, &'static str)>;
        let cases: &[(&str, Write, u16)] = &[
            ("/v1/kv/p/a", None, 200),
            ("/v1/kv/p/a", Some(("PUT", "/v1/kv/p/a")), 200),
            ("/v1/kv/p/?recurse", Some(("PUT", "/v1/kv/p/b")), 200),
            ("/v1/kv/p/?keys", Some(("DELETE", "/v1/kv/p/b")), 200),
            ("/v1/kv/p/a", Some(("DELETE", "/v1/kv/p/a")), 404),
            // A missing key reads the KV table index: any KV write wakes it.
            ("/v1/kv/missing", Some(("PUT", "/v1/kv/other")), 404),
        ];
        for (watched, write, status) in cases {
            let (_, before, _) = call(port, "GET", watched, "").await;
            let before = before.unwrap();
            let path = format!("{watched}{}index={before}&wait=1s", if watched.contains('?') { "&" } else { "?" });
            let waiter = tokio::spawn(async move { call(port, "GET", &path, "").await });
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Some((m, p)) = write {
                call(port, m, p, "x").await;
            }
            let (got_status, after, _) = waiter.await.unwrap();
            let after = after.unwrap();
            assert_eq!(got_status, *status, "{watched} after {write:?}");
            match write {
                None => assert_eq!(after, before, "a timeout returns the same index ({watched})"),
                Some(_) => assert!(after > before, "{watched} woke with a newer index after {write:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
