//! The commands. Each follows patronictl 4.1: the same prompts (skipped by
//! `--force`), the same messages, the same REST calls and DCS writes.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, TimeZone};
use palisade_model::{Cluster, Failover, Member};
use serde_json::{json, Map, Value};

use crate::ctx::{err, CtlError, Ctx, Result};
use crate::members::{all_members, all_members_leader_first, output_members, truthy};
use crate::table::{self, Format};
use crate::{diff, pyvalue, yaml, Cli, Command, CtlRole, Watch};

pub async fn run(cli: Cli) -> Result<()> {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let explicit = cli.config_file.is_some();
    let path = cli.config_file.clone().unwrap_or_else(|| crate::ctx::default_config_path(&env));
    let named = cluster_arg(&cli.command);
    let ctx = match Ctx::new(Some(&path), explicit, cli.dcs_url.as_deref(), cli.insecure, named.as_deref()) {
        // Without a configuration (or only --dcs-url) patronictl still
        // answers a list that names no cluster.
        Err(e) if named.is_none() && crate::ctx::is_empty_config(&e) && is_listing(&cli.command) => {
            eprintln!("Listing members: No cluster names were provided");
            return Ok(());
        }
        other => other?,
    };
    match cli.command {
        Command::List { cluster_names, extended, ts, fmt, watch, .. } => {
            list(&ctx, cluster_names, extended, ts, fmt, &watch).await
        }
        Command::Topology { cluster_names, watch, .. } => {
            list(&ctx, cluster_names, false, false, Format::Topology, &watch).await
        }
        Command::Switchover { cluster_name, leader, candidate, scheduled, force, .. } => {
            let scope = ctx.scope(cluster_name.as_deref())?;
            failover_or_switchover(&ctx, "switchover", &scope, candidate, force, leader, scheduled).await
        }
        Command::Failover { cluster_name, candidate, force, .. } => {
            let scope = ctx.scope(cluster_name.as_deref())?;
            failover_or_switchover(&ctx, "failover", &scope, candidate, force, None, None).await
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
            restart(&ctx, &cluster_name, member_names, role, p_any, scheduled, pg_version, pending, timeout, force)
                .await
        }
        Command::Reload { cluster_name, member_names, role, force, .. } => {
            reload(&ctx, &cluster_name, member_names, role, force).await
        }
        Command::Reinit { cluster_name, member_names, force, from_leader, wait, .. } => {
            reinit(&ctx, &cluster_name, member_names, force, from_leader, wait).await
        }
        Command::Pause { cluster_name, wait, .. } => toggle_pause(&ctx, cluster_name, true, wait).await,
        Command::Resume { cluster_name, wait, .. } => toggle_pause(&ctx, cluster_name, false, wait).await,
        Command::EditConfig {
            cluster_name,
            quiet,
            kvpairs,
            pgkvpairs,
            apply_filename,
            replace_filename,
            force,
            ..
        } => edit_config(&ctx, cluster_name, force, quiet, kvpairs, pgkvpairs, apply_filename, replace_filename).await,
        Command::ShowConfig { cluster_name, .. } => {
            let cluster = ctx.cluster(&ctx.scope(cluster_name.as_deref())?).await?;
            if let Some(c) = &cluster.config {
                println!("{}", yaml::to_yaml(&Value::Object(c.data.clone())));
            }
            Ok(())
        }
        Command::History { cluster_name, fmt, .. } => history(&ctx, cluster_name, fmt).await,
        Command::Remove { cluster_name, fmt, .. } => remove(&ctx, &cluster_name, fmt).await,
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
            let q = QueryArgs { fmt, file, password, username, role, member, delimiter, command, dbname };
            query(&ctx, cluster_name, q, &watch).await
        }
        Command::Dsn { cluster_name, role, member, .. } => {
            let cluster = ctx.cluster(&ctx.scope(cluster_name.as_deref())?).await?;
            let m = any_member(&cluster, role, member.as_deref())?
                .ok_or(CtlError("Can not find a suitable member".into()))?;
            let (host, port) = m.host_port().ok_or(CtlError(format!("member {} has no conn_url", m.name)))?;
            println!("host={host} port={port}");
            Ok(())
        }
        Command::Flush { cluster_name, rest, role, force, .. } => flush(&ctx, &cluster_name, rest, role, force).await,
        Command::Version { cluster_name, member_names, .. } => version(&ctx, cluster_name, member_names).await,
        Command::DemoteCluster { cluster_name, force, host, port, restore_command, primary_slot_name } => {
            if host.is_none() && port.is_none() && restore_command.is_none() {
                return err("At least --host, --port or --restore-command should be specified");
            }
            let mut data = Map::new();
            if let Some(h) = host {
                data.insert("host".into(), json!(h));
            }
            if let Some(p) = port {
                data.insert("port".into(), json!(p));
            }
            if let Some(s) = primary_slot_name {
                data.insert("primary_slot_name".into(), json!(s));
            }
            if let Some(r) = restore_command {
                data.insert("restore_command".into(), json!(r));
            }
            change_cluster_role(&ctx, cluster_name, force, Some(data)).await
        }
        Command::PromoteCluster { cluster_name, force } => change_cluster_role(&ctx, cluster_name, force, None).await,
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

// --- prompts ---------------------------------------------------------------

fn read_line() -> Result<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        // click's Abort: patronictl leaves the prompt line unfinished.
        Ok(0) | Err(_) => err(crate::ctx::ABORTED),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
    }
}

/// click's `prompt`: `text [default]: `.
fn prompt(text: &str, default: Option<&str>) -> Result<String> {
    loop {
        match default {
            Some(d) => print!("{text} [{d}]: "),
            None => print!("{text}: "),
        }
        let _ = std::io::stdout().flush();
        let line = read_line()?;
        if !line.is_empty() {
            return Ok(line);
        }
        if let Some(d) = default {
            return Ok(d.to_string());
        }
    }
}

/// click's `confirm`: `text [y/N]: `.
fn confirm(text: &str) -> Result<bool> {
    loop {
        print!("{text} [y/N]: ");
        let _ = std::io::stdout().flush();
        match read_line()?.trim().to_lowercase().as_str() {
            "y" | "yes" => return Ok(true),
            "" | "n" | "no" => return Ok(false),
            _ => println!("Error: invalid input"),
        }
    }
}

/// patronictl's `timestamp(precision)`: the local time with microseconds,
/// its last `7 - precision` characters cut off (so `6` keeps five digits
/// of the fraction and `0` none, point included).
fn timestamp(precision: usize) -> String {
    cut_timestamp(&Local::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string(), precision)
}

fn cut_timestamp(s: &str, precision: usize) -> String {
    let cut = (s.len() + precision.min(7)).saturating_sub(7);
    s[..cut].to_string()
}

/// patronictl's `parse_scheduled`: `None` for now, else an aware time (local
/// time zone when none is given).
pub fn parse_scheduled(text: Option<&str>) -> Result<Option<DateTime<FixedOffset>>> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty() && *t != "now") else {
        return Ok(None);
    };
    if let Some(at) = palisade_model::values::parse_timestamp(t) {
        return Ok(Some(at));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            if let Some(local) = Local.from_local_datetime(&n).earliest() {
                return Ok(Some(local.fixed_offset()));
            }
        }
    }
    err(format!("Unable to parse scheduled timestamp ({t}). It should be in an unambiguous format (e.g. ISO 8601)"))
}

fn iso(t: &DateTime<FixedOffset>) -> String {
    palisade_model::values::format_timestamp(t)
}

// --- watching --------------------------------------------------------------

async fn watching<F, Fut>(w: &Watch, clear: bool, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let every = w.watch.or(if w.w { Some(2.0) } else { None });
    let clear_screen = || {
        if std::io::stdout().is_terminal() {
            print!("\x1b[2J\x1b[H");
        }
    };
    if every.is_some() && clear {
        clear_screen();
    }
    f().await?;
    let Some(secs) = every.filter(|s| *s > 0.0) else { return Ok(()) };
    loop {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        if clear {
            clear_screen();
        }
        f().await?;
    }
}

// --- list, history ---------------------------------------------------------

async fn list(ctx: &Ctx, names: Vec<String>, extended: bool, ts: bool, fmt: Format, w: &Watch) -> Result<()> {
    let names = if names.is_empty() {
        match ctx.config_scope() {
            Some(s) => vec![s.to_string()],
            None => {
                eprintln!("Listing members: No cluster names were provided");
                return Ok(());
            }
        }
    } else {
        names
    };
    watching(w, true, || async {
        if ts {
            println!("{}", timestamp(0));
        }
        for name in &names {
            let cluster = ctx.cluster(name).await?;
            print!("{}", colour_leader(&output_members(&cluster, name, extended, fmt)));
        }
        Ok(())
    })
    .await
}

/// On a terminal, the leader's row stands out.
fn colour_leader(text: &str) -> String {
    if !std::io::stdout().is_terminal() || std::env::var_os("NO_COLOR").is_some() {
        return text.to_string();
    }
    text.lines()
        .map(|l| {
            if l.contains("| Leader ") || l.contains("| Standby Leader ") {
                format!("\x1b[1;32m{l}\x1b[0m")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

async fn history(ctx: &Ctx, name: Option<String>, fmt: Format) -> Result<()> {
    let cluster = ctx.cluster(&ctx.scope(name.as_deref())?).await?;
    let mut rows: Vec<Vec<Value>> = match cluster.history.as_ref().map(|h| &h.raw) {
        Some(Value::Array(lines)) => lines.iter().filter_map(|l| l.as_array().cloned()).collect(),
        _ => Vec::new(),
    };
    for r in &mut rows {
        while r.len() < 5 {
            r.push(json!(""));
        }
    }
    let columns: Vec<String> =
        ["TL", "LSN", "Reason", "Timestamp", "New Leader"].iter().map(|s| s.to_string()).collect();
    print!("{}", table::render(&columns, &rows, &["TL", "LSN"], fmt, "", "\t"));
    Ok(())
}

// --- picking members -------------------------------------------------------

fn any_member(cluster: &Cluster, role: Option<CtlRole>, member: Option<&str>) -> Result<Option<Member>> {
    let role = match (role, member) {
        (Some(_), Some(_)) => return err("--role and --member are mutually exclusive options"),
        (_, Some(_)) => CtlRole::Any,
        (Some(r), None) => r,
        (None, None) => CtlRole::Leader,
    };
    Ok(all_members(cluster, role).into_iter().find(|m| member.is_none_or(|n| m.name == n)))
}

fn role_repr(role: CtlRole) -> &'static str {
    match role {
        CtlRole::Leader => "leader",
        CtlRole::Primary => "primary",
        CtlRole::StandbyLeader => "standby-leader",
        CtlRole::Replica => "replica",
        CtlRole::Standby => "standby",
        CtlRole::Any => "any",
    }
}

/// patronictl's `get_members`.
#[allow(clippy::too_many_arguments)]
fn get_members(
    cluster: &Cluster,
    name: &str,
    member_names: &[String],
    role: CtlRole,
    force: bool,
    action: &str,
    ask: bool,
) -> Result<Vec<Member>> {
    let members = all_members(cluster, role);
    let candidates: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    // patronictl's role always has a value here, so the table is always shown.
    if member_names.is_empty() && candidates.is_empty() {
        return err(format!("{name} cluster doesn't have any members"));
    }
    print!("{}", output_members(cluster, name, false, Format::Pretty));
    let mut names: Vec<String> = if member_names.is_empty() {
        if action == "reinitialize" {
            Vec::new()
        } else {
            candidates.clone()
        }
    } else {
        let picked: Vec<String> = member_names.iter().filter(|n| candidates.contains(n)).cloned().collect();
        if picked.is_empty() {
            // patronictl quotes a role given on the command line (a string)
            // but not the one reinit passes itself (its enum's repr).
            let shown =
                if action == "reinitialize" { role_repr(role).to_string() } else { format!("'{}'", role_repr(role)) };
            return err(format!("No {shown} among provided members"));
        }
        picked
    };
    if names.is_empty() && !force {
        names = vec![prompt(&format!("Which member do you want to {action} [{}]?", candidates.join(", ")), Some(""))?];
    }
    for n in &names {
        if !candidates.contains(n) {
            return err(format!("{n} is not a member of cluster"));
        }
    }
    let picked: Vec<Member> = members.into_iter().filter(|m| names.contains(&m.name)).collect();
    if ask {
        confirm_members_action(&picked, force, action, None, false)?;
    }
    Ok(picked)
}

fn confirm_members_action(
    members: &[Member],
    force: bool,
    action: &str,
    scheduled_at: Option<&DateTime<FixedOffset>>,
    pending: bool,
) -> Result<()> {
    if force {
        return Ok(());
    }
    let names = members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
    match scheduled_at {
        Some(at) => {
            let ok = if pending {
                confirm("The nodes needing a restart will be identified at the scheduled time, and might be different from the ones showing pending restart right now. Is this fine?")?
            } else {
                // Python's str() of the datetime: a space, not a `T`.
                let at = iso(at).replacen('T', " ", 1);
                confirm(&format!("Are you sure you want to schedule {action} of members {names} at {at}?"))?
            };
            if !ok {
                return err(format!("Aborted scheduled {action}"));
            }
        }
        None => {
            if !confirm(&format!("Are you sure you want to {action} members {names}?"))? {
                return err(format!("Aborted {action}"));
            }
        }
    }
    Ok(())
}

fn check_response(status: u16, body: &str, member: &str, action: &str, silent: bool) -> bool {
    if status >= 400 {
        println!("Failed: {action} for member {member}, status code={status}, ({body})");
        return false;
    }
    if !silent {
        println!("Success: {action} for member {member}");
    }
    true
}

// --- switchover, failover --------------------------------------------------

async fn failover_or_switchover(
    ctx: &Ctx,
    action: &str,
    name: &str,
    candidate: Option<String>,
    force: bool,
    leader: Option<String>,
    scheduled: Option<String>,
) -> Result<()> {
    let cluster = ctx.cluster(name).await?;
    println!("Current cluster topology");
    print!("{}", output_members(&cluster, name, false, Format::Pretty));
    let config = palisade_config::GlobalConfig::from_dynamic(cluster.config_data()).0;
    let cluster_leader = cluster.leader_name().map(String::from);
    let mut leader = leader;
    if action == "switchover" {
        let Some(current) = cluster_leader.clone() else { return err("This cluster has no leader") };
        if leader.is_none() {
            leader = Some(if force {
                current.clone()
            } else {
                prompt(if config.is_standby_cluster() { "Standby Leader" } else { "Primary" }, Some(&current))?
            });
        }
        if leader.as_deref() != Some(current.as_str()) {
            return err(format!("Member {} is not the leader of cluster {name}", leader.unwrap_or_default()));
        }
    }
    let mut candidates: Vec<String> = cluster
        .members
        .iter()
        .filter(|m| Some(&m.name) != cluster_leader.as_ref() && !m.nofailover())
        .map(|m| m.name.clone())
        .collect();
    candidates.sort();
    if candidates.is_empty() {
        return err(format!("No candidates found to {action} to"));
    }
    let mut candidate = candidate;
    if candidate.is_none() && !force {
        let quoted: Vec<String> = candidates.iter().map(|c| format!("'{c}'")).collect();
        candidate = Some(prompt(&format!("Candidate [{}]", quoted.join(", ")), Some(""))?).filter(|c| !c.is_empty());
    }
    if action == "failover" && candidate.is_none() {
        return err("Failover could be performed only to a specific candidate");
    }
    if let Some(c) = &candidate {
        if !candidates.contains(c) {
            if Some(c) == cluster_leader.as_ref() {
                return err(format!("Member {c} is already the leader of cluster {name}"));
            }
            return err(format!("Member {c} does not exist in cluster {name} or is tagged as nofailover"));
        }
        if !force
            && action == "failover"
            && config.is_synchronous_mode()
            && cluster.sync.leader.is_some()
            && !cluster.sync.matches(c, true)
            && !confirm(&format!("Are you sure you want to failover to the asynchronous node {c}?"))?
        {
            return err(format!("Aborting {action}"));
        }
    }
    let mut scheduled_at = None;
    if action == "switchover" {
        let mut scheduled = scheduled;
        if scheduled.is_none() && !force {
            let next_hour = (Local::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M").to_string();
            scheduled =
                Some(prompt(&format!("When should the switchover take place (e.g. {next_hour} ) "), Some("now"))?);
        }
        scheduled_at = parse_scheduled(scheduled.as_deref())?;
        if scheduled_at.is_some() && config.pause {
            return err("Can't schedule switchover in the paused state");
        }
    }
    let mut body = Map::new();
    body.insert("candidate".into(), candidate.clone().map_or(Value::Null, Value::String));
    if action == "switchover" {
        body.insert("leader".into(), json!(leader));
    }
    if let Some(at) = &scheduled_at {
        body.insert("scheduled_at".into(), json!(iso(at)));
    }
    if !force {
        let demote = cluster_leader.as_ref().map(|l| format!(", demoting current leader {l}")).unwrap_or_default();
        match &scheduled_at {
            Some(at) => {
                if !confirm(&format!(
                    "Are you sure you want to schedule switchover of cluster {name} at {}{demote}?",
                    iso(at)
                ))? {
                    return err(format!("Aborting scheduled {action}"));
                }
            }
            None => {
                if !confirm(&format!("Are you sure you want to {action} cluster {name}{demote}?"))? {
                    return err(format!("Aborting {action}"));
                }
            }
        }
    }
    let target = cluster.leader_member().or_else(|| candidate.as_deref().and_then(|c| cluster.member(c))).cloned();
    let sent = match &target {
        Some(m) => ctx.request(m, "post", action, Some(&Value::Object(body.clone()))).await,
        None => err("no member to send the request to"),
    };
    match sent {
        Ok((200 | 202, text)) => println!("{} {text}", timestamp(6)),
        Ok((status, text)) => {
            let result = if text.to_lowercase().contains("status unknown") { "result unknown" } else { "failed" };
            let mut t = action.chars();
            let title = t.next().map(|f| f.to_uppercase().collect::<String>() + t.as_str()).unwrap_or_default();
            println!("{title} {result}, details: {status}, {text}");
            return Ok(());
        }
        Err(e) => {
            eprintln!("{e}");
            println!("{} Could not {action} using Patroni api, falling back to DCS", timestamp(6));
            let value = Failover::to_json(leader.as_deref(), candidate.as_deref(), scheduled_at.as_ref());
            let dcs = ctx.dcs(name).await?;
            dcs.set_failover_value(value, None)
                .await
                .map_err(|e| CtlError(format!("cannot write the failover key: {e}")))?;
        }
    }
    let cluster = ctx.cluster(name).await?;
    print!("{}", output_members(&cluster, name, false, Format::Pretty));
    Ok(())
}

// --- restart, reload, reinit, flush ----------------------------------------

#[allow(clippy::too_many_arguments)]
async fn restart(
    ctx: &Ctx,
    name: &str,
    member_names: Vec<String>,
    role: CtlRole,
    p_any: bool,
    scheduled: Option<String>,
    pg_version: Option<String>,
    pending: bool,
    timeout: Option<String>,
    force: bool,
) -> Result<()> {
    let cluster = ctx.cluster(name).await?;
    let mut members = get_members(&cluster, name, &member_names, role, force, "restart", false)?;
    let mut scheduled = scheduled;
    if scheduled.is_none() && !force {
        let next_hour = (Local::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M").to_string();
        scheduled = Some(prompt(&format!("When should the restart take place (e.g. {next_hour}) "), Some("now"))?);
    }
    let scheduled_at = parse_scheduled(scheduled.as_deref())?;
    let mut content = Map::new();
    if pending {
        content.insert("restart_pending".into(), json!(true));
        if scheduled_at.is_none() {
            members.retain(|m| m.data.get("pending_restart").is_some_and(truthy));
        }
    }
    if p_any {
        // patronictl picks one at random; any one will do.
        let pick = (std::process::id() as usize) % members.len().max(1);
        members = members.into_iter().skip(pick).take(1).collect();
    }
    confirm_members_action(&members, force, "restart", scheduled_at.as_ref(), pending)?;
    let mut version = pg_version;
    if version.is_none() && !force {
        version = Some(prompt("Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ", Some(""))?);
    }
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        palisade_ha::postgres_version_to_int(&v).map_err(CtlError)?;
        content.insert("postgres_version".into(), json!(v));
    }
    if let Some(at) = &scheduled_at {
        if palisade_config::GlobalConfig::from_dynamic(cluster.config_data()).0.pause {
            return err("Can't schedule restart in the paused state");
        }
        content.insert("schedule".into(), json!(iso(at)));
    }
    if let Some(t) = timeout {
        content.insert("timeout".into(), json!(t));
    }
    let body = Value::Object(content);
    for m in &members {
        if body.get("schedule").is_some() && force && m.data.get("scheduled_restart").is_some() {
            let (status, text) = ctx.request(m, "delete", "restart", None).await?;
            check_response(status, &text, &m.name, "flush scheduled restart", true);
        }
        match ctx.request(m, "post", "restart", Some(&body)).await {
            Ok((200, _)) => println!("Success: restart on member {}", m.name),
            Ok((202, _)) => println!("Success: restart scheduled on member {}", m.name),
            Ok((409, _)) => println!("Failed: another restart is already scheduled on member {}", m.name),
            Ok((status, text)) => println!("Failed: restart for member {}, status code={status}, ({text})", m.name),
            Err(e) => println!("Failed: restart for member {}: {e}", m.name),
        }
    }
    Ok(())
}

async fn reload(ctx: &Ctx, name: &str, member_names: Vec<String>, role: CtlRole, force: bool) -> Result<()> {
    let cluster = ctx.cluster(name).await?;
    let members = get_members(&cluster, name, &member_names, role, force, "reload", true)?;
    let loop_wait = palisade_config::GlobalConfig::from_dynamic(cluster.config_data()).0.loop_wait.as_secs();
    for m in &members {
        match ctx.request(m, "post", "reload", None).await {
            Ok((200, _)) => println!("No changes to apply on member {}", m.name),
            Ok((202, _)) => println!(
                "Reload request received for member {} and will be processed within {loop_wait} seconds",
                m.name
            ),
            Ok((status, text)) => println!("Failed: reload for member {}, status code={status}, ({text})", m.name),
            Err(e) => println!("Failed: reload for member {}: {e}", m.name),
        }
    }
    Ok(())
}

async fn reinit(
    ctx: &Ctx,
    name: &str,
    member_names: Vec<String>,
    force: bool,
    from_leader: bool,
    wait: bool,
) -> Result<()> {
    let cluster = ctx.cluster(name).await?;
    let members = get_members(&cluster, name, &member_names, CtlRole::Replica, force, "reinitialize", true)?;
    let mut waiting = Vec::new();
    for m in &members {
        let mut body = json!({"force": force, "from_leader": from_leader});
        loop {
            let (status, text) = ctx.request(m, "post", "reinitialize", Some(&body)).await?;
            let started = check_response(status, &text, &m.name, "reinitialize", false);
            if !started
                && text.ends_with(" already in progress")
                && !force
                && confirm("Do you want to cancel it and reinitialize anyway?")?
            {
                body["force"] = json!(true);
                continue;
            }
            if started && wait {
                waiting.push(m.clone());
            }
            break;
        }
    }
    let mut shown: Vec<String> = Vec::new();
    while !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(|m| m.name.clone()).collect();
        if names != shown {
            println!("Waiting for reinitialize to complete on: {}", names.join(", "));
            shown = names;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut still = Vec::new();
        for m in waiting {
            let state = match ctx.request(&m, "get", "patroni", None).await {
                Ok((_, text)) => {
                    serde_json::from_str::<Value>(&text).ok().and_then(|v| v["state"].as_str().map(String::from))
                }
                Err(_) => None,
            };
            if state.as_deref() == Some("creating replica") || state.is_none() {
                still.push(m);
            } else {
                println!("Reinitialize is completed on: {}", m.name);
            }
        }
        waiting = still;
    }
    Ok(())
}

async fn flush(ctx: &Ctx, name: &str, mut rest: Vec<String>, role: CtlRole, force: bool) -> Result<()> {
    let target = rest.pop().unwrap_or_default();
    if target != "restart" && target != "switchover" {
        return err(format!("Invalid value for 'TARGET': '{target}' is not one of 'restart', 'switchover'."));
    }
    let cluster = ctx.cluster(name).await?;
    if target == "restart" {
        for m in get_members(&cluster, name, &rest, role, force, "flush", true)? {
            if m.data.get("scheduled_restart").is_some_and(truthy) {
                let (status, text) = ctx.request(&m, "delete", "restart", None).await?;
                check_response(status, &text, &m.name, "flush scheduled restart", false);
            } else {
                println!("No scheduled restart for member {}", m.name);
            }
        }
        return Ok(());
    }
    let Some(failover) = cluster.failover.as_ref().filter(|f| f.scheduled_at.is_some()) else {
        println!("No pending scheduled switchover");
        return Ok(());
    };
    for m in all_members_leader_first(&cluster) {
        match ctx.request(&m, "delete", "switchover", None).await {
            Ok((status @ (200 | 404), text)) => {
                println!("{}: {text}", if status == 200 { "Success" } else { "Failed" });
                return Ok(());
            }
            Ok((status, text)) => println!("Failed: member={}, status_code={status}, ({text})", m.name),
            Err(e) => eprintln!("Member {} is not accessible: {e}", m.name),
        }
    }
    println!("{} Could not find any accessible member of cluster {name}", timestamp(6));
    let dcs = ctx.dcs(name).await?;
    dcs.set_failover_value("{}".into(), Some(failover.version.clone()))
        .await
        .map_err(|e| CtlError(format!("cannot clear the failover key: {e}")))?;
    Ok(())
}

// --- pause, resume ---------------------------------------------------------

async fn toggle_pause(ctx: &Ctx, name: Option<String>, paused: bool, wait: bool) -> Result<()> {
    let name = ctx.scope(name.as_deref())?;
    let cluster = ctx.cluster(&name).await?;
    let config = palisade_config::GlobalConfig::from_dynamic(cluster.config_data()).0;
    if config.pause == paused {
        return err(format!("Cluster is {} paused", if paused { "already" } else { "not" }));
    }
    let body = json!({"pause": if paused { json!(true) } else { Value::Null }});
    let word = if paused { "paused" } else { "resumed" };
    for m in all_members_leader_first(&cluster) {
        match ctx.request(&m, "patch", "config", Some(&body)).await {
            Err(e) => {
                eprintln!("Member {} is not accessible: {e}", m.name);
                continue;
            }
            Ok((200, _)) => {
                if wait {
                    println!(
                        "'{}' request sent, waiting until it is recognized by all nodes",
                        if paused { "pause" } else { "resume" }
                    );
                    let loop_wait = config.loop_wait.as_secs();
                    let old: Vec<(String, String)> = cluster
                        .members
                        .iter()
                        .filter(|m| m.api_url().is_some())
                        .map(|m| (m.name.clone(), m.version.clone()))
                        .collect();
                    let deadline = Instant::now() + Duration::from_secs(loop_wait + 1);
                    let mut done = false;
                    let mut last = None;
                    while Instant::now() < deadline {
                        let c = ctx.cluster(&name).await?;
                        let ok = c
                            .members
                            .iter()
                            .filter(|m| old.iter().any(|(n, _)| *n == m.name))
                            .all(|m| m.data.get("pause").and_then(Value::as_bool).unwrap_or(false) == paused);
                        last = Some(c);
                        if ok {
                            done = true;
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    if !done {
                        if let Some(c) = last {
                            let remaining: Vec<String> = c
                                .members
                                .iter()
                                .filter(|m| {
                                    m.data.get("pause").and_then(Value::as_bool).unwrap_or(false) != paused
                                        && old.iter().any(|(n, v)| *n == m.name && *v != m.version)
                                })
                                .map(|m| m.name.clone())
                                .collect();
                            if !remaining.is_empty() {
                                println!(
                                    "{} members didn't recognized pause state after {loop_wait} seconds",
                                    remaining.join(", ")
                                );
                                return Ok(());
                            }
                        }
                    }
                }
                println!("Success: cluster management is {word}");
            }
            Ok((status, text)) => println!(
                "Failed: {} cluster management status code={status}, ({text})",
                if paused { "pause" } else { "resume" }
            ),
        }
        return Ok(());
    }
    err("Can not find accessible cluster member")
}

// --- edit-config -----------------------------------------------------------

fn set_path(config: &mut Map<String, Value>, path: &[String], value: &Value, prefix: &[String]) {
    let path: Vec<String> = if prefix == ["postgresql", "parameters"] { vec![path.join(".")] } else { path.to_vec() };
    let key = path[0].clone();
    if path.len() == 1 {
        if value.is_null() {
            config.remove(&key);
        } else {
            config.insert(key, value.clone());
        }
        return;
    }
    if !config.get(&key).is_some_and(Value::is_object) {
        config.insert(key.clone(), Value::Object(Map::new()));
    }
    let mut p = prefix.to_vec();
    p.push(key.clone());
    if let Some(Value::Object(inner)) = config.get_mut(&key) {
        set_path(inner, &path[1..], value, &p);
        if inner.is_empty() {
            config.remove(&key);
        }
    }
}

/// `--set key.path=value` pairs applied as patronictl applies them (the
/// value read as YAML; `null` removes the key).
pub fn apply_pairs(data: &Map<String, Value>, pairs: &[String]) -> Result<Map<String, Value>> {
    let mut out = data.clone();
    for pair in pairs {
        let Some((path, value)) = pair.split_once('=').filter(|_| !pair.is_empty()) else {
            return err(format!("Invalid parameter setting {pair}"));
        };
        let value = if value.trim().is_empty() {
            Value::Null
        } else {
            palisade_config::yaml::parse(value)
                .map_err(|e| CtlError(format!("Invalid parameter setting {pair}: {e}")))?
        };
        let keys: Vec<String> = path.trim().split('.').map(String::from).collect();
        set_path(&mut out, &keys, &value, &[]);
    }
    Ok(out)
}

fn read_yaml_file(name: &str) -> Result<Map<String, Value>> {
    let text = if name == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| CtlError(format!("stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(name).map_err(|e| CtlError(format!("{name}: {e}")))?
    };
    match palisade_config::yaml::parse(&text).map_err(|e| CtlError(format!("{name}: {e}")))? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => err(format!("{name}: the configuration must be a mapping")),
    }
}

/// Let the user edit `before` in `$EDITOR` (else `editor` or `vi`); the
/// edited text and what it parses to.
fn invoke_editor(before: &str, name: &str) -> Result<(String, Map<String, Value>)> {
    let editor = std::env::var("EDITOR").ok().filter(|e| !e.is_empty()).or_else(|| {
        ["editor", "vi"]
            .iter()
            .find(|e| std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(e).is_file())))
            .map(|e| e.to_string())
    });
    let Some(editor) = editor else {
        return err("EDITOR environment variable is not set. editor or vi are not available");
    };
    let path = edit_file(&format!("{}-config-", name.replace('/', "_")), before)?;
    let status = std::process::Command::new(&editor).arg(&path).status();
    let after = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => return err(format!("Editor exited with return code {}", s.code().unwrap_or(-1))),
        Err(e) => return err(format!("cannot run the editor {editor}: {e}")),
    }
    let after = after.map_err(|e| CtlError(format!("{}: {e}", path.display())))?;
    let data =
        match palisade_config::yaml::parse(&after).map_err(|e| CtlError(format!("the edited configuration: {e}")))? {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => return err("the edited configuration must be a mapping"),
        };
    Ok((after, data))
}

/// A new file `$TMPDIR/<prefix><random>.yaml` holding `text`, readable by
/// its owner only. It is created exclusively: palisadectl may run as root
/// in a shared /tmp, where a planted file or symlink must not be followed.
fn edit_file(prefix: &str, text: &str) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
    for _ in 0..100 {
        // xorshift: unpredictable enough together with O_EXCL.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let path = dir.join(format!("{prefix}{:08x}.yaml", seed as u32));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(mut f) => {
                f.write_all(text.as_bytes()).map_err(|e| CtlError(format!("{}: {e}", path.display())))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return err(format!("{}: {e}", path.display())),
        }
    }
    err(format!("cannot create a temporary file in {}", dir.display()))
}

fn show_diff(before: &str, after: &str) {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for line in diff::unified(before, after) {
        if colour && line.starts_with('+') && !line.starts_with("+++") {
            println!("\x1b[32m{line}\x1b[0m");
        } else if colour && line.starts_with('-') && !line.starts_with("---") {
            println!("\x1b[31m{line}\x1b[0m");
        } else if colour && line.starts_with("@@") {
            println!("\x1b[36m{line}\x1b[0m");
        } else {
            println!("{line}");
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn edit_config(
    ctx: &Ctx,
    name: Option<String>,
    force: bool,
    quiet: bool,
    kvpairs: Vec<String>,
    pgkvpairs: Vec<String>,
    apply: Option<String>,
    replace: Option<String>,
) -> Result<()> {
    let name = ctx.scope(name.as_deref())?;
    let cluster = ctx.cluster(&name).await?;
    let Some(config) = cluster.config.clone() else {
        return err(format!("The config key does not exist in the cluster {name}"));
    };
    let before = yaml::to_yaml(&Value::Object(config.data.clone()));
    let mut changed = config.data.clone();
    let mut edited = false;
    if let Some(f) = &replace {
        changed = read_yaml_file(f)?;
        edited = true;
    }
    if let Some(f) = &apply {
        let patch = read_yaml_file(f)?;
        palisade_config::patch_config(&mut changed, &patch);
        edited = true;
    }
    if !kvpairs.is_empty() || !pgkvpairs.is_empty() {
        let pairs: Vec<String> = kvpairs
            .into_iter()
            .chain(pgkvpairs.iter().map(|p| format!("postgresql.parameters.{}", p.trim_start())))
            .collect();
        changed = apply_pairs(&changed, &pairs)?;
        edited = true;
    }
    // The diff shows the text as edited (comments, order and all), as
    // patronictl shows it; options show the configuration they produce.
    let mut edited_text = None;
    if !edited {
        let (text, data) = invoke_editor(&before, &name)?;
        edited_text = Some(text);
        changed = data;
    }
    if changed == config.data {
        if !quiet {
            println!("Not changed");
        }
        return Ok(());
    }
    let problems = palisade_config::GlobalConfig::errors(&changed);
    let old_problems: Vec<String> =
        palisade_config::GlobalConfig::errors(&config.data).iter().map(ToString::to_string).collect();
    let fresh: Vec<String> = problems.iter().map(ToString::to_string).filter(|p| !old_problems.contains(p)).collect();
    if !fresh.is_empty() {
        return err(format!("invalid configuration: {}", fresh.join("; ")));
    }
    if !quiet {
        let after = edited_text.unwrap_or_else(|| yaml::to_yaml(&Value::Object(changed.clone())));
        show_diff(&before, &after);
    }
    if (apply.as_deref() == Some("-") || replace.as_deref() == Some("-")) && !force {
        println!("Use --force option to apply changes");
        return Ok(());
    }
    if force || confirm("Apply these changes?")? {
        let dcs = ctx.dcs(&name).await?;
        let ok = dcs
            .set_config_value(yaml::to_python_json_compact(&Value::Object(changed)), Some(config.version.clone()))
            .await
            .map_err(|e| CtlError(format!("cannot write the configuration: {e}")))?;
        if !ok {
            return err("Config modification aborted due to concurrent changes");
        }
        println!("Configuration changed");
    }
    Ok(())
}

// --- remove, query, version, cluster roles ---------------------------------

async fn remove(ctx: &Ctx, name: &str, fmt: Format) -> Result<()> {
    let cluster = ctx.cluster(name).await?;
    print!("{}", output_members(&cluster, name, false, fmt));
    if prompt("Please confirm the cluster name to remove", None)? != name {
        return err("Cluster names specified do not match");
    }
    let message = "Yes I am aware";
    if prompt(&format!("You are about to remove all information in DCS for {name}, please type: \"{message}\""), None)?
        != message
    {
        return err(format!("You did not exactly type \"{message}\""));
    }
    if let Some(leader) = cluster.leader_name() {
        if prompt("This cluster currently is healthy. Please specify the leader name to continue", None)? != leader {
            return err("You did not specify the current leader of the cluster");
        }
    }
    let dcs = ctx.dcs(name).await?;
    dcs.delete_cluster().await.map_err(|e| CtlError(format!("cannot remove the cluster: {e}")))?;
    Ok(())
}

struct QueryArgs {
    fmt: Format,
    file: Option<std::path::PathBuf>,
    password: bool,
    username: Option<String>,
    role: Option<CtlRole>,
    member: Option<String>,
    delimiter: String,
    command: Option<String>,
    dbname: Option<String>,
}

async fn query(ctx: &Ctx, name: Option<String>, q: QueryArgs, w: &Watch) -> Result<()> {
    let sql = match (&q.file, &q.command) {
        (Some(_), Some(_)) => return err("--file and --command are mutually exclusive options"),
        (Some(f), None) => std::fs::read_to_string(f).map_err(|e| CtlError(format!("{}: {e}", f.display())))?,
        (None, Some(c)) => c.clone(),
        (None, None) => return err("You need to specify either --command or --file"),
    };
    let password = if q.password { Some(read_password("Password: ")?) } else { std::env::var("PGPASSWORD").ok() };
    let name = ctx.scope(name.as_deref())?;
    let cluster = ctx.cluster(&name).await?;
    watching(w, false, || async {
        let (rows, header) = query_member(&cluster, &q, &sql, password.as_deref()).await?;
        let columns = header.unwrap_or_default();
        print!("{}", table::render(&columns, &rows, &[], q.fmt, "", &q.delimiter));
        Ok(())
    })
    .await
}

/// click's `prompt(hide_input=True)`: the answer is not echoed.
fn read_password(text: &str) -> Result<String> {
    print!("{text}");
    let _ = std::io::stdout().flush();
    let fd = libc::STDIN_FILENO;
    // SAFETY: a zeroed termios is a valid out-parameter for tcgetattr.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is stdin; `saved` is a valid termios to fill in.
    let is_tty = unsafe { libc::isatty(fd) == 1 && libc::tcgetattr(fd, &mut saved) == 0 };
    if is_tty {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: fd is stdin and `quiet` a termios read from it.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let line = read_line();
    if is_tty {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        println!();
    }
    line
}

/// Run `sql` on the member `q` names, as patronictl's `query_member`: the
/// rows and the header, or one row with the time and what went wrong.
/// psycopg2 returns the last statement's result and patronictl prints its
/// values as Python does; so do we.
async fn query_member(
    cluster: &Cluster,
    q: &QueryArgs,
    sql: &str,
    password: Option<&str>,
) -> Result<(Vec<Vec<Value>>, Option<Vec<String>>)> {
    let fail = |message: String| (vec![vec![json!(timestamp(0)), json!(message.replace('\n', " "))]], None);
    let no_connection = || {
        let message = match (&q.member, q.role) {
            (Some(m), _) => format!("No connection to member {m} is available"),
            (None, Some(r)) => format!("No connection to role '{}' is available", role_repr(r)),
            _ => "No connection is available".to_string(),
        };
        fail(message)
    };
    let Some(member) = any_member(cluster, q.role, q.member.as_deref())? else { return Ok(no_connection()) };
    let Some(url) = member.conn_url().and_then(palisade_model::member::parse_postgres_url) else {
        return Ok(no_connection());
    };
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&url.host).port(url.port).application_name("Patroni ctl").connect_timeout(Duration::from_secs(5));
    cfg.dbname(q.dbname.as_deref().unwrap_or(&url.dbname));
    let user = q.username.clone().or_else(|| std::env::var("PGUSER").ok()).unwrap_or_else(current_user);
    cfg.user(&user);
    if let Some(p) = password {
        cfg.password(p);
    }
    let client = match cfg.connect(tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client
        }
        Err(e) => return Ok(fail(format!("ERROR, SQLSTATE: {}", connect_error(&e, &url.host, url.port)))),
    };
    if matches!(q.role, Some(CtlRole::Replica | CtlRole::Standby | CtlRole::StandbyLeader | CtlRole::Primary)) {
        let in_recovery = client
            .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(true);
        let wanted_recovery = !matches!(q.role, Some(CtlRole::Primary));
        if in_recovery != wanted_recovery {
            return Ok(no_connection());
        }
    }
    // The column types, as psycopg2 learns them: a single statement is
    // prepared first (its errors are the statement's errors); in a script,
    // the last statement is prepared once the script has run, since it
    // may use what the others created.
    let statements = crate::sql::statements(sql);
    let column_types = |st: tokio_postgres::Statement| -> Vec<tokio_postgres::types::Type> {
        st.columns().iter().map(|c| c.type_().clone()).collect()
    };
    let mut types = None;
    if statements.len() == 1 {
        match client.prepare(sql).await {
            Ok(st) => types = Some(column_types(st)),
            Err(e) => return Ok(fail(format!("ERROR, SQLSTATE: {}", sqlstate(&e)))),
        }
    }
    match client.simple_query(sql).await {
        Ok(messages) => {
            let mut rows: Vec<Vec<Option<String>>> = Vec::new();
            let mut header: Option<Vec<String>> = None;
            for msg in messages {
                match msg {
                    tokio_postgres::SimpleQueryMessage::RowDescription(cols) => {
                        // A new result set: only the last one is shown.
                        header = Some(cols.iter().map(|c| c.name().to_string()).collect());
                        rows.clear();
                    }
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        if header.is_none() {
                            header = Some(r.columns().iter().map(|c| c.name().to_string()).collect());
                        }
                        rows.push((0..r.len()).map(|i| r.get(i).map(String::from)).collect());
                    }
                    _ => {}
                }
            }
            if let (None, Some(last), Some(_)) = (&types, statements.last().filter(|_| statements.len() > 1), &header) {
                types = client.prepare(last).await.ok().map(column_types);
            }
            let types = types.filter(|t| header.as_ref().is_some_and(|h| h.len() == t.len()));
            Ok((pyvalue::rows_from_text(&rows, types.as_deref()), header))
        }
        Err(e) => Ok(fail(format!("ERROR, SQLSTATE: {}", sqlstate(&e)))),
    }
}

/// libpq's words for a failed connection (psycopg2 gives no SQLSTATE for
/// it, so patronictl prints the message).
fn connect_error(e: &tokio_postgres::Error, host: &str, port: u16) -> String {
    use std::error::Error as _;
    let head = format!("connection to server at \"{host}\", port {port} failed: ");
    if let Some(db) = e.as_db_error() {
        return format!("{head}{}:  {} ", db.severity(), db.message());
    }
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => {
            format!("{head}Connection refused \tIs the server running on that host and accepting TCP/IP connections? ")
        }
        _ => format!("{head}{e} "),
    }
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map_or_else(|| e.to_string().replace('\n', " "), |c| c.code().to_string())
}

fn current_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        if uid == 0 {
            "root".into()
        } else {
            uid.to_string()
        }
    })
}

fn format_pg_version(v: i64) -> String {
    if v < 100_000 {
        format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
    } else {
        format!("{}.{}", v / 10000, v % 100)
    }
}

async fn version(ctx: &Ctx, name: Option<String>, member_names: Vec<String>) -> Result<()> {
    println!(
        "palisadectl version {} (patronictl {})",
        env!("CARGO_PKG_VERSION"),
        palisade_model::PATRONI_COMPAT_VERSION
    );
    let Some(name) = name else { return Ok(()) };
    println!();
    let cluster = ctx.cluster(&name).await?;
    for m in all_members(&cluster, CtlRole::Any) {
        if m.api_url().is_none() || (!member_names.is_empty() && !member_names.contains(&m.name)) {
            continue;
        }
        match ctx.request(&m, "get", "patroni", None).await {
            Ok((_, text)) => {
                let data: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let v = data["patroni"]["version"].as_str().unwrap_or("unknown");
                let pg = data["server_version"]
                    .as_i64()
                    .map(|v| format!(" PostgreSQL {}", format_pg_version(v)))
                    .unwrap_or_default();
                println!("{}: Patroni {v}{pg}", m.name);
            }
            Err(e) => println!("{}: failed to get version: {e}", m.name),
        }
    }
    Ok(())
}

async fn change_cluster_role(
    ctx: &Ctx,
    name: Option<String>,
    force: bool,
    standby: Option<Map<String, Value>>,
) -> Result<()> {
    let name = ctx.scope(name.as_deref())?;
    let demote = standby.is_some();
    let action = if demote { "demot" } else { "promot" };
    let target = if demote { "standby_leader" } else { "primary" };
    let cluster = ctx.cluster(&name).await?;
    let Some(leader) = cluster.leader_member().cloned() else {
        return err(format!("Cluster has no leader, {action}ion is not possible"));
    };
    if leader.role() == Some(target) {
        return err("Cluster is already in the required state");
    }
    println!("Current cluster topology");
    print!("{}", output_members(&cluster, &name, false, Format::Pretty));
    if !force && !confirm(&format!("Are you sure you want to {action}e {name} cluster?"))? {
        return err(format!("Aborted cluster {action}ion"));
    }
    let body = json!({"standby_cluster": standby.map_or(Value::Null, Value::Object)});
    match ctx.request(&leader, "patch", "config", Some(&body)).await {
        Ok((200, _)) => {}
        Ok((status, text)) => {
            return err(format!("Failed to {action}e {name} cluster: /config PATCH status code={status}, ({text})"))
        }
        Err(e) => return err(format!("Failed to {action}e {name} cluster: {e}")),
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let c = ctx.cluster(&name).await?;
        let now = Local::now().format("%Y-%m-%d %H:%M:%S");
        let role = c.leader_member().and_then(|m| m.role().map(String::from));
        let state = c.leader_member().map(|m| m.state().to_string());
        let old_state = c.member(&leader.name).map(|m| m.state().to_string());
        if !c.is_unlocked()
            && role.as_deref() == Some(target)
            && state.as_deref() == Some("running")
            && (!demote || old_state.as_deref() == Some("running"))
        {
            println!("{now} cluster is successfully {action}ed");
            print!("{}", output_members(&c, &name, false, Format::Pretty));
            return Ok(());
        }
        let mut parts = vec![
            format!("{now} cluster is unlocked: {}", if c.is_unlocked() { "True" } else { "False" }),
            format!("leader role: {}", role.unwrap_or_else(|| "None".into())),
            format!("leader state: {}", state.unwrap_or_else(|| "None".into())),
        ];
        if demote && c.leader_name() != Some(leader.name.as_str()) {
            if let Some(s) = old_state {
                parts.push(format!("previous leader state: '{s}'"));
            }
        }
        println!("{}", parts.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_pairs_as_patronictl() {
        let data = json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB"}}}).as_object().unwrap().clone();
        let cases = [
            (vec!["ttl=20"], json!({"ttl": 20, "postgresql": {"parameters": {"work_mem": "4MB"}}})),
            (vec!["postgresql.parameters.work_mem=null"], json!({"ttl": 30})),
            (
                vec!["postgresql.parameters.auto_explain.log_min_duration=100ms"],
                json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB", "auto_explain.log_min_duration": "100ms"}}}),
            ),
            (
                vec!["pause=true", "loop_wait=5"],
                json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB"}}, "pause": true, "loop_wait": 5}),
            ),
            (
                vec!["synchronous_mode=on"],
                json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB"}}, "synchronous_mode": true}),
            ),
        ];
        for (pairs, want) in cases {
            let pairs: Vec<String> = pairs.iter().map(|s| s.to_string()).collect();
            assert_eq!(Value::Object(apply_pairs(&data, &pairs).unwrap()), want, "{pairs:?}");
        }
        assert!(apply_pairs(&data, &["novalue".into()]).is_err());
    }

    #[test]
    fn timestamps_are_cut_as_patronictl_cuts_them() {
        let now = "2026-11-22 19:16:29.628261";
        assert_eq!(cut_timestamp(now, 6), "2026-11-22 19:16:29.62826");
        assert_eq!(cut_timestamp(now, 0), "2026-11-22 19:16:29");
        assert_eq!(cut_timestamp(now, 3), "2026-11-22 19:16:29.62");
    }

    #[test]
    fn scheduled_times() {
        assert_eq!(parse_scheduled(None).unwrap(), None);
        assert_eq!(parse_scheduled(Some("now")).unwrap(), None);
        assert_eq!(parse_scheduled(Some("")).unwrap(), None);
        let at = parse_scheduled(Some("2030-01-02T03:04:05+01:00")).unwrap().unwrap();
        assert_eq!(iso(&at), "2030-01-02T03:04:05+01:00");
        assert!(parse_scheduled(Some("2030-01-02T03:04")).unwrap().is_some());
        assert!(parse_scheduled(Some("soon")).is_err());
        assert_eq!(format_pg_version(150018), "15.18");
        assert_eq!(format_pg_version(90624), "9.6.24");
    }
}
