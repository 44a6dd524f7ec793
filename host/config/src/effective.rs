//! What PostgreSQL runs with: the dynamic `postgresql` section as the base,
//! the local one over it, by Patroni's rules (`Config._build_effective_configuration`
//! and `ConfigHandler.get_server_parameters`):
//!
//! - `parameters` merge key by key (case-insensitively), local winning,
//!   except the parameters Patroni controls ([`crate::params::CONTROLLED`]),
//!   which come only from the dynamic configuration, checked, with
//!   Patroni's defaults;
//! - every other local key replaces the dynamic one whole (`pg_hba`,
//!   `recovery_conf`, `use_pg_rewind`...), except `use_slots`, which is
//!   global only;
//! - the settings that only make sense locally (`listen`, `data_dir`,
//!   `authentication`...) are ignored in the dynamic configuration.
//!
//! [`server_parameters`] then adapts the result to a PostgreSQL version.

use serde_json::{Map, Value};

use crate::params::{ci_get, ci_insert, ci_remove, controlled, default_parameters, CONTROLLED};
use crate::types::{EffectivePostgresql, GlobalConfig, LocalConfig};
use crate::values::parse_int;

/// Keys of a dynamic `postgresql` section that are local-only.
const LOCAL_ONLY: [&str; 7] =
    ["connect_address", "proxy_address", "listen", "config_dir", "data_dir", "pgpass", "authentication"];

fn dynamic_pg(global: &GlobalConfig) -> Map<String, Value> {
    let mut pg = global.get("postgresql").and_then(Value::as_object).cloned().unwrap_or_default();
    pg.retain(|k, _| !LOCAL_ONLY.contains(&k.as_str()));
    pg
}

fn local_pg(local: &LocalConfig) -> Map<String, Value> {
    local.raw.get("postgresql").and_then(Value::as_object).cloned().unwrap_or_default()
}

/// The merged `postgresql` section (base for [`effective_postgresql`] and
/// the role overrides).
fn merged_section(local: &LocalConfig, global: &GlobalConfig) -> Map<String, Value> {
    let mut params = default_parameters();
    let mut merged = dynamic_pg(global);
    if let Some(Value::Object(dynamic)) = merged.get("parameters") {
        for (name, value) in dynamic {
            match controlled(name) {
                None => ci_insert(&mut params, name, value.clone()),
                Some(c) => {
                    if let Some(v) = c.accept(value) {
                        ci_insert(&mut params, name, v);
                    }
                }
            }
        }
    }
    for (name, value) in &local.postgresql.parameters {
        if controlled(name).is_none() {
            ci_insert(&mut params, name, value.clone());
        }
    }
    for (key, value) in local_pg(local) {
        if key != "parameters" && key != "use_slots" {
            merged.insert(key, value);
        }
    }
    merged.insert("parameters".into(), Value::Object(params));
    merged
}

fn lines(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|l| l.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn build(merged: &Map<String, Value>, local: &LocalConfig, global: &GlobalConfig) -> EffectivePostgresql {
    let parameters = merged.get("parameters").and_then(Value::as_object).cloned().unwrap_or_default();
    let use_pg_rewind = local.postgresql.use_pg_rewind.unwrap_or(global.use_pg_rewind);
    EffectivePostgresql {
        parameters,
        pg_hba: lines(merged.get("pg_hba")),
        pg_ident: lines(merged.get("pg_ident")),
        recovery_conf: merged.get("recovery_conf").and_then(Value::as_object).cloned().unwrap_or_default(),
        use_slots: global.use_slots,
        use_pg_rewind,
    }
}

/// The effective PostgreSQL configuration (see the module documentation).
pub fn effective_postgresql(local: &LocalConfig, global: &GlobalConfig) -> EffectivePostgresql {
    build(&merged_section(local, global), local, global)
}

/// The member's role for Patroni 4.1's role-based overrides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideRole {
    /// `primary` and `promoted` members.
    Primary,
    /// `replica` and `demoted` members.
    Replica,
    StandbyLeader,
}

impl OverrideRole {
    fn suffix(self) -> &'static str {
        match self {
            OverrideRole::Primary => "primary",
            OverrideRole::Replica => "replica",
            OverrideRole::StandbyLeader => "standby_leader",
        }
    }
}

/// [`effective_postgresql`] with Patroni 4.1's per-role overrides applied:
/// `parameters_<role>` merge over `parameters` (controlled parameters are
/// never overridden), `pg_hba_<role>` and `pg_ident_<role>` replace
/// `pg_hba` and `pg_ident` whole.
pub fn effective_postgresql_for_role(
    local: &LocalConfig,
    global: &GlobalConfig,
    role: OverrideRole,
) -> EffectivePostgresql {
    let mut merged = merged_section(local, global);
    let suffix = role.suffix();
    if let Some(Value::Object(overrides)) = merged.get(&format!("parameters_{suffix}")).cloned() {
        if let Some(Value::Object(params)) = merged.get_mut("parameters") {
            for (name, value) in overrides {
                if controlled(&name).is_none() {
                    ci_insert(params, &name, value);
                }
            }
        }
    }
    for base in ["pg_hba", "pg_ident"] {
        if let Some(v) = merged.get(&format!("{base}_{suffix}")).cloned() {
            merged.insert(base.into(), v);
        }
    }
    build(&merged, local, global)
}

/// The parameters to start PostgreSQL `major_version` (`server_version_num`
/// style, e.g. 150000; 0 when unknown) with: [`EffectivePostgresql::parameters`]
/// plus `listen_addresses`, `port` and `cluster_name`, `wal_level`
/// `hot_standby`/`replica` swapped for the version, `wal_keep_segments`
/// and `wal_keep_size` translated (assuming 16MB segments, as Patroni does),
/// parameters the version does not have left out, and `hba_file` /
/// `ident_file` made relative to `config_dir`.
pub fn server_parameters(
    effective: &EffectivePostgresql,
    local: &LocalConfig,
    major_version: u32,
) -> Map<String, Value> {
    let mut p = effective.parameters.clone();
    let listen = &local.postgresql.listen;
    ci_insert(&mut p, "cluster_name", Value::String(local.scope.clone()));
    ci_insert(&mut p, "listen_addresses", Value::String(listen.hosts.join(",")));
    ci_insert(&mut p, "port", Value::String(listen.port.to_string()));

    let (old, new) = if major_version >= 90600 { ("hot_standby", "replica") } else { ("replica", "hot_standby") };
    if ci_get(&p, "wal_level").and_then(Value::as_str).is_some_and(|v| v == old) {
        ci_insert(&mut p, "wal_level", Value::String(new.into()));
    }

    if major_version >= 130000 {
        let segments = ci_remove(&mut p, "wal_keep_segments").and_then(|v| parse_int(&v, None)).unwrap_or(8);
        if ci_get(&p, "wal_keep_size").is_none() {
            ci_insert(&mut p, "wal_keep_size", Value::String(format!("{}MB", segments * 16)));
        }
    } else if major_version > 0 {
        let size = ci_remove(&mut p, "wal_keep_size").unwrap_or_else(|| Value::String("128MB".into()));
        let size_mb = parse_int(&size, Some("MB")).unwrap_or(0);
        if ci_get(&p, "wal_keep_segments").is_none() {
            ci_insert(&mut p, "wal_keep_segments", Value::from((size_mb + 8) / 16));
        }
    }

    if major_version > 0 {
        p.retain(|k, _| {
            let since = CONTROLLED.iter().find(|c| c.name.eq_ignore_ascii_case(k)).map_or(90100, |c| c.min_version);
            major_version >= since
        });
    }
    for key in ["hba_file", "ident_file"] {
        if let Some(Value::String(file)) = ci_get(&p, key).cloned() {
            let joined = local.postgresql.config_dir.join(&file);
            ci_insert(&mut p, key, Value::String(joined.to_string_lossy().into_owned()));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    const BASE: &str = "scope: demo\nname: n1\nrestapi: {listen: '127.0.0.1:8008'}\netcd3: {hosts: 'h:2379'}\n";

    fn local(postgresql: &str) -> LocalConfig {
        let text = format!(
            "{BASE}postgresql:\n  listen: 10.0.0.1,10.0.0.2:5433\n  data_dir: /d\n  config_dir: /etc/pg\n  \
             authentication: {{superuser: {{username: s}}, replication: {{username: r}}}}\n{postgresql}"
        );
        let env: BTreeMap<String, String> = [("PATRONI_CONFIGURATION".to_string(), text)].into_iter().collect();
        crate::load(None, &env).expect("valid").config
    }

    fn global(v: Value) -> GlobalConfig {
        GlobalConfig::from_dynamic(v.as_object().expect("object")).0
    }

    #[test]
    fn parameters_merge_with_controlled_ones_from_the_dynamic_side_only() {
        let l =
            local("  parameters:\n    work_mem: 4MB\n    max_connections: 999\n    unix_socket_directories: /run\n");
        let g = global(json!({"postgresql": {"parameters": {
            "work_mem": "8MB", "Max_Connections": "300", "wal_level": "logical", "max_wal_senders": 1,
            "shared_buffers": "1GB", "port": 6000
        }}}));
        let e = effective_postgresql(&l, &g);
        assert_eq!(
            Value::Object(e.parameters),
            json!({
                "wal_level": "logical", "hot_standby": "on", "Max_Connections": 300, "max_wal_senders": 10,
                "max_prepared_transactions": 0, "max_locks_per_transaction": 64, "track_commit_timestamp": "off",
                "max_replication_slots": 10, "max_worker_processes": 8, "wal_log_hints": "on",
                "work_mem": "4MB", "shared_buffers": "1GB", "unix_socket_directories": "/run"
            })
        );
    }

    #[test]
    fn other_keys_local_over_dynamic_except_use_slots() {
        let g = global(json!({"postgresql": {
            "pg_hba": ["host all all 0.0.0.0/0 md5"], "pg_ident": ["m s u"], "use_slots": false,
            "use_pg_rewind": true, "recovery_conf": {"a": 1}, "data_dir": "/elsewhere"
        }}));
        let plain = effective_postgresql(&local(""), &g);
        assert_eq!(plain.pg_hba, ["host all all 0.0.0.0/0 md5"]);
        assert_eq!(plain.pg_ident, ["m s u"]);
        assert_eq!(plain.recovery_conf, json!({"a": 1}).as_object().cloned().expect("object"));
        assert!(!plain.use_slots && plain.use_pg_rewind);
        let l =
            local("  pg_hba: [local all all trust]\n  use_slots: true\n  use_pg_rewind: false\n  recovery_conf: {}\n");
        let e = effective_postgresql(&l, &g);
        assert_eq!(e.pg_hba, ["local all all trust"]);
        assert_eq!(e.pg_ident, ["m s u"]);
        assert!(e.recovery_conf.is_empty(), "a local recovery_conf replaces the dynamic one whole");
        assert!(!e.use_slots, "use_slots is global only");
        assert!(!e.use_pg_rewind);
    }

    #[test]
    fn defaults_without_any_dynamic_configuration() {
        let e = effective_postgresql(&local(""), &GlobalConfig::default());
        assert_eq!(e.parameters.get("max_connections"), Some(&json!(100)));
        assert_eq!(e.parameters.get("wal_level"), Some(&json!("hot_standby")));
        assert!(e.parameters.get("wal_keep_segments").is_none() && e.parameters.get("wal_keep_size").is_none());
        assert!(e.use_slots && !e.use_pg_rewind && e.pg_hba.is_empty());
    }

    #[test]
    fn server_parameters_per_version() {
        let l = local("  parameters:\n    hba_file: pg_hba.conf\n");
        let segments = global(json!({"postgresql": {"parameters": {"wal_keep_segments": 16}}}));
        let e = effective_postgresql(&l, &segments);
        let pg15 = server_parameters(&e, &l, 150_000);
        assert_eq!(pg15.get("wal_keep_size"), Some(&json!("256MB")));
        assert!(pg15.get("wal_keep_segments").is_none());
        assert_eq!(pg15.get("wal_level"), Some(&json!("replica")));
        assert_eq!(pg15.get("listen_addresses"), Some(&json!("10.0.0.1,10.0.0.2")));
        assert_eq!(pg15.get("port"), Some(&json!("5433")));
        assert_eq!(pg15.get("cluster_name"), Some(&json!("demo")));
        assert_eq!(pg15.get("hba_file"), Some(&json!("/etc/pg/pg_hba.conf")));

        let defaults = effective_postgresql(&l, &GlobalConfig::default());
        assert_eq!(server_parameters(&defaults, &l, 160_000).get("wal_keep_size"), Some(&json!("128MB")));
        assert_eq!(server_parameters(&defaults, &l, 120_000).get("wal_keep_segments"), Some(&json!(8)));

        let size = global(json!({"postgresql": {"parameters": {"wal_keep_size": "1GB"}}}));
        let pg12 = server_parameters(&effective_postgresql(&l, &size), &l, 120_000);
        assert_eq!(pg12.get("wal_keep_segments"), Some(&json!(64)));
        assert!(pg12.get("wal_keep_size").is_none());

        let pg94 = server_parameters(&defaults, &l, 90_400);
        assert_eq!(pg94.get("wal_level"), Some(&json!("hot_standby")));
        assert!(pg94.get("track_commit_timestamp").is_none() && pg94.get("cluster_name").is_none());
        assert!(pg94.get("max_replication_slots").is_some());
    }

    #[test]
    fn role_overrides() {
        let l = local(
            "  parameters_replica: {work_mem: 64MB, max_connections: 5}\n  pg_hba_primary: [host all all all md5]\n",
        );
        let g = global(json!({"postgresql": {"pg_hba": ["local all all trust"]}}));
        let replica = effective_postgresql_for_role(&l, &g, OverrideRole::Replica);
        assert_eq!(replica.parameters.get("work_mem"), Some(&json!("64MB")));
        assert_eq!(replica.parameters.get("max_connections"), Some(&json!(100)), "controlled ones never overridden");
        assert_eq!(replica.pg_hba, ["local all all trust"]);
        let primary = effective_postgresql_for_role(&l, &g, OverrideRole::Primary);
        assert_eq!(primary.pg_hba, ["host all all all md5"]);
        assert!(primary.parameters.get("work_mem").is_none());
    }
}
