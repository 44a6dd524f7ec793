//! `palisadectl`: patronictl's commands, flags, prompts and output for
//! palisade clusters (and Patroni ones). It reads the cluster from the DCS
//! through the same plugins as the daemon and sends actions to the
//! members' REST APIs.

mod cmds;
mod ctx;
mod diff;
#[cfg(test)]
mod differential;
mod members;
mod pyvalue;
mod pyyaml;
mod sql;
mod table;
mod yaml;

use std::process::ExitCode;

use clap::Parser;
pub use palisade_ctl::cli::{Cli, Command, CtlRole, Watch};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // flush's last argument is its target: a bad one is a command-line
    // error (status 2), as click reports it for patronictl.
    if let Command::Flush { rest, .. } = &cli.command {
        if let Some(t) = rest.last().filter(|t| *t != "restart" && *t != "switchover") {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            let flush = cmd.find_subcommand_mut("flush").map(|c| c.clone().bin_name("palisadectl flush"));
            let msg = format!("invalid value '{t}' for '<TARGET>': not one of 'restart', 'switchover'");
            flush.unwrap_or(cmd).error(clap::error::ErrorKind::InvalidValue, msg).exit();
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmds::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.0 == ctx::ABORTED => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Format;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    fn parse(line: &str) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("palisadectl").chain(line.split_whitespace()))
    }

    /// patronictl's spellings, aliases and defaults, read the same way.
    #[test]
    fn patronictl_command_lines() {
        let cli = parse("-c /etc/p.yml -d etcd3://h:2379 -k members a b -e -t -f tsv -W").unwrap();
        assert_eq!(cli.config_file.as_deref(), Some(std::path::Path::new("/etc/p.yml")));
        assert_eq!((cli.dcs_url.as_deref(), cli.insecure), (Some("etcd3://h:2379"), true));
        let Command::List { cluster_names, extended, ts, fmt, watch, .. } = cli.command else { panic!("list") };
        assert_eq!(
            (cluster_names, extended, ts, fmt),
            (vec!["a".to_string(), "b".to_string()], true, true, Format::Tsv)
        );
        assert!(watch.w && watch.watch.is_none());
        let Command::List { watch, fmt, .. } = parse("--dcs h list -w 0.5 --format yml").unwrap().command else {
            panic!("list")
        };
        assert_eq!((watch.watch, fmt), (Some(0.5), Format::Yml));

        let cli = parse("switchover c --primary n1 --candidate n2 --scheduled 2030-01-01T00:00 --force").unwrap();
        let Command::Switchover { cluster_name, leader, candidate, scheduled, force, .. } = cli.command else {
            panic!("switchover")
        };
        assert_eq!(cluster_name.as_deref(), Some("c"));
        assert_eq!((leader.as_deref(), candidate.as_deref()), (Some("n1"), Some("n2")));
        assert_eq!((scheduled.as_deref(), force), (Some("2030-01-01T00:00"), true));
        let Command::Switchover { leader, .. } = parse("switchover --leader n1").unwrap().command else {
            panic!("switchover")
        };
        assert_eq!(leader.as_deref(), Some("n1"));

        let cli = parse("restart c n1 n2 -r master --any --pg-version 15.2 --pending --timeout 30 --force").unwrap();
        let Command::Restart { member_names, role, p_any, pg_version, pending, timeout, force, .. } = cli.command
        else {
            panic!("restart")
        };
        assert_eq!(member_names, ["n1", "n2"]);
        assert_eq!((role, p_any, pending, force), (CtlRole::Primary, true, true, true));
        assert_eq!((pg_version.as_deref(), timeout.as_deref()), (Some("15.2"), Some("30")));
        let Command::Reload { role, .. } = parse("reload c").unwrap().command else { panic!("reload") };
        assert_eq!(role, CtlRole::Any);

        let cli = parse("query c -c select -U u -d db -r standby-leader --format json --delimiter ; -w 1").unwrap();
        let Command::Query { command, username, dbname, role, fmt, delimiter, file, watch, .. } = cli.command else {
            panic!("query")
        };
        assert_eq!(
            (command.as_deref(), username.as_deref(), dbname.as_deref()),
            (Some("select"), Some("u"), Some("db"))
        );
        assert_eq!(
            (role, fmt, delimiter.as_str(), file, watch.watch),
            (Some(CtlRole::StandbyLeader), Format::Json, ";", None, Some(1.0))
        );
        let Command::Query { file, fmt, delimiter, .. } = parse("query -f x.sql").unwrap().command else {
            panic!("query")
        };
        assert_eq!((file, fmt, delimiter.as_str()), (Some("x.sql".into()), Format::Tsv, "\t"));

        let cli = parse("edit-config c -s a=1 --set b=2 -p work_mem=4MB --pg x=y --apply - -q --force").unwrap();
        let Command::EditConfig { kvpairs, pgkvpairs, apply_filename, quiet, force, .. } = cli.command else {
            panic!("edit-config")
        };
        assert_eq!((kvpairs, pgkvpairs), (vec!["a=1".into(), "b=2".into()], vec!["work_mem=4MB".into(), "x=y".into()]));
        assert_eq!((apply_filename.as_deref(), quiet, force), (Some("-"), true, true));

        let Command::Flush { cluster_name, rest, .. } = parse("flush c n1 n2 restart").unwrap().command else {
            panic!("flush")
        };
        assert_eq!((cluster_name.as_str(), rest), ("c", vec!["n1".into(), "n2".into(), "restart".into()]));
        let cli =
            parse("demote-cluster --host h --port 5433 --restore-command cp --primary-slot-name s --force").unwrap();
        let Command::DemoteCluster { host, port, restore_command, primary_slot_name, force, .. } = cli.command else {
            panic!("demote-cluster")
        };
        assert_eq!((host.as_deref(), port, restore_command.as_deref()), (Some("h"), Some(5433), Some("cp")));
        assert_eq!((primary_slot_name.as_deref(), force), (Some("s"), true));
        let Command::Reinit { from_leader, wait, .. } = parse("reinit c n2 --from-leader --wait").unwrap().command
        else {
            panic!("reinit")
        };
        assert!(from_leader && wait);

        // What patronictl refuses on the command line, so does palisadectl.
        for bad in ["list -f xml", "restart", "flush c", "restart c -r boss", "frobnicate", "demote-cluster --port x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
