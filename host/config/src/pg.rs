//! The local `postgresql` section.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::check::{Checker, Sec};
use crate::env::AUTH_ALLOWED_PARAMETERS;
use crate::limits;
use crate::params::controlled;
use crate::types::{AuthenticationConfig, BinNames, HostPort, PostgresqlConfig, RoleAuth};

/// Keys of `postgresql` that are settings, not replica-method sections.
const KNOWN_KEYS: [&str; 41] = [
    "listen",
    "connect_address",
    "proxy_address",
    "data_dir",
    "config_dir",
    "bin_dir",
    "bin_name",
    "pgpass",
    "authentication",
    "callbacks",
    "create_replica_methods",
    "create_replica_method",
    "parameters",
    "pg_hba",
    "pg_ident",
    "recovery_conf",
    "custom_conf",
    "pg_ctl_timeout",
    "use_pg_rewind",
    "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines",
    "use_unix_socket",
    "use_unix_socket_repl",
    "pre_promote",
    "before_stop",
    "hooks",
    "use_slots",
    "rewind",
    "parameters_primary",
    "parameters_replica",
    "parameters_standby_leader",
    "pg_hba_primary",
    "pg_hba_replica",
    "pg_hba_standby_leader",
    "pg_ident_primary",
    "pg_ident_replica",
    "pg_ident_standby_leader",
    "name",
    "superuser",
    "replication",
    "pg_rewind",
];

const CALLBACKS: [&str; 5] = ["on_start", "on_stop", "on_restart", "on_reload", "on_role_change"];

/// Patroni's choice of a local address from `listen` (`*`, `0.0.0.0`,
/// `127.0.0.1` and `localhost` mean "connect via localhost").
fn local_address(listen: &HostPort) -> String {
    for h in &listen.hosts {
        let l = h.trim().to_lowercase();
        if matches!(l.as_str(), "*" | "localhost" | "0.0.0.0" | "127.0.0.1") {
            return "localhost".into();
        }
    }
    listen.host().to_string()
}

fn role(ck: &mut Checker, auth: &Sec, name: &str, required: bool) -> Option<RoleAuth> {
    let sec = ck.section(auth, name, required);
    sec.map?;
    let username = ck.req_string(&sec, "username");
    let password = ck.string(&sec, "password");
    let mut ssl = BTreeMap::new();
    for key in AUTH_ALLOWED_PARAMETERS.iter().skip(2) {
        if let Some(v) = ck.string(&sec, key) {
            ssl.insert((*key).to_string(), v);
        }
    }
    Some(RoleAuth { username: username?, password, ssl })
}

fn hba_lines(ck: &mut Checker, sec: &Sec, key: &str) -> Option<Vec<String>> {
    ck.strings(sec, key)
}

/// `basebackup`/`rewind`-style options: a list of strings or single-key
/// mappings, or a mapping.
pub(crate) fn tool_options(ck: &mut Checker, value: &Value, path: &str) {
    match value {
        Value::Object(_) | Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(_) => {}
                    Value::Object(m) if m.len() == 1 && m.values().all(|v| v.is_string() || v.is_number()) => {}
                    other => ck.expected(format!("{path}.{i}"), "an option name or a single option: value", other),
                }
            }
        }
        other => ck.expected(path, "a list of options or a mapping", other),
    }
}

pub(crate) fn read(ck: &mut Checker, root: &Sec, home: Option<&str>, require_server: bool) -> Option<PostgresqlConfig> {
    let pg = ck.section(root, "postgresql", require_server);
    let map = pg.map?;
    let listen = if require_server || pg.has("listen") {
        if !pg.has("listen") {
            ck.missing(pg.path("listen"));
        }
        ck.host_port(&pg, "listen", Some(5432), true)
    } else {
        Some(HostPort { hosts: vec!["localhost".into()], port: 5432 })
    };
    let connect_address = ck.connect_address(&pg, "connect_address", Some(5432));
    let proxy_address = ck.connect_address(&pg, "proxy_address", Some(5432));
    let data_dir = if require_server { ck.req_string(&pg, "data_dir") } else { ck.string(&pg, "data_dir") };
    let config_dir = ck.string(&pg, "config_dir").filter(|s| !s.is_empty());
    let bin_dir = ck.string(&pg, "bin_dir").filter(|s| !s.is_empty()).map(PathBuf::from);
    let mut bin_name = BinNames::default();
    let names = ck.section(&pg, "bin_name", false);
    if names.present() {
        for (field, key) in [
            (&mut bin_name.pg_ctl, "pg_ctl"),
            (&mut bin_name.initdb, "initdb"),
            (&mut bin_name.pg_controldata, "pg_controldata"),
            (&mut bin_name.pg_basebackup, "pg_basebackup"),
            (&mut bin_name.postgres, "postgres"),
            (&mut bin_name.pg_isready, "pg_isready"),
            (&mut bin_name.pg_rewind, "pg_rewind"),
        ] {
            if names.has(key) {
                if let Some(v) = ck.req_string(&names, key) {
                    *field = v;
                }
            }
        }
    }
    let pgpass = ck.string(&pg, "pgpass").filter(|s| !s.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
        home.filter(|h| !h.is_empty()).map_or_else(|| PathBuf::from("pgpass"), |h| PathBuf::from(h).join("pgpass"))
    });

    let auth = ck.section(&pg, "authentication", require_server);
    let superuser = role(ck, &auth, "superuser", require_server);
    let replication = role(ck, &auth, "replication", require_server);
    let rewind = role(ck, &auth, "rewind", false);

    let mut callbacks = BTreeMap::new();
    let cb = ck.section(&pg, "callbacks", false);
    if let Some(m) = cb.map {
        for key in m.keys() {
            if !CALLBACKS.contains(&key.as_str()) {
                ck.warn(cb.path(key), format!("unknown callback; known ones are {}", CALLBACKS.join(", ")));
            }
            if let Some(v) = ck.string(&cb, key) {
                callbacks.insert(key.clone(), v);
            }
        }
    }

    let methods_key = if pg.has("create_replica_methods") { "create_replica_methods" } else { "create_replica_method" };
    let create_replica_methods =
        ck.strings(&pg, methods_key).filter(|m| !m.is_empty()).unwrap_or_else(|| vec!["basebackup".to_string()]);
    let mut replica_method_sections = Map::new();
    for (key, value) in map {
        let is_method =
            create_replica_methods.contains(key) || (!KNOWN_KEYS.contains(&key.as_str()) && value.is_object());
        // `rewind` holds pg_rewind's options, kept with the replica
        // methods' sections for the daemon to read.
        if is_method || key == "basebackup" || key == "rewind" {
            if key == "basebackup" || key == "rewind" {
                tool_options(ck, value, &pg.path(key));
            } else if !value.is_object() && !value.is_null() {
                ck.expected(pg.path(key), "a mapping (replica method settings)", value);
                continue;
            }
            replica_method_sections.insert(key.clone(), value.clone());
        }
    }
    for method in &create_replica_methods {
        // basebackup, and Palisade's own replica plugins, which read the
        // section as their settings (the loader warns if one is missing).
        if matches!(method.as_str(), "basebackup" | "pgbackrest" | "walg") {
            continue;
        }
        let has_command = map.get(method).and_then(|m| m.get("command")).is_some_and(Value::is_string);
        if !has_command {
            ck.warn(
                pg.path(method),
                format!(
                    "replica method '{method}' has no postgresql.{method}.command: '{method}' itself is run as the \
                     command, as Patroni does, unless a replica plugin named '{method}' is installed"
                ),
            );
        }
    }

    let mut parameters = Map::new();
    if let Some(params) = ck.mapping(&pg, "parameters") {
        for (name, value) in params {
            let path = pg.path(&format!("parameters.{name}"));
            if matches!(value, Value::Array(_) | Value::Object(_)) {
                ck.expected(path, "a single value", value);
                continue;
            }
            if let Some(c) = controlled(name) {
                ck.warn(
                    path,
                    format!(
                        "ignored: {} is controlled by palisade and can only be set in the dynamic configuration",
                        c.name
                    ),
                );
            }
            parameters.insert(name.clone(), value.clone());
        }
        let uds = Sec { map: Some(params), prefix: pg.path("parameters") };
        ck.string(&uds, "unix_socket_directories");
    }
    for suffix in ["primary", "replica", "standby_leader"] {
        ck.mapping(&pg, &format!("parameters_{suffix}"));
        hba_lines(ck, &pg, &format!("pg_hba_{suffix}"));
        hba_lines(ck, &pg, &format!("pg_ident_{suffix}"));
    }
    let pg_hba = hba_lines(ck, &pg, "pg_hba");
    let pg_ident = hba_lines(ck, &pg, "pg_ident");
    let recovery_conf = ck.mapping(&pg, "recovery_conf").cloned().unwrap_or_default();
    let custom_conf = ck.string(&pg, "custom_conf").filter(|s| !s.is_empty()).map(PathBuf::from);
    let pg_ctl_timeout = ck.int(&pg, "pg_ctl_timeout", 0..=i64::MAX, None).map_or(Duration::from_secs(60), |v| {
        let (d, clamped) = limits::seconds(v.unsigned_abs());
        if clamped {
            ck.warn(pg.path("pg_ctl_timeout"), limits::clamped_message(v));
        }
        d
    });
    let use_pg_rewind = ck.boolean(&pg, "use_pg_rewind");
    if pg.has("use_slots") {
        ck.warn(
            pg.path("use_slots"),
            "ignored here: replication slots are switched on or off in the dynamic configuration",
        );
    }
    let flag = |ck: &mut Checker, key: &str| ck.boolean(&pg, key).unwrap_or(false);
    let remove_data_directory_on_rewind_failure = flag(ck, "remove_data_directory_on_rewind_failure");
    let remove_data_directory_on_diverged_timelines = flag(ck, "remove_data_directory_on_diverged_timelines");
    let use_unix_socket = flag(ck, "use_unix_socket");
    let use_unix_socket_repl = flag(ck, "use_unix_socket_repl");
    let pre_promote = ck.string(&pg, "pre_promote").filter(|s| !s.is_empty());
    let before_stop = ck.string(&pg, "before_stop").filter(|s| !s.is_empty());
    let hooks = crate::hooks::hooks(ck, &pg);

    let listen = listen?;
    let data_dir = PathBuf::from(data_dir.unwrap_or_default());
    let connect_address = connect_address.or_else(|| {
        (!pg.has("connect_address")).then(|| HostPort { hosts: vec![local_address(&listen)], port: listen.port })
    })?;
    if pg.has("proxy_address") && proxy_address.is_none() {
        return None;
    }
    let authentication = AuthenticationConfig {
        superuser: superuser.or_else(|| (!require_server).then(RoleAuth::default))?,
        replication: replication.or_else(|| (!require_server).then(RoleAuth::default))?,
        rewind,
    };
    Some(PostgresqlConfig {
        config_dir: config_dir.map_or_else(|| data_dir.clone(), PathBuf::from),
        listen,
        connect_address,
        proxy_address,
        data_dir,
        bin_dir,
        bin_name,
        pgpass,
        authentication,
        callbacks,
        create_replica_methods,
        replica_method_sections,
        parameters,
        pg_hba,
        pg_ident,
        recovery_conf,
        custom_conf,
        pg_ctl_timeout,
        use_pg_rewind,
        remove_data_directory_on_rewind_failure,
        remove_data_directory_on_diverged_timelines,
        use_unix_socket,
        use_unix_socket_repl,
        pre_promote,
        before_stop,
        hooks,
    })
}
