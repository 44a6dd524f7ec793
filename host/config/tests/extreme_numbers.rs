//! Extreme and garbage numbers in every numeric key of the YAML and in the
//! `PATRONI_*` environment: never a panic; either an error naming the key,
//! or a value palisade can use (durations at most a year) with a warning
//! naming the key when it was changed.

use std::collections::BTreeMap;
use std::time::Duration;

use palisade_config::limits::{MAX_DURATION, MAX_SECONDS};
use palisade_config::{load, ConfigError, Loaded};

mod common;
use common::MINIMAL;

/// YAML spellings of extreme and garbage numbers (PyYAML's: `.nan`, `.inf`).
const VALUES: [&str; 20] = [
    "0",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999999999",
    "4e18",
    "1e308",
    "-1e308",
    "1e400",
    ".nan",
    ".inf",
    "-.inf",
    "'NaN'",
    "'Infinity'",
    "'-inf'",
    "'abc'",
    "''",
    "[]",
    "{a: 1}",
];

/// Every numeric key of the local file, as a path of sections.
const KEYS: [&[&str]; 16] = [
    &["log", "file_num"],
    &["log", "file_size"],
    &["log", "mode"],
    &["log", "max_queue_size"],
    &["restapi", "request_queue_size"],
    &["restapi", "thread_pool_size"],
    &["postgresql", "pg_ctl_timeout"],
    &["watchdog", "safety_margin"],
    &["bootstrap", "dcs", "ttl"],
    &["bootstrap", "dcs", "loop_wait"],
    &["bootstrap", "dcs", "retry_timeout"],
    &["bootstrap", "dcs", "primary_start_timeout"],
    &["bootstrap", "dcs", "maximum_lag_on_failover"],
    &["bootstrap", "dcs", "member_slots_ttl"],
    &["tags", "failover_priority"],
    &["citus", "group"],
];

fn yaml_with(path: &[&str], value: &str) -> String {
    let mut text = MINIMAL.to_string();
    // Sections of MINIMAL are extended by appending keys under them.
    let nested: String = path
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let indent = "  ".repeat(i);
            if i + 1 == path.len() {
                format!("{indent}{k}: {value}\n")
            } else {
                format!("{indent}{k}:\n")
            }
        })
        .collect();
    match path[0] {
        "restapi" => text = text.replace("restapi:\n", &format!("restapi:\n  {}: {value}\n", path[1])),
        "postgresql" => text = text.replace("postgresql:\n", &format!("postgresql:\n  {}: {value}\n", path[1])),
        "citus" => text.push_str(&format!("citus:\n  database: d\n  group: {value}\n")),
        _ => text.push_str(&nested),
    }
    text
}

fn load_text(text: &str) -> Result<Loaded, Vec<ConfigError>> {
    let env: BTreeMap<String, String> = [("PATRONI_CONFIGURATION".to_string(), text.to_string())].into();
    load(None, &env)
}

fn check_durations(loaded: &Loaded, what: &str) {
    let c = &loaded.config;
    assert!(c.postgresql.pg_ctl_timeout <= MAX_DURATION, "{what}: pg_ctl_timeout {:?}", c.postgresql.pg_ctl_timeout);
    let margin = c.watchdog.safety_margin;
    assert!(margin <= MAX_DURATION, "{what}: safety_margin {margin:?}");
}

#[test]
fn extreme_numbers_in_the_yaml() {
    for key in KEYS {
        let dotted = key.join(".");
        for value in VALUES {
            let text = yaml_with(key, value);
            let what = format!("{dotted}: {value}");
            match std::panic::catch_unwind(|| load_text(&text)) {
                Err(_) => panic!("{what}: load panicked"),
                Ok(Err(errors)) => {
                    assert!(errors.iter().any(|e| e.path.ends_with(key[key.len() - 1])), "{what}: {errors:?}");
                }
                Ok(Ok(loaded)) => check_durations(&loaded, &what),
            }
        }
    }
}

#[test]
fn huge_durations_are_clamped_with_a_warning() {
    for (key, get) in [
        (
            &["postgresql", "pg_ctl_timeout"][..],
            (|l: &Loaded| l.config.postgresql.pg_ctl_timeout) as fn(&Loaded) -> Duration,
        ),
        (&["watchdog", "safety_margin"][..], |l: &Loaded| l.config.watchdog.safety_margin),
    ] {
        let loaded = load_text(&yaml_with(key, "4000000000000000000")).unwrap_or_else(|e| panic!("{key:?}: {e:?}"));
        assert_eq!(get(&loaded), MAX_DURATION, "{key:?}");
        let path = key.join(".");
        assert!(
            loaded.warnings.iter().any(|w| w.path == path && w.message.contains(&MAX_SECONDS.to_string())),
            "{path}: {:?}",
            loaded.warnings
        );
    }
    // In bootstrap.dcs a huge ttl is kept (clamped when read), not refused.
    let loaded =
        load_text(&yaml_with(&["bootstrap", "dcs", "ttl"], "4000000000000000000")).expect("a huge ttl is valid");
    assert!(loaded.warnings.iter().any(|w| w.path == "bootstrap.dcs.ttl"), "{:?}", loaded.warnings);
}

#[test]
fn extreme_numbers_in_the_environment() {
    let vars = [
        "PATRONI_LOG_FILE_NUM",
        "PATRONI_LOG_FILE_SIZE",
        "PATRONI_LOG_MODE",
        "PATRONI_LOG_MAX_QUEUE_SIZE",
        "PATRONI_RESTAPI_REQUEST_QUEUE_SIZE",
        "PATRONI_POSTGRESQL_PG_CTL_TIMEOUT",
        "PATRONI_CITUS_GROUP",
    ];
    let values = [
        "0",
        "-1",
        "9223372036854775808",
        "99999999999999999999999999999",
        "1e308",
        "1e400",
        "NaN",
        "nan",
        "Infinity",
        "-inf",
        "0x7fffffffffffffff",
        "1_000",
        "abc",
        "",
        "[1, 2]",
        "{a: 1}",
    ];
    for var in vars {
        for value in values {
            let env_only: BTreeMap<String, String> = common::MINIMAL_ENV
                .into_iter()
                .chain([(var, value)])
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let what = format!("{var}={value}");
            match std::panic::catch_unwind(|| load(None, &env_only)) {
                Err(_) => panic!("{what}: load panicked"),
                Ok(Err(errors)) => {
                    let section = var["PATRONI_".len()..].split('_').next().unwrap_or("").to_lowercase();
                    assert!(errors.iter().any(|e| e.path.starts_with(&section)), "{what}: {errors:?}");
                }
                Ok(Ok(loaded)) => check_durations(&loaded, &what),
            }
        }
    }
}
