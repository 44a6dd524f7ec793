//! `log.deduplicate_heartbeat_logs`: the HA loop's heartbeat line
//! (`no action. I am (node1), the leader with the lock`, or one starting
//! `PAUSE: no action`) is logged once while it stays the same, as Patroni's
//! log thread does. As there, this applies only when the log level is
//! exactly INFO (at DEBUG every line is shown), and a cycle that logs
//! anything else, or ends with another line, starts afresh: the next
//! heartbeat is logged even if it equals the last one.

/// Patroni's `_is_heartbeat_msg`.
pub fn is_heartbeat(line: &str) -> bool {
    line.starts_with("no action. ") || line.starts_with("PAUSE: no action")
}

/// The last heartbeat logged, to fold repeats.
#[derive(Debug, Default)]
pub struct HeartbeatFilter {
    last: Option<String>,
}

impl HeartbeatFilter {
    /// Whether to log `reason`, a cycle's last line; `other_lines` says the
    /// cycle logged lines before it; `enabled` is the setting at level INFO.
    pub fn should_log(&mut self, reason: &str, other_lines: bool, enabled: bool) -> bool {
        if !is_heartbeat(reason) || other_lines {
            self.last = is_heartbeat(reason).then(|| reason.to_string());
            return true;
        }
        if enabled && self.last.as_deref() == Some(reason) {
            return false;
        }
        self.last = Some(reason.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: &str = "no action. I am (n1), the leader with the lock";
    const REPLICA: &str = "no action. I am (n2), a secondary, and following a leader (n1)";
    const PAUSED: &str = "PAUSE: no action. I am (n1), the leader with the lock";

    #[test]
    fn repeated_heartbeats_are_folded() {
        // (reason, other lines in the cycle, enabled, logged?)
        let cases: &[&[(&str, bool, bool, bool)]] = &[
            &[(LEADER, false, true, true), (LEADER, false, true, false), (LEADER, false, true, false)],
            &[(LEADER, false, false, true), (LEADER, false, false, true)],
            &[(LEADER, false, true, true), (REPLICA, false, true, true), (LEADER, false, true, true)],
            &[(LEADER, false, true, true), ("promoted self to leader", false, true, true), (LEADER, false, true, true)],
            &[(LEADER, false, true, true), (LEADER, true, true, true), (LEADER, false, true, false)],
            &[(PAUSED, false, true, true), (PAUSED, false, true, false)],
            &[("PAUSE: DCS is not accessible", false, true, true), ("PAUSE: DCS is not accessible", false, true, true)],
        ];
        for (n, case) in cases.iter().enumerate() {
            let mut f = HeartbeatFilter::default();
            for (i, (reason, other, enabled, want)) in case.iter().enumerate() {
                assert_eq!(f.should_log(reason, *other, *enabled), *want, "case {n}, line {i}: {reason}");
            }
        }
    }
}
