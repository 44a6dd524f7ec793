//! `version`: palisadectl's version and, with a cluster, each member's.

use serde_json::Value;

use crate::ctx::{Ctx, Result};
use crate::members::all_members;
use crate::CtlRole;

fn format_pg_version(v: i64) -> String {
    if v < 100_000 {
        format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
    } else {
        format!("{}.{}", v / 10000, v % 100)
    }
}

pub(super) async fn version(ctx: &Ctx, name: Option<String>, member_names: Vec<String>) -> Result<()> {
    println!(
        "palisadectl version {} (patronictl {})",
        env!("CARGO_PKG_VERSION"),
        palisade_model::PATRONI_COMPAT_VERSION
    );
    let Some(name) = name else { return Ok(()) };
    println!();
    let cluster = ctx.clusters(&name).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_versions_as_patronictl_prints_them() {
        assert_eq!(format_pg_version(150018), "15.18");
        assert_eq!(format_pg_version(90624), "9.6.24");
    }
}
