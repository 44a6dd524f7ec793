//! The PostgreSQL parameters Patroni controls (its `CMDLINE_OPTIONS`): they
//! are passed to the postmaster on the command line, can only be set in the
//! dynamic configuration, have defaults, and a value that fails the check
//! falls back to the default (with a warning).

use serde_json::{Map, Value};

use crate::values::{parse_bool, parse_int};

/// How a controlled parameter's value is checked.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// Never settable (`listen_addresses`, `port`, `cluster_name` come from elsewhere).
    Never,
    /// Only an "on" boolean (`hot_standby`).
    BoolTrue,
    Bool,
    /// One of these strings, any case.
    Enum(&'static [&'static str]),
    /// An integer at least `min` (after converting to `unit`, if any).
    Int {
        min: i64,
        unit: Option<&'static str>,
    },
}

/// One controlled parameter.
#[derive(Clone, Copy, Debug)]
pub struct Controlled {
    pub name: &'static str,
    /// Patroni's default, as JSON text (`None`: no default).
    pub default: Option<&'static str>,
    pub check: Check,
    /// First PostgreSQL version (`server_version_num`) that has it.
    pub min_version: u32,
}

/// Patroni 4.1's table, in its order.
pub const CONTROLLED: [Controlled; 15] = [
    Controlled { name: "listen_addresses", default: None, check: Check::Never, min_version: 90100 },
    Controlled { name: "port", default: None, check: Check::Never, min_version: 90100 },
    Controlled { name: "cluster_name", default: None, check: Check::Never, min_version: 90500 },
    Controlled {
        name: "wal_level",
        default: Some("\"hot_standby\""),
        check: Check::Enum(&["hot_standby", "replica", "logical"]),
        min_version: 90100,
    },
    Controlled { name: "hot_standby", default: Some("\"on\""), check: Check::BoolTrue, min_version: 90100 },
    Controlled {
        name: "max_connections",
        default: Some("100"),
        check: Check::Int { min: 25, unit: None },
        min_version: 90100,
    },
    Controlled {
        name: "max_wal_senders",
        default: Some("10"),
        check: Check::Int { min: 3, unit: None },
        min_version: 90100,
    },
    Controlled {
        name: "wal_keep_segments",
        default: Some("8"),
        check: Check::Int { min: 1, unit: None },
        min_version: 90100,
    },
    Controlled {
        name: "wal_keep_size",
        default: Some("\"128MB\""),
        check: Check::Int { min: 16, unit: Some("MB") },
        min_version: 130000,
    },
    Controlled {
        name: "max_prepared_transactions",
        default: Some("0"),
        check: Check::Int { min: 0, unit: None },
        min_version: 90100,
    },
    Controlled {
        name: "max_locks_per_transaction",
        default: Some("64"),
        check: Check::Int { min: 32, unit: None },
        min_version: 90100,
    },
    Controlled { name: "track_commit_timestamp", default: Some("\"off\""), check: Check::Bool, min_version: 90500 },
    Controlled {
        name: "max_replication_slots",
        default: Some("10"),
        check: Check::Int { min: 4, unit: None },
        min_version: 90400,
    },
    Controlled {
        name: "max_worker_processes",
        default: Some("8"),
        check: Check::Int { min: 2, unit: None },
        min_version: 90400,
    },
    Controlled { name: "wal_log_hints", default: Some("\"on\""), check: Check::Bool, min_version: 90400 },
];

/// The controlled parameter called `name` (any case), if it is one.
pub fn controlled(name: &str) -> Option<&'static Controlled> {
    CONTROLLED.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

impl Controlled {
    pub fn default_value(&self) -> Option<Value> {
        self.default.and_then(|d| serde_json::from_str(d).ok())
    }

    /// The value to use when `value` passes the check (integers normalised
    /// to JSON numbers when they have no unit), `None` when it does not.
    pub fn accept(&self, value: &Value) -> Option<Value> {
        match self.check {
            Check::Never => None,
            Check::BoolTrue => (parse_bool(value) == Some(true)).then(|| value.clone()),
            Check::Bool => parse_bool(value).is_some().then(|| value.clone()),
            Check::Enum(allowed) => match value {
                Value::String(s) if allowed.iter().any(|a| a.eq_ignore_ascii_case(s)) => Some(value.clone()),
                _ => None,
            },
            Check::Int { min, unit } => {
                let v = parse_int(value, unit)?;
                if v < min {
                    return None;
                }
                Some(parse_int(value, None).map_or_else(|| value.clone(), Value::from))
            }
        }
    }
}

/// The defaults Patroni starts every effective configuration from (all
/// controlled parameters with a default except `wal_keep_*`, which are
/// worked out per PostgreSQL version).
pub fn default_parameters() -> Map<String, Value> {
    let mut m = Map::new();
    for c in CONTROLLED.iter().filter(|c| !c.name.starts_with("wal_keep_")) {
        if let Some(v) = c.default_value() {
            m.insert(c.name.into(), v);
        }
    }
    m
}

/// Inserts `key` into `map` treating keys case-insensitively, as Patroni's
/// `CaseInsensitiveDict`: an existing key of another case is replaced.
pub fn ci_insert(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.contains_key(key) {
        map.insert(key.to_string(), value);
        return;
    }
    if let Some(existing) = map.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned() {
        let old = std::mem::take(map);
        for (k, v) in old {
            if k == existing {
                map.insert(key.to_string(), value.clone());
            } else {
                map.insert(k, v);
            }
        }
        return;
    }
    map.insert(key.to_string(), value);
}

/// Case-insensitive lookup.
pub fn ci_get<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// Case-insensitive removal.
pub fn ci_remove(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    let existing = map.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned()?;
    let old = std::mem::take(map);
    let mut removed = None;
    for (k, v) in old {
        if k == existing {
            removed = Some(v);
        } else {
            map.insert(k, v);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_follow_patroni() {
        let cases: &[(&str, Value, Option<Value>)] = &[
            ("max_connections", json!(200), Some(json!(200))),
            ("max_connections", json!("200"), Some(json!(200))),
            ("max_connections", json!(10), None),
            ("max_connections", json!("lots"), None),
            ("MAX_CONNECTIONS", json!(30), Some(json!(30))),
            ("wal_level", json!("LOGICAL"), Some(json!("LOGICAL"))),
            ("wal_level", json!("minimal"), None),
            ("hot_standby", json!("off"), None),
            ("hot_standby", json!(true), Some(json!(true))),
            ("wal_log_hints", json!("maybe"), None),
            ("wal_keep_size", json!("1GB"), Some(json!("1GB"))),
            ("wal_keep_size", json!("8MB"), None),
            ("wal_keep_size", json!(256), Some(json!(256))),
            ("port", json!(5432), None),
        ];
        for (name, value, expected) in cases {
            let c = controlled(name).expect("controlled");
            assert_eq!(&c.accept(value), expected, "{name}={value}");
        }
        assert!(controlled("work_mem").is_none());
    }

    #[test]
    fn case_insensitive_map() {
        let mut m = Map::new();
        m.insert("a".into(), json!(1));
        m.insert("Max_Connections".into(), json!(1));
        m.insert("z".into(), json!(1));
        ci_insert(&mut m, "max_connections", json!(5));
        assert_eq!(Value::Object(m.clone()), json!({"a": 1, "max_connections": 5, "z": 1}));
        assert_eq!(m.keys().nth(1).map(String::as_str), Some("max_connections"));
        assert_eq!(ci_get(&m, "MAX_connections"), Some(&json!(5)));
        assert_eq!(ci_remove(&mut m, "A"), Some(json!(1)));
        assert_eq!(Value::Object(m), json!({"max_connections": 5, "z": 1}));
    }
}
