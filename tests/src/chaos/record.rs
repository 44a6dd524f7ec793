//! What a fault campaign records while it runs, and all the checker reads.
//!
//! Every time is read from one monotonic clock in the campaign's own
//! process (milliseconds since the campaign started), so two records are
//! ordered by their times without any clock skew between machines. Each
//! write is bracketed: `started` is read before the statement is sent and
//! `acked` after its COMMIT returned, so the write took effect somewhere
//! inside `[started, acked]`.

use std::collections::BTreeSet;

/// Milliseconds since the campaign started, on the campaign's clock.
pub type Millis = u64;

/// One acknowledged write: a row `id` inserted on `node` whose COMMIT
/// returned success. Writes that failed or timed out are not recorded:
/// their outcome is unknown, and the promises are only about acknowledged
/// writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// Unique over the whole campaign.
    pub id: u64,
    /// The member name of the server that acknowledged it.
    pub node: String,
    /// Read before the statement was sent.
    pub started: Millis,
    /// Read after COMMIT returned.
    pub acked: Millis,
    /// The timeline the row was written on, as the server said in the same
    /// statement (the first 8 hex digits of
    /// `pg_walfile_name(pg_current_wal_lsn())`).
    pub timeline: u32,
    /// `pg_current_wal_lsn()` in the same statement, in bytes.
    pub lsn: u64,
}

/// What the watcher saw of one node in one round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    pub node: String,
    /// `pg_is_in_recovery()`; `None` when PostgreSQL did not answer.
    pub in_recovery: Option<bool>,
    /// The server's timeline (`pg_control_checkpoint()` on a replica is not
    /// current: the watcher takes the daemon's `/patroni` `timeline`, or
    /// the WAL file name on a primary); `None` when unknown.
    pub timeline: Option<u32>,
    /// The daemon's `/patroni` `role` (`primary`, `replica`,
    /// `standby_leader`...); `None` when the daemon did not answer.
    pub role: Option<String>,
    /// The daemon's `/patroni` `state` (`running`, `starting`...).
    pub state: Option<String>,
    /// The daemon's `/patroni` `replication_state` (`streaming`...), for
    /// replicas.
    pub replication_state: Option<String>,
    /// The HTTP status of `GET /liveness`; `None` when the daemon did not
    /// answer.
    pub liveness: Option<u16>,
}

/// One round of the watcher: every node looked at once, in turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// When the round started.
    pub at: Millis,
    pub nodes: Vec<NodeView>,
}

/// One injected fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// 1, 2, ... in the order injected.
    pub index: usize,
    /// What was done, for the report: `kill -9 daemon node2`,
    /// `SIGSTOP daemon node1 for 12.0 s`, `partition node3`...
    pub description: String,
    /// The node it hit, if any (`None` for the DCS or the whole cluster).
    pub node: Option<String>,
    /// When it was injected.
    pub started: Millis,
    /// When it was undone (process restarted, SIGCONT sent, link back up,
    /// DCS back); equal to `started` for faults with nothing to undo (a
    /// switchover, a restart, a config change).
    pub ended: Millis,
}

/// One fire of a node's watchdog device (a campaign with `--watchdog`):
/// like a hardware watchdog resetting the machine, the campaign killed the
/// node's PostgreSQL and daemon with SIGKILL, then started the daemon
/// again, as the machine's boot would. Not a fault the campaign chose: it
/// is what the daemon's watchdog did about one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fire {
    /// The node whose device fired.
    pub node: String,
    /// When it fired (the node was killed right then).
    pub at: Millis,
    /// The fault injected last before it fired (`None` before the first):
    /// the one whose heal it delays.
    pub fault: Option<usize>,
    /// When the campaign started the node's daemon again; `None` when the
    /// campaign ended first.
    pub restarted: Option<Millis>,
}

/// The cluster as the campaign left it, read after the last fault healed
/// (or after the heal bound passed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinalState {
    /// The one primary, if there is exactly one.
    pub primary: Option<String>,
    /// Every id in the writes table on that primary.
    pub ids: BTreeSet<u64>,
    /// The leader's history (`GET /history`): `(timeline, switch LSN in
    /// bytes)` for each timeline that ended, oldest first.
    pub history: Vec<(u32, u64)>,
}

/// The campaign's settings that the checker needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub seed: u64,
    /// The DCS plugin the cluster ran on (`etcd3`, `zookeeper`...).
    pub dcs: String,
    /// `synchronous_mode_strict` (and `synchronous_mode`) on: every
    /// acknowledged write must survive.
    pub strict: bool,
    /// The `ttl` in force at the end, in seconds.
    pub ttl: u64,
    /// After a fault is undone, the cluster must be healthy within this.
    pub heal_bound: Millis,
    /// Each daemon ran with a watchdog (`mode: required`) on a test device
    /// that resets the node when it fires.
    pub watchdog: bool,
}

/// Everything one campaign recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    pub settings: Settings,
    pub writes: Vec<Write>,
    pub rounds: Vec<Round>,
    pub faults: Vec<Fault>,
    /// The watchdog fires, in order (empty without a watchdog).
    pub fires: Vec<Fire>,
    pub final_state: FinalState,
}
