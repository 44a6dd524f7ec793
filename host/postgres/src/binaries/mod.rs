//! One typed async function per PostgreSQL program.
//!
//! Every program runs from `bin_dir` with its `bin_name` (or from `PATH`),
//! with a cleared environment holding only what it needs, and fails with a
//! [`CommandError`] that names the program and carries its exit status and
//! stderr.

mod initdb;
mod pg_controldata;
mod pg_ctl;
mod pg_isready;
mod pg_rewind;
mod pg_waldump;
mod postgres;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use palisade_config::{BinNames, PostgresqlConfig};
use tokio::io::AsyncWriteExt;

pub use initdb::{initdb, InitdbArgs};
pub use pg_controldata::pg_controldata;
pub use pg_ctl::{pg_ctl, PgCtlAction, PgCtlArgs};
pub use pg_isready::{pg_isready, IsReady, IsReadyArgs};
pub use pg_rewind::{pg_rewind, pg_rewind_available, RewindArgs};
pub use pg_waldump::{
    checkpoint_end, end_of_wal, pg_waldump, shutdown_checkpoint, ShutdownCheckpoint, WalRecord, WaldumpArgs,
};
pub use postgres::{
    describe_config, postgres_version, show_setting, single_user, GucCatalog, GucInfo, ShowSettingArgs, SingleUserArgs,
};

/// The PostgreSQL programs we run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    Initdb,
    PgCtl,
    PgControldata,
    Postgres,
    PgIsready,
    PgRewind,
    PgBasebackup,
    PgWaldump,
}

/// Where the PostgreSQL programs are: `postgresql.bin_dir` and
/// `postgresql.bin_name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binaries {
    bin_dir: Option<PathBuf>,
    names: BinNames,
}

impl Binaries {
    pub fn new(bin_dir: Option<&Path>, names: &BinNames) -> Self {
        let bin_dir = bin_dir.filter(|d| !d.as_os_str().is_empty()).map(Path::to_path_buf);
        Self { bin_dir, names: names.clone() }
    }

    pub fn from_config(config: &PostgresqlConfig) -> Self {
        Self::new(config.bin_dir.as_deref(), &config.bin_name)
    }

    /// The configured name of `program` (`bin_name.*`, `pg_waldump` has no
    /// setting).
    pub fn name(&self, program: Program) -> &str {
        match program {
            Program::Initdb => &self.names.initdb,
            Program::PgCtl => &self.names.pg_ctl,
            Program::PgControldata => &self.names.pg_controldata,
            Program::Postgres => &self.names.postgres,
            Program::PgIsready => &self.names.pg_isready,
            Program::PgRewind => &self.names.pg_rewind,
            Program::PgBasebackup => &self.names.pg_basebackup,
            Program::PgWaldump => "pg_waldump",
        }
    }

    /// The path to run: `bin_dir/name`, or the first match on the daemon's
    /// `PATH` when `bin_dir` is not set (the bare name when nothing matches,
    /// so that the spawn error names it).
    pub fn path(&self, program: Program) -> PathBuf {
        let name = self.name(program);
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => find_on_path(name).unwrap_or_else(|| PathBuf::from(name)),
        }
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(candidate).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}

/// A PostgreSQL program (or a script) could not be run or failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} failed ({status}): {}", program.display(), stderr.trim())]
    Failed { program: PathBuf, status: ExitStatus, stderr: String },
    #[error("{} did not finish within {timeout:?}", program.display())]
    Timeout { program: PathBuf, timeout: Duration },
    #[error("unexpected output from {}: {message}", program.display())]
    Output { program: PathBuf, message: String },
    /// Preparing for the call failed (a temporary password file...).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl CommandError {
    /// The exit status when the program ran and failed.
    pub fn status(&self) -> Option<ExitStatus> {
        match self {
            Self::Failed { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What a program printed and how it ended.
#[derive(Clone, Debug)]
pub struct CommandOutput {
    pub program: PathBuf,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// `Ok(self)` on exit code 0, else [`CommandError::Failed`].
    pub fn success(self) -> Result<Self, CommandError> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(CommandError::Failed { program: self.program, status: self.status, stderr: self.stderr })
        }
    }
}

/// The environment a program gets; nothing of the daemon's is inherited
/// unless listed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Env {
    vars: Vec<(OsString, OsString)>,
}

impl Env {
    /// `LC_ALL=C` and `LANG=C`: output we parse, messages in English.
    pub(crate) fn c_locale() -> Self {
        Self::default().set("LC_ALL", "C").set("LANG", "C")
    }

    /// The daemon's locale settings (`LANG`, `LC_*`) and `TZ`, for programs
    /// whose result depends on them (initdb picks the cluster's locale and
    /// time zone from them, as it does under Patroni).
    pub(crate) fn inherited_locale() -> Self {
        let vars = std::env::vars_os()
            .filter(|(k, _)| {
                let k = k.to_string_lossy();
                k == "LANG" || k == "TZ" || k.starts_with("LC_")
            })
            .collect();
        Self { vars }
    }

    pub(crate) fn set(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        let key = key.as_ref().to_os_string();
        self.vars.retain(|(k, _)| *k != key);
        self.vars.push((key, value.as_ref().to_os_string()));
        self
    }

    pub(crate) fn set_opt(self, key: &str, value: Option<impl AsRef<OsStr>>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }
}

/// One run of a program to completion.
pub(crate) struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Env,
    pub timeout: Option<Duration>,
    pub stdin: Option<Vec<u8>>,
    pub current_dir: Option<PathBuf>,
}

impl Invocation {
    pub(crate) fn new(program: PathBuf, env: Env) -> Self {
        Self { program, args: Vec::new(), env, timeout: None, stdin: None, current_dir: None }
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub(crate) fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Run, collect stdout and stderr, and return however it exited.
    pub(crate) async fn output(self) -> Result<CommandOutput, CommandError> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args).env_clear().envs(self.env.vars.iter().map(|(k, v)| (k, v)));
        cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        tracing::debug!("running {} {:?}", self.program.display(), self.args);
        let mut child = cmd.spawn().map_err(|source| CommandError::Spawn { program: self.program.clone(), source })?;
        if let (Some(input), Some(mut stdin)) = (self.stdin, child.stdin.take()) {
            // A program that exits without reading its input is not an error here.
            let _ = stdin.write_all(&input).await;
        }
        let wait = child.wait_with_output();
        let out = match self.timeout {
            Some(t) => match tokio::time::timeout(t, wait).await {
                Ok(r) => r,
                Err(_) => return Err(CommandError::Timeout { program: self.program, timeout: t }),
            },
            None => wait.await,
        }
        .map_err(|source| CommandError::Spawn { program: self.program.clone(), source })?;
        Ok(CommandOutput {
            program: self.program,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_bin_dir_and_names() {
        let names = BinNames { pg_ctl: "my_pg_ctl".into(), ..BinNames::default() };
        let b = Binaries::new(Some(Path::new("/opt/pg/bin")), &names);
        assert_eq!(b.path(Program::PgCtl), PathBuf::from("/opt/pg/bin/my_pg_ctl"));
        assert_eq!(b.path(Program::PgWaldump), PathBuf::from("/opt/pg/bin/pg_waldump"));
        let empty = Binaries::new(Some(Path::new("")), &names);
        assert_eq!(empty.bin_dir, None);
    }

    #[tokio::test]
    async fn environment_is_cleared() {
        std::env::set_var("PALISADE_SHOULD_NOT_LEAK", "1");
        let out = Invocation::new(PathBuf::from("/usr/bin/env"), Env::c_locale().set("PGDATA", "/x"))
            .output()
            .await
            .unwrap()
            .success()
            .unwrap();
        let mut lines: Vec<&str> = out.stdout.lines().collect();
        lines.sort();
        assert_eq!(lines, vec!["LANG=C", "LC_ALL=C", "PGDATA=/x"]);
    }

    #[tokio::test]
    async fn failures_carry_status_and_stderr() {
        let err = Invocation::new(PathBuf::from("/bin/sh"), Env::default())
            .args(["-c", "echo oops >&2; exit 3"])
            .output()
            .await
            .unwrap()
            .success()
            .unwrap_err();
        assert_eq!(err.status().and_then(|s| s.code()), Some(3));
        assert!(err.to_string().contains("oops"), "{err}");
        let err = Invocation::new(PathBuf::from("/nonexistent/initdb"), Env::default()).output().await.unwrap_err();
        assert!(matches!(err, CommandError::Spawn { .. }), "{err}");
        let err = Invocation::new(PathBuf::from("/bin/sleep"), Env::default())
            .arg("5")
            .timeout(Duration::from_millis(50))
            .output()
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }), "{err}");
    }
}
