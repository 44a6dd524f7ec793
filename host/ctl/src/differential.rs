//! Differential tests of what palisadectl prints against patronictl's own
//! code: random documents through `format_config_for_editing` (PyYAML's
//! `safe_dump`, block and flow style) and random tables through
//! `print_output` (PrettyTable with patronictl's title, tsv, json, yaml),
//! run by the Python of the Patroni test virtualenv (built on first use,
//! see `palisade_test_support::python`). Seeded; `PALISADE_DIFF_CASES`
//! raises the number of cases.
#![allow(clippy::unwrap_used)]

use palisade_test_support::python::{case_count, patroni_python, run_lines, Rng};
use serde_json::{json, Map, Value};

use crate::table::{render, Format};

const CASES: usize = 1500;

fn python_outputs(body: &str, inputs: &[Value]) -> Vec<String> {
    let indented: String = body.lines().map(|l| format!("        {l}\n")).collect();
    let script = format!(
        "import contextlib, io, json, sys\n\
         from patroni.ctl import format_config_for_editing, print_output\n\
         for line in sys.stdin:\n    \
             x = json.loads(line)\n    \
             out = io.StringIO()\n    \
             with contextlib.redirect_stdout(out):\n{indented}    \
             print(json.dumps(out.getvalue()))\n"
    );
    let lines: Vec<String> = inputs.iter().map(|v| serde_json::to_string(v).unwrap()).collect();
    run_lines(&patroni_python(), &script, &lines).iter().map(|l| serde_json::from_str::<String>(l).unwrap()).collect()
}

fn check(what: &str, inputs: &[Value], python: &[String], ours: impl Fn(&Value) -> String) {
    let mut bad = Vec::new();
    for (input, theirs) in inputs.iter().zip(python) {
        let mine = ours(input);
        if &mine != theirs {
            bad.push(format!("{what}({input}):\n--- patronictl\n{theirs}--- palisadectl\n{mine}"));
        }
    }
    assert!(bad.is_empty(), "{} of {} differ:\n{}", bad.len(), inputs.len(), bad[..bad.len().min(5)].join("\n"));
}

const TRICKY: [&str; 24] = [
    "yes",
    "No",
    "null",
    "~",
    "1.5",
    "0755",
    "1:30",
    "2024-01-31",
    ".inf",
    "-",
    "- x",
    "a: b",
    "#c",
    " lead",
    "trail ",
    "!tag",
    "&a",
    "*b",
    "%p",
    "@x",
    "`q",
    "{x}",
    "[y]",
    "it's",
];

fn text(rng: &mut Rng, max_parts: usize) -> String {
    let alphabet = [
        'a', 'b', ' ', ':', '#', '-', '?', ',', '\'', '"', '\n', '\t', '|', '>', 'é', '中', '\u{301}', '\u{85}',
        '\u{2028}', '\u{feff}', '\u{1}', '0', '9', '.',
    ];
    let mut s = String::new();
    for _ in 0..rng.below(max_parts + 1) {
        match rng.below(6) {
            0 => s.push_str(rng.pick::<&str>(&TRICKY)),
            1 => s.push(rng.any_char()),
            2 if rng.one_in(8) => s.push_str(&"word ".repeat(rng.below(60))),
            _ => s.push(*rng.pick(&alphabet)),
        }
    }
    s
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => json!(rng.below(2_000_000) as i64 - 1_000_000),
        3 => json!(rng.float()),
        4 => Value::String(text(rng, 6)),
        5 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => Value::Object((0..rng.below(4)).map(|_| (text(rng, 3), value(rng, depth - 1))).collect()),
    }
}

#[test]
fn yaml_as_pyyaml_safe_dump() {
    let mut rng = Rng::new(11);
    let inputs: Vec<Value> = (0..case_count(CASES)).map(|_| json!([value(&mut rng, 3), rng.one_in(3)])).collect();
    let answers = python_outputs("sys.stdout.write(format_config_for_editing(x[0], x[1]))", &inputs);
    check("safe_dump", &inputs, &answers, |x| crate::pyyaml::dump(&x[0], x[1].as_bool().unwrap()));
}

/// `value` without terminal control characters (other than tab and line
/// feed): wcwidth measures those by emulating a terminal (carriage
/// returns, escape sequences), which palisadectl does not model.
fn table_cell(rng: &mut Rng, depth: usize) -> Value {
    clean(value(rng, depth))
}

fn clean(v: Value) -> Value {
    let printable = |c: char| if c.is_control() && c != '\t' && c != '\n' { '?' } else { c };
    match v {
        Value::String(s) => Value::String(s.chars().map(printable).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(clean).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k.chars().map(printable).collect(), clean(v))).collect())
        }
        other => other,
    }
}

fn table_case(rng: &mut Rng) -> Value {
    let names = ["Member", "Host", "Role", "State", "TL", "Lag in MB", "Tags", "x", "名前", "a\tb", "Pending restart"];
    let header = match rng.below(5) {
        0 => String::new(),
        1 => " Cluster: demo (7301234567890123456) ".into(),
        2 => " Citus cluster: demo (group: 1, 7301) ".into(),
        // Every group of a Citus cluster: the Group column stays.
        3 => " Citus cluster: demo ".into(),
        _ => text(rng, 3).chars().filter(|c| !c.is_control()).collect(),
    };
    let cluster = rng.one_in(3);
    let mut columns: Vec<String> = Vec::new();
    if cluster {
        columns.push("Cluster".into());
        if header.starts_with(" Citus cluster: ") {
            columns.push("Group".into());
        }
        // patronictl's member lists always have members.
        columns.push("Member".into());
    }
    for _ in 0..rng.below(5) {
        let name = rng.pick(&names).to_string();
        if !columns.contains(&name) {
            columns.push(name);
        }
    }
    if !cluster && rng.one_in(10) {
        columns.clear();
    }
    let width = if columns.is_empty() { 1 + rng.below(3) } else { columns.len() };
    let rows: Vec<Value> = (0..rng.below(5))
        .map(|_| {
            let cells: Vec<Value> = (0..width)
                .map(|i| match columns.get(i).map(String::as_str) {
                    Some("Tags") if rng.one_in(2) => {
                        let tags: Map<String, Value> =
                            (0..rng.below(3)).map(|_| (text(rng, 2), table_cell(rng, 1))).collect();
                        clean(Value::Object(tags))
                    }
                    _ => table_cell(rng, 1),
                })
                .collect();
            Value::Array(cells)
        })
        .collect();
    let right: Vec<&String> = columns.iter().filter(|_| rng.one_in(3)).collect();
    let fmt = *rng.pick(&["pretty", "pretty", "pretty", "tsv", "json", "yaml"]);
    json!({"columns": columns, "rows": rows, "right": right, "fmt": fmt, "header": header})
}

#[test]
fn tables_as_patronictl_print_output() {
    let mut rng = Rng::new(12);
    let inputs: Vec<Value> = (0..case_count(CASES)).map(|_| table_case(&mut rng)).collect();
    let answers = python_outputs(
        "print_output(x['columns'], x['rows'], {c: 'r' for c in x['right']}, x['fmt'], x['header'])",
        &inputs,
    );
    check("print_output", &inputs, &answers, |x| {
        let columns: Vec<String> = serde_json::from_value(x["columns"].clone()).unwrap();
        let rows: Vec<Vec<Value>> = serde_json::from_value(x["rows"].clone()).unwrap();
        let right: Vec<String> = serde_json::from_value(x["right"].clone()).unwrap();
        let right: Vec<&str> = right.iter().map(String::as_str).collect();
        let fmt = match x["fmt"].as_str().unwrap() {
            "pretty" => Format::Pretty,
            "tsv" => Format::Tsv,
            "json" => Format::Json,
            _ => Format::Yaml,
        };
        render(&columns, &rows, &right, fmt, x["header"].as_str().unwrap(), "\t")
    });
}
