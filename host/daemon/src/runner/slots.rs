//! Physical replication slots for the members: `palisade_ha::slot_actions`
//! decides which to create, advance or drop; this module gathers its
//! inputs (the slots PostgreSQL reports, the retention the leader keeps)
//! and carries the changes out.

use std::collections::BTreeSet;

use palisade_config::GlobalConfig;
use palisade_ha::{IgnoreSlot, SlotAction, SlotRole, SlotSettings};
use palisade_model::Cluster;
use serde_json::Value;

use super::Runner;
use crate::pg::Observed;

/// The slot settings of the dynamic configuration, as `palisade_ha` takes them.
fn slot_settings(global: &GlobalConfig) -> SlotSettings {
    SlotSettings {
        use_slots: global.use_slots,
        permanent: global.permanent_slots().keys().cloned().collect(),
        ignore: global
            .ignore_slots()
            .iter()
            .map(|rule| IgnoreSlot {
                name: rule.get("name").and_then(Value::as_str).map(String::from),
                slot_type: rule.get("type").and_then(Value::as_str).map(String::from),
            })
            .collect(),
    }
}

impl Runner {
    /// On the leader: a slot for every member streaming from us; slots of
    /// members gone for longer than `member_slots_ttl` dropped.
    pub(super) async fn maintain_slots(&mut self, cluster: &Cluster) {
        let cfg = self.shared.config();
        if !cfg.global.use_slots {
            return;
        }
        // A new leader carries on the retention its predecessor published.
        if !self.retain_seeded {
            let now = std::time::Instant::now();
            for name in &cluster.status.retain_slots {
                self.retain_slots.entry(name.clone()).or_insert(now);
            }
            self.retain_seeded = true;
        }
        let retained: BTreeSet<String> = self.retain_slots.keys().cloned().collect();
        let existing = self.shared.pg.slot_positions().await;
        let role = SlotRole::Leader { retained: &retained };
        let actions =
            palisade_ha::slot_actions(cluster, &slot_settings(&cfg.global), &cfg.local.name, &role, &existing);
        self.carry_out(actions).await;
    }

    /// On a replica: copies of the other members' slots, advanced to the
    /// leader's published positions (never past what we replayed).
    pub(super) async fn maintain_replica_slots(&mut self, cluster: &Cluster, observed: &Observed) {
        self.retain_seeded = false;
        self.retain_slots.clear();
        let cfg = self.shared.config();
        if !cfg.global.use_slots {
            return;
        }
        let existing = self.shared.pg.slot_positions().await;
        let replayed = observed.snapshot.as_ref().and_then(|s| s.replayed_location).unwrap_or(0);
        let role = SlotRole::Replica { replayed };
        let actions =
            palisade_ha::slot_actions(cluster, &slot_settings(&cfg.global), &cfg.local.name, &role, &existing);
        self.carry_out(actions).await;
    }

    async fn carry_out(&self, actions: Vec<SlotAction>) {
        for action in actions {
            match action {
                SlotAction::Create(slot) => match self.shared.pg.create_slot(&slot).await {
                    Ok(()) => tracing::info!("created replication slot {slot}"),
                    Err(e) => tracing::warn!("could not create replication slot {slot}: {e}"),
                },
                SlotAction::Advance(slot, lsn) => {
                    if let Err(e) = self.shared.pg.advance_slot(&slot, lsn).await {
                        tracing::debug!("could not advance replication slot {slot}: {e}");
                    }
                }
                SlotAction::Drop(slot) => match self.shared.pg.drop_slot(&slot).await {
                    Ok(()) => tracing::info!("dropped replication slot {slot}, which belongs to no member"),
                    Err(e) => tracing::debug!("could not drop replication slot {slot}: {e}"),
                },
            }
        }
    }
}
