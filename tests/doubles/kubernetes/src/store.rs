//! The object store: every object of the served kinds, one global
//! `resourceVersion` counter, the history of changes that watches replay,
//! and the write-through copy in the data directory.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use crate::selector::Selector;

/// A kind the double serves.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    /// The plural in the path (`configmaps`).
    pub plural: &'static str,
    pub kind: &'static str,
    pub api_version: &'static str,
    /// `""` for the core group.
    pub group: &'static str,
    /// PUT on a missing object creates it (as the API server does for
    /// Endpoints and Leases).
    pub create_on_update: bool,
}

pub const RESOURCES: [Resource; 5] = [
    Resource { plural: "configmaps", kind: "ConfigMap", api_version: "v1", group: "", create_on_update: false },
    Resource { plural: "endpoints", kind: "Endpoints", api_version: "v1", group: "", create_on_update: true },
    Resource { plural: "pods", kind: "Pod", api_version: "v1", group: "", create_on_update: false },
    Resource { plural: "services", kind: "Service", api_version: "v1", group: "", create_on_update: false },
    Resource {
        plural: "leases",
        kind: "Lease",
        api_version: "coordination.k8s.io/v1",
        group: "coordination.k8s.io",
        create_on_update: true,
    },
];

/// The served kind named by `group` and `plural`.
pub fn resource(group: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.plural == plural)
}

/// An API error, answered as a `Status` object.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None }
    }

    fn about(mut self, r: &Resource, name: &str) -> Self {
        let mut d = json!({"name": name, "kind": r.plural});
        if !r.group.is_empty() {
            d["group"] = json!(r.group);
        }
        self.details = Some(d);
        self
    }

    pub fn not_found(r: &Resource, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", qualified(r))).about(r, name)
    }

    pub fn already_exists(r: &Resource, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", qualified(r))).about(r, name)
    }

    pub fn conflict(r: &Resource, name: &str, why: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": {why}", qualified(r)))
            .about(r, name)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 422 with one cause per invalid field.
    pub fn invalid(r: &Resource, name: &str, causes: Vec<(String, String)>) -> Self {
        let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let mut e =
            Self::new(422, "Invalid", format!("{} \"{name}\" is invalid: {}", r.kind, text.join(", "))).about(r, name);
        if let Some(d) = e.details.as_mut() {
            d["kind"] = json!(r.kind);
            d["causes"] = Value::Array(
                causes
                    .into_iter()
                    .map(|(field, message)| json!({"reason": "FieldValueInvalid", "message": message, "field": field}))
                    .collect(),
            );
        }
        e
    }

    /// The `Status` object of this error.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

fn qualified(r: &Resource) -> String {
    if r.group.is_empty() {
        r.plural.to_string()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

/// One change, as watches see it.
#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub plural: &'static str,
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
    /// The object before a `MODIFIED` change.
    pub previous: Option<Value>,
}

type Key = (&'static str, String, String);

pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Event>>,
    /// Watches from a resourceVersion below this are too old (410).
    compacted: u64,
    keep: usize,
    file: Option<PathBuf>,
    uids: u64,
    pub events: broadcast::Sender<Arc<Event>>,
}

pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn new_uid(seed: u64) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(seed);
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|l| is_dns_label(l, 63))
}

fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && is_label_value(name) && !name.is_empty()
}

fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && (s.is_empty()
            || (s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// Type errors (400, as decoding fails on the real server) and field
/// validation (422) of an object about to be stored.
pub fn validate(r: &Resource, name: &str, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    }
    for field in ["labels", "annotations"] {
        match obj.pointer(&format!("/metadata/{field}")) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_string()) {
                    return Err(ApiError::bad_request(format!(
                        "json: cannot unmarshal the value of metadata.{field}.{k} into Go value of type string"
                    )));
                }
            }
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal metadata.{field} into Go value of type map[string]string"
                )))
            }
        }
    }
    if r.plural == "configmaps" {
        if let Some(Value::Object(m)) = obj.get("data") {
            if m.values().any(|v| !v.is_string()) {
                return Err(ApiError::bad_request("json: cannot unmarshal data into Go value of type string"));
            }
        }
    }
    let mut causes = Vec::new();
    let name_ok = if r.plural == "services" {
        is_dns_label(name, 63) && name.starts_with(|c: char| c.is_ascii_lowercase())
    } else {
        is_dns_subdomain(name)
    };
    if !name_ok {
        causes.push(("metadata.name".to_string(), format!("Invalid value: \"{name}\": a lowercase RFC 1123 name must consist of lower case alphanumeric characters, '-' or '.'")));
    }
    if let Some(Value::Object(labels)) = obj.pointer("/metadata/labels") {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                causes.push((
                    "metadata.labels".into(),
                    format!(
                        "Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"
                    ),
                ));
            }
            if !is_label_value(v.as_str().unwrap_or_default()) {
                causes.push(("metadata.labels".into(), format!("Invalid value: \"{}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character", v.as_str().unwrap_or_default())));
            }
        }
    }
    if let Some(Value::Object(ann)) = obj.pointer("/metadata/annotations") {
        let mut total = 0usize;
        for (k, v) in ann {
            total += k.len() + v.as_str().map_or(0, str::len);
            if !is_qualified_name(k) {
                causes.push((
                    "metadata.annotations".into(),
                    format!(
                        "Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"
                    ),
                ));
            }
        }
        if total > 256 * 1024 {
            causes.push(("metadata.annotations".into(), "Too long: must have at most 262144 bytes".into()));
        }
    }
    match r.plural {
        "pods" if obj.pointer("/spec/containers").and_then(Value::as_array).is_none_or(Vec::is_empty) => {
            causes.push(("spec.containers".into(), "Required value".into()));
        }
        "endpoints" => {
            for (i, s) in obj.get("subsets").and_then(Value::as_array).into_iter().flatten().enumerate() {
                for list in ["addresses", "notReadyAddresses"] {
                    for (j, a) in s.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
                        let ip = a.get("ip").and_then(Value::as_str).unwrap_or_default();
                        if ip.parse::<std::net::IpAddr>().is_err() {
                            causes.push((
                                format!("subsets[{i}].{list}[{j}].ip"),
                                format!("Invalid value: \"{ip}\": must be a valid IP address"),
                            ));
                        }
                    }
                }
                for (j, p) in s.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
                    let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
                    if !(1..=65535).contains(&port) {
                        causes.push((
                            format!("subsets[{i}].ports[{j}].port"),
                            format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
                        ));
                    }
                }
            }
        }
        "leases" => {
            if let Some(d) = obj.pointer("/spec/leaseDurationSeconds") {
                if d.as_i64().is_none_or(|d| d <= 0) {
                    causes.push((
                        "spec.leaseDurationSeconds".into(),
                        format!("Invalid value: {d}: must be greater than 0"),
                    ));
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(r, name, causes))
    }
}

fn rv_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `obj` without the fields every write replaces, to tell a no-op write.
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    o
}

/// What a write leaves to the server: identity, kind, timestamps.
fn stamp(
    r: &Resource,
    ns: &str,
    name: &str,
    obj: &mut Value,
    old: Option<&Value>,
    rv: u64,
    uid: impl FnOnce() -> String,
) {
    let Value::Object(o) = obj else { return };
    // `kind` and `apiVersion` first, as the API server writes them.
    let mut ordered = Map::new();
    ordered.insert("kind".into(), json!(r.kind));
    ordered.insert("apiVersion".into(), json!(r.api_version));
    for (k, v) in std::mem::take(o) {
        if k != "kind" && k != "apiVersion" {
            ordered.insert(k, v);
        }
    }
    *o = ordered;
    let meta = o.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let Value::Object(m) = meta else { return };
    m.insert("name".into(), json!(name));
    m.insert("namespace".into(), json!(ns));
    m.insert("resourceVersion".into(), json!(rv.to_string()));
    m.remove("generateName").filter(|_| old.is_none()).map(|g| m.insert("generateName".into(), g));
    for field in ["labels", "annotations"] {
        if m.get(field).is_some_and(|v| v.is_null() || v.as_object().is_some_and(Map::is_empty)) {
            m.remove(field);
        }
    }
    match old.and_then(|o| o.get("metadata")) {
        Some(om) => {
            for field in ["uid", "creationTimestamp", "generateName"] {
                match om.get(field) {
                    Some(v) => m.insert(field.into(), v.clone()),
                    None => m.remove(field),
                };
            }
        }
        None => {
            m.insert("uid".into(), json!(uid()));
            m.insert("creationTimestamp".into(), json!(now()));
        }
    }
    if r.plural == "services" && old.is_none() {
        let spec = o.entry("spec").or_insert_with(|| json!({}));
        if spec.is_object() && spec.get("clusterIP").is_none_or(|v| v.as_str().is_none_or(str::is_empty)) {
            spec["clusterIP"] = json!(format!("10.96.{}.{}", (rv >> 8) & 0xff, rv & 0xff));
        }
    }
}

/// Where a watch starts.
pub enum WatchStart {
    /// Replay the recorded changes after this resourceVersion.
    After(u64),
    /// Synthetic `ADDED` events of the current objects first.
    Current,
}

impl Store {
    /// A store kept in `dir` (loaded from it when it holds one), keeping
    /// the last `keep` changes for watches.
    pub fn open(dir: Option<&Path>, keep: usize) -> Result<Store, String> {
        let (events, _) = broadcast::channel(4096);
        let mut store = Store {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 1,
            keep: keep.max(1),
            file: dir.map(|d| d.join("objects.json")),
            uids: 0,
            events,
        };
        if let Some(file) = store.file.clone() {
            match std::fs::read_to_string(&file) {
                Ok(text) => store.load(&text).map_err(|e| format!("{}: {e}", file.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", file.display())),
            }
        }
        Ok(store)
    }

    fn load(&mut self, text: &str) -> Result<(), String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        self.rv = v.get("resourceVersion").and_then(Value::as_u64).ok_or("no resourceVersion")?;
        self.compacted = self.rv;
        for item in v.get("objects").and_then(Value::as_array).into_iter().flatten() {
            let plural = item.get("resource").and_then(Value::as_str).unwrap_or_default();
            let r =
                RESOURCES.iter().find(|r| r.plural == plural).ok_or_else(|| format!("unknown resource {plural:?}"))?;
            let obj = item.get("object").cloned().unwrap_or_default();
            let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string();
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
            self.objects.insert((r.plural, ns, name), obj);
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), ApiError> {
        let Some(file) = &self.file else { return Ok(()) };
        let objects: Vec<Value> =
            self.objects.iter().map(|((p, _, _), o)| json!({"resource": p, "object": o})).collect();
        let text = json!({"resourceVersion": self.rv, "objects": objects}).to_string();
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, file))
            .map_err(|e| ApiError::new(500, "InternalError", format!("writing {}: {e}", file.display())))
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The namespaces that hold objects.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.objects.keys().map(|(_, ns, _)| ns.clone()).collect();
        v.dedup();
        v.sort();
        v.dedup();
        v
    }

    fn record(
        &mut self,
        r: &'static Resource,
        ns: &str,
        kind: &'static str,
        object: Value,
        previous: Option<Value>,
    ) -> Result<(), ApiError> {
        self.persist()?;
        let ev = Arc::new(Event { rv: self.rv, plural: r.plural, namespace: ns.into(), kind, object, previous });
        self.history.push_back(ev.clone());
        while self.history.len() > self.keep {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        let _ = self.events.send(ev);
        Ok(())
    }

    pub fn get(&self, r: &'static Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects.get(&(r.plural, ns.into(), name.into())).cloned().ok_or_else(|| ApiError::not_found(r, name))
    }

    /// The objects of kind `r` in `ns` (every namespace when `None`) that
    /// the selectors match.
    pub fn list(&self, r: &'static Resource, ns: Option<&str>, labels: &Selector, fields: &Selector) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((p, n, _), o)| {
                *p == r.plural && ns.is_none_or(|ns| ns == n) && labels.matches_labels(o) && fields.matches_fields(o)
            })
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Create; `dry_run` checks and answers without storing.
    pub fn create(&mut self, r: &'static Resource, ns: &str, mut obj: Value, dry_run: bool) -> Result<Value, ApiError> {
        let body_ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(ns);
        if body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let mut name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            match obj.pointer("/metadata/generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let uid = new_uid(self.rv);
                    name = format!("{prefix}{}", &uid[..5]);
                }
                _ => {
                    return Err(ApiError::invalid(
                        r,
                        "",
                        vec![("metadata.name".into(), "Required value: name or generateName is required".into())],
                    ))
                }
            }
        }
        if obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        validate(r, &name, &obj)?;
        let key = (r.plural, ns.to_string(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(r, &name));
        }
        let rv = self.rv + 1;
        self.uids += 1;
        let seed = self.uids;
        stamp(r, ns, &name, &mut obj, None, rv, || new_uid(seed));
        if dry_run {
            return Ok(obj);
        }
        self.rv = rv;
        self.objects.insert(key, obj.clone());
        self.record(r, ns, "ADDED", obj.clone(), None)?;
        Ok(obj)
    }

    /// Store `new` in place of `name` (PUT, or PATCH after the patch was
    /// applied). `precondition` is the resourceVersion the caller wrote.
    pub fn update(
        &mut self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        mut new: Value,
        dry_run: bool,
        allow_create: bool,
    ) -> Result<Value, ApiError> {
        let key = (r.plural, ns.to_string(), name.to_string());
        let Some(old) = self.objects.get(&key).cloned() else {
            if allow_create {
                return self.create(r, ns, new, dry_run);
            }
            return Err(ApiError::not_found(r, name));
        };
        if let Some(want) = rv_of(&new) {
            if Some(want) != rv_of(&old) {
                return Err(ApiError::conflict(
                    r,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
        }
        validate(r, name, &new)?;
        let current = self.rv;
        stamp(r, ns, name, &mut new, Some(&old), current, String::new);
        if comparable(&new) == comparable(&old) {
            // A write that changes nothing keeps the resourceVersion and
            // sends no event, as on the API server.
            return Ok(old);
        }
        let rv = self.rv + 1;
        if let Some(m) = new.get_mut("metadata") {
            m["resourceVersion"] = json!(rv.to_string());
        }
        if dry_run {
            return Ok(new);
        }
        self.rv = rv;
        self.objects.insert(key, new.clone());
        self.record(r, ns, "MODIFIED", new.clone(), Some(old))?;
        Ok(new)
    }

    /// Delete, checking the DeleteOptions preconditions (`uid`,
    /// `resourceVersion`); the deleted object with the deletion's
    /// resourceVersion.
    pub fn delete(
        &mut self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = (r.plural, ns.to_string(), name.to_string());
        let old = self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(r, name))?;
        let pre = options.get("preconditions");
        if let Some(uid) = pre.and_then(|p| p.get("uid")).and_then(Value::as_str) {
            let have = old.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
            if uid != have {
                return Err(ApiError::conflict(
                    r,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                ));
            }
        }
        if let Some(want) = pre.and_then(|p| p.get("resourceVersion")).and_then(Value::as_str) {
            let have = rv_of(&old).unwrap_or_default();
            if want != have {
                return Err(ApiError::conflict(
                    r,
                    name,
                    &format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have}"),
                ));
            }
        }
        let mut gone = old;
        if dry_run {
            return Ok(gone);
        }
        self.rv += 1;
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.remove(&key);
        self.record(r, ns, "DELETED", gone.clone(), None)?;
        Ok(gone)
    }

    /// Where a watch from `rv` (the query value; empty or `0` for "now,
    /// with the current objects first") starts, or 410 Expired when the
    /// history no longer reaches back that far.
    pub fn watch_start(&self, rv: &str) -> Result<WatchStart, ApiError> {
        if rv.is_empty() || rv == "0" {
            return Ok(WatchStart::Current);
        }
        let n: u64 = rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
        if n < self.compacted {
            return Err(ApiError::new(410, "Expired", format!("too old resource version: {n} ({})", self.compacted)));
        }
        Ok(WatchStart::After(n))
    }

    /// The recorded changes after `rv`.
    pub fn history_after(&self, rv: u64) -> Vec<Arc<Event>> {
        self.history.iter().filter(|e| e.rv > rv).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm() -> &'static Resource {
        resource("", "configmaps").unwrap_or(&RESOURCES[0])
    }

    #[test]
    fn resource_versions_and_conflicts() {
        let mut s = Store::open(None, 100).unwrap_or_else(|e| panic!("{e}"));
        let r = cm();
        let a =
            s.create(r, "ns", json!({"metadata": {"name": "a", "annotations": {"x": "1"}}}), false).unwrap_or_default();
        let rv1 = rv_of(&a).unwrap_or_default().to_string();
        assert_eq!(
            s.create(r, "ns", json!({"metadata": {"name": "a"}}), false).err().map(|e| (e.code, e.reason)),
            Some((409, "AlreadyExists"))
        );
        // The same name in another namespace is another object.
        assert!(s.create(r, "other", json!({"metadata": {"name": "a"}}), false).is_ok());
        type Want = Result<(), (u16, &'static str)>;
        let cases: Vec<(Value, Want)> = vec![
            (json!({"metadata": {"name": "a", "resourceVersion": "999"}}), Err((409, "Conflict"))),
            (json!({"metadata": {"name": "a", "resourceVersion": rv1, "annotations": {"x": "2"}}}), Ok(())),
            (json!({"metadata": {"name": "a", "resourceVersion": rv1}}), Err((409, "Conflict"))),
            (json!({"metadata": {"name": "a", "annotations": {"x": "3"}}}), Ok(())),
            (json!({"metadata": {"name": "a", "labels": {"bad": "-x"}}}), Err((422, "Invalid"))),
            (json!({"metadata": {"name": "a", "labels": {"n": 1}}}), Err((400, "BadRequest"))),
        ];
        for (body, want) in cases {
            let got = s.update(r, "ns", "a", body.clone(), false, false).map(|_| ()).map_err(|e| (e.code, e.reason));
            assert_eq!(got, want, "{body}");
        }
        let now = s.get(r, "ns", "a").unwrap_or_default();
        assert_eq!(now.pointer("/metadata/annotations/x"), Some(&json!("3")));
        assert_eq!(now.pointer("/metadata/uid"), a.pointer("/metadata/uid"));
        // A write that changes nothing keeps the resourceVersion.
        let before = s.resource_version();
        let same = s.update(r, "ns", "a", now.clone(), false, false).unwrap_or_default();
        assert_eq!(rv_of(&same), rv_of(&now));
        assert_eq!(s.resource_version(), before);
        // Delete preconditions.
        let stale = json!({"preconditions": {"resourceVersion": rv1}});
        assert_eq!(s.delete(r, "ns", "a", &stale, false).err().map(|e| e.code), Some(409));
        let fresh = json!({"preconditions": {"resourceVersion": rv_of(&now)}});
        assert!(s.delete(r, "ns", "a", &fresh, false).is_ok());
        assert_eq!(s.get(r, "ns", "a").err().map(|e| e.code), Some(404));
        assert_eq!(
            s.update(r, "ns", "a", json!({"metadata": {"name": "a"}}), false, false).err().map(|e| e.code),
            Some(404)
        );
    }

    #[test]
    fn watch_history_is_bounded() {
        let mut s = Store::open(None, 2).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..5 {
            s.create(cm(), "ns", json!({"metadata": {"name": format!("c{i}")}}), false).unwrap_or_default();
        }
        assert!(matches!(s.watch_start("1"), Err(ApiError { code: 410, .. })));
        let rv = s.resource_version();
        assert!(matches!(s.watch_start(&(rv - 1).to_string()), Ok(WatchStart::After(_))));
        assert_eq!(s.history_after(rv - 1).len(), 1);
        assert!(matches!(s.watch_start("x"), Err(ApiError { code: 400, .. })));
    }

    #[test]
    fn names() {
        for (n, ok) in [("a", true), ("a.b-c", true), ("A", false), ("-a", false), ("", false), ("a_b", false)] {
            assert_eq!(is_dns_subdomain(n), ok, "{n}");
        }
        for (v, ok) in [("", true), ("primary", true), ("a-b_c.d", true), ("-a", false), ("a b", false)] {
            assert_eq!(is_label_value(v), ok, "{v}");
        }
    }
}
