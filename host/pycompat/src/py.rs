//! Python's `str()`, `repr()`, truthiness and `str.strip()` of the values
//! a YAML or JSON document holds (`None`, `bool`, `int`, `float`, `str`,
//! `list`, `dict`), and float formatting (`repr`, `format(x, 'g')`).

use std::borrow::Cow;

use serde_json::Value;

use crate::printable::NOT_PRINTABLE;

/// Python's `str(value)`: a string as it is, anything else as its `repr()`
/// (`True`, `None`, `1.0`, `['a', 1]`, `{'k': None}`).
pub fn to_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Values Patroni reads through `str(value)`: plain text as it is, JSON
/// values as Python's `str()` shows them.
pub trait ToPyStr {
    /// Python's `str()` of `self`.
    fn to_py_str(&self) -> Cow<'_, str>;
}

impl ToPyStr for str {
    fn to_py_str(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl ToPyStr for String {
    fn to_py_str(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl ToPyStr for Value {
    fn to_py_str(&self) -> Cow<'_, str> {
        match self {
            Value::String(s) => Cow::Borrowed(s),
            other => Cow::Owned(repr(other)),
        }
    }
}

impl<T: ToPyStr + ?Sized> ToPyStr for &T {
    fn to_py_str(&self) -> Cow<'_, str> {
        (**self).to_py_str()
    }
}

/// Python's `repr(value)`.
pub fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => float_repr(f),
            _ => n.to_string(),
        },
        Value::String(s) => repr_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => {
            let items: Vec<String> = m.iter().map(|(k, v)| format!("{}: {}", repr_str(k), repr(v))).collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Python's truth value: `None`, `False`, `0`, `0.0`, `''`, `[]` and `{}`
/// are false, everything else is true (so the string `'false'` is true).
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i != 0,
            (None, Some(u), _) => u != 0,
            (None, None, Some(f)) => f != 0.0,
            _ => true,
        },
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `repr()` of a float: the shortest digits that read back the
/// same, positional for decimal exponents -4 to 15 (`1e-05`, `1e+16`
/// otherwise), `.0` on integral values, `inf`, `-inf`, `nan`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // `{:e}` gives the shortest round-trip digits ("-1.2345e-7"); where two
    // such strings are equally near, Python takes the one rounded half to
    // even, which exact formatting at that length gives.
    let shortest = format!("{f:e}");
    let len = shortest.split('e').next().map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let sci = format!("{f:.prec$e}", prec = len.saturating_sub(1));
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    // Positional: the point goes after `exp + 1` digits.
    let point = exp + 1;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if digits.len() <= point {
            format!("{digits}{}.0", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{body}")
}

/// Python's `format(value, 'g')`: six significant digits, trailing zeros
/// removed, scientific notation below 1e-4 or from 1e6.
pub fn format_g(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{value:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let m = strip_fraction_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = usize::try_from(5 - exp).unwrap_or(0);
        strip_fraction_zeros(&format!("{value:.decimals$}")).to_string()
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Python's `str.isspace()` for one character (what `str.strip()` and
/// `str.split()` remove): Unicode white space plus the ASCII separators
/// `\x1c`-`\x1f`.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.strip()` without arguments.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.isprintable()` for one character.
pub fn is_printable(c: char) -> bool {
    let c = c as u32;
    // The ranges are sorted and disjoint: find the last one starting at or
    // before `c`.
    let i = NOT_PRINTABLE.partition_point(|(start, _)| *start <= c);
    !(i > 0 && c <= NOT_PRINTABLE[i - 1].1)
}

/// Python's `ascii()` of a string: `repr()` with every character beyond
/// ASCII escaped as `\xhh`, `\uhhhh` or `\Uhhhhhhhh`.
pub fn ascii_str(s: &str) -> String {
    let repr = repr_str(s);
    let mut out = String::with_capacity(repr.len());
    for c in repr.chars() {
        match c as u32 {
            0..=0x7f => out.push(c),
            n @ 0x80..=0xff => out.push_str(&format!("\\x{n:02x}")),
            n @ 0x100..=0xffff => out.push_str(&format!("\\u{n:04x}")),
            n => out.push_str(&format!("\\U{n:08x}")),
        }
    }
    out
}

/// Python's `repr()` of a string: single quotes unless the text holds a
/// single quote and no double quote; `\\`, `\n`, `\r`, `\t` and the quote
/// escaped; characters that are not printable as `\xhh`, `\uhhhh` or
/// `\Uhhhhhhhh`.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => match c as u32 {
                n @ 0..=0xff => out.push_str(&format!("\\x{n:02x}")),
                n @ 0x100..=0xffff => out.push_str(&format!("\\u{n:04x}")),
                n => out.push_str(&format!("\\U{n:08x}")),
            },
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Expected values printed by Python 3.11's `ascii()`.
    #[test]
    fn ascii_of_strings() {
        let cases = [
            ("plain", "'plain'"),
            ("\u{e9}", "'\\xe9'"),
            ("\u{263a}", "'\\u263a'"),
            ("\u{1f600}", "'\\U0001f600'"),
            ("it's \u{e9}", "\"it's \\xe9\""),
            ("\u{7f}\u{a0}x", "'\\x7f\\xa0x'"),
            ("\u{200b}", "'\\u200b'"),
        ];
        for (s, want) in cases {
            assert_eq!(ascii_str(s), want, "{s:?}");
        }
    }

    #[test]
    fn str_and_repr() {
        let cases = [
            (json!(null), "None", "None"),
            (json!(true), "True", "True"),
            (json!(12), "12", "12"),
            (json!(1.0), "1.0", "1.0"),
            (json!(1e16), "1e+16", "1e+16"),
            (json!(0.0001), "0.0001", "0.0001"),
            (json!(0.00001), "1e-05", "1e-05"),
            (json!("it's"), "it's", "\"it's\""),
            (json!("a\u{0}\u{ad}\u{1F600}"), "a\u{0}\u{ad}\u{1F600}", "'a\\x00\\xad\u{1F600}'"),
            (json!(["a", 1, null]), "['a', 1, None]", "['a', 1, None]"),
            (json!({"k": {"x": false}}), "{'k': {'x': False}}", "{'k': {'x': False}}"),
        ];
        for (v, s, r) in cases {
            assert_eq!(to_str(&v), s, "str({v})");
            assert_eq!(v.to_py_str(), s, "str({v})");
            assert_eq!(repr(&v), r, "repr({v})");
        }
    }

    #[test]
    fn truthiness() {
        for (v, t) in [
            (json!(null), false),
            (json!(0), false),
            (json!(0.0), false),
            (json!(""), false),
            (json!([]), false),
            (json!({}), false),
            (json!("false"), true),
            (json!("0"), true),
            (json!(-1), true),
            (json!([0]), true),
        ] {
            assert_eq!(truthy(&v), t, "bool({v})");
        }
    }

    #[test]
    fn g_format_and_strip() {
        for (v, want) in [(5.0, "5"), (2500.0, "2500"), (0.0025, "0.0025"), (1e-5, "1e-05"), (1234567.0, "1.23457e+06")]
        {
            assert_eq!(format_g(v), want);
        }
        assert_eq!(strip("\x1c on\u{a0}\t"), "on");
    }
}
