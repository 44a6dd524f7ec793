//! The API client: in-cluster configuration (service-account token and
//! CA, `KUBERNETES_SERVICE_HOST`/`PORT`) or a kubeconfig, the list of API
//! servers behind the `kubernetes` Service (`bypass_api_service`), and the
//! retry loop that bounds every request by `retry_timeout`.

use std::future::Future;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use palisade_plugin_api::{sdk, PluginError, PluginResult};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::settings::Settings;

const TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const MAX_DELAY: Duration = Duration::from_secs(1);
/// Patroni refreshes the list of API servers every 10 s (less half a second).
const SERVERS_TTL: Duration = Duration::from_millis(9500);

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 409 on a write with a resourceVersion: somebody else wrote first.
    Conflict,
    /// 409 on a create: the object exists.
    AlreadyExists,
    NotFound,
    /// The API server answered with an error that retrying will not fix.
    Refused(String),
    /// Nothing (usable) came back within retry_timeout.
    Unreachable(String),
}

impl Failure {
    pub(crate) fn into_plugin_error(self, what: &str) -> PluginError {
        match self {
            Failure::Conflict => PluginError::dcs(format!("{what}: conflicting update (409)")),
            Failure::AlreadyExists => PluginError::dcs(format!("{what}: the object exists already (409)")),
            Failure::NotFound => PluginError::dcs(format!("{what}: the object does not exist (404)")),
            Failure::Refused(m) => PluginError::dcs(format!("{what}: the Kubernetes API refused the request: {m}")),
            Failure::Unreachable(m) => PluginError::dcs(format!("{what}: {m}")),
        }
    }
}

/// One attempt's outcome: retry or not.
enum Attempt {
    Retry(String),
    Stop(Failure),
}

fn classify(e: &kube::Error, retriable: &[u16]) -> Attempt {
    match e {
        kube::Error::Api(s) => match s.code {
            409 if s.reason == "AlreadyExists" => Attempt::Stop(Failure::AlreadyExists),
            409 => Attempt::Stop(Failure::Conflict),
            404 => Attempt::Stop(Failure::NotFound),
            code if retriable.contains(&code) => Attempt::Retry(format!("{code} {}: {}", s.reason, s.message)),
            code => Attempt::Stop(Failure::Refused(format!("{code} {}: {}", s.reason, s.message))),
        },
        kube::Error::SerdeError(e) => Attempt::Stop(Failure::Refused(format!("unreadable answer: {e}"))),
        other => Attempt::Retry(error_chain(other)),
    }
}

/// The error and its causes, so that a transport failure says why (kube
/// shows only "client error (Connect)" for a refused certificate).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !more.is_empty() && !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}

/// The deadline of one operation (retry_timeout from its start).
pub(crate) struct Budget {
    pub retry_timeout: Duration,
    deadline: Instant,
}

impl Budget {
    pub(crate) fn new(retry_timeout: Duration) -> Self {
        Self { retry_timeout, deadline: Instant::now() + retry_timeout }
    }
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

struct Servers {
    /// `(url, client)`, the one in use first.
    clients: Vec<(String, Client)>,
    refreshed: Option<Instant>,
    bypass: bool,
}

pub(crate) struct Connection {
    config: Config,
    pub namespace: String,
    retriable: Vec<u16>,
    servers: tokio::sync::Mutex<Servers>,
}

fn cfg_err(what: impl std::fmt::Display) -> PluginError {
    PluginError::config(format!("kubernetes: {what}"))
}

fn read_certs(path: &std::path::Path) -> PluginResult<Vec<Vec<u8>>> {
    let certs: Vec<Vec<u8>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| cfg_err(format!("cacert: cannot read '{}': {e}", path.display())))?
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect();
    if certs.is_empty() {
        return Err(cfg_err(format!("cacert: no certificate in '{}'", path.display())));
    }
    Ok(certs)
}

fn in_cluster_available() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    set("KUBERNETES_SERVICE_HOST") && set("KUBERNETES_SERVICE_PORT") && std::path::Path::new(TOKEN_FILE).is_file()
}

/// Patroni's order: the in-cluster configuration when the service
/// environment and token are there (and no `kubeconfig` is set), else the
/// kubeconfig (the `kubeconfig` file, else `KUBECONFIG` or
/// `~/.kube/config`) with `context` (default: `kind-kind` when the file
/// has it, as Patroni, else the file's current context).
fn load_config(settings: &Settings) -> PluginResult<Config> {
    let mut config = if settings.kubeconfig.is_none() && in_cluster_available() {
        let mut c = Config::incluster_env().map_err(|e| cfg_err(format!("in-cluster configuration: {e}")))?;
        if let Some(ca) = &settings.cacert {
            c.root_cert = Some(read_certs(ca)?);
            c.root_cert_file = Some(ca.clone());
        }
        c
    } else {
        let read = match &settings.kubeconfig {
            Some(path) => Kubeconfig::read_from(path)
                .map_err(|e| cfg_err(format!("kubeconfig: cannot read '{}': {e}", path.display())))?,
            None => Kubeconfig::read().map_err(|e| {
            cfg_err(format!(
                "not running in a Pod (no KUBERNETES_SERVICE_HOST/PORT and service-account token) and no usable kubeconfig: {e}"
            ))
            })?,
        };
        let kubeconfig = read;
        let context = settings
            .context
            .clone()
            .or_else(|| kubeconfig.contexts.iter().any(|c| c.name == "kind-kind").then(|| "kind-kind".to_string()));
        if let Some(ctx) = &context {
            if !kubeconfig.contexts.iter().any(|c| &c.name == ctx) {
                return Err(cfg_err(format!("context: the kubeconfig has no context '{ctx}'")));
            }
        }
        let options = KubeConfigOptions { context, ..Default::default() };
        let mut c = sdk::runtime()
            .block_on(Config::from_custom_kubeconfig(kubeconfig, &options))
            .map_err(|e| cfg_err(format!("kubeconfig: {e}")))?;
        if let Some(proxy) = &c.proxy_url {
            // The client stack is built here without a proxy connector.
            tracing::warn!(
                "kubeconfig: the cluster's proxy-url {proxy} is not used: palisade connects to the API server directly"
            );
        }
        if let Some(ca) = &settings.cacert {
            c.root_cert = Some(read_certs(ca)?);
        }
        c
    };
    // Retries are ours (retriable_http_codes, bounded by retry_timeout).
    config.default_retry = false;
    config.default_namespace = settings.namespace.clone();
    Ok(config)
}

/// kube's default stack less its trace layer (which logs every failed
/// request at ERROR) and its retry layer (ours is `retriable_http_codes`
/// within `retry_timeout`).
fn client_for(config: Config) -> Result<Client, String> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use kube::client::ConfigExt;
    // The connector's resolver and pool need the runtime.
    let _guard = sdk::runtime().enter();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let https = config.rustls_https_connector_with_connector(http).map_err(|e| e.to_string())?;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(|e| e.to_string())?)
        .layer(config.extra_headers_layer().map_err(|e| e.to_string())?)
        .map_err(|e: hyper_util::client::legacy::Error| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
        .service(hyper);
    Ok(Client::new(service, config.default_namespace.clone()))
}

impl Connection {
    pub(crate) fn new(settings: &Settings) -> PluginResult<Self> {
        let config = load_config(settings)?;
        let url = config.cluster_url.to_string();
        let client =
            client_for(config.clone()).map_err(|e| cfg_err(format!("cannot set up a client for {url}: {e}")))?;
        Ok(Self {
            config,
            namespace: settings.namespace.clone(),
            retriable: settings.retriable_http_codes.clone(),
            servers: tokio::sync::Mutex::new(Servers {
                clients: vec![(url, client)],
                refreshed: None,
                bypass: settings.bypass_api_service,
            }),
        })
    }

    /// The configured API server (for messages).
    pub(crate) fn server(&self) -> String {
        self.config.cluster_url.to_string()
    }

    pub(crate) fn api(client: Client, namespace: &str, ar: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(client, namespace, ar)
    }

    /// `bypass_api_service`: the addresses behind the `kubernetes` Service
    /// (Endpoints `default/kubernetes`, port `https`/TCP), each reached
    /// directly with the configured server's name for TLS verification.
    async fn refresh_servers(&self, servers: &mut Servers, attempt: Duration) {
        if !servers.bypass || servers.refreshed.is_some_and(|t| t.elapsed() < SERVERS_TTL) {
            return;
        }
        servers.refreshed = Some(Instant::now());
        let Some((_, client)) = servers.clients.first().cloned() else {
            return;
        };
        let ar = ApiResource::erase::<k8s_openapi::api::core::v1::Endpoints>(&());
        let api = Self::api(client, "default", &ar);
        let found = match tokio::time::timeout(attempt, api.get("kubernetes")).await {
            Ok(Ok(e)) => e,
            Ok(Err(kube::Error::Api(s))) if s.code == 403 => {
                tracing::warn!(
                    "Kubernetes RBAC doesn't allow GET access to the 'kubernetes' endpoint in the 'default' namespace. Disabling 'bypass_api_service'."
                );
                servers.bypass = false;
                return;
            }
            Ok(Err(e)) => {
                tracing::error!("Failed to get \"kubernetes\" endpoint from {}: {e}", self.server());
                return;
            }
            Err(_) => return,
        };
        let mut urls = Vec::new();
        for subset in found.data.get("subsets").and_then(|s| s.as_array()).into_iter().flatten() {
            let port = subset.get("ports").and_then(|p| p.as_array()).into_iter().flatten().find(|p| {
                p.get("name").and_then(|n| n.as_str()) == Some("https")
                    && p.get("protocol").and_then(|n| n.as_str()).unwrap_or("TCP") == "TCP"
            });
            let Some(port) = port.and_then(|p| p.get("port")).and_then(|p| p.as_u64()) else {
                continue;
            };
            for a in subset.get("addresses").and_then(|a| a.as_array()).into_iter().flatten() {
                if let Some(ip) = a.get("ip").and_then(|i| i.as_str()) {
                    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
                    urls.push(format!("https://{host}:{port}"));
                }
            }
        }
        if urls.is_empty() {
            return;
        }
        let server_name =
            self.config.tls_server_name.clone().or_else(|| self.config.cluster_url.host().map(str::to_string));
        let mut clients = Vec::new();
        for url in urls {
            let Ok(uri) = url.parse::<http::Uri>() else { continue };
            let mut c = self.config.clone();
            c.cluster_url = uri;
            c.tls_server_name = server_name.clone();
            match client_for(c) {
                Ok(client) => clients.push((url, client)),
                Err(e) => tracing::warn!("cannot set up a client for {url}: {e}"),
            }
        }
        if !clients.is_empty() && clients.iter().map(|c| &c.0).ne(servers.clients.iter().map(|c| &c.0)) {
            tracing::info!("Selected new K8s API server endpoint {}", clients[0].0);
            servers.clients = clients;
        }
    }

    /// A client for the next attempt (the current API server).
    async fn client(&self, attempt: Duration) -> Option<(String, Client)> {
        let mut servers = self.servers.lock().await;
        self.refresh_servers(&mut servers, attempt).await;
        servers.clients.first().cloned()
    }

    /// After a failed attempt: try the next API server next time.
    async fn rotate(&self) {
        let mut servers = self.servers.lock().await;
        if servers.clients.len() > 1 {
            servers.clients.rotate_left(1);
            tracing::info!("Selected new K8s API server endpoint {}", servers.clients[0].0);
        }
    }

    /// Run `op`, retrying retriable answers and transport errors with a
    /// growing pause (at most a second) until `budget` runs out.
    pub(crate) async fn call<T, F, Fut>(&self, budget: &Budget, mut op: F) -> Result<T, Failure>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut last = String::from("no attempt was made");
        let mut server = self.server();
        loop {
            let attempt = budget.remaining();
            if attempt.is_zero() {
                break;
            }
            let Some((url, client)) = self.client(attempt).await else {
                break;
            };
            server = url;
            match tokio::time::timeout(attempt, op(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => match classify(&e, &self.retriable) {
                    Attempt::Retry(m) => last = m,
                    Attempt::Stop(f) => return Err(f),
                },
                Err(_) => last = format!("no answer within {attempt:?}"),
            }
            tracing::debug!("Kubernetes API request failed, will retry: {last}");
            self.rotate().await;
            let pause = delay.min(budget.remaining());
            if pause.is_zero() {
                break;
            }
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
        Err(Failure::Unreachable(format!(
            "the Kubernetes API server {server} is not reachable within retry_timeout ({:?}): {last}",
            budget.retry_timeout
        )))
    }

    /// One client without retries (the watch).
    pub(crate) async fn current(&self) -> Option<Client> {
        self.client(Duration::from_secs(2)).await.map(|c| c.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        let mut s = kube::core::Status::failure("m", reason);
        s.code = code;
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn classification() {
        let r = [429, 500, 503, 504];
        assert!(matches!(classify(&api_error(409, "Conflict"), &r), Attempt::Stop(Failure::Conflict)));
        assert!(matches!(classify(&api_error(409, "AlreadyExists"), &r), Attempt::Stop(Failure::AlreadyExists)));
        assert!(matches!(classify(&api_error(404, "NotFound"), &r), Attempt::Stop(Failure::NotFound)));
        assert!(matches!(classify(&api_error(503, "ServiceUnavailable"), &r), Attempt::Retry(_)));
        assert!(matches!(classify(&api_error(403, "Forbidden"), &r), Attempt::Stop(Failure::Refused(_))));
        assert!(matches!(classify(&api_error(403, "Forbidden"), &[403]), Attempt::Retry(_)));
        let e = Failure::Unreachable("the Kubernetes API server https://x:1/ is not reachable".into())
            .into_plugin_error("get_cluster");
        assert_eq!(e.kind, palisade_plugin_api::ErrorKind::DcsUnavailable);
        assert!(e.message.contains("https://x:1/"), "{}", e.message);
    }
}
