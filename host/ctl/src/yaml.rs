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
    palisade_pycompat::json::dumps(v)
}

/// Python's `json.dumps(v, separators=(',', ':'))`, as patronictl writes
/// the dynamic configuration to the DCS.
pub fn to_python_json_compact(v: &Value) -> String {
    palisade_pycompat::json::dumps_compact(v)
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
    fn floats_in_yaml() {
        assert_eq!(to_yaml(&json!({"f": [1.5, 1e20, 1.0, 2.5e-7]})), "f:\n- 1.5\n- 1.0e+20\n- 1.0\n- 2.5e-07\n");
    }
}
