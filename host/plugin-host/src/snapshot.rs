//! The edge between the DCS plugin's plain data (`DcsSnapshot`, raw key
//! values as stored) and the model: a snapshot becomes a `Cluster`, and a
//! model `Leader` becomes the plugin's `LeaderKey` for compare-and-set.
//! The model never sees plugin-api types.

use palisade_model::{Cluster, ClusterConfig, Failover, Leader, Member, Status, SyncState, TimelineHistory};
use palisade_plugin_api::{DcsSnapshot, LeaderKey};
use serde_json::{Map, Value};

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

/// Build a cluster from a DCS plugin's raw keys. Values that cannot be
/// read are left out and reported, so the caller can log them.
pub fn cluster_from_snapshot(s: DcsSnapshot) -> (Cluster, Vec<SnapshotProblem>) {
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
        (Some(v), _) => {
            let (status, found) = Status::parse(&v);
            problems.extend(found.into_iter().map(|problem| SnapshotProblem { key: "status".into(), problem }));
            status
        }
        (None, Some(v)) => Status::from_value(&v),
        (None, None) => Status::default(),
    };

    let failover = s.failover.and_then(|f| Failover::from_value(&f.version, &f.value));
    let sync = s.sync.map(|v| SyncState::from_value(&v.version, &v.value)).unwrap_or_default();
    let history = s.history.map(|h| {
        let parsed = TimelineHistory::from_value(&h.version, &h.value);
        if !parsed.valid {
            problems.push(SnapshotProblem { key: "history".into(), problem: "not a list of timeline lines".into() });
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
        Cluster { initialize: s.initialize, config, leader, status, members, failover, sync, history, failsafe };
    (cluster, problems)
}

/// A model leader back in the plugin's form, for compare-and-set calls.
pub fn leader_key(leader: &Leader) -> LeaderKey {
    LeaderKey { name: leader.name.clone(), version: leader.version.clone(), session: leader.session.clone() }
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
        let (cluster, problems) = cluster_from_snapshot(snapshot);
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
}
