//! Reading a plugin's configuration section (JSON) with errors that name
//! the key path, the same way in every plugin.

use serde_json::Value;

use crate::PluginError;

/// What kind of value `v` is, for "must be ..., found <kind>" messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A configuration error about `key` of `section` (`postgresql.pgbackrest`),
/// or about the section itself when `key` is empty.
pub fn error(section: &str, key: &str, what: impl std::fmt::Display) -> PluginError {
    if key.is_empty() {
        PluginError::config(format!("{section}: {what}"))
    } else {
        PluginError::config(format!("{section}.{key}: {what}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_key_paths() {
        let cases = [
            (Value::Null, "null"),
            (Value::Bool(true), "a boolean"),
            (serde_json::json!(1.5), "a number"),
            (serde_json::json!("x"), "a string"),
            (serde_json::json!([1]), "a list"),
            (serde_json::json!({"a": 1}), "a map"),
        ];
        for (v, want) in cases {
            assert_eq!(kind(&v), want, "{v}");
        }
        assert_eq!(error("postgresql.walg", "env", "bad").message, "postgresql.walg.env: bad");
        assert_eq!(error("postgresql.walg", "", "bad").message, "postgresql.walg: bad");
    }
}
