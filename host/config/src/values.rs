//! Patroni's value readers (its `utils.py`): booleans, integers with
//! PostgreSQL-style units, reals, `host:port` splitting and Python's `str()`
//! of a value. Patroni reads many settings through these, so palisade does
//! too, to accept exactly the same spellings (`"on"`, `"0x10"`, `"1GB"`...).

use serde_json::Value;

/// Python's `str(value)` for a JSON value as PyYAML would have produced it.
pub fn py_str(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
                    format!("{f:.1}")
                } else {
                    f.to_string()
                }
            } else {
                n.to_string()
            }
        }
        other => other.to_string(),
    }
}

/// A short description of a value for error messages: `a string 'abc'`,
/// `an integer 5`, `a list`...
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("a boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("a number {n}"),
        Value::Number(n) => format!("an integer {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(60).collect();
            let more = if s.chars().count() > 60 { "..." } else { "" };
            format!("a string '{shown}{more}'")
        }
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// Patroni's `parse_bool`: `on/true/yes/1` and `off/false/no/0`, any case.
pub fn parse_bool(value: &Value) -> Option<bool> {
    match py_str(value).to_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Like C `strtol` with base 0, as Patroni's `strtol`: the integer at the
/// start of `s` (hex `0x`, octal `0`, decimal) and the rest.
fn strtol(s: &str) -> (Option<i128>, &str) {
    let s = s.trim();
    let b = s.as_bytes();
    let sign_len = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let negative = b.first() == Some(&b'-');
    let body = &s[sign_len..];
    let apply = |v: Option<i128>| v.map(|v| if negative { -v } else { v });
    if body.len() > 2 && (body.starts_with("0x") || body.starts_with("0X")) {
        let hex_len = body[2..].bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len > 0 && body.starts_with("0x") {
            let end = 2 + hex_len;
            return (apply(i128::from_str_radix(&body[2..end], 16).ok()), &body[end..]);
        }
    }
    if let Some(after_zero) = body.strip_prefix('0') {
        let end = 1 + after_zero.bytes().take_while(|c| (b'0'..=b'7').contains(c)).count();
        return (apply(i128::from_str_radix(&body[..end], 8).ok()), &body[end..]);
    }
    let end = body.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return (None, s);
    }
    (apply(body[..end].parse::<i128>().ok()), &body[end..])
}

/// Like C `strtod`, as Patroni's `strtod` (`[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?`).
fn strtod(s: &str) -> (Option<f64>, &str) {
    let s = s.trim();
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    } else if int_digits == 0 {
        return (None, s);
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < b.len() && matches!(b[j], b'+' | b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    (s[..i].parse::<f64>().ok(), &s[i..])
}

const MEMORY_UNITS: [(&str, [f64; 3]); 5] = [
    ("TB", [1024f64 * 1024.0 * 1024.0 * 1024.0, 1024.0 * 1024.0 * 1024.0, 1024.0 * 1024.0]),
    ("GB", [1024.0 * 1024.0 * 1024.0, 1024.0 * 1024.0, 1024.0]),
    ("MB", [1024.0 * 1024.0, 1024.0, 1.0]),
    ("kB", [1024.0, 1.0, 1.0 / 1024.0]),
    ("B", [1.0, 1.0 / 1024.0, 1.0 / (1024.0 * 1024.0)]),
];
const MEMORY_BASES: [&str; 3] = ["B", "kB", "MB"];
const TIME_UNITS: [(&str, [f64; 3]); 6] = [
    ("d", [1000.0 * 3600.0 * 24.0, 3600.0 * 24.0, 60.0 * 24.0]),
    ("h", [1000.0 * 3600.0, 3600.0, 60.0]),
    ("min", [60_000.0, 60.0, 1.0]),
    ("s", [1000.0, 1.0, 1.0 / 60.0]),
    ("ms", [1.0, 1.0 / 1000.0, 1.0 / 60_000.0]),
    ("us", [1.0 / 1000.0, 1.0 / 1_000_000.0, 1.0 / 60_000_000.0]),
];
const TIME_BASES: [&str; 3] = ["ms", "s", "min"];

/// Patroni's `convert_to_base_unit`: `value` in `unit` expressed in
/// `base_unit` (which may carry a multiplier, as `16MB`), rounded to the
/// next smaller unit as PostgreSQL does.
fn convert_to_base_unit(value: f64, unit: &str, base_unit: &str) -> Option<f64> {
    let (mult, base) = match strtol(base_unit) {
        (Some(m), rest) => (m as f64, rest),
        (None, rest) => (1.0, rest),
    };
    let (table, bases): (&[(&str, [f64; 3])], &[&str; 3]) = if MEMORY_BASES.contains(&base) {
        (&MEMORY_UNITS, &MEMORY_BASES)
    } else if TIME_BASES.contains(&base) {
        (&TIME_UNITS, &TIME_BASES)
    } else {
        return None;
    };
    let col = bases.iter().position(|b| *b == base)?;
    let row = table.iter().position(|(u, _)| *u == unit)?;
    let mut v = value * table[row].1[col] / mult;
    if let Some((_, next)) = table.get(row + 1) {
        let multiplier = next[col];
        v = (v / multiplier).round_ties_even() * multiplier;
    }
    Some(v)
}

/// Patroni's `parse_int`: `5`, `"5"`, `"0x10"`, `"1GB"` (with `base_unit`
/// `"MB"` gives 1024), `"4097.5kB"`... `None` when it is not an integer.
pub fn parse_int(value: &Value, base_unit: Option<&str>) -> Option<i64> {
    if let Value::Bool(_) | Value::Null | Value::Array(_) | Value::Object(_) = value {
        return None;
    }
    let text = py_str(value);
    let (mut val, mut unit) = match strtol(&text) {
        (Some(v), rest) => (Some(v as f64), rest.to_string()),
        (None, rest) => (None, rest.to_string()),
    };
    if (val.is_none() && unit.starts_with('.')) || unit.starts_with(['.', 'e', 'E']) {
        let (v, rest) = strtod(&text);
        val = v;
        unit = rest.to_string();
    }
    let val = val?;
    let unit = unit.trim();
    let result = if unit.is_empty() { val } else { convert_to_base_unit(val, unit, base_unit.unwrap_or("None"))? };
    let rounded = result.round_ties_even();
    (rounded.is_finite() && rounded.abs() < 9.2e18).then_some(rounded as i64)
}

/// Patroni's `parse_real`.
pub fn parse_real(value: &Value, base_unit: Option<&str>) -> Option<f64> {
    if let Value::Bool(_) | Value::Null | Value::Array(_) | Value::Object(_) = value {
        return None;
    }
    let text = py_str(value);
    let (val, unit) = strtod(&text);
    let val = val?;
    let unit = unit.trim();
    if unit.is_empty() {
        Some(val)
    } else {
        convert_to_base_unit(val, unit, base_unit.unwrap_or("None"))
    }
}

/// Patroni's `split_host_port`: `host[,host...][:port]`. IPv6 hosts may be
/// bracketed. Without a port, `default_port` is used (an error if `None`).
pub fn split_host_port(value: &str, default_port: Option<u16>) -> Result<(Vec<String>, u16), String> {
    let (hosts_part, port) = match value.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (value, None),
    };
    let hosts: Vec<String> = if hosts_part.contains(':') {
        hosts_part.split(',').map(|h| h.trim().trim_matches(['[', ']']).to_string()).collect()
    } else {
        hosts_part.split(',').map(|h| h.trim().to_string()).collect()
    };
    let port = match (port, default_port) {
        (Some(p), _) => {
            let p = p.trim();
            let p = p.strip_prefix('+').unwrap_or(p);
            match p.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => n as u16,
                Ok(n) => return Err(format!("port {n} is out of range 1-65535")),
                Err(_) => return Err(format!("'{p}' is not a port number")),
            }
        }
        (None, Some(d)) => d,
        (None, None) => return Err("expected host:port, found no port".into()),
    };
    if hosts.iter().any(String::is_empty) {
        return Err("expected host:port, found an empty host".into());
    }
    Ok((hosts, port))
}

/// Python's `shlex.split` for one token, as Patroni's `unquote`: the
/// unquoted token when `s` is exactly one, else `s` unchanged.
pub fn unquote(s: &str) -> String {
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return s.to_string(),
                    }
                }
            }
            '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return s.to_string(),
                        },
                        Some(x) => cur.push(x),
                        None => return s.to_string(),
                    }
                }
            }
            '\\' => {
                in_token = true;
                match chars.next() {
                    Some(x) => cur.push(x),
                    None => return s.to_string(),
                }
            }
            c if c.is_whitespace() => {
                if in_token {
                    tokens.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            c => {
                in_token = true;
                cur.push(c);
            }
        }
    }
    if in_token {
        tokens.push(cur);
    }
    if tokens.len() == 1 {
        tokens.pop().unwrap_or_default()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_int_follows_patroni() {
        let cases: &[(Value, Option<&str>, Option<i64>)] = &[
            (json!("1"), None, Some(1)),
            (json!(50), None, Some(50)),
            (json!(" 0x400 MB "), Some("16384kB"), Some(64)),
            (json!("1MB"), Some("kB"), Some(1024)),
            (json!("1000 ms"), Some("s"), Some(1)),
            (json!("1TB"), Some("GB"), None),
            (json!("nonsense"), None, None),
            (json!("nonsense"), Some("kB"), None),
            (json!(0), None, Some(0)),
            (json!("6GB"), Some("16MB"), Some(384)),
            (json!("4097.4kB"), Some("kB"), Some(4097)),
            (json!("4097.5kB"), Some("kB"), Some(4098)),
            (json!("30min"), Some("s"), Some(1800)),
            (json!("30s"), None, None),
            (json!("0600"), None, Some(384)),
            (json!("1e3"), None, Some(1000)),
            (json!(2.5), None, Some(2)),
            (json!(true), None, None),
            (json!("-5"), None, Some(-5)),
        ];
        for (value, unit, expected) in cases {
            assert_eq!(parse_int(value, *unit), *expected, "parse_int({value}, {unit:?})");
        }
    }

    #[test]
    fn parse_bool_and_real() {
        assert_eq!(parse_bool(&json!("ON")), Some(true));
        assert_eq!(parse_bool(&json!(true)), Some(true));
        assert_eq!(parse_bool(&json!(0)), Some(false));
        assert_eq!(parse_bool(&json!("nah")), None);
        assert_eq!(parse_real(&json!(" +0.0005 "), None), Some(0.0005));
        assert_eq!(parse_real(&json!("0.00051ms"), Some("ms")), Some(0.001));
        assert_eq!(parse_real(&json!("x"), None), None);
    }

    #[test]
    fn split_host_port_cases() {
        assert_eq!(split_host_port("127.0.0.1", Some(5432)), Ok((vec!["127.0.0.1".into()], 5432)));
        assert_eq!(
            split_host_port("127.0.0.1,192.168.0.101:5400", Some(5432)),
            Ok((vec!["127.0.0.1".into(), "192.168.0.101".into()], 5400))
        );
        assert_eq!(split_host_port("[fe80::1]:8008", None), Ok((vec!["fe80::1".into()], 8008)));
        assert!(split_host_port("host", None).is_err());
        assert!(split_host_port("host:abc", None).is_err());
        assert!(split_host_port("host:70000", None).is_err());
        assert!(split_host_port(":5432", None).is_err());
    }

    #[test]
    fn unquote_is_one_shell_token() {
        assert_eq!(unquote("\"bar baz\""), "bar baz");
        assert_eq!(unquote("bar baz"), "bar baz");
        assert_eq!(unquote("'x'"), "x");
        assert_eq!(unquote("\"open"), "\"open");
    }

    #[test]
    fn py_str_matches_python() {
        assert_eq!(py_str(&json!(1.0)), "1.0");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(12)), "12");
    }
}
