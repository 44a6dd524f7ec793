//! Settings palisade accepts (so that a Patroni file loads) but does not
//! act on yet: one table, [`NOT_ACTED_ON`], and the check that finds them
//! in a configuration.
//!
//! Nothing may be silently ignored. A user who sets
//! `postgresql.database` believes the daemon connects there; until it
//! does, palisade must say so. The daemon logs every entry it finds at WARNING when it starts, on every reload and whenever the
//! dynamic configuration changes; `palisade --validate-config` lists them.
//! When a feature lands, its rows leave this table in the same commit.

use serde_json::{Map, Value};

use crate::types::{GlobalConfig, LocalConfig};

/// One setting palisade accepts and does not act on yet.
#[derive(Clone, Copy, Debug)]
pub struct Unacted {
    /// The key path as a user writes it.
    pub key: &'static str,
    /// What a user who sets it expects and does not get.
    pub consequence: &'static str,
}

/// Every setting palisade accepts without acting on it. The check in
/// [`not_acted_on`] reports a row only when the configuration gives it a
/// value that would change what Patroni does.
pub static NOT_ACTED_ON: &[Unacted] = &[
    Unacted {
        key: "postgresql.database",
        consequence: "the daemon (status queries, slots, logical slot copies from the leader) always connects to \
                      database 'postgres'",
    },
    Unacted {
        key: "restapi.server_tokens",
        consequence: "the Server header of REST API responses is always palisade's own",
    },
];

/// A setting of this configuration that palisade does not act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotActedOn {
    /// The key path, with the place it was found when that helps
    /// (`postgresql.use_pg_rewind (dynamic)`).
    pub key: String,
    pub consequence: &'static str,
}

impl std::fmt::Display for NotActedOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: not acted on yet: {}", self.key, self.consequence)
    }
}

fn row(key: &str) -> &'static Unacted {
    NOT_ACTED_ON.iter().find(|u| u.key == key).unwrap_or(&NOT_ACTED_ON[0])
}

fn get<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = map.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// The settings of `local` (the file and environment) and `global` (the
/// dynamic configuration in force) that would change what Patroni does and
/// that palisade does not act on yet, in [`NOT_ACTED_ON`]'s order. Every
/// dynamic setting is acted on today; `global` stays so that a row for one
/// needs no change at the callers.
pub fn not_acted_on(local: &LocalConfig, _global: &GlobalConfig) -> Vec<NotActedOn> {
    let raw = &local.raw;
    let mut found: Vec<(String, &'static str)> = Vec::new();
    let mut add = |key: &str, shown: String| found.push((shown, row(key).consequence));

    if get(raw, "postgresql.database").is_some_and(|v| v.as_str() != Some("postgres")) {
        add("postgresql.database", "postgresql.database".into());
    }
    if get(raw, "restapi.server_tokens").is_some_and(|v| !v.is_null()) {
        add("restapi.server_tokens", "restapi.server_tokens".into());
    }
    found.into_iter().map(|(key, consequence)| NotActedOn { key, consequence }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// A valid local configuration with `yaml` merged over a minimal one.
    fn local(yaml: &str) -> LocalConfig {
        let base = "scope: s\nname: n\netcd3: {hosts: '127.0.0.1:2379'}\nrestapi: {listen: '127.0.0.1:8008'}\n\
                    postgresql: {listen: '127.0.0.1:5432', data_dir: /tmp/d, authentication: {superuser: {username: p}, replication: {username: r}}}\n";
        let Ok(Value::Object(mut config)) = crate::yaml::parse(base) else { panic!("base configuration") };
        if !yaml.is_empty() {
            let Ok(Value::Object(case)) = crate::yaml::parse(yaml) else { panic!("case {yaml:?}") };
            crate::source::patch_config(&mut config, &case);
        }
        let env =
            BTreeMap::from([(crate::source::CONFIGURATION_VARIABLE.to_string(), Value::Object(config).to_string())]);
        crate::load(None, &env).expect("valid configuration").config
    }

    fn keys(local_yaml: &str, dynamic: Value) -> Vec<String> {
        let Value::Object(d) = dynamic else { panic!("dynamic must be a mapping") };
        let (global, _) = GlobalConfig::from_dynamic(&d);
        not_acted_on(&local(local_yaml), &global).into_iter().map(|n| n.key).collect()
    }

    #[test]
    fn every_row_is_found_when_set_and_only_then() {
        let cases: &[(&str, Value, &[&str])] = &[
            ("", json!({}), &[]),
            ("", json!({"synchronous_mode": false, "failsafe_mode": "off", "synchronous_node_count": 1}), &[]),
            // Synchronous and quorum modes, strict mode, the count, the lag limit are acted on.
            ("", json!({"synchronous_mode": "on", "synchronous_mode_strict": true}), &[]),
            ("", json!({"synchronous_node_count": 2, "maximum_lag_on_syncnode": 1048576}), &[]),
            ("", json!({"synchronous_mode": "quorum", "synchronous_node_count": 2}), &[]),
            ("", json!({"failsafe_mode": true}), &[]),
            // Acted on: standby clusters.
            ("", json!({"standby_cluster": {"host": "10.0.0.1"}}), &[]),
            ("postgresql: {database: app}", json!({}), &["postgresql.database"]),
            ("postgresql: {database: postgres}", json!({}), &[]),
            // Acted on: the stop timeout, pg_rewind and the removal of diverged data.
            ("", json!({"primary_stop_timeout": 30}), &[]),
            ("", json!({"master_stop_timeout": 30}), &[]),
            // Acted on: permanent slots.
            ("", json!({"slots": {"s1": {"type": "physical"}}}), &[]),
            ("", json!({"postgresql": {"use_pg_rewind": true}}), &[]),
            (
                "postgresql: {use_pg_rewind: true, remove_data_directory_on_rewind_failure: true, \
                 remove_data_directory_on_diverged_timelines: true}\n",
                json!({}),
                &[],
            ),
            // Acted on: the watchdog.
            ("watchdog: {mode: required}\n", json!({}), &[]),
            ("watchdog: {mode: automatic}\n", json!({}), &[]),
            ("watchdog: {mode: 'off'}\n", json!({}), &[]),
            ("tags: {nosync: true, sync_priority: 2}\n", json!({}), &[]),
            // Acted on: the MPP plugin (Citus).
            ("citus: {group: 0, database: citus}\n", json!({}), &[]),
            // Acted on: the JSON log layout, its static fields, file modes.
            ("log: {static_fields: {app: x}, mode: 0600}\n", json!({}), &[]),
            ("log: {type: json, format: [message, levelname]}\n", json!({}), &[]),
            // Acted on: repeated heartbeat lines are folded.
            ("log: {format: '%(message)s', deduplicate_heartbeat_logs: true}\n", json!({}), &[]),
            ("restapi: {server_tokens: minimal}\n", json!({}), &["restapi.server_tokens"]),
        ];
        for (yaml, dynamic, want) in cases {
            assert_eq!(keys(yaml, dynamic.clone()), *want, "local {yaml:?}, dynamic {dynamic}");
        }
    }

    #[test]
    fn rows_are_unique_and_described() {
        for (i, u) in NOT_ACTED_ON.iter().enumerate() {
            assert!(!u.consequence.is_empty(), "{}", u.key);
            assert!(NOT_ACTED_ON[..i].iter().all(|o| o.key != u.key), "{} twice", u.key);
            assert!(std::ptr::eq(row(u.key), u), "{}", u.key);
        }
    }

    #[test]
    fn displayed_with_its_key() {
        let n = NotActedOn { key: "postgresql.database".into(), consequence: row("postgresql.database").consequence };
        assert!(n.to_string().starts_with("postgresql.database: not acted on yet: the daemon"));
    }
}
