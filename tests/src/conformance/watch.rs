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
