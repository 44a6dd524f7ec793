//! Synchronous replication (`synchronous_mode: on` and `quorum`): which
//! standbys are synchronous, the text of `synchronous_standby_names`, and
//! the order in which the leader changes PostgreSQL and the `sync` key.
//! Pure: the runner reads `pg_stat_replication`, calls these functions and
//! carries out the [`SyncStep`]s in order.

mod names;
mod plan;
mod quorum_plan;
mod ssn;
mod state;

pub use names::NameSet;
pub use plan::{plan_disable, plan_multisync, plan_prepromote_multisync, plan_prepromote_quorum, SyncPlan, SyncStep};
pub use quorum_plan::plan_quorum;
pub use ssn::{parse_ssn, quote_standby_name, ssn_value, Ssn, SsnKind, STRICT_PLACEHOLDER};
pub use state::{current_state, PrimarySync, SyncObserved, SyncTracker, WalSender};

/// `synchronous_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    #[default]
    Off,
    On,
    Quorum,
}

/// The synchronous replication settings of the dynamic configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncSettings {
    /// `Off` also in a standby cluster (Patroni's `is_synchronous_mode`).
    pub mode: SyncMode,
    /// `synchronous_mode_strict`.
    pub strict: bool,
    /// `synchronous_node_count` (at least 1 in strict mode).
    pub node_count: u32,
    /// `maximum_lag_on_syncnode` (0 or less: no limit).
    pub max_lag_on_syncnode: i64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self { mode: SyncMode::Off, strict: false, node_count: 1, max_lag_on_syncnode: -1 }
    }
}

impl SyncSettings {
    pub fn is_on(&self) -> bool {
        self.mode != SyncMode::Off
    }

    pub fn is_quorum(&self) -> bool {
        self.mode == SyncMode::Quorum
    }

    /// 1 in strict mode, else 0 (Patroni's `min_synchronous_nodes`).
    pub fn min_nodes(&self) -> u32 {
        u32::from(self.strict)
    }
}

#[cfg(test)]
mod tests;
