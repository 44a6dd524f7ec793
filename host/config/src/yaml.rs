//! YAML to JSON, reading scalars as PyYAML's `safe_load` does.
//!
//! Patroni reads its file with PyYAML (YAML 1.1). serde-saphyr's untyped
//! path (`from_str::<serde_json::Value>`) reads YAML 1.2-ish scalars: it
//! takes `y`, `n` and `oN` for booleans, `1e5` for a float and `0600` for
//! decimal 600, and a `serde_json::Value` cannot tell a quoted `'yes'` from
//! a plain `yes`. So we walk the events of serde-saphyr's own parser
//! (`serde_saphyr::granit_parser`), which carry each scalar's style and tag,
//! and resolve plain scalars with PyYAML's rules:
//!
//! - booleans: `yes/no/true/false/on/off` in lower, Capitalised or UPPER
//!   case only (`yEs` and `y` stay strings, as in PyYAML);
//! - integers: `0b101`, `0o`-less octal `0755`, `0x1f`, `1_000`,
//!   sexagesimal `1:30` (= 90);
//! - floats need a dot (`1.5`, `1.0e+5`, `.5`, `.inf`, `.nan`); `1e5` is a string;
//! - `~`, `null`, `Null`, `NULL` and the empty scalar are null;
//! - timestamps stay strings (JSON has no dates);
//! - merge keys (`<<`) merge as PyYAML does; anchors and aliases are copied.
//!
//! Quoted and block scalars are always strings. Only one document is
//! accepted, as `safe_load` does.

use palisade_pycompat::yaml::{self, Tag as Implicit};
use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Tag};

/// Upper bound on nodes produced, so that alias expansion ("billion laughs")
/// cannot exhaust memory.
const MAX_NODES: usize = 2_000_000;

/// Upper bound on nesting, so that dropping or walking a value cannot
/// overflow the stack, and so that anything loaded can be written as JSON
/// (the DCS `config` key, `patroni.dynamic.json`) and read back: serde_json
/// refuses more than 128 levels.
const MAX_DEPTH: usize = 100;

/// Parses one YAML document. An empty document is `Value::Null`.
pub fn parse(text: &str) -> Result<Value, String> {
    Composer::default().run(text)
}

enum Key {
    Merge,
    Plain(String),
}

enum Frame {
    Seq { items: Vec<Value>, anchor: usize },
    Map { pairs: Vec<(Key, Value)>, pending: Option<Key>, anchor: usize },
}

#[derive(Default)]
struct Composer {
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Value>,
    root: Option<Value>,
    documents: usize,
    nodes: usize,
}

fn core_suffix(tag: &Tag) -> Option<&str> {
    (tag.handle() == "tag:yaml.org,2002:").then(|| tag.suffix())
}

fn count_nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count_nodes).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

impl Composer {
    fn run(mut self, text: &str) -> Result<Value, String> {
        for item in Parser::new_from_str(text) {
            let (event, span) = item.map_err(|e| e.to_string())?;
            let at = || format!("line {} column {}", span.start.line(), span.start.col() + 1);
            match event {
                Event::DocumentStart(..) => {
                    self.documents += 1;
                    if self.documents > 1 {
                        return Err(format!("expected a single document in the stream, found another at {}", at()));
                    }
                }
                Event::Alias(id) => {
                    let value = self.anchors.get(&id).cloned().ok_or_else(|| {
                        format!("alias at {} refers to an anchor that is not complete (recursive alias)", at())
                    })?;
                    self.nodes += count_nodes(&value);
                    self.node(value, false).map_err(|e| format!("{e} at {}", at()))?;
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let plain_merge = style == ScalarStyle::Plain && tag.is_none() && text == "<<";
                    let tagged_merge = tag.as_deref().and_then(core_suffix) == Some("merge");
                    let value = scalar(&text, style, tag.as_deref()).map_err(|e| format!("{e} at {}", at()))?;
                    if anchor != 0 {
                        self.anchors.insert(anchor, value.clone());
                    }
                    self.nodes += 1;
                    self.node(value, plain_merge || tagged_merge).map_err(|e| format!("{e} at {}", at()))?;
                }
                Event::SequenceStart(_, anchor, tag) => {
                    check_collection_tag(tag.as_deref(), &["seq", "omap", "pairs"])
                        .map_err(|e| format!("{e} at {}", at()))?;
                    self.stack.push(Frame::Seq { items: Vec::new(), anchor });
                }
                Event::MappingStart(_, anchor, tag) => {
                    check_collection_tag(tag.as_deref(), &["map", "set"]).map_err(|e| format!("{e} at {}", at()))?;
                    self.stack.push(Frame::Map { pairs: Vec::new(), pending: None, anchor });
                }
                Event::SequenceEnd => {
                    if let Some(Frame::Seq { items, anchor }) = self.stack.pop() {
                        self.finish(Value::Array(items), anchor).map_err(|e| format!("{e} at {}", at()))?;
                    }
                }
                Event::MappingEnd => {
                    if let Some(Frame::Map { pairs, anchor, .. }) = self.stack.pop() {
                        let map = flatten(pairs).map_err(|e| format!("{e} at {}", at()))?;
                        self.finish(Value::Object(map), anchor).map_err(|e| format!("{e} at {}", at()))?;
                    }
                }
                _ => {}
            }
            if self.stack.len() > MAX_DEPTH {
                return Err(format!("document nested too deeply (more than {MAX_DEPTH} levels) at {}", at()));
            }
            if self.nodes > MAX_NODES {
                return Err(format!(
                    "document too large (more than {MAX_NODES} nodes after alias expansion) at {}",
                    at()
                ));
            }
        }
        Ok(self.root.unwrap_or(Value::Null))
    }

    fn finish(&mut self, value: Value, anchor: usize) -> Result<(), String> {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        self.nodes += 1;
        self.node(value, false)
    }

    /// Places a completed node into its parent (or as the document root).
    fn node(&mut self, value: Value, is_merge_key: bool) -> Result<(), String> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(value);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(value);
                Ok(())
            }
            Some(Frame::Map { pairs, pending, .. }) => {
                match pending.take() {
                    Some(key) => pairs.push((key, value)),
                    None if is_merge_key => *pending = Some(Key::Merge),
                    None => *pending = Some(Key::Plain(key_string(value)?)),
                }
                Ok(())
            }
        }
    }
}

/// JSON object keys are strings; PyYAML keys may be numbers or booleans.
fn key_string(key: Value) -> Result<String, String> {
    match key {
        Value::String(s) => Ok(s),
        Value::Null => Ok("null".into()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Array(_) | Value::Object(_) => Err("found an unhashable key (a list or mapping)".into()),
    }
}

/// PyYAML's `flatten_mapping`: merged pairs first (earlier merge sources
/// win), then the mapping's own pairs, later duplicates replacing earlier.
fn flatten(pairs: Vec<(Key, Value)>) -> Result<Map<String, Value>, String> {
    let mut merged: Vec<(String, Value)> = Vec::new();
    let mut own: Vec<(String, Value)> = Vec::new();
    for (key, value) in pairs {
        match key {
            Key::Plain(k) => own.push((k, value)),
            Key::Merge => match value {
                Value::Object(m) => merged.extend(m),
                Value::Array(items) => {
                    let mut subs = Vec::new();
                    for item in items {
                        match item {
                            Value::Object(m) => subs.push(m),
                            _ => return Err("a merge key (<<) takes a mapping or a list of mappings".into()),
                        }
                    }
                    for m in subs.into_iter().rev() {
                        merged.extend(m);
                    }
                }
                _ => return Err("a merge key (<<) takes a mapping or a list of mappings".into()),
            },
        }
    }
    let mut map = Map::new();
    for (k, v) in merged.into_iter().chain(own) {
        map.insert(k, v);
    }
    Ok(map)
}

fn check_collection_tag(tag: Option<&Tag>, allowed: &[&str]) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(t) if t.handle() == "!" && t.suffix().is_empty() => Ok(()),
        Some(t) => match core_suffix(t) {
            Some(s) if allowed.contains(&s) => Ok(()),
            _ => Err(format!("unsupported tag '{}{}'", t.original_handle(), t.suffix())),
        },
    }
}

fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        if tag.handle() == "!" && tag.suffix().is_empty() {
            return Ok(Value::String(text.into()));
        }
        let bad = || format!("'{text}' is not a valid {}{}", tag.original_handle(), tag.suffix());
        return match core_suffix(tag) {
            Some("str" | "binary" | "timestamp" | "merge" | "value") => Ok(Value::String(text.into())),
            Some("null") => Ok(Value::Null),
            Some("bool") => yaml::construct_bool(text).map(Value::Bool).ok_or_else(bad),
            Some("int") => construct_int(text).ok_or_else(bad),
            Some("float") => construct_float(text).ok_or_else(bad),
            _ => Err(format!("unsupported tag '{}{}'", tag.original_handle(), tag.suffix())),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.into()));
    }
    Ok(resolve_plain(text))
}

/// A plain scalar as PyYAML's `safe_load` reads it: its implicit resolver
/// (from palisade-pycompat), then the matching constructor. Timestamps,
/// merge and value keys stay strings (JSON has no dates).
pub(crate) fn resolve_plain(text: &str) -> Value {
    let constructed = match yaml::resolve(text) {
        Implicit::Bool => yaml::construct_bool(text).map(Value::Bool),
        Implicit::Int => construct_int(text),
        Implicit::Float => construct_float(text),
        Implicit::Null => Some(Value::Null),
        _ => None,
    };
    constructed.unwrap_or_else(|| Value::String(text.into()))
}

/// PyYAML's `construct_yaml_int`; a value beyond 64 bits stays as its text.
fn construct_int(text: &str) -> Option<Value> {
    let v = yaml::construct_int(text)?;
    Some(if let Ok(i) = i64::try_from(v) {
        Value::Number(i.into())
    } else if let Ok(u) = u64::try_from(v) {
        Value::Number(u.into())
    } else {
        Value::String(text.into())
    })
}

/// PyYAML's `construct_yaml_float`. Non-finite values have no JSON form and
/// stay as their text.
fn construct_float(text: &str) -> Option<Value> {
    let v = yaml::construct_float(text)?;
    Some(Number::from_f64(v).map_or_else(|| Value::String(text.into()), Value::Number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_scalars_resolve_as_pyyaml() {
        let cases: &[(&str, Value)] = &[
            ("yes", json!(true)),
            ("Yes", json!(true)),
            ("YES", json!(true)),
            ("no", json!(false)),
            ("On", json!(true)),
            ("OFF", json!(false)),
            ("True", json!(true)),
            ("yEs", json!("yEs")),
            ("y", json!("y")),
            ("n", json!("n")),
            ("0755", json!(493)),
            ("0x1f", json!(31)),
            ("0b101", json!(5)),
            ("1_000", json!(1000)),
            ("1:30", json!(90)),
            ("08", json!("08")),
            ("-12", json!(-12)),
            ("+7", json!(7)),
            ("0", json!(0)),
            ("1.5", json!(1.5)),
            ("1.", json!(1.0)),
            (".5", json!(0.5)),
            ("1.0e+3", json!(1000.0)),
            ("1e5", json!("1e5")),
            ("1.0e5", json!("1.0e5")),
            ("1:30.5", json!(90.5)),
            (".inf", json!(".inf")),
            ("~", json!(null)),
            ("null", json!(null)),
            ("NULL", json!(null)),
            ("nil", json!("nil")),
            ("2024-01-31", json!("2024-01-31")),
            ("127.0.0.1:8008", json!("127.0.0.1:8008")),
            ("10.0.0.1", json!("10.0.0.1")),
        ];
        for (text, expected) in cases {
            assert_eq!(&resolve_plain(text), expected, "plain scalar {text:?}");
        }
    }

    #[test]
    fn quoted_and_tagged_scalars() {
        let v = parse("a: 'yes'\nb: \"on\"\nc: yes\nd: !!str yes\ne: !!int '12'\nf: |\n  no\ng: !!bool 'off'\n")
            .expect("parses");
        assert_eq!(v, json!({"a": "yes", "b": "on", "c": true, "d": "yes", "e": 12, "f": "no\n", "g": false}));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = "base: &b {x: 1, y: 2}\nother: &o {y: 20, z: 30}\nm:\n  <<: [*b, *o]\n  x: 100\nl: [*b]\n";
        let v = parse(text).expect("parses");
        assert_eq!(v["m"], json!({"y": 2, "z": 30, "x": 100}));
        assert_eq!(v["l"], json!([{"x": 1, "y": 2}]));
        let quoted = parse("m:\n  '<<': 1\n").expect("parses");
        assert_eq!(quoted, json!({"m": {"<<": 1}}));
    }

    #[test]
    fn errors_are_reported_not_panics() {
        let cases = [
            "a: [1, 2",
            "a: b\n---\nc: d\n",
            "a: !custom x\n",
            "? [1, 2]\n: x\n",
            "a: !!int abc\n",
            "m:\n  <<: 5\n",
            "a: b: c\n",
            "key: \"unterminated\n",
        ];
        for text in cases {
            assert!(parse(text).is_err(), "expected an error for {text:?}");
        }
    }

    #[test]
    fn empty_document_is_null_and_keys_are_strings() {
        assert_eq!(parse("").expect("parses"), Value::Null);
        assert_eq!(parse("# only a comment\n").expect("parses"), Value::Null);
        assert_eq!(parse("1: a\ntrue: b\n").expect("parses"), json!({"1": "a", "true": "b"}));
        assert_eq!(parse("a: 1\na: 2\n").expect("parses"), json!({"a": 2}));
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&deep).is_err());
        let fine = format!("{}{}", "[".repeat(50), "]".repeat(50));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        assert!(parse(&text).is_err());
    }
}
