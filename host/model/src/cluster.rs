//! One snapshot of a cluster, built from the raw keys a DCS plugin returns.

use palisade_plugin_api::{DcsSnapshot, LeaderKey};
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

impl Leader {
    /// Back to the plugin's form, for compare-and-set calls.
    pub fn key(&self) -> LeaderKey {
        LeaderKey { name: self.name.clone(), version: self.version.clone(), session: self.session.clone() }
    }
}

/// A value in the snapshot that could not be read. The snapshot is still
/// usable: the value is skipped (members) or treated as empty (the rest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotProblem {
    /// The key, relative to the cluster's path (`members/n1`, `config`...).
    pub key: String,
    pub problem: String,
}

impl std::fmt::Display for SnapshotProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ignoring the value of DCS key '{}': {}", self.key, self.problem)
    }
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
    /// Build a cluster from raw keys. Values that cannot be read are left
    /// out and reported, so the caller can log them.
    pub fn from_snapshot(s: DcsSnapshot) -> (Self, Vec<SnapshotProblem>) {
        let mut problems = Vec::new();
        let mut members = Vec::new();
        for m in s.members {
            match Member::from_value(&m.name, &m.version, &m.session, &m.value) {
                Ok(member) => members.push(member),
                Err(problem) => problems.push(SnapshotProblem { key: format!("members/{}", m.name), problem }),
            }
        }
        members.sort_by(|a, b| a.name.cmp(&b.name));

        let config = s.config.map(|c| match ClusterConfig::from_value(&c.version, &c.value) {
            Ok(cfg) => cfg,
            Err(problem) => {
                problems.push(SnapshotProblem { key: "config".into(), problem });
                // Patroni keeps an empty config with the version, so that a
                // writer can still compare-and-set over the garbage.
                ClusterConfig { version: c.version, data: Map::new() }
            }
        });

        let leader = s.leader.filter(|l| !l.name.is_empty()).map(|l| Leader {
            name: l.name,
            version: l.version,
            session: l.session,
        });

        let status = match (s.status, s.leader_optime) {
            (Some(v), _) => Status::from_value(&v),
            (None, Some(v)) => Status::from_value(&v),
            (None, None) => Status::default(),
        };

        let failover = s.failover.and_then(|f| Failover::from_value(&f.version, &f.value));
        let sync = s.sync.map(|v| SyncState::from_value(&v.version, &v.value)).unwrap_or_default();
        let history = s.history.map(|h| {
            let parsed = TimelineHistory::from_value(&h.version, &h.value);
            if !parsed.valid {
                problems
                    .push(SnapshotProblem { key: "history".into(), problem: "not a list of timeline lines".into() });
            }
            parsed
        });
        let failsafe = s.failsafe.and_then(|v| match serde_json::from_str::<Value>(&v) {
            Ok(Value::Object(map)) => Some(map),
            _ => {
                problems.push(SnapshotProblem { key: "failsafe".into(), problem: "expected a JSON object".into() });
                None
            }
        });

        let cluster =
            Self { initialize: s.initialize, config, leader, status, members, failover, sync, history, failsafe };
        (cluster, problems)
    }

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
    use palisade_plugin_api::{MemberKey, VersionedValue};

    fn member(name: &str, value: &str) -> MemberKey {
        MemberKey { name: name.into(), value: value.into(), version: "1".into(), session: "s".into() }
    }

    #[test]
    fn garbage_is_reported_and_skipped() {
        let snapshot = DcsSnapshot {
            initialize: Some("7000000000000000001".into()),
            config: Some(VersionedValue { value: "not json".into(), version: "4".into() }),
            leader: Some(LeaderKey { name: "n2".into(), version: "9".into(), session: "s".into() }),
            members: vec![
                member(
                    "n2",
                    r#"{"conn_url":"postgres://h2:5432/postgres","api_url":"http://h2:8008/patroni","state":"running","role":"primary"}"#,
                ),
                member("n1", "{broken"),
                member(
                    "n3",
                    r#"{"state":"running","role":"replica","tags":{"clonefrom":true},"conn_url":"postgres://h3/postgres"}"#,
                ),
            ],
            failover: Some(VersionedValue { value: "12345".into(), version: "2".into() }),
            sync: Some(VersionedValue { value: "[]".into(), version: "3".into() }),
            history: Some(VersionedValue { value: r#"[[1,100,"x"]]"#.into(), version: "5".into() }),
            status: Some(r#"{"optime":777}"#.into()),
            failsafe: Some("[]".into()),
            leader_optime: None,
        };
        let (cluster, problems) = Cluster::from_snapshot(snapshot);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["members/n1", "config", "failsafe"]);
        assert_eq!(cluster.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), vec!["n2", "n3"]);
        assert_eq!(cluster.config.as_ref().map(|c| c.version.as_str()), Some("4"));
        assert!(cluster.config_data().is_empty());
        assert_eq!(cluster.leader_member().map(|m| m.name.as_str()), Some("n2"));
        assert!(cluster.failover.is_none());
        assert!(cluster.sync.is_empty());
        assert_eq!(cluster.timeline(), 2);
        assert_eq!(cluster.status.last_lsn, 777);
        assert_eq!(cluster.clone_member("n1", 0).map(|m| m.name.as_str()), Some("n3"));
        assert_eq!(cluster.clone_member("n3", 0).map(|m| m.name.as_str()), Some("n2"));
    }

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
