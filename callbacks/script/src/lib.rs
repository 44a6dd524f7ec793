//! The script callback plugin: runs the `postgresql.callbacks` commands
//! (`on_start`, `on_stop`, `on_restart`, `on_reload`, `on_role_change`) as
//! `<command...> <action> <role> <scope>`, in the background, the way
//! Patroni's `CallbackExecutor` does: `on_event` returns at once, a callback
//! still running when the next one comes is killed (an `on_reload` only
//! kills an earlier `on_reload`; the other four kill each other), and every
//! child is waited for by a background thread so that none is left a
//! zombie.
//!
//! Like every plugin it is built against `palisade-plugin-api` only and must
//! never depend on a host crate.
#![allow(non_local_definitions)]

mod lane;
mod pylist;
// Shared with other plugin crates (see the file's header).

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_plugin_api::sdk::shlex;
use palisade_plugin_api::{Callback, CallbackEvent, PluginError, PluginParams, PluginResult};
use serde_json::Value;

use lane::Lane;

/// The actions Patroni calls callbacks for.
pub const ACTIONS: [&str; 5] = ["on_start", "on_stop", "on_restart", "on_reload", "on_role_change"];

fn unknown_action(action: &str) -> PluginError {
    PluginError::config(format!(
        "postgresql.callbacks.{action}: unknown callback action (known: {})",
        ACTIONS.join(", ")
    ))
}

/// Parse the `postgresql.callbacks` map into each action's words.
fn parse(config_json: &str) -> PluginResult<BTreeMap<String, Vec<String>>> {
    let mut commands = BTreeMap::new();
    if config_json.trim().is_empty() {
        return Ok(commands);
    }
    let value: Value = serde_json::from_str(config_json)
        .map_err(|e| PluginError::config(format!("postgresql.callbacks: not valid JSON: {e}")))?;
    let map = match value {
        Value::Null => return Ok(commands),
        Value::Object(map) => map,
        other => {
            return Err(PluginError::config(format!(
                "postgresql.callbacks: must be a map from action to command, found {other}"
            )))
        }
    };
    for (action, command) in map {
        if !ACTIONS.contains(&action.as_str()) {
            return Err(unknown_action(&action));
        }
        let Value::String(command) = command else {
            return Err(PluginError::config(format!(
                "postgresql.callbacks.{action}: the command must be a string, found {command}"
            )));
        };
        let words = shlex::split(&command).map_err(|e| {
            PluginError::config(format!("postgresql.callbacks.{action}: cannot split `{command}` into words: {e}"))
        })?;
        if words.is_empty() {
            return Err(PluginError::config(format!("postgresql.callbacks.{action}: the command is empty")));
        }
        commands.insert(action, words);
    }
    Ok(commands)
}

/// The configured callbacks and the two lanes they run in.
pub struct ScriptCallbacks {
    scope: String,
    commands: BTreeMap<String, Vec<String>>,
    /// on_start, on_stop, on_restart, on_role_change.
    main: Arc<Lane>,
    /// on_reload, which never kills (or is killed by) the others.
    reload: Arc<Lane>,
}

impl ScriptCallbacks {
    fn new(params: PluginParams) -> PluginResult<Self> {
        Ok(Self {
            scope: params.scope,
            commands: parse(&params.config_json)?,
            main: Lane::new("main"),
            reload: Lane::new("reload"),
        })
    }
}

impl Callback for ScriptCallbacks {
    fn on_event(&self, event: &CallbackEvent) -> PluginResult<()> {
        let action = event.action.as_str();
        if !ACTIONS.contains(&action) {
            return Err(unknown_action(action));
        }
        let Some(words) = self.commands.get(action) else {
            return Ok(());
        };
        let scope = if event.scope.is_empty() { &self.scope } else { &event.scope };
        let mut argv = words.clone();
        argv.extend([action.to_string(), event.role.clone(), scope.clone()]);
        tracing::debug!("calling callback {argv:?}");
        let lane = if action == "on_reload" { &self.reload } else { &self.main };
        lane.submit(argv)
    }
}

impl Drop for ScriptCallbacks {
    fn drop(&mut self) {
        self.main.close();
        self.reload.close();
    }
}

palisade_plugin_api::export_plugin!(callback, "script", ScriptCallbacks::new);

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_plugin_api::ErrorKind;
    use serde_json::json;

    #[test]
    fn parses_the_callbacks_map() {
        let c = parse(&json!({"on_start": "/bin/cb.sh --flag 'a b'", "on_role_change": "cb"}).to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.get("on_start").map(Vec::as_slice), Some(&["/bin/cb.sh", "--flag", "a b"].map(String::from)[..]));
        assert_eq!(c.len(), 2);
        assert!(parse("").unwrap_or_else(|e| panic!("{e}")).is_empty());
        assert!(parse("null").unwrap_or_else(|e| panic!("{e}")).is_empty());
        assert!(parse("{}").unwrap_or_else(|e| panic!("{e}")).is_empty());
    }

    #[test]
    fn refuses_bad_configuration_naming_the_key() {
        for (v, key) in [
            (json!({"on_promote": "x"}), "postgresql.callbacks.on_promote:"),
            (json!({"on_start": 5}), "postgresql.callbacks.on_start:"),
            (json!({"on_stop": null}), "postgresql.callbacks.on_stop:"),
            (json!({"on_stop": ["a"]}), "postgresql.callbacks.on_stop:"),
            (json!({"on_reload": ""}), "postgresql.callbacks.on_reload:"),
            (json!({"on_reload": "cb 'unclosed"}), "postgresql.callbacks.on_reload:"),
            (json!(["on_start"]), "postgresql.callbacks:"),
        ] {
            let err = parse(&v.to_string()).err().unwrap_or_else(|| panic!("{v} was accepted"));
            assert_eq!(err.kind, ErrorKind::Config);
            assert!(err.message.starts_with(key), "{v}: {}", err.message);
        }
    }

    #[test]
    fn unknown_and_unconfigured_actions() {
        let cb = ScriptCallbacks::new(PluginParams {
            scope: "demo".into(),
            name: "n1".into(),
            config_json: json!({"on_start": "/nonexistent/cb"}).to_string(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let event = |action: &str| CallbackEvent {
            action: action.into(),
            role: "primary".into(),
            scope: "demo".into(),
            name: "n1".into(),
        };
        let err = cb.on_event(&event("on_promote")).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message.starts_with("postgresql.callbacks.on_promote:"), "{}", err.message);
        assert_eq!(cb.on_event(&event("on_stop")), Ok(()), "an action without a command is a no-op");
    }
}
