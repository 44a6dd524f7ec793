//! `flush`: cancel a scheduled restart or switchover.

use super::pick::{check_response, get_members};
use super::ui::timestamp;
use crate::ctx::{err, CtlError, Ctx, Result};
use crate::members::{all_members_leader_first, truthy};
use crate::CtlRole;

pub(super) async fn flush(ctx: &Ctx, name: &str, mut rest: Vec<String>, role: CtlRole, force: bool) -> Result<()> {
    let target = rest.pop().unwrap_or_default();
    if target != "restart" && target != "switchover" {
        return err(format!("Invalid value for 'TARGET': '{target}' is not one of 'restart', 'switchover'."));
    }
    let clusters = ctx.clusters(name).await?;
    let cluster = clusters.main();
    if target == "restart" {
        for m in get_members(&clusters, name, &rest, role, force, "flush", true)? {
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
    for m in all_members_leader_first(cluster) {
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
