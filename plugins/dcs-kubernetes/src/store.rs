//! [`Kubernetes`]: the DCS contract on the Kubernetes API, operation by
//! operation as Patroni's kubernetes module does it (see
//! `docs/plugins/dcs-kubernetes.md`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Pod, Service};
use kube::api::{ApiResource, DynamicObject};
use palisade_plugin_api::sdk::dcs;
use palisade_plugin_api::{sdk, Dcs, DcsParams, DcsSnapshot, DcsTiming, LeaderKey, PluginError, PluginResult};
use serde_json::{json, Value};

use crate::annotations::{self, Changes};
use crate::connection::{Budget, Connection, Failure};
use crate::names::{self, Names, CITUS_GROUP_LABEL};
use crate::settings::Settings;
use crate::snapshot::{self, Observed, Read};

/// What the last read (and our own writes since) showed.
#[derive(Default)]
pub(crate) struct Memo {
    /// The leader object (ConfigMap, Endpoints or Lease) as last seen.
    pub leader: Option<DynamicObject>,
    pub observed: Observed,
    /// The leader object's resourceVersion at the last `get_cluster`.
    pub leader_rv: Option<String>,
    /// The leader the last snapshot showed (for the role label).
    pub cluster_leader: Option<String>,
    pub own_pod: Option<DynamicObject>,
    /// The list's resourceVersion, where the watch starts.
    pub list_rv: Option<String>,
    /// The config annotation as last seen (the watch wakes on changes).
    pub config: Option<String>,
}

pub struct Kubernetes {
    pub(crate) name: String,
    pub(crate) settings: Settings,
    pub(crate) names: Names,
    pub(crate) conn: Connection,
    /// ConfigMap, or Endpoints with `use_endpoints`.
    pub(crate) kind: ApiResource,
    pub(crate) pods: ApiResource,
    pub(crate) services: ApiResource,
    pub(crate) leases: ApiResource,
    timing: Mutex<DcsTiming>,
    pub(crate) memo: Mutex<Memo>,
    /// The scope, for the object names of every Citus group.
    scope: String,
    /// Each Citus group's leader record as `get_mpp_groups` last saw it
    /// change (the lock expires on the reader's side).
    group_observed: Mutex<BTreeMap<i32, Observed>>,
    pub(crate) do_not_watch: AtomicBool,
    pub(crate) should_create_config_service: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Patroni's `_isotime`: now, ISO 8601 with microseconds and `+00:00`.
fn isotime() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// A Lease's MicroTime.
fn microtime() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

const BOOTSTRAP_STATES: [&str; 4] = [
    "initializing new cluster",
    "running custom bootstrap script",
    "starting after custom bootstrap",
    "creating replica",
];

impl Kubernetes {
    pub fn new(params: DcsParams) -> PluginResult<Self> {
        // Each cdylib has its own rustls: give this one its provider. An
        // error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = Settings::parse(&params.section_json, &params.scope, params.group)?;
        let names = Names::new(&params.scope, params.group, settings.use_endpoints);
        let conn = Connection::new(&settings)?;
        let kind = if settings.use_endpoints {
            ApiResource::erase::<Endpoints>(&())
        } else {
            ApiResource::erase::<ConfigMap>(&())
        };
        tracing::debug!(
            "kubernetes for {} in namespace {} on {} ({})",
            params.name,
            settings.namespace,
            conn.server(),
            if settings.leader_lease {
                "lease"
            } else if settings.use_endpoints {
                "endpoints"
            } else {
                "configmaps"
            }
        );
        Ok(Self {
            name: params.name,
            should_create_config_service: AtomicBool::new(settings.use_endpoints),
            settings,
            names,
            conn,
            kind,
            pods: ApiResource::erase::<Pod>(&()),
            services: ApiResource::erase::<Service>(&()),
            leases: ApiResource::erase::<Lease>(&()),
            timing: Mutex::new(params.timing),
            memo: Mutex::new(Memo::default()),
            scope: params.scope,
            group_observed: Mutex::new(BTreeMap::new()),
            do_not_watch: AtomicBool::new(false),
        })
    }

    pub(crate) fn timing(&self) -> DcsTiming {
        *lock(&self.timing)
    }

    /// Patroni keeps `ttl` as whole seconds.
    pub(crate) fn ttl(&self) -> u64 {
        self.timing().ttl.as_secs().max(1)
    }

    pub(crate) fn budget(&self) -> Budget {
        Budget::new(self.timing().retry_timeout)
    }

    fn lease_mode(&self) -> bool {
        self.settings.leader_lease
    }

    /// Where the lock lives: the Lease, or the ConfigMap/Endpoints.
    pub(crate) fn leader_target(&self) -> (&ApiResource, String) {
        if self.lease_mode() {
            (&self.leases, self.names.lease())
        } else {
            (&self.kind, self.names.leader())
        }
    }

    fn run<T>(&self, what: &str, fut: impl Future<Output = Result<T, Failure>>) -> PluginResult<T> {
        sdk::runtime().block_on(fut).map_err(|f| f.into_plugin_error(what))
    }

    fn remember_leader(&self, obj: Option<DynamicObject>) {
        lock(&self.memo).leader = obj;
    }

    /// The body of a lock write: the record as annotations (plus the
    /// Endpoints subsets), or as the Lease's spec.
    fn lock_body(&self, record: &Changes, version: Option<&str>, create: bool, subsets: Option<Value>) -> Value {
        if !self.lease_mode() {
            let mut body = json!({ "metadata": self.metadata(Some(record), version, create) });
            if let Some(s) = subsets {
                body["subsets"] = s;
            }
            return body;
        }
        let get = |k: &str| record.get(k).cloned().flatten();
        let int = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
        let mut spec = serde_json::Map::new();
        spec.insert("holderIdentity".into(), get(names::LEADER).map(Value::String).unwrap_or(Value::Null));
        for (ours, field) in [(names::TTL, "leaseDurationSeconds"), (names::TRANSITIONS, "leaseTransitions")] {
            if let Some(v) = int(ours) {
                spec.insert(field.into(), Value::from(v));
            }
        }
        for (ours, field) in [(names::ACQUIRE_TIME, "acquireTime"), (names::RENEW_TIME, "renewTime")] {
            if let Some(v) = get(ours) {
                spec.insert(field.into(), Value::String(v));
            }
        }
        json!({ "metadata": self.metadata(None, version, create), "spec": spec })
    }

    /// Write the lock: a compare-and-set patch with `version`, a create without.
    async fn write_lock(
        &self,
        budget: &Budget,
        record: &Changes,
        version: Option<&str>,
        ips: Option<Vec<String>>,
    ) -> Result<DynamicObject, Failure> {
        let (ar, name) = self.leader_target();
        let subsets = ips.and_then(|ips| self.subsets(&ips));
        match version {
            Some(v) => self.patch(budget, ar, &name, self.lock_body(record, Some(v), false, subsets)).await,
            None => self.create(budget, ar, &name, self.lock_body(record, None, true, subsets)).await,
        }
    }

    fn now_times(&self) -> String {
        if self.lease_mode() {
            microtime()
        } else {
            isotime()
        }
    }

    /// The `ips` Patroni passes for the leader's Endpoints subsets.
    fn own_ips(&self) -> Option<Vec<String>> {
        self.settings.use_endpoints.then(|| vec![self.settings.pod_ip.clone()])
    }

    async fn acquire(&self) -> Result<bool, Failure> {
        let budget = self.budget();
        let now = self.now_times();
        let (observed, mut version, cached) = {
            let memo = lock(&self.memo);
            if self.held_by_another(&memo) {
                tracing::info!("Could not take out TTL lock: {} holds it", self.leader_target().1);
                return Ok(false);
            }
            (memo.observed.record.clone(), memo.leader_rv.clone(), memo.leader.clone())
        };
        let mut record: Changes = [
            (names::LEADER, Some(self.name.clone())),
            (names::TTL, Some(self.ttl().to_string())),
            (names::RENEW_TIME, Some(now.clone())),
            (names::ACQUIRE_TIME, Some(now.clone())),
            (names::TRANSITIONS, Some("0".to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if !observed.is_empty() {
            let mut transitions =
                observed.get(names::TRANSITIONS).and_then(|t| t.trim().parse::<i64>().ok()).unwrap_or(0);
            if observed.get(names::LEADER) != Some(&self.name) {
                transitions += 1;
            } else {
                let acquired = observed.get(names::ACQUIRE_TIME).filter(|a| !a.is_empty()).cloned().unwrap_or(now);
                record.insert(names::ACQUIRE_TIME.into(), Some(acquired));
            }
            record.insert(names::TRANSITIONS.into(), Some(transitions.to_string()));
        }
        if let (Some(v), Some(obj)) = (&version, &cached) {
            // Our own write since the read moved the object on: use its
            // version, provided the lock fields did not change.
            let rv = snapshot::rv_of(obj);
            let now_record = snapshot::record_of(obj, self.lease_mode());
            if rv.as_ref() != Some(v) && record.keys().all(|k| now_record.get(k) == observed.get(k)) {
                version = rv;
            }
        }
        let result = self.write_lock(&budget, &record, version.as_deref(), self.own_ips()).await;
        let acquired = match result {
            Ok(obj) => {
                self.remember_leader(Some(obj));
                true
            }
            Err(Failure::Conflict) if version.is_some() && budget.remaining().as_secs_f64() >= 1.0 => {
                // Our first attempt may have succeeded before a retry: see.
                let (ar, name) = self.leader_target();
                let fresh = self.get(&budget, ar, &name).await?;
                let mine = fresh.as_ref().is_some_and(|o| {
                    let r = snapshot::record_of(o, self.lease_mode());
                    snapshot::rv_of(o) != version && record.iter().all(|(k, v)| r.get(k) == v.as_ref())
                });
                self.remember_leader(fresh);
                mine
            }
            Err(Failure::AlreadyExists) if version.is_none() => {
                // We never saw the object (a new client): take it only if
                // it holds no lock at all; a holder must first be seen to
                // stop renewing for ttl.
                let (ar, name) = self.leader_target();
                let fresh = self.get(&budget, ar, &name).await?;
                self.remember_leader(fresh.clone());
                match fresh {
                    Some(obj) if !snapshot::record_of(&obj, self.lease_mode()).contains_key(names::LEADER) => {
                        let rv = snapshot::rv_of(&obj);
                        match self.write_lock(&budget, &record, rv.as_deref(), self.own_ips()).await {
                            Ok(obj) => {
                                self.remember_leader(Some(obj));
                                true
                            }
                            Err(Failure::Conflict | Failure::AlreadyExists | Failure::NotFound) => false,
                            Err(e) => return Err(e),
                        }
                    }
                    _ => false,
                }
            }
            Err(Failure::Conflict | Failure::AlreadyExists | Failure::NotFound) => false,
            Err(e) => return Err(e),
        };
        if !acquired {
            tracing::info!("Could not take out TTL lock");
        }
        Ok(acquired)
    }

    /// `take_leader`: the lock becomes ours whoever holds it (after a
    /// bootstrap), a compare-and-set on the object as it is now.
    async fn take(&self) -> Result<bool, Failure> {
        let budget = self.budget();
        let (ar, name) = self.leader_target();
        for _ in 0..3 {
            let fresh = self.get(&budget, ar, &name).await?;
            let seen = fresh.as_ref().map(|o| snapshot::record_of(o, self.lease_mode())).unwrap_or_default();
            let now = self.now_times();
            let holder = seen.get(names::LEADER);
            let mut transitions = seen.get(names::TRANSITIONS).and_then(|t| t.trim().parse::<i64>().ok()).unwrap_or(0);
            let acquired = if holder == Some(&self.name) {
                seen.get(names::ACQUIRE_TIME).filter(|a| !a.is_empty()).cloned().unwrap_or_else(|| now.clone())
            } else {
                if holder.is_some() {
                    transitions += 1;
                }
                now.clone()
            };
            let record: Changes = [
                (names::LEADER, self.name.clone()),
                (names::TTL, self.ttl().to_string()),
                (names::RENEW_TIME, now),
                (names::ACQUIRE_TIME, acquired),
                (names::TRANSITIONS, transitions.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Some(v)))
            .collect();
            let version = fresh.as_ref().and_then(snapshot::rv_of);
            self.remember_leader(fresh);
            match self.write_lock(&budget, &record, version.as_deref(), self.own_ips()).await {
                Ok(obj) => {
                    self.remember_leader(Some(obj));
                    return Ok(true);
                }
                Err(Failure::Conflict | Failure::AlreadyExists | Failure::NotFound) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Whether the last read showed a lock that is still alive (its record
    /// changed less than its ttl ago) and not ours: Patroni leaves that
    /// check to its HA loop, the contract asks the store to refuse.
    fn held_by_another(&self, memo: &Memo) -> bool {
        let record = &memo.observed.record;
        let Some(holder) = record.get(names::LEADER) else { return false };
        let ttl =
            record.get(names::TTL).and_then(|t| t.trim().parse::<u64>().ok()).filter(|t| *t > 0).unwrap_or(self.ttl());
        let alive = memo.observed.at.is_some_and(|at| at.elapsed() <= std::time::Duration::from_secs(ttl));
        alive && holder != &self.name
    }

    async fn renew(&self) -> Result<bool, Failure> {
        let budget = self.budget();
        let (cached, observed) = {
            let memo = lock(&self.memo);
            (memo.leader.clone(), memo.observed.record.clone())
        };
        let kind_record = cached.as_ref().map(|o| snapshot::record_of(o, self.lease_mode())).unwrap_or_default();
        if cached.is_some() && kind_record.get(names::LEADER) != Some(&self.name) {
            return Ok(false);
        }
        let now = self.now_times();
        let seen = if kind_record.is_empty() { observed } else { kind_record };
        let keep = |k: &str, default: String| seen.get(k).filter(|v| !v.is_empty()).cloned().unwrap_or(default);
        let record: Changes = [
            (names::LEADER, self.name.clone()),
            (names::TTL, self.ttl().to_string()),
            (names::RENEW_TIME, now.clone()),
            (names::ACQUIRE_TIME, keep(names::ACQUIRE_TIME, now)),
            (names::TRANSITIONS, keep(names::TRANSITIONS, "0".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Some(v)))
        .collect();
        let version = cached.as_ref().and_then(snapshot::rv_of);
        match self.write_lock(&budget, &record, version.as_deref(), self.own_ips()).await {
            Ok(obj) => {
                self.remember_leader(Some(obj));
                return Ok(true);
            }
            Err(Failure::Conflict) => tracing::warn!("Concurrent update of {}", self.leader_target().1),
            Err(Failure::NotFound | Failure::AlreadyExists) => return Ok(false),
            Err(e) => return Err(e),
        }
        if budget.remaining().as_secs_f64() < 1.0 {
            return Ok(false);
        }
        // Read the object itself rather than trusting what we saw.
        let (ar, name) = self.leader_target();
        let fresh = self.get(&budget, ar, &name).await?;
        self.remember_leader(fresh.clone());
        let fresh_version = fresh.as_ref().and_then(snapshot::rv_of);
        if let Some(obj) = &fresh {
            let r = snapshot::record_of(obj, self.lease_mode());
            if r.get(names::LEADER) != Some(&self.name) || fresh_version == version {
                return Ok(false);
            }
            // The conflict may be with our own first attempt.
            if record.iter().all(|(k, v)| r.get(k) == v.as_ref()) {
                return Ok(true);
            }
        }
        if budget.remaining().as_secs_f64() < 0.5 {
            return Ok(false);
        }
        match self.write_lock(&budget, &record, fresh_version.as_deref(), self.own_ips()).await {
            Ok(obj) => {
                self.remember_leader(Some(obj));
                Ok(true)
            }
            Err(Failure::Conflict | Failure::NotFound | Failure::AlreadyExists) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release(&self) -> Result<bool, Failure> {
        let budget = self.budget();
        let cached = lock(&self.memo).leader.clone();
        let Some(obj) = cached else { return Ok(false) };
        if snapshot::record_of(&obj, self.lease_mode()).get(names::LEADER) != Some(&self.name) {
            return Ok(false);
        }
        let version = snapshot::rv_of(&obj);
        let (ar, name) = self.leader_target();
        let body = if self.lease_mode() {
            json!({ "metadata": self.metadata(None, version.as_deref(), false), "spec": {"holderIdentity": null} })
        } else {
            let record: Changes = [(names::LEADER.to_string(), None)].into_iter().collect();
            let subsets = self.own_ips().and_then(|_| self.subsets(&[]));
            let mut b = json!({ "metadata": self.metadata(Some(&record), version.as_deref(), false) });
            if let Some(s) = subsets {
                b["subsets"] = s;
            }
            b
        };
        match self.patch(&budget, ar, &name, body).await {
            Ok(obj) => {
                let mut memo = lock(&self.memo);
                memo.leader = Some(obj);
                memo.cluster_leader = None;
                Ok(true)
            }
            Err(Failure::Conflict | Failure::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Patch annotations of the leader object (status, failsafe) without
    /// a version, creating the object (without a lock) when missing.
    async fn annotate_leader(&self, changes: &Changes) -> Result<bool, Failure> {
        let budget = self.budget();
        let (ar, name) = self.leader_target();
        let body = json!({ "metadata": self.metadata(Some(changes), None, false) });
        let written = match self.patch(&budget, ar, &name, body).await {
            Err(Failure::NotFound) => {
                // No leader object yet: one without a lock holds the state.
                let mut body = json!({ "metadata": self.metadata(Some(changes), None, true) });
                if self.lease_mode() {
                    body["spec"] = json!({});
                }
                self.create(&budget, ar, &name, body).await
            }
            other => other,
        };
        match written {
            Ok(obj) => {
                self.remember_leader(Some(obj));
                Ok(true)
            }
            Err(Failure::NotFound | Failure::Conflict | Failure::AlreadyExists) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn write_config(&self, changes: &Changes, version: Option<&str>) -> Result<Option<DynamicObject>, Failure> {
        let budget = self.budget();
        self.write_kind(&budget, &self.names.config(), changes, version, None).await
    }

    async fn read_cluster(&self) -> Result<DcsSnapshot, Failure> {
        let budget = self.budget();
        let (kinds, list_rv) = self.list(&budget, &self.kind).await?;
        let (pods, _) = self.list(&budget, &self.pods).await?;
        let lease = if self.lease_mode() { self.get(&budget, &self.leases, &self.names.lease()).await? } else { None };
        let read = Read {
            names: &self.names,
            kinds: &kinds,
            pods: &pods,
            lease: lease.as_ref(),
            lease_mode: self.lease_mode(),
            ttl: self.ttl(),
        };
        let mut memo = lock(&self.memo);
        let snapshot = snapshot::build(&read, &mut memo.observed, std::time::Instant::now());
        let leader = snapshot::leader_object(&read).cloned();
        memo.leader_rv = leader.as_ref().and_then(snapshot::rv_of);
        memo.leader = leader;
        memo.cluster_leader = snapshot.leader.as_ref().map(|l| l.name.clone());
        memo.own_pod = pods.iter().find(|p| p.metadata.name.as_deref() == Some(self.name.as_str())).cloned();
        memo.list_rv = list_rv;
        memo.config = snapshot.config.as_ref().map(|c| c.value.clone());
        Ok(snapshot)
    }

    /// Every Citus group of the scope: the objects of the whole scope,
    /// sorted by their group label (Patroni's `_mpp_cluster_loader`), each
    /// group read as `read_cluster` reads ours. The leader of each group
    /// expires on this reader's side as ours does, with its own record.
    async fn read_groups(&self) -> Result<BTreeMap<i32, DcsSnapshot>, Failure> {
        let budget = self.budget();
        let selector = &self.settings.scope_selector;
        let (kinds, _) = self.list_selected(&budget, &self.kind, selector).await?;
        let (pods, _) = self.list_selected(&budget, &self.pods, selector).await?;
        let group_of = |o: &DynamicObject| {
            o.metadata.labels.as_ref().and_then(|l| l.get(CITUS_GROUP_LABEL)).and_then(|g| dcs::parse_group(g))
        };
        let mut by_group: BTreeMap<i32, (Vec<DynamicObject>, Vec<DynamicObject>)> = BTreeMap::new();
        for k in kinds {
            if let Some(g) = group_of(&k) {
                by_group.entry(g).or_default().0.push(k);
            }
        }
        for p in pods {
            if let Some(g) = group_of(&p) {
                by_group.entry(g).or_default().1.push(p);
            }
        }
        let mut groups = BTreeMap::new();
        for (group, (kinds, pods)) in by_group {
            let names = Names::new(&self.scope, Some(group), self.settings.use_endpoints);
            let lease = if self.lease_mode() { self.get(&budget, &self.leases, &names.lease()).await? } else { None };
            let read = Read {
                names: &names,
                kinds: &kinds,
                pods: &pods,
                lease: lease.as_ref(),
                lease_mode: self.lease_mode(),
                ttl: self.ttl(),
            };
            let mut observed = lock(&self.group_observed);
            let snapshot = snapshot::build(&read, observed.entry(group).or_default(), std::time::Instant::now());
            // Only Pods without a member in them yet: no key of the group exists.
            if snapshot != DcsSnapshot::default() {
                groups.insert(group, snapshot);
            }
        }
        Ok(groups)
    }

    /// The role labels Patroni puts on our Pod for this member state.
    pub(crate) fn pod_labels(&self, data: &serde_json::Map<String, Value>, is_leader: bool) -> Changes {
        let role = data.get("role").and_then(Value::as_str).unwrap_or("");
        let state = data.get("state").and_then(Value::as_str).unwrap_or("");
        let s = &self.settings;
        let (role_value, tmp) = if is_leader {
            let v = if role == "standby_leader" { &s.standby_leader_label_value } else { &s.leader_label_value };
            (Some(v.clone()), Some("primary".to_string()))
        } else if state == "running" && role != "primary" {
            let v = if role == "replica" { s.follower_label_value.clone() } else { role.to_string() };
            (Some(v), Some(role.to_string()))
        } else {
            (None, None)
        };
        let mut labels = Changes::new();
        labels.insert(s.role_label.clone(), role_value);
        if let Some(t) = &s.tmp_role_label {
            labels.insert(t.clone(), tmp);
        }
        let bootstrapping = BOOTSTRAP_STATES.contains(&state);
        for (k, v) in &s.bootstrap_labels {
            labels.insert(k.clone(), bootstrapping.then(|| v.clone()));
        }
        labels
    }

    async fn touch(&self, data: &str) -> Result<bool, Failure> {
        let budget = self.budget();
        let parsed = match serde_json::from_str::<Value>(data) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Failure::Refused("touch_member: the member data is not a JSON object".into())),
        };
        let (is_leader, pod) = {
            let memo = lock(&self.memo);
            (memo.cluster_leader.as_deref() == Some(self.name.as_str()), memo.own_pod.clone())
        };
        let labels = self.pod_labels(&parsed, is_leader);
        let unchanged = pod.as_ref().is_some_and(|p| {
            let have = p.metadata.labels.clone().unwrap_or_default();
            let status =
                snapshot::annotations_of(p).get(names::STATUS).and_then(|s| serde_json::from_str::<Value>(s).ok());
            labels.iter().all(|(k, v)| have.get(k) == v.as_ref()) && status == Some(Value::Object(parsed.clone()))
        });
        let mut ok = true;
        if !unchanged {
            let body = json!({
                "metadata": {
                    "labels": annotations::patch_value(&labels),
                    "annotations": {names::STATUS: data},
                }
            });
            ok = match self.patch(&budget, &self.pods, &self.name, body).await {
                Ok(p) => {
                    lock(&self.memo).own_pod = Some(p);
                    true
                }
                Err(Failure::NotFound) => {
                    tracing::warn!(
                        "there is no Pod named '{}' in namespace '{}': the member state cannot be written",
                        self.name,
                        self.settings.namespace
                    );
                    false
                }
                Err(Failure::Conflict) => false,
                Err(e) => return Err(e),
            };
        }
        self.create_config_service(&budget).await;
        Ok(ok)
    }

    async fn init(&self, create_new: bool, sysid: &str) -> Result<bool, Failure> {
        let budget = self.budget();
        let changes: Changes = [(names::INITIALIZE.to_string(), Some(sysid.to_string()))].into_iter().collect();
        if !create_new {
            return Ok(self.write_config(&changes, None).await?.is_some());
        }
        // Create once: a new object, or a compare-and-set on the existing
        // one that has no initialize annotation yet.
        let name = self.names.config();
        let existing = self.get(&budget, &self.kind, &name).await?;
        let version = match &existing {
            Some(obj) if snapshot::annotations_of(obj).contains_key(names::INITIALIZE) => return Ok(false),
            Some(obj) => snapshot::rv_of(obj),
            None => None,
        };
        if let Some(v) = version {
            return Ok(self.write_kind(&budget, &name, &changes, Some(&v), None).await?.is_some());
        }
        if self.settings.use_endpoints {
            self.create_config_service(&budget).await;
        }
        let body = json!({ "metadata": self.metadata(Some(&changes), None, true) });
        match self.create(&budget, &self.kind, &name, body).await {
            Ok(_) => Ok(true),
            Err(Failure::AlreadyExists | Failure::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Dcs for Kubernetes {
    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        self.run("get_cluster", self.read_cluster())
    }

    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>> {
        self.run("get_mpp_groups", self.read_groups())
    }

    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        self.run("attempt_to_acquire_leader", self.acquire())
    }

    fn update_leader(&self, _leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.run("update_leader", self.renew())
    }

    fn take_leader(&self) -> PluginResult<bool> {
        self.run("take_leader", self.take())
    }

    fn delete_leader(&self, _leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.run("delete_leader", self.release())
    }

    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool> {
        self.run("initialize", self.init(create_new, sysid))
    }

    fn cancel_initialization(&self) -> PluginResult<bool> {
        let changes: Changes = [(names::INITIALIZE.to_string(), None)].into_iter().collect();
        self.run("cancel_initialization", async {
            let budget = self.budget();
            let body = json!({ "metadata": self.metadata(Some(&changes), None, false) });
            match self.patch(&budget, &self.kind, &self.names.config(), body).await {
                Ok(_) | Err(Failure::NotFound) => Ok(true),
                Err(Failure::Conflict) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn touch_member(&self, data: &str) -> PluginResult<bool> {
        self.run("touch_member", self.touch(data))
    }

    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        let changes: Changes = [(names::CONFIG.to_string(), Some(value.to_string()))].into_iter().collect();
        self.run("set_config_value", async { Ok(self.write_config(&changes, version).await?.is_some()) })
    }

    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        let changes = annotations::failover_changes(value)?;
        self.run("set_failover_value", async {
            let budget = self.budget();
            Ok(self.write_kind(&budget, &self.names.failover(), &changes, version, None).await?.is_some())
        })
    }

    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>> {
        let changes = annotations::sync_changes(value)?;
        self.run("set_sync_state_value", async {
            let budget = self.budget();
            let written = self.write_kind(&budget, &self.names.sync(), &changes, version, None).await?;
            Ok(written.map(|o| snapshot::rv_of(&o).unwrap_or_default()))
        })
    }

    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool> {
        let changes = annotations::sync_changes("{}")?;
        self.run("delete_sync_state", async {
            let budget = self.budget();
            Ok(self.write_kind(&budget, &self.names.sync(), &changes, version, None).await?.is_some())
        })
    }

    fn set_history_value(&self, value: &str) -> PluginResult<bool> {
        let changes: Changes = [(names::HISTORY.to_string(), Some(value.to_string()))].into_iter().collect();
        self.run("set_history_value", async { Ok(self.write_config(&changes, None).await?.is_some()) })
    }

    fn write_status(&self, value: &str) -> PluginResult<bool> {
        let changes = annotations::status_changes(value)?;
        self.run("write_status", self.annotate_leader(&changes))
    }

    fn write_failsafe(&self, value: &str) -> PluginResult<bool> {
        let v = (!value.is_empty() && value != "{}").then(|| value.to_string());
        let changes: Changes = [(names::FAILSAFE.to_string(), v)].into_iter().collect();
        self.run("write_failsafe", self.annotate_leader(&changes))
    }

    fn delete_cluster(&self) -> PluginResult<bool> {
        self.run("delete_cluster", async {
            let budget = self.budget();
            self.delete_collection(&budget, &self.kind).await?;
            if self.lease_mode() {
                self.delete(&budget, &self.leases, &self.names.lease()).await?;
            }
            // The members' state goes too (Patroni leaves it on the Pods).
            let (pods, _) = self.list(&budget, &self.pods).await?;
            for pod in pods.iter().filter(|p| snapshot::annotations_of(p).contains_key(names::STATUS)) {
                let Some(name) = pod.metadata.name.as_deref() else { continue };
                let body = json!({"metadata": {"annotations": {names::STATUS: null}}});
                match self.patch(&budget, &self.pods, name, body).await {
                    Ok(_) | Err(Failure::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            *lock(&self.memo) = Memo::default();
            Ok(true)
        })
    }

    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()> {
        let mut t = lock(&self.timing);
        if t.ttl.as_secs() != timing.ttl.as_secs() {
            // Patroni skips the next watch so the new ttl is written at once.
            self.do_not_watch.store(true, Ordering::Relaxed);
        }
        *t = timing;
        Ok(())
    }

    fn watch(&self, leader_version: Option<&str>, timeout: std::time::Duration) -> PluginResult<bool> {
        if self.do_not_watch.swap(false, Ordering::Relaxed) {
            return Ok(true);
        }
        // Patroni gives replicas half a second more, so that their loops
        // follow the leader's.
        let timeout = if leader_version.is_some() { timeout + std::time::Duration::from_millis(500) } else { timeout };
        Ok(sdk::runtime().block_on(self.wait_for_change(timeout)))
    }
}

impl From<Failure> for PluginError {
    fn from(f: Failure) -> Self {
        f.into_plugin_error("kubernetes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(role: &str, state: &str) -> serde_json::Map<String, Value> {
        match json!({"role": role, "state": state}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    /// A plugin without a server, for the pure parts (labels, bodies). The
    /// kubeconfig is written once: tests run on parallel threads, and one
    /// rewriting it while another reads it made the read fail.
    fn offline(section: &str) -> Option<Kubernetes> {
        static KUBECONFIG: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
        let kubeconfig = KUBECONFIG.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("palisade-k8s-unit-{}", std::process::id()));
            std::fs::create_dir_all(&dir).ok()?;
            let kubeconfig = dir.join("config");
            std::fs::write(
                &kubeconfig,
                "apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: t\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: t\nusers:\n- name: t\n  user: {}\n",
            )
            .ok()?;
            std::env::set_var("KUBECONFIG", &kubeconfig);
            Some(kubeconfig)
        });
        kubeconfig.as_ref()?;
        let params = DcsParams {
            scope: "demo".into(),
            namespace: "/service/".into(),
            name: "n1".into(),
            group: None,
            timing: DcsTiming {
                ttl: std::time::Duration::from_secs(30),
                loop_wait: std::time::Duration::from_secs(10),
                retry_timeout: std::time::Duration::from_secs(1),
            },
            section_json: section.into(),
        };
        Kubernetes::new(params).ok()
    }

    #[test]
    fn role_labels_as_patroni() {
        let k = offline(r#"{"labels":{"app":"pg"},"tmp_role_label":"tmp","bootstrap_labels":{"boot":"yes"}}"#).unwrap();
        let get = |c: &Changes, k: &str| c.get(k).cloned().flatten();
        let l = k.pod_labels(&data("primary", "running"), true);
        assert_eq!((get(&l, "role"), get(&l, "tmp")), (Some("primary".into()), Some("primary".into())));
        let l = k.pod_labels(&data("standby_leader", "running"), true);
        assert_eq!(get(&l, "role"), Some("primary".into()));
        let l = k.pod_labels(&data("replica", "running"), false);
        assert_eq!((get(&l, "role"), get(&l, "tmp")), (Some("replica".into()), Some("replica".into())));
        let l = k.pod_labels(&data("primary", "running"), false);
        assert_eq!(get(&l, "role"), None, "a primary without the lock has no role label");
        let l = k.pod_labels(&data("replica", "creating replica"), false);
        assert_eq!((get(&l, "role"), get(&l, "boot")), (None, Some("yes".into())));
        assert!(l.contains_key("boot"));
        let l = k.pod_labels(&data("replica", "running"), false);
        assert_eq!(l.get("boot"), Some(&None), "bootstrap labels are removed afterwards");

        let legacy =
            offline(r#"{"labels":{},"leader_label_value":"master","follower_label_value":"replica"}"#).unwrap();
        assert_eq!(get(&legacy.pod_labels(&data("primary", "running"), true), "role"), Some("master".into()));
    }

    #[test]
    fn lease_lock_body() {
        let k = offline(r#"{"labels":{"app":"pg"},"leader_lease":true}"#).unwrap();
        let record: Changes = [
            ("leader", Some("n1")),
            ("ttl", Some("30")),
            ("transitions", Some("2")),
            ("renewTime", Some("2030-01-01T00:00:00.000000Z")),
            ("acquireTime", Some("2030-01-01T00:00:00.000000Z")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect();
        let b = k.lock_body(&record, Some("7"), false, None);
        assert_eq!(b["metadata"]["resourceVersion"], "7");
        assert_eq!(b["metadata"]["labels"], json!({"app": "pg", "cluster-name": "demo"}));
        assert_eq!(
            b["spec"],
            json!({"holderIdentity": "n1", "leaseDurationSeconds": 30, "leaseTransitions": 2,
                   "acquireTime": "2030-01-01T00:00:00.000000Z", "renewTime": "2030-01-01T00:00:00.000000Z"})
        );
        let cm = offline(r#"{"labels":{"app":"pg"}}"#).unwrap();
        let b = cm.lock_body(&record, None, true, None);
        assert_eq!(b["metadata"]["annotations"]["leader"], "n1");
        assert_eq!(b["metadata"]["annotations"]["ttl"], "30");
        assert!(b["metadata"].get("resourceVersion").is_none());
    }

    /// An unreachable API server is a DCS error naming it, within retry_timeout.
    #[test]
    fn unreachable_server_is_a_dcs_error() {
        let k = offline(r#"{"labels":{}}"#).unwrap();
        let e = k.get_cluster().unwrap_err();
        assert_eq!(e.kind, palisade_plugin_api::ErrorKind::DcsUnavailable);
        assert!(e.message.contains("127.0.0.1:1"), "{}", e.message);
    }

    #[test]
    fn times_look_like_patronis() {
        let t = isotime();
        assert!(t.ends_with("+00:00") && t.len() == "2030-01-01T00:00:00.000000+00:00".len(), "{t}");
        assert!(microtime().ends_with('Z'));
    }
}
