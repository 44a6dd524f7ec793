//! Restarts asked for through the REST API: the filters a restart request
//! may carry, and scheduled restarts (Patroni's `restart_matches` and
//! `evaluate_scheduled_restart`).

use palisade_model::values::ScheduledAt;
use palisade_model::Role;

use crate::decide::Ctx;
use crate::input::Local;
use crate::output::{Action, Decision};

/// The filters of a restart request (`POST /restart`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestartFilter {
    /// Restart only a node in this role (`primary`, `replica`, `standby_leader`).
    pub role: Option<String>,
    /// Restart only a server older than this version (`15.2`).
    pub postgres_version: Option<String>,
    /// Restart only when PostgreSQL says a restart is pending.
    pub restart_pending: bool,
}

/// A restart scheduled for later, as this node publishes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledRestart {
    pub at: ScheduledAt,
    pub filter: RestartFilter,
    /// How long the restart may take before it counts as failed.
    pub timeout: Option<f64>,
    /// `pg_postmaster_start_time()` when the restart was scheduled: when it
    /// changed, a restart already happened and the schedule is dropped.
    pub postmaster_start_time: Option<String>,
}

/// Patroni's `postgres_version_to_int`: `9.6.24` -> 90624, `15.2` -> 150002.
///
/// As in Python, each part is read by `int()` (spaces, a sign and `_`
/// between digits allowed) and the parts are joined as two-digit (or
/// longer) numbers: `15.123` -> 1500123. Python's integers have no bound;
/// a result beyond `i64` saturates, which keeps every comparison with a
/// real server version as Python makes it. A negative part after the first
/// makes the joined text no number (Patroni fails there): refused.
pub fn postgres_version_to_int(version: &str) -> Result<i64, String> {
    let invalid = || format!("Invalid PostgreSQL version: {version}");
    let mut parts: Vec<(bool, String)> = Vec::new();
    for part in version.split('.') {
        parts.push(python_int(part).ok_or_else(invalid)?);
    }
    if parts.len() < 2 || (parts.len() == 2 && is_below_ten(&parts[0])) || parts.len() > 3 {
        return Err(format!("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {version}"));
    }
    if parts.len() == 2 {
        parts.insert(1, (false, "0".into()));
    }
    if parts.iter().skip(1).any(|(negative, _)| *negative) {
        return Err(invalid());
    }
    let negative = parts[0].0;
    let digits: String = parts.iter().map(|(_, d)| format!("{d:0>2}")).collect();
    let magnitude = digits.trim_start_matches('0');
    let value = match magnitude.parse::<i64>() {
        Ok(v) => v,
        Err(_) if magnitude.is_empty() => 0,
        Err(_) => i64::MAX,
    };
    Ok(if negative { -value } else { value })
}

/// Python's `int(text)` for a decimal text: the sign and the digits
/// (without leading zeros, `_` removed), or `None` when Python refuses it.
fn python_int(text: &str) -> Option<(bool, String)> {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let bytes = digits.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes[0].is_ascii_digit()
        && bytes[bytes.len() - 1].is_ascii_digit()
        && bytes.iter().all(|b| b.is_ascii_digit() || *b == b'_')
        && !digits.contains("__");
    if !well_formed {
        return None;
    }
    let clean: String = digits.chars().filter(char::is_ascii_digit).collect();
    let clean = clean.trim_start_matches('0');
    let clean = if clean.is_empty() { "0".to_string() } else { clean.to_string() };
    Some((negative && clean != "0", clean))
}

fn is_below_ten((negative, digits): &(bool, String)) -> bool {
    *negative || digits.len() < 2
}

/// Why this node must not restart for `filter`, or `None` (Patroni's
/// `restart_matches`; the last failing condition wins, as there).
pub fn restart_refusal(filter: &RestartFilter, local: &Local) -> Option<&'static str> {
    let mut reason = None;
    if let Some(role) = filter.role.as_deref() {
        let mine = match local.role {
            Role::Promoted => Role::Primary,
            Role::Demoted => Role::Replica,
            r => r,
        };
        if Role::parse(role) != Some(mine) {
            reason = Some("host role mismatch");
        }
    }
    if let Some(v) = filter.postgres_version.as_deref() {
        if let (Ok(wanted), Some(have)) = (postgres_version_to_int(v), local.server_version) {
            if wanted <= i64::from(have) {
                reason = Some("postgres version mismatch");
            }
        }
    }
    if filter.restart_pending && !local.pending_restart {
        reason = Some("pending restart flag is not set");
    }
    reason
}

impl Ctx<'_> {
    /// Patroni's `evaluate_scheduled_restart`: restart when the schedule is
    /// due and the filters match; drop a schedule a restart made moot.
    pub fn scheduled_restart(&mut self) -> Option<Decision> {
        let s = self.i.scheduled_restart?;
        let l = self.i.local;
        if l.task.is_some() {
            return None;
        }
        if let (Some(now), Some(then)) = (&l.postmaster_start_time, &s.postmaster_start_time) {
            if now != then {
                self.info(format!("Cancelling scheduled restart: postgres restart has already happened at {now}"));
                self.pre.push(Action::DeleteScheduledRestart);
                return None;
            }
        }
        if !self.scheduled_action_due("restart", &s.at, Action::DeleteScheduledRestart) {
            return None;
        }
        // The schedule is used up either way.
        if let Some(why) = restart_refusal(&s.filter, l) {
            self.info(format!("not proceeding with the restart: {why}"));
            self.warn("Scheduled restart: restart conditions are not satisfied");
            self.pre.push(Action::DeleteScheduledRestart);
            return None;
        }
        Some(
            Decision::new("restart initiated")
                .with(Action::DeleteScheduledRestart)
                .with(Action::Restart { timeout: s.timeout }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let cases = [
            ("9.5.3", Ok(90503)),
            ("9.3.13", Ok(90313)),
            ("10.1", Ok(100001)),
            ("15.2", Ok(150002)),
            ("10", Err("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10")),
            ("9.6", Err("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6")),
            ("1.2.3.4", Err("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 1.2.3.4")),
            ("a.b.c", Err("Invalid PostgreSQL version: a.b.c")),
            ("", Err("Invalid PostgreSQL version: ")),
            // What Python's int() and the joining make of odd input.
            ("15.123", Ok(1500123)),
            (" 15 . +2 ", Ok(150002)),
            ("1_5.2", Ok(150002)),
            ("015.02", Ok(150002)),
            ("-15.2", Err("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: -15.2")),
            ("-15.0.2", Ok(-150002)),
            ("9.-6.1", Err("Invalid PostgreSQL version: 9.-6.1")),
            ("1__5.2", Err("Invalid PostgreSQL version: 1__5.2")),
            ("_15.2", Err("Invalid PostgreSQL version: _15.2")),
            ("15.2e3", Err("Invalid PostgreSQL version: 15.2e3")),
            ("15.NaN", Err("Invalid PostgreSQL version: 15.NaN")),
            ("15.inf", Err("Invalid PostgreSQL version: 15.inf")),
            ("4294967296.0", Ok(42949672960000)),
            ("9223372036854775808.1", Ok(i64::MAX)),
            ("99999999999999999999999999999.99.99", Ok(i64::MAX)),
            ("-99999999999999999999999999999.1.0", Ok(-i64::MAX)),
            ("0.0.0", Ok(0)),
        ];
        for (text, expected) in cases {
            assert_eq!(postgres_version_to_int(text), expected.map_err(String::from), "{text}");
        }
    }

    #[test]
    fn filters() {
        let local =
            Local { role: Role::Replica, server_version: Some(150018), pending_restart: false, ..Local::default() };
        let f = |role: Option<&str>, v: Option<&str>, pending: bool| RestartFilter {
            role: role.map(String::from),
            postgres_version: v.map(String::from),
            restart_pending: pending,
        };
        let cases = [
            (f(None, None, false), None),
            (f(Some("replica"), None, false), None),
            (f(Some("primary"), None, false), Some("host role mismatch")),
            (f(Some("master"), None, false), Some("host role mismatch")),
            (f(None, Some("16.0"), false), None),
            (f(None, Some("15.18"), false), Some("postgres version mismatch")),
            (f(None, Some("14.1"), false), Some("postgres version mismatch")),
            (f(None, None, true), Some("pending restart flag is not set")),
        ];
        for (filter, expected) in cases {
            assert_eq!(restart_refusal(&filter, &local), expected, "{filter:?}");
        }
        let pending = Local { pending_restart: true, ..local };
        assert_eq!(restart_refusal(&f(None, None, true), &pending), None);
    }
}
