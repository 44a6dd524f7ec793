//! Python's `%` formatting with a mapping (`fmt % record.__dict__`), as
//! `logging.Formatter` applies `log.format`: `%(name)s` with the flags
//! (`-+ 0#`), width, precision and length modifier (`hlL`, ignored) that
//! Python accepts, and every conversion (`diouxXeEfFgGcrsa%`).
//!
//! What Python would only find out while formatting each record (an
//! unknown attribute, `%d` of a string, a directive without a name) is
//! refused when the format is read, so that a bad `log.format` is a
//! configuration error instead of a traceback per log line.

use super::record::{attribute_kind, Kind, PyValue};

/// One piece of a format.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Field(Directive),
}

/// `%(name)<flags><width>.<precision><conversion>`.
#[derive(Clone, Debug, Default, PartialEq)]
struct Directive {
    name: String,
    left: bool,
    plus: bool,
    space: bool,
    zero: bool,
    alternate: bool,
    width: usize,
    precision: Option<usize>,
    conversion: char,
}

/// A parsed `log.format`.
#[derive(Clone, Debug, PartialEq)]
pub struct Format {
    pieces: Vec<Piece>,
}

/// Widths and precisions beyond this are refused (Python's limit is the
/// size of memory; a huge width in a log format is a typing mistake).
const MAX_WIDTH: usize = 1000;

impl Format {
    /// Read a format, checking each directive against the attributes a
    /// log record has and the type each holds.
    pub fn parse(format: &str) -> Result<Format, String> {
        let chars: Vec<char> = format.chars().collect();
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        let mut has_field = false;
        while i < chars.len() {
            if chars[i] != '%' {
                text.push(chars[i]);
                i += 1;
                continue;
            }
            let near: String = chars[i..].iter().take(16).collect();
            i += 1;
            let mut d = Directive::default();
            let mut name = None;
            if chars.get(i) == Some(&'(') {
                // The key runs to the matching ')', nested pairs included.
                let start = i + 1;
                let mut depth = 0;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("'{near}': the '%(' is not closed")),
                        Some('(') => depth += 1,
                        Some(')') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                name = Some(chars[start..i].iter().collect::<String>());
                i += 1;
            }
            while let Some(c) = chars.get(i) {
                match c {
                    '-' => d.left = true,
                    '+' => d.plus = true,
                    ' ' => d.space = true,
                    '0' => d.zero = true,
                    '#' => d.alternate = true,
                    _ => break,
                }
                i += 1;
            }
            let number = |i: &mut usize| -> Result<Option<usize>, String> {
                if chars.get(*i) == Some(&'*') {
                    return Err(format!("'{near}': '*' needs an argument list; a log format has none"));
                }
                let start = *i;
                while chars.get(*i).is_some_and(char::is_ascii_digit) {
                    *i += 1;
                }
                if start == *i {
                    return Ok(None);
                }
                let digits: String = chars[start..*i].iter().collect();
                match digits.parse::<usize>() {
                    Ok(n) if n <= MAX_WIDTH => Ok(Some(n)),
                    _ => Err(format!("'{near}': {digits} is more than the largest width or precision, {MAX_WIDTH}")),
                }
            };
            d.width = number(&mut i)?.unwrap_or(0);
            if chars.get(i) == Some(&'.') {
                i += 1;
                d.precision = Some(number(&mut i)?.unwrap_or(0));
            }
            if chars.get(i).is_some_and(|c| matches!(c, 'h' | 'l' | 'L')) {
                i += 1;
            }
            let Some(&conversion) = chars.get(i) else {
                return Err(format!("'{near}': the format ends inside a directive"));
            };
            i += 1;
            d.conversion = conversion;
            if conversion == '%' {
                text.push('%');
                continue;
            }
            if !"diouxXeEfFgGcrsa".contains(conversion) {
                return Err(format!("'{near}': unsupported format character '{conversion}'"));
            }
            let Some(name) = name else {
                return Err(format!("'{near}': each directive needs a record attribute, as in %(message)s"));
            };
            let Some(kind) = attribute_kind(&name) else {
                return Err(format!(
                    "'{near}': a log record has no attribute '{name}' (Python would fail on every line)"
                ));
            };
            check_conversion(&name, kind, conversion)?;
            has_field |= !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
            d.name = name;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Field(d));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if !has_field {
            // logging.Formatter's own check (PercentStyle.validate).
            return Err(format!("Invalid format '{format}' for '%' style"));
        }
        Ok(Format { pieces })
    }

    /// `%(message)s`.
    pub fn message_only() -> Format {
        let d = Directive { name: "message".into(), conversion: 's', ..Directive::default() };
        Format { pieces: vec![Piece::Field(d)] }
    }

    /// The record attributes the format names, in order (python-json-logger
    /// takes the JSON keys from them).
    pub fn fields(&self) -> Vec<&str> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Field(d) => Some(d.name.as_str()),
                Piece::Text(_) => None,
            })
            .collect()
    }

    /// Whether `%(asctime)` is used (logging's `usesTime`).
    pub fn uses(&self, name: &str) -> bool {
        self.fields().contains(&name)
    }

    /// `format % record`.
    pub fn render(&self, value: &dyn Fn(&str) -> PyValue) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(d) => out.push_str(&d.render(&value(&d.name))),
            }
        }
        out
    }
}

/// `logging.PercentStyle.validate`: some `%(word)<flags><width>.<precision><conversion>`.
pub fn has_valid_directive(format: &str) -> bool {
    let b = format.as_bytes();
    let mut i = 0;
    while let Some(p) = format[i..].find("%(") {
        let mut j = i + p + 2;
        let start = j;
        // \w+ (letters, digits, underscore; any Unicode letter counts).
        while j < b.len() {
            let c = format[j..].chars().next().unwrap_or(')');
            if c.is_alphanumeric() || c == '_' {
                j += c.len_utf8();
            } else {
                break;
            }
        }
        i = start;
        if j == start || b.get(j) != Some(&b')') {
            continue;
        }
        j += 1;
        while b.get(j).is_some_and(|c| b"#0+ -".contains(c)) {
            j += 1;
        }
        if b.get(j) == Some(&b'*') {
            j += 1;
        } else {
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
        }
        if b.get(j) == Some(&b'.') {
            let dot = j;
            j += 1;
            if b.get(j) == Some(&b'*') {
                j += 1;
            } else if b.get(j).is_some_and(u8::is_ascii_digit) {
                while b.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
            } else {
                j = dot;
            }
        }
        if b.get(j).is_some_and(|c| b"diouxefgcrsa%".contains(&c.to_ascii_lowercase())) {
            return true;
        }
    }
    false
}

/// Python's TypeErrors for a conversion applied to an attribute's type.
fn check_conversion(name: &str, kind: Kind, conversion: char) -> Result<(), String> {
    let type_name = kind.python_name();
    let numeric = matches!(kind, Kind::Int | Kind::Float);
    let refused = match conversion {
        'd' | 'i' | 'u' if !numeric => {
            Some(format!("%{conversion} format: a real number is required, not {type_name}"))
        }
        'o' | 'x' | 'X' if kind != Kind::Int => {
            Some(format!("%{conversion} format: an integer is required, not {type_name}"))
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' if !numeric => Some(format!("must be real number, not {type_name}")),
        'c' if kind != Kind::Int => Some("%c requires int or char".to_string()),
        _ => None,
    };
    match refused {
        Some(why) => Err(format!("'%({name}){conversion}': {name} is a {type_name}: {why}")),
        None => Ok(()),
    }
}

impl Directive {
    fn render(&self, value: &PyValue) -> String {
        match self.conversion {
            's' | 'r' | 'a' => {
                let text = match self.conversion {
                    's' => value.str(),
                    'r' => value.repr(false),
                    _ => value.repr(true),
                };
                let text = match self.precision {
                    Some(p) => text.chars().take(p).collect(),
                    None => text,
                };
                self.pad("", &text, false)
            }
            'c' => {
                let c = match value {
                    PyValue::Int(i) => u32::try_from(*i).ok().and_then(char::from_u32).unwrap_or('\u{fffd}'),
                    _ => '\u{fffd}',
                };
                self.pad("", &c.to_string(), false)
            }
            'd' | 'i' | 'u' | 'o' | 'x' | 'X' => {
                let n: i128 = match value {
                    PyValue::Int(i) => i128::from(*i),
                    PyValue::Float(f) if f.is_finite() => f.trunc() as i128,
                    _ => 0,
                };
                let (radix_prefix, digits) = match self.conversion {
                    'o' => ("0o", format!("{:o}", n.unsigned_abs())),
                    'x' => ("0x", format!("{:x}", n.unsigned_abs())),
                    'X' => ("0X", format!("{:X}", n.unsigned_abs())),
                    _ => ("", n.unsigned_abs().to_string()),
                };
                let digits = match self.precision {
                    Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
                    _ => digits,
                };
                let mut prefix = self.sign(n < 0).to_string();
                if self.alternate {
                    prefix.push_str(radix_prefix);
                }
                self.pad(&prefix, &digits, true)
            }
            _ => {
                let f = match value {
                    PyValue::Int(i) => *i as f64,
                    PyValue::Float(f) => *f,
                    _ => 0.0,
                };
                let body = format_float(f.abs(), self.conversion, self.precision.unwrap_or(6), self.alternate);
                let negative = f.is_sign_negative() && !f.is_nan();
                self.pad(self.sign(negative), &body, f.is_finite())
            }
        }
    }

    fn sign(&self, negative: bool) -> &'static str {
        if negative {
            "-"
        } else if self.plus {
            "+"
        } else if self.space {
            " "
        } else {
            ""
        }
    }

    /// Pad to the width: left-aligned with spaces, or zeros after the sign
    /// for numbers with the `0` flag, or spaces before.
    fn pad(&self, prefix: &str, body: &str, number: bool) -> String {
        let len = prefix.chars().count() + body.chars().count();
        let fill = self.width.saturating_sub(len);
        if self.left {
            format!("{prefix}{body}{}", " ".repeat(fill))
        } else if self.zero && number {
            format!("{prefix}{}{body}", "0".repeat(fill))
        } else {
            format!("{}{prefix}{body}", " ".repeat(fill))
        }
    }
}

/// `%e`, `%f`, `%g` (and capitals) of a non-negative float, as C's printf.
fn format_float(f: f64, conversion: char, precision: usize, alternate: bool) -> String {
    let upper = conversion.is_ascii_uppercase();
    if !f.is_finite() {
        let s = if f.is_nan() { "nan" } else { "inf" };
        return if upper { s.to_uppercase() } else { s.to_string() };
    }
    let out = match conversion.to_ascii_lowercase() {
        'f' => {
            let s = format!("{f:.precision$}");
            if alternate && precision == 0 {
                s + "."
            } else {
                s
            }
        }
        'e' => exponent_form(f, precision, alternate),
        _ => {
            let p = precision.max(1);
            // The exponent %e would show with p significant digits.
            let e = exponent_form(f, p - 1, false);
            let exp: i32 = e.rsplit_once('e').and_then(|(_, x)| x.parse().ok()).unwrap_or(0);
            let mut s = if exp >= -4 && exp < p as i32 {
                let decimals = usize::try_from(p as i32 - 1 - exp).unwrap_or(0);
                format!("{f:.decimals$}")
            } else {
                exponent_form(f, p - 1, alternate)
            };
            if !alternate {
                s = strip_zeros(&s);
            } else if !s.contains('.') {
                // '#' keeps the point (and the zeros).
                match s.find('e') {
                    Some(i) => s.insert(i, '.'),
                    None => s.push('.'),
                }
            }
            s
        }
    };
    if upper {
        out.to_uppercase()
    } else {
        out
    }
}

/// `d.ddde+XX` with `precision` decimals.
fn exponent_form(f: f64, precision: usize, alternate: bool) -> String {
    let s = format!("{f:.precision$e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let point = if alternate && precision == 0 { "." } else { "" };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}{point}e{sign}{:02}", exp.unsigned_abs())
}

/// `%g` drops trailing zeros (and a trailing point) of the mantissa.
fn strip_zeros(s: &str) -> String {
    let (mantissa, exp) = match s.find('e') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let mantissa = if mantissa.contains('.') { mantissa.trim_end_matches('0').trim_end_matches('.') } else { mantissa };
    format!("{mantissa}{exp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case was checked with Python 3.11: `fmt % (value,)`.
    #[test]
    fn conversions_as_python_prints_them() {
        let cases: Vec<(&str, PyValue, &str)> = vec![
            ("%(lineno)08.3d", PyValue::Int(5), "00000005"),
            ("%(lineno)-8.3d|", PyValue::Int(-5), "-005    |"),
            ("%(lineno)+05d", PyValue::Int(5), "+0005"),
            ("%(lineno) d", PyValue::Int(5), " 5"),
            ("%(lineno)#o", PyValue::Int(8), "0o10"),
            ("%(lineno)#08x", PyValue::Int(255), "0x0000ff"),
            ("%(levelname)05s", PyValue::Str("ab".into()), "   ab"),
            ("%(levelname).2s", PyValue::Str("abc".into()), "ab"),
            ("%(created)#.0f", PyValue::Float(3.0), "3."),
            ("%(created)#g", PyValue::Float(3.0), "3.00000"),
            ("%(created)g", PyValue::Float(1733500000.123), "1.7335e+09"),
            ("%(created)e", PyValue::Float(0.0), "0.000000e+00"),
            ("%(created)G", PyValue::Float(1e-10), "1E-10"),
            ("%(lineno).0e", PyValue::Int(12345), "1e+04"),
            ("%(created)010.2f", PyValue::Float(-3.25159), "-000003.25"),
            ("%(message)r", PyValue::Str("it's".into()), "\"it's\""),
            ("%(message)a", PyValue::Str("é\n".into()), "'\\xe9\\n'"),
            ("%(lineno)c", PyValue::Int(65), "A"),
            ("%(lineno)5c|", PyValue::Int(66), "    B|"),
            ("%(message).3r", PyValue::Str("abcdef".into()), "'ab"),
            ("%(created)d", PyValue::Float(1.9), "1"),
            ("%(created)d", PyValue::Float(-1.9), "-1"),
            ("%(created)s", PyValue::Float(123.0), "123.0"),
            ("%(created)s", PyValue::Float(1e16), "1e+16"),
            ("%(created)s", PyValue::Float(1.5e-5), "1.5e-05"),
            ("%(lineno)x", PyValue::Int(-255), "-ff"),
            ("%(lineno)#X", PyValue::Int(255), "0XFF"),
            ("%(lineno)-5x|", PyValue::Int(10), "a    |"),
            ("%(message)05.1s|", PyValue::Str("abc".into()), "    a|"),
            ("%(message)+s", PyValue::Str("a".into()), "a"),
            ("%(created)+.3e", PyValue::Float(12345.678), "+1.235e+04"),
            ("%(lineno)g", PyValue::Int(100000), "100000"),
            ("%(lineno)g", PyValue::Int(1000000), "1e+06"),
            ("%(created)g", PyValue::Float(0.0001), "0.0001"),
            ("%(created)g", PyValue::Float(0.00001), "1e-05"),
            ("%(created).3g", PyValue::Float(0.0001234), "0.000123"),
            ("%(lineno)#.3g", PyValue::Int(1), "1.00"),
            ("%(lineno)0-5d|", PyValue::Int(3), "3    |"),
            ("%(lineno)#5x", PyValue::Int(0), "  0x0"),
            ("%(lineno)#o", PyValue::Int(0), "0o0"),
            ("%(lineno).0d", PyValue::Int(0), "0"),
            ("%(created)+.0f", PyValue::Float(0.5), "+0"),
            ("%(created).0f", PyValue::Float(1.5), "2"),
            ("%(created).0f", PyValue::Float(2.5), "2"),
            ("%(created)f", PyValue::Float(1733500000.1234567), "1733500000.123457"),
            ("%(exc_info).3s", PyValue::None, "Non"),
            ("%(args)5s|", PyValue::EmptyTuple, "   ()|"),
            ("%(exc_info)r", PyValue::None, "None"),
            ("%(message)r", PyValue::Str("a\"b".into()), "'a\"b'"),
            ("%(message)r", PyValue::Str("a'b\"".into()), "'a\\'b\"'"),
            ("%(message)r", PyValue::Str("\x7f\x00é\u{200b}".into()), "'\\x7f\\x00é\\u200b'"),
            ("%(message)a", PyValue::Str("\u{1F600}".into()), "'\\U0001f600'"),
            ("%(lineno)i", PyValue::Int(42), "42"),
            ("%(lineno)u", PyValue::Int(42), "42"),
            ("%(created).10g", PyValue::Float(1733500000.123), "1733500000"),
            ("%(created)5.1f", PyValue::Float(-0.04), " -0.0"),
            ("%(created)F", PyValue::Float(1.5), "1.500000"),
            ("%(created)E", PyValue::Float(1234.5), "1.234500E+03"),
            ("%(lineno)ld", PyValue::Int(3), "3"),
            ("%(levelname)-8s|%%|", PyValue::Str("INFO".into()), "INFO    |%|"),
        ];
        for (format, value, want) in cases {
            let f = Format::parse(format).unwrap_or_else(|e| panic!("{format}: {e}"));
            assert_eq!(f.render(&|_| value.clone()), want, "{format} % {value:?}");
        }
    }

    #[test]
    fn formats_python_would_fail_on_are_refused() {
        let cases = [
            ("%(message", "not closed"),
            ("%(message)", "ends inside a directive"),
            ("%(message)q", "unsupported format character 'q'"),
            ("%(message)s %d", "needs a record attribute"),
            ("%s", "needs a record attribute"),
            ("%(nosuch)s", "no attribute 'nosuch'"),
            ("%(levelname)d", "levelname is a str: %d format: a real number is required, not str"),
            ("%(created)x", "created is a float: %x format: an integer is required, not float"),
            ("%(message)f", "must be real number, not str"),
            ("%(message)c", "%c requires int or char"),
            ("%(message)*s", "'*' needs an argument list"),
            ("%(message)99999s", "largest width"),
            ("no fields at all", "Invalid format 'no fields at all' for '%' style"),
            ("100%%", "Invalid format"),
        ];
        for (format, want) in cases {
            match Format::parse(format) {
                Ok(f) => panic!("{format} was accepted: {f:?}"),
                Err(e) => assert!(e.contains(want), "{format}: {e}"),
            }
        }
    }

    #[test]
    fn logging_validation_pattern() {
        let cases = [
            ("%(message)s", true),
            ("%(asctime)-8.3f", true),
            ("%(message)S", true),
            ("%(message)", false),
            ("%(mess age)s", false),
            ("%(message).s", false),
            ("%(message)ls", false),
            ("%(a)q %(b)d", true),
            ("%(é)r", true),
            ("plain text", false),
        ];
        for (format, want) in cases {
            assert_eq!(has_valid_directive(format), want, "{format}");
        }
    }

    #[test]
    fn fields_in_order() {
        let f = Format::parse("%(asctime)s %(levelname)-8s [%(pathname)s:%(lineno)d] %(message)s").unwrap();
        assert_eq!(f.fields(), ["asctime", "levelname", "pathname", "lineno", "message"]);
        assert!(f.uses("asctime") && !f.uses("msecs"));
    }
}
