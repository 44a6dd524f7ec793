//! The `kubernetes:` section, read the way Patroni 4.1 reads it, plus the
//! Palisade extension `leader_lease`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use palisade_plugin_api::sdk::pycompat::patroni::parse_int;
use palisade_plugin_api::sdk::pycompat::py::truthy;
use palisade_plugin_api::sdk::settings::{error, kind};
use palisade_plugin_api::{PluginError, PluginResult};
use serde_json::{Map, Value};

const SEC: &str = "kubernetes";

/// Patroni retries these status codes when `retriable_http_codes` adds
/// nothing (plus any answer carrying Retry-After, which is a 429).
pub(crate) const DEFAULT_RETRIABLE: [u16; 4] = [429, 500, 503, 504];

/// A port of the leader Endpoints' subset (`ports`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Port {
    pub name: Option<String>,
    pub port: i32,
    pub protocol: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Settings {
    pub namespace: String,
    /// `labels` plus `<scope_label>: <scope>` (plus the Citus group label):
    /// set on every object we create, and the selector of every list.
    pub labels: BTreeMap<String, String>,
    /// The selector of every Citus group of the scope: `labels` without the
    /// group label (Patroni's `_label_selector`, made before it adds it).
    pub scope_selector: String,
    pub role_label: String,
    pub leader_label_value: String,
    pub follower_label_value: String,
    pub standby_leader_label_value: String,
    pub tmp_role_label: Option<String>,
    pub bootstrap_labels: BTreeMap<String, String>,
    pub use_endpoints: bool,
    pub bypass_api_service: bool,
    /// `pod_ip`; empty means "the IP of our Pod" (Patroni's `['']`).
    pub pod_ip: String,
    pub ports: Vec<Port>,
    pub retriable_http_codes: Vec<u16>,
    /// `cacert`, or `PATRONI_KUBERNETES_CACERT` (which wins, as in Patroni).
    pub cacert: Option<PathBuf>,
    /// The kubeconfig context (`context`); `None`: Patroni's `kind-kind`
    /// when the kubeconfig has it, else its current context.
    pub context: Option<String>,
    /// Palisade extension: the kubeconfig file to use (default: the
    /// in-cluster configuration, else `KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// Palisade extension: the leader lock is a coordination.k8s.io/v1 Lease.
    pub leader_lease: bool,
}

fn err(key: &str, what: impl std::fmt::Display) -> PluginError {
    error(SEC, key, what)
}

fn string(map: &Map<String, Value>, key: &str) -> PluginResult<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(err(key, format!("expected a string, found {}", kind(other)))),
    }
}

fn nonempty(map: &Map<String, Value>, key: &str) -> PluginResult<Option<String>> {
    Ok(string(map, key)?.filter(|s| !s.is_empty()))
}

/// Patroni reads its switches with Python's `bool()` (the host warns
/// about strings that read otherwise than they spell).
fn boolean(map: &Map<String, Value>, key: &str) -> PluginResult<bool> {
    Ok(map.get(key).is_some_and(truthy))
}

/// A label map: keys and values as strings (Patroni applies `str()`).
fn labels(map: &Map<String, Value>, key: &str) -> PluginResult<BTreeMap<String, String>> {
    let value = match map.get(key) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim_start().starts_with('{') => {
            // PATRONI_KUBERNETES_LABELS arrives as a YAML/JSON mapping text.
            serde_json::from_str::<Value>(s).map_err(|e| err(key, format!("expected a mapping: {e}")))?
        }
        Some(v) => v.clone(),
    };
    let Value::Object(m) = value else {
        return Err(err(key, format!("expected a mapping, found {}", kind(&value))));
    };
    m.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                Value::Bool(b) => if b { "True" } else { "False" }.to_string(),
                Value::Number(n) => n.to_string(),
                other => return Err(err(&format!("{key}.{k}"), format!("expected a string, found {}", kind(&other)))),
            };
            Ok((k, v))
        })
        .collect()
}

fn ports(map: &Map<String, Value>) -> PluginResult<Vec<Port>> {
    let items = match map.get("ports") {
        None | Some(Value::Null) => return Ok(vec![Port { name: None, port: 5432, protocol: None }]),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(err("ports", format!("expected a list, found {}", kind(other)))),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let key = format!("ports.{i}");
            let Value::Object(p) = item else {
                return Err(err(&key, format!("expected a mapping with name and port, found {}", kind(item))));
            };
            let port = match p.get("port") {
                None => 5432,
                Some(v) => parse_int(v, None)
                    .and_then(|n| i32::try_from(n).ok())
                    .filter(|n| (1..=65535).contains(n))
                    .ok_or_else(|| err(&format!("{key}.port"), format!("expected a port number, found {v}")))?,
            };
            let text = |k: &str| match p.get(k) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            };
            Ok(Port { name: text("name"), port, protocol: text("protocol") })
        })
        .collect()
}

/// `retriable_http_codes`: a code, a list of them or a comma-separated
/// text. Patroni only warns about a bad value; so do we (and keep the
/// defaults).
fn retriable(map: &Map<String, Value>) -> Vec<u16> {
    let mut codes = DEFAULT_RETRIABLE.to_vec();
    let items: Vec<Value> = match map.get("retriable_http_codes") {
        None | Some(Value::Null) => return codes,
        Some(Value::Array(a)) => a.clone(),
        Some(Value::String(s)) => s.split(',').map(|c| Value::String(c.trim().to_string())).collect(),
        Some(other) => vec![other.clone()],
    };
    let mut parsed = Vec::new();
    for item in &items {
        match parse_int(item, None).and_then(|n| u16::try_from(n).ok()) {
            Some(c) => parsed.push(c),
            None => {
                tracing::warn!("Invalid value of retriable_http_codes = {item}: not an HTTP status code; ignored");
                return codes;
            }
        }
    }
    for c in parsed {
        if !codes.contains(&c) {
            codes.push(c);
        }
    }
    codes
}

fn selector(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

impl Settings {
    /// Read the section. `scope` and `group` complete the labels.
    pub(crate) fn parse(json: &str, scope: &str, group: Option<i32>) -> PluginResult<Self> {
        let value: Value = if json.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(json).map_err(|e| PluginError::config(format!("{SEC}: not valid JSON: {e}")))?
        };
        let empty = Map::new();
        let map = match &value {
            Value::Object(m) => m,
            Value::Null => &empty,
            other => return Err(err("", format!("expected a mapping, found {}", kind(other)))),
        };
        let mut labels_ = labels(map, "labels")?;
        let scope_label = nonempty(map, "scope_label")?.unwrap_or_else(|| "cluster-name".into());
        labels_.insert(scope_label, scope.to_string());
        let scope_selector = selector(&labels_);
        if let Some(g) = group {
            labels_.insert(crate::names::CITUS_GROUP_LABEL.to_string(), g.to_string());
        }
        let pod_ip = string(map, "pod_ip")?.unwrap_or_default();
        if !pod_ip.is_empty() && pod_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(err("pod_ip", format!("expected an IPv4 or IPv6 address, found '{pod_ip}'")));
        }
        let cacert = std::env::var("PATRONI_KUBERNETES_CACERT")
            .ok()
            .filter(|s| !s.is_empty())
            .or(nonempty(map, "cacert")?)
            .map(PathBuf::from);
        let settings = Settings {
            namespace: nonempty(map, "namespace")?.unwrap_or_else(|| "default".into()),
            labels: labels_,
            scope_selector,
            role_label: nonempty(map, "role_label")?.unwrap_or_else(|| "role".into()),
            leader_label_value: nonempty(map, "leader_label_value")?.unwrap_or_else(|| "primary".into()),
            follower_label_value: nonempty(map, "follower_label_value")?.unwrap_or_else(|| "replica".into()),
            standby_leader_label_value: nonempty(map, "standby_leader_label_value")?
                .unwrap_or_else(|| "primary".into()),
            tmp_role_label: nonempty(map, "tmp_role_label")?,
            bootstrap_labels: labels(map, "bootstrap_labels")?,
            use_endpoints: boolean(map, "use_endpoints")?,
            bypass_api_service: boolean(map, "bypass_api_service")?,
            pod_ip,
            ports: ports(map)?,
            retriable_http_codes: retriable(map),
            cacert,
            context: nonempty(map, "context")?,
            kubeconfig: nonempty(map, "kubeconfig")?.map(PathBuf::from),
            leader_lease: boolean(map, "leader_lease")?,
        };
        if settings.leader_lease && settings.use_endpoints {
            return Err(err(
                "leader_lease",
                "cannot be combined with use_endpoints: the Endpoints object is the lock in that mode",
            ));
        }
        Ok(settings)
    }

    /// `k1=v1,k2=v2`: the selector of every list and of delete_cluster.
    pub(crate) fn label_selector(&self) -> String {
        selector(&self.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> PluginResult<Settings> {
        Settings::parse(json, "demo", None)
    }

    #[test]
    fn defaults_are_patroni_4s() {
        let s = parse(r#"{"labels":{"application":"patroni"}}"#).unwrap();
        assert_eq!(s.namespace, "default");
        assert_eq!(s.role_label, "role");
        assert_eq!(s.leader_label_value, "primary");
        assert_eq!(s.follower_label_value, "replica");
        assert_eq!(s.standby_leader_label_value, "primary");
        assert_eq!(s.tmp_role_label, None);
        assert!(!s.use_endpoints && !s.bypass_api_service && !s.leader_lease);
        assert_eq!(s.ports, [Port { name: None, port: 5432, protocol: None }]);
        assert_eq!(s.retriable_http_codes, DEFAULT_RETRIABLE);
        assert_eq!(s.label_selector(), "application=patroni,cluster-name=demo");
    }

    #[test]
    fn settings_table() {
        let s = parse(
            r#"{"labels":{"app":"pg","n":1},"scope_label":"cluster","role_label":"spilo-role",
                "leader_label_value":"master","follower_label_value":"standby","tmp_role_label":"tmp",
                "namespace":"db","use_endpoints":"true","pod_ip":"10.0.0.7","bypass_api_service":true,
                "ports":[{"name":"postgresql","port":"5433"}],"retriable_http_codes":"401, 502",
                "bootstrap_labels":{"bootstrapping":true},"context":"ctx","kubeconfig":"/k/config"}"#,
        )
        .unwrap();
        assert_eq!(s.label_selector(), "app=pg,cluster=demo,n=1");
        assert_eq!((s.role_label.as_str(), s.leader_label_value.as_str()), ("spilo-role", "master"));
        assert_eq!(s.follower_label_value, "standby");
        assert_eq!(s.tmp_role_label.as_deref(), Some("tmp"));
        assert_eq!(s.namespace, "db");
        assert!(s.use_endpoints && s.bypass_api_service);
        assert_eq!(s.pod_ip, "10.0.0.7");
        assert_eq!(s.ports, [Port { name: Some("postgresql".into()), port: 5433, protocol: None }]);
        assert_eq!(s.retriable_http_codes, [429, 500, 503, 504, 401, 502]);
        assert_eq!(s.bootstrap_labels.get("bootstrapping").map(String::as_str), Some("True"));
        assert_eq!(s.context.as_deref(), Some("ctx"));
        assert_eq!(s.kubeconfig, Some(PathBuf::from("/k/config")));
        let citus = Settings::parse(r#"{"labels":{}}"#, "demo", Some(2)).unwrap();
        assert_eq!(citus.label_selector(), "citus-group=2,cluster-name=demo");
        assert_eq!(citus.scope_selector, "cluster-name=demo", "every group of the scope");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (r#"{"labels":[1]}"#, "kubernetes.labels: expected a mapping"),
            (r#"{"labels":{"a":[1]}}"#, "kubernetes.labels.a: expected a string"),
            (r#"{"pod_ip":"nope"}"#, "kubernetes.pod_ip: expected an IPv4 or IPv6 address"),
            (r#"{"ports":[{"port":0}]}"#, "kubernetes.ports.0.port: expected a port number"),
            (r#"{"ports":{"port":1}}"#, "kubernetes.ports: expected a list"),
            (r#"{"namespace":[]}"#, "kubernetes.namespace: expected a string"),
            (r#"{"leader_lease":true,"use_endpoints":true}"#, "kubernetes.leader_lease: cannot be combined"),
            (r#"[]"#, "kubernetes: expected a mapping"),
        ];
        for (json, want) in cases {
            let e = parse(json).unwrap_err();
            assert!(e.message.starts_with(want), "{json}: {}", e.message);
        }
    }

    #[test]
    fn bad_retriable_codes_are_warned_and_ignored() {
        let s = parse(r#"{"retriable_http_codes":["x"]}"#).unwrap();
        assert_eq!(s.retriable_http_codes, DEFAULT_RETRIABLE);
        let s = parse(r#"{"retriable_http_codes":401}"#).unwrap();
        assert_eq!(s.retriable_http_codes, [429, 500, 503, 504, 401]);
    }
}
