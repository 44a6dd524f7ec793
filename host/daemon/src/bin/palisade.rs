//! `palisade`: the HA daemon, run as `patroni` is run.
//!
//! ```text
//! palisade [CONFIG]                  run in the foreground with this configuration
//! palisade --validate-config CONFIG  list every problem of a configuration and exit
//! palisade --version
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: palisade [--validate-config] [--version] [CONFIG]\n\n\
     Run the palisade HA daemon for the PostgreSQL server described by CONFIG\n\
     (a Patroni YAML file or a directory of them). Without CONFIG, the\n\
     configuration comes from PATRONI_CONFIGURATION or PATRONI_* variables.\n\n\
     options:\n\
     \x20 --validate-config  check the configuration, print every problem, exit non-zero if any\n\
     \x20 --version          print the version and exit\n\
     \x20 -h, --help         print this help"
}

fn main() -> ExitCode {
    palisade_daemon::memory::limit_arenas();
    let mut validate = false;
    let mut path: Option<PathBuf> = None;
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("--version") => {
                println!("palisade {}", palisade_daemon::VERSION);
                return ExitCode::SUCCESS;
            }
            Some("-h" | "--help") => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            Some("--validate-config") => validate = true,
            Some(flag) if flag.starts_with('-') => {
                eprintln!("palisade: unknown option '{flag}'\n\n{}", usage());
                return ExitCode::from(2);
            }
            _ if path.is_some() => {
                eprintln!("palisade: only one configuration path may be given\n\n{}", usage());
                return ExitCode::from(2);
            }
            _ => path = Some(PathBuf::from(arg)),
        }
    }
    let env: BTreeMap<String, String> = std::env::vars().collect();

    if validate {
        let Some(path) = path else {
            eprintln!("palisade: --validate-config needs a configuration file\n\n{}", usage());
            return ExitCode::from(2);
        };
        return match palisade_config::load(Some(&path), &env) {
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
        };
    }

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
