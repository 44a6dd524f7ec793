//! `pycompat::fuzzing::check_yaml_scalar` on any text (the bounded version is the
//! crate's `fuzzing::tests`).
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| palisade_pycompat::fuzzing::check_yaml_scalar(text));
