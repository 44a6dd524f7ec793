//! [`ZooKeeper`]: the DCS contract on Patroni's znode layout, operation by
//! operation as Patroni's zookeeper module does it (see
//! `docs/plugins/dcs-zookeeper.md` for where Palisade differs).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use palisade_plugin_api::sdk;
use palisade_plugin_api::sdk::dcs::{names, Keys};
use palisade_plugin_api::{Dcs, DcsParams, DcsSnapshot, DcsTiming, LeaderKey, PluginError, PluginResult};
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::connection::{Budget, Connection, Ensemble, Failure};
use crate::settings::{AclEntry, Settings};
use crate::snapshot;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A version string from the host as a ZooKeeper data version.
fn parse_version(what: &str, version: &str) -> Option<i32> {
    let parsed = version.trim().parse::<i32>().ok();
    if parsed.is_none() {
        tracing::warn!("{what}: '{version}' is not a ZooKeeper znode version; the compare-and-set fails");
    }
    parsed
}

pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) keys: Keys,
    pub(crate) conn: Connection,
    timing: Mutex<DcsTiming>,
    acls: Vec<zk::Acl>,
    /// When the host last renewed (update_leader, touch_member...).
    last_renewal: Mutex<Instant>,
    /// Whether the session may own ephemeral znodes of ours.
    holds_ephemerals: AtomicBool,
}

/// The ZooKeeper DCS (shared by the `zookeeper` and `exhibitor` plugins).
pub struct ZooKeeper {
    inner: Arc<Inner>,
}

impl ZooKeeper {
    /// A client of the cluster in `params`, reading the ZooKeeper keys of
    /// `settings` (parsed from the section named `section`) and finding
    /// servers through `ensemble`.
    pub fn new(
        section: &str,
        params: &DcsParams,
        settings: Settings,
        ensemble: Arc<dyn Ensemble>,
    ) -> PluginResult<Self> {
        // Each cdylib has its own rustls: give this one its provider. An
        // error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(tls) = &settings.tls {
            // The error names the key (`zookeeper.cacert: ...`).
            crate::tls::options(section, tls).map_err(PluginError::config)?;
        }
        let acls = settings.acls.iter().map(acl).collect();
        let keys = Keys::new(&params.namespace, &params.scope, params.group);
        tracing::debug!("{section} for {} under {}", params.name, keys.prefix());
        let inner = Arc::new(Inner {
            name: params.name.clone(),
            keys,
            conn: Connection::new(section, settings, ensemble),
            timing: Mutex::new(params.timing),
            acls,
            last_renewal: Mutex::new(Instant::now()),
            holds_ephemerals: AtomicBool::new(false),
        });
        sdk::runtime().spawn(close_when_not_renewed(Arc::downgrade(&inner)));
        Ok(ZooKeeper { inner })
    }

    fn run<T>(&self, what: &str, fut: impl Future<Output = Result<T, Failure>>) -> PluginResult<T> {
        sdk::runtime().block_on(fut).map_err(|f| f.into_plugin_error(what))
    }
}

fn acl(a: &AclEntry) -> zk::Acl {
    let mut p = zk::Permission::NONE;
    for (bit, perm) in [
        (1, zk::Permission::READ),
        (2, zk::Permission::WRITE),
        (4, zk::Permission::CREATE),
        (8, zk::Permission::DELETE),
        (16, zk::Permission::ADMIN),
    ] {
        if a.perms & bit != 0 {
            p = p | perm;
        }
    }
    zk::Acl::new(p, zk::AuthId::new(&a.scheme, &a.id))
}

/// The leader and member znodes must not outlive the host's renewals by
/// more than `ttl` (as an etcd lease would not): when nothing renewed them
/// for `ttl`, the session is closed and they go. A live ZooKeeper session
/// alone would otherwise keep a hung daemon's leader lock forever.
async fn close_when_not_renewed(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let ttl = inner.timing().ttl;
        let idle = lock(&inner.last_renewal).elapsed();
        if idle > ttl && inner.holds_ephemerals.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                "nothing renewed the leader or member znode for {idle:?} (ttl {ttl:?}): closing the session"
            );
            inner.conn.close(&inner.timing()).await;
        }
    }
}

impl Inner {
    pub(crate) fn timing(&self) -> DcsTiming {
        *lock(&self.timing)
    }

    fn budget(&self) -> Budget {
        Budget::new(self.timing().retry_timeout)
    }

    /// The host renews the session's ephemerals by calling this.
    fn renewed(&self) {
        *lock(&self.last_renewal) = Instant::now();
        self.holds_ephemerals.store(true, Ordering::SeqCst);
    }

    fn options(&self, mode: zk::CreateMode) -> zk::CreateOptions<'_> {
        if self.acls.is_empty() {
            mode.with_acls(zk::Acls::anyone_all())
        } else {
            mode.with_acls(zk::Acls::new(&self.acls))
        }
    }

    pub(crate) async fn call<T, F, Fut>(&self, budget: &Budget, op: F) -> Result<T, Failure>
    where
        F: Fn(zk::Client) -> Fut,
        Fut: Future<Output = Result<T, zk::Error>>,
    {
        self.conn.call(budget, &self.timing(), op).await
    }

    /// Create `path`, making its parents as needed (kazoo's makepath).
    async fn create(
        &self,
        c: &zk::Client,
        path: &str,
        value: &[u8],
        mode: zk::CreateMode,
    ) -> Result<zk::Stat, zk::Error> {
        let opts = self.options(mode);
        match c.create(path, value, &opts).await {
            Err(zk::Error::NoNode) => {
                let parent = &path[..path.rfind('/').unwrap_or(0)];
                if !parent.is_empty() {
                    c.mkdir(parent, &self.options(zk::CreateMode::Persistent)).await?;
                }
                c.create(path, value, &opts).await.map(|(stat, _)| stat)
            }
            other => other.map(|(stat, _)| stat),
        }
    }

    /// Set `path` to `value`: only at `version` when given (false when it
    /// moved or is gone), else unconditionally, creating it if needed.
    /// Returns the new data version.
    async fn set_or_create(
        &self,
        what: &str,
        name: &str,
        value: &str,
        version: Option<&str>,
    ) -> Result<Option<i32>, Failure> {
        let path = self.keys.key(name);
        let expected = match version {
            None => None,
            Some(v) => match parse_version(what, v) {
                Some(v) => Some(v),
                None => return Ok(None),
            },
        };
        let r = self
            .call(&self.budget(), |c| {
                let path = path.clone();
                async move {
                    loop {
                        match c.set_data(&path, value.as_bytes(), expected).await {
                            Ok(stat) => return Ok(Some(stat.version)),
                            Err(zk::Error::BadVersion) => return Ok(None),
                            Err(zk::Error::NoNode) if expected.is_some() => return Ok(None),
                            Err(zk::Error::NoNode) => {}
                            Err(e) => return Err(e),
                        }
                        match self.create(&c, &path, value.as_bytes(), zk::CreateMode::Persistent).await {
                            Ok(stat) => return Ok(Some(stat.version)),
                            // Somebody created it meanwhile: set it.
                            Err(zk::Error::NodeExists) => continue,
                            Err(e) => return Err(e),
                        }
                    }
                }
            })
            .await?;
        Ok(r)
    }

    /// Create an ephemeral `path` holding `value` on our session, taking
    /// it over (delete at its version, then create, atomically) when it
    /// exists on another session and `replace` says so. Returns whether
    /// the znode now holds `value` on our session.
    /// `what` names the znode in Patroni's log line (`leader`, `member`).
    async fn own_ephemeral(
        &self,
        what: &str,
        path: &str,
        value: &str,
        replace: impl Fn(&[u8]) -> bool,
    ) -> Result<bool, Failure> {
        let replace = &replace;
        self.call(&self.budget(), |c| async move {
            let session = c.session_id().0;
            for _ in 0..5 {
                let current = match c.get_data(path).await {
                    Ok(found) => Some(found),
                    Err(zk::Error::NoNode) => None,
                    Err(e) => return Err(e),
                };
                match current {
                    None => match self.create(&c, path, value.as_bytes(), zk::CreateMode::Ephemeral).await {
                        Ok(_) => return Ok(true),
                        Err(zk::Error::NodeExists) => continue,
                        Err(e) => return Err(e),
                    },
                    Some((data, stat)) if stat.ephemeral_owner == session => {
                        if data == value.as_bytes() {
                            return Ok(true);
                        }
                        if !replace(&data) {
                            return Ok(false);
                        }
                        match c.set_data(path, value.as_bytes(), Some(stat.version)).await {
                            Ok(_) => return Ok(true),
                            Err(zk::Error::BadVersion | zk::Error::NoNode) => continue,
                            Err(e) => return Err(e),
                        }
                    }
                    Some((data, stat)) => {
                        if !replace(&data) {
                            return Ok(false);
                        }
                        if data == value.as_bytes() || what == "member" {
                            tracing::warn!("Recreating the {what} ZNode due to ownership mismatch");
                        }
                        let mut w = c.new_multi_writer();
                        w.add_delete(path, Some(stat.version))?;
                        w.add_create(path, value.as_bytes(), &self.options(zk::CreateMode::Ephemeral))?;
                        match w.commit().await {
                            Ok(_) => return Ok(true),
                            Err(zk::MultiWriteError::OperationFailed {
                                source: zk::Error::BadVersion | zk::Error::NoNode | zk::Error::NodeExists,
                                ..
                            }) => continue,
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
            // Five rounds lost to concurrent writers: somebody else has it.
            Ok(false)
        })
        .await
    }

    /// Delete `path` and everything under it.
    async fn delete_tree(&self, c: &zk::Client, root: &str) -> Result<(), zk::Error> {
        let mut stack = vec![(root.to_string(), false)];
        while let Some((path, expanded)) = stack.pop() {
            if expanded {
                match c.delete(&path, None).await {
                    Ok(()) | Err(zk::Error::NoNode) => {}
                    Err(zk::Error::NotEmpty) => stack.push((path, false)),
                    Err(e) => return Err(e),
                }
                continue;
            }
            let children = match c.list_children(&path).await {
                Ok(ch) => ch,
                Err(zk::Error::NoNode) => continue,
                Err(e) => return Err(e),
            };
            stack.push((path.clone(), true));
            for child in children {
                stack.push((format!("{path}/{child}"), false));
            }
        }
        Ok(())
    }
}

impl Dcs for ZooKeeper {
    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        let inner = &self.inner;
        self.run("get_cluster", async {
            let stored = inner.call(&inner.budget(), |c| snapshot::read(c, &inner.keys)).await?;
            Ok(palisade_plugin_api::sdk::dcs::assemble(&inner.keys, &stored))
        })
    }

    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>> {
        let inner = &self.inner;
        self.run("get_mpp_groups", inner.call(&inner.budget(), |c| snapshot::read_groups(c, &inner.keys)))
    }

    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        let inner = &self.inner;
        inner.renewed();
        let path = inner.keys.key(names::LEADER);
        // Only a free key: never take it over (a znode of ours on our own
        // session, left by a retried create, counts as ours).
        let name = inner.name.clone();
        self.run("attempt_to_acquire_leader", inner.own_ephemeral("leader", &path, &name, |_| false))
    }

    fn update_leader(&self, _leader: Option<&LeaderKey>) -> PluginResult<bool> {
        let inner = &self.inner;
        inner.renewed();
        let path = inner.keys.key(names::LEADER);
        let name = inner.name.clone();
        // Ours on our session: nothing to write, the session keeps it.
        // Ours on another session (a session that expired or was replaced):
        // recreate it on ours, as Patroni does; gone: create it again.
        self.run("update_leader", inner.own_ephemeral("leader", &path, &name, |held| held == name.as_bytes()))
    }

    fn take_leader(&self) -> PluginResult<bool> {
        let inner = &self.inner;
        inner.renewed();
        let path = inner.keys.key(names::LEADER);
        let name = inner.name.clone();
        self.run("take_leader", inner.own_ephemeral("leader", &path, &name, |_| true))
    }

    fn delete_leader(&self, _leader: Option<&LeaderKey>) -> PluginResult<bool> {
        let inner = &self.inner;
        let path = inner.keys.key(names::LEADER);
        self.run("delete_leader", async {
            inner
                .call(&inner.budget(), |c| {
                    let path = path.clone();
                    async move {
                        let (data, stat) = match c.get_data(&path).await {
                            Ok(found) => found,
                            Err(zk::Error::NoNode) => return Ok(false),
                            Err(e) => return Err(e),
                        };
                        if data != inner.name.as_bytes() {
                            return Ok(false);
                        }
                        match c.delete(&path, Some(stat.version)).await {
                            Ok(()) => Ok(true),
                            Err(zk::Error::NoNode | zk::Error::BadVersion) => Ok(false),
                            Err(e) => Err(e),
                        }
                    }
                })
                .await
        })
    }

    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool> {
        let inner = &self.inner;
        self.run("initialize", async {
            if !create_new {
                inner.set_or_create("initialize", names::INITIALIZE, sysid, None).await?;
                return Ok(true);
            }
            let path = inner.keys.key(names::INITIALIZE);
            inner
                .call(&inner.budget(), |c| {
                    let path = path.clone();
                    async move {
                        match inner.create(&c, &path, sysid.as_bytes(), zk::CreateMode::Persistent).await {
                            Ok(_) => Ok(true),
                            Err(zk::Error::NodeExists) => Ok(false),
                            Err(e) => Err(e),
                        }
                    }
                })
                .await
        })
    }

    fn cancel_initialization(&self) -> PluginResult<bool> {
        let inner = &self.inner;
        let path = inner.keys.key(names::INITIALIZE);
        self.run("cancel_initialization", async {
            inner
                .call(&inner.budget(), |c| {
                    let path = path.clone();
                    async move {
                        match c.delete(&path, None).await {
                            Ok(()) | Err(zk::Error::NoNode) => Ok(true),
                            Err(e) => Err(e),
                        }
                    }
                })
                .await
        })
    }

    fn touch_member(&self, data: &str) -> PluginResult<bool> {
        let inner = &self.inner;
        inner.renewed();
        let path = inner.keys.member(&inner.name);
        // A member znode on another session (ours that expired) is
        // recreated on this one, as Patroni does.
        self.run("touch_member", inner.own_ephemeral("member", &path, data, |_| true))
    }

    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        let inner = &self.inner;
        self.run("set_config_value", async {
            Ok(inner.set_or_create("set_config_value", names::CONFIG, value, version).await?.is_some())
        })
    }

    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        let inner = &self.inner;
        self.run("set_failover_value", async {
            Ok(inner.set_or_create("set_failover_value", names::FAILOVER, value, version).await?.is_some())
        })
    }

    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>> {
        let inner = &self.inner;
        self.run("set_sync_state_value", async {
            let v = inner.set_or_create("set_sync_state_value", names::SYNC, value, version).await?;
            Ok(v.map(|v| v.to_string()))
        })
    }

    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool> {
        let inner = &self.inner;
        let path = inner.keys.key(names::SYNC);
        let expected = match version {
            None => None,
            Some(v) => match parse_version("delete_sync_state", v) {
                Some(v) => Some(v),
                None => return Ok(false),
            },
        };
        self.run("delete_sync_state", async {
            inner
                .call(&inner.budget(), |c| {
                    let path = path.clone();
                    async move {
                        match c.delete(&path, expected).await {
                            Ok(()) => Ok(true),
                            Err(zk::Error::NoNode) => Ok(expected.is_none()),
                            Err(zk::Error::BadVersion) => Ok(false),
                            Err(e) => Err(e),
                        }
                    }
                })
                .await
        })
    }

    fn set_history_value(&self, value: &str) -> PluginResult<bool> {
        let inner = &self.inner;
        self.run("set_history_value", async {
            Ok(inner.set_or_create("set_history_value", names::HISTORY, value, None).await?.is_some())
        })
    }

    fn write_status(&self, value: &str) -> PluginResult<bool> {
        let inner = &self.inner;
        self.run("write_status", async {
            Ok(inner.set_or_create("write_status", names::STATUS, value, None).await?.is_some())
        })
    }

    fn write_failsafe(&self, value: &str) -> PluginResult<bool> {
        let inner = &self.inner;
        self.run("write_failsafe", async {
            Ok(inner.set_or_create("write_failsafe", names::FAILSAFE, value, None).await?.is_some())
        })
    }

    fn delete_cluster(&self) -> PluginResult<bool> {
        let inner = &self.inner;
        let base = inner.keys.base().to_string();
        self.run("delete_cluster", async {
            inner
                .call(&inner.budget(), |c| {
                    let base = base.clone();
                    async move { inner.delete_tree(&c, &base).await.map(|()| true) }
                })
                .await
        })
    }

    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()> {
        let old = std::mem::replace(&mut *lock(&self.inner.timing), timing);
        if old.ttl != timing.ttl {
            // As Patroni: a session timeout cannot change, so the next call
            // opens a new session (the ephemerals move over in the next cycle).
            tracing::info!("ttl changed from {:?} to {:?}: a new ZooKeeper session follows", old.ttl, timing.ttl);
        }
        Ok(())
    }

    fn watch(&self, leader_version: Option<&str>, timeout: Duration) -> PluginResult<bool> {
        self.run("watch", crate::watch::wait_for_change(&self.inner, leader_version, timeout))
    }
}
