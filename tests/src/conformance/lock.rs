//! The leader lock: one winner, owner-only renewal and release, expiry.

use std::thread;
use std::time::{Duration, Instant};

use palisade_plugin_api::Dcs;

use super::{clients, ok, race, snapshot, winners, DcsFixture, MEMBER_JSON, RACERS};

/// Of [`RACERS`] clients racing for the leader key, exactly one wins, the
/// key holds its name, and nobody else can take it or renew it.
pub fn only_one_acquirer_wins(f: &dyn DcsFixture) {
    let clients = clients(f, "racer", RACERS);
    let results = race(&clients, |_, c| ok("attempt_to_acquire_leader", c.attempt_to_acquire_leader()));
    let won = winners(&results, |w| *w);
    assert_eq!(won.len(), 1, "exactly one of the racers wins: {results:?}");
    let winner = won[0];
    let leader = snapshot(&*clients[0]).leader.expect("a leader key after the race");
    assert_eq!(leader.name, format!("racer{}", winner + 1));
    // A second round, the key held: nobody wins, the key does not move.
    let again = race(&clients, |i, c| i != winner && ok("a second attempt", c.attempt_to_acquire_leader()));
    assert!(again.iter().all(|w| !w), "the key is taken: {again:?}");
    let loser = (winner + 1) % clients.len();
    assert!(!ok("update_leader by a loser", clients[loser].update_leader(Some(&leader))));
    assert_eq!(snapshot(&*clients[loser]).leader.as_ref(), Some(&leader), "failed attempts change nothing");
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

/// The leader key and member keys live while renewed (for three ttls),
/// go away about `ttl` after the renewals stop, and then another member
/// acquires the lock; the old owner can no longer renew it.
pub fn keys_expire_unless_renewed(f: &dyn DcsFixture) {
    let ttl = f.timing().ttl;
    let a = f.new_dcs("a");
    let b = f.new_dcs("b");
    assert!(ok("acquire", a.attempt_to_acquire_leader()));
    renew(&*a, &[&*b]);
    let first = snapshot(&*b).leader.expect("a leader key");

    // Renewed for three times the ttl: everything stays, and renewing does
    // not make the key change hands.
    let until = Instant::now() + ttl * 3;
    while Instant::now() < until {
        thread::sleep(Duration::from_millis(700));
        renew(&*a, &[&*b]);
        let s = snapshot(&*b);
        assert_eq!(s.leader.as_ref().map(|l| l.name.as_str()), Some("a"), "the renewed leader key must stay");
        assert!(has_member(&*b, "a") && has_member(&*b, "b"), "renewed member keys must stay");
        assert!(!ok("acquire a held lock", b.attempt_to_acquire_leader()), "the renewed lock is held");
    }
    assert_eq!(snapshot(&*b).leader.map(|l| l.name), Some(first.name.clone()));

    // `a` stops renewing, `b` goes on: a's keys go, b's stay.
    let a = f.stop_renewing(a);
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

    // The lock is free: b takes it, and a (back from its pause, or
    // started again) cannot renew a lock that is no longer its own.
    assert!(ok("acquire after the expiry", b.attempt_to_acquire_leader()), "the expired lock must be free");
    let a = a.unwrap_or_else(|| f.new_dcs("a"));
    let taken = snapshot(&*a).leader.expect("b's leader key");
    assert_eq!(taken.name, "b");
    assert!(!ok("update_leader by the old owner", a.update_leader(Some(&first))), "a's lock expired");
    assert!(!ok("acquire by the old owner", a.attempt_to_acquire_leader()));
    assert_eq!(snapshot(&*a).leader.map(|l| l.name).as_deref(), Some("b"));
    // a comes back as a member.
    assert!(ok("touch_member after the pause", a.touch_member(MEMBER_JSON)));
    assert!(has_member(&*b, "a"));
}

/// Only one of [`RACERS`] racers creates the initialize key; it can be
/// set unconditionally (`create_new=false` overwrites) and cancelled, and
/// created again after that.
pub fn initialize_is_created_once_and_can_be_cancelled(f: &dyn DcsFixture) {
    let clients = clients(f, "init", RACERS);
    let sysids: Vec<String> = (1..=RACERS).map(|i| format!("71000000000000000{i:02}")).collect();
    let results = race(&clients, |i, c| ok("initialize", c.initialize(true, &sysids[i])));
    let won = winners(&results, |w| *w);
    assert_eq!(won.len(), 1, "exactly one initializer wins: {results:?}");
    let c = &clients[0];
    assert_eq!(snapshot(&**c).initialize.as_ref(), Some(&sysids[won[0]]));
    assert!(!ok("initialize again", c.initialize(true, "7199999999999999999")));
    assert_eq!(snapshot(&**c).initialize.as_ref(), Some(&sysids[won[0]]), "a failed create changes nothing");
    assert!(ok("initialize without create_new", c.initialize(false, "7188888888888888888")));
    assert_eq!(snapshot(&**c).initialize.as_deref(), Some("7188888888888888888"));
    assert!(ok("cancel_initialization", c.cancel_initialization()));
    assert_eq!(snapshot(&**c).initialize, None);
    // A second race after the cancel: again exactly one.
    let results = race(&clients, |i, c| ok("initialize after cancel", c.initialize(true, &sysids[i])));
    let won = winners(&results, |w| *w);
    assert_eq!(won.len(), 1, "exactly one initializer wins after the cancel: {results:?}");
    assert_eq!(snapshot(&**c).initialize.as_ref(), Some(&sysids[won[0]]));
    // Setting a key that does not exist is not a promise of Patroni's
    // AbstractDCS (etcd3 creates it, the v2 API and ZooKeeper refuse), but
    // the answer must tell the truth about what is stored.
    assert!(ok("cancel_initialization", c.cancel_initialization()));
    let set = ok("initialize without create_new on no key", c.initialize(false, "7177777777777777777"));
    let expected = set.then_some("7177777777777777777");
    assert_eq!(snapshot(&**c).initialize.as_deref(), expected, "initialize(false) on no key answered {set}");
}
