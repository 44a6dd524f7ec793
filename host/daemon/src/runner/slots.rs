//! Replication slots: `palisade_ha::slots` decides, this module gathers
//! the inputs (the slots PostgreSQL reports, the retention the leader
//! keeps), carries the changes out, copies logical slots from the primary
//! in a background task, forces `hot_standby_feedback` when logical slots
//! need it, and writes the `status` key with the slots' positions.

use std::collections::{BTreeMap, BTreeSet};

use palisade_config::GlobalConfig;
use palisade_ha::slots::{self as decide_slots, PendingLogical, SlotConfig, Wanted};
use palisade_ha::{Level, SlotAction, SlotInput, SlotRole, Task};
use palisade_model::{format_lsn, Cluster};
use serde_json::{Map, Value};

use super::Runner;
use crate::pg::Observed;

/// What the loop remembers about slots between cycles.
#[derive(Debug)]
pub struct SlotMemory {
    /// Member slots the leader retains, with the epoch second each was
    /// last seen (Patroni's `_last_retain_slots`).
    retain: BTreeMap<String, f64>,
    /// The retention was taken over from the `status` key since we lead.
    retain_seeded: bool,
    /// The `slots` and `retain_slots` written last, kept when the leader
    /// writes its last position before letting go (as Patroni does).
    last_slots: Option<Map<String, Value>>,
    last_retain: Vec<String>,
    /// The `status` value written last.
    last_status: Option<String>,
    /// Logical slots to copy again (their WAL is gone or they were
    /// invalidated).
    recopy: BTreeSet<String>,
    /// Copied logical slots not known to be safe yet.
    pending: PendingLogical,
    /// Check every existing logical slot once after start.
    readiness_forced: bool,
    /// Lines logged in the last cycle (a line is logged when it appears,
    /// not again while it persists).
    logged: BTreeSet<String>,
    /// The failures of the last cycle's slot changes, logged the same way.
    failed: BTreeSet<String>,
}

impl Default for SlotMemory {
    fn default() -> Self {
        Self {
            retain: BTreeMap::new(),
            retain_seeded: false,
            last_slots: None,
            last_retain: Vec::new(),
            last_status: None,
            recopy: BTreeSet::new(),
            pending: PendingLogical::new(),
            readiness_forced: true,
            logged: BTreeSet::new(),
            failed: BTreeSet::new(),
        }
    }
}

/// The slot settings of the dynamic configuration, as `palisade_ha` takes them.
pub(super) fn slot_config(global: &GlobalConfig) -> SlotConfig {
    SlotConfig {
        use_slots: global.use_slots,
        member_slots_ttl: global.member_slots_ttl.as_secs_f64(),
        permanent: global.permanent_slots(),
        ignore: global.get("ignore_slots").and_then(Value::as_array).cloned().unwrap_or_default(),
        standby_cluster: global.is_standby_cluster(),
        paused: global.pause,
    }
}

fn log_line(level: Level, line: &str) {
    match level {
        Level::Info => tracing::info!("{line}"),
        Level::Warn => tracing::warn!("{line}"),
        Level::Error => tracing::error!("{line}"),
    }
}

/// After this many slot creations failed in a row (the server's
/// `max_replication_slots` is reached, say), the others wait for the next
/// cycle.
const CREATE_FAILURES_IN_A_ROW: usize = 3;

/// Python's repr of a set of names, as Patroni's messages print one.
fn py_set(names: &BTreeSet<String>) -> String {
    let items: Vec<String> = names.iter().map(|n| palisade_pycompat::py::repr_str(n)).collect();
    format!("{{{}}}", items.join(", "))
}

impl Runner {
    fn server_version(observed: &Observed) -> u32 {
        observed.snapshot.as_ref().and_then(|s| s.server_version).unwrap_or(0)
    }

    /// Log the decision's lines that were not there last cycle.
    fn log_slot_lines(&mut self, lines: &[(Level, String)]) {
        let now: BTreeSet<String> = lines.iter().map(|(_, l)| l.clone()).collect();
        for (level, line) in lines {
            if !self.slot_memory.logged.contains(line) {
                log_line(*level, line);
            }
        }
        self.slot_memory.logged = now;
    }

    /// Once per cycle: `hot_standby_feedback`, then the slots of this node
    /// as primary (we lead) or replica.
    pub(super) async fn sync_slots(&mut self, cluster: &Cluster, observed: &Observed) {
        let cfg = self.shared.config();
        // While failsafe mode is active, positions come from its last round.
        let failsafe = self.shared.status.get().failsafe.clone();
        let failsafe_active = failsafe.is_active();
        let view =
            palisade_ha::cluster_for_slots(cluster, cfg.global.failsafe_mode, failsafe_active, failsafe.slots.as_ref());
        let cluster = view.as_ref().unwrap_or(cluster);
        let slot_cfg = slot_config(&cfg.global);
        let me = cfg.local.name.clone();
        let tags = cfg.local.tags.clone();
        let version = Self::server_version(observed);
        if version > 0 {
            if let Some(on) = decide_slots::enforce_hot_standby_feedback(cluster, &slot_cfg, &me, &tags, version) {
                if self.shared.pg.set_enforce_hot_standby_feedback(on) {
                    tracing::info!(
                        "{} hot_standby_feedback for the permanent logical replication slots",
                        if on { "enforcing" } else { "no longer enforcing" }
                    );
                    self.parameters_pending = true;
                    if observed.pg.is_running() {
                        self.apply_pending_parameters().await;
                    }
                }
            }
        }
        let role = match &observed.pg {
            palisade_ha::Pg::Running { in_recovery: false, .. } if self.shared.tracked().is_leader() => {
                SlotRole::Primary
            }
            palisade_ha::Pg::Running { in_recovery: true, .. } if self.task.is_none() => SlotRole::Replica {
                replayed: observed.snapshot.as_ref().and_then(|s| s.replayed_location).unwrap_or(0),
            },
            _ => return,
        };
        if role == SlotRole::Primary {
            if !self.slot_memory.pending.is_empty() {
                let names: BTreeSet<String> = self.slot_memory.pending.keys().cloned().collect();
                tracing::warn!(
                    "Logical replication slots that might be unsafe to use after promote: {}",
                    py_set(&names)
                );
            }
            self.slot_memory.pending.clear();
            self.slot_memory.recopy.clear();
        } else {
            self.slot_memory.retain.clear();
            self.slot_memory.retain_seeded = false;
        }
        let mut existing = match self.shared.pg.replication_slots().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("cannot list the replication slots: {e}");
                return;
            }
        };
        // Slots the MPP plugin made for itself (Citus shard moves and
        // splits) are left alone, as Patroni's `ignore_replication_slot`.
        if let Some(mpp) = self.shared.mpp.as_deref() {
            let primary = observed.pg.is_primary();
            existing.retain(|e| {
                let slot = palisade_plugin_api::MppSlot {
                    name: e.name.clone(),
                    slot_type: e.slot_type.clone(),
                    database: e.database.clone().unwrap_or_default(),
                    plugin: e.plugin.clone().unwrap_or_default(),
                };
                !mpp.ignore_replication_slot(&slot, primary)
            });
        }
        let recopy = self.slot_memory.recopy.clone();
        let plan = decide_slots::plan(&SlotInput {
            cluster,
            config: &slot_cfg,
            me: &me,
            tags: &tags,
            role,
            server_version: version,
            existing: &existing,
            recopy: &recopy,
        });
        self.log_slot_lines(&plan.log);
        self.carry_out(plan.actions).await;
        let SlotRole::Replica { .. } = role else {
            return;
        };
        if self.slot_memory.readiness_forced {
            let rules = slot_cfg.ignore_rules(&mut Vec::new());
            // PostgreSQL 17 keeps its failover slots safe itself.
            for e in existing.iter().filter(|e| e.slot_type == "logical" && !(version >= 170000 && e.failover)) {
                if !rules.iter().any(|r| r.matches(&e.name, &e.slot_type, e.database.as_deref(), e.plugin.as_deref())) {
                    self.slot_memory.pending.insert(e.name.clone(), None);
                }
            }
            self.slot_memory.readiness_forced = false;
        }
        self.check_logical_readiness(cluster, &me, &tags, &existing).await;
        // No copying from the primary while failsafe mode is active (as
        // Patroni): the DCS that says where the primary is may be gone.
        if !plan.copy.is_empty() && !failsafe_active {
            self.start_copy(cluster, &me, plan.copy, plan.wanted);
        }
    }

    async fn carry_out(&mut self, actions: Vec<SlotAction>) {
        let mut failed = BTreeSet::new();
        let (mut failed_in_a_row, mut skipped) = (0, 0);
        for action in actions {
            let creates = matches!(action, SlotAction::CreatePhysical(_) | SlotAction::CreateLogical { .. });
            if creates && failed_in_a_row >= CREATE_FAILURES_IN_A_ROW {
                skipped += 1;
                continue;
            }
            match action {
                SlotAction::Drop(name) => match self.shared.pg.drop_slot(&name).await {
                    Ok(d) if d.dropped => tracing::info!("Dropped replication slot '{name}'"),
                    Ok(d) if d.active => tracing::warn!("Unable to drop replication slot '{name}', slot is active"),
                    Ok(_) => tracing::error!("Failed to drop replication slot '{name}'"),
                    Err(e) => tracing::error!("Failed to drop replication slot '{name}': {e}"),
                },
                SlotAction::CreatePhysical(name) => match self.shared.pg.create_physical_slot(&name).await {
                    Ok(()) => {
                        failed_in_a_row = 0;
                        tracing::info!("Created physical replication slot '{name}'")
                    }
                    Err(e) => {
                        failed_in_a_row += 1;
                        self.slot_failure(
                            &mut failed,
                            format!("Failed to create physical replication slot '{name}': {e}"),
                        );
                    }
                },
                SlotAction::CreateLogical { name, database, plugin } => {
                    match self.shared.pg.create_logical_slot(&database, &name, &plugin).await {
                        Ok(()) => {
                            failed_in_a_row = 0;
                            tracing::info!("Created logical replication slot '{name}' plugin='{plugin}'")
                        }
                        Err(e) => {
                            failed_in_a_row += 1;
                            self.slot_failure(
                                &mut failed,
                                format!("Failed to create logical replication slot '{name}' plugin='{plugin}': {e}"),
                            );
                        }
                    }
                }
                SlotAction::AdvancePhysical { name, lsn } => {
                    if let Err(e) = self.shared.pg.advance_slot(&name, lsn).await {
                        tracing::error!(
                            "Error while advancing replication slot {name} to position '{}': {e}",
                            format_lsn(lsn)
                        );
                    }
                }
                SlotAction::AdvanceLogical { name, database, lsn } => {
                    if let Err(e) = self.shared.pg.advance_logical_slot(&database, &name, lsn).await {
                        tracing::error!("Failed to advance logical replication slot '{name}': {e}");
                        if e.copy_again {
                            self.slot_memory.recopy.insert(name);
                        }
                    }
                }
            }
        }
        if skipped > 0 {
            self.slot_failure(
                &mut failed,
                format!(
                    "Not creating {skipped} more replication slots this cycle: the last \
                     {CREATE_FAILURES_IN_A_ROW} attempts failed"
                ),
            );
        }
        self.slot_memory.failed = failed;
    }

    /// A slot change failed: logged as an error when it did not fail the
    /// same way last cycle, else at debug level (a leader retries every
    /// cycle; a DCS listing thousands of members must not log thousands
    /// of lines each time).
    fn slot_failure(&self, now: &mut BTreeSet<String>, line: String) {
        if self.slot_memory.failed.contains(&line) {
            tracing::debug!("{line}");
        } else {
            tracing::error!("{line}");
        }
        now.insert(line);
    }

    /// Copy logical slots from the leader in the background (PostgreSQL
    /// is stopped and started again).
    fn start_copy(&mut self, cluster: &Cluster, me: &str, names: Vec<String>, wanted: Wanted) {
        let Some(leader) = cluster.leader_member().filter(|l| l.name != me).cloned() else {
            return;
        };
        let following = self.shared.tracked().following;
        let follow = following.as_deref().and_then(|f| cluster.member(f)).cloned().or_else(|| Some(leader.clone()));
        tracing::info!("Copying logical slots {} from the primary", decide_slots::py_list(&names));
        for name in &names {
            self.slot_memory.recopy.remove(name);
            self.slot_memory.pending.insert(name.clone(), None);
        }
        let shared = std::sync::Arc::clone(&self.shared);
        self.spawn(Task::CopyLogicalSlots, super::tasks::copy_logical_slots(shared, leader, names, wanted, follow));
    }

    /// Patroni's `check_logical_slots_readiness`: ask the primary how far
    /// our physical slot there holds catalog rows, and tell which copied
    /// logical slots are safe to use after a failover.
    async fn check_logical_readiness(
        &mut self,
        cluster: &Cluster,
        me: &str,
        tags: &Map<String, Value>,
        existing: &[palisade_ha::Existing],
    ) {
        if self.slot_memory.pending.is_empty() {
            return;
        }
        let Some(leader) = cluster.leader_member().filter(|l| l.name != me) else {
            return;
        };
        let Some(own) = decide_slots::slot_name_on_primary(cluster, me, tags) else {
            return;
        };
        let mut names: Vec<String> =
            self.slot_memory.pending.iter().filter(|(_, v)| v.is_none()).map(|(n, _)| n.clone()).collect();
        names.push(own.clone());
        let mut rows: BTreeMap<String, Option<u64>> = match self.shared.pg.leader_catalog_xmins(leader, &names).await {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => {
                tracing::error!("Failed to check {own} physical slot on the primary: {e}");
                return;
            }
        };
        let Some(physical) = rows.remove(&own) else {
            tracing::warn!("Physical slot {own} does not exist on the primary");
            return;
        };
        if physical.is_none() {
            match self.shared.pg.hot_standby_feedback().await {
                Ok(false) => tracing::error!(
                    "Logical slot failover requires \"hot_standby_feedback\". Please check postgresql.auto.conf"
                ),
                Ok(true) => {}
                Err(e) => tracing::error!("Failed to check the hot_standby_feedback setting: {e}"),
            }
            return;
        }
        for (name, xmin) in rows {
            self.slot_memory.pending.insert(name, xmin);
        }
        let (pending, log) = decide_slots::ready_logical_slots(&self.slot_memory.pending, physical, existing);
        for (level, line) in &log {
            log_line(*level, line);
        }
        self.slot_memory.pending = pending;
    }

    /// Write the `status` key: our WAL position, the positions of our
    /// slots (`slots`) and the member slots we retain (`retain_slots`).
    pub(super) async fn write_status(&mut self, cluster: &Cluster, observed: &Observed) {
        let Some(lsn) = observed.wal_position().filter(|l| *l > 0) else {
            return;
        };
        let cfg = self.shared.config();
        let slot_cfg = slot_config(&cfg.global);
        let me = cfg.local.name.clone();
        let version = Self::server_version(observed);
        let existing = if decide_slots::can_advance_slots(version) {
            self.shared.pg.replication_slots().await.unwrap_or_else(|e| {
                tracing::warn!("cannot list the replication slots: {e}");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        let published =
            decide_slots::published_slots(cluster, &slot_cfg, &me, &cfg.local.tags, version, &existing, lsn);
        let now = crate::now();
        if !self.slot_memory.retain_seeded {
            // A new leader carries on the retention its predecessor published.
            for name in &cluster.status.retain_slots {
                self.slot_memory.retain.insert(name.clone(), now);
            }
            self.slot_memory.retain_seeded = true;
        }
        let (retain, log) =
            decide_slots::retained_slots(&self.slot_memory.retain, now, cluster, &slot_cfg, &me, published.as_ref());
        for (level, line) in &log {
            log_line(*level, line);
        }
        self.slot_memory.retain = retain;
        let retain: Vec<String> = self.slot_memory.retain.keys().cloned().collect();
        self.slot_memory.last_slots.clone_from(&published);
        self.slot_memory.last_retain.clone_from(&retain);
        let value =
            palisade_model::Status::to_json(lsn, published.as_ref(), (!retain.is_empty()).then_some(retain.as_slice()));
        if self.slot_memory.last_status.as_deref() != Some(value.as_str()) {
            match self.shared.dcs.write_status(value.clone()).await {
                Ok(true) => self.slot_memory.last_status = Some(value),
                Ok(false) => {}
                Err(e) => tracing::warn!("could not write the status key: {e}"),
            }
        }
    }

    /// Where our slots are and, under our slot name, our WAL position (what
    /// a primary sends with `POST /failsafe`, as Patroni's `slots()`).
    pub(super) async fn known_slots(&self, cluster: &Cluster, observed: &Observed) -> Map<String, Value> {
        let cfg = self.shared.config();
        let version = Self::server_version(observed);
        let Some(lsn) = observed.wal_position().filter(|l| *l > 0) else {
            return Map::new();
        };
        let existing = if decide_slots::can_advance_slots(version) {
            self.shared.pg.replication_slots().await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let slot_cfg = slot_config(&cfg.global);
        decide_slots::known_slots(cluster, &slot_cfg, &cfg.local.name, &cfg.local.tags, version, &existing, lsn)
    }

    /// The `status` value a leader writes with its last position before
    /// it lets go: the slots it published last are kept, as Patroni keeps
    /// them.
    pub(super) fn final_status(&self, lsn: u64) -> String {
        let m = &self.slot_memory;
        palisade_model::Status::to_json(
            lsn,
            m.last_slots.as_ref(),
            (!m.last_retain.is_empty()).then_some(m.last_retain.as_slice()),
        )
    }
}
