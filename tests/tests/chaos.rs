//! A short fault campaign (`palisade-chaos`, see docs/reliability.md, "The
//! fault campaign"): 20 faults drawn from a fixed seed against a 3-node
//! cluster on etcd3 in strict synchronous mode, while a writer per node
//! writes; the checker's verdicts must all pass (no split brain, no
//! acknowledged write lost, every fault healed within the bound). The
//! report is printed when they do not. And the shortest sequence that made
//! a split brain in asynchronous mode, which the watchdog must prevent.
//!
//! Needs root (the campaign makes network namespaces) and the daemon and
//! the etcd3 plugin built (`cargo build -p palisade-daemon -p
//! palisade-dcs-etcd3`, and the replica and callback plugins every cluster
//! stages).

use palisade_tests::chaos::launch::ClusterSettings;
use palisade_tests::chaos::{run, Options};

/// The seed of the CI campaign: its 20 faults cover every kind of fault
/// (see `faults::draw`), on primaries and replicas, in about five minutes.
const SEED: u64 = 118490;

#[test]
fn twenty_faults_on_etcd3_in_strict_mode_keep_every_promise() {
    assert!(palisade_test_support::is_root(), "the fault campaign makes network namespaces: run the tests as root");
    let opts =
        Options { seed: SEED, faults: Some(20), minutes: None, report: None, verbose: true, ..Options::default() };
    let outcome = run(&opts).unwrap_or_else(|e| panic!("the campaign could not run: {e}"));
    assert_eq!(outcome.history.faults.len(), 20, "{}", outcome.report);
    assert!(!outcome.history.writes.is_empty(), "no write was acknowledged:\n{}", outcome.report);
    assert!(
        outcome.verdicts.passed(),
        "seed {SEED}: a promise was broken (logs kept in {:?}):\n{}",
        outcome.kept,
        outcome.report
    );
}

/// The shortest sequence that broke a promise in asynchronous mode
/// (docs/reliability.md, "The fault campaign"): seed 7's first fault
/// freezes the primary's daemon (SIGSTOP) for longer than ttl. Without a
/// watchdog its PostgreSQL keeps taking writes while another node is
/// promoted: a split brain, as in Patroni. With `watchdog: mode: required`
/// the frozen daemon stops feeding its device, which fires `ttl -
/// safety_margin` after the last keepalive, before the leader key expires,
/// and resets the node: the checker must find no split brain.
#[test]
fn async_mode_with_a_watchdog_fences_a_primary_whose_daemon_hangs_longer_than_ttl() {
    assert!(palisade_test_support::is_root(), "the fault campaign makes network namespaces: run the tests as root");
    let defaults = Options::default();
    let opts = Options {
        seed: 7,
        faults: Some(1),
        minutes: None,
        cluster: ClusterSettings { strict: false, watchdog: true, ..defaults.cluster.clone() },
        report: None,
        verbose: true,
        ..defaults
    };
    let outcome = run(&opts).unwrap_or_else(|e| panic!("the campaign could not run: {e}"));
    let h = &outcome.history;
    assert_eq!(h.faults.len(), 1, "{}", outcome.report);
    let fault = &h.faults[0];
    assert!(
        fault.description.starts_with("SIGSTOP daemon") && fault.description.contains("(the primary)"),
        "seed 7's first fault is no longer a hang of the primary's daemon: {}",
        fault.description
    );
    assert!(fault.description.contains("longer than ttl"), "{}", fault.description);
    // The frozen primary was reset while its daemon was frozen.
    let fenced = h.fires.iter().find(|f| Some(&f.node) == fault.node.as_ref() && f.fault == Some(1));
    let fire = fenced.unwrap_or_else(|| panic!("the frozen primary's watchdog did not fire:\n{}", outcome.report));
    assert!(fire.at > fault.started && fire.at < fault.ended, "fired outside the hang: {fire:?}\n{}", outcome.report);
    assert!(fire.restarted.is_some(), "the reset node was not booted again:\n{}", outcome.report);
    assert!(!h.writes.is_empty(), "no write was acknowledged:\n{}", outcome.report);
    assert!(
        outcome.verdicts.conflicts.is_empty(),
        "split brain with the watchdog (logs kept in {:?}):\n{}",
        outcome.kept,
        outcome.report
    );
    // Asynchronous mode may lose the fenced primary's last writes, but none
    // on the final timeline, and the cluster heals.
    assert!(outcome.verdicts.passed(), "logs kept in {:?}:\n{}", outcome.kept, outcome.report);
}
