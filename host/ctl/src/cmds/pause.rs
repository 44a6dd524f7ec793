//! `pause` and `resume`: maintenance mode, through the leader's REST API.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::ctx::{err, Ctx, Result};
use crate::members::all_members_leader_first;

pub(super) async fn toggle_pause(ctx: &Ctx, name: Option<String>, paused: bool, wait: bool) -> Result<()> {
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
