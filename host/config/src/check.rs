//! Typed reading of the JSON configuration with every problem collected.
//!
//! The builders read each setting through a [`Checker`], which records a
//! [`ConfigError`] (with the dotted key path) for each value of the wrong
//! type or out of range and carries on, so one run reports every problem.
//!
//! Types follow Patroni's `validator.py`, but never more strictly than
//! Patroni's runtime reads the value (it does not run the validator at
//! start): integers may be written as strings Patroni's `parse_int` reads
//! (`"5432"`, `"0x10"`, and `"30min"` where a unit makes sense); a number
//! where a string is expected (`password: 1234`) is taken as its text with
//! a warning; a boolean Patroni reads with Python's `bool()` takes any
//! value with that meaning (warned when it is not a boolean), one read
//! with `parse_bool` takes what `parse_bool` reads. `tests/leniency.rs`
//! is the table of these rules, key by key.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use crate::types::{ConfigError, ConfigWarning, HostPort};
use palisade_pycompat::py::truthy;

use crate::values::{describe, parse_bool, parse_int, split_host_port};

#[derive(Default)]
pub(crate) struct Checker {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

/// One mapping of the configuration and its key path. `map` is `None` when
/// the section is absent or was not a mapping (already reported).
#[derive(Clone)]
pub(crate) struct Sec<'a> {
    pub map: Option<&'a Map<String, Value>>,
    pub prefix: String,
}

impl<'a> Sec<'a> {
    pub fn root(map: &'a Map<String, Value>) -> Self {
        Self { map: Some(map), prefix: String::new() }
    }

    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// The value of `key`; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn present(&self) -> bool {
        self.map.is_some()
    }
}

impl Checker {
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError { path: printable(path.into()), message: message.into() });
    }

    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigWarning { path: printable(path.into()), message: message.into() });
    }

    pub fn expected(&mut self, path: impl Into<String>, what: &str, found: &Value) {
        self.error(path, format!("expected {what}, found {}", describe(found)));
    }

    pub fn missing(&mut self, path: impl Into<String>) {
        self.error(path, "is required but not set");
    }

    /// A nested mapping. A wrong type is an error; `required` makes absence one.
    pub fn section<'a>(&mut self, parent: &Sec<'a>, key: &str, required: bool) -> Sec<'a> {
        let path = parent.path(key);
        let map = match parent.get(key) {
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.expected(&path, "a mapping", other);
                None
            }
            None => {
                if required && parent.present() {
                    self.missing(&path);
                }
                None
            }
        };
        Sec { map, prefix: path }
    }

    pub fn string(&mut self, sec: &Sec, key: &str) -> Option<String> {
        let value = sec.get(key)?;
        self.string_value(value, &sec.path(key))
    }

    pub fn string_value(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => {
                self.warn(
                    path,
                    format!("expected a string, found the number {n}; using \"{n}\" (quote it to be sure)"),
                );
                Some(n.to_string())
            }
            other => {
                self.expected(path, "a string", other);
                None
            }
        }
    }

    pub fn req_string(&mut self, sec: &Sec, key: &str) -> Option<String> {
        if !sec.has(key) {
            if sec.present() {
                self.missing(sec.path(key));
            }
            return None;
        }
        let s = self.string(sec, key)?;
        if s.is_empty() {
            self.error(sec.path(key), "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A boolean setting Patroni reads with Python's `bool()` (most of
    /// them: tags, `use_unix_socket`, `ctl.insecure`...). Any value is
    /// accepted with that meaning; a value that is not a boolean gets a
    /// warning, a loud one when `bool()` and the spelling disagree (the
    /// string `'false'` is true).
    pub fn boolean(&mut self, sec: &Sec, key: &str) -> Option<bool> {
        let value = sec.get(key)?;
        let truth = truthy(value);
        if let Value::Bool(b) = value {
            return Some(*b);
        }
        let message = match (value, parse_bool(value)) {
            (Value::String(s), Some(spelled)) if spelled != truth => format!(
                "the string '{s}' is {truth}: Patroni reads this setting with Python's bool(), for which any \
                 non-empty string is true; write {spelled} without quotes to mean {spelled}"
            ),
            (Value::String(s), Some(_)) => format!("expected a boolean, found the string '{s}'; read as {truth}"),
            _ => format!("expected a boolean, found {}; read as {truth}, as Python's bool() reads it", describe(value)),
        };
        self.warn(sec.path(key), message);
        Some(truth)
    }

    /// A boolean setting Patroni reads with its `parse_bool` (`on`, `yes`,
    /// `1`...; `tags.nostream`, `consul.verify`). A value it cannot read is
    /// ignored with a warning, as Patroni ignores it.
    pub fn parse_bool(&mut self, sec: &Sec, key: &str) -> Option<bool> {
        let value = sec.get(key)?;
        match (value, parse_bool(value)) {
            (Value::Bool(b), _) => Some(*b),
            (_, Some(b)) => {
                self.warn(sec.path(key), format!("expected a boolean, found {}; read as {b}", describe(value)));
                Some(b)
            }
            (_, None) => {
                self.warn(sec.path(key), format!("ignored: {} is not a boolean", describe(value)));
                None
            }
        }
    }

    /// An integer (or a string Patroni's `parse_int` reads, with `unit` as
    /// the base unit), within `range`.
    pub fn int(&mut self, sec: &Sec, key: &str, range: RangeInclusive<i64>, unit: Option<&str>) -> Option<i64> {
        let value = sec.get(key)?;
        self.int_value(value, &sec.path(key), range, unit)
    }

    pub fn int_value(
        &mut self,
        value: &Value,
        path: &str,
        range: RangeInclusive<i64>,
        unit: Option<&str>,
    ) -> Option<i64> {
        match parse_int(value, unit) {
            Some(i) if range.contains(&i) => Some(i),
            Some(i) => {
                self.error(path, format!("{i} is out of range {}", show_range(&range)));
                None
            }
            None => {
                self.expected(path, "an integer", value);
                None
            }
        }
    }

    pub fn strings(&mut self, sec: &Sec, key: &str) -> Option<Vec<String>> {
        let path = sec.path(key);
        match sec.get(key)? {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.string_value(item, &format!("{path}.{i}")) {
                        out.push(s);
                    }
                }
                Some(out)
            }
            other => {
                self.expected(&path, "a list of strings", other);
                None
            }
        }
    }

    pub fn mapping<'a>(&mut self, sec: &Sec<'a>, key: &str) -> Option<&'a Map<String, Value>> {
        match sec.get(key)? {
            Value::Object(m) => Some(m),
            other => {
                self.expected(sec.path(key), "a mapping", other);
                None
            }
        }
    }

    /// One of `allowed` (exact spelling unless `any_case`).
    pub fn one_of(&mut self, sec: &Sec, key: &str, allowed: &[&str], any_case: bool) -> Option<String> {
        let value = sec.get(key)?;
        let path = sec.path(key);
        let Value::String(s) = value else {
            self.expected(&path, &format!("one of {}", allowed.join(", ")), value);
            return None;
        };
        let ok = allowed.iter().any(|a| if any_case { a.eq_ignore_ascii_case(s) } else { a == s });
        if ok {
            Some(s.clone())
        } else {
            self.expected(&path, &format!("one of {}", allowed.join(", ")), value);
            None
        }
    }

    /// `host:port` (or `host1,host2:port` when `multiple`).
    pub fn host_port(&mut self, sec: &Sec, key: &str, default_port: Option<u16>, multiple: bool) -> Option<HostPort> {
        let path = sec.path(key);
        let text = self.string(sec, key)?;
        self.host_port_text(&text, &path, default_port, multiple)
    }

    pub fn host_port_text(
        &mut self,
        text: &str,
        path: &str,
        default_port: Option<u16>,
        multiple: bool,
    ) -> Option<HostPort> {
        match split_host_port(text, default_port) {
            Ok((hosts, _)) if !multiple && hosts.len() > 1 => {
                self.error(path, format!("expected a single host:port, found several hosts in '{text}'"));
                None
            }
            Ok((hosts, _)) if hosts.len() > 1 && hosts.iter().any(|h| h == "*") => {
                self.error(path, format!("'*' must be alone, found '{text}'"));
                None
            }
            Ok((hosts, port)) => Some(HostPort { hosts, port }),
            Err(e) => {
                self.error(path, format!("expected host:port, found '{text}': {e}"));
                None
            }
        }
    }

    /// An address other members connect to: `0.0.0.0`, `*` or `::` cannot be.
    pub fn connect_address(&mut self, sec: &Sec, key: &str, default_port: Option<u16>) -> Option<HostPort> {
        let hp = self.host_port(sec, key, default_port, false)?;
        if matches!(hp.host(), "0.0.0.0" | "*" | "::") {
            self.error(
                sec.path(key),
                format!("'{}' is a wildcard address that other members cannot connect to", hp.host()),
            );
            return None;
        }
        Some(hp)
    }
}

fn show_range(r: &RangeInclusive<i64>) -> String {
    match (*r.start(), *r.end()) {
        (i64::MIN, e) => format!("(at most {e})"),
        (s, i64::MAX) => format!("(at least {s})"),
        (s, e) => format!("{s}..{e}"),
    }
}

/// A key path as shown to the user: control characters in a key (a NUL, a
/// newline, an escape sequence) are written escaped (`\u{0}`, `\n`,
/// `\u{1b}`), so that a message cannot hide or rewrite what it names.
fn printable(path: String) -> String {
    if !path.chars().any(char::is_control) {
        return path;
    }
    path.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root(v: &Value) -> &Map<String, Value> {
        v.as_object().expect("object")
    }

    #[test]
    fn type_errors_name_path_and_found_value() {
        let v = json!({"s": {"n": "abc", "b": "yes", "l": "x", "e": "Info", "hp": "h:xx", "w": "0.0.0.0:1"}});
        let mut ck = Checker::default();
        let top = Sec::root(root(&v));
        let s = ck.section(&top, "s", true);
        assert_eq!(ck.int(&s, "n", 0..=10, None), None);
        assert_eq!(ck.boolean(&s, "b"), Some(true), "a warning, not an error");
        assert_eq!(ck.strings(&s, "l"), None);
        assert_eq!(ck.one_of(&s, "e", &["INFO", "DEBUG"], false), None);
        assert_eq!(ck.host_port(&s, "hp", None, false), None);
        assert_eq!(ck.connect_address(&s, "w", None), None);
        assert_eq!(ck.req_string(&s, "absent"), None);
        let got: Vec<String> = ck.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "s.n: expected an integer, found a string 'abc'",
                "s.l: expected a list of strings, found a string 'x'",
                "s.e: expected one of INFO, DEBUG, found a string 'Info'",
                "s.hp: expected host:port, found 'h:xx': 'xx' is not a port number",
                "s.w: '0.0.0.0' is a wildcard address that other members cannot connect to",
                "s.absent: is required but not set",
            ]
        );
    }

    #[test]
    fn lenient_numbers() {
        let v = json!({"i": "42", "u": "30min", "r": 99, "p": 1234});
        let mut ck = Checker::default();
        let top = Sec::root(root(&v));
        assert_eq!(ck.int(&top, "i", 0..=100, None), Some(42));
        assert_eq!(ck.int(&top, "u", 0..=i64::MAX, Some("s")), Some(1800));
        assert_eq!(ck.int(&top, "r", 0..=10, None), None);
        assert_eq!(ck.string(&top, "p"), Some("1234".into()));
        assert_eq!(ck.errors.len(), 1);
        assert_eq!(ck.errors[0].message, "99 is out of range 0..10");
        assert_eq!(ck.warnings.len(), 1);
    }

    #[test]
    fn control_characters_in_a_path_are_escaped() {
        let mut ck = Checker::default();
        ck.warn("postgresql.\0x\n", "m");
        ck.error("a\u{1b}[2J", "m");
        assert_eq!(ck.warnings[0].path, "postgresql.\\u{0}x\\n");
        assert_eq!(ck.errors[0].path, "a\\u{1b}[2J");
    }
}
