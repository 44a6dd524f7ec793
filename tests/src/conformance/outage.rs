//! The store goes away (stopped, or frozen): every operation fails with
//! `DcsUnavailable` within about `retry_timeout` (no hang, no panic), and
//! the plugin works again once the store is back.

use std::sync::Arc;
use std::time::Duration;

use palisade_plugin_api::{Dcs, ErrorKind, PluginResult};
use palisade_test_support::wait_for;

use super::{bounded, ok, shared, snapshot, DcsFixture, MEMBER_JSON};

type Op = fn(&dyn Dcs) -> PluginResult<()>;

/// Every operation, on the leader's client (0) or the replica's (1).
/// None of them changes the data if the store carries it out late (a
/// frozen server may still process what was sent before it froze): the
/// values are the ones already stored, and only the leader writes the
/// leader key.
fn ops() -> Vec<(&'static str, usize, Op)> {
    vec![
        ("get_cluster", 1, |d| d.get_cluster().map(drop)),
        ("attempt_to_acquire_leader", 0, |d| d.attempt_to_acquire_leader().map(drop)),
        ("update_leader", 0, |d| d.update_leader(None).map(drop)),
        ("touch_member", 1, |d| d.touch_member(MEMBER_JSON).map(drop)),
        ("set_config_value", 0, |d| d.set_config_value(CONFIG, None).map(drop)),
        ("set_sync_state_value", 0, |d| d.set_sync_state_value("{}", Some("1")).map(drop)),
        ("initialize", 0, |d| d.initialize(true, SYSID).map(drop)),
        ("write_status", 1, |d| d.write_status("{}").map(drop)),
        ("write_failsafe", 0, |d| d.write_failsafe("{}").map(drop)),
    ]
}

/// How long an operation may take to fail against an unreachable store:
/// its `retry_timeout` budget, twice over for a last attempt that started
/// just before the budget ran out, plus slack for a loaded machine.
pub fn error_bound(f: &dyn DcsFixture) -> Duration {
    f.timing().retry_timeout * 2 + Duration::from_secs(10)
}

/// Run every operation at once against the unreachable store.
fn every_operation_fails(f: &dyn DcsFixture, clients: &[Arc<dyn Dcs>], leader_version: Option<String>) {
    let limit = error_bound(f);
    let retry_timeout = f.timing().retry_timeout;
    let mut running = Vec::new();
    for (name, client, op) in ops() {
        let dcs = clients[client].clone();
        running.push((name, std::thread::spawn(move || bounded(name, limit, move || op(&*dcs)))));
    }
    let watcher = clients[0].clone();
    let watch = std::thread::spawn(move || {
        bounded("watch", limit, move || watcher.watch(leader_version.as_deref(), Duration::from_secs(2)))
    });
    for (name, handle) in running {
        let (result, took) = handle.join().unwrap_or_else(|_| panic!("{name} did not return (see above)"));
        let err = result.expect_err(&format!("{name} must fail while the store is unreachable"));
        assert_eq!(err.kind, ErrorKind::DcsUnavailable, "{name}: {err}");
        eprintln!("{name} failed after {took:?}: {err}");
        assert!(took < limit, "{name} took {took:?} (retry_timeout {retry_timeout:?})");
    }
    let (result, _) = watch.join().unwrap_or_else(|_| panic!("watch did not return (see above)"));
    match result {
        Ok(woke) => assert!(!woke, "watch cannot see a change in an unreachable store"),
        Err(e) => assert_eq!(e.kind, ErrorKind::DcsUnavailable, "watch: {e}"),
    }
}

/// Once the store answers again: the data written before the outage is
/// all there, the leader keeps (or, if its key expired meanwhile, takes
/// back) the lock, the other member cannot take it, and writes work.
fn recovers(clients: &[Arc<dyn Dcs>]) {
    let (leader, replica) = (&*clients[0], &*clients[1]);
    let s = wait_for("the plugin to read the store again", Duration::from_secs(60), || leader.get_cluster().ok());
    assert_eq!(s.initialize.as_deref(), Some(SYSID), "the data survived the outage");
    assert_eq!(s.config.as_ref().map(|c| c.value.as_str()), Some(CONFIG), "the data survived the outage");
    if let Some(l) = &s.leader {
        assert_eq!(l.name, "leader", "nobody else took the lock during the outage");
    }
    let still_leader = ok("update_leader after the outage", leader.update_leader(s.leader.as_ref()));
    assert!(still_leader || ok("acquire after the outage", leader.attempt_to_acquire_leader()));
    assert!(ok("touch_member after the outage", leader.touch_member(MEMBER_JSON)));
    let s = snapshot(wait_for_reads(replica));
    let held = s.leader.clone().expect("the leader key after the outage");
    assert_eq!(held.name, "leader");
    assert!(!ok("acquire by the replica", replica.attempt_to_acquire_leader()), "the lock is held");
    assert!(!ok("update_leader by the replica", replica.update_leader(Some(&held))), "the lock is not the replica's");
    assert!(ok("touch_member by the replica", replica.touch_member(MEMBER_JSON)));
    let config = s.config.expect("the config key");
    assert!(ok("set_config_value after the outage", leader.set_config_value("{}", Some(&config.version))));
    assert!(ok("update_leader again", leader.update_leader(Some(&held))), "the leader keeps its lock");
    let s = snapshot(leader);
    assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("leader"));
    let members: Vec<&str> = s.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(members, ["leader", "replica"]);
    assert_eq!(s.config.map(|c| c.value).as_deref(), Some("{}"));
}

/// The replica's client may need a moment longer to reconnect.
fn wait_for_reads(dcs: &dyn Dcs) -> &dyn Dcs {
    wait_for("the replica's client to read the store again", Duration::from_secs(60), || dcs.get_cluster().ok());
    dcs
}

const SYSID: &str = "7000000000000000042";
const CONFIG: &str = r#"{"ttl":30,"loop_wait":10}"#;

fn setup(f: &dyn DcsFixture) -> (Vec<Arc<dyn Dcs>>, Option<String>) {
    let leader = shared(f.new_dcs("leader"));
    let replica = shared(f.new_dcs("replica"));
    assert!(ok("initialize", leader.initialize(true, SYSID)));
    assert!(ok("set_config_value", leader.set_config_value(CONFIG, None)));
    assert!(ok("acquire", leader.attempt_to_acquire_leader()));
    assert!(ok("touch_member", leader.touch_member(MEMBER_JSON)));
    let version = snapshot(&*replica).leader.map(|l| l.version);
    (vec![leader, replica], version)
}

pub fn store_down_gives_dcs_errors_then_recovers(f: &dyn DcsFixture) {
    let (clients, version) = setup(f);
    f.stop_store();
    every_operation_fails(f, &clients, version);
    f.start_store();
    recovers(&clients);
}

pub fn frozen_store_gives_dcs_errors_then_recovers(f: &dyn DcsFixture) {
    let (clients, version) = setup(f);
    f.freeze_store();
    every_operation_fails(f, &clients, version);
    f.thaw_store();
    recovers(&clients);
}
