//! A small seeded generator of configuration inputs for the fuzz tests:
//! valid Patroni configurations (the test fixtures) mutated at the YAML tree
//! level (wrong types at every key path, extreme numbers, empty and deep
//! values, unknown keys), at the text level (YAML oddities: anchors, tags,
//! duplicate keys, YAML 1.1 scalars, invalid UTF-8, truncation) and
//! `PATRONI_*` environments with wrong values in every variable the loader
//! knows. Every case is a pure function of `(seed, index)`, so a failure
//! reproduces with `PALISADE_FUZZ_SEED` and `PALISADE_FUZZ_CASE`.
//!
//! Shared by host/config/tests/fuzz_config.rs and
//! host/daemon/tests/fuzz_validate_config.rs (included by path).
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The seed when `PALISADE_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x5eed_c0f1_9000_0012;

/// `PALISADE_FUZZ_CASES` (default `default_cases`), `PALISADE_FUZZ_SEED`
/// (decimal or 0x-hex) and `PALISADE_FUZZ_CASE` (run that one case only).
pub struct Settings {
    pub cases: u64,
    pub seed: u64,
    pub only: Option<u64>,
}

impl Settings {
    /// The case numbers to run: the one `PALISADE_FUZZ_CASE` names, or all.
    pub fn indices(&self) -> std::ops::Range<u64> {
        match self.only {
            Some(i) => i..i + 1,
            None => 0..self.cases,
        }
    }
}

fn parse_u64(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

pub fn settings(default_cases: u64) -> Settings {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| parse_u64(&v));
    Settings {
        cases: var("PALISADE_FUZZ_CASES").unwrap_or(default_cases),
        seed: var("PALISADE_FUZZ_SEED").unwrap_or(DEFAULT_SEED),
        only: var("PALISADE_FUZZ_CASE"),
    }
}

pub use palisade_test_support::python::Rng;

/// A valid local configuration using every section (etcd3 DCS).
pub const FULL: &str = include_str!("../fixtures/full.yml");

#[path = "../common/mod.rs"]
mod common;
/// The smallest valid local configuration (the one every config test uses).
pub use common::{MINIMAL, MINIMAL_ENV};

pub use palisade_config::fuzzing::env_names;

/// Wrong, extreme and odd values, as YAML flow text (valid inside `[...]`).
const RAW_VALUES: [&str; 62] = [
    "null",
    "~",
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "Y",
    "NO",
    "0",
    "-1",
    "1.5",
    "-0.0",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999999999999",
    "1e308",
    "1e400",
    "-1e400",
    ".nan",
    ".inf",
    "-.inf",
    "0x7f",
    "0o17",
    "017",
    "1_000",
    "0b101",
    "12:30:45",
    "2001-12-14",
    "''",
    "'   '",
    "\"\\0\"",
    "\"\\xff\\u202e\"",
    "'\u{e9}t\u{e9}'",
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: {b: {c: 1}}}",
    "[null, true, 1.5]",
    "!!binary aGVsbG8=",
    "!!str 5",
    "!!int '12'",
    "!!int 'x'",
    "!!float 'abc'",
    "!!bool 'maybe'",
    "!!set {a, b}",
    "!!omap [{a: 1}]",
    "!!timestamp 2001-12-14",
    "!!python/object:os.system {}",
    "!custom x",
    "!!null ''",
    "&anc 5",
    "*anc",
    "*nowhere",
    "!!map {a: 1}",
    "!!seq [1]",
    "'host:99999'",
];

/// Key names that no section knows (or that are odd as YAML keys).
const ODD_KEYS: [&str; 10] = ["unknown_key", "", "0", "!!", "\u{fc}ber", "a.b", "<<", "null", "true", "a b"];

/// Whole lines inserted into the YAML text.
const ODD_LINES: [&str; 20] = [
    "x: &a [1, 2]",
    "y: *a",
    "<<: {scope: merged}",
    "<<: *nowhere",
    "? [a, b]\n: c",
    "? {a: 1}\n: c",
    "%YAML 1.1",
    "---",
    "...",
    "--- !!map",
    "\tscope: tab",
    "scope: duplicate",
    "name: duplicate",
    "!!python/object/apply:os.system [echo]",
    "key: !!binary '@@@'",
    "key: |\n  block\n text",
    "key: >-",
    "- item",
    "key: \"unterminated",
    "key: [unclosed",
];

/// Values for `PATRONI_*` variables.
const ENV_VALUES: [&str; 40] = [
    "",
    " ",
    "0",
    "-1",
    "abc",
    "1e400",
    "NaN",
    "inf",
    "9223372036854775808",
    "99999999999999999999999999999",
    "0x10",
    "1.5",
    "true",
    "maybe",
    "on",
    "[1, 2]",
    "{a: 1}",
    "[",
    "{",
    "a,b,,c",
    ",",
    ":",
    "host:notaport",
    "host:99999",
    "127.0.0.1:-1",
    "\u{0}",
    "\u{e9}\u{202e}",
    "{a: [1, {b: c}]}",
    "!!python/object:os.system x",
    "*x",
    "&a [*a]",
    "- a\n- b",
    "a: b\n c",
    "{\"json\": true}",
    "[\"a\", 1, null]",
    "{a: {b: {c: {d: 1}}}}",
    "10.0.0.0/33",
    "/nonexistent/dir",
    "DEBUG,INFO",
    "%(nosuch)s",
];

/// One generated input.
pub struct Case {
    /// What was done, for the failure message.
    pub what: String,
    /// The configuration file's bytes (`None`: no file, environment only).
    pub file: Option<Vec<u8>>,
    pub env: BTreeMap<String, String>,
}

fn raw_value(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => {
            let depth = 1 + rng.below(300);
            let (open, close) = if rng.chance(50) { ("[", "]") } else { ("{a: ", "}") };
            format!("{}1{}", open.repeat(depth), close.repeat(depth))
        }
        1 => format!("'{}'", "x".repeat(1 + rng.below(20_000))),
        _ => rng.pick(&RAW_VALUES).to_string(),
    }
}

/// Every key path of `v` (object keys and list indexes), parents first.
fn paths(v: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(PathStep::Key(k.clone()));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(PathStep::Index(i));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn show(path: &[PathStep]) -> String {
    path.iter()
        .map(|s| match s {
            PathStep::Key(k) => k.clone(),
            PathStep::Index(i) => format!("[{i}]"),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn get_mut<'a>(v: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    let mut cur = v;
    for step in path {
        cur = match (step, cur) {
            (PathStep::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (PathStep::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Mutates the parsed fixture; raw YAML values are placeholders replaced
/// after serialisation.
fn tree_case(rng: &mut Rng, base: &str) -> (String, String) {
    let mut doc = palisade_config::yaml::parse(base).expect("the fixture parses");
    let mut raws: Vec<String> = Vec::new();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let mut all = Vec::new();
        paths(&doc, &mut Vec::new(), &mut all);
        if all.is_empty() {
            break;
        }
        let path = rng.pick(&all).clone();
        let shown = show(&path);
        let Some(target) = get_mut(&mut doc, &path) else { continue };
        match rng.below(10) {
            0 => {
                // An unknown key next to the existing ones (or in place of a scalar).
                let key = rng.pick(&ODD_KEYS).to_string();
                let raw = raw_value(rng);
                what.push(format!("{shown}: add key {key:?} = {raw}"));
                let mut m = target.as_object().cloned().unwrap_or_default();
                m.insert(key, Value::String(format!("\u{1}RAW{}\u{1}", raws.len())));
                raws.push(raw);
                *target = Value::Object(m);
            }
            1 => {
                what.push(format!("{shown}: removed"));
                *target = Value::Null;
            }
            2 => {
                let empties = [Value::Object(Map::new()), Value::Array(vec![]), Value::String(String::new())];
                let empty = rng.pick(&empties).clone();
                what.push(format!("{shown}: {empty}"));
                *target = empty;
            }
            _ => {
                let raw = raw_value(rng);
                what.push(format!("{shown}: {}", raw.chars().take(60).collect::<String>()));
                *target = Value::String(format!("\u{1}RAW{}\u{1}", raws.len()));
                raws.push(raw);
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&doc).expect("serialises");
    for (i, raw) in raws.iter().enumerate() {
        text = text.replace(&format!("\"\\u0001RAW{i}\\u0001\""), raw);
    }
    (what.join("; "), text)
}

/// Mutates the YAML text line by line; may produce invalid UTF-8.
fn text_case(rng: &mut Rng, base: &str) -> (String, Vec<u8>) {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    let mut what = Vec::new();
    let mut bytes_ops: Vec<u8> = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(lines.len().max(1));
        let indent: String = lines.get(at).map(|l| l.chars().take_while(|c| *c == ' ').collect()).unwrap_or_default();
        match rng.below(8) {
            0 => {
                let line = lines.get(at).cloned().unwrap_or_default();
                what.push(format!("line {} duplicated", at + 1));
                lines.insert(at, line);
            }
            1 if !lines.is_empty() => {
                what.push(format!("line {} removed", at + 1));
                lines.remove(at);
            }
            2 => {
                let odd = rng.pick(&ODD_LINES);
                what.push(format!("line {} inserted: {odd:?}", at + 1));
                let text = odd.lines().map(|l| format!("{indent}{l}")).collect::<Vec<_>>().join("\n");
                lines.insert(at, text);
            }
            3 if !lines.is_empty() => {
                what.push(format!("line {} re-indented", at + 1));
                let line = lines[at].trim_start().to_string();
                lines[at] = format!("{}{line}", " ".repeat(rng.below(7)));
            }
            4 => bytes_ops.push(rng.below(4) as u8),
            _ => {
                // Replace the value after `key:` with an odd one.
                if let Some(line) = lines.get_mut(at) {
                    if let Some(colon) = line.find(": ") {
                        let raw = raw_value(rng);
                        what.push(format!("line {} value: {}", at + 1, raw.chars().take(60).collect::<String>()));
                        line.truncate(colon + 2);
                        line.push_str(&raw);
                    }
                }
            }
        }
    }
    let mut bytes = (lines.join("\n") + "\n").into_bytes();
    for op in bytes_ops {
        match op {
            0 => {
                let cut = rng.below(bytes.len() + 1);
                what.push(format!("truncated at byte {cut}"));
                bytes.truncate(cut);
            }
            1 => {
                let at = rng.below(bytes.len() + 1);
                let bads: [&[u8]; 5] = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\0"];
                let bad = *rng.pick(&bads);
                what.push(format!("bytes {bad:?} at byte {at}"));
                bytes.splice(at..at, bad.iter().copied());
            }
            2 => {
                what.push("BOM and CRLF".into());
                let text = String::from_utf8_lossy(&bytes).replace('\n', "\r\n");
                bytes = [&b"\xef\xbb\xbf"[..], text.as_bytes()].concat();
            }
            _ => {
                what.push("emptied".into());
                bytes.truncate(rng.below(3));
            }
        }
    }
    (what.join("; "), bytes)
}

fn env_mutations(rng: &mut Rng, env: &mut BTreeMap<String, String>, names: &[String], what: &mut Vec<String>) {
    for _ in 0..1 + rng.below(6) {
        let name = format!("PATRONI_{}", rng.pick(names));
        let value = match rng.below(12) {
            0 => format!("{}{}", "[".repeat(1 + rng.below(300)), "]".repeat(rng.below(300))),
            1 => "y".repeat(1 + rng.below(20_000)),
            _ => rng.pick(&ENV_VALUES).to_string(),
        };
        what.push(format!("{name}={:?}", value.chars().take(60).collect::<String>()));
        env.insert(name, value);
    }
}

/// The case `index` of the run with `seed`.
pub fn case(seed: u64, index: u64, names: &[String]) -> Case {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let base = if rng.chance(70) { FULL } else { MINIMAL };
    let base_name = if base == FULL { "full.yml" } else { "minimal" };
    let mut env = BTreeMap::new();
    let mut what = Vec::new();
    let file = match rng.below(10) {
        0..=3 => {
            let (w, text) = tree_case(&mut rng, base);
            what.push(format!("{base_name} tree: {w}"));
            if rng.chance(25) {
                what.push("as PATRONI_CONFIGURATION".into());
                env.insert("PATRONI_CONFIGURATION".to_string(), text);
                None
            } else {
                Some(text.into_bytes())
            }
        }
        4..=6 => {
            let (w, bytes) = text_case(&mut rng, base);
            what.push(format!("{base_name} text: {w}"));
            match String::from_utf8(bytes) {
                Ok(text) if rng.chance(20) => {
                    what.push("as PATRONI_CONFIGURATION".into());
                    env.insert("PATRONI_CONFIGURATION".to_string(), text);
                    None
                }
                Ok(text) => Some(text.into_bytes()),
                Err(e) => Some(e.into_bytes()),
            }
        }
        7 => {
            what.push(format!("{base_name} file with the environment over it"));
            Some(base.as_bytes().to_vec())
        }
        _ => {
            what.push("environment only".into());
            env.extend(MINIMAL_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            None
        }
    };
    if file.is_none() && !env.contains_key("PATRONI_CONFIGURATION") || rng.chance(20) || what[0].contains("over it") {
        env_mutations(&mut rng, &mut env, names, &mut what);
    }
    Case { what: what.join(" | "), file, env }
}
