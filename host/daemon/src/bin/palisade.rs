//! `palisade`: the HA daemon, run as `patroni` is run.
//!
//! ```text
//! palisade [CONFIG]                  run in the foreground with this configuration
//! palisade --validate-config CONFIG  list every problem of a configuration and exit
//! palisade --list-plugins [CONFIG]   list the installed plugins (and what CONFIG needs)
//! palisade --version
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    palisade_daemon::memory::limit_arenas();
    use palisade_daemon::cli::{self, Invocation};
    let invocation = match cli::parse(std::env::args_os().skip(1)) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("palisade: {e}\n\n{}", cli::usage());
            return ExitCode::from(2);
        }
    };
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let path = match invocation {
        Invocation::Version => {
            println!("palisade {}", palisade_daemon::VERSION);
            return ExitCode::SUCCESS;
        }
        Invocation::Help => {
            println!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Invocation::ListPlugins(path) => {
            let report = palisade_daemon::inventory::list_plugins(path.as_deref(), &env);
            print!("{}", report.text);
            return if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
        Invocation::Validate(path) => return validate(&path, &env),
        Invocation::ReplicaWorker if !nix::unistd::geteuid().is_root() => {
            return palisade_daemon::replica_worker();
        }
        Invocation::ReplicaWorker => {
            eprintln!("palisade: refusing to run as root");
            return ExitCode::FAILURE;
        }
        Invocation::Run(path) => path,
    };

    if nix::unistd::geteuid().is_root() {
        eprintln!(
            "palisade: refusing to run as root. PostgreSQL will not run as root, and the daemon that \
             controls it must run as the unprivileged user that owns the data directory (usually \
             'postgres'), e.g.: sudo -u postgres palisade /etc/palisade/palisade.yml"
        );
        return ExitCode::FAILURE;
    }

    palisade_daemon::run_daemon(path.as_deref(), env)
}

/// `--validate-config`: every problem of the configuration at `path`.
fn validate(path: &Path, env: &BTreeMap<String, String>) -> ExitCode {
    match palisade_config::load(Some(path), env) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            if let Err(e) = palisade_daemon::logging::check(&loaded.config.log) {
                println!("error: {e}");
                println!("{}: 1 problem(s) found", path.display());
                return ExitCode::FAILURE;
            }
            for problem in palisade_daemon::check_paths(&loaded.config)
                .into_iter()
                .chain(palisade_daemon::check_connection_settings(&loaded.config))
            {
                println!("warning: {problem}");
            }
            let dynamic = palisade_config::dynamic_from_bootstrap(&loaded.config);
            let (global, _) = palisade_config::GlobalConfig::from_dynamic(&dynamic);
            for n in palisade_config::not_acted_on(&loaded.config, &global) {
                println!("warning: {n}");
            }
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                println!("error: {e}");
            }
            println!("{}: {} problem(s) found", path.display(), errors.len());
            ExitCode::FAILURE
        }
    }
}
