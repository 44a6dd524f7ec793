//! The state keys: compare-and-set where Patroni uses a version, values
//! byte for byte, garbage passed through, the whole cluster deleted.

use palisade_plugin_api::{DcsSnapshot, VersionedValue};

use super::{ok, snapshot, DcsFixture, MEMBER_JSON};

const CONFIG1: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100}}}"#;
const CONFIG2: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"pause":true}"#;
const CONFIG3: &str = r#"{"ttl":20}"#;

/// `config`: created without a version, then compare-and-set on the
/// version; a stale version fails; no version overwrites (Patroni's
/// `PUT /config`).
pub fn config_is_compare_and_set(f: &dyn DcsFixture) {
    let c = f.new_dcs("n1");
    assert!(ok("set_config_value without a version", c.set_config_value(CONFIG1, None)));
    let v1 = snapshot(&*c).config.expect("the config key");
    assert_eq!(v1.value, CONFIG1);
    assert!(ok("set_config_value with the current version", c.set_config_value(CONFIG2, Some(&v1.version))));
    let v2 = snapshot(&*c).config.expect("the config key");
    assert_eq!(v2.value, CONFIG2);
    assert_ne!(v2.version, v1.version, "a write makes a new version");
    assert!(!ok("set_config_value with a stale version", c.set_config_value(CONFIG3, Some(&v1.version))));
    assert_eq!(snapshot(&*c).config, Some(v2.clone()), "a failed compare-and-set changes nothing");
    assert!(ok("set_config_value without a version", c.set_config_value(CONFIG3, None)));
    assert_eq!(snapshot(&*c).config.map(|v| v.value).as_deref(), Some(CONFIG3));
}

/// `sync`: the returned version is the key's new version; stale versions
/// fail for writes and deletes.
pub fn sync_is_compare_and_set(f: &dyn DcsFixture) {
    let c = f.new_dcs("n1");
    let s1 = r#"{"leader":"n1","quorum":0,"sync_standby":null}"#;
    let s2 = r#"{"leader":"n1","quorum":0,"sync_standby":"n2"}"#;
    let s3 = r#"{"leader":"n1","quorum":1,"sync_standby":"n2,n3"}"#;
    let v1 = ok("set_sync_state_value", c.set_sync_state_value(s1, None)).expect("a new version");
    assert_eq!(snapshot(&*c).sync, Some(VersionedValue { value: s1.into(), version: v1.clone() }));
    let v2 = ok("set_sync_state_value", c.set_sync_state_value(s2, Some(&v1))).expect("a new version");
    assert_ne!(v2, v1);
    assert_eq!(snapshot(&*c).sync, Some(VersionedValue { value: s2.into(), version: v2.clone() }));
    assert_eq!(ok("a stale sync write", c.set_sync_state_value(s3, Some(&v1))), None);
    assert!(!ok("a stale sync delete", c.delete_sync_state(Some(&v1))));
    assert_eq!(snapshot(&*c).sync.map(|s| s.value).as_deref(), Some(s2));
    assert!(ok("delete_sync_state", c.delete_sync_state(Some(&v2))));
    assert_eq!(snapshot(&*c).sync, None);
    let v3 = ok("set_sync_state_value", c.set_sync_state_value(s3, None)).expect("a new version");
    assert_eq!(snapshot(&*c).sync.map(|s| s.version), Some(v3));
    assert!(ok("delete_sync_state without a version", c.delete_sync_state(None)));
    assert_eq!(snapshot(&*c).sync, None);
}

/// `failover`: no version writes unconditionally, a version compares.
pub fn failover_is_compare_and_set(f: &dyn DcsFixture) {
    let c = f.new_dcs("n1");
    let f1 = r#"{"leader":"n1","member":"n2","scheduled_at":"2026-01-31T12:00:00+00:00"}"#;
    let f2 = r#"{"leader":"n1"}"#;
    assert!(ok("set_failover_value", c.set_failover_value(f1, None)));
    let v1 = snapshot(&*c).failover.expect("the failover key");
    assert_eq!(v1.value, f1);
    assert!(ok("set_failover_value with the version", c.set_failover_value(f2, Some(&v1.version))));
    assert!(!ok("a stale failover write", c.set_failover_value(f1, Some(&v1.version))));
    assert_eq!(snapshot(&*c).failover.map(|v| v.value).as_deref(), Some(f2));
    assert!(ok("clear the failover key", c.set_failover_value("", None)));
    assert_eq!(snapshot(&*c).failover.map(|v| v.value).as_deref(), Some(""));
}

/// What the plugin writes comes back byte for byte.
pub fn values_round_trip_byte_exactly(f: &dyn DcsFixture) {
    let c = f.new_dcs("node1");
    let history = r#"[[1,25165992,"no recovery target specified","2026-01-31T12:00:00.123456+00:00","node1"]]"#;
    let status = r#"{"optime":67108960,"slots":{"node2":67108960},"retain_slots":["node1","node2"]}"#;
    let failsafe = r#"{"node1":"http://127.0.0.1:8008/patroni","nöde2 ✓":"http://[::1]:8009/patroni"}"#;
    let odd = "  {\n \"spaces\" : true }\t";
    assert!(ok("touch_member", c.touch_member(MEMBER_JSON)));
    assert!(ok("set_history_value", c.set_history_value(history)));
    assert!(ok("write_status", c.write_status(status)));
    assert!(ok("write_failsafe", c.write_failsafe(failsafe)));
    assert!(ok("set_failover_value", c.set_failover_value(odd, None)));
    assert!(ok("initialize", c.initialize(true, "7000000000000000001")));
    let s = snapshot(&*c);
    assert_eq!(s.members.len(), 1);
    assert_eq!((s.members[0].name.as_str(), s.members[0].value.as_str()), ("node1", MEMBER_JSON));
    assert_eq!(s.history.map(|h| h.value).as_deref(), Some(history));
    assert_eq!(s.status.as_deref(), Some(status));
    assert_eq!(s.failsafe.as_deref(), Some(failsafe));
    assert_eq!(s.failover.map(|v| v.value).as_deref(), Some(odd));
    assert_eq!(s.initialize.as_deref(), Some("7000000000000000001"));
    // Rewriting changes the values in place (the leader rewrites the
    // failsafe key whenever the member list changes).
    assert!(ok("write_status", c.write_status("{}")));
    assert!(ok("set_history_value", c.set_history_value("[]")));
    let failsafe2 = r#"{"node1":"http://127.0.0.1:8008/patroni"}"#;
    assert!(ok("write_failsafe again", c.write_failsafe(failsafe2)));
    let s = snapshot(&*c);
    assert_eq!((s.status.as_deref(), s.history.map(|h| h.value)), (Some("{}"), Some("[]".to_string())));
    assert_eq!(s.failsafe.as_deref(), Some(failsafe2));
    // Another member reads what the leader wrote.
    assert_eq!(snapshot(&*f.new_dcs("node2")).failsafe.as_deref(), Some(failsafe2));
}

/// Values written by somebody else, however broken, come back as stored
/// and do not fail the snapshot.
pub fn garbage_comes_back_as_stored(f: &dyn DcsFixture) {
    let c = f.new_dcs("n1");
    let garbage: &[(&str, &str)] = &[
        ("config", "{not json"),
        ("leader", ""),
        ("members/ghost", "[1,2,3]"),
        ("members/nul", "\u{0}\u{1}"),
        ("failover", "n1:n2"),
        ("sync", "null"),
        ("history", "{}"),
        ("status", "garbage 😀"),
        ("failsafe", "["),
        ("initialize", "not-a-sysid"),
        ("optime/leader", "12x"),
    ];
    for (key, value) in garbage {
        f.write_raw(key, value.as_bytes());
    }
    f.write_raw("members/binary", b"\xff\xfe\x00");
    let s = snapshot(&*c);
    assert_eq!(s.config.map(|v| v.value).as_deref(), Some("{not json"));
    assert_eq!(s.leader.map(|l| l.name).as_deref(), Some(""));
    let member = |name: &str| s.members.iter().find(|m| m.name == name).map(|m| m.value.clone());
    assert_eq!(member("ghost").as_deref(), Some("[1,2,3]"));
    assert_eq!(member("nul").as_deref(), Some("\u{0}\u{1}"));
    assert!(member("binary").is_some(), "a value that is not UTF-8 still shows up: {:?}", s.members);
    assert_eq!(s.failover.map(|v| v.value).as_deref(), Some("n1:n2"));
    assert_eq!(s.sync.map(|v| v.value).as_deref(), Some("null"));
    assert_eq!(s.history.map(|v| v.value).as_deref(), Some("{}"));
    assert_eq!(s.status.as_deref(), Some("garbage 😀"));
    assert_eq!(s.failsafe.as_deref(), Some("["));
    assert_eq!(s.initialize.as_deref(), Some("not-a-sysid"));
    assert_eq!(s.leader_optime.as_deref(), Some("12x"));
}

/// `delete_cluster` leaves nothing behind.
pub fn delete_cluster_removes_every_key(f: &dyn DcsFixture) {
    let c = f.new_dcs("n1");
    assert!(ok("acquire", c.attempt_to_acquire_leader()));
    assert!(ok("touch_member", c.touch_member(MEMBER_JSON)));
    assert!(ok("initialize", c.initialize(true, "7000000000000000001")));
    assert!(ok("set_config_value", c.set_config_value(CONFIG1, None)));
    assert!(ok("set_failover_value", c.set_failover_value(r#"{"leader":"n1"}"#, None)));
    assert!(ok("set_sync_state_value", c.set_sync_state_value(r#"{"leader":"n1"}"#, None)).is_some());
    assert!(ok("set_history_value", c.set_history_value("[]")));
    assert!(ok("write_status", c.write_status(r#"{"optime":1}"#)));
    assert!(ok("write_failsafe", c.write_failsafe("{}")));
    f.write_raw("optime/leader", b"1");
    assert_ne!(snapshot(&*c), DcsSnapshot::default());
    assert!(ok("delete_cluster", c.delete_cluster()));
    assert_eq!(snapshot(&*c), DcsSnapshot::default());
}
