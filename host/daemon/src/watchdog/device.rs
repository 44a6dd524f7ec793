//! Watchdog devices: Linux's `/dev/watchdog` through its ioctls, Patroni's
//! `testing` driver (the same device protocol written to a FIFO a test
//! harness reads) and the null device used when none is.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A device error, in Patroni's words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WatchdogError(pub String);

/// What every driver offers (Patroni's `WatchdogBase`).
pub trait Device: Send {
    /// Open the device: from now on it must be kept alive.
    fn open(&mut self) -> Result<(), WatchdogError>;
    /// Close it the way that stops it (magic close `V`).
    fn close(&mut self) -> Result<(), WatchdogError>;
    fn keepalive(&mut self) -> Result<(), WatchdogError>;
    fn has_set_timeout(&mut self) -> bool;
    fn set_timeout(&mut self, seconds: i64) -> Result<(), WatchdogError>;
    fn get_timeout(&mut self) -> Result<i64, WatchdogError>;
    /// Closing stops it (magic close is supported).
    fn can_be_disabled(&mut self) -> bool;
    /// Open now.
    fn is_running(&self) -> bool;
    /// Opening it can work: the device is there and writable.
    fn is_healthy(&self) -> bool;
    fn describe(&mut self) -> String;
    fn is_null(&self) -> bool {
        false
    }
}

/// No device (mode `off`, an unknown driver, or a timing without slack).
pub struct NullDevice;

impl Device for NullDevice {
    fn open(&mut self) -> Result<(), WatchdogError> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), WatchdogError> {
        Ok(())
    }
    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        Ok(())
    }
    fn has_set_timeout(&mut self) -> bool {
        false
    }
    fn set_timeout(&mut self, _: i64) -> Result<(), WatchdogError> {
        Err(WatchdogError("Setting timeout is not supported on NullWatchdog".into()))
    }
    fn get_timeout(&mut self) -> Result<i64, WatchdogError> {
        // As Patroni: big enough not to matter.
        Ok(1_000_000_000)
    }
    fn can_be_disabled(&mut self) -> bool {
        true
    }
    fn is_running(&self) -> bool {
        false
    }
    fn is_healthy(&self) -> bool {
        false
    }
    fn describe(&mut self) -> String {
        "NullWatchdog".into()
    }
    fn is_null(&self) -> bool {
        true
    }
}

/// `struct watchdog_info` of `<linux/watchdog.h>`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct WatchdogInfo {
    pub options: u32,
    pub firmware_version: u32,
    pub identity: [u8; 32],
}

/// `WDIOF_SETTIMEOUT`: the timeout can be set.
pub const WDIOF_SETTIMEOUT: u32 = 0x0080;
/// `WDIOF_MAGICCLOSE`: writing `V` before closing stops the timer.
pub const WDIOF_MAGICCLOSE: u32 = 0x0100;

mod ioctl {
    use super::WatchdogInfo;
    nix::ioctl_read!(get_support, b'W', 0, WatchdogInfo);
    nix::ioctl_read!(keepalive, b'W', 5, libc::c_int);
    nix::ioctl_readwrite!(set_timeout, b'W', 6, libc::c_int);
    nix::ioctl_read!(get_timeout, b'W', 7, libc::c_int);
}

/// The default device path.
pub const DEFAULT_DEVICE: &str = "/dev/watchdog";

/// Linux's watchdog device API (`/dev/watchdog`).
pub struct LinuxDevice {
    path: PathBuf,
    file: Option<File>,
    support: Option<(u32, u32, String)>,
}

impl LinuxDevice {
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), file: None, support: None }
    }

    fn fd(&self) -> Result<i32, WatchdogError> {
        self.file.as_ref().map(AsRawFd::as_raw_fd).ok_or_else(|| WatchdogError("Watchdog device is closed".into()))
    }

    /// `WDIOC_GETSUPPORT`: options, firmware version, identity (cached).
    fn support(&mut self) -> Result<(u32, u32, String), WatchdogError> {
        if let Some(s) = &self.support {
            return Ok(s.clone());
        }
        let fd =
            self.fd().map_err(|e| WatchdogError(format!("Could not get information about watchdog device: {e}")))?;
        let mut info = WatchdogInfo { options: 0, firmware_version: 0, identity: [0; 32] };
        // SAFETY: `fd` is an open descriptor we own and `info` is a
        // `struct watchdog_info` the kernel fills in.
        unsafe { ioctl::get_support(fd, &mut info) }
            .map_err(|e| WatchdogError(format!("Could not get information about watchdog device: {e}")))?;
        let end = info.identity.iter().position(|b| *b == 0).unwrap_or(info.identity.len());
        let identity = String::from_utf8_lossy(&info.identity[..end]).into_owned();
        let s = (info.options, info.firmware_version, identity);
        self.support = Some(s.clone());
        Ok(s)
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.write_all(bytes),
            None => Err(std::io::Error::other("Watchdog device is closed")),
        }
    }

    fn open_path(&mut self, nonblocking_open: bool) -> Result<(), WatchdogError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        if nonblocking_open {
            options.custom_flags(libc::O_NONBLOCK);
        }
        let file = options.open(&self.path).map_err(|e| WatchdogError(format!("Can't open watchdog device: {e}")))?;
        if nonblocking_open {
            // Only the open must not wait (a FIFO without a reader fails
            // with ENXIO instead); writes block as on the real device.
            let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL)
                .map_err(|e| WatchdogError(format!("Can't open watchdog device: {e}")))?;
            let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags))
                .map_err(|e| WatchdogError(format!("Can't open watchdog device: {e}")))?;
        }
        self.file = Some(file);
        Ok(())
    }

    fn healthy(&self) -> bool {
        self.path.exists() && nix::unistd::access(&self.path, nix::unistd::AccessFlags::W_OK).is_ok()
    }

    fn magic_close(&mut self) -> Result<(), WatchdogError> {
        if self.file.is_some() {
            let described = format!("watchdog device {}", self.path.display());
            self.write(b"V").map_err(|e| WatchdogError(format!("Error while closing {described}: {e}")))?;
            self.file = None;
        }
        Ok(())
    }
}

impl Device for LinuxDevice {
    fn open(&mut self) -> Result<(), WatchdogError> {
        self.open_path(false)
    }

    fn close(&mut self) -> Result<(), WatchdogError> {
        self.magic_close()
    }

    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        let fd = self.fd()?;
        let mut dummy: libc::c_int = 0;
        // SAFETY: `fd` is open; WDIOC_KEEPALIVE ignores its argument.
        unsafe { ioctl::keepalive(fd, &mut dummy) }
            .map(|_| ())
            .map_err(|e| WatchdogError(format!("Could not send watchdog keepalive: {e}")))
    }

    fn has_set_timeout(&mut self) -> bool {
        self.support().is_ok_and(|(options, _, _)| options & WDIOF_SETTIMEOUT != 0)
    }

    fn set_timeout(&mut self, seconds: i64) -> Result<(), WatchdogError> {
        if !(1..0xFFFF).contains(&seconds) {
            return Err(WatchdogError(format!("Invalid timeout {seconds}. Supported values are between 1 and 65535")));
        }
        let fd = self.fd().map_err(|e| WatchdogError(format!("Could not set timeout on watchdog device: {e}")))?;
        let mut value = seconds as libc::c_int;
        // SAFETY: `fd` is open and `value` is the int WDIOC_SETTIMEOUT reads and writes.
        unsafe { ioctl::set_timeout(fd, &mut value) }
            .map(|_| ())
            .map_err(|e| WatchdogError(format!("Could not set timeout on watchdog device: {e}")))
    }

    fn get_timeout(&mut self) -> Result<i64, WatchdogError> {
        let fd = self.fd().map_err(|e| WatchdogError(format!("Could not get timeout on watchdog device: {e}")))?;
        let mut value: libc::c_int = 0;
        // SAFETY: `fd` is open and `value` is the int WDIOC_GETTIMEOUT writes.
        unsafe { ioctl::get_timeout(fd, &mut value) }
            .map_err(|e| WatchdogError(format!("Could not get timeout on watchdog device: {e}")))?;
        Ok(i64::from(value))
    }

    fn can_be_disabled(&mut self) -> bool {
        self.support().is_ok_and(|(options, _, _)| options & WDIOF_MAGICCLOSE != 0)
    }

    fn is_running(&self) -> bool {
        self.file.is_some()
    }

    fn is_healthy(&self) -> bool {
        self.healthy()
    }

    fn describe(&mut self) -> String {
        let at =
            if self.path != Path::new(DEFAULT_DEVICE) { format!(" at {}", self.path.display()) } else { String::new() };
        let (version, identity) = match self.file.is_some().then(|| self.support()) {
            Some(Ok((_, version, identity))) => (version, identity),
            _ => (0, "Linux watchdog device".to_string()),
        };
        let firmware = if version != 0 { format!(" (firmware {version})") } else { String::new() };
        format!("{identity}{firmware}{at}")
    }
}

/// Patroni's `testing` driver: the Linux device protocol without ioctls,
/// for a FIFO that a test harness reads. `1` is a keepalive, `V` the magic
/// close, and `Ctimeout=N\n` sets the timeout. Opening does not wait for a
/// reader: a FIFO nobody reads fails to open, as a broken device would.
pub struct TestingDevice {
    inner: LinuxDevice,
    timeout: i64,
}

impl TestingDevice {
    pub fn new(path: &Path) -> Self {
        Self { inner: LinuxDevice::new(path), timeout: 60 }
    }
}

impl Device for TestingDevice {
    fn open(&mut self) -> Result<(), WatchdogError> {
        self.inner.open_path(true)
    }

    fn close(&mut self) -> Result<(), WatchdogError> {
        self.inner.magic_close()
    }

    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        self.inner.fd()?;
        self.inner.write(b"1").map_err(|e| WatchdogError(format!("Could not send watchdog keepalive: {e}")))
    }

    fn has_set_timeout(&mut self) -> bool {
        true
    }

    fn set_timeout(&mut self, seconds: i64) -> Result<(), WatchdogError> {
        self.inner.fd()?;
        self.inner
            .write(format!("Ctimeout={seconds}\n").as_bytes())
            .map_err(|e| WatchdogError(format!("Could not set timeout on watchdog device: {e}")))?;
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
        self.inner.is_running()
    }

    fn is_healthy(&self) -> bool {
        self.inner.healthy()
    }

    fn describe(&mut self) -> String {
        let at = if self.inner.path != Path::new(DEFAULT_DEVICE) {
            format!(" at {}", self.inner.path.display())
        } else {
            String::new()
        };
        format!("Watchdog test harness{at}")
    }
}

/// The device for a driver name (Patroni's `get_impl`).
pub fn for_driver(driver: &str, path: &Path) -> Box<dyn Device> {
    match driver {
        "testing" => Box::new(TestingDevice::new(path)),
        "default" if cfg!(target_os = "linux") => Box::new(LinuxDevice::new(path)),
        _ => Box::new(NullDevice),
    }
}
