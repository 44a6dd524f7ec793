//! The Exhibitor DCS plugin: Patroni's `exhibitor` store, as a `cdylib`.
//! It is the ZooKeeper store of `palisade-zookeeper-core` whose servers
//! come from Exhibitor: [`discovery`] polls `/exhibitor/v1/cluster/list` on
//! the configured `hosts` and `port` every `poll_interval`, and the core
//! moves the session onto the new servers when the list changes.
//!
//! This crate depends on `palisade-plugin-api` and `palisade-zookeeper-core`
//! only, never on a host crate.
#![allow(non_local_definitions)]

mod discovery;
mod http;

use std::sync::Arc;
use std::time::Duration;

use palisade_plugin_api::sdk::settings::{error, kind};
use palisade_plugin_api::{DcsParams, PluginError, PluginResult};
use palisade_zookeeper_core::{Settings, ZooKeeper};
use serde_json::Value;

use crate::discovery::Discovery;

const SECTION: &str = "exhibitor";

/// Patroni's default `poll_interval`.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(300);

/// The Exhibitor keys of the section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExhibitorSettings {
    pub hosts: Vec<String>,
    pub port: u16,
    pub poll_interval: Duration,
}

pub(crate) fn parse(section: &Value) -> Result<ExhibitorSettings, PluginError> {
    let Value::Object(map) = section else {
        return Err(error(SECTION, "", format!("must be a map, found {}", kind(section))));
    };
    let hosts = match map.get("hosts") {
        None => return Err(error(SECTION, "hosts", "is required")),
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from).collect(),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
                    other => {
                        return Err(error(
                            SECTION,
                            &format!("hosts.{i}"),
                            format!("must be a host name, found {}", kind(other)),
                        ))
                    }
                }
            }
            out
        }
        Some(other) => {
            return Err(error(SECTION, "hosts", format!("must be a list of host names, found {}", kind(other))))
        }
    };
    if hosts.is_empty() {
        return Err(error(SECTION, "hosts", "names no host"));
    }
    let port = match map.get("port") {
        None => return Err(error(SECTION, "port", "is required")),
        Some(v) => match number(v) {
            Some(p) if (1..=65535).contains(&p) => p as u16,
            _ => return Err(error(SECTION, "port", format!("must be a port number, found {v}"))),
        },
    };
    let poll_interval = match map.get("poll_interval") {
        None | Some(Value::Null) => DEFAULT_POLL_INTERVAL,
        Some(v) => match number(v) {
            Some(s) if s >= 1 => Duration::from_secs(s as u64),
            _ => {
                return Err(error(
                    SECTION,
                    "poll_interval",
                    format!("must be a number of seconds (at least 1), found {v}"),
                ))
            }
        },
    };
    Ok(ExhibitorSettings { hosts, port, poll_interval })
}

/// An integer, also written as a string (environment variables).
fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn new(params: DcsParams) -> PluginResult<ZooKeeper> {
    let section: Value = serde_json::from_str(&params.section_json)
        .map_err(|e| error(SECTION, "", format!("is not valid JSON: {e}")))?;
    let exhibitor = parse(&section)?;
    // The ZooKeeper keys (TLS, ACLs, auth_data) apply as in `zookeeper:`.
    let settings = Settings::parse(SECTION, &section, false)?;
    let discovery = Discovery::start(exhibitor, params.timing.retry_timeout);
    ZooKeeper::new(SECTION, &params, settings, Arc::new(discovery))
}

palisade_plugin_api::export_plugin!(dcs, "exhibitor", new);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn section() {
        let s = parse(&json!({"hosts": ["e1", "e2"], "port": 8181})).expect("valid");
        assert_eq!(
            s,
            ExhibitorSettings {
                hosts: vec!["e1".into(), "e2".into()],
                port: 8181,
                poll_interval: DEFAULT_POLL_INTERVAL
            }
        );
        let s = parse(&json!({"hosts": "e1, e2", "port": "8181", "poll_interval": 10})).expect("valid");
        assert_eq!((s.hosts.len(), s.port, s.poll_interval), (2, 8181, Duration::from_secs(10)));
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(Value, &str)] = &[
            (json!({"port": 8181}), "exhibitor.hosts: is required"),
            (json!({"hosts": [], "port": 8181}), "exhibitor.hosts: names no host"),
            (json!({"hosts": [1], "port": 8181}), "exhibitor.hosts.0: must be a host name"),
            (json!({"hosts": ["e1"]}), "exhibitor.port: is required"),
            (json!({"hosts": ["e1"], "port": 0}), "exhibitor.port: must be a port number"),
            (json!({"hosts": ["e1"], "port": 1, "poll_interval": 0}), "exhibitor.poll_interval: must be"),
            (json!("x"), "exhibitor: must be a map"),
        ];
        for (v, want) in cases {
            let e = parse(v).expect_err(&v.to_string());
            assert!(e.message.starts_with(want), "{v}: {}", e.message);
        }
    }
}
