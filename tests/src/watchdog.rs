//! A test watchdog device: the FIFO Patroni's `testing` driver writes to
//! (`1` keepalive, `V` magic close, `Ctimeout=N\n` the timeout), read by a
//! thread that records what arrived and when, and a timer that "fires"
//! when the device is armed and no keepalive came within the timeout, as a
//! hardware watchdog would: it records the moment and runs the action the
//! test gave it (kill the node's postmaster, like a reboot would).
//!
//! It keeps the timer as Linux's watchdog core does (`watchdog_dev.c`):
//! - the first open starts the timer; an open while it runs (a writer that
//!   died without the magic close, then a new one) does not feed it;
//! - `Ctimeout=N` (the ioctl `WDIOC_SETTIMEOUT`) sets the timeout and
//!   feeds it, as does each `1`;
//! - `V` then a close stops it; a close without `V` (a writer killed with
//!   SIGKILL: the kernel closes its descriptor) feeds it once and leaves it
//!   running ("watchdog did not stop!"), so the machine is reset a timeout
//!   later unless somebody opens the device again and feeds it;
//! - firing resets the machine: the timer stops until the device is opened
//!   again, so one device can fire once per "boot", any number of times.
//!
//! Patroni's own harness (`features/environment.py`, `WatchdogMonitor`)
//! only notes that a keepalive came late; this one acts, so that a test
//! sees what a real device does to a node.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// What the device saw.
#[derive(Clone, Debug, Default)]
pub struct DeviceState {
    /// A writer holds the device open.
    pub connected: bool,
    /// Times it was opened.
    pub opened: u32,
    /// Open and not closed with the magic `V`: the timer runs.
    pub armed: bool,
    /// The timeout last set (Patroni's harness starts at 60).
    pub timeout: i64,
    /// Every timeout set, in order.
    pub timeouts: Vec<i64>,
    /// When each keepalive arrived.
    pub pings: Vec<Instant>,
    /// Magic closes received.
    pub magic_closes: u32,
    /// Closes of the writer side (with or without `V`).
    pub closes: u32,
    /// When the timer last started (open, timeout set, keepalive).
    pub last_reset: Option<Instant>,
    /// When it first fired (monotonic and wall clock), if it did.
    pub fired: Option<(Instant, SystemTime)>,
    /// Every time it fired, in order (the first is `fired`).
    pub fires: Vec<(Instant, SystemTime)>,
}

impl DeviceState {
    /// A writer opened the device: the first open starts the timer, an
    /// open while it runs leaves it as it is.
    pub fn open(&mut self, now: Instant) {
        self.connected = true;
        self.opened += 1;
        if !self.armed {
            self.armed = true;
            self.last_reset = Some(now);
        }
    }

    /// The writer closed the device (`read` returned 0): stopped after a
    /// magic close, else fed once and left running.
    pub fn close(&mut self, now: Instant) {
        self.connected = false;
        self.closes += 1;
        if self.armed {
            self.last_reset = Some(now);
        }
    }

    /// A keepalive (`1`).
    pub fn keepalive(&mut self, now: Instant) {
        self.pings.push(now);
        self.last_reset = Some(now);
    }

    /// The magic close (`V`): the timer stops. (Linux stops it at the close
    /// that follows; the drivers write `V` and close at once.)
    pub fn magic_close(&mut self) {
        self.magic_closes += 1;
        self.armed = false;
    }

    /// `Ctimeout=N`: the new timeout, which also feeds the timer.
    pub fn set_timeout(&mut self, timeout: i64, now: Instant) {
        self.timeout = timeout;
        self.timeouts.push(timeout);
        self.last_reset = Some(now);
    }

    /// Whether the timer ran out at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.armed
            && self.last_reset.is_some_and(|t| {
                now.saturating_duration_since(t) > Duration::from_secs(self.timeout.max(0).unsigned_abs())
            })
    }

    /// Fire: record it and reset "the machine" (the timer stops until the
    /// device is opened again).
    pub fn fire(&mut self, now: Instant, wall: SystemTime) {
        self.fired.get_or_insert((now, wall));
        self.fires.push((now, wall));
        self.armed = false;
    }
}

enum Action {
    /// Run on the first fire only.
    Once(Box<dyn FnOnce() + Send>),
    /// Run on every fire.
    Every(Arc<dyn Fn() + Send + Sync>),
}

/// A test watchdog device at a FIFO path.
pub struct WatchdogDevice {
    path: PathBuf,
    state: Arc<Mutex<DeviceState>>,
    action: Arc<Mutex<Option<Action>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl WatchdogDevice {
    /// Make the FIFO at `path` (writable by the test user) and start
    /// reading it.
    pub fn start(path: &Path) -> Self {
        let _ = std::fs::remove_file(path);
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        palisade_test_support::chown_to_test_user(path);
        let state = Arc::new(Mutex::new(DeviceState { timeout: 60, ..DeviceState::default() }));
        let action: Arc<Mutex<Option<Action>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (path, state, stop) = (path.to_path_buf(), Arc::clone(&state), Arc::clone(&stop));
            std::thread::spawn(move || read_loop(&path, &state, &stop))
        };
        let timer = {
            let (state, action, stop) = (Arc::clone(&state), Arc::clone(&action), Arc::clone(&stop));
            std::thread::spawn(move || timer_loop(&state, &action, &stop))
        };
        Self { path: path.to_path_buf(), state, action, stop, threads: vec![reader, timer] }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the device saw so far.
    pub fn state(&self) -> DeviceState {
        self.state.lock().unwrap().clone()
    }

    /// Forget the pings, closes and timeouts seen so far (Patroni's
    /// "I reset the watchdog state").
    pub fn reset(&self) {
        let mut s = self.state.lock().unwrap();
        s.pings.clear();
        s.timeouts.clear();
        s.magic_closes = 0;
        s.closes = 0;
    }

    /// What to do when the device fires next (once; later fires are only
    /// recorded).
    pub fn on_fire(&self, action: impl FnOnce() + Send + 'static) {
        *self.action.lock().unwrap() = Some(Action::Once(Box::new(action)));
    }

    /// What to do every time the device fires (a reboot of the node, which
    /// opens the device again when it is back).
    pub fn on_every_fire(&self, action: impl Fn() + Send + Sync + 'static) {
        *self.action.lock().unwrap() = Some(Action::Every(Arc::new(action)));
    }

    /// Wait until `f` holds for the state; the state then.
    pub fn wait(&self, what: &str, timeout: Duration, f: impl Fn(&DeviceState) -> bool) -> DeviceState {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.state();
            if f(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "watchdog device {}: not {what} within {timeout:?}: {s:?}",
                self.path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WatchdogDevice {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake a reader blocked in open() or read() (Patroni's harness
        // stops on `X` too).
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&self.path) {
            let _ = f.write_all(b"X");
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn read_loop(path: &Path, state: &Mutex<DeviceState>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut f) = std::fs::File::open(path) else { return };
        state.lock().unwrap().open(Instant::now());
        let mut byte = [0u8; 1];
        let mut command: Option<Vec<u8>> = None;
        loop {
            let n = f.read(&mut byte).unwrap_or(0);
            let now = Instant::now();
            let mut s = state.lock().unwrap();
            if n == 0 {
                s.close(now);
                break;
            }
            if let Some(cmd) = command.as_mut() {
                if byte[0] == b'\n' {
                    let text = String::from_utf8_lossy(cmd).into_owned();
                    if let Some(t) = text.strip_prefix("timeout=").and_then(|t| t.parse().ok()) {
                        s.set_timeout(t, now);
                    }
                    command = None;
                } else {
                    cmd.push(byte[0]);
                }
                continue;
            }
            match byte[0] {
                b'X' if stop.load(Ordering::SeqCst) => return,
                b'C' => command = Some(Vec::new()),
                b'1' => s.keepalive(now),
                b'V' => s.magic_close(),
                _ => {}
            }
        }
    }
}

fn timer_loop(state: &Mutex<DeviceState>, action: &Mutex<Option<Action>>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
        let fire = {
            let mut s = state.lock().unwrap();
            let now = Instant::now();
            let due = s.due(now);
            if due {
                s.fire(now, SystemTime::now());
            }
            due
        };
        if fire {
            let run: Option<Arc<dyn Fn() + Send + Sync>> = {
                let mut slot = action.lock().unwrap();
                match slot.take() {
                    Some(Action::Once(f)) => {
                        drop(slot);
                        f();
                        None
                    }
                    Some(Action::Every(f)) => {
                        *slot = Some(Action::Every(Arc::clone(&f)));
                        Some(f)
                    }
                    None => None,
                }
            };
            if let Some(f) = run {
                f();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One thing that happens to the device, at a second.
    #[derive(Clone, Copy, Debug)]
    enum Ev {
        Open,
        Close,
        Ping,
        Magic,
        Timeout(i64),
    }

    #[test]
    fn the_timer_runs_as_linux_keeps_it() {
        use Ev::*;
        // (what happens, at which second; the seconds at which it fires,
        // checked every 100 ms up to the last second given)
        type Case<'a> = (&'a str, &'a [(u64, Ev)], u64, &'a [u64]);
        let cases: &[Case] = &[
            ("never opened", &[], 30, &[]),
            ("fed every second, then not", &[(0, Open), (0, Timeout(5)), (1, Ping), (2, Ping), (3, Ping)], 10, &[8]),
            ("magic close stops it", &[(0, Open), (0, Timeout(5)), (1, Ping), (2, Magic), (2, Close)], 30, &[]),
            // Killed: the kernel's close feeds it once and leaves it running.
            ("closed without V fires a timeout later", &[(0, Open), (0, Timeout(5)), (3, Close)], 30, &[8]),
            // The new writer's open does not feed it, its timeout does.
            (
                "reopened while running, fed in time",
                &[(0, Open), (0, Timeout(5)), (3, Close), (7, Open), (7, Timeout(5)), (11, Ping)],
                14,
                &[],
            ),
            ("reopened while running, fed too late", &[(0, Open), (0, Timeout(5)), (3, Close), (7, Open)], 30, &[8]),
            // After a fire (a reset) it waits for the next open, then fires
            // again when nobody feeds it.
            (
                "fires again after the next boot",
                &[(0, Open), (0, Timeout(5)), (1, Close), (10, Open), (10, Timeout(3))],
                30,
                &[6, 13],
            ),
            ("a fire with the writer still open does not repeat", &[(0, Open), (0, Timeout(2))], 30, &[2]),
            (
                "V then a new open starts it afresh",
                &[(0, Open), (0, Timeout(5)), (1, Magic), (1, Close), (20, Open)],
                30,
                &[25],
            ),
        ];
        let t0 = Instant::now();
        for (name, events, until, want) in cases {
            let mut s = DeviceState { timeout: 60, ..DeviceState::default() };
            let mut fired = Vec::new();
            let mut next = 0;
            for tenth in 0..=until * 10 {
                let now = t0 + Duration::from_millis(tenth * 100);
                while next < events.len() && events[next].0 * 10 <= tenth {
                    match events[next].1 {
                        Open => s.open(now),
                        Close => s.close(now),
                        Ping => s.keepalive(now),
                        Magic => s.magic_close(),
                        Timeout(t) => s.set_timeout(t, now),
                    }
                    next += 1;
                }
                if s.due(now) {
                    s.fire(now, SystemTime::now());
                    fired.push(now.duration_since(t0));
                }
            }
            // Fires as soon as the timeout has passed: within 100 ms after.
            let got: Vec<u64> = fired.iter().map(|d| d.as_secs()).collect();
            assert_eq!(&got, want, "{name}: fired at {fired:?}");
            assert_eq!(s.fires.len(), want.len(), "{name}");
            assert_eq!(s.fired.map(|f| f.0), s.fires.first().map(|f| f.0), "{name}");
        }
    }
}
