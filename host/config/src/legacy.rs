//! Older spellings Patroni still accepts, rewritten to the current layout
//! before validation (Patroni's `_build_effective_configuration`). Each
//! rewrite leaves a warning so that users can update their files.

use serde_json::{Map, Value};

use crate::env::AUTH_ALLOWED_PARAMETERS;
use crate::types::ConfigWarning;

fn warn(warnings: &mut Vec<ConfigWarning>, path: &str, message: impl Into<String>) {
    warnings.push(ConfigWarning { path: path.into(), message: message.into() });
}

/// Rewrites legacy spellings in place.
pub fn normalize(config: &mut Map<String, Value>, warnings: &mut Vec<ConfigWarning>) {
    // `exhibitor` used to live inside `zookeeper`.
    let nested = config.get_mut("zookeeper").and_then(Value::as_object_mut).and_then(|zk| zk.remove("exhibitor"));
    if let Some(exhibitor) = nested {
        config.remove("zookeeper");
        config.insert("exhibitor".into(), exhibitor);
        warn(warnings, "zookeeper.exhibitor", "deprecated spelling: read as a top-level 'exhibitor' section");
    }

    // `name` used to live inside `postgresql`.
    if !config.contains_key("name") {
        if let Some(name) = config.get("postgresql").and_then(|p| p.get("name")).cloned() {
            config.insert("name".into(), name);
            warn(warnings, "postgresql.name", "deprecated spelling: read as the top-level 'name'");
        }
    }

    // `restapi.auth` / `ctl.auth` as "username:password".
    for section in ["restapi", "ctl"] {
        let Some(sec) = config.get_mut(section).and_then(Value::as_object_mut) else { continue };
        if sec.contains_key("authentication") {
            continue;
        }
        if let Some(Value::String(auth)) = sec.get("auth").cloned() {
            if let Some((user, password)) = auth.split_once(':') {
                let mut a = Map::new();
                a.insert("username".into(), Value::String(user.into()));
                a.insert("password".into(), Value::String(password.into()));
                sec.insert("authentication".into(), Value::Object(a));
                warn(warnings, &format!("{section}.auth"), "deprecated spelling: read as 'authentication'");
            }
        }
    }

    if let Some(pg) = config.get_mut("postgresql").and_then(Value::as_object_mut) {
        normalize_authentication(pg, warnings);
    }

    // Citus clusters bootstrap in quorum synchronous mode unless told
    // otherwise. As Patroni (`setdefault` on `bootstrap` and `bootstrap.dcs`),
    // a missing `bootstrap` or `bootstrap.dcs` is created for it, so a
    // Citus node without a `bootstrap` section can still initialise its group.
    let citus_valid = config.get("citus").is_some_and(|c| {
        c.get("group").is_some_and(|g| g.is_i64() || g.is_u64()) && c.get("database").is_some_and(Value::is_string)
    });
    if citus_valid {
        let bootstrap = config.entry("bootstrap").or_insert_with(|| Value::Object(Map::new()));
        if let Some(bootstrap) = bootstrap.as_object_mut() {
            let dcs = bootstrap.entry("dcs").or_insert_with(|| Value::Object(Map::new()));
            if let Some(dcs) = dcs.as_object_mut() {
                dcs.entry("synchronous_mode").or_insert_with(|| Value::String("quorum".into()));
            }
        }
    }

    // Dynamic settings at the top level are overridden by the DCS in Patroni.
    for key in ["ttl", "loop_wait", "retry_timeout", "standby_cluster"] {
        if config.contains_key(key) {
            warn(warnings, key, "has no effect here: set it under bootstrap.dcs or in the dynamic configuration");
        }
    }
}

/// `postgresql.superuser` / `postgresql.replication` / `postgresql.pg_rewind`
/// from before `postgresql.authentication` existed, and the filtering of
/// each role's settings to the connection parameters Patroni passes on.
fn normalize_authentication(pg: &mut Map<String, Value>, warnings: &mut Vec<ConfigWarning>) {
    if !pg.contains_key("authentication") && (pg.contains_key("superuser") || pg.contains_key("replication")) {
        let mut auth = Map::new();
        for user in ["replication", "superuser"] {
            if let Some(v) = pg.get(user) {
                auth.insert(user.into(), v.clone());
                warn(warnings, &format!("postgresql.{user}"), "deprecated spelling: read as postgresql.authentication");
            }
        }
        pg.insert("authentication".into(), Value::Object(auth));
        if !pg.contains_key("use_pg_rewind") {
            pg.insert("use_pg_rewind".into(), Value::Bool(pg.contains_key("pg_rewind")));
        }
    }
    let rewind = pg.get("pg_rewind").cloned();
    if let Some(Value::Object(auth)) = pg.get_mut("authentication") {
        if !auth.contains_key("superuser") {
            if let Some(rewind) = rewind {
                auth.insert("superuser".into(), rewind);
                warn(
                    warnings,
                    "postgresql.pg_rewind",
                    "deprecated spelling: read as postgresql.authentication.superuser",
                );
            }
        }
        for (user, entry) in auth.iter_mut() {
            if let Value::Object(entry) = entry {
                let unknown: Vec<String> =
                    entry.keys().filter(|k| !AUTH_ALLOWED_PARAMETERS.contains(&k.as_str())).cloned().collect();
                for key in unknown {
                    entry.remove(&key);
                    warn(
                        warnings,
                        &format!("postgresql.authentication.{user}.{key}"),
                        "ignored: not a connection parameter Patroni passes on",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalized(v: Value) -> (Value, Vec<String>) {
        let mut m = v.as_object().cloned().expect("object");
        let mut w = Vec::new();
        normalize(&mut m, &mut w);
        (Value::Object(m), w.into_iter().map(|w| w.path).collect())
    }

    #[test]
    fn legacy_spellings_table() {
        let cases: Vec<(Value, Value)> = vec![
            (
                json!({"zookeeper": {"exhibitor": {"hosts": ["a"], "port": 8181}}}),
                json!({"exhibitor": {"hosts": ["a"], "port": 8181}}),
            ),
            (json!({"postgresql": {"name": "n1"}}), json!({"postgresql": {"name": "n1"}, "name": "n1"})),
            (
                json!({"restapi": {"auth": "u:p:x"}}),
                json!({"restapi": {"auth": "u:p:x", "authentication": {"username": "u", "password": "p:x"}}}),
            ),
            (
                json!({"postgresql": {"superuser": {"username": "s"}, "replication": {"username": "r"}, "pg_rewind": {"username": "w"}}}),
                json!({"postgresql": {"superuser": {"username": "s"}, "replication": {"username": "r"},
                    "pg_rewind": {"username": "w"},
                    "authentication": {"replication": {"username": "r"}, "superuser": {"username": "s"}},
                    "use_pg_rewind": true}}),
            ),
            (
                json!({"postgresql": {"authentication": {"replication": {"username": "r"}}, "pg_rewind": {"username": "w", "password": "x"}}}),
                json!({"postgresql": {"authentication": {"replication": {"username": "r"}, "superuser": {"username": "w", "password": "x"}},
                    "pg_rewind": {"username": "w", "password": "x"}}}),
            ),
            (
                json!({"postgresql": {"authentication": {"superuser": {"username": "s", "dbname": "x"}}}}),
                json!({"postgresql": {"authentication": {"superuser": {"username": "s"}}}}),
            ),
            (
                json!({"citus": {"group": 0, "database": "c"}, "bootstrap": {"dcs": {}}}),
                json!({"citus": {"group": 0, "database": "c"}, "bootstrap": {"dcs": {"synchronous_mode": "quorum"}}}),
            ),
            (
                json!({"citus": {"group": 0, "database": "c"}, "bootstrap": {"dcs": {"synchronous_mode": false}}}),
                json!({"citus": {"group": 0, "database": "c"}, "bootstrap": {"dcs": {"synchronous_mode": false}}}),
            ),
            // Patroni creates what is missing.
            (
                json!({"citus": {"group": 1, "database": "c"}}),
                json!({"citus": {"group": 1, "database": "c"}, "bootstrap": {"dcs": {"synchronous_mode": "quorum"}}}),
            ),
            (
                json!({"citus": {"group": 1, "database": "c"}, "bootstrap": {"method": "initdb"}}),
                json!({"citus": {"group": 1, "database": "c"},
                    "bootstrap": {"method": "initdb", "dcs": {"synchronous_mode": "quorum"}}}),
            ),
            // An invalid citus section is no Citus cluster.
            (json!({"citus": {"group": "x", "database": "c"}}), json!({"citus": {"group": "x", "database": "c"}})),
        ];
        for (input, expected) in cases {
            let (got, warnings) = normalized(input.clone());
            assert_eq!(got, expected, "normalising {input}");
            let silent_change = input.get("citus").is_some();
            assert_eq!(warnings.is_empty(), got == input || silent_change, "warnings for {input}");
        }
    }

    #[test]
    fn top_level_dynamic_keys_warn() {
        let (_, w) = normalized(json!({"ttl": 5, "loop_wait": 1}));
        assert_eq!(w, ["ttl", "loop_wait"]);
    }
}
