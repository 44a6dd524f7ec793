//! Running one external command at a time that another thread may cancel.
//!
//! The command runs in a session (and so a process group) of its own, so a
//! cancellation reaches everything it started: SIGTERM to the group at once,
//! SIGKILL when the group is still there after a grace period (as Patroni's
//! `CancellableSubprocess` does with the process and its children). Having
//! no controlling terminal, a tool that wants to prompt for a password
//! (pg_basebackup does when it has none) fails at once instead of stopping
//! on SIGTTIN forever. Its output is read line by line and logged; the last
//! lines of stderr are kept for the error message.
//!
//! A cancellation applies to the operation in progress only (between
//! [`Cancellable::begin`] and the end of that session): the plugin contract
//! has no "reset", so a cancellation must not poison the next attempt.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How many stderr lines an [`Outcome`] keeps.
const TAIL_LINES: usize = 20;
/// How often the waiting thread looks at the child when nothing wakes it.
const POLL: Duration = Duration::from_millis(100);
/// How long to wait for the output pipes to close once the command exited
/// (a daemonised grandchild may keep them open forever).
const DRAIN: Duration = Duration::from_secs(2);

#[derive(Default)]
struct State {
    /// An operation is in progress (a [`Session`] is alive).
    active: bool,
    /// When the operation in progress was cancelled.
    cancelled_at: Option<Instant>,
    /// The process group of the command running now.
    group: Option<Pid>,
}

/// One cancellable operation at a time.
#[derive(Default)]
pub struct Cancellable {
    state: Mutex<State>,
    wake: Condvar,
}

/// An operation in progress; it ends (and forgets any cancellation) on drop.
pub struct Session<'a> {
    owner: &'a Cancellable,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let mut state = self.owner.lock();
        state.active = false;
        state.cancelled_at = None;
    }
}

/// How a command ended.
#[derive(Debug)]
pub struct Outcome {
    /// `None` when the command was not started because the operation had
    /// already been cancelled.
    pub status: Option<ExitStatus>,
    /// The operation was cancelled while (or before) the command ran.
    pub cancelled: bool,
    /// The last lines the command wrote to stderr.
    pub stderr_tail: Vec<String>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        !self.cancelled && self.status.is_some_and(|s| s.success())
    }

    /// "exit code 3", "signal 9"... for messages.
    pub fn describe(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match self.status {
            None => "not started".to_string(),
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(sig)) => format!("signal {sig}"),
                (None, None) => s.to_string(),
            },
        }
    }

    /// Why a command that did not succeed failed, for a replica method's
    /// error: "`what` was cancelled", or Patroni's "`what` exited with
    /// code=N" followed by the last line the command wrote to stderr.
    pub fn failure(&self, what: &str) -> String {
        if self.cancelled {
            return format!("{what} was cancelled");
        }
        let mut message = format!("{what} exited with code={}", self.returncode());
        if let Some(last) = self.stderr_tail.last() {
            message.push_str(&format!(": {last}"));
        }
        message
    }

    /// The exit status as Python's `subprocess` reports it, for Patroni's
    /// `... exited with code=%s` lines: the exit code, minus the signal
    /// number when a signal ended the command, `None` when it did not run.
    pub fn returncode(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match self.status.and_then(|s| s.code().or_else(|| s.signal().map(|sig| -sig))) {
            Some(code) => code.to_string(),
            None => "None".to_string(),
        }
    }
}

impl Cancellable {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start an operation that [`cancel`](Self::cancel) can stop.
    pub fn begin(&self) -> Session<'_> {
        let mut state = self.lock();
        state.active = true;
        state.cancelled_at = None;
        Session { owner: self }
    }

    /// Stop the operation in progress, if any, without waiting for it.
    pub fn cancel(&self) {
        let mut state = self.lock();
        if !state.active {
            tracing::debug!("cancel: nothing is running");
            return;
        }
        if state.cancelled_at.is_none() {
            state.cancelled_at = Some(Instant::now());
        }
        if let Some(group) = state.group {
            tracing::info!("cancelling: terminating process group {group}");
            let _ = killpg(group, Signal::SIGTERM);
        }
        self.wake.notify_all();
    }

    pub fn is_cancelled(&self) -> bool {
        self.lock().cancelled_at.is_some()
    }

    /// Sleep for `duration`; returns `false` at once when cancelled.
    pub fn pause(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut state = self.lock();
        loop {
            if state.cancelled_at.is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            state = self.wake.wait_timeout(state, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Run `cmd` to the end, logging its output with `label`. On
    /// cancellation the process group gets SIGTERM, then SIGKILL after
    /// `grace`. Fails only when the command cannot be started.
    pub fn run(&self, mut cmd: Command, label: &str, grace: Duration) -> io::Result<Outcome> {
        new_session(&mut cmd);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));

        let mut state = self.lock();
        if state.cancelled_at.is_some() {
            return Ok(Outcome { status: None, cancelled: true, stderr_tail: Vec::new() });
        }
        let mut child = cmd.spawn()?;
        let group = Pid::from_raw(child.id() as i32);
        state.group = Some(group);
        drop(state);

        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.extend(reader(out, label, None));
        }
        if let Some(err) = child.stderr.take() {
            readers.extend(reader(err, label, Some(Arc::clone(&tail))));
        }

        let mut state = self.lock();
        let mut killed = false;
        let waited = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            if let Some(at) = state.cancelled_at {
                if !killed && at.elapsed() >= grace {
                    tracing::warn!("{label} is still running {grace:?} after SIGTERM: killing its process group");
                    let _ = killpg(group, Signal::SIGKILL);
                    killed = true;
                }
            }
            state = self.wake.wait_timeout(state, POLL).unwrap_or_else(PoisonError::into_inner).0;
        };
        let cancelled = state.cancelled_at.is_some();
        state.group = None;
        drop(state);

        let status = match waited {
            Ok(status) => status,
            Err(e) => {
                // Cannot happen for a child we own; make sure it is gone.
                let _ = killpg(group, Signal::SIGKILL);
                child.wait().map_err(|_| e)?
            }
        };
        if cancelled {
            // Whatever the command started and left behind in its group.
            let _ = killpg(group, Signal::SIGKILL);
        }

        let deadline = Instant::now() + DRAIN;
        for r in readers {
            while !r.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if r.is_finished() {
                let _ = r.join();
            } else {
                tracing::debug!("{label}: output still open after it exited (a background process holds it)");
            }
        }
        let stderr_tail = tail.lock().unwrap_or_else(PoisonError::into_inner).drain(..).collect();
        Ok(Outcome { status: Some(status), cancelled, stderr_tail })
    }
}

/// Start the command as the leader of a new session and process group.
fn new_session(cmd: &mut Command) {
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: setsid(2) is one, and turning its
    // errno into an io::Error does not allocate.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
    }
}

/// Log every line of `stream`; keep the last ones in `tail` when given.
fn reader(
    stream: impl Read + Send + 'static,
    label: &str,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) -> Option<JoinHandle<()>> {
    let owned = label.to_string();
    let spawned = std::thread::Builder::new().name("plugin-output".into()).spawn(move || {
        let label = owned;
        let mut stream = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stream.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']);
            tracing::info!("{label}: {line}");
            if let Some(tail) = &tail {
                let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.to_string());
            }
        }
    });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            // The pipe is closed when `stream` is dropped: the command gets
            // EPIPE on its next write instead of blocking.
            tracing::warn!("{label}: cannot start a thread to read its output: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn runs_and_keeps_the_end_of_stderr() {
        let c = Cancellable::default();
        let _session = c.begin();
        let out = c
            .run(sh("echo out; i=0; while [ $i -lt 30 ]; do echo err$i >&2; i=$((i+1)); done; exit 3"), "t", POLL)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!out.success());
        assert_eq!(out.status.and_then(|s| s.code()), Some(3));
        assert_eq!(out.describe(), "exit code 3");
        assert_eq!(out.returncode(), "3");
        assert_eq!(out.stderr_tail.len(), TAIL_LINES);
        assert_eq!(out.stderr_tail.last().map(String::as_str), Some("err29"));
    }

    #[test]
    fn the_command_leads_its_own_session() {
        let c = Cancellable::default();
        let _session = c.begin();
        // Field 6 of /proc/<pid>/stat is the session id.
        let out =
            c.run(sh("awk '{ print $6 }' /proc/$$/stat >&2; echo $$ >&2"), "t", POLL).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.success());
        assert_eq!(out.stderr_tail.len(), 2);
        assert_eq!(out.stderr_tail[0], out.stderr_tail[1], "session id == pid");
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let c = Cancellable::default();
        let _session = c.begin();
        assert!(c.run(Command::new("/nonexistent/program"), "t", POLL).is_err());
    }

    #[test]
    fn cancel_stops_the_whole_group_and_is_forgotten_afterwards() {
        let c = Arc::new(Cancellable::default());
        let runner = Arc::clone(&c);
        let handle = std::thread::spawn(move || {
            let _session = runner.begin();
            // The shell ignores SIGTERM; its child does not: SIGKILL after the grace.
            runner.run(sh("trap '' TERM; sleep 600 & wait"), "t", Duration::from_millis(300))
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.lock().group.is_none() {
            assert!(Instant::now() < deadline, "the command did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        c.cancel();
        let out = handle.join().unwrap_or_else(|_| panic!("runner panicked")).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.cancelled);
        assert!(!out.success());

        // A new session starts uncancelled.
        let _session = c.begin();
        assert!(!c.is_cancelled());
        assert!(c.run(sh("true"), "t", POLL).unwrap_or_else(|e| panic!("{e}")).success());
    }

    #[test]
    fn cancel_without_a_session_does_nothing() {
        let c = Cancellable::default();
        c.cancel();
        let _session = c.begin();
        assert!(!c.is_cancelled());
        assert!(c.pause(Duration::from_millis(1)));
    }

    #[test]
    fn pause_returns_early_when_cancelled() {
        let c = Arc::new(Cancellable::default());
        let _session = c.begin();
        let other = Arc::clone(&c);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.cancel();
        });
        assert!(!c.pause(Duration::from_secs(600)));
        let _ = t.join();
    }
}
