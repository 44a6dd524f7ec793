//! Compare-and-set under contention: [`RACERS`] clients write the same key
//! with the same version at the same moment. Exactly one wins, the key
//! holds the winner's value, and its version moves on (so every loser's
//! version is stale from then on).

use palisade_plugin_api::DcsSnapshot;

use super::{clients, ok, race, snapshot, winners, DcsFixture, RACERS};

fn config(i: usize) -> String {
    format!(r#"{{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":{i}}}"#)
}

fn sync(i: usize) -> String {
    format!(r#"{{"leader":"racer{i}","quorum":0,"sync_standby":"racer{}"}}"#, i + 1)
}

/// Whether the sync state is gone: no key, or (as Patroni's ZooKeeper
/// module "deletes" it) the empty state `{}`.
pub(crate) fn sync_cleared(s: &DcsSnapshot) -> bool {
    s.sync.as_ref().is_none_or(|v| v.value == "{}")
}

/// `set_config_value` with the same version from every racer.
pub fn config_race_has_one_winner(f: &dyn DcsFixture) {
    let clients = clients(f, "racer", RACERS);
    assert!(ok("set_config_value", clients[0].set_config_value(&config(0), None)));
    let before = snapshot(&*clients[0]).config.expect("the config key");
    let results =
        race(&clients, |i, c| ok("set_config_value", c.set_config_value(&config(i + 1), Some(&before.version))));
    let won = winners(&results, |w| *w);
    assert_eq!(won.len(), 1, "exactly one compare-and-set on the same version wins: {results:?}");
    let after = snapshot(&*clients[0]).config.expect("the config key");
    assert_eq!(after.value, config(won[0] + 1), "the key holds the winner's value");
    assert_ne!(after.version, before.version, "the winner's write moved the version");
    // The losers' version is stale now; the current one still works.
    let stale = race(&clients, |i, c| {
        ok("a stale set_config_value", c.set_config_value(&config(100 + i), Some(&before.version)))
    });
    assert!(stale.iter().all(|w| !w), "a stale version never wins: {stale:?}");
    assert_eq!(snapshot(&*clients[0]).config, Some(after.clone()));
    assert!(ok(
        "set_config_value on the new version",
        clients[won[0]].set_config_value(&config(0), Some(&after.version))
    ));
}

/// `set_sync_state_value` with the same version from every racer: one
/// gets the new version back, and it is the version the key now has.
pub fn sync_race_has_one_winner(f: &dyn DcsFixture) {
    let clients = clients(f, "racer", RACERS);
    let v0 = ok("set_sync_state_value", clients[0].set_sync_state_value(&sync(0), None)).expect("a version");
    let results = race(&clients, |i, c| ok("set_sync_state_value", c.set_sync_state_value(&sync(i + 1), Some(&v0))));
    let won = winners(&results, Option::is_some);
    assert_eq!(won.len(), 1, "exactly one compare-and-set on the same version wins: {results:?}");
    let new = results[won[0]].clone().expect("the winner's version");
    assert_ne!(new, v0, "the winner's write moved the version");
    let s = snapshot(&*clients[0]).sync.expect("the sync key");
    assert_eq!((s.value, s.version), (sync(won[0] + 1), new), "the key holds the winner's value and version");
}

/// `delete_sync_state` with a stale version fails for everyone; with the
/// current version, of many racers exactly one deletes.
pub fn sync_delete_race_has_one_winner(f: &dyn DcsFixture) {
    let clients = clients(f, "racer", RACERS);
    let v0 = ok("set_sync_state_value", clients[0].set_sync_state_value(&sync(0), None)).expect("a version");
    let v1 = ok("set_sync_state_value", clients[1].set_sync_state_value(&sync(1), Some(&v0))).expect("a version");
    let stale = race(&clients, |_, c| ok("a stale delete_sync_state", c.delete_sync_state(Some(&v0))));
    assert!(stale.iter().all(|d| !d), "a stale version never deletes: {stale:?}");
    let s = snapshot(&*clients[0]).sync.expect("the sync key is still there");
    assert_eq!((s.value.as_str(), s.version.as_str()), (sync(1).as_str(), v1.as_str()));
    let results = race(&clients, |_, c| ok("delete_sync_state", c.delete_sync_state(Some(&v1))));
    let won = winners(&results, |d| *d);
    assert_eq!(won.len(), 1, "exactly one delete on the same version wins: {results:?}");
    let s = snapshot(&*clients[0]);
    assert!(sync_cleared(&s), "the sync state is gone: {:?}", s.sync);
}

/// `set_failover_value` with the same version from every racer (two
/// `switchover` requests at once).
pub fn failover_race_has_one_winner(f: &dyn DcsFixture) {
    let clients = clients(f, "racer", RACERS);
    let value = |i: usize| format!(r#"{{"leader":"racer1","member":"racer{i}"}}"#);
    assert!(ok("set_failover_value", clients[0].set_failover_value(&value(0), None)));
    let before = snapshot(&*clients[0]).failover.expect("the failover key");
    let results =
        race(&clients, |i, c| ok("set_failover_value", c.set_failover_value(&value(i + 1), Some(&before.version))));
    let won = winners(&results, |w| *w);
    assert_eq!(won.len(), 1, "exactly one compare-and-set on the same version wins: {results:?}");
    let after = snapshot(&*clients[0]).failover.expect("the failover key");
    assert_eq!(after.value, value(won[0] + 1));
    assert_ne!(after.version, before.version);
}
