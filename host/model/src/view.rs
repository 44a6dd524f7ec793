//! The cluster as `GET /cluster` and `patronictl list` present it.

use serde_json::{json, Map, Value};

use crate::cluster::Cluster;
use crate::lsn::format_lsn;
use crate::values::{format_timestamp, ScheduledAt};

/// The dynamic settings that change how members are presented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewModes {
    pub standby_cluster: bool,
    pub synchronous_mode: bool,
    pub quorum_commit: bool,
    pub paused: bool,
}

impl ViewModes {
    /// Read the modes from a cluster's dynamic configuration.
    pub fn from_config(data: &Map<String, Value>) -> Self {
        let sync = data.get("synchronous_mode");
        let quorum = sync.and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case("quorum"));
        let synchronous_mode = quorum || sync.and_then(crate::parse_bool).unwrap_or(false);
        let standby_cluster = data.get("standby_cluster").and_then(Value::as_object).is_some_and(|s| {
            ["host", "port", "restore_command"].iter().any(|k| s.get(*k).is_some_and(|v| !v.is_null() && v != ""))
        });
        let paused = data.get("pause").and_then(crate::parse_bool).unwrap_or(false);
        // Patroni's `is_synchronous_mode`: never in a standby cluster.
        let synchronous_mode = synchronous_mode && !standby_cluster;
        Self { standby_cluster, synchronous_mode, quorum_commit: quorum, paused }
    }
}

/// Patroni's `cluster_as_json`: members sorted by name with their role
/// (`leader`, `standby_leader`, `sync_standby`, `quorum_standby`, `replica`),
/// state, addresses and, for non-leaders, LSNs as `X/X` and lag in bytes
/// (or `unknown`).
pub fn cluster_as_json(cluster: &Cluster, modes: ViewModes) -> Map<String, Value> {
    let leader = cluster.leader_name();
    let cluster_lsn = cluster.status.last_lsn;
    let sync_role = if modes.quorum_commit { "quorum_standby" } else { "sync_standby" };
    let mut members = Vec::new();
    for m in &cluster.members {
        let is_leader = Some(m.name.as_str()) == leader;
        let role = if is_leader {
            if modes.standby_cluster {
                "standby_leader"
            } else {
                "leader"
            }
        } else if modes.synchronous_mode && cluster.sync.matches(&m.name, false) {
            sync_role
        } else {
            "replica"
        };
        let replication_state = if role != "leader" { m.replication_state().unwrap_or("") } else { "" };
        let state = if replication_state.is_empty() {
            m.data.get("state").and_then(Value::as_str).unwrap_or("")
        } else {
            replication_state
        };
        let mut out = Map::new();
        out.insert("name".into(), json!(m.name));
        out.insert("role".into(), json!(role));
        out.insert("state".into(), json!(state));
        out.insert("api_url".into(), m.api_url().map_or(Value::Null, |u| json!(u)));
        if let Some((host, port)) = m.host_port() {
            out.insert("host".into(), json!(host));
            out.insert("port".into(), json!(port));
        }
        for key in ["timeline", "pending_restart", "pending_restart_reason", "scheduled_restart", "tags"] {
            if let Some(v) = m.data.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        if !is_leader {
            for (prefix, lsn) in [("receive_", m.receive_lsn()), ("replay_", m.replay_lsn()), ("", m.lsn())] {
                let (lsn_key, lag_key) = (format!("{prefix}lsn"), format!("{prefix}lag"));
                match lsn.filter(|l| *l > 0) {
                    None => {
                        out.insert(lsn_key, json!("unknown"));
                        out.insert(lag_key, json!("unknown"));
                    }
                    Some(l) => {
                        out.insert(lsn_key, json!(format_lsn(l)));
                        out.insert(lag_key, json!(cluster_lsn.saturating_sub(l)));
                    }
                }
            }
        }
        members.push(Value::Object(out));
    }
    let mut ret = Map::new();
    ret.insert("members".into(), Value::Array(members));
    if modes.paused {
        ret.insert("pause".into(), json!(true));
    }
    if let Some(f) = &cluster.failover {
        if let Some(ScheduledAt::At(at)) = &f.scheduled_at {
            let mut s = Map::new();
            s.insert("at".into(), json!(format_timestamp(at)));
            if let Some(l) = &f.leader {
                s.insert("from".into(), json!(l));
            }
            if let Some(c) = &f.candidate {
                s.insert("to".into(), json!(c));
            }
            ret.insert("scheduled_switchover".into(), Value::Object(s));
        }
    }
    ret
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Leader;
    use crate::member::Member;

    #[test]
    fn members_are_sorted_with_roles_lsns_and_lags() {
        let mut c = Cluster::default();
        c.status.last_lsn = 0x3000100;
        c.leader = Some(Leader { name: "n1".into(), version: "1".into(), session: String::new() });
        c.members = vec![
            Member::from_value("n1", "1", "", r#"{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"primary","timeline":2}"#).unwrap(),
            Member::from_value("n2", "1", "", r#"{"conn_url":"postgres://127.0.0.1:5433/postgres","api_url":"http://127.0.0.1:8009/patroni","state":"running","role":"replica","xlog_location":50331904,"receive_lsn":50331904,"replay_lsn":50331648,"replication_state":"streaming","timeline":2,"tags":{"nofailover":true}}"#).unwrap(),
            Member::from_value("n3", "1", "", r#"{"conn_url":"postgres://127.0.0.1:5434/postgres","state":"stopped","role":"replica"}"#).unwrap(),
        ];
        let v = Value::Object(cluster_as_json(&c, ViewModes::default()));
        assert_eq!(
            v,
            json!({"members": [
                {"name": "n1", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:8008/patroni", "host": "127.0.0.1", "port": 5432, "timeline": 2},
                {"name": "n2", "role": "replica", "state": "streaming", "api_url": "http://127.0.0.1:8009/patroni", "host": "127.0.0.1", "port": 5433, "timeline": 2, "tags": {"nofailover": true},
                 "receive_lsn": "0/3000100", "receive_lag": 0, "replay_lsn": "0/3000000", "replay_lag": 256, "lsn": "0/3000100", "lag": 0},
                {"name": "n3", "role": "replica", "state": "stopped", "api_url": null, "host": "127.0.0.1", "port": 5434,
                 "receive_lsn": "unknown", "receive_lag": "unknown", "replay_lsn": "unknown", "replay_lag": "unknown", "lsn": "unknown", "lag": "unknown"}
            ]})
        );
    }

    #[test]
    fn modes_from_config() {
        let cfg = |v: Value| v.as_object().cloned().unwrap();
        assert!(ViewModes::from_config(&cfg(json!({"synchronous_mode": "quorum"}))).quorum_commit);
        assert!(ViewModes::from_config(&cfg(json!({"synchronous_mode": "on"}))).synchronous_mode);
        assert!(ViewModes::from_config(&cfg(json!({"pause": true}))).paused);
        assert!(ViewModes::from_config(&cfg(json!({"standby_cluster": {"host": "h"}}))).standby_cluster);
        assert!(!ViewModes::from_config(&cfg(json!({"standby_cluster": {"host": ""}}))).standby_cluster);
    }
}
