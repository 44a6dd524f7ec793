//! The host's side of the DCS: every plugin call runs on a blocking
//! thread with a deadline, and the raw snapshot becomes a model `Cluster`
//! (see [`crate::snapshot`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_model::{Cluster, Leader};
use palisade_plugin_api::{Dcs, DcsSnapshot, DcsTiming, ErrorKind, PluginError, PluginResult};

use crate::snapshot::{cluster_from_snapshot, leader_key};

/// How many reported garbage values [`DcsClient`] remembers: a value that
/// keeps changing must not grow the set without end.
const REPORTED_LIMIT: usize = 1024;

/// Garbage values already reported: key, the value's fingerprint and
/// problem.
type Reported = HashSet<(String, u64, String)>;

/// Why a DCS call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DcsError {
    #[error("DCS is not accessible: {0}")]
    Unavailable(String),
    #[error("DCS call '{0}' did not finish within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("DCS plugin failed in '{0}': {1}")]
    Plugin(&'static str, PluginError),
}

/// A cloneable handle on the DCS plugin.
#[derive(Clone)]
pub struct DcsClient {
    inner: Arc<dyn Dcs>,
    deadline: Arc<Mutex<Duration>>,
    /// Garbage values already reported (key, value and problem), so that a
    /// bad key is logged once, not every cycle. Bounded: forgotten (and so
    /// logged again) past [`REPORTED_LIMIT`] entries.
    reported: Arc<Mutex<Reported>>,
}

impl DcsClient {
    pub fn new(inner: Arc<dyn Dcs>, retry_timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Arc::new(Mutex::new(deadline_for(retry_timeout))),
            reported: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    fn deadline(&self) -> Duration {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&dyn Dcs) -> PluginResult<T> + Send + 'static,
    ) -> Result<T, DcsError> {
        self.call_with(what, self.deadline(), f).await
    }

    async fn call_with<T: Send + 'static>(
        &self,
        what: &'static str,
        deadline: Duration,
        f: impl FnOnce(&dyn Dcs) -> PluginResult<T> + Send + 'static,
    ) -> Result<T, DcsError> {
        let inner = Arc::clone(&self.inner);
        let job = crate::spawn_plugin_call(move || f(inner.as_ref()));
        match tokio::time::timeout(deadline, job).await {
            Err(_) => Err(DcsError::Timeout(what, deadline)),
            Ok(Err(join)) => Err(DcsError::Plugin(what, PluginError::new(ErrorKind::Panic, join.to_string()))),
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) if e.kind == ErrorKind::DcsUnavailable => Err(DcsError::Unavailable(e.message)),
            Ok(Ok(Err(e))) => Err(DcsError::Plugin(what, e)),
        }
    }

    /// Read the cluster; values somebody else wrote badly are logged (once)
    /// and left out.
    pub async fn get_cluster(&self) -> Result<Cluster, DcsError> {
        let snapshot = self.call("get_cluster", |d| d.get_cluster()).await?;
        self.read("get_cluster", move |reported| to_cluster(reported, snapshot)).await
    }

    /// Read every Citus group under the scope at once, whatever this
    /// node's own group (Patroni's `_get_mpp_cluster`): group number ->
    /// that group's cluster, sorted by group. Bad values are logged (once)
    /// and left out, as in [`DcsClient::get_cluster`].
    pub async fn get_mpp_groups(&self) -> Result<BTreeMap<i32, Cluster>, DcsError> {
        let groups = self.call("get_mpp_groups", |d| d.get_mpp_groups()).await?;
        self.read("get_mpp_groups", move |reported| {
            groups.into_iter().map(|(group, s)| (group, to_cluster(reported, s))).collect()
        })
        .await
    }

    /// Turn what a read returned into clusters on a blocking thread, after
    /// the call's deadline: a snapshot of a hundred thousand members takes
    /// a while to parse, and the REST API shares the daemon's runtime
    /// thread.
    async fn read<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Mutex<Reported>) -> T + Send + 'static,
    ) -> Result<T, DcsError> {
        let reported = Arc::clone(&self.reported);
        crate::spawn_plugin_call(move || f(&reported))
            .await
            .map_err(|join| DcsError::Plugin(what, PluginError::new(ErrorKind::Panic, join.to_string())))
    }

    pub async fn attempt_to_acquire_leader(&self) -> Result<bool, DcsError> {
        self.call("attempt_to_acquire_leader", |d| d.attempt_to_acquire_leader()).await
    }

    pub async fn update_leader(&self, leader: Option<&Leader>) -> Result<bool, DcsError> {
        let key = leader.map(leader_key);
        self.call("update_leader", move |d| d.update_leader(key.as_ref())).await
    }

    pub async fn take_leader(&self) -> Result<bool, DcsError> {
        self.call("take_leader", |d| d.take_leader()).await
    }

    pub async fn delete_leader(&self, leader: Option<&Leader>) -> Result<bool, DcsError> {
        let key = leader.map(leader_key);
        self.call("delete_leader", move |d| d.delete_leader(key.as_ref())).await
    }

    pub async fn initialize(&self, create_new: bool, sysid: String) -> Result<bool, DcsError> {
        self.call("initialize", move |d| d.initialize(create_new, &sysid)).await
    }

    pub async fn cancel_initialization(&self) -> Result<bool, DcsError> {
        self.call("cancel_initialization", |d| d.cancel_initialization()).await
    }

    pub async fn touch_member(&self, data: String) -> Result<bool, DcsError> {
        self.call("touch_member", move |d| d.touch_member(&data)).await
    }

    pub async fn set_config_value(&self, value: String, version: Option<String>) -> Result<bool, DcsError> {
        self.call("set_config_value", move |d| d.set_config_value(&value, version.as_deref())).await
    }

    pub async fn set_failover_value(&self, value: String, version: Option<String>) -> Result<bool, DcsError> {
        self.call("set_failover_value", move |d| d.set_failover_value(&value, version.as_deref())).await
    }

    pub async fn set_sync_state_value(
        &self,
        value: String,
        version: Option<String>,
    ) -> Result<Option<String>, DcsError> {
        self.call("set_sync_state_value", move |d| d.set_sync_state_value(&value, version.as_deref())).await
    }

    pub async fn delete_sync_state(&self, version: Option<String>) -> Result<bool, DcsError> {
        self.call("delete_sync_state", move |d| d.delete_sync_state(version.as_deref())).await
    }

    pub async fn set_history_value(&self, value: String) -> Result<bool, DcsError> {
        self.call("set_history_value", move |d| d.set_history_value(&value)).await
    }

    pub async fn write_status(&self, value: String) -> Result<bool, DcsError> {
        self.call("write_status", move |d| d.write_status(&value)).await
    }

    pub async fn write_failsafe(&self, value: String) -> Result<bool, DcsError> {
        self.call("write_failsafe", move |d| d.write_failsafe(&value)).await
    }

    pub async fn delete_cluster(&self) -> Result<bool, DcsError> {
        self.call("delete_cluster", |d| d.delete_cluster()).await
    }

    /// Apply new ttl / loop_wait / retry_timeout.
    pub async fn set_timing(&self, timing: DcsTiming) -> Result<(), DcsError> {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = deadline_for(timing.retry_timeout);
        self.call("set_timing", move |d| d.set_timing(timing)).await
    }

    /// Wait for the leader key to change (see the DCS contract). The call
    /// may legitimately take `timeout`, so its deadline is longer.
    pub async fn watch(&self, leader_version: Option<String>, timeout: Duration) -> Result<bool, DcsError> {
        let deadline = timeout + self.deadline();
        self.call_with("watch", deadline, move |d| d.watch(leader_version.as_deref(), timeout)).await
    }
}

/// A snapshot as a cluster; values somebody else wrote badly are logged
/// (once: `reported` remembers them) and left out.
fn to_cluster(reported: &Mutex<Reported>, snapshot: DcsSnapshot) -> Cluster {
    // What each value was, as a fingerprint: a value is reported once,
    // and neither the values (a megabyte each, maybe) nor a copy of every
    // member's are kept.
    let members: HashMap<String, u64> =
        snapshot.members.iter().map(|m| (format!("members/{}", m.name), fingerprint(&m.value))).collect();
    let of = |v: Option<&String>| v.map(|v| fingerprint(v));
    let config = of(snapshot.config.as_ref().map(|c| &c.value));
    let history = of(snapshot.history.as_ref().map(|c| &c.value));
    let failsafe = of(snapshot.failsafe.as_ref());
    let sync = of(snapshot.sync.as_ref().map(|c| &c.value));
    let failover = of(snapshot.failover.as_ref().map(|c| &c.value));
    let optime = of(snapshot.leader_optime.as_ref());
    let (cluster, problems) = cluster_from_snapshot(snapshot);
    if !problems.is_empty() {
        let mut reported = reported.lock().unwrap_or_else(|p| p.into_inner());
        for p in problems {
            let value = match p.key.as_str() {
                "config" => config,
                "history" => history,
                "failsafe" => failsafe,
                "sync" => sync,
                "failover" => failover,
                "optime/leader" => optime,
                // The leader rewrites `status` every cycle: one message
                // per distinct problem, not per value.
                "status" => Some(0),
                key => members.get(key).copied(),
            }
            .unwrap_or_default();
            if reported.len() >= REPORTED_LIMIT {
                reported.clear();
            }
            if reported.insert((p.key.clone(), value, p.problem.clone())) {
                tracing::warn!("{p}");
            }
        }
    }
    cluster
}

fn fingerprint(value: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// A plugin retries for retry_timeout; give it a little more before we
/// stop waiting.
fn deadline_for(retry_timeout: Duration) -> Duration {
    retry_timeout + Duration::from_millis(500)
}
