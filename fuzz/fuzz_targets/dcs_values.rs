//! A read of the DCS made from the fuzzer's bytes (every key kind of the
//! cluster and of a Citus group, members, keys of others:
//! `palisade_daemon::fuzzing::dcs::stored_from_bytes`) through the
//! snapshot, the cluster, the dynamic configuration, the `GET /cluster`
//! view, the failsafe pieces and the HA decision, checked by
//! `palisade_daemon::fuzzing::dcs::check_read`, as the bounded
//! `runner::tests::fuzz::generated_dcs_values_are_reported_and_skipped_and_decisions_are_made`
//! checks its generated reads.
#![no_main]

use std::sync::OnceLock;

use palisade_daemon::fuzzing::dcs;

fn base() -> &'static palisade_config::LocalConfig {
    static BASE: OnceLock<palisade_config::LocalConfig> = OnceLock::new();
    BASE.get_or_init(dcs::local_config)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (found, seed) = dcs::stored_from_bytes(data);
    dcs::check_read(&found, &mut dcs::Rng::new(seed), base());
});
