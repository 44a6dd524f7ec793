//! Differential tests: each function of palisade-pycompat against the real
//! Python on thousands of seeded random inputs (`PALISADE_DIFF_CASES`
//! raises the count). Patroni's own functions come from Patroni 4.1 in the
//! test virtualenv (built on first use, see
//! `palisade_test_support::python`), `shlex`, `repr` and `json` from its
//! Python, the resolvers from its PyYAML. One Python process answers a
//! whole batch: one JSON line in, one JSON line out.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use palisade_pycompat::{json, patroni, py, shlex, url, yaml};
use palisade_test_support::python::{case_count, patroni_python, run_lines, Rng};
use serde_json::{json, Value};

const CASES: usize = 3000;

fn python() -> PathBuf {
    patroni_python()
}

/// Runs `body` (Python statements computing `r` from the decoded input
/// `x`) over `inputs`; an exception becomes `{"error": "<its message>"}`.
fn python_answers(body: &str, inputs: &[Value]) -> Vec<Value> {
    let indented: String = body.lines().map(|l| format!("        {l}\n")).collect();
    let script = format!(
        "import json, sys, shlex, struct\n\
         import yaml\n\
         from patroni import utils\n\
         for line in sys.stdin:\n    \
             x = json.loads(line)\n    \
             try:\n{indented}    \
             except Exception as e:\n        \
                 r = {{'error': str(e)}}\n    \
             print(json.dumps(r))\n"
    );
    let lines: Vec<String> = inputs.iter().map(|v| serde_json::to_string(v).unwrap()).collect();
    run_lines(&python(), &script, &lines).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Compares ours with Python's for every input; reports the first
/// mismatches with their inputs.
fn check(what: &str, inputs: &[Value], python: &[Value], ours: impl Fn(&Value) -> Value) {
    let mut bad = Vec::new();
    for (input, theirs) in inputs.iter().zip(python) {
        let mine = ours(input);
        if &mine != theirs {
            bad.push(format!("{what}({input}): python {theirs}, palisade {mine}"));
        }
    }
    assert!(bad.is_empty(), "{} of {} differ:\n{}", bad.len(), inputs.len(), bad[..bad.len().min(20)].join("\n"));
}

fn random_string(rng: &mut Rng, alphabet: &[char], words: &[&str], max_parts: usize) -> String {
    let parts = rng.below(max_parts + 1);
    let mut s = String::new();
    for _ in 0..parts {
        match rng.below(4) {
            0 if !words.is_empty() => s.push_str(rng.pick::<&str>(words)),
            1 => s.push(rng.any_char()),
            _ => s.push(*rng.pick(alphabet)),
        }
    }
    s
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => match rng.below(4) {
            0 => json!(i64::MIN),
            1 => json!(u64::MAX - rng.below(1000) as u64),
            _ => json!(rng.below(2000) as i64 - 1000),
        },
        3 => json!(rng.float()),
        4 => Value::String(random_string(rng, &['\'', '"', '\\', 'a', ' ', '\n', '\t', '\u{7f}'], &[], 8)),
        5 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth - 1)).collect()),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| (random_string(rng, &['k', '\'', '"'], &[], 4), random_value(rng, depth - 1)))
                .collect(),
        ),
    }
}

#[test]
fn shlex_split_and_unquote() {
    let mut rng = Rng::new(1);
    let alphabet = ['a', 'b', ' ', '\t', '\n', '\r', '\'', '"', '\\', '$', '`', '#', 'é', '='];
    let inputs: Vec<Value> =
        (0..case_count(CASES)).map(|_| Value::String(random_string(&mut rng, &alphabet, &[], 14))).collect();
    let answers = python_answers("r = [shlex.split(x), utils.unquote(x)]", &inputs);
    check("shlex", &inputs, &answers, |x| {
        let s = x.as_str().unwrap();
        match shlex::split(s) {
            Ok(words) => json!([words, shlex::unquote(s)]),
            Err(shlex::SplitError::NoClosingQuotation) => json!({"error": "No closing quotation"}),
            Err(shlex::SplitError::NoEscapedCharacter) => json!({"error": "No escaped character"}),
        }
    });
}

#[test]
fn str_repr_truthiness() {
    let mut rng = Rng::new(2);
    let inputs: Vec<Value> = (0..case_count(CASES)).map(|_| random_value(&mut rng, 3)).collect();
    let answers = python_answers("r = [str(x), repr(x), bool(x)]", &inputs);
    check("str/repr/bool", &inputs, &answers, |x| json!([py::to_str(x), py::repr(x), py::truthy(x)]));
}

#[test]
fn float_repr_and_g_format() {
    let mut rng = Rng::new(3);
    let mut bits: Vec<u64> = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 5e-324, f64::MAX, 1e16, 1e-5]
        .iter()
        .map(|f: &f64| f.to_bits())
        .collect();
    bits.extend((0..case_count(CASES)).map(|_| if rng.one_in(2) { rng.next_u64() } else { rng.float().to_bits() }));
    let inputs: Vec<Value> = bits.iter().map(|b| json!(b)).collect();
    let answers =
        python_answers("f = struct.unpack('<d', struct.pack('<Q', x))[0]\nr = [repr(f), format(f, 'g')]", &inputs);
    check("repr/format_g", &inputs, &answers, |x| {
        let f = f64::from_bits(x.as_u64().unwrap());
        json!([py::float_repr(f), py::format_g(f)])
    });
}

#[test]
fn printable_and_space_characters() {
    // One input: every code point is classified by Python at once.
    let answers = python_answers(
        "cs = [chr(c) for c in range(0x110000)]\n\
         r = [''.join('1' if c.isprintable() else '0' for c in cs), ''.join('1' if c.isspace() else '0' for c in cs), \
         '\\x1c\\u2000 x \\xa0\\x1f'.strip()]",
        &[Value::Null],
    );
    let classify = |f: fn(char) -> bool| -> String {
        (0..0x11_0000u32).map(|c| if char::from_u32(c).is_some_and(f) { '1' } else { '0' }).collect()
    };
    let mut theirs = answers[0].clone();
    // Surrogates are not `char`s; Python calls them unprintable, not space.
    for s in theirs.as_array_mut().unwrap().iter_mut().take(2) {
        let text = s.as_str().unwrap();
        *s = Value::String(format!("{}{}{}", &text[..0xD800], "0".repeat(0x800), &text[0xE000..]));
    }
    let ours = json!([classify(py::is_printable), classify(py::is_space), py::strip("\x1c\u{2000} x \u{a0}\x1f")]);
    assert!(ours == theirs, "isprintable/isspace/strip differ from Python");
}

const UNITS: [&str; 16] =
    ["kB", "MB", "GB", "TB", "B", "ms", "s", "min", "h", "d", "us", "KB", "mb", "8kB", "16MB", "x"];

fn number_text(rng: &mut Rng) -> Value {
    let words = [
        "0x",
        "0X",
        "0",
        "00",
        "7",
        "9",
        "12",
        "1024",
        ".",
        ".5",
        "e",
        "E",
        "e+",
        "e-3",
        "+",
        "-",
        " ",
        "\t",
        "\x1c",
        "\u{a0}",
        "on",
        "OFF",
        "True",
        "yes",
        "No",
        "1e400",
        "99999999999999999999",
        "inf",
        "nan",
        "_",
    ];
    match rng.below(10) {
        0 => json!(rng.below(20000) as i64 - 10000),
        1 => json!(rng.float()),
        2 => Value::Bool(rng.one_in(2)),
        3 => Value::Null,
        _ => {
            let mut s = random_string(rng, &['1', '0', '5', '8', 'a', 'f', ' '], &words, 5);
            if rng.one_in(2) {
                s.push_str(rng.pick::<&str>(&UNITS));
            }
            Value::String(s)
        }
    }
}

fn base_unit(rng: &mut Rng) -> Value {
    let units = [
        Value::Null,
        json!("kB"),
        json!("8kB"),
        json!("16MB"),
        json!("MB"),
        json!("B"),
        json!("ms"),
        json!("s"),
        json!("min"),
        json!("0kB"),
        json!("-8kB"),
        json!("256 MB"),
        json!("x"),
        json!("1000ms"),
        json!("0x10kB"),
    ];
    rng.pick(&units).clone()
}

/// Python code that makes Patroni's result `v` comparable: an int outside
/// i64 is `null` (palisade's integers are 64-bit), a float its repr.
const AS_I64: &str = "def as_i64(v):\n    return v if v is None or -2**63 <= v < 2**63 else None\n";

#[test]
fn patroni_parse_bool_int_real() {
    let mut rng = Rng::new(4);
    let inputs: Vec<Value> =
        (0..case_count(CASES)).map(|_| json!([number_text(&mut rng), base_unit(&mut rng)])).collect();
    let body = format!(
        "{AS_I64}def safe(f):\n    try:\n        return f()\n    except Exception:\n        return None\n\
         v, u = x\n\
         real = safe(lambda: utils.parse_real(v, u))\n\
         real = safe(lambda: repr(float(real))) if real is not None else None\n\
         r = [utils.parse_bool(v), as_i64(safe(lambda: utils.parse_int(v, u))), real]"
    );
    let answers = python_answers(&body, &inputs);
    check("parse_bool/int/real", &inputs, &answers, |x| {
        let (v, u) = (&x[0], x[1].as_str());
        json!([patroni::parse_bool(v), patroni::parse_int(v, u), patroni::parse_real(v, u).map(py::float_repr)])
    });
}

#[test]
fn patroni_strtol_strtod() {
    let mut rng = Rng::new(5);
    let inputs: Vec<Value> = (0..case_count(CASES)).map(|_| number_text(&mut rng)).collect();
    let body = "def num(v):\n    return None if v is None else (repr(v) if isinstance(v, float) else (str(v) if abs(v) < 2**127 else 'big'))\n\
                a, b = utils.strtol(x)\nc, d = utils.strtod(x)\nr = [num(a), b, num(c), d]";
    let answers = python_answers(body, &inputs);
    check("strtol/strtod", &inputs, &answers, |x| {
        let text = py::to_str(x);
        let num = |n: Option<patroni::Num>| match n {
            None => Value::Null,
            Some(patroni::Num::Int { exact: Some(i), .. }) => json!(i.to_string()),
            Some(patroni::Num::Int { exact: None, .. }) => json!("big"),
            Some(patroni::Num::Float(f)) => json!(py::float_repr(f)),
        };
        let (a, b) = patroni::strtol(&text);
        let (c, d) = patroni::strtod(&text);
        json!([num(a), b, c.map(py::float_repr), d])
    });
}

#[test]
fn patroni_compare_and_convert_from_base_unit() {
    let mut rng = Rng::new(6);
    let vartypes = ["bool", "integer", "real", "enum", "string", "other"];
    let inputs: Vec<Value> = (0..case_count(CASES))
        .map(|_| {
            let text = |rng: &mut Rng| Value::String(py::to_str(&number_text(rng)));
            json!([rng.pick(&vartypes), base_unit(&mut rng), text(&mut rng), text(&mut rng)])
        })
        .collect();
    // Where Patroni raises, palisade answers "not equal" and "unchanged";
    // where Patroni's integers leave i64, palisade has no integer.
    let body = format!(
        "{AS_I64}def safe(f, default):\n    try:\n        return f()\n    except Exception:\n        return default\n\
         t, u, a, b = x\n\
         cmp = safe(lambda: utils.compare_values(t, u, a, b), False)\n\
         conv = safe(lambda: utils.maybe_convert_from_base_unit(a, t, u), a)\n\
         big = lambda v, unit: (lambda p: p is not None and as_i64(p) is None)(safe(lambda: utils.parse_int(v, unit), None))\n\
         if t == 'integer' and (big(a, None) or big(b, u)):\n    cmp = False\n\
         if t == 'integer' and big(a, None):\n    conv = a\n\
         r = [cmp, conv]"
    );
    let answers = python_answers(&body, &inputs);
    check("compare_values/maybe_convert_from_base_unit", &inputs, &answers, |x| {
        let (t, u, a, b) = (x[0].as_str().unwrap(), x[1].as_str(), x[2].as_str().unwrap(), x[3].as_str().unwrap());
        json!([patroni::compare_values(t, u, a, b), patroni::maybe_convert_from_base_unit(a, t, u)])
    });
}

fn yaml_scalar(rng: &mut Rng) -> String {
    let alphabet = [
        '0', '1', '2', '5', '7', '8', '9', '-', '+', '.', '_', ':', 'e', 'E', 'x', 'b', 'a', 'f', 'n', 'T', 't', ' ',
        '\t', 'Z', '\n', '~', '<', '=',
    ];
    let words = [
        "yes",
        "No",
        "ON",
        "oFF",
        "true",
        "null",
        "NULL",
        "Null",
        ".inf",
        "-.Inf",
        ".NaN",
        "2024-01-31",
        "2024-1-3",
        "12:30:45",
        "0x",
        "0b",
        "1_000",
        "<<",
        "=",
    ];
    random_string(rng, &alphabet, &words, 5)
}

#[test]
fn pyyaml_resolvers_and_constructors() {
    let mut rng = Rng::new(7);
    let inputs: Vec<Value> = (0..case_count(CASES)).map(|_| Value::String(yaml_scalar(&mut rng))).collect();
    let body = "tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, x, (True, False))\n\
                c = yaml.constructor.SafeConstructor()\n\
                node = yaml.ScalarNode(tag, x)\n\
                value = None\n\
                if x.endswith('\\n'):\n    pass\n\
                elif tag.endswith(':int'):\n    try:\n        i = c.construct_yaml_int(node)\n        value = str(i) if abs(i) < 2**127 else None\n    except ValueError:\n        value = None\n\
                elif tag.endswith(':float'):\n    try:\n        value = repr(c.construct_yaml_float(node))\n    except ValueError:\n        value = 'error'\n\
                elif tag.endswith(':bool'):\n    value = c.construct_yaml_bool(node)\n\
                r = [tag, value]";
    let answers = python_answers(body, &inputs);
    check("yaml resolve/construct", &inputs, &answers, |x| {
        let s = x.as_str().unwrap();
        let tag = yaml::resolve(s);
        // The constructors are for what a parser hands over: plain scalars
        // never end with a line break.
        let value = match tag {
            _ if s.ends_with('\n') => Value::Null,
            // `None`: PyYAML raises (`0x_` has no digit) or the int is
            // beyond i128.
            yaml::Tag::Int => yaml::construct_int(s).map_or(Value::Null, |i| json!(i.to_string())),
            yaml::Tag::Float => yaml::construct_float(s).map_or(json!("error"), |f| json!(py::float_repr(f))),
            yaml::Tag::Bool => json!(yaml::construct_bool(s)),
            _ => Value::Null,
        };
        json!([tag.name(), value])
    });
}

#[test]
fn json_dumps() {
    let mut rng = Rng::new(8);
    let inputs: Vec<Value> = (0..case_count(CASES)).map(|_| random_value(&mut rng, 3)).collect();
    let answers = python_answers("r = [json.dumps(x), json.dumps(x, separators=(',', ':'))]", &inputs);
    check("json.dumps", &inputs, &answers, |x| json!([json::dumps(x), json::dumps_compact(x)]));
}

#[test]
fn urlparse_hostname_and_port() {
    let mut rng = Rng::new(9);
    let alphabet = ['a', 'H', '1', '0', '5', ':', '/', '@', '[', ']', '%', '.', '?', '#', ' ', '+', '\t'];
    let words =
        ["postgres://", "//", "postgres:", "x+y.z://", "[::1]", ":5432", ":99999", "h@", "/db", "[FE80::1%Eth0]"];
    let inputs: Vec<Value> =
        (0..case_count(CASES)).map(|_| Value::String(random_string(&mut rng, &alphabet, &words, 6))).collect();
    let answers =
        python_answers("from urllib.parse import urlparse\nu = urlparse(x)\nr = [u.hostname, u.port]", &inputs);
    check("urlparse", &inputs, &answers, |x| match url::hostname_port(x.as_str().unwrap()) {
        Ok((host, port)) => json!([host, port]),
        Err(e) => json!({"error": e}),
    });
}
