//! Switchover and manual failover requested through the `failover` key.

use palisade_model::values::{format_timestamp, ScheduledAt};
use palisade_model::Member;

use crate::decide::{Ctx, Q};
use crate::output::{Action, Decision, DemoteMode};

fn clear_failover() -> Action {
    Action::WriteFailoverKey { leader: None, candidate: None, keep_schedule: false }
}

fn title(action: &str) -> String {
    let mut chars = action.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Ctx<'_> {
    fn action_names(&self) -> (&'static str, &'static str) {
        match &self.i.cluster.failover {
            Some(f) if f.leader.is_some() => ("switchover", "switchover"),
            Some(_) => ("manual failover", "failover"),
            None => ("failover", "failover"),
        }
    }

    /// Whether a scheduled action is due now; cleans up stale or invalid
    /// schedules and wakes the loop at the scheduled time.
    pub fn scheduled_action_due(&mut self, bare_action: &str, scheduled_at: &ScheduledAt, cleanup: Action) -> bool {
        if self.paused() {
            return false;
        }
        match scheduled_at {
            ScheduledAt::Invalid(text) => {
                self.warn(format!("Incorrect value of scheduled_at: {text}"));
                self.pre.push(cleanup);
                false
            }
            ScheduledAt::At(at) => {
                let at_epoch = at.timestamp() as f64 + f64::from(at.timestamp_subsec_micros()) / 1e6;
                let delta = at_epoch - self.i.now;
                let loop_wait = self.i.settings.loop_wait;
                if delta > loop_wait {
                    self.info(format!("Awaiting {bare_action} at {} (in {delta:.0} seconds)", format_timestamp(at)));
                    self.wake_at = Some(at_epoch);
                    false
                } else if delta < -(loop_wait * 1.5).floor() {
                    self.warn(format!("Found a stale {bare_action} value, cleaning up: {}", format_timestamp(at)));
                    self.pre.push(cleanup);
                    false
                } else if delta > 0.0 {
                    // Close, but not yet: come back exactly on time.
                    self.wake_at = Some(at_epoch);
                    false
                } else {
                    self.info(format!("Manual scheduled {bare_action} at {}", format_timestamp(at)));
                    true
                }
            }
        }
    }

    /// On the leader: act on a switchover/failover request (Patroni's
    /// `process_manual_failover_from_leader`). `None` means "carry on".
    pub fn manual_failover_from_leader(&mut self) -> Q<Option<Decision>> {
        let Some(f) = self.i.cluster.failover.clone() else {
            return Ok(None);
        };
        if self.paused() && !self.i.local.pg.is_primary() {
            return Ok(None);
        }
        let (action, bare) = self.action_names();
        if let Some(at) = &f.scheduled_at {
            if !self.scheduled_action_due(bare, at, clear_failover()) {
                return Ok(None);
            }
        }
        let me = self.me();
        match f.leader.as_deref() {
            None | Some("") => self.manual_failover_from_this_leader(&f, action, bare),
            Some(l) if l == me => self.manual_failover_from_this_leader(&f, action, bare),
            Some(l) => {
                self.warn(format!("{action}: leader name does not match: {l} != {me}"));
                self.info("Cleaning up failover key");
                self.pre.push(clear_failover());
                Ok(None)
            }
        }
    }

    fn manual_failover_from_this_leader(
        &mut self,
        f: &palisade_model::Failover,
        action: &str,
        bare: &str,
    ) -> Q<Option<Decision>> {
        let me = self.me();
        if f.candidate.as_deref() != Some(me) {
            if f.candidate.is_none() && self.paused() {
                self.warn(format!("{} is possible only to a specific candidate in a paused state", title(action)));
            } else if self.failover_possible(0, false)? {
                return Ok(Some(
                    Decision::new(format!("{action}: demoting myself")).with(Action::Demote(DemoteMode::Graceful)),
                ));
            } else {
                self.warn(format!("{action}: no healthy members found, {bare} is not possible"));
            }
        } else {
            self.warn(format!("{action}: I am already the leader, no need to {bare}"));
        }
        self.info("Cleaning up failover key");
        self.pre.push(clear_failover());
        Ok(None)
    }

    /// Without a leader, during a requested switchover/failover: are we the
    /// member that should take over? `None` means "decide normally"
    /// (Patroni's `manual_failover_process_no_leader`).
    pub fn manual_failover_no_leader(&mut self) -> Q<Option<bool>> {
        let c = self.i.cluster;
        let Some(f) = c.failover.clone() else {
            return Ok(None);
        };
        let (action, _) = self.action_names();
        let me = self.me();
        if let Some(candidate) = f.candidate.as_deref() {
            if candidate == me {
                return Ok(Some(true));
            }
            if self.paused() {
                if !c.has_member(candidate) && self.i.local.pg.is_primary() {
                    self.warn(format!("{action}: removing failover key because failover candidate is not running"));
                    self.pre.push(clear_failover());
                    return Ok(None);
                }
                return Ok(Some(false));
            }
            // In synchronous mode (not quorum) a node not named in `sync`
            // does nothing, even when the candidate is unhealthy.
            let sync = &self.i.settings.sync;
            if sync.is_on() && !sync.is_quorum() && !self.in_sync_key() {
                return Ok(Some(false));
            }
            if c.has_member(candidate) {
                let st = self.peers(&[candidate.to_string()])?;
                match st.first().and_then(|s| s.failover_limitation()) {
                    None if !st.is_empty() => {
                        self.info(format!("{action}: to {candidate}, i am {me}"));
                        return Ok(Some(false));
                    }
                    Some(why) => self.warn(format!("{action}: member {candidate} is {why}")),
                    None => {}
                }
            }
            // The candidate cannot take over: consider every member.
        } else if self.paused() {
            return Ok(Some(false));
        }

        if let Some(leader) = f.leader.as_deref() {
            if leader == me {
                // We were the leader: step back in only if nobody else can.
                return Ok(Some(!self.failover_possible(0, f.candidate.is_some())?));
            }
        }
        // Not the former leader, and only synchronous nodes in synchronous mode.
        let sync_active = self.sync_mode_is_active();
        let members: Vec<&Member> = c
            .members
            .iter()
            .filter(|m| Some(m.name.as_str()) != f.leader.as_deref())
            .filter(|m| !sync_active || c.sync.matches(&m.name, false))
            .collect();
        Ok(Some(self.healthiest_among(&members, false, None)?))
    }
}
