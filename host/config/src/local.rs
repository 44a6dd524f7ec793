//! Building [`LocalConfig`] from the merged JSON, checking every section.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::check::{Checker, Sec};
use crate::types::{
    BasicAuth, BootstrapConfig, CitusConfig, CtlConfig, HostPort, InitdbOption, LocalConfig, LogConfig, RestApiConfig,
    VerifyClient, WatchdogConfig,
};
use palisade_pycompat::patroni::{parse_int, INITDB_NOT_ALLOWED};
use palisade_pycompat::py::truthy;

use crate::values::{describe, py_str};
use crate::{dcs, dynamic, limits, pg};

/// Patroni refuses this member name (it marks "no synchronous standby").
const SYNC_STRICT_PLACEHOLDER: &str = "__patroni_strict_sync_replica_placeholder__";

/// Default Python logging layout Patroni uses.
pub const DEFAULT_LOG_FORMAT: &str = "%(asctime)s %(levelname)s: %(message)s";

/// What the configuration is for: the daemon needs every server setting;
/// a control tool only needs to find the cluster.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Daemon,
    Ctl,
}

pub(crate) fn build(
    config: Map<String, Value>,
    env: &BTreeMap<String, String>,
    purpose: Purpose,
    ck: &mut Checker,
) -> Option<LocalConfig> {
    let daemon = purpose == Purpose::Daemon;
    let root = Sec::root(&config);
    let name = if daemon { ck.req_string(&root, "name") } else { ck.string(&root, "name") };
    if name.as_deref() == Some(SYNC_STRICT_PLACEHOLDER) {
        ck.error("name", format!("'{SYNC_STRICT_PLACEHOLDER}' is reserved"));
    }
    let scope = ck.req_string(&root, "scope");
    let namespace = ck.string(&root, "namespace").unwrap_or_else(|| "/service/".into());
    let namespace = squash_slashes(&format!("/{namespace}/"));
    let plugin_dir = ck.string(&root, "plugin_dir").filter(|s| !s.is_empty()).map(PathBuf::from);
    ck.int(&root, "thread_pool_size", 5..=i64::MAX, None);
    ck.int(&root, "thread_stack_size", 65536..=i64::MAX, Some("B"));

    let log = log(ck, &root);
    let restapi = restapi(ck, &root, daemon);
    let ctl = ctl(ck, &root);
    let dcs = dcs::read(ck, &root, daemon);
    let bootstrap = bootstrap(ck, &root);
    let postgresql =
        pg::read(ck, &root, env.get("HOME").map(String::as_str), daemon).or_else(|| (!daemon).then(placeholder_pg));
    let watchdog = watchdog(ck, &root);
    let tags = tags(ck, &root);
    let citus = citus(ck, &root);

    Some(LocalConfig {
        scope: scope?,
        namespace,
        name: name.unwrap_or_default(),
        plugin_dir,
        log: log?,
        restapi: restapi?,
        ctl,
        dcs,
        bootstrap,
        postgresql: postgresql?,
        watchdog: watchdog?,
        tags,
        citus,
        raw: config.clone(),
    })
}

fn squash_slashes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fn placeholder_pg() -> crate::types::PostgresqlConfig {
    crate::types::PostgresqlConfig {
        listen: HostPort { hosts: vec!["localhost".into()], port: 5432 },
        connect_address: HostPort { hosts: vec!["localhost".into()], port: 5432 },
        proxy_address: None,
        data_dir: PathBuf::new(),
        config_dir: PathBuf::new(),
        bin_dir: None,
        bin_name: Default::default(),
        pgpass: PathBuf::from("pgpass"),
        authentication: Default::default(),
        callbacks: BTreeMap::new(),
        create_replica_methods: vec!["basebackup".into()],
        replica_method_sections: Map::new(),
        parameters: Map::new(),
        pg_hba: None,
        pg_ident: None,
        recovery_conf: Map::new(),
        custom_conf: None,
        pg_ctl_timeout: Duration::from_secs(60),
        use_pg_rewind: None,
        remove_data_directory_on_rewind_failure: false,
        remove_data_directory_on_diverged_timelines: false,
        use_unix_socket: false,
        use_unix_socket_repl: false,
        pre_promote: None,
        before_stop: None,
        hooks: BTreeMap::new(),
    }
}

fn string_map(ck: &mut Checker, sec: &Sec, key: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(m) = ck.mapping(sec, key) {
        let inner = Sec { map: Some(m), prefix: sec.path(key) };
        for k in m.keys() {
            match inner.get(k) {
                Some(Value::Bool(_)) => {
                    out.insert(k.clone(), py_str(m.get(k).unwrap_or(&Value::Null)));
                }
                Some(_) => {
                    if let Some(v) = ck.string(&inner, k) {
                        out.insert(k.clone(), v);
                    }
                }
                None => {}
            }
        }
    }
    out
}

fn log(ck: &mut Checker, root: &Sec) -> Option<LogConfig> {
    let sec = ck.section(root, "log", false);
    let level = ck
        .one_of(&sec, "level", &["DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"], false)
        .unwrap_or_else(|| "INFO".into());
    let format_type = ck.one_of(&sec, "type", &["plain", "json"], false).unwrap_or_else(|| "plain".into());
    let traceback_debug =
        ck.one_of(&sec, "traceback_level", &["DEBUG", "ERROR"], true).is_some_and(|l| l.eq_ignore_ascii_case("debug"));
    let mut format_fields = None;
    let format = match sec.get("format") {
        None => DEFAULT_LOG_FORMAT.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => {
            ck.warn(sec.path("format"), "an empty list of fields: the default format is used, as in Patroni");
            DEFAULT_LOG_FORMAT.to_string()
        }
        Some(Value::Array(items)) => {
            // As Patroni reads it: names, and mappings of names to new
            // names (one or several per mapping).
            let mut fields = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(name) => fields.push((name.clone(), name.clone())),
                    Value::Object(m) if !m.is_empty() => {
                        for (name, renamed) in m {
                            match renamed {
                                Value::String(r) => fields.push((name.clone(), r.clone())),
                                other => ck.expected(
                                    format!("{}.{i}.{name}", sec.path("format")),
                                    "the field's new name (a string)",
                                    other,
                                ),
                            }
                        }
                    }
                    other => ck.expected(
                        format!("{}.{i}", sec.path("format")),
                        "a field name or a mapping {field: new name}",
                        other,
                    ),
                }
            }
            if format_type != "json" {
                ck.warn(
                    sec.path("format"),
                    "a list of fields is for type: json; the plain log uses the default format, as Patroni does",
                );
            }
            format_fields = Some(fields);
            DEFAULT_LOG_FORMAT.to_string()
        }
        Some(other) => {
            ck.expected(sec.path("format"), "a format string or a non-empty list of fields", other);
            DEFAULT_LOG_FORMAT.to_string()
        }
    };
    let dateformat = ck.string(&sec, "dateformat").filter(|s| !s.is_empty());
    let static_fields = ck.mapping(&sec, "static_fields").cloned().unwrap_or_default();
    ck.int(&sec, "max_queue_size", 1..=i64::MAX, None);
    let dir = ck.string(&sec, "dir").filter(|s| !s.is_empty()).map(PathBuf::from);
    let file_num = ck.int(&sec, "file_num", 0..=i64::from(u32::MAX), None).map_or(4, |v| v as u32);
    let file_size = ck.int(&sec, "file_size", 0..=i64::MAX, None).map_or(25_000_000, i64::unsigned_abs);
    let mode = ck.int(&sec, "mode", 0..=0o777, None).and_then(|m| u32::try_from(m).ok());
    let loggers = string_map(ck, &sec, "loggers");
    let deduplicate_heartbeat_logs = ck.boolean(&sec, "deduplicate_heartbeat_logs").unwrap_or(false);
    Some(LogConfig {
        level,
        format_type,
        format,
        format_fields,
        dateformat,
        static_fields,
        dir,
        file_num,
        file_size,
        mode,
        loggers,
        deduplicate_heartbeat_logs,
        traceback_debug,
    })
}

fn basic_auth(ck: &mut Checker, parent: &Sec) -> Option<BasicAuth> {
    let sec = ck.section(parent, "authentication", false);
    sec.map?;
    let username = ck.req_string(&sec, "username");
    let password = if sec.has("password") { ck.string(&sec, "password") } else { None };
    if !sec.has("password") {
        ck.missing(sec.path("password"));
    }
    Some(BasicAuth { username: username?, password: password? })
}

fn restapi(ck: &mut Checker, root: &Sec, daemon: bool) -> Option<RestApiConfig> {
    let sec = ck.section(root, "restapi", daemon);
    if !sec.present() && !daemon {
        return Some(RestApiConfig::default());
    }
    if !sec.has("listen") && sec.present() {
        ck.missing(sec.path("listen"));
    }
    let listen = ck.host_port(&sec, "listen", None, false);
    let connect_address = ck.connect_address(&sec, "connect_address", None);
    if let (Some(l), false) = (&listen, sec.has("connect_address")) {
        if matches!(l.host(), "0.0.0.0" | "*" | "::" | "") {
            ck.warn(
                sec.path("connect_address"),
                format!("not set and listen is the wildcard '{}': other members cannot reach this API", l.host()),
            );
        }
    }
    let authentication = basic_auth(ck, &sec);
    let path_of = |ck: &mut Checker, key: &str| ck.string(&sec, key).filter(|s| !s.is_empty()).map(PathBuf::from);
    let certfile = path_of(ck, "certfile");
    let keyfile = path_of(ck, "keyfile");
    let cafile = path_of(ck, "cafile");
    let keyfile_password = ck.string(&sec, "keyfile_password");
    let ciphers = ck.string(&sec, "ciphers");
    let verify_client = match ck.one_of(&sec, "verify_client", &["none", "optional", "required"], false).as_deref() {
        Some("optional") => VerifyClient::Optional,
        Some("required") => VerifyClient::Required,
        _ => VerifyClient::None,
    };
    let allowlist = ck.strings(&sec, "allowlist").unwrap_or_default();
    let allowlist_include_members = ck.boolean(&sec, "allowlist_include_members").unwrap_or(false);
    let http_extra_headers = string_map(ck, &sec, "http_extra_headers");
    let https_extra_headers = string_map(ck, &sec, "https_extra_headers");
    let request_queue_size = ck.int(&sec, "request_queue_size", 0..=4096, None).map_or(5, |v| v as u32);
    ck.one_of(&sec, "server_tokens", &["minimal", "productonly", "original"], true);
    ck.int(&sec, "thread_pool_size", 5..=i64::MAX, None);
    if sec.has("authentication") && authentication.is_none() {
        return None;
    }
    let listen = listen?;
    let connect_address = match connect_address {
        Some(c) => c,
        None if sec.has("connect_address") => return None,
        None => listen.clone(),
    };
    Some(RestApiConfig {
        listen,
        connect_address,
        authentication,
        certfile,
        keyfile,
        keyfile_password,
        cafile,
        ciphers,
        verify_client,
        allowlist,
        allowlist_include_members,
        http_extra_headers,
        https_extra_headers,
        request_queue_size,
    })
}

fn ctl(ck: &mut Checker, root: &Sec) -> CtlConfig {
    let sec = ck.section(root, "ctl", false);
    let path_of = |ck: &mut Checker, key: &str| ck.string(&sec, key).filter(|s| !s.is_empty()).map(PathBuf::from);
    CtlConfig {
        authentication: basic_auth(ck, &sec),
        insecure: ck.boolean(&sec, "insecure").unwrap_or(false),
        cacert: path_of(ck, "cacert"),
        certfile: path_of(ck, "certfile"),
        keyfile: path_of(ck, "keyfile"),
        keyfile_password: ck.string(&sec, "keyfile_password"),
    }
}

fn initdb_kv(ck: &mut Checker, key: &str, value: &Value, path: &str) -> Option<InitdbOption> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            ck.expected(path, "a string value", other);
            return None;
        }
    };
    if INITDB_NOT_ALLOWED.contains(&key) {
        ck.error(path, format!("the initdb option '{key}' is set by palisade and not allowed here"));
        return None;
    }
    // Kept as written: initdb gets it unquoted once, as Patroni does.
    Some(InitdbOption::KeyValue(key.to_string(), text))
}

/// `bootstrap.initdb`: a list of `flag` or `{option: value}`, or a mapping.
fn initdb_options(ck: &mut Checker, sec: &Sec) -> Vec<InitdbOption> {
    let path = sec.path("initdb");
    let mut out = Vec::new();
    match sec.get("initdb") {
        None => {}
        Some(Value::Object(m)) => {
            out.extend(m.iter().filter_map(|(k, v)| initdb_kv(ck, k, v, &format!("{path}.{k}"))));
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}.{i}");
                match item {
                    Value::String(flag) if INITDB_NOT_ALLOWED.contains(&flag.as_str()) => {
                        ck.error(p, format!("the initdb option '{flag}' is set by palisade and not allowed here"));
                    }
                    Value::String(flag) => out.push(InitdbOption::Flag(flag.clone())),
                    Value::Object(m) if m.len() == 1 => {
                        out.extend(m.iter().filter_map(|(k, v)| initdb_kv(ck, k, v, &p)));
                    }
                    other => ck.expected(p, "an option name or a single option: value", other),
                }
            }
        }
        Some(other) => ck.expected(path, "a list of options or a mapping", other),
    }
    out
}

fn bootstrap(ck: &mut Checker, root: &Sec) -> Option<BootstrapConfig> {
    let sec = ck.section(root, "bootstrap", false);
    let map = sec.map?;
    let dcs = match sec.get("dcs") {
        Some(Value::Object(m)) => {
            let (_, issues) = dynamic::read(m);
            for issue in issues {
                let path = format!("{}.{}", sec.path("dcs"), issue.key);
                if issue.fatal {
                    ck.error(path, issue.message);
                } else {
                    ck.warn(path, issue.message);
                }
            }
            m.clone()
        }
        Some(other) => {
            ck.expected(sec.path("dcs"), "a mapping", other);
            Map::new()
        }
        None => {
            ck.warn(
                sec.path("dcs"),
                "not set: if this node initialises the cluster, the dynamic configuration starts empty (all defaults)",
            );
            Map::new()
        }
    };
    let method = ck.string(&sec, "method").filter(|s| !s.is_empty()).unwrap_or_else(|| "initdb".into());
    let initdb = initdb_options(ck, &sec);
    let post_bootstrap = match ck.string(&sec, "post_bootstrap").filter(|s| !s.is_empty()) {
        Some(s) => Some(s),
        None => ck.string(&sec, "post_init").filter(|s| !s.is_empty()),
    };
    if sec.has("users") {
        ck.warn(
            sec.path("users"),
            "ignored: Patroni 4 no longer creates bootstrap users; create them in post_bootstrap",
        );
    }
    let mut methods = Map::new();
    for (key, value) in map {
        if matches!(key.as_str(), "dcs" | "method" | "initdb" | "post_bootstrap" | "post_init" | "users" | "pg_hba") {
            continue;
        }
        match value {
            Value::Object(m) => {
                let inner = Sec { map: Some(m), prefix: sec.path(key) };
                ck.string(&inner, "command");
                for flag in ["keep_existing_recovery_conf", "no_params"] {
                    ck.boolean(&inner, flag);
                }
                ck.mapping(&inner, "recovery_conf");
                methods.insert(key.clone(), value.clone());
            }
            Value::Null => {}
            other => {
                if key == &method {
                    ck.expected(sec.path(key), "a mapping with the method's command", other);
                }
            }
        }
    }
    // As Patroni: a custom method without a command means initdb.
    let method =
        if method != "initdb" && !methods.get(&method).and_then(|m| m.get("command")).is_some_and(Value::is_string) {
            ck.warn(
                sec.path("method"),
                format!("bootstrap.{method}.command is not set: the cluster will be initialised with initdb instead"),
            );
            "initdb".to_string()
        } else {
            method
        };
    Some(BootstrapConfig { dcs, method, initdb, post_bootstrap, methods })
}

fn watchdog(ck: &mut Checker, root: &Sec) -> Option<WatchdogConfig> {
    let sec = ck.section(root, "watchdog", false);
    let mode = match sec.get("mode") {
        None => "automatic".to_string(),
        Some(Value::Bool(false)) => "off".to_string(),
        // Patroni's `parse_mode`: `str(mode).lower()`; anything it does not
        // know disables the watchdog with a warning.
        Some(v) => match py_str(v).to_lowercase().as_str() {
            "off" | "disable" | "disabled" => "off".into(),
            "auto" | "automatic" => "automatic".into(),
            "require" | "required" => "required".into(),
            other => {
                ck.warn(sec.path("mode"), format!("Watchdog mode {other} not recognized, disabling watchdog"));
                "off".into()
            }
        },
    };
    let device = ck.string(&sec, "device").filter(|s| !s.is_empty()).unwrap_or_else(|| "/dev/watchdog".into());
    let safety_margin = ck.int(&sec, "safety_margin", -1..=i64::MAX, None).unwrap_or(5);
    if limits::seconds(safety_margin.max(0).unsigned_abs()).1 {
        ck.warn(sec.path("safety_margin"), limits::clamped_message(safety_margin));
    }
    let driver = ck.string(&sec, "driver").filter(|s| !s.is_empty()).unwrap_or_else(|| "default".into());
    if mode != "off" && driver != "default" && driver != "testing" {
        // Patroni falls back to its null watchdog for a driver it does not know.
        ck.warn(
            sec.path("driver"),
            format!("unknown watchdog driver {driver:?} (known: default, testing): no watchdog device is used"),
        );
    }
    Some(WatchdogConfig {
        mode,
        device: PathBuf::from(device),
        safety_margin: limits::seconds(safety_margin.max(0).unsigned_abs()).0,
        // -1: the device fires after half the ttl (Patroni's `ttl // 2`).
        safety_margin_half_ttl: safety_margin == -1,
        driver,
    })
}

/// `tags`: kept as written, since members publish them and Patroni reads
/// them where they are used (`bool()` for the boolean tags, `parse_bool`
/// for `nostream`, `parse_int` for the priorities); here they are only
/// checked, with warnings where the value is not what it looks like.
fn tags(ck: &mut Checker, root: &Sec) -> Map<String, Value> {
    let sec = ck.section(root, "tags", false);
    let Some(map) = sec.map else { return Map::new() };
    for key in ["nofailover", "clonefrom", "noloadbalance", "nosync"] {
        ck.boolean(&sec, key);
    }
    ck.parse_bool(&sec, "nostream");
    ck.string(&sec, "replicatefrom");
    for (flag, priority) in [("nofailover", "failover_priority"), ("nosync", "sync_priority")] {
        let prio = match sec.get(priority) {
            None => None,
            Some(v) => match parse_int(v, None) {
                Some(p) if p < 0 => {
                    ck.warn(sec.path(priority), format!("{p} is negative; like 0, it means {flag}"));
                    Some(p)
                }
                Some(p) => Some(p),
                None => {
                    ck.warn(sec.path(priority), format!("ignored: {} is not an integer", describe(v)));
                    None
                }
            },
        };
        if let (Some(v), Some(p)) = (sec.get(flag), prio) {
            let b = truthy(v);
            if (b && p > 0) || (!b && p <= 0) {
                // Patroni's own line, word for word: sites alert on it.
                let shown = py_str(v);
                ck.warn(
                    "",
                    format!(
                        "Conflicting configuration between {flag}: {shown} and {priority}: {p}. \
                         Defaulting to {flag}: {shown}"
                    ),
                );
            }
        }
    }
    map.clone()
}

fn citus(ck: &mut Checker, root: &Sec) -> Option<CitusConfig> {
    let sec = ck.section(root, "citus", false);
    sec.map?;
    let database = ck.req_string(&sec, "database");
    let group = match sec.get("group") {
        None => {
            ck.missing(sec.path("group"));
            None
        }
        Some(v @ Value::Number(_)) => ck.int_value(v, &sec.path("group"), 0..=i64::from(i32::MAX), None),
        // Patroni enables Citus when parse_int reads the group and then
        // takes int() of it: a decimal string works.
        Some(v @ Value::String(s)) if palisade_pycompat::py::strip(s).parse::<i64>().is_ok() => {
            ck.warn(sec.path("group"), format!("expected an integer, found {}; read as a number", describe(v)));
            ck.int_value(v, &sec.path("group"), 0..=i64::from(i32::MAX), None)
        }
        Some(other) => {
            ck.error(sec.path("group"), format!("expected an integer, found {}", describe(other)));
            None
        }
    };
    Some(CitusConfig { group: i32::try_from(group?).ok()?, database: database? })
}
