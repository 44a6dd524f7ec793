//! `postgresql.hooks`, a Palisade extension: for each callback event
//! (`on_start`, `on_stop`, `on_restart`, `on_reload`, `on_role_change`) an
//! ordered list of commands that run one after the other, each waited for
//! up to its timeout, their failures logged with their output. Unlike
//! Patroni's `postgresql.callbacks`, a hook is never killed by the next
//! event (Patroni's issue #1567).
//!
//! ```yaml
//! postgresql:
//!   hooks:
//!     on_role_change:
//!       - command: /usr/local/bin/move-vip.sh --interface eth0
//!         timeout: 10
//!       - /usr/local/bin/update-dns.sh      # the default timeout, 30 s
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::check::{Checker, Sec};

/// The events hooks run for: the callback actions.
pub const HOOK_EVENTS: [&str; 5] = ["on_start", "on_stop", "on_restart", "on_reload", "on_role_change"];

/// How long a hook may run when its `timeout` is not given.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// One hook: the command's words (the event's `<action> <role> <scope>`
/// are appended) and how long it may run before it is killed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// The command as written, for log lines.
    pub command: String,
    pub argv: Vec<String>,
    pub timeout: Duration,
}

/// Read `postgresql.hooks` (every problem recorded with its key path).
pub(crate) fn hooks(ck: &mut Checker, pg: &Sec) -> BTreeMap<String, Vec<Hook>> {
    let mut out = BTreeMap::new();
    let sec = ck.section(pg, "hooks", false);
    let Some(map) = sec.map else { return out };
    for (event, list) in map {
        let path = sec.path(event);
        if !HOOK_EVENTS.contains(&event.as_str()) {
            ck.error(&path, format!("unknown event; hooks run for {}", HOOK_EVENTS.join(", ")));
            continue;
        }
        let Value::Array(items) = list else {
            ck.expected(&path, "a list of hooks", list);
            continue;
        };
        let mut hooks = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(h) = hook(ck, item, &format!("{path}.{i}")) {
                hooks.push(h);
            }
        }
        out.insert(event.clone(), hooks);
    }
    out
}

fn hook(ck: &mut Checker, item: &Value, path: &str) -> Option<Hook> {
    let (command, timeout) = match item {
        Value::String(command) => (command.clone(), DEFAULT_HOOK_TIMEOUT),
        Value::Object(m) => {
            let sec = Sec { map: Some(m), prefix: path.to_string() };
            for key in m.keys().filter(|k| !matches!(k.as_str(), "command" | "timeout")) {
                ck.error(sec.path(key), "unknown key; a hook has `command` and `timeout`");
            }
            let command = ck.req_string(&sec, "command")?;
            let timeout = match sec.get("timeout") {
                None => DEFAULT_HOOK_TIMEOUT,
                Some(_) => Duration::from_secs(ck.int(&sec, "timeout", 1..=86_400, Some("s"))?.unsigned_abs()),
            };
            (command, timeout)
        }
        other => {
            ck.expected(path, "a command or a mapping with `command` and `timeout`", other);
            return None;
        }
    };
    let command_path = if item.is_string() { path.to_string() } else { format!("{path}.command") };
    match palisade_pycompat::shlex::split(&command) {
        Ok(argv) if !argv.is_empty() => Some(Hook { command, argv, timeout }),
        Ok(_) => {
            ck.error(command_path, "the command is empty");
            None
        }
        Err(e) => {
            ck.error(command_path, format!("cannot split `{command}` into words: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> (BTreeMap<String, Vec<Hook>>, Vec<String>) {
        let root = json!({ "hooks": v });
        let mut ck = Checker::default();
        let map = root.as_object().cloned().unwrap_or_default();
        let sec = Sec { map: Some(&map), prefix: "postgresql".into() };
        let out = hooks(&mut ck, &sec);
        (out, ck.errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn reads_ordered_lists_with_timeouts() {
        let (h, errors) = read(json!({
            "on_role_change": [{"command": "/bin/vip.sh 'eth 0'", "timeout": 10}, "/bin/dns.sh"],
            "on_stop": [],
        }));
        assert!(errors.is_empty(), "{errors:?}");
        let rc = &h["on_role_change"];
        assert_eq!(rc.len(), 2);
        assert_eq!(rc[0].argv, ["/bin/vip.sh", "eth 0"]);
        assert_eq!(rc[0].timeout, Duration::from_secs(10));
        assert_eq!(rc[1].argv, ["/bin/dns.sh"]);
        assert_eq!(rc[1].timeout, DEFAULT_HOOK_TIMEOUT);
        assert!(h["on_stop"].is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        for (v, want) in [
            (json!({"on_promote": ["x"]}), "postgresql.hooks.on_promote"),
            (json!({"on_start": "x"}), "postgresql.hooks.on_start"),
            (json!({"on_start": [5]}), "postgresql.hooks.on_start.0"),
            (json!({"on_start": [{"timeout": 5}]}), "postgresql.hooks.on_start.0.command"),
            (json!({"on_start": [{"command": "x", "timeout": 0}]}), "postgresql.hooks.on_start.0.timeout"),
            (json!({"on_start": [{"command": "x", "timeout": "soon"}]}), "postgresql.hooks.on_start.0.timeout"),
            (json!({"on_start": [{"command": "x", "wait": 1}]}), "postgresql.hooks.on_start.0.wait"),
            (json!({"on_start": ["ok", "'open"]}), "postgresql.hooks.on_start.1"),
            (json!({"on_stop": [{"command": "  "}]}), "postgresql.hooks.on_stop.0.command"),
            (json!(["on_start"]), "postgresql.hooks"),
        ] {
            let (_, errors) = read(v.clone());
            assert!(errors.iter().any(|e| e.starts_with(want)), "{v}: {errors:?}");
        }
    }
}
