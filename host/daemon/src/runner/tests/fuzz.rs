//! Fuzzing of what others write into the DCS (issue 12, "DCS values").
//!
//! The generator (random bytes, valid Patroni values mutated, wrong-typed
//! JSON, deep nesting, huge numbers, NaN-like strings in every key kind)
//! and the check of one read ([`crate::fuzzing::dcs::check_read`]: the
//! snapshot, the cluster, the dynamic configuration, the `GET /cluster`
//! view, the failsafe pieces and the HA decision) are in
//! `crate::fuzzing::dcs`, which the cargo fuzz target `dcs_values` calls
//! too. This is the bounded version.
//!
//! The runner half feeds such snapshots (and plugin errors, huge member
//! lists) to a real [`super::Runner`] through a DCS wrapper.
//!
//! `PALISADE_FUZZ_CASES` (default 3000 for the pure half; the runner
//! half runs one round of two cycles per 150 cases) and `PALISADE_FUZZ_SEED` (default a fixed seed) make a longer
//! or different run; a failing case prints its seed, which reproduces it
//! alone with `PALISADE_FUZZ_CASES=1 PALISADE_FUZZ_SEED=<seed>`.

use std::panic::AssertUnwindSafe;

use palisade_plugin_api::DcsSnapshot;

use super::*;
use crate::fuzzing::dcs::{bytes, cases, first_seed, local_config, one_case, valid, value, Rng};

/// Run `case` for `n` seeds from the first; a panic names its seed.
pub(super) fn run_seeds(what: &str, n: usize, mut case: impl FnMut(u64) -> usize) -> usize {
    let first = first_seed();
    let mut total = 0;
    for i in 0..n as u64 {
        let seed = first.wrapping_add(i);
        match std::panic::catch_unwind(AssertUnwindSafe(|| case(seed))) {
            Ok(found) => total += found,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{what}: case with seed {seed} failed (rerun: PALISADE_FUZZ_CASES=1 PALISADE_FUZZ_SEED={seed}): {msg}");
            }
        }
    }
    eprintln!("{what}: {n} cases from seed {first}, {total} values reported and skipped");
    total
}

#[test]
fn generated_dcs_values_are_reported_and_skipped_and_decisions_are_made() {
    let base = local_config();
    let n = cases(3000);
    let reported = run_seeds("DCS values", n, |seed| one_case(seed, &base));
    // The generator does make garbage (a test that cannot fail is no test).
    assert!(n < 100 || reported > n / 10, "only {reported} problems in {n} cases");
}

// --- Plugin results: a DCS plugin whose answers are garbage ---

use palisade_plugin_api::{ErrorKind, LeaderKey, MemberKey, PluginError, PluginResult, VersionedValue};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A DCS plugin that, while `on`, returns generated garbage: snapshots
/// with fuzzed values in every key kind, huge member lists, and errors
/// (of every kind) on any call. Off, it is the store's own client.
struct GarbageDcs {
    inner: Arc<dyn Dcs>,
    rng: Mutex<Rng>,
    on: Arc<AtomicBool>,
    /// Snapshots that were altered.
    altered: Arc<AtomicUsize>,
}

impl GarbageDcs {
    fn rng(&self) -> std::sync::MutexGuard<'_, Rng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An error for one call in six while on.
    fn fail(&self, call: &str) -> PluginResult<()> {
        if !self.on.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut rng = self.rng();
        if !rng.one_in(6) {
            return Ok(());
        }
        let kind = *rng.pick(&[
            ErrorKind::DcsUnavailable,
            ErrorKind::Config,
            ErrorKind::Panic,
            ErrorKind::Timeout,
            ErrorKind::Other,
        ]);
        let message =
            if rng.one_in(2) { bytes(&mut rng) } else { format!("{call} failed: {}", "x".repeat(rng.below(100_000))) };
        Err(PluginError::new(kind, message))
    }

    fn mangle(&self, s: &mut DcsSnapshot) {
        let mut rng = self.rng();
        let rng = &mut *rng;
        let versioned = |kind: &str, rng: &mut Rng| {
            Some(VersionedValue { value: value(kind, rng), version: rng.below(1000).to_string() })
        };
        for _ in 0..1 + rng.below(3) {
            match rng.below(11) {
                0 => s.config = versioned("config", rng),
                1 => s.sync = versioned("sync", rng),
                2 => s.failover = versioned("failover", rng),
                3 => s.history = versioned("history", rng),
                4 => s.status = Some(value("status", rng)),
                5 => s.failsafe = Some(value("failsafe", rng)),
                6 => s.initialize = Some(value("initialize", rng)),
                7 => s.leader_optime = Some(value("optime", rng)),
                8 => {
                    s.leader = Some(LeaderKey {
                        name: value("leader", rng),
                        version: bytes(rng),
                        session: rng.below(3).to_string(),
                    })
                }
                9 => {
                    // A huge member list.
                    let n = 500 + rng.below(2500);
                    for i in 0..n {
                        let v = if i % 10 == 0 { value("member", rng) } else { valid("member", rng) };
                        s.members.push(MemberKey {
                            name: format!("m{i}"),
                            value: v,
                            version: "1".into(),
                            session: String::new(),
                        });
                    }
                }
                _ => {
                    for m in s.members.iter_mut() {
                        if rng.one_in(2) {
                            m.value = value("member", rng);
                        }
                    }
                }
            }
        }
        self.altered.fetch_add(1, Ordering::SeqCst);
    }
}

impl Dcs for GarbageDcs {
    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        self.fail("get_cluster")?;
        let mut s = self.inner.get_cluster()?;
        if self.on.load(Ordering::SeqCst) {
            self.mangle(&mut s);
        }
        Ok(s)
    }
    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        self.fail("attempt_to_acquire_leader")?;
        self.inner.attempt_to_acquire_leader()
    }
    fn update_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.fail("update_leader")?;
        self.inner.update_leader(leader)
    }
    fn take_leader(&self) -> PluginResult<bool> {
        self.fail("take_leader")?;
        self.inner.take_leader()
    }
    fn delete_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.fail("delete_leader")?;
        self.inner.delete_leader(leader)
    }
    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool> {
        self.fail("initialize")?;
        self.inner.initialize(create_new, sysid)
    }
    fn cancel_initialization(&self) -> PluginResult<bool> {
        self.fail("cancel_initialization")?;
        self.inner.cancel_initialization()
    }
    fn touch_member(&self, data: &str) -> PluginResult<bool> {
        self.fail("touch_member")?;
        self.inner.touch_member(data)
    }
    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.fail("set_config_value")?;
        self.inner.set_config_value(value, version)
    }
    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.fail("set_failover_value")?;
        self.inner.set_failover_value(value, version)
    }
    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>> {
        self.fail("set_sync_state_value")?;
        self.inner.set_sync_state_value(value, version)
    }
    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool> {
        self.fail("delete_sync_state")?;
        self.inner.delete_sync_state(version)
    }
    fn set_history_value(&self, value: &str) -> PluginResult<bool> {
        self.fail("set_history_value")?;
        self.inner.set_history_value(value)
    }
    fn write_status(&self, value: &str) -> PluginResult<bool> {
        self.fail("write_status")?;
        self.inner.write_status(value)
    }
    fn write_failsafe(&self, value: &str) -> PluginResult<bool> {
        self.fail("write_failsafe")?;
        self.inner.write_failsafe(value)
    }
    fn delete_cluster(&self) -> PluginResult<bool> {
        self.fail("delete_cluster")?;
        self.inner.delete_cluster()
    }
    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()> {
        self.fail("set_timing")?;
        self.inner.set_timing(timing)
    }
    fn watch(&self, leader_version: Option<&str>, timeout: Duration) -> PluginResult<bool> {
        self.fail("watch")?;
        self.inner.watch(leader_version, timeout)
    }
    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>> {
        self.fail("get_mpp_groups")?;
        self.inner.get_mpp_groups()
    }
}

/// A primary and a replica whose DCS plugin answers garbage for a while:
/// every cycle ends (no panic, a fatal stop only with a message), and once
/// the plugin answers sanely again the cluster is as it was: n1 leads and
/// n2 follows it.
#[tokio::test]
async fn garbage_from_the_dcs_plugin_is_logged_and_the_loop_carries_on() {
    let rounds = (cases(3000) / 150).max(1);
    let first = first_seed();
    let store = MemoryStore::new();
    let on = Arc::new(AtomicBool::new(false));
    let altered = Arc::new(AtomicUsize::new(0));
    let wrap = |seed: u64| {
        let on = Arc::clone(&on);
        let altered = Arc::clone(&altered);
        move |inner: Arc<dyn Dcs>| -> Arc<dyn Dcs> {
            Arc::new(GarbageDcs { inner, rng: Mutex::new(Rng::new(seed)), on, altered })
        }
    };
    let mut n1 = node_on("n1", &store, true, None, wrap(first));
    n1.cycle_until("n1 leads", 6, |_| store.value("leader").as_deref() == Some("n1")).await;
    let mut n2 = node_on("n2", &store, false, None, wrap(first.wrapping_add(1)));
    n2.cycle_until("n2 follows n1", 6, |n| n.pg.state().following.as_deref() == Some("n1")).await;

    // Invalid UTF-8 in the store itself, read as plugins read it.
    store.write_raw("members/zz", b"{\"role\":\"\xff\xfe\",\"state\":\x80}");
    on.store(true, Ordering::SeqCst);
    let mut fatal = 0;
    let mut fatal_kinds: Vec<String> = Vec::new();
    for round in 0..rounds {
        for node in [&mut n1, &mut n2] {
            let started = Instant::now();
            let outcome = node.runner.cycle().await;
            node.settle().await;
            if std::env::var("PALISADE_FUZZ_VERBOSE").is_ok() {
                eprintln!("round {round}: {:?} fatal {:?}", started.elapsed(), outcome.fatal);
            }
            if let Some(message) = outcome.fatal {
                assert!(!message.trim().is_empty(), "round {round} (seed {first}): a fatal stop without a message");
                fatal += 1;
                let short: String = message.chars().take(60).collect();
                if !fatal_kinds.contains(&short) {
                    fatal_kinds.push(short);
                }
            }
        }
    }
    on.store(false, Ordering::SeqCst);
    let healed = |n1: &Node, n2: &Node| {
        store.value("leader").as_deref() == Some("n1")
            && is_primary(n1)
            && n2.pg.state().following.as_deref() == Some("n1")
    };
    for _ in 0..20 {
        if healed(&n1, &n2) {
            break;
        }
        for node in [&mut n1, &mut n2] {
            let _ = node.runner.cycle().await;
            node.settle().await;
        }
    }
    assert!(healed(&n1, &n2), "seed {first}: not healed after the garbage: {:?} / {:?}", n1.pg.state(), n2.pg.state());
    let altered = altered.load(Ordering::SeqCst);
    assert!(rounds < 10 || altered > rounds, "only {altered} snapshots altered in {rounds} rounds");
    eprintln!(
        "plugin results: {rounds} rounds from seed {first}, {altered} garbage snapshots, {fatal} fatal stops \
         {fatal_kinds:?}"
    );
}
