//! The order of changes to PostgreSQL and to the `sync` key (Patroni's
//! `_process_multisync_replication`, `_handle_synchronous_strict_mode`,
//! `process_sync_replication_prepromote` and
//! `disable_synchronous_replication`).
//!
//! The invariant: a standby is published in `sync` only once PostgreSQL
//! treats it as synchronous (add: PostgreSQL first, then the key), and it
//! leaves `sync` before it leaves `synchronous_standby_names` (remove: the
//! key first, then PostgreSQL). The runner carries the steps out in order
//! and stops at the first `sync` write that fails.

use palisade_model::SyncState;

use super::names::NameSet;
use super::ssn::{ssn_value, SsnKind};
use super::state::{SyncObserved, SyncTracker};
use super::SyncSettings;
use crate::output::Level;

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncStep {
    /// Compare-and-set the `sync` key (against the version the previous
    /// step left) to `{"leader": leader, "sync_standby": standbys,
    /// "quorum": quorum}`. Log `ok` when it worked; on failure log `failed`
    /// (at INFO, or WARNING with `warn`) and stop.
    WriteSync {
        leader: String,
        standbys: Vec<String>,
        quorum: u32,
        ok: Option<String>,
        failed: String,
        warn: bool,
    },
    /// Delete the `sync` key (compare-and-set); on failure stop.
    DeleteSync,
    /// Give PostgreSQL this `synchronous_standby_names` (`None`: not set)
    /// and reload when it changed.
    SetSsn(Option<String>),
    /// Let PostgreSQL use the `synchronous_standby_names` of the
    /// configuration again (synchronous mode is off).
    RestoreConfiguredSsn,
    Log(Level, String),
}

/// What to do this cycle about synchronous replication.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncPlan {
    pub steps: Vec<SyncStep>,
    /// PostgreSQL was asked to make new standbys synchronous: look again in
    /// a moment (Patroni waits two seconds) and plan again, so that `sync`
    /// is published without waiting a whole cycle.
    pub recheck: bool,
}

impl SyncPlan {
    fn push(&mut self, step: SyncStep) {
        self.steps.push(step);
    }
}

fn write(leader: &str, standbys: &NameSet, ok: Option<String>, failed: &str, warn: bool) -> SyncStep {
    SyncStep::WriteSync {
        leader: leader.to_string(),
        standbys: standbys.to_vec(),
        quorum: 0,
        ok,
        failed: failed.to_string(),
        warn,
    }
}

/// Patroni's `_handle_synchronous_strict_mode`: `true` when strict mode has
/// no standby to wait for, and the plan must stop here.
pub(crate) fn strict_mode(
    plan: &mut SyncPlan,
    tracker: &mut SyncTracker,
    sync_key: &SyncState,
    observed: &SyncObserved,
    settings: &SyncSettings,
    quorum_active: bool,
) -> bool {
    let min = settings.min_nodes();
    if (observed.active.len() as u64) < u64::from(min) {
        let kind = if quorum_active { SsnKind::Quorum } else { SsnKind::Priority };
        let quorum = if quorum_active { sync_key.quorum } else { 0 };
        let voters: NameSet = sync_key.sync_standby.iter().collect();
        let numsync = min.max((voters.len() as u32).saturating_sub(quorum));
        let mut msg = String::new();
        if voters != observed.sync || numsync != observed.numsync || kind != observed.kind {
            plan.push(SyncStep::SetSsn(ssn_value(&voters, Some(numsync), settings.is_quorum())));
        } else if !voters.is_empty() {
            let current =
                ssn_value(&observed.sync, Some(observed.numsync), kind == SsnKind::Quorum).unwrap_or_default();
            msg = format!("Continue using old value of synchronous_standby_names=\"{current}\". ");
        }
        if !tracker.strict_activated {
            plan.push(SyncStep::Log(
                Level::Warn,
                format!(
                    "No active replication connections from Patroni members and synchronous_mode_strict is \
                     requested. {msg}Commits will be delayed."
                ),
            ));
        }
        tracker.strict_activated = true;
        return true;
    }
    if min == 0
        && observed.active.is_empty()
        && sync_key.sync_standby.is_empty()
        && (!observed.sync.is_empty() || observed.numsync != 0)
    {
        plan.push(SyncStep::SetSsn(None));
    }
    tracker.strict_activated = false;
    false
}

/// `synchronous_mode: on` on the primary (Patroni's
/// `_process_multisync_replication`). `observed` is the state read this
/// cycle, or read again after a plan asked for a recheck (`rechecked`).
pub fn plan_multisync(
    me: &str,
    rechecked: bool,
    tracker: &mut SyncTracker,
    sync_key: &SyncState,
    observed: &SyncObserved,
    settings: &SyncSettings,
) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let mut key = sync_key.clone();
    if key.is_empty() {
        plan.push(write(
            me,
            &NameSet::new(),
            Some("Enabled synchronous replication".into()),
            "Updating sync state failed",
            true,
        ));
        key = SyncState { leader: Some(me.to_string()), ..SyncState::default() };
    }
    let picked = &observed.active;
    let allow_promote = observed.sync_confirmed.clone();
    let mut voters: NameSet = key.sync_standby.iter().collect();

    if key.leader.as_deref() != Some(me) {
        plan.push(SyncStep::Log(
            Level::Warn,
            format!(
                "Inconsistent state of /sync key detected, leader = {} doesn't match {me}, updating synchronous \
                 replication key",
                key.leader.as_deref().unwrap_or("None")
            ),
        ));
        plan.push(write(me, &NameSet::new(), None, "Updating sync state failed", true));
        voters = NameSet::new();
        key.sync_standby.clear();
    }
    if *picked == voters && voters != allow_promote {
        plan.push(SyncStep::Log(
            Level::Warn,
            format!(
                "Inconsistent state between synchronous_standby_names = {} and /sync = {} key detected, updating \
                 synchronous replication key...",
                allow_promote.repr(),
                voters.repr()
            ),
        ));
        plan.push(write(me, &allow_promote, None, "Updating sync state failed", true));
        voters = allow_promote.clone();
        key.sync_standby = voters.to_vec();
    }
    if strict_mode(&mut plan, tracker, &key, observed, settings, false) {
        return plan;
    }
    if *picked == voters && voters == observed.sync && observed.numsync as usize == picked.len() {
        if observed.kind != SsnKind::Priority {
            // ANY -> FIRST
            plan.push(SyncStep::SetSsn(ssn_value(picked, None, false)));
        }
        return plan;
    }
    let common = voters.intersection(&allow_promote);
    if common != voters {
        plan.push(SyncStep::Log(
            Level::Info,
            format!("Updating /sync key temporarily from {} to {}", voters.repr(), common.repr()),
        ));
        plan.push(write(me, &common, None, "Synchronous replication key updated by someone else.", false));
    }
    plan.push(SyncStep::SetSsn(ssn_value(picked, None, false)));
    if !rechecked && !picked.is_empty() && allow_promote != *picked {
        // Patroni waits for PostgreSQL and looks again before the last
        // step; the runner does the same by planning again on fresh state
        // (with `rechecked`).
        plan.recheck = true;
        return plan;
    }
    if !allow_promote.is_empty() && allow_promote != common {
        plan.push(write(
            me,
            &allow_promote,
            Some(format!("Synchronous standby status assigned to {}", allow_promote.repr())),
            "Synchronous replication key updated by someone else",
            false,
        ));
    }
    plan
}

/// Before promoting in `synchronous_mode: on` (Patroni's
/// `_process_multisync_prepromote`): claim the `sync` key, then set
/// `synchronous_standby_names`. In strict mode the former synchronous
/// standbys (but us) stay listed; otherwise the list starts empty. The
/// promotion waits when the key write fails.
pub fn plan_prepromote_multisync(me: &str, sync_key: &SyncState, settings: &SyncSettings) -> SyncPlan {
    let mut sync = NameSet::new();
    if settings.min_nodes() > 0 {
        for m in sync_key.members() {
            sync.insert(m);
        }
        sync.remove(me);
    }
    let numsync = (settings.min_nodes() > 0 && sync.is_empty()).then_some(settings.min_nodes());
    let mut plan = SyncPlan::default();
    plan.push(SyncStep::WriteSync {
        leader: me.to_string(),
        standbys: sync.to_vec(),
        quorum: 0,
        ok: None,
        failed: "Postponing promotion because synchronous replication state was updated by somebody else".into(),
        warn: false,
    });
    plan.push(SyncStep::SetSsn(ssn_value(&sync, numsync, false)));
    plan
}

/// Before promoting in quorum mode (Patroni's `_process_quorum_prepromote`):
/// list enough of the former voters that the invariant of `sync` holds.
pub fn plan_prepromote_quorum(me: &str, sync_key: &SyncState, settings: &SyncSettings) -> SyncPlan {
    let quorum = if sync_key.is_empty() { 0 } else { sync_key.quorum };
    let mut sync = NameSet::new();
    for m in sync_key.members() {
        sync.insert(m);
    }
    let mut numsync = sync.len() as i64 - i64::from(quorum) - 1;
    if sync.contains(me) {
        sync.remove(me);
    } else {
        numsync += 1;
    }
    let numsync = u32::try_from(numsync.max(i64::from(settings.min_nodes()))).unwrap_or(0);
    SyncPlan { steps: vec![SyncStep::SetSsn(ssn_value(&sync, Some(numsync), true))], recheck: false }
}

/// Synchronous mode is off (Patroni's `disable_synchronous_replication`):
/// remove `sync` first, then let PostgreSQL have the configured value.
pub fn plan_disable(sync_key: &SyncState) -> SyncPlan {
    let mut steps = Vec::new();
    if !sync_key.is_empty() {
        steps.push(SyncStep::DeleteSync);
        steps.push(SyncStep::SetSsn(None));
        steps.push(SyncStep::Log(Level::Info, "Disabled synchronous replication".into()));
    }
    steps.push(SyncStep::RestoreConfiguredSsn);
    SyncPlan { steps, recheck: false }
}
