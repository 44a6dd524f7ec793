use std::path::PathBuf;

use super::{Binaries, CommandError, Env, Invocation, Program};

/// `initdb [options] <data_dir>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitdbArgs {
    pub data_dir: PathBuf,
    /// `--username=<name>`: the bootstrap superuser.
    pub username: Option<String>,
    /// `--pwfile=<file>`: a file holding the superuser's password.
    pub pwfile: Option<PathBuf>,
    /// Further options, already in `--name=value` / `--flag` form (see
    /// [`crate::bootstrap::initdb_options`]).
    pub options: Vec<String>,
}

/// Create a data directory. initdb gets the daemon's locale variables
/// (`LANG`, `LC_*`, `TZ`), so the cluster's default locale and time zone
/// are the ones it would get under Patroni.
pub async fn initdb(bins: &Binaries, args: &InitdbArgs) -> Result<(), CommandError> {
    let mut inv = Invocation::new(bins.path(Program::Initdb), Env::inherited_locale()).args(&args.options);
    if let Some(user) = &args.username {
        inv = inv.arg(format!("--username={user}"));
    }
    if let Some(pwfile) = &args.pwfile {
        let mut a = std::ffi::OsString::from("--pwfile=");
        a.push(pwfile);
        inv = inv.arg(a);
    }
    inv.arg(&args.data_dir).output().await?.success().map(|_| ())
}
