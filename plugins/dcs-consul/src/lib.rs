//! The Consul DCS plugin: Patroni's `consul` store over Consul's HTTP API
//! (`/v1/kv`, `/v1/session`, `/v1/agent/service`), as a `cdylib` the host
//! loads through `palisade-plugin-api`.
//!
//! It keeps Patroni's key layout and values byte for byte (so Patroni and
//! Palisade nodes can share a cluster): every key lives under
//! `<namespace>/<scope>/` (plus `<group>/` with Citus), without the leading
//! slash as Consul KV paths go. The leader key and this member's key are
//! held by a session whose TTL is half of `ttl` (Consul invalidates a
//! session only after twice its TTL), with `lock_delay` 0.001 s and the
//! `delete` behaviour, so the keys go with the session.
//!
//! Map of the crate:
//! - [`settings`]: the `consul:` section (address forms, TLS, token, `dc`,
//!   `consistency`, `checks`, the service settings);
//! - [`api`]: requests and answers of the HTTP API as pure functions;
//! - [`client`]: the HTTP client and the retry loop bounded by
//!   `retry_timeout`;
//! - [`service`]: `register_service` (role tags and the REST API check);
//! - [`store`]: the contract itself, with the session and `watch`.
//!
//! It must never panic across the boundary.
#![allow(non_local_definitions)]

mod api;
mod client;
mod service;
mod settings;
mod store;

pub use store::Consul;

palisade_plugin_api::export_plugin!(dcs, "consul", Consul::new);
