//! PostgreSQL control for palisade: typed wrappers of the PostgreSQL
//! programs, the configuration files Patroni writes, the postmaster's
//! lifecycle, and the SQL the daemon needs.
//!
//! This crate knows nothing about the DCS, the HA decisions or the plugin
//! ABI, and must never depend on them (no `palisade-ha`, no
//! `palisade-plugin-api` types, no DCS client): the daemon composes these
//! building blocks. Its only palisade dependencies are `palisade-config`
//! (the settings it reads), `palisade-model` (LSN formatting, slot names,
//! history lines) and `palisade-pycompat` (Patroni's value parsing and
//! comparison, `shlex.split`).
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
//! - [`libpq`]: libpq's connection settings (`sslmode`, `sslcert`,
//!   `channel_binding`...) for the daemon's own connections, over rustls.
//! - [`controldata`], [`datadir`]: pg_control and the data directory;
//!   [`replslot`]: a logical slot's state file copied into `pg_replslot`.
//! - [`divergence`]: can a stopped data directory follow the leader's
//!   timeline (pure function plus the IO gathering its inputs).
//! - [`bootstrap`]: initdb options, custom bootstrap commands, post_bootstrap.
//!
//! Every operation is async (tokio) and needs a tokio runtime.
//!
//! # Typical use by the daemon
//!
//! ```text
//! let pg = Postgres::new(PgSettings { name, scope, local, effective });
//! match pg.data_dir_state() { .. }                     // empty: bootstrap or clone
//! pg.initdb(&bootstrap.initdb).await?;                  // or pg.custom_bootstrap(&method)
//! pg.start(local.pg_ctl_timeout).await?;                // Running | Starting | Failed | AlreadyRunning
//! pg.post_bootstrap(bootstrap.post_bootstrap.as_deref()).await?;
//! // every cycle
//! pg.is_running();                                      // adopts a postmaster after a daemon restart
//! let status = pg.status().await?;                      // timeline, LSNs, replication, pending restart
//! // follow a leader
//! let target = FollowTarget::member(&leader.name, conn_url)?;
//! let change = pg.follow(Some(&target)).await?;          // reload_needed / restart_needed
//! // new configuration
//! pg.update_settings(settings).await; let change = pg.write_config().await?;
//! if change.reload_needed { pg.reload().await? }
//! // failover
//! pg.promote(wait).await?;
//! // demotion / rejoin
//! pg.stop(StopOptions::fast(Some(timeout))).await?;    // reports the shutdown checkpoint
//! pg.crash_recovery().await?;                           // after a crash, before a divergence check
//! pg.check_divergence(leader_timeline, &history).await?;
//! ```
//!
//! What is deliberately elsewhere: deciding what to do (`palisade-ha`),
//! callbacks (callback plugins), replica creation (replica plugins), the
//! `pre_promote` script and timing policies (the daemon).

pub mod binaries;
pub mod bootstrap;
pub mod conf;
pub mod controldata;
pub mod datadir;
pub mod divergence;
mod instance;
pub mod libpq;
pub mod process;
pub mod replslot;
pub mod sql;

pub use controldata::{ClusterState, ControlData, LocalPosition};
pub use divergence::Divergence;
pub use instance::{
    find_missing_wal, rewind_user_options, ConfigChange, Escalation, PgError, PgSettings, Postgres, PromoteOutcome,
    RewindOutcome, RewindSource, StartOutcome, StopOptions, StopOutcome, SyncNames,
};
pub use process::StopMode;
