//! Patroni's value readers, `urlparse` and `str()`/`repr()` on any text
//! (`pycompat::fuzzing::check_patroni_values`, `check_url`, `check_py`;
//! the bounded version is the crate's `fuzzing::tests`).
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    palisade_pycompat::fuzzing::check_patroni_values(text);
    palisade_pycompat::fuzzing::check_url(text);
    palisade_pycompat::fuzzing::check_py(text);
});
