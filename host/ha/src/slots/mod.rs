//! Replication slots, as Patroni 4.1 keeps them: which slots a node must
//! have, what to do about the ones its PostgreSQL has, what the leader
//! publishes in the `status` key, and whether `hot_standby_feedback` is
//! forced on. Every function here is a decision on plain data; the daemon
//! reads the slots, carries the actions out and writes the keys.
//!
//! - [`wanted`]: the slots a node must have (Patroni's
//!   `get_replication_slots`): a physical slot for each member that may
//!   stream from it (on PostgreSQL 11+ with `member_slots_ttl` > 0, for
//!   every member, so that whoever is promoted has them), the slots the
//!   leader still retains (`retain_slots`), and the permanent slots of the
//!   dynamic configuration (`slots`), physical and logical.
//! - [`plan`]: Patroni's `sync_replication_slots`: drop what is neither
//!   wanted nor ignored (`ignore_slots`), or wanted with other attributes,
//!   or lost; create what is missing; advance slots nobody streams from to
//!   the positions the leader publishes; on a replica, name the logical
//!   slots to copy from the primary (their state file, written while
//!   PostgreSQL is stopped) and check that copied ones are safe to use.
//! - [`publish`]: the `slots` and `retain_slots` of the `status` key.
//! - [`wanted::enforce_hot_standby_feedback`]: logical slots on a replica
//!   only stay usable when the primary keeps their catalog rows.

mod config;
mod plan;
mod publish;
mod readiness;
mod wanted;

pub use config::{IgnoreSlot, SlotConfig};
pub use plan::{copy_choice, plan, Existing, LeaderSlot, SlotAction, SlotInput, SlotPlan, SlotRole};
pub use publish::{known_slots, published_slots, retained_slots};
pub use readiness::{ready_logical_slots, PendingLogical};
pub use wanted::{enforce_hot_standby_feedback, slot_name_on_primary, wanted, Wanted, WantedSlot};

/// Python's repr of a list of names (`['a', 'b']`), as Patroni's
/// messages print one.
pub fn py_list<S: AsRef<str>>(names: &[S]) -> String {
    let items: Vec<String> = names.iter().map(|n| palisade_pycompat::py::repr_str(n.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// PostgreSQL 11 has `pg_replication_slot_advance`, which every slot copy
/// on a replica needs (Patroni's `can_advance_slots`).
pub fn can_advance_slots(server_version: u32) -> bool {
    server_version >= 110000
}

#[cfg(test)]
pub(crate) mod tests {
    //! What the slot tables share: a cluster led by `n1`, members with
    //! tags and positions, and a configuration with permanent slots.
    use palisade_model::{Cluster, ClusterConfig, Leader, Member, Status};
    use serde_json::{json, Map, Value};

    use super::SlotConfig;

    pub const PG15: u32 = 150000;

    pub fn member(name: &str, tags: Value, lsn: u64) -> Member {
        let value = json!({"conn_url": "postgres://h:5432/postgres", "api_url": "http://h:8008/patroni",
                           "state": "running", "role": "replica", "tags": tags, "xlog_location": lsn});
        Member::from_value(name, "1", "", &value.to_string()).expect("a member")
    }

    /// Led by the first member.
    pub fn cluster(members: Vec<Member>, status: Option<Value>) -> Cluster {
        let leader =
            members.first().map(|m| Leader { name: m.name.clone(), version: "1".into(), session: String::new() });
        Cluster {
            config: Some(ClusterConfig { version: "1".into(), data: Map::new() }),
            leader,
            members,
            status: status.map(|s| Status::from_value(&s.to_string())).unwrap_or_default(),
            ..Cluster::default()
        }
    }

    /// use_slots, member_slots_ttl 1800 and these permanent slots.
    pub fn config(permanent: Value) -> SlotConfig {
        SlotConfig {
            use_slots: true,
            member_slots_ttl: 1800.0,
            permanent: permanent.as_object().cloned().unwrap_or_default(),
            ..SlotConfig::default()
        }
    }

    pub fn no_tags() -> Map<String, Value> {
        Map::new()
    }
}
