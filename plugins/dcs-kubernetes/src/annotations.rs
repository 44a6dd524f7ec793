//! Between the contract's values (Patroni's JSON, as the other stores hold
//! it) and the annotations Patroni's kubernetes module writes instead.
//!
//! Reading never rejects anything: annotation values come back as the
//! strings they are, and the host parses them like any stored value.
//! Writing takes the JSON the host built and spells each field as Patroni
//! does (`quorum` as text, `slots` compact JSON, `retain_slots` with
//! Python's default separators). `None` removes an annotation (a merge
//! patch with `null`).

use std::collections::BTreeMap;

use palisade_plugin_api::{PluginError, PluginResult};
use serde_json::{Map, Value};

use crate::names;

pub(crate) type Annotations = BTreeMap<String, String>;
/// Annotations to write: `None` deletes.
pub(crate) type Changes = BTreeMap<String, Option<String>>;

fn object(what: &str, value: &str) -> PluginResult<Map<String, Value>> {
    if value.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        _ => Err(PluginError::other(format!("{what}: expected a JSON object, got '{value}'"))),
    }
}

/// A JSON field as annotation text: strings as they are, numbers and
/// booleans printed, null and empty strings removed.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Python's `json.dumps(value)` with its default separators (`, ` and
/// `: `), as Patroni writes `retain_slots`.
pub(crate) fn python_dumps(v: &Value) -> String {
    match v {
        Value::Array(items) => format!("[{}]", items.iter().map(python_dumps).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_dumps(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// `set_failover_value`: `leader`, `member`, `scheduled_at`.
pub(crate) fn failover_changes(value: &str) -> PluginResult<Changes> {
    let m = object("failover", value)?;
    Ok(["leader", "member", "scheduled_at"].iter().map(|k| (k.to_string(), text(m.get(*k)))).collect())
}

/// `set_sync_state_value` / `delete_sync_state`: `leader`, `sync_standby`, `quorum`.
pub(crate) fn sync_changes(value: &str) -> PluginResult<Changes> {
    let m = object("sync", value)?;
    let mut changes: Changes =
        ["leader", "sync_standby", "quorum"].iter().map(|k| (k.to_string(), text(m.get(*k)))).collect();
    if text(m.get("leader")).is_none() {
        // Patroni writes no quorum without a leader.
        changes.insert("quorum".into(), None);
    }
    Ok(changes)
}

/// `write_status`: `optime`, `slots`, `retain_slots` on the leader object.
pub(crate) fn status_changes(value: &str) -> PluginResult<Changes> {
    let m = object("status", value)?;
    let mut c = Changes::new();
    c.insert(names::OPTIME.into(), text(m.get("optime")));
    let slots = m.get("slots").filter(|v| v.as_object().is_some_and(|o| !o.is_empty()));
    c.insert(names::SLOTS.into(), slots.map(Value::to_string));
    let retain = m.get("retain_slots").filter(|v| v.as_array().is_some_and(|a| !a.is_empty()));
    c.insert(names::RETAIN_SLOTS.into(), retain.map(python_dumps));
    Ok(c)
}

/// The failover object's annotations, in the order Patroni's JSON has them.
pub(crate) const FAILOVER_KEYS: [&str; 3] = ["leader", "member", "scheduled_at"];
/// The sync object's annotations, in the order the JSON has them.
pub(crate) const SYNC_KEYS: [&str; 3] = ["leader", "quorum", "sync_standby"];

/// The failover object's annotations as the JSON value the other stores
/// hold: the fields there are, strings as stored; no field at all is the
/// cleared failover (an empty value).
pub(crate) fn failover_json(annotations: &Annotations) -> String {
    let m: Map<String, Value> = FAILOVER_KEYS
        .iter()
        .filter_map(|k| annotations.get(*k).map(|v| (k.to_string(), Value::String(v.clone()))))
        .collect();
    if m.is_empty() {
        return String::new();
    }
    Value::Object(m).to_string()
}

/// The sync object's annotations as the JSON value the other stores hold
/// (`{"leader":..,"quorum":..,"sync_standby":..}`, null where missing; a
/// numeric `quorum` as a number), `{}` when it has none (deleted state).
pub(crate) fn sync_json(annotations: &Annotations) -> String {
    if !SYNC_KEYS.iter().any(|k| annotations.contains_key(*k)) {
        return "{}".into();
    }
    let m: Map<String, Value> = SYNC_KEYS
        .iter()
        .map(|k| {
            let value = match annotations.get(*k) {
                None => Value::Null,
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if *k == "quorum" => Value::from(n),
                    _ => Value::String(v.clone()),
                },
            };
            (k.to_string(), value)
        })
        .collect();
    Value::Object(m).to_string()
}

/// The status key from the leader object's annotations, `None` when it
/// has no `optime`. Values that are JSON go in as JSON, the rest as text.
pub(crate) fn status_json(annotations: &Annotations) -> Option<String> {
    let optime = annotations.get(names::OPTIME)?;
    let mut m = Map::new();
    let parsed = |s: &String| serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.clone()));
    m.insert("optime".into(), optime.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::String(optime.clone())));
    for key in [names::SLOTS, names::RETAIN_SLOTS] {
        if let Some(v) = annotations.get(key) {
            m.insert(key.into(), parsed(v));
        }
    }
    Some(Value::Object(m).to_string())
}

/// The annotations as a merge-patch object (`null` deletes).
pub(crate) fn patch_value(changes: &Changes) -> Value {
    Value::Object(
        changes.iter().map(|(k, v)| (k.clone(), v.clone().map(Value::String).unwrap_or(Value::Null))).collect(),
    )
}

/// The annotations of a new object: deletions dropped.
pub(crate) fn create_value(changes: &Changes) -> Value {
    Value::Object(
        changes.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), Value::String(v.clone())))).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> Annotations {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn changes(pairs: &[(&str, Option<&str>)]) -> Changes {
        pairs.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()
    }

    #[test]
    fn failover_encoding() {
        let c =
            failover_changes(r#"{"leader":"n1","member":"n2","scheduled_at":"2030-01-01T00:00:00+00:00"}"#).unwrap();
        assert_eq!(
            c,
            changes(&[
                ("leader", Some("n1")),
                ("member", Some("n2")),
                ("scheduled_at", Some("2030-01-01T00:00:00+00:00"))
            ])
        );
        assert_eq!(
            failover_changes("").unwrap(),
            changes(&[("leader", None), ("member", None), ("scheduled_at", None)])
        );
        assert!(failover_changes("[1]").is_err());
        let a = ann(&[("member", "n2"), ("leader", "n1"), ("other", "x")]);
        assert_eq!(failover_json(&a), r#"{"leader":"n1","member":"n2"}"#);
        assert_eq!(failover_json(&ann(&[("other", "x")])), "");
    }

    #[test]
    fn sync_encoding() {
        let c = sync_changes(r#"{"leader":"n1","quorum":1,"sync_standby":"n2,n3"}"#).unwrap();
        assert_eq!(c, changes(&[("leader", Some("n1")), ("quorum", Some("1")), ("sync_standby", Some("n2,n3"))]));
        let c = sync_changes(r#"{"leader":null,"quorum":0,"sync_standby":null}"#).unwrap();
        assert_eq!(c, changes(&[("leader", None), ("quorum", None), ("sync_standby", None)]));
        let a = ann(&[("leader", "n1"), ("quorum", "1"), ("sync_standby", "n2")]);
        assert_eq!(sync_json(&a), r#"{"leader":"n1","quorum":1,"sync_standby":"n2"}"#);
        assert_eq!(
            sync_json(&ann(&[("leader", "n1"), ("quorum", "0")])),
            r#"{"leader":"n1","quorum":0,"sync_standby":null}"#
        );
        assert_eq!(sync_json(&ann(&[])), "{}");
    }

    #[test]
    fn status_encoding() {
        let c = status_changes(r#"{"optime":1234,"slots":{"n2":5,"n3":6},"retain_slots":["n2","n3"]}"#).unwrap();
        assert_eq!(
            c,
            changes(&[
                ("optime", Some("1234")),
                ("retain_slots", Some(r#"["n2", "n3"]"#)),
                ("slots", Some(r#"{"n2":5,"n3":6}"#)),
            ])
        );
        let c = status_changes(r#"{"optime":5}"#).unwrap();
        assert_eq!(c, changes(&[("optime", Some("5")), ("retain_slots", None), ("slots", None)]));
        let a = ann(&[("optime", "1234"), ("slots", r#"{"n2":5}"#), ("retain_slots", r#"["n2", "n3"]"#)]);
        assert_eq!(status_json(&a).unwrap(), r#"{"optime":1234,"slots":{"n2":5},"retain_slots":["n2","n3"]}"#);
        assert_eq!(status_json(&ann(&[("leader", "n1")])), None);
    }

    /// Garbage written by someone else comes back as the text it is.
    #[test]
    fn garbage_comes_back_as_stored() {
        let a = ann(&[("optime", "not-a-number"), ("slots", "{broken")]);
        assert_eq!(status_json(&a).unwrap(), r#"{"optime":"not-a-number","slots":"{broken"}"#);
        let a = ann(&[("leader", "\u{1}\"x"), ("quorum", "many")]);
        assert_eq!(sync_json(&a), r#"{"leader":"\u0001\"x","quorum":"many","sync_standby":null}"#);
    }

    #[test]
    fn patch_and_create_bodies() {
        let c = changes(&[("a", Some("1")), ("b", None)]);
        assert_eq!(patch_value(&c), serde_json::json!({"a": "1", "b": null}));
        assert_eq!(create_value(&c), serde_json::json!({"a": "1"}));
        assert_eq!(python_dumps(&serde_json::json!(["a", 1])), r#"["a", 1]"#);
    }
}
