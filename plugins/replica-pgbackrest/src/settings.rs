//! The `postgresql.pgbackrest` section, checked when the plugin is loaded,
//! and the command lines built from it.
//!
//! ```yaml
//! postgresql:
//!   create_replica_methods: [pgbackrest, basebackup]
//!   pgbackrest:
//!     stanza: main                  # default: the cluster's scope
//!     config: /etc/pgbackrest/pgbackrest.conf
//!     delta: true                   # --delta
//!     type: time                    # --type (restore type)
//!     target: '2026-12-06 12:00:00+00'
//!     target_action: promote        # --target-action
//!     set: 20261206-120000F         # --set (a backup label)
//!     options: [process-max=4, {repo: 2}]
//!     executable: /usr/bin/pgbackrest
//!     no_leader: true               # Patroni's meaning
//!     keep_data: true               # Patroni's meaning
//! ```
//!
//! Every mistake is refused at load with the key path named, so that it is
//! seen when the daemon starts, not when a replica is needed.

use palisade_plugin_api::sdk::pycompat::py::truthy;
use palisade_plugin_api::sdk::settings::kind;
use palisade_plugin_api::sdk::shlex;
use palisade_plugin_api::PluginError;
use serde_json::{Map, Value};

/// The configuration key, for messages.
pub const SECTION: &str = "postgresql.pgbackrest";

/// pgBackRest's restore types (`--type`), and whether each needs a target.
const TYPES: [(&str, bool); 9] = [
    ("default", false),
    ("immediate", false),
    ("lsn", true),
    ("name", true),
    ("none", false),
    ("preserve", false),
    ("standby", false),
    ("time", true),
    ("xid", true),
];

/// `--target-action` values.
const TARGET_ACTIONS: [&str; 3] = ["pause", "promote", "shutdown"];

/// Options the plugin sets itself (from the typed settings or the request):
/// refused in `options`.
const OWN_OPTIONS: [&str; 11] =
    ["stanza", "config", "pg1-path", "pg-path", "delta", "force", "type", "target", "target-action", "set", "output"];

/// Every key the section may have.
const KEYS: [&str; 11] = [
    "stanza",
    "config",
    "delta",
    "type",
    "target",
    "target_action",
    "set",
    "options",
    "executable",
    "no_leader",
    "keep_data",
];

/// The validated section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub stanza: String,
    pub config: Option<String>,
    pub delta: bool,
    pub restore_type: Option<String>,
    pub target: Option<String>,
    pub target_action: Option<String>,
    pub set: Option<String>,
    /// Extra options as `--name[=value]`, in the order given.
    pub options: Vec<String>,
    pub executable: String,
    pub no_leader: bool,
    pub keep_data: bool,
}

fn bad(key: &str, what: impl std::fmt::Display) -> PluginError {
    palisade_plugin_api::sdk::settings::error(SECTION, key, what)
}

/// A non-empty string without line breaks, or absent.
fn text(map: &Map<String, Value>, key: &str) -> Result<Option<String>, PluginError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(bad(key, "must not be empty")),
        Some(Value::String(s)) if s.contains(['\n', '\r', '\0']) => Err(bad(key, "must be one line")),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // A label or an xid written without quotes in YAML is a number.
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(bad(key, format_args!("must be a string, found {}", kind(other)))),
    }
}

/// `true`/`false` (YAML's booleans), or absent.
fn flag(map: &Map<String, Value>, key: &str) -> Result<bool, PluginError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(bad(key, format_args!("must be true or false, found {}", kind(other)))),
    }
}

impl Settings {
    /// Parse the section (`null` means every default). `scope` is the
    /// default stanza.
    pub fn parse(config_json: &str, scope: &str) -> Result<Self, PluginError> {
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
                    "unknown setting (known: {}; pgBackRest options go in `options`, or give the method a `command` \
                     to run it as Patroni's generic command method)",
                    KEYS.join(", ")
                ),
            ));
        }
        let stanza = match text(&map, "stanza")? {
            Some(s) => s,
            None if scope.trim().is_empty() => return Err(bad("stanza", "is not set and the scope is empty")),
            None => scope.to_string(),
        };
        let restore_type = text(&map, "type")?;
        let target = text(&map, "target")?;
        let needs_target = match restore_type.as_deref() {
            None => false,
            Some(t) => match TYPES.iter().find(|(name, _)| *name == t) {
                Some((_, needs)) => *needs,
                None => {
                    let names: Vec<_> = TYPES.iter().map(|(n, _)| *n).collect();
                    return Err(bad("type", format_args!("unknown restore type '{t}' (known: {})", names.join(", "))));
                }
            },
        };
        if needs_target && target.is_none() {
            return Err(bad("target", format_args!("is required with type '{}'", restore_type.unwrap_or_default())));
        }
        if !needs_target && target.is_some() {
            return Err(bad("target", "is only used with type lsn, name, time or xid"));
        }
        let target_action = text(&map, "target_action")?;
        if let Some(action) = &target_action {
            if !TARGET_ACTIONS.contains(&action.as_str()) {
                return Err(bad(
                    "target_action",
                    format_args!("unknown action '{action}' (known: {})", TARGET_ACTIONS.join(", ")),
                ));
            }
            if !needs_target && restore_type.as_deref() != Some("immediate") {
                return Err(bad(
                    "target_action",
                    "is only used with a recovery target (type immediate, lsn, name, time or xid)",
                ));
            }
        }
        Ok(Self {
            stanza,
            config: text(&map, "config")?,
            delta: flag(&map, "delta")?,
            restore_type,
            target,
            target_action,
            set: text(&map, "set")?,
            options: options(map.get("options"))?,
            executable: text(&map, "executable")?.unwrap_or_else(|| "pgbackrest".to_string()),
            // Patroni reads these two with Python's truth value.
            no_leader: map.get("no_leader").is_some_and(truthy),
            keep_data: map.get("keep_data").is_some_and(truthy),
        })
    }

    /// The options every pgbackrest call starts with.
    fn common(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(config) = &self.config {
            args.push(format!("--config={config}"));
        }
        args.push(format!("--stanza={}", self.stanza));
        args
    }

    /// `pgbackrest ... --output=json info`: the backups of the stanza.
    pub fn info_args(&self) -> Vec<String> {
        let mut args = self.common();
        args.push("--output=json".into());
        args.push("info".into());
        args
    }

    /// `pgbackrest ... restore` into `data_dir`. pgBackRest's console
    /// logging is raised to `info` (unless `options` sets it) so that the
    /// restore's progress reaches our log.
    pub fn restore_args(&self, data_dir: &str) -> Vec<String> {
        let mut args = self.common();
        args.push(format!("--pg1-path={data_dir}"));
        if self.delta {
            args.push("--delta".into());
        }
        if let Some(t) = &self.restore_type {
            args.push(format!("--type={t}"));
        }
        if let Some(t) = &self.target {
            args.push(format!("--target={t}"));
        }
        if let Some(a) = &self.target_action {
            args.push(format!("--target-action={a}"));
        }
        if let Some(s) = &self.set {
            args.push(format!("--set={s}"));
        }
        if !self.options.iter().any(|o| o.starts_with("--log-level-console")) {
            args.push("--log-level-console=info".into());
        }
        args.extend(self.options.iter().cloned());
        args.push("restore".into());
        args
    }

    /// The `restore_command` that reads this stanza's WAL archive, as
    /// pgBackRest documents it, quoted for the shell PostgreSQL runs it in.
    pub fn restore_command(&self) -> String {
        let mut words = vec![shlex::quote(&self.executable)];
        words.extend(self.common().iter().map(|a| shlex::quote(a)));
        words.push("archive-get".into());
        words.push("%f".into());
        words.push("\"%p\"".into());
        words.join(" ")
    }
}

/// `options`: a list of `name`, `name=value` or one-key maps, or a map, as
/// for `postgresql.basebackup`; each becomes `--name` or `--name=value`.
fn options(value: Option<&Value>) -> Result<Vec<String>, PluginError> {
    let mut out = Vec::new();
    let mut add = |name: &str, value: Option<String>| -> Result<(), PluginError> {
        if name.is_empty() {
            return Err(bad("options", "an option has an empty name"));
        }
        if name.starts_with('-') {
            return Err(bad("options", format_args!("write option `{name}` without the leading dashes")));
        }
        if name.contains(char::is_whitespace) {
            return Err(bad("options", format_args!("option name `{name}` contains a blank")));
        }
        if OWN_OPTIONS.contains(&name) {
            return Err(bad(
                "options",
                format_args!("the {name} option is set by the plugin: use the typed setting (or leave it out)"),
            ));
        }
        out.push(match value {
            Some(v) => format!("--{name}={v}"),
            None => format!("--{name}"),
        });
        Ok(())
    };
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "y" } else { "n" }.to_string()),
        _ => None,
    };
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, v) in map {
                let v = scalar(v).ok_or_else(|| {
                    bad("options", format_args!("{name}: the value must be a string, number or boolean"))
                })?;
                add(name, Some(v))?;
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => match s.split_once('=') {
                        Some((name, v)) => add(name, Some(v.to_string()))?,
                        None => add(s, None)?,
                    },
                    Value::Object(map) if map.len() == 1 => {
                        for (name, v) in map {
                            let v = scalar(v).ok_or_else(|| {
                                bad("options", format_args!("{name}: the value must be a string, number or boolean"))
                            })?;
                            add(name, Some(v))?;
                        }
                    }
                    other => {
                        return Err(bad(
                            "options",
                            format_args!("{other} is not an option: use `name`, `name=value` or a map with one key"),
                        ))
                    }
                }
            }
        }
        Some(other) => return Err(bad("options", format_args!("must be a list or a map, found {}", kind(other)))),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Settings {
        Settings::parse(&v.to_string(), "demo").unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    #[test]
    fn defaults() {
        let s = parse(json!(null));
        assert_eq!(s.stanza, "demo", "the scope is the default stanza");
        assert_eq!(s.executable, "pgbackrest");
        assert!(!s.delta && !s.no_leader && !s.keep_data);
        assert_eq!(s.info_args(), ["--stanza=demo", "--output=json", "info"]);
        assert_eq!(
            s.restore_args("/data/pg"),
            ["--stanza=demo", "--pg1-path=/data/pg", "--log-level-console=info", "restore"]
        );
        assert_eq!(s.restore_command(), "pgbackrest --stanza=demo archive-get %f \"%p\"");
    }

    #[test]
    fn every_setting_reaches_the_command_line() {
        let s = parse(json!({
            "stanza": "main",
            "config": "/etc/pg backrest.conf",
            "delta": true,
            "type": "time",
            "target": "2026-12-06 12:00:00+00",
            "target_action": "promote",
            "set": "20261206-120000F",
            "options": ["process-max=4", {"repo": 2}, "archive-mode-check", {"log-level-console": "detail"}],
            "executable": "/opt/pgbackrest/bin/pgbackrest",
            "no_leader": 1,
            "keep_data": "yes",
        }));
        assert!(s.no_leader && s.keep_data);
        assert_eq!(
            s.restore_args("/data/pg"),
            [
                "--config=/etc/pg backrest.conf",
                "--stanza=main",
                "--pg1-path=/data/pg",
                "--delta",
                "--type=time",
                "--target=2026-12-06 12:00:00+00",
                "--target-action=promote",
                "--set=20261206-120000F",
                "--process-max=4",
                "--repo=2",
                "--archive-mode-check",
                "--log-level-console=detail",
                "restore",
            ]
        );
        assert_eq!(
            s.restore_command(),
            "/opt/pgbackrest/bin/pgbackrest '--config=/etc/pg backrest.conf' --stanza=main archive-get %f \"%p\""
        );
        assert_eq!(
            parse(json!({"options": {"process-max": 4, "archive-check": false}})).options,
            ["--process-max=4", "--archive-check=n"]
        );
        assert_eq!(parse(json!({"type": "xid", "target": 1234})).target.as_deref(), Some("1234"));
    }

    #[test]
    fn mistakes_are_refused_with_the_key_path() {
        for (v, message) in [
            (json!(["x"]), "postgresql.pgbackrest: must be a map of settings, found a list"),
            (json!({"stanza": ""}), "postgresql.pgbackrest.stanza: must not be empty"),
            (json!({"stanza": ["a"]}), "postgresql.pgbackrest.stanza: must be a string, found a list"),
            (json!({"delta": "yes"}), "postgresql.pgbackrest.delta: must be true or false, found a string"),
            (json!({"type": "latest"}), "postgresql.pgbackrest.type: unknown restore type 'latest'"),
            (json!({"type": "time"}), "postgresql.pgbackrest.target: is required with type 'time'"),
            (json!({"target": "x"}), "postgresql.pgbackrest.target: is only used with type"),
            (json!({"type": "standby", "target": "x"}), "postgresql.pgbackrest.target: is only used with type"),
            (json!({"type": "lsn", "target": "0/3", "target_action": "stop"}), "target_action: unknown action 'stop'"),
            (
                json!({"target_action": "promote"}),
                "postgresql.pgbackrest.target_action: is only used with a recovery target",
            ),
            (json!({"options": ["--delta"]}), "postgresql.pgbackrest.options: write option `--delta` without"),
            (
                json!({"options": ["pg1-path=/x"]}),
                "postgresql.pgbackrest.options: the pg1-path option is set by the plugin",
            ),
            (json!({"options": {"type": "time"}}), "the type option is set by the plugin"),
            (json!({"options": [{"a": 1, "b": 2}]}), "is not an option"),
            (json!({"options": [{"a": [1]}]}), "a: the value must be"),
            (json!({"options": "process-max=4"}), "postgresql.pgbackrest.options: must be a list or a map"),
            (json!({"stanaz": "main"}), "postgresql.pgbackrest.stanaz: unknown setting"),
            (json!({"command": "pgbackrest restore"}), "postgresql.pgbackrest.command: unknown setting"),
            (json!({"config": "a\nb"}), "postgresql.pgbackrest.config: must be one line"),
        ] {
            let err = Settings::parse(&v.to_string(), "demo").err().unwrap_or_else(|| panic!("{v} was accepted"));
            assert_eq!(err.kind, palisade_plugin_api::ErrorKind::Config);
            assert!(err.message.contains(message), "{v}: {}", err.message);
        }
        assert!(Settings::parse("{", "demo").is_err());
        let err = Settings::parse("null", "").err().map(|e| e.message);
        assert_eq!(err.as_deref(), Some("postgresql.pgbackrest.stanza: is not set and the scope is empty"));
    }
}
