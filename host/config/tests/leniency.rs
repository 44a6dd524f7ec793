//! The leniency audit: for each typed key, values that are not of the
//! documented type but that Patroni 4.1 runs with (it does not run its
//! validator at start; it reads each value with `bool()`, `parse_bool`,
//! `parse_int`, `str()`...). Palisade must read them with the same meaning
//! and may only warn, never refuse. One row per case: the key path, the
//! YAML value, what Patroni makes of it (and how), and what palisade reads.

use std::collections::BTreeMap;

use palisade_config::{load, GlobalConfig, Loaded};
use palisade_model::Tags;
use serde_json::{json, Map, Value};

mod common;
use common::MINIMAL;

/// Puts `key: value` at the dotted `path` of the minimal configuration.
fn with_setting(path: &str, value: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().expect("a path");
    let mut yaml = String::new();
    for (depth, p) in parents.iter().enumerate() {
        yaml.push_str(&format!("{}{p}:\n", "  ".repeat(depth)));
    }
    yaml.push_str(&format!("{}{last}: {value}\n", "  ".repeat(parents.len())));
    // A section the minimal file already has is merged by a second file
    // level: the environment's PATRONI_CONFIGURATION holds one document, so
    // rewrite the minimal text instead when the section exists.
    match parents.first() {
        Some(section) if MINIMAL.contains(&format!("\n{section}:\n")) => {
            let inner: String = yaml.lines().skip(1).map(|l| format!("{l}\n")).collect();
            MINIMAL.replacen(&format!("\n{section}:\n"), &format!("\n{section}:\n{inner}"), 1)
        }
        _ => format!("{MINIMAL}{yaml}"),
    }
}

fn load_yaml(text: &str) -> Loaded {
    let env: BTreeMap<String, String> = [("PATRONI_CONFIGURATION".to_string(), text.to_string())].into();
    match load(None, &env) {
        Ok(l) => l,
        Err(errors) => {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("refused (Patroni runs it):\n{text}\n{errors:?}")
        }
    }
}

type Read = fn(&Loaded) -> Value;

fn tags(l: &Loaded) -> Tags<'_> {
    Tags(&l.config.tags)
}

/// (key path, YAML value, Patroni's meaning and how it reads the value,
/// what palisade reads, whether palisade warns).
fn local_rows() -> Vec<(&'static str, &'static str, &'static str, Read, Value, bool)> {
    vec![
        (
            "tags.clonefrom",
            "'true'",
            "bool('true') is True",
            (|l| json!(tags(l).clonefrom())) as Read,
            json!(true),
            true,
        ),
        ("tags.clonefrom", "'false'", "bool('false') is True", |l| json!(tags(l).clonefrom()), json!(true), true),
        ("tags.clonefrom", "''", "bool('') is False", |l| json!(tags(l).clonefrom()), json!(false), true),
        ("tags.clonefrom", "1", "bool(1) is True", |l| json!(tags(l).clonefrom()), json!(true), true),
        ("tags.clonefrom", "yes", "YAML 1.1 true", |l| json!(tags(l).clonefrom()), json!(true), false),
        ("tags.nofailover", "'yes'", "bool('yes') is True", |l| json!(tags(l).nofailover()), json!(true), true),
        ("tags.nofailover", "0", "bool(0) is False", |l| json!(tags(l).nofailover()), json!(false), true),
        (
            "tags.noloadbalance",
            "'false'",
            "bool('false') is True",
            |l| json!(tags(l).noloadbalance()),
            json!(true),
            true,
        ),
        ("tags.nosync", "'on'", "bool('on') is True", |l| json!(tags(l).nosync()), json!(true), true),
        ("tags.nostream", "'on'", "parse_bool('on') is True", |l| json!(tags(l).nostream()), json!(true), true),
        ("tags.nostream", "'maybe'", "parse_bool gives None: False", |l| json!(tags(l).nostream()), json!(false), true),
        (
            "tags.failover_priority",
            "'2'",
            "parse_int('2') is 2",
            |l| json!(tags(l).failover_priority()),
            json!(2),
            false,
        ),
        (
            "tags.failover_priority",
            "'0x10'",
            "parse_int is 16",
            |l| json!(tags(l).failover_priority()),
            json!(16),
            false,
        ),
        ("tags.failover_priority", "-1", "<= 0: nofailover", |l| json!(tags(l).nofailover()), json!(true), true),
        ("tags.failover_priority", "high", "parse_int None: 1", |l| json!(tags(l).failover_priority()), json!(1), true),
        ("tags.sync_priority", "'0'", "<= 0: nosync", |l| json!(tags(l).nosync()), json!(true), false),
        (
            "restapi.allowlist_include_members",
            "'yes'",
            "bool()",
            |l| json!(l.config.restapi.allowlist_include_members),
            json!(true),
            true,
        ),
        (
            "restapi.request_queue_size",
            "'6'",
            "parse_int",
            |l| json!(l.config.restapi.request_queue_size),
            json!(6),
            false,
        ),
        ("ctl.insecure", "'false'", "bool('false') is True", |l| json!(l.config.ctl.insecure), json!(true), true),
        ("ctl.insecure", "0", "bool(0) is False", |l| json!(l.config.ctl.insecure), json!(false), true),
        (
            "postgresql.use_pg_rewind",
            "'true'",
            "bool()",
            |l| json!(l.config.postgresql.use_pg_rewind),
            json!(Some(true)),
            true,
        ),
        (
            "postgresql.use_unix_socket",
            "'yes'",
            "bool()",
            |l| json!(l.config.postgresql.use_unix_socket),
            json!(true),
            true,
        ),
        (
            "postgresql.use_unix_socket_repl",
            "1",
            "bool()",
            |l| json!(l.config.postgresql.use_unix_socket_repl),
            json!(true),
            true,
        ),
        (
            "postgresql.remove_data_directory_on_rewind_failure",
            "'on'",
            "bool()",
            |l| json!(l.config.postgresql.remove_data_directory_on_rewind_failure),
            json!(true),
            true,
        ),
        (
            "postgresql.remove_data_directory_on_diverged_timelines",
            "''",
            "bool('') is False",
            |l| json!(l.config.postgresql.remove_data_directory_on_diverged_timelines),
            json!(false),
            true,
        ),
        (
            "postgresql.pg_ctl_timeout",
            "'90'",
            "parse_int",
            |l| json!(l.config.postgresql.pg_ctl_timeout.as_secs()),
            json!(90),
            false,
        ),
        (
            "watchdog.mode",
            "sometimes",
            "parse_mode: not recognized, off",
            |l| json!(l.config.watchdog.mode),
            json!("off"),
            true,
        ),
        (
            "watchdog.mode",
            "true",
            "parse_mode('True'): not recognized, off",
            |l| json!(l.config.watchdog.mode),
            json!("off"),
            true,
        ),
        (
            "watchdog.mode",
            "Required",
            "parse_mode lowers it",
            |l| json!(l.config.watchdog.mode),
            json!("required"),
            false,
        ),
        (
            "watchdog.safety_margin",
            "'7'",
            "parse_int",
            |l| json!(l.config.watchdog.safety_margin.as_secs()),
            json!(7),
            false,
        ),
        ("log.file_num", "'3'", "int('3')", |l| json!(l.config.log.file_num), json!(3), false),
        (
            "citus.group",
            "'1'\n  database: c",
            "parse_int, then int('1')",
            |l| json!(l.config.citus.as_ref().map(|c| c.group)),
            json!(1),
            true,
        ),
    ]
}

#[test]
fn local_settings_read_as_patroni_reads_them() {
    let mut bad = Vec::new();
    for (path, value, patroni, read, want, warns) in local_rows() {
        let text = with_setting(path, value);
        let loaded = load_yaml(&text);
        let got = read(&loaded);
        let warned = loaded.warnings.iter().any(|w| w.path == path);
        if got != want || warned != warns {
            bad.push(format!(
                "{path}: {value} (Patroni: {patroni}): palisade reads {got} (want {want}), warns: {warned} (want {warns})"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

type ReadGlobal = fn(&GlobalConfig) -> Value;

/// The dynamic configuration (the DCS `config` key, `bootstrap.dcs`,
/// `PATCH /config`), read by Patroni's `global_config.py`: flags with
/// `bool(parse_bool(...))`, numbers with `parse_int`, `use_pg_rewind` with
/// `bool()`.
fn dynamic_rows() -> Vec<(&'static str, Value, &'static str, ReadGlobal, Value, bool)> {
    vec![
        ("pause", json!("true"), "parse_bool", (|g| json!(g.pause)) as ReadGlobal, json!(true), false),
        ("pause", json!("nah"), "bool(parse_bool('nah')) is False", |g| json!(g.pause), json!(false), true),
        ("pause", json!(1), "parse_bool(1) is True", |g| json!(g.pause), json!(true), false),
        ("failsafe_mode", json!("on"), "parse_bool", |g| json!(g.failsafe_mode), json!(true), false),
        ("check_timeline", json!("YES"), "parse_bool", |g| json!(g.check_timeline), json!(true), false),
        ("synchronous_mode", json!("on"), "parse_bool", |g| json!(g.is_synchronous_mode()), json!(true), false),
        (
            "synchronous_mode",
            json!("QUORUM"),
            "str().lower() == 'quorum'",
            |g| json!(g.is_quorum_commit_mode()),
            json!(true),
            false,
        ),
        (
            "synchronous_mode",
            json!("sometimes"),
            "parse_bool None: off",
            |g| json!(g.is_synchronous_mode()),
            json!(false),
            true,
        ),
        ("synchronous_mode_strict", json!("1"), "parse_bool", |g| json!(g.synchronous_mode_strict), json!(true), false),
        ("postgresql.use_slots", json!("off"), "parse_bool", |g| json!(g.use_slots), json!(false), false),
        (
            "postgresql.use_slots",
            json!("garbage"),
            "bool(parse_bool(..)) is False",
            |g| json!(g.use_slots),
            json!(false),
            true,
        ),
        (
            "postgresql.use_pg_rewind",
            json!("false"),
            "bool('false') is True",
            |g| json!(g.use_pg_rewind),
            json!(true),
            true,
        ),
        ("loop_wait", json!("5"), "parse_int", |g| json!(g.loop_wait.as_secs()), json!(5), false),
        ("ttl", json!("0x20"), "parse_int", |g| json!(g.ttl.as_secs()), json!(32), false),
        ("retry_timeout", json!(12.4), "parse_int rounds", |g| json!(g.retry_timeout.as_secs()), json!(12), false),
        (
            "maximum_lag_on_failover",
            json!("1024"),
            "parse_int",
            |g| json!(g.maximum_lag_on_failover),
            json!(1024),
            false,
        ),
        ("synchronous_node_count", json!("2"), "parse_int", |g| json!(g.synchronous_node_count), json!(2), false),
        (
            "primary_start_timeout",
            json!("120"),
            "parse_int",
            |g| json!(g.primary_start_timeout.as_secs()),
            json!(120),
            false,
        ),
    ]
}

#[test]
fn dynamic_settings_read_as_patroni_reads_them() {
    let mut bad = Vec::new();
    for (path, value, patroni, read, want, warns) in dynamic_rows() {
        let mut data = Map::new();
        match path.split_once('.') {
            Some((section, key)) => {
                data.insert(section.into(), json!({ key: value.clone() }));
            }
            None => {
                data.insert(path.into(), value.clone());
            }
        }
        let (global, warnings) = GlobalConfig::from_dynamic(&data);
        let got = read(&global);
        let warned = warnings.iter().any(|w| w.path == path);
        if got != want || warned != warns {
            bad.push(format!(
                "{path}: {value} (Patroni: {patroni}): palisade reads {got} (want {want}), warns: {warned} (want {warns})"
            ));
        }
        // As bootstrap.dcs it must be accepted too (warnings only).
        let text = format!("{MINIMAL}bootstrap:\n  dcs: {}\n", serde_json::to_string(&data).expect("json"));
        let env: BTreeMap<String, String> = [("PATRONI_CONFIGURATION".to_string(), text)].into();
        if let Err(errors) = load(None, &env) {
            bad.push(format!("bootstrap.dcs.{path}: {value} refused: {errors:?}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
