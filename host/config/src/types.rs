//! The typed configuration the daemon works with.
//!
//! Three layers, as in Patroni:
//! - [`LocalConfig`]: the YAML file (or directory of files) with the
//!   `PATRONI_*` environment applied on top;
//! - [`GlobalConfig`]: the dynamic configuration from the DCS `config` key
//!   (or `bootstrap.dcs` before the cluster exists), with Patroni's defaults;
//! - [`EffectivePostgresql`]: what PostgreSQL is actually run with, merged
//!   from both by Patroni's rules (see [`crate::effective`]).
//!
//! Every section of Patroni's configuration is accepted. Sections whose
//! feature palisade does not act on yet are kept in `raw` untouched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

/// A problem with the configuration, located by its key path
/// (`postgresql.authentication.superuser.username`, `restapi.listen`...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Something accepted but worth telling the user (a value below Patroni's
/// minimum, a deprecated spelling, a section palisade only stores...).
pub type ConfigWarning = ConfigError;

/// `host:port`, as `postgresql.listen`, `restapi.listen` and the
/// `connect_address` settings take it. `listen` may name several hosts
/// (`127.0.0.1,127.0.0.2:5432`); the first is the one to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub hosts: Vec<String>,
    pub port: u16,
}

impl HostPort {
    /// The first host (for local connections and URLs).
    pub fn host(&self) -> &str {
        self.hosts.first().map(String::as_str).unwrap_or("")
    }
}

/// The `log` section.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL` (default `INFO`).
    pub level: String,
    /// `plain` (Patroni's default layout) or `json`.
    pub format_type: String,
    /// Python logging format string (default `%(asctime)s %(levelname)s: %(message)s`).
    /// When `log.format` is a list, the default (and [`Self::format_fields`]
    /// holds the list).
    pub format: String,
    /// `log.format` given as a list of fields, as Patroni takes it for
    /// `type: json`: each field with the key it is written under
    /// (`{levelname: level}` renames `levelname`).
    pub format_fields: Option<Vec<(String, String)>>,
    /// `time.strftime` format of `asctime` (`None`: `2026-01-31 12:00:00,123`).
    pub dateformat: Option<String>,
    /// `log.static_fields`: keys added to every JSON log line.
    pub static_fields: Map<String, Value>,
    /// `log.mode`: permissions set on the log files (`None`: from the umask).
    pub mode: Option<u32>,
    /// Write logs into this directory (`patroni.log`, rotated) instead of stderr.
    pub dir: Option<PathBuf>,
    pub file_num: u32,
    pub file_size: u64,
    /// Per-logger levels (`patroni.postmaster: WARNING`).
    pub loggers: BTreeMap<String, String>,
    /// `log.deduplicate_heartbeat_logs`: at level INFO, a heartbeat line
    /// ("no action. ...") equal to the previous one is not logged again.
    pub deduplicate_heartbeat_logs: bool,
    /// `log.traceback_level`: a panic's backtrace is logged at `DEBUG`
    /// when `true`, else at `ERROR` (the default), as Patroni logs an
    /// exception's traceback.
    pub traceback_debug: bool,
}

/// Basic-auth credentials (`restapi.authentication`, `ctl.authentication`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// `restapi.verify_client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyClient {
    None,
    Optional,
    Required,
}

/// The `restapi` section.
#[derive(Clone, Debug, PartialEq)]
pub struct RestApiConfig {
    pub listen: HostPort,
    /// Defaults to `listen` when not set.
    pub connect_address: HostPort,
    pub authentication: Option<BasicAuth>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub keyfile_password: Option<String>,
    pub cafile: Option<PathBuf>,
    pub ciphers: Option<String>,
    pub verify_client: VerifyClient,
    pub allowlist: Vec<String>,
    pub allowlist_include_members: bool,
    pub http_extra_headers: BTreeMap<String, String>,
    pub https_extra_headers: BTreeMap<String, String>,
    pub request_queue_size: u32,
}

impl Default for RestApiConfig {
    /// Patroni's defaults: `127.0.0.1:8008`, no TLS, no auth, a backlog of 5.
    fn default() -> Self {
        let hp = HostPort { hosts: vec!["127.0.0.1".into()], port: 8008 };
        Self {
            listen: hp.clone(),
            connect_address: hp,
            authentication: None,
            certfile: None,
            keyfile: None,
            keyfile_password: None,
            cafile: None,
            ciphers: None,
            verify_client: VerifyClient::None,
            allowlist: Vec::new(),
            allowlist_include_members: false,
            http_extra_headers: BTreeMap::new(),
            https_extra_headers: BTreeMap::new(),
            request_queue_size: 5,
        }
    }
}

impl RestApiConfig {
    /// The URL other members reach our API at (`http://host:port/patroni`).
    pub fn api_url(&self) -> String {
        let scheme = if self.certfile.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/patroni", format_host_port(self.connect_address.host(), self.connect_address.port))
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn format_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The `ctl` section (used by palisadectl).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CtlConfig {
    pub authentication: Option<BasicAuth>,
    pub insecure: bool,
    pub cacert: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub keyfile_password: Option<String>,
}

/// Which DCS the configuration names, and its section.
#[derive(Clone, Debug, PartialEq)]
pub struct DcsSection {
    /// `etcd3`, `etcd`, `consul`, `zookeeper`, `exhibitor`, `kubernetes`, `raft`.
    pub kind: String,
    /// The section as JSON (after environment overrides).
    pub section: Map<String, Value>,
}

/// One `bootstrap.initdb` entry: `- data-checksums` or `- encoding: UTF8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitdbOption {
    Flag(String),
    KeyValue(String, String),
}

/// The `bootstrap` section.
#[derive(Clone, Debug, PartialEq)]
pub struct BootstrapConfig {
    /// Written to the DCS `config` key when this node initialises the cluster.
    pub dcs: Map<String, Value>,
    /// `initdb` (default) or the name of a custom method section.
    pub method: String,
    pub initdb: Vec<InitdbOption>,
    /// `post_bootstrap` (or the older `post_init`) script.
    pub post_bootstrap: Option<String>,
    /// Custom bootstrap method sections (`bootstrap.<method>`), as JSON.
    pub methods: Map<String, Value>,
}

/// Connection credentials of one role (`postgresql.authentication.*`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RoleAuth {
    pub username: String,
    pub password: Option<String>,
    /// `sslmode`, `sslcert`, ... `channel_binding`: only the parameters
    /// Patroni allows, passed to libpq as they are.
    pub ssl: BTreeMap<String, String>,
}

/// `postgresql.authentication`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuthenticationConfig {
    pub superuser: RoleAuth,
    pub replication: RoleAuth,
    /// The pg_rewind user; falls back to the superuser when absent.
    pub rewind: Option<RoleAuth>,
}

/// `postgresql.bin_name`: custom names of the PostgreSQL programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinNames {
    pub pg_ctl: String,
    pub initdb: String,
    pub pg_controldata: String,
    pub pg_basebackup: String,
    pub postgres: String,
    pub pg_isready: String,
    pub pg_rewind: String,
}

impl Default for BinNames {
    fn default() -> Self {
        Self {
            pg_ctl: "pg_ctl".into(),
            initdb: "initdb".into(),
            pg_controldata: "pg_controldata".into(),
            pg_basebackup: "pg_basebackup".into(),
            postgres: "postgres".into(),
            pg_isready: "pg_isready".into(),
            pg_rewind: "pg_rewind".into(),
        }
    }
}

/// The local `postgresql` section.
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresqlConfig {
    pub listen: HostPort,
    /// Defaults to the first `listen` host and the port.
    pub connect_address: HostPort,
    pub proxy_address: Option<HostPort>,
    pub data_dir: PathBuf,
    /// Defaults to `data_dir`.
    pub config_dir: PathBuf,
    /// Empty means "search PATH".
    pub bin_dir: Option<PathBuf>,
    pub bin_name: BinNames,
    /// Default `~/pgpass`, as Patroni.
    pub pgpass: PathBuf,
    pub authentication: AuthenticationConfig,
    /// `on_start`, `on_stop`, `on_restart`, `on_reload`, `on_role_change` -> command.
    pub callbacks: BTreeMap<String, String>,
    /// Default `["basebackup"]`.
    pub create_replica_methods: Vec<String>,
    /// Sections for replica methods (`postgresql.<method>`), including
    /// `basebackup` (a list or a map of pg_basebackup options), and
    /// `rewind` (pg_rewind's options, in the same forms), as JSON.
    pub replica_method_sections: Map<String, Value>,
    /// Local `postgresql.parameters` (before merging with the dynamic ones).
    pub parameters: Map<String, Value>,
    pub pg_hba: Option<Vec<String>>,
    pub pg_ident: Option<Vec<String>>,
    pub recovery_conf: Map<String, Value>,
    pub custom_conf: Option<PathBuf>,
    pub pg_ctl_timeout: Duration,
    pub use_pg_rewind: Option<bool>,
    pub remove_data_directory_on_rewind_failure: bool,
    pub remove_data_directory_on_diverged_timelines: bool,
    pub use_unix_socket: bool,
    pub use_unix_socket_repl: bool,
    pub pre_promote: Option<String>,
    pub before_stop: Option<String>,
    /// `postgresql.hooks` (a Palisade extension): per callback event, the
    /// commands to run in order.
    pub hooks: BTreeMap<String, Vec<crate::Hook>>,
}

/// The `watchdog` section.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchdogConfig {
    /// `off`, `automatic` (default) or `required`.
    pub mode: String,
    pub device: PathBuf,
    /// Seconds between the device firing and the leader key expiring
    /// (zero when `safety_margin_half_ttl`).
    pub safety_margin: Duration,
    /// `safety_margin: -1`: as Patroni, the device fires after half the ttl.
    pub safety_margin_half_ttl: bool,
    /// `default` (Linux `/dev/watchdog`) or `testing` (Patroni's test
    /// driver: the timeout goes to the device as text, for a FIFO read by
    /// a test harness). Any other name: no device is used (warned).
    pub driver: String,
}

/// The `citus` section.
#[derive(Clone, Debug, PartialEq)]
pub struct CitusConfig {
    pub group: i32,
    pub database: String,
}

/// The local configuration: YAML plus environment.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalConfig {
    pub scope: String,
    /// Normalised to start and end with `/` (default `/service/`).
    pub namespace: String,
    pub name: String,
    /// palisade's own key: where plugins are (else `PALISADE_PLUGIN_DIR`,
    /// else `../lib/palisade/plugins` next to the binary).
    pub plugin_dir: Option<PathBuf>,
    pub log: LogConfig,
    pub restapi: RestApiConfig,
    pub ctl: CtlConfig,
    /// `None` only for configurations palisadectl reads without a DCS.
    pub dcs: Option<DcsSection>,
    /// `None` when there is no `bootstrap` section (the node never initialises a cluster).
    pub bootstrap: Option<BootstrapConfig>,
    pub postgresql: PostgresqlConfig,
    pub watchdog: WatchdogConfig,
    pub tags: Map<String, Value>,
    pub citus: Option<CitusConfig>,
    /// The whole merged configuration as JSON, every section kept (for
    /// `GET /config`-style dumps, reload diffs and sections used later).
    pub raw: Map<String, Value>,
}

/// `synchronous_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynchronousMode {
    Off,
    On,
    Quorum,
}

/// The dynamic configuration (the DCS `config` key) with Patroni's
/// defaults. Built tolerantly: a bad value written by somebody else is a
/// warning and falls back to the default.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalConfig {
    pub ttl: Duration,
    pub loop_wait: Duration,
    pub retry_timeout: Duration,
    pub maximum_lag_on_failover: u64,
    pub maximum_lag_on_syncnode: i64,
    pub max_timelines_history: u32,
    pub primary_start_timeout: Duration,
    pub primary_stop_timeout: Duration,
    pub synchronous_mode: SynchronousMode,
    pub synchronous_mode_strict: bool,
    pub synchronous_node_count: u32,
    pub failsafe_mode: bool,
    pub check_timeline: bool,
    pub pause: bool,
    /// `standby_cluster`, when the section is present and valid.
    pub standby_cluster: Option<Map<String, Value>>,
    /// `postgresql.use_slots` (default true).
    pub use_slots: bool,
    /// `postgresql.use_pg_rewind` from the dynamic configuration.
    pub use_pg_rewind: bool,
    pub member_slots_ttl: Duration,
    /// The whole dynamic configuration as read.
    pub data: Map<String, Value>,
}

/// What PostgreSQL runs with: the local `postgresql` section merged over
/// the dynamic one by Patroni's rules.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectivePostgresql {
    /// All parameters for postgresql.conf, merged; the parameters Patroni
    /// controls (`max_connections`, `wal_level`...) come from the dynamic
    /// configuration only, with Patroni's defaults.
    pub parameters: Map<String, Value>,
    pub pg_hba: Vec<String>,
    pub pg_ident: Vec<String>,
    pub recovery_conf: Map<String, Value>,
    pub use_slots: bool,
    pub use_pg_rewind: bool,
}
