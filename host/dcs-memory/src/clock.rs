//! The time leases expire by: the system's monotonic clock, or one a test
//! moves by hand.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A monotonic clock: time passed since an origin of its own.
pub trait Clock: Send + Sync {
    fn now(&self) -> Duration;
}

/// `Instant::now()`, counted from the clock's creation.
pub struct SystemClock(Instant);

impl SystemClock {
    pub fn new() -> Self {
        Self(Instant::now())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it.
#[derive(Default)]
pub struct ManualClock(Mutex<Duration>);

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now = now.saturating_add(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
