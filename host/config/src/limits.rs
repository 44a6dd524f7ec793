//! The upper bound on durations read from outside (the YAML, the
//! environment, the DCS `config` key, REST bodies).
//!
//! Patroni reads these as Python integers, which have no upper bound;
//! palisade keeps them as [`Duration`]s that are added to clocks and
//! multiplied, so a value beyond [`MAX_SECONDS`] is clamped to it with a
//! warning naming the key. One year is far above any timing that makes
//! sense for a cluster and far below where clock arithmetic could overflow.

use std::time::Duration;

/// The longest duration palisade accepts anywhere: one year, in seconds.
pub const MAX_SECONDS: u64 = 365 * 24 * 3600;

/// [`MAX_SECONDS`] as a [`Duration`].
pub const MAX_DURATION: Duration = Duration::from_secs(MAX_SECONDS);

/// `seconds` (not negative) as a [`Duration`], clamped to [`MAX_SECONDS`];
/// `true` when it was clamped.
pub fn seconds(seconds: u64) -> (Duration, bool) {
    if seconds > MAX_SECONDS {
        (MAX_DURATION, true)
    } else {
        (Duration::from_secs(seconds), false)
    }
}

/// Seconds as a float (a REST `timeout`, a wake-up time) as a [`Duration`]:
/// NaN and negatives are zero, too large or infinite values [`MAX_DURATION`].
pub fn seconds_f64(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        Duration::ZERO
    } else if seconds >= MAX_SECONDS as f64 {
        MAX_DURATION
    } else {
        Duration::from_secs_f64(seconds)
    }
}

/// The warning text for a clamped value.
pub fn clamped_message(value: impl std::fmt::Display) -> String {
    format!("{value} seconds is more than the maximum of {MAX_SECONDS} (one year); using {MAX_SECONDS}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_values_are_clamped() {
        let cases: [(u64, u64, bool); 5] = [
            (0, 0, false),
            (30, 30, false),
            (MAX_SECONDS, MAX_SECONDS, false),
            (MAX_SECONDS + 1, MAX_SECONDS, true),
            (u64::MAX, MAX_SECONDS, true),
        ];
        for (input, want, clamped) in cases {
            assert_eq!(seconds(input), (Duration::from_secs(want), clamped), "{input}");
        }
        let floats: [(f64, Duration); 8] = [
            (f64::NAN, Duration::ZERO),
            (-1.0, Duration::ZERO),
            (f64::NEG_INFINITY, Duration::ZERO),
            (0.0, Duration::ZERO),
            (1.5, Duration::from_millis(1500)),
            (1e308, MAX_DURATION),
            (f64::INFINITY, MAX_DURATION),
            (9.3e18, MAX_DURATION),
        ];
        for (input, want) in floats {
            assert_eq!(seconds_f64(input), want, "{input}");
        }
    }
}
