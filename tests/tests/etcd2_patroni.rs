//! Patroni 4.1's own etcd (v2) module, from the virtualenv of
//! `palisade_tests::patroni`, and the etcd v2 plugin on one real etcd:
//! Patroni reads what the plugin writes, and the plugin reads what Patroni
//! writes, key by key and through the lock.

use std::process::Command;

use palisade_tests::conformance::{DcsFixture, MEMBER_JSON};
use palisade_tests::etcd2::Etcd2Fixture;
use serde_json::{json, Value};

const CONFIG: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576}"#;
const SYNC: &str = r#"{"leader":"palisade1","sync_standby":"patroni1"}"#;
const HISTORY: &str = r#"[[1,25165992,"no recovery target specified","2026-01-31T12:00:00.123456+00:00","palisade1"]]"#;
const STATUS: &str = r#"{"optime":67108960,"slots":{"patroni1":67108960}}"#;
const FAILSAFE: &str = r#"{"palisade1":"http://127.0.0.1:8008/patroni"}"#;
const FAILOVER: &str = r#"{"leader":"palisade1","member":"patroni1"}"#;

/// Patroni's `Etcd` as member `patroni1` runs `actions` (Python statements
/// with `d` the DCS) and prints what its `get_cluster` then reads, as JSON.
fn patroni(f: &Etcd2Fixture, actions: &str) -> Value {
    let venv = palisade_tests::patroni::venv();
    let script = format!(
        r#"
import json
from patroni.dcs.etcd import Etcd
from patroni.postgresql.mpp import get_mpp
d = Etcd({{'host': '{host}', 'scope': 'demo', 'name': 'patroni1', 'namespace': '/service/',
          'ttl': 30, 'retry_timeout': 10, 'loop_wait': 10}}, get_mpp({{}}))
result = {{}}
{actions}
c = d.get_cluster()
result.update({{
    'initialize': c.initialize,
    'leader': c.leader and c.leader.name,
    'members': {{m.name: m.data for m in c.members}},
    'config': c.config and c.config.data,
    'config_version': c.config and c.config.version,
    'sync': c.sync and [c.sync.leader, c.sync.sync_standby],
    'history': c.history and c.history.lines,
    'status_optime': c.status.last_lsn,
    'failover': c.failover and [c.failover.leader, c.failover.candidate],
    'failsafe': c.failsafe,
}})
print(json.dumps(result))
"#,
        host = f.etcd().host_port()
    );
    let out = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("run Patroni's python: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "Patroni's etcd module failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("Patroni printed {stdout:?}: {e}"))
}

#[test]
fn patroni_reads_what_the_plugin_writes() {
    let f = Etcd2Fixture::start("v2-patroni-reads");
    let d = f.new_dcs("palisade1");
    assert!(d.initialize(true, "7000000000000000001").unwrap());
    assert!(d.attempt_to_acquire_leader().unwrap());
    assert!(d.touch_member(MEMBER_JSON).unwrap());
    assert!(d.set_config_value(CONFIG, None).unwrap());
    assert!(d.set_sync_state_value(SYNC, None).unwrap().is_some());
    assert!(d.set_history_value(HISTORY).unwrap());
    assert!(d.write_status(STATUS).unwrap());
    assert!(d.write_failsafe(FAILSAFE).unwrap());
    assert!(d.set_failover_value(FAILOVER, None).unwrap());

    let seen = patroni(&f, "result['acquired'] = d.attempt_to_acquire_leader()");
    assert_eq!(seen["acquired"], json!(false), "Patroni must not take a held lock: {seen}");
    assert_eq!(seen["initialize"], json!("7000000000000000001"));
    assert_eq!(seen["leader"], json!("palisade1"));
    let member: Value = serde_json::from_str(MEMBER_JSON).unwrap();
    assert_eq!(seen["members"], json!({ "palisade1": member }));
    assert_eq!(seen["config"], serde_json::from_str::<Value>(CONFIG).unwrap());
    let config_version = d.get_cluster().unwrap().config.unwrap().version;
    assert_eq!(seen["config_version"].to_string(), config_version, "versions are modifiedIndexes for both");
    assert_eq!(seen["sync"], json!(["palisade1", "patroni1"]));
    assert_eq!(seen["history"], serde_json::from_str::<Value>(HISTORY).unwrap());
    assert_eq!(seen["status_optime"], json!(67108960));
    assert_eq!(seen["failover"], json!(["palisade1", "patroni1"]));
    assert_eq!(seen["failsafe"], serde_json::from_str::<Value>(FAILSAFE).unwrap());
}

#[test]
fn the_plugin_reads_what_patroni_writes() {
    let f = Etcd2Fixture::start("v2-patroni-writes");
    let seen = patroni(
        &f,
        r#"
result['init'] = d.initialize(True, '7000000000000000002')
result['acquired'] = d.attempt_to_acquire_leader()
d.touch_member({'conn_url': 'postgres://127.0.0.1:5433/postgres', 'api_url': 'http://127.0.0.1:8009/patroni',
                'state': 'running', 'role': 'primary', 'version': '4.1.0'})
d.set_config_value(json.dumps({'ttl': 30, 'loop_wait': 10}, separators=(',', ':')))
"#,
    );
    assert_eq!((seen["init"].clone(), seen["acquired"].clone()), (json!(true), json!(true)), "{seen}");
    let d = f.new_dcs("palisade1");
    let s = d.get_cluster().unwrap();
    assert_eq!(s.initialize.as_deref(), Some("7000000000000000002"));
    let leader = s.leader.clone().expect("Patroni's leader key");
    assert_eq!(leader.name, "patroni1");
    assert_eq!(leader.session, "30", "the leader key carries Patroni's ttl");
    assert_eq!(s.members.len(), 1);
    assert_eq!(s.members[0].name, "patroni1");
    let data: Value = serde_json::from_str(&s.members[0].value).unwrap();
    assert_eq!(data["api_url"], json!("http://127.0.0.1:8009/patroni"));
    let config = s.config.clone().unwrap();
    assert_eq!(config.value, r#"{"ttl":30,"loop_wait":10}"#);

    // Patroni's lock is left alone.
    let before = f.raw().get("/service/demo/leader").unwrap();
    assert!(!d.attempt_to_acquire_leader().unwrap());
    assert!(!d.update_leader(Some(&leader)).unwrap());
    assert!(!d.delete_leader(Some(&leader)).unwrap());
    assert_eq!(f.raw().get("/service/demo/leader").unwrap().modified_index, before.modified_index);
    // Compare-and-set on a key Patroni wrote, with the version read.
    assert!(d.set_config_value(r#"{"ttl":20}"#, Some(&config.version)).unwrap());
    assert!(!d.set_config_value(r#"{"ttl":25}"#, Some(&config.version)).unwrap());

    // Patroni renews its lock (a compare-and-swap): a watch on the leader
    // version wakes.
    let woke = std::thread::scope(|sc| {
        let watcher = sc.spawn(|| d.watch(Some(&leader.version), std::time::Duration::from_secs(20)).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(700));
        let renewed = patroni(&f, "result['updated'] = d._update_leader(d.get_cluster().leader)");
        assert_eq!(renewed["updated"], json!(true), "{renewed}");
        assert_eq!(renewed["config"], json!({"ttl": 20}));
        watcher.join().expect("watch")
    });
    assert!(woke, "Patroni's renewal wakes the watch on its leader version");
}
