//! The leader race: who may take over, and whether anybody can.

use std::collections::BTreeMap;

use palisade_model::{Cluster, Failover, Member, Tags};

use crate::decide::{Ctx, Q};
use crate::input::{PeerStatus, Pg};
use crate::output::Ask;
use crate::sync::NameSet;

/// Members a failover or switchover could go to: every other member that
/// may promote and publishes an API URL; only the requested candidate when
/// a failover key names one (or everybody but it, with `exclude_candidate`).
/// With synchronous mode active (`sync_active`), only the synchronous
/// standbys, except for a manual failover (no leader named), which may go
/// to an asynchronous node.
pub fn failover_candidates<'c>(
    cluster: &'c Cluster,
    me: &str,
    failover: Option<&Failover>,
    exclude_candidate: bool,
    sync_active: bool,
) -> Vec<&'c Member> {
    let candidate = failover.and_then(|f| f.candidate.as_deref());
    let manual_failover = failover.is_some_and(|f| f.leader.is_none());
    cluster
        .members
        .iter()
        .filter(|m| !sync_active || cluster.sync.matches(&m.name, false) || manual_failover)
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

    /// Synchronous replication is requested and the leader has claimed the
    /// `sync` key (Patroni's `sync_mode_is_active`).
    pub fn sync_mode_is_active(&self) -> bool {
        self.i.settings.sync.is_on() && !self.i.cluster.sync.is_empty()
    }

    /// The same for quorum commit (`quorum_commit_mode_is_active`).
    pub fn quorum_commit_mode_is_active(&self) -> bool {
        self.i.settings.sync.is_quorum() && !self.i.cluster.sync.is_empty()
    }

    /// Whether this node may take part in a race in synchronous mode: a
    /// synchronous standby or the former leader, named in `sync`.
    pub fn in_sync_key(&self) -> bool {
        self.i.cluster.sync.matches(self.me(), true)
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
        let sync_active = self.sync_mode_is_active();
        let candidates: Vec<String> =
            failover_candidates(c, self.me(), c.failover.as_ref(), exclude_candidate, sync_active)
                .into_iter()
                .map(|m| m.name.clone())
                .collect();
        let action = self.failover_action_name();
        let requested = c.failover.as_ref().and_then(|f| f.candidate.clone());
        if candidates.is_empty() {
            match &requested {
                Some(candidate) if self.i.settings.sync.is_on() => {
                    let standbys =
                        if c.sync.sync_standby.is_empty() { "None".to_string() } else { c.sync.sync_standby.join(",") };
                    self.warn(format!(
                        "{} candidate={candidate} does not match with sync_standbys={standbys}",
                        py_title(action)
                    ));
                }
                _ => self.warn(format!("{action}: candidates list is empty")),
            }
        }
        let statuses = self.peers(&candidates)?;
        let cluster_timeline = c.timeline();
        let mut votes: i64 = -1;
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
                votes += 1;
            }
        }
        // In quorum commit enough healthy quorum members must remain, unless
        // a candidate was requested.
        let check_quorum = (exclude_candidate || requested.is_none()) && self.quorum_commit_mode_is_active();
        if check_quorum && votes < i64::from(c.sync.quorum) {
            self.info(format!("Quorum requirement {} can not be reached", c.sync.quorum));
            return Ok(false);
        }
        Ok(votes >= 0)
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
        if let Some(f) = &c.failover {
            // In a switchover in synchronous mode only synchronous nodes and
            // the former leader may race.
            if f.leader.is_some() && self.sync_mode_is_active() && !self.in_sync_key() {
                return Ok(false);
            }
            return Ok(self.manual_failover_no_leader()?.unwrap_or(false));
        }
        if !l.watchdog.is_healthy() {
            self.warn("Watchdog device is not usable");
            return Ok(false);
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
        let mut members: Vec<&Member> = members.into_values().collect();
        if self.sync_mode_is_active() {
            // In quorum commit nodes outside the voters may race: they need
            // enough votes. Otherwise only the nodes named in `sync`.
            if !self.i.settings.sync.is_quorum() && !self.in_sync_key() {
                return Ok(false);
            }
            members.retain(|m| c.sync.matches(&m.name, true));
        }
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
        if self.i.settings.check_timeline && !self.i.settings.standby_cluster {
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
        let quorum_active = self.quorum_commit_mode_is_active();
        let (quorum, voting) = if quorum_active {
            (i64::from(c.sync.quorum), c.sync.members().into_iter().collect::<NameSet>())
        } else {
            (0, NameSet::new())
        };
        // In quorum commit voters tagged nofailover are asked too.
        let names: Vec<String> = members
            .iter()
            .filter(|m| m.name != me && m.api_url().is_some() && (!m.nofailover() || voting.contains(&m.name)))
            .map(|m| m.name.clone())
            .collect();
        let my_priority = self.i.me.tags().failover_priority();
        let mut votes: i64 = if voting.contains(me) { 0 } else { -1 };
        let mut nodes_ahead = 0;
        let sync_active = self.sync_mode_is_active();
        let leader_name = if sync_active { c.sync.leader.as_deref() } else { old_leader };
        for st in self.peers(&names)? {
            if st.failover_limitation().is_some() {
                continue;
            }
            if st.in_recovery == Some(false) {
                self.warn(format!("Primary ({}) is still alive", st.name));
                return Ok(false);
            }
            if my_wal < st.wal_position {
                nodes_ahead += 1;
                self.info(format!("Wal position of {} is ahead of my wal position", st.name));
                // The former leader may still answer, and be ahead of us.
                if !sync_active || !c.sync.leader_matches(&st.name) {
                    return Ok(false);
                }
                self.info("Ignoring the former leader being ahead of us");
            } else if st.wal_position > 0 {
                let quorum_vote = voting.contains(&st.name);
                let their_priority = Tags(&st.tags).failover_priority();
                let mut low_priority = my_wal == st.wal_position && my_priority < their_priority;
                if low_priority && leader_name == Some(st.name.as_str()) {
                    self.info(format!(
                        "Ignoring former leader {} having priority {their_priority} higher than this nodes {my_priority} priority",
                        st.name
                    ));
                    low_priority = false;
                }
                if low_priority && (!quorum_active || quorum_vote) {
                    self.info(format!(
                        "{} has equally tolerable WAL position and priority {their_priority}, while this node has priority {my_priority}",
                        st.name
                    ));
                    return Ok(false);
                }
                if quorum_vote {
                    self.info(format!("Got quorum vote from {}", st.name));
                    votes += 1;
                }
            }
        }
        // The former leader is counted healthy even alone; others need a quorum.
        Ok(!quorum_active || votes >= quorum || (nodes_ahead == 0 && c.sync.leader.as_deref() == Some(me)))
    }
}

/// Python's `str.title()` for the action names (`manual failover` ->
/// `Manual Failover`).
fn py_title(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
        })
        .collect::<Vec<String>>()
        .join(" ")
}
