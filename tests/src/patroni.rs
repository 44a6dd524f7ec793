//! Patroni itself, for compatibility tests and side-by-side benchmarks: a
//! virtualenv with the `patroni` package from PyPI (with its etcd3 support
//! and psycopg2), built once with the system Python outside /root (so the
//! unprivileged test user can run it) and reused by later runs.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The Patroni release the wire formats follow.
pub const PATRONI_REQUIREMENT: &str = "patroni[etcd3]==4.1.*";

static LOCK: Mutex<()> = Mutex::new(());

/// Where the virtualenv lives (`PALISADE_PATRONI_VENV`, default
/// `/var/tmp/palisade-patroni-venv`).
pub fn venv_dir() -> PathBuf {
    PathBuf::from(std::env::var("PALISADE_PATRONI_VENV").unwrap_or_else(|_| "/var/tmp/palisade-patroni-venv".into()))
}

/// The virtualenv, created and filled on first use. Panics with a clear
/// message when it cannot be built (no `python3 -m venv`, PyPI unreachable).
pub fn venv() -> PathBuf {
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = venv_dir();
    let ready = dir.join(".palisade-ready");
    // A venv built on another Python (a pyenv one under /root, say) is
    // useless: the test user cannot run it, and Patroni's postmaster start
    // (multiprocessing's spawn) then hangs for ever. Build it again.
    let usable = || {
        ready.exists()
            && std::fs::read_to_string(dir.join("pyvenv.cfg"))
                .is_ok_and(|c| c.lines().any(|l| l.replace(' ', "") == "home=/usr/bin"))
    };
    if usable() {
        return dir;
    }
    // Another test process may be building it: a lock file serialises them.
    let lock_path = PathBuf::from(format!("{}.lock", dir.display()));
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path);
    let _flock = lock.ok().inspect(|f| {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own; released when it is dropped.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    });
    if usable() {
        return dir;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let _ = std::fs::remove_dir_all(&dir);
    run(
        Command::new("/usr/bin/python3").arg("-m").arg("venv").arg(&dir),
        "creating the Patroni virtualenv (python3-venv)",
    );
    run(
        Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", PATRONI_REQUIREMENT, "psycopg2-binary"])
            .env("PIP_NO_INPUT", "1"),
        "installing Patroni from PyPI into the virtualenv",
    );
    std::fs::write(&ready, PATRONI_REQUIREMENT).unwrap_or_else(|e| panic!("cannot write {}: {e}", ready.display()));
    dir
}
