//! Which physical replication slots a node keeps for the members, as
//! Patroni 4 keeps them: a decision on the cluster snapshot, the slot
//! settings, this node's role and the slots its PostgreSQL reports.
//!
//! The leader has a slot for every member streaming from it. Replicas keep
//! copies of the other members' slots, advanced to the positions the
//! leader publishes in the `status` key (never past what they replayed),
//! so that whoever is promoted next already has a slot for everybody. A
//! slot whose member is gone is kept while it is retained (`retain_slots`,
//! for `member_slots_ttl`), then dropped; permanent slots and slots
//! matching `ignore_slots` are never touched.
//!
//! Permanent and logical slots are not created or synchronised here (the
//! configuration table of settings not acted on says so).

use std::collections::{BTreeMap, BTreeSet};

use palisade_model::{parse_int, slot_name_from_member_name, Cluster};

/// One `ignore_slots` rule; a missing field matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreSlot {
    pub name: Option<String>,
    /// `physical` or `logical`.
    pub slot_type: Option<String>,
}

/// The slot settings of the dynamic configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotSettings {
    /// `postgresql.use_slots`.
    pub use_slots: bool,
    /// Names of the `permanent_slots`.
    pub permanent: BTreeSet<String>,
    pub ignore: Vec<IgnoreSlot>,
}

impl SlotSettings {
    /// A slot this configuration says to leave alone.
    pub fn protected(&self, name: &str) -> bool {
        self.permanent.contains(name)
            || self.ignore.iter().any(|rule| {
                rule.name.as_deref().is_none_or(|n| n == name)
                    && rule.slot_type.as_deref().is_none_or(|t| t == "physical")
            })
    }
}

/// What this node is, for its slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotRole<'a> {
    /// The leader with a running primary; `retained` are the slots of
    /// absent members still within `member_slots_ttl`.
    Leader { retained: &'a BTreeSet<String> },
    /// A running replica that has replayed up to `replayed`.
    Replica { replayed: u64 },
}

/// One change to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotAction {
    Create(String),
    /// Move the slot forward to this position.
    Advance(String, u64),
    Drop(String),
}

/// The slot changes for node `me` whose PostgreSQL has the physical
/// slots `existing` (name and restart position).
pub fn slot_actions(
    cluster: &Cluster,
    settings: &SlotSettings,
    me: &str,
    role: &SlotRole<'_>,
    existing: &BTreeMap<String, u64>,
) -> Vec<SlotAction> {
    if !settings.use_slots {
        return Vec::new();
    }
    let own = slot_name_from_member_name(me);
    let streaming = cluster.members.iter().filter(|m| m.name != me && !m.tags().nostream());
    let mut out = Vec::new();
    match role {
        SlotRole::Leader { retained } => {
            let wanted: BTreeSet<String> = streaming
                // A member whose `replicatefrom` names a member that is
                // gone streams from the leader (see `node_to_follow`).
                .filter(|m| m.tags().replicatefrom().is_none_or(|r| r == me || cluster.member(r).is_none()))
                .map(|m| slot_name_from_member_name(&m.name))
                .filter(|s| *s != own)
                .collect();
            out.extend(wanted.iter().filter(|s| !existing.contains_key(*s)).cloned().map(SlotAction::Create));
            out.extend(
                existing
                    .keys()
                    .filter(|s| !wanted.contains(*s) && !settings.protected(s) && !retained.contains(*s))
                    .cloned()
                    .map(SlotAction::Drop),
            );
        }
        SlotRole::Replica { replayed } => {
            // Without the leader's published positions there is nothing
            // to copy yet: leave the slots alone.
            let Some(published) = &cluster.status.slots else {
                return Vec::new();
            };
            let mut wanted: BTreeSet<String> =
                streaming.map(|m| slot_name_from_member_name(&m.name)).filter(|s| *s != own).collect();
            wanted.extend(cluster.status.retain_slots.iter().filter(|s| **s != own).cloned());
            out.extend(wanted.iter().filter(|s| !existing.contains_key(*s)).cloned().map(SlotAction::Create));
            for slot in &wanted {
                let Some(target) = published.get(slot).and_then(parse_int).and_then(|v| u64::try_from(v).ok()) else {
                    continue;
                };
                let target = target.min(*replayed);
                if target > existing.get(slot).copied().unwrap_or(0) {
                    out.push(SlotAction::Advance(slot.clone(), target));
                }
            }
            out.extend(
                existing
                    .keys()
                    .filter(|s| !wanted.contains(*s) && !settings.protected(s))
                    .cloned()
                    .map(SlotAction::Drop),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_model::{Member, Status};
    use serde_json::{json, Value};

    fn member(name: &str, tags: Value) -> Member {
        let value = json!({"conn_url": "postgres://h:5432/postgres", "api_url": "http://h:8008/patroni",
                           "state": "running", "role": "replica", "tags": tags});
        Member::from_value(name, "1", "", &value.to_string()).expect("a member")
    }

    fn cluster(members: &[(&str, Value)], status: Option<Value>) -> Cluster {
        Cluster {
            members: members.iter().map(|(n, t)| member(n, t.clone())).collect(),
            status: status.map(|s| Status::from_value(&s.to_string())).unwrap_or_default(),
            ..Cluster::default()
        }
    }

    fn settings(use_slots: bool, permanent: &[&str], ignore: &[(Option<&str>, Option<&str>)]) -> SlotSettings {
        SlotSettings {
            use_slots,
            permanent: permanent.iter().map(|s| s.to_string()).collect(),
            ignore: ignore
                .iter()
                .map(|(n, t)| IgnoreSlot { name: n.map(String::from), slot_type: t.map(String::from) })
                .collect(),
        }
    }

    fn slots(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
        list.iter().map(|(n, l)| (n.to_string(), *l)).collect()
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    use SlotAction::{Advance, Create, Drop};

    /// What, cluster, settings, retained, existing slots, expected actions.
    type LeaderCase<'a> =
        (&'static str, Cluster, SlotSettings, &'a BTreeSet<String>, BTreeMap<String, u64>, Vec<SlotAction>);
    /// What, cluster, replayed position, existing slots, expected actions.
    type ReplicaCase = (&'static str, Cluster, u64, BTreeMap<String, u64>, Vec<SlotAction>);

    fn create(n: &str) -> SlotAction {
        Create(n.into())
    }
    fn drop_(n: &str) -> SlotAction {
        Drop(n.into())
    }

    #[test]
    fn on_the_leader() {
        let none = BTreeSet::new();
        let retained = names(&["gone"]);
        let three = [("n1", json!({})), ("n2", json!({})), ("n3", json!({}))];
        #[rustfmt::skip]
        let cases: Vec<LeaderCase<'_>> = vec![
            ("a slot for every other member", cluster(&three, None), settings(true, &[], &[]), &none,
             slots(&[]), vec![create("n2"), create("n3")]),
            ("existing slots are kept", cluster(&three, None), settings(true, &[], &[]), &none,
             slots(&[("n2", 5), ("n3", 0)]), vec![]),
            ("use_slots off: nothing at all", cluster(&three, None), settings(false, &[], &[]), &none,
             slots(&[("stray", 1)]), vec![]),
            ("nostream members get no slot", cluster(&[("n1", json!({})), ("n2", json!({"nostream": true}))], None),
             settings(true, &[], &[]), &none, slots(&[("n2", 1)]), vec![drop_("n2")]),
            ("replicatefrom another member: no slot here",
             cluster(&[("n1", json!({})), ("n2", json!({"replicatefrom": "n3"})), ("n3", json!({}))], None),
             settings(true, &[], &[]), &none, slots(&[]), vec![create("n3")]),
            ("replicatefrom a member that is gone: it streams from us, a slot",
             cluster(&[("n1", json!({})), ("n2", json!({"replicatefrom": "gone"}))], None),
             settings(true, &[], &[]), &none, slots(&[]), vec![create("n2")]),
            ("replicatefrom us: a slot",
             cluster(&[("n1", json!({})), ("n2", json!({"replicatefrom": "n1"}))], None),
             settings(true, &[], &[]), &none, slots(&[]), vec![create("n2")]),
            ("names are made slot-safe", cluster(&[("n1", json!({})), ("Node-2.b", json!({}))], None),
             settings(true, &[], &[]), &none, slots(&[]), vec![create("node_2_b")]),
            ("slots of absent members are dropped", cluster(&three, None), settings(true, &[], &[]), &none,
             slots(&[("n2", 0), ("n3", 0), ("gone", 7)]), vec![drop_("gone")]),
            ("unless retained", cluster(&three, None), settings(true, &[], &[]), &retained,
             slots(&[("n2", 0), ("n3", 0), ("gone", 7)]), vec![]),
            ("permanent slots are never dropped", cluster(&three, None), settings(true, &["keep"], &[]), &none,
             slots(&[("n2", 0), ("n3", 0), ("keep", 1)]), vec![]),
            ("ignore_slots by name", cluster(&three, None), settings(true, &[], &[(Some("x"), None)]), &none,
             slots(&[("n2", 0), ("n3", 0), ("x", 1), ("y", 1)]), vec![drop_("y")]),
            ("ignore_slots of type physical matches every name", cluster(&three, None),
             settings(true, &[], &[(None, Some("physical"))]), &none,
             slots(&[("n2", 0), ("n3", 0), ("x", 1)]), vec![]),
            ("ignore_slots of type logical does not protect a physical slot", cluster(&three, None),
             settings(true, &[], &[(Some("x"), Some("logical"))]), &none,
             slots(&[("n2", 0), ("n3", 0), ("x", 1)]), vec![drop_("x")]),
            ("our own name's slot is not ours to keep", cluster(&three, None), settings(true, &[], &[]), &none,
             slots(&[("n1", 0), ("n2", 0), ("n3", 0)]), vec![drop_("n1")]),
        ];
        for (what, cluster, settings, retained, existing, want) in cases {
            let got = slot_actions(&cluster, &settings, "n1", &SlotRole::Leader { retained }, &existing);
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn on_a_replica() {
        let three = [("n1", json!({})), ("n2", json!({})), ("n3", json!({}))];
        let published = |extra: Value| {
            let mut s = json!({"optime": 900, "slots": {"n1": 900, "n3": 500}});
            if let (Some(s), Value::Object(extra)) = (s.as_object_mut(), extra) {
                s.extend(extra);
            }
            Some(s)
        };
        #[rustfmt::skip]
        let cases: Vec<ReplicaCase> = vec![
            ("nothing published: slots left alone", cluster(&three, None), 1000,
             slots(&[("stray", 1)]), vec![]),
            ("copies of the others' slots, advanced to the published positions",
             cluster(&three, published(json!({}))), 1000, slots(&[]),
             vec![create("n1"), create("n3"), Advance("n1".into(), 900), Advance("n3".into(), 500)]),
            ("never past what we replayed", cluster(&three, published(json!({}))), 600,
             slots(&[("n1", 0), ("n3", 0)]), vec![Advance("n1".into(), 600), Advance("n3".into(), 500)]),
            ("never backwards", cluster(&three, published(json!({}))), 1000,
             slots(&[("n1", 950), ("n3", 500)]), vec![]),
            ("retained slots of absent members are kept",
             cluster(&three, published(json!({"retain_slots": ["n1", "n2", "gone"]}))), 1000,
             slots(&[("n1", 900), ("n3", 500), ("gone", 5)]), vec![]),
            ("unretained slots of absent members are dropped", cluster(&three, published(json!({}))), 1000,
             slots(&[("n1", 900), ("n3", 500), ("gone", 5)]), vec![drop_("gone")]),
            ("a position that is not a number is skipped",
             cluster(&three, Some(json!({"optime": 1, "slots": {"n1": "x", "n3": -4}}))), 1000,
             slots(&[("n1", 0), ("n3", 0)]), vec![]),
            ("nostream members are not copied",
             cluster(&[("n1", json!({})), ("n2", json!({})), ("n3", json!({"nostream": true}))], published(json!({}))),
             1000, slots(&[("n1", 900), ("n3", 500)]), vec![drop_("n3")]),
        ];
        for (what, cluster, replayed, existing, want) in cases {
            let got =
                slot_actions(&cluster, &settings(true, &[], &[]), "n2", &SlotRole::Replica { replayed }, &existing);
            assert_eq!(got, want, "{what}");
        }
    }
}
