//! The HA loop: read the DCS, look at PostgreSQL, ask `palisade_ha` what
//! to do, do it, publish our member key, sleep until `loop_wait` passes or
//! something wakes us (the leader key changed, a task finished, an API
//! request, a signal).
//!
//! Architecture invariants:
//! - decisions are made only by `palisade_ha::decide`; this module
//!   answers its questions and carries out its actions;
//! - leader-key writes (acquire, renew, release) happen only on the loop's
//!   own task, never from a background task, so they cannot race;
//! - long actions (bootstrap, clone, start, promote, crash recovery) run as
//!   one background task at a time; the loop goes on renewing the lock.

mod actions;
mod cycle;
#[cfg(test)]
mod fake_pg;
pub mod member;
mod slots;
mod sync;
mod tasks;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use palisade_config::{EffectivePostgresql, GlobalConfig, LocalConfig};
use palisade_ha::Task;
use palisade_model::{Cluster, Role, State};
use palisade_plugin_host::dcs::DcsClient;
use palisade_plugin_host::plugins::ReplicaPlugin;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::peers::PeerClient;
use crate::pg::LocalPostgres;
use crate::status::StatusBoard;

/// The configuration in force: local file, dynamic settings, and what
/// PostgreSQL runs with.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub local: LocalConfig,
    pub global: GlobalConfig,
    /// The dynamic configuration as last seen (DCS, cache file or bootstrap.dcs).
    pub dynamic: Map<String, Value>,
    pub effective: EffectivePostgresql,
}

impl RuntimeConfig {
    /// Build the configuration in force; problems with the dynamic part
    /// are logged when `log_warnings` (once per new dynamic configuration).
    pub fn new(local: LocalConfig, dynamic: Map<String, Value>, log_warnings: bool) -> Self {
        let (global, warnings) = GlobalConfig::from_dynamic(&dynamic);
        if log_warnings {
            for w in warnings {
                tracing::warn!("dynamic configuration: {w}");
            }
        }
        let effective = palisade_config::effective_postgresql(&local, &global);
        let config = Self { local, global, dynamic, effective };
        if log_warnings {
            config.log_not_acted_on();
        }
        config
    }

    /// Log at WARNING every setting of this configuration that palisade
    /// accepts but does not act on yet (at start, on every reload and on
    /// every new dynamic configuration): nothing is silently ignored.
    pub fn log_not_acted_on(&self) {
        for n in palisade_config::not_acted_on(&self.local, &self.global) {
            tracing::warn!("{n}");
        }
    }

    pub fn settings(&self) -> palisade_ha::Settings {
        let g = &self.global;
        palisade_ha::Settings {
            ttl: g.ttl.as_secs_f64(),
            loop_wait: g.loop_wait.as_secs_f64(),
            maximum_lag_on_failover: g.maximum_lag_on_failover,
            primary_start_timeout: g.primary_start_timeout.as_secs_f64(),
            check_timeline: g.check_timeline,
            paused: g.pause,
            sync: palisade_ha::sync::SyncSettings {
                mode: match g.synchronous_mode {
                    _ if !g.is_synchronous_mode() => palisade_ha::sync::SyncMode::Off,
                    palisade_config::SynchronousMode::Quorum => palisade_ha::sync::SyncMode::Quorum,
                    _ => palisade_ha::sync::SyncMode::On,
                },
                strict: g.synchronous_mode_strict,
                node_count: g.synchronous_node_count.max(g.min_synchronous_nodes()),
                max_lag_on_syncnode: g.maximum_lag_on_syncnode,
            },
            failsafe_mode: g.failsafe_mode,
            standby_cluster: g.is_standby_cluster(),
        }
    }
}

/// What the daemon tracks about itself between cycles. Shared with
/// background tasks, which move it forward as they progress.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub role: Role,
    pub state: State,
    pub state_since: Instant,
    pub bootstrapping: bool,
    /// A start/stop/restart/role-change callback has been fired since the
    /// daemon started (Patroni's `cb_called`): `false` makes the next cycle
    /// fire `on_start` (or [`Tracked::cb_pending`]) for a running server.
    pub on_start_called: bool,
    /// The callback a start still in progress fires once PostgreSQL
    /// accepts connections (Patroni's `__cb_pending`): `on_restart` after
    /// a restart; `None` means `on_start`.
    pub cb_pending: Option<&'static str>,
    /// The member our recovery configuration streams from.
    pub following: Option<String>,
    /// Our recovery configuration replicates from the remote primary of
    /// the standby cluster, with the `standby_cluster` settings in force.
    pub following_remote: bool,
    pub released_leader_key_at: f64,
    /// A background task that finished and whose result the next cycle handles.
    pub finished: Option<(Task, bool)>,
    /// Until when our last lock renewal holds.
    pub leader_until: Option<Instant>,
    /// `primary_start_timeout` for the start in progress, from the
    /// `timeout` of a restart request (Patroni's `set_start_timeout`).
    pub start_timeout: Option<f64>,
    /// Actions under way that want this node out of the synchronous
    /// standbys (Patroni's `_disable_sync`): the member key says `nosync`.
    pub disable_sync: u32,
    /// Crash recovery in single-user mode ran since PostgreSQL last started.
    pub crash_recovery_done: bool,
    /// When the crash recovery in progress started.
    pub crash_recovery_started: Option<Instant>,
    /// pg_rewind ran and failed, and the data directory was kept.
    pub rewind_failed: bool,
    /// As the leader: a CHECKPOINT ran after the promotion, so pg_rewind
    /// sees the new timeline in pg_control (`None`: not known yet). The
    /// member key says `checkpoint_after_promote: false` until it is
    /// `Some(true)`, as Patroni's does.
    pub checkpoint_after_promote: Option<bool>,
}

impl Tracked {
    pub fn new(role: Role, state: State) -> Self {
        Self {
            role,
            state,
            state_since: Instant::now(),
            bootstrapping: false,
            on_start_called: false,
            cb_pending: None,
            following: None,
            following_remote: false,
            released_leader_key_at: 0.0,
            finished: None,
            leader_until: None,
            start_timeout: None,
            disable_sync: 0,
            crash_recovery_done: false,
            crash_recovery_started: None,
            rewind_failed: false,
            checkpoint_after_promote: None,
        }
    }

    pub fn set_state(&mut self, state: State) {
        if state == State::Running {
            self.start_timeout = None;
        }
        if self.state != state {
            self.state = state;
            self.state_since = Instant::now();
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader_until.is_some_and(|t| t > Instant::now())
    }
}

/// What wakes the loop besides the timer and the DCS watch.
#[derive(Debug)]
pub enum Event {
    /// Restart PostgreSQL now (`POST /restart`); the answer says whether
    /// it restarted and how it went.
    Restart {
        filter: palisade_ha::RestartFilter,
        timeout: Option<f64>,
        reply: tokio::sync::oneshot::Sender<(bool, String)>,
    },
    /// Rebuild this replica (`POST /reinitialize`); the answer is `None`
    /// when it started, else why not.
    Reinitialize { force: bool, from_leader: bool, reply: tokio::sync::oneshot::Sender<Option<String>> },
    /// A background task ended (its result is in `Tracked::finished`).
    TaskDone,
    /// Run a cycle now (an API request changed something).
    Wake,
    /// Re-read the configuration file.
    Reload,
    /// Stop PostgreSQL and the daemon.
    Shutdown,
}

/// State shared by the loop, its background tasks and the REST API.
pub struct Shared {
    pub config: RwLock<RuntimeConfig>,
    pub tracked: Mutex<Tracked>,
    pub status: StatusBoard,
    pub pg: Arc<dyn LocalPostgres>,
    pub dcs: DcsClient,
    pub peers: PeerClient,
    pub replicas: Vec<ReplicaPlugin>,
    pub callback: Option<Arc<dyn palisade_plugin_api::Callback>>,
    /// `postgresql.hooks`, run in order on their own worker.
    pub hooks: crate::hooks::Hooks,
    pub events: mpsc::UnboundedSender<Event>,
    /// Where the configuration was read from (for reloads).
    pub config_path: Option<std::path::PathBuf>,
    pub env: std::collections::BTreeMap<String, String>,
    /// A restart scheduled through the REST API.
    pub scheduled_restart: Mutex<Option<palisade_ha::ScheduledRestart>>,
    /// The MPP integration (Citus), when the configuration has a `citus`
    /// section (see `crate::mpp`).
    pub mpp: Option<Arc<crate::mpp::MppHost>>,
    /// The watchdog: only the loop's own task arms, feeds and disarms it.
    pub watchdog: Mutex<crate::watchdog::Watchdog>,
}

impl Shared {
    pub fn config(&self) -> RuntimeConfig {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn tracked(&self) -> Tracked {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn with_tracked<T>(&self, f: impl FnOnce(&mut Tracked) -> T) -> T {
        f(&mut self.tracked.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Serve this node's role and state now rather than at the end of the
    /// cycle: a task that starts PostgreSQL in the background (a clone,
    /// a restart) changes both between cycles, and the API must not go on
    /// saying `creating replica` about a replica that already streams
    /// (Patroni's API reads both live).
    pub fn publish_role_and_state(&self) {
        let t = self.tracked();
        self.status.update(|s| {
            s.role = t.role;
            s.state = t.state;
        });
    }

    /// Record a role. Callbacks are not fired here: each caller fires the
    /// one Patroni fires at that moment (see [`Shared::callback`]).
    pub fn set_role(&self, role: Role) -> Role {
        self.with_tracked(|t| std::mem::replace(&mut t.role, role))
    }

    pub fn with_watchdog<T>(&self, f: impl FnOnce(&mut crate::watchdog::Watchdog) -> T) -> T {
        f(&mut self.watchdog.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Bring the watchdog's settings up to date with the configuration in
    /// force and publish whether it is healthy (`/patroni`'s
    /// `watchdog_failed`).
    pub fn refresh_watchdog(&self) {
        let cfg = self.config();
        let settings = crate::watchdog::WatchdogSettings::new(&cfg.local.watchdog, &cfg.global);
        let (failed, running) = self.with_watchdog(|w| {
            w.reload(settings);
            (!w.is_healthy(), w.is_running())
        });
        self.status.update(|s| {
            s.watchdog_failed = failed;
            s.watchdog_running = running;
        });
    }

    /// Close the watchdog when this node does not lead (any more) or the
    /// cluster is paused (Patroni disables it on demotion, on pause and
    /// when PostgreSQL will not run as the primary).
    pub fn disarm_watchdog_unless_leading(&self) {
        let paused = self.config().global.pause;
        let leading = self.tracked().is_leader();
        let running = self.with_watchdog(|w| {
            if w.is_active() && (paused || !leading) {
                w.disable();
            }
            if !leading {
                w.lease_lost();
            }
            w.is_running()
        });
        self.status.update(|s| s.watchdog_running = running);
    }

    /// Close the watchdog during a demotion, once PostgreSQL takes no more
    /// writes (Patroni's `on_safepoint=self.watchdog.disable`). Runs on the
    /// loop's own task (inside the demotion's stop).
    pub fn disarm_watchdog_at_safepoint(&self) {
        let running = self.with_watchdog(|w| {
            if w.is_active() {
                w.disable();
            }
            w.is_running()
        });
        self.status.update(|s| s.watchdog_running = running);
    }

    pub fn scheduled_restart(&self) -> Option<palisade_ha::ScheduledRestart> {
        self.scheduled_restart.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Schedule a restart; `false` when one is scheduled already.
    pub fn schedule_restart(&self, restart: palisade_ha::ScheduledRestart) -> bool {
        let mut slot = self.scheduled_restart.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return false;
        }
        *slot = Some(restart);
        true
    }

    /// Forget the scheduled restart; `false` when there was none.
    pub fn delete_scheduled_restart(&self) -> bool {
        self.scheduled_restart.lock().unwrap_or_else(|p| p.into_inner()).take().is_some()
    }

    /// Fire a callback (`on_start`, `on_stop`, `on_restart`, `on_reload`,
    /// `on_role_change`) without waiting for it, as Patroni's `call_nowait`:
    /// never while bootstrapping a new cluster; `on_reload` aside, firing one
    /// counts as "callbacks called" (Patroni's `cb_called`); the role passed
    /// is the one recorded now, `primary` while promoting. The configured
    /// hooks of the event (`postgresql.hooks`) are queued at the same time.
    ///
    /// The plugin is handed the event from the caller's thread: it only
    /// starts the command (or queues it behind one that is being killed),
    /// so events reach it in the order they happen, and one fired just
    /// before the daemon exits (`on_stop` at shutdown) runs.
    pub fn callback(&self, action: &'static str) {
        if let Some(event) = self.callback_event(action) {
            if let Some(cb) = self.callback.as_deref() {
                if let Err(e) = cb.on_event(&event) {
                    tracing::error!("callback {} failed: {e}", event.action);
                }
            }
        }
    }

    fn callback_event(&self, action: &str) -> Option<palisade_plugin_api::CallbackEvent> {
        let role = self.with_tracked(|t| {
            if t.bootstrapping {
                return None;
            }
            if action != "on_reload" {
                t.on_start_called = true;
            }
            Some(t.role)
        })?;
        let role = if role == Role::Promoted { Role::Primary } else { role };
        let config = self.config();
        if let Some(hooks) = config.local.postgresql.hooks.get(action) {
            self.hooks.fire(action, hooks, role.as_str(), &config.local.scope);
        }
        Some(palisade_plugin_api::CallbackEvent {
            action: action.to_string(),
            role: role.as_str().to_string(),
            scope: config.local.scope.clone(),
            name: config.local.name.clone(),
        })
    }
}

/// The loop's own state.
pub struct Runner {
    pub shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Event>,
    task: Option<(Task, JoinHandle<()>)>,
    cluster: Option<Arc<Cluster>>,
    /// Members and leader of the last snapshot that had a leader (the
    /// snapshot shared, not its members copied: a DCS may list thousands).
    old_members: Arc<Cluster>,
    old_leader: Option<String>,
    /// Version of the dynamic configuration taken last.
    config_version: Option<String>,
    /// PostgreSQL parameters changed (dynamic configuration or reload)
    /// and are not yet written and reloaded: applied as soon as
    /// PostgreSQL runs and no background task owns it.
    parameters_pending: bool,
    previous_wal_position: Option<u64>,
    /// Slot retention, copies, readiness and the `status` written last.
    slot_memory: slots::SlotMemory,
    /// Epoch seconds of the last successful DCS read.
    dcs_last_seen: i64,
    /// The rejoin verdict and what it was computed for.
    divergence: Option<(String, palisade_ha::Rejoin)>,
    /// What the leader remembers about synchronous replication.
    sync: palisade_ha::sync::SyncTracker,
    /// The `failsafe` key as last read or written (Patroni's
    /// `dcs.failsafe`): what a primary goes by when the DCS is out of reach.
    last_failsafe: Option<Map<String, Value>>,
    /// `log.deduplicate_heartbeat_logs`: the last heartbeat line logged.
    heartbeat: crate::logging::heartbeat::HeartbeatFilter,
    /// The postmaster and primary-ness the MPP coordinator saw last (a
    /// change makes the plugin read its metadata again).
    mpp_seen: Option<(Option<i32>, bool)>,
    /// After a role change: waits for the WAL receiver to stream, then
    /// wakes the loop to publish it (see `member::StreamWatch`).
    stream_watch: member::StreamWatch,
    /// This node held the leader key at the end of the last cycle.
    was_leader: bool,
}

/// A watch that answers sooner than this after it started answered "at
/// once": with nothing to wait for, or a broken plugin.
const QUICK_WAKE: std::time::Duration = std::time::Duration::from_millis(100);

/// The longest back-off after watches that answer at once. The loop does
/// not watch while it rests, so this bounds how long a node can miss a
/// change (with `loop_wait` at a year, an unbounded back-off could leave a
/// replica deaf to the DCS for hours).
const MOST_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// How much of the nap to sleep after the DCS watch returned `woke` into
/// it (`ok`: it answered rather than failed), given how many watches in a
/// row answered at once before (`quick_before`); and the new count.
///
/// - A failed watch waits out the nap: one that fails at once would make
///   the loop spin while the DCS is down.
/// - A watch that waited for its event (a renewal of the leader key on
///   etcd's v2 API, the key's deletion when a leader dies) is acted on at
///   once, however many came before: the leader race starts on it.
/// - A watch that answers at once is acted on at once the first time (the
///   new leader's key written just after the old one went), then backs
///   off: 100 ms, 200 ms, 400 ms... up to 1 s or the rest of the nap,
///   whichever is shorter. A plugin whose watch always answers at once
///   (found by `tests/tests/plugin_garbage.rs`, where the loop ran a cycle
///   every millisecond) ends up at one cycle a second, or one per
///   `loop_wait` if that is shorter.
fn rest_after_watch(
    ok: bool,
    woke: std::time::Duration,
    nap: std::time::Duration,
    quick_before: u32,
) -> (std::time::Duration, u32) {
    let rest = nap.saturating_sub(woke);
    if !ok {
        return (rest, 0);
    }
    if woke >= QUICK_WAKE || rest.is_zero() {
        return (std::time::Duration::ZERO, 0);
    }
    let quick = quick_before.saturating_add(1);
    if quick == 1 {
        return (std::time::Duration::ZERO, quick);
    }
    let backoff = QUICK_WAKE.saturating_mul(1u32 << (quick - 2).min(16)).min(MOST_BACKOFF);
    (backoff.min(rest), quick)
}

impl Runner {
    pub fn new(shared: Arc<Shared>, rx: mpsc::UnboundedReceiver<Event>) -> Self {
        Self {
            shared,
            rx,
            task: None,
            cluster: None,
            old_members: Arc::default(),
            old_leader: None,
            sync: palisade_ha::sync::SyncTracker::default(),
            config_version: None,
            parameters_pending: false,
            previous_wal_position: None,
            slot_memory: slots::SlotMemory::default(),
            dcs_last_seen: 0,
            divergence: None,
            last_failsafe: None,
            heartbeat: Default::default(),
            mpp_seen: None,
            stream_watch: member::StreamWatch::default(),
            was_leader: false,
        }
    }

    /// Run until asked to stop. Returns the process exit status.
    pub async fn run(mut self) -> std::process::ExitCode {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
        else {
            tracing::error!("cannot install signal handlers");
            return std::process::ExitCode::FAILURE;
        };
        // Whether the last nap was cut short by the watch.
        let mut quick_wakes = 0u32;
        loop {
            let started = Instant::now();
            let outcome = self.cycle().await;
            if let Some(message) = outcome.fatal {
                tracing::error!("{message}");
                if self.shared.with_watchdog(|w| w.is_running()) {
                    // PostgreSQL is left as it is: an armed device stays
                    // armed and fences it unless a new daemon feeds it.
                    tracing::warn!("exiting with the watchdog armed: it fires unless the daemon is started again");
                }
                return std::process::ExitCode::FAILURE;
            }
            // Give back what the cycle (and the REST requests since the
            // last one) no longer use: the stack its calls went deep on,
            // and free heap.
            palisade_plugin_api::stack::release_unused();
            crate::memory::trim();
            let loop_wait = self.shared.config().global.loop_wait;
            let mut nap = loop_wait.saturating_sub(started.elapsed());
            if let Some(at) = outcome.wake_at {
                let until = at - crate::now();
                nap = nap.min(palisade_config::limits::seconds_f64(until));
            }
            let version = self.watch_version();
            let dcs = self.shared.dcs.clone();
            let watching = Instant::now();
            let watch = dcs.watch(version, nap);
            tokio::pin!(watch);
            // What is left of the nap after the watch answered (a failed
            // watch, a back-off): events still end it, as they end a watch.
            let rest = tokio::time::sleep(Duration::ZERO);
            tokio::pin!(rest);
            let mut watched = false;
            let mut again = true;
            while again {
                again = false;
                tokio::select! {
                    r = &mut watch, if !watched => {
                        watched = true;
                        if let Err(e) = &r {
                            tracing::debug!("watch: {e}");
                        }
                        let (left, quick) = rest_after_watch(r.is_ok(), watching.elapsed(), nap, quick_wakes);
                        quick_wakes = quick;
                        if !left.is_zero() {
                            rest.as_mut().reset(tokio::time::Instant::now() + left);
                            again = true;
                        }
                    }
                    _ = &mut rest, if watched => {}
                    ev = self.rx.recv() => match ev {
                        Some(Event::Shutdown) | None => return self.shutdown().await,
                        Some(Event::Reload) => self.reload().await,
                        Some(Event::TaskDone | Event::Wake) => {}
                        Some(Event::Restart { filter, timeout, reply }) => self.restart_now(filter, timeout, reply),
                        Some(Event::Reinitialize { force, from_leader, reply }) => {
                            let _ = reply.send(self.reinitialize(force, from_leader));
                        }
                    },
                    _ = term.recv() => return self.shutdown().await,
                    _ = int.recv() => return self.shutdown().await,
                    _ = hup.recv() => { self.reload().await; again = true; }
                }
            }
        }
    }

    /// Watch the leader key only when following a leader: on a change we
    /// want to react at once. The leader, a node busy with a task, and a
    /// cluster without leader just wait.
    fn watch_version(&self) -> Option<String> {
        let me = &self.shared.config().local.name;
        if self.task.is_some() {
            return None;
        }
        let cluster = self.cluster.as_ref()?;
        let leader = cluster.leader.as_ref()?;
        (leader.name != *me).then(|| leader.version.clone())
    }

    /// Re-read the configuration file (SIGHUP, `POST /reload`).
    async fn reload(&mut self) {
        let path = self.shared.config_path.clone();
        // The log layout is checked here too: a file the daemon would not
        // start with is not applied.
        let loaded = palisade_config::load(path.as_deref(), &self.shared.env).and_then(|l| {
            crate::logging::check(&l.config.log)
                .map(|()| l)
                .map_err(|e| vec![palisade_config::ConfigError { path: String::new(), message: e }])
        });
        match loaded {
            Err(errors) => {
                // Patroni's words, then what is wrong; Python prints a
                // missing path as None.
                let file = path.as_deref().map_or("None".to_string(), |p| p.display().to_string());
                tracing::error!("Failed to reload config_file={file}");
                for e in errors {
                    tracing::error!("reload: {e}");
                }
                tracing::error!("configuration not reloaded: the file has errors");
            }
            Ok(loaded) => {
                // As Patroni's daemon: the log first, every setting of it.
                crate::logging::reload(&loaded.config.log);
                for w in loaded.warnings {
                    tracing::warn!("{w}");
                }
                for w in crate::check_connection_settings(&loaded.config) {
                    tracing::warn!("{w}");
                }
                let dynamic = self.shared.config().dynamic;
                let new = RuntimeConfig::new(loaded.config, dynamic, false);
                new.log_not_acted_on();
                *self.shared.config.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
                self.config_version = None;
                self.parameters_pending = true;
                self.shared.pg.update(&new).await;
                if self.shared.mpp.is_some() {
                    // The MPP plugin learns the new local connection, and
                    // the parameters it adjusts follow it.
                    crate::mpp::refresh_local(&self.shared);
                    self.shared.pg.update(&new).await;
                }
                let running = self.shared.tracked().state == State::Running;
                let fired = running && self.apply_pending_parameters().await;
                tracing::info!("Reloaded configuration");
                // Patroni reloads PostgreSQL on SIGHUP and fires on_reload
                // after a successful `pg_ctl reload` (once).
                if running && !fired {
                    self.shared.callback("on_reload");
                }
                let _ = self.shared.events.send(Event::Wake);
            }
        }
    }

    /// SIGTERM: stop PostgreSQL cleanly and hand the lock over at once.
    async fn shutdown(mut self) -> std::process::ExitCode {
        tracing::info!("shutting down");
        if let Some((task, handle)) = self.task.take() {
            tracing::info!("cancelling {}", task.describe());
            for r in &self.shared.replicas {
                r.plugin.cancel();
            }
            handle.abort();
        }
        let cfg = self.shared.config();
        if cfg.global.pause {
            tracing::info!("Leader key is not deleted and PostgreSQL is not stopped due to paused state");
            self.shared.with_watchdog(|w| w.disable());
            return std::process::ExitCode::SUCCESS;
        }
        let leader = self.cluster.as_ref().and_then(|c| c.leader.clone()).filter(|l| l.name == cfg.local.name);
        let released = sync::leave_sync_standbys(&self.shared).await;
        if leader.is_some() {
            crate::mpp::notify_coordinator(&self.shared, crate::mpp::WorkerEvent::BeforeDemote).await;
        }
        self.shared.with_tracked(|t| t.set_state(State::Stopping));
        // The loop stops feeding the device now: close it as the stop
        // begins (Patroni closes it once the postmaster took the signal).
        self.shared.with_watchdog(|w| w.disable());
        let stopped = match actions::primary_stop_timeout(&self.shared) {
            Some(timeout) => self.shared.pg.stop_within(crate::pg::StopMode::Fast, timeout).await,
            None => self.shared.pg.stop_signalled(crate::pg::StopMode::Fast).await,
        };
        if released {
            sync::rejoin_sync_standbys(&self.shared);
        }
        match stopped {
            Ok((signalled, checkpoint)) => {
                self.shared.with_tracked(|t| t.set_state(State::Stopped));
                if signalled {
                    // Started before the daemon exits (see `callback`).
                    self.shared.callback("on_stop");
                }
                if let Some(leader) = &leader {
                    if let Some(lsn) = checkpoint {
                        let _ = self.shared.dcs.write_status(self.final_status(lsn)).await;
                    }
                    match self.shared.dcs.delete_leader(Some(leader)).await {
                        Ok(_) => tracing::info!("Leader key released"),
                        Err(e) => tracing::error!("could not release the leader key: {e}"),
                    }
                }
                self.touch_member().await;
            }
            Err(e) => {
                tracing::error!("PostgreSQL shutdown failed, leader key not removed.");
                tracing::error!("PostgreSQL shutdown: {e}");
            }
        }
        // `postgresql.hooks` already queued (on_stop's among them) run to
        // their end or their timeout before the daemon exits.
        self.shared.hooks.drain().await;
        std::process::ExitCode::SUCCESS
    }
}

/// What a cycle tells the loop.
#[derive(Default)]
pub struct CycleOutcome {
    pub wake_at: Option<f64>,
    pub fatal: Option<String>,
}
