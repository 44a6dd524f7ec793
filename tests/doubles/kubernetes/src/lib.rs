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

/// The kubeconfig text for a server on `port` with `token`.
pub fn kubeconfig(port: u16, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: http://127.0.0.1:{port}\n\
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

/// Bind, write the kubeconfig, and serve until the process ends.
pub async fn run(opts: Options) -> Result<(), String> {
    if let Some(dir) = &opts.data_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let store = store::Store::open(opts.data_dir.as_deref(), opts.watch_history)?;
    let token = token(&opts)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .map_err(|e| format!("listen on 127.0.0.1:{}: {e}", opts.port))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    if let Some(path) = &opts.kubeconfig {
        write_file(path, &kubeconfig(port, &token))?;
    }
    let shared = Arc::new(server::Shared { store: Mutex::new(store), token, port });
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: axum::http::HeaderMap,
              body: axum::body::Bytes| { server::handle(shared.clone(), method, uri, headers, body) },
    );
    println!("kubernetes-test-double (a test double, not Kubernetes) listening on http://127.0.0.1:{port}");
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
