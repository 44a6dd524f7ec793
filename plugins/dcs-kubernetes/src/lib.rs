//! The Kubernetes DCS plugin: Patroni's `kubernetes` store, as a `cdylib`
//! the host loads through `palisade-plugin-api`, on the `kube` client.
//!
//! It keeps Patroni's objects, annotations and labels as they are (so
//! Patroni and Palisade nodes can share a cluster): the leader lock as
//! annotations of `<scope>-leader` (ConfigMaps, the default) or of the
//! `<scope>` Endpoints (`use_endpoints`), the dynamic configuration,
//! `initialize` and the timeline history on `<scope>-config`, failover and
//! sync on `<scope>-failover` and `<scope>-sync`, and each member's state
//! as the `status` annotation of its own Pod, with the role label.
//! Compare-and-set is a patch carrying `metadata.resourceVersion` (409:
//! somebody else wrote first). Beyond Patroni, `leader_lease: true` puts
//! the lock on a `coordination.k8s.io/v1` Lease instead.
//!
//! Map of the crate:
//! - [`settings`]: the `kubernetes:` section;
//! - [`names`]: object names (with Citus groups) and annotation keys;
//! - [`annotations`]: the contract's JSON values as Patroni's annotations;
//! - [`connection`]: in-cluster config or kubeconfig, `bypass_api_service`,
//!   the retry loop bounded by `retry_timeout`;
//! - [`objects`]: patch, create, "patch or create";
//! - [`snapshot`]: one read as a [`palisade_plugin_api::DcsSnapshot`], with
//!   the reader-side expiry of the lock;
//! - [`store`], [`endpoints`], [`watch`]: the contract itself.
//!
//! This crate depends on `palisade-plugin-api` only, never on a host crate;
//! it must never panic across the boundary (the SDK's guard catches what
//! slips through, but nothing here relies on it).
#![allow(non_local_definitions)]

mod annotations;
mod connection;
mod endpoints;
mod names;
mod objects;
mod settings;
mod snapshot;
mod store;
mod watch;

pub use store::Kubernetes;

palisade_plugin_api::export_plugin!(dcs, "kubernetes", Kubernetes::new);
