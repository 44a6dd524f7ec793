//! What loading a configuration promises on any input, checked by one
//! function, [`check_case`]: the bounded fuzz tests
//! (`tests/fuzz_config.rs`, seeded generated cases, in CI) and the cargo
//! fuzz targets `config_file` and `config_env` (fuzz/) both call it.
//!
//! The promises (see docs/reliability.md, "Configuration"): loading, for
//! the daemon and for palisadectl, never panics (a panic is the caller's
//! to catch or report), and every error and warning says where the
//! problem is ([`check_located`]); a configuration that loads goes through
//! what the daemon does next without a problem ([`use_loaded`]).
//!
//! Built with the `fuzzing` feature only.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{ConfigError, GlobalConfig, Loaded};

/// Top-level keys of Patroni's configuration (what an error path may start with).
pub const TOP_LEVEL: [&str; 25] = [
    "scope",
    "namespace",
    "name",
    "plugin_dir",
    "log",
    "restapi",
    "ctl",
    "etcd",
    "etcd3",
    "consul",
    "zookeeper",
    "exhibitor",
    "kubernetes",
    "raft",
    "citus",
    "bootstrap",
    "postgresql",
    "watchdog",
    "tags",
    "standby_cluster",
    "failsafe",
    "thread_pool_size",
    "thread_stack_size",
    "synchronous_mode",
    "dcs",
];

const DCS_SECTIONS: [&str; 8] = ["ETCD", "ETCD3", "CONSUL", "ZOOKEEPER", "EXHIBITOR", "KUBERNETES", "RAFT", "CITUS"];

// The loader's own list: a suffix it learns is fuzzed without a change here.
use crate::env::GENERIC_SUFFIXES;

/// Every variable name the loader reads, without the `PATRONI_` prefix.
pub fn env_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "NAME",
        "NAMESPACE",
        "SCOPE",
        "THREAD_POOL_SIZE",
        "THREAD_STACK_SIZE",
        "LOGLEVEL",
        "LOGFORMAT",
        "LOG_DATEFMT",
        "CONFIGURATION",
        "RESTAPI_USERNAME",
        "RESTAPI_PASSWORD",
        "CTL_USERNAME",
        "CTL_PASSWORD",
        "ETCD_USERNAME",
        "ETCD_PASSWORD",
        "ETCD3_USERNAME",
        "ETCD3_PASSWORD",
        "POSTGRESQL_BIN_IS_READY",
        "",
        "UNKNOWN_THING",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for k in [
        "LEVEL",
        "TRACEBACK_LEVEL",
        "FORMAT",
        "DATEFORMAT",
        "STATIC_FIELDS",
        "MAX_QUEUE_SIZE",
        "DIR",
        "MODE",
        "FILE_NUM",
        "FILE_SIZE",
        "LOGGERS",
        "TYPE",
        "DEDUPLICATE_HEARTBEAT_LOGS",
    ] {
        names.push(format!("LOG_{k}"));
    }
    for k in [
        "LISTEN",
        "CONNECT_ADDRESS",
        "CERTFILE",
        "KEYFILE",
        "KEYFILE_PASSWORD",
        "CAFILE",
        "CIPHERS",
        "VERIFY_CLIENT",
        "HTTP_EXTRA_HEADERS",
        "HTTPS_EXTRA_HEADERS",
        "ALLOWLIST",
        "ALLOWLIST_INCLUDE_MEMBERS",
        "REQUEST_QUEUE_SIZE",
        "SERVER_TOKENS",
    ] {
        names.push(format!("RESTAPI_{k}"));
    }
    for k in ["INSECURE", "CACERT", "CERTFILE", "KEYFILE", "KEYFILE_PASSWORD"] {
        names.push(format!("CTL_{k}"));
    }
    for k in ["LISTEN", "CONNECT_ADDRESS", "PROXY_ADDRESS", "CONFIG_DIR", "DATA_DIR", "PGPASS", "BIN_DIR"] {
        names.push(format!("POSTGRESQL_{k}"));
    }
    for b in ["PG_CTL", "INITDB", "PG_CONTROLDATA", "PG_BASEBACKUP", "POSTGRES", "PG_ISREADY", "PG_REWIND"] {
        names.push(format!("POSTGRESQL_BIN_{b}"));
    }
    for user in ["SUPERUSER", "REPLICATION", "REWIND"] {
        for p in [
            "USERNAME",
            "PASSWORD",
            "SSLMODE",
            "SSLCERT",
            "SSLKEY",
            "SSLPASSWORD",
            "SSLROOTCERT",
            "SSLCRL",
            "SSLCRLDIR",
            "GSSENCMODE",
            "CHANNEL_BINDING",
            "SSLNEGOTIATION",
        ] {
            names.push(format!("{user}_{p}"));
        }
    }
    for k in [
        "SELF_ADDR",
        "PARTNER_ADDRS",
        "DATA_DIR",
        "BIND_ADDR",
        "PASSWORD",
        "MIN_TIMEOUT",
        "MAX_TIMEOUT",
        "APPEND_ENTRIES_PERIOD",
        "CONNECTION_TIMEOUT",
        "CONNECTION_RETRY_TIME",
        "LEADER_FALLBACK_TIMEOUT",
    ] {
        names.push(format!("RAFT_{k}"));
    }
    for section in DCS_SECTIONS {
        for suffix in GENERIC_SUFFIXES {
            names.push(format!("{section}_{suffix}"));
        }
    }
    names
}

/// What one case gave.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Whether it loaded (for the daemon).
    pub loaded: bool,
    /// Every error and warning message (the daemon's and palisadectl's).
    pub messages: Vec<String>,
    /// The broken promises; empty when all were kept.
    pub problems: Vec<String>,
}

/// Load the configuration in `file` (already written there when given)
/// with `env`, as the daemon and palisadectl do, use it when it loads, and
/// check every promise. Panics only when the code under test panics.
pub fn check_case(file: Option<&Path>, env: &BTreeMap<String, String>) -> Outcome {
    let result = crate::load(file, env);
    let mut outcome = Outcome { loaded: result.is_ok(), ..Outcome::default() };
    if let Ok(loaded) = &result {
        outcome.problems.extend(use_loaded(loaded).iter().map(ToString::to_string));
    }
    let for_ctl = crate::load_for_ctl(file, env);
    let (errors, warnings) = match &result {
        Ok(l) => (Vec::new(), l.warnings.clone()),
        Err(e) => (e.clone(), Vec::new()),
    };
    let ctl = match for_ctl {
        Ok(l) => l.warnings,
        Err(e) => e,
    };
    for e in errors.iter().chain(&warnings).chain(&ctl) {
        outcome.messages.push(e.message.clone());
        if let Err(p) = check_located(e, file, env) {
            outcome.problems.push(p);
        }
    }
    outcome
}

/// Where an error or warning must say the problem is:
/// - a non-empty `path`: a dotted key path whose first part is a top-level
///   key of Patroni's configuration (`postgresql.authentication.superuser`,
///   `bootstrap.dcs.ttl`, `tags.nofailover`...), or the `PATRONI_*`
///   variable that was set (`PATRONI_LOG_FILE_NUM`, `PATRONI_CONFIGURATION`);
///   without control characters, and a non-empty message;
/// - an empty `path` only for a problem of the file as a whole: the message
///   starts with the file's path, and a YAML syntax error (`invalid YAML`)
///   gives its `line L column C`; or a problem of the configuration as a
///   whole that names the top-level keys concerned: the empty
///   configuration, no DCS section, several DCS sections (each named).
pub fn check_located(e: &ConfigError, file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<(), String> {
    if e.message.trim().is_empty() {
        return Err(format!("empty message at '{}'", e.path));
    }
    // The loader's own words only: a value quoted in a message may say anything.
    if e.message == crate::UNSPECIFIC {
        return Err(format!("unspecific error: {e}"));
    }
    if e.path.is_empty() {
        if e.message.starts_with("the configuration is empty") || e.message.starts_with("no DCS configured: add one") {
            return Ok(());
        }
        if let Some(list) = e.message.strip_prefix("several DCS sections configured (") {
            let named = list.split(')').next().unwrap_or("");
            if named.split(", ").count() >= 2 && named.split(", ").all(|s| TOP_LEVEL.contains(&s)) {
                return Ok(());
            }
            return Err(format!("DCS sections not named: {e}"));
        }
        let Some(file) = file else {
            return Err(format!("error without a key path or file: {e}"));
        };
        if !e.message.starts_with(&file.display().to_string()) {
            return Err(format!("error without a key path or file: {e}"));
        }
        if e.message.contains("invalid YAML") && !has_line(&e.message) {
            return Err(format!("YAML error without a line: {e}"));
        }
        return Ok(());
    }
    if e.path.chars().any(char::is_control) {
        return Err(format!("control characters in the path: {:?}", e.path));
    }
    if e.path.starts_with("PATRONI_") {
        if !env.contains_key(&e.path) {
            return Err(format!("names a variable that is not set: {e}"));
        }
        if e.path == "PATRONI_CONFIGURATION" && e.message.contains("invalid YAML") && !has_line(&e.message) {
            return Err(format!("YAML error without a line: {e}"));
        }
        return Ok(());
    }
    let first = e.path.split(['.', '[']).next().unwrap_or("");
    if !TOP_LEVEL.contains(&first) {
        return Err(format!("path does not start with a configuration section: {e}"));
    }
    Ok(())
}

fn has_line(message: &str) -> bool {
    message.contains("line ") || message.contains("at line")
}

/// What the daemon does with a configuration that loaded: the dynamic
/// configuration from `bootstrap.dcs`, the settings not acted on, the
/// merge into PostgreSQL's settings, the paths to check, the cache JSON
/// read back. The problems found (none when all went well).
pub fn use_loaded(loaded: &Loaded) -> Vec<ConfigError> {
    let mut issues = Vec::new();
    let dynamic = crate::dynamic_from_bootstrap(&loaded.config);
    let (global, mut warnings) = GlobalConfig::from_dynamic(&dynamic);
    // These name paths inside the dynamic configuration (`ttl`,
    // `postgresql.parameters...`), not local paths: only check they have one.
    for w in warnings.drain(..) {
        if w.path.is_empty() || w.message.is_empty() {
            issues.push(ConfigError { path: "bootstrap.dcs".into(), message: format!("unlocated warning: {w}") });
        }
    }
    let _ = crate::not_acted_on(&loaded.config, &global);
    let _ = crate::effective_postgresql(&loaded.config, &global);
    let _ = crate::paths_to_check(&loaded.config);
    let json = crate::to_cache_json(&dynamic);
    if crate::from_cache_json(&json).is_err() {
        issues.push(ConfigError { path: "bootstrap.dcs".into(), message: "the cache JSON does not read back".into() });
    }
    issues
}

/// A fuzzer's bytes as a case: the configuration file's bytes (`None`:
/// no file) and a `PATRONI_*` environment. The input is split at `\0`:
/// the first part is the file (an empty first part: no file), each later
/// part is one variable: `PATRONI_NAME=value` as it is, or else a
/// variable of `names` ([`env_names`]) chosen by the part's first byte,
/// set to the rest.
pub fn case_from_bytes(data: &[u8], names: &[String]) -> (Option<Vec<u8>>, BTreeMap<String, String>) {
    let mut parts = data.split(|b| *b == 0);
    let file = parts.next().filter(|f| !f.is_empty()).map(<[u8]>::to_vec);
    let mut env = BTreeMap::new();
    for part in parts {
        let text = String::from_utf8_lossy(part);
        match text.split_once('=') {
            Some((name, value)) if name.starts_with("PATRONI_") => {
                env.insert(name.to_string(), value.to_string());
            }
            _ if !names.is_empty() => {
                let Some((&first, rest)) = part.split_first() else { continue };
                let name = &names[usize::from(first) % names.len()];
                env.insert(format!("PATRONI_{name}"), String::from_utf8_lossy(rest).into_owned());
            }
            _ => {}
        }
    }
    (file, env)
}
