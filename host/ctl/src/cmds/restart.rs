//! `restart`, `reload` and `reinit`: REST calls to the chosen members.

use std::time::Duration;

use chrono::Local;
use serde_json::{json, Map, Value};

use super::pick::{check_response, confirm_members_action, get_members};
use super::ui::{confirm, iso, parse_scheduled, prompt};
use crate::ctx::{err, CtlError, Ctx, Result};
use crate::members::truthy;
use crate::CtlRole;

#[allow(clippy::too_many_arguments)]
pub(super) async fn restart(
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
    let clusters = ctx.clusters(name).await?;
    let cluster = clusters.main();
    let mut members = get_members(&clusters, name, &member_names, role, force, "restart", false)?;
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

pub(super) async fn reload(ctx: &Ctx, name: &str, member_names: Vec<String>, role: CtlRole, force: bool) -> Result<()> {
    let clusters = ctx.clusters(name).await?;
    let cluster = clusters.main();
    let members = get_members(&clusters, name, &member_names, role, force, "reload", true)?;
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

pub(super) async fn reinit(
    ctx: &Ctx,
    name: &str,
    member_names: Vec<String>,
    force: bool,
    from_leader: bool,
    wait: bool,
) -> Result<()> {
    let clusters = ctx.clusters(name).await?;
    let members = get_members(&clusters, name, &member_names, CtlRole::Replica, force, "reinitialize", true)?;
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
