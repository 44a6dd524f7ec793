//! [`Etcd`]: the DCS contract on etcd's v2 API, operation by operation as
//! Patroni's `etcd` module does it (see `docs/plugins/dcs-etcd.md`):
//! versions are `modifiedIndex`, compare-and-set is `prevIndex`,
//! `prevValue` or `prevExist`, the leader and member keys carry `ttl`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use palisade_etcd_common::budget::Budget;
use palisade_etcd_common::config::Settings;
use palisade_plugin_api::sdk::dcs::{self, names, Keys, Stored};
use palisade_plugin_api::{sdk, Dcs, DcsParams, DcsSnapshot, DcsTiming, LeaderKey, PluginResult};
use reqwest::Method;

use crate::api::{self, code, Answer, Failure};
use crate::connection::{Connection, Reply, Request};

/// What the last `get_cluster` saw: the baseline of `watch`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Memo {
    /// `X-Etcd-Index` of the read.
    pub etcd_index: u64,
    /// The leader key: value and modifiedIndex.
    pub leader: Option<(String, u64)>,
}

pub struct Etcd {
    pub(crate) name: String,
    pub(crate) keys: Keys,
    pub(crate) conn: Connection,
    timing: Mutex<DcsTiming>,
    pub(crate) memo: Mutex<Option<Memo>>,
    /// Set when `ttl` changed: the next `watch` returns at once so the keys
    /// get the new TTL without waiting (Patroni's `__do_not_watch`).
    pub(crate) skip_next_watch: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A version handed back by the host: one of our modifiedIndexes.
fn parse_version(what: &str, version: &str) -> Option<u64> {
    let parsed = version.trim().parse::<u64>().ok().filter(|v| *v > 0);
    if parsed.is_none() {
        tracing::warn!("{what}: '{version}' is not an etcd modifiedIndex; the compare-and-set fails");
    }
    parsed
}

/// The leaves of one recursive read as the SDK takes them.
fn stored(root: Option<&api::Node>) -> Vec<Stored> {
    let leaves = root.map(api::Node::leaves).unwrap_or_default();
    leaves
        .iter()
        .map(|n| Stored {
            key: n.key.clone(),
            value: n.value.clone().unwrap_or_default(),
            version: n.modified_index.to_string(),
            // No sessions in v2: the TTL left is what the key hangs on.
            session: n.ttl.map(|t| t.to_string()).unwrap_or_default(),
        })
        .collect()
}

/// The snapshot of `keys` from the leaves of one recursive read.
pub(crate) fn build(keys: &Keys, root: Option<&api::Node>, etcd_index: u64) -> (DcsSnapshot, Memo) {
    let stored = stored(root);
    let snapshot = dcs::assemble(keys, &stored);
    let leader = stored
        .iter()
        .find(|n| keys.relative(&n.key) == Some(names::LEADER))
        .and_then(|n| n.version.parse().ok().map(|index| (n.value.clone(), index)));
    (snapshot, Memo { etcd_index, leader })
}

impl Etcd {
    pub fn new(params: DcsParams) -> PluginResult<Self> {
        let settings = Settings::parse("etcd", &params.section_json)?;
        let mut timing = params.timing;
        timing.ttl = settings.ttl.unwrap_or(timing.ttl);
        timing.loop_wait = settings.loop_wait.unwrap_or(timing.loop_wait);
        timing.retry_timeout = settings.retry_timeout.unwrap_or(timing.retry_timeout);
        let keys = Keys::new(&params.namespace, &params.scope, params.group);
        tracing::debug!("etcd (v2 API) for {} under {}", params.name, keys.prefix());
        Ok(Etcd {
            name: params.name,
            keys,
            conn: Connection::new(settings, timing.ttl)?,
            timing: Mutex::new(timing),
            memo: Mutex::new(None),
            skip_next_watch: AtomicBool::new(false),
        })
    }

    pub(crate) fn timing(&self) -> DcsTiming {
        *lock(&self.timing)
    }

    pub(crate) fn budget(&self) -> Budget {
        Budget::new(self.timing().retry_timeout)
    }

    fn ttl(&self) -> String {
        api::ttl_seconds(self.timing().ttl).to_string()
    }

    /// Run one operation on the plugin's runtime, naming it in errors.
    fn run<T>(&self, what: &str, fut: impl Future<Output = Result<T, Failure>>) -> PluginResult<T> {
        sdk::runtime().block_on(fut).map_err(|f| f.into_plugin_error(what))
    }

    /// `PUT key` with `value` and the conditions in `extra`.
    async fn put(&self, budget: &Budget, key: &str, value: &str, extra: &[(&str, String)]) -> Reply {
        let mut pairs = vec![("value", value.to_string())];
        pairs.extend(extra.iter().cloned());
        let req = Request { method: Method::PUT, path: api::key_path(key), form: Some(api::form(&pairs)) };
        self.conn.call(budget, &req).await
    }

    async fn delete(&self, key: &str, query: &[(&str, String)]) -> Reply {
        let req = Request { method: Method::DELETE, path: api::with_query(api::key_path(key), query), form: None };
        self.conn.call(&self.budget(), &req).await
    }

    /// The current value of `key`, `None` when it does not exist.
    async fn value_of(&self, budget: &Budget, key: &str) -> Result<Option<String>, Failure> {
        let req = Request { method: Method::GET, path: api::key_path(key), form: None };
        match self.conn.call(budget, &req).await.result {
            Ok(a) => Ok(a.node.and_then(|n| n.value)),
            Err(e) if e.is_code(code::KEY_NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A write that fails on one of `expected` codes gives `Ok(None)`.
    fn conditional(reply: Reply, expected: &[u64]) -> Result<Option<Answer>, Failure> {
        match reply.result {
            Ok(a) => Ok(Some(a)),
            Err(e) if expected.iter().any(|c| e.is_code(*c)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create `key` with `value` only if it does not exist. A retried
    /// request may meet the key its own first attempt created: when the
    /// key then holds `value`, that is ours.
    async fn create(&self, budget: &Budget, key: &str, value: &str, ttl: Option<String>) -> Result<bool, Failure> {
        let mut extra = vec![("prevExist", "false".to_string())];
        if let Some(ttl) = ttl {
            extra.push(("ttl", ttl));
        }
        let reply = self.put(budget, key, value, &extra).await;
        let retried = reply.retried;
        match Self::conditional(reply, &[code::NODE_EXIST])? {
            Some(_) => Ok(true),
            None if retried => Ok(self.value_of(budget, key).await?.as_deref() == Some(value)),
            None => Ok(false),
        }
    }

    /// Take the leader key if nobody holds it. etcd is asked first whether
    /// it answers at all: a create sent to an etcd that does not answer
    /// (frozen, partitioned) waits in its socket and may still be applied
    /// after we gave up, making us leader behind our back; a read that
    /// waits there is harmless. It also spares the write when the key is
    /// held by somebody else.
    async fn acquire(&self, budget: &Budget) -> Result<bool, Failure> {
        let key = self.keys.key(names::LEADER);
        let holder = self.value_of(budget, &key).await?;
        let acquired = match holder {
            Some(ref other) if *other != self.name => false,
            _ => self.create(budget, &key, &self.name, Some(self.ttl())).await?,
        };
        if !acquired {
            tracing::info!("Could not take out TTL lock");
        }
        Ok(acquired)
    }

    /// `PUT` with `prevIndex=version` (unconditional without a version);
    /// the new modifiedIndex, `None` when the compare failed.
    async fn put_if(&self, what: &str, name: &str, value: &str, version: Option<&str>) -> Result<Option<u64>, Failure> {
        let mut extra = Vec::new();
        if let Some(version) = version {
            let Some(index) = parse_version(what, version) else {
                return Ok(None);
            };
            extra.push(("prevIndex", index.to_string()));
        }
        let reply = self.put(&self.budget(), &self.keys.key(name), value, &extra).await;
        Ok(Self::conditional(reply, &[code::TEST_FAILED, code::KEY_NOT_FOUND])?
            .map(|a| a.node.map(|n| n.modified_index).unwrap_or_default()))
    }

    /// A plain write.
    async fn set(&self, name: &str, value: &str) -> Result<bool, Failure> {
        self.put(&self.budget(), &self.keys.key(name), value, &[]).await.result.map(|_| true)
    }

    pub(crate) async fn read_cluster(&self, budget: &Budget) -> Result<(DcsSnapshot, Memo), Failure> {
        let path = api::with_query(api::key_path(self.keys.base()), &[("recursive", "true".into())]);
        let reply = self.conn.call(budget, &Request { method: Method::GET, path, form: None }).await;
        match reply.result {
            Ok(a) => Ok(build(&self.keys, a.node.as_ref(), a.etcd_index)),
            Err(Failure::Api(e)) if e.code == code::KEY_NOT_FOUND => {
                // No cluster yet; the error carries etcd's index.
                Ok((DcsSnapshot::default(), Memo { etcd_index: e.index, leader: None }))
            }
            Err(e) => Err(e),
        }
    }
}

impl Etcd {
    /// One recursive read of the whole scope, split by Citus group.
    async fn read_groups(&self, budget: &Budget) -> Result<BTreeMap<i32, DcsSnapshot>, Failure> {
        let path = api::with_query(api::key_path(self.keys.scope_base()), &[("recursive", "true".into())]);
        let reply = self.conn.call(budget, &Request { method: Method::GET, path, form: None }).await;
        match reply.result {
            Ok(a) => Ok(dcs::assemble_groups(&self.keys, &stored(a.node.as_ref()))),
            Err(Failure::Api(e)) if e.code == code::KEY_NOT_FOUND => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }
}

impl Dcs for Etcd {
    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>> {
        self.run("get_mpp_groups", self.read_groups(&self.budget()))
    }

    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        self.run("get_cluster", async {
            let (snapshot, memo) = self.read_cluster(&self.budget()).await?;
            *lock(&self.memo) = Some(memo);
            Ok(snapshot)
        })
    }

    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        self.run("attempt_to_acquire_leader", self.acquire(&self.budget()))
    }

    fn update_leader(&self, _leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.run("update_leader", async {
            let budget = self.budget();
            let key = self.keys.key(names::LEADER);
            let reply =
                self.put(&budget, &key, &self.name, &[("prevValue", self.name.clone()), ("ttl", self.ttl())]).await;
            match reply.result {
                Ok(_) => Ok(true),
                // Gone (expired): take it again if nobody did, as Patroni.
                Err(e) if e.is_code(code::KEY_NOT_FOUND) => {
                    let acquired = self.acquire(&budget).await?;
                    if acquired {
                        tracing::warn!("the leader key was gone; created it again");
                    }
                    Ok(acquired)
                }
                Err(e) if e.is_code(code::TEST_FAILED) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn take_leader(&self) -> PluginResult<bool> {
        self.run("take_leader", async {
            let key = self.keys.key(names::LEADER);
            self.put(&self.budget(), &key, &self.name, &[("ttl", self.ttl())]).await.result.map(|_| true)
        })
    }

    fn delete_leader(&self, _leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.run("delete_leader", async {
            let reply = self.delete(&self.keys.key(names::LEADER), &[("prevValue", self.name.clone())]).await;
            Ok(Self::conditional(reply, &[code::TEST_FAILED, code::KEY_NOT_FOUND])?.is_some())
        })
    }

    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool> {
        self.run("initialize", async {
            let budget = self.budget();
            let key = self.keys.key(names::INITIALIZE);
            if create_new {
                return self.create(&budget, &key, sysid, None).await;
            }
            let reply = self.put(&budget, &key, sysid, &[("prevExist", "true".into())]).await;
            Ok(Self::conditional(reply, &[code::KEY_NOT_FOUND])?.is_some())
        })
    }

    fn cancel_initialization(&self) -> PluginResult<bool> {
        self.run("cancel_initialization", async {
            let reply = self.delete(&self.keys.key(names::INITIALIZE), &[]).await;
            Ok(Self::conditional(reply, &[code::KEY_NOT_FOUND])?.is_some())
        })
    }

    fn touch_member(&self, data: &str) -> PluginResult<bool> {
        self.run("touch_member", async {
            let reply = self.put(&self.budget(), &self.keys.member(&self.name), data, &[("ttl", self.ttl())]).await;
            reply.result.map(|_| true)
        })
    }

    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.run("set_config_value", async {
            Ok(self.put_if("set_config_value", names::CONFIG, value, version).await?.is_some())
        })
    }

    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.run("set_failover_value", async {
            Ok(self.put_if("set_failover_value", names::FAILOVER, value, version).await?.is_some())
        })
    }

    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>> {
        self.run("set_sync_state_value", async {
            let index = self.put_if("set_sync_state_value", names::SYNC, value, version).await?;
            Ok(index.map(|i| i.to_string()))
        })
    }

    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool> {
        self.run("delete_sync_state", async {
            let mut query = Vec::new();
            if let Some(version) = version {
                let Some(index) = parse_version("delete_sync_state", version) else {
                    return Ok(false);
                };
                query.push(("prevIndex", index.to_string()));
            }
            let reply = self.delete(&self.keys.key(names::SYNC), &query).await;
            match Self::conditional(reply, &[code::TEST_FAILED, code::KEY_NOT_FOUND])? {
                Some(_) => Ok(true),
                // Nothing to delete without a condition: done.
                None => Ok(version.is_none()),
            }
        })
    }

    fn set_history_value(&self, value: &str) -> PluginResult<bool> {
        self.run("set_history_value", self.set(names::HISTORY, value))
    }

    fn write_status(&self, value: &str) -> PluginResult<bool> {
        self.run("write_status", self.set(names::STATUS, value))
    }

    fn write_failsafe(&self, value: &str) -> PluginResult<bool> {
        self.run("write_failsafe", self.set(names::FAILSAFE, value))
    }

    fn delete_cluster(&self) -> PluginResult<bool> {
        self.run("delete_cluster", async {
            let reply = self.delete(self.keys.base(), &[("recursive", "true".into())]).await;
            Self::conditional(reply, &[code::KEY_NOT_FOUND])?;
            Ok(true)
        })
    }

    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()> {
        let old = std::mem::replace(&mut *lock(&self.timing), timing);
        if old.ttl != timing.ttl {
            self.conn.set_ttl(timing.ttl);
            self.skip_next_watch.store(true, Ordering::SeqCst);
            tracing::info!("ttl changed from {:?} to {:?}: the keys get it on the next write", old.ttl, timing.ttl);
        }
        Ok(())
    }

    fn watch(&self, leader_version: Option<&str>, timeout: std::time::Duration) -> PluginResult<bool> {
        self.run("watch", self.wait_for_change(leader_version, timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_plugin_api::{LeaderKey, MemberKey};

    fn leaf(key: &str, value: &str, index: u64, ttl: Option<i64>) -> api::Node {
        api::Node { key: key.into(), value: Some(value.into()), modified_index: index, ttl, ..Default::default() }
    }

    fn dir(key: &str, nodes: Vec<api::Node>) -> api::Node {
        api::Node { key: key.into(), dir: true, nodes, ..Default::default() }
    }

    #[test]
    fn a_recursive_read_becomes_a_snapshot() {
        let keys = Keys::new("/service/", "demo", None);
        let root = dir(
            "/service/demo",
            vec![
                leaf("/service/demo/leader", "n1", 9, Some(28)),
                dir("/service/demo/members", vec![leaf("/service/demo/members/n2", "garbage", 11, Some(30))]),
                dir("/service/demo/optime", vec![leaf("/service/demo/optime/leader", "123", 13, None)]),
                leaf("/service/demo/config", "{}", 5, None),
            ],
        );
        let (s, memo) = build(&keys, Some(&root), 20);
        assert_eq!(s.leader, Some(LeaderKey { name: "n1".into(), version: "9".into(), session: "28".into() }));
        assert_eq!(
            s.members,
            [MemberKey { name: "n2".into(), value: "garbage".into(), version: "11".into(), session: "30".into() }]
        );
        assert_eq!(s.leader_optime.as_deref(), Some("123"));
        assert_eq!(s.config.map(|c| c.version), Some("5".into()));
        assert_eq!(memo, Memo { etcd_index: 20, leader: Some(("n1".into(), 9)) });
    }

    #[test]
    fn citus_groups_see_their_own_keys() {
        let keys = Keys::new("/service/", "demo", Some(1));
        let root = dir(
            "/service/demo/1",
            vec![leaf("/service/demo/1/leader", "w1", 4, Some(10)), leaf("/service/demo/1/initialize", "7", 2, None)],
        );
        let (s, memo) = build(&keys, Some(&root), 5);
        assert_eq!(s.leader.map(|l| l.name), Some("w1".into()));
        assert_eq!(s.initialize.as_deref(), Some("7"));
        assert_eq!(memo.leader, Some(("w1".into(), 4)));
    }

    #[test]
    fn versions_are_positive_indexes() {
        assert_eq!(parse_version("x", " 42 "), Some(42));
        assert_eq!(parse_version("x", "0"), None);
        assert_eq!(parse_version("x", "abc"), None);
    }
}
