//! The rest of `palisade --validate-config` on generated configurations
//! (host/config/tests/fuzz_gen): for every case that loads, the daemon's own
//! checks (`logging::check`, `check_paths`, `check_connection_settings`)
//! never panic and every problem they report starts with the key it is
//! about. Same environment variables as host/config/tests/fuzz_config.rs
//! (`PALISADE_FUZZ_CASES`, `PALISADE_FUZZ_SEED`, `PALISADE_FUZZ_CASE`).

use std::panic::{catch_unwind, AssertUnwindSafe};

#[path = "../../config/tests/fuzz_gen/mod.rs"]
mod fuzz_gen;

#[test]
fn validate_config_checks_of_generated_configurations_never_panic() {
    let settings = fuzz_gen::settings(600);
    let names = fuzz_gen::env_names();
    let dir = std::env::temp_dir().join(format!("palisade-fuzz-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("palisade.yml");
    let range = settings.indices();
    let mut failures = Vec::new();
    let (mut checked, mut reported) = (0u64, 0u64);
    for index in range {
        let case = fuzz_gen::case(settings.seed, index, &names);
        if let Some(bytes) = &case.file {
            std::fs::write(&file, bytes).expect("write the case");
        }
        let path = case.file.as_ref().map(|_| file.as_path());
        let Ok(loaded) = palisade_config::load(path, &case.env) else { continue };
        checked += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let log = palisade_daemon::logging::check(&loaded.config.log).err();
            let mut problems = palisade_daemon::check_paths(&loaded.config);
            problems.extend(palisade_daemon::check_connection_settings(&loaded.config));
            (log, problems)
        }));
        let mut bad = Vec::new();
        match outcome {
            Err(_) => bad.push("panicked".to_string()),
            Ok((log, problems)) => {
                reported += u64::from(log.is_some()) + problems.len() as u64;
                if let Some(e) = log {
                    if !e.starts_with("log") {
                        bad.push(format!("log error without its key: {e}"));
                    }
                }
                for p in problems {
                    let first = p.split(['.', ':', ' ']).next().unwrap_or("");
                    if !palisade_config::fuzzing::TOP_LEVEL.contains(&first) {
                        bad.push(format!("problem without its key: {p}"));
                    }
                }
            }
        }
        if !bad.is_empty() && failures.len() < 20 {
            failures.push(format!(
                "case {index} ({}): {}\n    reproduce: PALISADE_FUZZ_SEED={:#x} PALISADE_FUZZ_CASE={index}",
                case.what.chars().take(300).collect::<String>(),
                bad.join("; "),
                settings.seed
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "fuzz_validate_config: seed {:#x}, {checked} loaded configurations checked, {reported} problems reported",
        settings.seed
    );
    assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
}

/// The binary itself on a sample of the generated files: it exits 0 or 1
/// (never a panic or a signal), prints exactly the errors the loader
/// returns (each already checked for its key path by the config crate's
/// fuzz test), and says `configuration is valid` only when there are none.
#[test]
fn validate_config_binary_on_generated_files() {
    let settings = fuzz_gen::settings(120);
    let names = fuzz_gen::env_names();
    let dir = std::env::temp_dir().join(format!("palisade-fuzz-validate-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("palisade.yml");
    let range = settings.indices();
    let mut failures = Vec::new();
    let mut run = 0u64;
    for index in range {
        let case = fuzz_gen::case(settings.seed, index, &names);
        let Some(bytes) = &case.file else { continue };
        // A real environment cannot hold NUL bytes.
        if case.env.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')) {
            continue;
        }
        std::fs::write(&file, bytes).expect("write the case");
        run += 1;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
            .arg("--validate-config")
            .arg(&file)
            .env_clear()
            .envs(&case.env)
            .output()
            .expect("run palisade");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let printed: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("error: ")).collect();
        let mut bad = Vec::new();
        match palisade_config::load(Some(&file), &case.env) {
            Err(errors) => {
                let expected: Vec<String> = errors.iter().map(ToString::to_string).collect();
                if out.status.code() != Some(1) {
                    bad.push(format!("exit {:?} for an invalid file", out.status));
                }
                // Messages may span lines (a YAML error quotes the source): compare the first lines.
                let firsts: Vec<&str> = expected.iter().filter_map(|e| e.lines().next()).collect();
                if printed != firsts {
                    bad.push(format!("printed {printed:?}, the loader says {firsts:?}"));
                }
            }
            Ok(loaded) => {
                let log_ok = palisade_daemon::logging::check(&loaded.config.log).is_ok();
                let want = if log_ok { Some(0) } else { Some(1) };
                if out.status.code() != want {
                    bad.push(format!("exit {:?}, expected {want:?}", out.status));
                }
                if log_ok != stdout.contains("configuration is valid") {
                    bad.push(format!("output does not match the verdict: {stdout}"));
                }
            }
        }
        if !bad.is_empty() && failures.len() < 20 {
            failures.push(format!(
                "case {index} ({}): {}; stderr: {}\n    reproduce: PALISADE_FUZZ_SEED={:#x} PALISADE_FUZZ_CASE={index}",
                case.what.chars().take(300).collect::<String>(),
                bad.join("; "),
                String::from_utf8_lossy(&out.stderr),
                settings.seed
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("fuzz_validate_config binary: seed {:#x}, {run} files validated", settings.seed);
    assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
}
