//! Patroni's value readers (`patroni/utils.py`): `parse_bool`, `parse_int`
//! and `parse_real` with PostgreSQL units, the `strtol`/`strtod` they are
//! built on, `compare_values` and `maybe_convert_from_base_unit`, and the
//! initdb options Patroni refuses.
//!
//! Every reader takes what Python's `str(value)` gives ([`ToPyStr`]: plain
//! text or a JSON value), so `parse_int(&json!(true), None)` is `None` as
//! `parse_int(True)` is in Patroni. Where Python would return an integer
//! outside `i64`, or raise (`round(inf)`, a division by a zero base unit,
//! a decimal literal over Python's 4,300-digit limit), these return `None`.

use crate::py::{format_g, strip, ToPyStr};

/// initdb options `bootstrap.initdb` may not set (Patroni's `_initdb`).
pub const INITDB_NOT_ALLOWED: [&str; 5] = ["pgdata", "nosync", "pwfile", "sync-only", "version"];

/// Patroni's `parse_bool`: `on/true/yes/1` and `off/false/no/0` in any case
/// after `str()`, so `True` and `1` count but `1.0`, `' on'` and `y` do not.
pub fn parse_bool(value: &(impl ToPyStr + ?Sized)) -> Option<bool> {
    match value.to_py_str().to_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A number read by `strtol`/`strtod`: Python's `int` (exactly, when it
/// fits `i128`) or `float`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    /// An integer; `approx` is `float(int)` (infinite where Python raises
    /// OverflowError); `exact` is `None` when it does not fit `i128`.
    Int {
        exact: Option<i128>,
        approx: f64,
    },
    Float(f64),
}

impl Num {
    fn int(i: i128) -> Self {
        Num::Int { exact: Some(i), approx: i as f64 }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int { approx, .. } => approx,
            Num::Float(f) => f,
        }
    }
}

/// Python's `int(digits, radix)` for unsigned ASCII digits (at least one).
fn int_of(digits: &str, radix: u32) -> Option<Num> {
    // Python refuses decimal literals over 4,300 digits (ValueError).
    if radix == 10 && digits.len() > 4300 {
        return None;
    }
    if let Ok(i) = i128::from_str_radix(digits, radix) {
        return Some(Num::int(i));
    }
    let approx = if radix == 10 {
        digits.parse::<f64>().unwrap_or(f64::INFINITY)
    } else {
        // Powers of two: the top 120 bits exactly, a sticky bit for the
        // rest, then scale (float(int) rounds once, half to even).
        let bits_per_digit = if radix == 16 { 4 } else { 3 };
        let digits = digits.trim_start_matches('0');
        let head_len = 120 / bits_per_digit;
        let (head, tail) = digits.split_at(head_len.min(digits.len()));
        let mut top = u128::from_str_radix(head, radix).ok()?;
        if tail.bytes().any(|b| b != b'0') {
            top |= 1;
        }
        let shift = i32::try_from(tail.len() * bits_per_digit).unwrap_or(i32::MAX);
        (top as f64) * 2f64.powi(shift)
    };
    Some(Num::Int { exact: None, approx })
}

fn negate(n: Num) -> Num {
    match n {
        Num::Int { exact, approx } => Num::Int { exact: exact.map(|i| -i), approx: -approx },
        Num::Float(f) => Num::Float(-f),
    }
}

fn ascii_digits(s: &str, ok: impl Fn(u8) -> bool) -> usize {
    s.bytes().take_while(|b| ok(*b)).count()
}

/// Patroni's `strtol` (C `strtol` with base 0, on `str(value).strip()`):
/// a hexadecimal (`0x` only), octal (leading `0`) or decimal integer at the
/// start, and the rest. `None` and the whole stripped text when there is
/// none.
pub fn strtol(value: &str) -> (Option<Num>, &str) {
    let v = strip(value);
    let sign = usize::from(v.starts_with(['+', '-']));
    let negative = v.starts_with('-');
    let body = &v[sign..];
    let signed = |n: Num| if negative { negate(n) } else { n };
    if let Some(hex) = body.strip_prefix("0x") {
        let n = ascii_digits(hex, |b| b.is_ascii_hexdigit());
        if n > 0 {
            if let Some(x) = int_of(&hex[..n], 16) {
                return (Some(signed(x)), &hex[n..]);
            }
            return (None, v);
        }
    }
    if let Some(after_zero) = body.strip_prefix('0') {
        let n = 1 + ascii_digits(after_zero, |b| (b'0'..=b'7').contains(&b));
        return match int_of(&body[..n], 8) {
            Some(x) => (Some(signed(x)), &body[n..]),
            None => (None, v),
        };
    }
    let n = ascii_digits(body, |b| b.is_ascii_digit());
    if n > 0 {
        if let Some(x) = int_of(&body[..n], 10) {
            return (Some(signed(x)), &body[n..]);
        }
    }
    (None, v)
}

/// Patroni's `strtod`: `[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?` at the
/// start of `str(value).strip()`, and the rest.
pub fn strtod(value: &str) -> (Option<f64>, &str) {
    let v = strip(value);
    let b = v.as_bytes();
    let sign = usize::from(v.starts_with(['+', '-']));
    let int_len = ascii_digits(&v[sign..], |c| c.is_ascii_digit());
    let mut end = sign + int_len;
    let frac_len = if b.get(end) == Some(&b'.') { ascii_digits(&v[end + 1..], |c| c.is_ascii_digit()) } else { 0 };
    if frac_len > 0 {
        end += 1 + frac_len;
    } else if int_len == 0 {
        return (None, v);
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let s = usize::from(matches!(b.get(end + 1), Some(b'+' | b'-')));
        let d = ascii_digits(&v[end + 1 + s..], |c| c.is_ascii_digit());
        if d > 0 {
            end += 1 + s + d;
        }
    }
    match v[..end].parse::<f64>() {
        Ok(f) => (Some(f), &v[end..]),
        Err(_) => (None, v),
    }
}

/// A factor of Patroni's conversion tables: Python keeps `1024**2` an
/// `int` (exact arithmetic) and `1024**-1` a `float`.
#[derive(Clone, Copy, Debug)]
enum Factor {
    Int(i64),
    Float(f64),
}

impl Factor {
    fn as_f64(self) -> f64 {
        match self {
            Factor::Int(i) => i as f64,
            Factor::Float(f) => f,
        }
    }
}

use Factor::{Float as F, Int as I};

const KB: i64 = 1024;
type Table = [(&'static str, [(&'static str, Factor); 3])];

const MEMORY: &Table = &[
    ("TB", [("B", I(KB * KB * KB * KB)), ("kB", I(KB * KB * KB)), ("MB", I(KB * KB))]),
    ("GB", [("B", I(KB * KB * KB)), ("kB", I(KB * KB)), ("MB", I(KB))]),
    ("MB", [("B", I(KB * KB)), ("kB", I(KB)), ("MB", I(1))]),
    ("kB", [("B", I(KB)), ("kB", I(1)), ("MB", F(1.0 / 1024.0))]),
    ("B", [("B", I(1)), ("kB", F(1.0 / 1024.0)), ("MB", F(1.0 / (1024.0 * 1024.0)))]),
];

const TIME: &Table = &[
    ("d", [("ms", I(1000 * 3600 * 24)), ("s", I(3600 * 24)), ("min", I(60 * 24))]),
    ("h", [("ms", I(1000 * 3600)), ("s", I(3600)), ("min", I(60))]),
    ("min", [("ms", I(1000 * 60)), ("s", I(60)), ("min", I(1))]),
    ("s", [("ms", I(1000)), ("s", I(1)), ("min", F(1.0 / 60.0))]),
    ("ms", [("ms", I(1)), ("s", F(1.0 / 1000.0)), ("min", F(1.0 / 60_000.0))]),
    ("us", [("ms", F(1.0 / 1000.0)), ("s", F(1.0 / 1_000_000.0)), ("min", F(1.0 / 60_000_000.0))]),
];

fn table_for(base_unit: &str) -> &'static Table {
    match base_unit {
        "B" | "kB" | "MB" => MEMORY,
        "ms" | "s" | "min" => TIME,
        _ => &[],
    }
}

fn factor(table: &Table, unit: &str, base_unit: &str) -> Option<Factor> {
    let (_, row) = table.iter().find(|(u, _)| *u == unit)?;
    row.iter().find(|(b, _)| *b == base_unit).map(|(_, f)| *f)
}

/// A base unit such as `8kB` as its multiplier and unit (Patroni's
/// non-strict `strtol`: no number means 1; no base unit reads `None`).
fn split_base_unit(base_unit: Option<&str>) -> (Num, &str) {
    match strtol(base_unit.unwrap_or("None")) {
        (Some(n), rest) => (n, rest),
        (None, rest) => (Num::int(1), rest),
    }
}

/// Python's `round()` of a float as an exact integer; `None` where Python
/// raises (inf, nan) or the result does not fit `i128`.
fn round_float(f: f64) -> Option<i128> {
    let r = f.round_ties_even();
    (r.is_finite() && r.abs() < 1.7e38).then_some(r as i128)
}

/// Patroni's `convert_to_base_unit`: `value` in `unit` expressed in
/// `base_unit` (which may carry a multiplier, as `16MB`), rounded to the
/// next smaller unit as PostgreSQL rounds. `None` for an unknown unit.
fn convert_to_base_unit(value: Num, unit: &str, base_unit: Option<&str>) -> Option<Num> {
    let (base_value, base_unit) = split_base_unit(base_unit);
    let table = table_for(base_unit);
    let f = factor(table, unit, base_unit)?;
    // float(int) raises OverflowError for an int beyond the float range,
    // and the base unit's multiplier divides (ZeroDivisionError at 0).
    let overflows = |n: Num| matches!(n, Num::Int { approx, .. } if approx.is_infinite());
    let divisor = base_value.as_f64();
    if divisor == 0.0 || overflows(base_value) || overflows(value) {
        return None;
    }
    let value = value.as_f64() * (f.as_f64() / divisor);
    let position = table.iter().position(|(u, _)| *u == unit)?;
    let Some((smaller, _)) = table.get(position + 1) else { return Some(Num::Float(value)) };
    let multiplier = factor(table, smaller, base_unit)?;
    let rounded = round_float(value / multiplier.as_f64())?;
    Some(match multiplier {
        Factor::Int(m) => match rounded.checked_mul(i128::from(m)) {
            Some(i) => Num::int(i),
            None => Num::Int { exact: None, approx: rounded as f64 * m as f64 },
        },
        Factor::Float(m) => Num::Float(rounded as f64 * m),
    })
}

fn to_i64(n: Num) -> Option<i64> {
    let exact = match n {
        Num::Int { exact, .. } => exact?,
        Num::Float(f) => round_float(f)?,
    };
    i64::try_from(exact).ok()
}

/// Patroni's `parse_int`: `5`, `"5"`, `"0x10"`, `"010"` (octal, 8),
/// `"1e3"`, `"2.5"` (2, rounded half to even), and with a unit converted to
/// `base_unit` (`parse_int("1GB", Some("MB")) == Some(1024)`). `None` when
/// it is not an integer, the unit does not fit `base_unit`, or the result
/// does not fit `i64`.
pub fn parse_int(value: &(impl ToPyStr + ?Sized), base_unit: Option<&str>) -> Option<i64> {
    let text = value.to_py_str();
    let (mut val, mut unit) = strtol(&text);
    if (val.is_none() && unit.starts_with('.')) || unit.starts_with(['.', 'e', 'E']) {
        let (v, rest) = strtod(&text);
        val = v.map(Num::Float);
        unit = rest;
    }
    let val = val?;
    let unit = strip(unit);
    if unit.is_empty() {
        return to_i64(val);
    }
    to_i64(convert_to_base_unit(val, unit, base_unit)?)
}

/// Patroni's `parse_real`: a float, possibly with a unit converted to
/// `base_unit`.
pub fn parse_real(value: &(impl ToPyStr + ?Sized), base_unit: Option<&str>) -> Option<f64> {
    let text = value.to_py_str();
    let (val, unit) = strtod(&text);
    let val = val?;
    let unit = strip(unit);
    if unit.is_empty() {
        return Some(val);
    }
    let n = convert_to_base_unit(Num::Float(val), unit, base_unit)?;
    let f = n.as_f64();
    // float() of a huge int raises OverflowError.
    (!matches!(n, Num::Int { .. }) || f.is_finite()).then_some(f)
}

#[derive(Debug, PartialEq)]
enum Converted {
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
}

fn convert(vartype: &str, value: &str, unit: Option<&str>) -> Option<Converted> {
    match vartype {
        "bool" => parse_bool(value).map(Converted::Bool),
        "integer" => parse_int(value, unit).map(Converted::Int),
        "real" => parse_real(value, unit).map(Converted::Real),
        "enum" => Some(Converted::Text(value.to_lowercase())),
        _ => Some(Converted::Text(value.to_string())),
    }
}

/// Patroni's `compare_values`: whether a `pg_settings` value (`setting`, in
/// the base unit) and a configured value are the same once both are read
/// as `vartype` (`bool`, `integer`, `real`, `enum`, else `string`). `unit`
/// is the `pg_settings.unit` of the parameter.
pub fn compare_values(vartype: &str, unit: Option<&str>, settings_value: &str, config_value: &str) -> bool {
    match (convert(vartype, settings_value, None), convert(vartype, config_value, unit)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn convert_int_from_base_unit(base_value: i64, base_unit: Option<&str>) -> Option<String> {
    let (mult, base_unit) = split_base_unit(base_unit);
    let Num::Int { exact: Some(mult), .. } = mult else { return None };
    let base_value = i128::from(base_value).checked_mul(mult)?;
    let table = table_for(base_unit);
    for (unit, _) in table {
        let multiplier = factor(table, unit, base_unit)?;
        let divisible = match multiplier {
            Factor::Int(m) => m <= 1 || base_value.rem_euclid(i128::from(m)) == 0,
            Factor::Float(m) => m <= 1.0,
        };
        if divisible {
            let quotient = match multiplier {
                Factor::Int(m) => int_true_div(base_value, i128::from(m)),
                Factor::Float(m) => base_value as f64 / m,
            };
            return Some(format!("{}{unit}", round_float(quotient)?));
        }
    }
    None
}

/// Python's `int / int` (true division, correctly rounded).
fn int_true_div(a: i128, b: i128) -> f64 {
    if a % b == 0 {
        (a / b) as f64
    } else {
        a as f64 / b as f64
    }
}

fn convert_real_from_base_unit(base_value: f64, base_unit: Option<&str>) -> Option<String> {
    let (mult, base_unit) = split_base_unit(base_unit);
    let base_value = base_value * mult.as_f64();
    let table = table_for(base_unit);
    let mut result = None;
    for (unit, _) in table {
        let value = base_value / factor(table, unit, base_unit)?.as_f64();
        result = Some(format!("{}{unit}", format_g(value)));
        // round(inf) raises OverflowError.
        if value > 0.0 && (value.is_infinite() || ((value.round_ties_even() / value) - 1.0).abs() <= 1e-8) {
            if value.is_infinite() {
                return None;
            }
            break;
        }
    }
    result
}

/// Patroni's `maybe_convert_from_base_unit`: `16384` with unit `8kB` becomes
/// `128MB`; anything that cannot be converted (or where Python would raise)
/// comes back unchanged.
pub fn maybe_convert_from_base_unit(base_value: &str, vartype: &str, base_unit: Option<&str>) -> String {
    let converted = match vartype {
        "integer" => {
            parse_int(base_value, None).filter(|v| *v != 0).and_then(|v| convert_int_from_base_unit(v, base_unit))
        }
        "real" => {
            parse_real(base_value, None).filter(|v| *v != 0.0).and_then(|v| convert_real_from_base_unit(v, base_unit))
        }
        _ => None,
    };
    converted.unwrap_or_else(|| base_value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn int(n: i128) -> Option<Num> {
        Some(Num::int(n))
    }

    #[test]
    fn strtol_and_strtod() {
        assert_eq!(strtol("0"), (int(0), ""));
        assert_eq!(strtol(" +0x400MB"), (int(1024), "MB"));
        assert_eq!(strtol(" -070d"), (int(-56), "d"));
        assert_eq!(strtol(" d "), (None, "d"));
        assert_eq!(strtol(" 1 d "), (int(1), " d"));
        assert_eq!(strtol("0X10"), (int(0), "X10"));
        assert_eq!(strtod(" A "), (None, "A"));
        assert_eq!(strtod("1.5A"), (Some(1.5), "A"));
        assert_eq!(strtod("8.325e-10A B C"), (Some(8.325e-10), "A B C"));
        assert_eq!(strtod("1."), (Some(1.0), "."));
        assert_eq!(strtod(".5"), (Some(0.5), ""));
    }

    #[test]
    fn parse_int_follows_patroni() {
        let cases: &[(serde_json::Value, Option<&str>, Option<i64>)] = &[
            (json!("1"), None, Some(1)),
            (json!(50), None, Some(50)),
            (json!(" 0x400 MB "), Some("16384kB"), Some(64)),
            (json!("1MB"), Some("kB"), Some(1024)),
            (json!("1000 ms"), Some("s"), Some(1)),
            (json!("1TB"), Some("GB"), None),
            (json!("nonsense"), Some("kB"), None),
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
            (json!("128MB"), Some("8kB"), Some(16384)),
            (json!("1kB"), Some("0kB"), None),
            (json!("99999999999999999999"), None, None),
            (json!("1e400"), None, None),
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
        assert_eq!(parse_bool(&json!(1.0)), None);
        assert_eq!(parse_bool(" on"), None);
        assert_eq!(parse_real(" +0.0005 ", None), Some(0.0005));
        assert_eq!(parse_real("0.0005ms", Some("ms")), Some(0.0));
        assert_eq!(parse_real("0.00051ms", Some("ms")), Some(0.001));
        assert_eq!(parse_real("x", None), None);
    }

    #[test]
    fn compare_values_table() {
        let cases: &[(&str, Option<&str>, &str, &str, bool)] = &[
            ("enum", None, "remote_write", "REMOTE_WRITE", true),
            ("string", None, "remote_write", "REMOTE_WRITE", false),
            ("real", None, "1e-06", "0.000001", true),
            ("integer", Some("MB"), "6GB", "6GB", false),
            ("integer", Some("16384kB"), "64", " 0x400 MB ", true),
            ("integer", Some("2MB"), "524288", "1TB", true),
            ("integer", Some("kB"), "4098", "4097.5kB", true),
            ("integer", Some("8kB"), "16384", "256MB", false),
            ("bool", None, "on", "True", true),
        ];
        for (vartype, unit, old, new, want) in cases {
            assert_eq!(compare_values(vartype, *unit, old, new), *want, "{vartype} {unit:?} {old} {new}");
        }
    }

    #[test]
    fn convert_from_base_unit_table() {
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            ("5", "integer", Some("ms"), "5ms"),
            ("4.2", "real", Some("ms"), "4200us"),
            ("on", "bool", None, "on"),
            ("", "integer", Some("256MB"), ""),
            ("16384", "integer", Some("8kB"), "128MB"),
            ("1025", "integer", Some("kB"), "1025kB"),
            ("4", "integer", Some("256MB"), "1GB"),
            ("0", "integer", Some("kB"), "0"),
        ];
        for (value, vartype, unit, want) in cases {
            assert_eq!(maybe_convert_from_base_unit(value, vartype, *unit), *want, "{value} {vartype} {unit:?}");
        }
    }
}
