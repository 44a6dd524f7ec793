//! What the ZooKeeper and Exhibitor DCS plugins share: the ZooKeeper keys of
//! their sections, the session, and the whole DCS contract on Patroni's
//! znode layout. The two plugins differ only in where the servers come from
//! (an [`Ensemble`]): the `zookeeper:` section's `hosts`, or Exhibitor's
//! discovery.
//!
//! The leader znode and this member's znode are ephemeral, owned by the
//! session, whose timeout is `ttl` as in Patroni; values are Patroni's,
//! byte for byte, under `/<namespace>/<scope>/` (plus `<group>/` with
//! Citus, from `sdk::dcs::Keys`).
//!
//! Map of the crate:
//! - [`settings`], `tls`: the section's keys, hosts in every form Patroni
//!   accepts, TLS options;
//! - `connection`: the session, its reconnection and replacement, and the
//!   retry loop that bounds every operation by `retry_timeout`;
//! - `snapshot`, `store`, `watch`: the contract itself.
//!
//! This crate depends on `palisade-plugin-api` only, never on a host crate;
//! nothing here may panic across the plugin boundary.

mod connection;
pub mod settings;
mod snapshot;
mod store;
mod tls;
mod watch;

pub use connection::{Ensemble, Fixed};
pub use settings::Settings;
pub use store::ZooKeeper;
