//! `history`: the timeline history key as a table.

use serde_json::{json, Value};

use crate::ctx::{Ctx, Result};
use crate::table::{self, Format};

pub(super) async fn history(ctx: &Ctx, name: Option<String>, fmt: Format) -> Result<()> {
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
