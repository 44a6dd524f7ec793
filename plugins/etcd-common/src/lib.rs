//! What the etcd DCS plugins (`dcs-etcd` over the v2 HTTP API, `dcs-etcd3`
//! over gRPC) share, because Patroni reads the `etcd:` and `etcd3:`
//! sections with the same client settings:
//!
//! - [`config`]: the section's connection keys (`host`, `hosts`, `url`,
//!   `proxy`, `srv`, `srv_suffix`, `protocol`, `username`, `password`,
//!   `cacert`, `cert`, `key`, `use_proxies`...) into [`config::Settings`],
//!   every error naming `<section>.<key>`;
//! - [`endpoints`]: the host, port and URL forms Patroni accepts;
//! - [`srv`]: DNS SRV discovery with a small resolver of its own;
//! - [`peer`]: the peer API's `/members` list, for `_etcd-server` records;
//! - [`budget`]: the `retry_timeout` bound of one operation.
//!
//! An rlib linked into each plugin; it carries no etcd client (the v2
//! plugin must not pull gRPC) and never panics.

pub mod budget;
pub mod config;
pub mod endpoints;
pub mod peer;
pub mod srv;
