//! `pgbackrest info --output=json`: is there a backup to restore?
//!
//! The answer is a list of stanzas, each with a `status` (`code` 0 is
//! "ok"; 2 is "no valid backups"...) and its `backup` list, oldest first.
//! A backup is usable when pgBackRest does not mark it as `error` (a
//! checksum error found while copying) and, when a `set` is configured,
//! when it is that set.

use serde_json::Value;

/// The backup a restore will use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub label: String,
    /// `full`, `diff` or `incr`.
    pub kind: String,
    /// Size of the database the backup restores, in bytes, when reported.
    pub size: Option<u64>,
    /// When the backup finished (Unix seconds), when reported.
    pub stop: Option<i64>,
}

/// Pick the backup that `pgbackrest restore` will restore: the configured
/// set, or the newest usable one. The error says why there is none.
pub fn usable_backup(output: &str, stanza: &str, set: Option<&str>) -> Result<Backup, String> {
    let value: Value = serde_json::from_str(output.trim())
        .map_err(|e| format!("pgbackrest info did not answer with JSON ({e}): {}", first_line(output)))?;
    let stanzas =
        value.as_array().ok_or_else(|| "pgbackrest info did not answer with a list of stanzas".to_string())?;
    let entry = stanzas
        .iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(stanza))
        .ok_or_else(|| format!("pgbackrest info does not know stanza '{stanza}'"))?;
    let status_code = entry.pointer("/status/code").and_then(Value::as_i64);
    let status_message = entry.pointer("/status/message").and_then(Value::as_str).unwrap_or("no status");
    let backups: Vec<Backup> = entry
        .get("backup")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter(|b| b.get("error").and_then(Value::as_bool) != Some(true))
                .filter_map(|b| {
                    Some(Backup {
                        label: b.get("label")?.as_str()?.to_string(),
                        kind: b.get("type").and_then(Value::as_str).unwrap_or("?").to_string(),
                        size: b.pointer("/info/size").and_then(Value::as_u64),
                        stop: b.pointer("/timestamp/stop").and_then(Value::as_i64),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let found = match set {
        Some(set) => backups.into_iter().find(|b| b.label == set),
        None => backups.into_iter().next_back(),
    };
    match (found, set) {
        (Some(b), _) => Ok(b),
        (None, Some(set)) => {
            Err(format!("stanza '{stanza}' has no usable backup set '{set}' (status: {status_message})"))
        }
        (None, None) if status_code == Some(0) => Err(format!("stanza '{stanza}' has no usable backup")),
        (None, None) => Err(format!("stanza '{stanza}' has no usable backup (status: {status_message})")),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(nothing)")
}

/// `1.2 GiB`, `35.0 MiB`... for log lines.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn backup(label: &str, kind: &str, error: Option<bool>) -> Value {
        let mut b = json!({
            "label": label,
            "type": kind,
            "info": {"size": 23_000_000, "delta": 23_000_000},
            "timestamp": {"start": 1_765_000_000, "stop": 1_765_000_010},
        });
        if let Some(e) = error {
            b["error"] = json!(e);
        }
        b
    }

    fn info(stanza: &str, code: i64, message: &str, backups: Vec<Value>) -> String {
        json!([{"name": stanza, "status": {"code": code, "message": message}, "backup": backups}]).to_string()
    }

    #[test]
    fn the_newest_usable_backup_or_the_configured_set() {
        let out = info(
            "main",
            0,
            "ok",
            vec![
                backup("20261206-100000F", "full", Some(false)),
                backup("20261206-100000F_20261206-110000I", "incr", None),
                backup("20261206-100000F_20261206-120000I", "incr", Some(true)),
            ],
        );
        let b = usable_backup(&out, "main", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.label, "20261206-100000F_20261206-110000I", "the one marked error is skipped");
        assert_eq!((b.kind.as_str(), b.size, b.stop), ("incr", Some(23_000_000), Some(1_765_000_010)));
        let b = usable_backup(&out, "main", Some("20261206-100000F")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.label, "20261206-100000F");
    }

    #[test]
    fn why_there_is_nothing_to_restore() {
        let empty = info("main", 2, "no valid backups", vec![]);
        for (out, stanza, set, message) in [
            (empty.as_str(), "main", None, "stanza 'main' has no usable backup (status: no valid backups)"),
            (empty.as_str(), "other", None, "pgbackrest info does not know stanza 'other'"),
            (
                empty.as_str(),
                "main",
                Some("x"),
                "stanza 'main' has no usable backup set 'x' (status: no valid backups)",
            ),
            ("[]", "main", None, "pgbackrest info does not know stanza 'main'"),
            ("{}", "main", None, "did not answer with a list of stanzas"),
            ("ERROR: [055]: unable to load info file\n", "main", None, "did not answer with JSON"),
        ] {
            let err = usable_backup(out, stanza, set).err().unwrap_or_else(|| panic!("{out} accepted"));
            assert!(err.contains(message), "{out}: {err}");
        }
        let only_bad = info("main", 0, "ok", vec![backup("20261206-100000F", "full", Some(true))]);
        assert_eq!(usable_backup(&only_bad, "main", None).err().as_deref(), Some("stanza 'main' has no usable backup"));
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(23_000_000), "21.9 MiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
