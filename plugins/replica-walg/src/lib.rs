//! The WAL-G replica-creation method: builds a replica's data directory
//! with `wal-g backup-fetch` from WAL-G's storage, from typed settings
//! (`postgresql.walg`: backup name, `--config` file, environment) checked
//! when the plugin is loaded.
//!
//! Before it touches the data directory it asks `wal-g backup-list --json`
//! whether the backup it is to fetch exists, and it logs what it restores
//! and WAL-G's own output. `no_leader` and `keep_data` mean what they mean
//! to Patroni. For a standby cluster it offers the matching
//! `restore_command` (`wal-g wal-fetch`).
//!
//! A `create_replica_methods` entry whose section has a `command` never
//! reaches this plugin: the host gives it to the generic command method, as
//! Patroni runs it.
//!
//! Like every plugin it is built against `palisade-plugin-api` only and must
//! never depend on a host crate.
#![allow(non_local_definitions)]

mod settings;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use palisade_plugin_api::sdk::datadir;
use palisade_plugin_api::sdk::process::Cancellable;
use palisade_plugin_api::{ArchiveCommands, PluginError, PluginParams, PluginResult, ReplicaMethod, ReplicaRequest};
use serde_json::Value;

use settings::Settings;

/// How long wal-g may take to stop after SIGTERM before its group is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// The WAL-G method.
pub struct WalG {
    settings: Settings,
    running: Cancellable,
}

/// The name of the backup `backup-fetch` will restore, from `backup-list
/// --json`: `wanted` itself, or for `LATEST` the newest one.
fn pick_backup(output: &str, wanted: &str) -> Result<String, String> {
    let output = output.trim();
    // WAL-G prints nothing on stdout (and "No backups found" in its log)
    // when the storage holds no backup.
    if output.is_empty() {
        return Err("WAL-G's storage holds no backup".to_string());
    }
    let value: Value = serde_json::from_str(output).map_err(|e| {
        format!("wal-g backup-list did not answer with JSON ({e}): {}", output.lines().next().unwrap_or(""))
    })?;
    let list = value.as_array().ok_or_else(|| "wal-g backup-list did not answer with a list".to_string())?;
    let mut backups: Vec<(String, String)> = list
        .iter()
        .filter_map(|b| {
            let name = b.get("backup_name")?.as_str()?.to_string();
            let time = b.get("time").and_then(Value::as_str).unwrap_or("").to_string();
            Some((time, name))
        })
        .collect();
    if backups.is_empty() {
        return Err("WAL-G's storage holds no backup".to_string());
    }
    if wanted == "LATEST" {
        // RFC 3339 times in one zone sort as text; a stable sort keeps
        // WAL-G's own order for equal times.
        backups.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(backups.pop().map(|(_, n)| n).unwrap_or_default());
    }
    backups
        .into_iter()
        .find(|(_, n)| n == wanted)
        .map(|(_, n)| n)
        .ok_or_else(|| format!("WAL-G's storage has no backup named '{wanted}'"))
}

impl WalG {
    fn new(params: PluginParams) -> PluginResult<Self> {
        Ok(Self { settings: Settings::parse(&params.config_json)?, running: Cancellable::default() })
    }

    /// A wal-g command: the daemon's environment, the request's, then the
    /// configured `env`, in the request's cwd.
    fn command(&self, request: &ReplicaRequest, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.settings.executable);
        cmd.args(args)
            .envs(request.env.iter().map(|(k, v)| (k, v)))
            .envs(self.settings.env.iter().map(|(k, v)| (k, v)));
        if !request.cwd.is_empty() {
            cmd.current_dir(&request.cwd);
        }
        cmd
    }

    fn check_backup(&self, request: &ReplicaRequest) -> PluginResult<String> {
        let s = &self.settings;
        tracing::info!("checking WAL-G's storage for backup {}", s.backup_name);
        let args = s.list_args();
        tracing::debug!("calling: {} {:?}", s.executable, args);
        let untouched = "the data directory was not touched";
        let output = self
            .command(request, &args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| PluginError::other(format!("cannot run {}: {e}; {untouched}", s.executable)))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().chain(stdout.lines()).map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("");
            return Err(PluginError::other(format!(
                "wal-g backup-list failed ({}): {last}; {untouched}",
                output.status
            )));
        }
        pick_backup(&stdout, &s.backup_name).map_err(|e| PluginError::other(format!("{e}; {untouched}")))
    }

    fn clean_unless_kept(&self, dir: &Path) -> PluginResult<()> {
        datadir::clean_unless_kept(dir, self.settings.keep_data)
    }
}

impl ReplicaMethod for WalG {
    fn can_work_without_leader(&self) -> bool {
        self.settings.no_leader
    }

    fn create_replica(&self, request: &ReplicaRequest) -> PluginResult<()> {
        let _session = self.running.begin();
        let s = &self.settings;
        let backup = self.check_backup(request)?;
        if self.running.is_cancelled() {
            return Err(PluginError::other("wal-g backup-fetch was cancelled"));
        }
        let dir = datadir::resolve(&request.cwd, &request.data_dir);
        tracing::info!("fetching backup {backup} (asked for {}) into {}", s.backup_name, dir.display());
        self.clean_unless_kept(&dir)?;
        datadir::ensure(&dir).map_err(|e| PluginError::other(format!("cannot create {}: {e}", dir.display())))?;

        let args = s.fetch_args(&request.data_dir);
        tracing::info!("running {} {}", s.executable, args.join(" "));
        let started = Instant::now();
        let failure = match self.running.run(self.command(request, &args), "wal-g", CANCEL_GRACE) {
            Ok(outcome) if outcome.success() => {
                tracing::info!(
                    "fetched backup {backup} in {:.1} s; PostgreSQL replays the WAL it needs when it starts",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Ok(outcome) => outcome.failure("wal-g backup-fetch"),
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

    /// WAL-G's `wal-fetch`. No cleanup command: WAL in WAL-G's storage is
    /// removed with its backups by `wal-g delete` on the cluster that
    /// writes it; a standby cluster that removed WAL from it would break
    /// that cluster's point-in-time recovery.
    fn archive_commands(&self) -> PluginResult<ArchiveCommands> {
        Ok(ArchiveCommands { restore_command: Some(self.settings.restore_command()), archive_cleanup_command: None })
    }
}

palisade_plugin_api::export_plugin!(replica, "walg", WalG::new);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_backup_to_fetch() {
        let list = json!([
            {"backup_name": "base_000000010000000000000004", "time": "2026-12-06T10:00:00Z"},
            {"backup_name": "base_000000010000000000000009", "time": "2026-12-06T12:00:00Z"},
            {"backup_name": "base_000000010000000000000006", "time": "2026-12-06T11:00:00Z"},
        ])
        .to_string();
        assert_eq!(pick_backup(&list, "LATEST").as_deref(), Ok("base_000000010000000000000009"));
        assert_eq!(pick_backup(&list, "base_000000010000000000000004").as_deref(), Ok("base_000000010000000000000004"));
        for (out, wanted, message) in [
            (list.as_str(), "base_1", "no backup named 'base_1'"),
            ("", "LATEST", "holds no backup"),
            ("[]", "LATEST", "holds no backup"),
            ("No backups found", "LATEST", "did not answer with JSON"),
            ("{}", "LATEST", "did not answer with a list"),
        ] {
            let err = pick_backup(out, wanted).err().unwrap_or_else(|| panic!("{out} accepted"));
            assert!(err.contains(message), "{out}: {err}");
        }
    }

    #[test]
    fn no_leader_and_archive_commands() {
        let p = |v: Value| {
            WalG::new(PluginParams { scope: "demo".into(), name: "n".into(), config_json: v.to_string() })
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(!p(json!(null)).can_work_without_leader());
        let w = p(json!({"no_leader": "on", "env": {"WALG_FILE_PREFIX": "/b"}}));
        assert!(w.can_work_without_leader());
        let c = w.archive_commands().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.restore_command.as_deref(), Some("env WALG_FILE_PREFIX=/b wal-g wal-fetch \"%f\" \"%p\""));
        assert_eq!(c.archive_cleanup_command, None);
    }
}
