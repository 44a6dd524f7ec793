//! Bounded, seeded fuzzing of configuration loading: generated YAML
//! documents and `PATRONI_*` environments (see `fuzz_gen`) through
//! [`palisade_config::load`] and, when they load, through what
//! `--validate-config` and the daemon do next with them (the dynamic
//! configuration from `bootstrap.dcs`, the settings not acted on, the merge
//! into PostgreSQL's settings, the cache JSON).
//!
//! What is checked for every case (see docs/reliability.md):
//! - nothing panics;
//! - every error and warning says where the problem is ([`check_located`]).
//!
//! `PALISADE_FUZZ_CASES=100000 PALISADE_FUZZ_SEED=7 cargo test -p
//! palisade-config --test fuzz_config -- --nocapture` runs longer;
//! `PALISADE_FUZZ_CASE=N` runs (and prints) case N only.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use palisade_config::{ConfigError, GlobalConfig, Loaded};

mod fuzz_gen;
use fuzz_gen::{Case, TOP_LEVEL};

/// Cases run by default (a few seconds in a debug build).
const DEFAULT_CASES: u64 = 1500;

/// Where an error or warning must say the problem is:
/// - a non-empty `path`: a dotted key path whose first part is a top-level
///   key of Patroni's configuration (`postgresql.authentication.superuser`,
///   `bootstrap.dcs.ttl`, `tags.nofailover`...), or the `PATRONI_*`
///   variable that was set (`PATRONI_LOG_FILE_NUM`, `PATRONI_CONFIGURATION`);
///   without control characters, and a non-empty message;
/// - an empty `path` only for a problem of the file as a whole: the message
///   starts with the file's path, and a YAML syntax error (`invalid YAML`)
///   gives its `line L column C`; or a problem of the configuration as a
///   whole that names the top-level keys concerned: the empty
///   configuration, no DCS section, several DCS sections (each named).
fn check_located(e: &ConfigError, case: &Case, file: &Path) -> Result<(), String> {
    if e.message.trim().is_empty() {
        return Err(format!("empty message at '{}'", e.path));
    }
    if e.message.contains("please report this") {
        return Err(format!("unspecific error: {e}"));
    }
    if e.path.is_empty() {
        if e.message.starts_with("the configuration is empty") || e.message.starts_with("no DCS configured: add one") {
            return Ok(());
        }
        if let Some(list) = e.message.strip_prefix("several DCS sections configured (") {
            let named = list.split(')').next().unwrap_or("");
            if named.split(", ").count() >= 2 && named.split(", ").all(|s| TOP_LEVEL.contains(&s)) {
                return Ok(());
            }
            return Err(format!("DCS sections not named: {e}"));
        }
        let shown = file.display().to_string();
        if case.file.is_none() || !e.message.starts_with(&shown) {
            return Err(format!("error without a key path or file: {e}"));
        }
        if e.message.contains("invalid YAML") && !has_line(&e.message) {
            return Err(format!("YAML error without a line: {e}"));
        }
        return Ok(());
    }
    if e.path.chars().any(char::is_control) {
        return Err(format!("control characters in the path: {:?}", e.path));
    }
    if e.path.starts_with("PATRONI_") {
        if !case.env.contains_key(&e.path) {
            return Err(format!("names a variable that is not set: {e}"));
        }
        if e.path == "PATRONI_CONFIGURATION" && e.message.contains("invalid YAML") && !has_line(&e.message) {
            return Err(format!("YAML error without a line: {e}"));
        }
        return Ok(());
    }
    let first = e.path.split(['.', '[']).next().unwrap_or("");
    if !TOP_LEVEL.contains(&first) {
        return Err(format!("path does not start with a configuration section: {e}"));
    }
    Ok(())
}

fn has_line(message: &str) -> bool {
    message.contains("line ") || message.contains("at line")
}

/// What the daemon does with a configuration that loaded.
fn use_loaded(loaded: &Loaded) -> Vec<ConfigError> {
    let mut issues = Vec::new();
    let dynamic = palisade_config::dynamic_from_bootstrap(&loaded.config);
    let (global, mut warnings) = GlobalConfig::from_dynamic(&dynamic);
    // These name paths inside the dynamic configuration (`ttl`,
    // `postgresql.parameters...`), not local paths: only check they have one.
    for w in warnings.drain(..) {
        if w.path.is_empty() || w.message.is_empty() {
            issues.push(ConfigError { path: "bootstrap.dcs".into(), message: format!("unlocated warning: {w}") });
        }
    }
    let _ = palisade_config::not_acted_on(&loaded.config, &global);
    let _ = palisade_config::effective_postgresql(&loaded.config, &global);
    let _ = palisade_config::paths_to_check(&loaded.config);
    let json = palisade_config::to_cache_json(&dynamic);
    if palisade_config::from_cache_json(&json).is_err() {
        issues.push(ConfigError { path: "bootstrap.dcs".into(), message: "the cache JSON does not read back".into() });
    }
    issues
}

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
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let result = palisade_config::load(path, &case.env);
            let used = result.as_ref().ok().map(use_loaded).unwrap_or_default();
            let for_ctl = palisade_config::load_for_ctl(path, &case.env);
            (result, used, for_ctl)
        }));
        let mut problems = Vec::new();
        match outcome {
            Err(_) => {
                panics += 1;
                problems.push("panicked".to_string());
            }
            Ok((result, used, for_ctl)) => {
                let (errors, warnings) = match &result {
                    Ok(l) => {
                        loaded_ok += 1;
                        (Vec::new(), l.warnings.clone())
                    }
                    Err(e) => {
                        refused += 1;
                        (e.clone(), Vec::new())
                    }
                };
                let ctl = match for_ctl {
                    Ok(l) => l.warnings,
                    Err(e) => e,
                };
                for e in errors.iter().chain(&warnings).chain(&ctl) {
                    distinct.insert(normalise(&e.message));
                    if let Err(p) = check_located(e, &case, &file) {
                        problems.push(p);
                    }
                }
                problems.extend(used.iter().map(ToString::to_string));
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
