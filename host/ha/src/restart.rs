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
pub fn postgres_version_to_int(version: &str) -> Result<u32, String> {
    let parts: Result<Vec<u32>, _> = version.split('.').map(str::parse::<u32>).collect();
    let Ok(mut parts) = parts else {
        return Err(format!("Invalid PostgreSQL version: {version}"));
    };
    if parts.len() < 2
        || (parts.len() == 2 && parts[0] < 10)
        || parts.len() > 3
        || parts.iter().skip(1).any(|p| *p > 99)
    {
        return Err(format!("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {version}"));
    }
    if parts.len() == 2 {
        parts.insert(1, 0);
    }
    Ok(parts[0] * 10000 + parts[1] * 100 + parts[2])
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
            if wanted <= have {
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
