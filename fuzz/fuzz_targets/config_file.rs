//! A configuration file and `PATRONI_*` variables from the fuzzer's bytes
//! (`palisade_config::fuzzing::case_from_bytes`: the file up to the first
//! NUL, then one variable per NUL-separated part) through loading, for
//! the daemon and for palisadectl, and what the daemon does next, checked
//! by `palisade_config::fuzzing::check_case`, as the bounded
//! `host/config/tests/fuzz_config.rs` checks its generated cases.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("palisade-cargo-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir.join("palisade.yml")
    })
}

fn names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(palisade_config::fuzzing::env_names)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (bytes, env) = palisade_config::fuzzing::case_from_bytes(data, names());
    if let Some(bytes) = &bytes {
        std::fs::write(file(), bytes).expect("write the case");
    }
    let outcome = palisade_config::fuzzing::check_case(bytes.as_ref().map(|_| file().as_path()), &env);
    assert!(outcome.problems.is_empty(), "file {bytes:?}, env {env:?}: {:?}", outcome.problems);
});
