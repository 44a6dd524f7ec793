//! A real standalone ZooKeeper for one test (the Debian `zookeeper`
//! package's jar, run with java directly as the test user): its own free
//! client port and data directory in a [`Staging`] area, killed when
//! dropped, able to stop and come back on the same port and data, and to
//! freeze (SIGSTOP). Plus [`RawZk`], a raw client to look behind a plugin's
//! back, and [`ZooKeeperFixture`], the conformance suite's view of the
//! `zookeeper` plugin.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use palisade_plugin_api::{Dcs, DcsParams, DcsTiming};
use palisade_test_support::{command_as_test_user, free_port, ProcessGuard, ServerProcess, Staging};
use zookeeper_client as zk;

use crate::conformance::DcsFixture;
use crate::plugins::PluginCluster;

/// The jars of the Debian package (`PALISADE_ZOOKEEPER_CLASSPATH` to
/// override): the server, whose manifest names most of its dependencies, a
/// logging backend so that its log says something, and Netty's codec and
/// resolver, missing from the manifest, for the TLS port.
const JARS: [&str; 5] = [
    "zookeeper.jar",
    "slf4j-simple.jar",
    "netty-codec.jar",
    "netty-resolver.jar",
    "netty-transport-native-unix-common.jar",
];

/// The server's class path.
pub fn zookeeper_classpath() -> String {
    std::env::var("PALISADE_ZOOKEEPER_CLASSPATH")
        .unwrap_or_else(|_| JARS.iter().map(|j| format!("/usr/share/java/{j}")).collect::<Vec<_>>().join(":"))
}

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Certificate files of a ZooKeeper started with TLS: the CA that signed
/// the server's and the client's certificates (valid for 127.0.0.1), and
/// the client's certificate and key (PEM).
#[derive(Clone, Debug)]
pub struct ZooKeeperTls {
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The TLS client port (the plain one stays open for the raw client).
    pub secure_port: u16,
}

pub struct ZooKeeperServer {
    staging: Staging,
    name: String,
    port: u16,
    tls: Option<ZooKeeperTls>,
    process: ServerProcess,
    starts: u32,
}

impl ZooKeeperServer {
    /// Start a fresh ZooKeeper and wait until it answers `ruok`; panics
    /// (with its log) when it does not.
    pub fn start(label: &str) -> Self {
        Self::start_with(label, None)
    }

    /// Like [`ZooKeeperServer::start`], plus a TLS client port that
    /// requires a client certificate (see [`ZooKeeperServer::tls`]).
    pub fn start_tls(label: &str) -> Self {
        Self::start_with(label, Some("IP:127.0.0.1,DNS:localhost"))
    }

    /// Like [`ZooKeeperServer::start_tls`], the server's certificate
    /// naming `alt_names` (a `subjectAltName` value such as
    /// `DNS:zk.example.test`) instead of 127.0.0.1: a certificate that
    /// does not match the host the clients connect to.
    pub fn start_tls_named(label: &str, alt_names: &str) -> Self {
        Self::start_with(label, Some(alt_names))
    }

    /// `tls`: the TLS port too, the server's certificate naming these
    /// alternative names.
    fn start_with(label: &str, tls: Option<&str>) -> Self {
        let staging = Staging::new(&format!("zookeeper-{label}"));
        let mut server = ZooKeeperServer {
            staging,
            name: format!("zookeeper-{label}"),
            port: free_port(),
            tls: None,
            process: ServerProcess::default(),
            starts: 0,
        };
        let data = server.staging.dir("data", 0o700);
        // Sessions from 1 s to 2 min: tests use short ttls, clusters 30 s.
        let config = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             minSessionTimeout=1000\nmaxSessionTimeout=120000\nadmin.enableServer=false\n\
             4lw.commands.whitelist=ruok,srvr,stat,cons\nmaxClientCnxns=0\n",
            data.display(),
            server.port
        );
        let mut config = config;
        if let Some(alt_names) = tls {
            let dir = server.staging.dir("tls", 0o755);
            crate::certs::ca(&dir, "zk-ca");
            let (server_crt, server_key) = crate::certs::leaf_for(&dir, "zk-ca", "zk-server", alt_names);
            let (client_cert, client_key) = crate::certs::leaf(&dir, "zk-ca", "zk-client");
            // ZooKeeper's PEM key store: the key and the certificate in one file.
            let pem = [&server_key, &server_crt]
                .iter()
                .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
                .collect::<String>();
            let keystore = server.staging.write("tls/zk-server.pem", &pem, 0o600);
            let secure_port = free_port();
            config.push_str(&format!(
                "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\nsecureClientPort={secure_port}\n\
                 secureClientPortAddress=127.0.0.1\nssl.keyStore.location={}\nssl.keyStore.type=PEM\n\
                 ssl.trustStore.location={}\nssl.trustStore.type=PEM\nssl.clientAuth=need\n",
                keystore.display(),
                dir.join("zk-ca.crt").display()
            ));
            server.tls = Some(ZooKeeperTls { ca: dir.join("zk-ca.crt"), client_cert, client_key, secure_port });
        }
        server.staging.write("zoo.cfg", &config, 0o644);
        server.start_again();
        server
    }

    /// The TLS files and port, for a server from [`ZooKeeperServer::start_tls`].
    pub fn tls(&self) -> Option<&ZooKeeperTls> {
        self.tls.as_ref()
    }

    /// `127.0.0.1:<client port>`, the form `zookeeper.hosts` takes.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn log_path(&self) -> PathBuf {
        self.staging.path().join("zookeeper.log")
    }

    /// What ZooKeeper wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Start ZooKeeper again after [`ZooKeeperServer::stop`] (same port,
    /// same data) and wait until it answers.
    pub fn start_again(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log_path().display()));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("dup the ZooKeeper log: {e}"));
        let mut cmd = command_as_test_user("java");
        cmd.arg("-Xmx256m")
            .arg("-XX:+UseSerialGC")
            .arg("-XX:TieredStopAtLevel=1")
            .arg("-Dzookeeper.admin.enableServer=false")
            .arg("-Dorg.slf4j.simpleLogger.showDateTime=true")
            .arg("-cp")
            .arg(zookeeper_classpath())
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.staging.path().join("zoo.cfg"))
            .current_dir(self.staging.path())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let guard = ProcessGuard::spawn(&self.name, cmd).unwrap_or_else(|e| panic!("start ZooKeeper (java): {e}"));
        self.process.start(guard);
        let port = self.port;
        if !self.process.wait_up(START_TIMEOUT, || four_letter(port, "ruok").is_some_and(|a| a == "imok")) {
            panic!("ZooKeeper did not come up on port {port} (start #{}):\n{}", self.starts, self.log());
        }
    }

    /// Stop ZooKeeper (SIGTERM, then SIGKILL); the data stays for `start_again`.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Kill ZooKeeper with SIGKILL; the data stays for `start_again`.
    pub fn kill(&mut self) {
        self.process.kill9();
    }

    /// Freeze ZooKeeper (SIGSTOP): it keeps its sockets but answers nothing.
    pub fn freeze(&self) {
        self.process.freeze();
    }

    /// Undo [`ZooKeeperServer::freeze`].
    pub fn thaw(&self) {
        self.process.thaw();
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// A raw client of this ZooKeeper, without authentication.
    pub fn raw(&self) -> RawZk {
        RawZk::connect(&self.host_port(), &[])
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Send a four-letter command (`ruok`, `srvr`, `cons`) and read the answer.
pub fn four_letter(port: u16, command: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    s.write_all(command.as_bytes()).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// One znode as ZooKeeper holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawNode {
    pub value: Vec<u8>,
    /// The data version.
    pub version: i32,
    /// The session owning it when it is ephemeral, else 0.
    pub ephemeral_owner: i64,
}

/// A blocking ZooKeeper client with its own small runtime.
pub struct RawZk {
    runtime: tokio::runtime::Runtime,
    client: zk::Client,
}

impl RawZk {
    /// Connect to `hosts`, sending each `(scheme, credential)` of `auth`.
    pub fn connect(hosts: &str, auth: &[(&str, &str)]) -> Self {
        Self::try_connect(hosts, auth, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`RawZk::connect`], giving up after `limit` with an error.
    pub fn try_connect(hosts: &str, auth: &[(&str, &str)], limit: Duration) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a runtime for the raw ZooKeeper client: {e}"))?;
        let mut connector = zk::Client::connector().with_session_timeout(Duration::from_secs(30));
        for (scheme, cred) in auth {
            connector = connector.with_auth(scheme, cred.as_bytes());
        }
        let client = runtime
            .block_on(async { tokio::time::timeout(limit, connector.connect(hosts)).await })
            .map_err(|_| format!("connect to ZooKeeper at {hosts}: timed out"))?
            .map_err(|e| format!("connect to ZooKeeper at {hosts}: {e}"))?;
        Ok(RawZk { runtime, client })
    }

    /// This client's session id.
    pub fn session_id(&self) -> i64 {
        self.client.session_id().0
    }

    /// The znode at `path`, or why it could not be read (`NoAuth`...).
    pub fn try_get(&self, path: &str) -> Result<Option<RawNode>, String> {
        match self.runtime.block_on(self.client.get_data(path)) {
            Ok((value, stat)) => {
                Ok(Some(RawNode { value, version: stat.version, ephemeral_owner: stat.ephemeral_owner }))
            }
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The znode at `path`: value, data version, ephemeral owner.
    pub fn get(&self, path: &str) -> Option<RawNode> {
        self.try_get(path).unwrap_or_else(|e| panic!("get {path}: {e}"))
    }

    /// Set `path` to `value`, creating it (and its parents) as a
    /// persistent znode when it does not exist.
    pub fn put(&self, path: &str, value: &[u8]) {
        self.runtime.block_on(async {
            match self.client.set_data(path, value, None).await {
                Ok(_) => return,
                Err(zk::Error::NoNode) => {}
                Err(e) => panic!("set {path}: {e}"),
            }
            self.create_async(path, value, false).await;
        })
    }

    /// Create `path` (and its parents); ephemeral ones belong to this
    /// client's session.
    pub fn create(&self, path: &str, value: &[u8], ephemeral: bool) {
        self.runtime.block_on(self.create_async(path, value, ephemeral))
    }

    async fn create_async(&self, path: &str, value: &[u8], ephemeral: bool) {
        let mode = if ephemeral { zk::CreateMode::Ephemeral } else { zk::CreateMode::Persistent };
        if let Some(i) = path.rfind('/').filter(|i| *i > 0) {
            let dir = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            self.client.mkdir(&path[..i], &dir).await.unwrap_or_else(|e| panic!("mkdir {}: {e}", &path[..i]));
        }
        self.client
            .create(path, value, &mode.with_acls(zk::Acls::anyone_all()))
            .await
            .unwrap_or_else(|e| panic!("create {path}: {e}"));
    }

    /// The children of `path` (sorted); empty when it does not exist.
    pub fn children(&self, path: &str) -> Vec<String> {
        self.try_children(path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`RawZk::children`], with an error instead of a panic.
    pub fn try_children(&self, path: &str) -> Result<Vec<String>, String> {
        match self.runtime.block_on(self.client.list_children(path)) {
            Ok(mut c) => {
                c.sort();
                Ok(c)
            }
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(format!("children of {path}: {e}")),
        }
    }

    /// Delete `path` and everything under it (no error when it is gone).
    pub fn delete_recursive(&self, path: &str) {
        for child in self.children(path) {
            self.delete_recursive(&format!("{}/{child}", path.trim_end_matches('/')));
        }
        match self.runtime.block_on(self.client.delete(path, None)) {
            Ok(()) | Err(zk::Error::NoNode) => {}
            Err(e) => panic!("delete {path}: {e}"),
        }
    }

    /// The ACL of `path`: `(scheme, id, permission bits)` per entry.
    pub fn acl(&self, path: &str) -> Vec<(String, String, String)> {
        let (acls, _) =
            self.runtime.block_on(self.client.get_acl(path)).unwrap_or_else(|e| panic!("acl of {path}: {e}"));
        acls.iter().map(|a| (a.scheme().to_string(), a.id().to_string(), a.permission().to_string())).collect()
    }
}

/// The `zookeeper` plugin, loaded through the real loader, on a real
/// ZooKeeper of its own: the [`DcsFixture`] the conformance suite runs
/// against, and the building blocks of the ZooKeeper-specific tests.
pub struct ZooKeeperFixture {
    server: Mutex<ZooKeeperServer>,
    cluster: PluginCluster,
    raw: RawZk,
}

impl ZooKeeperFixture {
    /// A new ZooKeeper (named after `label`) and the plugin, scope `demo`
    /// in namespace `/service/`.
    pub fn start(label: &str) -> Self {
        let server = ZooKeeperServer::start(label);
        let raw = server.raw();
        ZooKeeperFixture { server: Mutex::new(server), cluster: PluginCluster::open("zookeeper"), raw }
    }

    pub fn server(&self) -> MutexGuard<'_, ZooKeeperServer> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A raw client of the same ZooKeeper.
    pub fn raw(&self) -> &RawZk {
        &self.raw
    }

    /// The `zookeeper:` section pointing at this server.
    pub fn section_json(&self) -> String {
        format!(r#"{{"hosts":["{}"]}}"#, self.server().host_port())
    }

    pub fn params(&self, member: &str, group: Option<i32>) -> DcsParams {
        self.params_with(member, group, self.section_json())
    }
}

/// The plugin and the cluster its clients are made for (`params_with`,
/// `dcs_with`, `plugin_new_dcs`, `prefix`, `scope`, `timing`...).
impl std::ops::Deref for ZooKeeperFixture {
    type Target = PluginCluster;

    fn deref(&self) -> &PluginCluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for ZooKeeperFixture {
    fn deref_mut(&mut self) -> &mut PluginCluster {
        &mut self.cluster
    }
}

impl DcsFixture for ZooKeeperFixture {
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
