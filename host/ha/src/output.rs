//! What a decision produces.

use palisade_model::Role;

/// How to demote a primary (Patroni's demote modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemoteMode {
    /// The DCS cannot be reached: fast stop, keep nothing, start as a
    /// replica without a primary to follow.
    Offline,
    /// Switchover or failover on request: checkpoint, fast stop, release
    /// the leader key so the candidate can take it, then follow.
    Graceful,
    /// We should not be primary: immediate stop, release the key.
    Immediate,
    /// We lost the lock: immediate stop, the key is not ours to release.
    ImmediateNolock,
    /// The cluster became a standby cluster (`standby_cluster` was set):
    /// fast stop, keep the leader key, start again as the standby leader
    /// following the remote primary.
    DemoteCluster,
}

/// How to start a stopped PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAs {
    /// As the primary, after a crash, because we still hold the lock.
    Primary,
    /// In recovery, streaming from this member (or from nobody).
    Replica { follow: Option<String> },
    /// In recovery, replicating from the remote primary of a standby
    /// cluster (stream and/or `restore_command`): as its standby leader
    /// when we hold the lock, else as a replica of a leaderless standby
    /// cluster.
    Remote { standby_leader: bool },
}

/// A question for the outside world; see the crate documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ask {
    /// Renew the leader lock (and, with `update_status`, write `status`).
    UpdateLock { update_status: bool },
    /// Try to take the free leader lock.
    AcquireLock,
    /// Race for the `initialize` key.
    Initialize,
    /// Fetch `GET /patroni` from these members.
    PeerStatuses(Vec<String>),
    /// Read this node's WAL position and timeline now.
    MyPosition,
    /// Before promoting: claim the `sync` key and set
    /// `synchronous_standby_names` for the new primary (`false`: somebody
    /// else changed the key).
    SyncPrepromote,
    /// Call `POST /failsafe` on these members (name, API URL), all at once.
    Failsafe(Vec<(String, String)>),
    /// Activate the watchdog (`false`: mode `required` and it could not be).
    ActivateWatchdog,
}

/// Something the daemon must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write the `initialize` key with the local system identifier
    /// (`create_new`: only if absent).
    SetInitializeKey { create_new: bool },
    /// Write the dynamic configuration to the DCS (none is there yet).
    WriteConfig,
    /// Stop PostgreSQL at once and forget the role (empty data directory).
    StopImmediate,
    /// Initialise a new cluster (initdb or a custom method), then start it.
    Bootstrap,
    /// Run post_bootstrap (create roles, the post_bootstrap script).
    PostBootstrap,
    /// The bootstrap is complete: publish the cluster and take the lock.
    CompleteBootstrap,
    /// Bootstrap failed: remove the initialize key and stop the daemon.
    CancelBootstrap,
    /// Build this node's data directory from `from` (or from a backup
    /// when `None`; from the remote primary in a standby cluster).
    Clone { from: Option<String> },
    /// We won the `initialize` race of a standby cluster: clone the remote
    /// primary with `standby_cluster.create_replica_methods` and start as
    /// its standby leader.
    BootstrapStandbyLeader,
    /// Point recovery at the remote primary of the standby cluster (the
    /// `standby_cluster` settings in force) and apply what changed, as
    /// the standby leader (`standby_leader`) or as a replica.
    FollowRemote { standby_leader: bool },
    /// Start PostgreSQL.
    Start(StartAs),
    /// Bring a data directory that was not shut down cleanly to a clean
    /// shutdown: crash recovery in single-user mode.
    CrashRecovery,
    /// Rewind the stopped data directory from the leader `from`.
    Rewind { from: String },
    /// Remove the data directory and copy it again (from a member, the
    /// leader first, as a new replica would).
    Reinitialize,
    /// Point recovery at another member (or nobody) and reload.
    Follow { leader: Option<String> },
    /// Promote the local replica (the pre_promote script first).
    Promote,
    /// Demote the local primary.
    Demote(DemoteMode),
    /// The DCS cannot be reached and every member accepted us: keep
    /// leading (as if the lock were renewed) with failsafe mode active.
    FailsafeActive,
    /// Delete our leader key (we stay up).
    ReleaseLeaderKey,
    /// Set the `failover` key to this value (an empty object clears it).
    WriteFailoverKey { leader: Option<String>, candidate: Option<String>, keep_schedule: bool },
    /// Record the role the daemon manages PostgreSQL in.
    SetRole(Role),
    /// Mark PostgreSQL as crashed (it stopped without being asked to).
    MarkCrashed,
    /// Mark PostgreSQL as stopped (it stopped while paused: Patroni's
    /// STOPPED state, not a crash, as nothing will restart it).
    MarkStopped,
    /// Bring the DCS `history` key up to date with our timeline history.
    UpdateHistory,
    /// As the leader: choose synchronous standbys and publish them (or
    /// clean up when synchronous mode is off), see [`crate::sync`].
    SyncReplication,
    /// Deliver `on_start` for the running PostgreSQL.
    CallbackOnStart,
    /// Cancel the background task in progress.
    CancelTask,
    /// Restart PostgreSQL in its role (a scheduled restart fell due).
    Restart { timeout: Option<f64> },
    /// Forget the scheduled restart.
    DeleteScheduledRestart,
    /// Exit the daemon with this message (the error a person must fix).
    Fatal(String),
}

/// Severity of a line a decision wants logged besides its reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// The result of a cycle.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// The INFO line Patroni would log for this cycle.
    pub reason: String,
    /// Lines to log before the reason (what the leader race saw...).
    pub log: Vec<(Level, String)>,
    /// Wake the loop at this epoch time even if nothing happens (a
    /// scheduled switchover), in addition to the usual loop_wait.
    pub wake_at: Option<f64>,
}

impl Decision {
    pub fn new(reason: impl Into<String>) -> Self {
        Self { actions: Vec::new(), reason: reason.into(), log: Vec::new(), wake_at: None }
    }

    pub fn with(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }
}

/// Either a decision, or a question to answer first.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Decided(Decision),
    Ask(Ask),
}
