//! What the daemon knows right now, shared with the REST API.
//!
//! The runner publishes a fresh [`NodeStatus`] after every cycle (and after
//! role changes); API handlers read it without touching PostgreSQL or the
//! DCS, so health checks stay cheap whatever the load balancers do.

use std::sync::{Arc, RwLock};

use palisade_model::{Cluster, Role, State};
use serde_json::{Map, Value};

/// The local PostgreSQL as last queried.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PgSnapshot {
    /// `pg_postmaster_start_time()` as PostgreSQL prints it.
    pub postmaster_start_time: Option<String>,
    /// `server_version_num`, e.g. 150018.
    pub server_version: Option<u32>,
    pub in_recovery: bool,
    pub timeline: Option<u32>,
    /// Primary: current WAL flush position.
    pub wal_location: Option<u64>,
    /// Replica: received / replayed positions.
    pub received_location: Option<u64>,
    pub replayed_location: Option<u64>,
    pub replayed_timestamp: Option<String>,
    pub replay_paused: bool,
    /// `streaming` or `in archive recovery`, on a replica.
    pub replication_state: Option<String>,
    /// The primary's position as the WAL receiver last saw it.
    pub latest_end_lsn: Option<u64>,
    /// `pg_stat_replication`, as Patroni's REST API shows it.
    pub replication: Vec<Value>,
}

/// Everything the REST API serves about this node.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub scope: String,
    pub name: String,
    pub role: Role,
    pub state: State,
    /// `None` when PostgreSQL is not running or could not be queried.
    pub pg: Option<PgSnapshot>,
    pub sysid: Option<String>,
    pub pending_restart_reason: Map<String, Value>,
    pub tags: Map<String, Value>,
    /// The last snapshot read from the DCS.
    pub cluster: Option<Arc<Cluster>>,
    /// Epoch seconds of the last successful DCS read.
    pub dcs_last_seen: i64,
    pub paused: bool,
    /// We hold the leader lock and it has not expired.
    pub is_leader: bool,
    pub standby_cluster: bool,
    pub scheduled_restart: Option<Map<String, Value>>,
    pub watchdog_failed: bool,
    /// A watchdog device is open and kept alive.
    pub watchdog_running: bool,
    /// When the HA loop last finished a cycle (for `/liveness`).
    pub last_cycle_at: Option<std::time::Instant>,
    pub ttl: std::time::Duration,
    pub maximum_lag_on_failover: u64,
    /// The `noloadbalance` tag is set.
    pub noloadbalance: bool,
    /// The postmaster the loop last saw running: its pid and its start
    /// time (`/proc/<pid>/stat` field 22), for [`NodeStatus::checked`].
    pub postmaster: Option<(i32, u64)>,
    /// The leader of the last DCS snapshot that had one: the only member
    /// whose `POST /failsafe` this node accepts.
    pub known_leader: Option<String>,
    pub failsafe: Failsafe,
}

/// Failsafe mode as this node lives it (Patroni's `Failsafe` object). The
/// runner and `POST /failsafe` change it; the loop's own status updates
/// leave it alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Failsafe {
    /// Until when failsafe mode counts as active: on the primary, ttl after
    /// the last time every member accepted it while the DCS was out of
    /// reach; on a replica, ttl after the last `POST /failsafe` it accepted.
    pub active_until: Option<std::time::Instant>,
    /// The leader whose `POST /failsafe` this node accepted last (replica).
    pub leader: Option<palisade_ha::FailsafeLeader>,
    /// The slot positions of the last failsafe round (Patroni's
    /// `Failsafe._slots`): on a replica, the `slots` the leader sent; on
    /// the primary, the `lsn` every member answered.
    pub slots: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Failsafe {
    pub fn is_active(&self) -> bool {
        self.active_until.is_some_and(|t| t > std::time::Instant::now())
    }

    /// The leader that called within the last ttl, if any.
    pub fn live_leader(&self) -> Option<&palisade_ha::FailsafeLeader> {
        self.leader.as_ref().filter(|_| self.is_active())
    }

    /// Back to inactive, forgetting the leader (Patroni's `set_is_active(0)`).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

impl NodeStatus {
    pub fn new(scope: &str, name: &str) -> Self {
        Self {
            scope: scope.to_string(),
            name: name.to_string(),
            role: Role::Uninitialized,
            state: State::Stopped,
            pg: None,
            sysid: None,
            pending_restart_reason: Map::new(),
            tags: Map::new(),
            cluster: None,
            dcs_last_seen: 0,
            paused: false,
            is_leader: false,
            standby_cluster: false,
            scheduled_restart: None,
            watchdog_failed: false,
            watchdog_running: false,
            last_cycle_at: None,
            ttl: std::time::Duration::from_secs(30),
            maximum_lag_on_failover: 1_048_576,
            noloadbalance: false,
            postmaster: None,
            known_leader: None,
            failsafe: Failsafe::default(),
        }
    }

    /// This status as the API may serve it now. When the postmaster the
    /// loop last saw running has exited since (no such process, a zombie,
    /// or its pid reused), PostgreSQL is not answering, whatever the last
    /// cycle found: the snapshot is dropped, so the body says `unknown`
    /// and no health check answers 200 for a dead server. One read of
    /// `/proc`, no SQL.
    pub fn checked(self: Arc<Self>) -> Arc<Self> {
        match self.postmaster {
            Some((pid, started)) if self.pg.is_some() && process_start_time(pid) != Some(started) => {
                let mut s = (*self).clone();
                s.pg = None;
                Arc::new(s)
            }
            _ => self,
        }
    }
}

/// When process `pid` started (clock ticks since boot, `/proc/<pid>/stat`
/// field 22), or `None` when there is no such process or it has exited
/// (a zombie, or dead).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields that follow start after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    // `rest` starts at field 3 (state): field 22 is the 20th from here.
    fields.nth(18)?.parse().ok()
}

/// The shared, always-readable status.
#[derive(Clone)]
pub struct StatusBoard(Arc<RwLock<Arc<NodeStatus>>>);

impl StatusBoard {
    pub fn new(initial: NodeStatus) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(initial))))
    }

    /// The current status, [checked](NodeStatus::checked) against the
    /// postmaster's process (cheap: an `Arc` clone and one read of `/proc`).
    pub fn get(&self) -> Arc<NodeStatus> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner())).checked()
    }

    /// Change the status.
    pub fn update(&self, f: impl FnOnce(&mut NodeStatus)) {
        let mut guard = self.0.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_live_and_gone_processes() {
        let me = i32::try_from(std::process::id()).expect("pid fits");
        let t = process_start_time(me).expect("this process is alive");
        assert_eq!(process_start_time(me), Some(t), "stable");
        assert_eq!(process_start_time(i32::MAX), None, "no such process");

        // A child that exited and was not reaped yet is a zombie: gone.
        let mut child = std::process::Command::new("/bin/true").spawn().expect("spawn /bin/true");
        let pid = i32::try_from(child.id()).expect("pid fits");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_start_time(pid).is_some() {
            assert!(std::time::Instant::now() < deadline, "/bin/true did not exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.wait();
    }

    #[test]
    fn a_vanished_postmaster_drops_the_snapshot() {
        let me = i32::try_from(std::process::id()).expect("pid fits");
        let started = process_start_time(me).expect("alive");
        let cases = [
            (Some((me, started)), true),
            (Some((me, started + 1)), false), // the pid was reused
            (Some((i32::MAX, 1)), false),
            (None, true),
        ];
        for (postmaster, keeps) in cases {
            let mut s = NodeStatus::new("demo", "n1");
            s.state = State::Running;
            s.pg = Some(PgSnapshot::default());
            s.postmaster = postmaster;
            let board = StatusBoard::new(s);
            assert_eq!(board.get().pg.is_some(), keeps, "{postmaster:?}");
        }
    }
}
