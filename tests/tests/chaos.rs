//! A short fault campaign (`palisade-chaos`, see docs/reliability.md, "The
//! fault campaign"): 20 faults drawn from a fixed seed against a 3-node
//! cluster on etcd3 in strict synchronous mode, while a writer per node
//! writes; the checker's verdicts must all pass (no split brain, no
//! acknowledged write lost, every fault healed within the bound). The
//! report is printed when they do not.
//!
//! Needs root (the campaign makes network namespaces) and the daemon and
//! the etcd3 plugin built (`cargo build -p palisade-daemon -p
//! palisade-dcs-etcd3`, and the replica and callback plugins every cluster
//! stages).

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
