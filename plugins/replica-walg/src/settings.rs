//! The `postgresql.walg` section, checked when the plugin is loaded, and
//! the command lines built from it.
//!
//! ```yaml
//! postgresql:
//!   create_replica_methods: [walg, basebackup]
//!   walg:
//!     backup_name: LATEST           # or a backup's name
//!     config: /etc/wal-g/walg.json  # wal-g --config
//!     env:                          # added to wal-g's environment
//!       WALG_S3_PREFIX: s3://bucket/cluster
//!       AWS_REGION: eu-west-1
//!     options: [reverse-delta-unpack]   # backup-fetch flags
//!     executable: /usr/local/bin/wal-g
//!     no_leader: true               # Patroni's meaning
//!     keep_data: false              # Patroni's meaning
//! ```

use palisade_plugin_api::sdk::pycompat::py::{to_str as py_str, truthy};
use palisade_plugin_api::sdk::settings::kind;
use palisade_plugin_api::sdk::shlex;
use palisade_plugin_api::PluginError;
use serde_json::{Map, Value};

/// The configuration key, for messages.
pub const SECTION: &str = "postgresql.walg";

const KEYS: [&str; 7] = ["backup_name", "config", "env", "options", "executable", "no_leader", "keep_data"];

/// The validated section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `LATEST` or a backup's name.
    pub backup_name: String,
    pub config: Option<String>,
    /// Added to wal-g's environment, in the order given.
    pub env: Vec<(String, String)>,
    /// `backup-fetch` flags as `--name[=value]`.
    pub options: Vec<String>,
    pub executable: String,
    pub no_leader: bool,
    pub keep_data: bool,
}

fn bad(key: &str, what: impl std::fmt::Display) -> PluginError {
    palisade_plugin_api::sdk::settings::error(SECTION, key, what)
}

fn text(map: &Map<String, Value>, key: &str) -> Result<Option<String>, PluginError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(bad(key, "must not be empty")),
        Some(Value::String(s)) if s.contains(['\n', '\r', '\0']) => Err(bad(key, "must be one line")),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(key, format_args!("must be a string, found {}", kind(other)))),
    }
}

/// An environment variable's name as a shell accepts it.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Settings {
    /// Parse the section (`null` means every default).
    pub fn parse(config_json: &str) -> Result<Self, PluginError> {
        let value: Value =
            serde_json::from_str(config_json).map_err(|e| bad("", format_args!("not valid JSON: {e}")))?;
        let map = match value {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            other => return Err(bad("", format_args!("must be a map of settings, found {}", kind(&other)))),
        };
        if let Some(unknown) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(bad(
                unknown,
                format_args!(
                    "unknown setting (known: {}; give the method a `command` to run it as Patroni's generic \
                     command method)",
                    KEYS.join(", ")
                ),
            ));
        }
        let backup_name = text(&map, "backup_name")?.unwrap_or_else(|| "LATEST".to_string());
        if backup_name.contains(['/', ' ']) {
            return Err(bad("backup_name", format_args!("'{backup_name}' is not a backup name")));
        }
        let env = match map.get("env") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(vars)) => {
                let mut env = Vec::new();
                for (name, value) in vars {
                    if !valid_name(name) {
                        return Err(bad("env", format_args!("'{name}' is not an environment variable name")));
                    }
                    let value = match value {
                        Value::String(_) | Value::Number(_) | Value::Bool(_) => py_str(value),
                        other => {
                            return Err(bad(
                                &format!("env.{name}"),
                                format_args!("must be a string, number or boolean, found {}", kind(other)),
                            ))
                        }
                    };
                    if value.contains('\0') {
                        return Err(bad(&format!("env.{name}"), "contains a NUL character"));
                    }
                    env.push((name.clone(), value));
                }
                env
            }
            Some(other) => return Err(bad("env", format_args!("must be a map of variables, found {}", kind(other)))),
        };
        let options = match map.get("options") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    let Value::String(option) = item else {
                        return Err(bad("options", format_args!("{item} is not a flag: write `name` or `name=value`")));
                    };
                    let name = option.split_once('=').map_or(option.as_str(), |(n, _)| n);
                    if name.is_empty() || name.starts_with('-') || name.contains(char::is_whitespace) {
                        return Err(bad(
                            "options",
                            format_args!("`{option}`: write the flag's name without dashes, as `name` or `name=value`"),
                        ));
                    }
                    if name == "config" {
                        return Err(bad("options", "use the `config` setting for --config"));
                    }
                    out.push(format!("--{option}"));
                }
                out
            }
            Some(other) => return Err(bad("options", format_args!("must be a list of flags, found {}", kind(other)))),
        };
        Ok(Self {
            backup_name,
            config: text(&map, "config")?,
            env,
            options,
            executable: text(&map, "executable")?.unwrap_or_else(|| "wal-g".to_string()),
            no_leader: map.get("no_leader").is_some_and(truthy),
            keep_data: map.get("keep_data").is_some_and(truthy),
        })
    }

    fn global(&self) -> Vec<String> {
        match &self.config {
            Some(c) => vec!["--config".into(), c.clone()],
            None => Vec::new(),
        }
    }

    /// `wal-g backup-list --json`.
    pub fn list_args(&self) -> Vec<String> {
        let mut args = self.global();
        args.extend(["backup-list".into(), "--json".into()]);
        args
    }

    /// `wal-g backup-fetch <data_dir> <backup_name>`.
    pub fn fetch_args(&self, data_dir: &str) -> Vec<String> {
        let mut args = self.global();
        args.push("backup-fetch".into());
        args.extend(self.options.iter().cloned());
        args.push(data_dir.to_string());
        args.push(self.backup_name.clone());
        args
    }

    /// `wal-g wal-fetch "%f" "%p"`, as WAL-G documents it, with the
    /// configured environment set through `env(1)`, quoted for the shell
    /// PostgreSQL runs it in.
    pub fn restore_command(&self) -> String {
        let mut words = Vec::new();
        if !self.env.is_empty() {
            words.push("env".to_string());
            words.extend(self.env.iter().map(|(k, v)| shlex::quote(&format!("{k}={v}"))));
        }
        words.push(shlex::quote(&self.executable));
        words.extend(self.global().iter().map(|a| shlex::quote(a)));
        words.extend(["wal-fetch".to_string(), "\"%f\"".to_string(), "\"%p\"".to_string()]);
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Settings {
        Settings::parse(&v.to_string()).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    #[test]
    fn defaults() {
        let s = parse(json!(null));
        assert_eq!((s.backup_name.as_str(), s.executable.as_str()), ("LATEST", "wal-g"));
        assert!(!s.no_leader && !s.keep_data && s.env.is_empty());
        assert_eq!(s.list_args(), ["backup-list", "--json"]);
        assert_eq!(s.fetch_args("/data/pg"), ["backup-fetch", "/data/pg", "LATEST"]);
        assert_eq!(s.restore_command(), "wal-g wal-fetch \"%f\" \"%p\"");
    }

    #[test]
    fn every_setting_reaches_the_command_line() {
        let s = parse(json!({
            "backup_name": "base_000000010000000000000004",
            "config": "/etc/wal-g/walg.json",
            "env": {"WALG_FILE_PREFIX": "/backups/wal g", "WALG_COMPRESSION_METHOD": "brotli", "TOTAL_BG_UPLOADED_LIMIT": 32, "WALG_VERIFY": true},
            "options": ["reverse-delta-unpack", "target-user-data=x"],
            "executable": "/usr/local/bin/wal-g",
            "no_leader": true,
            "keep_data": 1,
        }));
        assert!(s.no_leader && s.keep_data);
        assert_eq!(
            s.env,
            [
                ("WALG_FILE_PREFIX".to_string(), "/backups/wal g".to_string()),
                ("WALG_COMPRESSION_METHOD".to_string(), "brotli".to_string()),
                ("TOTAL_BG_UPLOADED_LIMIT".to_string(), "32".to_string()),
                ("WALG_VERIFY".to_string(), "True".to_string()),
            ]
        );
        assert_eq!(s.list_args(), ["--config", "/etc/wal-g/walg.json", "backup-list", "--json"]);
        assert_eq!(
            s.fetch_args("/data/pg"),
            [
                "--config",
                "/etc/wal-g/walg.json",
                "backup-fetch",
                "--reverse-delta-unpack",
                "--target-user-data=x",
                "/data/pg",
                "base_000000010000000000000004"
            ]
        );
        assert_eq!(
            s.restore_command(),
            "env 'WALG_FILE_PREFIX=/backups/wal g' WALG_COMPRESSION_METHOD=brotli TOTAL_BG_UPLOADED_LIMIT=32 \
             WALG_VERIFY=True /usr/local/bin/wal-g --config /etc/wal-g/walg.json wal-fetch \"%f\" \"%p\""
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_key_path() {
        for (v, message) in [
            (json!("LATEST"), "postgresql.walg: must be a map of settings, found a string"),
            (json!({"backup_name": ""}), "postgresql.walg.backup_name: must not be empty"),
            (json!({"backup_name": "a/b"}), "postgresql.walg.backup_name: 'a/b' is not a backup name"),
            (json!({"config": 3}), "postgresql.walg.config: must be a string, found a number"),
            (json!({"env": ["A=b"]}), "postgresql.walg.env: must be a map of variables, found a list"),
            (json!({"env": {"1A": "b"}}), "postgresql.walg.env: '1A' is not an environment variable name"),
            (json!({"env": {"A-B": "b"}}), "'A-B' is not an environment variable name"),
            (json!({"env": {"A": {"b": 1}}}), "postgresql.walg.env.A: must be a string, number or boolean"),
            (json!({"env": {"A": null}}), "postgresql.walg.env.A: must be a string, number or boolean, found null"),
            (json!({"options": "x"}), "postgresql.walg.options: must be a list of flags"),
            (json!({"options": ["--x"]}), "postgresql.walg.options: `--x`: write the flag's name without dashes"),
            (json!({"options": [1]}), "postgresql.walg.options: 1 is not a flag"),
            (json!({"options": ["config=/x"]}), "use the `config` setting"),
            (json!({"backup": "LATEST"}), "postgresql.walg.backup: unknown setting"),
            (json!({"command": "wal-g backup-fetch"}), "postgresql.walg.command: unknown setting"),
        ] {
            let err = Settings::parse(&v.to_string()).err().unwrap_or_else(|| panic!("{v} was accepted"));
            assert_eq!(err.kind, palisade_plugin_api::ErrorKind::Config);
            assert!(err.message.contains(message), "{v}: {}", err.message);
        }
    }
}
