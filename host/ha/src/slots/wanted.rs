//! The slots a node must have (Patroni's `Cluster.get_replication_slots`
//! with `_get_members_slots`, `_get_permanent_slots` and
//! `_merge_permanent_slots`), and whether it must run with
//! `hot_standby_feedback` (`should_enforce_hot_standby_feedback`).

use std::collections::{BTreeMap, BTreeSet};

use palisade_model::{parse_int, slot_name_from_member_name, Cluster, Member, Tags};
use serde_json::{Map, Value};

use super::config::{Permanent, SlotConfig};
use crate::output::Level;

/// A slot a node must have, and the position the leader published for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WantedSlot {
    Physical {
        /// Where the leader says the slot is (0 and unknown are `None`).
        lsn: Option<u64>,
        /// Somebody streams from it here (`Some(true)`: never advance it
        /// by hand), nobody does (`Some(false)`), or not known (a slot
        /// kept for `retain_slots`).
        expected_active: Option<bool>,
    },
    Logical {
        database: String,
        plugin: String,
        /// `confirmed_flush_lsn` the primary published.
        lsn: Option<u64>,
    },
}

impl WantedSlot {
    pub fn slot_type(&self) -> &'static str {
        match self {
            WantedSlot::Physical { .. } => "physical",
            WantedSlot::Logical { .. } => "logical",
        }
    }

    /// Patroni's `compare_slots`: same type and, for a logical slot, the
    /// same database and plugin.
    pub fn same_kind(&self, slot_type: &str, database: Option<&str>, plugin: Option<&str>) -> bool {
        match self {
            WantedSlot::Physical { .. } => slot_type == "physical",
            WantedSlot::Logical { database: d, plugin: p, .. } => {
                slot_type == "logical" && database == Some(d.as_str()) && plugin == Some(p.as_str())
            }
        }
    }

    /// As Patroni prints a slot in its messages.
    pub fn describe(&self) -> String {
        match self {
            WantedSlot::Physical { .. } => "{'type': 'physical'}".into(),
            WantedSlot::Logical { database, plugin, .. } => {
                format!("{{'type': 'logical', 'database': '{database}', 'plugin': '{plugin}'}}")
            }
        }
    }
}

/// Slot name to what it must be.
pub type Wanted = BTreeMap<String, WantedSlot>;

/// The positions in the `status` key (Patroni's `Cluster.slots`): values
/// that are not numbers read as 0, as Patroni reads them.
fn status_positions(cluster: &Cluster) -> BTreeMap<String, u64> {
    cluster
        .status
        .slots
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), parse_int(v).and_then(|v| u64::try_from(v).ok()).unwrap_or(0)))
        .collect()
}

fn nonzero(v: u64) -> Option<u64> {
    (v > 0).then_some(v)
}

/// The name of the slot this node's WAL comes through on the primary
/// (Patroni's `get_slot_name_on_primary`): ours, or that of the member
/// our cascade starts from; `None` when the chain does not stream
/// (`nostream`) or loops.
pub fn slot_name_on_primary(cluster: &Cluster, name: &str, tags: &Map<String, Value>) -> Option<String> {
    let mut seen = BTreeSet::new();
    let mut name = name.to_string();
    let mut tags = tags.clone();
    loop {
        seen.insert(name.clone());
        let t = Tags(&tags);
        if t.nostream() {
            return None;
        }
        let upstream = t.replicatefrom().filter(|r| *r != name).and_then(|r| cluster.member(r));
        let Some(upstream) = upstream else {
            return Some(slot_name_from_member_name(&name));
        };
        if seen.contains(&upstream.name) {
            return None;
        }
        name.clone_from(&upstream.name);
        tags = upstream.tags_map().clone();
    }
}

/// Physical slots for the members (Patroni's `_get_members_slots`).
fn member_slots(
    cluster: &Cluster,
    cfg: &SlotConfig,
    me: &str,
    primary: bool,
    nofailover: bool,
    can_advance: bool,
    log: &mut Vec<(Level, String)>,
) -> Wanted {
    let mut out = Wanted::new();
    if !cfg.use_slots {
        return out;
    }
    let others: Vec<&Member> = cluster.members.iter().filter(|m| m.name != me && !m.tags().nostream()).collect();
    // A member streams from the leader unless its `replicatefrom` names
    // another member that exists; from a replica when it names it.
    let expected_active = |m: &Member| match m.tags().replicatefrom() {
        _ if primary => m.tags().replicatefrom().is_none_or(|r| r == me || !cluster.has_member(r)),
        Some(r) => r == me && cluster.leader_name() != Some(m.name.as_str()),
        None => false,
    };
    let members: Vec<&Member> = if can_advance && cfg.retains_member_slots() {
        // A node that cannot be promoted keeps only its cascade's slots.
        others.into_iter().filter(|m| !nofailover || m.tags().replicatefrom() == Some(me)).collect()
    } else {
        others.into_iter().filter(|m| expected_active(m)).collect()
    };
    let old_leader =
        cluster.leader_member().and_then(Member::patroni_version).is_some_and(|v| v.as_slice() < [4, 0, 0].as_slice());
    let positions = status_positions(cluster);
    let mut by_slot: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for m in &members {
        let slot = slot_name_from_member_name(&m.name);
        by_slot.entry(slot.clone()).or_default().push(&m.name);
        let mut lsn = positions.get(&slot).copied().unwrap_or(0);
        // The leader's slot for a cascading member does not move: the
        // member's own position is the better news.
        if m.tags().replicatefrom().is_some() || old_leader {
            lsn = lsn.max(m.lsn().unwrap_or(0));
        }
        out.insert(slot, WantedSlot::Physical { lsn: nonzero(lsn), expected_active: Some(expected_active(m)) });
    }
    let own = slot_name_from_member_name(me);
    if !nofailover {
        for slot in &cluster.status.retain_slots {
            if *slot != own && !out.contains_key(slot) {
                out.insert(slot.clone(), WantedSlot::Physical { lsn: None, expected_active: None });
            }
        }
    }
    let shared: Vec<String> = by_slot
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(slot, names)| format!("{} map to {slot}", names.join(", ")))
        .collect();
    if !shared.is_empty() {
        log.push((
            Level::Error,
            format!("Following cluster members share a replication slot name: {}", shared.join("; ")),
        ));
    }
    out
}

/// The permanent slots this node has (Patroni's `_get_permanent_slots`):
/// none when it cannot be promoted; only physical ones when it does not
/// stream from the primary (logical slots there would not be safe); on a
/// replica before PostgreSQL 11 only logical ones (to report them).
/// [`permanent_slots`] for a PostgreSQL of this version.
pub(crate) fn permanent_slots_of(
    cluster: &Cluster,
    cfg: &SlotConfig,
    me: &str,
    tags: &Map<String, Value>,
    primary: bool,
    server_version: u32,
    log: &mut Vec<(Level, String)>,
) -> Vec<(String, Permanent)> {
    permanent_slots(cluster, cfg, me, tags, primary, super::can_advance_slots(server_version), log)
}

fn permanent_slots(
    cluster: &Cluster,
    cfg: &SlotConfig,
    me: &str,
    tags: &Map<String, Value>,
    primary: bool,
    can_advance: bool,
    log: &mut Vec<(Level, String)>,
) -> Vec<(String, Permanent)> {
    if !cfg.use_slots || Tags(tags).nofailover() {
        return Vec::new();
    }
    let all = cfg.permanent_slots(log);
    if cfg.standby_cluster || slot_name_on_primary(cluster, me, tags).is_none() {
        return if can_advance { physical_only(all, cfg.standby_cluster) } else { Vec::new() };
    }
    if can_advance || primary {
        all
    } else {
        all.into_iter().filter(|(_, p)| !p.is_physical()).collect()
    }
}

/// Patroni's `permanent_physical_slots`: physical ones, without those
/// meant for the other kind of cluster (`cluster_type`).
fn physical_only(all: Vec<(String, Permanent)>, standby_cluster: bool) -> Vec<(String, Permanent)> {
    all.into_iter()
        .filter(|(_, p)| match p {
            Permanent::Physical { cluster_type } => {
                let excluded = if standby_cluster { "primary" } else { "standby" };
                cluster_type.as_deref() != Some(excluded)
            }
            Permanent::Logical { .. } => false,
        })
        .collect()
}

/// The names of the permanent physical slots of this cluster (kept out of
/// `retain_slots`).
pub(crate) fn permanent_physical_names(cfg: &SlotConfig) -> BTreeSet<String> {
    physical_only(cfg.permanent_slots(&mut Vec::new()), cfg.standby_cluster).into_iter().map(|(n, _)| n).collect()
}

/// Every slot node `me` (with these tags) must have, as primary or as
/// replica; problems with the configuration go to `log`.
pub fn wanted(
    cluster: &Cluster,
    cfg: &SlotConfig,
    me: &str,
    tags: &Map<String, Value>,
    primary: bool,
    server_version: u32,
    log: &mut Vec<(Level, String)>,
) -> Wanted {
    let can_advance = super::can_advance_slots(server_version);
    let nofailover = Tags(tags).nofailover();
    let mut slots = member_slots(cluster, cfg, me, primary, nofailover, can_advance, log);
    let permanent = permanent_slots(cluster, cfg, me, tags, primary, can_advance, log);
    let own = slot_name_from_member_name(me);
    // Which member slots belong to cascading members.
    let cascading: BTreeSet<String> = cluster
        .members
        .iter()
        .filter(|m| m.tags().replicatefrom().is_some())
        .map(|m| slot_name_from_member_name(&m.name))
        .collect();
    let member_positions: BTreeMap<String, u64> = cluster
        .members
        .iter()
        .filter(|m| m.tags().replicatefrom().is_some())
        .map(|m| (slot_name_from_member_name(&m.name), m.lsn().unwrap_or(0)))
        .collect();
    let positions = status_positions(cluster);
    let mut disabled = Vec::new();
    for (name, slot) in permanent {
        let published = positions.get(&name).copied().unwrap_or(0);
        match slot {
            Permanent::Physical { .. } => {
                if !slots.contains_key(&name) && name != own {
                    let lsn = published.max(member_positions.get(&name).copied().unwrap_or(0));
                    let expected_active = !cascading.contains(&name) && primary;
                    slots.insert(
                        name,
                        WantedSlot::Physical { lsn: nonzero(lsn), expected_active: Some(expected_active) },
                    );
                }
            }
            Permanent::Logical { database, plugin } => {
                if !can_advance {
                    disabled.push(name);
                    continue;
                }
                match slots.entry(name) {
                    std::collections::btree_map::Entry::Occupied(e) => log.push((
                        Level::Error,
                        format!(
                            "Permanent logical replication slot {{'{}': {{'database': '{database}', 'plugin': \
                             '{plugin}'}}}} is conflicting with physical replication slot for cluster member",
                            e.key()
                        ),
                    )),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(WantedSlot::Logical { database, plugin, lsn: nonzero(published) });
                    }
                }
            }
        }
    }
    if !disabled.is_empty() {
        log.push((
            Level::Error,
            format!(
                "Permanent logical replication slots supported by Patroni only starting from PostgreSQL 11. \
                 Following slots will not be created: {}.",
                super::py_list(&disabled)
            ),
        ));
    }
    slots
}

/// Must node `me` run with `hot_standby_feedback = on` (Patroni's
/// `should_enforce_hot_standby_feedback`)? Yes when it has permanent
/// logical slots (their catalog rows must survive on the primary), or
/// when a member cascading from it does. `None` when the cluster has no
/// dynamic configuration yet (keep what is in force).
pub fn enforce_hot_standby_feedback(
    cluster: &Cluster,
    cfg: &SlotConfig,
    me: &str,
    tags: &Map<String, Value>,
    server_version: u32,
) -> Option<bool> {
    cluster.config.as_ref()?;
    if cfg.standby_cluster || !super::can_advance_slots(server_version) {
        return Some(false);
    }
    Some(needs_feedback(cluster, cfg, me, tags, server_version, cluster.members.len() + 1))
}

fn needs_feedback(
    cluster: &Cluster,
    cfg: &SlotConfig,
    name: &str,
    tags: &Map<String, Value>,
    server_version: u32,
    depth: usize,
) -> bool {
    let slots = wanted(cluster, cfg, name, tags, false, server_version, &mut Vec::new());
    if slots.values().any(|s| matches!(s, WantedSlot::Logical { .. })) {
        return true;
    }
    if !cfg.use_slots || depth == 0 || slot_name_on_primary(cluster, name, tags).is_none() {
        return false;
    }
    cluster
        .members
        .iter()
        .filter(|m| m.tags().replicatefrom() == Some(name) && cluster.leader_name() != Some(m.name.as_str()))
        .any(|m| needs_feedback(cluster, cfg, &m.name, m.tags_map(), server_version, depth - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::tests::{cluster, config, member, no_tags, PG15};
    use serde_json::json;

    fn physical(lsn: u64, active: bool) -> WantedSlot {
        WantedSlot::Physical { lsn: nonzero(lsn), expected_active: Some(active) }
    }

    fn logical(db: &str, plugin: &str, lsn: u64) -> WantedSlot {
        WantedSlot::Logical { database: db.into(), plugin: plugin.into(), lsn: nonzero(lsn) }
    }

    fn slots(list: &[(&str, WantedSlot)]) -> Wanted {
        list.iter().map(|(n, s)| (n.to_string(), s.clone())).collect()
    }

    /// Patroni's test_nostream_slot_processing.
    #[test]
    fn nostream_and_cascades() {
        let c = cluster(
            vec![
                member("leader", json!({}), 0),
                member("test-2", json!({"nostream": "True"}), 10),
                member("test-3", json!({"replicatefrom": "test-2"}), 98),
                member("test-4", json!({}), 99),
            ],
            Some(json!({"optime": 100, "slots": {"leader": 99, "test_2": 98, "test_3": 97, "test_4": 98}})),
        );
        let cfg =
            config(json!({"foo": {"type": "logical", "database": "a", "plugin": "b"}, "bar": {"type": "physical"}}));
        let tags = |m: &str| c.member(m).map(|m| m.tags_map().clone()).unwrap_or_default();
        let mut log = Vec::new();
        #[rustfmt::skip]
        let cases = vec![
            ("the primary: every streaming member, cascading ones inactive, and the permanent slots",
             "leader", true,
             slots(&[("bar", physical(0, true)), ("foo", logical("a", "b", 0)),
                     ("test_3", physical(98, false)), ("test_4", physical(98, true))])),
            ("a nostream node: no logical slot; its cascade is active there", "test-2", false,
             slots(&[("bar", physical(0, false)), ("leader", physical(99, false)),
                     ("test_3", physical(98, true)), ("test_4", physical(98, false))])),
            ("a cascade below a nostream node: no logical slot either", "test-3", false,
             slots(&[("bar", physical(0, false)), ("leader", physical(99, false)),
                     ("test_4", physical(98, false))])),
            ("a streaming replica has every permanent slot", "test-4", false,
             slots(&[("bar", physical(0, false)), ("foo", logical("a", "b", 0)),
                     ("leader", physical(99, false)), ("test_3", physical(98, false))])),
        ];
        for (what, me, primary, want) in cases {
            assert_eq!(wanted(&c, &cfg, me, &tags(me), primary, PG15, &mut log), want, "{what}");
        }
        assert!(log.is_empty(), "{log:?}");
        assert_eq!(slot_name_on_primary(&c, "test-2", &tags("test-2")), None);
        assert_eq!(slot_name_on_primary(&c, "test-3", &tags("test-3")), None);
        assert_eq!(slot_name_on_primary(&c, "test-4", &tags("test-4")).as_deref(), Some("test_4"));
    }

    #[test]
    fn slot_name_on_primary_loops() {
        let c = cluster(
            vec![
                member("leader", json!({}), 0),
                member("node1", json!({"replicatefrom": "node2"}), 0),
                member("node2", json!({"replicatefrom": "node1"}), 0),
                member("node3", json!({"replicatefrom": "node4"}), 0),
                member("node4", json!({"replicatefrom": "node4"}), 0),
            ],
            None,
        );
        let tags = |m: &str| c.member(m).map(|m| m.tags_map().clone()).unwrap_or_default();
        assert_eq!(slot_name_on_primary(&c, "node1", &tags("node1")), None);
        // A member replicating from itself streams from the primary.
        assert_eq!(slot_name_on_primary(&c, "node3", &tags("node3")).as_deref(), Some("node4"));
        assert_eq!(
            slot_name_on_primary(&c, "gone", &json!({"replicatefrom": "x"}).as_object().cloned().unwrap_or_default())
                .as_deref(),
            Some("gone")
        );
    }

    #[test]
    fn member_slots_and_retention() {
        let three = vec![member("n1", json!({}), 0), member("n2", json!({}), 0), member("n3", json!({}), 0)];
        let status =
            json!({"optime": 900, "slots": {"n1": 900, "n3": "500", "n2": "x"}, "retain_slots": ["n1", "gone"]});
        let c = cluster(three.clone(), Some(status));
        let mut no_ttl = config(json!({}));
        no_ttl.member_slots_ttl = 0.0;
        let mut off = config(json!({"p": null}));
        off.use_slots = false;
        let nofailover = json!({"nofailover": true}).as_object().cloned().unwrap_or_default();
        let mut log = Vec::new();
        #[rustfmt::skip]
        let cases = vec![
            ("primary: every other member, and what the status retains", config(json!({})), "n1", no_tags(), true, PG15,
             slots(&[("gone", WantedSlot::Physical { lsn: None, expected_active: None }),
                     ("n2", physical(0, true)), ("n3", physical(500, true))])),
            ("replica: copies of every other member's slot", config(json!({})), "n2", no_tags(), false, PG15,
             slots(&[("gone", WantedSlot::Physical { lsn: None, expected_active: None }),
                     ("n1", physical(900, false)), ("n3", physical(500, false))])),
            ("replica that cannot be promoted: nothing", config(json!({})), "n2", nofailover.clone(), false, PG15,
             slots(&[])),
            ("member_slots_ttl 0: the primary has its streaming members' slots", no_ttl.clone(), "n1", no_tags(),
             true, PG15,
             slots(&[("gone", WantedSlot::Physical { lsn: None, expected_active: None }),
                     ("n2", physical(0, true)), ("n3", physical(500, true))])),
            ("member_slots_ttl 0: a replica only its cascade's", no_ttl.clone(), "n2", no_tags(), false, PG15,
             slots(&[("gone", WantedSlot::Physical { lsn: None, expected_active: None }),
                     ("n1", WantedSlot::Physical { lsn: None, expected_active: None })])),
            ("PostgreSQL 10: as with member_slots_ttl 0", config(json!({})), "n2", no_tags(), false, 100000,
             slots(&[("gone", WantedSlot::Physical { lsn: None, expected_active: None }),
                     ("n1", WantedSlot::Physical { lsn: None, expected_active: None })])),
            ("use_slots off: nothing, permanent slots neither", off, "n1", no_tags(), true, PG15, slots(&[])),
        ];
        for (what, cfg, me, tags, primary, version, want) in cases {
            assert_eq!(wanted(&c, &cfg, me, &tags, primary, version, &mut log), want, "{what}");
        }
        assert!(log.is_empty(), "{log:?}");
    }

    #[test]
    fn permanent_slot_rules() {
        let c = cluster(
            vec![
                member("n1", json!({}), 0),
                member("n2", json!({}), 0),
                member("casc", json!({"replicatefrom": "n2"}), 777),
            ],
            Some(json!({"optime": 900, "slots": {"perm": 300, "lg": 200, "casc": 100}})),
        );
        let cfg = config(json!({
            "perm": null, "lg": {"database": "db", "plugin": "pgoutput"}, "n1": {}, "n2": {"type": "logical",
            "database": "db", "plugin": "x"}, "casc": null
        }));
        let mut log = Vec::new();
        let got = wanted(&c, &cfg, "n1", &no_tags(), true, PG15, &mut log);
        #[rustfmt::skip]
        let want = slots(&[
            // The cascading member's slot: its own position beats the published one.
            ("casc", physical(777, false)),
            ("lg", logical("db", "pgoutput", 200)),
            ("n2", physical(0, true)),
            ("perm", physical(300, true)),
        ]);
        assert_eq!(got, want);
        // No permanent slot named after ourselves; the logical one named
        // after a member is refused.
        assert_eq!(log.len(), 1, "{log:?}");
        assert!(log[0].1.contains("'n2'") && log[0].1.contains("conflicting"), "{log:?}");

        let mut log = Vec::new();
        let got = wanted(&c, &cfg, "n2", &no_tags(), false, 100000, &mut log);
        assert!(got.values().all(|s| matches!(s, WantedSlot::Physical { .. })), "{got:?}");
        assert!(
            log.iter().any(|(_, l)| l.contains("only starting from PostgreSQL 11") && l.contains("['lg', 'n2']")),
            "{log:?}"
        );
    }

    #[test]
    fn members_sharing_a_slot_name_are_reported() {
        let c = cluster(
            vec![member("n1", json!({}), 0), member("test-3", json!({}), 0), member("test.3", json!({}), 0)],
            None,
        );
        let mut log = Vec::new();
        let got = wanted(&c, &config(json!({})), "n1", &no_tags(), true, PG15, &mut log);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["test_3"]);
        assert_eq!(
            log,
            [(
                Level::Error,
                "Following cluster members share a replication slot name: test-3, test.3 map to test_3".to_string()
            )]
        );
    }

    #[test]
    fn hot_standby_feedback() {
        let logical_cfg = config(json!({"lg": {"database": "db", "plugin": "pgoutput"}}));
        let physical_cfg = config(json!({"ph": null}));
        let c = cluster(
            vec![
                member("leader", json!({}), 0),
                member("mid", json!({"nofailover": true}), 0),
                member("leaf", json!({"replicatefrom": "mid"}), 0),
                member("loop1", json!({"replicatefrom": "loop2"}), 0),
                member("loop2", json!({"replicatefrom": "loop1"}), 0),
            ],
            None,
        );
        let tags = |m: &str| c.member(m).map(|m| m.tags_map().clone()).unwrap_or_default();
        let mut standby = logical_cfg.clone();
        standby.standby_cluster = true;
        #[rustfmt::skip]
        let cases = [
            ("a replica with logical slots", &logical_cfg, "leader", PG15, Some(true)),
            ("no logical slots", &physical_cfg, "leader", PG15, Some(false)),
            ("nofailover, but a member cascading from it has logical slots", &logical_cfg, "mid", PG15, Some(true)),
            ("a cascade whose chain loops", &logical_cfg, "loop1", PG15, Some(false)),
            ("standby cluster", &standby, "leader", PG15, Some(false)),
            ("PostgreSQL 10", &logical_cfg, "leader", 100000, Some(false)),
        ];
        for (what, cfg, me, version, want) in cases {
            assert_eq!(enforce_hot_standby_feedback(&c, cfg, me, &tags(me), version), want, "{what}");
        }
        let no_config = Cluster { config: None, ..c.clone() };
        assert_eq!(enforce_hot_standby_feedback(&no_config, &logical_cfg, "leader", &no_tags(), PG15), None);
    }
}
