//! Test plugin (issue 12, "Plugin results"): a DCS plugin, loaded by the
//! real daemon through the stable ABI, whose answers are garbage. The host
//! must log what is wrong and carry on, and never lead on garbage.
//!
//! It keeps its cluster in an in-memory store (`palisade-dcs-memory`)
//! inside the daemon's process, so in `valid` mode it is a working
//! single-node DCS. The other modes wrap that store:
//!
//! - `errors`: every call fails: every error kind, messages of a megabyte,
//!   empty, multi-line with a forged log line, control characters and
//!   U+FFFD (the ABI carries UTF-8 only: `RString` cannot hold invalid
//!   bytes), and a real panic in one call of five (caught by the SDK's
//!   guard and returned as a `Panic` error);
//! - `huge`: the store's snapshot plus 100,000 members, a member with a
//!   64 KiB name and a 1 MiB value, a `status` with 100,000 slots, a 1 MiB
//!   `failsafe` and a 100,000-line `history`;
//! - `malformed`: the store's own members, and the same garbage in every
//!   key kind at every read (invalid and wrong-typed JSON, missing fields,
//!   duplicated keys and member names, negative and overflowing versions,
//!   positions and timelines, a leader key naming nobody, an `initialize`
//!   that is no system identifier); `watch` claims a change at once;
//! - `mixed <seed>`: per call, a seeded choice between a valid answer, an
//!   error, a malformed snapshot and a huge one (10,000 members), and a
//!   watch that fails, wakes at once or waits.
//!
//! Writes go to the store in every mode but `errors` (a plugin that lies
//! about a compare-and-set cannot be told from a store that works).
//!
//! Environment (the daemon passes its own on):
//! - `PALISADE_TEST_GARBAGE_AS`: the name the plugin claims, which must be
//!   the DCS section of the daemon's configuration (the test stages the
//!   file as `libpalisade_dcs_etcd3.so` and sets `etcd3`); default
//!   `garbage`;
//! - `PALISADE_TEST_GARBAGE_MODE_FILE`: the file holding the mode, read at
//!   every call so that a test switches modes while the daemon runs;
//!   without it, `valid`.
#![allow(non_local_definitions)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use palisade_dcs_memory::{MemoryDcs, MemoryStore};
use palisade_plugin_api::*;

/// Members added by `huge` (and by `mixed`'s huge answers).
const HUGE_MEMBERS: usize = 100_000;
const MIXED_HUGE_MEMBERS: usize = 10_000;
const MIB: usize = 1 << 20;

/// The name this plugin claims (see the crate's documentation).
fn plugin_name() -> &'static str {
    static NAME: OnceLock<&'static str> = OnceLock::new();
    NAME.get_or_init(|| {
        let name = std::env::var("PALISADE_TEST_GARBAGE_AS").unwrap_or_else(|_| "garbage".into());
        Box::leak(name.into_boxed_str())
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Valid,
    Errors,
    Huge,
    Malformed,
    Mixed,
}

/// What one call answers in `mixed` mode.
#[derive(Clone, Copy)]
enum Pick {
    Valid,
    Malformed,
    Huge,
}

/// A small xorshift generator: the plugin needs no crate for it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub struct Garbage {
    inner: MemoryDcs,
    mode_file: Option<String>,
    /// Calls so far: picks the error of `errors` mode.
    calls: AtomicU64,
    /// `mixed` mode's generator and the seed it was made from.
    rng: Mutex<(u64, Rng)>,
}

impl Garbage {
    fn new(params: DcsParams) -> PluginResult<Self> {
        // One store per library: the daemon makes one DCS client.
        static STORE: OnceLock<Arc<MemoryStore>> = OnceLock::new();
        let store = STORE.get_or_init(MemoryStore::new);
        let mode_file = std::env::var("PALISADE_TEST_GARBAGE_MODE_FILE").ok();
        tracing::warn!(
            "test plugin 'garbage' standing in as '{}' for scope {}: answers follow the mode in {}",
            plugin_name(),
            params.scope,
            mode_file.as_deref().unwrap_or("(no mode file: valid)")
        );
        Ok(Self {
            inner: store.client(&params.name, params.timing),
            mode_file,
            calls: AtomicU64::new(0),
            rng: Mutex::new((0, Rng(1))),
        })
    }

    /// The mode now, and the seed for `mixed`.
    fn mode(&self) -> PluginResult<(Mode, u64)> {
        let Some(path) = &self.mode_file else { return Ok((Mode::Valid, 0)) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| PluginError::config(format!("garbage: cannot read the mode file {path}: {e}")))?;
        let mut words = text.split_whitespace();
        let mode = match words.next().unwrap_or("") {
            "valid" => Mode::Valid,
            "errors" => Mode::Errors,
            "huge" => Mode::Huge,
            "malformed" => Mode::Malformed,
            "mixed" => Mode::Mixed,
            other => return Err(PluginError::config(format!("garbage: unknown mode '{other}' in {path}"))),
        };
        let seed = words.next().and_then(|s| s.parse().ok()).unwrap_or(1);
        Ok((mode, seed))
    }

    /// What this call answers: `Valid` for a plain pass-through.
    fn pick(&self, call: &str) -> PluginResult<Pick> {
        let (mode, seed) = self.mode()?;
        Ok(match mode {
            Mode::Valid => Pick::Valid,
            Mode::Errors => return Err(self.error(call)),
            Mode::Huge => Pick::Huge,
            Mode::Malformed => Pick::Malformed,
            Mode::Mixed => {
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                if rng.0 != seed {
                    *rng = (seed, Rng(seed.max(1)));
                }
                match rng.1.below(10) {
                    0..=3 => Pick::Valid,
                    4..=5 => return Err(self.error(call)),
                    6..=7 => Pick::Malformed,
                    _ => Pick::Huge,
                }
            }
        })
    }

    /// One of the errors, in turn; one call in five panics instead.
    fn error(&self, call: &str) -> PluginError {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        match n % 5 {
            0 => PluginError::dcs(format!("{call}: {}", "x".repeat(MIB))),
            1 => PluginError::new(
                ErrorKind::Timeout,
                format!(
                    "{call} failed\n2026-01-01 00:00:00,000 ERROR: forged line from the garbage plugin\r\n\
                     \u{1b}[31mred\u{1b}[0m"
                ),
            ),
            2 => PluginError::new(ErrorKind::Other, String::new()),
            3 => PluginError::config(format!("{call}: \u{0}\u{1}\u{7f}\u{202e}desrever \u{fffd}\u{fffd} bytes")),
            _ => panic!("garbage plugin panics in {call} on purpose ({})", "p".repeat(10_000)),
        }
    }

    fn snapshot(&self, pick: Pick) -> PluginResult<DcsSnapshot> {
        let mut s = self.inner.get_cluster()?;
        match pick {
            Pick::Valid => {}
            Pick::Huge => {
                let n = if matches!(self.mode()?.0, Mode::Mixed) { MIXED_HUGE_MEMBERS } else { HUGE_MEMBERS };
                huge(&mut s, n)
            }
            Pick::Malformed => malformed(&mut s),
        }
        Ok(s)
    }

    /// A write or lock call: an error in `errors` mode (and for `mixed`'s
    /// error picks), else the store's answer.
    fn write<T>(&self, call: &str, f: impl FnOnce(&MemoryDcs) -> PluginResult<T>) -> PluginResult<T> {
        self.pick(call)?;
        f(&self.inner)
    }
}

/// Add extreme but well-formed content.
fn huge(s: &mut DcsSnapshot, n: usize) {
    s.members.reserve(n + 1);
    for i in 0..n {
        s.members.push(MemberKey {
            name: format!("huge-{i:06}"),
            value: format!(
                r#"{{"role":"replica","state":"running","conn_url":"postgres://127.0.0.1:1/postgres","api_url":"http://127.0.0.1:1/patroni","xlog_location":{i},"timeline":1,"tags":{{"nofailover":true}}}}"#
            ),
            version: i.to_string(),
            session: String::new(),
        });
    }
    s.members.push(MemberKey {
        name: "n".repeat(64 << 10),
        value: format!(r#"{{"role":"replica","state":"stopped","blob":"{}"}}"#, "b".repeat(MIB)),
        version: "1".into(),
        session: String::new(),
    });
    let slots: Vec<String> = (0..n).map(|i| format!(r#""huge_{i:06}":{i}"#)).collect();
    s.status = Some(format!(r#"{{"optime":1,"slots":{{{}}}}}"#, slots.join(",")));
    s.failsafe = Some(format!(r#"{{"huge-000000":"http://127.0.0.1:1/patroni","blob":"{}"}}"#, "f".repeat(MIB)));
    let lines: Vec<String> = (1..=n).map(|t| format!(r#"[{t},{},"no recovery target specified"]"#, t * 256)).collect();
    s.history = Some(VersionedValue { value: format!("[{}]", lines.join(",")), version: "1".into() });
}

/// The same garbage in every key kind (so that the host's log shows each
/// problem once, however many cycles read it).
fn malformed(s: &mut DcsSnapshot) {
    let v = |value: &str, version: &str| Some(VersionedValue { value: value.into(), version: version.into() });
    s.initialize = Some("not-a-system-identifier \u{0}".into());
    s.config = v(
        // Wrong types everywhere but in the timings (so that the daemon
        // keeps its pace), and a duplicated key (the last one wins).
        r#"{"ttl":{"dup":true},"ttl":5,"loop_wait":1,"retry_timeout":2,"primary_start_timeout":18446744073709551616,"maximum_lag_on_failover":[1],"postgresql":"nope","synchronous_mode":{"x":1}}"#,
        "-9223372036854775809",
    );
    s.leader = Some(LeaderKey {
        name: "garbage-leader-\u{202e}".into(),
        version: "18446744073709551616".into(),
        session: "-1".into(),
    });
    let member = |name: &str, value: &str| MemberKey {
        name: name.into(),
        value: value.into(),
        version: "-1".into(),
        session: String::new(),
    };
    s.members.extend([
        member("garbage-a", "{not json"),
        member("garbage-b", "[1,2,3]"),
        member(
            "garbage-c",
            r#"{"role":5,"state":["running"],"api_url":7,"conn_url":{"x":1},"xlog_location":-1,"timeline":"abc","tags":"nofailover","version":null}"#,
        ),
        member(
            "garbage-c",
            r#"{"role":"primary","role":"replica","state":"running","conn_url":"postgres://:notaport/x","api_url":"http://[::1","xlog_location":18446744073709551616,"timeline":-3}"#,
        ),
        member("", r#"{"state":"running"}"#),
        member("../../etc", r#"{"role":"replica","state":"running","xlog_location":1e400}"#),
    ]);
    s.failover = v(r#"{"leader":5,"member":["x"],"scheduled_at":"yesterday"}"#, "");
    s.sync = v(r#"{"leader":{"a":1},"sync_standby":42,"quorum":-7}"#, "abc");
    s.history = v(r#"[[1,"0/XYZ","reason"],"not a line",[-1,18446744073709551616]]"#, "x");
    s.status = Some(r#"{"optime":"0/ZZ","slots":[1,2],"retain_slots":"all"}"#.into());
    s.failsafe = Some(r#"["garbage-a",5]"#.into());
    s.leader_optime = Some("minus five".into());
}

impl Dcs for Garbage {
    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        let pick = self.pick("get_cluster")?;
        self.snapshot(pick)
    }
    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        self.write("attempt_to_acquire_leader", |d| d.attempt_to_acquire_leader())
    }
    fn update_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.write("update_leader", |d| d.update_leader(leader))
    }
    fn take_leader(&self) -> PluginResult<bool> {
        self.write("take_leader", |d| d.take_leader())
    }
    fn delete_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.write("delete_leader", |d| d.delete_leader(leader))
    }
    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool> {
        self.write("initialize", |d| d.initialize(create_new, sysid))
    }
    fn cancel_initialization(&self) -> PluginResult<bool> {
        self.write("cancel_initialization", |d| d.cancel_initialization())
    }
    fn touch_member(&self, data: &str) -> PluginResult<bool> {
        self.write("touch_member", |d| d.touch_member(data))
    }
    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.write("set_config_value", |d| d.set_config_value(value, version))
    }
    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.write("set_failover_value", |d| d.set_failover_value(value, version))
    }
    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>> {
        self.write("set_sync_state_value", |d| d.set_sync_state_value(value, version))
    }
    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool> {
        self.write("delete_sync_state", |d| d.delete_sync_state(version))
    }
    fn set_history_value(&self, value: &str) -> PluginResult<bool> {
        self.write("set_history_value", |d| d.set_history_value(value))
    }
    fn write_status(&self, value: &str) -> PluginResult<bool> {
        self.write("write_status", |d| d.write_status(value))
    }
    fn write_failsafe(&self, value: &str) -> PluginResult<bool> {
        self.write("write_failsafe", |d| d.write_failsafe(value))
    }
    fn delete_cluster(&self) -> PluginResult<bool> {
        self.write("delete_cluster", |d| d.delete_cluster())
    }
    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()> {
        self.write("set_timing", |d| d.set_timing(timing))
    }
    fn watch(&self, leader_version: Option<&str>, timeout: Duration) -> PluginResult<bool> {
        match self.pick("watch")? {
            // A watch that claims a change at once, every time.
            Pick::Malformed => Ok(true),
            _ => self.inner.watch(leader_version, timeout),
        }
    }
    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>> {
        let pick = self.pick("get_mpp_groups")?;
        let mut groups = self.inner.get_mpp_groups()?;
        if !matches!(pick, Pick::Valid) {
            let extra = self.snapshot(pick)?;
            groups.insert(-1, extra.clone());
            groups.insert(i32::MAX, extra);
        }
        Ok(groups)
    }
}

palisade_plugin_api::export_plugin!(dcs, plugin_name(), Garbage::new);
