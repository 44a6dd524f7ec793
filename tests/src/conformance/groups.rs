//! Citus groups: several groups of one scope side by side (Patroni's
//! `/<namespace>/<scope>/<group>/...`). `get_mpp_groups` reads every group
//! at once, from any client, and `get_cluster` still sees its own group
//! only.

use std::collections::BTreeMap;

use palisade_plugin_api::{Dcs, DcsSnapshot};

use super::{ok, snapshot, DcsFixture, MEMBER_JSON};

const SYNC: &str = r#"{"leader":"w2a","sync_standby":null}"#;

fn groups(dcs: &dyn Dcs) -> BTreeMap<i32, DcsSnapshot> {
    ok("get_mpp_groups", dcs.get_mpp_groups())
}

fn leader(s: &DcsSnapshot) -> Option<&str> {
    s.leader.as_ref().map(|l| l.name.as_str())
}

fn members(s: &DcsSnapshot) -> Vec<&str> {
    s.members.iter().map(|m| m.name.as_str()).collect()
}

fn member_json(name: &str) -> String {
    MEMBER_JSON.replace("\"state\"", &format!("\"name\":\"{name}\",\"state\""))
}

/// A coordinator group 0, worker groups 1 and 2, and a client without a
/// group (keys directly under the scope): every client's `get_mpp_groups`
/// finds exactly groups 0, 1 and 2, each with its own leader, members,
/// initialize, config and sync; the group-less keys are in none of them.
pub fn every_group_is_read_at_once(f: &dyn DcsFixture) {
    let c = f.new_dcs_in_group("c1", 0);
    let w1a = f.new_dcs_in_group("w1a", 1);
    let w1b = f.new_dcs_in_group("w1b", 1);
    let w2a = f.new_dcs_in_group("w2a", 2);
    let plain = f.new_dcs("plain");
    assert_eq!(groups(&*c), BTreeMap::new(), "a fresh scope has no group");

    assert!(ok("initialize", c.initialize(true, "7000000000000000000")));
    assert!(ok("attempt_to_acquire_leader", c.attempt_to_acquire_leader()));
    assert!(ok("touch_member", c.touch_member(&member_json("c1"))));
    assert!(ok("set_config_value", c.set_config_value(r#"{"ttl":30}"#, None)));
    assert!(ok("initialize", w1a.initialize(true, "7000000000000000001")));
    assert!(ok("attempt_to_acquire_leader", w1a.attempt_to_acquire_leader()));
    assert!(!ok("attempt_to_acquire_leader", w1b.attempt_to_acquire_leader()), "group 1's lock is taken");
    assert!(ok("touch_member", w1a.touch_member(&member_json("w1a"))));
    assert!(ok("touch_member", w1b.touch_member(&member_json("w1b"))));
    assert!(ok("attempt_to_acquire_leader", w2a.attempt_to_acquire_leader()), "group 2 has its own lock");
    assert!(ok("touch_member", w2a.touch_member(&member_json("w2a"))));
    assert!(ok("set_sync_state_value", w2a.set_sync_state_value(SYNC, None)).is_some());
    assert!(ok("attempt_to_acquire_leader", plain.attempt_to_acquire_leader()), "the scope's own lock");
    assert!(ok("touch_member", plain.touch_member(&member_json("plain"))));

    for (who, dcs) in [("c1", &c), ("w1b", &w1b), ("w2a", &w2a), ("plain", &plain)] {
        let g = groups(&**dcs);
        assert_eq!(g.keys().copied().collect::<Vec<_>>(), [0, 1, 2], "{who}: every group, none for the scope's keys");
        assert_eq!(leader(&g[&0]), Some("c1"), "{who}");
        assert_eq!(members(&g[&0]), ["c1"], "{who}");
        assert_eq!(g[&0].initialize.as_deref(), Some("7000000000000000000"), "{who}");
        assert_eq!(g[&0].config.as_ref().map(|c| c.value.as_str()), Some(r#"{"ttl":30}"#), "{who}");
        assert!(g[&0].sync.is_none(), "{who}: group 0 has no sync key");
        assert_eq!(leader(&g[&1]), Some("w1a"), "{who}");
        assert_eq!(members(&g[&1]), ["w1a", "w1b"], "{who}");
        assert_eq!(g[&1].initialize.as_deref(), Some("7000000000000000001"), "{who}");
        assert!(g[&1].config.is_none(), "{who}: group 1 has no config key");
        assert_eq!(leader(&g[&2]), Some("w2a"), "{who}");
        assert_eq!(members(&g[&2]), ["w2a"], "{who}");
        assert!(g[&2].sync.is_some(), "{who}: group 2's sync key");
        assert!(g[&2].initialize.is_none(), "{who}");
        let values: Vec<&str> = g[&1].members.iter().map(|m| m.value.as_str()).collect();
        assert_eq!(values, [member_json("w1a"), member_json("w1b")], "{who}: member values as written");
    }
}

/// `get_cluster` of a group client sees its own group only, and a client
/// without a group sees no group's lock or config; the
/// versions `get_mpp_groups` returns are the ones compare-and-set takes;
/// a change in one group leaves the others alone.
pub fn groups_are_apart_and_their_versions_work(f: &dyn DcsFixture) {
    let c = f.new_dcs_in_group("c1", 0);
    let w1 = f.new_dcs_in_group("w1", 1);
    let plain = f.new_dcs("plain");
    assert!(ok("attempt_to_acquire_leader", c.attempt_to_acquire_leader()));
    assert!(ok("touch_member", c.touch_member(&member_json("c1"))));
    assert!(ok("set_config_value", c.set_config_value(r#"{"a":1}"#, None)));
    assert!(ok("attempt_to_acquire_leader", w1.attempt_to_acquire_leader()));
    assert!(ok("touch_member", w1.touch_member(&member_json("w1"))));
    assert!(ok("set_config_value", w1.set_config_value(r#"{"b":1}"#, None)));

    let s = snapshot(&*c);
    assert_eq!((leader(&s), members(&s)), (Some("c1"), vec!["c1"]), "group 0 reads group 0 only");
    assert_eq!(s.config.as_ref().map(|c| c.value.as_str()), Some(r#"{"a":1}"#));
    let s = snapshot(&*w1);
    assert_eq!((leader(&s), members(&s)), (Some("w1"), vec!["w1"]), "group 1 reads group 1 only");
    assert_eq!(s.config.as_ref().map(|c| c.value.as_str()), Some(r#"{"b":1}"#));
    // Without a group, no group's lock or config is the scope's own. (Its
    // members may include the groups' on Kubernetes, where a member is a
    // Pod with the scope's labels, as in Patroni.)
    let s = snapshot(&*plain);
    assert_eq!(leader(&s), None, "no group's leader is the scope's own");
    assert!(s.config.is_none(), "no group's config is the scope's own");

    // The versions of the all-groups read are the store's own.
    let g = groups(&*plain);
    let v0 = g[&0].config.as_ref().map(|c| c.version.clone()).expect("group 0's config");
    assert_eq!(Some(&v0), snapshot(&*c).config.as_ref().map(|c| &c.version), "the same version as get_cluster's");
    assert!(ok("set_config_value", c.set_config_value(r#"{"a":2}"#, Some(&v0))), "CAS on that version");
    assert!(!ok("set_config_value", c.set_config_value(r#"{"a":3}"#, Some(&v0))), "the old version lost");

    // A change in one group leaves the others alone.
    let l1 = snapshot(&*w1).leader;
    assert!(ok("delete_leader", w1.delete_leader(l1.as_ref())));
    let g = groups(&*c);
    assert_eq!(leader(&g[&0]), Some("c1"));
    assert_eq!(g[&0].config.as_ref().map(|c| c.value.as_str()), Some(r#"{"a":2}"#));
    assert_eq!(leader(&g[&1]), None, "group 1 lost its leader");
    assert_eq!(members(&g[&1]), ["w1"]);
}
