//! The HA decisions, as a pure function.
//!
//! [`decide`] takes everything the daemon knows at the start of a cycle
//! ([`Input`]: the cluster snapshot, the local PostgreSQL, the dynamic
//! settings, this node's identity, the time) and returns a [`Step`]: either
//! a [`Decision`] (actions for the daemon to carry out plus the one-line
//! reason Patroni would log), or an [`Ask`]: a question only the outside
//! world can answer ("did renewing the leader lock succeed?", "what WAL
//! position do these members report?"). The daemon answers it, records the
//! answer in [`Answers`] and calls `decide` again with the same input. The
//! function is deterministic, so replaying a cycle gives the same result.
//! Quorum commit's bookkeeping is a second pure function,
//! [`resolve_quorum`], that the leader runs on its own state.
//!
//! Architecture invariant: this crate does no IO, reads no clock and knows
//! nothing of tokio, the DCS plugins or PostgreSQL's binaries. It depends
//! only on `palisade-model` and `palisade-pycompat` (and serde_json), never on the plugin ABI
//! (`palisade-plugin-api`, abi_stable) nor on a clock crate: times come in
//! through `Input`.

mod decide;
mod failsafe;
mod follow;
mod input;
mod manual;
mod offline;
mod output;
mod quorum;
mod race;
mod restart;
mod rewind;
pub mod slots;
pub mod sync;
mod watchdog;

pub use decide::decide;
pub use failsafe::{
    cluster_for_slots, cluster_with_failsafe_leader, failsafe_key_update, failsafe_members, failsafe_topology,
    member_positions, syncs_slots_offline, FailsafeLeader, CONTINUE_AS_LEADER,
};
pub use input::{Answers, DataDir, Input, Local, Me, PeerStatus, Pg, Rejoin, RewindState, Settings, Task};
pub use offline::{dcs_unavailable, updated_history, Offline};
pub use output::{Action, Ask, Decision, DemoteMode, Level, StartAs, Step};
/// Quorum commit's state machine (Patroni's `QuorumStateResolver`):
/// [`resolve_quorum`] turns the `sync` key, `synchronous_standby_names`
/// and the streaming standbys into ordered [`QuorumStep`]s. The caller
/// applies them one by one in the order given (it already puts PostgreSQL
/// first when a standby is added, the `sync` key first when one is
/// removed) and stops at the first that fails; the next cycle resolves
/// again from the state it then reads.
pub use quorum::{resolve_quorum, QuorumError, QuorumInput, QuorumPlan, QuorumStandbyNames, QuorumStep, QuorumSyncKey};
pub use race::failover_candidates;
pub use restart::{postgres_version_to_int, restart_refusal, RestartFilter, ScheduledRestart};
pub use slots::{Existing, LeaderSlot, SlotAction, SlotConfig, SlotInput, SlotPlan, SlotRole};
pub use watchdog::{
    activation, keepalive_before_renewal, should_open, watchdog_is_healthy, Activation, Probe, WatchdogMode,
    WatchdogState, WatchdogTiming,
};

#[cfg(test)]
mod tests;
