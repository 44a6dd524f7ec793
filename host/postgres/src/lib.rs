//! PostgreSQL control for palisade: typed wrappers of the PostgreSQL
//! programs, the configuration files Patroni writes, the postmaster's
//! lifecycle, and the SQL the daemon needs.
//!
//! This crate knows nothing about the DCS, the HA decisions or the plugin
//! ABI, and must never depend on them (no `palisade-ha`, no
//! `palisade-plugin-api` types, no DCS client): the daemon composes these
//! building blocks. Its only palisade dependencies are `palisade-config`
//! (the settings it reads) and `palisade-model` (LSN formatting, slot names,
//! history lines).
//!
//! Work in progress: see the modules.

pub mod binaries;
pub mod conf;
pub mod controldata;
pub mod datadir;
pub mod units;
