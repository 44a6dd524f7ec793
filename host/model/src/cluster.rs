//! One snapshot of a cluster: the DCS keys, read (the host builds it from
//! the raw keys its DCS plugin returns).

use serde_json::{Map, Value};

use crate::member::Member;
use crate::values::{ClusterConfig, Failover, Status, SyncState, TimelineHistory};

/// The leader key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    pub name: String,
    pub version: String,
    pub session: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    pub initialize: Option<String>,
    pub config: Option<ClusterConfig>,
    pub leader: Option<Leader>,
    pub status: Status,
    /// Sorted by name.
    pub members: Vec<Member>,
    pub failover: Option<Failover>,
    pub sync: SyncState,
    pub history: Option<TimelineHistory>,
    /// `failsafe`: member name -> api_url; `None` when absent or unreadable.
    pub failsafe: Option<Map<String, Value>>,
}

impl Cluster {
    pub fn leader_name(&self) -> Option<&str> {
        self.leader.as_ref().map(|l| l.name.as_str())
    }

    pub fn is_unlocked(&self) -> bool {
        self.leader.is_none()
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    pub fn has_member(&self, name: &str) -> bool {
        self.member(name).is_some()
    }

    /// The leader's member key, when both exist.
    pub fn leader_member(&self) -> Option<&Member> {
        self.leader_name().and_then(|n| self.member(n))
    }

    /// Whom a new replica copies from: a running member tagged `clonefrom`
    /// (other than us and the leader), else the leader. `pick` chooses among
    /// several candidates (Patroni picks at random).
    pub fn clone_member(&self, exclude: &str, pick: usize) -> Option<&Member> {
        let candidates: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| {
                m.clonefrom() && m.is_running() && m.name != exclude && Some(m.name.as_str()) != self.leader_name()
            })
            .collect();
        if candidates.is_empty() {
            self.leader_member()
        } else {
            Some(candidates[pick % candidates.len()])
        }
    }

    /// The cluster's timeline according to the history: one past the last
    /// line, 1 for an empty history, 0 when unknown.
    pub fn timeline(&self) -> u32 {
        match &self.history {
            Some(h) if !h.lines.is_empty() => h.lines.last().map_or(0, |l| l.timeline.saturating_add(1)),
            Some(h) if h.valid => 1,
            _ => 0,
        }
    }

    /// The dynamic configuration, or an empty map.
    pub fn config_data(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.config.as_ref().map_or_else(|| EMPTY.get_or_init(Map::new), |c| &c.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_from_history() {
        let mut c = Cluster::default();
        assert_eq!(c.timeline(), 0);
        c.history = Some(TimelineHistory::from_value("1", "[]"));
        assert_eq!(c.timeline(), 1);
        c.history = Some(TimelineHistory::from_value("1", r#"[[1,1,"a"],[2,5,"b"]]"#));
        assert_eq!(c.timeline(), 3);
    }
}
