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
    /// When the HA loop last finished a cycle (for `/liveness`).
    pub last_cycle_at: Option<std::time::Instant>,
    pub ttl: std::time::Duration,
    pub maximum_lag_on_failover: u64,
    /// The `noloadbalance` tag is set.
    pub noloadbalance: bool,
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
            last_cycle_at: None,
            ttl: std::time::Duration::from_secs(30),
            maximum_lag_on_failover: 1_048_576,
            noloadbalance: false,
        }
    }
}

/// The shared, always-readable status.
#[derive(Clone)]
pub struct StatusBoard(Arc<RwLock<Arc<NodeStatus>>>);

impl StatusBoard {
    pub fn new(initial: NodeStatus) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(initial))))
    }

    /// The current status (cheap: an `Arc` clone).
    pub fn get(&self) -> Arc<NodeStatus> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Change the status.
    pub fn update(&self, f: impl FnOnce(&mut NodeStatus)) {
        let mut guard = self.0.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
    }
}
