//! The Kubernetes plugin (`dcs-kubernetes`), loaded through the real
//! loader, on a Kubernetes API test double of its own
//! ([`crate::kubernetes`]): the [`DcsFixture`]s the conformance suite runs
//! against in each of the plugin's modes (ConfigMaps, Endpoints, and the
//! Palisade Lease extension), the [`TestDcs`] adapter of all three modes for
//! the cluster tests, and the pieces of the plugin's own tests.
//!
//! The suite's keys (`leader`, `config`, `members/<name>`...) are mapped
//! onto the objects and annotations Patroni keeps, the way Patroni writes
//! them: `failover` and `sync` are the annotations of their objects (the
//! JSON of the other stores, field by field), `status` the `optime`,
//! `slots` and `retain_slots` annotations of the leader object, members
//! the `status` annotation of their Pods (which the fixture creates, as a
//! StatefulSet would, before a member's client is made).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use palisade_plugin_api::{Dcs, DcsParams, DcsTiming};
use serde_json::{json, Map, Value};

use crate::conformance::DcsFixture;
use crate::dcs::TestDcs;
use crate::kubernetes::{KubernetesDcs, KubernetesServer, Mode, RawKube, CONTEXT, LABELS, NAMESPACE};
use crate::plugins::PluginCluster;

/// Which objects the plugin keeps the lock in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginMode {
    ConfigMaps,
    Endpoints,
    /// `leader_lease: true` (ConfigMaps for the rest).
    Lease,
}

impl PluginMode {
    fn plural(self) -> &'static str {
        match self {
            PluginMode::Endpoints => "endpoints",
            _ => "configmaps",
        }
    }
}

/// The `kubernetes:` section for a cluster on `server` in `mode`.
pub fn section(server: &KubernetesServer, mode: PluginMode) -> Value {
    let labels: Map<String, Value> = LABELS.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let mut s = json!({
        "namespace": NAMESPACE,
        "kubeconfig": server.kubeconfig().display().to_string(),
        "context": CONTEXT,
        "labels": labels,
        "pod_ip": "127.0.0.1",
        "ports": [{"name": "postgresql", "port": 5432}],
    });
    match mode {
        PluginMode::ConfigMaps => {}
        PluginMode::Endpoints => s["use_endpoints"] = json!(true),
        PluginMode::Lease => s["leader_lease"] = json!(true),
    }
    s
}

/// The labels of cluster `scope`'s objects and Pods.
pub fn labels(scope: &str) -> BTreeMap<String, String> {
    KubernetesDcs::labels(scope)
}

/// Patroni's keys of one cluster on the double, read and written behind
/// the plugin's back.
#[derive(Clone, Debug)]
pub struct Keys {
    pub raw: RawKube,
    pub mode: PluginMode,
    pub scope: String,
}

/// A JSON field as annotation text (strings as they are).
fn text(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(json!(s)),
        other => Some(json!(other.to_string())),
    }
}

/// Python's `json.dumps` with its default separators, as Patroni writes
/// `retain_slots`.
fn python_dumps(v: &Value) -> String {
    match v {
        Value::Array(items) => format!("[{}]", items.iter().map(python_dumps).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

impl Keys {
    fn leader_object(&self) -> (&'static str, String) {
        match self.mode {
            PluginMode::ConfigMaps => ("configmaps", format!("{}-leader", self.scope)),
            PluginMode::Endpoints => ("endpoints", self.scope.clone()),
            PluginMode::Lease => ("leases", format!("{}-leader", self.scope)),
        }
    }

    fn object(&self, suffix: &str) -> (&'static str, String) {
        (self.mode.plural(), format!("{}-{suffix}", self.scope))
    }

    fn annotations(&self, plural: &str, name: &str) -> Option<Map<String, Value>> {
        let obj = self.raw.get(plural, NAMESPACE, name)?;
        Some(obj.pointer("/metadata/annotations").and_then(Value::as_object).cloned().unwrap_or_default())
    }

    /// Merge `patch` into object `name` (annotations), creating it with
    /// the cluster's labels when it does not exist.
    fn upsert(&self, plural: &str, name: &str, patch: Value) {
        if self.raw.get(plural, NAMESPACE, name).is_some() {
            let r = self.raw.patch(plural, NAMESPACE, name, "application/merge-patch+json", &patch);
            assert_eq!(r.status, 200, "patch {plural}/{name}: {}", r.body);
        } else {
            let mut obj = patch;
            obj["metadata"]["name"] = json!(name);
            obj["metadata"]["labels"] = json!(labels(&self.scope));
            if plural == "pods" {
                obj["spec"] = json!({"containers": [{"name": "postgres", "image": "postgres:15"}]});
            }
            let r = self.raw.create(plural, NAMESPACE, &obj);
            assert_eq!(r.status, 201, "create {plural}/{name}: {}", r.body);
        }
    }

    fn annotation(&self, (plural, name): (&str, String), key: &str) -> Option<Vec<u8>> {
        let a = self.annotations(plural, &name)?;
        a.get(key).and_then(Value::as_str).map(|s| s.as_bytes().to_vec())
    }

    /// The bytes at key `key`, `None` when absent.
    pub fn read(&self, key: &str) -> Option<Vec<u8>> {
        match key {
            "leader" if self.mode == PluginMode::Lease => {
                let (plural, name) = self.leader_object();
                let lease = self.raw.get(plural, NAMESPACE, &name)?;
                lease.pointer("/spec/holderIdentity").and_then(Value::as_str).map(|s| s.as_bytes().to_vec())
            }
            "leader" => self.annotation(self.leader_object(), "leader"),
            "failsafe" => self.annotation(self.leader_object(), "failsafe"),
            "optime/leader" => self.annotation(self.leader_object(), "optime"),
            "config" | "initialize" | "history" => self.annotation(self.object("config"), key),
            "status" => {
                let (plural, name) = self.leader_object();
                let a = self.annotations(plural, &name)?;
                let optime = a.get("optime").and_then(Value::as_str)?;
                let mut status = Map::new();
                status
                    .insert("optime".into(), optime.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(optime)));
                for k in ["slots", "retain_slots"] {
                    if let Some(v) = a.get(k).and_then(Value::as_str) {
                        status.insert(k.into(), serde_json::from_str(v).unwrap_or_else(|_| json!(v)));
                    }
                }
                Some(Value::Object(status).to_string().into_bytes())
            }
            "failover" | "sync" => {
                let (plural, name) = self.object(key);
                let a = self.annotations(plural, &name)?;
                let fields: &[&str] = if key == "failover" {
                    &["leader", "member", "scheduled_at"]
                } else {
                    &["leader", "sync_standby", "quorum"]
                };
                let m: Map<String, Value> = fields
                    .iter()
                    .filter_map(|f| {
                        let v = a.get(*f)?.as_str()?;
                        let v = match v.parse::<i64>() {
                            Ok(n) if *f == "quorum" => json!(n),
                            _ => json!(v),
                        };
                        Some((f.to_string(), v))
                    })
                    .collect();
                // A failover object without fields is Patroni's cleared
                // failover (an empty value in the other stores).
                if key == "failover" && m.is_empty() {
                    return Some(Vec::new());
                }
                Some(Value::Object(m).to_string().into_bytes())
            }
            _ => {
                let member = key.strip_prefix("members/")?;
                self.annotation(("pods", member.to_string()), "status")
            }
        }
    }

    /// Write `value` at `key` as Patroni would have written it.
    pub fn write(&self, key: &str, value: &[u8]) {
        let text_value = String::from_utf8_lossy(value).into_owned();
        let ann = |pairs: Value| json!({"metadata": {"annotations": pairs}});
        match key {
            "leader" if self.mode == PluginMode::Lease => {
                let (plural, name) = self.leader_object();
                let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
                self.upsert(
                    plural,
                    &name,
                    json!({"spec": {"holderIdentity": text_value, "leaseDurationSeconds": 30,
                                    "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}),
                );
            }
            "leader" | "failsafe" => {
                let (plural, name) = self.leader_object();
                self.upsert(plural, &name, ann(json!({key: text_value})));
            }
            "optime/leader" => {
                let (plural, name) = self.leader_object();
                self.upsert(plural, &name, ann(json!({"optime": text_value})));
            }
            "status" => {
                let status: Value = serde_json::from_str(&text_value).unwrap_or_else(|e| panic!("status: {e}"));
                let mut pairs = json!({"optime": status.get("optime").and_then(text)});
                if let Some(s) = status.get("slots") {
                    pairs["slots"] = json!(s.to_string());
                }
                if let Some(r) = status.get("retain_slots") {
                    pairs["retain_slots"] = json!(python_dumps(r));
                }
                let (plural, name) = self.leader_object();
                self.upsert(plural, &name, ann(pairs));
            }
            "config" | "initialize" | "history" => {
                let (plural, name) = self.object("config");
                self.upsert(plural, &name, ann(json!({key: text_value})));
            }
            "failover" | "sync" => {
                let fields: Map<String, Value> = match serde_json::from_str::<Value>(&text_value) {
                    Ok(Value::Object(m)) => m.into_iter().filter_map(|(k, v)| text(&v).map(|v| (k, v))).collect(),
                    _ => panic!("{key}: Patroni keeps it as annotations; not a JSON object: {text_value}"),
                };
                let (plural, name) = self.object(key);
                self.upsert(plural, &name, ann(Value::Object(fields)));
            }
            _ => {
                let member = key.strip_prefix("members/").unwrap_or_else(|| panic!("no object for {key}"));
                self.upsert("pods", member, ann(json!({"status": text_value})));
            }
        }
    }
}

/// The plugin on a double of its own, scope `demo`, in one mode.
pub struct KubernetesFixture {
    server: Mutex<KubernetesServer>,
    keys: Keys,
    cluster: PluginCluster,
    /// The member name of each client made (by its address), for `stop_renewing`.
    made: Mutex<Vec<(usize, String)>>,
}

fn address(dcs: &dyn Dcs) -> usize {
    dcs as *const dyn Dcs as *const () as usize
}

impl KubernetesFixture {
    pub fn start(label: &str, mode: PluginMode) -> Self {
        let server = KubernetesServer::start(label);
        let cluster = PluginCluster::open("kubernetes");
        let keys = Keys { raw: server.raw(), mode, scope: cluster.scope.clone() };
        KubernetesFixture { server: Mutex::new(server), keys, cluster, made: Mutex::new(Vec::new()) }
    }

    pub fn server(&self) -> MutexGuard<'_, KubernetesServer> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn raw(&self) -> &RawKube {
        &self.keys.raw
    }

    pub fn section_json(&self) -> String {
        section(&self.server(), self.keys.mode).to_string()
    }

    /// The parameters of `member` in scope `scope`; its Pod is created first.
    pub fn params_in(&self, scope: &str, member: &str, group: Option<i32>) -> DcsParams {
        let mut pod_labels = labels(scope);
        if let Some(g) = group {
            pod_labels.insert("citus-group".into(), g.to_string());
        }
        self.raw().create_pod(NAMESPACE, member, &pod_labels);
        let mut p = self.params_with(member, group, self.section_json());
        p.scope = scope.to_string();
        p
    }
}

impl std::ops::Deref for KubernetesFixture {
    type Target = PluginCluster;

    fn deref(&self) -> &PluginCluster {
        &self.cluster
    }
}

impl DcsFixture for KubernetesFixture {
    /// Patroni keeps the failover, sync and status state as annotations;
    /// with the Lease lock the leader is the Lease's holder (where an empty
    /// holder means none).
    fn structured_keys(&self) -> &'static [&'static str] {
        match self.keys.mode {
            PluginMode::Lease => &["leader", "failover", "sync", "status"],
            _ => &["failover", "sync", "status"],
        }
    }

    /// An object's annotations are limited to 256 KiB in all.
    fn huge_value_size(&self) -> usize {
        100 * 1024
    }

    fn new_dcs(&self, member: &str) -> Box<dyn Dcs> {
        let dcs = self.dcs_with(self.params_in(&self.cluster.scope, member, None));
        self.made.lock().unwrap_or_else(|p| p.into_inner()).push((address(&*dcs), member.to_string()));
        dcs
    }

    /// The member's Pod carries the group label, as an operator puts it.
    fn new_dcs_in_group(&self, member: &str, group: i32) -> Box<dyn Dcs> {
        let dcs = self.dcs_with(self.params_in(&self.cluster.scope, member, Some(group)));
        self.made.lock().unwrap_or_else(|p| p.into_inner()).push((address(&*dcs), member.to_string()));
        dcs
    }

    fn timing(&self) -> DcsTiming {
        self.timing
    }

    fn write_raw(&self, key: &str, value: &[u8]) {
        self.keys.write(key, value);
    }

    fn read_raw(&self, key: &str) -> Option<Vec<u8>> {
        self.keys.read(key)
    }

    fn stop_store(&self) {
        self.server().stop();
    }

    fn start_store(&self) {
        self.server().start_again();
    }

    fn freeze_store(&self) {
        self.server().freeze();
    }

    fn thaw_store(&self) {
        self.server().thaw();
    }

    fn new_dcs_in_other_scope(&self, member: &str) -> Option<Box<dyn Dcs>> {
        // Pods are named after members, so the neighbour's member has a
        // name of its own.
        let scope = format!("{}2", self.cluster.scope);
        Some(self.dcs_with(self.params_in(&scope, &format!("{member}-{scope}"), None)))
    }

    /// Kubernetes has no TTL on objects: a member whose Pod is gone (the
    /// Pod was deleted, as when it is evicted) has no member key, and its
    /// lock expires on the readers' side. The client is dropped; a new one
    /// gets a new Pod.
    fn stop_renewing(&self, dcs: Box<dyn Dcs>) -> Option<Box<dyn Dcs>> {
        let at = address(&*dcs);
        drop(dcs);
        let name = self
            .made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|(a, _)| *a == at)
            .map(|(_, n)| n.clone())
            .expect("a client this fixture made");
        let r = self.raw().delete("pods", NAMESPACE, &name, None);
        assert!(r.status == 200 || r.status == 202, "delete pod {name}: {} {}", r.status, r.body);
        None
    }
}

/// The cluster tests' Kubernetes backend: [`KubernetesDcs`] (the double's
/// adapter) in ConfigMaps or Endpoints mode, or, with `lease`, ConfigMaps
/// with `leader_lease: true` and the lock read from the Lease. A member key
/// written behind the daemons' backs gets its Pod first, as a StatefulSet
/// would have made it.
pub struct KubernetesTestDcs {
    inner: KubernetesDcs,
    lease: bool,
}

impl KubernetesTestDcs {
    pub fn start(label: &str, mode: Mode, lease: bool) -> Self {
        KubernetesTestDcs { inner: KubernetesDcs::start(label, mode), lease }
    }

    pub fn inner(&self) -> &KubernetesDcs {
        &self.inner
    }

    fn keys(&self, scope: &str) -> Keys {
        Keys { raw: self.inner.raw().clone(), mode: PluginMode::Lease, scope: scope.to_string() }
    }
}

fn split(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix("/service/")?.split_once('/')
}

impl TestDcs for KubernetesTestDcs {
    fn yaml_section(&self) -> String {
        let lease = if self.lease { "  leader_lease: true\n" } else { "" };
        format!("{}{lease}", self.inner.yaml_section())
    }

    fn dcs_url(&self) -> String {
        self.inner.dcs_url()
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let (scope, rest) = split(key)?;
        match rest {
            "leader" if self.lease => self.keys(scope).read(rest),
            _ => self.inner.get(key),
        }
    }

    fn list(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = self.inner.list(prefix);
        if !self.lease {
            return out;
        }
        out.retain(|(k, _)| !k.ends_with("/leader"));
        if let Some(scope) = prefix.strip_prefix("/service/").map(|s| s.split('/').next().unwrap_or_default()) {
            let key = format!("/service/{scope}/leader");
            if key.starts_with(prefix) {
                if let Some(v) = self.keys(scope).read("leader") {
                    out.push((key, v));
                }
            }
        }
        out.sort();
        out
    }

    /// Keys of a Citus group (`/service/demo/1/leader`) go to the group's
    /// objects and labelled pods.
    fn put(&self, key: &str, value: &[u8]) {
        let Some((scope, rest)) = split(key) else {
            return self.inner.put(key, value);
        };
        let (group, rest) = KubernetesDcs::group_of(rest);
        match rest {
            "leader" if self.lease => {
                let scope = group.map_or_else(|| scope.to_string(), |g| format!("{scope}-{g}"));
                self.keys(&scope).write("leader", value)
            }
            _ if rest.starts_with("members/") => {
                let name = &rest["members/".len()..];
                self.inner.raw().create_pod(NAMESPACE, name, &KubernetesDcs::group_labels(scope, group));
                self.inner.put(key, value);
            }
            _ => self.inner.put(key, value),
        }
    }

    fn stop(&mut self) {
        self.inner.stop();
    }

    fn start_again(&mut self) {
        self.inner.start_again();
    }

    fn freeze(&self) {
        self.inner.freeze();
    }

    fn thaw(&self) {
        self.inner.thaw();
    }

    fn node_env(&self) -> Vec<(String, String)> {
        self.inner.node_env()
    }

    fn prepare_member(&self, scope: &str, name: &str) {
        self.inner.prepare_member(scope, name);
    }
}
