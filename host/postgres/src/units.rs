//! Parsing and comparing PostgreSQL setting values the way Patroni does
//! (`patroni/utils.py`: `strtol`, `strtod`, `parse_int`, `parse_real`,
//! `compare_values`, `maybe_convert_from_base_unit`).
//!
//! `pg_settings` reports values in a base unit (`shared_buffers` = `16384`
//! with unit `8kB`); the configuration says `128MB`. These functions decide
//! whether the two are the same value, and turn base-unit values back into
//! the human form Patroni shows in `pending_restart_reason`.

/// A memory or time unit table: for each unit, its size in the base units
/// PostgreSQL uses (`B`, `kB`, `MB` or `ms`, `s`, `min`).
type UnitTable = &'static [(&'static str, &'static [(&'static str, f64)])];

const KB: f64 = 1024.0;

const MEMORY: UnitTable = &[
    ("TB", &[("B", KB * KB * KB * KB), ("kB", KB * KB * KB), ("MB", KB * KB)]),
    ("GB", &[("B", KB * KB * KB), ("kB", KB * KB), ("MB", KB)]),
    ("MB", &[("B", KB * KB), ("kB", KB), ("MB", 1.0)]),
    ("kB", &[("B", KB), ("kB", 1.0), ("MB", 1.0 / KB)]),
    ("B", &[("B", 1.0), ("kB", 1.0 / KB), ("MB", 1.0 / (KB * KB))]),
];

const TIME: UnitTable = &[
    ("d", &[("ms", 1000.0 * 3600.0 * 24.0), ("s", 3600.0 * 24.0), ("min", 60.0 * 24.0)]),
    ("h", &[("ms", 1000.0 * 3600.0), ("s", 3600.0), ("min", 60.0)]),
    ("min", &[("ms", 1000.0 * 60.0), ("s", 60.0), ("min", 1.0)]),
    ("s", &[("ms", 1000.0), ("s", 1.0), ("min", 1.0 / 60.0)]),
    ("ms", &[("ms", 1.0), ("s", 1.0 / 1000.0), ("min", 1.0 / (1000.0 * 60.0))]),
    ("us", &[("ms", 1.0 / 1000.0), ("s", 1.0 / 1_000_000.0), ("min", 1.0 / (1_000_000.0 * 60.0))]),
];

fn table_for(base_unit: &str) -> UnitTable {
    match base_unit {
        "B" | "kB" | "MB" => MEMORY,
        "ms" | "s" | "min" => TIME,
        _ => &[],
    }
}

fn factor(table: UnitTable, unit: &str, base_unit: &str) -> Option<f64> {
    let (_, row) = table.iter().find(|(u, _)| *u == unit)?;
    row.iter().find(|(b, _)| *b == base_unit).map(|(_, f)| *f)
}

/// A number read from the start of a setting value.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Real(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Real(f) => f,
        }
    }
}

fn sign_len(s: &str) -> usize {
    usize::from(s.starts_with('+') || s.starts_with('-'))
}

fn digits_len(s: &str, radix: u32) -> usize {
    s.chars().take_while(|c| c.is_digit(radix)).count()
}

/// C `strtol(value, base=0)`: hexadecimal (`0x..`), octal (`0..`) or
/// decimal. Returns the number and the rest; `None` when nothing matched.
fn strtol(value: &str) -> (Option<i64>, &str) {
    let v = value.trim();
    let sign = sign_len(v);
    let body = &v[sign..];
    let negative = v.starts_with('-');
    let apply = |n: i64| if negative { -n } else { n };
    if let Some(hex) = body.strip_prefix("0x") {
        let n = digits_len(hex, 16);
        if n > 0 {
            if let Ok(x) = i64::from_str_radix(&hex[..n], 16) {
                return (Some(apply(x)), &hex[n..]);
            }
        }
    }
    if let Some(octal) = body.strip_prefix('0') {
        let n = digits_len(octal, 8);
        let x = if n == 0 { Ok(0) } else { i64::from_str_radix(&octal[..n], 8) };
        if let Ok(x) = x {
            return (Some(apply(x)), &octal[n..]);
        }
    }
    let n = digits_len(body, 10);
    if n > 0 {
        if let Ok(x) = body[..n].parse::<i64>() {
            return (Some(apply(x)), &body[n..]);
        }
    }
    (None, v)
}

/// C `strtod`: `[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?` at the start.
fn strtod(value: &str) -> (Option<f64>, &str) {
    let v = value.trim();
    let sign = sign_len(v);
    let int_len = digits_len(&v[sign..], 10);
    let mut end = sign + int_len;
    let after = &v[end..];
    if after.starts_with('.') && digits_len(&after[1..], 10) > 0 {
        end += 1 + digits_len(&after[1..], 10);
    } else if int_len == 0 {
        return (None, v);
    }
    let exp = &v[end..];
    if exp.starts_with('e') || exp.starts_with('E') {
        let s = sign_len(&exp[1..]);
        let d = digits_len(&exp[1 + s..], 10);
        if d > 0 {
            end += 1 + s + d;
        }
    }
    match v[..end].parse::<f64>() {
        Ok(f) => (Some(f), &v[end..]),
        Err(_) => (None, v),
    }
}

/// Split a base unit such as `8kB` into its multiplier and unit
/// (Patroni's non-strict `strtol`: no number means 1).
fn split_base_unit(base_unit: Option<&str>) -> (i64, &str) {
    let text = base_unit.unwrap_or("None");
    match strtol(text) {
        (Some(n), rest) => (n, rest),
        (None, rest) => (1, rest),
    }
}

fn python_round(x: f64) -> f64 {
    x.round_ties_even()
}

fn convert_to_base_unit(value: f64, unit: &str, base_unit: Option<&str>) -> Option<f64> {
    let (base_value, base_unit) = split_base_unit(base_unit);
    let table = table_for(base_unit);
    let f = factor(table, unit, base_unit)?;
    let mut value = value * f / base_value as f64;
    let position = table.iter().position(|(u, _)| *u == unit)?;
    if let Some((smaller, _)) = table.get(position + 1) {
        let multiplier = factor(table, smaller, base_unit)?;
        value = python_round(value / multiplier) * multiplier;
    }
    Some(value)
}

/// Patroni's `parse_int`: an integer, possibly with a unit, converted to
/// `base_unit` (`parse_int("1MB", Some("kB")) == Some(1024)`).
pub fn parse_int(value: &str, base_unit: Option<&str>) -> Option<i64> {
    let (mut val, mut unit) = match strtol(value) {
        (Some(n), rest) => (Some(Num::Int(n)), rest),
        (None, rest) => (None, rest),
    };
    if (val.is_none() && unit.starts_with('.')) || unit.starts_with(['.', 'e', 'E']) {
        let (v, rest) = strtod(value);
        val = v.map(Num::Real);
        unit = rest;
    }
    let val = val?;
    let unit = unit.trim();
    if unit.is_empty() {
        return Some(match val {
            Num::Int(i) => i,
            Num::Real(f) => python_round(f) as i64,
        });
    }
    convert_to_base_unit(val.as_f64(), unit, base_unit).map(|v| python_round(v) as i64)
}

/// Patroni's `parse_real`: a floating point number, possibly with a unit.
pub fn parse_real(value: &str, base_unit: Option<&str>) -> Option<f64> {
    let (val, unit) = strtod(value);
    let val = val?;
    let unit = unit.trim();
    if unit.is_empty() {
        return Some(val);
    }
    convert_to_base_unit(val, unit, base_unit)
}

/// Patroni's `parse_bool`: `on`/`true`/`yes`/`1` and `off`/`false`/`no`/`0`,
/// case-insensitively.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Bool(bool),
    Num(f64),
    Text(String),
}

fn convert(vartype: &str, value: &str, unit: Option<&str>) -> Option<Parsed> {
    match vartype {
        "bool" => parse_bool(value).map(Parsed::Bool),
        "integer" => parse_int(value, unit).map(|i| Parsed::Num(i as f64)),
        "real" => parse_real(value, unit).map(Parsed::Num),
        "enum" => Some(Parsed::Text(value.to_lowercase())),
        _ => Some(Parsed::Text(value.to_string())),
    }
}

/// Patroni's `compare_values`: whether a `pg_settings` value (`setting`, in
/// the base unit) and a configured value are the same once both are read
/// as `vartype` (`bool`, `integer`, `real`, `enum`, `string`). `unit` is the
/// `pg_settings.unit` of the parameter.
pub fn compare_values(vartype: &str, unit: Option<&str>, settings_value: &str, config_value: &str) -> bool {
    match (convert(vartype, settings_value, None), convert(vartype, config_value, unit)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn convert_int_from_base_unit(base_value: i64, base_unit: Option<&str>) -> Option<String> {
    let (mult, base_unit) = split_base_unit(base_unit);
    let base_value = base_value.checked_mul(mult)?;
    for (unit, _) in table_for(base_unit) {
        let multiplier = factor(table_for(base_unit), unit, base_unit)?;
        if multiplier <= 1.0 || (base_value as f64) % multiplier == 0.0 {
            return Some(format!("{}{unit}", python_round(base_value as f64 / multiplier) as i64));
        }
    }
    None
}

fn convert_real_from_base_unit(base_value: f64, base_unit: Option<&str>) -> Option<String> {
    let (mult, base_unit) = split_base_unit(base_unit);
    let base_value = base_value * mult as f64;
    let mut result = None;
    for (unit, _) in table_for(base_unit) {
        let multiplier = factor(table_for(base_unit), unit, base_unit)?;
        let value = base_value / multiplier;
        result = Some(format!("{}{unit}", format_g(value)));
        if value > 0.0 && ((python_round(value) / value) - 1.0).abs() <= 1e-8 {
            break;
        }
    }
    result
}

/// Patroni's `maybe_convert_from_base_unit`: `16384` with unit `8kB` becomes
/// `128MB`; anything that cannot be converted comes back unchanged.
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

/// Python's `format(value, 'g')`: six significant digits, trailing zeros
/// removed, scientific notation below 1e-4 or from 1e6.
pub(crate) fn format_g(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    if !value.is_finite() {
        return if value.is_nan() {
            "nan".into()
        } else if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let sci = format!("{value:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = usize::try_from(5 - exp).unwrap_or(0);
        strip_zeros(&format!("{value:.decimals$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_cases() {
        assert_eq!(strtol("0"), (Some(0), ""));
        assert_eq!(strtol("9"), (Some(9), ""));
        assert_eq!(strtol(" +0x400MB"), (Some(1024), "MB"));
        assert_eq!(strtol(" -070d"), (Some(-56), "d"));
        assert_eq!(strtol(" d "), (None, "d"));
        assert_eq!(strtol(" 1 d "), (Some(1), " d"));
    }

    #[test]
    fn strtod_cases() {
        assert_eq!(strtod(" A "), (None, "A"));
        assert_eq!(strtod("1 A "), (Some(1.0), " A"));
        assert_eq!(strtod("1.5A"), (Some(1.5), "A"));
        assert_eq!(strtod("8.325e-10A B C"), (Some(8.325e-10), "A B C"));
        assert_eq!(strtod("1."), (Some(1.0), "."));
        assert_eq!(strtod(".5"), (Some(0.5), ""));
    }

    #[test]
    fn parse_int_table() {
        let cases: &[(&str, Option<&str>, Option<i64>)] = &[
            ("1", None, Some(1)),
            (" 0x400 MB ", Some("16384kB"), Some(64)),
            ("1MB", Some("kB"), Some(1024)),
            ("1000 ms", Some("s"), Some(1)),
            ("1TB", Some("GB"), None),
            ("50", None, Some(50)),
            ("nonsense", None, None),
            ("nonsense", Some("kB"), None),
            ("0", None, Some(0)),
            ("6GB", Some("16MB"), Some(384)),
            ("4097.4kB", Some("kB"), Some(4097)),
            ("4097.5kB", Some("kB"), Some(4098)),
            ("128MB", Some("8kB"), Some(16384)),
            ("128MB", None, None),
        ];
        for (value, unit, want) in cases {
            assert_eq!(parse_int(value, *unit), *want, "parse_int({value:?}, {unit:?})");
        }
    }

    #[test]
    fn parse_real_table() {
        assert_eq!(parse_real(" +0.0005 ", None), Some(0.0005));
        assert_eq!(parse_real("0.0005ms", Some("ms")), Some(0.0));
        assert_eq!(parse_real("0.00051ms", Some("ms")), Some(0.001));
    }

    #[test]
    fn compare_values_table() {
        let cases: &[(&str, Option<&str>, &str, &str, bool)] = &[
            ("enum", None, "remote_write", "REMOTE_WRITE", true),
            ("string", None, "remote_write", "REMOTE_WRITE", false),
            ("real", None, "1e-06", "0.000001", true),
            ("integer", Some("MB"), "6GB", "6GB", false),
            ("integer", None, "6GB", "6GB", false),
            ("integer", Some("16384kB"), "64", " 0x400 MB ", true),
            ("integer", Some("2MB"), "524288", "1TB", true),
            ("integer", Some("MB"), "1048576", "1TB", true),
            ("integer", Some("kB"), "4098", "4097.5kB", true),
            ("integer", Some("8kB"), "16384", "128MB", true),
            ("integer", Some("8kB"), "16384", "256MB", false),
            ("bool", None, "on", "True", true),
            ("bool", None, "off", "on", false),
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
            ("100", "integer", None, "100"),
            ("0", "integer", Some("kB"), "0"),
        ];
        for (value, vartype, unit, want) in cases {
            assert_eq!(maybe_convert_from_base_unit(value, vartype, *unit), *want, "{value} {vartype} {unit:?}");
        }
    }

    #[test]
    fn format_g_matches_python() {
        for (v, want) in [(5.0, "5"), (2500.0, "2500"), (0.0025, "0.0025"), (1e-5, "1e-05"), (1234567.0, "1.23457e+06")]
        {
            assert_eq!(format_g(v), want);
        }
    }
}
