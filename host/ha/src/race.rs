//! The leader race: who may take over, and whether anybody can.

use std::collections::BTreeMap;

use palisade_model::{Cluster, Failover, Member, Tags};

use crate::decide::{Ctx, Q};
use crate::input::{PeerStatus, Pg};
use crate::output::Ask;

/// Members a failover or switchover could go to: every other member that
/// may promote and publishes an API URL; only the requested candidate when
/// a failover key names one (or everybody but it, with `exclude_candidate`).
pub fn failover_candidates<'c>(
    cluster: &'c Cluster,
    me: &str,
    failover: Option<&Failover>,
    exclude_candidate: bool,
) -> Vec<&'c Member> {
    let candidate = failover.and_then(|f| f.candidate.as_deref());
    cluster
        .members
        .iter()
        .filter(|m| m.name != me && !m.nofailover() && m.api_url().is_some())
        .filter(|m| match candidate {
            None => true,
            Some(c) if exclude_candidate => m.name != c,
            Some(c) => m.name == c,
        })
        .collect()
}

impl Ctx<'_> {
    /// Statuses of these members, asking for the ones not fetched yet.
    pub fn peers(&self, names: &[String]) -> Q<Vec<PeerStatus>> {
        let known = &self.i.answers.peers;
        let missing: Vec<String> = names.iter().filter(|n| !known.contains_key(*n)).cloned().collect();
        if !missing.is_empty() {
            return Err(Ask::PeerStatuses(missing));
        }
        Ok(names.iter().filter_map(|n| known.get(n).cloned()).collect())
    }

    /// Too far behind the leader's last known position to take over.
    pub fn is_lagging(&self, wal_position: u64) -> bool {
        self.i.cluster.status.last_lsn.saturating_sub(wal_position) > self.i.settings.maximum_lag_on_failover
    }

    fn failover_action_name(&self) -> &'static str {
        match &self.i.cluster.failover {
            None => "failover",
            Some(f) if f.leader.is_some() => "switchover",
            Some(_) => "manual failover",
        }
    }

    /// Is there a member, other than us, healthy enough to take over?
    /// `cluster_lsn` (when non-zero) is the position it must have reached.
    pub fn failover_possible(&mut self, cluster_lsn: u64, exclude_candidate: bool) -> Q<bool> {
        let c = self.i.cluster;
        let candidates: Vec<String> = failover_candidates(c, self.me(), c.failover.as_ref(), exclude_candidate)
            .into_iter()
            .map(|m| m.name.clone())
            .collect();
        if candidates.is_empty() {
            let action = self.failover_action_name();
            self.warn(format!("{action}: candidates list is empty"));
            return Ok(false);
        }
        let statuses = self.peers(&candidates)?;
        let cluster_timeline = c.timeline();
        let mut healthy = 0;
        for st in statuses {
            if let Some(why) = st.failover_limitation() {
                self.info(format!("Member {} is {why}", st.name));
            } else if (cluster_lsn > 0 && st.wal_position < cluster_lsn)
                || (cluster_lsn == 0 && self.is_lagging(st.wal_position))
            {
                self.info(format!("Member {} exceeds maximum replication lag", st.name));
            } else if self.i.settings.check_timeline && (st.timeline == 0 || st.timeline < cluster_timeline) {
                self.info(format!(
                    "Timeline {} of member {} is behind the cluster timeline {cluster_timeline}",
                    st.timeline, st.name
                ));
            } else {
                healthy += 1;
            }
        }
        Ok(healthy > 0)
    }

    /// Whether this node should race for the lock (Patroni's `is_healthiest_node`).
    pub fn is_healthiest_node(&mut self) -> Q<bool> {
        let l = self.i.local;
        let c = self.i.cluster;
        let s = self.i.settings;
        if self.i.now - l.released_leader_key_at < s.ttl {
            self.info("backoff: skip leader race after pre_promote script failure and releasing the lock voluntarily");
            return Ok(false);
        }
        let nofailover = self.i.me.tags().nofailover();
        if self.paused() && !nofailover {
            if let Some(f) = &c.failover {
                if f.scheduled_at.is_none() {
                    if let Some(v) = self.manual_failover_no_leader()? {
                        return Ok(v);
                    }
                }
            }
        }
        if l.pg == Pg::Starting {
            return Ok(false);
        }
        if l.pg.is_primary() {
            if self.paused() {
                let sysid = match &l.data_dir {
                    crate::input::DataDir::Initialized { sysid } => sysid.clone(),
                    _ => None,
                };
                return Ok(c.initialize.is_none() || c.initialize.is_some() && c.initialize == sysid);
            }
            let (_, my_timeline) = self.my_position()?;
            let my_timeline = my_timeline.unwrap_or(0);
            if my_timeline < c.timeline() {
                self.warn(format!("My timeline {my_timeline} is behind last known cluster timeline {}", c.timeline()));
                return Ok(false);
            }
            return Ok(true);
        }
        if self.paused() || nofailover {
            return Ok(false);
        }
        if c.failover.is_some() {
            return Ok(self.manual_failover_no_leader()?.unwrap_or(false));
        }
        // Race among the members we know now, those of the last snapshot
        // that had a leader (their keys may have expired with the leader's)
        // and, in failsafe mode, those of the `failsafe` key.
        let from_failsafe = match c.failsafe.as_ref().filter(|_| s.failsafe_mode) {
            Some(key) if !key.is_empty() && !key.contains_key(self.me()) => {
                self.info("not racing: the failsafe topology does not name this member");
                return Ok(false);
            }
            Some(key) => crate::failsafe::failsafe_members(key),
            None => Vec::new(),
        };
        let mut members: BTreeMap<&str, &Member> = BTreeMap::new();
        for m in self.i.old_members.iter().chain(from_failsafe.iter()).chain(c.members.iter()) {
            members.insert(&m.name, m);
        }
        let members: Vec<&Member> = members.into_values().collect();
        self.healthiest_among(&members, true, self.i.old_leader)
    }

    /// Patroni's `_is_healthiest_node`: no reachable member that may promote
    /// is a primary, ahead of us, or as far as us with a higher priority.
    pub fn healthiest_among(&mut self, members: &[&Member], check_lag: bool, old_leader: Option<&str>) -> Q<bool> {
        let c = self.i.cluster;
        let (my_wal, my_timeline) = self.my_position()?;
        if check_lag && self.is_lagging(my_wal) {
            self.info("My wal position exceeds maximum replication lag");
            return Ok(false);
        }
        if self.i.settings.check_timeline {
            match my_timeline {
                None => {
                    self.info("Can not figure out my timeline");
                    return Ok(false);
                }
                Some(t) if t < c.timeline() => {
                    self.info(format!("My timeline {t} is behind last known cluster timeline {}", c.timeline()));
                    return Ok(false);
                }
                Some(_) => {}
            }
        }
        let me = self.me();
        let names: Vec<String> = members
            .iter()
            .filter(|m| m.name != me && m.api_url().is_some() && !m.nofailover())
            .map(|m| m.name.clone())
            .collect();
        let my_priority = self.i.me.tags().failover_priority();
        for st in self.peers(&names)? {
            if st.failover_limitation().is_some() {
                continue;
            }
            if st.in_recovery == Some(false) {
                self.warn(format!("Primary ({}) is still alive", st.name));
                return Ok(false);
            }
            if my_wal < st.wal_position {
                self.info(format!("Wal position of {} is ahead of my wal position", st.name));
                return Ok(false);
            }
            if st.wal_position > 0 {
                let their_priority = Tags(&st.tags).failover_priority();
                let mut low_priority = my_wal == st.wal_position && my_priority < their_priority;
                if low_priority && old_leader == Some(st.name.as_str()) {
                    self.info(format!(
                        "Ignoring former leader {} having priority {their_priority} higher than this nodes {my_priority} priority",
                        st.name
                    ));
                    low_priority = false;
                }
                if low_priority {
                    self.info(format!(
                        "{} has equally tolerable WAL position and priority {their_priority}, while this node has priority {my_priority}",
                        st.name
                    ));
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}
