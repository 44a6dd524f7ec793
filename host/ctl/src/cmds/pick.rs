//! Picking the members a command acts on, as patronictl's `get_members`
//! and `get_any_member` do, and the confirmations and answers around it.

use chrono::{DateTime, FixedOffset};
use palisade_model::Member;

use super::ui::{confirm, iso, prompt};
use crate::ctx::{err, Result};
use crate::members::{all_members, output_members, Clusters};
use crate::table::Format;
use crate::CtlRole;

/// Across every group read (patronictl's `get_any_member`).
pub(super) fn any_member(clusters: &Clusters, role: Option<CtlRole>, member: Option<&str>) -> Result<Option<Member>> {
    let role = match (role, member) {
        (Some(_), Some(_)) => return err("--role and --member are mutually exclusive options"),
        (_, Some(_)) => CtlRole::Any,
        (Some(r), None) => r,
        (None, None) => CtlRole::Leader,
    };
    Ok(all_members(clusters, role).into_iter().find(|m| member.is_none_or(|n| m.name == n)))
}

pub(super) fn role_repr(role: CtlRole) -> &'static str {
    match role {
        CtlRole::Leader => "leader",
        CtlRole::Primary => "primary",
        CtlRole::StandbyLeader => "standby-leader",
        CtlRole::Replica => "replica",
        CtlRole::Standby => "standby",
        CtlRole::Any => "any",
    }
}

/// patronictl's `get_members`, across every group read.
#[allow(clippy::too_many_arguments)]
pub(super) fn get_members(
    clusters: &Clusters,
    name: &str,
    member_names: &[String],
    role: CtlRole,
    force: bool,
    action: &str,
    ask: bool,
) -> Result<Vec<Member>> {
    let members = all_members(clusters, role);
    let candidates: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    // patronictl's role always has a value here, so the table is always shown.
    if member_names.is_empty() && candidates.is_empty() {
        return err(format!("{name} cluster doesn't have any members"));
    }
    print!("{}", output_members(clusters, name, false, Format::Pretty));
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

pub(super) fn confirm_members_action(
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

pub(super) fn check_response(status: u16, body: &str, member: &str, action: &str, silent: bool) -> bool {
    if status >= 400 {
        println!("Failed: {action} for member {member}, status code={status}, ({body})");
        return false;
    }
    if !silent {
        println!("Success: {action} for member {member}");
    }
    true
}
