//! Recovery settings of a standby (PostgreSQL 12+: `standby.signal` plus
//! `primary_conninfo`, `primary_slot_name`, `recovery_target_timeline`...
//! in postgresql.conf), built as Patroni's `build_recovery_params` builds
//! them.

use std::collections::BTreeMap;
use std::path::Path;

use palisade_config::RoleAuth;
use serde_json::{Map, Value};

use super::conninfo::{format_dsn, primary_conninfo_params, ConnParams, FollowTarget};
use super::params::{value_to_string, RECOVERY_PARAMETERS};
use super::pgpass::pgpass_content;
use palisade_pycompat::patroni::{parse_bool, parse_int};

/// What makes a server recover: the signal file and the parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryParams {
    /// `standby.signal` (stay a standby) rather than `recovery.signal`
    /// (recover to a target, then promote or pause).
    pub standby: bool,
    /// Whom to stream from, as connection parameters (the password goes to
    /// the pgpass file when written).
    pub primary_conninfo: Option<ConnParams>,
    /// Every other recovery parameter, by name.
    pub values: BTreeMap<String, String>,
}

/// Inputs of [`build_recovery_params`].
#[derive(Clone, Copy, Debug)]
pub struct RecoveryInput<'a> {
    /// Our member name: `application_name`, and our slot on the upstream.
    pub our_name: &'a str,
    pub target: Option<&'a FollowTarget>,
    pub replication: &'a RoleAuth,
    /// `postgresql.recovery_conf` (effective).
    pub recovery_conf: &'a Map<String, Value>,
    /// `postgresql.use_slots`.
    pub use_slots: bool,
    pub major: u32,
}

/// Patroni's `build_recovery_params` for following `target` (or for
/// staying a standby with nobody to follow when `target` is `None`).
pub fn build_recovery_params(input: &RecoveryInput<'_>) -> RecoveryParams {
    let mut values: BTreeMap<String, String> = input
        .recovery_conf
        .iter()
        .filter(|(k, _)| {
            let k = k.to_lowercase();
            !k.starts_with("recovery_target") && k != "primary_conninfo" && k != "primary_slot_name"
        })
        .filter_map(|(k, v)| value_to_string(v).map(|v| (k.clone(), v)))
        .collect();
    values.insert("recovery_target_timeline".into(), "latest".into());
    if input.major >= 120000 || input.major == 0 {
        for k in [
            "recovery_target",
            "recovery_target_name",
            "recovery_target_time",
            "recovery_target_xid",
            "recovery_target_lsn",
        ] {
            values.insert(k.into(), String::new());
        }
    }
    let remote = input.target.and_then(|t| t.remote.as_ref());
    let mut primary_conninfo = primary_conninfo_params(input.target, input.our_name, input.replication, input.major);
    if let Some(conninfo) = primary_conninfo.as_mut() {
        let slot = match remote {
            Some(r) => r.primary_slot_name.as_deref(),
            None => Some(input.our_name),
        };
        if let (true, Some(slot)) = (input.use_slots, slot) {
            values.insert("primary_slot_name".into(), palisade_model::slot_name_from_member_name(slot));
            if remote.is_some() && conninfo.get("host").is_some_and(|h| h.contains(',')) && input.major >= 100000 {
                conninfo.insert("target_session_attrs".into(), "read-write".into());
            }
        }
    }
    // The standby cluster's settings override `recovery_conf`; the apply
    // delay only on the standby leader.
    if let Some(t) = input.target {
        let delay = remote.and_then(|r| r.recovery_min_apply_delay.as_ref());
        for (k, v) in [
            ("restore_command", t.archive.restore_command.as_ref()),
            ("archive_cleanup_command", t.archive.archive_cleanup_command.as_ref()),
            ("recovery_min_apply_delay", delay),
        ] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                values.insert(k.into(), v.clone());
            }
        }
    }
    RecoveryParams { standby: true, primary_conninfo, values }
}

impl RecoveryParams {
    /// Recovery settings given as a map (a custom bootstrap method's
    /// `recovery_conf`): `standby_mode` picks the signal file, a
    /// `primary_conninfo` string is kept as it is.
    pub fn from_map(map: &Map<String, Value>) -> Self {
        let mut values: BTreeMap<String, String> =
            map.iter().filter_map(|(k, v)| value_to_string(v).map(|v| (k.clone(), v))).collect();
        let standby = values.remove("standby_mode").and_then(|v| parse_bool(&v)).unwrap_or(false);
        Self { standby, primary_conninfo: None, values }
    }

    /// The upstream's connection string as it will be written (passfile
    /// instead of password when `pgpass` is given).
    pub fn primary_conninfo_dsn(&self, pgpass: Option<&Path>, major: u32) -> Option<String> {
        let mut p = self.primary_conninfo.clone()?;
        if let (Some(path), true) = (pgpass, p.contains_key("password") && major >= 100000) {
            p.insert("passfile".into(), path.to_string_lossy().into_owned());
        }
        Some(format_dsn(&p, major))
    }

    /// The pgpass file content that the written `primary_conninfo` relies on.
    pub fn pgpass_content(&self) -> Option<String> {
        self.primary_conninfo.as_ref().and_then(pgpass_content)
    }

    /// The `name = value` pairs for postgresql.conf, in name order, as
    /// Patroni's `_write_recovery_params` selects them for `major`:
    /// `pause_at_recovery_target` becomes `recovery_target_action`;
    /// parameters the version does not have and invalid values are left out.
    pub fn rendered(&self, pgpass: Option<&Path>, major: u32) -> Vec<(String, String)> {
        let mut values = self.values.clone();
        if major >= 90500 || major == 0 {
            if let Some(pause) = values.remove("pause_at_recovery_target").and_then(|v| parse_bool(&v)) {
                values
                    .entry("recovery_target_action".into())
                    .or_insert_with(|| if pause { "pause" } else { "promote" }.into());
            }
        }
        if let Some(dsn) = self.primary_conninfo_dsn(pgpass, major) {
            values.insert("primary_conninfo".into(), dsn);
        }
        values
            .into_iter()
            .filter_map(|(name, value)| transform_recovery_value(&name, value, major).map(|v| (name, v)))
            .collect()
    }
}

/// Patroni's `transform_recovery_parameter_value`: `None` for parameters
/// this version does not have and for invalid values; numbers out of range
/// are clamped.
fn transform_recovery_value(name: &str, value: String, major: u32) -> Option<String> {
    let lower = name.to_lowercase();
    let (_, from, till) = RECOVERY_PARAMETERS.iter().find(|(n, _, _)| *n == lower)?;
    if major != 0 && (major < *from || till.is_some_and(|t| major >= t)) {
        return None;
    }
    let enum_ok = |allowed: &[&str]| allowed.contains(&value.to_lowercase().as_str());
    // Patroni's validator words: the kind is its validator class.
    let (valid, kind) = match lower.as_str() {
        "recovery_target" => (enum_ok(&["immediate", ""]), "enum"),
        "recovery_target_action" => (enum_ok(&["pause", "promote", "shutdown"]), "enum"),
        "recovery_target_inclusive" | "pause_at_recovery_target" | "standby_mode" => {
            (parse_bool(&value).is_some(), "bool")
        }
        "recovery_min_apply_delay" => match parse_int(&value, Some("ms")) {
            Some(v) if v < 0 => {
                tracing::warn!("Value={value} of parameter={name} is too low, increasing to 0ms");
                return Some("0".into());
            }
            Some(v) if v > 2147483647 => {
                tracing::warn!("Value={value} of parameter={name} is too big, decreasing to 2147483647ms");
                return Some("2147483647".into());
            }
            Some(_) => (true, "integer"),
            None => (false, "integer"),
        },
        _ => (true, "string"),
    };
    if !valid {
        tracing::warn!("Removing {kind} parameter={name} from the config due to the invalid value={value}");
    }
    valid.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::super::conninfo::{ArchiveCommands, RemoteSource};
    use super::*;
    use serde_json::json;

    fn replication() -> RoleAuth {
        RoleAuth { username: "replicator".into(), password: Some("secret".into()), ssl: Default::default() }
    }

    fn render(p: &RecoveryParams) -> Vec<String> {
        p.rendered(Some(Path::new("/tmp/pgpass")), 150000).into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    #[test]
    fn following_a_member() {
        let target = FollowTarget::member("node1", "postgres://127.0.0.1:5433/postgres").unwrap();
        let recovery_conf =
            json!({"restore_command": "cp /arch/%f %p", "recovery_target_time": "x", "primary_slot_name": "x"});
        let p = build_recovery_params(&RecoveryInput {
            our_name: "node-2",
            target: Some(&target),
            replication: &replication(),
            recovery_conf: recovery_conf.as_object().unwrap(),
            use_slots: true,
            major: 150000,
        });
        assert!(p.standby);
        assert_eq!(
            render(&p),
            vec![
                "primary_conninfo=dbname=postgres user=replicator passfile=/tmp/pgpass host=127.0.0.1 port=5433 sslmode=prefer application_name=node-2 gssencmode=prefer channel_binding=prefer",
                "primary_slot_name=node_2",
                "recovery_target=",
                "recovery_target_lsn=",
                "recovery_target_name=",
                "recovery_target_time=",
                "recovery_target_timeline=latest",
                "recovery_target_xid=",
                "restore_command=cp /arch/%f %p",
            ]
        );
        assert_eq!(p.pgpass_content().as_deref(), Some("127.0.0.1:5433:*:replicator:secret\n"));
    }

    #[test]
    fn nobody_to_follow_and_no_slots() {
        let empty = Map::new();
        let p = build_recovery_params(&RecoveryInput {
            our_name: "node2",
            target: None,
            replication: &replication(),
            recovery_conf: &empty,
            use_slots: true,
            major: 150000,
        });
        assert_eq!(p.primary_conninfo, None);
        assert!(!p.values.contains_key("primary_slot_name"));
        let target = FollowTarget::member("node1", "postgres://h:1/postgres").unwrap();
        let p = build_recovery_params(&RecoveryInput {
            our_name: "node2",
            target: Some(&target),
            replication: &replication(),
            recovery_conf: &empty,
            use_slots: false,
            major: 150000,
        });
        assert!(p.primary_conninfo.is_some());
        assert!(!p.values.contains_key("primary_slot_name"));
    }

    #[test]
    fn standby_cluster_source() {
        let target = FollowTarget::remote(
            "a,b",
            5432,
            RemoteSource {
                primary_slot_name: Some("standby-cluster".into()),
                recovery_min_apply_delay: Some("5min".into()),
            },
            ArchiveCommands { restore_command: Some("fetch %f %p".into()), archive_cleanup_command: None },
        );
        let empty = Map::new();
        let p = build_recovery_params(&RecoveryInput {
            our_name: "node1",
            target: Some(&target),
            replication: &replication(),
            recovery_conf: &empty,
            use_slots: true,
            major: 150000,
        });
        let conninfo = p.primary_conninfo.clone().unwrap();
        assert_eq!(conninfo.get("target_session_attrs").map(String::as_str), Some("read-write"));
        assert_eq!(p.values.get("primary_slot_name").map(String::as_str), Some("standby_cluster"));
        assert_eq!(p.values.get("restore_command").map(String::as_str), Some("fetch %f %p"));
        assert_eq!(p.values.get("recovery_min_apply_delay").map(String::as_str), Some("5min"));
    }

    /// A standby cluster fed only by its archive: no primary_conninfo, no
    /// slot, the commands; its replicas get the commands but not the delay.
    #[test]
    fn standby_cluster_archive_only_and_its_replicas() {
        let archive = ArchiveCommands {
            restore_command: Some("pgbackrest --stanza=s archive-get %f \"%p\"".into()),
            archive_cleanup_command: Some("pg_archivecleanup /a %r".into()),
        };
        let remote = RemoteSource { primary_slot_name: Some("x".into()), recovery_min_apply_delay: Some("1s".into()) };
        let target = FollowTarget::remote("", 0, remote, archive.clone());
        let empty = Map::new();
        let replication = replication();
        let input = |t| RecoveryInput {
            our_name: "node1",
            target: Some(t),
            replication: &replication,
            recovery_conf: &empty,
            use_slots: true,
            major: 150000,
        };
        let p = build_recovery_params(&input(&target));
        assert_eq!(p.primary_conninfo, None);
        assert!(!p.values.contains_key("primary_slot_name"));
        assert_eq!(p.values.get("restore_command"), archive.restore_command.as_ref());
        assert_eq!(p.values.get("archive_cleanup_command"), archive.archive_cleanup_command.as_ref());
        assert_eq!(p.values.get("recovery_min_apply_delay").map(String::as_str), Some("1s"));

        let mut leader = FollowTarget::member("node2", "postgres://h:5/postgres").unwrap();
        leader.archive = archive.clone();
        let p = build_recovery_params(&RecoveryInput { our_name: "node3", ..input(&leader) });
        assert_eq!(p.values.get("primary_slot_name").map(String::as_str), Some("node3"));
        assert_eq!(p.values.get("restore_command"), archive.restore_command.as_ref());
        assert!(!p.values.contains_key("recovery_min_apply_delay"));
    }

    #[test]
    fn custom_bootstrap_recovery_conf() {
        let map = json!({"recovery_target_action": "promote", "recovery_target_timeline": "latest",
                          "restore_command": "restore %f %p", "pause_at_recovery_target": false,
                          "trigger_file": "/x", "recovery_target": "bogus", "recovery_min_apply_delay": -5});
        let p = RecoveryParams::from_map(map.as_object().unwrap());
        assert!(!p.standby);
        assert_eq!(
            render(&p),
            vec![
                "recovery_min_apply_delay=0",
                "recovery_target_action=promote",
                "recovery_target_timeline=latest",
                "restore_command=restore %f %p",
            ]
        );
        let p = RecoveryParams::from_map(json!({"standby_mode": "on"}).as_object().unwrap());
        assert!(p.standby);
    }
}
