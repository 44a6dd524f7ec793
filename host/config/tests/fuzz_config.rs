//! Bounded, seeded fuzzing of configuration loading: generated YAML
//! documents and `PATRONI_*` environments (see `fuzz_gen`) through
//! [`palisade_config::load`] and, when they load, through what
//! `--validate-config` and the daemon do next with them (the dynamic
//! configuration from `bootstrap.dcs`, the settings not acted on, the merge
//! into PostgreSQL's settings, the cache JSON).
//!
//! What is checked for every case (see docs/reliability.md): nothing
//! panics, and [`palisade_config::fuzzing::check_case`] (every error and
//! warning says where the problem is; what loads is used without a
//! problem), the check the cargo fuzz targets `config_file` and
//! `config_env` (fuzz/) make too.
//!
//! `PALISADE_FUZZ_CASES=100000 PALISADE_FUZZ_SEED=7 cargo test -p
//! palisade-config --test fuzz_config -- --nocapture` runs longer;
//! `PALISADE_FUZZ_CASE=N` runs (and prints) case N only.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

mod fuzz_gen;

/// Cases run by default (a few seconds in a debug build).
const DEFAULT_CASES: u64 = 1500;

fn normalise(message: &str) -> String {
    let mut out = String::new();
    let mut digits = false;
    for c in message.chars().take(120) {
        if c.is_ascii_digit() {
            if !digits {
                out.push('#');
            }
            digits = true;
        } else {
            digits = false;
            out.push(c);
        }
    }
    out
}

#[test]
fn generated_configurations_load_without_panic_and_errors_name_their_key() {
    let settings = fuzz_gen::settings(DEFAULT_CASES);
    let names = fuzz_gen::env_names();
    let dir = std::env::temp_dir().join(format!("palisade-fuzz-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("palisade.yml");
    let range = settings.indices();
    let (mut loaded_ok, mut refused, mut panics) = (0u64, 0u64, 0u64);
    let mut distinct: BTreeSet<String> = BTreeSet::new();
    let mut failures: Vec<String> = Vec::new();
    for index in range.clone() {
        let case = fuzz_gen::case(settings.seed, index, &names);
        if settings.only.is_some() {
            println!("case {index}: {}", case.what);
            if let Some(bytes) = &case.file {
                println!("--- file ---\n{}\n---", String::from_utf8_lossy(bytes));
            }
            println!("env: {:?}", case.env);
        }
        if let Some(bytes) = &case.file {
            std::fs::write(&file, bytes).expect("write the case");
        }
        let path = case.file.as_ref().map(|_| file.as_path());
        let outcome = catch_unwind(AssertUnwindSafe(|| palisade_config::fuzzing::check_case(path, &case.env)));
        let mut problems = Vec::new();
        match outcome {
            Err(_) => {
                panics += 1;
                problems.push("panicked".to_string());
            }
            Ok(outcome) => {
                if outcome.loaded {
                    loaded_ok += 1;
                } else {
                    refused += 1;
                }
                distinct.extend(outcome.messages.iter().map(|m| normalise(m)));
                problems.extend(outcome.problems);
            }
        }
        if !problems.is_empty() && failures.len() < 20 {
            failures.push(format!(
                "case {index} ({}): {}\n    reproduce: PALISADE_FUZZ_SEED={:#x} PALISADE_FUZZ_CASE={index}",
                case.what.chars().take(300).collect::<String>(),
                problems.join("; "),
                settings.seed
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "fuzz_config: seed {:#x}, {} cases: {loaded_ok} loaded, {refused} refused, {panics} panics, \
         {} distinct messages",
        settings.seed,
        range.end - range.start,
        distinct.len()
    );
    if std::env::var_os("PALISADE_FUZZ_SHOW").is_some() {
        for d in &distinct {
            println!("  {d}");
        }
    }
    assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
}

/// The generator is deterministic: the same seed gives the same cases (so a
/// printed seed reproduces a failure).
#[test]
fn the_generator_is_deterministic() {
    let names = fuzz_gen::env_names();
    let digest = |seed: u64| -> Vec<String> {
        (0..50).map(|i| fuzz_gen::case(seed, i, &names)).map(|c| format!("{:?} {:?}", c.file, c.env)).collect()
    };
    assert_eq!(digest(1), digest(1));
    assert_ne!(digest(1), digest(2));
}

/// Found by the cargo fuzz targets `config_file` and `config_env`: a value
/// holding the words of the loader's "no specific problem" error, quoted
/// in the message about it, was taken for that error by the check. Only
/// the loader's own message is unspecific.
#[test]
fn a_value_quoting_the_unspecific_error_is_not_taken_for_it() {
    let mut env: std::collections::BTreeMap<String, String> =
        fuzz_gen::MINIMAL_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.insert("PATRONI_ETCD_PORT".into(), "*please report this".into());
    let outcome = palisade_config::fuzzing::check_case(None, &env);
    assert!(outcome.messages.iter().any(|m| m.contains("please report this")), "{:?}", outcome.messages);
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    let unspecific = palisade_config::ConfigError { path: String::new(), message: palisade_config::UNSPECIFIC.into() };
    assert!(palisade_config::fuzzing::check_located(&unspecific, None, &env).is_err());
}
