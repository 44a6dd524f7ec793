//! The etcd v3 DCS plugin: Patroni's `etcd3` store, as a `cdylib` the host
//! loads through `palisade-plugin-api`.
//!
//! It keeps Patroni's key layout and values byte for byte (so Patroni and
//! Palisade nodes can share a cluster): every key lives under
//! `/<namespace>/<scope>/` (plus `<group>/` with Citus), and the leader key
//! and this member's key hang on one lease whose TTL is `ttl`.
//!
//! Map of the crate:
//! - `palisade_etcd_common` (shared with the v2 plugin): the `etcd3:`
//!   section's connection keys, host lists, DNS SRV discovery;
//! - [`connection`] and [`failure`]: the gRPC client, TLS, authentication,
//!   and the retry loop that bounds every operation by `retry_timeout`;
//! - [`keys`], [`snapshot`]: where each key lives and how one range read
//!   becomes a [`palisade_plugin_api::DcsSnapshot`];
//! - [`lease`], [`store`], [`watch`]: the contract itself.
//!
//! This crate depends on `palisade-plugin-api` only, never on a host crate;
//! it must never panic across the boundary (the SDK's guard catches what
//! slips through, but nothing here relies on it).
#![allow(non_local_definitions)]

mod connection;
mod failure;
mod keys;
mod lease;
mod snapshot;
mod store;
mod watch;

// The section's connection keys, endpoint forms and SRV discovery are
// shared with the v2 plugin.
use palisade_etcd_common::{config, endpoints, srv};

pub use store::Etcd3;

palisade_plugin_api::export_plugin!(dcs, "etcd3", Etcd3::new);
