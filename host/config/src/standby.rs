//! The `standby_cluster` section, typed: what a standby cluster replicates
//! from (Patroni's `get_standby_cluster_config` and `RemoteMember`).

use serde_json::{Map, Value};

use crate::types::GlobalConfig;
use crate::values::parse_int;

/// `standby_cluster` as the daemon uses it. Values were checked when the
/// dynamic configuration was read ([`GlobalConfig::from_dynamic`]); a
/// value of the wrong kind reads as absent here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StandbyCluster {
    /// The remote primary's host (several, comma-separated, are allowed).
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The slot on the remote primary the standby leader streams through.
    pub primary_slot_name: Option<String>,
    /// How the standby leader is cloned from the remote (`None`: basebackup).
    pub create_replica_methods: Option<Vec<String>>,
    pub restore_command: Option<String>,
    pub archive_cleanup_command: Option<String>,
    /// As written (`'5min'`, `300000`).
    pub recovery_min_apply_delay: Option<String>,
}

impl StandbyCluster {
    /// Read the section (only the keys Patroni's `RemoteMember` takes).
    pub fn from_map(m: &Map<String, Value>) -> Self {
        let text = |k: &str| m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
        Self {
            host: text("host"),
            port: m.get("port").and_then(|p| parse_int(p, None)).and_then(|p| u16::try_from(p).ok()),
            primary_slot_name: text("primary_slot_name"),
            create_replica_methods: m
                .get("create_replica_methods")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect()),
            restore_command: text("restore_command"),
            archive_cleanup_command: text("archive_cleanup_command"),
            recovery_min_apply_delay: match m.get("recovery_min_apply_delay") {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
        }
    }

    /// The replica methods that clone the remote primary, in order:
    /// `create_replica_methods`, or basebackup (Patroni's default; the
    /// `postgresql` section's list is not used for the remote).
    pub fn replica_methods(&self) -> Vec<String> {
        match &self.create_replica_methods {
            Some(m) if !m.is_empty() => m.clone(),
            _ => vec!["basebackup".into()],
        }
    }
}

impl GlobalConfig {
    /// `standby_cluster` when this is a standby cluster.
    pub fn standby_cluster_config(&self) -> Option<StandbyCluster> {
        self.standby_cluster.as_ref().map(StandbyCluster::from_map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_key() {
        let m = json!({"host": "a,b", "port": "5433", "primary_slot_name": "s", "create_replica_methods": ["pgbackrest", "basebackup"],
                       "restore_command": "r %f %p", "archive_cleanup_command": "c %r", "recovery_min_apply_delay": 300000});
        let s = StandbyCluster::from_map(m.as_object().unwrap());
        assert_eq!(s.host.as_deref(), Some("a,b"));
        assert_eq!(s.port, Some(5433));
        assert_eq!(s.primary_slot_name.as_deref(), Some("s"));
        assert_eq!(s.replica_methods(), vec!["pgbackrest", "basebackup"]);
        assert_eq!(s.restore_command.as_deref(), Some("r %f %p"));
        assert_eq!(s.archive_cleanup_command.as_deref(), Some("c %r"));
        assert_eq!(s.recovery_min_apply_delay.as_deref(), Some("300000"));
        let s = StandbyCluster::from_map(
            json!({"restore_command": "r", "recovery_min_apply_delay": "5min"}).as_object().unwrap(),
        );
        assert_eq!((s.host.as_deref(), s.port), (None, None));
        assert_eq!(s.replica_methods(), vec!["basebackup"]);
        assert_eq!(s.recovery_min_apply_delay.as_deref(), Some("5min"));
    }
}
