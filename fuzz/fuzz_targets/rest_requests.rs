//! A REST request's query string and body from the fuzzer's bytes
//! (`palisade_daemon::fuzzing::rest::from_bytes`) through the endpoints'
//! parsing functions, without a server, checked by
//! `palisade_daemon::fuzzing::rest::check`, as the bounded
//! `fuzzing::rest::tests` checks its generated requests.
#![no_main]

use palisade_daemon::fuzzing::rest;

libfuzzer_sys::fuzz_target!(|data: &[u8]| rest::check(&rest::from_bytes(data), rest::now()));
