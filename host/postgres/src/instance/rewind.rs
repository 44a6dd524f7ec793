//! pg_rewind from the leader, as Patroni 4.1's `Rewind` runs it: whether
//! it can run at all (`can_rewind`), the checks on the leader before it,
//! the command line (`--restore-target-wal`, the user's `rewind` options),
//! the lines it logs, and Patroni's retry with a WAL file fetched through
//! `restore_command` when pg_rewind cannot restore it itself.

use std::path::Path;

use serde_json::Value;

use super::Postgres;
use crate::binaries::{pg_rewind, pg_rewind_available, show_setting, RewindArgs, ShowSettingArgs};
use crate::conf::{format_dsn, pgpass_content, write_pgpass};
use crate::instance::lifecycle::archiver_command;
use crate::sql::{LocalConnection, Sql};
use crate::StopOptions;

/// The leader to rewind from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewindSource {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Patroni's `Leader.checkpoint_after_promote`: whether the leader
    /// published that it ran a CHECKPOINT after its promotion (`None`: it
    /// does not say, an old Patroni or a standby leader).
    pub checkpoint_after_promote: Option<bool>,
}

/// How a rewind attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewindOutcome {
    /// The data directory now follows the leader's timeline.
    Rewound,
    /// pg_rewind was not run (the leader is not ready, or could not be
    /// checked): try again later. The reason was logged.
    NotNow,
    /// pg_rewind ran and failed. `leader_reachable`: the leader answered
    /// as a primary afterwards.
    Failed { leader_reachable: bool },
}

/// Options Patroni refuses in `postgresql.rewind` (it sets them itself).
const NOT_ALLOWED: &[&str] = &[
    "target-pgdata",
    "source-pgdata",
    "source-server",
    "write-recovery-conf",
    "dry-run",
    "restore-target-wal",
    "config-file",
    "no-ensure-shutdown",
    "version",
    "help",
];

/// Patroni's `process_user_options('rewind', ...)`: the `postgresql.rewind`
/// options as `--name` / `--name=value` arguments, and the problems it
/// reports (each option in error is left out).
pub fn rewind_user_options(options: &Value) -> (Vec<String>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let allowed = |name: &str, errors: &mut Vec<String>| {
        let ok = !NOT_ALLOWED.contains(&name);
        if !ok {
            errors.push(format!("{name} option for rewind is not allowed"));
        }
        ok
    };
    match options {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null | Value::Bool(false) => continue,
                    other => other.to_string(),
                };
                if !k.is_empty() && !v.is_empty() && allowed(k, &mut errors) {
                    out.push(format!("--{k}={}", palisade_pycompat::shlex::unquote(&v)));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => {
                        if allowed(s, &mut errors) {
                            out.push(format!("--{s}"));
                        }
                    }
                    Value::Object(m) if m.len() == 1 => {
                        let (k, v) = m.iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap_or_default();
                        match v {
                            Value::String(v) => {
                                if allowed(&k, &mut errors) {
                                    out.push(format!("--{k}={}", palisade_pycompat::shlex::unquote(&v)));
                                }
                            }
                            other => errors.push(format!(
                                "Error when parsing rewind key-value option {other}: only one key-value is allowed and \
                                 value should be a string"
                            )),
                        }
                    }
                    other => errors.push(format!(
                        "Error when parsing rewind option {other}: value should be string value or a single key-value \
                         pair"
                    )),
                }
            }
        }
        _ => errors.push("rewind options must be list or dict".into()),
    }
    (out, errors)
}

/// The missing WAL segment pg_rewind names in its output
/// (`could not open file ".../pg_wal/<segment>": ...`), as Patroni's
/// `_find_missing_wal` reads it.
pub fn find_missing_wal(output: &str) -> Option<String> {
    const PATTERN: &str = "could not open file \"";
    for line in output.lines() {
        let Some(b) = line.find(PATTERN).map(|b| b + PATTERN.len()) else { continue };
        let Some(e) = line[b..].find("\": ").map(|e| e + b) else { continue };
        let path = &line[b..e];
        if let Some((dir, name)) = path.rsplit_once('/') {
            if dir.ends_with("/pg_wal") && name.len() == 24 {
                return Some(name.to_string());
            }
        }
    }
    None
}

fn same_credentials(a: &palisade_config::RoleAuth, b: &palisade_config::RoleAuth) -> bool {
    a.username == b.username && a.password == b.password && a.ssl == b.ssl
}

impl Postgres {
    /// Patroni's `can_rewind`: `use_pg_rewind` is on, `pg_rewind --help`
    /// runs, and pg_control shows `wal_log_hints` or data checksums. The
    /// reason it cannot is logged at debug, as Patroni does.
    pub async fn can_rewind(&self) -> bool {
        if !self.settings().effective.use_pg_rewind {
            tracing::debug!("pg_rewind is not possible: use_pg_rewind is not enabled in the configuration");
            return false;
        }
        if let Err(e) = pg_rewind_available(&self.binaries()).await {
            tracing::debug!("pg_rewind is not possible: {e}");
            return false;
        }
        match self.controldata().await {
            Ok(c) if c.allows_rewind() => true,
            Ok(c) => {
                tracing::debug!(
                    "pg_rewind is not possible: neither wal_log_hints nor data checksums are enabled \
                     (wal_log_hints={}, data_checksums={})",
                    if c.wal_log_hints { "on" } else { "off" },
                    c.data_checksum_version
                );
                false
            }
            Err(e) => {
                tracing::debug!("pg_rewind is not possible: {e}");
                false
            }
        }
    }

    /// `backup_label` is in the data directory (a restored backup that
    /// PostgreSQL itself recovers at start-up).
    pub fn has_backup_label(&self) -> bool {
        self.paths().data_dir.join("backup_label").is_file()
    }

    /// As the primary: the timeline of the last checkpoint in pg_control
    /// is the current one (a CHECKPOINT ran after the promotion), the test
    /// Patroni's rewinding replicas run against a leader.
    pub async fn checkpoint_on_current_timeline(&self) -> Result<bool, crate::sql::SqlError> {
        has_run_checkpoint(self.sql()).await
    }

    /// The leader's connection with the rewind credentials (the
    /// superuser's when there are none), and whether they are the
    /// superuser's.
    fn rewind_connection(&self, source: &RewindSource) -> (LocalConnection, bool) {
        let s = self.settings();
        let auth = &s.local.authentication;
        let conn = LocalConnection::rewind_to(&s.local, &source.host, source.port);
        let superuser = auth.rewind.as_ref().is_none_or(|r| same_credentials(r, &auth.superuser));
        (conn, superuser)
    }

    /// Rewind the stopped (or to be stopped) data directory from `source`,
    /// as Patroni's `Rewind.execute`.
    pub async fn rewind_from(&self, source: &RewindSource) -> RewindOutcome {
        if self.is_running().is_some() {
            let timeout = Some(self.settings().local.pg_ctl_timeout);
            let opts = StopOptions { mode: crate::StopMode::Fast, timeout, checkpoint: false };
            if self.stop(opts).await.is_err() || self.is_running().is_some() {
                tracing::warn!("Can not run pg_rewind because postgres is still running");
                return RewindOutcome::NotNow;
            }
        }
        self.archive_ready_wals().await;

        let (conn, is_superuser) = self.rewind_connection(source);
        match source.checkpoint_after_promote {
            None => {
                // The leader does not say: run the CHECKPOINT ourselves with
                // the superuser, or check for it with the rewind user.
                let status = if is_superuser {
                    checkpoint_on(&conn).await
                } else {
                    match has_run_checkpoint(&Sql::new(conn.clone())).await {
                        Ok(true) => None,
                        Ok(false) => Some("leader has not run a checkpoint yet".to_string()),
                        Err(e) => {
                            tracing::error!("Exception when working with leader: {e}");
                            Some("not accessible or not healthy".to_string())
                        }
                    }
                };
                if let Some(status) = status {
                    tracing::warn!("Can not use {} for rewind: {status}", source.name);
                    return RewindOutcome::NotNow;
                }
            }
            Some(false) => {
                tracing::info!("Waiting for checkpoint on {} before rewind", source.name);
                return RewindOutcome::NotNow;
            }
            Some(true) => {
                if !leader_is_not_in_recovery(&conn).await {
                    return RewindOutcome::NotNow;
                }
            }
        }

        if self.run_pg_rewind(&conn).await {
            self.clean_pg_replslot();
            return RewindOutcome::Rewound;
        }
        let leader_reachable = leader_is_not_in_recovery(&conn).await;
        if leader_reachable {
            tracing::error!("Failed to rewind from healthy primary: {}", source.name);
        } else {
            tracing::warn!("Failed to rewind because primary {} become unreachable", source.name);
        }
        RewindOutcome::Failed { leader_reachable }
    }

    /// The `restore_command` PostgreSQL would run with (`postgres -C`).
    async fn restore_command(&self) -> Option<String> {
        let paths = self.paths();
        let args = ShowSettingArgs {
            data_dir: paths.data_dir.clone(),
            config_file: paths.postgresql_conf.clone(),
            name: "restore_command".into(),
        };
        show_setting(&self.binaries(), &args).await.ok().filter(|c| !c.trim().is_empty())
    }

    /// Patroni's `pg_rewind`: `true` when pg_rewind exited 0.
    async fn run_pg_rewind(&self, conn: &LocalConnection) -> bool {
        let s = self.settings();
        let paths = self.paths();
        let major = self.major_version().unwrap_or(0);
        let (options, errors) =
            rewind_user_options(s.local.replica_method_sections.get("rewind").unwrap_or(&Value::Null));
        for e in errors {
            tracing::error!("{e}");
        }
        let mut params = conn.conn_params();
        if major >= 100000 {
            // Make sure it is the primary (a standby can be a source since
            // v14, but the primary is always the safer one).
            params.insert("target_session_attrs".into(), "read-write".into());
        }
        let pgpass = match pgpass_content(&params) {
            Some(content) => match write_pgpass(&paths.pgpass, &content) {
                Ok(()) => Some(paths.pgpass.clone()),
                Err(e) => {
                    tracing::error!("cannot write {}: {e}", paths.pgpass.display());
                    None
                }
            },
            None => None,
        };
        params.remove("password");
        let dsn = format_dsn(&params, major);
        tracing::info!("running pg_rewind from {dsn}");

        let restore_command = self.restore_command().await;
        let config_in_data_dir = paths.config_dir == paths.data_dir;
        // Until v15 pg_rewind expected postgresql.conf in the data directory.
        let can_restore = restore_command.is_some() && (major >= 150000 || (major >= 130000 && config_in_data_dir));
        let args = RewindArgs {
            data_dir: paths.data_dir.clone(),
            source_dsn: dsn,
            pgpass,
            restore_target_wal: can_restore,
            config_file: (can_restore && major >= 150000 && !config_in_data_dir).then(|| paths.postgresql_conf.clone()),
            options,
        };
        loop {
            let out = match pg_rewind(&self.binaries(), &args).await {
                Ok(out) => out,
                Err(e) => {
                    tracing::info!("pg_rewind exit code=None");
                    tracing::error!("cannot run pg_rewind: {e}");
                    return false;
                }
            };
            let code = {
                use std::os::unix::process::ExitStatusExt;
                out.status.code().or_else(|| out.status.signal().map(|s| -s))
            };
            tracing::info!("pg_rewind exit code={}", code.map_or_else(|| "None".into(), |c| c.to_string()));
            tracing::info!(" stdout={}", out.stdout);
            tracing::info!(" stderr={}", out.stderr);
            if out.status.success() {
                return true;
            }
            let Some(restore) = restore_command.as_deref().filter(|_| !can_restore) else {
                return false;
            };
            let Some(missing) = find_missing_wal(&out.stderr).or_else(|| find_missing_wal(&out.stdout)) else {
                return false;
            };
            if !self.fetch_missing_wal(restore, &missing).await {
                tracing::info!("Failed to fetch WAL segment {missing} required for pg_rewind");
                return false;
            }
        }
    }

    /// Run `restore_command` for one WAL segment (Patroni's
    /// `_fetch_missing_wal`).
    async fn fetch_missing_wal(&self, restore_command: &str, wal: &str) -> bool {
        let wal_path = self.paths().data_dir.join("pg_wal").join(wal);
        let cmd = archiver_command(restore_command, &wal_path.to_string_lossy(), wal);
        tracing::info!("Trying to fetch the missing wal: {cmd}");
        let Ok(argv) = palisade_pycompat::shlex::split(&cmd) else { return false };
        let Some((program, args)) = argv.split_first() else { return false };
        tokio::process::Command::new(program).args(args).status().await.is_ok_and(|s| s.success())
    }

    /// pg_rewind empties `pg_replslot` itself only from v11 (Patroni's
    /// `_maybe_clean_pg_replslot`).
    fn clean_pg_replslot(&self) {
        if self.major_version().unwrap_or(0) >= 110000 {
            return;
        }
        let dir = self.paths().data_dir.join("pg_replslot");
        if let Err(e) = clean_dir(&dir) {
            tracing::warn!("Unable to clean {}: {e}", dir.display());
        }
    }
}

fn clean_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Patroni's `check_leader_is_not_in_recovery`.
async fn leader_is_not_in_recovery(conn: &LocalConnection) -> bool {
    match Sql::new(conn.clone()).is_in_recovery().await {
        Ok(false) => true,
        Ok(true) => {
            tracing::info!("Leader is still in_recovery and therefore can't be used for rewind");
            false
        }
        Err(e) => {
            tracing::error!("Exception when working with leader: {e}");
            false
        }
    }
}

/// Patroni's `checkpoint(connect_kwargs)` on the leader with the superuser:
/// `None` when it ran, else why not.
async fn checkpoint_on(conn: &LocalConnection) -> Option<String> {
    let sql = Sql::new(conn.clone());
    match sql.is_in_recovery().await {
        Ok(true) => return Some("is_in_recovery=true".into()),
        Ok(false) => {}
        Err(e) => {
            tracing::error!("Exception during CHECKPOINT: {e}");
            return Some("not accessible or not healty".into());
        }
    }
    match sql.checkpoint(None).await {
        Ok(()) => None,
        Err(e) => {
            tracing::error!("Exception during CHECKPOINT: {e}");
            Some("not accessible or not healty".into())
        }
    }
}

/// Patroni's test that a primary ran a checkpoint on its current timeline.
async fn has_run_checkpoint(sql: &Sql) -> Result<bool, crate::sql::SqlError> {
    let rows = sql
        .simple_query(
            "SELECT NOT pg_catalog.pg_is_in_recovery() AND ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(\
             pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int = timeline_id \
             FROM pg_catalog.pg_control_checkpoint()",
        )
        .await?;
    Ok(rows.first().and_then(|r| r.first()).cloned().flatten().as_deref() == Some("t"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn user_options_as_patroni_reads_them() {
        let cases: Vec<(Value, Vec<&str>, usize)> = vec![
            (json!(null), vec![], 0),
            (json!({"foo": "bar"}), vec!["--foo=bar"], 0),
            (json!(["progress", {"debug": "x"}]), vec!["--progress", "--debug=x"], 0),
            (json!([{"foo": "\"bar baz\""}]), vec!["--foo=bar baz"], 0),
            (json!(["dry-run", {"source-server": "x"}, "progress"]), vec!["--progress"], 2),
            (json!([{"a": 1}]), vec![], 1),
            (json!([["x"]]), vec![], 1),
            (json!("progress"), vec![], 1),
            (json!({"help": "yes", "empty": ""}), vec![], 1),
        ];
        for (input, want, errors) in cases {
            let (got, errs) = rewind_user_options(&input);
            assert_eq!(got, want, "{input}");
            assert_eq!(errs.len(), errors, "{input}: {errs:?}");
        }
    }

    #[test]
    fn missing_wal_in_output() {
        let out = "pg_rewind: servers diverged\npg_rewind: error: could not open file \
                   \"/data/pg_wal/0000000A00006AA100000068\": No such file or directory\n";
        assert_eq!(find_missing_wal(out).as_deref(), Some("0000000A00006AA100000068"));
        assert_eq!(find_missing_wal("could not open file \"/data/base/1/2\": gone"), None);
        assert_eq!(find_missing_wal("could not open file \"/data/pg_wal/00000001.history\": gone"), None);
        assert_eq!(find_missing_wal("nothing"), None);
    }
}
