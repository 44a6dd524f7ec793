//! A test double of the Kubernetes API server — not Kubernetes. It serves,
//! over plain HTTP on 127.0.0.1, the part of the API that Patroni's
//! Kubernetes DCS and Palisade's `dcs-kubernetes` plugin use:
//!
//! - core/v1 ConfigMaps, Endpoints, Pods and Services and
//!   coordination.k8s.io/v1 Leases, namespaced: get, list, create,
//!   replace, patch (merge, strategic merge, JSON patch), delete and
//!   delete-collection, watch;
//! - one global `resourceVersion` counter, optimistic concurrency (409
//!   Conflict), `Status` objects on errors, label and field selectors;
//! - namespaces that exist as soon as they are named, discovery
//!   (`/api`, `/apis`, `/version`);
//! - bearer-token authentication, with a kubeconfig written for clients;
//! - write-through persistence in a data directory, so that a SIGKILLed
//!   server started again on the same port keeps its objects.
//!
//! There are no controllers, kubelet, admission or RBAC: objects change
//! only when a client changes them (a pod's `status` is what its creator
//! wrote).

pub mod patch;
pub mod selector;
pub mod server;
pub mod store;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How to run the double.
#[derive(Clone, Debug)]
pub struct Options {
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Where to write the kubeconfig for clients.
    pub kubeconfig: Option<PathBuf>,
    /// Where objects are kept (write-through); none: in memory only.
    pub data_dir: Option<PathBuf>,
    /// The bearer token clients must send; default: the one kept in the
    /// data directory, or a new random one.
    pub token: Option<String>,
    /// How many changes watches can replay (older resourceVersions get 410).
    pub watch_history: usize,
    /// How often a watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub bookmark_interval: std::time::Duration,
    /// Serve HTTPS with a certificate from a CA made in the data directory
    /// (`tls/ca.crt`, named in the kubeconfig).
    pub tls: bool,
}

/// The name of the cluster, user and context in the kubeconfig.
pub const CONTEXT: &str = "kubernetes-test-double";

fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

fn token(opts: &Options) -> Result<String, String> {
    if let Some(t) = &opts.token {
        return Ok(t.clone());
    }
    let Some(dir) = &opts.data_dir else { return Ok(random_token()) };
    let file = dir.join("token");
    match std::fs::read_to_string(&file) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => {
            let t = random_token();
            std::fs::write(&file, &t).map_err(|e| format!("{}: {e}", file.display()))?;
            Ok(t)
        }
    }
}

/// The kubeconfig text for a server on `port` with `token`; over HTTPS
/// when `ca` (the CA file to trust) is given.
pub fn kubeconfig(port: u16, token: &str, ca: Option<&Path>) -> String {
    let (scheme, ca) = match ca {
        Some(ca) => ("https", format!("    certificate-authority: {}\n", ca.display())),
        None => ("http", String::new()),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: {scheme}://127.0.0.1:{port}\n{ca}\
         users:\n- name: {CONTEXT}\n  user:\n    token: {token}\ncontexts:\n- name: {CONTEXT}\n  context:\n    \
         cluster: {CONTEXT}\n    user: {CONTEXT}\n    namespace: default\ncurrent-context: {CONTEXT}\npreferences: {{}}\n"
    )
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The `kubernetes` Service and Endpoints in `default` that every cluster
/// has (the API server's own addresses, which Patroni's
/// `bypass_api_service` reads), pointing at this server on `port`.
fn api_service(store: &mut store::Store, port: u16) -> Result<(), store::ApiError> {
    use serde_json::json;
    let find = |plural| store::RESOURCES.iter().find(|r| r.plural == plural);
    let (Some(endpoints), Some(services)) = (find("endpoints"), find("services")) else { return Ok(()) };
    let labels = json!({"component": "apiserver", "provider": "kubernetes"});
    let ep = json!({"metadata": {"name": "kubernetes", "labels": labels},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]});
    store.update(endpoints, "default", "kubernetes", ep, false, true)?;
    let svc = json!({"metadata": {"name": "kubernetes", "labels": labels},
        "spec": {"clusterIP": "10.96.0.1", "type": "ClusterIP",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}});
    match store.get(services, "default", "kubernetes") {
        Ok(_) => store.update(services, "default", "kubernetes", svc, false, false)?,
        Err(_) => store.create(services, "default", svc, false)?,
    };
    Ok(())
}

/// Bind, write the kubeconfig, and serve until the process ends.
pub async fn run(opts: Options) -> Result<(), String> {
    if let Some(dir) = &opts.data_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut store = store::Store::open(opts.data_dir.as_deref(), opts.watch_history)?;
    let token = token(&opts)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .map_err(|e| format!("listen on 127.0.0.1:{}: {e}", opts.port))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let tls = match (opts.tls, &opts.data_dir) {
        (false, _) => None,
        (true, Some(dir)) => Some(tls::files(&dir.join("tls"))?),
        (true, None) => return Err("--tls needs --data-dir (the CA and certificate are kept there)".into()),
    };
    if tls.is_some() {
        api_service(&mut store, port).map_err(|e| format!("the default/kubernetes objects: {}", e.message))?;
    }
    if let Some(path) = &opts.kubeconfig {
        write_file(path, &kubeconfig(port, &token, tls.as_ref().map(|t| t.ca.as_path())))?;
    }
    let shared =
        Arc::new(server::Shared { store: Mutex::new(store), token, port, bookmark_interval: opts.bookmark_interval });
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: axum::http::HeaderMap,
              body: axum::body::Bytes| { server::handle(shared.clone(), method, uri, headers, body) },
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("kubernetes-test-double (a test double, not Kubernetes) listening on {scheme}://127.0.0.1:{port}");
    match tls {
        None => axum::serve(listener, app).await.map_err(|e| e.to_string()),
        Some(files) => tls::serve(listener, app, &files).await,
    }
}
