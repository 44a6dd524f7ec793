//! What to do about the slots a node's PostgreSQL has (Patroni's
//! `SlotsHandler.sync_replication_slots`): drop, create, advance, and on
//! a replica which logical slots to copy from the primary.

use std::collections::BTreeSet;

use palisade_model::Cluster;
use serde_json::{Map, Value};

use super::config::SlotConfig;
use super::wanted::{wanted, Wanted, WantedSlot};
use crate::output::Level;

/// A slot PostgreSQL reports (`pg_replication_slots`, not temporary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Existing {
    pub name: String,
    /// `physical` or `logical`.
    pub slot_type: String,
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub restart_lsn: Option<u64>,
    pub confirmed_flush_lsn: Option<u64>,
    /// `xmin` (hot standby feedback reached the slot).
    pub xmin: Option<u64>,
    pub catalog_xmin: Option<u64>,
    /// `wal_status` (PostgreSQL 13+): `lost` means the WAL it needs is gone.
    pub wal_status: Option<String>,
    /// `failover` (PostgreSQL 17+): PostgreSQL synchronises this logical
    /// slot to standbys itself (the daemon does not list those it synced).
    pub failover: bool,
}

/// What the node's PostgreSQL is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRole {
    Primary,
    /// In recovery, replayed up to `replayed`.
    Replica {
        replayed: u64,
    },
}

/// Everything the slot decision is made from.
#[derive(Clone, Debug)]
pub struct SlotInput<'a> {
    pub cluster: &'a Cluster,
    pub config: &'a SlotConfig,
    /// Our member name and our own tags (from the configuration).
    pub me: &'a str,
    pub tags: &'a Map<String, Value>,
    pub role: SlotRole,
    /// `server_version_num`.
    pub server_version: u32,
    pub existing: &'a [Existing],
    /// Logical slots that could not be advanced because their WAL is gone
    /// or they were invalidated: copy them again.
    pub recopy: &'a BTreeSet<String>,
}

/// One change to a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotAction {
    /// Drop it unless it is in use.
    Drop(String),
    /// Create a physical slot that reserves WAL at once.
    CreatePhysical(String),
    /// Create a logical slot in `database` with `plugin` (on the primary).
    CreateLogical { name: String, database: String, plugin: String },
    /// `pg_replication_slot_advance` on a physical slot.
    AdvancePhysical { name: String, lsn: u64 },
    /// `pg_replication_slot_advance` on a logical slot, connected to its
    /// database.
    AdvanceLogical { name: String, database: String, lsn: u64 },
}

/// The decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlotPlan {
    /// In order: drops first, then creations and advances.
    pub actions: Vec<SlotAction>,
    /// Logical slots to copy from the primary (a replica only): read their
    /// state files from the leader, stop PostgreSQL, write them, start.
    pub copy: Vec<String>,
    pub log: Vec<(Level, String)>,
    /// The slots this node must have (for publishing and copying).
    pub wanted: Wanted,
}

impl SlotPlan {
    fn drop(&mut self, name: &str, gone: &mut BTreeSet<String>, level: Level, line: String) {
        self.log.push((level, line));
        self.actions.push(SlotAction::Drop(name.to_string()));
        gone.insert(name.to_string());
    }
}

/// Patroni's `sync_replication_slots`: the changes that bring this node's
/// slots in line with what it must have.
pub fn plan(input: &SlotInput<'_>) -> SlotPlan {
    let mut out = SlotPlan::default();
    // Without a dynamic configuration in the DCS Patroni leaves slots alone.
    if input.cluster.config.is_none() {
        return out;
    }
    let cfg = input.config;
    let primary = input.role == SlotRole::Primary;
    out.wanted = wanted(input.cluster, cfg, input.me, input.tags, primary, input.server_version, &mut out.log);
    let ignore = cfg.ignore_rules(&mut out.log);
    let ignored = |e: &Existing| {
        ignore.iter().any(|r| r.matches(&e.name, &e.slot_type, e.database.as_deref(), e.plugin.as_deref()))
    };
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let pg17 = input.server_version >= 170000;
    let leader = input.cluster.leader_name();

    // PostgreSQL 17 will not synchronise a failover slot to a former
    // primary that still has its own copy (`synced` false there): drop it.
    if pg17 && !primary && leader.is_some_and(|l| l != input.me) {
        for e in input.existing.iter().filter(|e| e.slot_type == "logical" && e.failover) {
            let line =
                format!("Trying to drop logical replication slot '{}' with failover=true and synced=false", e.name);
            out.drop(&e.name, &mut gone, Level::Info, line);
        }
    }

    // Slots nobody wants, or wanted and lost: dropped (never while paused,
    // never when ignore_slots covers them).
    for e in input.existing {
        // Failover slots are PostgreSQL's business.
        if gone.contains(&e.name) || (pg17 && e.slot_type == "logical" && e.failover) {
            continue;
        }
        let lost = e.wal_status.as_deref() == Some("lost");
        if out.wanted.contains_key(&e.name) && !lost {
            continue;
        }
        if cfg.paused || ignored(e) {
            continue;
        }
        let line = if lost && out.wanted.contains_key(&e.name) {
            format!("Trying to drop replication slot '{}' with wal_status=lost", e.name)
        } else {
            format!("Trying to drop unknown replication slot '{}'", e.name)
        };
        out.drop(&e.name, &mut gone, Level::Info, line);
    }
    // Wanted with other attributes (type, database, plugin): dropped, then
    // created again below.
    let wanted_now = out.wanted.clone();
    for (name, w) in &wanted_now {
        let Some(e) = input.existing.iter().find(|e| &e.name == name && !gone.contains(name)) else {
            continue;
        };
        if !w.same_kind(&e.slot_type, e.database.as_deref(), e.plugin.as_deref()) {
            let from = describe_existing(e);
            let line = format!(
                "Trying to drop replication slot '{name}' because value is changing from {from} to {}",
                w.describe()
            );
            out.drop(name, &mut gone, Level::Info, line);
        }
    }

    let can_advance = super::can_advance_slots(input.server_version);
    // Slots with xmin that nobody streams from hold back vacuum: drop them,
    // unless there is no leader, or we lead but still run as a replica.
    let clean_inactive = leader.is_some_and(|l| l != input.me || primary);
    let present = |name: &str, gone: &BTreeSet<String>| {
        input.existing.iter().find(|e| e.name == name && !gone.contains(name)).cloned()
    };

    for (name, w) in &wanted_now {
        let WantedSlot::Physical { lsn, expected_active } = w else {
            continue;
        };
        let mut e = present(name, &gone).filter(|e| e.slot_type == "physical");
        if let Some(x) = e.as_ref().filter(|_| can_advance) {
            if clean_inactive && *expected_active == Some(false) && x.xmin.is_some_and(|v| v != 0) {
                let line = format!(
                    "Dropping physical replication slot {name} because of its xmin value {}",
                    x.xmin.unwrap_or(0)
                );
                out.drop(name, &mut gone, Level::Warn, line);
                e = None;
            }
        }
        match e {
            None => out.actions.push(SlotAction::CreatePhysical(name.clone())),
            Some(x) if can_advance && *expected_active != Some(true) && x.xmin.is_none_or(|v| v == 0) => {
                let Some(restart) = x.restart_lsn.filter(|l| *l > 0) else {
                    let line = format!(
                        "Dropping physical replication slot {name} because it has no restart_lsn. This slot was \
                         probably not created by Patroni, but by an external agent."
                    );
                    out.drop(name, &mut gone, Level::Warn, line);
                    continue;
                };
                if let Some(target) = lsn.filter(|l| *l > restart) {
                    out.actions.push(SlotAction::AdvancePhysical { name: name.clone(), lsn: target });
                }
            }
            Some(_) => {}
        }
    }

    for (name, w) in &wanted_now {
        let WantedSlot::Logical { database, plugin, lsn } = w else {
            continue;
        };
        let e = present(name, &gone);
        match input.role {
            SlotRole::Primary => {
                if e.is_none_or(|e| e.slot_type != "logical") {
                    out.actions.push(SlotAction::CreateLogical {
                        name: name.clone(),
                        database: database.clone(),
                        plugin: plugin.clone(),
                    });
                }
            }
            SlotRole::Replica { replayed } => match e {
                // Copied already: follow the primary's confirmed position,
                // never past what we replayed.
                Some(e) if w.same_kind(&e.slot_type, e.database.as_deref(), e.plugin.as_deref()) => {
                    if input.recopy.contains(name) {
                        out.copy.push(name.clone());
                    } else if let Some(lsn) = lsn {
                        let target = (*lsn).min(replayed);
                        if e.confirmed_flush_lsn.unwrap_or(0) < target {
                            out.actions.push(SlotAction::AdvanceLogical {
                                name: name.clone(),
                                database: database.clone(),
                                lsn: target,
                            });
                        }
                    }
                }
                // Only slots the primary reports a position for are copied.
                None if lsn.is_some() => out.copy.push(name.clone()),
                _ => {}
            },
        }
    }
    out
}

fn describe_existing(e: &Existing) -> String {
    match e.slot_type.as_str() {
        "logical" => format!(
            "{{'type': 'logical', 'database': '{}', 'plugin': '{}'}}",
            e.database.as_deref().unwrap_or(""),
            e.plugin.as_deref().unwrap_or("")
        ),
        t => format!("{{'type': '{t}'}}"),
    }
}

/// A logical slot as the primary has it, with its state file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderSlot {
    pub name: String,
    pub slot_type: String,
    /// The database's name.
    pub database: Option<String>,
    pub plugin: Option<String>,
    pub catalog_xmin: Option<u64>,
    pub confirmed_flush_lsn: Option<u64>,
    /// `pg_replslot/<name>/state`.
    pub data: Vec<u8>,
}

/// Which of the slots read from the primary to copy (Patroni's
/// `copy_logical_slots` check): those this replica must have, with the
/// configured database and plugin; the others are reported.
pub fn copy_choice(wanted: &Wanted, from_primary: Vec<LeaderSlot>) -> (Vec<LeaderSlot>, Vec<(Level, String)>) {
    let mut log = Vec::new();
    let mut out = Vec::new();
    for slot in from_primary {
        let Some(w) = wanted.get(&slot.name) else {
            continue;
        };
        if w.same_kind(&slot.slot_type, slot.database.as_deref(), slot.plugin.as_deref()) {
            out.push(slot);
        } else {
            log.push((
                Level::Warn,
                format!(
                    "Will not copy the logical slot \"{}\" due to the configuration mismatch: configuration={}, \
                     slot on the primary={{'type': '{}', 'database': '{}', 'plugin': '{}'}}",
                    slot.name,
                    w.describe(),
                    slot.slot_type,
                    slot.database.as_deref().unwrap_or(""),
                    slot.plugin.as_deref().unwrap_or("")
                ),
            ));
        }
    }
    (out, log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::tests::{cluster, config, member, no_tags, PG15};
    use serde_json::json;
    use SlotAction::{AdvanceLogical, AdvancePhysical, CreateLogical, CreatePhysical, Drop};

    fn phys(name: &str, restart: u64) -> Existing {
        Existing {
            name: name.into(),
            slot_type: "physical".into(),
            restart_lsn: Some(restart).filter(|l| *l > 0),
            ..Existing::default()
        }
    }

    fn logi(name: &str, db: &str, plugin: &str, confirmed: u64) -> Existing {
        Existing {
            name: name.into(),
            slot_type: "logical".into(),
            database: Some(db.into()),
            plugin: Some(plugin.into()),
            restart_lsn: Some(confirmed),
            confirmed_flush_lsn: Some(confirmed),
            catalog_xmin: Some(700),
            ..Existing::default()
        }
    }

    fn with(e: Existing, f: impl FnOnce(&mut Existing)) -> Existing {
        let mut e = e;
        f(&mut e);
        e
    }

    fn drop_(n: &str) -> SlotAction {
        Drop(n.into())
    }
    fn create(n: &str) -> SlotAction {
        CreatePhysical(n.into())
    }
    fn advance(n: &str, lsn: u64) -> SlotAction {
        AdvancePhysical { name: n.into(), lsn }
    }
    fn create_logical(n: &str) -> SlotAction {
        CreateLogical { name: n.into(), database: "db".into(), plugin: "pgoutput".into() }
    }
    fn advance_logical(n: &str, lsn: u64) -> SlotAction {
        AdvanceLogical { name: n.into(), database: "db".into(), lsn }
    }

    struct Case {
        what: &'static str,
        cfg: SlotConfig,
        status: Option<Value>,
        me: &'static str,
        role: SlotRole,
        existing: Vec<Existing>,
        recopy: &'static [&'static str],
        actions: Vec<SlotAction>,
        copy: &'static [&'static str],
        log: &'static [&'static str],
    }

    fn case(what: &'static str, me: &'static str, role: SlotRole) -> Case {
        Case {
            what,
            cfg: config(json!({})),
            status: None,
            me,
            role,
            existing: Vec::new(),
            recopy: &[],
            actions: Vec::new(),
            copy: &[],
            log: &[],
        }
    }

    fn run(cases: Vec<Case>) {
        for c in cases {
            let cl = cluster(
                vec![member("n1", json!({}), 0), member("n2", json!({}), 0), member("n3", json!({}), 0)],
                c.status,
            );
            let recopy: BTreeSet<String> = c.recopy.iter().map(|s| s.to_string()).collect();
            let input = SlotInput {
                cluster: &cl,
                config: &c.cfg,
                me: c.me,
                tags: &no_tags(),
                role: c.role,
                server_version: PG15,
                existing: &c.existing,
                recopy: &recopy,
            };
            let got = plan(&input);
            assert_eq!(got.actions, c.actions, "{}: actions", c.what);
            assert_eq!(got.copy, c.copy, "{}: copy", c.what);
            let lines: Vec<&str> = got.log.iter().map(|(_, l)| l.as_str()).collect();
            assert_eq!(lines, c.log, "{}: log", c.what);
        }
    }

    const REPLICA: SlotRole = SlotRole::Replica { replayed: 1000 };

    #[test]
    fn on_the_primary() {
        let perm = || config(json!({"perm": null, "lg": {"database": "db", "plugin": "pgoutput"}}));
        #[rustfmt::skip]
        let cases = vec![
            Case { actions: vec![create("n2"), create("n3")],
                   ..case("a slot for every other member", "n1", SlotRole::Primary) },
            Case { existing: vec![phys("n2", 5), phys("n3", 9)],
                   ..case("member slots in use are left alone", "n1", SlotRole::Primary) },
            Case { existing: vec![phys("n2", 5), phys("n3", 9), phys("stray", 3)], actions: vec![drop_("stray")],
                   log: &["Trying to drop unknown replication slot 'stray'"],
                   ..case("a slot nobody wants is dropped", "n1", SlotRole::Primary) },
            Case { existing: vec![phys("n2", 5), phys("n3", 9), logi("stray", "db", "x", 3)],
                   actions: vec![drop_("stray")], log: &["Trying to drop unknown replication slot 'stray'"],
                   ..case("a logical one too", "n1", SlotRole::Primary) },
            Case { cfg: SlotConfig { paused: true, ..config(json!({})) },
                   existing: vec![phys("n2", 5), phys("n3", 9), phys("stray", 3)],
                   ..case("never while paused", "n1", SlotRole::Primary) },
            Case { cfg: SlotConfig { ignore: vec![json!({"name": "stray"}), json!({"plugin": "wal2json"})],
                                     ..config(json!({})) },
                   existing: vec![phys("n2", 5), phys("n3", 9), phys("stray", 3), logi("w", "db", "wal2json", 3),
                                  logi("o", "db", "pgoutput", 3)],
                   actions: vec![drop_("o")], log: &["Trying to drop unknown replication slot 'o'"],
                   ..case("ignore_slots protects what it matches", "n1", SlotRole::Primary) },
            Case { cfg: perm(), status: Some(json!({"optime": 10, "slots": {"perm": 900, "lg": 800}})),
                   existing: vec![phys("n2", 5), phys("n3", 9)],
                   actions: vec![create("perm"), create_logical("lg")],
                   ..case("permanent slots are created", "n1", SlotRole::Primary) },
            Case { cfg: perm(), status: Some(json!({"optime": 10, "slots": {"perm": 900, "lg": 800}})),
                   existing: vec![phys("n2", 5), phys("n3", 9), phys("perm", 100), logi("lg", "db", "pgoutput", 1)],
                   ..case("a permanent physical slot on the primary is in use: not advanced", "n1",
                          SlotRole::Primary) },
            Case { cfg: perm(),
                   existing: vec![phys("n2", 5), phys("n3", 9), phys("perm", 100), logi("lg", "other", "pgoutput", 1)],
                   actions: vec![drop_("lg"), create_logical("lg")],
                   log: &["Trying to drop replication slot 'lg' because value is changing from {'type': 'logical', \
                           'database': 'other', 'plugin': 'pgoutput'} to {'type': 'logical', 'database': 'db', \
                           'plugin': 'pgoutput'}"],
                   ..case("a logical slot in another database is made again", "n1", SlotRole::Primary) },
            Case { cfg: perm(),
                   existing: vec![phys("n2", 5), phys("n3", 9), phys("lg", 100), logi("perm", "db", "x", 1)],
                   actions: vec![drop_("lg"), drop_("perm"), create("perm"), create_logical("lg")],
                   log: &["Trying to drop replication slot 'lg' because value is changing from {'type': 'physical'} \
                           to {'type': 'logical', 'database': 'db', 'plugin': 'pgoutput'}",
                          "Trying to drop replication slot 'perm' because value is changing from {'type': 'logical', \
                           'database': 'db', 'plugin': 'x'} to {'type': 'physical'}"],
                   ..case("types swapped", "n1", SlotRole::Primary) },
            Case { existing: vec![with(phys("n2", 5), |e| e.wal_status = Some("lost".into())), phys("n3", 9)],
                   actions: vec![drop_("n2"), create("n2")],
                   log: &["Trying to drop replication slot 'n2' with wal_status=lost"],
                   ..case("a lost member slot is made again", "n1", SlotRole::Primary) },
            Case { existing: vec![phys("n1", 5), phys("n2", 5), phys("n3", 9)], actions: vec![drop_("n1")],
                   log: &["Trying to drop unknown replication slot 'n1'"],
                   ..case("a slot named after ourselves is not ours", "n1", SlotRole::Primary) },
            Case { status: Some(json!({"optime": 1, "retain_slots": ["gone", "n1"]})),
                   existing: vec![phys("n2", 5), phys("n3", 9), phys("gone", 4)],
                   ..case("retained slots of absent members are kept", "n1", SlotRole::Primary) },
            Case { cfg: SlotConfig { use_slots: false, ..perm() }, existing: vec![phys("n2", 5)],
                   actions: vec![drop_("n2")], log: &["Trying to drop unknown replication slot 'n2'"],
                   ..case("use_slots off: every slot not ignored goes, as in Patroni", "n1", SlotRole::Primary) },
        ];
        run(cases);
    }

    #[test]
    fn physical_slots_nobody_streams_from() {
        let perm = || config(json!({"perm": null}));
        let status = || Some(json!({"optime": 10, "slots": {"perm": 900, "n1": 950, "n3": 400}}));
        #[rustfmt::skip]
        let cases = vec![
            Case { cfg: perm(), status: status(),
                   actions: vec![create("n1"), create("n3"), create("perm")],
                   ..case("a replica creates copies of every slot", "n2", REPLICA) },
            Case { cfg: perm(), status: status(), existing: vec![phys("n1", 100), phys("n3", 400), phys("perm", 100)],
                   actions: vec![advance("n1", 950), advance("perm", 900)],
                   ..case("and advances them to the published positions", "n2", REPLICA) },
            Case { cfg: perm(), status: status(), existing: vec![phys("n1", 960), phys("n3", 500), phys("perm", 900)],
                   ..case("never backwards", "n2", REPLICA) },
            Case { cfg: perm(), status: status(),
                   existing: vec![phys("n1", 100), phys("n3", 400), phys("perm", 0)],
                   actions: vec![advance("n1", 950), drop_("perm")],
                   log: &["Dropping physical replication slot perm because it has no restart_lsn. This slot was \
                           probably not created by Patroni, but by an external agent."],
                   ..case("a slot without restart_lsn was not made by us: dropped to be made again", "n2", REPLICA) },
            Case { cfg: perm(), status: status(),
                   existing: vec![phys("n1", 950), phys("n3", 400), with(phys("perm", 100), |e| e.xmin = Some(42))],
                   actions: vec![drop_("perm"), create("perm")],
                   log: &["Dropping physical replication slot perm because of its xmin value 42"],
                   ..case("a slot with xmin nobody streams from holds back vacuum: made again", "n2", REPLICA) },
            Case { cfg: perm(), status: status(),
                   existing: vec![with(phys("n3", 100), |e| e.xmin = Some(42)), phys("perm", 900)],
                   actions: vec![create("n2")],
                   ..case("on the primary a member's slot with xmin is in use", "n1", SlotRole::Primary) },
        ];
        run(cases);
        // Without a leader, a slot with xmin is left alone.
        let mut cl = cluster(vec![member("n1", json!({}), 0), member("n2", json!({}), 0)], status());
        cl.leader = None;
        let existing = [with(phys("perm", 100), |e| e.xmin = Some(42)), phys("n1", 950)];
        let got = plan(&SlotInput {
            cluster: &cl,
            config: &perm(),
            me: "n2",
            tags: &no_tags(),
            role: REPLICA,
            server_version: PG15,
            existing: &existing,
            recopy: &BTreeSet::new(),
        });
        assert_eq!(got.actions, vec![]);
    }

    #[test]
    fn logical_slots_on_a_replica() {
        let perm = || config(json!({"lg": {"database": "db", "plugin": "pgoutput"}}));
        let members = [phys("n1", 950), phys("n3", 400)];
        let existing = |extra: Vec<Existing>| members.iter().cloned().chain(extra).collect::<Vec<_>>();
        #[rustfmt::skip]
        let cases = vec![
            Case { cfg: perm(), status: Some(json!({"optime": 10, "slots": {"n1": 950, "n3": 400}})),
                   existing: existing(vec![]),
                   ..case("no position published: nothing to copy yet", "n2", REPLICA) },
            Case { cfg: perm(), status: Some(json!({"optime": 10, "slots": {"lg": 800}})), existing: existing(vec![]),
                   copy: &["lg"], ..case("published: copied from the primary", "n2", REPLICA) },
            Case { cfg: perm(), status: Some(json!({"optime": 10, "slots": {"lg": 800}})),
                   existing: existing(vec![logi("lg", "db", "pgoutput", 500)]),
                   actions: vec![advance_logical("lg", 800)],
                   ..case("copied: advanced to the primary's position", "n2", REPLICA) },
            Case { cfg: perm(), status: Some(json!({"optime": 10, "slots": {"lg": 1800}})),
                   existing: existing(vec![logi("lg", "db", "pgoutput", 500)]),
                   actions: vec![advance_logical("lg", 1000)],
                   ..case("never past what we replayed", "n2", REPLICA) },
            Case { cfg: perm(), status: Some(json!({"optime": 10, "slots": {"lg": 400}})),
                   existing: existing(vec![logi("lg", "db", "pgoutput", 500)]),
                   ..case("never backwards", "n2", REPLICA) },
            Case { cfg: perm(), status: Some(json!({"optime": 10, "slots": {"lg": 800}})),
                   existing: existing(vec![logi("lg", "db", "pgoutput", 500)]), recopy: &["lg"], copy: &["lg"],
                   ..case("one whose WAL is gone is copied again", "n2", REPLICA) },
            Case { cfg: perm(), status: Some(json!({"optime": 10, "slots": {"lg": 800}})),
                   existing: existing(vec![logi("lg", "other", "pgoutput", 500)]),
                   actions: vec![drop_("lg")], copy: &["lg"],
                   log: &["Trying to drop replication slot 'lg' because value is changing from {'type': 'logical', \
                           'database': 'other', 'plugin': 'pgoutput'} to {'type': 'logical', 'database': 'db', \
                           'plugin': 'pgoutput'}"],
                   ..case("another database: dropped and copied", "n2", REPLICA) },
            Case { cfg: perm(), status: Some(json!({"optime": 10, "slots": {"lg": 800}})),
                   existing: existing(vec![logi("other", "db", "pgoutput", 500)]),
                   actions: vec![drop_("other")], copy: &["lg"],
                   log: &["Trying to drop unknown replication slot 'other'"],
                   ..case("unknown logical slots go on replicas too", "n2", REPLICA) },
        ];
        run(cases);
    }

    /// PostgreSQL 17's failover slots: left alone, except a former
    /// primary's own copy, which PostgreSQL would never synchronise.
    #[test]
    fn failover_slots_on_postgresql_17() {
        let cl = cluster(vec![member("n1", json!({}), 0), member("n2", json!({}), 0)], None);
        let failover = |name: &str| Existing { failover: true, ..logi(name, "db", "pgoutput", 5) };
        let existing = [phys("n1", 5), failover("fs")];
        let run_as = |me: &str, role: SlotRole, version: u32| {
            plan(&SlotInput {
                cluster: &cl,
                config: &config(json!({})),
                me,
                tags: &no_tags(),
                role,
                server_version: version,
                existing: &existing,
                recopy: &BTreeSet::new(),
            })
        };
        let on_primary = run_as("n1", SlotRole::Primary, 170000);
        assert_eq!(on_primary.actions, vec![drop_("n1"), create("n2")]);
        let on_replica = run_as("n2", REPLICA, 170000);
        assert_eq!(on_replica.actions, vec![drop_("fs")]);
        assert_eq!(
            on_replica.log.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
            ["Trying to drop logical replication slot 'fs' with failover=true and synced=false"]
        );
        // Before 17 the flag means nothing: an unknown slot like any other.
        let old = run_as("n1", SlotRole::Primary, PG15);
        assert_eq!(old.actions, vec![drop_("n1"), drop_("fs"), create("n2")]);
    }

    #[test]
    fn no_dynamic_configuration_no_changes() {
        let mut cl = cluster(vec![member("n1", json!({}), 0), member("n2", json!({}), 0)], None);
        cl.config = None;
        let existing = [phys("stray", 1)];
        let got = plan(&SlotInput {
            cluster: &cl,
            config: &config(json!({})),
            me: "n1",
            tags: &no_tags(),
            role: SlotRole::Primary,
            server_version: PG15,
            existing: &existing,
            recopy: &BTreeSet::new(),
        });
        assert_eq!(got, SlotPlan::default());
    }

    #[test]
    fn what_is_copied() {
        let wanted: Wanted = [
            ("lg".to_string(), WantedSlot::Logical { database: "db".into(), plugin: "pgoutput".into(), lsn: Some(5) }),
            ("ph".to_string(), WantedSlot::Physical { lsn: None, expected_active: None }),
        ]
        .into_iter()
        .collect();
        let slot = |name: &str, db: &str| LeaderSlot {
            name: name.into(),
            slot_type: "logical".into(),
            database: Some(db.into()),
            plugin: Some("pgoutput".into()),
            catalog_xmin: Some(1),
            confirmed_flush_lsn: Some(5),
            data: vec![1, 2, 3],
        };
        let (chosen, log) = copy_choice(&wanted, vec![slot("lg", "db"), slot("unknown", "db")]);
        assert_eq!(chosen, vec![slot("lg", "db")]);
        assert!(log.is_empty());
        let (chosen, log) = copy_choice(&wanted, vec![slot("lg", "other"), slot("ph", "db")]);
        assert!(chosen.is_empty());
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log[0].1.starts_with("Will not copy the logical slot \"lg\" due to the configuration mismatch"));
    }
}
