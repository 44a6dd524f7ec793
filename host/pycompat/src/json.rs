//! Python's `json.dumps` text (`ensure_ascii=True`, keys in the order
//! given, floats as `repr()`): Patroni writes every DCS value with
//! `separators=(',', ':')`, patronictl prints with the default `', '` and
//! `': '`.

use serde_json::Value;

use crate::py::float_repr;

/// `json.dumps(value)`: `{"a": [1, 2.5]}`.
pub fn dumps(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value, ", ", ": ");
    out
}

/// `json.dumps(value, separators=(',', ':'))`: `{"a":[1,2.5]}`.
pub fn dumps_compact(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value, ",", ":");
    out
}

/// `json.dumps(s)` of one string.
pub fn dumps_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    string(&mut out, s);
    out
}

/// `json.dumps(f)` of one float: `repr()`, and JavaScript's names for
/// what JSON cannot hold (`NaN`, `Infinity`, `-Infinity`).
pub fn dumps_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        float_repr(f)
    }
}

fn write(out: &mut String, value: &Value, items: &str, keys: &str) {
    match value {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(items);
                }
                string(out, k);
                out.push_str(keys);
                write(out, v, items, keys);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(items);
                }
                write(out, v, items, keys);
            }
            out.push(']');
        }
        Value::String(s) => string(out, s),
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) => out.push_str(&dumps_float(f)),
            None => out.push_str(&n.to_string()),
        },
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

/// A JSON string as `json.dumps` writes it with `ensure_ascii`: ASCII
/// printable characters as they are (DEL included), `\uXXXX` (UTF-16
/// surrogate pairs beyond the BMP) for the rest.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_separators_and_escapes() {
        let v = json!([{"Member": "n1", "TL": 1, "Tags": {"é": null}}]);
        assert_eq!(dumps(&v), r#"[{"Member": "n1", "TL": 1, "Tags": {"\u00e9": null}}]"#);
        let v = json!({"a": [1, 2.5, 1e20, 1.0], "s": "x\u{8}\u{c}\u{1}\u{7f}😀", "t": true, "n": null});
        assert_eq!(
            dumps_compact(&v),
            r#"{"a":[1,2.5,1e+20,1.0],"s":"x\b\f\u0001\u007f\ud83d\ude00","t":true,"n":null}"#
        );
    }
}
