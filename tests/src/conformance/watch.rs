//! `watch`: wakes soon after the leader key changes, sleeps out its
//! timeout otherwise.

use std::thread;
use std::time::{Duration, Instant};

use palisade_plugin_api::Dcs;

use super::{ok, snapshot, DcsFixture};

const LONG: Duration = Duration::from_secs(10);
/// Generous: the promise is "well under a second"; this only has to be
/// clearly shorter than the timeout.
const WOKE_WITHIN: Duration = Duration::from_secs(5);

/// `watcher` watches the leader `owner` holds while `change` runs on
/// another thread; the watch must report the change soon after it.
fn wake_on(f: &dyn DcsFixture, change: impl FnOnce(&dyn Dcs, &dyn Dcs) + Send) {
    let owner = f.new_dcs("owner");
    let other = f.new_dcs("other");
    let watcher = f.new_dcs("watcher");
    assert!(ok("acquire", owner.attempt_to_acquire_leader()));
    let leader = snapshot(&*watcher).leader.expect("a leader key");
    let (woke, changed_at, woke_at) = thread::scope(|s| {
        let changer = s.spawn(|| {
            thread::sleep(Duration::from_millis(700));
            change(&*owner, &*other);
            Instant::now()
        });
        let woke = ok("watch", watcher.watch(Some(&leader.version), LONG));
        let woke_at = Instant::now();
        (woke, changer.join().expect("the change panicked"), woke_at)
    });
    assert!(woke, "watch must report the change");
    let late = woke_at.saturating_duration_since(changed_at);
    eprintln!("watch woke {late:?} after the change");
    assert!(late < WOKE_WITHIN, "watch woke {late:?} after the change, its timeout was {LONG:?}");
}

pub fn watch_wakes_when_the_leader_is_deleted(f: &dyn DcsFixture) {
    wake_on(f, |owner, _| {
        let leader = snapshot(owner).leader;
        assert!(ok("delete_leader", owner.delete_leader(leader.as_ref())));
    });
}

pub fn watch_wakes_when_the_leader_changes(f: &dyn DcsFixture) {
    wake_on(f, |_, other| {
        assert!(ok("take_leader", other.take_leader()));
    });
}

/// Somebody else (a Patroni node, an operator) writes the leader key.
pub fn watch_wakes_when_the_leader_is_written_behind_its_back(f: &dyn DcsFixture) {
    wake_on(f, |_, _| f.write_raw("leader", b"intruder"));
}

/// The owner stops renewing: the watch wakes when the key expires, about
/// `ttl` later, well before its own timeout.
pub fn watch_wakes_when_the_leader_expires(f: &dyn DcsFixture) {
    let ttl = f.timing().ttl;
    let owner = f.new_dcs("owner");
    let watcher = f.new_dcs("watcher");
    assert!(ok("acquire", owner.attempt_to_acquire_leader()));
    let leader = snapshot(&*watcher).leader.expect("a leader key");
    let _paused = f.stop_renewing(owner);
    let timeout = ttl * 3 + Duration::from_secs(20);
    let started = Instant::now();
    let woke = ok("watch", watcher.watch(Some(&leader.version), timeout));
    let took = started.elapsed();
    eprintln!("watch woke {took:?} after the last renewal (ttl {ttl:?})");
    assert!(woke, "watch must report the expiry");
    assert!(took < timeout, "woke after {took:?}, its timeout was {timeout:?}");
    assert_eq!(snapshot(&*watcher).leader, None, "it woke because the key expired");
}

/// The leader changed between the snapshot and the watch: the watch
/// (given the version from the snapshot) returns at once instead of
/// missing the change.
pub fn watch_sees_a_change_made_before_it_started(f: &dyn DcsFixture) {
    let owner = f.new_dcs("owner");
    let other = f.new_dcs("other");
    let watcher = f.new_dcs("watcher");
    assert!(ok("acquire", owner.attempt_to_acquire_leader()));
    let leader = snapshot(&*watcher).leader.expect("a leader key");
    assert!(ok("delete_leader", owner.delete_leader(Some(&leader))));
    assert!(ok("acquire", other.attempt_to_acquire_leader()));
    let started = Instant::now();
    let woke = ok("watch", watcher.watch(Some(&leader.version), LONG));
    let took = started.elapsed();
    assert!(woke, "the leader key changed since version {}", leader.version);
    assert!(took < WOKE_WITHIN, "watch returned after {took:?}, its timeout was {LONG:?}");
}

pub fn watch_times_out_without_a_change(f: &dyn DcsFixture) {
    let owner = f.new_dcs("owner");
    let watcher = f.new_dcs("watcher");
    assert!(ok("acquire", owner.attempt_to_acquire_leader()));
    let leader = snapshot(&*watcher).leader.expect("a leader key");
    for (version, timeout) in [(Some(leader.version.as_str()), Duration::from_secs(2)), (None, Duration::from_secs(1))]
    {
        let started = Instant::now();
        let woke = ok("watch", watcher.watch(version, timeout));
        let took = started.elapsed();
        assert!(!woke, "nothing changed, watch({version:?}) must time out");
        assert!(took >= timeout, "watch({version:?}) returned after {took:?}, before its {timeout:?}");
        assert!(took < timeout + WOKE_WITHIN, "watch({version:?}) took {took:?} for a {timeout:?} timeout");
    }
}
