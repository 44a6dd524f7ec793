//! The server parameters PostgreSQL runs with, and how a change to them
//! is applied (Patroni's `ConfigHandler.get_server_parameters`,
//! `effective_configuration` and `reload_config`).

use std::collections::BTreeMap;
use std::path::Path;

use palisade_config::{EffectivePostgresql, PostgresqlConfig};
use serde::Serialize;
use serde_json::Value;

use crate::controldata::ControlData;
use palisade_pycompat::patroni::{compare_values, maybe_convert_from_base_unit, parse_int};

/// The parameters Patroni passes on the postmaster command line (so that
/// `ALTER SYSTEM` cannot change them), in Patroni's order. `wal_keep_*`
/// are in Patroni's list but never on the command line.
pub const CMDLINE_OPTIONS: &[&str] = &[
    "listen_addresses",
    "port",
    "cluster_name",
    "wal_level",
    "hot_standby",
    "max_connections",
    "max_wal_senders",
    "wal_keep_segments",
    "wal_keep_size",
    "max_prepared_transactions",
    "max_locks_per_transaction",
    "track_commit_timestamp",
    "max_replication_slots",
    "max_worker_processes",
    "wal_log_hints",
];

/// Recovery parameters (Patroni's `recovery_parameters`): the major versions
/// each exists in, `[from, till)`.
pub const RECOVERY_PARAMETERS: &[(&str, u32, Option<u32>)] = &[
    ("archive_cleanup_command", 90300, None),
    ("pause_at_recovery_target", 90300, Some(90500)),
    ("primary_conninfo", 90300, None),
    ("primary_slot_name", 90400, None),
    ("promote_trigger_file", 120000, Some(160000)),
    ("recovery_end_command", 90300, None),
    ("recovery_min_apply_delay", 90400, None),
    ("recovery_target", 90400, None),
    ("recovery_target_action", 90500, None),
    ("recovery_target_inclusive", 90300, None),
    ("recovery_target_lsn", 100000, None),
    ("recovery_target_name", 90400, None),
    ("recovery_target_time", 90300, None),
    ("recovery_target_timeline", 90300, None),
    ("recovery_target_xid", 90300, None),
    ("restore_command", 90300, None),
    ("standby_mode", 90300, Some(120000)),
    ("trigger_file", 90300, Some(120000)),
];

/// Whether `name` is a recovery parameter (of any version).
pub fn is_recovery_parameter(name: &str) -> bool {
    let lower = name.to_lowercase();
    RECOVERY_PARAMETERS.iter().any(|(n, _, _)| *n == lower)
}

/// A configuration value as Patroni writes it: Python's `str()` of what the
/// YAML or JSON held (`true` → `True`, `100` → `100`, `1e20` → `1e+20`). `None` for null,
/// lists and maps, which are not parameter values.
pub fn value_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(_) | Value::Bool(_) | Value::Number(_) => Some(palisade_pycompat::py::to_str(value)),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Old and new value of a parameter that needs a restart, as Patroni
/// publishes it in `pending_restart_reason`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParamDiff {
    pub old_value: String,
    pub new_value: String,
}

impl ParamDiff {
    /// Patroni's `get_param_diff`: both values as strings, converted from
    /// the base unit when the type is known (`16384` with unit `8kB`
    /// becomes `128MB`).
    pub fn new(old: &str, new: &str, vartype: Option<&str>, unit: Option<&str>) -> Self {
        match vartype {
            Some(t) => Self {
                old_value: maybe_convert_from_base_unit(old, t, unit),
                new_value: maybe_convert_from_base_unit(new, t, unit),
            },
            None => Self { old_value: old.to_string(), new_value: new.to_string() },
        }
    }
}

/// The parameters for postgresql.conf and the command line, by name (as
/// spelled in the configuration; looked up case-insensitively).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerParameters {
    map: BTreeMap<String, String>,
}

impl ServerParameters {
    /// Patroni's `get_server_parameters`: the merged `parameters`, plus
    /// `listen_addresses` and `port` from `postgresql.listen` and
    /// `cluster_name` from the scope; `wal_level: hot_standby` spelled
    /// `replica`; `wal_keep_segments` turned into `wal_keep_size` on 13+
    /// (and back before 13); `hba_file`/`ident_file` relative to
    /// `config_dir`. `major` is 0 when not known yet.
    pub fn build(local: &PostgresqlConfig, scope: &str, effective: &EffectivePostgresql, major: u32) -> Self {
        let mut p = Self::default();
        for (name, value) in &effective.parameters {
            match value_to_string(value) {
                Some(v) => p.set(name, v),
                None if value.is_null() => {}
                None => tracing::warn!("ignoring postgresql.parameters.{name}: {value} is not a parameter value"),
            }
        }
        p.set("cluster_name", scope);
        p.set("listen_addresses", local.listen.hosts.join(","));
        p.set("port", local.listen.port.to_string());
        let hot_standby_name = if major >= 90600 || major == 0 { "hot_standby" } else { "replica" };
        if p.get("wal_level") == Some(hot_standby_name) {
            p.set("wal_level", if major >= 90600 || major == 0 { "replica" } else { "hot_standby" });
        }
        if major >= 130000 {
            let segments = p.remove("wal_keep_segments").and_then(|v| parse_int(&v, None)).unwrap_or(8);
            if p.get("wal_keep_size").is_none() {
                p.set("wal_keep_size", format!("{}MB", segments * 16));
            }
        } else if major > 0 {
            let size = p.remove("wal_keep_size").and_then(|v| parse_int(&v, Some("MB"))).unwrap_or(128);
            if p.get("wal_keep_segments").is_none() {
                p.set("wal_keep_segments", ((size + 8) / 16).to_string());
            }
        }
        for key in ["hba_file", "ident_file"] {
            if let Some(v) = p.get(key) {
                let joined = local.config_dir.join(v).to_string_lossy().into_owned();
                p.set(key, joined);
            }
        }
        p
    }

    /// Build from name/value pairs (tests, parameters read back from a file).
    pub fn from_pairs<I: IntoIterator<Item = (K, V)>, K: Into<String>, V: Into<String>>(pairs: I) -> Self {
        let mut p = Self::default();
        for (k, v) in pairs {
            p.set(k.into(), v.into());
        }
        p
    }

    fn key_of(&self, name: &str) -> Option<&String> {
        self.map.keys().find(|k| k.eq_ignore_ascii_case(name))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.key_of(name).and_then(|k| self.map.get(k)).map(String::as_str)
    }

    /// Set a parameter (replacing any spelling of the same name).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        if let Some(existing) = self.key_of(&name).cloned() {
            self.map.remove(&existing);
        }
        self.map.insert(name, value.into());
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let key = self.key_of(name)?.clone();
        self.map.remove(&key)
    }

    /// Name order, as written to postgresql.conf.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// `--name=value` options for the postmaster (Patroni's `CMDLINE_OPTIONS`
    /// that are set, in its order, without `wal_keep_*`).
    pub fn cmdline_options(&self) -> Vec<String> {
        CMDLINE_OPTIONS
            .iter()
            .filter(|n| !n.starts_with("wal_keep_"))
            .filter_map(|n| self.get(n).map(|v| format!("--{n}={v}")))
            .collect()
    }

    /// Patroni's `effective_configuration` for a server that is not a
    /// primary: a standby cannot start with `max_connections` and friends
    /// lower than the values recorded in pg_control, so those are raised
    /// to the pg_control values. Returns the raised parameters as
    /// `pending_restart_reason` entries (old: pg_control, new: configured).
    pub fn raise_to_controldata(&mut self, control: &ControlData, major: u32) -> BTreeMap<String, ParamDiff> {
        let mut mapping: Vec<(&str, Option<i64>)> = vec![
            ("max_connections", control.max_connections),
            ("max_prepared_transactions", control.max_prepared_xacts),
            ("max_locks_per_transaction", control.max_locks_per_xact),
            ("max_worker_processes", control.max_worker_processes),
        ];
        if major >= 120000 || major == 0 {
            mapping.push(("max_wal_senders", control.max_wal_senders));
        }
        let mut diff = BTreeMap::new();
        for (name, control_value) in mapping {
            let configured = self.get(name).and_then(|v| parse_int(v, None));
            if let (Some(c), Some(v)) = (control_value, configured) {
                if c > v {
                    tracing::info!(
                        "{name} value in pg_controldata: {c}, in the global configuration: {v}. \
                         pg_controldata value will be used. Setting 'Pending restart' flag"
                    );
                    self.set(name, c.to_string());
                    diff.insert(name.to_string(), ParamDiff::new(&c.to_string(), &v.to_string(), None, None));
                }
            }
        }
        diff
    }

    /// `hba_file` when set to something other than `<config_dir>/pg_hba.conf`:
    /// then pg_hba.conf is not ours to write.
    pub fn custom_hba_file(&self, default: &Path) -> Option<&str> {
        self.get("hba_file").filter(|v| Path::new(v) != default)
    }

    /// Same for `ident_file`.
    pub fn custom_ident_file(&self, default: &Path) -> Option<&str> {
        self.get("ident_file").filter(|v| Path::new(v) != default)
    }
}

/// One `pg_settings` row, as Patroni reads it to compare values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingRow {
    pub name: String,
    /// `setting`: the value in the base unit.
    pub setting: String,
    pub unit: Option<String>,
    pub vartype: String,
    pub context: String,
    pub sourcefile: Option<String>,
}

/// What applying new parameters to a running server takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParameterChanges {
    /// Some parameter differs from what the server runs with (a reload is
    /// needed, at least).
    pub changed: bool,
    /// The changed parameters that only a restart applies.
    pub restart: BTreeMap<String, ParamDiff>,
    /// Parameters the server does not know: Patroni drops them.
    pub invalid: Vec<String>,
}

/// Parameters whose changes are not judged by comparing with pg_settings
/// (recovery settings are compared separately; `hot_standby` is Patroni's).
fn skip_when_comparing(name: &str) -> bool {
    is_recovery_parameter(name) || name.eq_ignore_ascii_case("hot_standby")
}

/// Patroni's `reload_config` comparison: `desired` against the server's
/// `pg_settings` rows (which must include every name in `desired` and
/// `previous`, and `shared_buffers`, `wal_segment_size`, `wal_block_size`
/// when `wal_buffers` is set), `previous` being what was written before
/// (to notice removed parameters and custom `x.y` ones).
pub fn compare_with_settings(
    desired: &ServerParameters,
    previous: &ServerParameters,
    rows: &[SettingRow],
) -> ParameterChanges {
    let mut changes: BTreeMap<String, Option<String>> = desired
        .iter()
        .filter(|(n, _)| !skip_when_comparing(n))
        .map(|(n, v)| (n.to_lowercase(), Some(v.to_string())))
        .collect();
    for (name, _) in previous.iter() {
        if !skip_when_comparing(name) {
            changes.entry(name.to_lowercase()).or_insert(None);
        }
    }
    let by_name: BTreeMap<String, &SettingRow> = rows.iter().map(|r| (r.name.to_lowercase(), r)).collect();
    if let Some(Some(new)) = changes.get("wal_buffers") {
        if wal_buffers_unchanged(new, &by_name) {
            changes.remove("wal_buffers");
        }
    }
    let mut result = ParameterChanges::default();
    for (name, row) in &by_name {
        if row.context == "internal" {
            continue;
        }
        let Some(new) = changes.remove(name) else { continue };
        let unit = row.unit.as_deref();
        match new {
            Some(new) if compare_values(&row.vartype, unit, &row.setting, &new) => {
                if let Some(old) = previous.get(name) {
                    if !compare_values(&row.vartype, unit, &row.setting, old) {
                        result.changed = true;
                    }
                }
            }
            new => {
                let new = new.unwrap_or_default();
                result.changed = true;
                if row.context == "postmaster" {
                    let diff = ParamDiff::new(&row.setting, &new, Some(&row.vartype), unit);
                    tracing::info!(
                        "Changed {} from '{}' to '{}' (restart might be required)",
                        row.name,
                        diff.old_value,
                        new
                    );
                    result.restart.insert(row.name.clone(), diff);
                } else {
                    tracing::info!(
                        "Changed {} from '{}' to '{}'",
                        row.name,
                        maybe_convert_from_base_unit(&row.setting, &row.vartype, unit),
                        new
                    );
                }
            }
        }
    }
    for (name, value) in changes {
        if name.contains('.') {
            let old = previous.get(&name);
            if value.is_none() || old.is_none() || value.as_deref() != old {
                result.changed = true;
            }
        } else if value.is_some() {
            tracing::warn!("Removing invalid parameter `{name}` from postgresql.parameters");
            result.invalid.push(name);
        }
    }
    result
}

/// `wal_buffers = -1` means "1/32 of shared_buffers, between 8 pages and one
/// WAL segment": compare what that works out to (Patroni's `_handle_wal_buffers`).
fn wal_buffers_unchanged(new: &str, rows: &BTreeMap<String, &SettingRow>) -> bool {
    let (Some(current), Some(shared), Some(segment), Some(block)) =
        (rows.get("wal_buffers"), rows.get("shared_buffers"), rows.get("wal_segment_size"), rows.get("wal_block_size"))
    else {
        return false;
    };
    let block_size = parse_int(&block.setting, None).filter(|v| *v > 0).unwrap_or(8192) as f64;
    let segment_unit = match segment.unit.as_deref() {
        Some(u) if u.starts_with(|c: char| c.is_ascii_digit()) => parse_int(u, Some("B")).unwrap_or(8192) as f64,
        _ => 1.0,
    };
    let segment_size = parse_int(&segment.setting, None).map(|v| v as f64).unwrap_or(if segment.unit.is_none() {
        16_777_216.0
    } else {
        2048.0
    }) * segment_unit
        / block_size;
    let shared_pages = parse_int(&shared.setting, None).unwrap_or(16384) as f64;
    let default = (shared_pages / 32.0).max(8.0).min(segment_size);
    let value = |v: &str, unit: Option<&str>| -> Option<f64> {
        if v.trim() == "-1" {
            Some(default)
        } else {
            parse_int(v, unit).map(|x| x as f64)
        }
    };
    let unit = current.unit.as_deref();
    let new_value = value(new, unit);
    let old_value =
        if current.setting == "-1" { Some(default) } else { parse_int(&current.setting, None).map(|v| v as f64) };
    new_value.is_some() && new_value == old_value
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use palisade_config::{AuthenticationConfig, BinNames, HostPort};
    use serde_json::json;
    use std::path::PathBuf;
    use std::time::Duration;

    pub(crate) fn local_config() -> PostgresqlConfig {
        PostgresqlConfig {
            listen: HostPort { hosts: vec!["127.0.0.1".into(), "10.0.0.1".into()], port: 5433 },
            connect_address: HostPort { hosts: vec!["10.0.0.1".into()], port: 5433 },
            proxy_address: None,
            data_dir: PathBuf::from("/data"),
            config_dir: PathBuf::from("/data"),
            bin_dir: None,
            bin_name: BinNames::default(),
            pgpass: PathBuf::from("/tmp/pgpass"),
            authentication: AuthenticationConfig::default(),
            callbacks: Default::default(),
            create_replica_methods: vec!["basebackup".into()],
            replica_method_sections: Default::default(),
            parameters: Default::default(),
            pg_hba: None,
            pg_ident: None,
            recovery_conf: Default::default(),
            custom_conf: None,
            pg_ctl_timeout: Duration::from_secs(60),
            use_pg_rewind: None,
            remove_data_directory_on_rewind_failure: false,
            remove_data_directory_on_diverged_timelines: false,
            use_unix_socket: false,
            use_unix_socket_repl: false,
            pre_promote: None,
            before_stop: None,
            hooks: Default::default(),
        }
    }

    pub(crate) fn effective(params: Value) -> EffectivePostgresql {
        EffectivePostgresql {
            parameters: params.as_object().cloned().unwrap_or_default(),
            pg_hba: vec![],
            pg_ident: vec![],
            recovery_conf: Default::default(),
            use_slots: true,
            use_pg_rewind: false,
        }
    }

    #[test]
    fn build_applies_patroni_rules() {
        let eff = effective(json!({
            "max_connections": 100, "wal_level": "hot_standby", "hot_standby": true, "wal_keep_segments": 10,
            "hba_file": "custom_hba.conf", "ident_file": "/etc/ident.conf", "shared_buffers": "128MB",
            "listen_addresses": "ignored", "nothing": null
        }));
        let p = ServerParameters::build(&local_config(), "batman", &eff, 150000);
        let got: Vec<(&str, &str)> = p.iter().collect();
        assert_eq!(
            got,
            vec![
                ("cluster_name", "batman"),
                ("hba_file", "/data/custom_hba.conf"),
                ("hot_standby", "True"),
                ("ident_file", "/etc/ident.conf"),
                ("listen_addresses", "127.0.0.1,10.0.0.1"),
                ("max_connections", "100"),
                ("port", "5433"),
                ("shared_buffers", "128MB"),
                ("wal_keep_size", "160MB"),
                ("wal_level", "replica"),
            ]
        );
        assert_eq!(p.custom_hba_file(Path::new("/data/pg_hba.conf")), Some("/data/custom_hba.conf"));
        assert_eq!(p.custom_ident_file(Path::new("/etc/ident.conf")), None);
    }

    #[test]
    fn wal_keep_conversions() {
        let p = ServerParameters::build(&local_config(), "s", &effective(json!({})), 150000);
        assert_eq!(p.get("wal_keep_size"), Some("128MB"));
        let p = ServerParameters::build(&local_config(), "s", &effective(json!({"wal_keep_size": "1GB"})), 150000);
        assert_eq!(p.get("wal_keep_size"), Some("1GB"));
        let p = ServerParameters::build(&local_config(), "s", &effective(json!({"wal_keep_size": "256MB"})), 120000);
        assert_eq!((p.get("wal_keep_size"), p.get("wal_keep_segments")), (None, Some("16")));
    }

    #[test]
    fn cmdline_options_in_patroni_order() {
        let p = ServerParameters::from_pairs([
            ("wal_log_hints", "on"),
            ("port", "5432"),
            ("listen_addresses", "*"),
            ("max_connections", "100"),
            ("wal_keep_size", "128MB"),
            ("work_mem", "4MB"),
        ]);
        assert_eq!(
            p.cmdline_options(),
            vec!["--listen_addresses=*", "--port=5432", "--max_connections=100", "--wal_log_hints=on"]
        );
    }

    #[test]
    fn raises_to_controldata_values() {
        let control = ControlData::parse(crate::controldata::tests::PG15_SHUT_DOWN).unwrap();
        let mut p = ServerParameters::from_pairs([
            ("max_connections", "50"),
            ("max_wal_senders", "10"),
            ("max_locks_per_transaction", "128"),
        ]);
        let diff = p.raise_to_controldata(&control, 150000);
        assert_eq!(p.get("max_connections"), Some("100"));
        assert_eq!(p.get("max_locks_per_transaction"), Some("128"));
        assert_eq!(diff.len(), 1);
        assert_eq!(diff["max_connections"], ParamDiff { old_value: "100".into(), new_value: "50".into() });
    }

    fn row(name: &str, setting: &str, unit: Option<&str>, vartype: &str, context: &str) -> SettingRow {
        SettingRow {
            name: name.into(),
            setting: setting.into(),
            unit: unit.map(String::from),
            vartype: vartype.into(),
            context: context.into(),
            sourcefile: None,
        }
    }

    #[test]
    fn compare_table() {
        let rows = vec![
            row("shared_buffers", "16384", Some("8kB"), "integer", "postmaster"),
            row("work_mem", "4096", Some("kB"), "integer", "user"),
            row("max_connections", "100", None, "integer", "postmaster"),
            row("wal_segment_size", "16777216", Some("B"), "integer", "internal"),
            row("wal_block_size", "8192", None, "integer", "internal"),
            row("wal_buffers", "512", Some("8kB"), "integer", "postmaster"),
            row("archive_mode", "off", None, "enum", "postmaster"),
        ];
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
            bool,
            &'a [(&'a str, &'a str, &'a str)],
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            (
                "nothing changed",
                &[("shared_buffers", "128MB"), ("work_mem", "4MB")],
                &[("shared_buffers", "128MB")],
                false,
                &[],
                &[],
            ),
            ("reloadable change", &[("shared_buffers", "128MB"), ("work_mem", "8MB")], &[], true, &[], &[]),
            ("restart change", &[("shared_buffers", "256MB")], &[], true, &[("shared_buffers", "128MB", "256MB")], &[]),
            ("removed postmaster parameter", &[], &[("archive_mode", "on")], true, &[("archive_mode", "off", "")], &[]),
            ("unknown parameter", &[("no_such_thing", "1")], &[], false, &[], &["no_such_thing"]),
            ("custom parameter changed", &[("my.option", "2")], &[("my.option", "1")], true, &[], &[]),
            ("custom parameter same", &[("my.option", "1")], &[("my.option", "1")], false, &[], &[]),
            ("wal_buffers auto", &[("wal_buffers", "-1")], &[], false, &[], &[]),
            (
                "recovery parameters are compared elsewhere",
                &[("primary_conninfo", "x"), ("hot_standby", "on")],
                &[],
                false,
                &[],
                &[],
            ),
        ];
        for (what, desired, previous, changed, restart, invalid) in cases {
            let got = compare_with_settings(
                &ServerParameters::from_pairs(desired.iter().copied()),
                &ServerParameters::from_pairs(previous.iter().copied()),
                &rows,
            );
            assert_eq!(got.changed, *changed, "{what}: changed");
            let want: BTreeMap<String, ParamDiff> = restart
                .iter()
                .map(|(n, o, v)| (n.to_string(), ParamDiff { old_value: o.to_string(), new_value: v.to_string() }))
                .collect();
            assert_eq!(got.restart, want, "{what}: restart");
            assert_eq!(got.invalid, invalid.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{what}: invalid");
        }
    }

    #[test]
    fn python_str_of_values() {
        assert_eq!(value_to_string(&json!(true)).as_deref(), Some("True"));
        assert_eq!(value_to_string(&json!(0.9)).as_deref(), Some("0.9"));
        assert_eq!(value_to_string(&json!(100)).as_deref(), Some("100"));
        assert_eq!(value_to_string(&json!("on")).as_deref(), Some("on"));
        assert_eq!(value_to_string(&json!(["a"])), None);
    }
}
