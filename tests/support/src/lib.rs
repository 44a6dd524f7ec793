//! Helpers for tests that run real processes (PostgreSQL, etcd, palisade).
//!
//! Facts these helpers deal with:
//! - tests run as root, but PostgreSQL (and palisade) refuse to: servers run
//!   as an unprivileged user ([`test_user`]) through `setpriv`, which keeps
//!   the PID, from files that user can read ([`Staging`]);
//! - PID 1 on these machines does not reap orphans, so the test process
//!   makes itself a child subreaper ([`become_subreaper`]) and reaps the
//!   processes it adopts ([`pid_alive`], [`ProcessGuard`]);
//! - tests run in parallel, so every port comes from [`free_port`].
//!
//! [`certs`] makes CAs and certificates with the `openssl` command.
//!
//! Nothing here may be used by production code.
#![allow(clippy::unwrap_used)]

pub mod certs;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{Pid, User};

pub mod python;
pub mod rest_inputs;

/// The unprivileged user servers run as (`PALISADE_TEST_USER`, default `palisade`).
pub fn test_user() -> String {
    std::env::var("PALISADE_TEST_USER").unwrap_or_else(|_| "palisade".to_string())
}

/// The test user's uid and gid. Creates the user when running as root and
/// it does not exist yet (`.ci/run` normally creates it).
pub fn test_user_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let name = test_user();
        if let Ok(Some(u)) = User::from_name(&name) {
            return (u.uid.as_raw(), u.gid.as_raw());
        }
        if nix::unistd::geteuid().is_root() {
            let _ = Command::new("useradd")
                .args(["--system", "--user-group", "--no-create-home", "--shell", "/bin/sh", &name])
                .status();
        }
        match User::from_name(&name) {
            Ok(Some(u)) => (u.uid.as_raw(), u.gid.as_raw()),
            _ => panic!("the test user '{name}' does not exist and could not be created; run .ci/run or create it"),
        }
    })
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A command that runs `program` as the test user when we are root
/// (`setpriv` keeps the PID, so signals reach the real process), or
/// directly otherwise.
pub fn command_as_test_user(program: impl AsRef<OsStr>) -> Command {
    if is_root() {
        let (uid, gid) = test_user_ids();
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg("--").arg(program);
        c.env("HOME", "/tmp").env("USER", test_user()).env("LOGNAME", test_user());
        c
    } else {
        Command::new(program)
    }
}

/// Make this process the reaper of its orphaned descendants, so that a
/// postmaster whose daemon was killed becomes our child (and a zombie we
/// can reap) instead of lingering under a PID 1 that never reaps.
///
/// It also starts (once) a thread that reaps adopted postmasters as soon as
/// they exit: a daemon that waits for its postmaster by polling the PID
/// (Patroni does, through psutil) would otherwise wait for ever on the
/// zombie. Only zombies named `postgres` are reaped, so the exit status of
/// the processes this harness started itself is left to their handles.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    static REAPER: std::sync::Once = std::sync::Once::new();
    REAPER.call_once(|| {
        let _ = std::thread::Builder::new().name("postmaster-reaper".into()).spawn(|| loop {
            reap_adopted_postmasters();
            std::thread::sleep(Duration::from_millis(100));
        });
    });
}

/// Reap every zombie child of ours whose command is `postgres`.
fn reap_adopted_postmasters() {
    let me = std::process::id().to_string();
    let Ok(dir) = fs::read_dir("/proc") else { return };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) state ppid ...`
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next());
        if comm == "postgres" && state == Some("Z") && ppid == Some(me.as_str()) {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Whether every thread of `pid` is stopped (after SIGSTOP, which is
/// delivered asynchronously): each thread's state, after the command name
/// in parentheses in its `stat`, is `T`. A process that is gone counts as
/// stopped.
pub fn all_threads_stopped(pid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return true };
    dir.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('T')))
            .unwrap_or(true)
    })
}

/// Whether `pid` is alive. Reaps it first if it is a zombie child of ours
/// (which adopted orphans are, once [`become_subreaper`] was called).
pub fn pid_alive(pid: i32) -> bool {
    let p = Pid::from_raw(pid);
    let _ = waitpid(p, Some(WaitPidFlag::WNOHANG));
    match kill(p, None) {
        Ok(()) => !is_zombie(pid),
        Err(_) => false,
    }
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Send `signal` to `pid`, ignoring "no such process".
pub fn signal(pid: i32, signal: Signal) {
    let _ = kill(Pid::from_raw(pid), signal);
}

/// Wait until `pid` is gone (reaping it if it is ours).
pub fn wait_pid_gone(pid: i32, timeout: Duration) -> bool {
    wait_until(timeout, || !pid_alive(pid))
}

/// Poll `f` every 100 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Poll `f` until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that this
/// process has not handed out before, picked at random below the
/// ephemeral range.
pub fn free_port() -> u16 {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let used = USED.get_or_init(|| Mutex::new(HashSet::new()));
    // Below the kernel's ephemeral range, which outgoing connections take
    // their local ports from: a port picked there can be held by some
    // client socket by the time a server (a restarted PostgreSQL) binds it.
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (low, high) = (10000u16, ephemeral_low.max(10001));
    loop {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = low + (h.finish() % u64::from(high - low)) as u16;
        if used.lock().unwrap().contains(&port) || !reserve_port(port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            used.lock().unwrap().insert(port);
            return port;
        }
    }
}

/// Reserves `port` for this test process until it exits, against every
/// other test process on the machine: a lock file per port, held with
/// `flock`. A bind check alone is not enough: a test that kills a server
/// frees its port for a moment, and another test picking a port then would
/// take it from under the restart (a node once found a stranger's cluster
/// on its own port).
fn reserve_port(port: u16) -> bool {
    use std::os::fd::AsRawFd;
    static HELD: OnceLock<Mutex<Vec<fs::File>>> = OnceLock::new();
    let dir = Path::new("/tmp/palisade-test-ports");
    if fs::create_dir_all(dir).is_err() {
        return true;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o1777));
    let Ok(file) = fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(port.to_string()))
    else {
        return true;
    };
    // SAFETY: flock on a file descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if locked {
        HELD.get_or_init(|| Mutex::new(Vec::new())).lock().unwrap().push(file);
    }
    locked
}

/// A directory outside `/root` (mode 700 here) that the test user can read
/// and write, removed on drop unless `PALISADE_KEEP_TEST_DIRS` is set.
pub struct Staging {
    path: PathBuf,
}

impl Staging {
    pub fn new(label: &str) -> Self {
        let base = std::env::var("PALISADE_TEST_TMP").unwrap_or_else(|_| "/tmp".to_string());
        let unique = format!(
            "palisade-{label}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        );
        let path = Path::new(&base).join(unique);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        chown_to_test_user(&path);
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory owned by the test user, with `mode`.
    pub fn dir(&self, name: &str, mode: u32) -> PathBuf {
        let p = self.path.join(name);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        chown_to_test_user(&p);
        p
    }

    /// Copy an executable or library into the staging area (readable and
    /// executable by the test user) and return its new path.
    pub fn install(&self, source: &Path, relative: &str) -> PathBuf {
        let target = self.path.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).unwrap();
            let mut p = parent.to_path_buf();
            while p.starts_with(&self.path) && p != self.path {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
                p.pop();
            }
        }
        fs::copy(source, &target).unwrap_or_else(|e| panic!("copy {} to {}: {e}", source.display(), target.display()));
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        target
    }

    /// Write a file owned by the test user.
    pub fn write(&self, relative: &str, contents: &str, mode: u32) -> PathBuf {
        let target = self.path.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&target, contents).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
        chown_to_test_user(&target);
        target
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if std::env::var_os("PALISADE_KEEP_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Give `path` to the test user (no-op when not root).
pub fn chown_to_test_user(path: &Path) {
    if is_root() {
        let (uid, gid) = test_user_ids();
        let _ = nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)));
    }
}

/// A spawned process that is stopped when the guard is dropped, even when
/// the test fails: SIGTERM to its process group, then SIGKILL.
pub struct ProcessGuard {
    pub name: String,
    child: Option<Child>,
    pid: i32,
}

impl ProcessGuard {
    /// Spawn `cmd` in its own process group (so that stopping it also stops
    /// what it started in that group).
    pub fn spawn(name: &str, mut cmd: Command) -> io::Result<Self> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0).stdin(Stdio::null());
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        Ok(Self { name: name.to_string(), child: Some(child), pid })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn alive(&mut self) -> bool {
        if let Some(c) = self.child.as_mut() {
            match c.try_wait() {
                Ok(Some(_)) => return false,
                Ok(None) => return true,
                Err(_) => {}
            }
        }
        pid_alive(self.pid)
    }

    pub fn signal(&self, sig: Signal) {
        signal(self.pid, sig);
    }

    /// Wait for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        wait_until(timeout, || !self.alive())
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL the whole group.
    pub fn stop(&mut self, grace: Duration) {
        if self.alive() {
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGTERM);
            if !self.wait_exit(grace) {
                let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                let _ = self.wait_exit(Duration::from_secs(5));
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.try_wait();
        }
    }

    /// SIGKILL the process only (not its group), as a crash would.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.wait_exit(Duration::from_secs(10));
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Kill a process that is not ours to spawn (an adopted postmaster) on drop.
pub struct PidGuard(pub i32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if pid_alive(self.0) {
            signal(self.0, Signal::SIGKILL);
            let _ = wait_pid_gone(self.0, Duration::from_secs(10));
        }
    }
}

/// Re-run the current test as the test user when we are root. Returns
/// `true` when the caller is already unprivileged and should do the work;
/// returns `false` after the re-run succeeded (the caller returns); panics
/// with the child's output if the re-run failed.
///
/// The test binary is copied into a staging directory first, because the
/// build directory may sit under `/root`, which the test user cannot enter.
pub fn run_unprivileged(test_path: &str) -> bool {
    if !is_root() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let staging = Staging::new("rerun");
    let copy = staging.install(&exe, "test-binary");
    let mut cmd = command_as_test_user(&copy);
    cmd.arg("--exact").arg(test_path).arg("--nocapture").arg("--test-threads=1");
    for (k, v) in std::env::vars() {
        if k.starts_with("PALISADE_") || k == "RUST_BACKTRACE" || k == "RUST_LOG" || k == "PATH" {
            cmd.env(k, v);
        }
    }
    cmd.current_dir(staging.path());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "unprivileged re-run of {test_path} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    false
}

/// The directory holding the workspace's build output for this profile
/// (`target/debug`), found from the test binary's own path.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PALISADE_BUILD_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    // Test binaries live in target/<profile>/deps, other binaries in target/<profile>.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Directory holding the PostgreSQL 15 binaries.
pub fn pg_bin_dir() -> PathBuf {
    PathBuf::from(std::env::var("PALISADE_PG_BIN_DIR").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".to_string()))
}

/// The process of a server that tests stop, kill, freeze and start again
/// (etcd, ZooKeeper, the test doubles): empty while the server is down.
/// Dropping it stops the process, thawing it first (a frozen process does
/// not act on SIGTERM until it runs again).
#[derive(Default)]
pub struct ServerProcess(Option<ProcessGuard>);

impl ServerProcess {
    /// Take charge of a freshly spawned server, which must be the only one.
    pub fn start(&mut self, guard: ProcessGuard) {
        assert!(self.0.is_none(), "{} is already running", guard.name);
        self.0 = Some(guard);
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        self.0.as_mut().is_some_and(ProcessGuard::alive)
    }

    /// Wait until `up()` says the server answers (or the process died);
    /// whether it is alive and answers.
    ///
    /// `up` is not asked again once it said yes: a ZooKeeper that answered
    /// `ruok` may fail the next one while it loads its database.
    pub fn wait_up(&mut self, timeout: Duration, up: impl Fn() -> bool) -> bool {
        let mut answered = false;
        wait_until(timeout, || {
            if !self.is_running() {
                return true;
            }
            answered = up();
            answered
        });
        answered && self.is_running()
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        self.thaw();
        if let Some(mut p) = self.0.take() {
            p.stop(Duration::from_secs(10));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.0.take() {
            p.kill9();
        }
    }

    /// SIGSTOP: the sockets stay open, nothing answers. Returns once the
    /// kernel says the process is stopped: the signal is delivered
    /// asynchronously, and a server still running a moment after `kill`
    /// returned would answer a request sent right away.
    pub fn freeze(&self) {
        if let Some(p) = &self.0 {
            p.signal(Signal::SIGSTOP);
            wait_until(Duration::from_secs(5), || all_threads_stopped(p.pid()));
        }
    }

    /// SIGCONT, undoing [`ServerProcess::freeze`].
    pub fn thaw(&self) {
        if let Some(p) = &self.0 {
            p.signal(Signal::SIGCONT);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
