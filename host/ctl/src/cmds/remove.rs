//! `remove`: delete a cluster's keys from the DCS, after three confirmations.

use super::ui::prompt;
use crate::ctx::{err, CtlError, Ctx, Result};
use crate::members::output_members;
use crate::table::Format;

pub(super) async fn remove(ctx: &Ctx, name: &str, fmt: Format) -> Result<()> {
    let clusters = ctx.clusters(name).await?;
    if clusters.all_groups() {
        return err("For Citus clusters the --group must me specified");
    }
    print!("{}", output_members(&clusters, name, false, fmt));
    let cluster = clusters.main();
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
