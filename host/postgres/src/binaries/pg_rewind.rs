use std::path::PathBuf;

use super::{Binaries, CommandError, CommandOutput, Env, Invocation, Program};

/// `pg_rewind -D <data_dir> --source-server <dsn> [options]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewindArgs {
    pub data_dir: PathBuf,
    /// The source's connection string, without a password (see
    /// [`crate::conf::format_dsn`]); the password comes from `pgpass`.
    pub source_dsn: String,
    /// Set as `PGPASSFILE`.
    pub pgpass: Option<PathBuf>,
    /// `--restore-target-wal`.
    pub restore_target_wal: bool,
    /// `--config-file=` (PostgreSQL 15+, when the configuration is not in
    /// the data directory).
    pub config_file: Option<PathBuf>,
    /// `rewind` options from the configuration, as `--name=value`.
    pub options: Vec<String>,
}

/// Run pg_rewind and return how it ended, with its output whatever its
/// exit code (Patroni logs both streams, and looks for a missing WAL file
/// in them). An error only when it could not be run.
pub async fn pg_rewind(bins: &Binaries, args: &RewindArgs) -> Result<CommandOutput, CommandError> {
    // PATH: pg_rewind may run restore_command through the shell.
    let env = Env::c_locale()
        .set("PGOPTIONS", "-c statement_timeout=0")
        .set_opt("PGPASSFILE", args.pgpass.as_ref())
        .set_opt("PATH", std::env::var_os("PATH"));
    let mut inv = Invocation::new(bins.path(Program::PgRewind), env);
    if args.restore_target_wal {
        inv = inv.arg("--restore-target-wal");
    }
    if let Some(conf) = &args.config_file {
        let mut a = std::ffi::OsString::from("--config-file=");
        a.push(conf);
        inv = inv.arg(a);
    }
    inv.arg("-D").arg(&args.data_dir).arg("--source-server").arg(&args.source_dsn).args(&args.options).output().await
}

/// `pg_rewind --help` runs and exits 0 (Patroni's first `can_rewind` check).
pub async fn pg_rewind_available(bins: &Binaries) -> Result<(), CommandError> {
    Invocation::new(bins.path(Program::PgRewind), Env::c_locale())
        .arg("--help")
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .await?
        .success()
        .map(|_| ())
}
