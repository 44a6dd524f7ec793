//! `list` and `topology`: the member table of one or more clusters.

use std::io::IsTerminal;

use super::ui::{timestamp, watching};
use crate::ctx::{Ctx, Result};
use crate::members::output_members;
use crate::table::Format;
use crate::Watch;

pub(super) async fn list(
    ctx: &Ctx,
    names: Vec<String>,
    extended: bool,
    ts: bool,
    fmt: Format,
    w: &Watch,
) -> Result<()> {
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
            let clusters = ctx.clusters(name).await?;
            print!("{}", colour_leader(&output_members(&clusters, name, extended, fmt)));
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
