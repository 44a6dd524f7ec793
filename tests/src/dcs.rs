//! The DCS a test cluster runs on, whatever it is: the server the harness
//! starts, the YAML section every node (Palisade or Patroni) gets, raw
//! access to the keys behind the daemons' backs, and the store's outages.
//!
//! A backend is enrolled with a [`DcsBackend`] (a `const` here, listed in
//! [`BACKENDS`]) whose `start` returns a [`TestDcs`]: a small adapter over
//! the backend's test server (`EtcdServer` for etcd3 and the etcd v2 API,
//! a ZooKeeper server for ZooKeeper and Exhibitor). The cluster-level tests
//! that hold for every DCS are written once and run per backend with
//! [`crate::dcs_tests!`], one line per backend.
//!
//! Keys are named by their full path, as Patroni lays them out in every
//! DCS: `/service/<scope>/leader`, `/service/<scope>/members/node1`...
//! ([`crate::cluster::Cluster::key`] builds them).

use std::path::Path;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::consul::ConsulDcs;
use crate::etcd::EtcdServer;
use crate::exhibitor::{ExhibitorEndpoint, ServerList};
use crate::zookeeper::{RawNode, RawZk, ZooKeeperServer};

/// What a cluster test needs from the store it runs on.
pub trait TestDcs: Send + Sync {
    /// The top-level YAML section of a node's configuration, newline
    /// terminated, e.g. `etcd3:\n  hosts: 127.0.0.1:2379\n`.
    fn yaml_section(&self) -> String;

    /// `--dcs-url` for palisadectl and patronictl, e.g.
    /// `etcd3://127.0.0.1:2379` (without a namespace).
    fn dcs_url(&self) -> String;

    /// The raw value of `key` (a full path), `None` when it is absent.
    fn get(&self, key: &str) -> Option<Vec<u8>>;

    /// Every key with a value under `prefix` (full paths, sorted), at any
    /// depth (`members/node1` included).
    fn list(&self, prefix: &str) -> Vec<(String, Vec<u8>)>;

    /// Write `value` at `key` (a full path), creating it when missing, as
    /// somebody other than the daemons would.
    fn put(&self, key: &str, value: &[u8]);

    /// Stop the store (its data stays for [`TestDcs::start_again`]).
    fn stop(&mut self);

    /// Start the store again after [`TestDcs::stop`], on the same ports and
    /// data, and wait until it answers.
    fn start_again(&mut self);

    /// Freeze the store (SIGSTOP): its sockets stay open, nothing answers.
    fn freeze(&self);

    /// Undo [`TestDcs::freeze`].
    fn thaw(&self);

    /// The etcd behind this store when the cluster speaks etcd's v3 API to
    /// it: for the tests of etcd3-only features (authentication, leases,
    /// `PATRONI_ETCD3_HOSTS`). Other adapters keep the default `None`.
    fn etcd(&self) -> Option<&EtcdServer> {
        None
    }

    /// The ZooKeeper behind this store (ZooKeeper and Exhibitor): for the
    /// tests that look at sessions and ephemeral owners. Other adapters
    /// keep the default `None`.
    fn zookeeper(&self) -> Option<&ZooKeeperDcs> {
        None
    }

    /// Environment every daemon of the cluster (and its ctl) gets, e.g.
    /// `KUBECONFIG` for Kubernetes. None by default.
    fn node_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Make what member `name` of cluster `scope` needs in the store before
    /// its daemon starts (on Kubernetes: its pod). Nothing by default.
    fn prepare_member(&self, _scope: &str, _name: &str) {}

    /// The daemons reach the store only at `host`, through relays on the
    /// store's own ports (the fault campaign's network namespaces): make
    /// the addresses the store hands out to its clients name `host`, and
    /// return the ports to relay that [`TestDcs::yaml_section`] does not
    /// show as `127.0.0.1:<port>`. Nothing by default (the section names
    /// every server).
    fn serve_through(&self, _host: std::net::Ipv4Addr) -> Vec<u16> {
        Vec::new()
    }
}

/// One DCS backend the cluster tests can run on.
#[derive(Clone, Copy, Debug)]
pub struct DcsBackend {
    /// Its name in `bench --dcs` and in test modules (`etcd3`, `etcd`,
    /// `zookeeper`, `exhibitor`): the name of the configuration section.
    pub name: &'static str,
    /// The plugin's file under the target directory.
    pub plugin_file: &'static str,
    /// The extra of the `patroni` package that brings Patroni's support
    /// for it (see [`crate::patroni::PATRONI_REQUIREMENTS`]).
    pub patroni_extra: &'static str,
    /// Start a fresh store for a test named `label`; panics with the
    /// server's log when it does not come up.
    pub start: fn(label: &str) -> Box<dyn TestDcs>,
}

impl DcsBackend {
    /// Whether its plugin is built in `target` (the benchmark runs the
    /// backends that are).
    pub fn is_built(&self, target: &Path) -> bool {
        target.join(self.plugin_file).exists()
    }
}

/// etcd's v3 API (`dcs-etcd3`).
pub const ETCD3: DcsBackend = DcsBackend {
    name: "etcd3",
    plugin_file: "libpalisade_dcs_etcd3.so",
    patroni_extra: "etcd3",
    start: |label| Box::new(Etcd3Dcs(EtcdServer::start(label))),
};

/// etcd's v2 API (`dcs-etcd`), on the same etcd (every test etcd serves v2).
pub const ETCD: DcsBackend = DcsBackend {
    name: "etcd",
    plugin_file: "libpalisade_dcs_etcd.so",
    patroni_extra: "etcd",
    start: |label| Box::new(EtcdV2Dcs(EtcdServer::start(label))),
};

/// ZooKeeper (`dcs-zookeeper`): a real standalone server.
pub const ZOOKEEPER: DcsBackend = DcsBackend {
    name: "zookeeper",
    plugin_file: "libpalisade_dcs_zookeeper.so",
    patroni_extra: "zookeeper",
    start: |label| Box::new(ZooKeeperDcs::new(ZooKeeperServer::start(label), None)),
};

/// Exhibitor (`dcs-exhibitor`): a real ZooKeeper found through the test
/// double of Exhibitor's discovery endpoint. Patroni's `exhibitor` support
/// is kazoo, its `zookeeper` extra.
pub const EXHIBITOR: DcsBackend = DcsBackend {
    name: "exhibitor",
    plugin_file: "libpalisade_dcs_exhibitor.so",
    patroni_extra: "zookeeper",
    start: |label| {
        let server = ZooKeeperServer::start(label);
        let endpoint = ExhibitorEndpoint::start(ServerList { servers: vec!["127.0.0.1".into()], port: server.port() });
        Box::new(ZooKeeperDcs::new(server, Some(endpoint)))
    },
};

/// Consul (`dcs-consul`): the Consul test double (`tests/doubles/consul`,
/// not a real agent), with `session_ttl_min` low enough for the tests'
/// short `ttl`. Every node registers its service (`register_service`), so
/// the cluster tests exercise that too.
pub const CONSUL: DcsBackend = DcsBackend {
    name: "consul",
    plugin_file: "libpalisade_dcs_consul.so",
    patroni_extra: "consul",
    start: |label| {
        Box::new(
            ConsulDcs::start_with(label, crate::consul_plugin::test_options())
                .with_section_extra("  register_service: true\n"),
        )
    },
};

/// Kubernetes (`dcs-kubernetes`) in Patroni's default mode (ConfigMaps), on
/// the Kubernetes API test double (not a real API server).
pub const KUBERNETES: DcsBackend = DcsBackend {
    name: "kubernetes",
    plugin_file: "libpalisade_dcs_kubernetes.so",
    patroni_extra: "kubernetes",
    start: |label| {
        Box::new(crate::kubernetes_plugin::KubernetesTestDcs::start(label, crate::kubernetes::Mode::ConfigMaps, false))
    },
};

/// Kubernetes with `use_endpoints: true`, on the test double.
pub const KUBERNETES_ENDPOINTS: DcsBackend = DcsBackend {
    name: "kubernetes-endpoints",
    plugin_file: "libpalisade_dcs_kubernetes.so",
    patroni_extra: "kubernetes",
    start: |label| {
        Box::new(crate::kubernetes_plugin::KubernetesTestDcs::start(label, crate::kubernetes::Mode::Endpoints, false))
    },
};

/// Kubernetes with Palisade's `leader_lease: true` (the lock on a
/// coordination.k8s.io/v1 Lease), on the test double. Patroni has no such
/// mode: no mixed clusters on it.
pub const KUBERNETES_LEASE: DcsBackend = DcsBackend {
    name: "kubernetes-lease",
    plugin_file: "libpalisade_dcs_kubernetes.so",
    patroni_extra: "kubernetes",
    start: |label| {
        Box::new(crate::kubernetes_plugin::KubernetesTestDcs::start(label, crate::kubernetes::Mode::ConfigMaps, true))
    },
};

/// Every enrolled backend, the default first.
pub const BACKENDS: &[DcsBackend] =
    &[ETCD3, ETCD, ZOOKEEPER, EXHIBITOR, CONSUL, KUBERNETES, KUBERNETES_ENDPOINTS, KUBERNETES_LEASE];

/// The backend called `name`.
pub fn backend(name: &str) -> Option<DcsBackend> {
    BACKENDS.iter().find(|b| b.name == name).copied()
}

impl Default for DcsBackend {
    fn default() -> Self {
        ETCD3
    }
}

/// etcd through its v3 API: the adapter over [`EtcdServer`].
pub struct Etcd3Dcs(pub EtcdServer);

impl TestDcs for Etcd3Dcs {
    fn yaml_section(&self) -> String {
        format!("etcd3:\n  hosts: {}\n", self.0.host_port())
    }

    fn dcs_url(&self) -> String {
        format!("etcd3://{}", self.0.host_port())
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.raw().get(key).map(|kv| kv.value)
    }

    fn list(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.0.raw().get_prefix(prefix).into_iter().map(|kv| (kv.key, kv.value)).collect()
    }

    fn put(&self, key: &str, value: &[u8]) {
        self.0.raw().put(key, value);
    }

    fn stop(&mut self) {
        self.0.stop();
    }

    fn start_again(&mut self) {
        self.0.start_again();
    }

    fn freeze(&self) {
        self.0.freeze();
    }

    fn thaw(&self) {
        self.0.thaw();
    }

    fn etcd(&self) -> Option<&EtcdServer> {
        Some(&self.0)
    }
}

/// etcd through its v2 API: the adapter over [`EtcdServer`] and its raw
/// v2 client (the v2 keyspace is separate from the v3 one).
pub struct EtcdV2Dcs(pub EtcdServer);

impl EtcdV2Dcs {
    /// Whether etcd answers at all: the raw client panics on a dead port,
    /// and a cluster test polls keys while the store is down.
    fn reachable(&self) -> bool {
        std::net::TcpStream::connect_timeout(
            &self.0.host_port().parse().expect("a socket address"),
            Duration::from_secs(1),
        )
        .is_ok()
    }
}

impl TestDcs for EtcdV2Dcs {
    fn yaml_section(&self) -> String {
        format!("etcd:\n  hosts: {}\n", self.0.host_port())
    }

    fn dcs_url(&self) -> String {
        format!("etcd://{}", self.0.host_port())
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        if !self.reachable() {
            return None;
        }
        self.0.raw_v2().get(key).map(|n| n.value)
    }

    fn list(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.0.raw_v2().get_prefix(prefix).into_iter().map(|n| (n.key, n.value)).collect()
    }

    fn put(&self, key: &str, value: &[u8]) {
        self.0.raw_v2().put(key, value);
    }

    fn stop(&mut self) {
        self.0.stop();
    }

    fn start_again(&mut self) {
        self.0.start_again();
    }

    fn freeze(&self) {
        self.0.freeze();
    }

    fn thaw(&self) {
        self.0.thaw();
    }
}

/// ZooKeeper (and, with an endpoint, Exhibitor in front of it): the adapter
/// over [`ZooKeeperServer`]. The raw client is opened on first use and
/// again after the server went away, so reads while the store is down
/// answer `None` instead of failing the test.
pub struct ZooKeeperDcs {
    server: ZooKeeperServer,
    endpoint: Option<ExhibitorEndpoint>,
    raw: Mutex<Option<RawZk>>,
}

impl ZooKeeperDcs {
    pub fn new(server: ZooKeeperServer, endpoint: Option<ExhibitorEndpoint>) -> Self {
        Self { server, endpoint, raw: Mutex::new(None) }
    }

    fn raw(&self) -> MutexGuard<'_, Option<RawZk>> {
        let mut raw = self.raw.lock().unwrap_or_else(|p| p.into_inner());
        if raw.is_none() {
            *raw = RawZk::try_connect(&self.server.host_port(), &[], Duration::from_secs(3)).ok();
        }
        raw
    }

    /// Run `f` on the raw client. A client that failed is replaced once (its
    /// connection or session may have gone with a restarted server); `None`
    /// when the server does not answer.
    fn with_raw<T>(&self, f: impl Fn(&RawZk) -> Result<T, String>) -> Option<T> {
        for _ in 0..2 {
            let mut raw = self.raw();
            match f(raw.as_ref()?) {
                Ok(v) => return Some(v),
                Err(_) => *raw = None,
            }
        }
        None
    }

    /// The ZooKeeper server (its log, its port).
    pub fn server(&self) -> &ZooKeeperServer {
        &self.server
    }

    /// The znode at `path` as ZooKeeper holds it (value, version,
    /// ephemeral owner); `None` when it is absent or the server does not
    /// answer.
    pub fn znode(&self, path: &str) -> Option<RawNode> {
        self.with_raw(|raw| raw.try_get(path)).flatten()
    }

    fn walk(raw: &RawZk, path: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let children = raw.try_children(path)?;
        if children.is_empty() {
            if let Some(node) = raw.try_get(path)? {
                out.push((path.to_string(), node.value));
            }
        }
        for child in children {
            Self::walk(raw, &format!("{}/{child}", path.trim_end_matches('/')), out)?;
        }
        Ok(())
    }
}

impl TestDcs for ZooKeeperDcs {
    fn yaml_section(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("exhibitor:\n  hosts: ['127.0.0.1']\n  port: {}\n  poll_interval: 2\n", e.port()),
            None => format!("zookeeper:\n  hosts: ['{}']\n", self.server.host_port()),
        }
    }

    fn dcs_url(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("exhibitor://127.0.0.1:{}", e.port()),
            None => format!("zookeeper://{}", self.server.host_port()),
        }
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.with_raw(|raw| raw.try_get(key)).flatten().map(|n| n.value)
    }

    fn list(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = self
            .with_raw(|raw| {
                let mut out = Vec::new();
                Self::walk(raw, prefix.trim_end_matches('/'), &mut out).map(|()| out)
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    fn put(&self, key: &str, value: &[u8]) {
        let raw = self.raw();
        raw.as_ref()
            .unwrap_or_else(|| panic!("ZooKeeper at {} does not answer", self.server.host_port()))
            .put(key, value);
    }

    /// Exhibitor: the endpoint lists `host` as the ZooKeeper server, and
    /// both the endpoint's and ZooKeeper's ports are to be relayed.
    fn serve_through(&self, host: std::net::Ipv4Addr) -> Vec<u16> {
        match &self.endpoint {
            Some(e) => {
                e.set_list(ServerList { servers: vec![host.to_string()], port: self.server.port() });
                vec![e.port(), self.server.port()]
            }
            None => Vec::new(),
        }
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

    fn zookeeper(&self) -> Option<&ZooKeeperDcs> {
        Some(self)
    }
}

/// Run the scenario functions of a test file once per backend: a module
/// named after the backend holding one `#[test]` per function, each
/// calling `super::<function>(backend)`. One line per backend:
///
/// ```ignore
/// fn bootstrap(dcs: DcsBackend) { ... }
/// fn crash(dcs: DcsBackend) { ... }
/// palisade_tests::dcs_tests!(etcd3 = palisade_tests::dcs::ETCD3; bootstrap, crash);
/// ```
///
/// A file with many scenarios lists them once in a local macro and calls
/// it per backend (see `tests/tests/ha_basics.rs`).
#[macro_export]
macro_rules! dcs_tests {
    ($module:ident = $backend:expr; $($scenario:ident),+ $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario($backend)
                }
            )+
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_is_enrolled_once_with_patronis_extra() {
        let requirement = crate::patroni::PATRONI_REQUIREMENTS[0];
        let extras = requirement.split_once('[').and_then(|(_, r)| r.split_once(']')).map(|(e, _)| e).unwrap_or("");
        for b in BACKENDS {
            assert_eq!(BACKENDS.iter().filter(|o| o.name == b.name).count(), 1, "{} enrolled twice", b.name);
            assert!(
                extras.split(',').any(|e| e == b.patroni_extra),
                "{requirement} lacks the {} extra",
                b.patroni_extra
            );
            assert_eq!(backend(b.name).map(|f| f.plugin_file), Some(b.plugin_file));
        }
        assert_eq!(DcsBackend::default().name, BACKENDS[0].name);
    }
}
