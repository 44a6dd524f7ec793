//! A log event as Python's `logging.LogRecord` sees it: every attribute a
//! format may name, filled with the daemon's own equivalents.
//!
//! | attribute | palisade's value |
//! | --- | --- |
//! | `name` | the event's target (the module path unless the call sets one; `plugin` for plugins) |
//! | `pathname`, `filename`, `lineno` | the log call's source file (as compiled), its last component, its line |
//! | `module` | the last component of the module path (`cycle` for `palisade_daemon::runner::cycle`) |
//! | `funcName` | the innermost tracing span's name, else the full module path (Rust has no function names at run time) |
//! | `process`, `processName` | the process id; the program name (`palisade`) |
//! | `thread`, `threadName` | the kernel thread id; the thread's name (`main`, `tokio-runtime-worker`), else `Thread-<id>` |
//! | `created`, `msecs`, `relativeCreated` | as Python: epoch seconds, milliseconds of the second, milliseconds since logging started |
//! | `levelname`, `levelno` | Python's names and numbers (`WARNING`, 30; TRACE is `DEBUG`, 10) |
//! | `message`, `msg` | the message (with the event's other fields appended as `key=value`) |
//! | `args` | `()`; `exc_info`, `exc_text`, `stack_info`, `taskName`: `None` |

use std::sync::OnceLock;
use std::time::Instant;

use tracing::Level;

/// The Python type of an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Float,
    None,
    Tuple,
}

impl Kind {
    pub fn python_name(self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::None => "NoneType",
            Kind::Tuple => "tuple",
        }
    }
}

/// Every attribute of a Python 3.12 `LogRecord` (with `asctime` and
/// `message`, which the formatter adds) and its type.
pub const ATTRIBUTES: [(&str, Kind); 23] = [
    ("args", Kind::Tuple),
    ("asctime", Kind::Str),
    ("created", Kind::Float),
    ("exc_info", Kind::None),
    ("exc_text", Kind::None),
    ("filename", Kind::Str),
    ("funcName", Kind::Str),
    ("levelname", Kind::Str),
    ("levelno", Kind::Int),
    ("lineno", Kind::Int),
    ("message", Kind::Str),
    ("module", Kind::Str),
    ("msecs", Kind::Float),
    ("msg", Kind::Str),
    ("name", Kind::Str),
    ("pathname", Kind::Str),
    ("process", Kind::Int),
    ("processName", Kind::Str),
    ("relativeCreated", Kind::Float),
    ("stack_info", Kind::None),
    ("taskName", Kind::None),
    ("thread", Kind::Int),
    ("threadName", Kind::Str),
];

pub fn attribute_kind(name: &str) -> Option<Kind> {
    ATTRIBUTES.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// A Python value as `%` formatting and `json.dumps` see it.
#[derive(Clone, Debug, PartialEq)]
pub enum PyValue {
    Str(String),
    Int(i64),
    Float(f64),
    None,
    EmptyTuple,
}

impl PyValue {
    /// `str(value)`.
    pub fn str(&self) -> String {
        match self {
            PyValue::Str(s) => s.clone(),
            PyValue::Int(i) => i.to_string(),
            PyValue::Float(f) => palisade_pycompat::py::float_repr(*f),
            PyValue::None => "None".into(),
            PyValue::EmptyTuple => "()".into(),
        }
    }

    /// `repr(value)`, or `ascii(value)`.
    pub fn repr(&self, ascii: bool) -> String {
        match self {
            PyValue::Str(s) => str_repr(s, ascii),
            other => other.str(),
        }
    }
}

/// Python's `repr(str)` (or `ascii(str)`), from the one home of both.
fn str_repr(s: &str, ascii: bool) -> String {
    if ascii {
        palisade_pycompat::py::ascii_str(s)
    } else {
        palisade_pycompat::py::repr_str(s)
    }
}

/// Python's level number for a level.
pub fn level_number(level: &Level) -> i64 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG | Level::TRACE => 10,
    }
}

/// When logging started (`relativeCreated` counts from here).
pub fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// The program name, as `processName`.
pub fn program_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::env::args()
            .next()
            .and_then(|a| std::path::Path::new(&a).file_name().map(|f| f.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "palisade".into())
    })
}

/// One event, with what is needed to answer for each attribute.
pub struct Record<'a> {
    pub created: f64,
    pub asctime: String,
    pub level: &'a Level,
    pub level_name: &'static str,
    pub message: &'a str,
    pub target: &'a str,
    pub file: Option<&'a str>,
    pub line: Option<u32>,
    pub module_path: Option<&'a str>,
    pub span: Option<&'a str>,
    pub relative_ms: f64,
    pub process: u32,
    pub process_name: &'a str,
    pub thread_id: i64,
    pub thread_name: Option<String>,
}

impl Record<'_> {
    /// The current thread's id and name, for [`Record`].
    pub fn this_thread() -> (i64, Option<String>) {
        let id = i64::from(nix::unistd::gettid().as_raw());
        (id, std::thread::current().name().map(String::from))
    }

    /// The value of attribute `name` (`None` for a name a record lacks).
    pub fn value(&self, name: &str) -> PyValue {
        let s = |v: &str| PyValue::Str(v.to_string());
        let module_path = self.module_path.unwrap_or(self.target);
        match name {
            "args" => PyValue::EmptyTuple,
            "asctime" => s(&self.asctime),
            "created" => PyValue::Float(self.created),
            "filename" => {
                let path = self.file.unwrap_or("");
                s(path.rsplit('/').next().unwrap_or(path))
            }
            "funcName" => s(self.span.unwrap_or(module_path)),
            "levelname" => s(self.level_name),
            "levelno" => PyValue::Int(level_number(self.level)),
            "lineno" => PyValue::Int(i64::from(self.line.unwrap_or(0))),
            "message" | "msg" => s(self.message),
            "module" => s(module_path.rsplit("::").next().unwrap_or(module_path)),
            "msecs" => PyValue::Float(((self.created - self.created.trunc()) * 1000.0).trunc()),
            "name" => s(self.target),
            "pathname" => s(self.file.unwrap_or("")),
            "process" => PyValue::Int(i64::from(self.process)),
            "processName" => s(self.process_name),
            "relativeCreated" => PyValue::Float(self.relative_ms),
            "thread" => PyValue::Int(self.thread_id),
            "threadName" => match &self.thread_name {
                Some(n) => s(n),
                None => PyValue::Str(format!("Thread-{}", self.thread_id)),
            },
            _ => PyValue::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        let floats = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (123.0, "123.0"),
            (0.1, "0.1"),
            (1733500000.123, "1733500000.123"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e308, "1e+308"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (f, want) in floats {
            assert_eq!(PyValue::Float(f).str(), want, "{f}");
        }
        let strings = [
            ("plain", false, "'plain'"),
            ("it's", false, "\"it's\""),
            ("a'b\"", false, "'a\\'b\"'"),
            ("tab\there\\", false, "'tab\\there\\\\'"),
            ("é", false, "'é'"),
            ("é", true, "'\\xe9'"),
            ("\u{263a}", true, "'\\u263a'"),
        ];
        for (s, ascii, want) in strings {
            assert_eq!(str_repr(s, ascii), want, "{s}");
        }
    }

    #[test]
    fn every_attribute_has_a_value_of_its_kind() {
        let (thread_id, thread_name) = Record::this_thread();
        let r = Record {
            created: 1733500000.123,
            asctime: "2024-12-06 15:46:40,123".into(),
            level: &Level::WARN,
            level_name: "WARNING",
            message: "hello",
            target: "palisade_daemon::runner::cycle",
            file: Some("host/daemon/src/runner/cycle.rs"),
            line: Some(42),
            module_path: Some("palisade_daemon::runner::cycle"),
            span: None,
            relative_ms: 1500.25,
            process: std::process::id(),
            process_name: "palisade",
            thread_id,
            thread_name,
        };
        for (name, kind) in ATTRIBUTES {
            let v = r.value(name);
            let got = match v {
                PyValue::Str(_) => Kind::Str,
                PyValue::Int(_) => Kind::Int,
                PyValue::Float(_) => Kind::Float,
                PyValue::None => Kind::None,
                PyValue::EmptyTuple => Kind::Tuple,
            };
            assert_eq!(got, kind, "{name}");
        }
        let want = [
            ("filename", PyValue::Str("cycle.rs".into())),
            ("pathname", PyValue::Str("host/daemon/src/runner/cycle.rs".into())),
            ("module", PyValue::Str("cycle".into())),
            ("funcName", PyValue::Str("palisade_daemon::runner::cycle".into())),
            ("lineno", PyValue::Int(42)),
            ("levelno", PyValue::Int(30)),
            ("msecs", PyValue::Float(122.0)),
            ("process", PyValue::Int(i64::from(std::process::id()))),
            ("thread", PyValue::Int(thread_id)),
        ];
        for (name, value) in want {
            assert_eq!(r.value(name), value, "{name}");
        }
    }
}
