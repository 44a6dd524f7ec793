//! Physical replication slots for the members, as Patroni 4 keeps them.
//!
//! The leader has a slot for every member streaming from it. Replicas keep
//! copies of the other members' slots, advanced to the positions the
//! leader publishes in the `status` key, so that whoever is promoted next
//! already has a slot for everybody (nobody waits for one to be created,
//! and no WAL a member still needs is recycled). A slot whose member is
//! gone is kept for `member_slots_ttl` (`retain_slots`), then dropped;
//! permanent slots and slots matching `ignore_slots` are never touched.

use std::collections::BTreeSet;

use palisade_config::GlobalConfig;
use palisade_model::{slot_name_from_member_name, Cluster};
use serde_json::Value;

use super::Runner;
use crate::pg::Observed;

/// Slots this configuration says to leave alone.
fn protected(global: &GlobalConfig, name: &str) -> bool {
    global.permanent_slots().contains_key(name)
        || global.ignore_slots().iter().any(|rule| {
            rule.get("name").and_then(Value::as_str).is_none_or(|n| n == name)
                && rule.get("type").and_then(Value::as_str).is_none_or(|t| t == "physical")
        })
}

impl Runner {
    /// On the leader: a slot for every member streaming from us; slots of
    /// members gone for longer than `member_slots_ttl` dropped.
    pub(super) async fn maintain_slots(&mut self, cluster: &Cluster) {
        let cfg = self.shared.config();
        if !cfg.global.use_slots {
            return;
        }
        let me = cfg.local.name.clone();
        let own = slot_name_from_member_name(&me);
        let wanted: BTreeSet<String> = cluster
            .members
            .iter()
            .filter(|m| m.name != me && !m.tags().nostream())
            .filter(|m| m.tags().replicatefrom().is_none_or(|r| r == me))
            .map(|m| slot_name_from_member_name(&m.name))
            .filter(|s| *s != own)
            .collect();
        // A new leader carries on the retention its predecessor published.
        if !self.retain_seeded {
            let now = std::time::Instant::now();
            for name in &cluster.status.retain_slots {
                self.retain_slots.entry(name.clone()).or_insert(now);
            }
            self.retain_seeded = true;
        }
        let existing = self.shared.pg.slot_positions().await.into_keys().collect::<Vec<_>>();
        self.create_missing(&wanted, &existing).await;
        for slot in existing {
            if wanted.contains(&slot) || protected(&cfg.global, &slot) || self.retain_slots.contains_key(&slot) {
                continue;
            }
            self.drop_slot(&slot).await;
        }
    }

    /// On a replica: copies of the other members' slots, advanced to the
    /// leader's published positions (never past what we replayed).
    pub(super) async fn maintain_replica_slots(&mut self, cluster: &Cluster, observed: &Observed) {
        self.retain_seeded = false;
        self.retain_slots.clear();
        let cfg = self.shared.config();
        if !cfg.global.use_slots || cluster.status.slots.is_none() {
            return;
        }
        let me = cfg.local.name.clone();
        let own = slot_name_from_member_name(&me);
        let mut wanted: BTreeSet<String> = cluster
            .members
            .iter()
            .filter(|m| m.name != me && !m.tags().nostream())
            .map(|m| slot_name_from_member_name(&m.name))
            .filter(|s| *s != own)
            .collect();
        wanted.extend(cluster.status.retain_slots.iter().filter(|s| **s != own).cloned());
        let positions = self.shared.pg.slot_positions().await;
        let existing: Vec<String> = positions.keys().cloned().collect();
        self.create_missing(&wanted, &existing).await;
        let replayed = observed.snapshot.as_ref().and_then(|s| s.replayed_location).unwrap_or(0);
        let published = cluster.status.slots.clone().unwrap_or_default();
        for slot in &wanted {
            let Some(target) =
                published.get(slot).and_then(palisade_model::parse_int).and_then(|v| u64::try_from(v).ok())
            else {
                continue;
            };
            let target = target.min(replayed);
            let current = positions.get(slot).copied().unwrap_or(0);
            if target > current {
                if let Err(e) = self.shared.pg.advance_slot(slot, target).await {
                    tracing::debug!("could not advance replication slot {slot}: {e}");
                }
            }
        }
        for slot in existing {
            if !wanted.contains(&slot) && !protected(&cfg.global, &slot) {
                self.drop_slot(&slot).await;
            }
        }
    }

    async fn create_missing(&self, wanted: &BTreeSet<String>, existing: &[String]) {
        for slot in wanted {
            if !existing.contains(slot) {
                match self.shared.pg.create_slot(slot).await {
                    Ok(()) => tracing::info!("created replication slot {slot}"),
                    Err(e) => tracing::warn!("could not create replication slot {slot}: {e}"),
                }
            }
        }
    }

    async fn drop_slot(&self, slot: &str) {
        match self.shared.pg.drop_slot(slot).await {
            Ok(()) => tracing::info!("dropped replication slot {slot}, which belongs to no member"),
            Err(e) => tracing::debug!("could not drop replication slot {slot}: {e}"),
        }
    }
}
