//! Cluster tests against real processes: the harness that runs the servers
//! (etcd, with its raw client; `dcs` puts every DCS a cluster can run on
//! behind one trait), the loading of plugins through the real loader, and
//! the DCS conformance suite every DCS plugin must pass.
//!
//! Test code only: nothing here may be used by production code, and it
//! reaches plugins only through `palisade-plugin-api` (never by linking a
//! plugin crate), as the daemon does.

pub use palisade_test_support::certs;
pub mod backup;
pub mod browser;
pub mod chaos;
pub mod citus_double;
pub mod cluster;
pub mod conformance;
pub mod consul;
pub mod consul_plugin;
pub mod ctl;
pub mod dcs;
pub mod diverge;
pub mod dns_double;
pub mod etcd;
pub mod etcd2;
pub mod etcd3;
pub mod exhibitor;
pub mod http;
pub mod kubernetes;
pub mod kubernetes_plugin;
pub mod memory;
pub mod patroni;
pub mod plugins;
pub mod rest_fuzz;
pub mod watchdog;
pub mod zookeeper;
