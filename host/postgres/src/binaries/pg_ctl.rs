use std::path::PathBuf;
use std::time::Duration;

use super::{Binaries, CommandError, Env, Invocation, Program};

/// What to ask `pg_ctl` for. Starting and stopping are done by
/// [`crate::process`] directly, as Patroni does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgCtlAction {
    /// `pg_ctl promote`; with `wait: false` it returns at once (`-W`), as
    /// Patroni calls it.
    Promote { wait: bool },
    /// `pg_ctl reload`.
    Reload,
}

/// `pg_ctl <action> -D <data_dir>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgCtlArgs {
    pub data_dir: PathBuf,
    pub action: PgCtlAction,
    /// `-t <seconds>` when waiting.
    pub timeout: Option<Duration>,
}

pub async fn pg_ctl(bins: &Binaries, args: &PgCtlArgs) -> Result<(), CommandError> {
    let mut inv = Invocation::new(bins.path(Program::PgCtl), Env::c_locale());
    inv = match &args.action {
        PgCtlAction::Promote { wait } => inv.arg("promote").arg(if *wait { "-w" } else { "-W" }),
        PgCtlAction::Reload => inv.arg("reload"),
    };
    inv = inv.arg("-D").arg(&args.data_dir);
    if let Some(t) = args.timeout {
        inv = inv.arg("-t").arg(t.as_secs().max(1).to_string());
    }
    let limit = args.timeout.unwrap_or(Duration::from_secs(60)) + Duration::from_secs(10);
    inv.timeout(limit).output().await?.success().map(|_| ())
}
