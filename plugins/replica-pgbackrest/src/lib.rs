//! The pgBackRest replica-creation method: builds a replica's data
//! directory with `pgbackrest restore` from a pgBackRest repository, from
//! typed settings (`postgresql.pgbackrest`: stanza, config file, `--delta`,
//! restore type and target, extra options) checked when the plugin is
//! loaded.
//!
//! Before it touches the data directory it asks `pgbackrest info` whether
//! the stanza has a usable backup, and it logs the backup it restores and
//! pgBackRest's own progress lines. `no_leader` and `keep_data` mean what
//! they mean to Patroni. For a standby cluster it offers the matching
//! `restore_command` (`pgbackrest archive-get`).
//!
//! A `create_replica_methods` entry whose section has a `command` never
//! reaches this plugin: the host gives it to the generic command method, as
//! Patroni runs it.
//!
//! Like every plugin it is built against `palisade-plugin-api` only and must
//! never depend on a host crate.
#![allow(non_local_definitions)]

mod info;
mod settings;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use palisade_plugin_api::sdk::datadir;
use palisade_plugin_api::sdk::process::Cancellable;
use palisade_plugin_api::{ArchiveCommands, PluginError, PluginParams, PluginResult, ReplicaMethod, ReplicaRequest};

use settings::Settings;

/// pgBackRest stops its worker processes on SIGTERM; SIGKILL the group if
/// it has not after this long.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// The pgBackRest method.
pub struct PgBackRest {
    settings: Settings,
    running: Cancellable,
}

impl PgBackRest {
    fn new(params: PluginParams) -> PluginResult<Self> {
        Ok(Self { settings: Settings::parse(&params.config_json, &params.scope)?, running: Cancellable::default() })
    }

    /// A pgbackrest command: the daemon's environment (pgBackRest reads
    /// `PGBACKREST_*` variables) plus the request's, in its cwd.
    fn command(&self, request: &ReplicaRequest, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.settings.executable);
        cmd.args(args).envs(request.env.iter().map(|(k, v)| (k, v)));
        if !request.cwd.is_empty() {
            cmd.current_dir(&request.cwd);
        }
        cmd
    }

    /// Ask pgBackRest which backup a restore would use.
    fn check_backup(&self, request: &ReplicaRequest) -> PluginResult<info::Backup> {
        let s = &self.settings;
        tracing::info!("checking stanza '{}' for a usable backup", s.stanza);
        let args = s.info_args();
        tracing::debug!("calling: {} {:?}", s.executable, args);
        let output = self.command(request, &args).stdin(std::process::Stdio::null()).output().map_err(|e| {
            PluginError::other(format!("cannot run {}: {e}; the data directory was not touched", s.executable))
        })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().chain(stdout.lines()).map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("");
            return Err(PluginError::other(format!(
                "pgbackrest info failed ({}): {last}; the data directory was not touched",
                output.status
            )));
        }
        info::usable_backup(&stdout, &s.stanza, s.set.as_deref())
            .map_err(|e| PluginError::other(format!("{e}; the data directory was not touched")))
    }

    /// Empty the data directory unless `keep_data` says not to.
    fn clean_unless_kept(&self, dir: &Path) -> PluginResult<()> {
        datadir::clean_unless_kept(dir, self.settings.keep_data)
    }
}

impl ReplicaMethod for PgBackRest {
    fn can_work_without_leader(&self) -> bool {
        self.settings.no_leader
    }

    fn create_replica(&self, request: &ReplicaRequest) -> PluginResult<()> {
        let _session = self.running.begin();
        let s = &self.settings;
        let backup = self.check_backup(request)?;
        if self.running.is_cancelled() {
            return Err(PluginError::other("pgbackrest restore was cancelled"));
        }
        let dir = datadir::resolve(&request.cwd, &request.data_dir);
        let size = backup.size.map(|b| format!(", {}", info::human_size(b))).unwrap_or_default();
        tracing::info!(
            "restoring {} backup {}{size} from stanza '{}' into {}{}",
            backup.kind,
            backup.label,
            s.stanza,
            dir.display(),
            if s.delta { " (delta)" } else { "" }
        );
        self.clean_unless_kept(&dir)?;
        datadir::ensure(&dir).map_err(|e| PluginError::other(format!("cannot create {}: {e}", dir.display())))?;

        let args = s.restore_args(&request.data_dir);
        tracing::info!("running {} {}", s.executable, args.join(" "));
        let started = Instant::now();
        let failure = match self.running.run(self.command(request, &args), "pgbackrest", CANCEL_GRACE) {
            Ok(outcome) if outcome.success() => {
                tracing::info!(
                    "restored backup {} in {:.1} s; PostgreSQL replays the WAL it needs when it starts",
                    backup.label,
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Ok(outcome) => outcome.failure("pgbackrest restore"),
            Err(e) => format!("cannot run {}: {e}", s.executable),
        };
        if let Err(e) = self.clean_unless_kept(&dir) {
            tracing::error!("{e}");
        }
        Err(PluginError::other(failure))
    }

    fn cancel(&self) {
        self.running.cancel();
    }

    /// pgBackRest's `archive-get` for the stanza. No cleanup command:
    /// WAL in a pgBackRest repository is expired by `pgbackrest expire` on
    /// the cluster that writes it, with its backups; a standby cluster that
    /// removed WAL from it would break that cluster's point-in-time
    /// recovery.
    fn archive_commands(&self) -> PluginResult<ArchiveCommands> {
        Ok(ArchiveCommands { restore_command: Some(self.settings.restore_command()), archive_cleanup_command: None })
    }
}

palisade_plugin_api::export_plugin!(replica, "pgbackrest", PgBackRest::new);

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A scratch directory removed on drop.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(label: &str) -> Self {
            let p = std::env::temp_dir().join(format!("palisade-pgbr-{label}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{e}"));
            Self(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A fake `pgbackrest` that answers `info` with `info_json` and records
    /// the restore's arguments.
    fn fake(scratch: &Scratch, info_json: &str, restore_exit: i32) -> String {
        let path = scratch.0.join("pgbackrest");
        let script = format!(
            "#!/bin/sh\nfor a in \"$@\"; do last=$a; done\n\
             if [ \"$last\" = info ]; then cat <<'EOF'\n{info_json}\nEOF\nexit 0; fi\n\
             echo \"$@\" > {calls}\necho 'INFO: restore command begin'\n\
             [ {restore_exit} -eq 0 ] || echo 'ERROR: [040]: it went wrong' >&2\nexit {restore_exit}\n",
            calls = scratch.0.join("restore-args").display(),
        );
        std::fs::write(&path, script).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        path.display().to_string()
    }

    fn plugin(section: serde_json::Value) -> PgBackRest {
        PgBackRest::new(PluginParams { scope: "demo".into(), name: "n2".into(), config_json: section.to_string() })
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn request(data_dir: &Path) -> ReplicaRequest {
        ReplicaRequest {
            scope: "demo".into(),
            name: "n2".into(),
            role: "replica".into(),
            data_dir: data_dir.display().to_string(),
            bin_dir: String::new(),
            connstring: None,
            env: vec![],
            cwd: "/".into(),
        }
    }

    const ONE_BACKUP: &str =
        r#"[{"name":"demo","status":{"code":0,"message":"ok"},"backup":[{"label":"20261206-100000F","type":"full"}]}]"#;
    const NO_BACKUP: &str = r#"[{"name":"demo","status":{"code":2,"message":"no valid backups"},"backup":[]}]"#;

    #[test]
    fn without_a_backup_the_data_directory_is_not_touched() {
        let scratch = Scratch::new("nobackup");
        let exe = fake(&scratch, NO_BACKUP, 0);
        let data = scratch.0.join("data");
        std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(data.join("PG_VERSION"), "15\n").unwrap_or_else(|e| panic!("{e}"));
        let p = plugin(serde_json::json!({"executable": exe}));
        let err = p.create_replica(&request(&data)).err().unwrap_or_else(|| panic!("restored without a backup"));
        assert!(err.message.contains("no usable backup (status: no valid backups)"), "{err}");
        assert!(data.join("PG_VERSION").exists());
        assert!(!scratch.0.join("restore-args").exists(), "restore must not run");
    }

    #[test]
    fn restore_cleans_first_unless_keep_data() {
        let scratch = Scratch::new("restore");
        let exe = fake(&scratch, ONE_BACKUP, 0);
        let data = scratch.0.join("data");
        std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(data.join("PG_VERSION"), "15\n").unwrap_or_else(|e| panic!("{e}"));

        let kept = plugin(serde_json::json!({"executable": exe, "keep_data": true, "delta": true}));
        kept.create_replica(&request(&data)).unwrap_or_else(|e| panic!("{e}"));
        assert!(data.join("PG_VERSION").exists(), "keep_data leaves the files for --delta");
        let args = std::fs::read_to_string(scratch.0.join("restore-args")).unwrap_or_default();
        assert_eq!(
            args.trim(),
            format!("--stanza=demo --pg1-path={} --delta --log-level-console=info restore", data.display())
        );

        let cleaned = plugin(serde_json::json!({"executable": exe}));
        cleaned.create_replica(&request(&data)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!data.join("PG_VERSION").exists());
    }

    #[test]
    fn a_failed_restore_reports_pgbackrests_error() {
        let scratch = Scratch::new("fail");
        let exe = fake(&scratch, ONE_BACKUP, 40);
        let data = scratch.0.join("data");
        let p = plugin(serde_json::json!({"executable": exe}));
        let err = p.create_replica(&request(&data)).err().unwrap_or_else(|| panic!("a failure was accepted"));
        assert_eq!(err.message, "pgbackrest restore exited with code=40: ERROR: [040]: it went wrong");
    }

    #[test]
    fn no_leader_and_archive_commands() {
        assert!(!plugin(serde_json::json!(null)).can_work_without_leader());
        let p = plugin(serde_json::json!({"no_leader": true, "stanza": "main", "config": "/etc/pgbr.conf"}));
        assert!(p.can_work_without_leader());
        let c = p.archive_commands().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.restore_command.as_deref(),
            Some("pgbackrest --config=/etc/pgbr.conf --stanza=main archive-get %f \"%p\"")
        );
        assert_eq!(c.archive_cleanup_command, None);
    }
}
