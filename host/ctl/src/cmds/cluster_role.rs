//! `demote-cluster` and `promote-cluster`: turn a cluster into a standby
//! cluster and back, through the leader's `PATCH /config`.

use std::time::Duration;

use chrono::Local;
use serde_json::{json, Map, Value};

use super::ui::confirm;
use crate::ctx::{err, Ctx, Result};
use crate::members::output_members;
use crate::table::Format;

/// `demote-cluster`'s options: where the standby cluster follows from.
pub(super) struct StandbyArgs {
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) restore_command: Option<String>,
    pub(super) primary_slot_name: Option<String>,
}

pub(super) async fn demote_cluster(ctx: &Ctx, name: Option<String>, force: bool, a: StandbyArgs) -> Result<()> {
    if a.host.is_none() && a.port.is_none() && a.restore_command.is_none() {
        return err("At least --host, --port or --restore-command should be specified");
    }
    let mut data = Map::new();
    if let Some(h) = a.host {
        data.insert("host".into(), json!(h));
    }
    if let Some(p) = a.port {
        data.insert("port".into(), json!(p));
    }
    if let Some(s) = a.primary_slot_name {
        data.insert("primary_slot_name".into(), json!(s));
    }
    if let Some(r) = a.restore_command {
        data.insert("restore_command".into(), json!(r));
    }
    change_cluster_role(ctx, name, force, Some(data)).await
}

pub(super) async fn change_cluster_role(
    ctx: &Ctx,
    name: Option<String>,
    force: bool,
    standby: Option<Map<String, Value>>,
) -> Result<()> {
    let name = ctx.scope(name.as_deref())?;
    let demote = standby.is_some();
    let action = if demote { "demot" } else { "promot" };
    let target = if demote { "standby_leader" } else { "primary" };
    let clusters = ctx.clusters(&name).await?;
    let cluster = clusters.main();
    let Some(leader) = cluster.leader_member().cloned() else {
        return err(format!("Cluster has no leader, {action}ion is not possible"));
    };
    if leader.role() == Some(target) {
        return err("Cluster is already in the required state");
    }
    println!("Current cluster topology");
    print!("{}", output_members(&clusters, &name, false, Format::Pretty));
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
        let all = ctx.clusters(&name).await?;
        let c = all.main();
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
            print!("{}", output_members(&all, &name, false, Format::Pretty));
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
