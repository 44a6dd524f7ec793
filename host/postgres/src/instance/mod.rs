//! [`Postgres`]: one local PostgreSQL, as the daemon drives it.
//!
//! It holds the settings, the postmaster handle, the cached SQL connection
//! and the recovery settings last asked for, and offers the operations of
//! Patroni's `Postgresql` class that touch PostgreSQL only: configuration
//! files, start, stop, promote, reload, crash recovery, status, bootstrap
//! steps. Every method takes `&self`; a `Postgres` can be shared (`Arc`)
//! between the HA loop and the REST API.

mod bootstrap;
mod config;
mod lifecycle;
mod rewind;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use palisade_config::{EffectivePostgresql, PostgresqlConfig};

use crate::binaries::{pg_controldata, show_setting, Binaries, CommandError, GucCatalog, Program, ShowSettingArgs};
use crate::bootstrap::BootstrapError;
use crate::conf::{parse_rendered_conf, ConfPaths, ParamDiff, RecoveryParams, ServerParameters};
use crate::controldata::ControlData;
use crate::datadir::HistoryEntry;
use crate::datadir::{data_dir_state, major_version, DataDirState};
use crate::divergence::{check_divergence, gather_local_state, Divergence, GatherError};
use crate::process::{find_postmaster, Postmaster, PostmasterOutput, ProcessError};
use crate::sql::{LocalConnection, PgStatus, Sql, SqlError};

pub use config::ConfigChange;
pub use lifecycle::{Escalation, PromoteOutcome, StartOutcome, StopOptions, StopOutcome};
pub use rewind::{find_missing_wal, rewind_user_options, RewindOutcome, RewindSource};

/// What the daemon knows that PostgreSQL control needs.
#[derive(Clone, Debug, PartialEq)]
pub struct PgSettings {
    /// Our member name (`application_name`, slot name).
    pub name: String,
    /// The cluster name (`cluster_name`, `--scope`).
    pub scope: String,
    /// The local `postgresql` section.
    pub local: PostgresqlConfig,
    /// What PostgreSQL runs with (local merged over dynamic).
    pub effective: EffectivePostgresql,
}

/// A PostgreSQL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error("cannot {what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("PostgreSQL is not running")]
    NotRunning,
    #[error("PostgreSQL is running (pid {pid})")]
    Running { pid: i32 },
    /// No `PG_VERSION` in the data directory.
    #[error("{} is not an initialized data directory", .0.display())]
    NotInitialized(PathBuf),
}

pub(crate) fn file_err(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PgError {
    let path = path.to_path_buf();
    move |source| PgError::File { what, path, source }
}

/// Who decides `synchronous_standby_names` (Patroni keeps it apart from
/// the other parameters: the leader changes it every cycle).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SyncNames {
    /// Synchronous mode is off: the configured value, if any.
    #[default]
    Configured,
    /// Synchronous mode: this value; when `None`, a primary gets
    /// `primary_default` (strict mode's placeholder) and a standby none.
    Managed { value: Option<String>, primary_default: Option<String> },
}

/// Mode of a custom bootstrap in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CustomBootstrapMode {
    pub keep_existing_recovery_conf: bool,
}

/// One local PostgreSQL.
pub struct Postgres {
    settings: RwLock<Arc<PgSettings>>,
    postmaster: Mutex<Option<Postmaster>>,
    sql: Sql,
    /// The recovery settings postgresql.conf gets (`None`: a primary).
    recovery: Mutex<Option<RecoveryParams>>,
    custom_bootstrap: Mutex<Option<CustomBootstrapMode>>,
    /// Parameters raised to their pg_control values at the last start.
    raised: Mutex<BTreeMap<String, ParamDiff>>,
    sync_names: Mutex<SyncNames>,
    catalog: tokio::sync::OnceCell<Option<GucCatalog>>,
    output: PostmasterOutput,
    /// `hot_standby_feedback = on` whatever the parameters say (logical
    /// slots on this replica need it).
    enforce_hot_standby_feedback: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Postgres {
    /// Set up control of the PostgreSQL `settings` describe. No IO but
    /// reading postgresql.conf: a recovery section already there is kept
    /// until [`Postgres::follow`] or [`Postgres::clear_recovery`] say
    /// otherwise (so that rewriting the files of a running standby after a
    /// daemon restart does not drop its `primary_conninfo`).
    pub fn new(settings: PgSettings) -> Self {
        let paths = ConfPaths::new(&settings.local);
        let recovery = paths.recovery_signal_exists().then(|| existing_recovery(&paths)).flatten();
        let major = major_version(&paths.data_dir).unwrap_or(0);
        let params = ServerParameters::build(&settings.local, &settings.scope, &settings.effective, major);
        let sql = Sql::new(LocalConnection::resolve(&settings.local, &params));
        Self {
            settings: RwLock::new(Arc::new(settings)),
            postmaster: Mutex::new(None),
            sql,
            recovery: Mutex::new(recovery),
            custom_bootstrap: Mutex::new(None),
            raised: Mutex::new(BTreeMap::new()),
            sync_names: Mutex::new(SyncNames::Configured),
            catalog: tokio::sync::OnceCell::new(),
            output: PostmasterOutput::Inherit,
            enforce_hot_standby_feedback: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Send the postmaster's stdout/stderr somewhere else than the daemon's.
    pub fn with_output(mut self, output: PostmasterOutput) -> Self {
        self.output = output;
        self
    }

    pub fn settings(&self) -> Arc<PgSettings> {
        self.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Take new settings (configuration reload, new dynamic configuration).
    /// Nothing is written: call [`Postgres::write_config`] to apply them.
    pub async fn update_settings(&self, settings: PgSettings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
        self.sql.set_target(self.local_connection()).await;
    }

    pub fn paths(&self) -> ConfPaths {
        ConfPaths::new(&self.settings().local)
    }

    pub fn binaries(&self) -> Binaries {
        Binaries::from_config(&self.settings().local)
    }

    /// The cached superuser connection.
    pub fn sql(&self) -> &Sql {
        &self.sql
    }

    /// Where the superuser connection goes, by Patroni's rules.
    pub fn local_connection(&self) -> LocalConnection {
        let s = self.settings();
        LocalConnection::resolve(&s.local, &self.server_parameters())
    }

    pub fn data_dir_state(&self) -> DataDirState {
        data_dir_state(&self.paths().data_dir)
    }

    /// The data directory's major version (`PG_VERSION`).
    pub fn major_version(&self) -> Option<u32> {
        major_version(&self.paths().data_dir)
    }

    pub(crate) fn require_major(&self) -> Result<u32, PgError> {
        self.major_version().ok_or_else(|| PgError::NotInitialized(self.paths().data_dir))
    }

    /// The parameters for postgresql.conf and the command line.
    pub fn server_parameters(&self) -> ServerParameters {
        let s = self.settings();
        let major = self.major_version().unwrap_or(0);
        let mut params = ServerParameters::build(&s.local, &s.scope, &s.effective, major);
        const SSN: &str = "synchronous_standby_names";
        if let SyncNames::Managed { value, primary_default } = &*lock(&self.sync_names) {
            let primary = lock(&self.recovery).is_none();
            match value.as_ref().or(primary_default.as_ref().filter(|_| primary)) {
                Some(v) => params.set(SSN, v.clone()),
                None => {
                    params.remove(SSN);
                }
            }
        }
        if self.enforce_hot_standby_feedback.load(std::sync::atomic::Ordering::Relaxed) {
            params.set("hot_standby_feedback", "on");
        }
        params
    }

    /// Who decides `synchronous_standby_names` now.
    pub fn sync_names(&self) -> SyncNames {
        lock(&self.sync_names).clone()
    }

    /// Set `synchronous_standby_names` (Patroni's
    /// `set_synchronous_standby_names`): when it changes and PostgreSQL
    /// runs, rewrite postgresql.conf and reload. `true` when it changed.
    pub async fn set_sync_names(&self, names: SyncNames) -> Result<bool, PgError> {
        {
            let mut current = lock(&self.sync_names);
            if *current == names {
                return Ok(false);
            }
            *current = names;
        }
        if self.is_running().is_some() {
            let change = self.write_config().await?;
            if change.reload_needed {
                self.reload().await?;
            }
        }
        Ok(true)
    }

    /// Force `hot_standby_feedback = on` (or stop forcing it), as Patroni
    /// does for replicas with logical slots. Nothing is written: `true`
    /// when this changes the configuration to write.
    pub fn set_enforce_hot_standby_feedback(&self, on: bool) -> bool {
        self.enforce_hot_standby_feedback.swap(on, std::sync::atomic::Ordering::Relaxed) != on
    }

    /// The recovery settings postgresql.conf gets (`None` for a primary).
    pub fn recovery(&self) -> Option<RecoveryParams> {
        lock(&self.recovery).clone()
    }

    /// `pg_controldata`.
    pub async fn controldata(&self) -> Result<ControlData, PgError> {
        Ok(pg_controldata(&self.binaries(), &self.paths().data_dir).await?)
    }

    /// The settings this PostgreSQL build knows (`postgres --describe-config`,
    /// asked once). `None` when the program could not tell.
    pub async fn gucs(&self) -> Option<&GucCatalog> {
        self.catalog
            .get_or_init(|| async {
                match crate::binaries::describe_config(&self.binaries()).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!("cannot list the settings PostgreSQL knows: {e}");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }

    /// The PID of the running postmaster of our data directory: the one we
    /// started, or one found from `postmaster.pid` (which is then adopted).
    pub fn is_running(&self) -> Option<i32> {
        let mut slot = lock(&self.postmaster);
        if let Some(pm) = slot.as_mut() {
            if pm.is_running() {
                return Some(pm.pid());
            }
            *slot = None;
        }
        let s = self.settings();
        let found = find_postmaster(&ConfPaths::new(&s.local).data_dir, &s.local.bin_name.postgres)?;
        let pid = found.pid();
        *slot = Some(found);
        Some(pid)
    }

    /// Take the postmaster handle out (to wait on it without holding the lock).
    pub(crate) fn take_postmaster(&self) -> Option<Postmaster> {
        self.is_running()?;
        lock(&self.postmaster).take()
    }

    pub(crate) fn put_postmaster(&self, pm: Postmaster) {
        *lock(&self.postmaster) = Some(pm);
    }

    /// Read the server's state (one query).
    pub async fn status(&self) -> Result<PgStatus, PgError> {
        Ok(self.sql.status().await?)
    }

    /// Patroni's `pending_restart_reason`: for every setting the server
    /// flags `pending_restart`, its current value and the value a restart
    /// would give it (`postgres -C`), plus parameters raised to their
    /// pg_control values at the last start.
    pub async fn pending_restart_reason(&self, status: &PgStatus) -> BTreeMap<String, ParamDiff> {
        let mut out = lock(&self.raised).clone();
        let paths = self.paths();
        let bins = self.binaries();
        for p in &status.pending_restart {
            let args = ShowSettingArgs {
                data_dir: paths.data_dir.clone(),
                config_file: paths.postgresql_conf.clone(),
                name: p.name.clone(),
            };
            let new = show_setting(&bins, &args).await.unwrap_or_else(|_| "?".into());
            out.insert(p.name.clone(), ParamDiff::new(&p.setting, &new, Some(&p.vartype), p.unit.as_deref()));
        }
        out
    }

    /// Whether this stopped data directory can follow a leader on
    /// `leader_timeline` with timeline history `history` (see
    /// [`crate::divergence`]). The data directory must be cleanly shut
    /// down (run [`Postgres::crash_recovery`] first otherwise).
    pub async fn check_divergence(
        &self,
        leader_timeline: u32,
        history: &[HistoryEntry],
    ) -> Result<Divergence, PgError> {
        if let Some(pid) = self.is_running() {
            return Err(PgError::Running { pid });
        }
        let local = gather_local_state(&self.binaries(), &self.paths().data_dir).await?;
        Ok(check_divergence(&local.position, local.checkpoint_end, leader_timeline, history))
    }

    /// Remove the data directory (and a symlinked pg_wal's and tablespaces'
    /// targets). Refused while PostgreSQL runs.
    pub fn remove_data_directory(&self) -> Result<(), PgError> {
        if let Some(pid) = self.is_running() {
            return Err(PgError::Running { pid });
        }
        let dir = self.paths().data_dir;
        crate::datadir::remove_data_directory(&dir).map_err(file_err("remove", &dir))
    }

    pub(crate) fn postgres_program(&self) -> PathBuf {
        self.binaries().path(Program::Postgres)
    }
}

/// The recovery section of an existing postgresql.conf, kept as it is.
fn existing_recovery(paths: &ConfPaths) -> Option<RecoveryParams> {
    let text = std::fs::read_to_string(&paths.postgresql_conf).ok()?;
    let (_, values) = parse_rendered_conf(&text);
    Some(RecoveryParams { standby: paths.standby_signal.exists(), primary_conninfo: None, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send_sync<T: Send + Sync>(_: &T) {}
    fn is_send<T: Send>(_: &T) {}

    /// The daemon shares a `Postgres` between tasks and spawns its futures.
    #[test]
    fn shareable_between_tasks() {
        let local = crate::conf::params::tests::local_config();
        let effective = crate::conf::params::tests::effective(serde_json::json!({}));
        let pg = Postgres::new(PgSettings { name: "n".into(), scope: "s".into(), local, effective });
        is_send_sync(&pg);
        let t = std::time::Duration::from_secs(1);
        is_send(&pg.start(t));
        is_send(&pg.stop(StopOptions::fast(None)));
        is_send(&pg.write_config());
        is_send(&pg.follow(None));
        is_send(&pg.promote(t));
        is_send(&pg.status());
        is_send(&pg.crash_recovery());
        is_send(&pg.post_bootstrap(None));
        is_send(&pg.check_divergence(2, &[]));
    }
}
