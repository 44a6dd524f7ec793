use std::time::Duration;

use super::{Binaries, CommandError, Env, Invocation, Program};

/// `pg_isready` answers (its exit codes 0-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsReady {
    /// 0: accepting connections.
    Accepting,
    /// 1: up but rejecting connections (starting up, shutting down,
    /// recovering before consistency).
    Rejecting,
    /// 2: no response (not running, or not listening yet).
    NoResponse,
    /// 3 or anything else: no attempt was made (bad parameters).
    Unknown,
}

/// Where to ask: the local connection's host (a socket directory or a TCP
/// host), port, database and user. `pg_isready` does not authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsReadyArgs {
    pub host: Option<String>,
    pub port: u16,
    pub dbname: String,
    pub user: Option<String>,
    /// `-t`: seconds to wait for the connection attempt.
    pub timeout: Duration,
}

pub async fn pg_isready(bins: &Binaries, args: &IsReadyArgs) -> Result<IsReady, CommandError> {
    let mut inv = Invocation::new(bins.path(Program::PgIsready), Env::c_locale())
        .arg("-p")
        .arg(args.port.to_string())
        .arg("-d")
        .arg(&args.dbname)
        .arg("-t")
        .arg(args.timeout.as_secs().max(1).to_string());
    if let Some(host) = &args.host {
        inv = inv.arg("-h").arg(host);
    }
    if let Some(user) = &args.user {
        inv = inv.arg("-U").arg(user);
    }
    let out = inv.timeout(args.timeout + Duration::from_secs(5)).output().await?;
    Ok(match out.status.code() {
        Some(0) => IsReady::Accepting,
        Some(1) => IsReady::Rejecting,
        Some(2) => IsReady::NoResponse,
        _ => IsReady::Unknown,
    })
}
