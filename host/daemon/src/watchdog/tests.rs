//! The facade against a mock device that records what it was asked.

use std::sync::{Arc, Mutex};

use super::device::{Device, WatchdogError};
use super::*;

#[derive(Default)]
struct Log {
    calls: Vec<String>,
    open: bool,
}

struct Mock {
    log: Arc<Mutex<Log>>,
    fail_open: bool,
    timeout: i64,
    settable: bool,
}

impl Mock {
    fn new(fail_open: bool) -> (Self, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        (Self { log: Arc::clone(&log), fail_open, timeout: 60, settable: true }, log)
    }
    fn push(&self, call: String) {
        self.log.lock().unwrap().calls.push(call);
    }
}

impl Device for Mock {
    fn open(&mut self) -> Result<(), WatchdogError> {
        self.push("open".into());
        if self.fail_open {
            return Err(WatchdogError("Can't open watchdog device: nope".into()));
        }
        self.log.lock().unwrap().open = true;
        Ok(())
    }
    fn close(&mut self) -> Result<(), WatchdogError> {
        if self.log.lock().unwrap().open {
            self.push("V".into());
        }
        self.log.lock().unwrap().open = false;
        Ok(())
    }
    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        self.push("1".into());
        Ok(())
    }
    fn has_set_timeout(&mut self) -> bool {
        self.settable
    }
    fn set_timeout(&mut self, seconds: i64) -> Result<(), WatchdogError> {
        self.push(format!("timeout={seconds}"));
        self.timeout = seconds;
        Ok(())
    }
    fn get_timeout(&mut self) -> Result<i64, WatchdogError> {
        Ok(self.timeout)
    }
    fn can_be_disabled(&mut self) -> bool {
        true
    }
    fn is_running(&self) -> bool {
        self.log.lock().unwrap().open
    }
    fn is_healthy(&self) -> bool {
        !self.fail_open
    }
    fn describe(&mut self) -> String {
        "mock".into()
    }
}

fn settings(mode: WatchdogMode, ttl: i64, loop_wait: i64, safety_margin: i64) -> WatchdogSettings {
    WatchdogSettings {
        mode,
        timing: WatchdogTiming { ttl, loop_wait, safety_margin },
        driver: "testing".into(),
        device: "/nowhere".into(),
    }
}

fn calls(log: &Arc<Mutex<Log>>) -> Vec<String> {
    std::mem::take(&mut log.lock().unwrap().calls)
}

#[test]
fn leading_opens_sets_the_timeout_and_pings_then_closes() {
    let (mock, log) = Mock::new(false);
    let mut wd = Watchdog::with_device(settings(WatchdogMode::Automatic, 5, 1, 2), Box::new(mock));
    assert_eq!(wd.state(), WatchdogState::Inactive { healthy: true });
    assert!(wd.activate());
    assert_eq!(wd.state(), WatchdogState::Active);
    wd.keepalive();
    wd.keepalive();
    wd.disable();
    assert_eq!(calls(&log), ["open", "timeout=3", "1", "1", "V"]);
    assert!(!wd.is_running());
    // Not active: no keepalive reaches the device.
    wd.keepalive();
    assert!(calls(&log).is_empty());
}

#[test]
fn a_new_ttl_becomes_the_timeout_at_the_next_keepalive() {
    let (mock, log) = Mock::new(false);
    let mut wd = Watchdog::with_device(settings(WatchdogMode::Required, 30, 10, 5), Box::new(mock));
    assert!(wd.activate());
    wd.reload(settings(WatchdogMode::Required, 20, 10, 5));
    assert_eq!(calls(&log), ["open", "timeout=25"]);
    wd.keepalive();
    assert_eq!(calls(&log), ["1", "timeout=15"]);
    wd.keepalive();
    assert_eq!(calls(&log), ["1"]);
}

#[test]
fn required_fails_without_a_device_and_automatic_goes_on() {
    let (mock, log) = Mock::new(true);
    let mut wd = Watchdog::with_device(settings(WatchdogMode::Required, 30, 10, 5), Box::new(mock));
    assert!(!wd.is_healthy());
    assert!(!wd.activate());
    assert_eq!(calls(&log), ["open"]);
    // The device is not tried again until the configuration changes.
    assert!(!wd.activate());
    assert!(calls(&log).is_empty());

    let (mock, log) = Mock::new(true);
    let mut wd = Watchdog::with_device(settings(WatchdogMode::Automatic, 30, 10, 5), Box::new(mock));
    assert!(wd.is_healthy());
    assert!(wd.activate());
    assert_eq!(calls(&log), ["open"]);
}

#[test]
fn a_timing_without_slack_opens_nothing() {
    let (mock, log) = Mock::new(false);
    let mut wd = Watchdog::with_device(settings(WatchdogMode::Required, 5, 1, 5), Box::new(mock));
    assert!(!wd.is_healthy());
    assert!(!wd.activate());
    assert!(calls(&log).is_empty());
    // Mode automatic goes on without a device, every time it is asked.
    let (mock, log) = Mock::new(false);
    let mut wd = Watchdog::with_device(settings(WatchdogMode::Automatic, 5, 1, 5), Box::new(mock));
    assert!(wd.is_healthy());
    assert!(wd.activate() && wd.activate());
    assert!(calls(&log).is_empty());
    assert_eq!(wd.state(), WatchdogState::Inactive { healthy: true });
}

#[test]
fn mode_off_closes_at_once() {
    let (mock, log) = Mock::new(false);
    let mut wd = Watchdog::with_device(settings(WatchdogMode::Automatic, 30, 10, 5), Box::new(mock));
    assert!(wd.activate());
    wd.reload(settings(WatchdogMode::Off, 30, 10, 5));
    assert_eq!(calls(&log), ["open", "timeout=25", "V"]);
    assert_eq!(wd.state(), WatchdogState::Off);
}

#[test]
fn keepalive_goes_before_the_renewal_only_within_the_lease() {
    let (mock, _log) = Mock::new(false);
    let mut wd = Watchdog::with_device(settings(WatchdogMode::Automatic, 5, 1, 2), Box::new(mock));
    let now = Instant::now();
    assert!(wd.activate());
    assert!(!wd.keepalive_before_renewal(now), "no lease known yet");
    wd.lease_renewed(now, Duration::from_secs(5));
    assert!(wd.keepalive_before_renewal(now + Duration::from_secs(1)));
    assert!(!wd.keepalive_before_renewal(now + Duration::from_millis(2500)));
    wd.disable();
    assert!(!wd.keepalive_before_renewal(now));
}

#[test]
fn the_null_device_answers_like_patronis() {
    let mut null = NullDevice;
    assert!(null.open().is_ok() && null.keepalive().is_ok() && null.close().is_ok());
    assert!(!null.is_running() && null.is_null());
    assert!(null.set_timeout(5).is_err());
    assert!(Watchdog::new(WatchdogSettings { driver: "nope".into(), ..settings(WatchdogMode::Required, 30, 10, 5) })
        .is_err());
    assert!(Watchdog::new(WatchdogSettings { driver: "nope".into(), ..settings(WatchdogMode::Automatic, 30, 10, 5) })
        .is_ok());
}

/// The testing driver speaks Patroni's FIFO protocol; a FIFO nobody reads
/// fails to open instead of hanging.
#[test]
fn testing_driver_writes_the_fifo_protocol() {
    use std::io::Read;
    let dir = std::env::temp_dir().join(format!("palisade-wd-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let fifo = dir.join("wd.fifo");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut dev = device::TestingDevice::new(&fifo);
    assert!(dev.is_healthy());
    let err = dev.open().unwrap_err().to_string();
    assert!(err.starts_with("Can't open watchdog device:"), "{err}");

    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::open(&reader_path).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    });
    let mut opened = false;
    for _ in 0..200 {
        if dev.open().is_ok() {
            opened = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(opened);
    dev.set_timeout(3).unwrap();
    dev.keepalive().unwrap();
    assert_eq!(dev.get_timeout().unwrap(), 3);
    dev.close().unwrap();
    assert_eq!(reader.join().unwrap(), "Ctimeout=3\n1V");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn linux_device_errors_name_the_problem() {
    let mut dev = device::LinuxDevice::new(std::path::Path::new("/nonexistent/watchdog"));
    assert!(!dev.is_healthy());
    let err = dev.open().unwrap_err().to_string();
    assert!(err.starts_with("Can't open watchdog device:"), "{err}");
    assert_eq!(dev.keepalive().unwrap_err().to_string(), "Watchdog device is closed");
    assert!(dev.set_timeout(0).unwrap_err().to_string().starts_with("Invalid timeout 0"));
    assert!(dev.describe().starts_with("Linux watchdog device at /nonexistent"));
    // A regular file is no watchdog: the ioctls fail, they do not crash.
    let file = std::env::temp_dir().join(format!("palisade-wd-file-{}", std::process::id()));
    std::fs::write(&file, b"").unwrap();
    let mut dev = device::LinuxDevice::new(&file);
    dev.open().unwrap();
    assert!(dev.get_timeout().is_err());
    assert!(!dev.has_set_timeout());
    assert!(dev.set_timeout(5).unwrap_err().to_string().starts_with("Could not set timeout on watchdog device"));
    dev.close().unwrap();
    let _ = std::fs::remove_file(&file);
}
