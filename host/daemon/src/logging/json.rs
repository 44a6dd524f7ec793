//! JSON log lines as Patroni writes them with `log.type: json`
//! (python-json-logger's `JsonFormatter`, serialised by `json.dumps`): one
//! key per attribute the format names, in order, renamed as
//! `log.format`'s `{field: name}` items say, then `log.static_fields`.

use serde_json::{Map, Value};

use super::record::PyValue;

/// Which attributes go into a line, under which keys, and what is added.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonLayout {
    /// (attribute, key) in order.
    pub fields: Vec<(String, String)>,
    pub static_fields: Map<String, Value>,
}

enum Item<'a> {
    Py(PyValue),
    Json(&'a Value),
}

impl JsonLayout {
    /// The line for a record (`value` answers for each attribute).
    pub fn render(&self, value: &dyn Fn(&str) -> PyValue) -> String {
        // A Python dict: a key set again keeps its place.
        let mut entries: Vec<(&str, Item)> = Vec::new();
        for (attribute, key) in &self.fields {
            set(&mut entries, key, Item::Py(value(attribute)));
        }
        for (key, v) in &self.static_fields {
            // Static fields are renamed too, as python-json-logger does.
            let key = self.fields.iter().find(|(a, _)| a == key).map_or(key.as_str(), |(_, k)| k.as_str());
            set(&mut entries, key, Item::Json(v));
        }
        let mut out = String::from("{");
        for (i, (key, item)) in entries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            string(&mut out, key);
            out.push_str(": ");
            match item {
                Item::Py(v) => py_value(&mut out, v),
                Item::Json(v) => json_value(&mut out, v),
            }
        }
        out.push('}');
        out
    }
}

fn set<'a>(entries: &mut Vec<(&'a str, Item<'a>)>, key: &'a str, item: Item<'a>) {
    match entries.iter_mut().find(|(k, _)| *k == key) {
        Some(e) => e.1 = item,
        None => entries.push((key, item)),
    }
}

fn py_value(out: &mut String, v: &PyValue) {
    match v {
        PyValue::Str(s) => string(out, s),
        PyValue::Int(i) => out.push_str(&i.to_string()),
        PyValue::Float(f) => float(out, *f),
        PyValue::None => out.push_str("null"),
        PyValue::EmptyTuple => out.push_str("[]"),
    }
}

fn json_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (None, Some(u), _) => out.push_str(&u.to_string()),
            (None, None, Some(f)) => float(out, f),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json_value(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string(out, k);
                out.push_str(": ");
                json_value(out, x);
            }
            out.push('}');
        }
    }
}

/// `json.dumps` of a float (pycompat's, the one home of it).
fn float(out: &mut String, f: f64) {
    out.push_str(&palisade_pycompat::json::dumps_float(f));
}

/// `json.dumps` of a string with `ensure_ascii` (pycompat's).
fn string(out: &mut String, s: &str) {
    out.push_str(&palisade_pycompat::json::dumps_str(s));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layout(fields: &[(&str, &str)], static_fields: Value) -> JsonLayout {
        JsonLayout {
            fields: fields.iter().map(|(a, k)| (a.to_string(), k.to_string())).collect(),
            static_fields: static_fields.as_object().cloned().unwrap_or_default(),
        }
    }

    fn values(name: &str) -> PyValue {
        match name {
            "asctime" => PyValue::Str("2024-12-06 15:46:40,123".into()),
            "levelname" => PyValue::Str("INFO".into()),
            "message" => PyValue::Str("caf\u{e9} \"q\"\n\u{1F600}\u{7f}".into()),
            "lineno" => PyValue::Int(42),
            "created" => PyValue::Float(1733500000.123),
            "msecs" => PyValue::Float(122.0),
            "args" => PyValue::EmptyTuple,
            _ => PyValue::None,
        }
    }

    /// Each expected line is what Patroni 4.1 printed with
    /// python-json-logger 4.2 (`JsonFormatter(fmt, rename_fields=...,
    /// static_fields=...)`) for a record with these values.
    #[test]
    fn lines_as_python_json_logger_writes_them() {
        let cases = [
            (
                layout(&[("asctime", "asctime"), ("levelname", "levelname"), ("message", "message")], json!({})),
                r#"{"asctime": "2024-12-06 15:46:40,123", "levelname": "INFO", "message": "caf\u00e9 \"q\"\n\ud83d\ude00\u007f"}"#,
            ),
            (
                layout(
                    &[("asctime", "@timestamp"), ("levelname", "level"), ("lineno", "lineno")],
                    json!({"app": "patroni", "n": 1.0, "list": [1, null, true], "levelname": "X"}),
                ),
                r#"{"@timestamp": "2024-12-06 15:46:40,123", "level": "X", "lineno": 42, "app": "patroni", "n": 1.0, "list": [1, null, true]}"#,
            ),
            (
                layout(
                    &[("created", "created"), ("msecs", "msecs"), ("args", "args"), ("nosuch", "nosuch")],
                    json!({}),
                ),
                r#"{"created": 1733500000.123, "msecs": 122.0, "args": [], "nosuch": null}"#,
            ),
        ];
        for (l, want) in cases {
            assert_eq!(l.render(&values), want);
        }
    }
}
