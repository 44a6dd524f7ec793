//! [`Consul`]: the DCS contract on Consul's KV store and sessions,
//! operation by operation as Patroni's `consul.py` does it (see
//! `docs/plugins/dcs-consul.md`):
//!
//! - versions are `ModifyIndex`; compare-and-set is `?cas=<index>`
//!   (`cas=0`: create only);
//! - the leader and member keys are written with `?acquire=<session>`; the
//!   session (TTL `ttl / 2`, `lockdelay` 1 ms, behaviour `delete`, the
//!   configured `checks`) is renewed at most once per `loop_wait` (every
//!   call after a `watch`, and always by `update_leader`) and created anew
//!   when Consul no longer knows it;
//! - `watch` is a blocking query on the leader key from its version.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use palisade_plugin_api::sdk::dcs::{self, names, Keys, Stored};
use palisade_plugin_api::{sdk, Dcs, DcsParams, DcsSnapshot, DcsTiming, LeaderKey, PluginResult};
use reqwest::Method;
use serde_json::Value;

use crate::api::{self, Answer, Entry, Failure};
use crate::client::{Budget, Client, Reply, Request};
use crate::service::{self, Action, ServiceSettings};
use crate::settings::{Consistency, Settings};

/// The empty synchronous state, as Patroni reads a `sync` key without one.
const EMPTY_SYNC: &str = "{}";

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Default)]
struct Session {
    id: Option<String>,
    refreshed: Option<Instant>,
    /// The agent's `session_ttl_min`, once it refused a shorter TTL.
    ttl_min: Option<Duration>,
}

/// Our member key as the last `get_cluster` saw it: its session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Memo {
    member_session: Option<Option<String>>,
}

#[derive(Debug, Default)]
struct ServiceState {
    /// The member data the service was last made from.
    last: Option<Value>,
    /// The last update failed: do it again whatever changed.
    force: bool,
}

pub struct Consul {
    name: String,
    keys: Keys,
    client: Client,
    consistency: Consistency,
    checks: Vec<String>,
    register_service: bool,
    service: ServiceSettings,
    timing: Mutex<DcsTiming>,
    session: tokio::sync::Mutex<Session>,
    memo: Mutex<Memo>,
    service_state: Mutex<ServiceState>,
    /// Set when `ttl` changed: the next `watch` returns at once so a new
    /// session with the new TTL is made without waiting (Patroni's
    /// `__do_not_watch`).
    skip_next_watch: AtomicBool,
}

/// A version handed back by the host: one of our ModifyIndexes.
fn parse_version(what: &str, version: &str) -> Option<u64> {
    let parsed = version.trim().parse::<u64>().ok().filter(|v| *v > 0);
    if parsed.is_none() {
        tracing::warn!("{what}: '{version}' is not a Consul ModifyIndex; the compare-and-set fails");
    }
    parsed
}

/// The entries of one recursive read as the SDK takes them.
fn stored(entries: &[Entry]) -> Vec<Stored> {
    entries
        .iter()
        .map(|e| Stored {
            key: format!("/{}", e.key),
            value: String::from_utf8_lossy(&e.value).into_owned(),
            version: e.modify_index.to_string(),
            session: e.session.clone().unwrap_or_default(),
        })
        .collect()
}

/// The snapshot of `keys` from the entries of one recursive read.
pub(crate) fn build(keys: &Keys, entries: &[Entry]) -> DcsSnapshot {
    dcs::assemble(keys, &stored(entries))
}

impl Consul {
    pub fn new(params: DcsParams) -> PluginResult<Self> {
        let settings = Settings::parse(&params.section_json)?;
        let client = Client::new(&settings)?;
        let keys = Keys::new(&params.namespace, &params.scope, params.group);
        if settings.register_service {
            let name = service::service_name(&params.scope);
            if name != params.scope {
                tracing::warn!("Using {name} as consul service name instead of scope name {}", params.scope);
            }
        }
        tracing::debug!("consul agent {} for {} under {}", client.base(), params.name, keys.prefix());
        Ok(Consul {
            service: ServiceSettings {
                scope: params.scope.clone(),
                member: params.name.clone(),
                tags: settings.service_tags.clone(),
                check_interval: settings.service_check_interval.clone(),
                tls_server_name: settings.service_check_tls_server_name.clone(),
            },
            name: params.name,
            keys,
            client,
            consistency: settings.consistency,
            checks: settings.checks,
            register_service: settings.register_service,
            timing: Mutex::new(params.timing),
            session: tokio::sync::Mutex::new(Session::default()),
            memo: Mutex::new(Memo::default()),
            service_state: Mutex::new(ServiceState::default()),
            skip_next_watch: AtomicBool::new(false),
        })
    }

    fn timing(&self) -> DcsTiming {
        *lock(&self.timing)
    }

    fn budget(&self) -> Budget {
        Budget::new(self.timing().retry_timeout)
    }

    /// The session TTL: half of `ttl` (Consul lets a session live twice its
    /// TTL), raised to the agent's minimum once it told us.
    fn session_ttl(&self, s: &Session) -> Duration {
        (self.timing().ttl / 2).max(s.ttl_min.unwrap_or_default())
    }

    /// Run one operation on the plugin's runtime, naming it in errors.
    fn run<T>(&self, what: &str, fut: impl Future<Output = Result<T, Failure>>) -> PluginResult<T> {
        sdk::runtime().block_on(fut).map_err(|f| f.into_plugin_error(what))
    }

    fn kv(&self, method: Method, name: &str) -> Request {
        Request::new(method, api::kv_path(&self.keys.key(name)))
    }

    fn read(&self, mut req: Request, consistency: Consistency) -> Request {
        if let Some(p) = consistency.param() {
            req = req.param(p, "1");
        }
        req
    }

    async fn call_bool(&self, budget: &Budget, req: &Request) -> Result<bool, Failure> {
        let reply = self.client.call(budget, req).await;
        api::parse_bool_body(&reply.result?)
    }

    /// The entry at `name`, `None` when there is none.
    async fn get_key(&self, budget: &Budget, name: &str, consistency: Consistency) -> Result<Option<Entry>, Failure> {
        let req = self.read(self.kv(Method::GET, name), consistency);
        let answer = self.client.call(budget, &req).await.result?;
        Ok(api::parse_entries(&answer)?.into_iter().next())
    }

    /// Renew our session (unless renewed lately and not `force`), or
    /// create one when there is none or Consul no longer knows it.
    /// Returns the session id and whether it is new.
    async fn refresh_session(&self, budget: &Budget, force: bool) -> Result<(String, bool), Failure> {
        let mut s = self.session.lock().await;
        let ttl = self.session_ttl(&s);
        let every = self.timing().loop_wait.min(ttl / 2);
        if let (Some(id), Some(at), false) = (&s.id, s.refreshed, force) {
            if at.elapsed() < every {
                return Ok((id.clone(), false));
            }
        }
        if let Some(id) = s.id.clone() {
            let req = Request::new(Method::PUT, format!("/v1/session/renew/{}", palisade_plugin_http::encode(&id)));
            let answer = self.client.call(budget, &req).await.result?;
            if answer.status == 404 {
                tracing::warn!("Consul no longer knows our session {id} (invalidated); creating a new one");
                s.id = None;
            } else {
                s.refreshed = Some(Instant::now());
                return Ok((id, false));
            }
        }
        let name = format!("{}-{}", self.service.scope, self.name);
        let mut adjusted = false;
        loop {
            let ttl = self.session_ttl(&s);
            let req = Request::new(Method::PUT, "/v1/session/create".into()).body(api::session_body(
                &name,
                &self.checks,
                ttl,
            ));
            match self.client.call(budget, &req).await.result {
                Ok(answer) if answer.status == 404 => {
                    return Err(Failure::Refused(format!("session/create: HTTP 404 {}", answer.body.trim())))
                }
                Ok(answer) => {
                    let id = api::parse_session_id(&answer.body)?;
                    tracing::debug!("created Consul session {id} (ttl {})", api::go_seconds(ttl));
                    s.id = Some(id.clone());
                    s.refreshed = Some(Instant::now());
                    return Ok((id, true));
                }
                Err(Failure::InvalidSessionTtl(m)) if !adjusted => {
                    // Patroni's adjust_ttl: the agent's minimum from /v1/agent/self.
                    adjusted = true;
                    tracing::error!("session.create: {m}");
                    let req = Request::new(Method::GET, "/v1/agent/self".into());
                    let body = self.client.call(budget, &req).await.result.map(|a| a.body).unwrap_or_default();
                    let min = api::session_ttl_min(&body);
                    tracing::warn!("Changing Session TTL from {} to {}", api::go_seconds(ttl), api::go_seconds(min));
                    s.ttl_min = Some(min);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Forget the session (Consul said it is invalid).
    async fn drop_session(&self) {
        let mut s = self.session.lock().await;
        s.id = None;
        s.refreshed = None;
    }

    /// `PUT <name>?acquire=<session>` with `value`.
    async fn put_acquire(&self, budget: &Budget, key: &str, value: &str, sid: &str) -> Result<bool, Failure> {
        let req = Request::new(Method::PUT, api::kv_path(key)).param("acquire", sid).body(value);
        self.call_bool(budget, &req).await
    }

    /// Take the leader key with our session; a session Consul calls
    /// invalid is replaced once, as Patroni does. The key is read first:
    /// a key that exists and is not on our session is not overwritten
    /// (Consul would let a session acquire a key written without one), and
    /// the write is only sent to an agent that answers.
    async fn acquire(&self, budget: &Budget) -> Result<bool, Failure> {
        let key = self.keys.key(names::LEADER);
        let (sid, _) = self.refresh_session(budget, false).await?;
        if let Some(e) = self.get_key(budget, names::LEADER, Consistency::Consistent).await? {
            if e.session.as_deref() != Some(sid.as_str()) {
                tracing::info!("Could not take out TTL lock");
                return Ok(false);
            }
        }
        let acquired = match self.put_acquire(budget, &key, &self.name, &sid).await {
            Err(Failure::InvalidSession(m)) => {
                tracing::error!(
                    "Our session disappeared from Consul ({m}). Will try to get a new one and retry attempt"
                );
                self.drop_session().await;
                let (sid, _) = self.refresh_session(budget, true).await?;
                self.put_acquire(budget, &key, &self.name, &sid).await?
            }
            other => other?,
        };
        if !acquired {
            tracing::info!("Could not take out TTL lock");
        }
        Ok(acquired)
    }

    /// Delete `name` if its ModifyIndex is still `index`.
    async fn delete_cas(&self, budget: &Budget, name: &str, index: u64) -> Result<bool, Failure> {
        self.call_bool(budget, &self.kv(Method::DELETE, name).param("cas", index.to_string())).await
    }

    /// `PUT` with `?cas=<version>` (unconditional without a version).
    async fn put_cas(&self, what: &str, name: &str, value: &str, version: Option<&str>) -> Result<bool, Failure> {
        let mut req = self.kv(Method::PUT, name).body(value);
        if let Some(version) = version {
            let Some(index) = parse_version(what, version) else {
                return Ok(false);
            };
            req = req.param("cas", index.to_string());
        }
        self.call_bool(&self.budget(), &req).await
    }

    async fn put_plain(&self, name: &str, value: &str) -> Result<bool, Failure> {
        self.call_bool(&self.budget(), &self.kv(Method::PUT, name).body(value)).await
    }

    async fn read_cluster(&self, budget: &Budget) -> Result<DcsSnapshot, Failure> {
        let req = self
            .read(Request::new(Method::GET, api::kv_path(self.keys.prefix())).param("recurse", "1"), self.consistency);
        let answer: Answer = self.client.call(budget, &req).await.result?;
        let entries = api::parse_entries(&answer)?;
        let snapshot = build(&self.keys, &entries);
        let mine = snapshot.members.iter().find(|m| m.name == self.name);
        lock(&self.memo).member_session =
            mine.map(|m| if m.session.is_empty() { None } else { Some(m.session.clone()) });
        Ok(snapshot)
    }

    /// One recursive read of the whole scope, split by Citus group
    /// (Patroni's `_mpp_cluster_loader`), with the configured consistency.
    async fn read_groups(&self, budget: &Budget) -> Result<BTreeMap<i32, DcsSnapshot>, Failure> {
        let path = api::kv_path(self.keys.scope_prefix());
        let req = self.read(Request::new(Method::GET, path).param("recurse", "1"), self.consistency);
        let answer: Answer = self.client.call(budget, &req).await.result?;
        let entries = api::parse_entries(&answer)?;
        Ok(dcs::assemble_groups(&self.keys, &stored(&entries)))
    }

    /// `register_service`: bring the agent's service in line with the
    /// member data `data`. Failures are logged, never fatal (as Patroni).
    async fn update_service(&self, data: &str, budget: &Budget) {
        if !self.register_service {
            return;
        }
        let Ok(new) = serde_json::from_str::<Value>(data) else {
            tracing::warn!("Could not register service: the member data is not JSON");
            return;
        };
        let (update, force) = {
            let st = lock(&self.service_state);
            match service::changed(st.last.as_ref(), &new) {
                Ok(update) => (update, st.force),
                Err(message) => {
                    tracing::warn!("{message}");
                    return;
                }
            }
        };
        if !update && !force {
            return;
        }
        let ttl = self.session_ttl(&*self.session.lock().await);
        let result = match service::action(&self.service, true, &new, ttl) {
            Action::Nothing => {
                lock(&self.service_state).last = Some(new);
                return;
            }
            Action::Register(body) => {
                tracing::info!("Register service {}, params {body}", service::service_name(&self.service.scope));
                let req = Request::new(Method::PUT, "/v1/agent/service/register".into()).body(body.to_string());
                self.client.call(budget, &req).await.result
            }
            Action::Deregister(id) => {
                tracing::info!("Deregister service {id}");
                let path: Vec<String> = id.split('/').map(palisade_plugin_http::encode).collect();
                let req = Request::new(Method::PUT, format!("/v1/agent/service/deregister/{}", path.join("/")));
                self.client.call(budget, &req).await.result
            }
        };
        let mut st = lock(&self.service_state);
        match result {
            Ok(a) if a.status == 200 => {
                st.last = Some(new);
                st.force = false;
            }
            Ok(a) => {
                tracing::warn!("update_service: the agent answered HTTP {}: {}", a.status, a.body.trim());
                st.force = true;
            }
            Err(e) => {
                tracing::warn!("update_service: {}", e.into_plugin_error("update_service"));
                st.force = true;
            }
        }
    }
}

impl Dcs for Consul {
    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        self.run("get_cluster", self.read_cluster(&self.budget()))
    }

    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>> {
        self.run("get_mpp_groups", self.read_groups(&self.budget()))
    }

    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        self.run("attempt_to_acquire_leader", self.acquire(&self.budget()))
    }

    fn update_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.run("update_leader", async {
            let budget = self.budget();
            let (sid, _) = self.refresh_session(&budget, true).await?;
            match leader {
                Some(l) if l.name != self.name => Ok(false),
                // The key hangs on our live session: renewing it renewed the key.
                Some(l) if l.session == sid => Ok(true),
                Some(l) => {
                    // Ours by name, on another (older) session: make it again on this one.
                    tracing::warn!("Recreating the leader key due to session mismatch");
                    if let Some(index) = parse_version("update_leader", &l.version) {
                        self.delete_cas(&budget, names::LEADER, index).await?;
                    }
                    let key = self.keys.key(names::LEADER);
                    self.put_acquire(&budget, &key, &self.name, &sid).await
                }
                None => match self.get_key(&budget, names::LEADER, Consistency::Consistent).await? {
                    Some(e) => Ok(e.value == self.name.as_bytes() && e.session.as_deref() == Some(sid.as_str())),
                    None => {
                        let acquired = self.acquire(&budget).await?;
                        if acquired {
                            tracing::warn!("the leader key was gone; created it again");
                        }
                        Ok(acquired)
                    }
                },
            }
        })
    }

    fn take_leader(&self) -> PluginResult<bool> {
        self.run("take_leader", async {
            let budget = self.budget();
            if self.acquire(&budget).await? {
                return Ok(true);
            }
            // Held by another session: take it anyway (the host asks after
            // its own bootstrap, when the key must be ours).
            if let Some(e) = self.get_key(&budget, names::LEADER, Consistency::Consistent).await? {
                tracing::warn!(
                    "take_leader: the leader key holds '{}'; replacing it",
                    String::from_utf8_lossy(&e.value)
                );
                self.delete_cas(&budget, names::LEADER, e.modify_index).await?;
            }
            self.acquire(&budget).await
        })
    }

    fn delete_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.run("delete_leader", async {
            let budget = self.budget();
            if let Some(l) = leader {
                if l.name != self.name {
                    return Ok(false);
                }
                if let Some(index) = parse_version("delete_leader", &l.version) {
                    if self.delete_cas(&budget, names::LEADER, index).await? {
                        return Ok(true);
                    }
                }
            }
            // No version, or it moved: delete it if it still holds our name.
            match self.get_key(&budget, names::LEADER, Consistency::Consistent).await? {
                Some(e) if e.value == self.name.as_bytes() => {
                    self.delete_cas(&budget, names::LEADER, e.modify_index).await
                }
                _ => Ok(false),
            }
        })
    }

    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool> {
        self.run("initialize", async {
            let budget = self.budget();
            if !create_new {
                return self.put_plain(names::INITIALIZE, sysid).await;
            }
            let req = self.kv(Method::PUT, names::INITIALIZE).param("cas", "0").body(sysid);
            let reply: Reply = self.client.call(&budget, &req).await;
            let retried = reply.retried;
            match api::parse_bool_body(&reply.result?)? {
                true => Ok(true),
                // A retried create may meet the key its own first attempt made.
                false if retried => Ok(self
                    .get_key(&budget, names::INITIALIZE, Consistency::Consistent)
                    .await?
                    .is_some_and(|e| e.value == sysid.as_bytes())),
                false => Ok(false),
            }
        })
    }

    fn cancel_initialization(&self) -> PluginResult<bool> {
        self.run("cancel_initialization", async {
            self.call_bool(&self.budget(), &self.kv(Method::DELETE, names::INITIALIZE)).await
        })
    }

    fn touch_member(&self, data: &str) -> PluginResult<bool> {
        self.run("touch_member", async {
            let budget = self.budget();
            let (sid, created) = self.refresh_session(&budget, false).await?;
            let key = self.keys.member(&self.name);
            let seen = lock(&self.memo).member_session.clone();
            if let Some(session) = seen {
                if created || session.as_deref() != Some(sid.as_str()) {
                    // On another session: make it again on ours.
                    self.call_bool(&budget, &Request::new(Method::DELETE, api::kv_path(&key))).await?;
                    lock(&self.memo).member_session = None;
                }
            }
            self.update_service(data, &budget).await;
            let written = match self.put_acquire(&budget, &key, data, &sid).await {
                Ok(true) => true,
                // Held by a session we did not know of (an older one of ours).
                Ok(false) => {
                    self.call_bool(&budget, &Request::new(Method::DELETE, api::kv_path(&key))).await?;
                    self.put_acquire(&budget, &key, data, &sid).await?
                }
                Err(Failure::InvalidSession(m)) => {
                    tracing::error!("Our session disappeared from Consul, can not \"touch_member\" ({m})");
                    self.drop_session().await;
                    false
                }
                Err(e) => return Err(e),
            };
            if written {
                lock(&self.memo).member_session = Some(Some(sid));
            }
            Ok(written)
        })
    }

    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.run("set_config_value", self.put_cas("set_config_value", names::CONFIG, value, version))
    }

    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.run("set_failover_value", self.put_cas("set_failover_value", names::FAILOVER, value, version))
    }

    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>> {
        self.run("set_sync_state_value", async {
            if !self.put_cas("set_sync_state_value", names::SYNC, value, version).await? {
                return Ok(None);
            }
            // A PUT does not say the new index: read it back, as Patroni.
            let budget = self.budget();
            let entry = self.get_key(&budget, names::SYNC, Consistency::Consistent).await?;
            Ok(entry.filter(|e| e.value == value.as_bytes()).map(|e| e.modify_index.to_string()))
        })
    }

    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool> {
        self.run("delete_sync_state", async {
            let budget = self.budget();
            let Some(version) = version else {
                return self.call_bool(&budget, &self.kv(Method::DELETE, names::SYNC)).await;
            };
            let Some(index) = parse_version("delete_sync_state", version) else {
                return Ok(false);
            };
            // Consul's delete with `cas` also succeeds on a key that is
            // already gone, so every one of several racing deletes would
            // win. The compare-and-set is a write instead: the empty state
            // `{}` with `cas`, which exactly one wins; the winner then
            // deletes the key if nobody wrote it since.
            let clear = self.kv(Method::PUT, names::SYNC).param("cas", index.to_string()).body(EMPTY_SYNC);
            if !self.call_bool(&budget, &clear).await? {
                return Ok(false);
            }
            if let Some(e) = self.get_key(&budget, names::SYNC, Consistency::Consistent).await? {
                if e.value == EMPTY_SYNC.as_bytes() {
                    self.delete_cas(&budget, names::SYNC, e.modify_index).await?;
                }
            }
            Ok(true)
        })
    }

    fn set_history_value(&self, value: &str) -> PluginResult<bool> {
        self.run("set_history_value", self.put_plain(names::HISTORY, value))
    }

    fn write_status(&self, value: &str) -> PluginResult<bool> {
        self.run("write_status", self.put_plain(names::STATUS, value))
    }

    fn write_failsafe(&self, value: &str) -> PluginResult<bool> {
        self.run("write_failsafe", self.put_plain(names::FAILSAFE, value))
    }

    fn delete_cluster(&self) -> PluginResult<bool> {
        self.run("delete_cluster", async {
            let req = Request::new(Method::DELETE, api::kv_path(self.keys.prefix())).param("recurse", "1");
            self.call_bool(&self.budget(), &req).await
        })
    }

    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()> {
        let old = std::mem::replace(&mut *lock(&self.timing), timing);
        if old.ttl != timing.ttl {
            // A new session with the new TTL; the keys move to it on the
            // next touch_member and update_leader (Patroni's set_ttl).
            sdk::runtime().block_on(self.drop_session());
            self.skip_next_watch.store(true, Ordering::SeqCst);
            tracing::info!("ttl changed from {:?} to {:?}: a new session is made", old.ttl, timing.ttl);
        }
        Ok(())
    }

    fn watch(&self, leader_version: Option<&str>, timeout: Duration) -> PluginResult<bool> {
        self.run("watch", async {
            // The cycle after a watch renews the session (Patroni resets
            // _last_session_refresh here).
            self.session.lock().await.refreshed = None;
            if self.skip_next_watch.swap(false, Ordering::SeqCst) {
                return Ok(true);
            }
            let deadline = Instant::now() + timeout;
            let version = leader_version.and_then(|v| v.trim().parse::<u64>().ok()).filter(|v| *v > 0);
            if let Some(version) = version {
                loop {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining < Duration::from_secs(1) {
                        break;
                    }
                    let req = self.read(
                        self.kv(Method::GET, names::LEADER)
                            .param("index", version.to_string())
                            .param("wait", api::go_seconds(remaining)),
                        self.consistency,
                    );
                    // Consul adds up to wait/16 to the wait: give it room.
                    let read_timeout = remaining + (remaining / 15).max(Duration::from_secs(1));
                    match self.client.send(&req, read_timeout).await {
                        Ok(answer) => {
                            let changed = answer.index != Some(version);
                            if changed {
                                tracing::debug!(
                                    "watch: the leader key moved from index {version} to {:?}",
                                    answer.index
                                );
                            }
                            return Ok(changed);
                        }
                        Err(e) => {
                            tracing::debug!("watch: {}", e.into_plugin_error("watch"));
                            let pause = Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now()));
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
            }
            // Without a leader version Patroni sleeps out the timeout.
            tokio::time::sleep_until(deadline.into()).await;
            Ok(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_plugin_api::MemberKey;

    fn entry(key: &str, value: &[u8], index: u64, session: Option<&str>) -> Entry {
        Entry { key: key.into(), value: value.to_vec(), modify_index: index, session: session.map(str::to_string) }
    }

    #[test]
    fn a_listing_becomes_a_snapshot() {
        let keys = Keys::new("/service/", "demo", None);
        let entries = [
            entry("service/demo/leader", b"n1", 9, Some("s1")),
            entry("service/demo/members/n2", b"garbage \xff", 11, Some("s2")),
            entry("service/demo/optime/leader", b"123", 13, None),
            entry("service/demo/config", b"{}", 5, None),
            entry("service/demo2/leader", b"other cluster", 6, None),
        ];
        let s = build(&keys, &entries);
        assert_eq!(s.leader, Some(LeaderKey { name: "n1".into(), version: "9".into(), session: "s1".into() }));
        assert_eq!(
            s.members,
            [MemberKey {
                name: "n2".into(),
                value: "garbage \u{fffd}".into(),
                version: "11".into(),
                session: "s2".into()
            }]
        );
        assert_eq!(s.leader_optime.as_deref(), Some("123"));
        assert_eq!(s.config.map(|c| c.version), Some("5".into()));
    }

    #[test]
    fn citus_groups_see_their_own_keys() {
        let keys = Keys::new("/service/", "demo", Some(1));
        let entries = [
            entry("service/demo/1/leader", b"w1", 4, Some("s")),
            entry("service/demo/1/initialize", b"7", 2, None),
            entry("service/demo/0/leader", b"c1", 3, Some("t")),
        ];
        let s = build(&keys, &entries);
        assert_eq!(s.leader.map(|l| l.name), Some("w1".into()));
        assert_eq!(s.initialize.as_deref(), Some("7"));
        assert_eq!(api::kv_path(keys.prefix()), "/v1/kv/service/demo/1/");
    }

    #[test]
    fn versions_are_positive_indexes() {
        assert_eq!(parse_version("x", " 42 "), Some(42));
        assert_eq!(parse_version("x", "0"), None, "cas=0 would mean create-only");
        assert_eq!(parse_version("x", "abc"), None);
    }

    #[test]
    fn construction_checks_the_section() {
        let params = |section: &str| DcsParams {
            scope: "demo".into(),
            namespace: "/service/".into(),
            name: "n1".into(),
            group: None,
            timing: DcsTiming {
                ttl: Duration::from_secs(30),
                loop_wait: Duration::from_secs(10),
                retry_timeout: Duration::from_secs(10),
            },
            section_json: section.into(),
        };
        let err = Consul::new(params(r#"{"url": "nope"}"#)).err().expect("an error");
        assert!(err.message.starts_with("consul.url:"), "{}", err.message);
        let c = Consul::new(params(r#"{"host": "127.0.0.1:1"}"#)).expect("built");
        assert_eq!(c.session_ttl(&Session::default()), Duration::from_secs(15), "half of ttl");
        let raised = Session { ttl_min: Some(Duration::from_secs(20)), ..Default::default() };
        assert_eq!(c.session_ttl(&raised), Duration::from_secs(20));
    }
}
