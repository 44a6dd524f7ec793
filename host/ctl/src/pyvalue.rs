//! Query results as patronictl shows them: psycopg2 turns PostgreSQL's
//! text into Python values (booleans, numbers, lists, dicts, datetimes)
//! and patronictl prints them with Python's `str()`. Values are kept as
//! JSON values (so `--format json` and `yaml` print structures) and
//! `py_str` renders them the way Python would.

use serde_json::{Number, Value};
use tokio_postgres::types::{Kind, Type};

pub use palisade_pycompat::py::{float_repr as py_float, to_str as py_str};

/// One result cell: PostgreSQL's text for a column of type `ty` (None when
/// the type is not known, e.g. after a multi-statement query) as psycopg2
/// would hand it over. NULL is `None`.
pub fn cell(text: Option<&str>, ty: Option<&Type>) -> Value {
    let Some(text) = text else { return Value::Null };
    let Some(ty) = ty else { return Value::String(text.to_string()) };
    if let Kind::Array(element) = ty.kind() {
        if let Some(items) = parse_array(text) {
            return array_value(items, element);
        }
        return Value::String(text.to_string());
    }
    scalar(text, ty)
}

fn scalar(text: &str, ty: &Type) -> Value {
    let string = || Value::String(text.to_string());
    match *ty {
        Type::BOOL => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => string(),
        },
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => text.parse::<i64>().map_or_else(|_| string(), Value::from),
        Type::FLOAT4 | Type::FLOAT8 => match text.parse::<f64>() {
            Ok(f) => Number::from_f64(f).map_or_else(|| Value::String(py_float(f)), Value::Number),
            Err(_) => string(),
        },
        Type::JSON | Type::JSONB => serde_json::from_str(text).unwrap_or_else(|_| string()),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => py_datetime(text).map_or_else(string, Value::String),
        Type::TIME | Type::TIMETZ => py_time(text).map_or_else(string, Value::String),
        Type::INTERVAL => py_timedelta(text).map_or_else(string, Value::String),
        _ => string(),
    }
}

/// An element of PostgreSQL's array text.
#[derive(Debug, PartialEq)]
enum Item {
    Null,
    Text(String),
    List(Vec<Item>),
}

fn array_value(items: Vec<Item>, element: &Type) -> Value {
    Value::Array(
        items
            .into_iter()
            .map(|i| match i {
                Item::Null => Value::Null,
                Item::Text(t) => scalar(&t, element),
                Item::List(l) => array_value(l, element),
            })
            .collect(),
    )
}

/// `{1,2}`, `{{a,"b c"},{NULL,"d\"e"}}`: the items, or None for what this
/// does not read (explicit bounds such as `[0:1]={1,2}`).
fn parse_array(text: &str) -> Option<Vec<Item>> {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut pos = 0;
    let items = parse_list(&chars, &mut pos)?;
    (pos == chars.len()).then_some(items)
}

fn parse_list(c: &[char], pos: &mut usize) -> Option<Vec<Item>> {
    if c.get(*pos) != Some(&'{') {
        return None;
    }
    *pos += 1;
    let mut items = Vec::new();
    if c.get(*pos) == Some(&'}') {
        *pos += 1;
        return Some(items);
    }
    loop {
        while c.get(*pos).is_some_and(|ch| ch.is_whitespace()) {
            *pos += 1;
        }
        match c.get(*pos)? {
            '{' => items.push(Item::List(parse_list(c, pos)?)),
            '"' => {
                *pos += 1;
                let mut s = String::new();
                loop {
                    match c.get(*pos)? {
                        '\\' => {
                            s.push(*c.get(*pos + 1)?);
                            *pos += 2;
                        }
                        '"' => {
                            *pos += 1;
                            break;
                        }
                        ch => {
                            s.push(*ch);
                            *pos += 1;
                        }
                    }
                }
                items.push(Item::Text(s));
            }
            _ => {
                let start = *pos;
                while !matches!(c.get(*pos)?, ',' | '}') {
                    *pos += 1;
                }
                let s: String = c[start..*pos].iter().collect::<String>().trim().to_string();
                items.push(if s.eq_ignore_ascii_case("NULL") { Item::Null } else { Item::Text(s) });
            }
        }
        while c.get(*pos).is_some_and(|ch| ch.is_whitespace()) {
            *pos += 1;
        }
        match c.get(*pos)? {
            ',' => *pos += 1,
            '}' => {
                *pos += 1;
                return Some(items);
            }
            _ => return None,
        }
    }
}

/// `HH:MM:SS[.frac]` as Python's `time` prints it (six fraction digits, or
/// none when zero); the rest of `text` after the seconds.
fn py_clock(text: &str) -> Option<(String, &str)> {
    let hms = text.get(..8)?;
    let b = hms.as_bytes();
    if b[2] != b':' || b[5] != b':' || !hms.bytes().filter(|c| *c != b':').all(|c| c.is_ascii_digit()) {
        return None;
    }
    let rest = &text[8..];
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (&r[..n], &r[n..])
        }
        None => ("", rest),
    };
    if frac.len() > 6 {
        return None;
    }
    let micros = format!("{frac:0<6}");
    let clock = if micros == "000000" { hms.to_string() } else { format!("{hms}.{micros}") };
    Some((clock, rest))
}

/// A UTC offset as Python prints it: `+05`, `+05:30`, `-03:30:15` become
/// `+05:00`, `+05:30`, `-03:30:15`.
fn py_offset(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some(String::new());
    }
    let sign = text.chars().next().filter(|c| *c == '+' || *c == '-')?;
    let parts: Vec<&str> = text[1..].split(':').collect();
    if parts.is_empty()
        || parts.len() > 3
        || !parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut out = format!("{sign}{}:{}", parts[0], parts.get(1).unwrap_or(&"00"));
    if let Some(s) = parts.get(2).filter(|s| **s != "00") {
        out.push(':');
        out.push_str(s);
    }
    Some(out)
}

/// `2026-01-31 12:00:00.5+01` as Python's `datetime` prints it:
/// `2026-01-31 12:00:00.500000+01:00`. None for what psycopg2 would not
/// read as a datetime (infinity, BC dates).
fn py_datetime(text: &str) -> Option<String> {
    let (date, time) = text.split_once(' ')?;
    let d = date.as_bytes();
    if date.len() != 10 || d[4] != b'-' || d[7] != b'-' {
        return None;
    }
    let (clock, rest) = py_clock(time)?;
    Some(format!("{date} {clock}{}", py_offset(rest)?))
}

fn py_time(text: &str) -> Option<String> {
    let (clock, rest) = py_clock(text)?;
    Some(format!("{clock}{}", py_offset(rest)?))
}

/// An interval (PostgreSQL's default `IntervalStyle`) as Python prints
/// the `timedelta` psycopg2 makes of it: a year is 365 days, a month 30;
/// `-1 day, 23:59:58.750000`.
fn py_timedelta(text: &str) -> Option<String> {
    const DAY: i128 = 86_400_000_000;
    let mut micros: i128 = 0;
    let mut words = text.split_whitespace().peekable();
    while let Some(w) = words.next() {
        if w.contains(':') {
            let (sign, hms) = match w.strip_prefix('-') {
                Some(rest) => (-1, rest),
                None => (1, w.strip_prefix('+').unwrap_or(w)),
            };
            let mut parts = hms.split(':');
            let h: i128 = parts.next()?.parse().ok()?;
            let m: i128 = parts.next()?.parse().ok()?;
            let sec_text = parts.next().unwrap_or("0");
            let (sec, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
            let sec: i128 = sec.parse().ok()?;
            if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let frac: i128 = format!("{frac:0<6}").parse().ok()?;
            micros += sign * (((h * 60 + m) * 60 + sec) * 1_000_000 + frac);
            continue;
        }
        let n: i128 = w.parse().ok()?;
        let days = match words.next()? {
            "year" | "years" => 365,
            "mon" | "mons" => 30,
            "day" | "days" => 1,
            _ => return None,
        };
        micros += n * days * DAY;
    }
    let days = micros.div_euclid(DAY);
    let rest = micros.rem_euclid(DAY);
    let (secs, us) = (rest / 1_000_000, rest % 1_000_000);
    let mut out = format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if days != 0 {
        out = format!("{days} day{}, {out}", if days.abs() != 1 { "s" } else { "" });
    }
    if us != 0 {
        out.push_str(&format!(".{us:06}"));
    }
    Some(out)
}

/// Rows of PostgreSQL text, the cells converted by column type.
pub fn rows_from_text(rows: &[Vec<Option<String>>], types: Option<&[Type]>) -> Vec<Vec<Value>> {
    rows.iter()
        .map(|r| r.iter().enumerate().map(|(i, t)| cell(t.as_deref(), types.and_then(|ts| ts.get(i)))).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_as_psycopg2_reads_them() {
        let cases: &[(Option<&str>, Type, Value, &str)] = &[
            (None, Type::TEXT, json!(null), "None"),
            (Some("t"), Type::BOOL, json!(true), "True"),
            (Some("f"), Type::BOOL, json!(false), "False"),
            (Some("42"), Type::INT8, json!(42), "42"),
            (Some("1"), Type::FLOAT8, json!(1.0), "1.0"),
            (Some("NaN"), Type::FLOAT8, json!("nan"), "nan"),
            (Some("1.50"), Type::NUMERIC, json!("1.50"), "1.50"),
            (Some("x y"), Type::TEXT, json!("x y"), "x y"),
            (
                Some(r#"{"a": 1, "b": [1, "x"]}"#),
                Type::JSONB,
                json!({"a": 1, "b": [1, "x"]}),
                "{'a': 1, 'b': [1, 'x']}",
            ),
            (Some("{1,2,NULL}"), Type::INT4_ARRAY, json!([1, 2, null]), "[1, 2, None]"),
            (Some("{{1,2},{3,4}}"), Type::INT4_ARRAY, json!([[1, 2], [3, 4]]), "[[1, 2], [3, 4]]"),
            (
                Some(r#"{a,"b c","d\"e",NULL,"NULL"}"#),
                Type::TEXT_ARRAY,
                json!(["a", "b c", "d\"e", null, "NULL"]),
                r#"['a', 'b c', 'd"e', None, 'NULL']"#,
            ),
            (Some("{t,f}"), Type::BOOL_ARRAY, json!([true, false]), "[True, False]"),
            (Some("{}"), Type::TEXT_ARRAY, json!([]), "[]"),
            (Some("[0:1]={1,2}"), Type::INT4_ARRAY, json!("[0:1]={1,2}"), "[0:1]={1,2}"),
            (Some("2026-01-31 12:00:00.5+01"), Type::TIMESTAMPTZ, json!("2026-01-31 12:00:00.500000+01:00"), ""),
            (Some("2026-01-31 12:00:00"), Type::TIMESTAMP, json!("2026-01-31 12:00:00"), ""),
            (Some("2026-01-31 12:00:00+05:30"), Type::TIMESTAMPTZ, json!("2026-01-31 12:00:00+05:30"), ""),
            (Some("infinity"), Type::TIMESTAMPTZ, json!("infinity"), ""),
            (Some("12:00:01.123"), Type::TIME, json!("12:00:01.123000"), ""),
            (Some("2026-01-31"), Type::DATE, json!("2026-01-31"), ""),
        ];
        for (text, ty, want, shown) in cases {
            let got = cell(*text, Some(ty));
            assert_eq!(&got, want, "{text:?} as {ty}");
            if !shown.is_empty() {
                assert_eq!(py_str(&got), *shown, "{text:?} as {ty}");
            }
        }
        assert_eq!(cell(Some("t"), None), json!("t"));
    }

    /// Expected values printed by Python for psycopg2's timedelta.
    #[test]
    fn intervals_as_python_timedeltas() {
        let cases = [
            ("1 year 2 mons 3 days 04:05:06.5", "428 days, 4:05:06.500000"),
            ("-1 days +02:00:00", "-1 day, 2:00:00"),
            ("00:00:01", "0:00:01"),
            ("3 days", "3 days, 0:00:00"),
            ("-00:00:01.25", "-1 day, 23:59:58.750000"),
            ("1 day -00:00:01", "23:59:59"),
            ("-1 years -2 mons", "-425 days, 0:00:00"),
            ("100:00:00", "4 days, 4:00:00"),
            ("00:00:00", "0:00:00"),
            ("1 day", "1 day, 0:00:00"),
            ("-1 day", "-1 day, 0:00:00"),
        ];
        for (text, want) in cases {
            assert_eq!(cell(Some(text), Some(&Type::INTERVAL)), json!(want), "{text}");
        }
        assert_eq!(cell(Some("P1D"), Some(&Type::INTERVAL)), json!("P1D"));
    }
}
