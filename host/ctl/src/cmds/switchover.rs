//! `switchover` and `failover`: through the leader's REST API, else (as
//! patronictl falls back) by writing the `failover` key.

use chrono::Local;
use palisade_model::Failover;
use serde_json::{json, Map, Value};

use super::ui::{confirm, iso, parse_scheduled, prompt, timestamp};
use crate::ctx::{err, CtlError, Ctx, Result};
use crate::members::output_members;
use crate::table::Format;

pub(super) async fn failover_or_switchover(
    ctx: &Ctx,
    action: &str,
    name: &str,
    candidate: Option<String>,
    force: bool,
    leader: Option<String>,
    scheduled: Option<String>,
) -> Result<()> {
    let clusters = ctx.clusters(name).await?;
    println!("Current cluster topology");
    print!("{}", output_members(&clusters, name, false, Format::Pretty));
    // On a Citus cluster the action is within one group: --group, or asked for.
    let mut group = ctx.group();
    let clusters = if clusters.all_groups() {
        if force {
            return err("For Citus clusters the --group must me specified");
        }
        let g = ask_group()?;
        group = Some(g);
        ctx.clusters_in(name, group).await?
    } else {
        clusters
    };
    let cluster = clusters.main().clone();
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
            let dcs = ctx.dcs_in(name, group).await?;
            dcs.set_failover_value(value, None)
                .await
                .map_err(|e| CtlError(format!("cannot write the failover key: {e}")))?;
        }
    }
    let clusters = ctx.clusters_in(name, group).await?;
    print!("{}", output_members(&clusters, name, false, Format::Pretty));
    Ok(())
}

/// click's `prompt('Citus group', type=int)`: asked again until the answer
/// is an integer.
fn ask_group() -> Result<i32> {
    loop {
        let answer = prompt("Citus group", None)?;
        match palisade_pycompat::py::strip(&answer).parse::<i32>() {
            Ok(g) => return Ok(g),
            Err(_) => println!("Error: '{answer}' is not a valid integer."),
        }
    }
}
