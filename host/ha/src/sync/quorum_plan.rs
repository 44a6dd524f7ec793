//! `synchronous_mode: quorum` on the primary (Patroni's
//! `_process_quorum_replication`): the state read this cycle goes through
//! the quorum state machine ([`crate::resolve_quorum`]) and its steps become
//! a [`SyncPlan`] the runner carries out like the others.

use std::collections::BTreeSet;

use palisade_model::SyncState;

use super::names::NameSet;
use super::plan::{SyncPlan, SyncStep};
use super::ssn::{ssn_value, SsnKind};
use super::state::{SyncObserved, SyncTracker};
use super::SyncSettings;
use crate::output::Level;
use crate::quorum::{resolve_quorum, QuorumInput, QuorumStandbyNames, QuorumStep, QuorumSyncKey};

fn set(names: &NameSet) -> BTreeSet<String> {
    names.iter().map(String::from).collect()
}

/// Plan quorum commit for this cycle. `recheck` in the plan: look again in
/// a second (Patroni restarts its state machine within `loop_wait`).
pub fn plan_quorum(
    me: &str,
    tracker: &mut SyncTracker,
    sync_key: &SyncState,
    observed: &SyncObserved,
    settings: &SyncSettings,
) -> SyncPlan {
    let input = QuorumInput {
        me: me.to_string(),
        sync_key: QuorumSyncKey::from_sync_state(sync_key),
        standby_names: QuorumStandbyNames {
            numsync: observed.numsync as usize,
            names: set(&observed.sync),
            any: observed.kind == SsnKind::Quorum,
        },
        active: set(&observed.active),
        confirmed: set(&observed.sync_confirmed),
        synchronous_node_count: settings.node_count as usize,
        strict: settings.strict,
    };
    let mut plan = SyncPlan::default();
    let resolved = match resolve_quorum(&input) {
        Ok(r) => r,
        Err(e) => {
            plan.steps.push(SyncStep::Log(Level::Warn, format!("Quorum commit: {e}")));
            return plan;
        }
    };
    if let Some(w) = resolved.warning {
        plan.steps.push(SyncStep::Log(Level::Warn, w));
    }
    let mut enabling = sync_key.is_empty();
    let mut changed_names = false;
    for step in resolved.steps {
        match step {
            QuorumStep::SyncKey { leader, quorum, voters } => {
                let voters: Vec<String> = voters.into_iter().collect();
                let quorum = u32::try_from(quorum).unwrap_or(u32::MAX);
                if enabling {
                    // Patroni's `_maybe_enable_synchronous_mode`.
                    plan.steps.push(SyncStep::WriteSync {
                        leader,
                        standbys: voters,
                        quorum,
                        ok: Some("Enabled synchronous replication".into()),
                        failed: "Updating sync state failed".into(),
                        warn: true,
                    });
                    enabling = false;
                    continue;
                }
                let mut sorted = voters.clone();
                sorted.sort();
                plan.steps.push(SyncStep::Log(
                    Level::Info,
                    format!("Setting leader to {leader}, quorum to {quorum} of ({})", sorted.join(", ")),
                ));
                plan.steps.push(SyncStep::WriteSync {
                    leader,
                    standbys: voters,
                    quorum,
                    ok: None,
                    failed: "Synchronous replication key updated by someone else.".into(),
                    warn: false,
                });
            }
            QuorumStep::StandbyNames { numsync, names } => {
                changed_names = true;
                let names: NameSet = names.iter().collect();
                let numsync = u32::try_from(numsync).unwrap_or(u32::MAX);
                plan.steps.push(SyncStep::SetSsn(ssn_value(&names, Some(numsync), true)));
            }
        }
    }
    if resolved.strict_hold {
        if !tracker.strict_activated {
            let msg = if !changed_names && !sync_key.sync_standby.is_empty() {
                let current = ssn_value(&observed.sync, Some(observed.numsync), true).unwrap_or_default();
                format!("Continue using old value of synchronous_standby_names=\"{current}\". ")
            } else {
                String::new()
            };
            plan.steps.push(SyncStep::Log(
                Level::Warn,
                format!(
                    "No active replication connections from Patroni members and synchronous_mode_strict is \
                     requested. {msg}Commits will be delayed."
                ),
            ));
        }
        tracker.strict_activated = true;
    } else {
        tracker.strict_activated = false;
    }
    plan.recheck = resolved.recheck;
    plan
}
