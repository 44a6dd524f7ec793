//! The dynamic configuration (the DCS `config` key, or `bootstrap.dcs`
//! before the cluster exists) read into [`GlobalConfig`] by Patroni's
//! rules (its `global_config.py` and `Config._validate_and_adjust_timeouts`).
//!
//! Reading is tolerant: the DCS value may have been written by anyone, so a
//! bad value is reported and its default used. The same reader checks
//! `bootstrap.dcs` in the local file, where the problems marked `fatal`
//! become errors.
//!
//! One deliberate difference from Patroni: `ttl`, `loop_wait` and
//! `retry_timeout` below Patroni's minimums (20, 1, 3) and a
//! `loop_wait + 2 * retry_timeout > ttl` are accepted with a warning instead
//! of being silently raised, so that tests and sites that want fast
//! failover can have it.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::limits;
use crate::params::controlled;
use crate::types::{ConfigWarning, GlobalConfig, SynchronousMode};
use crate::values::{describe, parse_bool, parse_int};

/// Patroni's defaults and minimums for the three timings.
pub const DEFAULT_TTL: u64 = 30;
pub const DEFAULT_LOOP_WAIT: u64 = 10;
pub const DEFAULT_RETRY_TIMEOUT: u64 = 10;
pub const MIN_TTL: i64 = 20;
pub const MIN_LOOP_WAIT: i64 = 1;
pub const MIN_RETRY_TIMEOUT: i64 = 3;

/// A problem found in a dynamic configuration. `fatal` problems are errors
/// when the configuration is the local `bootstrap.dcs`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issue {
    pub key: String,
    pub message: String,
    pub fatal: bool,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(DEFAULT_TTL),
            loop_wait: Duration::from_secs(DEFAULT_LOOP_WAIT),
            retry_timeout: Duration::from_secs(DEFAULT_RETRY_TIMEOUT),
            maximum_lag_on_failover: 1_048_576,
            maximum_lag_on_syncnode: -1,
            max_timelines_history: 0,
            primary_start_timeout: Duration::from_secs(300),
            primary_stop_timeout: Duration::ZERO,
            synchronous_mode: SynchronousMode::Off,
            synchronous_mode_strict: false,
            synchronous_node_count: 1,
            failsafe_mode: false,
            check_timeline: false,
            pause: false,
            standby_cluster: None,
            use_slots: true,
            use_pg_rewind: false,
            member_slots_ttl: Duration::from_secs(1800),
            data: Map::new(),
        }
    }
}

impl GlobalConfig {
    /// Reads a dynamic configuration. Never fails: each bad value gives a
    /// warning naming its key and the default is used.
    pub fn from_dynamic(data: &Map<String, Value>) -> (GlobalConfig, Vec<ConfigWarning>) {
        let (config, issues) = read(data);
        let warnings = issues.into_iter().map(|i| ConfigWarning { path: i.key, message: i.message }).collect();
        (config, warnings)
    }

    /// The problems in a dynamic configuration that make it unacceptable
    /// as a new value (a wrong type, a value below its minimum, a value
    /// Patroni's validator rejects), each naming its key. The tolerant
    /// reader would fall back to defaults for these; a writer is told.
    pub fn errors(data: &Map<String, Value>) -> Vec<ConfigWarning> {
        let (_, issues) = read(data);
        issues.into_iter().filter(|i| i.fatal).map(|i| ConfigWarning { path: i.key, message: i.message }).collect()
    }

    /// A setting of the dynamic configuration as stored (`None` when absent).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.data.get(name).filter(|v| !v.is_null())
    }

    /// `standby_cluster` is set with a `host`, `port` or `restore_command`.
    pub fn is_standby_cluster(&self) -> bool {
        self.standby_cluster.is_some()
    }

    /// Synchronous replication is requested (plain or quorum) and this is not
    /// a standby cluster, as Patroni's `is_synchronous_mode`.
    pub fn is_synchronous_mode(&self) -> bool {
        self.synchronous_mode != SynchronousMode::Off && !self.is_standby_cluster()
    }

    /// `synchronous_mode: quorum`.
    pub fn is_quorum_commit_mode(&self) -> bool {
        self.synchronous_mode == SynchronousMode::Quorum
    }

    /// 1 with `synchronous_mode_strict`, else 0.
    pub fn min_synchronous_nodes(&self) -> u32 {
        u32::from(self.synchronous_mode_strict)
    }

    /// Permanent replication slots (`slots`, or the older
    /// `permanent_replication_slots` / `permanent_slots`).
    pub fn permanent_slots(&self) -> Map<String, Value> {
        ["permanent_replication_slots", "permanent_slots", "slots"]
            .iter()
            .filter_map(|k| self.get(k).and_then(Value::as_object).filter(|m| !m.is_empty()))
            .next()
            .cloned()
            .unwrap_or_default()
    }

    /// `ignore_slots` matchers.
    pub fn ignore_slots(&self) -> Vec<Map<String, Value>> {
        self.get("ignore_slots")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_object).cloned().collect())
            .unwrap_or_default()
    }

    /// `primary_race_backoff` in seconds (default 0).
    pub fn primary_race_backoff(&self) -> i64 {
        self.get("primary_race_backoff").and_then(|v| parse_int(v, None)).unwrap_or(0)
    }
}

struct Reader<'a> {
    data: &'a Map<String, Value>,
    issues: Vec<Issue>,
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.data.get(key).filter(|v| !v.is_null())
    }

    fn issue(&mut self, key: &str, fatal: bool, message: String) {
        self.issues.push(Issue { key: key.into(), message, fatal });
    }

    /// An integer setting; `None` (after reporting) when absent or bad.
    fn int(&mut self, key: &str, min: i64, unit: Option<&str>, default: &str) -> Option<i64> {
        let v = self.get(key)?.clone();
        match parse_int(&v, unit) {
            Some(i) if i >= min => Some(i),
            Some(i) => {
                self.issue(key, true, format!("{i} is below the minimum {min}; using the default {default}"));
                None
            }
            None => {
                self.issue(
                    key,
                    true,
                    format!("expected an integer, found {}; using the default {default}", describe(&v)),
                );
                None
            }
        }
    }

    /// A flag Patroni reads as `bool(parse_bool(value))`: what parse_bool
    /// cannot read is false (even where the default is true), with a
    /// warning.
    fn flag(&mut self, key: &str, default: bool) -> bool {
        let Some(v) = self.get(key).cloned() else { return default };
        parse_bool(&v).unwrap_or_else(|| {
            self.issue(
                key,
                false,
                format!("expected a boolean, found {}; read as false, as Patroni does", describe(&v)),
            );
            false
        })
    }

    /// A flag Patroni reads with Python's `bool()` (`use_pg_rewind`): any
    /// value, with a warning when it is not a boolean.
    fn truthy_flag(&mut self, key: &str) -> bool {
        let Some(v) = self.get(key).cloned() else { return false };
        let truth = palisade_pycompat::py::truthy(&v);
        if !v.is_boolean() {
            self.issue(
                key,
                false,
                format!("expected a boolean, found {}; read as {truth}, as Python's bool() reads it", describe(&v)),
            );
        }
        truth
    }

    /// `ttl`, `loop_wait`, `retry_timeout`: positive seconds; below Patroni's
    /// minimum is accepted with a warning.
    fn timing(&mut self, key: &str, default: u64, min: i64) -> Duration {
        let Some(v) = self.get(key).cloned() else { return Duration::from_secs(default) };
        match parse_int(&v, None) {
            Some(i) if i > 0 => {
                if i < min {
                    self.issue(
                        key,
                        false,
                        format!(
                            "{key}={i} is below Patroni's minimum of {min}: accepted (faster reactions, but brief DCS or \
                             network hiccups can cause spurious failovers or demotions)"
                        ),
                    );
                }
                self.seconds(key, i)
            }
            _ => {
                self.issue(
                    key,
                    true,
                    format!(
                        "expected a positive number of seconds, found {}; using the default {default}",
                        describe(&v)
                    ),
                );
                Duration::from_secs(default)
            }
        }
    }

    /// Seconds (not negative) as a duration, clamped to
    /// [`limits::MAX_SECONDS`] with a warning naming the key.
    fn seconds(&mut self, key: &str, value: i64) -> Duration {
        let (d, clamped) = limits::seconds(value.max(0).unsigned_abs());
        if clamped {
            self.issue(key, false, limits::clamped_message(value));
        }
        d
    }

    fn synchronous_mode(&mut self) -> SynchronousMode {
        let Some(v) = self.get("synchronous_mode").cloned() else { return SynchronousMode::Off };
        if v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("quorum")) {
            return SynchronousMode::Quorum;
        }
        match parse_bool(&v) {
            Some(true) => SynchronousMode::On,
            Some(false) => SynchronousMode::Off,
            None => {
                self.issue(
                    "synchronous_mode",
                    false,
                    format!("expected on, off or quorum, found {}; synchronous mode stays off", describe(&v)),
                );
                SynchronousMode::Off
            }
        }
    }

    fn standby_cluster(&mut self) -> Option<Map<String, Value>> {
        let v = self.get("standby_cluster")?.clone();
        let Value::Object(m) = v else {
            self.issue("standby_cluster", true, format!("expected a mapping, found {}; ignored", describe(&v)));
            return None;
        };
        let truthy = |v: Option<&Value>| v.is_some_and(palisade_pycompat::py::truthy);
        for key in ["host", "restore_command", "primary_slot_name", "archive_cleanup_command"] {
            if let Some(x) = m.get(key).filter(|x| !x.is_null() && !x.is_string()) {
                self.issue(
                    &format!("standby_cluster.{key}"),
                    true,
                    format!("expected a string, found {}", describe(x)),
                );
            }
        }
        if let Some(port) = m.get("port").filter(|p| !p.is_null() && !p.as_str().is_some_and(str::is_empty)) {
            if !parse_int(port, None).is_some_and(|p| (1..=65535).contains(&p)) {
                self.issue("standby_cluster.port", true, format!("expected a port number, found {}", describe(port)));
            }
        }
        if let Some(delay) = m.get("recovery_min_apply_delay").filter(|x| !x.is_null()) {
            let readable = match delay {
                Value::String(s) => s.is_empty() || palisade_pycompat::patroni::parse_int(s, Some("ms")).is_some(),
                Value::Number(n) => n.is_i64() || n.is_u64(),
                _ => false,
            };
            if !readable {
                self.issue(
                    "standby_cluster.recovery_min_apply_delay",
                    true,
                    format!(
                        "expected a duration such as '5min' or a number of milliseconds, found {}",
                        describe(delay)
                    ),
                );
            }
        }
        if let Some(methods) = m.get("create_replica_methods").filter(|x| !x.is_null()) {
            if !methods.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                self.issue(
                    "standby_cluster.create_replica_methods",
                    true,
                    format!("expected a list of strings, found {}", describe(methods)),
                );
            }
        }
        if ["host", "port", "restore_command"].iter().any(|k| truthy(m.get(*k))) {
            Some(m)
        } else {
            if !m.is_empty() {
                self.issue(
                    "standby_cluster",
                    true,
                    "needs at least one of host, port or restore_command; this is not a standby cluster".into(),
                );
            }
            None
        }
    }

    /// The dynamic `postgresql` section: `use_slots`, `use_pg_rewind`, and
    /// checks of its other settings.
    fn postgresql(&mut self) -> (bool, bool) {
        let Some(v) = self.get("postgresql").cloned() else { return (true, false) };
        let Value::Object(pg) = v else {
            self.issue("postgresql", true, format!("expected a mapping, found {}; ignored", describe(&v)));
            return (true, false);
        };
        let mut sub = Reader { data: &pg, issues: Vec::new() };
        let use_slots = sub.flag("use_slots", true);
        let use_pg_rewind = sub.truthy_flag("use_pg_rewind");
        for key in ["pg_hba", "pg_ident"] {
            if let Some(x) = sub.get(key).cloned() {
                if !x.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                    sub.issue(key, true, format!("expected a list of strings, found {}; ignored", describe(&x)));
                }
            }
        }
        sub.int("pg_ctl_timeout", 0, None, "60");
        for key in ["connect_address", "proxy_address", "listen", "config_dir", "data_dir", "pgpass", "authentication"]
        {
            if sub.get(key).is_some() {
                sub.issue(key, false, "is a local setting; ignored in the dynamic configuration".into());
            }
        }
        match sub.get("parameters").cloned() {
            Some(Value::Object(params)) => sub.parameters(&params),
            Some(other) => sub.issue("parameters", true, format!("expected a mapping, found {}", describe(&other))),
            None => {}
        }
        for mut i in sub.issues {
            i.key = format!("postgresql.{}", i.key);
            self.issues.push(i);
        }
        (use_slots, use_pg_rewind)
    }

    /// Controlled parameters that fail Patroni's check fall back to the
    /// default. Values Patroni's validator rejects outright are fatal.
    fn parameters(&mut self, params: &Map<String, Value>) {
        const VALIDATOR_RANGES: [(&str, i64, i64); 6] = [
            ("max_connections", 1, 262_143),
            ("max_locks_per_transaction", 10, 2_147_483_647),
            ("max_prepared_transactions", 0, 262_143),
            ("max_replication_slots", 0, 262_143),
            ("max_wal_senders", 0, 262_143),
            ("max_worker_processes", 0, 262_143),
        ];
        for (name, value) in params {
            let Some(c) = controlled(name) else { continue };
            if c.accept(value).is_some() {
                continue;
            }
            let key = format!("parameters.{name}");
            let fatal = VALIDATOR_RANGES
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
                .is_some_and(|(_, lo, hi)| !parse_int(value, None).is_some_and(|i| (*lo..=*hi).contains(&i)));
            let message = match c.default {
                Some(d) => format!(
                    "{} fails Patroni's check; PostgreSQL gets the default {}",
                    describe(value),
                    d.trim_matches('"')
                ),
                None => format!("is set by palisade itself ({}); ignored", where_from(c.name)),
            };
            self.issue(&key, fatal, message);
        }
    }
}

fn where_from(name: &str) -> &'static str {
    match name {
        "cluster_name" => "from scope",
        _ => "from postgresql.listen",
    }
}

/// Reads a dynamic configuration into a [`GlobalConfig`] and its issues.
pub(crate) fn read(data: &Map<String, Value>) -> (GlobalConfig, Vec<Issue>) {
    let mut r = Reader { data, issues: Vec::new() };
    let d = GlobalConfig::default();
    let ttl = r.timing("ttl", DEFAULT_TTL, MIN_TTL);
    let loop_wait = r.timing("loop_wait", DEFAULT_LOOP_WAIT, MIN_LOOP_WAIT);
    let retry_timeout = r.timing("retry_timeout", DEFAULT_RETRY_TIMEOUT, MIN_RETRY_TIMEOUT);
    if loop_wait.saturating_add(retry_timeout.saturating_mul(2)) > ttl {
        r.issue(
            "ttl",
            false,
            format!(
                "loop_wait + 2 * retry_timeout ({} + 2 * {}) exceeds ttl ({}): accepted, but a leader may lose its lock \
                 before it has retried the DCS, causing a spurious failover",
                loop_wait.as_secs(),
                retry_timeout.as_secs(),
                ttl.as_secs()
            ),
        );
    }
    let start_key = if r.get("primary_start_timeout").is_none() && r.get("master_start_timeout").is_some() {
        r.issue("master_start_timeout", false, "deprecated spelling of primary_start_timeout".into());
        "master_start_timeout"
    } else {
        "primary_start_timeout"
    };
    let primary_start_timeout =
        r.int(start_key, 0, None, "300").map_or(d.primary_start_timeout, |v| r.seconds(start_key, v));
    let stop_key = if r.get("primary_stop_timeout").is_none() && r.get("master_stop_timeout").is_some() {
        r.issue("master_stop_timeout", false, "deprecated spelling of primary_stop_timeout".into());
        "master_stop_timeout"
    } else {
        "primary_stop_timeout"
    };
    let primary_stop_timeout = r.int(stop_key, 0, None, "0").map_or(d.primary_stop_timeout, |v| r.seconds(stop_key, v));
    let maximum_lag_on_failover =
        r.int("maximum_lag_on_failover", 0, None, "1048576").map_or(d.maximum_lag_on_failover, i64::unsigned_abs);
    let maximum_lag_on_syncnode = r.int("maximum_lag_on_syncnode", -1, None, "-1").unwrap_or(-1);
    let max_timelines_history =
        r.int("max_timelines_history", 0, None, "0").map_or(0, |i| u32::try_from(i).unwrap_or(u32::MAX));
    let synchronous_mode = r.synchronous_mode();
    let synchronous_mode_strict = r.flag("synchronous_mode_strict", false);
    let count = r.int("synchronous_node_count", 1, None, "1").unwrap_or(1);
    let synchronous_node_count = u32::try_from(count.max(i64::from(synchronous_mode_strict))).unwrap_or(u32::MAX);
    let failsafe_mode = r.flag("failsafe_mode", false);
    let check_timeline = r.flag("check_timeline", false);
    let pause = r.flag("pause", false);
    let standby_cluster = r.standby_cluster();
    let (use_slots, use_pg_rewind) = r.postgresql();
    let member_slots_ttl = r
        .int("member_slots_ttl", 0, Some("s"), "1800")
        .map_or(d.member_slots_ttl, |v| r.seconds("member_slots_ttl", v));
    for key in ["slots", "permanent_slots", "permanent_replication_slots"] {
        if let Some(v) = r.get(key).cloned().filter(|v| !v.is_object()) {
            r.issue(key, true, format!("expected a mapping of slot names, found {}; ignored", describe(&v)));
        }
    }
    if let Some(v) = r.get("ignore_slots").cloned().filter(|v| !v.is_array()) {
        r.issue("ignore_slots", true, format!("expected a list, found {}; ignored", describe(&v)));
    }
    let config = GlobalConfig {
        ttl,
        loop_wait,
        retry_timeout,
        maximum_lag_on_failover,
        maximum_lag_on_syncnode,
        max_timelines_history,
        primary_start_timeout,
        primary_stop_timeout,
        synchronous_mode,
        synchronous_mode_strict,
        synchronous_node_count,
        failsafe_mode,
        check_timeline,
        pause,
        standby_cluster,
        use_slots,
        use_pg_rewind,
        member_slots_ttl,
        data: data.clone(),
    };
    (config, r.issues)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from(v: Value) -> (GlobalConfig, Vec<ConfigWarning>) {
        GlobalConfig::from_dynamic(v.as_object().expect("object"))
    }

    #[test]
    fn defaults_are_patronis() {
        let (g, w) = from(json!({}));
        assert!(w.is_empty());
        let d = GlobalConfig::default();
        assert_eq!(g, d);
        assert_eq!(d.ttl.as_secs(), 30);
        assert_eq!(d.loop_wait.as_secs(), 10);
        assert_eq!(d.retry_timeout.as_secs(), 10);
        assert_eq!(d.maximum_lag_on_failover, 1_048_576);
        assert_eq!(d.primary_start_timeout.as_secs(), 300);
        assert_eq!(d.member_slots_ttl.as_secs(), 1800);
        assert!(d.use_slots);
        assert_eq!(d.synchronous_node_count, 1);
    }

    #[test]
    fn values_are_read() {
        let (g, w) = from(json!({
            "ttl": "40", "loop_wait": 5, "retry_timeout": 10, "maximum_lag_on_failover": 0,
            "maximum_lag_on_syncnode": 5000, "max_timelines_history": 3, "master_start_timeout": 0,
            "primary_stop_timeout": 15, "synchronous_mode": "quorum", "synchronous_mode_strict": "on",
            "synchronous_node_count": 2, "failsafe_mode": true, "check_timeline": "yes", "pause": true,
            "standby_cluster": {"host": "remote", "port": 5432},
            "postgresql": {"use_slots": false, "use_pg_rewind": true},
            "member_slots_ttl": "30min"
        }));
        assert_eq!(g.ttl.as_secs(), 40);
        assert_eq!(g.loop_wait.as_secs(), 5);
        assert_eq!(g.maximum_lag_on_failover, 0);
        assert_eq!(g.maximum_lag_on_syncnode, 5000);
        assert_eq!(g.max_timelines_history, 3);
        assert_eq!(g.primary_start_timeout, Duration::ZERO);
        assert_eq!(g.primary_stop_timeout.as_secs(), 15);
        assert_eq!(g.synchronous_mode, SynchronousMode::Quorum);
        assert!(g.synchronous_mode_strict && g.failsafe_mode && g.check_timeline && g.pause);
        assert_eq!(g.synchronous_node_count, 2);
        assert!(g.is_standby_cluster());
        assert!(!g.is_synchronous_mode(), "a standby cluster is never synchronous");
        assert!(!g.use_slots && g.use_pg_rewind);
        assert_eq!(g.member_slots_ttl.as_secs(), 1800);
        let paths: Vec<&str> = w.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["master_start_timeout"]);
    }

    /// Each bad `standby_cluster` value is an error naming its key.
    #[test]
    fn standby_cluster_errors_name_the_key() {
        let cases = [
            (json!({"host": 5}), "standby_cluster.host"),
            (json!({"host": "h", "port": "x"}), "standby_cluster.port"),
            (json!({"host": "h", "port": 70000}), "standby_cluster.port"),
            (json!({"host": "h", "primary_slot_name": ["a"]}), "standby_cluster.primary_slot_name"),
            (json!({"host": "h", "create_replica_methods": "basebackup"}), "standby_cluster.create_replica_methods"),
            (json!({"restore_command": {"a": 1}}), "standby_cluster.restore_command"),
            (json!({"host": "h", "archive_cleanup_command": 1}), "standby_cluster.archive_cleanup_command"),
            (json!({"host": "h", "recovery_min_apply_delay": "soon"}), "standby_cluster.recovery_min_apply_delay"),
            (json!({"host": "h", "recovery_min_apply_delay": 1.5}), "standby_cluster.recovery_min_apply_delay"),
            (json!({"primary_slot_name": "s"}), "standby_cluster"),
        ];
        for (section, key) in cases {
            let data = json!({ "standby_cluster": section });
            let errors = GlobalConfig::errors(data.as_object().unwrap());
            assert_eq!(errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), [key], "{section}");
        }
        for good in [
            json!({"host": "h", "recovery_min_apply_delay": "5min"}),
            json!({"port": 5433, "recovery_min_apply_delay": 1000}),
        ] {
            let data = json!({ "standby_cluster": good });
            assert!(GlobalConfig::errors(data.as_object().unwrap()).is_empty(), "{good}");
        }
    }

    #[test]
    fn synchronous_mode_spellings() {
        let cases = [
            (json!(true), SynchronousMode::On),
            (json!("on"), SynchronousMode::On),
            (json!("Quorum"), SynchronousMode::Quorum),
            (json!("off"), SynchronousMode::Off),
            (json!(false), SynchronousMode::Off),
            (json!(null), SynchronousMode::Off),
        ];
        for (v, expected) in cases {
            let (g, w) = from(json!({ "synchronous_mode": v }));
            assert_eq!(g.synchronous_mode, expected, "{v}");
            assert!(w.is_empty());
        }
    }

    #[test]
    fn garbage_falls_back_to_defaults_with_a_warning_per_key() {
        let (g, w) = from(json!({
            "ttl": "abc", "loop_wait": -1, "retry_timeout": [1], "maximum_lag_on_failover": "much",
            "primary_start_timeout": {"a": 1}, "synchronous_mode": "sometimes", "synchronous_mode_strict": "perhaps",
            "synchronous_node_count": "x", "failsafe_mode": 3, "pause": "paused", "standby_cluster": "yes",
            "postgresql": "on", "member_slots_ttl": "soon", "max_timelines_history": -4, "slots": [1],
            "ignore_slots": {"a": 1}
        }));
        let d = GlobalConfig::default();
        assert_eq!(g.ttl, d.ttl);
        assert_eq!(g.loop_wait, d.loop_wait);
        assert_eq!(g.retry_timeout, d.retry_timeout);
        assert_eq!(g.maximum_lag_on_failover, d.maximum_lag_on_failover);
        assert_eq!(g.primary_start_timeout, d.primary_start_timeout);
        assert_eq!(g.synchronous_mode, SynchronousMode::Off);
        assert!(!g.synchronous_mode_strict && !g.failsafe_mode && !g.pause);
        assert_eq!(g.synchronous_node_count, 1);
        assert_eq!(g.standby_cluster, None);
        assert!(g.use_slots);
        assert_eq!(g.member_slots_ttl, d.member_slots_ttl);
        assert_eq!(g.max_timelines_history, 0);
        let mut paths: Vec<&str> = w.iter().map(|w| w.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "failsafe_mode",
                "ignore_slots",
                "loop_wait",
                "max_timelines_history",
                "maximum_lag_on_failover",
                "member_slots_ttl",
                "pause",
                "postgresql",
                "primary_start_timeout",
                "retry_timeout",
                "slots",
                "standby_cluster",
                "synchronous_mode",
                "synchronous_mode_strict",
                "synchronous_node_count",
                "ttl",
            ]
        );
    }

    #[test]
    fn below_minimum_is_kept_with_warnings() {
        let (g, w) = from(json!({"ttl": 5, "loop_wait": 1, "retry_timeout": 2}));
        assert_eq!((g.ttl.as_secs(), g.loop_wait.as_secs(), g.retry_timeout.as_secs()), (5, 1, 2));
        let paths: Vec<&str> = w.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["ttl", "retry_timeout"]);
        assert!(w[0].message.contains("below Patroni's minimum of 20"));
        let (_, w) = from(json!({"ttl": 20, "loop_wait": 10, "retry_timeout": 10}));
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("exceeds ttl"), "{}", w[0].message);
    }

    #[test]
    fn extreme_numbers_never_panic_and_are_named() {
        let keys = [
            "ttl",
            "loop_wait",
            "retry_timeout",
            "primary_start_timeout",
            "primary_stop_timeout",
            "member_slots_ttl",
            "maximum_lag_on_failover",
            "maximum_lag_on_syncnode",
            "max_timelines_history",
            "synchronous_node_count",
            "primary_race_backoff",
        ];
        let values = [
            json!(0),
            json!(-1),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(9_223_372_036_854_775_808_u64),
            json!(u64::MAX),
            json!(1e308),
            json!(-1e308),
            json!(4.5e15),
            json!("NaN"),
            json!("nan"),
            json!("inf"),
            json!("-Infinity"),
            json!("1e400"),
            json!("9223372036854775808"),
            json!("99999999999999999999d"),
            json!("ten"),
            json!(""),
            json!([]),
            json!({"a": 1}),
            json!(true),
        ];
        for key in keys {
            for v in &values {
                let mut data = Map::new();
                data.insert(key.to_string(), v.clone());
                let (g, w) = GlobalConfig::from_dynamic(&data);
                let durations = [
                    g.ttl,
                    g.loop_wait,
                    g.retry_timeout,
                    g.primary_start_timeout,
                    g.primary_stop_timeout,
                    g.member_slots_ttl,
                ];
                assert!(durations.iter().all(|d| *d <= limits::MAX_DURATION), "{key}={v}: {g:?}");
                let _ = g.primary_race_backoff();
                let named = w.iter().any(|w| w.path == key);
                let number = parse_int(v, if key == "member_slots_ttl" { Some("s") } else { None });
                let duration = key.ends_with("timeout") || key.ends_with("ttl") || key == "loop_wait";
                match number {
                    None if key != "primary_race_backoff" => assert!(named, "{key}={v}: no warning in {w:?}"),
                    Some(n) if duration && n.unsigned_abs() > limits::MAX_SECONDS => {
                        assert!(named, "{key}={v}: no warning in {w:?}")
                    }
                    _ => {}
                }
            }
        }
        let (g, w) = from(
            json!({"ttl": 4_000_000_000_000_000_000_i64, "loop_wait": 4_000_000_000_000_000_000_i64, "retry_timeout": 8_000_000_000_000_000_000_i64,
            "primary_start_timeout": "1e300", "member_slots_ttl": "100000000d"}),
        );
        assert_eq!(g.ttl, limits::MAX_DURATION);
        assert_eq!(g.loop_wait, limits::MAX_DURATION);
        assert_eq!(g.retry_timeout, limits::MAX_DURATION);
        assert_eq!(g.primary_start_timeout, d_default().primary_start_timeout, "1e300 is not an integer for Patroni");
        assert_eq!(g.member_slots_ttl, limits::MAX_DURATION);
        assert!(w.iter().any(|w| w.path == "ttl" && w.message.contains("maximum of 31536000")), "{w:?}");
        assert!(
            GlobalConfig::errors(&from_value(json!({"ttl": 4_000_000_000_000_000_000_i64}))).is_empty(),
            "clamping is not an error"
        );
    }

    fn d_default() -> GlobalConfig {
        GlobalConfig::default()
    }

    fn from_value(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn controlled_parameters_are_checked() {
        let (_, w) = from(json!({"postgresql": {"parameters": {
            "max_connections": 10, "wal_level": "minimal", "port": 1, "work_mem": "4MB", "max_wal_senders": 20
        }}}));
        let paths: Vec<&str> = w.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(
            paths,
            ["postgresql.parameters.max_connections", "postgresql.parameters.wal_level", "postgresql.parameters.port"]
        );
    }

    #[test]
    fn slots_accessors() {
        let (g, _) = from(
            json!({"slots": {"s1": {"type": "physical"}}, "ignore_slots": [{"name": "x"}, 5], "primary_race_backoff": "3"}),
        );
        assert_eq!(g.permanent_slots().len(), 1);
        assert_eq!(g.ignore_slots().len(), 1);
        assert_eq!(g.primary_race_backoff(), 3);
    }
}
