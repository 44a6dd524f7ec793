//! A test watchdog device: the FIFO Patroni's `testing` driver writes to
//! (`1` keepalive, `V` magic close, `Ctimeout=N\n` the timeout), read by a
//! thread that records what arrived and when, and a timer that "fires"
//! when the device is armed and no keepalive came within the timeout, as a
//! hardware watchdog would: it records the moment and runs the action the
//! test gave it (kill the node's postmaster, like a reboot would).
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
    /// When it fired (monotonic and wall clock), if it did.
    pub fired: Option<(Instant, SystemTime)>,
}

type Action = Box<dyn FnOnce() + Send>;

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

    /// What to do when the device fires (once).
    pub fn on_fire(&self, action: impl FnOnce() + Send + 'static) {
        *self.action.lock().unwrap() = Some(Box::new(action));
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
        {
            let mut s = state.lock().unwrap();
            s.connected = true;
            s.opened += 1;
            s.armed = true;
            s.last_reset = Some(Instant::now());
        }
        let mut byte = [0u8; 1];
        let mut command: Option<Vec<u8>> = None;
        loop {
            let n = f.read(&mut byte).unwrap_or(0);
            let now = Instant::now();
            let mut s = state.lock().unwrap();
            if n == 0 {
                s.connected = false;
                s.closes += 1;
                break;
            }
            if let Some(cmd) = command.as_mut() {
                if byte[0] == b'\n' {
                    let text = String::from_utf8_lossy(cmd).into_owned();
                    if let Some(t) = text.strip_prefix("timeout=").and_then(|t| t.parse().ok()) {
                        s.timeout = t;
                        s.timeouts.push(t);
                        s.last_reset = Some(now);
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
                b'1' => {
                    s.pings.push(now);
                    s.last_reset = Some(now);
                }
                b'V' => {
                    s.magic_closes += 1;
                    s.armed = false;
                }
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
            let due = s.armed
                && s.fired.is_none()
                && s.last_reset.is_some_and(|t| t.elapsed() > Duration::from_secs(s.timeout.max(0).unsigned_abs()));
            if due {
                s.fired = Some((Instant::now(), SystemTime::now()));
            }
            due
        };
        if fire {
            if let Some(f) = action.lock().unwrap().take() {
                f();
            }
        }
    }
}
