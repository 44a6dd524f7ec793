//! The faults a campaign injects, drawn from its seed.
//!
//! Every fault is drawn with the same number of draws from the tests'
//! seeded SplitMix64 generator (`palisade_test_support::python::Rng`),
//! whatever the cluster's state, so one seed always gives the same
//! sequence of faults (the same kinds, targets, durations and pauses).
//! A fault aims at a role (the primary, or the first or second replica by
//! name), which is resolved against the cluster when it is injected.

use std::time::Duration;

pub use palisade_test_support::python::Rng;

/// A duration between `low` and `high` milliseconds.
fn millis(rng: &mut Rng, low: u64, high: u64) -> Duration {
    Duration::from_millis(low + rng.below((high.saturating_sub(low) + 1) as usize) as u64)
}

/// Which node a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aim {
    Primary,
    /// The first (0) or second (1) replica, by name.
    Replica(usize),
}

impl std::fmt::Display for Aim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Aim::Primary => write!(f, "the primary"),
            Aim::Replica(i) => write!(f, "replica #{}", i + 1),
        }
    }
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// kill -9 of the daemon, started again after `restart_after` (as
    /// systemd would).
    KillDaemon { restart_after: Duration },
    /// kill -9 of the postmaster; the daemon starts it again.
    KillPostmaster,
    /// kill -9 of both; the daemon is started again after `restart_after`.
    KillBoth { restart_after: Duration },
    /// SIGSTOP of the daemon, SIGCONT after `hold` (shorter or longer than ttl).
    StopDaemon { hold: Duration },
    /// SIGSTOP of the postmaster, SIGCONT after `hold`.
    StopPostmaster { hold: Duration },
    /// The DCS stopped, started again after `hold`.
    DcsStop { hold: Duration },
    /// The DCS frozen (SIGSTOP), thawed after `hold`.
    DcsFreeze { hold: Duration },
    /// The node's cluster link down for `hold`.
    Partition { hold: Duration },
    /// `POST /switchover` to the primary.
    Switchover,
    /// `POST /restart` to the node.
    Restart,
    /// `PATCH /config` with a new `ttl`.
    SetTtl(u64),
    /// `PATCH /config` with a new `loop_wait`.
    SetLoopWait(u64),
}

impl Kind {
    /// Whether it hits one node (and so has an [`Aim`]).
    pub fn has_target(&self) -> bool {
        !matches!(self, Kind::DcsStop { .. } | Kind::DcsFreeze { .. } | Kind::SetTtl(_) | Kind::SetLoopWait(_))
    }
}

/// One fault as drawn: what, at whom, and the pause after it healed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub kind: Kind,
    pub aim: Aim,
    pub pause_after: Duration,
}

/// The ttl values a config fault chooses from (each at least
/// `loop_wait + 2 * retry_timeout` with the defaults 2 and 3).
pub const TTLS: [u64; 3] = [8, 10, 12];
/// The loop_wait values a config fault chooses from.
pub const LOOP_WAITS: [u64; 2] = [1, 2];

/// Draw the next fault for a cluster whose ttl is `ttl` seconds: always
/// five draws.
pub fn draw(rng: &mut Rng, ttl: u64) -> Plan {
    let t = ttl * 1000;
    let (kind_draw, aim_draw, hold_draw, pause_draw, value_draw) =
        (rng.below(20), rng.below(4), rng.next_u64(), rng.next_u64(), rng.next_u64());
    let (kind_draw, aim_draw) = (kind_draw as u64, aim_draw as u64);
    let mut hold = Rng::new(hold_draw);
    let kind = match kind_draw {
        0 | 1 => Kind::KillDaemon { restart_after: millis(&mut hold, 500, 5_000) },
        2 | 3 => Kind::KillPostmaster,
        4 | 5 => Kind::KillBoth { restart_after: millis(&mut hold, 500, 5_000) },
        // Shorter than ttl, then longer.
        6 => Kind::StopDaemon { hold: millis(&mut hold, t / 5, t * 7 / 10) },
        7 | 8 => Kind::StopDaemon { hold: millis(&mut hold, t * 13 / 10, t * 5 / 2) },
        9 => Kind::StopPostmaster { hold: millis(&mut hold, 1_000, t) },
        10 => Kind::DcsStop { hold: millis(&mut hold, 2_000, t * 3 / 2) },
        11 => Kind::DcsFreeze { hold: millis(&mut hold, 2_000, t * 3 / 2) },
        12..=14 => Kind::Partition { hold: millis(&mut hold, t / 2, t * 3) },
        15 | 16 => Kind::Switchover,
        17 => Kind::Restart,
        18 => Kind::SetTtl(TTLS[(value_draw % TTLS.len() as u64) as usize]),
        _ => Kind::SetLoopWait(LOOP_WAITS[(value_draw % LOOP_WAITS.len() as u64) as usize]),
    };
    let aim = if aim_draw < 2 { Aim::Primary } else { Aim::Replica((aim_draw - 2) as usize) };
    let aim = if matches!(kind, Kind::Switchover) { Aim::Primary } else { aim };
    Plan { kind, aim, pause_after: millis(&mut Rng::new(pause_draw), 1_000, 4_000) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_faults_and_every_kind_comes_up() {
        let a: Vec<Plan> = {
            let mut r = Rng::new(42);
            (0..200).map(|_| draw(&mut r, 10)).collect()
        };
        let b: Vec<Plan> = {
            let mut r = Rng::new(42);
            (0..200).map(|_| draw(&mut r, 10)).collect()
        };
        assert_eq!(a, b);
        let c: Vec<Plan> = {
            let mut r = Rng::new(43);
            (0..200).map(|_| draw(&mut r, 10)).collect()
        };
        assert_ne!(a, c);
        let kinds: std::collections::BTreeSet<String> =
            a.iter().map(|p| format!("{:?}", p.kind).split([' ', '(', '{']).next().unwrap_or("").to_string()).collect();
        assert_eq!(kinds.len(), 12, "{kinds:?}");
        for p in &a {
            if let Kind::StopDaemon { hold } = p.kind {
                assert!(hold < Duration::from_secs(7) || hold > Duration::from_secs(13), "{hold:?}");
            }
            assert!(p.pause_after >= Duration::from_secs(1) && p.pause_after <= Duration::from_secs(4));
        }
    }

    #[test]
    fn the_ci_seed_draws_every_kind_of_fault_in_twenty() {
        let mut rng = Rng::new(118490);
        let mut ttl = 10;
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let plan = draw(&mut rng, ttl);
            if let Kind::SetTtl(t) = plan.kind {
                ttl = t;
            }
            kinds.insert(format!("{:?}", plan.kind).split([' ', '(', '{']).next().unwrap_or("").to_string());
        }
        assert_eq!(kinds.len(), 12, "{kinds:?}");
    }
}
