//! The host's side of the MPP integration (Citus): where the daemon calls
//! the MPP plugin, at the moments Patroni 4.1 calls its `mpp_handler`.
//!
//! - parameters: [`MppHost::adjust`] changes the PostgreSQL parameters
//!   before postgresql.conf and the command line are written (Patroni's
//!   `adjust_postgres_gucs`);
//! - bootstrap: after a new cluster was initialised with initdb, on the
//!   coordinator and on workers ([`MppHost::bootstrap`]);
//! - on the coordinator's primary, every HA cycle: the metadata is brought
//!   in line with every group's cluster ([`MppHost::sync_meta_data`]);
//! - `POST /citus` (and `/mpp`) on the coordinator: a worker's event is
//!   handed to the plugin ([`MppHost::handle_event`]);
//! - on a worker group's primary: the coordinator's leader is told before a
//!   demotion, before a promotion and once running as the new primary
//!   ([`notify_coordinator`]).
//!
//! Plugin calls block; they run on a blocking thread, never on the loop's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_model::{Cluster, Role, State};
use palisade_plugin_api::{ErrorKind, Mpp, MppCluster, MppLocal, MppMember, MppSlot, PluginError};
use serde_json::{json, Map, Value};

use palisade_plugin_host::dcs::DcsClient;

use crate::peers::PeerClient;
use crate::runner::{RuntimeConfig, Shared};

/// The events a worker's primary sends (Patroni's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerEvent {
    BeforeDemote,
    BeforePromote,
    AfterPromote,
}

impl WorkerEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BeforeDemote => "before_demote",
            Self::BeforePromote => "before_promote",
            Self::AfterPromote => "after_promote",
        }
    }
}

/// Why a call of the MPP plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum MppError {
    #[error("MPP plugin call '{0}' did not finish within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("MPP plugin call '{0}' failed: {1}")]
    Plugin(&'static str, PluginError),
}

impl MppError {
    /// The plugin refused what it was given (an invalid event body).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::Plugin(_, e) if e.kind == ErrorKind::Config)
    }
}

/// The loaded MPP plugin and what the host remembers for it.
pub struct MppHost {
    plugin: Arc<dyn Mpp>,
    group: i32,
    coordinator_group: i32,
    /// The (state, role) last written to our member key (Patroni's
    /// `_last_state`): a change to (running, primary) tells the
    /// coordinator `after_promote`.
    last_state: Mutex<Option<(State, Role)>>,
}

impl std::fmt::Debug for MppHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MppHost").field("group", &self.group).finish_non_exhaustive()
    }
}

impl MppHost {
    pub fn new(plugin: Box<dyn Mpp>) -> Self {
        let plugin: Arc<dyn Mpp> = Arc::from(plugin);
        let group = plugin.group();
        let coordinator_group = plugin.coordinator_group();
        Self { plugin, group, coordinator_group, last_state: Mutex::new(None) }
    }

    pub fn group(&self) -> i32 {
        self.group
    }

    pub fn is_coordinator(&self) -> bool {
        self.group == self.coordinator_group
    }

    pub fn is_worker(&self) -> bool {
        !self.is_coordinator()
    }

    /// Let the plugin change the parameters PostgreSQL is about to run
    /// with (`shared_preload_libraries`, `wal_level`...). The plugin only
    /// computes; a failure is logged and the parameters stay as they were.
    pub fn adjust(&self, parameters: &mut Map<String, Value>) {
        let text = Value::Object(parameters.clone()).to_string();
        match self.plugin.adjust_parameters(&text) {
            Ok(out) => match serde_json::from_str::<Value>(&out) {
                Ok(Value::Object(adjusted)) => *parameters = adjusted,
                Ok(other) => tracing::error!(
                    "MPP plugin: adjust_parameters gave {} instead of an object; parameters left as they are",
                    palisade_model::json_kind(&other)
                ),
                Err(e) => {
                    tracing::error!("MPP plugin: adjust_parameters gave no JSON ({e}); parameters left as they are")
                }
            },
            Err(e) => tracing::error!("MPP plugin: adjust_parameters failed: {e}; parameters left as they are"),
        }
    }

    /// Run a plugin call on a blocking thread, waiting at most `deadline`.
    async fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        deadline: Duration,
        f: impl FnOnce(&dyn Mpp) -> palisade_plugin_api::PluginResult<T> + Send + 'static,
    ) -> Result<T, MppError> {
        let plugin = Arc::clone(&self.plugin);
        let job = palisade_plugin_host::spawn_plugin_call(move || f(plugin.as_ref()));
        match tokio::time::timeout(deadline, job).await {
            Err(_) => Err(MppError::Timeout(what, deadline)),
            Ok(Err(join)) => Err(MppError::Plugin(what, PluginError::new(ErrorKind::Panic, join.to_string()))),
            Ok(Ok(Err(e))) => Err(MppError::Plugin(what, e)),
            Ok(Ok(Ok(v))) => Ok(v),
        }
    }

    /// Tell the plugin how to reach the local server and what our
    /// `conn_url` is (at start and after every reload).
    pub fn set_local(&self, local: &MppLocal) {
        if let Err(e) = self.plugin.set_local(local) {
            tracing::error!("MPP plugin: {e}");
        }
    }

    /// After initdb made a new cluster: the plugin creates its database and
    /// extension (and, on the coordinator, registers it).
    pub async fn bootstrap(&self, deadline: Duration) -> Result<(), MppError> {
        self.call("bootstrap", deadline, |p| p.bootstrap()).await
    }

    /// `POST /citus` on the coordinator's leader: hand the worker's event
    /// to the plugin, with the clusters of every group. A `before_demote`
    /// returns once the coordinator holds the worker's metadata lock (the
    /// plugin waits for that), so the deadline is the event's `timeout`
    /// (the worker's ttl) and a margin.
    pub async fn handle_event(
        &self,
        event: &Map<String, Value>,
        clusters: &BTreeMap<i32, Cluster>,
    ) -> Result<(), MppError> {
        let timeout =
            event.get("timeout").and_then(Value::as_f64).filter(|t| t.is_finite() && *t > 0.0).unwrap_or(30.0);
        let deadline = Duration::from_secs_f64(timeout.min(3600.0)) + Duration::from_secs(5);
        let text = Value::Object(event.clone()).to_string();
        let clusters = mpp_clusters(clusters);
        self.call("handle_event", deadline, move |p| p.handle_event(&clusters, &text)).await
    }

    /// On the coordinator's primary, every cycle: bring the metadata in
    /// line with every group's cluster (the plugin queues the work).
    pub async fn sync_meta_data(&self, clusters: &BTreeMap<i32, Cluster>, deadline: Duration) -> Result<(), MppError> {
        let clusters = mpp_clusters(clusters);
        self.call("sync_meta_data", deadline, move |p| p.sync_meta_data(&clusters)).await
    }

    /// The coordinator's primary is about to stop or be demoted.
    pub fn on_demote(&self) {
        self.plugin.on_demote();
    }

    /// PostgreSQL was started or promoted: the plugin reads its metadata
    /// again.
    pub fn schedule_cache_rebuild(&self) {
        self.plugin.schedule_cache_rebuild();
    }

    /// Whether a slot the host did not create belongs to the plugin.
    pub fn ignore_replication_slot(&self, slot: &MppSlot, is_primary: bool) -> bool {
        self.plugin.ignore_replication_slot(slot, is_primary)
    }

    /// Our member key was written with `state` and `role`: `true` when this
    /// is the change to a running primary (the worker then tells the
    /// coordinator `after_promote`, as Patroni's `touch_member`).
    pub fn member_written(&self, state: State, role: Role) -> bool {
        let new = (state, role);
        let mut last = self.last_state.lock().unwrap_or_else(|p| p.into_inner());
        let changed = *last != Some(new) && new == (State::Running, Role::Primary);
        *last = Some(new);
        changed
    }

    /// What a worker's primary sends to the coordinator (Patroni's body):
    /// the event, our group and name, `timeout` (our ttl: how long the
    /// coordinator may keep the metadata lock) and `cooldown` (our
    /// `retry_timeout`, for `citus_update_node`).
    pub fn event_body(&self, event: WorkerEvent, name: &str, ttl: Duration, retry_timeout: Duration) -> Value {
        json!({
            "type": event.as_str(),
            "group": self.group,
            "leader": name,
            "timeout": seconds(ttl),
            "cooldown": seconds(retry_timeout),
        })
    }
}

/// Whole seconds as an integer (as Patroni sends them), else a float.
fn seconds(d: Duration) -> Value {
    if d.subsec_nanos() == 0 {
        json!(d.as_secs())
    } else {
        json!(d.as_secs_f64())
    }
}

/// Hand the plugin how to reach the local server and our `conn_url`
/// (at start and after every reload, as the settings may have changed).
pub fn refresh_local(shared: &Shared) {
    if let Some(mpp) = shared.mpp.as_deref() {
        let cfg = shared.config();
        mpp.set_local(&MppLocal {
            conn: shared.pg.superuser_conn_params(),
            // The host's own connections always go to `postgres` (see
            // `postgresql.database` in docs/configuration.md).
            database: "postgres".into(),
            conn_url: crate::runner::member::postgres_url(&cfg.local.postgresql.connect_address),
        });
    }
}

/// Every group's cluster as the plugin reads it.
pub fn mpp_clusters(clusters: &BTreeMap<i32, Cluster>) -> Vec<MppCluster> {
    clusters
        .iter()
        .map(|(group, cluster)| MppCluster {
            group: *group,
            leader: cluster.leader_name().map(String::from),
            members: cluster
                .members
                .iter()
                .map(|m| MppMember {
                    name: m.name.clone(),
                    conn_url: m.conn_url().map(String::from),
                    role: m.role().map(String::from),
                    state: m.data.get("state").and_then(Value::as_str).map(String::from),
                    noloadbalance: m.tags().noloadbalance(),
                })
                .collect(),
        })
        .collect()
}

/// On a worker group's primary: tell the coordinator's leader about
/// `event` (`POST /citus`), as Patroni's `notify_mpp_coordinator`. The
/// call waits up to our ttl for `before_demote` (the coordinator answers
/// once it holds the metadata lock), but never past the end of our leader
/// lease nor past the moment a running watchdog would fire (the loop
/// renews and feeds nothing meanwhile: a primary must not outlive its lock
/// waiting for the coordinator), and two seconds otherwise, with
/// no retry. A coordinator that is down or has no leader is logged and
/// skipped: the coordinator's own cycle brings `pg_dist_node` in line with
/// the DCS later.
pub async fn notify_coordinator(shared: &Shared, event: WorkerEvent) {
    if let Some(mpp) = shared.mpp.as_deref().filter(|m| m.is_worker()) {
        let cfg = shared.config();
        let lease_left = shared.tracked().leader_until.map(|t| t.saturating_duration_since(std::time::Instant::now()));
        // A running watchdog fires `ttl - timeout` before the lease ends
        // (it was fed with the last renewal): the wait ends before that.
        let margin = shared.with_watchdog(|w| watchdog_margin(w.is_running(), w.timeout(), cfg.global.ttl));
        let lease_left = lease_left.map(|l| l.saturating_sub(margin));
        let timeout = event_timeout(event, cfg.global.ttl, lease_left);
        send_event(mpp, &shared.dcs, &shared.peers, &cfg, event, timeout).await;
    }
}

/// How long before the end of the lease a watchdog fed at the last renewal
/// fires: `ttl` minus its timeout (in seconds) when it runs, else nothing.
fn watchdog_margin(running: bool, timeout_secs: i64, ttl: Duration) -> Duration {
    match u64::try_from(timeout_secs) {
        Ok(t) if running => ttl.saturating_sub(Duration::from_secs(t)),
        _ => Duration::ZERO,
    }
}

/// How long a worker waits for the coordinator's answer to `event`: `ttl`
/// for `before_demote`, cut to what is left of our lease when we hold
/// one; two seconds for the others.
fn event_timeout(event: WorkerEvent, ttl: Duration, lease_left: Option<Duration>) -> Duration {
    match (event, lease_left) {
        (WorkerEvent::BeforeDemote, Some(left)) => ttl.min(left).max(Duration::from_millis(100)),
        (WorkerEvent::BeforeDemote, None) => ttl,
        _ => Duration::from_secs(2),
    }
}

/// [`notify_coordinator`] without waiting (an `after_promote` from the
/// loop: Patroni waits up to two seconds; the loop need not).
pub fn notify_coordinator_later(shared: &Shared, event: WorkerEvent) {
    if let Some(mpp) = shared.mpp.clone().filter(|m| m.is_worker()) {
        let (dcs, peers, cfg) = (shared.dcs.clone(), shared.peers.clone(), shared.config());
        let timeout = event_timeout(event, cfg.global.ttl, None);
        tokio::spawn(async move { send_event(&mpp, &dcs, &peers, &cfg, event, timeout).await });
    }
}

/// Before a graceful demotion: the coordinator's primary forgets its
/// pending metadata work (Patroni's `on_demote`); a worker's tells the
/// coordinator `before_demote` and waits for its answer.
pub async fn before_demote(shared: &Shared) {
    match shared.mpp.as_deref() {
        Some(mpp) if mpp.is_coordinator() => mpp.on_demote(),
        Some(_) => notify_coordinator(shared, WorkerEvent::BeforeDemote).await,
        None => {}
    }
}

async fn send_event(
    mpp: &MppHost,
    dcs: &DcsClient,
    peers: &PeerClient,
    cfg: &RuntimeConfig,
    event: WorkerEvent,
    timeout: Duration,
) {
    let coordinator = match dcs.get_mpp_groups().await {
        Ok(mut groups) => groups.remove(&mpp.coordinator_group),
        Err(e) => {
            tracing::warn!("cannot read the coordinator group to send {}: {e}", event.as_str());
            return;
        }
    };
    let Some(leader) = coordinator.as_ref().and_then(|c| c.leader_member()).filter(|m| m.conn_url().is_some()) else {
        tracing::debug!("no coordinator leader to send {} to", event.as_str());
        return;
    };
    let Some(api_url) = leader.api_url() else {
        return;
    };
    let body = mpp.event_body(event, &cfg.local.name, cfg.global.ttl, cfg.global.retry_timeout);
    if let Err(e) = peers.post(api_url, "citus", &body, timeout).await {
        tracing::warn!("Request to Citus coordinator leader {} {api_url} failed: {e}", leader.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(i32);

    impl Mpp for Fake {
        fn group(&self) -> i32 {
            self.0
        }
        fn coordinator_group(&self) -> i32 {
            0
        }
        fn set_local(&self, _: &MppLocal) -> palisade_plugin_api::PluginResult<()> {
            Ok(())
        }
        fn adjust_parameters(&self, parameters_json: &str) -> palisade_plugin_api::PluginResult<String> {
            let mut v: Map<String, Value> = serde_json::from_str(parameters_json).expect("object");
            v.insert("wal_level".into(), json!("logical"));
            Ok(Value::Object(v).to_string())
        }
        fn bootstrap(&self) -> palisade_plugin_api::PluginResult<()> {
            Ok(())
        }
        fn sync_meta_data(&self, _: &[MppCluster]) -> palisade_plugin_api::PluginResult<()> {
            Ok(())
        }
        fn handle_event(&self, _: &[MppCluster], _: &str) -> palisade_plugin_api::PluginResult<()> {
            Ok(())
        }
        fn on_demote(&self) {}
        fn schedule_cache_rebuild(&self) {}
        fn ignore_replication_slot(&self, _: &MppSlot, _: bool) -> bool {
            false
        }
    }

    #[test]
    fn roles_and_events() {
        let worker = MppHost::new(Box::new(Fake(2)));
        assert!(worker.is_worker() && !worker.is_coordinator());
        assert!(MppHost::new(Box::new(Fake(0))).is_coordinator());
        let body = worker.event_body(WorkerEvent::BeforeDemote, "w1", Duration::from_secs(30), Duration::from_secs(10));
        assert_eq!(body, json!({"type": "before_demote", "group": 2, "leader": "w1", "timeout": 30, "cooldown": 10}));
        let body =
            worker.event_body(WorkerEvent::AfterPromote, "w1", Duration::from_millis(5500), Duration::from_secs(1));
        assert_eq!(body["timeout"], json!(5.5));
    }

    /// `after_promote` goes out once per change to a running primary, as
    /// Patroni compares with the last state it wrote.
    #[test]
    fn after_promote_once_per_change_to_running_primary() {
        let m = MppHost::new(Box::new(Fake(1)));
        let steps = [
            (State::Running, Role::Replica, false),
            (State::Running, Role::Promoted, false),
            (State::Running, Role::Primary, true),
            (State::Running, Role::Primary, false),
            (State::Stopped, Role::Demoted, false),
            (State::Running, Role::Primary, true),
        ];
        for (state, role, notify) in steps {
            assert_eq!(m.member_written(state, role), notify, "{state:?} {role:?}");
        }
    }

    /// Patroni's timeouts, except that `before_demote` never waits past the
    /// end of our lease.
    #[test]
    fn event_timeouts() {
        let s = Duration::from_secs;
        let cases = [
            (WorkerEvent::BeforeDemote, s(30), None, s(30)),
            (WorkerEvent::BeforeDemote, s(30), Some(s(28)), s(28)),
            (WorkerEvent::BeforeDemote, s(30), Some(s(40)), s(30)),
            (WorkerEvent::BeforeDemote, s(30), Some(s(0)), Duration::from_millis(100)),
            (WorkerEvent::BeforePromote, s(30), Some(s(28)), s(2)),
            (WorkerEvent::AfterPromote, s(30), None, s(2)),
        ];
        for (event, ttl, left, want) in cases {
            assert_eq!(event_timeout(event, ttl, left), want, "{event:?} {left:?}");
        }
    }

    #[test]
    fn the_watchdog_shortens_the_wait_by_its_margin() {
        let s = Duration::from_secs;
        assert_eq!(watchdog_margin(true, 25, s(30)), s(5));
        assert_eq!(watchdog_margin(false, 25, s(30)), Duration::ZERO);
        assert_eq!(watchdog_margin(true, -1, s(30)), Duration::ZERO);
        assert_eq!(watchdog_margin(true, 40, s(30)), Duration::ZERO);
    }

    #[test]
    fn parameters_are_adjusted() {
        let m = MppHost::new(Box::new(Fake(0)));
        let mut p = Map::new();
        p.insert("wal_level".into(), json!("replica"));
        m.adjust(&mut p);
        assert_eq!(p["wal_level"], json!("logical"));
    }
}
