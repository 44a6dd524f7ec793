//! `use_endpoints`: the leader Endpoints' subsets point at the leader (its
//! `pod_ip`, or its Pod's IP, with `ports`), as Patroni's `_map_subsets`.

use serde_json::{json, Value};

use crate::settings::Port;
use crate::store::{lock, Kubernetes};

fn port_json(p: &Port) -> Value {
    let mut v = json!({ "port": p.port });
    if let Some(n) = &p.name {
        v["name"] = json!(n);
    }
    if let Some(pr) = &p.protocol {
        v["protocol"] = json!(pr);
    }
    v
}

fn same_port(observed: &Value, p: &Port) -> bool {
    observed.get("name").and_then(Value::as_str) == p.name.as_deref()
        && observed.get("port").and_then(Value::as_i64) == Some(i64::from(p.port))
        && observed.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == p.protocol.as_deref().unwrap_or("TCP")
}

/// Patroni's `subsets_changed`: anything but one subset with exactly our
/// address and our ports (in any order when named) needs rewriting.
pub(crate) fn subsets_changed(observed: &[Value], ip: &str, ports: &[Port]) -> bool {
    let [subset] = observed else { return true };
    let addresses = subset.get("addresses").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let seen_ports = subset.get("ports").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if addresses.len() != 1
        || addresses[0].get("ip").and_then(Value::as_str) != Some(ip)
        || seen_ports.len() != ports.len()
    {
        return true;
    }
    if let ([seen], [want]) = (seen_ports, ports) {
        return !same_port(seen, want);
    }
    let mut remaining: Vec<&Value> = seen_ports.iter().collect();
    for p in ports {
        let Some(i) = remaining.iter().position(|s| s.get("name").and_then(Value::as_str) == p.name.as_deref()) else {
            return true;
        };
        if !same_port(remaining.remove(i), p) {
            return true;
        }
    }
    false
}

impl Kubernetes {
    /// The subsets to write with the leader Endpoints, `None` to leave them.
    /// `ips` empty: no addresses (the lock is released); `[""]`: our Pod's IP.
    pub(crate) fn subsets(&self, ips: &[String]) -> Option<Value> {
        let memo = lock(&self.memo);
        let latest: Vec<Value> = memo
            .leader
            .as_ref()
            .and_then(|l| l.data.get("subsets"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(ip) = ips.first() else {
            return (!latest.is_empty()).then(|| json!([]));
        };
        let pod = memo.own_pod.as_ref();
        let pod_ip = pod.and_then(|p| p.data.pointer("/status/podIP")).and_then(Value::as_str);
        let leader_ip = if ip.is_empty() { pod_ip?.to_string() } else { ip.clone() };
        if !subsets_changed(&latest, &leader_ip, &self.settings.ports) {
            return None;
        }
        let mut address = json!({ "ip": leader_ip });
        if let Some(pod) = pod {
            if let Some(h) = pod.data.pointer("/spec/hostname") {
                address["hostname"] = h.clone();
            }
            if let Some(n) = pod.data.pointer("/spec/nodeName") {
                address["nodeName"] = n.clone();
            }
            // Reuse the reference already there, else point at our Pod.
            let existing = latest
                .iter()
                .flat_map(|s| s.get("addresses").and_then(Value::as_array).cloned().unwrap_or_default())
                .find(|a| {
                    a.get("ip").and_then(Value::as_str) == Some(leader_ip.as_str())
                        && a.pointer("/targetRef/name").and_then(Value::as_str) == Some(self.name.as_str())
                })
                .and_then(|a| a.get("targetRef").cloned());
            address["targetRef"] = existing.unwrap_or_else(|| {
                json!({
                    "kind": "Pod",
                    "uid": pod.metadata.uid,
                    "namespace": self.settings.namespace,
                    "name": self.name,
                    "resourceVersion": pod.metadata.resource_version,
                })
            });
        }
        let ports: Vec<Value> = self.settings.ports.iter().map(port_json).collect();
        Some(json!([{ "addresses": [address], "ports": ports }]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: Option<&str>, port: i32) -> Port {
        Port { name: name.map(str::to_string), port, protocol: None }
    }

    /// The cases of Patroni's doctest.
    #[test]
    fn subsets_changed_as_patroni() {
        let a = json!([{"ip": "1.2.3.4"}]);
        assert!(subsets_changed(&[json!({"addresses": a})], "1.2.3.5", &[]));
        let s = [json!({"addresses": a, "ports": [{"protocol": "TCP", "port": 1}]})];
        assert!(subsets_changed(&s, "1.2.3.4", &[port(None, 5432)]));
        let (p1, p2) = (json!({"name": "port1", "port": 1}), json!({"name": "port2", "port": 2}));
        let s = [json!({"addresses": a, "ports": [p1, p2]})];
        assert!(subsets_changed(&s, "1.2.3.4", &[port(Some("port2"), 2), port(Some("port3"), 3)]));
        assert!(!subsets_changed(&s, "1.2.3.4", &[port(Some("port2"), 2), port(Some("port1"), 1)]));
        let s = [json!({"addresses": a, "ports": [{"port": 5432}]})];
        assert!(!subsets_changed(&s, "1.2.3.4", &[port(None, 5432)]));
        assert!(subsets_changed(&[], "1.2.3.4", &[port(None, 5432)]));
    }

    #[test]
    fn port_bodies() {
        assert_eq!(port_json(&port(Some("postgresql"), 5432)), json!({"port": 5432, "name": "postgresql"}));
        assert_eq!(port_json(&port(None, 5433)), json!({"port": 5433}));
    }
}
