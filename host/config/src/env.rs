//! The `PATRONI_*` environment, read by Patroni's rules (its
//! `Config._build_environment_configuration`).
//!
//! Patroni consumes ("pops") each variable as a rule takes it, so a variable
//! taken by an earlier rule is not seen by a later one; the order of the
//! steps below matters and follows Patroni's. Empty values are ignored
//! except where noted. Values that do not parse (a non-numeric port, a
//! malformed list) are dropped with a warning, as Patroni drops them (it
//! logs an exception for lists and dicts and says nothing otherwise).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::types::ConfigWarning;
use crate::values::{parse_bool, parse_int, parse_real};
use crate::yaml;

const PREFIX: &str = "PATRONI_";

/// Connection parameters Patroni passes on for `postgresql.authentication.*`.
pub const AUTH_ALLOWED_PARAMETERS: [&str; 12] = [
    "username",
    "password",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "gssencmode",
    "channel_binding",
    "sslnegotiation",
];

/// Suffixes of `PATRONI_<SECTION>_<SUFFIX>` taken for any section name
/// (this is how `PATRONI_ETCD3_HOSTS`, `PATRONI_KUBERNETES_LABELS`... work).
pub const GENERIC_SUFFIXES: [&str; 43] = [
    "HOST",
    "HOSTS",
    "PORT",
    "USE_PROXIES",
    "PROTOCOL",
    "SRV",
    "SRV_SUFFIX",
    "URL",
    "PROXY",
    "CACERT",
    "CERT",
    "KEY",
    "VERIFY",
    "TOKEN",
    "CHECKS",
    "DC",
    "CONSISTENCY",
    "REGISTER_SERVICE",
    "SERVICE_CHECK_INTERVAL",
    "SERVICE_CHECK_TLS_SERVER_NAME",
    "SERVICE_TAGS",
    "NAMESPACE",
    "CONTEXT",
    "USE_ENDPOINTS",
    "SCOPE_LABEL",
    "ROLE_LABEL",
    "POD_IP",
    "PORTS",
    "LABELS",
    "BYPASS_API_SERVICE",
    "RETRIABLE_HTTP_CODES",
    "KEY_PASSWORD",
    "USE_SSL",
    "SET_ACLS",
    "GROUP",
    "DATABASE",
    "LEADER_LABEL_VALUE",
    "FOLLOWER_LABEL_VALUE",
    "STANDBY_LEADER_LABEL_VALUE",
    "TMP_ROLE_LABEL",
    "AUTH_DATA",
    "BOOTSTRAP_LABELS",
    // Documented for Consul but missing from Patroni's list; palisade takes it.
    "SCHEME",
];

/// Builds the configuration the environment gives, as Patroni does. The
/// result is patched over the file's configuration (environment wins).
pub fn from_env(env: &BTreeMap<String, String>, warnings: &mut Vec<ConfigWarning>) -> Map<String, Value> {
    let mut b = Builder {
        vars: env.iter().filter(|(k, _)| k.starts_with(PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        out: Map::new(),
        warnings,
        renamed: BTreeMap::new(),
    };
    b.build();
    b.out
}

struct Builder<'w> {
    vars: BTreeMap<String, String>,
    out: Map<String, Value>,
    /// New variable name -> the old spelling it was taken from (warnings
    /// name the variable the user set).
    renamed: BTreeMap<String, String>,
    warnings: &'w mut Vec<ConfigWarning>,
}

impl Builder<'_> {
    /// Takes `PATRONI_<NAME>` out of the environment.
    fn pop(&mut self, name: &str) -> Option<String> {
        self.vars.remove(&format!("{PREFIX}{}", name.to_uppercase()))
    }

    fn pop_nonempty(&mut self, name: &str) -> Option<String> {
        self.pop(name).filter(|v| !v.is_empty())
    }

    fn section(&mut self, name: &str) -> &mut Map<String, Value> {
        let entry = self.out.entry(name.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        match entry {
            Value::Object(m) => m,
            _ => unreachable!("just made an object"),
        }
    }

    fn take(&mut self, section: &str, key: &str) -> Option<Value> {
        self.out.get_mut(section).and_then(Value::as_object_mut).and_then(|m| m.remove(key))
    }

    fn warn(&mut self, var: &str, message: String) {
        let name = format!("{PREFIX}{}", var.to_uppercase());
        let path = self.renamed.get(&name).cloned().unwrap_or(name);
        self.warnings.push(ConfigWarning { path, message });
    }

    fn build(&mut self) {
        for param in ["name", "namespace", "scope", "thread_pool_size", "thread_stack_size"] {
            if let Some(v) = self.pop_nonempty(param) {
                self.out.insert(param.into(), Value::String(v));
            }
        }
        // Old spellings of the log variables, used when the new one is not set.
        for (name, old) in [("level", "loglevel"), ("format", "logformat"), ("dateformat", "log_datefmt")] {
            if let Some(v) = self.pop_nonempty(old) {
                let new = format!("{PREFIX}LOG_{}", name.to_uppercase());
                if !self.vars.contains_key(&new) {
                    self.vars.insert(new.clone(), v);
                    self.renamed.insert(new, format!("{PREFIX}{}", old.to_uppercase()));
                }
            }
        }
        self.section_values();
        for binary in ["pg_ctl", "initdb", "pg_controldata", "pg_basebackup", "postgres", "pg_isready", "pg_rewind"] {
            let mut value = self.pop_nonempty(&format!("postgresql_bin_{binary}"));
            if value.is_none() && binary == "pg_isready" {
                // The documentation names this one PATRONI_POSTGRESQL_BIN_IS_READY.
                value = self.pop_nonempty("postgresql_bin_is_ready");
            }
            if let Some(v) = value {
                let pg = self.section("postgresql");
                let names = pg.entry("bin_name").or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = names {
                    m.insert(binary.into(), Value::String(v));
                }
            }
        }
        self.typed_values();
        self.lists_and_dicts();
        self.authentication();
        self.generic();
        for dcs in ["etcd", "etcd3"] {
            if self.out.contains_key(dcs) {
                let auth = self.auth_of(dcs, &AUTH_ALLOWED_PARAMETERS[..2]);
                self.section(dcs).extend(auth);
            }
        }
        // Sections whose only variables were dropped would be empty.
        self.out.retain(|_, v| v.as_object().is_none_or(|m| !m.is_empty()));
    }

    fn section_values(&mut self) {
        let sections: [(&str, &[&str]); 5] = [
            (
                "restapi",
                &[
                    "listen",
                    "connect_address",
                    "certfile",
                    "keyfile",
                    "keyfile_password",
                    "cafile",
                    "ciphers",
                    "verify_client",
                    "http_extra_headers",
                    "https_extra_headers",
                    "allowlist",
                    "allowlist_include_members",
                    "request_queue_size",
                    "server_tokens",
                ],
            ),
            ("ctl", &["insecure", "cacert", "certfile", "keyfile", "keyfile_password"]),
            (
                "postgresql",
                &["listen", "connect_address", "proxy_address", "config_dir", "data_dir", "pgpass", "bin_dir"],
            ),
            (
                "log",
                &[
                    "type",
                    "level",
                    "traceback_level",
                    "format",
                    "dateformat",
                    "static_fields",
                    "max_queue_size",
                    "dir",
                    "mode",
                    "file_size",
                    "file_num",
                    "loggers",
                    "deduplicate_heartbeat_logs",
                ],
            ),
            (
                "raft",
                &[
                    "data_dir",
                    "self_addr",
                    "partner_addrs",
                    "password",
                    "bind_addr",
                    "min_timeout",
                    "max_timeout",
                    "connection_timeout",
                    "append_entries_period",
                    "connection_retry_time",
                    "leader_fallback_timeout",
                ],
            ),
        ];
        for (section, params) in sections {
            for param in params {
                if let Some(v) = self.pop_nonempty(&format!("{section}_{param}")) {
                    self.section(section).insert((*param).into(), Value::String(v));
                }
            }
        }
    }

    fn typed_values(&mut self) {
        for (section, key) in
            [("restapi", "allowlist_include_members"), ("ctl", "insecure"), ("log", "deduplicate_heartbeat_logs")]
        {
            if let Some(v) = self.take(section, key) {
                match parse_bool(&v) {
                    Some(b) => {
                        self.section(section).insert(key.into(), Value::Bool(b));
                    }
                    None => self.warn(&format!("{section}_{key}"), format!("ignored: {v} is not a boolean")),
                }
            }
        }
        for (section, key) in [
            ("restapi", "request_queue_size"),
            ("log", "max_queue_size"),
            ("log", "file_size"),
            ("log", "file_num"),
            ("log", "mode"),
        ] {
            if let Some(v) = self.take(section, key) {
                match parse_int(&v, None) {
                    Some(i) => {
                        self.section(section).insert(key.into(), Value::from(i));
                    }
                    None => self.warn(&format!("{section}_{key}"), format!("ignored: {v} is not an integer")),
                }
            }
        }
        for key in [
            "min_timeout",
            "max_timeout",
            "connection_timeout",
            "append_entries_period",
            "connection_retry_time",
            "leader_fallback_timeout",
        ] {
            if let Some(v) = self.take("raft", key) {
                match parse_real(&v, None).and_then(serde_json::Number::from_f64) {
                    Some(n) => {
                        self.section("raft").insert(key.into(), Value::Number(n));
                    }
                    None => self.warn(&format!("raft_{key}"), format!("ignored: {v} is not a number")),
                }
            }
        }
    }

    fn lists_and_dicts(&mut self) {
        for (section, key) in [("raft", "partner_addrs"), ("restapi", "allowlist")] {
            if let Some(Value::String(v)) = self.take(section, key) {
                match parse_list(&v) {
                    Ok(Value::Null) => {}
                    Ok(list) => {
                        self.section(section).insert(key.into(), list);
                    }
                    Err(e) => self.warn(&format!("{section}_{key}"), format!("ignored: not a list: {e}")),
                }
            }
        }
        // A log format without any %(name) field is a list of fields (for JSON logs).
        if let Some(Value::String(fmt)) = self.out.get("log").and_then(|l| l.get("format")).cloned() {
            if !has_percent_field(&fmt) {
                match parse_list(&fmt) {
                    Ok(Value::Null) => {}
                    Ok(list) => {
                        self.section("log").insert("format".into(), list);
                    }
                    Err(e) => self.warn("log_format", format!("kept as text: not a list: {e}")),
                }
            }
        }
        for (section, key) in [
            ("restapi", "http_extra_headers"),
            ("restapi", "https_extra_headers"),
            ("log", "static_fields"),
            ("log", "loggers"),
        ] {
            if let Some(Value::String(v)) = self.take(section, key) {
                match parse_dict(&v) {
                    Ok(Value::Null) => {}
                    Ok(dict) => {
                        self.section(section).insert(key.into(), dict);
                    }
                    Err(e) => self.warn(&format!("{section}_{key}"), format!("ignored: not a mapping: {e}")),
                }
            }
        }
    }

    fn auth_of(&mut self, name: &str, params: &[&str]) -> Map<String, Value> {
        let mut auth = Map::new();
        for param in params {
            if let Some(v) = self.pop_nonempty(&format!("{name}_{param}")) {
                auth.insert((*param).into(), Value::String(v));
            }
        }
        auth
    }

    fn authentication(&mut self) {
        for section in ["ctl", "restapi"] {
            let auth = self.auth_of(section, &AUTH_ALLOWED_PARAMETERS[..2]);
            if !auth.is_empty() {
                self.section(section).insert("authentication".into(), Value::Object(auth));
            }
        }
        let mut authentication = Map::new();
        for user in ["replication", "superuser", "rewind"] {
            let entry = self.auth_of(user, &AUTH_ALLOWED_PARAMETERS);
            if !entry.is_empty() {
                authentication.insert(user.into(), Value::Object(entry));
            }
        }
        if !authentication.is_empty() {
            self.section("postgresql").insert("authentication".into(), Value::Object(authentication));
        }
    }

    /// `PATRONI_<NAME>_<SUFFIX>` for any section name: DCS settings and Citus.
    fn generic(&mut self) {
        let names: Vec<String> = self.vars.keys().cloned().collect();
        for var in names {
            let rest = &var[PREFIX.len()..];
            let Some((name, suffix)) = rest.split_once('_') else { continue };
            if name.is_empty() || !GENERIC_SUFFIXES.contains(&suffix) {
                continue;
            }
            let Some(raw) = self.vars.remove(&var) else { continue };
            match generic_value(name, suffix, &raw) {
                Generic::Set(v) => {
                    self.section(&name.to_lowercase()).insert(suffix.to_lowercase(), v);
                }
                Generic::Skip => {}
                Generic::Bad(why) => self.warn(rest, format!("ignored: {why}")),
            }
        }
    }
}

enum Generic {
    Set(Value),
    Skip,
    Bad(String),
}

/// How Patroni reads one `PATRONI_<NAME>_<SUFFIX>` value. An empty value
/// stays an empty string, except for booleans (dropped) and mappings (`{}`).
fn generic_value(name: &str, suffix: &str, raw: &str) -> Generic {
    let text = Value::String(raw.to_string());
    let int = |what: &str| match parse_int(&text, None) {
        Some(i) => Generic::Set(Value::from(i)),
        None if raw.is_empty() && what == "port" => Generic::Set(Value::String(String::new())),
        None => Generic::Bad(format!("'{raw}' is not an integer")),
    };
    if name == "CITUS" {
        return match suffix {
            "GROUP" => int("group"),
            "DATABASE" => Generic::Set(text),
            _ => Generic::Skip,
        };
    }
    match suffix {
        "PORT" => int("port"),
        "HOSTS" | "PORTS" | "CHECKS" | "SERVICE_TAGS" | "RETRIABLE_HTTP_CODES" if raw.is_empty() => Generic::Set(text),
        "HOSTS" | "PORTS" | "CHECKS" | "SERVICE_TAGS" | "RETRIABLE_HTTP_CODES" => match parse_list(raw) {
            Ok(Value::Null) => Generic::Skip,
            Ok(v) => Generic::Set(v),
            Err(e) => Generic::Bad(format!("not a list: {e}")),
        },
        "LABELS" | "SET_ACLS" | "AUTH_DATA" | "BOOTSTRAP_LABELS" => match parse_dict(raw) {
            Ok(Value::Null) => Generic::Skip,
            Ok(v) => Generic::Set(v),
            Err(e) => Generic::Bad(format!("not a mapping: {e}")),
        },
        "USE_PROXIES" | "REGISTER_SERVICE" | "USE_ENDPOINTS" | "BYPASS_API_SERVICE" | "VERIFY" => {
            match parse_bool(&text) {
                Some(b) => Generic::Set(Value::Bool(b)),
                None if raw.is_empty() => Generic::Skip,
                None => Generic::Bad(format!("'{raw}' is not a boolean")),
            }
        }
        _ => Generic::Set(text),
    }
}

fn has_percent_field(s: &str) -> bool {
    // Python's re.search(r'%\(\w+\)', s)
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'%' && b[i + 1] == b'(' {
            let start = i + 2;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > start && b.get(j) == Some(&b')') {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// Patroni's `_parse_list`: `"'a:1','b:2'"`, `"a:1,b:2"`, `"[a, b]"` or a
/// YAML block list.
pub fn parse_list(value: &str) -> Result<Value, String> {
    let trimmed = value.trim();
    let text = if trimmed.starts_with('-') || value.contains('[') { value.to_string() } else { format!("[{value}]") };
    yaml::parse(&text)
}

/// Patroni's `_parse_dict`: `"{a: 1}"` or `"a: 1, b: 2"`.
pub fn parse_dict(value: &str) -> Result<Value, String> {
    let text = if value.trim().starts_with('{') { value.to_string() } else { format!("{{{value}}}") };
    yaml::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn build(pairs: &[(&str, &str)]) -> (Value, Vec<ConfigWarning>) {
        let mut w = Vec::new();
        let m = from_env(&env(pairs), &mut w);
        (Value::Object(m), w)
    }

    #[test]
    fn lists_in_every_spelling() {
        for spelling in ["'h1:2379','h2:2379'", "h1:2379,h2:2379", "[h1:2379, h2:2379]", "- h1:2379\n- h2:2379"] {
            let (v, w) = build(&[("PATRONI_ETCD3_HOSTS", spelling)]);
            assert_eq!(v["etcd3"]["hosts"], json!(["h1:2379", "h2:2379"]), "spelling {spelling:?}");
            assert!(w.is_empty());
        }
    }

    #[test]
    fn table_of_variables() {
        let cases: &[(&str, &str, Value)] = &[
            ("PATRONI_NAME", "n1", json!({"name": "n1"})),
            ("PATRONI_SCOPE", "", json!({})),
            ("PATRONI_LOG_LEVEL", "DEBUG", json!({"log": {"level": "DEBUG"}})),
            ("PATRONI_LOGLEVEL", "DEBUG", json!({"log": {"level": "DEBUG"}})),
            ("PATRONI_LOG_TYPE", "json", json!({"log": {"type": "json"}})),
            ("PATRONI_LOG_FILE_NUM", "7", json!({"log": {"file_num": 7}})),
            ("PATRONI_LOG_MODE", "0600", json!({"log": {"mode": 384}})),
            (
                "PATRONI_LOG_LOGGERS",
                "{patroni.postmaster: WARNING, urllib3: DEBUG}",
                json!({"log": {"loggers": {"patroni.postmaster": "WARNING", "urllib3": "DEBUG"}}}),
            ),
            (
                "PATRONI_LOG_LOGGERS",
                "patroni.postmaster: WARNING",
                json!({"log": {"loggers": {"patroni.postmaster": "WARNING"}}}),
            ),
            ("PATRONI_LOG_FORMAT", "%(asctime)s %(message)s", json!({"log": {"format": "%(asctime)s %(message)s"}})),
            (
                "PATRONI_LOG_FORMAT",
                "['message', {levelname: level}]",
                json!({"log": {"format": ["message", {"levelname": "level"}]}}),
            ),
            ("PATRONI_RESTAPI_LISTEN", "0.0.0.0:8008", json!({"restapi": {"listen": "0.0.0.0:8008"}})),
            ("PATRONI_RESTAPI_USERNAME", "u", json!({"restapi": {"authentication": {"username": "u"}}})),
            (
                "PATRONI_RESTAPI_ALLOWLIST",
                "10.0.0.0/8,127.0.0.1",
                json!({"restapi": {"allowlist": ["10.0.0.0/8", "127.0.0.1"]}}),
            ),
            (
                "PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS",
                "yes",
                json!({"restapi": {"allowlist_include_members": true}}),
            ),
            ("PATRONI_RESTAPI_REQUEST_QUEUE_SIZE", "12", json!({"restapi": {"request_queue_size": 12}})),
            (
                "PATRONI_RESTAPI_HTTP_EXTRA_HEADERS",
                "'X-Frame-Options': 'SAMEORIGIN'",
                json!({"restapi": {"http_extra_headers": {"X-Frame-Options": "SAMEORIGIN"}}}),
            ),
            ("PATRONI_CTL_INSECURE", "on", json!({"ctl": {"insecure": true}})),
            ("PATRONI_CTL_PASSWORD", "p", json!({"ctl": {"authentication": {"password": "p"}}})),
            ("PATRONI_POSTGRESQL_DATA_DIR", "/d", json!({"postgresql": {"data_dir": "/d"}})),
            ("PATRONI_POSTGRESQL_BIN_PG_CTL", "pgctl15", json!({"postgresql": {"bin_name": {"pg_ctl": "pgctl15"}}})),
            (
                "PATRONI_POSTGRESQL_BIN_IS_READY",
                "isready",
                json!({"postgresql": {"bin_name": {"pg_isready": "isready"}}}),
            ),
            (
                "PATRONI_SUPERUSER_USERNAME",
                "postgres",
                json!({"postgresql": {"authentication": {"superuser": {"username": "postgres"}}}}),
            ),
            (
                "PATRONI_REPLICATION_SSLMODE",
                "verify-full",
                json!({"postgresql": {"authentication": {"replication": {"sslmode": "verify-full"}}}}),
            ),
            ("PATRONI_REWIND_PASSWORD", "r", json!({"postgresql": {"authentication": {"rewind": {"password": "r"}}}})),
            ("PATRONI_ETCD3_PORT", "2379", json!({"etcd3": {"port": 2379}})),
            ("PATRONI_ETCD3_PROTOCOL", "https", json!({"etcd3": {"protocol": "https"}})),
            ("PATRONI_ETCD_USE_PROXIES", "true", json!({"etcd": {"use_proxies": true}})),
            ("PATRONI_CONSUL_REGISTER_SERVICE", "1", json!({"consul": {"register_service": true}})),
            ("PATRONI_CONSUL_CHECKS", "a,b", json!({"consul": {"checks": ["a", "b"]}})),
            (
                "PATRONI_ZOOKEEPER_SET_ACLS",
                "{CN=p1: [CREATE, READ]}",
                json!({"zookeeper": {"set_acls": {"CN=p1": ["CREATE", "READ"]}}}),
            ),
            (
                "PATRONI_KUBERNETES_LABELS",
                "{application: patroni}",
                json!({"kubernetes": {"labels": {"application": "patroni"}}}),
            ),
            ("PATRONI_KUBERNETES_USE_ENDPOINTS", "true", json!({"kubernetes": {"use_endpoints": true}})),
            (
                "PATRONI_KUBERNETES_RETRIABLE_HTTP_CODES",
                "500,503",
                json!({"kubernetes": {"retriable_http_codes": [500, 503]}}),
            ),
            ("PATRONI_KUBERNETES_NAMESPACE", "db", json!({"kubernetes": {"namespace": "db"}})),
            ("PATRONI_EXHIBITOR_HOSTS", "e1,e2", json!({"exhibitor": {"hosts": ["e1", "e2"]}})),
            (
                "PATRONI_RAFT_PARTNER_ADDRS",
                "'10.0.0.2:2222','10.0.0.3:2222'",
                json!({"raft": {"partner_addrs": ["10.0.0.2:2222", "10.0.0.3:2222"]}}),
            ),
            ("PATRONI_RAFT_MIN_TIMEOUT", "1.5", json!({"raft": {"min_timeout": 1.5}})),
            ("PATRONI_CITUS_GROUP", "1", json!({"citus": {"group": 1}})),
            ("PATRONI_CITUS_DATABASE", "citus", json!({"citus": {"database": "citus"}})),
            ("PATRONI_CITUS_HOST", "x", json!({})),
            ("PATRONI_NOFAILOVER", "true", json!({})),
            ("OTHER_NAME", "x", json!({})),
        ];
        for (var, value, expected) in cases {
            let (v, _) = build(&[(var, value)]);
            assert_eq!(&v, expected, "{var}={value:?}");
        }
    }

    #[test]
    fn new_log_names_win_over_old_ones() {
        let (v, _) = build(&[("PATRONI_LOGLEVEL", "DEBUG"), ("PATRONI_LOG_LEVEL", "ERROR")]);
        assert_eq!(v["log"]["level"], json!("ERROR"));
    }

    #[test]
    fn etcd_credentials_only_with_an_etcd_section() {
        let (v, _) =
            build(&[("PATRONI_ETCD3_HOSTS", "a:1"), ("PATRONI_ETCD3_USERNAME", "u"), ("PATRONI_ETCD3_PASSWORD", "p")]);
        assert_eq!(v["etcd3"], json!({"hosts": ["a:1"], "username": "u", "password": "p"}));
        let (v, _) = build(&[("PATRONI_ETCD_USERNAME", "u")]);
        assert_eq!(v, json!({}));
    }

    #[test]
    fn unreadable_values_warn_and_are_dropped() {
        let (v, w) = build(&[("PATRONI_ETCD3_PORT", "abc"), ("PATRONI_LOG_FILE_NUM", "x")]);
        assert_eq!(v, json!({}));
        let paths: Vec<&str> = w.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["PATRONI_LOG_FILE_NUM", "PATRONI_ETCD3_PORT"]);
    }

    #[test]
    fn a_warning_names_the_old_spelling_that_was_set() {
        let (_, w) = build(&[("PATRONI_LOGFORMAT", "[unclosed")]);
        let paths: Vec<&str> = w.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["PATRONI_LOGFORMAT"]);
    }
}
