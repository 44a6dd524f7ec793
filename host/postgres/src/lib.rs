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
//! # Map
//!
//! - [`Postgres`]: one local PostgreSQL as the daemon drives it (settings,
//!   postmaster handle, cached SQL connection, recovery settings): write
//!   the configuration, start, stop, promote, reload, crash recovery,
//!   status, bootstrap steps, divergence check. Start here.
//! - [`binaries`]: one async function per PostgreSQL program, each with an
//!   args struct, a cleared environment and a [`binaries::CommandError`].
//! - [`conf`]: postgresql.conf / pg_hba.conf / pg_ident.conf / recovery
//!   settings / pgpass / connection strings, rendered exactly as Patroni
//!   writes them (pure), and the file operations.
//! - [`process`]: the postmaster process: spawn in its own session, adopt
//!   from `postmaster.pid`, signal, wait, kill.
//! - [`sql`]: the superuser connection and the queries (status snapshot,
//!   replication, roles, slots, settings, checkpoint).
//! - [`controldata`], [`datadir`]: pg_control and the data directory.
//! - [`divergence`]: can a stopped data directory follow the leader's
//!   timeline (pure function plus the IO gathering its inputs).
//! - [`bootstrap`]: initdb options, custom bootstrap commands, post_bootstrap.
//! - [`units`]: Patroni's parsing and comparison of setting values.
//!
//! Every operation is async (tokio) and needs a tokio runtime.

pub mod binaries;
pub mod bootstrap;
pub mod conf;
pub mod controldata;
pub mod datadir;
pub mod divergence;
mod instance;
pub mod process;
pub mod sql;
pub mod units;

pub use controldata::{ClusterState, ControlData, LocalPosition};
pub use divergence::Divergence;
pub use instance::{
    ConfigChange, Escalation, PgError, PgSettings, Postgres, PromoteOutcome, StartOutcome, StopOptions, StopOutcome,
};
pub use process::StopMode;
