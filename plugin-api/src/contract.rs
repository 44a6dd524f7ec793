//! The plugin contract in plain Rust: what each kind of plugin promises.
//!
//! Values read from or written to the DCS cross this boundary as the raw
//! strings the store holds (Patroni's JSON, byte for byte). Parsing them is
//! the host's job, so that garbage written by somebody else is handled in one
//! place, the same way for every store.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The four kinds of plugin the host loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PluginKind {
    /// A distributed configuration store (etcd3, Consul, ZooKeeper...).
    Dcs,
    /// A replica-creation method (basebackup, pgBackRest, WAL-G...).
    Replica,
    /// A callback receiver (on_start, on_role_change...).
    Callback,
    /// An MPP integration (Citus).
    Mpp,
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [Self::Dcs, Self::Replica, Self::Callback, Self::Mpp];

    /// The word used in file names (`libpalisade_<kind>_<name>.so`) and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dcs => "dcs",
            Self::Replica => "replica",
            Self::Callback => "callback",
            Self::Mpp => "mpp",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Dcs => 1,
            Self::Replica => 2,
            Self::Callback => 3,
            Self::Mpp => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    pub kind: PluginKind,
    /// The name the configuration uses (`etcd3`, `basebackup`, `script`...).
    pub name: String,
    /// [`crate::API_VERSION`] as the plugin was built.
    pub api_version: u32,
    /// The plugin crate's own version, for logs and `--version`.
    pub plugin_version: String,
}

/// Why a plugin call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The store could not be reached or did not answer in time; the HA
    /// loop treats this as "DCS is not accessible".
    DcsUnavailable,
    /// The plugin's configuration is wrong; the message names the key.
    Config,
    /// The plugin panicked; the call was abandoned and the plugin may be in
    /// an undefined state.
    Panic,
    /// The host gave up waiting for the call.
    Timeout,
    /// Anything else.
    Other,
}

impl ErrorKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::DcsUnavailable => 1,
            Self::Config => 2,
            Self::Panic => 3,
            Self::Timeout => 4,
            Self::Other => 5,
        }
    }

    pub(crate) fn from_code(code: u8) -> Self {
        match code {
            1 => Self::DcsUnavailable,
            2 => Self::Config,
            3 => Self::Panic,
            4 => Self::Timeout,
            _ => Self::Other,
        }
    }
}

/// The error every plugin call returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: String,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
    pub fn dcs(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::DcsUnavailable, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Panic => write!(f, "plugin panicked: {}", self.message),
            ErrorKind::Timeout => write!(f, "plugin call timed out: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PluginError {}

pub type PluginResult<T> = Result<T, PluginError>;

// ---------------------------------------------------------------------------
// DCS
// ---------------------------------------------------------------------------

/// How a DCS plugin is set up: the common settings plus its own section.
#[derive(Clone, Debug, PartialEq)]
pub struct DcsParams {
    /// `scope`: the cluster name.
    pub scope: String,
    /// `namespace`, normalised to start and end with `/` (default `/service/`).
    pub namespace: String,
    /// This member's `name`.
    pub name: String,
    /// The Citus group of this node, when the Citus integration is on.
    pub group: Option<i32>,
    pub timing: DcsTiming,
    /// The plugin's own configuration section (for example `etcd3:`) as JSON.
    pub section_json: String,
}

/// The dynamic settings a DCS needs; they can change at run time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DcsTiming {
    /// Lifetime of the leader lock and the member keys.
    pub ttl: Duration,
    pub loop_wait: Duration,
    /// How long a store operation may retry before it fails.
    pub retry_timeout: Duration,
}

/// One key with the store's own version of it (etcd mod revision, ZooKeeper
/// version, Consul ModifyIndex, Kubernetes resourceVersion...). Versions are
/// opaque to the host: it only hands them back for compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VersionedValue {
    pub value: String,
    pub version: String,
}

/// The leader key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LeaderKey {
    /// The leader's member name (the key's value).
    pub name: String,
    pub version: String,
    /// The lease, session or owner the key is bound to, when the store has one.
    pub session: String,
}

/// A `members/<name>` key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MemberKey {
    pub name: String,
    /// The member JSON as stored.
    pub value: String,
    pub version: String,
    pub session: String,
}

/// One consistent read of every key of a cluster, values as stored.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DcsSnapshot {
    pub initialize: Option<String>,
    pub config: Option<VersionedValue>,
    pub leader: Option<LeaderKey>,
    pub members: Vec<MemberKey>,
    pub failover: Option<VersionedValue>,
    pub sync: Option<VersionedValue>,
    pub history: Option<VersionedValue>,
    pub status: Option<String>,
    pub failsafe: Option<String>,
    /// The legacy `optime/leader` key.
    pub leader_optime: Option<String>,
}

/// Patroni's AbstractDCS, as a plugin implements it. Every operation is
/// blocking; the host calls it from a worker thread with a deadline.
pub trait Dcs: Send + Sync {
    /// One consistent snapshot of every key of the cluster.
    fn get_cluster(&self) -> PluginResult<DcsSnapshot>;
    /// Create the leader key with our name if nobody holds it.
    fn attempt_to_acquire_leader(&self) -> PluginResult<bool>;
    /// Renew our leader key. Fails (`Ok(false)`) when the key is not ours.
    fn update_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool>;
    /// Write the leader key unconditionally (after bootstrap).
    fn take_leader(&self) -> PluginResult<bool>;
    /// Delete the leader key if it still holds our name.
    fn delete_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool>;
    /// Create the initialize key (`create_new`), or set it if it exists.
    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool>;
    fn cancel_initialization(&self) -> PluginResult<bool>;
    /// Write our member key (on the same lease/session as the leader key).
    fn touch_member(&self, data: &str) -> PluginResult<bool>;
    /// Write the `config` key: compare-and-set on `version` when given,
    /// a plain write otherwise (as Patroni; `PUT /config` relies on it).
    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool>;
    /// Compare-and-set the `failover` key (no version: unconditional).
    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool>;
    /// Compare-and-set the `sync` key; returns the new version on success.
    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>>;
    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool>;
    fn set_history_value(&self, value: &str) -> PluginResult<bool>;
    fn write_status(&self, value: &str) -> PluginResult<bool>;
    fn write_failsafe(&self, value: &str) -> PluginResult<bool>;
    /// Remove every key of the cluster.
    fn delete_cluster(&self) -> PluginResult<bool>;
    /// The dynamic configuration changed ttl, loop_wait or retry_timeout.
    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()>;
    /// Wait up to `timeout` for the leader key to change from
    /// `leader_version` (or, with `None`, for any change worth a new cycle).
    /// Returns `true` when it woke up early because of a change.
    fn watch(&self, leader_version: Option<&str>, timeout: Duration) -> PluginResult<bool>;
    /// One consistent read of every Citus group under the scope
    /// (`/<namespace>/<scope>/<group>/...`), whatever this node's own group:
    /// group number -> that group's snapshot, as Patroni's
    /// `_mpp_cluster_loader`. A group is present when at least one of its
    /// keys exists; directories that are not a group number (`0` or digits
    /// without a leading zero, Patroni's `group_re`) and keys directly under
    /// the scope are skipped. The Citus coordinator and palisadectl use it.
    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>>;
}

// ---------------------------------------------------------------------------
// Replica creation
// ---------------------------------------------------------------------------

/// Plain setup of a plugin that is not a DCS: its configuration as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginParams {
    /// The cluster's `scope`.
    pub scope: String,
    /// This member's name.
    pub name: String,
    /// The plugin's configuration as JSON: the replica method's section, the
    /// `postgresql.callbacks` map, or the `citus` section.
    pub config_json: String,
}

/// A request to build a replica's data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaRequest {
    pub scope: String,
    /// The name of this member.
    pub name: String,
    /// Always `replica`, kept for script compatibility.
    pub role: String,
    pub data_dir: String,
    /// Directory holding the PostgreSQL binaries.
    pub bin_dir: String,
    /// libpq connection string of the member to copy from, without the
    /// password (that is in the pgpass file named by `PGPASSFILE` in `env`);
    /// `None` when there is no running member to copy from.
    pub connstring: Option<String>,
    /// Environment for child processes (`PGPASSFILE`, `PGAPPNAME`...).
    pub env: Vec<(String, String)>,
    /// The working directory scripts run in.
    pub cwd: String,
}

/// The recovery commands that read WAL from the archive a replica method
/// restores from: what the leader of a standby cluster needs to follow a
/// primary cluster through its archive (`standby_cluster.restore_command`
/// and `archive_cleanup_command`). `None` means "this method has none".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveCommands {
    /// PostgreSQL's `restore_command` (with `%f` and `%p`).
    pub restore_command: Option<String>,
    /// PostgreSQL's `archive_cleanup_command` (with `%r`).
    pub archive_cleanup_command: Option<String>,
}

pub trait ReplicaMethod: Send + Sync {
    /// Whether this method can build a replica without a running member to
    /// copy from (from a backup repository, for instance).
    fn can_work_without_leader(&self) -> bool;
    /// Build the data directory. Blocks until it is complete.
    fn create_replica(&self, request: &ReplicaRequest) -> PluginResult<()>;
    /// Stop a `create_replica` in progress (shutdown, reinitialize). Must not block long.
    fn cancel(&self);
    /// The recovery commands matching this method's archive, for a
    /// standby cluster. Methods without an archive have none (the default).
    fn archive_commands(&self) -> PluginResult<ArchiveCommands> {
        Ok(ArchiveCommands::default())
    }
}

// ---------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------

/// A lifecycle event, as Patroni passes it to callback scripts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackEvent {
    /// `on_start`, `on_stop`, `on_restart`, `on_reload`, `on_role_change`.
    pub action: String,
    /// The role PostgreSQL has now (`primary`, `replica`, `standby_leader`...).
    pub role: String,
    pub scope: String,
    pub name: String,
}

pub trait Callback: Send + Sync {
    /// Deliver an event. Must return quickly: long work belongs in the
    /// background (the script plugin runs the command without waiting).
    fn on_event(&self, event: &CallbackEvent) -> PluginResult<()>;
}

// ---------------------------------------------------------------------------
// MPP (Citus)
// ---------------------------------------------------------------------------

/// How an MPP plugin reaches the local PostgreSQL server, and what this
/// member publishes. The host hands it over with [`Mpp::set_local`] before
/// any call that touches the database, and again whenever it changes
/// (a configuration reload).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MppLocal {
    /// libpq keyword/value pairs that reach the local server as the
    /// superuser, exactly as the host's own connection does (`host` (a
    /// socket directory or an address), `port`, `user`, `password`,
    /// `sslmode`, `sslcert`, `sslkey`, `sslrootcert`...), without `dbname`
    /// and `options`: the plugin sets those itself, as Patroni does.
    pub conn: Vec<(String, String)>,
    /// `postgresql.database`: the database the host itself connects to
    /// (Patroni's `postgres` by default).
    pub database: String,
    /// This member's `conn_url`, as published in its member key
    /// (`postgres://host:port/dbname`); the coordinator registers itself
    /// in the metadata with its host and port.
    pub conn_url: String,
}

/// One member of one group's cluster, as read from the DCS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MppMember {
    pub name: String,
    /// The member's `conn_url`, when it publishes one.
    pub conn_url: Option<String>,
    /// The member's `role` (`primary`, `master`, `replica`...), as stored.
    pub role: Option<String>,
    /// The member's `state` (`running`, `stopped`...), as stored.
    pub state: Option<String>,
    /// The member's `noloadbalance` tag, read with Python's truth value.
    pub noloadbalance: bool,
}

/// One group's cluster (group 0 is the coordinator's), as read from the DCS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MppCluster {
    pub group: i32,
    /// The name in the group's leader key, if there is one.
    pub leader: Option<String>,
    pub members: Vec<MppMember>,
}

/// A replication slot the host found on the local server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MppSlot {
    pub name: String,
    /// `physical` or `logical`.
    pub slot_type: String,
    /// The slot's database (logical slots), empty otherwise.
    pub database: String,
    /// The slot's output plugin (logical slots), empty otherwise.
    pub plugin: String,
}

/// Patroni's MPP handler (`AbstractMPPHandler`), as a plugin implements it.
///
/// The host keeps one instance per daemon, whatever the role of the local
/// server. Every call is blocking and returns promptly, except
/// [`Mpp::handle_event`] for `before_demote` (see there). A plugin keeps its
/// own connection to the local server and works through the metadata in
/// the background, as Patroni's handler thread does; it must never panic
/// across the boundary.
///
/// Who calls what, as Patroni does:
/// - every node: `adjust_parameters` whenever the host writes
///   postgresql.conf; `bootstrap` after a new cluster was created with
///   initdb; `schedule_cache_rebuild` when PostgreSQL was started or
///   promoted; `ignore_replication_slot` when the host is about to drop
///   slots it does not know;
/// - the coordinator's primary: `sync_meta_data` every HA cycle (after
///   its leader lock was renewed), `handle_event` for each `POST /citus`
///   (only while it holds the leader lock), `on_demote` before its
///   PostgreSQL is stopped or demoted;
/// - a worker's primary: no call; the host sends the events itself (see
///   [`Mpp::handle_event`] for the body), to the coordinator leader's
///   `POST /citus`: `before_demote` before a graceful stop or demotion
///   (waiting up to `ttl` for the answer), `before_promote` before
///   promoting, `after_promote` once promoted (2 s timeout each).
pub trait Mpp: Send + Sync {
    /// This node's group (`citus.group`; 0 is the coordinator).
    fn group(&self) -> i32;
    /// The coordinator's group (0 for Citus).
    fn coordinator_group(&self) -> i32;
    /// How to reach the local server as the superuser, and this member's
    /// `conn_url`. Called before any other call that needs the database,
    /// and again when those settings change. An invalid value (an
    /// unparsable `conn_url`) is a [`ErrorKind::Config`] error.
    fn set_local(&self, local: &MppLocal) -> PluginResult<()>;
    /// Adjust the PostgreSQL parameters the host is about to write: a JSON
    /// object of every parameter with the value the host will write (with
    /// `max_connections` and `max_prepared_transactions` as numbers) in, the
    /// same object with the plugin's changes out (Citus: `citus` first in
    /// `shared_preload_libraries`, `max_prepared_transactions`,
    /// `wal_level`, `citus.local_hostname`). Works before `set_local` too
    /// (then `citus.local_hostname` is `localhost`).
    fn adjust_parameters(&self, parameters_json: &str) -> PluginResult<String>;
    /// A new cluster was bootstrapped with initdb and its PostgreSQL is
    /// running: create the MPP database and extension (Citus: `CREATE
    /// DATABASE` when `citus.database` is not `postgresql.database`,
    /// `CREATE EXTENSION citus`, the superuser's credentials in
    /// `pg_dist_authinfo`, and on the coordinator its own address). An
    /// error fails the bootstrap, as in Patroni.
    fn bootstrap(&self) -> PluginResult<()>;
    /// On the coordinator's primary, every HA cycle: bring the metadata
    /// (`pg_dist_node`) in line with the clusters of every group
    /// (`clusters` holds the coordinator's own group 0 and each worker
    /// group). Queues the work and returns; the plugin does it in the
    /// background. Does nothing on any other node.
    fn sync_meta_data(&self, clusters: &[MppCluster]) -> PluginResult<()>;
    /// An event a worker group's primary sent to `POST /citus` on the
    /// coordinator's primary: the request body as received, Patroni's
    /// `{"type": "before_demote"|"before_promote"|"after_promote",
    /// "group": <int>, "leader": <member name>, "timeout": <ttl, s>,
    /// "cooldown": <retry_timeout, s>}`, and the clusters of every group as
    /// the host just read them. An event that does not match the DCS (the
    /// group's leader is somebody else) is logged and dropped. For
    /// `before_demote` the call blocks until the worker's metadata row is
    /// updated in an open transaction, which holds the metadata lock (at most
    /// `timeout` seconds); new distributed transactions then wait until the
    /// `after_promote` of that group commits it, or until `timeout`
    /// seconds passed and it is rolled back. An invalid body is a
    /// [`ErrorKind::Config`] error naming the key.
    fn handle_event(&self, clusters: &[MppCluster], event_json: &str) -> PluginResult<()>;
    /// The coordinator's primary is being stopped or demoted: forget the
    /// cached metadata, queued work and any open transaction.
    fn on_demote(&self);
    /// The local server was started or promoted: read the metadata from
    /// the database again before acting on it.
    fn schedule_cache_rebuild(&self);
    /// Whether the host must keep `slot`, a replication slot it did not
    /// create, on a server whose role is `is_primary` (Citus: its own shard
    /// move and split slots in `citus.database`).
    fn ignore_replication_slot(&self, slot: &MppSlot, is_primary: bool) -> bool;
}
