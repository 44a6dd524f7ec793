//! The host side that both palisade binaries share (`palisade` and
//! `palisadectl`): how they reach a cluster.
//!
//! - [`plugins`]: finds and loads the DCS, replica and callback plugins
//!   (one file each, every problem collected);
//! - [`dcs`]: [`dcs::DcsClient`], every DCS plugin call on a blocking thread
//!   with a deadline;
//! - [`snapshot`]: the plugin's raw snapshot becomes a model `Cluster`
//!   (the model never sees plugin-api types), a `Leader` its `LeaderKey`;
//! - [`http`]: the client side of TLS: PEM certificates and keys
//!   (encrypted PKCS#8 too) and the HTTP(S) client for members' REST APIs,
//!   as Patroni's `PatroniRequest` makes it.
//!
//! Architecture invariant: abi_stable's `R*` types never get past
//! `palisade-plugin-api`; this crate sees only its plain traits.
//!
//! Architecture invariant: this crate must never depend on the daemon
//! (`palisade-daemon`), on an HTTP server (axum, hyper's `server`
//! feature, a TLS acceptor) or on `palisade-ha`: palisadectl links it, and
//! it stays a client. It decides nothing.

pub mod dcs;
pub mod http;
pub mod plugins;
pub mod snapshot;
pub mod worker;
