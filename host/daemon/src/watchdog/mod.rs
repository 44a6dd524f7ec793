//! The watchdog (Patroni's `Watchdog` facade): opens the configured device
//! when the node starts to lead, keeps it alive while the lock is renewed,
//! closes it on demotion, pause and shutdown, and applies configuration
//! changes (a new `ttl` becomes a new timeout at the next keepalive, so the
//! timeout matches the lease being renewed).
//!
//! What to conclude from a device's answers (the timeout, whether an
//! activation worked, the order of keepalive and renewal) is decided in
//! `palisade_ha::watchdog`; this module does the IO.

pub mod device;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use palisade_config::{GlobalConfig, WatchdogConfig};
use palisade_ha::{Level, Probe, WatchdogMode, WatchdogState, WatchdogTiming};

use device::{Device, NullDevice};

/// The watchdog settings in force (Patroni's `WatchdogConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchdogSettings {
    pub mode: WatchdogMode,
    pub timing: WatchdogTiming,
    pub driver: String,
    pub device: PathBuf,
}

impl WatchdogSettings {
    pub fn new(local: &WatchdogConfig, global: &GlobalConfig) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self {
            mode: WatchdogMode::from_config(&local.mode),
            timing: WatchdogTiming {
                ttl: secs(global.ttl),
                loop_wait: secs(global.loop_wait),
                safety_margin: if local.safety_margin_half_ttl { -1 } else { secs(local.safety_margin) },
            },
            driver: local.driver.clone(),
            device: local.device.clone(),
        }
    }

    fn device(&self) -> Box<dyn Device> {
        if self.mode == WatchdogMode::Off {
            Box::new(NullDevice)
        } else {
            device::for_driver(&self.driver, &self.device)
        }
    }
}

fn log(level: Level, line: &str) {
    match level {
        Level::Info => tracing::info!("{line}"),
        Level::Warn => tracing::warn!("{line}"),
        Level::Error => tracing::error!("{line}"),
    }
}

/// The node's watchdog.
pub struct Watchdog {
    config: WatchdogSettings,
    /// The settings the device runs with (a change waits for the next keepalive).
    active_config: WatchdogSettings,
    device: Box<dyn Device>,
    /// Activated (and not disabled since): keepalives are sent.
    active: bool,
    /// When the leader lease last renewed ends, counted from when the
    /// renewal was sent.
    lease_end: Option<Instant>,
    /// The timing whose lack of slack was last reported: said once, not
    /// at every activation (a leader in mode `automatic` tries each cycle).
    slack_reported: Option<WatchdogTiming>,
}

impl Watchdog {
    /// The watchdog for these settings; an error when `required` names a
    /// driver that cannot work here (Patroni exits then too).
    pub fn new(settings: WatchdogSettings) -> Result<Self, String> {
        let device = settings.device();
        if settings.mode == WatchdogMode::Required && device.is_null() {
            return Err("Configuration requires a watchdog, but watchdog is not supported on this platform.".into());
        }
        Ok(Self::with_device(settings, device))
    }

    /// A watchdog switched off, on the null device (tests of other parts).
    #[cfg(test)]
    pub(crate) fn off() -> Self {
        Self::with_device(
            WatchdogSettings {
                mode: WatchdogMode::Off,
                timing: WatchdogTiming { ttl: 30, loop_wait: 10, safety_margin: 5 },
                driver: "default".into(),
                device: "/dev/watchdog".into(),
            },
            Box::new(NullDevice),
        )
    }

    /// The watchdog with a given device (tests).
    pub fn with_device(settings: WatchdogSettings, device: Box<dyn Device>) -> Self {
        Self {
            active_config: settings.clone(),
            config: settings,
            device,
            active: false,
            lease_end: None,
            slack_reported: None,
        }
    }

    /// New settings (each cycle, each reload). A device in use keeps its
    /// timeout until the next keepalive, so that the timeout changes with
    /// the lease it guards.
    pub fn reload(&mut self, settings: WatchdogSettings) {
        if settings == self.config {
            return;
        }
        self.config = settings;
        if self.config.mode == WatchdogMode::Off {
            if self.active {
                self.close();
            }
            self.active_config = self.config.clone();
            self.device = Box::new(NullDevice);
        }
        if !self.active {
            if self.config.driver != self.active_config.driver || self.config.device != self.active_config.device {
                self.device = self.config.device();
            }
            self.active_config = self.config.clone();
        }
    }

    /// Activate the device; `false` when the mode is `required` and no
    /// safe device could be set up (the node must not lead).
    pub fn activate(&mut self) -> bool {
        self.active = true;
        self.activate_device()
    }

    fn activate_device(&mut self) -> bool {
        self.active_config = self.config.clone();
        let timing = self.config.timing;
        if let Some((level, line)) = palisade_ha::should_open(&timing) {
            if self.slack_reported != Some(timing) {
                log(level, &line);
                self.slack_reported = Some(timing);
            }
            self.device = Box::new(NullDevice);
        }
        let probe = if self.device.is_null() {
            Probe::Null
        } else {
            match self.device.open().and_then(|()| self.set_timeout()) {
                Ok(actual) => Probe::Opened {
                    device: self.device.describe(),
                    actual_timeout: actual,
                    can_be_disabled: self.device.can_be_disabled(),
                },
                Err(e) => {
                    let device = self.device.describe();
                    tracing::debug!("Could not activate {device}: {e}");
                    let _ = self.device.close();
                    Probe::Failed { device, error: e.to_string() }
                }
            }
        };
        let verdict = palisade_ha::activation(self.config.mode, &timing, &probe);
        for (level, line) in &verdict.log {
            log(*level, line);
        }
        if !verdict.keep_open {
            if self.device.is_running() {
                self.close();
            }
            // As Patroni: the device is not tried again until the
            // configuration changes.
            if !matches!(probe, Probe::Opened { .. }) || !verdict.ok {
                self.device = Box::new(NullDevice);
            }
        }
        verdict.ok
    }

    fn set_timeout(&mut self) -> Result<i64, device::WatchdogError> {
        if self.device.has_set_timeout() {
            self.device.set_timeout(self.config.timing.timeout())?;
        }
        self.device.get_timeout()
    }

    /// Close the device (demotion, pause, shutdown).
    pub fn disable(&mut self) {
        self.close();
        self.active = false;
        self.lease_end = None;
    }

    fn close(&mut self) {
        if self.device.is_running() && !self.device.can_be_disabled() {
            // Give whoever cleans up some more time.
            let _ = self.device.keepalive();
            let timeout = self.device.get_timeout().unwrap_or_default();
            tracing::warn!(
                "Watchdog implementation can't be disabled. System will reboot after {timeout} seconds when watchdog \
                 times out."
            );
        }
        if let Err(e) = self.device.close() {
            tracing::error!("Error while disabling watchdog: {e}");
        }
    }

    /// Reset the device's timer, then apply settings that changed.
    pub fn keepalive(&mut self) {
        if !self.active {
            return;
        }
        if let Err(e) = self.device.keepalive() {
            tracing::error!("Error while sending keepalive: {e}");
            return;
        }
        if self.config == self.active_config {
            return;
        }
        if self.config.mode != WatchdogMode::Off && self.active_config.mode == WatchdogMode::Off {
            self.device = self.config.device();
            self.activate_device();
        }
        if self.config.driver != self.active_config.driver || self.config.device != self.active_config.device {
            self.close();
            self.device = self.config.device();
            self.activate_device();
        }
        let timeout = self.config.timing.timeout();
        if timeout != self.active_config.timing.timeout() && self.device.is_running() {
            match self.device.set_timeout(timeout) {
                Ok(()) => tracing::info!(
                    "{} updated with {} second timeout, timing slack {} seconds",
                    self.device.describe(),
                    self.device.get_timeout().unwrap_or(timeout),
                    self.config.timing.timing_slack()
                ),
                Err(e) => tracing::error!("Error while sending keepalive: {e}"),
            }
        }
        self.active_config = self.config.clone();
    }

    /// Whether this cycle's keepalive goes before the lock renewal (see
    /// `palisade_ha::keepalive_before_renewal`).
    pub fn keepalive_before_renewal(&self, now: Instant) -> bool {
        let lease_left = self.lease_end.map(|end| end.saturating_duration_since(now).as_secs_f64());
        self.active
            && self.device.is_running()
            && palisade_ha::keepalive_before_renewal(0.0, lease_left, self.config.timing.timeout())
    }

    /// The leader lease was renewed (or taken) by a request sent at `sent`.
    pub fn lease_renewed(&mut self, sent: Instant, ttl: Duration) {
        self.lease_end = Some(sent + ttl);
    }

    /// The lease is not ours (any more).
    pub fn lease_lost(&mut self) {
        self.lease_end = None;
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// A device is open and kept alive.
    pub fn is_running(&self) -> bool {
        self.device.is_running()
    }

    /// Patroni's `is_healthy` (`/patroni` says `watchdog_failed` when not).
    pub fn is_healthy(&self) -> bool {
        palisade_ha::watchdog_is_healthy(self.config.mode, &self.config.timing, self.device.is_healthy())
    }

    /// The timeout the device is (to be) set to.
    pub fn timeout(&self) -> i64 {
        self.config.timing.timeout()
    }

    /// What the HA decision is told.
    pub fn state(&self) -> WatchdogState {
        if self.config.mode == WatchdogMode::Off {
            WatchdogState::Off
        } else if self.device.is_running() {
            WatchdogState::Active
        } else {
            WatchdogState::Inactive { healthy: self.is_healthy() }
        }
    }
}

#[cfg(test)]
mod tests;
