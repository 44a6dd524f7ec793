//! Writing the configuration files and telling what applying them takes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::{file_err, lock, PgError, Postgres};
use crate::conf::{
    build_recovery_params, compare_with_settings, custom_bootstrap_hba, ensure_base_conf, parse_rendered_conf,
    remove_recovery_files, render_lines, render_postgresql_conf, sanitize_auto_conf, write_if_changed, write_pgpass,
    write_signal, ConfPaths, FollowTarget, ParamDiff, PostgresqlConf, RecoveryInput, RecoveryParams, ServerParameters,
};
use palisade_pycompat::patroni::compare_values;

/// What writing the configuration changed and what applying it takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigChange {
    /// Files whose content changed (or that were created or removed).
    pub files: Vec<PathBuf>,
    /// The server runs and a reload (SIGHUP) is needed to apply the change.
    pub reload_needed: bool,
    /// The server runs and only a restart applies part of the change: a
    /// parameter of `postmaster` context, or recovery being switched on or
    /// off.
    pub restart_needed: bool,
    /// The parameters that need the restart (Patroni's
    /// `pending_restart_reason`).
    pub pending_restart: BTreeMap<String, ParamDiff>,
}

impl ConfigChange {
    pub fn changed(&self) -> bool {
        !self.files.is_empty()
    }
}

/// The recovery parameters compared with the running server (Patroni's
/// `_recovery_parameters_to_compare`).
const RECOVERY_TO_COMPARE: &[&str] = &[
    "archive_cleanup_command",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "restore_command",
];

/// Recovery parameters that may legitimately come from an included file.
const MAY_COME_FROM_INCLUDES: &[&str] = &[
    "archive_cleanup_command",
    "promote_trigger_file",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "restore_command",
];

impl Postgres {
    /// Write postgresql.conf, pg_hba.conf, pg_ident.conf (and the pgpass
    /// file `primary_conninfo` uses) from the current settings and recovery
    /// settings, and tell whether a running server needs a reload or a
    /// restart to apply them (comparing with its `pg_settings`, as Patroni's
    /// `reload_config` does). Nothing is signalled.
    pub async fn write_config(&self) -> Result<ConfigChange, PgError> {
        let major = self.require_major()?;
        let paths = self.paths();
        let mut desired = self.server_parameters();
        let running = self.is_running().is_some();
        let mut change = ConfigChange::default();
        let previous = previous_parameters(&paths);
        if running {
            match self.compare_running(&desired, &previous).await {
                Ok(compared) => {
                    for name in &compared.invalid {
                        desired.remove(name);
                    }
                    change.reload_needed |= compared.changed;
                    change.pending_restart = compared.restart;
                }
                Err(e) => tracing::warn!("cannot compare the configuration with the running server: {e}"),
            }
        }
        change.files = self.write_files(&paths, &desired, major).await?;
        if running {
            change.reload_needed |= !change.files.is_empty();
            if self.recovery().is_some() {
                match self.recovery_differs(major).await {
                    Ok(true) if major < 130000 => change.restart_needed = true,
                    Ok(true) => change.reload_needed = true,
                    Ok(false) => {}
                    Err(e) => tracing::debug!("cannot compare recovery settings with the running server: {e}"),
                }
            }
        }
        change.restart_needed |= !change.pending_restart.is_empty();
        Ok(change)
    }

    /// Follow `target` as a standby (or stay a standby with nobody to follow
    /// when `None`): Patroni's `build_recovery_params` +
    /// `write_recovery_conf`: `standby.signal`, the recovery section of
    /// postgresql.conf, the pgpass file. When the server runs as a primary,
    /// applying this needs a restart.
    pub async fn follow(&self, target: Option<&FollowTarget>) -> Result<ConfigChange, PgError> {
        let major = self.require_major()?;
        let s = self.settings();
        let recovery = build_recovery_params(&RecoveryInput {
            our_name: &s.name,
            target,
            replication: &s.local.authentication.replication,
            recovery_conf: &s.effective.recovery_conf,
            use_slots: s.effective.use_slots,
            major,
        });
        self.set_recovery(Some(recovery)).await
    }

    /// Set the recovery settings as given (a custom bootstrap's
    /// `recovery_conf`, or `None` to run as a primary: signal files removed,
    /// recovery section dropped), write the files, and tell what applying
    /// them takes.
    pub async fn set_recovery(&self, recovery: Option<RecoveryParams>) -> Result<ConfigChange, PgError> {
        let paths = self.paths();
        let was_recovering = paths.recovery_signal_exists();
        let signal_changed = match &recovery {
            Some(r) => write_signal(&paths, r.standby),
            None => remove_recovery_files(&paths),
        }
        .map_err(file_err("write the recovery signal files in", &paths.data_dir))?;
        let now_recovering = recovery.is_some();
        let signal = match &recovery {
            Some(r) if !r.standby => paths.recovery_signal.clone(),
            _ => paths.standby_signal.clone(),
        };
        *lock(&self.recovery) = recovery;
        let mut change = self.write_config().await?;
        if signal_changed {
            change.files.push(signal);
            if self.is_running().is_some() && was_recovering != now_recovering {
                // Entering recovery needs a restart; leaving it is a promotion, which is not a restart.
                change.restart_needed |= now_recovering;
            }
        }
        Ok(change)
    }

    /// Run as a primary: no recovery settings (Patroni's `remove_recovery_conf`).
    pub async fn clear_recovery(&self) -> Result<ConfigChange, PgError> {
        self.set_recovery(None).await
    }

    /// Write every file for `params`; the list of files that changed.
    pub(crate) async fn write_files(
        &self,
        paths: &ConfPaths,
        params: &ServerParameters,
        major: u32,
    ) -> Result<Vec<PathBuf>, PgError> {
        let s = self.settings();
        let custom = *lock(&self.custom_bootstrap);
        let recovery = self.recovery();
        let catalog = self.gucs().await;
        let mut changed = Vec::new();
        if ensure_base_conf(paths).map_err(file_err("rename the original postgresql.conf in", &paths.config_dir))? {
            changed.push(paths.base_conf.clone());
        }
        let text = render_postgresql_conf(&PostgresqlConf {
            include: &paths.include(),
            parameters: params,
            hba_file: &paths.pg_hba,
            ident_file: &paths.pg_ident,
            recovery: recovery.as_ref(),
            pgpass: Some(&paths.pgpass),
            catalog,
            major,
            custom_bootstrap: custom.is_some(),
        });
        let mut write = |path: &PathBuf, content: &str| -> Result<(), PgError> {
            if write_if_changed(path, content, &paths.data_dir).map_err(file_err("write", path))? {
                changed.push(path.clone());
            }
            Ok(())
        };
        write(&paths.postgresql_conf, &text)?;
        if custom.is_some() {
            let su = &s.local.authentication.superuser.username;
            let replication = crate::sql::LocalConnection::resolve_replication(&s.local, params);
            let addresses = local_tcp_addresses(&replication.host, params);
            write(
                &paths.pg_hba,
                &custom_bootstrap_hba(&s.local.authentication.replication.username, Some(su), &addresses),
            )?;
        } else if params.custom_hba_file(&paths.pg_hba).is_none() && !s.effective.pg_hba.is_empty() {
            write(&paths.pg_hba, &render_lines(&s.effective.pg_hba))?;
        }
        if params.custom_ident_file(&paths.pg_ident).is_none() && !s.effective.pg_ident.is_empty() {
            write(&paths.pg_ident, &render_lines(&s.effective.pg_ident))?;
        }
        if let Some(content) = recovery.as_ref().and_then(RecoveryParams::pgpass_content) {
            let current = std::fs::read_to_string(&paths.pgpass).ok();
            if current.as_deref() != Some(content.as_str()) {
                write_pgpass(&paths.pgpass, &content).map_err(file_err("write", &paths.pgpass))?;
                changed.push(paths.pgpass.clone());
            }
        }
        if !custom.is_some_and(|c| c.keep_existing_recovery_conf)
            && sanitize_auto_conf(paths).map_err(file_err("clean", &paths.auto_conf))?
        {
            changed.push(paths.auto_conf.clone());
        }
        Ok(changed)
    }

    /// Compare desired parameters with the running server's pg_settings.
    async fn compare_running(
        &self,
        desired: &ServerParameters,
        previous: &ServerParameters,
    ) -> Result<crate::conf::ParameterChanges, PgError> {
        let mut names: BTreeSet<String> =
            desired.iter().chain(previous.iter()).map(|(n, _)| n.to_lowercase()).collect();
        names.extend(["shared_buffers", "wal_segment_size", "wal_block_size"].map(String::from));
        let rows = self.sql.settings(&names.into_iter().collect::<Vec<_>>()).await?;
        Ok(compare_with_settings(desired, previous, &rows))
    }

    /// Whether the running standby's recovery settings differ from ours
    /// (Patroni's `check_recovery_conf`, comparing strings).
    async fn recovery_differs(&self, major: u32) -> Result<bool, PgError> {
        let Some(recovery) = self.recovery() else { return Ok(false) };
        let paths = self.paths();
        let wanted: BTreeMap<String, String> = recovery.rendered(Some(&paths.pgpass), major).into_iter().collect();
        let names: Vec<String> = RECOVERY_TO_COMPARE.iter().map(|s| s.to_string()).collect();
        let rows = self.sql.settings(&names).await?;
        let ours = |f: &Option<String>| {
            f.as_deref().is_none_or(|f| {
                std::path::Path::new(f) == paths.postgresql_conf || std::path::Path::new(f) == paths.auto_conf
            })
        };
        for row in rows {
            let name = row.name.to_lowercase();
            let want = wanted.get(&name).map(String::as_str);
            if MAY_COME_FROM_INCLUDES.contains(&name.as_str()) && want.is_none() && !ours(&row.sourcefile) {
                continue;
            }
            let same = match name.as_str() {
                "recovery_min_apply_delay" => compare_values("integer", Some("ms"), &row.setting, want.unwrap_or("0")),
                "primary_slot_name" if !wanted.contains_key("primary_conninfo") => true,
                _ => row.setting == want.unwrap_or(""),
            };
            if !same {
                tracing::info!("recovery setting {} is '{}', wanted '{}'", row.name, row.setting, want.unwrap_or(""));
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What postgresql.conf says now, minus the `hba_file`/`ident_file` lines
/// we add ourselves.
fn previous_parameters(paths: &ConfPaths) -> ServerParameters {
    let Ok(text) = std::fs::read_to_string(&paths.postgresql_conf) else { return ServerParameters::default() };
    let (mut params, _) = parse_rendered_conf(&text);
    if params.custom_hba_file(&paths.pg_hba).is_none() {
        params.remove("hba_file");
    }
    if params.custom_ident_file(&paths.pg_ident).is_none() {
        params.remove("ident_file");
    }
    params
}

/// Addresses of the local TCP host (for the custom bootstrap trust rules).
fn local_tcp_addresses(host: &str, params: &ServerParameters) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    if host.starts_with('/') {
        return Vec::new();
    }
    let port: u16 = params.get("port").and_then(|p| p.parse().ok()).unwrap_or(5432);
    let mut out: Vec<std::net::IpAddr> =
        (host, port).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default();
    out.sort();
    out.dedup();
    out
}
