//! The `citus` section: `group` and `database`, as Patroni accepts them.

use palisade_plugin_api::sdk::pycompat::patroni::parse_int;
use palisade_plugin_api::sdk::settings::{error, kind};
use palisade_plugin_api::PluginResult;
use serde_json::Value;

/// The coordinator's group.
pub const COORDINATOR_GROUP: i32 = 0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `citus.group`: 0 for the coordinator, a worker group's number otherwise.
    pub group: i32,
    /// `citus.database`: where the `citus` extension lives.
    pub database: String,
}

impl Settings {
    /// Read the section (JSON). Like Patroni, `group` is anything its
    /// `parse_int` reads as an integer (`1`, `"1"`); it must be 0 or more.
    pub fn parse(json: &str) -> PluginResult<Self> {
        let value: Value = serde_json::from_str(json).map_err(|e| error("citus", "", format!("not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(error("citus", "", format!("expected a map, found {}", kind(&value))));
        };
        let database = match map.get("database") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) => return Err(error("citus", "database", "must not be empty")),
            Some(other) => return Err(error("citus", "database", format!("expected a string, found {}", kind(other)))),
            None => return Err(error("citus", "database", "missing")),
        };
        let group = match map.get("group") {
            None => return Err(error("citus", "group", "missing")),
            Some(v @ (Value::Number(_) | Value::String(_))) => match parse_int(v, None) {
                Some(g) if (0..=i64::from(i32::MAX)).contains(&g) => g as i32,
                Some(g) => {
                    return Err(error("citus", "group", format!("must be between 0 and {}, found {g}", i32::MAX)))
                }
                None => return Err(error("citus", "group", format!("expected an integer, found {v}"))),
            },
            Some(other) => return Err(error("citus", "group", format!("expected an integer, found {}", kind(other)))),
        };
        Ok(Self { group, database })
    }

    pub fn is_coordinator(&self) -> bool {
        self.group == COORDINATOR_GROUP
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        let ok = |g: i32, d: &str| Ok(Settings { group: g, database: d.into() });
        let cases: [(&str, Result<Settings, &str>); 10] = [
            (r#"{"group": 0, "database": "citus"}"#, ok(0, "citus")),
            (r#"{"group": 2, "database": "db"}"#, ok(2, "db")),
            (r#"{"group": "3", "database": "db"}"#, ok(3, "db")),
            (r#"{"database": "db"}"#, Err("citus.group: missing")),
            (r#"{"group": 1}"#, Err("citus.database: missing")),
            (r#"{"group": 1, "database": ""}"#, Err("citus.database: must not be empty")),
            (r#"{"group": 1, "database": 5}"#, Err("citus.database: expected a string, found a number")),
            (r#"{"group": -1, "database": "d"}"#, Err("citus.group: must be between 0 and 2147483647, found -1")),
            (r#"{"group": true, "database": "d"}"#, Err("citus.group: expected an integer, found a boolean")),
            (r#"[1]"#, Err("citus: expected a map, found a list")),
        ];
        for (json, want) in cases {
            let got = Settings::parse(json).map_err(|e| e.message);
            assert_eq!(got, want.map_err(String::from), "{json}");
        }
        assert!(Settings::parse(r#"{"group": "x", "database": "d"}"#).unwrap_err().message.starts_with("citus.group"));
    }
}
