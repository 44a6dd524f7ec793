//! The basebackup replica-creation method: builds a replica's data directory
//! with `pg_basebackup` streaming from a running member, as Patroni's
//! built-in `basebackup` method does (`--pgdata=<dir> -X stream
//! --dbname=<connstring>` plus the `postgresql.basebackup` options, two
//! attempts five seconds apart, the directory emptied before each attempt
//! and after a failure).
//!
//! Like every plugin it is built against `palisade-plugin-api` only and must
//! never depend on a host crate.
#![allow(non_local_definitions)]

// Shared with other plugin crates (see each file's header); not every crate
// uses every helper.
mod options;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use palisade_plugin_api::{PluginError, PluginParams, PluginResult, ReplicaMethod, ReplicaRequest};

use options::{Options, SECTION};
use palisade_plugin_api::sdk::datadir;
use palisade_plugin_api::sdk::process::Cancellable;

/// Patroni tries twice...
const ATTEMPTS: u32 = 2;
/// ...five seconds apart.
const RETRY_DELAY: Duration = Duration::from_secs(5);
/// pg_basebackup dies on SIGTERM at once; SIGKILL its group if it has not.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The basebackup method.
pub struct Basebackup {
    options: Options,
    running: Cancellable,
}

impl Basebackup {
    fn new(params: PluginParams) -> PluginResult<Self> {
        Ok(Self { options: Options::parse(&params.config_json)?, running: Cancellable::default() })
    }
}

/// `pg_basebackup`'s command line, Patroni's order.
fn arguments(data_dir: &str, connstring: &str, options: &Options) -> Vec<String> {
    let mut args =
        vec![format!("--pgdata={data_dir}"), "-X".to_string(), "stream".to_string(), format!("--dbname={connstring}")];
    args.extend(options.args.iter().cloned());
    args
}

/// `<bin_dir>/pg_basebackup`, or the first one on `PATH` (the request's,
/// else the daemon's) when no bin_dir is configured.
fn program(request: &ReplicaRequest) -> PathBuf {
    if !request.bin_dir.is_empty() {
        return Path::new(&request.bin_dir).join("pg_basebackup");
    }
    let path = request
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| std::ffi::OsString::from(v))
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("pg_basebackup"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("pg_basebackup"))
}

/// A command with a cleared environment plus the request's, in its cwd.
fn command(program: &Path, request: &ReplicaRequest) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().envs(request.env.iter().map(|(k, v)| (k, v)));
    if !request.cwd.is_empty() {
        cmd.current_dir(&request.cwd);
    }
    cmd
}

impl Basebackup {
    /// Refuse `compress` before PostgreSQL 15 (client-side compression
    /// cannot be used with a replica's data directory).
    fn check_compress(&self, program: &Path, request: &ReplicaRequest) -> PluginResult<()> {
        if !self.options.compress {
            return Ok(());
        }
        let mut cmd = command(program, request);
        cmd.arg("--version");
        let major = cmd.output().ok().and_then(|o| options::major_version(&String::from_utf8_lossy(&o.stdout)));
        match major {
            Some(v) if v < 15 => {
                Err(PluginError::config(format!("{SECTION}: compress is not allowed before PostgreSQL 15 (found {v})")))
            }
            _ => Ok(()),
        }
    }

    fn empty_data_dir(&self, dir: &Path) -> PluginResult<()> {
        if !datadir::has_entries(dir) {
            return Ok(());
        }
        tracing::info!("Removing data directory: {}", dir.display());
        datadir::clean(dir).map_err(|e| PluginError::other(format!("cannot empty {}: {e}", dir.display())))
    }
}

impl ReplicaMethod for Basebackup {
    fn can_work_without_leader(&self) -> bool {
        false
    }

    fn create_replica(&self, request: &ReplicaRequest) -> PluginResult<()> {
        let _session = self.running.begin();
        let Some(connstring) = request.connstring.as_deref().filter(|c| !c.is_empty()) else {
            return Err(PluginError::other("pg_basebackup needs a running member to copy from, and there is none"));
        };
        let dir = datadir::resolve(&request.cwd, &request.data_dir);
        let program = program(request);
        self.check_compress(&program, request)?;
        let args = arguments(&request.data_dir, connstring, &self.options);

        let mut failure = String::from("pg_basebackup was cancelled");
        for attempt in 1..=ATTEMPTS {
            if self.running.is_cancelled() {
                break;
            }
            self.empty_data_dir(&dir)?;
            datadir::ensure(&dir).map_err(|e| PluginError::other(format!("cannot create {}: {e}", dir.display())))?;

            tracing::debug!("calling: {} {:?}", program.display(), args);
            let mut cmd = command(&program, request);
            cmd.args(&args);
            match self.running.run(cmd, "pg_basebackup", CANCEL_GRACE) {
                Ok(outcome) if outcome.success() => return Ok(()),
                Ok(outcome) if outcome.cancelled => {
                    failure = "pg_basebackup was cancelled".to_string();
                    break;
                }
                Ok(outcome) => {
                    tracing::error!(
                        "Error when fetching backup: pg_basebackup exited with code={}",
                        outcome.returncode()
                    );
                    failure = format!("pg_basebackup exited with {}", outcome.describe());
                    if !outcome.stderr_tail.is_empty() {
                        failure.push_str(": ");
                        failure.push_str(&outcome.stderr_tail.join(" / "));
                    }
                }
                Err(e) => {
                    tracing::error!("Error when fetching backup with pg_basebackup: {e}");
                    failure = format!("cannot run {}: {e}", program.display());
                }
            }
            if attempt < ATTEMPTS {
                tracing::warn!("Trying again in {} seconds", RETRY_DELAY.as_secs());
                if !self.running.pause(RETRY_DELAY) {
                    failure = "pg_basebackup was cancelled".to_string();
                    break;
                }
            }
        }
        // Leave an empty directory behind, so that the next attempt (or
        // another method) starts from scratch.
        if let Err(e) = self.empty_data_dir(&dir) {
            tracing::error!("{e}");
        }
        Err(PluginError::other(failure))
    }

    fn cancel(&self) {
        self.running.cancel();
    }
}

palisade_plugin_api::export_plugin!(replica, "basebackup", Basebackup::new);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(bin_dir: &str, env: &[(&str, &str)]) -> ReplicaRequest {
        ReplicaRequest {
            scope: "demo".into(),
            name: "node2".into(),
            role: "replica".into(),
            data_dir: "/data/pg".into(),
            bin_dir: bin_dir.into(),
            connstring: Some("dbname=postgres user=replicator host=10.0.0.1 port=5432".into()),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            cwd: "/".into(),
        }
    }

    #[test]
    fn command_line_is_patronis() {
        let options =
            Options::parse(&json!(["verbose", {"max-rate": "100M"}]).to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            arguments("/data/pg", "dbname=postgres user=replicator host=10.0.0.1 port=5432", &options),
            [
                "--pgdata=/data/pg",
                "-X",
                "stream",
                "--dbname=dbname=postgres user=replicator host=10.0.0.1 port=5432",
                "--verbose",
                "--max-rate=100M"
            ]
        );
    }

    #[test]
    fn the_program_comes_from_bin_dir_or_path() {
        assert_eq!(
            program(&request("/usr/lib/postgresql/15/bin", &[])),
            PathBuf::from("/usr/lib/postgresql/15/bin/pg_basebackup")
        );
        assert_eq!(program(&request("", &[("PATH", "/nonexistent")])), PathBuf::from("pg_basebackup"));
    }

    #[test]
    fn the_environment_is_cleared() {
        let cmd = command(Path::new("/bin/true"), &request("", &[("PGPASSFILE", "/tmp/pgpass")]));
        let envs: Vec<_> = cmd.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
        assert_eq!(envs, [("PGPASSFILE".into(), Some("/tmp/pgpass".into()))]);
        // `env_clear` is recorded separately: nothing of ours is inherited.
        assert!(format!("{cmd:?}").contains("env -i"), "{cmd:?}");
    }

    #[test]
    fn nothing_to_copy_from_is_an_error() {
        let b = Basebackup::new(PluginParams { scope: "demo".into(), name: "n".into(), config_json: "null".into() })
            .unwrap_or_else(|e| panic!("{e}"));
        let mut r = request("/nonexistent", &[]);
        r.connstring = None;
        let err = b.create_replica(&r).err().unwrap_or_else(|| panic!("accepted"));
        assert!(err.message.contains("needs a running member"), "{err}");
        assert!(!b.can_work_without_leader());
    }
}
