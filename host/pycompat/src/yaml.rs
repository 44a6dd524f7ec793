//! PyYAML's implicit resolvers (YAML 1.1, `yaml/resolver.py`) and the
//! constructors `safe_load` applies to what they find.
//!
//! A plain scalar is a boolean only in the spellings `yes/no/true/false/
//! on/off` in lower, Capitalised or UPPER case (`y`, `yEs` stay strings);
//! an integer may be binary (`0b1`), octal (`0755`), hexadecimal (`0x1f`),
//! have underscores (`1_000`) or be sexagesimal (`1:30` = 90); a float
//! needs a dot (`1.5`, `1.0e+5`, `.5`; `1e5` is a string); `~`, `null` and
//! the empty scalar are null. As with Python's `re.match` and `$`, a
//! scalar may carry one final line break after what the rule matches.

/// What a plain scalar resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    Bool,
    Int,
    Float,
    Null,
    Timestamp,
    Merge,
    Value,
    /// `!`, `&` or `*` alone (PyYAML registers it for documentation; a
    /// parser never hands these over as plain scalars, but the emitter
    /// must quote them).
    Yaml,
    Str,
}

impl Tag {
    /// The tag's name as PyYAML spells it (`tag:yaml.org,2002:bool`).
    pub fn name(self) -> &'static str {
        match self {
            Tag::Bool => "tag:yaml.org,2002:bool",
            Tag::Int => "tag:yaml.org,2002:int",
            Tag::Float => "tag:yaml.org,2002:float",
            Tag::Null => "tag:yaml.org,2002:null",
            Tag::Timestamp => "tag:yaml.org,2002:timestamp",
            Tag::Merge => "tag:yaml.org,2002:merge",
            Tag::Value => "tag:yaml.org,2002:value",
            Tag::Yaml => "tag:yaml.org,2002:yaml",
            Tag::Str => "tag:yaml.org,2002:str",
        }
    }
}

/// PyYAML's `Resolver.resolve` for a plain scalar: the resolvers
/// registered for its first character, in PyYAML's order.
pub fn resolve(s: &str) -> Tag {
    let first = s.chars().next();
    let starts = |set: &str| first.is_some_and(|c| set.contains(c));
    // `$` in Python's re also matches before a final "\n".
    let full = |f: fn(&str) -> bool| f(s) || s.strip_suffix('\n').is_some_and(f);
    if starts("yYnNtTfFoO") && full(is_bool) {
        Tag::Bool
    } else if starts("-+0123456789.") && full(is_float) {
        Tag::Float
    } else if starts("-+0123456789") && full(is_int) {
        Tag::Int
    } else if starts("<") && full(|t| t == "<<") {
        Tag::Merge
    } else if (s.is_empty() || starts("~nN")) && full(|t| matches!(t, "" | "~" | "null" | "Null" | "NULL")) {
        Tag::Null
    } else if starts("0123456789") && full(is_timestamp) {
        Tag::Timestamp
    } else if starts("=") && full(|t| t == "=") {
        Tag::Value
    } else if starts("!&*") && full(|t| matches!(t, "!" | "&" | "*")) {
        Tag::Yaml
    } else {
        Tag::Str
    }
}

/// PyYAML's `construct_yaml_bool`: `yes/true/on` and `no/false/off` in any
/// case (an explicit `!!bool` tag reaches it with any case).
pub fn construct_bool(text: &str) -> Option<bool> {
    match text.to_lowercase().as_str() {
        "yes" | "true" | "on" => Some(true),
        "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// PyYAML's `construct_yaml_int` (underscores dropped; `0b`, `0x`, a
/// leading `0` for octal, `:` for base 60). `None` when the text is not
/// such an integer or its value does not fit `i128`.
pub fn construct_int(text: &str) -> Option<i128> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, body) = split_sign(&cleaned);
    let digits = |s: &str, radix: u32| -> Option<i128> {
        (!s.is_empty() && s.chars().all(|c| c.is_digit(radix))).then_some(())?;
        i128::from_str_radix(s, radix).ok()
    };
    let magnitude = if body == "0" {
        0
    } else if let Some(bin) = body.strip_prefix("0b") {
        digits(bin, 2)?
    } else if let Some(hex) = body.strip_prefix("0x") {
        digits(hex, 16)?
    } else if body.starts_with('0') {
        digits(body, 8)?
    } else if body.contains(':') {
        let mut value: i128 = 0;
        let mut base: i128 = 1;
        for part in body.split(':').rev() {
            value = value.checked_add(digits(part, 10)?.checked_mul(base)?)?;
            base = base.checked_mul(60)?;
        }
        value
    } else {
        digits(body, 10)?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// PyYAML's `construct_yaml_float` (underscores dropped, `.inf`, `.nan`,
/// `:` for base 60). `None` when the text is not such a float.
pub fn construct_float(text: &str) -> Option<f64> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect::<String>().to_lowercase();
    let (negative, body) = split_sign(&cleaned);
    let float = |s: &str| -> Option<f64> {
        let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'-' | b'+'));
        ok.then(|| s.parse::<f64>().ok()).flatten()
    };
    let magnitude = if body == ".inf" {
        f64::INFINITY
    } else if body == ".nan" {
        f64::NAN
    } else if body.contains(':') {
        let mut value = 0.0;
        let mut base = 1.0;
        for part in body.split(':').rev() {
            value += float(part)? * base;
            base *= 60.0;
        }
        value
    } else {
        float(body)?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// A tiny cursor for the resolvers' regular expressions (ASCII classes).
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn new(t: &'a str) -> Self {
        Self { b: t.as_bytes(), i: 0 }
    }
    fn sign(&mut self) {
        if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let ok = self.b.get(self.i) == Some(&c);
        self.i += usize::from(ok);
        ok
    }
    fn eat_any(&mut self, words: &[&str]) -> bool {
        for w in words {
            if self.b[self.i..].starts_with(w.as_bytes()) {
                self.i += w.len();
                return true;
            }
        }
        false
    }
    fn many(&mut self, f: impl Fn(u8) -> bool) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(|c| f(*c)) {
            self.i += 1;
        }
        self.i - start
    }
    /// Between `min` and `max` characters accepted by `f`.
    fn count(&mut self, min: usize, max: usize, f: impl Fn(u8) -> bool) -> bool {
        let start = self.i;
        while self.i - start < max && self.b.get(self.i).is_some_and(|c| f(*c)) {
            self.i += 1;
        }
        self.i - start >= min
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
    /// `(?::[0-5]?[0-9])+` (taking two digits when it can never loses a
    /// match: what may follow is `:`, `.` or the end).
    fn sexagesimal_tail(&mut self) -> bool {
        let mut groups = 0;
        while self.b.get(self.i) == Some(&b':') && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
            let first = self.b[self.i + 1];
            self.i += 2;
            if (b'0'..=b'5').contains(&first) && self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            groups += 1;
        }
        groups > 0
    }
    /// `(?:[eE][-+][0-9]+)?`
    fn opt_exponent(&mut self) {
        let save = self.i;
        if !(self.eat_any(&["e", "E"]) && self.eat_any(&["+", "-"]) && self.many(|c| c.is_ascii_digit()) > 0) {
            self.i = save;
        }
    }
}

fn digit_(c: u8) -> bool {
    c.is_ascii_digit() || c == b'_'
}

fn any_alt(t: &str, alts: &[&dyn Fn(&mut Cur<'_>) -> bool]) -> bool {
    alts.iter().any(|alt| {
        let mut c = Cur::new(t);
        alt(&mut c) && c.done()
    })
}

fn is_bool(t: &str) -> bool {
    matches!(
        t,
        "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn is_float(t: &str) -> bool {
    any_alt(
        t,
        &[
            // [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?
            &|c| {
                c.sign();
                c.count(1, 1, |x| x.is_ascii_digit())
                    && {
                        c.many(digit_);
                        c.eat(b'.')
                    }
                    && {
                        c.many(digit_);
                        c.opt_exponent();
                        true
                    }
            },
            // \.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
            &|c| {
                c.eat(b'.') && c.count(1, 1, |x| x.is_ascii_digit()) && {
                    c.many(digit_);
                    c.opt_exponent();
                    true
                }
            },
            // [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
            &|c| {
                c.sign();
                c.count(1, 1, |x| x.is_ascii_digit())
                    && {
                        c.many(digit_);
                        c.sexagesimal_tail()
                    }
                    && c.eat(b'.')
                    && {
                        c.many(digit_);
                        true
                    }
            },
            &|c| {
                c.sign();
                c.eat(b'.') && c.eat_any(&["inf", "Inf", "INF"])
            },
            &|c| c.eat(b'.') && c.eat_any(&["nan", "NaN", "NAN"]),
        ],
    )
}

fn is_int(t: &str) -> bool {
    any_alt(
        t,
        &[
            &|c| {
                c.sign();
                c.eat_any(&["0b"]) && c.many(|x| matches!(x, b'0' | b'1' | b'_')) > 0
            },
            &|c| {
                c.sign();
                c.eat(b'0') && c.many(|x| (b'0'..=b'7').contains(&x) || x == b'_') > 0
            },
            &|c| {
                c.sign();
                c.eat(b'0')
                    || (c.count(1, 1, |x| (b'1'..=b'9').contains(&x)) && {
                        c.many(digit_);
                        true
                    })
            },
            &|c| {
                c.sign();
                c.eat_any(&["0x"]) && c.many(|x| x.is_ascii_hexdigit() || x == b'_') > 0
            },
            &|c| {
                c.sign();
                c.count(1, 1, |x| (b'1'..=b'9').contains(&x)) && {
                    c.many(digit_);
                    c.sexagesimal_tail()
                }
            },
        ],
    )
}

fn is_timestamp(t: &str) -> bool {
    let digit = |x: u8| x.is_ascii_digit();
    let blank = |x: u8| x == b' ' || x == b'\t';
    any_alt(
        t,
        &[
            // YYYY-MM-DD
            &|c| c.count(4, 4, digit) && c.eat(b'-') && c.count(2, 2, digit) && c.eat(b'-') && c.count(2, 2, digit),
            // YYYY-M[M]-D[D](T|t|[ \t]+)H[H]:MM:SS(.frac)?([ \t]*(Z|[-+]H[H](:MM)?))?
            &|c| {
                let date =
                    c.count(4, 4, digit) && c.eat(b'-') && c.count(1, 2, digit) && c.eat(b'-') && c.count(1, 2, digit);
                let sep = date && (c.eat_any(&["T", "t"]) || c.many(blank) > 0);
                let time = sep
                    && c.count(1, 2, digit)
                    && c.eat(b':')
                    && c.count(2, 2, digit)
                    && c.eat(b':')
                    && c.count(2, 2, digit);
                if !time {
                    return false;
                }
                if c.eat(b'.') {
                    c.many(digit);
                }
                // The zone is optional: keep what matched when it fails.
                let save = c.i;
                c.many(blank);
                let zone = c.eat(b'Z')
                    || (c.eat_any(&["+", "-"]) && c.count(1, 2, digit) && {
                        let before = c.i;
                        if !(c.eat(b':') && c.count(2, 2, digit)) {
                            c.i = before;
                        }
                        true
                    });
                if !zone {
                    c.i = save;
                }
                true
            },
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_as_pyyaml() {
        let cases: &[(&str, Tag)] = &[
            ("yes", Tag::Bool),
            ("OFF", Tag::Bool),
            ("yEs", Tag::Str),
            ("y", Tag::Str),
            ("0755", Tag::Int),
            ("0x1f", Tag::Int),
            ("0b101", Tag::Int),
            ("1_000", Tag::Int),
            ("1:30", Tag::Int),
            ("08", Tag::Str),
            ("1.5", Tag::Float),
            ("1.", Tag::Float),
            (".5", Tag::Float),
            ("1e5", Tag::Str),
            ("1:30.5", Tag::Float),
            ("-.inf", Tag::Float),
            ("", Tag::Null),
            ("~", Tag::Null),
            ("nil", Tag::Str),
            ("2024-01-31", Tag::Timestamp),
            ("2024-1-3 1:02:03.5 +01:00", Tag::Timestamp),
            ("2024-1-3t1:02:03Z", Tag::Timestamp),
            ("2024-1-3 1:02:03 +1:0", Tag::Str),
            ("127.0.0.1:8008", Tag::Str),
            ("<<", Tag::Merge),
            ("=", Tag::Value),
            ("1\n", Tag::Int),
            ("on\n\n", Tag::Str),
        ];
        for (text, tag) in cases {
            assert_eq!(resolve(text), *tag, "{text:?}");
        }
    }

    #[test]
    fn constructs_as_pyyaml() {
        assert_eq!(construct_int("0755"), Some(493));
        assert_eq!(construct_int("-0x1_f"), Some(-31));
        assert_eq!(construct_int("1:30"), Some(90));
        assert_eq!(construct_int("0b"), None);
        assert_eq!(construct_float("1:30.5"), Some(90.5));
        assert_eq!(construct_float("-.INF"), Some(f64::NEG_INFINITY));
        assert_eq!(construct_float("1_0.5e+1"), Some(105.0));
        assert_eq!(construct_bool("ON"), Some(true));
    }
}
