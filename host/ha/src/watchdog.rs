//! The watchdog's decisions (Patroni's `patroni/watchdog/base.py`), as pure
//! functions: the timeout a device is set to, whether an activation
//! worked (and what to log), whether the node may take part in a leader
//! race, and when to send a keepalive. The daemon opens the device and
//! carries the verdicts out.

use crate::output::Level;

/// `watchdog.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WatchdogMode {
    /// Never open a device.
    Off,
    /// Use a device when one can be activated.
    #[default]
    Automatic,
    /// Never lead without an active device.
    Required,
}

impl WatchdogMode {
    /// The mode as the configuration names it (`off`, `automatic`, `required`);
    /// the configuration has already turned Patroni's spellings into these.
    pub fn from_config(mode: &str) -> Self {
        match mode {
            "required" => Self::Required,
            "automatic" => Self::Automatic,
            _ => Self::Off,
        }
    }
}

/// What the decision knows about this node's watchdog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WatchdogState {
    /// `mode: off`: nothing to activate.
    #[default]
    Off,
    /// A device is active (open and kept alive).
    Active,
    /// Not active now. `healthy`: Patroni's `is_healthy` (always true
    /// unless the mode is `required`; then the timing must leave slack
    /// and the device must be there and writable).
    Inactive { healthy: bool },
}

impl WatchdogState {
    /// Patroni's `Watchdog.is_healthy`.
    pub fn is_healthy(self) -> bool {
        !matches!(self, Self::Inactive { healthy: false })
    }
}

/// The settings the timeout comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchdogTiming {
    /// `ttl`, whole seconds.
    pub ttl: i64,
    /// `loop_wait`, whole seconds.
    pub loop_wait: i64,
    /// `watchdog.safety_margin`; -1 means "half the ttl" as in Patroni.
    pub safety_margin: i64,
}

impl WatchdogTiming {
    /// The timeout the device is set to: `ttl - safety_margin`, or
    /// `ttl // 2` with a margin of -1.
    pub fn timeout(&self) -> i64 {
        if self.safety_margin == -1 {
            self.ttl.div_euclid(2)
        } else {
            self.ttl - self.safety_margin
        }
    }

    /// How long a cycle may take beyond `loop_wait` before the device
    /// fires (`timeout - loop_wait`); negative means a healthy leader would
    /// be fenced, so no device is used.
    pub fn timing_slack(&self) -> i64 {
        self.timeout() - self.loop_wait
    }
}

/// Patroni's `Watchdog.is_healthy`: only `required` can be unhealthy.
pub fn watchdog_is_healthy(mode: WatchdogMode, timing: &WatchdogTiming, device_healthy: bool) -> bool {
    mode != WatchdogMode::Required || timing.timing_slack() >= 0 && device_healthy
}

/// What the daemon learned while opening and setting up a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// No device is used (mode `off`, an unknown driver, or the timing
    /// leaves no slack so the daemon did not open one).
    Null,
    /// Opening or setting it up failed with this message.
    Failed { device: String, error: String },
    /// It is open and reports this timeout.
    Opened { device: String, actual_timeout: i64, can_be_disabled: bool },
}

/// The verdict on an activation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activation {
    /// The node may lead (`false` only in mode `required`).
    pub ok: bool,
    /// The device stays open and must be kept alive; `false`: close it.
    pub keep_open: bool,
    /// Lines to log, in order (Patroni's words).
    pub log: Vec<(Level, String)>,
}

/// Should the daemon open a device at all for this timing? Patroni's
/// `_activate` gives up on a timing without slack before opening.
pub fn should_open(timing: &WatchdogTiming) -> Option<(Level, String)> {
    (timing.timing_slack() < 0).then(|| {
        (
            Level::Warn,
            format!(
                "Watchdog not supported because leader TTL {} is less than 2x loop_wait {}",
                timing.ttl, timing.loop_wait
            ),
        )
    })
}

/// Patroni's `Watchdog._activate` after the device was probed.
pub fn activation(mode: WatchdogMode, timing: &WatchdogTiming, probe: &Probe) -> Activation {
    let mut log = Vec::new();
    let required = mode == WatchdogMode::Required;
    let timeout = timing.timeout();
    let slack = timing.timing_slack();
    // (running, the timeout it runs with, description)
    let (running, actual, description) = match probe {
        Probe::Null => (false, None, String::new()),
        Probe::Failed { device, error } => {
            // Patroni logs this at debug level in automatic mode.
            if required {
                log.push((Level::Warn, format!("Could not activate {device}: {error}")));
            }
            (false, None, device.clone())
        }
        Probe::Opened { device, actual_timeout, can_be_disabled } => {
            let mut running = true;
            let mut actual = Some(*actual_timeout);
            if *actual_timeout < timing.loop_wait {
                log.push((
                    Level::Error,
                    format!(
                        "loop_wait of {} seconds is too long for watchdog {actual_timeout} second timeout",
                        timing.loop_wait
                    ),
                ));
                if *can_be_disabled {
                    log.push((Level::Info, "Disabling watchdog due to unsafe timeout.".to_string()));
                    running = false;
                    actual = None;
                }
            }
            if running && !can_be_disabled {
                log.push((
                    Level::Warn,
                    "Watchdog implementation can't be disabled. Watchdog will trigger after Palisade loses leader key."
                        .to_string(),
                ));
            }
            (running, actual, device.clone())
        }
    };
    let too_long = actual.is_some_and(|a| a > timeout);
    if !running || too_long {
        if required {
            let line = match actual.filter(|_| running) {
                None => "Configuration requires watchdog, but watchdog could not be configured.".to_string(),
                Some(a) => format!(
                    "Configuration requires watchdog, but a safe watchdog timeout {timeout} could not be configured. \
                     Watchdog timeout is {a}."
                ),
            };
            log.push((Level::Error, line));
            // Unlike Patroni, a device the node will not lead with is not
            // left running.
            return Activation { ok: false, keep_open: false, log };
        }
        if running {
            log.push((
                Level::Warn,
                format!(
                    "Watchdog timeout {} seconds does not ensure safe termination within {timeout} seconds",
                    actual.unwrap_or_default()
                ),
            ));
        }
    }
    if running {
        log.push((
            Level::Info,
            format!(
                "{description} activated with {} second timeout, timing slack {slack} seconds",
                actual.unwrap_or_default()
            ),
        ));
    } else if required {
        log.push((Level::Error, "Configuration requires watchdog, but watchdog could not be activated".into()));
        return Activation { ok: false, keep_open: false, log };
    }
    Activation { ok: true, keep_open: running, log }
}

/// When to keep an active device alive in a cycle that renews the leader
/// lock: before the renewal is sent when the device's new deadline
/// (`now + timeout`) still falls within the lease we already hold
/// (`lease_end`, counted from when the previous renewal was sent), so the
/// device fires before the lease runs out whether this renewal succeeds,
/// fails or hangs, and however long the DCS takes to answer. Otherwise
/// (a `loop_wait` longer than the safety margin) after a successful
/// renewal, as Patroni does. `true`: before.
pub fn keepalive_before_renewal(now: f64, lease_end: Option<f64>, timeout: i64) -> bool {
    lease_end.is_some_and(|end| now + timeout as f64 <= end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ttl: i64, loop_wait: i64, safety_margin: i64) -> WatchdogTiming {
        WatchdogTiming { ttl, loop_wait, safety_margin }
    }

    #[test]
    fn timeout_and_slack() {
        // (ttl, loop_wait, margin) -> (timeout, slack)
        let cases = [
            ((30, 10, 5), (25, 15)),
            ((20, 10, 5), (15, 5)),
            ((21, 10, 5), (16, 6)),
            ((30, 10, -1), (15, 5)),
            ((5, 1, -1), (2, 1)),
            ((5, 1, 2), (3, 2)),
            ((5, 1, 5), (0, -1)),
            ((15, 10, 5), (10, 0)),
            ((5, 1, 0), (5, 4)),
        ];
        for ((ttl, lw, m), (timeout, slack)) in cases {
            assert_eq!((t(ttl, lw, m).timeout(), t(ttl, lw, m).timing_slack()), (timeout, slack), "{ttl} {lw} {m}");
        }
    }

    #[test]
    fn health() {
        use WatchdogMode::*;
        let cases = [
            (Off, t(5, 1, 5), false, true),
            (Automatic, t(5, 1, 5), false, true),
            (Required, t(5, 1, 5), true, false),
            (Required, t(5, 1, 2), false, false),
            (Required, t(5, 1, 2), true, true),
            (Required, t(30, 10, 5), true, true),
        ];
        for (mode, timing, device, want) in cases {
            assert_eq!(watchdog_is_healthy(mode, &timing, device), want, "{mode:?} {timing:?} {device}");
        }
        assert!(WatchdogState::Off.is_healthy());
        assert!(WatchdogState::Active.is_healthy());
        assert!(!WatchdogState::Inactive { healthy: false }.is_healthy());
    }

    #[test]
    fn mode_names() {
        assert_eq!(WatchdogMode::from_config("required"), WatchdogMode::Required);
        assert_eq!(WatchdogMode::from_config("automatic"), WatchdogMode::Automatic);
        assert_eq!(WatchdogMode::from_config("off"), WatchdogMode::Off);
    }

    #[test]
    fn no_slack_is_not_opened() {
        assert_eq!(should_open(&t(30, 10, 5)), None);
        assert_eq!(
            should_open(&t(5, 1, 5)),
            Some((Level::Warn, "Watchdog not supported because leader TTL 5 is less than 2x loop_wait 1".into()))
        );
    }

    #[test]
    fn activation_verdicts() {
        use WatchdogMode::*;
        let opened =
            |actual, can_be_disabled| Probe::Opened { device: "dev".into(), actual_timeout: actual, can_be_disabled };
        let failed = Probe::Failed { device: "dev".into(), error: "boom".into() };
        // (mode, timing, probe) -> (ok, keep_open, the last line logged)
        type Case = (WatchdogMode, WatchdogTiming, Probe, bool, bool, Option<&'static str>);
        let cases: Vec<Case> = vec![
            (Automatic, t(30, 10, 5), opened(25, true), true, true, Some("dev activated with 25 second timeout, timing slack 15 seconds")),
            (Required, t(30, 10, 5), opened(25, true), true, true, Some("dev activated with 25 second timeout, timing slack 15 seconds")),
            (Required, t(5, 1, 2), opened(3, true), true, true, Some("dev activated with 3 second timeout, timing slack 2 seconds")),
            (Automatic, t(30, 10, 5), Probe::Null, true, false, None),
            (Required, t(30, 10, 5), Probe::Null, false, false, Some("Configuration requires watchdog, but watchdog could not be configured.")),
            (Automatic, t(30, 10, 5), failed.clone(), true, false, None),
            (Required, t(30, 10, 5), failed, false, false, Some("Configuration requires watchdog, but watchdog could not be configured.")),
            // The device kept a longer timeout than asked for.
            (Automatic, t(30, 10, 5), opened(60, true), true, true, Some("dev activated with 60 second timeout, timing slack 15 seconds")),
            (Required, t(30, 10, 5), opened(60, true), false, false, Some("Configuration requires watchdog, but a safe watchdog timeout 25 could not be configured. Watchdog timeout is 60.")),
            // Shorter than loop_wait: closed when it can be.
            (Automatic, t(30, 10, 5), opened(5, true), true, false, Some("Disabling watchdog due to unsafe timeout.")),
            (Required, t(30, 10, 5), opened(5, true), false, false, Some("Configuration requires watchdog, but watchdog could not be configured.")),
            (Automatic, t(30, 10, 5), opened(5, false), true, true, Some("dev activated with 5 second timeout, timing slack 15 seconds")),
        ];
        for (mode, timing, probe, ok, keep, last) in cases {
            let a = activation(mode, &timing, &probe);
            assert_eq!((a.ok, a.keep_open), (ok, keep), "{mode:?} {timing:?} {probe:?}: {:?}", a.log);
            assert_eq!(a.log.last().map(|(_, l)| l.as_str()), last, "{mode:?} {timing:?} {probe:?}: {:?}", a.log);
        }
        let a = activation(Automatic, &t(30, 10, 5), &opened(60, true));
        assert!(a.log.iter().any(|(l, s)| *l == Level::Warn
            && s == "Watchdog timeout 60 seconds does not ensure safe termination within 25 seconds"));
        let a = activation(Automatic, &t(30, 10, 5), &opened(25, false));
        assert!(a
            .log
            .iter()
            .any(|(l, s)| *l == Level::Warn && s.starts_with("Watchdog implementation can't be disabled")));
    }

    #[test]
    fn keepalive_order() {
        // (now, lease end, timeout) -> before the renewal?
        let cases = [
            (100.0, Some(105.0), 3, true),
            (101.0, Some(105.0), 3, true),
            (102.0, Some(105.0), 3, true),
            (102.5, Some(105.0), 3, false),
            (110.0, Some(130.0), 25, false),
            (100.0, None, 3, false),
        ];
        for (now, end, timeout, want) in cases {
            assert_eq!(keepalive_before_renewal(now, end, timeout), want, "{now} {end:?} {timeout}");
        }
    }
}
