//! What the daemon promises on input from strangers, each promise checked
//! by one function that both fuzzers call: the bounded, seeded tests that
//! run in CI and the cargo fuzz targets under fuzz/ (see
//! docs/reliability.md, "cargo fuzz targets").
//!
//! - [`dcs`]: values written into the DCS by others, through the snapshot,
//!   the cluster, the dynamic configuration and the HA decision;
//! - [`rest`]: REST API request bodies and query strings, through the
//!   endpoints' own parsing functions (no server).
//!
//! Built for the crate's tests and with the `fuzzing` feature only.

pub mod dcs;
pub mod rest;
