//! [`Etcd3`]: the DCS contract on etcd v3, operation by operation as
//! Patroni's etcd3 module does it (see `docs/plugins/dcs-etcd3.md`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};
use palisade_plugin_api::{sdk, Dcs, DcsParams, DcsSnapshot, DcsTiming, LeaderKey, PluginResult};

use crate::config::Settings;
use crate::connection::{Budget, Connection};
use crate::failure::Failure;
use crate::keys::{self, Keys};
use crate::lease::LeaseState;
use crate::snapshot::{self, Memo, Node};

pub struct Etcd3 {
    pub(crate) name: String,
    pub(crate) keys: Keys,
    pub(crate) conn: Connection,
    timing: Mutex<DcsTiming>,
    pub(crate) lease: tokio::sync::Mutex<LeaseState>,
    /// What the last `get_cluster` saw (see [`Memo`]).
    pub(crate) memo: Mutex<Option<Memo>>,
    /// Set when `ttl` changed: the next `watch` returns at once so the
    /// loop moves the keys onto the new lease without waiting.
    pub(crate) skip_next_watch: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The first response of a transaction branch, if it is a nested transaction.
fn nested(resp: &TxnResponse) -> Option<TxnResponse> {
    match resp.op_responses().into_iter().next() {
        Some(TxnOpResponse::Txn(inner)) => Some(inner),
        _ => None,
    }
}

fn parse_version(what: &str, version: &str) -> Option<i64> {
    let parsed = version.trim().parse::<i64>().ok();
    if parsed.is_none() {
        tracing::warn!("{what}: '{version}' is not an etcd mod revision; the compare-and-set fails");
    }
    parsed
}

impl Etcd3 {
    pub fn new(params: DcsParams) -> PluginResult<Self> {
        // Each cdylib has its own rustls: give this one its provider. An
        // error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = Settings::parse("etcd3", &params.section_json)?;
        let mut timing = params.timing;
        timing.ttl = settings.ttl.unwrap_or(timing.ttl);
        timing.loop_wait = settings.loop_wait.unwrap_or(timing.loop_wait);
        timing.retry_timeout = settings.retry_timeout.unwrap_or(timing.retry_timeout);
        let keys = Keys::new(&params.namespace, &params.scope, params.group);
        tracing::debug!("etcd3 for {} under {}", params.name, keys.prefix());
        Ok(Etcd3 {
            name: params.name,
            keys,
            conn: Connection::new(settings)?,
            timing: Mutex::new(timing),
            lease: tokio::sync::Mutex::new(LeaseState::default()),
            memo: Mutex::new(None),
            skip_next_watch: AtomicBool::new(false),
        })
    }

    pub(crate) fn timing(&self) -> DcsTiming {
        *lock(&self.timing)
    }

    fn budget(&self) -> Budget {
        Budget::new(self.timing().retry_timeout)
    }

    /// Run one operation on the plugin's runtime, naming it in errors.
    fn run<T>(&self, what: &str, fut: impl Future<Output = Result<T, Failure>>) -> PluginResult<T> {
        sdk::runtime().block_on(fut).map_err(|f| f.into_plugin_error(what))
    }

    async fn put(&self, budget: &Budget, key: String, value: &str, lease: Option<i64>) -> Result<i64, Failure> {
        let options = lease.map(|l| PutOptions::new().with_lease(l));
        let resp = self
            .conn
            .call(budget, |mut c| {
                let (key, value, options) = (key.clone(), value.to_string(), options.clone());
                async move { c.put(key, value, options).await }
            })
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    async fn delete(&self, budget: &Budget, key: String, prefix: bool) -> Result<(), Failure> {
        let options = prefix.then(|| DeleteOptions::new().with_prefix());
        self.conn
            .call(budget, |mut c| {
                let (key, options) = (key.clone(), options.clone());
                async move { c.delete(key, options).await }
            })
            .await?;
        Ok(())
    }

    async fn txn(&self, budget: &Budget, txn: Txn) -> Result<TxnResponse, Failure> {
        self.conn
            .call(budget, |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await
    }

    /// Put `value` at `name`: unconditionally without a version, else only
    /// if the key's mod revision is still `version`. Returns the store
    /// revision of the write, `None` when the compare failed.
    async fn put_if(&self, what: &str, name: &str, value: &str, version: Option<&str>) -> Result<Option<i64>, Failure> {
        let budget = self.budget();
        let key = self.keys.key(name);
        let Some(version) = version else {
            return self.put(&budget, key, value, None).await.map(Some);
        };
        let Some(revision) = parse_version(what, version) else {
            return Ok(None);
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self.txn(&budget, txn).await?;
        Ok(resp.succeeded().then(|| resp.header().map(|h| h.revision()).unwrap_or_default()))
    }

    fn leader_put(&self, lease: i64) -> TxnOp {
        TxnOp::put(self.keys.key(keys::LEADER), self.name.as_str(), Some(PutOptions::new().with_lease(lease)))
    }
}

impl Dcs for Etcd3 {
    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        self.run("get_cluster", async {
            let budget = self.budget();
            let prefix = self.keys.prefix().to_string();
            let resp = self
                .conn
                .call(&budget, |mut c| {
                    let prefix = prefix.clone();
                    async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
                })
                .await?;
            let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
            let nodes: Vec<Node> = resp.kvs().iter().map(Node::from_kv).collect();
            let (snapshot, memo) = snapshot::build(&self.keys, &nodes, revision, &self.name);
            if let Some(leader) = &snapshot.leader {
                // Never wait for a lease refresh in progress just to warn.
                let ours = self.lease.try_lock().ok().and_then(|l| l.id);
                if leader.name == self.name && ours.is_some_and(|id| id.to_string() != leader.session) {
                    tracing::warn!("I am the leader but not owner of the lease");
                }
            }
            *lock(&self.memo) = Some(memo);
            Ok(snapshot)
        })
    }

    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        self.run("attempt_to_acquire_leader", async {
            let budget = self.budget();
            let key = self.keys.key(keys::LEADER);
            let acquired = self
                .with_lease(&budget, false, |lease| {
                    let key = key.clone();
                    let budget = &budget;
                    async move {
                        let txn = Txn::new()
                            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                            .and_then([self.leader_put(lease)])
                            .or_else([TxnOp::get(key, None)]);
                        let resp = self.txn(budget, txn).await?;
                        if resp.succeeded() {
                            return Ok(true);
                        }
                        // A retried request may meet the key its own first
                        // attempt created: that is ours too.
                        let mine = match resp.op_responses().into_iter().next() {
                            Some(TxnOpResponse::Get(get)) => get
                                .kvs()
                                .first()
                                .is_some_and(|kv| kv.value() == self.name.as_bytes() && kv.lease() == lease),
                            _ => false,
                        };
                        Ok(mine)
                    }
                })
                .await?;
            Ok(acquired)
        })
    }

    fn update_leader(&self, _leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.run("update_leader", async {
            let budget = self.budget();
            let key = self.keys.key(keys::LEADER);
            self.with_lease(&budget, true, |lease| {
                let key = key.clone();
                let budget = &budget;
                async move {
                    let name = self.name.as_str();
                    // Already ours on our lease: nothing to write (the
                    // keep-alive above renewed it). Else, as Patroni: move
                    // the key onto our lease if it holds our name, or
                    // create it again if it vanished.
                    let recreate = Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([self.leader_put(lease)]);
                    let rewrite = Txn::new()
                        .when([Compare::value(key.clone(), CompareOp::Equal, name)])
                        .and_then([self.leader_put(lease)])
                        .or_else([TxnOp::txn(recreate)]);
                    let txn = Txn::new()
                        .when([
                            Compare::value(key.clone(), CompareOp::Equal, name),
                            Compare::lease(key.clone(), CompareOp::Equal, lease),
                        ])
                        .or_else([TxnOp::txn(rewrite)]);
                    let resp = self.txn(budget, txn).await?;
                    if resp.succeeded() {
                        return Ok(true);
                    }
                    let Some(rewrite) = nested(&resp) else {
                        return Ok(false);
                    };
                    if rewrite.succeeded() {
                        tracing::info!("moved the leader key onto lease {lease:x}");
                        return Ok(true);
                    }
                    let recreated = nested(&rewrite).is_some_and(|r| r.succeeded());
                    if recreated {
                        tracing::warn!("the leader key was gone; created it again");
                    }
                    Ok(recreated)
                }
            })
            .await
        })
    }

    fn take_leader(&self) -> PluginResult<bool> {
        self.run("take_leader", async {
            let budget = self.budget();
            let key = self.keys.key(keys::LEADER);
            self.with_lease(&budget, false, |lease| self.put(&budget, key.clone(), &self.name, Some(lease))).await?;
            Ok(true)
        })
    }

    fn delete_leader(&self, _leader: Option<&LeaderKey>) -> PluginResult<bool> {
        self.run("delete_leader", async {
            let key = self.keys.key(keys::LEADER);
            let txn = Txn::new()
                .when([Compare::value(key.clone(), CompareOp::Equal, self.name.as_str())])
                .and_then([TxnOp::delete(key, None)]);
            Ok(self.txn(&self.budget(), txn).await?.succeeded())
        })
    }

    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool> {
        self.run("initialize", async {
            let budget = self.budget();
            let key = self.keys.key(keys::INITIALIZE);
            if !create_new {
                self.put(&budget, key, sysid, None).await?;
                return Ok(true);
            }
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key, sysid, None)]);
            Ok(self.txn(&budget, txn).await?.succeeded())
        })
    }

    fn cancel_initialization(&self) -> PluginResult<bool> {
        self.run("cancel_initialization", async {
            self.delete(&self.budget(), self.keys.key(keys::INITIALIZE), false).await?;
            Ok(true)
        })
    }

    fn touch_member(&self, data: &str) -> PluginResult<bool> {
        self.run("touch_member", async {
            let budget = self.budget();
            let key = self.keys.member(&self.name);
            self.with_lease(&budget, false, |lease| {
                let key = key.clone();
                let budget = &budget;
                async move {
                    // The last snapshot shows the same value on this lease:
                    // the keep-alive was all it needed.
                    let unchanged = lock(&self.memo)
                        .as_ref()
                        .and_then(|m| m.own_member.as_ref())
                        .is_some_and(|(value, on)| *on == lease && value == data);
                    if !unchanged {
                        self.put(budget, key, data, Some(lease)).await?;
                    }
                    Ok(true)
                }
            })
            .await
        })
    }

    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.run("set_config_value", async {
            Ok(self.put_if("set_config_value", keys::CONFIG, value, version).await?.is_some())
        })
    }

    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.run("set_failover_value", async {
            Ok(self.put_if("set_failover_value", keys::FAILOVER, value, version).await?.is_some())
        })
    }

    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>> {
        self.run("set_sync_state_value", async {
            let revision = self.put_if("set_sync_state_value", keys::SYNC, value, version).await?;
            Ok(revision.map(|r| r.to_string()))
        })
    }

    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool> {
        self.run("delete_sync_state", async {
            let budget = self.budget();
            let key = self.keys.key(keys::SYNC);
            let Some(version) = version else {
                self.delete(&budget, key, false).await?;
                return Ok(true);
            };
            let Some(revision) = parse_version("delete_sync_state", version) else {
                return Ok(false);
            };
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)])
                .and_then([TxnOp::delete(key, None)]);
            Ok(self.txn(&budget, txn).await?.succeeded())
        })
    }

    fn set_history_value(&self, value: &str) -> PluginResult<bool> {
        self.run("set_history_value", async {
            self.put(&self.budget(), self.keys.key(keys::HISTORY), value, None).await?;
            Ok(true)
        })
    }

    fn write_status(&self, value: &str) -> PluginResult<bool> {
        self.run("write_status", async {
            self.put(&self.budget(), self.keys.key(keys::STATUS), value, None).await?;
            Ok(true)
        })
    }

    fn write_failsafe(&self, value: &str) -> PluginResult<bool> {
        self.run("write_failsafe", async {
            self.put(&self.budget(), self.keys.key(keys::FAILSAFE), value, None).await?;
            Ok(true)
        })
    }

    fn delete_cluster(&self) -> PluginResult<bool> {
        self.run("delete_cluster", async {
            self.delete(&self.budget(), self.keys.prefix().to_string(), true).await?;
            Ok(true)
        })
    }

    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()> {
        let old = std::mem::replace(&mut *lock(&self.timing), timing);
        if old.ttl != timing.ttl {
            // Keys move onto a new lease with the new ttl in the next cycle
            // (update_leader and touch_member see a lease they do not hold).
            sdk::runtime().block_on(async { self.lease.lock().await.id = None });
            self.skip_next_watch.store(true, Ordering::SeqCst);
            tracing::info!("ttl changed from {:?} to {:?}: a new lease follows", old.ttl, timing.ttl);
        }
        Ok(())
    }

    fn watch(&self, leader_version: Option<&str>, timeout: Duration) -> PluginResult<bool> {
        self.run("watch", self.wait_for_change(leader_version, timeout))
    }

    /// One range read of the whole scope, split by group (Patroni's
    /// `_mpp_cluster_loader`). It leaves the memo of our own group alone.
    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>> {
        self.run("get_mpp_groups", async {
            let prefix = self.keys.scope_prefix().to_string();
            let resp = self
                .conn
                .call(&self.budget(), |mut c| {
                    let prefix = prefix.clone();
                    async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
                })
                .await?;
            let nodes: Vec<Node> = resp.kvs().iter().map(Node::from_kv).collect();
            Ok(snapshot::build_groups(&self.keys, &nodes))
        })
    }
}
