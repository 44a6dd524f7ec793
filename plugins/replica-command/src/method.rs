//! A custom replica-creation method's section and the command line Patroni
//! builds from it.
//!
//! Patroni (`Bootstrap.create_replica`) takes the section, removes
//! `command`, and unless `no_params` is truthy adds `scope`, `role`,
//! `datadir` and `connstring` with `dict.update` (a key the user already
//! set keeps its place and gets the new value; the others are appended in
//! that order). With `no_params` it removes `no_params`, `no_leader` and
//! `keep_data` instead. Every remaining key becomes `--key=value`, the value
//! written as Python's `str()` writes it (`True`, `None`, `1.0`...).

use palisade_plugin_api::sdk::settings::kind;
use palisade_plugin_api::PluginError;
use serde_json::{Map, Value};

use palisade_plugin_api::sdk::pycompat::py::{to_str as py_str, truthy as py_truthy};
use palisade_plugin_api::sdk::shlex;

/// A parsed method section.
#[derive(Clone, Debug, PartialEq)]
pub struct Method {
    /// `command` as written.
    pub command: String,
    /// `command` split into words (never empty).
    pub words: Vec<String>,
    /// Every other key, in the order of the configuration.
    pub entries: Vec<(String, Value)>,
    pub no_params: bool,
    pub keep_data: bool,
    /// `no_leader` (or the legacy `no_master`) is truthy.
    pub no_leader: bool,
}

/// What the host tells us about this replica.
pub struct Cluster<'a> {
    pub scope: &'a str,
    pub role: &'a str,
    pub data_dir: &'a str,
    /// Empty when there is no member to copy from.
    pub connstring: &'a str,
}

impl Method {
    /// Parse the method's section (JSON object with a `command`).
    pub fn parse(config_json: &str) -> Result<Self, PluginError> {
        let value: Value = serde_json::from_str(config_json)
            .map_err(|e| PluginError::config(format!("the method's section is not valid JSON: {e}")))?;
        let Value::Object(section) = value else {
            return Err(PluginError::config(format!(
                "the method's section must be a map with a `command` key, found {}",
                kind(&value)
            )));
        };
        Self::from_section(section)
    }

    fn from_section(section: Map<String, Value>) -> Result<Self, PluginError> {
        let command = match section.get("command") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(PluginError::config(format!("`command` must be a string, found {}", kind(other))));
            }
            None => return Err(PluginError::config("`command` is missing: it names the program to run")),
        };
        let words = shlex::split(&command)
            .map_err(|e| PluginError::config(format!("`command` cannot be split into words: {e}: {command}")))?;
        if words.is_empty() {
            return Err(PluginError::config("`command` is empty"));
        }
        let truthy = |key: &str| section.get(key).is_some_and(py_truthy);
        let no_params = truthy("no_params");
        let keep_data = truthy("keep_data");
        let no_leader = truthy("no_leader") || truthy("no_master");
        let entries = section.into_iter().filter(|(k, _)| k != "command").collect();
        Ok(Self { command, words, entries, no_params, keep_data, no_leader })
    }

    /// The `--key=value` arguments that follow the command's own words.
    pub fn params(&self, cluster: &Cluster<'_>) -> Vec<String> {
        let mut entries: Vec<(String, Value)> = self.entries.clone();
        if self.no_params {
            entries.retain(|(k, _)| !matches!(k.as_str(), "no_params" | "no_leader" | "keep_data"));
        } else {
            let added = [
                ("scope", cluster.scope),
                ("role", cluster.role),
                ("datadir", cluster.data_dir),
                ("connstring", cluster.connstring),
            ];
            for (key, value) in added {
                let value = Value::String(value.to_string());
                match entries.iter_mut().find(|(k, _)| k == key) {
                    Some(slot) => slot.1 = value,
                    None => entries.push((key.to_string(), value)),
                }
            }
        }
        entries.iter().map(|(k, v)| format!("--{k}={}", py_str(v))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn method(v: Value) -> Method {
        Method::parse(&v.to_string()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn cluster() -> Cluster<'static> {
        Cluster {
            scope: "demo",
            role: "replica",
            data_dir: "/data/pg",
            connstring: "dbname=postgres user=replicator host=10.0.0.1 port=5432",
        }
    }

    #[test]
    fn params_follow_patroni_order_and_rules() {
        let m = method(json!({
            "command": "/usr/local/bin/restore --x 'a b'",
            "no_leader": true,
            "keep_data": true,
            "no_params": false,
            "extra_key": "v",
        }));
        assert_eq!(m.words, ["/usr/local/bin/restore", "--x", "a b"]);
        assert!(m.no_leader && m.keep_data && !m.no_params);
        assert_eq!(
            m.params(&cluster()),
            [
                "--no_leader=True",
                "--keep_data=True",
                "--no_params=False",
                "--extra_key=v",
                "--scope=demo",
                "--role=replica",
                "--datadir=/data/pg",
                "--connstring=dbname=postgres user=replicator host=10.0.0.1 port=5432",
            ]
        );
    }

    #[test]
    fn a_key_the_user_set_keeps_its_place() {
        let m = method(json!({"datadir": "/elsewhere", "command": "x", "threads": 4}));
        assert_eq!(
            m.params(&Cluster { connstring: "", ..cluster() }),
            ["--datadir=/data/pg", "--threads=4", "--scope=demo", "--role=replica", "--connstring="]
        );
    }

    #[test]
    fn no_params_drops_the_cluster_arguments_and_the_switches_only() {
        let m = method(json!({
            "command": "pgbackrest --stanza=main --delta restore",
            "no_params": true,
            "keep_data": "yes",
            "no_master": 1,
            "envdir": "/etc/wal-e",
        }));
        assert!(m.no_params && m.keep_data && m.no_leader);
        assert_eq!(m.params(&cluster()), ["--no_master=1", "--envdir=/etc/wal-e"]);
    }

    #[test]
    fn truthiness_is_pythons() {
        for (v, t) in [
            (json!(null), false),
            (json!(false), false),
            (json!(0), false),
            (json!(0.0), false),
            (json!(""), false),
            (json!([]), false),
            (json!({}), false),
            (json!(true), true),
            (json!(1), true),
            (json!("false"), true),
            (json!([0]), true),
        ] {
            assert_eq!(py_truthy(&v), t, "{v}");
        }
        assert!(!method(json!({"command": "x", "no_leader": "", "no_master": null})).no_leader);
    }

    #[test]
    fn values_are_written_as_python_writes_them() {
        let cases = [
            (json!("s p a c e"), "s p a c e"),
            (json!(true), "True"),
            (json!(null), "None"),
            (json!(-3), "-3"),
            (json!(18446744073709551615u64), "18446744073709551615"),
            (json!(1.0), "1.0"),
            (json!(123.0), "123.0"),
            (json!(0.1), "0.1"),
            (json!(0.0001), "0.0001"),
            (json!(1.5e-5), "1.5e-05"),
            (json!(1e16), "1e+16"),
            (json!(12345678901234567.0), "1.2345678901234568e+16"),
            (json!(-0.0), "-0.0"),
            (
                json!(["a", 1, true, null, "it's", "x\"y", 1.0, {"k": "v"}]),
                "['a', 1, True, None, \"it's\", 'x\"y', 1.0, {'k': 'v'}]",
            ),
        ];
        for (v, expected) in cases {
            assert_eq!(py_str(&v), expected, "{v}");
        }
    }

    #[test]
    fn bad_sections_are_refused_with_the_key_named() {
        for (v, needle) in [
            (json!({"no_leader": true}), "`command` is missing"),
            (json!({"command": 5}), "`command` must be a string"),
            (json!({"command": "   "}), "`command` is empty"),
            (json!({"command": "restore 'oops"}), "no closing quotation"),
            (json!(["command"]), "must be a map"),
            (json!(null), "must be a map"),
        ] {
            let err = Method::parse(&v.to_string()).err().unwrap_or_else(|| panic!("{v} was accepted"));
            assert_eq!(err.kind, palisade_plugin_api::ErrorKind::Config);
            assert!(err.message.contains(needle), "{v}: {}", err.message);
        }
        assert!(Method::parse("{not json").is_err());
    }
}
