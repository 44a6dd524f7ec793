//! The etcd v2 DCS plugin: Patroni's `etcd` store over etcd's v2 HTTP API
//! (`/v2/keys/...`), as a `cdylib` the host loads through
//! `palisade-plugin-api`. etcd 3.x serves that API with `--enable-v2=true`.
//!
//! It keeps Patroni's key layout and values byte for byte (so Patroni and
//! Palisade nodes can share a cluster): every key lives under
//! `/<namespace>/<scope>/` (plus `<group>/` with Citus); the leader key and
//! this member's key carry a TTL of `ttl` seconds and are renewed by
//! rewriting them.
//!
//! Map of the crate:
//! - `palisade_etcd_common` (shared with the etcd3 plugin): the `etcd:`
//!   section's connection keys, host lists, DNS SRV discovery, the
//!   `retry_timeout` budget;
//! - [`api`]: the v2 API's requests and answers (URLs, form bodies, nodes,
//!   error codes) as pure functions;
//! - [`connection`]: the HTTP client, TLS, basic authentication, the list
//!   of etcd members (refreshed from `/v2/machines` unless `use_proxies`)
//!   and the retry loop bounded by `retry_timeout`;
//! - [`store`], [`watch`]: the contract itself.
//!
//! This crate depends on `palisade-plugin-api` and the shared etcd crate
//! only; it must never panic across the boundary.
#![allow(non_local_definitions)]

mod api;
mod connection;
mod store;
mod watch;

pub use store::Etcd;

palisade_plugin_api::export_plugin!(dcs, "etcd", Etcd::new);
