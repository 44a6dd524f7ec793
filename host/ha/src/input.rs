//! What a decision is made from.

use std::collections::BTreeMap;

use palisade_model::{Cluster, Member, Role, State, Tags};
use serde_json::{Map, Value};

/// This node's identity and static traits.
#[derive(Clone, Debug, Default)]
pub struct Me {
    pub name: String,
    /// The configured tags.
    pub tags: Map<String, Value>,
    /// The configuration has a `bootstrap` section (only such a node may
    /// initialise a new cluster).
    pub can_bootstrap: bool,
    /// One of the configured replica methods can build a replica without a
    /// running member to copy from (a backup tool).
    pub can_clone_without_leader: bool,
}

impl Me {
    pub fn tags(&self) -> Tags<'_> {
        Tags(&self.tags)
    }
}

/// The dynamic settings a decision needs (from the DCS `config` key).
#[derive(Clone, Debug)]
pub struct Settings {
    pub ttl: f64,
    pub loop_wait: f64,
    pub maximum_lag_on_failover: u64,
    pub primary_start_timeout: f64,
    pub check_timeline: bool,
    pub paused: bool,
    /// Synchronous replication (`synchronous_mode` and friends).
    pub sync: crate::sync::SyncSettings,
    /// `failsafe_mode`: see [`crate::failsafe`].
    pub failsafe_mode: bool,
    /// `standby_cluster` is set: the leader is a standby leader that
    /// replicates from the remote primary (Patroni's `is_standby_cluster`).
    pub standby_cluster: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ttl: 30.0,
            loop_wait: 10.0,
            maximum_lag_on_failover: 1_048_576,
            primary_start_timeout: 300.0,
            check_timeline: false,
            paused: false,
            sync: crate::sync::SyncSettings::default(),
            failsafe_mode: false,
            standby_cluster: false,
        }
    }
}

/// The data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataDir {
    /// Missing or empty: a new node.
    Empty,
    /// It cannot be read (the message says why).
    Inaccessible(String),
    /// It holds a cluster with this system identifier (as pg_controldata
    /// reports it; `None` when it could not be read).
    Initialized { sysid: Option<String> },
}

/// The local PostgreSQL server as observed this cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pg {
    /// No postmaster.
    Stopped,
    /// A postmaster that does not accept connections yet (start-up,
    /// crash recovery).
    Starting,
    /// Accepting connections.
    Running {
        /// `pg_is_in_recovery()`.
        in_recovery: bool,
        /// The timeline it runs on (a replica's received timeline; `None`
        /// when it cannot be told).
        timeline: Option<u32>,
        /// Primary: current WAL position. Replica: the greater of the
        /// received and replayed positions.
        wal_position: u64,
    },
}

impl Pg {
    pub fn is_running(&self) -> bool {
        matches!(self, Pg::Running { .. })
    }

    pub fn is_primary(&self) -> bool {
        matches!(self, Pg::Running { in_recovery: false, .. })
    }
}

/// A long action the daemon runs in the background while the loop goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Bootstrap,
    PostBootstrap,
    /// Clone the remote primary to become a standby cluster's first leader.
    BootstrapStandbyLeader,
    Clone,
    Start,
    Promote,
    Demote,
    Restart,
    Reinitialize,
    /// Copy logical slots from the primary (stops and starts PostgreSQL).
    CopyLogicalSlots,
    /// Crash recovery in single-user mode (a data directory that was not
    /// shut down cleanly, before pg_rewind can look at it).
    CrashRecovery,
    /// pg_rewind from the leader.
    Rewind,
}

impl Task {
    pub fn describe(self) -> &'static str {
        match self {
            Task::Bootstrap => "bootstrap",
            Task::PostBootstrap => "post_bootstrap",
            Task::BootstrapStandbyLeader => "bootstrap_standby_leader",
            Task::Clone => "bootstrap from a member",
            Task::Start => "restarting after failure",
            Task::Promote => "promote",
            Task::Demote => "demote",
            Task::Restart => "restart",
            Task::Reinitialize => "reinitialize",
            Task::CopyLogicalSlots => "copy_logical_slots",
            Task::CrashRecovery => "doing crash recovery in a single user mode",
            Task::Rewind => "running pg_rewind",
        }
    }
}

/// Can a stopped former primary stream from the current leader?
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Rejoin {
    /// Nothing stands in the way (or no check was needed).
    #[default]
    Free,
    /// Not known yet (the leader has not published its new timeline's
    /// history): wait.
    Wait(String),
    /// Its WAL went past the point where the leader's timeline forked.
    Diverged(String),
}

/// What rejoining with pg_rewind or a new copy may do, and what was done
/// since PostgreSQL last ran (Patroni's `Rewind` state).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RewindState {
    /// `use_pg_rewind` is on, pg_rewind runs, and pg_control shows
    /// `wal_log_hints` or data checksums (Patroni's `can_rewind`).
    pub can_rewind: bool,
    /// `postgresql.remove_data_directory_on_rewind_failure`.
    pub remove_on_rewind_failure: bool,
    /// `postgresql.remove_data_directory_on_diverged_timelines`.
    pub remove_on_diverged: bool,
    /// Crash recovery in single-user mode already ran (Patroni's
    /// `_crash_recovery_started`), whatever its result.
    pub crash_recovery_done: bool,
    /// Seconds since the crash recovery in progress started.
    pub crash_recovery_elapsed: Option<f64>,
    /// pg_rewind ran and failed; the data directory is still there.
    pub failed: bool,
    /// `backup_label` exists (a restored backup: PostgreSQL itself
    /// recovers it at start-up).
    pub backup_label: bool,
}

/// What the daemon knows about itself and its PostgreSQL.
#[derive(Clone, Debug)]
pub struct Local {
    pub data_dir: DataDir,
    pub pg: Pg,
    /// `Database cluster state` from pg_controldata while PostgreSQL is not
    /// running (`in production`, `shut down`, `shut down in recovery`...).
    pub cluster_state: Option<String>,
    /// standby.signal is present.
    pub standby_signal: bool,
    /// The role the daemon manages PostgreSQL in.
    pub role: Role,
    pub state: State,
    /// Seconds since `state` last changed.
    pub time_in_state: f64,
    /// The background action in progress.
    pub task: Option<Task>,
    /// A finished background action whose result this cycle must handle.
    pub finished: Option<(Task, bool)>,
    /// A new cluster is being bootstrapped by this node (initdb done or in
    /// progress, post_bootstrap not yet finished).
    pub bootstrapping: bool,
    /// `on_start` was delivered for the running PostgreSQL.
    pub on_start_called: bool,
    /// The member named in the primary_conninfo written last (`None`: not
    /// streaming from anybody).
    pub following: Option<String>,
    /// The recovery configuration written last streams from (or restores
    /// from the archive of) the remote primary of a standby cluster, with
    /// the `standby_cluster` settings in force.
    pub following_remote: bool,
    /// Whether this stopped data directory may rejoin the leader's timeline.
    pub rejoin: Rejoin,
    /// pg_rewind, crash recovery and reinitialisation on rejoin.
    pub rewind: RewindState,
    /// When this node last released the leader key because its pre_promote
    /// script failed (epoch seconds), for the back-off.
    pub released_leader_key_at: f64,
    /// The previous cycle's WAL position (used against a false "primary is dead").
    pub previous_wal_position: Option<u64>,
    /// `pg_postmaster_start_time()` of the running server.
    pub postmaster_start_time: Option<String>,
    /// `server_version_num` of the running server.
    pub server_version: Option<u32>,
    /// PostgreSQL flags a setting as waiting for a restart.
    pub pending_restart: bool,
    /// This node's watchdog.
    pub watchdog: crate::WatchdogState,
}

impl Default for Local {
    fn default() -> Self {
        Self {
            data_dir: DataDir::Empty,
            pg: Pg::Stopped,
            cluster_state: None,
            standby_signal: false,
            role: Role::Uninitialized,
            state: State::Stopped,
            time_in_state: 0.0,
            task: None,
            finished: None,
            bootstrapping: false,
            on_start_called: false,
            following: None,
            following_remote: false,
            rejoin: Rejoin::Free,
            rewind: RewindState::default(),
            released_leader_key_at: 0.0,
            previous_wal_position: None,
            postmaster_start_time: None,
            server_version: None,
            pending_restart: false,
            watchdog: crate::WatchdogState::Off,
        }
    }
}

/// Another member's status, read from its `GET /patroni`.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerStatus {
    pub name: String,
    /// It answered with usable JSON.
    pub reachable: bool,
    /// `Some(false)`: it runs as a primary.
    pub in_recovery: Option<bool>,
    pub wal_position: u64,
    pub timeline: u32,
    pub tags: Map<String, Value>,
    pub watchdog_failed: bool,
}

impl PeerStatus {
    pub fn unreachable(name: &str) -> Self {
        Self {
            name: name.to_string(),
            reachable: false,
            in_recovery: None,
            wal_position: 0,
            timeline: 0,
            tags: Map::new(),
            watchdog_failed: false,
        }
    }

    /// Read a `GET /patroni` answer the way Patroni does: a body without
    /// `xlog` (or `wal`) counts as unreachable.
    pub fn from_api_response(name: &str, body: &Value) -> Self {
        let Some(wal) =
            body.get("wal").filter(|v| v.is_object()).or_else(|| body.get("xlog")).and_then(Value::as_object)
        else {
            return Self::unreachable(name);
        };
        let role = body.get("role").and_then(Value::as_str).unwrap_or("");
        let has_location = wal.get("location").and_then(palisade_model::parse_int).is_some_and(|l| l != 0);
        let in_recovery = !(has_location || role == "primary" || role == "master");
        let lsn =
            |k: &str| wal.get(k).and_then(palisade_model::parse_int).and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
        let wal_position = if in_recovery { lsn("received_location").max(lsn("replayed_location")) } else { 0 };
        let timeline =
            body.get("timeline").and_then(palisade_model::parse_int).and_then(|t| u32::try_from(t).ok()).unwrap_or(0);
        let tags = body.get("tags").and_then(Value::as_object).cloned().unwrap_or_default();
        let watchdog_failed = body.get("watchdog_failed").and_then(Value::as_bool).unwrap_or(false);
        Self {
            name: name.to_string(),
            reachable: true,
            in_recovery: Some(in_recovery),
            wal_position,
            timeline,
            tags,
            watchdog_failed,
        }
    }

    /// Why this member may not take over, or `None`.
    pub fn failover_limitation(&self) -> Option<&'static str> {
        if !self.reachable {
            Some("not reachable")
        } else if Tags(&self.tags).nofailover() {
            Some("not allowed to promote")
        } else if self.watchdog_failed {
            Some("not watchdog capable")
        } else {
            None
        }
    }
}

/// Answers to the [`crate::Ask`]s of this cycle so far.
#[derive(Clone, Debug, Default)]
pub struct Answers {
    pub update_lock: Option<bool>,
    pub acquire_lock: Option<bool>,
    pub initialize: Option<bool>,
    /// Peer statuses by member name.
    pub peers: BTreeMap<String, PeerStatus>,
    /// This node's own WAL position and timeline read fresh for the leader
    /// race (`None` entries when PostgreSQL could not tell).
    pub my_position: Option<(u64, Option<u32>)>,
    /// Whether preparing synchronous replication for the promotion worked.
    pub sync_prepromote: Option<bool>,
    /// Whether each member called with `POST /failsafe` accepted.
    pub failsafe: Option<BTreeMap<String, bool>>,
    /// Whether activating the watchdog worked (or was not required).
    pub watchdog_activated: Option<bool>,
}

/// Everything one decision is made from.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// Epoch seconds.
    pub now: f64,
    pub me: &'a Me,
    pub settings: &'a Settings,
    pub cluster: &'a Cluster,
    /// Members of the last snapshot that still had a leader: the leader
    /// race also considers them, so a member whose key just expired with
    /// the leader's is not forgotten.
    pub old_members: &'a [Member],
    /// The leader of that snapshot.
    pub old_leader: Option<&'a str>,
    pub local: &'a Local,
    /// A restart scheduled through the REST API.
    pub scheduled_restart: Option<&'a crate::restart::ScheduledRestart>,
    pub answers: &'a Answers,
}
