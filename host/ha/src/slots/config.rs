//! The slot settings of the dynamic configuration, read as Patroni reads
//! them: `slots` (permanent slots), `ignore_slots`, `use_slots`,
//! `member_slots_ttl`. Values someone wrote wrong are reported and left
//! out, never trusted.

use serde_json::{Map, Value};

use crate::output::Level;

/// The slot settings in force.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlotConfig {
    /// `postgresql.use_slots`.
    pub use_slots: bool,
    /// `member_slots_ttl` in seconds: how long the leader keeps the slot of
    /// a member that is gone; 0 keeps member slots only where members
    /// stream.
    pub member_slots_ttl: f64,
    /// `slots` (or `permanent_slots`, `permanent_replication_slots`), as
    /// written.
    pub permanent: Map<String, Value>,
    /// `ignore_slots`, as written.
    pub ignore: Vec<Value>,
    /// `standby_cluster` is set.
    pub standby_cluster: bool,
    /// `pause`: slots are created but never dropped.
    pub paused: bool,
}

/// One `ignore_slots` rule; a field that is absent (or empty) matches
/// anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreSlot {
    pub name: Option<Value>,
    /// `physical` or `logical`.
    pub slot_type: Option<Value>,
    pub database: Option<Value>,
    pub plugin: Option<Value>,
}

impl IgnoreSlot {
    /// Does this rule cover the slot `name` of this type, database and
    /// plugin (Patroni's `ignore_replication_slot`)?
    pub fn matches(&self, name: &str, slot_type: &str, database: Option<&str>, plugin: Option<&str>) -> bool {
        let same = |rule: &Option<Value>, value: Option<&str>| match rule {
            None => true,
            Some(v) => value.is_some_and(|s| v.as_str() == Some(s)),
        };
        same(&self.name, Some(name))
            && same(&self.slot_type, Some(slot_type))
            && same(&self.database, database)
            && same(&self.plugin, plugin)
    }
}

pub(crate) use palisade_pycompat::py::truthy;

/// A permanent slot as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Permanent {
    Physical {
        /// `cluster_type`: `primary` or `standby` restricts where it exists.
        cluster_type: Option<String>,
    },
    Logical {
        database: String,
        plugin: String,
    },
}

impl Permanent {
    pub(crate) fn is_physical(&self) -> bool {
        matches!(self, Permanent::Physical { .. })
    }
}

/// Patroni's `slot_name_re`: `^[a-z0-9_]{1,63}$`.
pub(crate) fn valid_slot_name(name: &str) -> bool {
    (1..=63).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl SlotConfig {
    /// Member slots are kept for every member (Patroni 4's retention).
    pub(crate) fn retains_member_slots(&self) -> bool {
        self.member_slots_ttl > 0.0
    }

    /// The `ignore_slots` rules; entries that are not mappings are
    /// reported and skipped.
    pub fn ignore_rules(&self, log: &mut Vec<(Level, String)>) -> Vec<IgnoreSlot> {
        let mut out = Vec::new();
        for (i, rule) in self.ignore.iter().enumerate() {
            let Value::Object(m) = rule else {
                log.push((
                    Level::Warn,
                    format!(
                        "ignore_slots[{i}]: expected a mapping, found {}; skipped",
                        palisade_pycompat::py::repr(rule)
                    ),
                ));
                continue;
            };
            // `name` matches when present and not null; the other fields
            // only when they are set to something (Patroni's rule).
            let field = |k: &str| m.get(k).filter(|v| truthy(v)).cloned();
            out.push(IgnoreSlot {
                name: m.get("name").filter(|v| !v.is_null()).cloned(),
                slot_type: field("type"),
                database: field("database"),
                plugin: field("plugin"),
            });
        }
        out
    }

    /// Is the slot `name` (of this type, database, plugin) one that
    /// `ignore_slots` tells us to leave alone?
    pub fn ignored(&self, name: &str, slot_type: &str, database: Option<&str>, plugin: Option<&str>) -> bool {
        self.ignore_rules(&mut Vec::new()).iter().any(|r| r.matches(name, slot_type, database, plugin))
    }

    /// The permanent slots with a valid name and value, in name order;
    /// the others are reported (Patroni's `_merge_permanent_slots` checks).
    pub(crate) fn permanent_slots(&self, log: &mut Vec<(Level, String)>) -> Vec<(String, Permanent)> {
        let mut out = Vec::new();
        for (name, value) in &self.permanent {
            if !valid_slot_name(name) {
                log.push((Level::Error, format!("Invalid permanent replication slot name '{name}'")));
                log.push((
                    Level::Error,
                    "Slot name may only contain lower case letters, numbers, and the underscore chars".into(),
                ));
                continue;
            }
            match parse_permanent(value) {
                Some(p) => out.push((name.clone(), p)),
                None => log.push((
                    Level::Error,
                    format!("Bad value for slot '{name}' in permanent_slots: {}", palisade_pycompat::py::repr(value)),
                )),
            }
        }
        out
    }
}

/// One permanent slot's value: empty means physical; a mapping without a
/// `type` is logical when it names a database and a plugin.
fn parse_permanent(value: &Value) -> Option<Permanent> {
    if !truthy(value) {
        return Some(Permanent::Physical { cluster_type: None });
    }
    let m = value.as_object()?;
    let text = |k: &str| m.get(k).filter(|v| truthy(v));
    let database = text("database");
    let plugin = text("plugin");
    let default_type = if database.is_some() && plugin.is_some() { "logical" } else { "physical" };
    let slot_type = match m.get("type") {
        None => default_type,
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return None,
    };
    match slot_type {
        "physical" => {
            Some(Permanent::Physical { cluster_type: m.get("cluster_type").and_then(Value::as_str).map(String::from) })
        }
        // Database and plugin are names: anything but text is a mistake.
        "logical" => Some(Permanent::Logical {
            database: database?.as_str()?.to_string(),
            plugin: plugin?.as_str()?.to_string(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn permanent_values() {
        let physical = Some(Permanent::Physical { cluster_type: None });
        let logical = Some(Permanent::Logical { database: "db".into(), plugin: "pgoutput".into() });
        #[rustfmt::skip]
        let cases = [
            (json!(null), physical.clone()),
            (json!({}), physical.clone()),
            (json!(0), physical.clone()),
            (json!({"type": "physical"}), physical.clone()),
            (json!({"type": "physical", "cluster_type": "standby"}),
             Some(Permanent::Physical { cluster_type: Some("standby".into()) })),
            (json!({"database": "db", "plugin": "pgoutput"}), logical.clone()),
            (json!({"type": "logical", "database": "db", "plugin": "pgoutput"}), logical.clone()),
            // A database alone: physical, as Patroni defaults the type.
            (json!({"database": "db"}), physical.clone()),
            (json!({"type": "logical", "plugin": "pgoutput"}), None),
            (json!({"type": "logical", "database": "", "plugin": "pgoutput"}), None),
            (json!({"type": "logical", "database": 5, "plugin": "pgoutput"}), None),
            (json!({"type": "other"}), None),
            (json!({"type": 1}), None),
            (json!("x"), None),
            (json!([1]), None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_permanent(&value), want, "{value}");
        }
    }

    #[test]
    fn permanent_names_and_bad_values_are_reported() {
        let cfg = SlotConfig {
            permanent: json!({"ok": null, "Bad-Name": null, "bad_value": "x", "l": {"database": "d", "plugin": "p"}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..SlotConfig::default()
        };
        let mut log = Vec::new();
        let got: Vec<String> = cfg.permanent_slots(&mut log).into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, ["ok", "l"]);
        let lines: Vec<&str> = log.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                "Invalid permanent replication slot name 'Bad-Name'",
                "Slot name may only contain lower case letters, numbers, and the underscore chars",
                "Bad value for slot 'bad_value' in permanent_slots: 'x'",
            ]
        );
    }

    #[test]
    fn slot_names() {
        for (name, ok) in [("a", true), ("a_1", true), ("", false), ("A", false), ("a-b", false), ("é", false)] {
            assert_eq!(valid_slot_name(name), ok, "{name}");
        }
        assert!(valid_slot_name(&"a".repeat(63)));
        assert!(!valid_slot_name(&"a".repeat(64)));
    }

    #[test]
    fn ignore_matchers() {
        let cfg = SlotConfig {
            ignore: vec![
                json!({"name": "by_name"}),
                json!({"type": "logical", "database": "db1"}),
                json!({"plugin": "wal2json"}),
                json!({"name": "exact", "type": "physical"}),
                json!({"name": "x", "type": ""}),
                json!("not a mapping"),
            ],
            ..SlotConfig::default()
        };
        #[rustfmt::skip]
        let cases = [
            (("by_name", "physical", None, None), true),
            (("by_name", "logical", Some("d"), Some("p")), true),
            (("other", "logical", Some("db1"), Some("p")), true),
            (("other", "physical", None, None), false),
            (("other", "logical", Some("db2"), Some("p")), false),
            (("w", "logical", Some("db2"), Some("wal2json")), true),
            (("exact", "physical", None, None), true),
            (("exact", "logical", Some("d"), Some("p")), false),
            // An empty type matches any type.
            (("x", "logical", Some("d"), Some("p")), true),
        ];
        for ((name, t, db, plugin), want) in cases {
            assert_eq!(cfg.ignored(name, t, db, plugin), want, "{name} {t} {db:?} {plugin:?}");
        }
        let mut log = Vec::new();
        assert_eq!(cfg.ignore_rules(&mut log).len(), 5);
        assert_eq!(log.len(), 1, "{log:?}");
    }
}
