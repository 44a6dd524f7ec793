//! A reference DCS in memory: the plain `Dcs` contract of
//! `palisade-plugin-api` (`contract.rs`) kept in one process, with leases
//! that expire on an injectable [`Clock`], compare-and-set versions, a
//! watch on the leader key, and outages on request. It passes the same
//! conformance suite as the etcd3 plugin (`tests/tests/dcs_conformance.rs`),
//! and the daemon's tests run the REST API and the HA runner on it.
//!
//! One [`MemoryStore`] is the store; every [`MemoryDcs`] is one member's
//! client of it (its own name and lease), as a plugin instance is.
//!
//! Must never depend on the host's crates or on `abi_stable` types: it
//! sees only the plain contract, as a plugin's core does.

mod clock;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use store::{MemoryDcs, MemoryStore};
