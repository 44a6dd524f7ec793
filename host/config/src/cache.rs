//! JSON text of the dynamic configuration as Patroni writes it: compact for
//! the DCS `config` key (`json.dumps(..., separators=(',', ':'))`) and with
//! Python's default `", "` / `": "` separators for the
//! `<data_dir>/patroni.dynamic.json` cache (`json.dump`). Both escape
//! non-ASCII characters as Python does. Pure functions: the daemon does
//! the file IO.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;
use serde_json::{Map, Value};

/// The cache file's name inside the data directory.
pub const CACHE_FILE_NAME: &str = "patroni.dynamic.json";

struct PyFormatter {
    compact: bool,
}

impl Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else if self.compact {
            w.write_all(b",")
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.begin_array_value(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.compact {
            w.write_all(b":")
        } else {
            w.write_all(b": ")
        }
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

fn to_py_json(value: &Map<String, Value>, compact: bool) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter { compact });
    // Serialising a Map into a Vec cannot fail, and the output is ASCII.
    if value.serialize(&mut ser).is_err() {
        return "{}".into();
    }
    String::from_utf8(out).unwrap_or_else(|_| "{}".into())
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
