//! The leader lock: one winner, owner-only renewal and release, expiry.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use palisade_plugin_api::Dcs;

use super::{ok, snapshot, DcsFixture, MEMBER_JSON};

/// Of N clients racing for the leader key, exactly one wins.
pub fn only_one_acquirer_wins(f: &dyn DcsFixture) {
    let names: Vec<String> = (1..=5).map(|i| format!("racer{i}")).collect();
    let clients: Vec<Box<dyn Dcs>> = names.iter().map(|n| f.new_dcs(n)).collect();
    let barrier = Barrier::new(clients.len());
    let results: Vec<bool> = thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .map(|c| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    ok("attempt_to_acquire_leader", c.attempt_to_acquire_leader())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a racer panicked")).collect()
    });
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, w)| **w).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one of the racers wins: {results:?}");
    let winner = winners[0];
    let leader = snapshot(&*clients[0]).leader.expect("a leader key after the race");
    assert_eq!(leader.name, names[winner]);
    let loser = (winner + 1) % clients.len();
    assert!(!ok("a second attempt", clients[loser].attempt_to_acquire_leader()), "the key is taken");
    assert!(ok("the winner's update_leader", clients[winner].update_leader(Some(&leader))));
}

/// `update_leader` by somebody else fails and leaves the key alone.
pub fn update_leader_by_a_non_owner_fails(f: &dyn DcsFixture) {
    let owner = f.new_dcs("owner");
    let other = f.new_dcs("other");
    assert!(ok("acquire", owner.attempt_to_acquire_leader()));
    let before = snapshot(&*other).leader.expect("a leader key");
    assert!(!ok("update_leader by a non-owner", other.update_leader(Some(&before))));
    assert!(!ok("update_leader by a non-owner without a key", other.update_leader(None)));
    let after = snapshot(&*other).leader.expect("the leader key is still there");
    assert_eq!(after, before, "a non-owner must not change the leader key");
    assert!(ok("update_leader by the owner", owner.update_leader(Some(&after))));
    assert_eq!(snapshot(&*owner).leader.map(|l| l.name).as_deref(), Some("owner"));
}

/// `delete_leader` removes the key only for its owner.
pub fn delete_leader_only_by_the_owner(f: &dyn DcsFixture) {
    let owner = f.new_dcs("owner");
    let other = f.new_dcs("other");
    assert!(ok("acquire", owner.attempt_to_acquire_leader()));
    let leader = snapshot(&*other).leader.expect("a leader key");
    assert!(!ok("delete_leader by a non-owner", other.delete_leader(Some(&leader))));
    assert_eq!(snapshot(&*other).leader.as_ref(), Some(&leader), "a non-owner must not delete the key");
    assert!(ok("delete_leader by the owner", owner.delete_leader(Some(&leader))));
    assert_eq!(snapshot(&*other).leader, None);
    assert!(ok("acquire after release", other.attempt_to_acquire_leader()));
}

fn renew(leader: &dyn Dcs, others: &[&dyn Dcs]) {
    let current = snapshot(leader).leader;
    assert!(ok("update_leader while renewing", leader.update_leader(current.as_ref())), "lost the lock");
    assert!(ok("touch_member while renewing", leader.touch_member(MEMBER_JSON)));
    for o in others {
        assert!(ok("touch_member while renewing", o.touch_member(MEMBER_JSON)));
    }
}

fn has_member(dcs: &dyn Dcs, name: &str) -> bool {
    snapshot(dcs).members.iter().any(|m| m.name == name)
}

/// The leader key and member keys live while renewed and go away about
/// `ttl` after the renewals stop.
pub fn keys_expire_unless_renewed(f: &dyn DcsFixture) {
    let ttl = f.timing().ttl;
    let a = f.new_dcs("a");
    let b = f.new_dcs("b");
    assert!(ok("acquire", a.attempt_to_acquire_leader()));
    renew(&*a, &[&*b]);

    // Renewed for twice the ttl: everything stays.
    let until = Instant::now() + ttl * 2;
    while Instant::now() < until {
        thread::sleep(Duration::from_millis(700));
        renew(&*a, &[&*b]);
        let s = snapshot(&*b);
        assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("a"), "the renewed leader key must stay");
        assert!(has_member(&*b, "a") && has_member(&*b, "b"), "renewed member keys must stay");
    }

    // `a` stops renewing, `b` goes on: a's keys go, b's stay.
    let stopped = Instant::now();
    let limit = ttl + Duration::from_secs(15);
    loop {
        thread::sleep(Duration::from_millis(300));
        assert!(ok("touch_member", b.touch_member(MEMBER_JSON)));
        let s = snapshot(&*b);
        if s.leader.is_none() && !s.members.iter().any(|m| m.name == "a") {
            break;
        }
        assert!(stopped.elapsed() < limit, "a's keys were still there {limit:?} after its last renewal: {s:?}");
    }
    let gone_after = stopped.elapsed();
    assert!(
        gone_after + Duration::from_millis(1500) >= ttl,
        "keys must live about ttl ({ttl:?}) after the last renewal, went after {gone_after:?}"
    );
    assert!(has_member(&*b, "b"), "the renewed member key stays");
}

/// Only one of N racers creates the initialize key; it can be set
/// unconditionally and cancelled.
pub fn initialize_is_created_once_and_can_be_cancelled(f: &dyn DcsFixture) {
    let clients: Vec<Box<dyn Dcs>> = (1..=4).map(|i| f.new_dcs(&format!("init{i}"))).collect();
    let sysids: Vec<String> = (1..=4).map(|i| format!("710000000000000000{i}")).collect();
    let barrier = Barrier::new(clients.len());
    let results: Vec<bool> = thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .zip(&sysids)
            .map(|(c, sysid)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    ok("initialize", c.initialize(true, sysid))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a racer panicked")).collect()
    });
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, w)| **w).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one initializer wins: {results:?}");
    let c = &clients[0];
    assert_eq!(snapshot(&**c).initialize.as_ref(), Some(&sysids[winners[0]]));
    assert!(!ok("initialize again", c.initialize(true, "7199999999999999999")));
    assert!(ok("initialize without create_new", c.initialize(false, "7188888888888888888")));
    assert_eq!(snapshot(&**c).initialize.as_deref(), Some("7188888888888888888"));
    assert!(ok("cancel_initialization", c.cancel_initialization()));
    assert_eq!(snapshot(&**c).initialize, None);
    assert!(ok("initialize after cancel", c.initialize(true, "7177777777777777777")));
}
