//! The cluster as Patroni describes it: members, the leader key, the
//! dynamic configuration, failover and sync keys, timeline history, status.
//!
//! Plain data plus the exact JSON Patroni 4.1 reads and writes. This crate
//! does no IO and has no clock: everything time-dependent takes `now`.
//! It must never depend on `palisade-plugin-api` (nor abi_stable): the
//! host turns a DCS plugin's raw snapshot into a `Cluster` at its edge
//! (`palisade-plugin-host`), so the pure crates above the model
//! (`palisade-ha`, `palisade-postgres`) build without the plugin ABI.

pub mod cluster;
pub mod lsn;
pub mod member;
pub mod role;
pub mod tags;
pub mod values;
pub mod view;

pub use cluster::{Cluster, Leader};
pub use lsn::{format_lsn, parse_lsn};
pub use member::{
    json_kind, parse_postgres_url, slot_name_from_member_name, Member, MemberRecord, PostgresUrl,
    PATRONI_COMPAT_VERSION,
};
pub use role::{Role, State};
pub use tags::Tags;
pub use values::{ClusterConfig, Failover, HistoryLine, Status, SyncState, TimelineHistory};
pub use view::{cluster_as_json, ViewModes};

/// Serialise JSON the way Patroni writes DCS values: `json.dumps(value,
/// separators=(',', ':'))` (keys in insertion order, non-ASCII escaped,
/// floats as Python prints them).
pub fn to_compact_json(value: &impl serde::Serialize) -> String {
    // Serialising plain data (maps, strings, numbers) cannot fail.
    serde_json::to_value(value).map_or_else(|_| String::from("null"), |v| palisade_pycompat::json::dumps_compact(&v))
}

/// Patroni's `parse_int` without a unit (`palisade_pycompat::patroni`),
/// for values read from JSON written by others: `5`, `"5"`, `5.0`,
/// `"0x10"`; `None` for anything else, booleans included.
pub fn parse_int(value: &serde_json::Value) -> Option<i64> {
    palisade_pycompat::patroni::parse_int(value, None)
}

/// Patroni's `parse_bool`: on/true/yes/1 and off/false/no/0, any case
/// (`palisade_pycompat::patroni`).
pub fn parse_bool(value: &serde_json::Value) -> Option<bool> {
    palisade_pycompat::patroni::parse_bool(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_int_table() {
        let cases = [
            (json!(5), Some(5)),
            (json!(5.0), Some(5)),
            (json!(5.5), Some(6)),
            (json!("17"), Some(17)),
            (json!(" 17 "), Some(17)),
            (json!("0x10"), Some(16)),
            (json!("x"), None),
            (json!(null), None),
            (json!([1]), None),
            (json!(true), None),
            (json!(1e19), None),
            (json!("99999999999999999999"), None),
            (json!(-9.3e18), None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_int(&input), expected, "{input}");
        }
    }

    #[test]
    fn parse_bool_table() {
        let cases = [
            (json!(true), Some(true)),
            (json!("on"), Some(true)),
            (json!("YES"), Some(true)),
            (json!(1), Some(true)),
            (json!("off"), Some(false)),
            (json!(0), Some(false)),
            (json!("maybe"), None),
            (json!({}), None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_bool(&input), expected, "{input}");
        }
    }
}
