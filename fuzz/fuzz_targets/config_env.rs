//! `PATRONI_*` environments from the fuzzer's bytes, over the minimal
//! configuration given as variables (so that loading gets past "missing"
//! and reads every value): each NUL-separated part is one variable
//! (`palisade_config::fuzzing::case_from_bytes`), loaded without a file
//! and checked by `palisade_config::fuzzing::check_case`, as the bounded
//! `host/config/tests/fuzz_config.rs` checks its generated environments.
#![no_main]

use std::sync::OnceLock;

#[path = "../../host/config/tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

fn names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(palisade_config::fuzzing::env_names)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // A leading NUL: no file, every part a variable.
    let input = [&[0u8][..], data].concat();
    let (_, fuzzed) = palisade_config::fuzzing::case_from_bytes(&input, names());
    let mut env: std::collections::BTreeMap<String, String> =
        common::MINIMAL_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.extend(fuzzed);
    let outcome = palisade_config::fuzzing::check_case(None, &env);
    assert!(outcome.problems.is_empty(), "env {env:?}: {:?}", outcome.problems);
});
