//! Following a leader: whom to stream from, and what to change.

use palisade_model::Role;

use crate::decide::{Ctx, Q};
use crate::output::{Action, Decision, DemoteMode};

impl Ctx<'_> {
    /// The member to stream from: the `replicatefrom` member when it
    /// exists, else the leader; nobody with `nostream`, and never ourselves.
    pub fn node_to_follow(&self) -> Option<String> {
        let me = self.i.me;
        let c = self.i.cluster;
        if me.tags().nostream() {
            return None;
        }
        let target = match me.tags().replicatefrom() {
            Some(from) if from != me.name => {
                c.member(from).map(|m| m.name.clone()).or_else(|| c.leader_name().map(String::from))
            }
            _ => c.leader_name().map(String::from),
        };
        target.filter(|t| t != &me.name)
    }

    /// In a standby cluster, the standby leader, and every member while
    /// the cluster has no leader (unless paused), replicate from the remote
    /// primary (Patroni's `_get_node_to_follow`). `nostream` still wins.
    pub fn follows_remote(&self) -> bool {
        self.i.settings.standby_cluster
            && !self.i.me.tags().nostream()
            && (self.has_lock() || self.i.cluster.is_unlocked() && !self.paused())
    }

    /// Run as a replica of the right member: demote a primary, or point
    /// recovery at the member to follow (the remote primary for a standby
    /// cluster's leader).
    pub fn follow(&mut self, demote_reason: &str, follow_reason: &str) -> Q<Decision> {
        let l = self.i.local;
        if self.follows_remote() && !(self.paused() && l.pg.is_primary()) {
            return Ok(self.follow_remote(demote_reason, follow_reason));
        }
        let target = self.node_to_follow();
        if self.paused() {
            if l.pg.is_primary() {
                let mut d = Decision::new("continue to run as primary without lock");
                if l.role != Role::Primary {
                    d = d.with(Action::SetRole(Role::Primary));
                }
                return Ok(d);
            }
            if l.role != Role::StandbyLeader && l.role != Role::Replica {
                self.pre.push(Action::SetRole(Role::Replica));
            }
            if target.is_none() {
                return Ok(Decision::new(format!("no action. I am ({})", self.me())));
            }
        } else if l.pg.is_primary() {
            return Ok(Decision::new(demote_reason).with(Action::Demote(DemoteMode::ImmediateNolock)));
        }
        // A running replica whose timeline diverged from the leader's
        // (it replayed WAL past the switch point): rewind or copy it again
        // (Patroni's `_handle_rewind_or_reinitialize` in `follow`).
        if !self.paused() {
            if let Some(d) = self.rewind_or_reinitialize() {
                return Ok(d);
            }
        }
        let reachable = target.as_ref().and_then(|t| self.i.cluster.member(t)).is_some_and(|m| m.conn_url().is_some());
        if self.i.settings.standby_cluster && !reachable {
            // The leader key names a member without a usable key: keep the
            // recovery configuration we have (Patroni's words).
            return Ok(Decision::new("continue following the old known standby leader"));
        }
        let mut d = Decision::new(follow_reason);
        if l.role != Role::Replica && (l.role != Role::StandbyLeader || !self.paused()) {
            // A standby leader that lost the lock is a plain replica again.
            d = d.with(Action::SetRole(Role::Replica));
        }
        // Without a leader there is nobody better to stream from: keep the
        // old primary_conninfo until somebody takes the lock.
        if l.following != target && (target.is_some() || !self.i.cluster.is_unlocked()) {
            d = d.with(Action::Follow { leader: target });
        }
        Ok(d)
    }

    /// Replicate from the remote primary of the standby cluster: a primary
    /// demotes into the standby leader (`demote-cluster`); recovery is
    /// pointed at the remote once, and again whenever the `standby_cluster`
    /// settings change (the runner forgets `following_remote` then).
    fn follow_remote(&mut self, demote_reason: &str, follow_reason: &str) -> Decision {
        let l = self.i.local;
        // The lock may have been won in this very cycle.
        let standby_leader = self.has_lock() || self.i.answers.acquire_lock == Some(true);
        if l.pg.is_primary() {
            return Decision::new(demote_reason).with(Action::Demote(DemoteMode::DemoteCluster));
        }
        let mut d = Decision::new(follow_reason);
        let role = if standby_leader { Role::StandbyLeader } else { Role::Replica };
        if !l.following_remote {
            return d.with(Action::FollowRemote { standby_leader });
        }
        if l.role != role {
            d = d.with(Action::SetRole(role));
        }
        d
    }
}
