//! The `postgresql.basebackup` section: extra pg_basebackup options.
//!
//! Patroni accepts a map (`max-rate: 100M`) or a list mixing flags
//! (`- verbose`) and one-key maps (`- max-rate: 100M`), and turns each into
//! a long option (`--verbose`, `--max-rate=100M`, the value unquoted).
//! Options that would break the replica (`pgdata`, `format`, `wal-method`,
//! `dbname`...) are not allowed, and on PostgreSQL 15 and later `compress`
//! only with server-side compression (before 15 not at all).
//!
//! Patroni logs a bad option and carries on without it; we refuse the
//! configuration instead, so the mistake is seen when the daemon starts and
//! not when a replica is built without the option the operator asked for.

use palisade_plugin_api::PluginError;
use serde_json::Value;

use palisade_plugin_api::sdk::shlex;

/// The configuration key, for messages.
pub const SECTION: &str = "postgresql.basebackup";

/// Options the plugin sets itself, or that make the result unusable.
const NOT_ALLOWED: [&str; 11] = [
    "pgdata",
    "format",
    "wal-method",
    "xlog-method",
    "gzip",
    "version",
    "dbname",
    "host",
    "port",
    "username",
    "password",
];

/// The validated options, ready for pg_basebackup's command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub args: Vec<String>,
    /// A `compress` option is among them (allowed on PostgreSQL 15+ only).
    pub compress: bool,
}

fn bad(what: impl std::fmt::Display) -> PluginError {
    PluginError::config(format!("{SECTION}: {what}"))
}

impl Options {
    /// Parse the section as JSON (`null` or empty: no options).
    pub fn parse(config_json: &str) -> Result<Self, PluginError> {
        if config_json.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: Value = serde_json::from_str(config_json).map_err(|e| bad(format_args!("not valid JSON: {e}")))?;
        let mut options = Self::default();
        match value {
            Value::Null => {}
            Value::Object(map) => {
                for (key, value) in &map {
                    if let Some(value) = map_value(key, value)? {
                        options.add(key, Some(&value))?;
                    }
                }
            }
            Value::Array(items) => {
                for item in &items {
                    match item {
                        Value::String(flag) => match flag.split_once('=') {
                            Some((name, value)) => options.add(name, Some(value))?,
                            None => options.add(flag, None)?,
                        },
                        Value::Object(map) => match map.iter().next() {
                            Some((key, Value::String(value))) if map.len() == 1 => {
                                options.add(key, Some(&shlex::unquote(value)))?
                            }
                            _ => {
                                return Err(bad(format_args!(
                                    "{item} is not a valid option: a map in the list must have exactly one key \
                                     and a string value"
                                )))
                            }
                        },
                        _ => {
                            return Err(bad(format_args!(
                                "{item} is not a valid option: use an option name (`verbose`) or a map with \
                                 one key (`max-rate: 100M`)"
                            )))
                        }
                    }
                }
            }
            other => return Err(bad(format_args!("must be a list or a map of options, found {other}"))),
        }
        Ok(options)
    }

    /// Check one option and append it as `--name` or `--name=value`.
    fn add(&mut self, name: &str, value: Option<&str>) -> Result<(), PluginError> {
        if name.is_empty() {
            return Err(bad("an option has an empty name"));
        }
        if name.starts_with('-') {
            return Err(bad(format_args!("write option `{name}` without the leading dashes")));
        }
        if NOT_ALLOWED.contains(&name) {
            return Err(bad(format_args!(
                "the {name} option is not allowed: palisade sets it, or a replica cannot be built with it"
            )));
        }
        if name == "compress" {
            if !value.is_some_and(|v| v.starts_with("server")) {
                return Err(bad("compress must use server-side compression (server-gzip, server-lz4, server-zstd): \
                     client-side compression is not allowed"));
            }
            self.compress = true;
        }
        self.args.push(match value {
            Some(v) => format!("--{name}={v}"),
            None => format!("--{name}"),
        });
        Ok(())
    }
}

/// A value in the map form: strings are unquoted, numbers written out;
/// `null`, `false`, `0` and `""` leave the option out (Patroni skips falsy
/// values); anything else is an error.
fn map_value(key: &str, value: &Value) -> Result<Option<String>, PluginError> {
    match value {
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(shlex::unquote(s))),
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(None),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(true) => Err(bad(format_args!(
            "{key}: a value is needed; for an option without a value use the list form (`- {key}`)"
        ))),
        other => Err(bad(format_args!("{key}: the value must be a string, found {other}"))),
    }
}

/// The major version in `pg_basebackup --version` output
/// (`pg_basebackup (PostgreSQL) 15.10 (Debian 15.10-1)`).
pub fn major_version(version_output: &str) -> Option<u32> {
    let rest = version_output.split_once("(PostgreSQL)")?.1.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Vec<String> {
        Options::parse(&v.to_string()).unwrap_or_else(|e| panic!("{v}: {e}")).args
    }

    #[test]
    fn accepts_patronis_shapes() {
        assert_eq!(args(json!(null)), Vec::<String>::new());
        assert!(Options::parse("").unwrap_or_else(|e| panic!("{e}")).args.is_empty());
        assert_eq!(args(json!({"max-rate": "100M", "checkpoint": "fast"})), ["--max-rate=100M", "--checkpoint=fast"]);
        assert_eq!(
            args(json!(["verbose", {"max-rate": "100M"}, {"waldir": "/pg-wal-mount/external-waldir"}])),
            ["--verbose", "--max-rate=100M", "--waldir=/pg-wal-mount/external-waldir"]
        );
        assert_eq!(args(json!([{"label": "\"my backup\""}])), ["--label=my backup"]);
        assert_eq!(args(json!({"label": "'a b'", "max-rate": 1024})), ["--label=a b", "--max-rate=1024"]);
        assert_eq!(args(json!({"progress": null, "label": "", "verbose": false, "x": 0})), Vec::<String>::new());
        assert_eq!(args(json!(["max-rate=32k"])), ["--max-rate=32k"]);
    }

    #[test]
    fn server_side_compression_is_allowed() {
        let o =
            Options::parse(&json!({"compress": "server-zstd:level=3"}).to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.args, ["--compress=server-zstd:level=3"]);
        assert!(o.compress);
    }

    #[test]
    fn refuses_bad_shapes_and_options_naming_the_section() {
        let cases = [
            json!("verbose"),
            json!(5),
            json!(true),
            json!([5]),
            json!([["verbose"]]),
            json!([{"a": "1", "b": "2"}]),
            json!([{"max-rate": 100}]),
            json!([{}]),
            json!({"verbose": true}),
            json!({"label": ["a"]}),
            json!({"pgdata": "/elsewhere"}),
            json!(["wal-method=fetch"]),
            json!([{"dbname": "host=x"}]),
            json!(["format"]),
            json!({"compress": "gzip"}),
            json!(["compress"]),
            json!(["--verbose"]),
            json!([""]),
        ];
        for v in cases {
            let err = Options::parse(&v.to_string()).err().unwrap_or_else(|| panic!("{v} was accepted"));
            assert_eq!(err.kind, palisade_plugin_api::ErrorKind::Config, "{v}");
            assert!(err.message.starts_with("postgresql.basebackup: "), "{v}: {}", err.message);
        }
        assert!(Options::parse("[not json").is_err());
    }

    #[test]
    fn reads_the_major_version() {
        assert_eq!(major_version("pg_basebackup (PostgreSQL) 15.10 (Debian 15.10-1.pgdg120+1)\n"), Some(15));
        assert_eq!(major_version("pg_basebackup (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(major_version("pg_basebackup (PostgreSQL) 17devel"), Some(17));
        assert_eq!(major_version("something else"), None);
    }
}
