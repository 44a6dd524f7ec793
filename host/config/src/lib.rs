//! Patroni-compatible configuration: YAML file, PATRONI_* environment, validation, dynamic merge (work in progress).

pub mod types;
pub use types::*;
