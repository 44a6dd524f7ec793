//! The daemon's command line, run as `patroni` is run:
//!
//! ```text
//! palisade [CONFIG]                  run in the foreground with this configuration
//! palisade --validate-config CONFIG  list every problem of a configuration and exit
//! palisade --list-plugins [CONFIG]   list the installed plugins (and what CONFIG needs)
//! palisade --version
//! ```
//!
//! [`parse`] is the parser the binary uses (a few flags, parsed by hand so
//! that the messages and exit codes stay Patroni's); [`command`] describes
//! the same command line to clap, for the man page and nothing else. A test
//! keeps the two in step.

use std::ffi::OsString;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Run the daemon (configuration from the path, else the environment).
    Run(Option<PathBuf>),
    /// `--validate-config CONFIG`.
    Validate(PathBuf),
    /// `--list-plugins [CONFIG]`.
    ListPlugins(Option<PathBuf>),
    /// `--replica-worker`, alone: the daemon's own child that makes one
    /// replica (`palisade_plugin_host::worker`). Internal: not in the
    /// usage text or the man page.
    ReplicaWorker,
    Version,
    Help,
}

/// The help text (`-h`, and after a usage error).
pub fn usage() -> &'static str {
    "usage: palisade [--validate-config | --list-plugins] [--version] [CONFIG]\n\n\
     Run the palisade HA daemon for the PostgreSQL server described by CONFIG\n\
     (a Patroni YAML file or a directory of them). Without CONFIG, the\n\
     configuration comes from PATRONI_CONFIGURATION or PATRONI_* variables.\n\n\
     options:\n\
     \x20 --validate-config  check the configuration, print every problem, exit non-zero if any\n\
     \x20 --list-plugins     list the installed plugins; with CONFIG, also the plugins it needs\n\
     \x20                    that are missing (exit non-zero if any)\n\
     \x20 --version          print the version and exit\n\
     \x20 -h, --help         print this help"
}

/// Parse the arguments (without the program name). `--version` and
/// `--help` win as soon as they are seen; an error is the message to print
/// before the usage (exit status 2).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, String> {
    let mut validate = false;
    let mut list = false;
    let mut path: Option<PathBuf> = None;
    let args: Vec<OsString> = args.into_iter().collect();
    if args.len() == 1 && args[0] == "--replica-worker" {
        return Ok(Invocation::ReplicaWorker);
    }
    for arg in args {
        match arg.to_str() {
            Some("--version") => return Ok(Invocation::Version),
            Some("-h" | "--help") => return Ok(Invocation::Help),
            Some("--validate-config") => validate = true,
            Some("--list-plugins") => list = true,
            Some(flag) if flag.starts_with('-') => return Err(format!("unknown option '{flag}'")),
            _ if path.is_some() => return Err("only one configuration path may be given".into()),
            _ => path = Some(PathBuf::from(arg)),
        }
    }
    match (validate, list, path) {
        (true, true, _) => Err("--validate-config and --list-plugins cannot be combined".into()),
        (true, false, Some(path)) => Ok(Invocation::Validate(path)),
        (true, false, None) => Err("--validate-config needs a configuration file".into()),
        (false, true, path) => Ok(Invocation::ListPlugins(path)),
        (false, false, path) => Ok(Invocation::Run(path)),
    }
}

/// The same command line as a clap definition, for the man page
/// (`palisade-docgen`). The binary does not parse with it.
pub fn command() -> clap::Command {
    use clap::{Arg, ArgAction, Command};
    Command::new("palisade")
        .version(crate::VERSION)
        .about("The palisade PostgreSQL high-availability daemon (a Patroni re-implementation)")
        .long_about(
            "Run the palisade HA daemon for the PostgreSQL server described by CONFIG (a Patroni YAML file \
             or a directory of them). Without CONFIG, the configuration comes from PATRONI_CONFIGURATION or \
             PATRONI_* variables. The daemon refuses to run as root: run it as the user that owns the data \
             directory (usually postgres). Plugins are loaded from plugin_dir in the configuration, else \
             $PALISADE_PLUGIN_DIR, else ../lib/palisade/plugins next to the binary, else \
             /usr/lib/palisade/plugins. SIGHUP reloads the configuration; SIGTERM and SIGINT stop the \
             daemon (and PostgreSQL with it).",
        )
        .disable_version_flag(true)
        .arg(Arg::new("config").value_name("CONFIG").help("Configuration file or directory"))
        .arg(
            Arg::new("validate-config")
                .long("validate-config")
                .action(ArgAction::SetTrue)
                .requires("config")
                .conflicts_with("list-plugins")
                .help("Check the configuration, print every problem, exit non-zero if any"),
        )
        .arg(Arg::new("list-plugins").long("list-plugins").action(ArgAction::SetTrue).help(
            "List the installed plugins (kind, name, API version, file); with CONFIG, also the plugins it \
             needs that are missing, and exit non-zero if any",
        ))
        .arg(Arg::new("version").long("version").action(ArgAction::Version).help("Print the version and exit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Invocation, String> {
        parse(line.split_whitespace().map(OsString::from))
    }

    #[test]
    fn parses_what_patroni_accepts() {
        assert_eq!(p(""), Ok(Invocation::Run(None)));
        assert_eq!(p("a.yml"), Ok(Invocation::Run(Some("a.yml".into()))));
        assert_eq!(p("--validate-config a.yml"), Ok(Invocation::Validate("a.yml".into())));
        assert_eq!(p("a.yml --validate-config"), Ok(Invocation::Validate("a.yml".into())));
        assert_eq!(p("--list-plugins"), Ok(Invocation::ListPlugins(None)));
        assert_eq!(p("--list-plugins a.yml"), Ok(Invocation::ListPlugins(Some("a.yml".into()))));
        assert_eq!(p("a.yml --version"), Ok(Invocation::Version));
        assert_eq!(p("-h --bogus"), Ok(Invocation::Help));
        assert_eq!(p("--bogus"), Err("unknown option '--bogus'".into()));
        assert_eq!(p("--replica-worker"), Ok(Invocation::ReplicaWorker));
        assert_eq!(p("--replica-worker a.yml"), Err("unknown option '--replica-worker'".into()));
        assert_eq!(p("a b"), Err("only one configuration path may be given".into()));
        assert_eq!(p("--validate-config"), Err("--validate-config needs a configuration file".into()));
        assert!(p("--validate-config --list-plugins a").is_err());
    }

    /// The clap definition (the man page) and the parser agree: every
    /// line one accepts, the other does, and every option of the
    /// definition is in the usage text.
    #[test]
    fn the_man_page_definition_matches_the_parser() {
        command().debug_assert();
        for line in [
            "",
            "a.yml",
            "--validate-config a.yml",
            "--list-plugins",
            "--list-plugins a.yml",
            "--validate-config",
            "--validate-config --list-plugins a.yml",
            "a b",
            "--bogus",
        ] {
            let ours = p(line).is_ok();
            let clap = command().try_get_matches_from(std::iter::once("palisade").chain(line.split_whitespace()));
            assert_eq!(ours, clap.is_ok(), "{line:?}: {clap:?}");
        }
        for arg in command().get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(usage().contains(&format!("--{long}")), "--{long} is not in the usage text");
                assert!(p(&format!("--{long} a.yml")).is_ok(), "--{long} is not parsed");
            }
        }
    }
}
