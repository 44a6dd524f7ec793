//! The postmaster as a process: starting it so that it outlives the daemon,
//! finding (adopting) one that is already running, signalling it, waiting
//! for it to go.
//!
//! PostgreSQL is started directly (not through `pg_ctl start`), in a new
//! session, so that signals to the daemon's process group or terminal never
//! reach it and a crash of the daemon leaves it running. The daemon keeps the
//! child handle only to reap it if it exits while the daemon lives; after a
//! daemon restart the postmaster is found again from `postmaster.pid`,
//! checked as Patroni checks it (`PostmasterProcess._is_postmaster_process`).

mod pidfile;
pub(crate) mod procfs;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use pidfile::PidFile;

/// How PostgreSQL is asked to stop (the signal Patroni sends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// SIGTERM: wait for sessions to end.
    Smart,
    /// SIGINT: roll back sessions, write a shutdown checkpoint.
    Fast,
    /// SIGQUIT: stop at once; crash recovery at the next start.
    Immediate,
}

impl StopMode {
    pub fn signal(self) -> Signal {
        match self {
            Self::Smart => Signal::SIGTERM,
            Self::Fast => Signal::SIGINT,
            Self::Immediate => Signal::SIGQUIT,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Smart => "smart",
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

/// Where the postmaster's stdout and stderr go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PostmasterOutput {
    /// The daemon's own (Patroni's behaviour; PostgreSQL's `logging_collector`
    /// usually takes over).
    #[default]
    Inherit,
    /// Appended to a file.
    File(PathBuf),
    Null,
}

/// Starting, signalling or finding the postmaster failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the postmaster output file {}: {source}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot send {signal} to the postmaster (pid {pid}): {source}")]
    Signal {
        pid: i32,
        signal: Signal,
        #[source]
        source: nix::Error,
    },
    #[error("a single-user server is running (pid {pid}); it cannot be stopped by signal")]
    SingleUser { pid: i32 },
}

/// A running postmaster: one we started (a child we can reap) or one we
/// found from `postmaster.pid`.
#[derive(Debug)]
pub struct Postmaster {
    pid: i32,
    /// `/proc` start time at discovery, to tell the process from a later one
    /// with the same PID.
    start_ticks: Option<u64>,
    child: Option<tokio::process::Child>,
    single_user: bool,
}

impl Postmaster {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Started by this process (so we reap it).
    pub fn is_child(&self) -> bool {
        self.child.is_some()
    }

    /// A `postgres --single` backend holds the data directory.
    pub fn is_single_user(&self) -> bool {
        self.single_user
    }

    /// Still running (not exited, not a zombie, not replaced by another
    /// process with the same PID). Reaps our child when it has exited.
    pub fn is_running(&mut self) -> bool {
        if let Some(child) = self.child.as_mut() {
            match child.try_wait() {
                Ok(Some(status)) => {
                    tracing::info!("postmaster (pid {}) exited: {status}", self.pid);
                    self.child = None;
                    self.start_ticks = None;
                    return false;
                }
                Ok(None) => return true,
                Err(_) => {}
            }
        }
        match procfs::stat(self.pid) {
            Some(s) if s.state != 'Z' && s.state != 'X' => self.start_ticks.is_none_or(|t| t == s.start_ticks),
            _ => false,
        }
    }

    /// Send `signal`. `Ok(false)` when the process is already gone.
    pub fn signal(&self, signal: Signal) -> Result<bool, ProcessError> {
        match kill(Pid::from_raw(self.pid), signal) {
            Ok(()) => Ok(true),
            Err(nix::Error::ESRCH) => Ok(false),
            Err(source) => Err(ProcessError::Signal { pid: self.pid, signal, source }),
        }
    }

    /// Ask it to stop (Patroni's `signal_stop`). `Ok(false)` when it was
    /// already gone.
    pub fn signal_stop(&self, mode: StopMode) -> Result<bool, ProcessError> {
        if self.single_user {
            return Err(ProcessError::SingleUser { pid: self.pid });
        }
        self.signal(mode.signal())
    }

    /// Wait until it has exited (and reap it when it is our child); `false`
    /// when `timeout` passed first. `None` waits without limit.
    pub async fn wait_exit(&mut self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        if let Some(child) = self.child.as_mut() {
            let waited = match timeout {
                Some(t) => tokio::time::timeout(t, child.wait()).await.ok(),
                None => Some(child.wait().await),
            };
            match waited {
                Some(Ok(status)) => {
                    tracing::info!("postmaster (pid {}) exited: {status}", self.pid);
                    self.child = None;
                    return true;
                }
                Some(Err(_)) => self.child = None,
                None => return false,
            }
        }
        loop {
            if !self.is_running() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its children that serve clients (Patroni's user backends): every
    /// child but the auxiliary processes and the WAL senders, which take no
    /// writes ([`is_auxiliary`]).
    pub fn user_backends(&self) -> Vec<i32> {
        procfs::children(self.pid)
            .into_iter()
            .filter(|c| procfs::cmdline(*c).is_some_and(|title| !is_auxiliary(&title)))
            .collect()
    }

    /// The last resort (Patroni's `signal_kill`): stop the postmaster with
    /// SIGSTOP so it cannot start new processes, SIGKILL it and every
    /// child, and wait until they are gone.
    pub async fn kill_all(&mut self) {
        let _ = self.signal(Signal::SIGSTOP);
        let children = procfs::children(self.pid);
        let _ = self.signal(Signal::SIGKILL);
        for c in &children {
            let _ = kill(Pid::from_raw(*c), Signal::SIGKILL);
        }
        self.wait_exit(Some(Duration::from_secs(30))).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while children.iter().any(|c| procfs::is_alive(*c)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Find the postmaster running on `data_dir`, as Patroni does: the PID in
/// `postmaster.pid` must be alive, must not be this process or its parent,
/// and must be the postmaster (same start time as recorded in the file, or
/// an executable named like `postgres_name`/`postmaster` whose working
/// directory is the data directory).
pub fn find_postmaster(data_dir: &Path, postgres_name: &str) -> Option<Postmaster> {
    let pidfile = PidFile::read(data_dir).ok().flatten()?;
    let pid = pidfile.process_id();
    let stat = procfs::stat(pid).filter(|s| s.state != 'Z' && s.state != 'X')?;
    is_postmaster_process(pid, &stat, &pidfile, data_dir, postgres_name).then_some(Postmaster {
        pid,
        start_ticks: Some(stat.start_ticks),
        child: None,
        single_user: pidfile.is_single_user(),
    })
}

fn is_postmaster_process(
    pid: i32,
    stat: &procfs::ProcStat,
    pidfile: &PidFile,
    data_dir: &Path,
    postgres_name: &str,
) -> bool {
    let me = std::process::id() as i32;
    if pid == me || pid == nix::unistd::getppid().as_raw() {
        tracing::info!("pid {pid} from postmaster.pid is this process or its parent, not a postmaster");
        return false;
    }
    if let (Some(recorded), Some(started)) = (pidfile.start_time, procfs::create_time(stat)) {
        if (started - recorded as f64).abs() < 3.0 {
            return true;
        }
    }
    let exe = match procfs::exe(pid) {
        Ok(e) => e,
        Err(e) => {
            tracing::info!("process {pid} from postmaster.pid: cannot read its executable ({e}); not adopting it");
            return false;
        }
    };
    let exe_name =
        exe.file_name().map(|n| n.to_string_lossy().trim_end_matches(" (deleted)").to_string()).unwrap_or_default();
    let wanted = Path::new(postgres_name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if exe_name != wanted && exe_name != "postmaster" {
        tracing::info!(
            "process {pid} from postmaster.pid with executable file \"{}\" does not look like postgres",
            exe.display()
        );
        return false;
    }
    match (procfs::cwd(pid).and_then(std::fs::canonicalize), std::fs::canonicalize(data_dir)) {
        (Ok(cwd), Ok(dir)) if cwd == dir => true,
        (Ok(cwd), Ok(_)) => {
            tracing::info!(
                "process {pid} from postmaster.pid does not look like postgres because CWD=\"{}\" is not PGDATA=\"{}\"",
                cwd.display(),
                data_dir.display()
            );
            false
        }
        _ => {
            tracing::warn!(
                "could not determine if process {pid} from postmaster.pid is the postgres instance; assuming it is"
            );
            true
        }
    }
}

/// The postmaster command line: `postgres -D <data_dir>
/// --config-file=<config_file> --name=value...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnArgs {
    pub program: PathBuf,
    pub data_dir: PathBuf,
    pub config_file: PathBuf,
    /// `--name=value` options (see [`crate::conf::ServerParameters::cmdline_options`]).
    pub options: Vec<String>,
    pub output: PostmasterOutput,
}

/// Environment variables the postmaster does not get: the daemon's own
/// configuration and the systemd notification socket (only the daemon
/// talks to systemd).
fn keep_for_postmaster(name: &str) -> bool {
    !(name.starts_with("PATRONI_")
        || name.starts_with("PALISADE_")
        || name.starts_with("KUBERNETES_")
        || name == "NOTIFY_SOCKET")
}

/// Start the postmaster in a new session, detached from the daemon's
/// process group and terminal. The environment is the daemon's minus
/// `PATRONI_*`, `PALISADE_*`, `KUBERNETES_*` and `NOTIFY_SOCKET` (archive and
/// restore commands run with it, as under Patroni); `PG_MALLOC_ARENA_MAX`
/// becomes `MALLOC_ARENA_MAX`. When `postmaster.pid` names a live process
/// that is not a postmaster, `PG_GRANDPARENT_PID` tells PostgreSQL to
/// ignore it (Patroni's workaround for reused PIDs).
pub fn spawn_postmaster(args: &SpawnArgs) -> Result<Postmaster, ProcessError> {
    let mut env: Vec<(OsString, OsString)> =
        std::env::vars_os().filter(|(k, _)| keep_for_postmaster(&k.to_string_lossy())).collect();
    if let Some(pos) = env.iter().position(|(k, _)| k == "PG_MALLOC_ARENA_MAX") {
        let (_, v) = env.remove(pos);
        env.retain(|(k, _)| k != "MALLOC_ARENA_MAX");
        env.push(("MALLOC_ARENA_MAX".into(), v));
    }
    if let Ok(Some(pidfile)) = PidFile::read(&args.data_dir) {
        let pid = pidfile.process_id();
        let name = args.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(stat) = procfs::stat(pid).filter(|s| s.state != 'Z') {
            if !is_postmaster_process(pid, &stat, &pidfile, &args.data_dir, &name) {
                tracing::info!("Telling pg_ctl that it is safe to ignore postmaster.pid for process {pid}");
                env.push(("PG_GRANDPARENT_PID".into(), pid.to_string().into()));
            }
        }
    }
    let mut config = OsString::from("--config-file=");
    config.push(&args.config_file);
    let mut cmd = tokio::process::Command::new(&args.program);
    cmd.arg("-D").arg(&args.data_dir).arg(config).args(&args.options);
    cmd.env_clear().envs(env).stdin(Stdio::null()).kill_on_drop(false);
    match &args.output {
        PostmasterOutput::Inherit => {}
        PostmasterOutput::Null => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        PostmasterOutput::File(path) => {
            let open = || std::fs::OpenOptions::new().create(true).append(true).open(path);
            let err = |source| ProcessError::Output { path: path.clone(), source };
            cmd.stdout(open().map_err(err)?).stderr(open().map_err(err)?);
        }
    }
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setsid(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
    }
    tracing::debug!("starting postgres: {} {:?}", args.program.display(), args.options);
    let child = cmd.spawn().map_err(|source| ProcessError::Spawn { program: args.program.clone(), source })?;
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    tracing::info!("postmaster pid={pid}");
    Ok(Postmaster {
        pid,
        start_ticks: procfs::stat(pid).map(|s| s.start_ticks),
        child: Some(child),
        single_user: false,
    })
}

/// Read `postmaster.opts` (the options the postmaster was last started
/// with) as Patroni's `read_postmaster_opts` does: `--name=value` entries.
pub fn read_postmaster_opts(data_dir: &Path) -> std::io::Result<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.opts"))?;
    Ok(parse_postmaster_opts(&text))
}

pub(crate) fn parse_postmaster_opts(text: &str) -> std::collections::BTreeMap<String, String> {
    text.split("\" \"")
        .filter(|opt| opt.starts_with("--") && opt.contains('='))
        .filter_map(|opt| {
            let (name, value) = opt.split_once('=')?;
            Some((name.trim_matches('-').to_string(), value.trim_end_matches(['"', '\n']).to_string()))
        })
        .collect()
}

/// Whether a postmaster child's title (`/proc/<pid>/cmdline`) names an
/// auxiliary process or a WAL sender rather than a client's backend: the
/// processes Patroni's `wait_for_user_backends_to_close` does not wait
/// for, named as PostgreSQL 9.1 to 17 name them, after `postgres: ` and an
/// optional `cluster_name: `.
pub fn is_auxiliary(title: &str) -> bool {
    const NAMES: [&str; 19] = [
        "archiver",
        "startup",
        "autovacuum launcher",
        "autovacuum worker",
        "checkpointer",
        "logger",
        "stats collector",
        "wal receiver",
        "wal writer",
        "writer",
        "walreceiver",
        "wal sender process",
        "walsender",
        "walwriter",
        "background writer",
        "logical replication launcher",
        "logical replication worker",
        "bgworker:",
        "wal summarizer",
    ];
    let Some(rest) = title.strip_prefix("postgres:") else { return false };
    let starts = |s: &str| {
        let s = s.trim_start();
        NAMES.iter().any(|n| s.strip_prefix(n).is_some_and(|after| after.is_empty() || after.starts_with(' ')))
    };
    // `postgres: checkpointer`, or with a cluster_name: `postgres: main: checkpointer`.
    starts(rest) || rest.split_once(": ").is_some_and(|(_, after)| starts(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auxiliary_processes_and_user_backends_by_title() {
        // (title, auxiliary)
        let cases = [
            ("postgres: checkpointer", true),
            ("postgres: checkpointer ", true),
            ("postgres: background writer", true),
            ("postgres: walwriter", true),
            ("postgres: wal writer process  ", true),
            ("postgres: autovacuum launcher", true),
            ("postgres: autovacuum worker postgres", true),
            ("postgres: archiver last was 000000010000000000000003", true),
            ("postgres: logical replication launcher", true),
            ("postgres: startup recovering 000000020000000000000005", true),
            ("postgres: walreceiver streaming 0/5000148", true),
            ("postgres: walsender replicator 10.0.0.11(40000) streaming 0/5000148", true),
            ("postgres: stats collector", true),
            ("postgres: logger", true),
            ("postgres: bgworker: pg_cron launcher", true),
            ("postgres: main: checkpointer", true),
            ("postgres: my cluster: walsender replicator 10.0.0.11(40000) idle", true),
            // Client backends: `user database host activity`.
            ("postgres: postgres postgres 10.0.0.1(5000) idle", false),
            ("postgres: app shop [local] INSERT", false),
            ("postgres: main: app shop 127.0.0.1(6000) idle in transaction", false),
            // A user named like a process is still a user.
            ("postgres: checkpointer2 db [local] idle", false),
            ("postgres: writer_app db [local] idle", false),
            // Not a PostgreSQL title.
            ("/usr/lib/postgresql/15/bin/postgres -D /data", false),
            ("", false),
        ];
        for (title, want) in cases {
            assert_eq!(is_auxiliary(title), want, "{title:?}");
        }
    }

    #[test]
    fn postmaster_opts() {
        let text = "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/data\" \"--config-file=/data/postgresql.conf\" \"--listen_addresses=127.0.0.1\" \"--port=5432\" \"--wal_log_hints=on\"\n";
        let opts = parse_postmaster_opts(text);
        let got: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("config-file", "/data/postgresql.conf"),
                ("listen_addresses", "127.0.0.1"),
                ("port", "5432"),
                ("wal_log_hints", "on")
            ]
        );
    }

    #[test]
    fn environment_filter() {
        for (name, keep) in [
            ("PATH", true),
            ("PATRONI_SCOPE", false),
            ("PALISADE_X", false),
            ("NOTIFY_SOCKET", false),
            ("AWS_REGION", true),
        ] {
            assert_eq!(keep_for_postmaster(name), keep, "{name}");
        }
    }

    #[test]
    fn not_adopting_ourselves_or_nothing() {
        let dir = std::env::temp_dir().join(format!("palisade-adopt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(find_postmaster(&dir, "postgres").is_none());
        std::fs::write(dir.join("postmaster.pid"), format!("{}\n{}\n", std::process::id(), dir.display())).unwrap();
        assert!(find_postmaster(&dir, "postgres").is_none());
        std::fs::write(dir.join("postmaster.pid"), "999999999\n/x\n").unwrap();
        assert!(find_postmaster(&dir, "postgres").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
