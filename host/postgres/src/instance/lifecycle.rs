//! Start, stop, promote, reload, crash recovery.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{file_err, lock, PgError, Postgres};
use crate::binaries::{
    pg_ctl, pg_isready, show_setting, shutdown_checkpoint, single_user, IsReady, PgCtlAction, PgCtlArgs,
    ShowSettingArgs, ShutdownCheckpoint, SingleUserArgs,
};
use crate::conf::{remove_recovery_files, restore_configuration_files, save_configuration_files};
use crate::controldata::{ClusterState, ControlData};
use crate::process::{read_postmaster_opts, spawn_postmaster, PidFile, SpawnArgs, StopMode};
use palisade_pycompat::patroni::parse_bool;

/// How a start ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// Accepting connections.
    Running,
    /// Still starting when the timeout passed (recovering, or not listening
    /// yet); check again with [`Postgres::wait_for_startup`].
    Starting,
    /// The postmaster exited.
    Failed { reason: String },
    /// A postmaster already runs on this data directory; nothing was done.
    AlreadyRunning { pid: i32 },
}

/// How to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopOptions {
    pub mode: StopMode,
    /// After this long, escalate: `fast`/`smart` to `immediate`, then
    /// immediate to SIGKILL of the postmaster and its children. `None`
    /// waits as long as it takes.
    pub timeout: Option<Duration>,
    /// Run `CHECKPOINT` first so the shutdown checkpoint is quick (Patroni
    /// does unless the mode is `immediate`).
    pub checkpoint: bool,
}

impl StopOptions {
    /// `fast` with a CHECKPOINT first, escalating after `timeout`.
    pub fn fast(timeout: Option<Duration>) -> Self {
        Self { mode: StopMode::Fast, timeout, checkpoint: true }
    }

    pub fn immediate(timeout: Option<Duration>) -> Self {
        Self { mode: StopMode::Immediate, timeout, checkpoint: false }
    }
}

/// A stop had to go further than asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escalation {
    /// SIGQUIT after the asked mode timed out.
    Immediate,
    /// SIGKILL of the postmaster and its children.
    Kill,
}

/// How a stop ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopOutcome {
    /// A postmaster was running (and we signalled it).
    pub was_running: bool,
    pub escalated: Option<Escalation>,
    /// `Database cluster state` after the stop.
    pub state: Option<ClusterState>,
    /// For a primary that shut down cleanly: where its WAL ends (what
    /// Patroni's leader publishes before releasing the lock).
    pub shutdown_checkpoint: Option<ShutdownCheckpoint>,
}

/// How a promotion ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromoteOutcome {
    /// pg_control says `in production`.
    Promoted,
    /// Asked, but not finished within the time given.
    Pending,
}

impl Postgres {
    /// Start PostgreSQL (Patroni's `start`): write the configuration files,
    /// raise `max_connections` and friends to their pg_control values on a
    /// standby, start the postmaster in its own session with the controlled
    /// parameters on its command line, and wait up to `timeout` for it to
    /// accept connections.
    pub async fn start(&self, timeout: Duration) -> Result<StartOutcome, PgError> {
        if let Some(pid) = self.is_running() {
            tracing::error!("Cannot start PostgreSQL because one is already running.");
            return Ok(StartOutcome::AlreadyRunning { pid });
        }
        self.sql.close().await;
        let major = self.require_major()?;
        let paths = self.paths();
        let mut params = self.server_parameters();
        let mut raised = BTreeMap::new();
        if paths.recovery_signal_exists() {
            match self.controldata().await {
                Ok(control) => raised = params.raise_to_controldata(&control, major),
                Err(e) => tracing::error!("Error when calling pg_controldata: {e}"),
            }
        }
        if let Some(mode) = *lock(&self.custom_bootstrap) {
            let recovery = self.recovery();
            let promote_at_target = recovery.as_ref().is_some_and(|r| {
                let pause = r.values.get("pause_at_recovery_target").and_then(parse_bool);
                let action = r.values.get("recovery_target_action").cloned();
                action.unwrap_or_else(|| if pause == Some(false) { "promote".into() } else { "pause".into() })
                    == "promote"
            });
            if mode.keep_existing_recovery_conf || promote_at_target {
                params.set("hot_standby", "off");
            }
        }
        *lock(&self.raised) = raised;
        self.write_files(&paths, &params, major).await?;
        self.sql.set_target(self.local_connection()).await;
        let args = SpawnArgs {
            program: self.postgres_program(),
            data_dir: paths.data_dir.clone(),
            config_file: paths.postgresql_conf.clone(),
            options: params.cmdline_options(),
            output: self.output.clone(),
        };
        let pm = spawn_postmaster(&args)?;
        self.put_postmaster(pm);
        self.wait_for_startup(timeout).await
    }

    /// Wait up to `timeout` for a starting postmaster to accept
    /// connections (Patroni's `wait_for_port_open` and `wait_for_startup`,
    /// with `pg_isready`).
    pub async fn wait_for_startup(&self, timeout: Duration) -> Result<StartOutcome, PgError> {
        // A timeout too long for the clock waits without limit.
        let deadline = Instant::now().checked_add(timeout);
        let args = self.local_connection().isready_args();
        let bins = self.binaries();
        loop {
            let Some(pid) = self.is_running() else {
                return Ok(StartOutcome::Failed { reason: "postmaster is not running".into() });
            };
            match pg_isready(&bins, &args).await? {
                // Only our own postmaster's answer counts: until it has
                // bound its sockets and says so in postmaster.pid, whatever
                // answers on the address is someone else (a server that
                // took the port while ours was down; ours is about to fail).
                IsReady::Accepting if self.pidfile_says_ready(pid) => break,
                IsReady::Accepting => {}
                IsReady::Unknown => {
                    tracing::warn!("Unknown status returned from pg_isready");
                    tracing::warn!("Can't determine PostgreSQL startup status, assuming running");
                    break;
                }
                IsReady::Rejecting | IsReady::NoResponse => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(StartOutcome::Starting);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if lock(&self.custom_bootstrap).is_none() {
            self.save_configuration_files()?;
        }
        Ok(StartOutcome::Running)
    }

    /// `postmaster.pid` names `pid` and says it accepts connections
    /// (`ready`, or `standby` for a hot standby). Without a status line
    /// (a server older than PostgreSQL 10) the pid alone decides.
    fn pidfile_says_ready(&self, pid: i32) -> bool {
        PidFile::read(&self.paths().data_dir).ok().flatten().is_some_and(|file| says_ready(&file, pid))
    }

    /// `pg_isready` on the local connection address.
    pub async fn is_ready(&self) -> Result<IsReady, PgError> {
        Ok(pg_isready(&self.binaries(), &self.local_connection().isready_args()).await?)
    }

    /// Stop PostgreSQL (Patroni's `stop`): an optional CHECKPOINT, the
    /// `before_stop` script, the mode's signal, escalation after the
    /// timeout, and a wait until the postmaster is gone (our child reaped).
    /// Reports the final pg_control state and, for a clean primary
    /// shutdown, the shutdown checkpoint location.
    pub async fn stop(&self, opts: StopOptions) -> Result<StopOutcome, PgError> {
        self.stop_with_safepoint(opts, Box::new(|| ())).await
    }

    /// [`Self::stop`] that runs `on_safepoint` as soon as no client can
    /// write any more (Patroni's `on_safepoint`, where a demotion closes the
    /// watchdog): once the stop signal was sent and every user backend has
    /// exited ([`crate::process::Postmaster::user_backends`]), while the
    /// postmaster may still wait for its WAL senders or checkpointer (a
    /// shutdown that a network partition can hold for `wal_sender_timeout`).
    /// It runs exactly once: at the latest when the postmaster is gone, or
    /// at once when none was running.
    pub async fn stop_with_safepoint(
        &self,
        opts: StopOptions,
        on_safepoint: Box<dyn FnOnce() + Send>,
    ) -> Result<StopOutcome, PgError> {
        let mut on_safepoint = Some(on_safepoint);
        let mut safepoint = move || {
            if let Some(f) = on_safepoint.take() {
                f();
            }
        };
        let Some(mut pm) = self.take_postmaster() else {
            safepoint();
            return Ok(StopOutcome { was_running: false, escalated: None, state: None, shutdown_checkpoint: None });
        };
        if opts.checkpoint && opts.mode != StopMode::Immediate && self.is_ready().await.ok() == Some(IsReady::Accepting)
        {
            if let Err(e) = self.sql.checkpoint(opts.timeout).await {
                // Patroni's ERROR line; what failed follows at WARNING.
                tracing::error!("Exception during CHECKPOINT");
                tracing::warn!("CHECKPOINT before stop: {e}");
            }
        }
        if let Some(cmd) = self.settings().local.before_stop.clone() {
            self.run_before_stop(&cmd).await;
        }
        self.sql.close().await;
        let mut escalated = None;
        if let Err(e) = pm.signal_stop(opts.mode) {
            self.put_postmaster(pm);
            return Err(e.into());
        }
        let signalled = Instant::now();
        if wait_user_backends_gone(&mut pm, opts.timeout).await {
            safepoint();
        }
        let left = opts.timeout.map(|t| t.saturating_sub(signalled.elapsed()));
        if !pm.wait_exit(left).await {
            if opts.mode != StopMode::Immediate {
                tracing::warn!("Timeout during postmaster stop, aborting Postgres.");
                escalated = Some(Escalation::Immediate);
                let _ = pm.signal_stop(StopMode::Immediate);
            }
            if opts.mode == StopMode::Immediate || !pm.wait_exit(opts.timeout).await {
                tracing::warn!("Sending SIGKILL to Postmaster and its children");
                escalated = Some(Escalation::Kill);
                pm.kill_all().await;
            }
        }
        safepoint();
        let (state, checkpoint) = match self.controldata().await {
            Ok(control) => {
                let checkpoint = match shutdown_checkpoint(&self.binaries(), &self.paths().data_dir, &control).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!("cannot read the shutdown checkpoint with pg_waldump: {e}");
                        None
                    }
                };
                (Some(control.state), checkpoint)
            }
            Err(e) => {
                tracing::error!("Error when calling pg_controldata: {e}");
                (None, None)
            }
        };
        Ok(StopOutcome { was_running: true, escalated, state, shutdown_checkpoint: checkpoint })
    }

    async fn run_before_stop(&self, cmd: &str) {
        let argv = match palisade_pycompat::shlex::split(cmd) {
            Ok(argv) if !argv.is_empty() => argv,
            Ok(_) => {
                tracing::error!("Exception when calling `{cmd}`: the command is empty");
                return;
            }
            Err(e) => {
                tracing::error!("Exception when calling `{cmd}`: {e}");
                return;
            }
        };
        match crate::bootstrap::run_script(&argv, &BTreeMap::new()).await {
            Ok(status) => {
                // Python's returncode: the exit code, or minus the signal.
                use std::os::unix::process::ExitStatusExt;
                let code = status.code().unwrap_or_else(|| -status.signal().unwrap_or(0));
                tracing::info!("before_stop script `{cmd}` exited with {code}")
            }
            Err(e) => tracing::error!("Exception when calling `{cmd}`: {e}"),
        }
    }

    /// Promote a standby (`pg_ctl promote`, without waiting) and wait up to
    /// `wait` for pg_control to say `in production`. Once promoted, the
    /// recovery settings are removed from postgresql.conf.
    pub async fn promote(&self, wait: Duration) -> Result<PromoteOutcome, PgError> {
        self.request_promotion().await?;
        self.wait_promoted(wait).await
    }

    /// `pg_ctl promote` without waiting: the first half of [`Self::promote`].
    pub async fn request_promotion(&self) -> Result<(), PgError> {
        let paths = self.paths();
        pg_ctl(
            &self.binaries(),
            &PgCtlArgs {
                data_dir: paths.data_dir.clone(),
                action: PgCtlAction::Promote { wait: false },
                timeout: None,
            },
        )
        .await?;
        Ok(())
    }

    /// Wait up to `wait` for pg_control to say `in production` after
    /// [`Self::request_promotion`], then drop the recovery settings: the
    /// second half of [`Self::promote`].
    pub async fn wait_promoted(&self, wait: Duration) -> Result<PromoteOutcome, PgError> {
        let paths = self.paths();
        let deadline = Instant::now().checked_add(wait);
        loop {
            if let Ok(control) = self.controldata().await {
                if control.state == ClusterState::InProduction {
                    break;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(PromoteOutcome::Pending);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        *lock(&self.recovery) = None;
        let major = self.require_major()?;
        remove_recovery_files(&paths).map_err(file_err("remove the recovery files in", &paths.data_dir))?;
        self.write_files(&paths, &self.server_parameters(), major).await?;
        Ok(PromoteOutcome::Promoted)
    }

    /// Make the postmaster re-read its configuration files (SIGHUP, as
    /// `pg_ctl reload` does).
    pub async fn reload(&self) -> Result<(), PgError> {
        let pid = self.is_running().ok_or(PgError::NotRunning)?;
        let sent = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP);
        match sent {
            Ok(()) => Ok(()),
            Err(nix::Error::ESRCH) => Err(PgError::NotRunning),
            Err(source) => Err(crate::process::ProcessError::Signal { pid, signal: Signal::SIGHUP, source }.into()),
        }
    }

    /// Bring a crashed data directory to a clean `shut down` state
    /// (Patroni's `ensure_clean_shutdown`): try to archive WAL segments still
    /// marked `.ready`, clear `archive_status`, remove the recovery signal
    /// files, and run `postgres --single` with the options of the last
    /// start (`postmaster.opts`) plus `archive_mode=on`,
    /// `archive_command=false`. Returns pg_control afterwards.
    pub async fn crash_recovery(&self) -> Result<ControlData, PgError> {
        if let Some(pid) = self.is_running() {
            return Err(PgError::Running { pid });
        }
        let paths = self.paths();
        self.archive_ready_wals().await;
        cleanup_archive_status(&paths.data_dir);
        let mut options = read_postmaster_opts(&paths.data_dir).unwrap_or_default();
        if !options.contains_key("config-file") && !options.contains_key("config_file") {
            options.insert("config_file".into(), paths.postgresql_conf.to_string_lossy().into_owned());
        }
        options.insert("archive_mode".into(), "on".into());
        options.insert("archive_command".into(), "false".into());
        *lock(&self.recovery) = None;
        remove_recovery_files(&paths).map_err(file_err("remove the recovery files in", &paths.data_dir))?;
        let args = SingleUserArgs { data_dir: paths.data_dir.clone(), options, database: "template1".into() };
        if let Err(e) = single_user(&self.binaries(), &args).await {
            // Patroni's words (Python's return code: minus the signal, None
            // when it did not run), then what went wrong.
            let code = e
                .status()
                .and_then(|s| {
                    use std::os::unix::process::ExitStatusExt;
                    s.code().or_else(|| s.signal().map(|sig| -sig))
                })
                .map_or_else(|| "None".to_string(), |c| c.to_string());
            tracing::error!("Crash recovery finished with code={code}");
            tracing::error!("crash recovery: {e}");
            return Err(e.into());
        }
        self.controldata().await
    }

    /// `archive_command` when archiving is enabled (`archive_mode` `on` or
    /// `always`) and the command is not empty (Patroni's
    /// `get_archive_command`); read from the configuration files.
    pub async fn archive_command(&self) -> Option<String> {
        let paths = self.paths();
        let bins = self.binaries();
        let get = |name: &str| {
            let args = ShowSettingArgs {
                data_dir: paths.data_dir.clone(),
                config_file: paths.postgresql_conf.clone(),
                name: name.to_string(),
            };
            let bins = bins.clone();
            async move { show_setting(&bins, &args).await.ok() }
        };
        let mode = get("archive_mode").await;
        let command = get("archive_command").await.filter(|c| !c.is_empty())?;
        matches!(mode.as_deref(), Some("on" | "always")).then_some(command)
    }

    /// Archive the WAL segments `archive_status` still marks `.ready` with
    /// the configured `archive_command` (Patroni's `_archive_ready_wals`),
    /// so that a crash recovery or rewind does not lose them from the
    /// archive. Failures are logged.
    pub async fn archive_ready_wals(&self) {
        let Some(command) = self.archive_command().await else { return };
        let paths = self.paths();
        let status_dir = paths.data_dir.join("pg_wal").join("archive_status");
        let Ok(entries) = std::fs::read_dir(&status_dir) else { return };
        let mut ready: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".ready")).map(String::from))
            .filter(|w| is_wal_name(w))
            .collect();
        ready.sort();
        for wal in ready {
            let wal_path = paths.data_dir.join("pg_wal").join(&wal);
            if !wal_path.is_file() {
                continue;
            }
            let cmd = archiver_command(&command, &wal_path.to_string_lossy(), &wal);
            tracing::info!("Trying to archive {wal}: {cmd}");
            if run_archiver(&cmd).await {
                let from = status_dir.join(format!("{wal}.ready"));
                let to = status_dir.join(format!("{wal}.done"));
                if let Err(e) = std::fs::rename(&from, &to) {
                    tracing::error!("Unable to rename {} to {}: {e}", from.display(), to.display());
                }
            } else {
                tracing::info!("Failed to archive WAL segment {wal}");
            }
        }
    }

    /// Push the WAL segment that holds the latest (shutdown) checkpoint to
    /// the archive with `command` (Patroni's
    /// `archive_shutdown_checkpoint_wal`, run by demote-cluster after the
    /// clean shutdown): PostgreSQL writes the shutdown checkpoint into a
    /// segment it never archives, and a standby cluster fed by
    /// `restore_command` needs it to reach that checkpoint (else its
    /// promotion forks off before it). Failures are logged.
    pub async fn archive_shutdown_checkpoint_wal(&self, command: &str) {
        let wal = match self.controldata().await {
            Ok(c) => c.redo_wal_file.filter(|w| !w.is_empty()),
            Err(e) => {
                tracing::warn!("pg_controldata: {e}");
                None
            }
        };
        let Some(wal) = wal else {
            tracing::error!("Cannot extract latest checkpoint's WAL file name");
            return;
        };
        let wal_path = self.paths().data_dir.join("pg_wal").join(&wal);
        let cmd = archiver_command(command, &wal_path.to_string_lossy(), &wal);
        if !run_archiver(&cmd).await {
            tracing::error!("Failed to archive WAL file with the shutdown checkpoint");
        }
    }

    /// Copy the configuration files into the data directory as `.backup`.
    pub fn save_configuration_files(&self) -> Result<(), PgError> {
        let paths = self.paths();
        let params = self.server_parameters();
        let (hba, ident) =
            (params.custom_hba_file(&paths.pg_hba).is_some(), params.custom_ident_file(&paths.pg_ident).is_some());
        save_configuration_files(&paths, hba, ident)
            .map_err(file_err("back up the configuration files of", &paths.config_dir))
    }

    /// Bring back missing configuration files from their `.backup` copies
    /// (after a base backup or a custom bootstrap).
    pub fn restore_configuration_files(&self) -> Result<(), PgError> {
        let paths = self.paths();
        let params = self.server_parameters();
        let (hba, ident) =
            (params.custom_hba_file(&paths.pg_hba).is_some(), params.custom_ident_file(&paths.pg_ident).is_some());
        restore_configuration_files(&paths, hba, ident)
            .map_err(file_err("restore the configuration files of", &paths.config_dir))
    }
}

fn is_wal_name(name: &str) -> bool {
    let base = name.strip_suffix(".partial").unwrap_or(name);
    base.len() == 24 && base.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
}

/// Patroni's `_build_archiver_command`: `%p` the WAL file's path, `%f` its
/// name, `%r` the oldest segment to keep (always the first one here), `%%`
/// a percent sign.
pub(crate) fn archiver_command(command: &str, wal_path: &str, wal_name: &str) -> String {
    let mut out = String::new();
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('p') => out.push_str(wal_path),
            Some('f') => out.push_str(wal_name),
            Some('r') => out.push_str("000000010000000000000001"),
            Some('%') => out.push('%'),
            _ => {
                out.push('%');
                continue;
            }
        }
        chars.next();
    }
    out
}

/// Run an archiver command line through the shell, as PostgreSQL and
/// Patroni do; `true` when it exits 0.
async fn run_archiver(cmd: &str) -> bool {
    let status = tokio::process::Command::new("/bin/sh").arg("-c").arg(cmd).status().await;
    status.is_ok_and(|s| s.success())
}

/// Remove everything in `pg_wal/archive_status` (Patroni's
/// `cleanup_archive_status`).
fn cleanup_archive_status(data_dir: &std::path::Path) {
    let dir = data_dir.join("pg_wal").join("archive_status");
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::error!("Unable to remove {}: {err}", e.path().display());
                }
            }
        }
        Err(e) => tracing::error!("Unable to list {}: {e}", dir.display()),
    }
}

/// `file` names `pid` and says it accepts connections.
fn says_ready(file: &PidFile, pid: i32) -> bool {
    file.pid == pid && file.status.as_deref().is_none_or(|s| s == "ready" || s == "standby")
}

/// Wait until the postmaster has no user backend left or is gone (`true`),
/// at most `timeout` (`false` then).
async fn wait_user_backends_gone(pm: &mut crate::process::Postmaster, timeout: Option<Duration>) -> bool {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        if !pm.is_running() || pm.user_backends().is_empty() {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archiver_commands() {
        for (cmd, want) in [
            ("cp %p /arch/%f", "cp /d/pg_wal/W /arch/W"),
            ("x %r %% %z %", "x 000000010000000000000001 % %z %"),
            ("a%%p %%%f", "a%p %W"),
        ] {
            assert_eq!(archiver_command(cmd, "/d/pg_wal/W", "W"), want, "{cmd}");
        }
        assert!(is_wal_name("000000010000000000000003"));
        assert!(is_wal_name("000000010000000000000003.partial"));
        assert!(!is_wal_name("00000002.history"));
    }

    #[test]
    fn only_our_ready_postmaster_counts() {
        let file = |pid: i32, status: Option<&str>| {
            let mut text = format!("{pid}\n/data\n1700000000\n5432\n/run\n127.0.0.1\n  5432001      0\n");
            if let Some(s) = status {
                text.push_str(&format!("{s:<8}\n"));
            }
            PidFile::parse(&text).unwrap()
        };
        for (pid, status, want) in [
            (10, Some("ready"), true),
            (10, Some("standby"), true),
            (10, Some("starting"), false),
            (10, Some("stopping"), false),
            (11, Some("ready"), false),
            (10, None, true),
            (11, None, false),
        ] {
            assert_eq!(says_ready(&file(pid, status), 10), want, "{pid} {status:?}");
        }
    }
}
