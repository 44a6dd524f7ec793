//! The store goes away (stopped, or frozen): every operation fails with
//! `DcsUnavailable` within about `retry_timeout` (no hang, no panic), and
//! the plugin works again once the store is back.

use std::sync::Arc;
use std::time::Duration;

use palisade_plugin_api::{Dcs, ErrorKind, PluginResult};
use palisade_test_support::wait_for;

use super::{bounded, ok, shared, snapshot, DcsFixture, MEMBER_JSON};

type Op = fn(&dyn Dcs) -> PluginResult<()>;

fn ops() -> Vec<(&'static str, Op)> {
    vec![
        ("get_cluster", |d| d.get_cluster().map(drop)),
        ("attempt_to_acquire_leader", |d| d.attempt_to_acquire_leader().map(drop)),
        ("update_leader", |d| d.update_leader(None).map(drop)),
        ("touch_member", |d| d.touch_member(MEMBER_JSON).map(drop)),
        ("set_config_value", |d| d.set_config_value("{}", None).map(drop)),
        ("set_sync_state_value", |d| d.set_sync_state_value("{}", Some("1")).map(drop)),
        ("initialize", |d| d.initialize(true, "7000000000000000001").map(drop)),
        ("write_status", |d| d.write_status("{}").map(drop)),
        ("write_failsafe", |d| d.write_failsafe("{}").map(drop)),
    ]
}

/// Run every operation at once against the unreachable store.
fn every_operation_fails(f: &dyn DcsFixture, clients: &[Arc<dyn Dcs>], leader_version: Option<String>) {
    let retry_timeout = f.timing().retry_timeout;
    let limit = retry_timeout + Duration::from_secs(20);
    let mut running = Vec::new();
    for (i, (name, op)) in ops().into_iter().enumerate() {
        let dcs = clients[i % clients.len()].clone();
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

fn recovers(leader: &dyn Dcs) {
    let s = wait_for("the plugin to read the store again", Duration::from_secs(60), || leader.get_cluster().ok());
    let still_leader = ok("update_leader after the outage", leader.update_leader(s.leader.as_ref()));
    assert!(still_leader || ok("acquire after the outage", leader.attempt_to_acquire_leader()));
    assert!(ok("touch_member after the outage", leader.touch_member(MEMBER_JSON)));
    assert!(ok("set_config_value after the outage", leader.set_config_value("{}", None)));
    let s = snapshot(leader);
    assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("leader"));
    assert!(s.members.iter().any(|m| m.name == "leader"));
}

fn setup(f: &dyn DcsFixture) -> (Vec<Arc<dyn Dcs>>, Option<String>) {
    let leader = shared(f.new_dcs("leader"));
    let replica = shared(f.new_dcs("replica"));
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
    recovers(&*clients[0]);
}

pub fn frozen_store_gives_dcs_errors_then_recovers(f: &dyn DcsFixture) {
    let (clients, version) = setup(f);
    f.freeze_store();
    every_operation_fails(f, &clients, version);
    f.thaw_store();
    recovers(&*clients[0]);
}
