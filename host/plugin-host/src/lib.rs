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
//!   as Patroni's `PatroniRequest` makes it;
//! - [`worker`]: a replica made in a child process (`--replica-worker`);
//! - [`spawn_plugin_call`]: how every plugin call leaves the async runtime.
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

/// Run a plugin call on one of tokio's blocking threads, and give back the
/// stack it went deep on once it returns (see
/// `palisade_plugin_api::stack`): the blocking threads outlive the call.
pub fn spawn_plugin_call<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(move || {
        let out = f();
        palisade_plugin_api::stack::release_unused();
        out
    })
}
