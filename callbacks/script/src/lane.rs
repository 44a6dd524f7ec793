//! One lane of callbacks: at most one command runs at a time, and a new one
//! kills the one still running (Patroni's `CallbackExecutor`).
//!
//! `submit` never waits. When the lane is idle it starts the command at once
//! (so that a callback submitted just before the daemon exits, `on_stop`
//! at shutdown, does run); when a command is still running it kills that
//! command's process group and leaves the new one for the worker thread,
//! which starts it once the killed one is reaped. The worker waits for every
//! command (so no zombie is left) and logs how it ended. If several commands
//! are submitted while one cannot be killed, only the last of them runs, as
//! in Patroni.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use palisade_plugin_api::{PluginError, PluginResult};

use crate::pylist::py_list;

struct Running {
    /// The command's pid, which is also its session and process group.
    group: Pid,
    argv: Vec<String>,
    killed: bool,
}

#[derive(Default)]
struct State {
    /// The next command to start.
    pending: Option<Vec<String>>,
    /// A command `submit` started itself, for the worker to wait for.
    started: Option<(Child, Vec<String>)>,
    running: Option<Running>,
    /// The worker thread has been started.
    worker: bool,
    /// No more commands will come: the worker ends once idle.
    closed: bool,
}

pub struct Lane {
    name: &'static str,
    state: Mutex<State>,
    wake: Condvar,
}

impl Lane {
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self { name, state: Mutex::new(State::default()), wake: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `argv` in the background, killing the command still running in
    /// this lane first. Returns at once.
    pub fn submit(self: &Arc<Self>, argv: Vec<String>) -> PluginResult<()> {
        if argv.is_empty() {
            return Err(PluginError::other("empty callback command"));
        }
        let mut state = self.lock();
        if let Some(running) = state.running.as_mut().filter(|r| !r.killed) {
            running.killed = true;
            match killpg(running.group, Signal::SIGKILL) {
                Ok(()) => tracing::warn!("Killed {} because it was still running", py_list(&running.argv)),
                Err(e) => {
                    tracing::warn!("Failed to kill the process: {e}");
                    tracing::warn!("{} is still running; the next callback waits for it", py_list(&running.argv));
                }
            }
        }
        if state.running.is_none() && state.started.is_none() && state.pending.is_none() {
            // Idle: start it now, from the caller's thread.
            if let Some(child) = spawn(&argv) {
                let group = Pid::from_raw(child.id() as i32);
                state.running = Some(Running { group, argv: argv.clone(), killed: false });
                state.started = Some((child, argv));
            }
        } else if let Some(dropped) = state.pending.replace(argv) {
            tracing::warn!("{:?} is dropped: a newer callback replaced it before it could start", dropped);
        }
        if !state.worker {
            let lane = Arc::clone(self);
            let spawned =
                std::thread::Builder::new().name(format!("callback-{}", self.name)).spawn(move || lane.work());
            if let Err(e) = spawned {
                state.pending = None;
                return Err(PluginError::other(format!("cannot start the callback thread: {e}")));
            }
            state.worker = true;
        }
        self.wake.notify_all();
        Ok(())
    }

    /// Let the worker end once it has nothing left to do.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }

    fn work(self: Arc<Self>) {
        loop {
            let mut state = self.lock();
            let (mut child, argv) = loop {
                if let Some(started) = state.started.take() {
                    break started;
                }
                if let Some(argv) = state.pending.take() {
                    // Started while holding the lock, so that a `submit`
                    // coming now finds it running and kills it.
                    let Some(child) = spawn(&argv) else { continue };
                    let group = Pid::from_raw(child.id() as i32);
                    state.running = Some(Running { group, argv: argv.clone(), killed: false });
                    break (child, argv);
                }
                if state.closed {
                    state.worker = false;
                    return;
                }
                state = self.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            };
            drop(state);
            let group = Pid::from_raw(child.id() as i32);
            tracing::debug!("started callback {argv:?} (pid {group})");
            let status = child.wait();
            let killed = self.lock().running.take().is_some_and(|r| r.killed);
            if killed {
                // What it started and left behind in its group.
                let _ = killpg(group, Signal::SIGKILL);
            }
            log_end(&argv, status, killed);
        }
    }
}

/// Start `argv` in a session of its own, its input from /dev/null, in the
/// daemon's working directory and environment; `None` (logged as Patroni
/// logs it) when it cannot be started.
fn spawn(argv: &[String]) -> Option<Child> {
    let (program, args) = argv.split_first()?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    new_session(&mut cmd);
    match cmd.spawn() {
        Ok(child) => Some(child),
        Err(e) => {
            tracing::error!("Failed to execute {}", py_list(argv));
            tracing::error!("{e}");
            None
        }
    }
}

/// Start the command as the leader of a new session and process group: the
/// group can be killed as a whole, and without a controlling terminal a
/// program that wants to prompt fails instead of stopping on SIGTTIN.
fn new_session(cmd: &mut Command) {
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: setsid(2) is one, and turning its
    // errno into an io::Error does not allocate.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
    }
}

fn log_end(argv: &[String], status: std::io::Result<ExitStatus>, killed: bool) {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Err(e) => tracing::error!("cannot wait for callback {argv:?}: {e}"),
        Ok(s) => match (s.code(), s.signal()) {
            (Some(0), _) => tracing::info!("callback {argv:?} exited with code 0"),
            (Some(code), _) => tracing::warn!("callback {argv:?} exited with code {code}"),
            (None, Some(sig)) if killed => tracing::info!("callback {argv:?} was killed (signal {sig})"),
            (None, Some(sig)) => tracing::warn!("callback {argv:?} was terminated by signal {sig}"),
            (None, None) => tracing::warn!("callback {argv:?} ended: {s}"),
        },
    }
}
