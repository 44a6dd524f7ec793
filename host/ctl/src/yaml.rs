//! YAML and JSON text as patronictl prints them: PyYAML's `safe_dump`
//! (see `pyyaml`) and Python's `json.dumps` (`", "` and `": "`
//! separators, ASCII only).

use serde_json::Value;

/// PyYAML `safe_dump(data, default_flow_style=False, allow_unicode=True,
/// width=200)`, as patronictl's `format_config_for_editing`.
pub fn to_yaml(v: &Value) -> String {
    crate::pyyaml::dump(v, false)
}

/// The same in flow style, stripped as patronictl strips it for tags:
/// `{a: 1, b: [x, y]}`.
pub fn to_flow(v: &Value) -> String {
    crate::pyyaml::dump(v, true).trim().to_string()
}

/// Python's `json.dumps(v)`.
pub fn to_python_json(v: &Value) -> String {
    python_json(v, ", ", ": ")
}

/// Python's `json.dumps(v, separators=(',', ':'))`, as patronictl writes
/// the dynamic configuration to the DCS.
pub fn to_python_json_compact(v: &Value) -> String {
    python_json(v, ",", ":")
}

fn python_json(v: &Value, items: &str, keys: &str) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> =
                m.iter().map(|(k, v)| format!("{}{keys}{}", json_string(k), python_json(v, items, keys))).collect();
            format!("{{{}}}", parts.join(items))
        }
        Value::Array(a) => {
            format!("[{}]", a.iter().map(|v| python_json(v, items, keys)).collect::<Vec<_>>().join(items))
        }
        Value::String(s) => json_string(s),
        Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(|| n.to_string(), crate::pyvalue::py_float),
        other => other.to_string(),
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (' '..='~').contains(&c) => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_are_quoted_when_they_would_change_type() {
        let cases = [
            (json!("hello"), "hello"),
            (json!("on"), "'on'"),
            (json!("100"), "'100'"),
            (json!("4MB"), "4MB"),
            (json!("0.5"), "'0.5'"),
            (json!("1e5"), "1e5"),
            (json!(""), "''"),
            (json!("a: b"), "'a: b'"),
            (json!("it's"), "it's"),
            (json!("*star"), "'*star'"),
            (json!("-x"), "-x"),
            (json!("2026-11-22"), "'2026-11-22'"),
            (json!("two\nlines"), "'two\n\n  lines'"),
            (json!(true), "true"),
            (json!(null), "null"),
            (json!(30), "30"),
            (json!(0.5), "0.5"),
            (json!("host=127.0.0.1 port=5432"), "host=127.0.0.1 port=5432"),
        ];
        for (v, want) in cases {
            assert_eq!(to_yaml(&json!({"k": v})), format!("k: {want}\n"), "{v}");
        }
    }

    #[test]
    fn documents_look_like_pyyaml_safe_dump() {
        let v = json!({
            "ttl": 30,
            "postgresql": {"parameters": {"max_connections": 100, "work_mem": "4MB"}, "use_pg_rewind": true},
            "loop_wait": 10,
            "slots": {},
            "ignore_slots": [{"type": "logical", "database": "x"}, "y"],
        });
        let want = "ignore_slots:\n- database: x\n  type: logical\n- y\nloop_wait: 10\npostgresql:\n  parameters:\n    max_connections: 100\n    work_mem: 4MB\n  use_pg_rewind: true\nslots: {}\nttl: 30\n";
        assert_eq!(to_yaml(&v), want);
        assert_eq!(to_yaml(&json!([])), "[]\n");
        assert_eq!(to_flow(&json!({"nofailover": true, "a": ["x", 1]})), "{a: [x, 1], nofailover: true}");
    }

    #[test]
    fn json_uses_python_separators() {
        let v = json!([{"Member": "n1", "TL": 1, "Tags": {"é": null}}]);
        assert_eq!(to_python_json(&v), r#"[{"Member": "n1", "TL": 1, "Tags": {"\u00e9": null}}]"#);
        assert_eq!(to_yaml(&json!({"f": [1.5, 1e20, 1.0, 2.5e-7]})), "f:\n- 1.5\n- 1.0e+20\n- 1.0\n- 2.5e-07\n");
        // What Python prints for json.dumps(..., separators=(',', ':')).
        let v = json!({"a": [1, 2.5, 1e20, 1.0], "s": "x\u{8}\u{c}\u{1}\u{7f}😀", "t": true, "n": null});
        assert_eq!(
            to_python_json_compact(&v),
            r#"{"a":[1,2.5,1e+20,1.0],"s":"x\b\f\u0001\u007f\ud83d\ude00","t":true,"n":null}"#
        );
    }
}
