//! The commands. Each follows patronictl 4.1: the same prompts (skipped by
//! `--force`), the same messages, the same REST calls and DCS writes.
//!
//! `run` sends each command to its module: `list` (list, topology),
//! `history`, `switchover` (switchover, failover), `restart` (restart,
//! reload, reinit), `flush`, `pause` (pause, resume), `config`
//! (edit-config, show-config), `remove`, `query` (query, dsn), `version`,
//! `cluster_role` (demote-cluster, promote-cluster). What they share:
//! `pick` (choosing members, confirming, reading answers) and `ui`
//! (prompts, timestamps, `--watch`).

mod cluster_role;
mod config;
mod flush;
mod history;
mod list;
mod pause;
mod pick;
mod query;
mod remove;
mod restart;
mod switchover;
mod ui;
mod version;

use crate::ctx::{Ctx, Result};
use crate::table::Format;
use crate::{Cli, Command};

pub async fn run(cli: Cli) -> Result<()> {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let explicit = cli.config_file.is_some();
    let path = cli.config_file.clone().unwrap_or_else(|| crate::ctx::default_config_path(&env));
    let named = cluster_arg(&cli.command);
    let mut ctx = match Ctx::new(Some(&path), explicit, cli.dcs_url.as_deref(), cli.insecure, named.as_deref()) {
        // Without a configuration (or only --dcs-url) patronictl still
        // answers a list that names no cluster.
        Err(e) if named.is_none() && crate::ctx::is_empty_config(&e) && is_listing(&cli.command) => {
            eprintln!("Listing members: No cluster names were provided");
            return Ok(());
        }
        other => other?,
    };
    let (group, default_from_config) = group_arg(&cli.command);
    ctx.set_group(group, default_from_config)?;
    match cli.command {
        Command::List { cluster_names, extended, ts, fmt, watch, .. } => {
            list::list(&ctx, cluster_names, extended, ts, fmt, &watch).await
        }
        Command::Topology { cluster_names, watch, .. } => {
            list::list(&ctx, cluster_names, false, false, Format::Topology, &watch).await
        }
        Command::Switchover { cluster_name, leader, candidate, scheduled, force, .. } => {
            let scope = ctx.scope(cluster_name.as_deref())?;
            switchover::failover_or_switchover(&ctx, "switchover", &scope, candidate, force, leader, scheduled).await
        }
        Command::Failover { cluster_name, candidate, force, .. } => {
            let scope = ctx.scope(cluster_name.as_deref())?;
            switchover::failover_or_switchover(&ctx, "failover", &scope, candidate, force, None, None).await
        }
        Command::Restart {
            cluster_name,
            member_names,
            role,
            p_any,
            scheduled,
            pg_version,
            pending,
            timeout,
            force,
            ..
        } => {
            restart::restart(
                &ctx,
                &cluster_name,
                member_names,
                role,
                p_any,
                scheduled,
                pg_version,
                pending,
                timeout,
                force,
            )
            .await
        }
        Command::Reload { cluster_name, member_names, role, force, .. } => {
            restart::reload(&ctx, &cluster_name, member_names, role, force).await
        }
        Command::Reinit { cluster_name, member_names, force, from_leader, wait, .. } => {
            restart::reinit(&ctx, &cluster_name, member_names, force, from_leader, wait).await
        }
        Command::Pause { cluster_name, wait, .. } => pause::toggle_pause(&ctx, cluster_name, true, wait).await,
        Command::Resume { cluster_name, wait, .. } => pause::toggle_pause(&ctx, cluster_name, false, wait).await,
        Command::EditConfig {
            cluster_name,
            quiet,
            kvpairs,
            pgkvpairs,
            apply_filename,
            replace_filename,
            force,
            ..
        } => {
            config::edit_config(&ctx, cluster_name, force, quiet, kvpairs, pgkvpairs, apply_filename, replace_filename)
                .await
        }
        Command::ShowConfig { cluster_name, .. } => config::show_config(&ctx, cluster_name).await,
        Command::History { cluster_name, fmt, .. } => history::history(&ctx, cluster_name, fmt).await,
        Command::Remove { cluster_name, fmt, .. } => remove::remove(&ctx, &cluster_name, fmt).await,
        Command::Query {
            cluster_name,
            fmt,
            file,
            password,
            username,
            watch,
            role,
            member,
            delimiter,
            command,
            dbname,
            ..
        } => {
            let q = query::QueryArgs { fmt, file, password, username, role, member, delimiter, command, dbname };
            query::query(&ctx, cluster_name, q, &watch).await
        }
        Command::Dsn { cluster_name, role, member, .. } => query::dsn(&ctx, cluster_name, role, member).await,
        Command::Flush { cluster_name, rest, role, force, .. } => {
            flush::flush(&ctx, &cluster_name, rest, role, force).await
        }
        Command::Version { cluster_name, member_names, .. } => version::version(&ctx, cluster_name, member_names).await,
        Command::DemoteCluster { cluster_name, force, host, port, restore_command, primary_slot_name } => {
            let standby = cluster_role::StandbyArgs { host, port, restore_command, primary_slot_name };
            cluster_role::demote_cluster(&ctx, cluster_name, force, standby).await
        }
        Command::PromoteCluster { cluster_name, force } => {
            cluster_role::change_cluster_role(&ctx, cluster_name, force, None).await
        }
    }
}

/// The command's `--group`, and whether patronictl defaults it to the
/// configuration's `citus.group` (`option_default_citus_group`: pause,
/// resume, edit-config, show-config, history).
fn group_arg(c: &Command) -> (Option<i64>, bool) {
    match c {
        Command::Pause { group, .. }
        | Command::Resume { group, .. }
        | Command::EditConfig { group, .. }
        | Command::ShowConfig { group, .. }
        | Command::History { group, .. } => (*group, true),
        Command::List { group, .. }
        | Command::Topology { group, .. }
        | Command::Switchover { group, .. }
        | Command::Failover { group, .. }
        | Command::Restart { group, .. }
        | Command::Reload { group, .. }
        | Command::Reinit { group, .. }
        | Command::Remove { group, .. }
        | Command::Query { group, .. }
        | Command::Dsn { group, .. }
        | Command::Flush { group, .. }
        | Command::Version { group, .. } => (*group, false),
        Command::DemoteCluster { .. } | Command::PromoteCluster { .. } => (None, false),
    }
}

fn is_listing(c: &Command) -> bool {
    matches!(c, Command::List { .. } | Command::Topology { .. })
}

/// The cluster a command names, if any (it stands in for a missing scope).
fn cluster_arg(c: &Command) -> Option<String> {
    match c {
        Command::List { cluster_names, .. } | Command::Topology { cluster_names, .. } => cluster_names.first().cloned(),
        Command::Restart { cluster_name, .. }
        | Command::Reload { cluster_name, .. }
        | Command::Reinit { cluster_name, .. }
        | Command::Remove { cluster_name, .. }
        | Command::Flush { cluster_name, .. } => Some(cluster_name.clone()),
        Command::Switchover { cluster_name, .. }
        | Command::Failover { cluster_name, .. }
        | Command::Pause { cluster_name, .. }
        | Command::Resume { cluster_name, .. }
        | Command::EditConfig { cluster_name, .. }
        | Command::ShowConfig { cluster_name, .. }
        | Command::History { cluster_name, .. }
        | Command::Query { cluster_name, .. }
        | Command::Dsn { cluster_name, .. }
        | Command::Version { cluster_name, .. }
        | Command::DemoteCluster { cluster_name, .. }
        | Command::PromoteCluster { cluster_name, .. } => cluster_name.clone(),
    }
}
