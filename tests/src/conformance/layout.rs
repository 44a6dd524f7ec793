//! The byte layout Patroni writes: each operation lands at Patroni's key
//! name with exactly the bytes given (so a Patroni node on the same store
//! reads it), and keys a Patroni node wrote are read into the right places.

use super::race::sync_cleared;
use super::values::PATRONI_KEYS;
use super::{assert_stored, ok, snapshot, DcsFixture};

const SYSID: &str = "7334206418375720421";
const CONFIG: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true,"use_slots":true,"parameters":{"wal_level":"replica","hot_standby":"on"}},"synchronous_mode":false}"#;
const FAILOVER: &str = r#"{"leader":"pg-1.dc1","member":"pg-2.dc1","scheduled_at":"2026-12-07T02:00:00+00:00"}"#;
const SYNC: &str = r#"{"leader":"pg-1.dc1","sync_standby":"pg-2.dc1","quorum":0}"#;
const HISTORY: &str = r#"[[1,50331808,"no recovery target specified","2026-12-07T01:58:31.372451+00:00","pg-1.dc1"]]"#;
const STATUS: &str = r#"{"optime":50332160,"slots":{"pg_2_dc1":50332160},"retain_slots":["pg_1_dc1","pg_2_dc1"]}"#;
const FAILSAFE: &str = r#"{"pg-1.dc1":"http://10.0.0.1:8008/patroni","pg-2.dc1":"http://10.0.0.2:8008/patroni"}"#;
const MEMBER1: &str = r#"{"conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.1.0","xlog_location":50332160,"timeline":1}"#;
const MEMBER2: &str = r#"{"conn_url":"postgres://10.0.0.2:5432/postgres","api_url":"http://10.0.0.2:8008/patroni","state":"streaming","role":"replica","version":"4.1.0","replication_state":"streaming","xlog_location":50332160,"receive_lsn":50332160,"replay_lsn":50332160,"timeline":1}"#;

fn raw(f: &dyn DcsFixture, key: &str) -> Option<String> {
    f.read_raw(key).map(|b| String::from_utf8(b).unwrap_or_else(|e| panic!("{key} is not UTF-8: {e}")))
}

/// After each write, `read_raw` finds exactly the bytes given at exactly
/// Patroni's key name: `leader` = the member name, `initialize` = the
/// system identifier, `members/<name>` and the state keys = the JSON as
/// given.
pub fn byte_layout_is_patronis(f: &dyn DcsFixture) {
    let n1 = f.new_dcs("pg-1.dc1");
    let n2 = f.new_dcs("pg-2.dc1");
    for key in PATRONI_KEYS {
        assert_eq!(f.read_raw(key), None, "a fresh cluster has no {key}");
    }
    assert!(ok("initialize", n1.initialize(true, SYSID)));
    assert_eq!(raw(f, "initialize").as_deref(), Some(SYSID));
    assert!(ok("attempt_to_acquire_leader", n1.attempt_to_acquire_leader()));
    assert_eq!(raw(f, "leader").as_deref(), Some("pg-1.dc1"));
    let leader = snapshot(&*n1).leader;
    assert!(ok("update_leader", n1.update_leader(leader.as_ref())));
    assert_eq!(raw(f, "leader").as_deref(), Some("pg-1.dc1"), "renewal keeps the bytes");
    assert!(ok("touch_member", n1.touch_member(MEMBER1)));
    assert!(ok("touch_member", n2.touch_member(MEMBER2)));
    assert_eq!(raw(f, "members/pg-1.dc1").as_deref(), Some(MEMBER1));
    assert_eq!(raw(f, "members/pg-2.dc1").as_deref(), Some(MEMBER2));
    assert!(ok("set_config_value", n1.set_config_value(CONFIG, None)));
    assert_eq!(raw(f, "config").as_deref(), Some(CONFIG));
    assert!(ok("set_failover_value", n1.set_failover_value(FAILOVER, None)));
    assert_stored(f, "failover", raw(f, "failover").as_deref(), Some(FAILOVER));
    assert!(ok("set_sync_state_value", n1.set_sync_state_value(SYNC, None)).is_some());
    assert_stored(f, "sync", raw(f, "sync").as_deref(), Some(SYNC));
    assert!(ok("set_history_value", n1.set_history_value(HISTORY)));
    assert_eq!(raw(f, "history").as_deref(), Some(HISTORY));
    assert!(ok("write_status", n1.write_status(STATUS)));
    assert_stored(f, "status", raw(f, "status").as_deref(), Some(STATUS));
    assert!(ok("write_failsafe", n1.write_failsafe(FAILSAFE)));
    assert_eq!(raw(f, "failsafe").as_deref(), Some(FAILSAFE));
    // The same bytes through the plugin.
    let s = snapshot(&*n2);
    assert_eq!(s.initialize.as_deref(), Some(SYSID));
    assert_eq!(s.config.map(|v| v.value).as_deref(), Some(CONFIG));
    assert_stored(f, "failover", s.failover.map(|v| v.value).as_deref(), Some(FAILOVER));
    assert_stored(f, "sync", s.sync.map(|v| v.value).as_deref(), Some(SYNC));
    assert_eq!(s.history.map(|v| v.value).as_deref(), Some(HISTORY));
    assert_stored(f, "status", s.status.as_deref(), Some(STATUS));
    assert_eq!(s.failsafe.as_deref(), Some(FAILSAFE));
    // Changing hands and clearing.
    assert!(ok("take_leader", n2.take_leader()));
    assert_eq!(raw(f, "leader").as_deref(), Some("pg-2.dc1"));
    assert!(ok("set_failover_value ''", n2.set_failover_value("", None)));
    assert_eq!(raw(f, "failover").as_deref(), Some(""));
    let leader = snapshot(&*n2).leader;
    assert!(ok("delete_leader", n2.delete_leader(leader.as_ref())));
    assert_eq!(f.read_raw("leader"), None);
    assert!(ok("delete_sync_state", n2.delete_sync_state(None)));
    assert!(
        raw(f, "sync").is_none_or(|v| v == "{}"),
        "delete_sync_state removes the key (or leaves the empty state, as Patroni's ZooKeeper)"
    );
    assert!(sync_cleared(&snapshot(&*n2)));
    assert!(ok("cancel_initialization", n2.cancel_initialization()));
    assert_eq!(f.read_raw("initialize"), None);
}

/// Keys as a Patroni node writes them, read into the right places; their
/// versions work for compare-and-set, and a member whose name is in the
/// leader key keeps the lock with `update_leader` (Patroni replaced by
/// Palisade under the same name).
pub fn values_written_by_patroni_are_read(f: &dyn DcsFixture) {
    let written: [(&str, &str); 12] = [
        ("initialize", SYSID),
        ("leader", "pg-1.dc1"),
        ("members/pg-2.dc1", MEMBER2),
        ("members/pg-1.dc1", MEMBER1),
        ("config", CONFIG),
        ("failover", FAILOVER),
        ("sync", SYNC),
        ("history", HISTORY),
        ("status", STATUS),
        ("failsafe", FAILSAFE),
        ("optime/leader", "50332160"),
        ("members/pg-10.dc1", "{}"),
    ];
    for (key, value) in written {
        f.write_raw(key, value.as_bytes());
    }
    let n1 = f.new_dcs("pg-1.dc1");
    let s = snapshot(&*n1);
    assert_eq!(s.initialize.as_deref(), Some(SYSID));
    let leader = s.leader.clone().expect("the leader key");
    assert_eq!(leader.name, "pg-1.dc1");
    assert!(!leader.version.is_empty(), "every key has a version");
    let members: Vec<(&str, &str)> = s.members.iter().map(|m| (m.name.as_str(), m.value.as_str())).collect();
    assert_eq!(members, [("pg-1.dc1", MEMBER1), ("pg-10.dc1", "{}"), ("pg-2.dc1", MEMBER2)], "sorted by name");
    assert_eq!(s.config.as_ref().map(|v| v.value.as_str()), Some(CONFIG));
    assert_stored(f, "failover", s.failover.as_ref().map(|v| v.value.as_str()), Some(FAILOVER));
    assert_stored(f, "sync", s.sync.as_ref().map(|v| v.value.as_str()), Some(SYNC));
    assert_eq!(s.history.as_ref().map(|v| v.value.as_str()), Some(HISTORY));
    assert_stored(f, "status", s.status.as_deref(), Some(STATUS));
    assert_eq!(s.failsafe.as_deref(), Some(FAILSAFE));
    assert_eq!(s.leader_optime.as_deref(), Some("50332160"));
    for v in [&s.config, &s.failover, &s.sync, &s.history].into_iter().flatten() {
        assert!(!v.version.is_empty(), "every versioned key has a version: {v:?}");
    }
    let config = s.config.expect("the config key");
    assert!(ok("set_config_value on Patroni's version", n1.set_config_value("{}", Some(&config.version))));
    let sync = s.sync.expect("the sync key");
    assert!(
        ok("set_sync_state_value on Patroni's version", n1.set_sync_state_value("{}", Some(&sync.version))).is_some()
    );
    let failover = s.failover.expect("the failover key");
    assert!(ok("set_failover_value on Patroni's version", n1.set_failover_value("", Some(&failover.version))));
    // The leader key holds our name: update_leader keeps it ours.
    assert!(ok("update_leader of a key holding our name", n1.update_leader(Some(&leader))));
    let s = snapshot(&*n1);
    assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("pg-1.dc1"));
    assert_eq!(s.config.map(|v| v.value).as_deref(), Some("{}"));
    // And somebody else cannot.
    let n2 = f.new_dcs("pg-2.dc1");
    assert!(!ok("update_leader by another member", n2.update_leader(Some(&leader))));
    assert!(!ok("acquire a held lock", n2.attempt_to_acquire_leader()));
}
