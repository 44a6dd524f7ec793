//! JSON text of the dynamic configuration as Patroni writes it: compact for
//! the DCS `config` key (`json.dumps(..., separators=(',', ':'))`) and with
//! Python's default `", "` / `": "` separators for the
//! `<data_dir>/patroni.dynamic.json` cache (`json.dump`). Both escape
//! non-ASCII characters as Python does. Pure functions: the daemon does
//! the file IO.

use serde_json::{Map, Value};

/// The cache file's name inside the data directory.
pub const CACHE_FILE_NAME: &str = "patroni.dynamic.json";

fn to_py_json(value: &Map<String, Value>, compact: bool) -> String {
    // `json.dumps` text comes from palisade-pycompat, with Patroni's
    // separators for each use.
    let value = Value::Object(value.clone());
    if compact {
        palisade_pycompat::json::dumps_compact(&value)
    } else {
        palisade_pycompat::json::dumps(&value)
    }
}

/// The DCS `config` value: compact JSON, key order kept.
pub fn to_dcs_json(config: &Map<String, Value>) -> String {
    to_py_json(config, true)
}

/// The contents of `patroni.dynamic.json`.
pub fn to_cache_json(config: &Map<String, Value>) -> String {
    to_py_json(config, false)
}

/// Parses `patroni.dynamic.json` (or a DCS `config` value): a JSON object.
pub fn from_cache_json(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!("expected a JSON object, found {}", crate::values::describe(&other))),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_layouts() {
        let m = json!({"ttl": 30, "postgresql": {"parameters": {"a": [1, 2]}}, "name": "é"})
            .as_object()
            .cloned()
            .expect("object");
        assert_eq!(to_dcs_json(&m), r#"{"ttl":30,"postgresql":{"parameters":{"a":[1,2]}},"name":"\u00e9"}"#);
        assert_eq!(to_cache_json(&m), r#"{"ttl": 30, "postgresql": {"parameters": {"a": [1, 2]}}, "name": "\u00e9"}"#);
        assert_eq!(from_cache_json(&to_cache_json(&m)), Ok(m.clone()));
        assert_eq!(from_cache_json(&to_dcs_json(&m)), Ok(m));
        assert!(from_cache_json("[1]").is_err());
        assert!(from_cache_json("{").is_err());
    }
}
