//! When an operation has to be done by: every etcd operation is bounded by
//! `retry_timeout`, and one attempt gets part of it so a request stuck on a
//! dead connection leaves time for another try.

use std::time::{Duration, Instant};

/// The first pause between two attempts; it doubles up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest pause between two attempts (Patroni's `max_delay=1`).
pub const MAX_DELAY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub deadline: Instant,
    pub retry_timeout: Duration,
}

impl Budget {
    pub fn new(retry_timeout: Duration) -> Self {
        Self { deadline: Instant::now() + retry_timeout, retry_timeout }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// One attempt may take half the budget (at least a second), never more
    /// than what is left.
    pub fn attempt_timeout(&self) -> Duration {
        (self.retry_timeout / 2).max(Duration::from_secs(1)).min(self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_get_half_the_budget_at_least_a_second() {
        let b = Budget::new(Duration::from_secs(10));
        assert!(b.attempt_timeout() <= Duration::from_secs(5));
        assert!(b.attempt_timeout() > Duration::from_secs(4));
        let short = Budget::new(Duration::from_millis(1500));
        assert!(short.attempt_timeout() <= Duration::from_millis(1500));
        assert!(short.attempt_timeout() > Duration::from_millis(900));
        let spent = Budget { deadline: Instant::now(), retry_timeout: Duration::from_secs(10) };
        assert!(spent.attempt_timeout().is_zero());
    }
}
