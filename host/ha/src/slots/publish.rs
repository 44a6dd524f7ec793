//! What the leader publishes about slots in the `status` key (Patroni's
//! `Postgresql.slots`, `Cluster.maybe_filter_permanent_slots` and
//! `AbstractDCS._build_retain_slots`).

use std::collections::{BTreeMap, BTreeSet};

use palisade_model::{slot_name_from_member_name, Cluster};
use serde_json::{json, Map, Value};

use super::config::SlotConfig;
use super::plan::Existing;
use super::wanted::{permanent_physical_names, permanent_slots_of, wanted, WantedSlot};
use crate::output::Level;

/// The `slots` of the `status` key: where the leader's slots are
/// (`confirmed_flush_lsn` of a logical slot, `restart_lsn` of a physical
/// one) and, under our own slot name, our WAL position, so that replicas
/// move their copies forward. With `member_slots_ttl` 0 only permanent
/// slots are published. `None` when there is nothing to publish.
pub fn published_slots(
    cluster: &Cluster,
    cfg: &SlotConfig,
    me: &str,
    tags: &Map<String, Value>,
    server_version: u32,
    existing: &[Existing],
    own_lsn: u64,
) -> Option<Map<String, Value>> {
    if !super::can_advance_slots(server_version) {
        return None;
    }
    let quiet = &mut Vec::new();
    let mut out = known_slots(cluster, cfg, me, tags, server_version, existing, own_lsn);
    if !cfg.retains_member_slots() {
        // Only permanent slots, and no logical one named like a member.
        let permanent: BTreeMap<String, bool> =
            permanent_slots_of(cluster, cfg, "", &Map::new(), false, server_version, quiet)
                .into_iter()
                .map(|(n, p)| (n, p.is_physical()))
                .collect();
        let members: BTreeSet<String> = cluster.members.iter().map(|m| slot_name_from_member_name(&m.name)).collect();
        out.retain(|name, _| permanent.get(name).is_some_and(|physical| *physical || !members.contains(name)));
    }
    (!out.is_empty()).then_some(out)
}

/// Where the primary's slots are, without the filter of the `status` key
/// (Patroni's `Postgresql.slots`: what a primary sends with
/// `POST /failsafe`): the slots it must have and has, and our own WAL
/// position under our slot name. Empty before PostgreSQL 11.
pub fn known_slots(
    cluster: &Cluster,
    cfg: &SlotConfig,
    me: &str,
    tags: &Map<String, Value>,
    server_version: u32,
    existing: &[Existing],
    own_lsn: u64,
) -> Map<String, Value> {
    let mut out = Map::new();
    if !super::can_advance_slots(server_version) {
        return out;
    }
    let quiet = &mut Vec::new();
    let permanent_here = permanent_slots_of(cluster, cfg, me, tags, false, server_version, quiet);
    if cfg.retains_member_slots() || !permanent_here.is_empty() {
        let ours = wanted(cluster, cfg, me, tags, true, server_version, quiet);
        for e in existing {
            let Some(w) = ours.get(&e.name) else {
                continue;
            };
            if !w.same_kind(&e.slot_type, e.database.as_deref(), e.plugin.as_deref()) {
                continue;
            }
            let lsn = match w {
                WantedSlot::Logical { .. } => e.confirmed_flush_lsn,
                WantedSlot::Physical { .. } => e.restart_lsn,
            };
            if let Some(lsn) = lsn {
                out.insert(e.name.clone(), json!(lsn));
            }
        }
    }
    out.insert(slot_name_from_member_name(me), json!(own_lsn));
    out
}

/// `retain_slots`: the member slots the leader keeps, each with the last
/// time it was seen in `published`; those not seen for
/// `member_slots_ttl` are let go (and said so). Returns the new times.
pub fn retained_slots(
    previous: &BTreeMap<String, f64>,
    now: f64,
    cluster: &Cluster,
    cfg: &SlotConfig,
    me: &str,
    published: Option<&Map<String, Value>>,
) -> (BTreeMap<String, f64>, Vec<(Level, String)>) {
    let mut out = previous.clone();
    if let Some(published) = published.filter(|p| !p.is_empty()) {
        let mut members: BTreeSet<String> = cluster
            .members
            .iter()
            .filter(|m| !m.tags().nostream())
            .map(|m| slot_name_from_member_name(&m.name))
            .collect();
        if !cluster.has_member(me) {
            // Our member key is missing: we cannot see our tags; count us in.
            members.insert(slot_name_from_member_name(me));
        }
        let permanent = permanent_physical_names(cfg);
        for name in published.keys() {
            if members.contains(name) && !permanent.contains(name) {
                out.insert(name.clone(), now);
            }
        }
    }
    let mut log = Vec::new();
    out.retain(|name, seen| {
        let keep = *seen + cfg.member_slots_ttl > now;
        if !keep {
            log.push((
                Level::Info,
                format!(
                    "Replication slot '{name}' for absent cluster member is expired after {} sec.",
                    cfg.member_slots_ttl as i64
                ),
            ));
        }
        keep
    });
    (out, log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::tests::{cluster, config, member, no_tags, PG15};

    fn phys(name: &str, restart: u64) -> Existing {
        Existing { name: name.into(), slot_type: "physical".into(), restart_lsn: Some(restart), ..Existing::default() }
    }

    fn logi(name: &str, confirmed: u64) -> Existing {
        Existing {
            name: name.into(),
            slot_type: "logical".into(),
            database: Some("db".into()),
            plugin: Some("pgoutput".into()),
            restart_lsn: Some(1),
            confirmed_flush_lsn: Some(confirmed),
            ..Existing::default()
        }
    }

    #[test]
    fn published() {
        let c = cluster(vec![member("n1", json!({}), 0), member("n2", json!({}), 0), member("n3", json!({}), 0)], None);
        let perm = config(json!({"perm": null, "lg": {"database": "db", "plugin": "pgoutput"}, "n2": null}));
        let mut no_ttl = perm.clone();
        no_ttl.member_slots_ttl = 0.0;
        let mut nothing = config(json!({}));
        nothing.member_slots_ttl = 0.0;
        let existing = [
            phys("n2", 500),
            phys("n3", 400),
            phys("perm", 300),
            logi("lg", 200),
            phys("stray", 100),
            Existing { slot_type: "physical".into(), ..logi("lg2", 9) },
        ];
        #[rustfmt::skip]
        let cases = [
            ("member slots retained: every known slot, and us",
             &perm, PG15, Some(json!({"n2": 500, "n3": 400, "perm": 300, "lg": 200, "n1": 1000}))),
            ("member_slots_ttl 0: permanent slots only",
             &no_ttl, PG15, Some(json!({"n2": 500, "perm": 300, "lg": 200}))),
            ("no permanent slots and no retention: nothing", &nothing, PG15, None),
            ("PostgreSQL 10: nothing", &perm, 100000, None),
        ];
        for (what, cfg, version, want) in cases {
            let got = published_slots(&c, cfg, "n1", &no_tags(), version, &existing, 1000).map(Value::Object);
            assert_eq!(got, want, "{what}");
        }
        // Unfiltered (what POST /failsafe carries): member slots too.
        let known = known_slots(&c, &no_ttl, "n1", &no_tags(), PG15, &existing, 1000);
        assert_eq!(Value::Object(known), json!({"n2": 500, "n3": 400, "perm": 300, "lg": 200, "n1": 1000}));
        assert!(known_slots(&c, &perm, "n1", &no_tags(), 100000, &existing, 1000).is_empty());
    }

    #[test]
    fn retention() {
        let c = cluster(
            vec![member("n1", json!({}), 0), member("n2", json!({}), 0), member("ns", json!({"nostream": true}), 0)],
            None,
        );
        let cfg = SlotConfig { member_slots_ttl: 100.0, ..config(json!({"perm": null})) };
        let published = json!({"n1": 1, "n2": 2, "ns": 3, "perm": 4, "stray": 5});
        let published = published.as_object();
        let prev: BTreeMap<String, f64> = [("gone".to_string(), 10.0), ("old".to_string(), 0.0)].into_iter().collect();
        let (got, log) = retained_slots(&prev, 100.0, &c, &cfg, "n1", published);
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(names, ["gone", "n1", "n2"]);
        assert_eq!(got.get("n2"), Some(&100.0));
        assert_eq!(
            log,
            [(Level::Info, "Replication slot 'old' for absent cluster member is expired after 100 sec.".to_string())]
        );
        // Nothing published: only expiry.
        let (got, _) = retained_slots(&prev, 109.0, &c, &cfg, "n1", None);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["gone"]);
        let (got, _) = retained_slots(&prev, 110.0, &c, &cfg, "n1", None);
        assert!(got.is_empty());
        // Our member key missing: our name counts as a member's.
        let alone = cluster(vec![member("n2", json!({}), 0)], None);
        let (got, _) = retained_slots(&BTreeMap::new(), 1.0, &alone, &cfg, "n1", published);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["n1", "n2"]);
    }
}
