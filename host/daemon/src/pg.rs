//! The glue between the HA loop and `palisade-postgres`: observing the
//! local server the way `palisade-ha` wants to see it, and the composite
//! operations the runner's actions and tasks need. The runner reaches it
//! only through the [`LocalPostgres`] trait, so that its tests can put a
//! scripted fake in its place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use palisade_config::BootstrapConfig;
use palisade_ha::sync::{PrimarySync, WalSender};
use palisade_ha::{DataDir, Pg};
use palisade_model::{HistoryLine, Member, Role};
use palisade_postgres::conf::{format_dsn, pgpass_content, write_pgpass, FollowTarget};
use palisade_postgres::datadir::{history_lines_for_dcs, read_timeline_history, DataDirState, HistoryEntry};
use palisade_postgres::sql::PgStatus;
use palisade_postgres::{Divergence, PgSettings, Postgres, StartOutcome, StopOptions};
use serde_json::{Map, Value};

use crate::runner::RuntimeConfig;
use crate::status::PgSnapshot;

pub use palisade_postgres::{StopMode, SyncNames};

/// A PostgreSQL operation failed (the message says what and why).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PgFailure(pub String);

impl From<palisade_postgres::PgError> for PgFailure {
    fn from(e: palisade_postgres::PgError) -> Self {
        Self(e.to_string())
    }
}

type Result<T> = std::result::Result<T, PgFailure>;

impl From<palisade_postgres::sql::SqlError> for PgFailure {
    fn from(e: palisade_postgres::sql::SqlError) -> Self {
        Self(e.to_string())
    }
}

/// Advancing a logical slot failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AdvanceFailure {
    pub message: String,
    /// Its WAL is gone or it was invalidated: copy it from the primary again.
    pub copy_again: bool,
}

/// What dropping a slot did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropOutcome {
    /// In use, so not dropped.
    pub active: bool,
    pub dropped: bool,
}

/// What one look at the local PostgreSQL found.
#[derive(Clone, Debug)]
pub struct Observed {
    pub data_dir: DataDir,
    pub pg: Pg,
    /// `Database cluster state` while PostgreSQL is not accepting connections.
    pub cluster_state: Option<String>,
    pub standby_signal: bool,
    /// `Latest checkpoint's TimeLineID` while stopped.
    pub controldata_timeline: Option<u32>,
    pub sysid: Option<String>,
    /// The status query's result, as the API and the member key show it.
    pub snapshot: Option<PgSnapshot>,
    pub pending_restart_reason: Map<String, Value>,
    /// The postmaster's pid while it runs.
    pub postmaster_pid: Option<i32>,
}

impl Observed {
    /// The WAL position the member key publishes.
    pub fn wal_position(&self) -> Option<u64> {
        match &self.pg {
            Pg::Running { wal_position, .. } => Some(*wal_position),
            _ => None,
        }
    }

    pub fn timeline(&self) -> Option<u32> {
        match &self.pg {
            Pg::Running { timeline, .. } => *timeline,
            _ => None,
        }
    }
}

/// What PostgreSQL control gets of the configuration; with an MPP
/// integration, its parameters as the plugin adjusted them (Patroni's
/// `adjust_postgres_gucs`, before postgresql.conf is written).
fn settings(config: &RuntimeConfig, mpp: Option<&crate::mpp::MppHost>) -> PgSettings {
    let mut effective = config.effective.clone();
    if let Some(mpp) = mpp {
        mpp.adjust(&mut effective.parameters);
    }
    PgSettings {
        name: config.local.name.clone(),
        scope: config.local.scope.clone(),
        local: config.local.postgresql.clone(),
        effective,
    }
}

/// The synchronous replication state as `palisade_ha::sync` reads it.
fn primary_sync(st: palisade_postgres::sql::SyncStatus) -> PrimarySync {
    let lsn = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    PrimarySync {
        ssn: st.synchronous_standby_names,
        synchronous_commit: st.synchronous_commit,
        lsn: st.flush_lsn,
        senders: st
            .senders
            .into_iter()
            .map(|r| WalSender {
                pid: r.pid,
                application_name: r.application_name.unwrap_or_default(),
                sync_state: r.sync_state.unwrap_or_default(),
                write_lsn: lsn(r.write_lsn),
                flush_lsn: lsn(r.flush_lsn),
                replay_lsn: lsn(r.replay_lsn),
            })
            .collect(),
    }
}

/// The API's view of a status row.
fn snapshot(st: &PgStatus) -> PgSnapshot {
    PgSnapshot {
        postmaster_start_time: st.postmaster_start_time.clone(),
        server_version: Some(st.server_version),
        in_recovery: st.in_recovery,
        timeline: st.timeline(),
        wal_location: st.flush_lsn.or(st.current_lsn),
        received_location: st.received_location(),
        replayed_location: st.replay_lsn,
        replayed_timestamp: st.last_replay_timestamp.clone(),
        replay_paused: st.replay_paused,
        replication_state: st.replication_state().map(String::from),
        latest_end_lsn: st.latest_end_lsn,
        replication: st.replication.iter().filter_map(|r| serde_json::to_value(r).ok()).collect(),
    }
}

/// How new recovery settings were applied (what a follow did), so that
/// the runner fires the callback Patroni's follow fires for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Applied {
    /// Nothing: no change, or PostgreSQL is not running.
    #[default]
    Nothing,
    /// A reload (`on_reload`).
    Reloaded,
    /// A restart, for settings a reload cannot apply (`on_restart`).
    Restarted,
}

/// What the runner, its tasks and the API do to the local PostgreSQL:
/// the seam between the HA loop and the processes. [`LocalPg`] is the
/// real one; the runner's unit tests put a scripted fake behind it.
#[async_trait::async_trait]
pub trait LocalPostgres: Send + Sync {
    /// Take a new configuration (reload, dynamic change). Nothing is written.
    async fn update(&self, config: &RuntimeConfig);
    /// Look at the data directory and the server.
    async fn observe(&self) -> Observed;
    /// This node's WAL position and timeline, read now.
    async fn position(&self) -> Option<(u64, Option<u32>)>;
    /// A fresh status for `GET /patroni`, or `None` within a second.
    async fn snapshot_quick(&self) -> Option<PgSnapshot>;
    /// Stop; returns where the shutdown checkpoint is.
    async fn stop(&self, mode: StopMode) -> Result<Option<u64>>;
    /// Stop; says whether a postmaster was running and was signalled
    /// (Patroni fires `on_stop` only then), and where the shutdown
    /// checkpoint is.
    async fn stop_signalled(&self, mode: StopMode) -> Result<(bool, Option<u64>)>;
    /// Create the data directory (initdb or a custom method).
    async fn bootstrap(&self, bootstrap: &BootstrapConfig) -> Result<()>;
    /// Start a freshly bootstrapped data directory as it is; `true` when
    /// it accepts connections.
    async fn start_bootstrapped(&self) -> Result<bool>;
    /// Roles, the post_bootstrap script, the end of a custom bootstrap.
    async fn post_bootstrap(&self, bootstrap: &BootstrapConfig) -> Result<()>;
    /// Write the configuration for `role` (streaming from `follow` when a
    /// replica) and start, waiting `pg_ctl_timeout`.
    async fn start(&self, role: Role, follow: Option<&Member>) -> Result<bool>;
    /// [`LocalPostgres::start`], waiting at most `timeout`.
    async fn start_within(&self, role: Role, follow: Option<&Member>, timeout: Duration) -> Result<bool>;
    /// Point recovery at `member` (or nobody) and apply it; says how.
    async fn follow(&self, member: Option<&Member>) -> Result<Applied>;
    /// Point recovery at the remote primary of the standby cluster (the
    /// `standby_cluster` settings in force) and apply what changed; says how.
    async fn follow_remote(&self) -> Result<Applied>;
    /// Start in recovery following the remote primary (as the standby
    /// leader, or as a replica of a leaderless standby cluster).
    async fn start_remote(&self) -> Result<bool>;
    /// What a replica method needs to clone the remote primary.
    async fn replica_request_remote(&self) -> Result<palisade_plugin_api::ReplicaRequest>;
    /// Write the configuration in force and reload what a reload applies.
    async fn apply_parameters(&self, config: &RuntimeConfig) -> Result<bool>;
    /// Promote and wait for the end of recovery.
    async fn promote(&self) -> Result<()>;
    /// [`LocalPostgres::promote`], calling `signalled` as soon as
    /// `pg_ctl promote` went through, before the end of recovery (where
    /// Patroni fires `on_role_change`).
    async fn promote_then(&self, signalled: Box<dyn FnOnce() + Send>) -> Result<()> {
        self.promote().await?;
        signalled();
        Ok(())
    }
    async fn checkpoint(&self) -> Result<()>;
    /// Can this stopped data directory follow a leader with this history?
    async fn rejoin(&self, leader_timeline: u32, history: &[HistoryLine]) -> palisade_ha::Rejoin;
    /// [`LocalPostgres::stop_signalled`], escalating after `timeout`
    /// (`primary_stop_timeout`).
    async fn stop_within(&self, mode: StopMode, timeout: Duration) -> Result<(bool, Option<u64>)>;
    /// Stop to demote: [`LocalPostgres::stop_within`] with `timeout`
    /// (`None`: [`LocalPostgres::stop_signalled`]) that runs `on_safepoint`
    /// once no client can write any more, before the postmaster may have
    /// exited (Patroni's `on_safepoint`: the demotion closes the watchdog
    /// there). This default, for doubles, runs it after the stop.
    async fn stop_to_demote(
        &self,
        mode: StopMode,
        timeout: Option<Duration>,
        on_safepoint: Box<dyn FnOnce() + Send>,
    ) -> Result<(bool, Option<u64>)> {
        let stopped = match timeout {
            Some(t) => self.stop_within(mode, t).await,
            None => self.stop_signalled(mode).await,
        };
        on_safepoint();
        stopped
    }
    /// Crash recovery in single-user mode (Patroni's `ensure_clean_shutdown`).
    async fn crash_recovery(&self) -> Result<()>;
    /// `archive_command` when archiving is on (Patroni's
    /// `get_archive_command`).
    async fn archive_command(&self) -> Option<String>;
    /// Push the WAL segment holding the shutdown checkpoint with `command`
    /// (Patroni's `archive_shutdown_checkpoint_wal`); failures are logged.
    async fn archive_shutdown_checkpoint_wal(&self, command: &str);
    /// Patroni's `can_rewind`: enabled, pg_rewind runs, pg_control allows it.
    async fn can_rewind(&self) -> bool;
    /// `backup_label` is in the data directory.
    fn has_backup_label(&self) -> bool;
    /// libpq keyword/value pairs that reach the local server as the
    /// superuser (password and TLS settings included, no `dbname`), for
    /// plugins that connect themselves.
    fn superuser_conn_params(&self) -> Vec<(String, String)>;
    /// pg_rewind from the leader `leader` (Patroni's `Rewind.execute`).
    async fn rewind_from(&self, leader: &Member) -> palisade_postgres::RewindOutcome;
    /// As the primary: a checkpoint ran on the current timeline.
    async fn checkpoint_after_promote(&self) -> Result<bool>;
    /// The timeline `leader`'s server writes now (`None`: it is still in
    /// recovery), asked with the rewind credentials.
    async fn leader_timeline(&self, leader: &Member) -> Result<Option<u32>>;
    /// Our timeline history as the DCS `history` key holds it.
    async fn history_lines(&self, timeline: u32, name: &str) -> Vec<HistoryLine>;
    /// The replication slots (temporary ones left out).
    async fn replication_slots(&self) -> Result<Vec<palisade_ha::Existing>>;
    async fn create_physical_slot(&self, name: &str) -> Result<()>;
    async fn create_logical_slot(&self, database: &str, name: &str, plugin: &str) -> Result<()>;
    async fn advance_slot(&self, name: &str, lsn: u64) -> Result<()>;
    async fn advance_logical_slot(
        &self,
        database: &str,
        name: &str,
        lsn: u64,
    ) -> std::result::Result<(), AdvanceFailure>;
    /// Drop a slot unless it is in use.
    async fn drop_slot(&self, name: &str) -> Result<DropOutcome>;
    /// The logical slots `names` on `leader`'s server, with their state files.
    async fn leader_slot_states(&self, leader: &Member, names: &[String]) -> Result<Vec<palisade_ha::LeaderSlot>>;
    /// `catalog_xmin` of the slots `names` on `leader`'s server.
    async fn leader_catalog_xmins(&self, leader: &Member, names: &[String]) -> Result<Vec<(String, Option<u64>)>>;
    /// Write these slots' state files (PostgreSQL stopped).
    fn install_slot_states(&self, slots: &[palisade_ha::LeaderSlot]) -> Result<()>;
    /// Force `hot_standby_feedback = on` or stop forcing it; `true` when
    /// that changes the configuration.
    fn set_enforce_hot_standby_feedback(&self, on: bool) -> bool;
    /// `current_setting('hot_standby_feedback')`.
    async fn hot_standby_feedback(&self) -> Result<bool>;
    /// Run a configured script (pre_promote) with the daemon's environment
    /// and wait for it; its exit code (negative: the signal that killed it).
    async fn run_script(&self, script: &str) -> Result<i32>;
    /// What a replica method needs to build our data directory from `source`.
    async fn replica_request(&self, source: Option<&Member>) -> Result<palisade_plugin_api::ReplicaRequest>;
    fn remove_data_directory(&self) -> Result<()>;
    /// Move a failed bootstrap's data directory aside.
    fn move_data_directory_aside(&self) -> std::io::Result<()>;
    /// Keep the dynamic configuration next to the data.
    fn save_dynamic_cache(&self, dynamic: &Map<String, Value>) -> std::io::Result<()>;
    /// The primary's synchronous replication state (`None`: it could not
    /// be read; logged).
    async fn sync_status(&self) -> Option<PrimarySync>;
    /// Write a little WAL that waits for no standby.
    async fn nudge_wal(&self);
    /// Set `synchronous_standby_names` and reload; `true` when it changed.
    async fn set_sync_names(&self, names: SyncNames) -> Result<bool>;
    /// Who decides `synchronous_standby_names` now.
    fn sync_names(&self) -> SyncNames;
}

#[async_trait::async_trait]
impl LocalPostgres for LocalPg {
    async fn update(&self, config: &RuntimeConfig) {
        LocalPg::update(self, config).await;
    }
    async fn observe(&self) -> Observed {
        LocalPg::observe(self).await
    }
    async fn position(&self) -> Option<(u64, Option<u32>)> {
        LocalPg::position(self).await
    }
    async fn snapshot_quick(&self) -> Option<PgSnapshot> {
        LocalPg::snapshot_quick(self).await
    }
    async fn stop(&self, mode: StopMode) -> Result<Option<u64>> {
        LocalPg::stop(self, mode).await
    }
    async fn stop_signalled(&self, mode: StopMode) -> Result<(bool, Option<u64>)> {
        LocalPg::stop_signalled(self, mode).await
    }
    async fn bootstrap(&self, bootstrap: &BootstrapConfig) -> Result<()> {
        LocalPg::bootstrap(self, bootstrap).await
    }
    async fn start_bootstrapped(&self) -> Result<bool> {
        LocalPg::start_bootstrapped(self).await
    }
    async fn post_bootstrap(&self, bootstrap: &BootstrapConfig) -> Result<()> {
        LocalPg::post_bootstrap(self, bootstrap).await
    }
    async fn start(&self, role: Role, follow: Option<&Member>) -> Result<bool> {
        LocalPg::start(self, role, follow).await
    }
    async fn start_within(&self, role: Role, follow: Option<&Member>, timeout: Duration) -> Result<bool> {
        LocalPg::start_within(self, role, follow, timeout).await
    }
    async fn follow(&self, member: Option<&Member>) -> Result<Applied> {
        LocalPg::follow(self, member).await
    }
    async fn follow_remote(&self) -> Result<Applied> {
        LocalPg::follow_remote(self).await
    }
    async fn start_remote(&self) -> Result<bool> {
        LocalPg::start_remote(self).await
    }
    async fn replica_request_remote(&self) -> Result<palisade_plugin_api::ReplicaRequest> {
        LocalPg::replica_request_remote(self).await
    }
    async fn apply_parameters(&self, config: &RuntimeConfig) -> Result<bool> {
        LocalPg::apply_parameters(self, config).await
    }
    async fn promote(&self) -> Result<()> {
        LocalPg::promote(self).await
    }
    async fn promote_then(&self, signalled: Box<dyn FnOnce() + Send>) -> Result<()> {
        self.pg.request_promotion().await?;
        signalled();
        self.promoted_within(Duration::from_secs(60)).await
    }
    async fn checkpoint(&self) -> Result<()> {
        LocalPg::checkpoint(self).await
    }
    async fn rejoin(&self, leader_timeline: u32, history: &[HistoryLine]) -> palisade_ha::Rejoin {
        LocalPg::rejoin(self, leader_timeline, history).await
    }
    async fn stop_within(&self, mode: StopMode, timeout: Duration) -> Result<(bool, Option<u64>)> {
        LocalPg::stop_with_timeout(self, mode, timeout).await
    }
    async fn stop_to_demote(
        &self,
        mode: StopMode,
        timeout: Option<Duration>,
        on_safepoint: Box<dyn FnOnce() + Send>,
    ) -> Result<(bool, Option<u64>)> {
        LocalPg::stop_with_safepoint(self, mode, timeout.unwrap_or_else(|| self.timeout()), on_safepoint).await
    }
    async fn crash_recovery(&self) -> Result<()> {
        self.pg.crash_recovery().await.map(|_| ()).map_err(PgFailure::from)
    }
    async fn archive_command(&self) -> Option<String> {
        self.pg.archive_command().await
    }
    async fn archive_shutdown_checkpoint_wal(&self, command: &str) {
        self.pg.archive_shutdown_checkpoint_wal(command).await;
    }
    async fn can_rewind(&self) -> bool {
        self.pg.can_rewind().await
    }
    fn has_backup_label(&self) -> bool {
        self.pg.has_backup_label()
    }
    fn superuser_conn_params(&self) -> Vec<(String, String)> {
        let mut params = self.pg.local_connection().conn_params();
        params.remove("dbname");
        params.into_iter().collect()
    }
    async fn rewind_from(&self, leader: &Member) -> palisade_postgres::RewindOutcome {
        let Some((host, port)) = leader.host_port() else {
            tracing::warn!("Can not use {} for rewind: it has no usable conn_url", leader.name);
            return palisade_postgres::RewindOutcome::NotNow;
        };
        let source = palisade_postgres::RewindSource {
            name: leader.name.clone(),
            host,
            port,
            checkpoint_after_promote: checkpoint_after_promote(leader),
        };
        self.pg.rewind_from(&source).await
    }
    async fn checkpoint_after_promote(&self) -> Result<bool> {
        Ok(self.pg.checkpoint_on_current_timeline().await?)
    }
    async fn leader_timeline(&self, leader: &Member) -> Result<Option<u32>> {
        let conn = self.leader_connection(leader)?;
        let rows = palisade_postgres::sql::Sql::new(conn)
            .simple_query(
                "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE ('x' || pg_catalog.substr(\
                 pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END",
            )
            .await?;
        Ok(rows.first().and_then(|r| r.first()).cloned().flatten().and_then(|v| v.parse().ok()))
    }
    async fn history_lines(&self, timeline: u32, name: &str) -> Vec<HistoryLine> {
        LocalPg::history_lines(self, timeline, name).await
    }
    async fn replication_slots(&self) -> Result<Vec<palisade_ha::Existing>> {
        LocalPg::replication_slots(self).await
    }
    async fn create_physical_slot(&self, name: &str) -> Result<()> {
        LocalPg::create_physical_slot(self, name).await
    }
    async fn create_logical_slot(&self, database: &str, name: &str, plugin: &str) -> Result<()> {
        LocalPg::create_logical_slot(self, database, name, plugin).await
    }
    async fn advance_slot(&self, name: &str, lsn: u64) -> Result<()> {
        LocalPg::advance_slot(self, name, lsn).await
    }
    async fn advance_logical_slot(
        &self,
        database: &str,
        name: &str,
        lsn: u64,
    ) -> std::result::Result<(), AdvanceFailure> {
        LocalPg::advance_logical_slot(self, database, name, lsn).await
    }
    async fn drop_slot(&self, name: &str) -> Result<DropOutcome> {
        LocalPg::drop_slot(self, name).await
    }
    async fn leader_slot_states(&self, leader: &Member, names: &[String]) -> Result<Vec<palisade_ha::LeaderSlot>> {
        LocalPg::leader_slot_states(self, leader, names).await
    }
    async fn leader_catalog_xmins(&self, leader: &Member, names: &[String]) -> Result<Vec<(String, Option<u64>)>> {
        LocalPg::leader_catalog_xmins(self, leader, names).await
    }
    fn install_slot_states(&self, slots: &[palisade_ha::LeaderSlot]) -> Result<()> {
        LocalPg::install_slot_states(self, slots)
    }
    fn set_enforce_hot_standby_feedback(&self, on: bool) -> bool {
        self.pg.set_enforce_hot_standby_feedback(on)
    }
    async fn hot_standby_feedback(&self) -> Result<bool> {
        LocalPg::hot_standby_feedback(self).await
    }
    async fn run_script(&self, script: &str) -> Result<i32> {
        LocalPg::run_script(self, script).await
    }
    async fn replica_request(&self, source: Option<&Member>) -> Result<palisade_plugin_api::ReplicaRequest> {
        LocalPg::replica_request(self, source).await
    }
    fn remove_data_directory(&self) -> Result<()> {
        LocalPg::remove_data_directory(self)
    }
    fn move_data_directory_aside(&self) -> std::io::Result<()> {
        LocalPg::move_data_directory_aside(self)
    }
    fn save_dynamic_cache(&self, dynamic: &Map<String, Value>) -> std::io::Result<()> {
        LocalPg::save_dynamic_cache(self, dynamic)
    }
    async fn sync_status(&self) -> Option<PrimarySync> {
        match self.pg.sql().sync_status().await {
            Ok(st) => Some(primary_sync(st)),
            Err(e) => {
                tracing::warn!("cannot read the synchronous replication state: {e}");
                None
            }
        }
    }
    async fn nudge_wal(&self) {
        if let Err(e) = self.pg.sql().nudge_wal().await {
            tracing::debug!("could not write WAL for the standbys: {e}");
        }
    }
    async fn set_sync_names(&self, names: SyncNames) -> Result<bool> {
        Ok(self.pg.set_sync_names(names).await?)
    }
    fn sync_names(&self) -> SyncNames {
        self.pg.sync_names()
    }
}

/// Our one local PostgreSQL.
#[derive(Clone)]
pub struct LocalPg {
    pg: Arc<Postgres>,
    failures: Arc<QueryFailures>,
    /// `standby_cluster` in force (`None`: not a standby cluster).
    standby: Arc<std::sync::RwLock<Option<palisade_config::StandbyCluster>>>,
    /// The archive commands the loaded replica plugins offer a standby
    /// cluster (asked once, at load).
    archive_offers: palisade_plugin_host::plugins::ArchiveOffers,
    /// The MPP integration that adjusts the parameters.
    mpp: Option<Arc<crate::mpp::MppHost>>,
}

/// Consecutive failures of the status query on a running postmaster, so
/// that a connection that keeps failing is logged, not retried in silence.
#[derive(Default)]
struct QueryFailures {
    count: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<String>,
}

impl QueryFailures {
    /// Count a failure; log it the first times, when it changes, and then
    /// every tenth time.
    fn failed(&self, error: &palisade_postgres::PgError) {
        use std::sync::atomic::Ordering;
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let text = error.to_string();
        let changed = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let changed = *last != text;
            last.clone_from(&text);
            changed
        };
        if n <= 3 || changed || n.is_multiple_of(10) {
            tracing::warn!("cannot query the local PostgreSQL (attempt {n}): {text}");
        }
    }

    fn succeeded(&self) {
        use std::sync::atomic::Ordering;
        let n = self.count.swap(0, Ordering::Relaxed);
        if n > 3 {
            tracing::info!("the local PostgreSQL answers again after {n} failed attempts");
        }
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl LocalPg {
    pub fn new(config: &RuntimeConfig) -> Self {
        Self::with_mpp(config, None)
    }

    /// Control of the local PostgreSQL whose parameters `mpp` adjusts.
    pub fn with_mpp(config: &RuntimeConfig, mpp: Option<Arc<crate::mpp::MppHost>>) -> Self {
        Self {
            pg: Arc::new(Postgres::new(settings(config, mpp.as_deref()))),
            failures: Arc::default(),
            standby: Arc::new(std::sync::RwLock::new(config.global.standby_cluster_config())),
            archive_offers: Default::default(),
            mpp,
        }
    }

    /// What the loaded replica plugins offer a standby cluster's recovery
    /// (see [`crate::standby::standby_archive_commands`]).
    pub fn with_archive_offers(mut self, offers: palisade_plugin_host::plugins::ArchiveOffers) -> Self {
        self.archive_offers = offers;
        self
    }

    /// The recovery commands of a standby cluster's members.
    fn standby_archive(&self, standby: &palisade_config::StandbyCluster) -> palisade_postgres::conf::ArchiveCommands {
        let methods = self.pg.settings().local.create_replica_methods.clone();
        crate::standby::standby_archive_commands(standby, &methods, &self.archive_offers)
    }

    /// Take a new configuration (reload, dynamic change). Nothing is written.
    pub async fn update(&self, config: &RuntimeConfig) {
        *self.standby.write().unwrap_or_else(|p| p.into_inner()) = config.global.standby_cluster_config();
        self.pg.update_settings(settings(config, self.mpp.as_deref())).await;
    }

    fn standby(&self) -> Option<palisade_config::StandbyCluster> {
        self.standby.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The remote primary of the standby cluster as a recovery target.
    fn remote_target(&self) -> Result<FollowTarget> {
        match self.standby() {
            Some(s) => Ok(crate::standby::remote_target(&s, self.standby_archive(&s))),
            None => Err(PgFailure("this is not a standby cluster: standby_cluster is not set".into())),
        }
    }

    fn timeout(&self) -> Duration {
        self.pg.settings().local.pg_ctl_timeout
    }

    fn data_dir(&self) -> PathBuf {
        self.pg.paths().data_dir
    }

    /// Look at the data directory and the server.
    pub async fn observe(&self) -> Observed {
        let standby_signal = self.pg.paths().standby_signal.exists();
        let data_dir = match self.pg.data_dir_state() {
            DataDirState::Missing | DataDirState::Empty => DataDir::Empty,
            DataDirState::NotAccessible(e) => DataDir::Inaccessible(e.to_string()),
            DataDirState::NotADirectory => DataDir::Inaccessible("it is not a directory".into()),
            DataDirState::NotInitialized => DataDir::Initialized { sysid: None },
            DataDirState::Initialized => DataDir::Initialized { sysid: None },
        };
        let has_control = matches!(self.pg.data_dir_state(), DataDirState::Initialized);
        let mut out = Observed {
            data_dir,
            pg: Pg::Stopped,
            cluster_state: None,
            standby_signal,
            controldata_timeline: None,
            sysid: None,
            snapshot: None,
            pending_restart_reason: Map::new(),
            postmaster_pid: self.pg.is_running(),
        };
        if !matches!(out.data_dir, DataDir::Initialized { .. }) {
            if out.postmaster_pid.is_some() {
                out.pg = Pg::Starting;
            }
            return out;
        }
        let running = out.postmaster_pid.is_some();
        if running {
            match self.pg.status().await {
                Ok(st) => {
                    out.pg = Pg::Running {
                        in_recovery: st.in_recovery,
                        timeline: st.timeline(),
                        wal_position: st.wal_position(),
                    };
                    out.sysid = st.system_identifier.map(|s| s.to_string());
                    if !st.pending_restart.is_empty() {
                        let reasons = self.pg.pending_restart_reason(&st).await;
                        out.pending_restart_reason = reasons
                            .into_iter()
                            .map(|(k, v)| (k, serde_json::json!({"old_value": v.old_value, "new_value": v.new_value})))
                            .collect();
                    }
                    out.snapshot = Some(snapshot(&st));
                    self.failures.succeeded();
                }
                Err(e) => {
                    // A server that does not take connections yet (single-user
                    // mode during initdb, starting up, recovering) is in a
                    // state the cycle reports; one that says it does and
                    // refuses us is a failure to log.
                    let accepting =
                        palisade_postgres::process::PidFile::read(&self.data_dir()).ok().flatten().is_some_and(|p| {
                            !p.is_single_user() && matches!(p.status.as_deref(), Some("ready" | "standby"))
                        });
                    if accepting && !matches!(&e, palisade_postgres::PgError::Sql(s) if s.is_cannot_connect_now()) {
                        self.failures.failed(&e);
                    } else {
                        tracing::debug!("status query failed: {e}");
                    }
                    out.pg = Pg::Starting;
                }
            }
        }
        if has_control && (out.sysid.is_none() || !running) {
            match self.pg.controldata().await {
                Ok(cd) => {
                    out.sysid = Some(cd.system_identifier.to_string()).filter(|s| s != "0");
                    if !out.pg.is_running() {
                        out.cluster_state = Some(cd.state.as_str().to_string());
                        out.controldata_timeline = Some(cd.checkpoint_timeline);
                    }
                }
                // The directory went away between the look and the read
                // (a reinitialisation or a replica method wiping it): not
                // an error, the next cycle sees what is there.
                Err(e) if !matches!(self.pg.data_dir_state(), DataDirState::Initialized) => {
                    tracing::debug!("pg_control vanished while it was read: {e}");
                }
                Err(e) => tracing::error!("Error when calling pg_controldata: {e}"),
            }
        }
        out.data_dir = DataDir::Initialized { sysid: out.sysid.clone() };
        out
    }

    /// This node's WAL position and timeline, read now.
    pub async fn position(&self) -> Option<(u64, Option<u32>)> {
        let st = self.pg.status().await.ok()?;
        Some((st.wal_position(), st.timeline()))
    }

    /// A fresh status for `GET /patroni`, or `None` within a second.
    pub async fn snapshot_quick(&self) -> Option<PgSnapshot> {
        match tokio::time::timeout(Duration::from_secs(1), self.pg.status()).await {
            Ok(Ok(st)) => Some(snapshot(&st)),
            _ => None,
        }
    }

    /// Stop PostgreSQL; returns where the shutdown checkpoint is (for a
    /// clean stop of a primary). A fast stop escalates to immediate after
    /// `pg_ctl_timeout`.
    pub async fn stop(&self, mode: StopMode) -> Result<Option<u64>> {
        Ok(self.stop_signalled(mode).await?.1)
    }

    /// [`LocalPg::stop`], also saying whether a postmaster was running.
    pub async fn stop_signalled(&self, mode: StopMode) -> Result<(bool, Option<u64>)> {
        self.stop_with_timeout(mode, self.timeout()).await
    }

    /// [`LocalPg::stop_signalled`], escalating after `timeout`: immediate,
    /// then SIGKILL of the postmaster and its children.
    pub async fn stop_with_timeout(&self, mode: StopMode, timeout: Duration) -> Result<(bool, Option<u64>)> {
        self.stop_with_safepoint(mode, timeout, Box::new(|| ())).await
    }

    /// [`LocalPg::stop_with_timeout`] that runs `on_safepoint` once no
    /// client backend is left (see `Postgres::stop_with_safepoint`).
    pub async fn stop_with_safepoint(
        &self,
        mode: StopMode,
        timeout: Duration,
        on_safepoint: Box<dyn FnOnce() + Send>,
    ) -> Result<(bool, Option<u64>)> {
        let opts = match mode {
            StopMode::Immediate => StopOptions::immediate(Some(timeout)),
            _ => StopOptions { mode, timeout: Some(timeout), checkpoint: false },
        };
        let outcome = self.pg.stop_with_safepoint(opts, on_safepoint).await?;
        if let Some(e) = outcome.escalated {
            tracing::warn!("PostgreSQL did not stop in {:?} with a {} stop: escalated ({e:?})", timeout, mode.as_str());
        }
        Ok((outcome.was_running, outcome.shutdown_checkpoint.map(|c| c.checkpoint_lsn)))
    }

    /// Create the data directory (initdb or a custom method). The runner
    /// starts it afterwards.
    pub async fn bootstrap(&self, bootstrap: &BootstrapConfig) -> Result<()> {
        if bootstrap.method == "initdb" {
            tracing::info!("initializing a new cluster");
            return Ok(self.pg.initdb(&bootstrap.initdb).await?);
        }
        let s = self.pg.settings();
        let section = bootstrap.methods.get(&bootstrap.method).cloned().unwrap_or(Value::Null);
        let method =
            palisade_postgres::bootstrap::custom_bootstrap(&bootstrap.method, &section, &s.scope, &self.data_dir())
                .map_err(|e| PgFailure(e.to_string()))?;
        Ok(self.pg.custom_bootstrap(&method).await?)
    }

    /// Start a freshly bootstrapped data directory as it is.
    pub async fn start_bootstrapped(&self) -> Result<bool> {
        self.start_outcome().await
    }

    async fn start_outcome(&self) -> Result<bool> {
        self.start_outcome_within(self.timeout()).await
    }

    async fn start_outcome_within(&self, timeout: Duration) -> Result<bool> {
        match self.pg.start(timeout).await? {
            StartOutcome::Running | StartOutcome::AlreadyRunning { .. } => Ok(true),
            StartOutcome::Starting => Ok(false),
            StartOutcome::Failed { reason } => Err(PgFailure(format!("postgres exited: {reason}"))),
        }
    }

    /// Roles, the post_bootstrap script, and the end of a custom bootstrap.
    pub async fn post_bootstrap(&self, bootstrap: &BootstrapConfig) -> Result<()> {
        let change = self.pg.post_bootstrap(bootstrap.post_bootstrap.as_deref()).await?;
        self.apply_change(&change).await.map(|_| ())
    }

    async fn apply_change(&self, change: &palisade_postgres::ConfigChange) -> Result<Applied> {
        if change.restart_needed && self.pg.is_running().is_some() && change.pending_restart.is_empty() {
            // Recovery changes a reload cannot apply (entering recovery).
            self.stop(StopMode::Fast).await?;
            self.start_outcome().await?;
            Ok(Applied::Restarted)
        } else if change.reload_needed && self.pg.is_running().is_some() {
            self.pg.reload().await?;
            Ok(Applied::Reloaded)
        } else {
            Ok(Applied::Nothing)
        }
    }

    /// A member to stream from; in a standby cluster with the archive
    /// commands of `standby_cluster` (Patroni's `_get_node_to_follow`).
    fn follow_target(&self, member: &Member) -> Option<FollowTarget> {
        let mut target = FollowTarget::member(&member.name, member.conn_url()?)?;
        if let Some(standby) = self.standby() {
            target.archive = self.standby_archive(&standby);
        }
        Some(target)
    }

    /// Write the configuration for `role` (streaming from `follow` when a
    /// replica) and start.
    pub async fn start(&self, role: Role, follow: Option<&Member>) -> Result<bool> {
        self.start_within(role, follow, self.timeout()).await
    }

    /// [`LocalPg::start`], waiting at most `timeout` for connections.
    pub async fn start_within(&self, role: Role, follow: Option<&Member>, timeout: Duration) -> Result<bool> {
        match role {
            Role::Primary => {
                self.pg.clear_recovery().await?;
            }
            // The standby leader always replicates from the remote primary.
            Role::StandbyLeader => {
                self.pg.follow(Some(&self.remote_target()?)).await?;
            }
            _ => {
                let target = follow.and_then(|m| self.follow_target(m));
                self.pg.follow(target.as_ref()).await?;
            }
        }
        self.start_outcome_within(timeout).await
    }

    /// Start in recovery following the remote primary of the standby cluster.
    pub async fn start_remote(&self) -> Result<bool> {
        self.pg.follow(Some(&self.remote_target()?)).await?;
        self.start_outcome().await
    }

    /// Point recovery at the remote primary of the standby cluster and apply it.
    pub async fn follow_remote(&self) -> Result<Applied> {
        let target = self.remote_target()?;
        let change = self.pg.follow(Some(&target)).await?;
        self.apply_change(&change).await
    }

    /// Point recovery at `member` (or nobody) and apply it.
    pub async fn follow(&self, member: Option<&Member>) -> Result<Applied> {
        let target = member.and_then(|m| self.follow_target(m));
        if member.is_some() && target.is_none() {
            return Err(PgFailure("the member to follow has no usable conn_url".into()));
        }
        let change = self.pg.follow(target.as_ref()).await?;
        self.apply_change(&change).await
    }

    /// Rewrite the configuration after a dynamic change and apply what a
    /// reload can apply (the rest shows up as pending_restart); `true`
    /// when PostgreSQL was reloaded.
    pub async fn apply_parameters(&self, config: &RuntimeConfig) -> Result<bool> {
        self.update(config).await;
        let change = self.pg.write_config().await?;
        if change.reload_needed && self.pg.is_running().is_some() {
            self.pg.reload().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Promote and wait for the end of recovery.
    pub async fn promote(&self) -> Result<()> {
        self.pg.request_promotion().await?;
        self.promoted_within(Duration::from_secs(60)).await
    }

    async fn promoted_within(&self, wait: Duration) -> Result<()> {
        match self.pg.wait_promoted(wait).await? {
            palisade_postgres::PromoteOutcome::Promoted => Ok(()),
            palisade_postgres::PromoteOutcome::Pending => {
                Err(PgFailure("promotion did not finish within 60 seconds".into()))
            }
        }
    }

    pub async fn checkpoint(&self) -> Result<()> {
        self.pg.sql().checkpoint(None).await.map_err(|e| PgFailure(e.to_string()))
    }

    /// Can this stopped data directory follow a leader whose timeline
    /// history is `history` (the DCS `history` key)?
    pub async fn rejoin(&self, leader_timeline: u32, history: &[HistoryLine]) -> palisade_ha::Rejoin {
        let entries: Vec<HistoryEntry> = history
            .iter()
            .map(|l| HistoryEntry { parent_timeline: l.timeline, switch_lsn: l.lsn, reason: l.reason.clone() })
            .collect();
        match self.pg.check_divergence(leader_timeline, &entries).await {
            Ok(Divergence::CanFollow { reason }) => {
                tracing::info!("{reason}");
                palisade_ha::Rejoin::Free
            }
            Ok(Divergence::Diverged { reason }) => palisade_ha::Rejoin::Diverged(reason),
            Ok(Divergence::Unknown { reason }) => palisade_ha::Rejoin::Wait(reason),
            Err(e) => palisade_ha::Rejoin::Wait(format!("cannot check the timeline: {e}")),
        }
    }

    /// Our timeline history as the DCS `history` key holds it.
    pub async fn history_lines(&self, timeline: u32, name: &str) -> Vec<HistoryLine> {
        match read_timeline_history(&self.data_dir(), timeline) {
            Ok(Some(file)) => history_lines_for_dcs(&file, timeline, name),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::warn!("cannot read the history of timeline {timeline}: {e}");
                Vec::new()
            }
        }
    }

    /// The replication slots (temporary ones left out).
    pub async fn replication_slots(&self) -> Result<Vec<palisade_ha::Existing>> {
        let slots = self.pg.sql().replication_slots().await?;
        Ok(slots
            .into_iter()
            .map(|s| palisade_ha::Existing {
                name: s.name,
                slot_type: s.slot_type,
                plugin: s.plugin,
                database: s.database,
                restart_lsn: s.restart_lsn,
                confirmed_flush_lsn: s.confirmed_flush_lsn,
                xmin: s.xmin,
                catalog_xmin: s.catalog_xmin,
                wal_status: s.wal_status,
                failover: s.failover,
            })
            .collect())
    }

    pub async fn create_physical_slot(&self, name: &str) -> Result<()> {
        Ok(self.pg.sql().create_physical_slot(name).await.map(|_| ())?)
    }

    pub async fn create_logical_slot(&self, database: &str, name: &str, plugin: &str) -> Result<()> {
        Ok(self.pg.sql().create_logical_slot(database, name, plugin).await.map(|_| ())?)
    }

    pub async fn advance_slot(&self, name: &str, lsn: u64) -> Result<()> {
        Ok(self.pg.sql().advance_slot(name, lsn).await?)
    }

    /// Advance a logical slot; a failure because its WAL is gone
    /// (`58P01`) or it was invalidated (`55000`) says to copy it again.
    pub async fn advance_logical_slot(
        &self,
        database: &str,
        name: &str,
        lsn: u64,
    ) -> std::result::Result<(), AdvanceFailure> {
        self.pg.sql().advance_logical_slot(database, name, lsn).await.map_err(|e| AdvanceFailure {
            copy_again: matches!(e.code().map(|c| c.code()), Some("58P01" | "55000")),
            message: e.to_string(),
        })
    }

    pub async fn drop_slot(&self, name: &str) -> Result<DropOutcome> {
        let d = self.pg.sql().drop_slot(name).await?;
        Ok(DropOutcome { active: d.active, dropped: d.dropped })
    }

    /// Where to reach `leader`'s server to read from its data directory.
    fn leader_connection(&self, leader: &Member) -> Result<palisade_postgres::sql::LocalConnection> {
        let (host, port) =
            leader.host_port().ok_or_else(|| PgFailure(format!("member {} has no usable conn_url", leader.name)))?;
        Ok(palisade_postgres::sql::LocalConnection::rewind_to(&self.pg.settings().local, &host, port))
    }

    pub async fn leader_slot_states(&self, leader: &Member, names: &[String]) -> Result<Vec<palisade_ha::LeaderSlot>> {
        let conn = self.leader_connection(leader)?;
        let states = palisade_postgres::sql::read_slot_states(&conn, names).await?;
        Ok(states
            .into_iter()
            .map(|s| palisade_ha::LeaderSlot {
                name: s.name,
                slot_type: s.slot_type,
                database: s.database,
                plugin: s.plugin,
                catalog_xmin: s.catalog_xmin,
                confirmed_flush_lsn: s.confirmed_flush_lsn,
                data: s.data,
            })
            .collect())
    }

    pub async fn leader_catalog_xmins(&self, leader: &Member, names: &[String]) -> Result<Vec<(String, Option<u64>)>> {
        let conn = self.leader_connection(leader)?;
        Ok(palisade_postgres::sql::slot_catalog_xmins(&conn, names).await?)
    }

    pub fn install_slot_states(&self, slots: &[palisade_ha::LeaderSlot]) -> Result<()> {
        let dir = self.data_dir();
        for slot in slots {
            palisade_postgres::replslot::install_slot_state(&dir, &slot.name, &slot.data)
                .map_err(|e| PgFailure(format!("cannot write the state of slot {}: {e}", slot.name)))?;
        }
        Ok(())
    }

    pub async fn hot_standby_feedback(&self) -> Result<bool> {
        let v = self.pg.sql().current_setting("hot_standby_feedback").await?;
        Ok(v == "on")
    }

    /// Run a configured script (pre_promote) and wait for it; its exit
    /// code, negative when a signal killed it (Python's `returncode`).
    pub async fn run_script(&self, script: &str) -> Result<i32> {
        use std::os::unix::process::ExitStatusExt;
        let argv = palisade_pycompat::shlex::split(script)
            .ok()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| PgFailure(format!("cannot split the command {script:?}")))?;
        let status = palisade_postgres::bootstrap::run_script(&argv, &BTreeMap::new())
            .await
            .map_err(|e| PgFailure(e.to_string()))?;
        Ok(status.code().unwrap_or_else(|| -status.signal().unwrap_or(0)))
    }

    /// What a replica method needs to build our data directory from
    /// `source` (or from a backup when `None`): the source's connection
    /// string without the password, which goes to a pgpass file.
    pub async fn replica_request(&self, source: Option<&Member>) -> Result<palisade_plugin_api::ReplicaRequest> {
        let target = match source.map(|m| self.follow_target(m)) {
            Some(None) => return Err(PgFailure("the member to copy from has no usable conn_url".into())),
            Some(t) => t,
            None => None,
        };
        self.replica_request_to(target).await
    }

    /// What a replica method needs to clone the remote primary of the
    /// standby cluster (no connection string when it has no address).
    pub async fn replica_request_remote(&self) -> Result<palisade_plugin_api::ReplicaRequest> {
        let target = self.remote_target()?;
        self.replica_request_to(Some(target).filter(|t| !t.host.is_empty())).await
    }

    async fn replica_request_to(&self, target: Option<FollowTarget>) -> Result<palisade_plugin_api::ReplicaRequest> {
        let s = self.pg.settings();
        let mut env = Vec::new();
        let connstring = match target {
            None => None,
            Some(target) => {
                let mut params = target.conn_params(&s.local.authentication.replication);
                if let Some(content) = pgpass_content(&params) {
                    let path = self.pg.paths().pgpass;
                    write_pgpass(&path, &content)
                        .map_err(|e| PgFailure(format!("cannot write {}: {e}", path.display())))?;
                    env.push(("PGPASSFILE".to_string(), path.to_string_lossy().into_owned()));
                }
                params.remove("password");
                let major = palisade_postgres::binaries::postgres_version(&self.pg.binaries()).await.unwrap_or(150000);
                Some(format_dsn(&params, major))
            }
        };
        Ok(palisade_plugin_api::ReplicaRequest {
            scope: s.scope.clone(),
            name: s.name.clone(),
            role: "replica".into(),
            data_dir: self.data_dir().to_string_lossy().into_owned(),
            bin_dir: s.local.bin_dir.as_ref().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default(),
            connstring,
            env,
            cwd: std::env::current_dir().map(|d| d.to_string_lossy().into_owned()).unwrap_or_else(|_| ".".into()),
        })
    }

    pub fn remove_data_directory(&self) -> Result<()> {
        Ok(self.pg.remove_data_directory()?)
    }

    /// Move a failed bootstrap's data directory aside (`<dir>_<timestamp>`),
    /// as Patroni does, so nothing is lost and a new attempt starts clean.
    pub fn move_data_directory_aside(&self) -> std::io::Result<()> {
        let dir = self.data_dir();
        if !dir.exists() {
            return Ok(());
        }
        let stamp = chrono::Local::now().format("%Y-%m-%d-%H-%M-%S");
        let target = PathBuf::from(format!("{}_{stamp}", dir.display()));
        tracing::info!("renaming data directory to {}", target.display());
        std::fs::rename(&dir, &target)
    }

    /// Keep the dynamic configuration next to the data (`patroni.dynamic.json`).
    pub fn save_dynamic_cache(&self, dynamic: &Map<String, Value>) -> std::io::Result<()> {
        let dir = self.data_dir();
        if !dir.join("PG_VERSION").exists() {
            return Ok(());
        }
        let path = dir.join(palisade_config::CACHE_FILE_NAME);
        let tmp = dir.join(format!("{}.tmp", palisade_config::CACHE_FILE_NAME));
        std::fs::write(&tmp, palisade_config::to_cache_json(dynamic))?;
        std::fs::rename(tmp, path)
    }
}

/// Can a running replica on `timeline`, which replayed up to `replayed`,
/// follow a leader on `leader_timeline` whose history is `history`? Only
/// a replica that replayed WAL past the switch point cannot (Patroni's
/// `_check_timeline_and_lsn` for a running standby).
pub fn running_replica_rejoin(
    timeline: u32,
    replayed: u64,
    leader_timeline: u32,
    history: &[HistoryLine],
) -> palisade_ha::Rejoin {
    let entries: Vec<HistoryEntry> = history
        .iter()
        .map(|l| HistoryEntry { parent_timeline: l.timeline, switch_lsn: l.lsn, reason: l.reason.clone() })
        .collect();
    let local = palisade_postgres::LocalPosition { in_recovery: true, timeline, lsn: replayed };
    match palisade_postgres::divergence::check_divergence(&local, None, leader_timeline, &entries) {
        Divergence::Diverged { reason } => palisade_ha::Rejoin::Diverged(reason),
        // A running replica is not held back while the history catches up.
        Divergence::CanFollow { .. } | Divergence::Unknown { .. } => palisade_ha::Rejoin::Free,
    }
}

/// Patroni's `Leader.checkpoint_after_promote`: a leader of Patroni 1.5.7
/// or later running as a primary says it ran the CHECKPOINT after its
/// promotion by leaving `checkpoint_after_promote` out of its member key;
/// `None` when its version does not tell.
pub fn checkpoint_after_promote(leader: &Member) -> Option<bool> {
    let version = leader.patroni_version()?;
    (version.as_slice() > [1, 5, 6].as_slice()).then(|| {
        matches!(leader.role(), Some("master" | "primary")) && !leader.data.contains_key("checkpoint_after_promote")
    })
}

/// The dynamic configuration a previous run left in the data directory.
pub fn load_dynamic_cache(data_dir: &Path) -> Option<Map<String, Value>> {
    let text = std::fs::read_to_string(data_dir.join(palisade_config::CACHE_FILE_NAME)).ok()?;
    match palisade_config::from_cache_json(&text) {
        Ok(map) if !map.is_empty() => Some(map),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("ignoring {}: {e}", palisade_config::CACHE_FILE_NAME);
            None
        }
    }
}
