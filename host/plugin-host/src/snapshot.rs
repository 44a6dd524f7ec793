//! The edge between the DCS plugin's plain data (`DcsSnapshot`, raw key
//! values as stored) and the model: a snapshot becomes a `Cluster`, and a
//! model `Leader` becomes the plugin's `LeaderKey` for compare-and-set.
//! The model never sees plugin-api types.

use palisade_model::{json_kind, Cluster, ClusterConfig, Failover, Leader, Member, Status, SyncState, TimelineHistory};
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
    let mut members: Vec<Member> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for m in s.members {
        // A store holds one key per name; a plugin that lists a name
        // twice, or a key without one, is wrong: keep the first.
        if m.name.is_empty() {
            problems.push(SnapshotProblem { key: "members/".into(), problem: "a member key without a name".into() });
            continue;
        }
        if !seen.insert(m.name.clone()) {
            problems.push(SnapshotProblem {
                key: format!("members/{}", m.name),
                problem: "the DCS plugin listed this member twice; the first is kept".into(),
            });
            continue;
        }
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
        (None, Some(v)) => {
            if serde_json::from_str::<Value>(&v).ok().as_ref().and_then(palisade_model::parse_int).is_none() {
                problems.push(SnapshotProblem {
                    key: "optime/leader".into(),
                    problem: "expected a WAL position (a number); read as 0".into(),
                });
            }
            Status::from_value(&v)
        }
        (None, None) => Status::default(),
    };

    let failover = s.failover.and_then(|f| {
        // Text that is not JSON is Patroni's legacy `leader:member` form.
        match serde_json::from_str::<Value>(&f.value) {
            Ok(Value::Object(_) | Value::Null) | Err(_) => {}
            Ok(other) => problems.push(SnapshotProblem {
                key: "failover".into(),
                problem: format!("expected a JSON object, found {}", json_kind(&other)),
            }),
        }
        Failover::from_value(&f.version, &f.value)
    });
    let sync = s
        .sync
        .map(|v| {
            problems.extend(
                sync_problems(&v.value).into_iter().map(|problem| SnapshotProblem { key: "sync".into(), problem }),
            );
            SyncState::from_value(&v.version, &v.value)
        })
        .unwrap_or_default();
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

/// What of a `sync` value cannot be read (the value then counts as no
/// synchronous state, or the field as absent, as in Patroni).
fn sync_problems(value: &str) -> Vec<String> {
    let map = match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(map)) => map,
        Ok(other) => return vec![format!("expected a JSON object, found {}", json_kind(&other))],
        Err(e) => return vec![format!("invalid JSON: {e}")],
    };
    let mut problems = Vec::new();
    match map.get("leader") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(other) => problems.push(format!("leader: expected a member name, found {}", json_kind(other))),
    }
    match map.get("sync_standby") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(other) => problems.push(format!(
            "sync_standby: expected comma-separated member names, found {}; read as none",
            json_kind(other)
        )),
    }
    match map.get("quorum") {
        None | Some(Value::Null) => {}
        Some(q) if palisade_model::parse_int(q).is_some_and(|n| u32::try_from(n).is_ok()) => {}
        Some(q) => problems.push(format!("quorum: {q} is not a count; read as 0")),
    }
    problems
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
        assert_eq!(keys, vec!["members/n1", "config", "failover", "sync", "failsafe"]);
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
    fn unreadable_sync_fields_and_legacy_optime_are_reported() {
        let snapshot = DcsSnapshot {
            sync: Some(VersionedValue {
                value: r#"{"leader":"n1","sync_standby":["n2"],"quorum":"many"}"#.into(),
                version: "3".into(),
            }),
            leader_optime: Some("NaN".into()),
            ..Default::default()
        };
        let (cluster, problems) = cluster_from_snapshot(snapshot);
        let found: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "ignoring the value of DCS key 'optime/leader': expected a WAL position (a number); read as 0",
                "ignoring the value of DCS key 'sync': sync_standby: expected comma-separated member names, found \
                 an array; read as none",
                "ignoring the value of DCS key 'sync': quorum: \"many\" is not a count; read as 0",
            ]
        );
        assert_eq!(cluster.sync.leader.as_deref(), Some("n1"));
        assert_eq!((cluster.sync.quorum, cluster.status.last_lsn), (0, 0));
    }

    #[test]
    fn members_without_a_name_or_listed_twice_are_reported_and_skipped() {
        let snapshot = DcsSnapshot {
            members: vec![
                member("n1", r#"{"role":"primary"}"#),
                member("", r#"{"role":"replica"}"#),
                member("n1", r#"{"role":"replica"}"#),
                member("n2", r#"{"role":"replica"}"#),
            ],
            ..DcsSnapshot::default()
        };
        let (cluster, problems) = cluster_from_snapshot(snapshot);
        let names: Vec<&str> = cluster.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["n1", "n2"]);
        assert_eq!(cluster.members[0].data["role"], "primary");
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "ignoring the value of DCS key 'members/': a member key without a name",
                "ignoring the value of DCS key 'members/n1': the DCS plugin listed this member twice; the first is kept",
            ]
        );
    }
}
