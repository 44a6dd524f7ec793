//! One read of the cluster's objects (the ConfigMaps or Endpoints with our
//! labels, the Pods with our labels, and the Lease in lease mode) turned
//! into a [`DcsSnapshot`], as Patroni's `_cluster_from_nodes` does it.
//!
//! Kubernetes has no TTL on objects, so the leader lock expires on the
//! readers' side: every reader remembers the leader record it last saw
//! change and when; a record that has not changed for `ttl` seconds (the
//! leader's own `ttl` annotation, else ours) no longer names a leader.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::DynamicObject;
use palisade_plugin_api::{DcsSnapshot, LeaderKey, MemberKey, VersionedValue};
use serde_json::Value;

use crate::annotations::{self, Annotations};
use crate::names::{self, Names};

/// The lock record's fields, by their annotation names.
pub(crate) const RECORD: [&str; 5] =
    [names::LEADER, names::ACQUIRE_TIME, names::TTL, names::RENEW_TIME, names::TRANSITIONS];

pub(crate) type Record = BTreeMap<String, String>;

/// Patroni's `_leader_observed_record` and `_leader_observed_time`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Observed {
    pub record: Record,
    pub at: Option<Instant>,
}

pub(crate) fn annotations_of(obj: &DynamicObject) -> Annotations {
    obj.metadata.annotations.clone().unwrap_or_default()
}

pub(crate) fn rv_of(obj: &DynamicObject) -> Option<String> {
    obj.metadata.resource_version.clone()
}

fn spec_text(spec: &Value, key: &str) -> Option<String> {
    match spec.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The lock record of a leader object: its annotations, or in lease mode
/// the Lease's spec spelled with the same names.
pub(crate) fn record_of(obj: &DynamicObject, lease: bool) -> Record {
    if !lease {
        let a = annotations_of(obj);
        return RECORD.iter().filter_map(|k| a.get(*k).map(|v| (k.to_string(), v.clone()))).collect();
    }
    let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
    let pairs = [
        (names::LEADER, "holderIdentity"),
        (names::ACQUIRE_TIME, "acquireTime"),
        (names::TTL, "leaseDurationSeconds"),
        (names::RENEW_TIME, "renewTime"),
        (names::TRANSITIONS, "leaseTransitions"),
    ];
    pairs
        .iter()
        .filter_map(|(ours, field)| spec_text(&spec, field).map(|v| (ours.to_string(), v)))
        .filter(|(k, v)| k != names::LEADER || !v.is_empty())
        .collect()
}

pub(crate) struct Read<'a> {
    pub names: &'a Names,
    /// The ConfigMaps or Endpoints with our labels.
    pub kinds: &'a [DynamicObject],
    pub pods: &'a [DynamicObject],
    /// The Lease (lease mode only).
    pub lease: Option<&'a DynamicObject>,
    pub lease_mode: bool,
    /// Our ttl, for a record without one.
    pub ttl: u64,
}

/// The leader object of this read: the Lease in lease mode, else the
/// ConfigMap/Endpoints named for it.
pub(crate) fn leader_object<'a>(read: &Read<'a>) -> Option<&'a DynamicObject> {
    if read.lease_mode {
        return read.lease;
    }
    let name = read.names.leader();
    read.kinds.iter().find(|k| k.metadata.name.as_deref() == Some(name.as_str()))
}

pub(crate) fn build(read: &Read<'_>, observed: &mut Observed, now: Instant) -> DcsSnapshot {
    let by_name = |name: String| read.kinds.iter().find(|k| k.metadata.name.as_deref() == Some(name.as_str()));
    let mut s = DcsSnapshot::default();

    if let Some(config) = by_name(read.names.config()) {
        let a = annotations_of(config);
        let version = rv_of(config).unwrap_or_default();
        s.initialize = a.get(names::INITIALIZE).cloned();
        s.config = a.get(names::CONFIG).map(|v| VersionedValue { value: v.clone(), version: version.clone() });
        s.history = a.get(names::HISTORY).map(|v| VersionedValue { value: v.clone(), version: version.clone() });
    }

    let leader = leader_object(read);
    let record = leader.map(|l| record_of(l, read.lease_mode)).unwrap_or_default();
    if (!record.is_empty() || !observed.record.is_empty()) && record != observed.record {
        observed.record = record.clone();
        observed.at = Some(now);
    }
    if let Some(obj) = leader {
        let a = annotations_of(obj);
        s.status = annotations::status_json(&a);
        s.failsafe = a.get(names::FAILSAFE).cloned();
        let ttl =
            record.get(names::TTL).and_then(|t| t.trim().parse::<u64>().ok()).filter(|t| *t > 0).unwrap_or(read.ttl);
        let alive = observed.at.is_some_and(|at| at + Duration::from_secs(ttl) >= now);
        // An empty `leader` still holds the lock (as a key holding an
        // empty value would); a missing one does not.
        if let (true, Some(name)) = (alive, record.get(names::LEADER)) {
            s.leader =
                Some(LeaderKey { name: name.clone(), version: rv_of(obj).unwrap_or_default(), session: String::new() });
        }
        // Patroni's leader optime is the same annotation as the status'.
        s.leader_optime = a.get(names::OPTIME).cloned();
    }

    if let Some(f) = by_name(read.names.failover()) {
        let value = annotations::failover_json(&annotations_of(f));
        s.failover = Some(VersionedValue { value, version: rv_of(f).unwrap_or_default() });
    }
    if let Some(sync) = by_name(read.names.sync()) {
        let value = annotations::sync_json(&annotations_of(sync));
        s.sync = Some(VersionedValue { value, version: rv_of(sync).unwrap_or_default() });
    }

    for pod in read.pods {
        let Some(name) = pod.metadata.name.clone() else { continue };
        // A Pod without the annotation has no member in it (yet): Patroni
        // lists it with empty data, we leave it out.
        let Some(value) = annotations_of(pod).get(names::STATUS).cloned() else { continue };
        s.members.push(MemberKey { name, value, version: rv_of(pod).unwrap_or_default(), session: String::new() });
    }
    s.members.sort_by(|a, b| a.name.cmp(&b.name));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn obj(name: &str, rv: &str, annotations: &[(&str, &str)]) -> DynamicObject {
        let a: Annotations = annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "resourceVersion": rv}
        }))
        .unwrap();
        o.metadata.annotations = Some(a);
        o
    }

    fn read<'a>(names: &'a Names, kinds: &'a [DynamicObject], pods: &'a [DynamicObject]) -> Read<'a> {
        Read { names, kinds, pods, lease: None, lease_mode: false, ttl: 30 }
    }

    #[test]
    fn configmaps_become_keys() {
        let names = Names::new("demo", None, false);
        let kinds = [
            obj("demo-config", "11", &[("config", r#"{"ttl":30}"#), ("initialize", "7000"), ("history", "[[1,2]]")]),
            obj(
                "demo-leader",
                "12",
                &[
                    ("leader", "n1"),
                    ("ttl", "30"),
                    ("renewTime", "t"),
                    ("optime", "99"),
                    ("failsafe", "{\"n1\":\"u\"}"),
                ],
            ),
            obj("demo-failover", "13", &[("member", "n2")]),
            obj("demo-sync", "14", &[("leader", "n1"), ("sync_standby", "n2"), ("quorum", "0")]),
        ];
        let pods = [obj("n2", "21", &[("status", r#"{"role":"replica"}"#)]), obj("n1", "20", &[])];
        let mut observed = Observed::default();
        let s = build(&read(&names, &kinds, &pods), &mut observed, Instant::now());
        assert_eq!(s.initialize.as_deref(), Some("7000"));
        assert_eq!(s.config, Some(VersionedValue { value: r#"{"ttl":30}"#.into(), version: "11".into() }));
        assert_eq!(s.history.as_ref().map(|h| h.version.as_str()), Some("11"));
        assert_eq!(s.leader, Some(LeaderKey { name: "n1".into(), version: "12".into(), session: String::new() }));
        assert_eq!(s.status.as_deref(), Some(r#"{"optime":99}"#));
        assert_eq!(s.failsafe.as_deref(), Some("{\"n1\":\"u\"}"));
        assert_eq!(s.failover, Some(VersionedValue { value: r#"{"member":"n2"}"#.into(), version: "13".into() }));
        assert_eq!(
            s.sync.as_ref().map(|v| v.value.as_str()),
            Some(r#"{"leader":"n1","quorum":0,"sync_standby":"n2"}"#)
        );
        assert_eq!(s.leader_optime.as_deref(), Some("99"));
        // n1's Pod has no status yet: no member.
        let members: Vec<_> =
            s.members.iter().map(|m| (m.name.as_str(), m.value.as_str(), m.version.as_str())).collect();
        assert_eq!(members, [("n2", r#"{"role":"replica"}"#, "21")]);
    }

    /// The lock expires on the reader's side `ttl` after its record last
    /// changed; a renewal (new renewTime) brings it back.
    #[test]
    fn leader_expires_when_the_record_stops_changing() {
        let names = Names::new("demo", None, false);
        let mut observed = Observed::default();
        let t0 = Instant::now();
        let kinds = [obj("demo-leader", "5", &[("leader", "n1"), ("ttl", "10"), ("renewTime", "a")])];
        let r = read(&names, &kinds, &[]);
        assert!(build(&r, &mut observed, t0).leader.is_some());
        assert!(build(&r, &mut observed, t0 + Duration::from_secs(10)).leader.is_some());
        assert!(build(&r, &mut observed, t0 + Duration::from_secs(11)).leader.is_none());
        let renewed = [obj("demo-leader", "6", &[("leader", "n1"), ("ttl", "10"), ("renewTime", "b")])];
        let s = build(&read(&names, &renewed, &[]), &mut observed, t0 + Duration::from_secs(12));
        assert_eq!(s.leader.map(|l| l.version), Some("6".into()));
        // No leader annotation (deleted lock): no leader, whatever the time.
        let released = [obj("demo-leader", "7", &[("ttl", "10")])];
        assert!(build(&read(&names, &released, &[]), &mut observed, t0 + Duration::from_secs(12)).leader.is_none());
        // An empty one written by somebody else holds the lock, until it expires.
        let empty = [obj("demo-leader", "8", &[("leader", "")])];
        let s = build(&read(&names, &empty, &[]), &mut observed, t0 + Duration::from_secs(13));
        assert_eq!(s.leader.map(|l| l.name), Some(String::new()));
    }

    #[test]
    fn endpoints_mode_and_citus_names() {
        let names = Names::new("demo", Some(1), true);
        let kinds = [obj("demo-1", "3", &[("leader", "n1")]), obj("demo-1-config", "4", &[("config", "{}")])];
        let s = build(&read(&names, &kinds, &[]), &mut Observed::default(), Instant::now());
        assert_eq!(s.leader.map(|l| l.name), Some("n1".into()));
        assert_eq!(s.config.map(|c| c.version), Some("4".into()));
    }

    #[test]
    fn lease_mode_reads_the_lease_spec() {
        let names = Names::new("demo", None, false);
        let lease: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "demo-leader", "resourceVersion": "9", "annotations": {"optime": "5"}},
            "spec": {"holderIdentity": "n3", "leaseDurationSeconds": 30, "leaseTransitions": 2,
                     "renewTime": "2030-01-01T00:00:00.000000Z"}
        }))
        .unwrap();
        let r = Read { names: &names, kinds: &[], pods: &[], lease: Some(&lease), lease_mode: true, ttl: 30 };
        let mut observed = Observed::default();
        let s = build(&r, &mut observed, Instant::now());
        assert_eq!(s.leader.map(|l| (l.name, l.version)), Some(("n3".into(), "9".into())));
        assert_eq!(s.status.as_deref(), Some(r#"{"optime":5}"#));
        assert_eq!(observed.record.get("transitions").map(String::as_str), Some("2"));
        assert_eq!(observed.record.get("ttl").map(String::as_str), Some("30"));
    }

    #[test]
    fn garbage_leader_ttl_falls_back_to_ours() {
        let names = Names::new("demo", None, false);
        let kinds = [obj("demo-leader", "5", &[("leader", "n1"), ("ttl", "soon")])];
        let mut observed = Observed::default();
        let t0 = Instant::now();
        let r = read(&names, &kinds, &[]);
        build(&r, &mut observed, t0);
        assert!(build(&r, &mut observed, t0 + Duration::from_secs(30)).leader.is_some());
        assert!(build(&r, &mut observed, t0 + Duration::from_secs(31)).leader.is_none());
    }
}
