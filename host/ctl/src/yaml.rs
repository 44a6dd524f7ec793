//! YAML and JSON text as patronictl prints them: PyYAML's `safe_dump`
//! (keys sorted, block style, sequences not indented under their key,
//! strings quoted only when they would read back as something else) and
//! Python's `json.dumps` (`", "` and `": "` separators, ASCII only).

use serde_json::Value;

/// PyYAML `safe_dump(data, default_flow_style=False, width=200)`.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => block_map(v, 0, &mut out),
        Value::Array(a) if !a.is_empty() => block_seq(v, 0, &mut out),
        other => {
            out.push_str(&scalar_or_flow(other));
            out.push('\n');
            if !matches!(other, Value::Object(_) | Value::Array(_)) {
                out.push_str("...\n");
            }
        }
    }
    out
}

/// PyYAML `safe_dump(data, default_flow_style=True)` without the trailing
/// newline: `{a: 1, b: [x, y]}`.
pub fn to_flow(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> =
                keys.iter().map(|k| format!("{}: {}", scalar(&Value::String((*k).clone())), to_flow(&m[*k]))).collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(to_flow).collect::<Vec<_>>().join(", ")),
        other => scalar(other),
    }
}

fn scalar_or_flow(v: &Value) -> String {
    match v {
        Value::Object(_) | Value::Array(_) => to_flow(v),
        other => scalar(other),
    }
}

fn block_map(v: &Value, indent: usize, out: &mut String) {
    let Value::Object(m) = v else { return };
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        let val = &m[k];
        out.push_str(&" ".repeat(indent));
        out.push_str(&scalar(&Value::String(k.clone())));
        out.push(':');
        match val {
            Value::Object(o) if !o.is_empty() => {
                out.push('\n');
                block_map(val, indent + 2, out);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                block_seq(val, indent, out);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar_or_flow(other));
                out.push('\n');
            }
        }
    }
}

fn block_seq(v: &Value, indent: usize, out: &mut String) {
    let Value::Array(a) = v else { return };
    for item in a {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            Value::Object(o) if !o.is_empty() => {
                // The first key goes on the dash's line.
                let mut inner = String::new();
                block_map(item, indent + 2, &mut inner);
                out.push(' ');
                out.push_str(inner.trim_start());
            }
            Value::Array(x) if !x.is_empty() => {
                let mut inner = String::new();
                block_seq(item, indent + 2, &mut inner);
                out.push(' ');
                out.push_str(inner.trim_start());
            }
            other => {
                out.push(' ');
                out.push_str(&scalar_or_flow(other));
                out.push('\n');
            }
        }
    }
}

/// One scalar, quoted when a plain one would not read back the same.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(|| n.to_string(), yaml_float),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        other => to_flow(other),
    }
}

/// PyYAML's float: Python's repr, lower case, with `.0` before an
/// exponent that has no point (`1.0e+20`).
fn yaml_float(f: f64) -> String {
    let repr = crate::pyvalue::py_float(f).to_lowercase();
    if !repr.contains('.') && repr.contains('e') {
        repr.replacen('e', ".0e", 1)
    } else {
        repr
    }
}

fn string(s: &str) -> String {
    if s.chars().any(|c| c == '\n' || c == '\t' || c.is_control() || c == '\u{feff}') {
        return double_quoted(s);
    }
    if needs_quotes(s) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        s.to_string()
    }
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s.starts_with(' ') || s.ends_with(' ') {
        return true;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // `-x` and `?x`/`:x` are plain when followed by a non-space, but
        // PyYAML quotes these indicators at the start anyway except `-`/`?`/`:`
        // followed by a non-space character.
        let second = s.chars().nth(1);
        let plain_ok = matches!(first, '-' | '?' | ':') && second.is_some_and(|c| c != ' ');
        if !plain_ok || looks_typed(s) {
            return true;
        }
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return true;
    }
    looks_typed(s)
}

/// Whether PyYAML's implicit resolvers would read `s` as a non-string.
fn looks_typed(s: &str) -> bool {
    const WORDS: [&str; 21] = [
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON",
        "off", "Off", "OFF", "null", "Null", "NULL",
    ];
    if WORDS.contains(&s) || s == "~" {
        return true;
    }
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let digits = |x: &str, radix: u32| !x.is_empty() && x.chars().all(|c| c == '_' || c.is_digit(radix));
    // int: decimal, 0b, 0x, 0o/0 octal, sexagesimal
    if digits(t, 10)
        || t.strip_prefix("0b").is_some_and(|x| digits(x, 2))
        || t.strip_prefix("0x").is_some_and(|x| digits(x, 16))
        || (t.contains(':') && t.split(':').all(|p| digits(p, 10)))
    {
        return true;
    }
    // float: needs a dot (or .inf/.nan)
    let lower = t.to_ascii_lowercase();
    if lower == ".inf" || lower == ".nan" {
        return true;
    }
    if let Some((int, frac)) = t.split_once('.') {
        let (frac, exp) = match frac.find(['e', 'E']) {
            Some(i) => (&frac[..i], Some(&frac[i + 1..])),
            None => (frac, None),
        };
        let int_ok = int.is_empty() || digits(int, 10);
        let frac_ok = frac.chars().all(|c| c == '_' || c.is_ascii_digit());
        let exp_ok = exp.is_none_or(|e| e.len() > 1 && e.starts_with(['-', '+']) && digits(&e[1..], 10));
        if int_ok && frac_ok && exp_ok && !(int.is_empty() && frac.is_empty()) {
            return true;
        }
    }
    // timestamp: YYYY-MM-DD...
    let b = s.as_bytes();
    b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && s[5..]
            .split(['-', 'T', 't', ' ', ':', '.'])
            .next()
            .is_some_and(|m| !m.is_empty() && m.len() <= 2 && m.chars().all(|c| c.is_ascii_digit()))
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
            c if c.is_ascii() => out.push(c),
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
            (json!("two\nlines"), "\"two\\nlines\""),
            (json!(true), "true"),
            (json!(null), "null"),
            (json!(30), "30"),
            (json!(0.5), "0.5"),
            (json!("host=127.0.0.1 port=5432"), "host=127.0.0.1 port=5432"),
        ];
        for (v, want) in cases {
            assert_eq!(scalar(&v), want, "{v}");
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
        let v = json!({"a": [1, 2.5, 1e20, 1.0], "s": "x\u{8}\u{c}\u{1}😀", "t": true, "n": null});
        assert_eq!(
            to_python_json_compact(&v),
            r#"{"a":[1,2.5,1e+20,1.0],"s":"x\b\f\u0001\ud83d\ude00","t":true,"n":null}"#
        );
    }
}
