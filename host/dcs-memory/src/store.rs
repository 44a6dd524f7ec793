//! The store and its clients.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use palisade_plugin_api::sdk::dcs::{assemble, assemble_groups, names, Keys, Stored};
use palisade_plugin_api::{Dcs, DcsSnapshot, DcsTiming, LeaderKey, PluginError, PluginResult};

use crate::clock::{Clock, SystemClock};

const LEADER: &str = names::LEADER;

/// How often a waiting watch looks again (leases may have expired on the
/// clock meanwhile, which nothing signals).
const WATCH_SLICE: Duration = Duration::from_millis(50);

/// Whether the store answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reachable {
    Up,
    /// Every call fails at once, as with a stopped server.
    Down,
    /// Every call waits `retry_timeout`, then fails, as with a server that
    /// keeps connections open and never answers.
    Frozen,
}

#[derive(Clone, Debug)]
struct Entry {
    /// The bytes as written: text from the clients, anything from
    /// [`MemoryStore::write_raw`].
    value: Vec<u8>,
    /// The store's revision when the key was last written.
    revision: u64,
    lease: Option<u64>,
}

struct State {
    keys: BTreeMap<String, Entry>,
    /// Lease id -> when it expires on the store's clock.
    leases: BTreeMap<u64, Duration>,
    revision: u64,
    next_lease: u64,
    reachable: Reachable,
    refuse_writes: bool,
    fail_writes: bool,
}

impl Entry {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

impl State {
    fn put(&mut self, key: &str, value: &[u8], lease: Option<u64>) {
        self.revision += 1;
        self.keys.insert(key.to_string(), Entry { value: value.to_vec(), revision: self.revision, lease });
    }

    /// The value at `key` as text (invalid UTF-8 replaced, as a plugin
    /// passes it on).
    fn text(&self, key: &str) -> Option<String> {
        self.keys.get(key).map(Entry::text)
    }

    /// Whether `key` holds exactly `value`.
    fn holds(&self, key: &str, value: &str) -> bool {
        self.keys.get(key).is_some_and(|e| e.value == value.as_bytes())
    }

    fn delete(&mut self, key: &str) -> bool {
        let removed = self.keys.remove(key).is_some();
        if removed {
            self.revision += 1;
        }
        removed
    }

    /// Drop expired leases and the keys bound to them.
    fn expire(&mut self, now: Duration) -> bool {
        let expired: Vec<u64> = self.leases.iter().filter(|(_, until)| **until <= now).map(|(id, _)| *id).collect();
        if expired.is_empty() {
            return false;
        }
        for id in &expired {
            self.leases.remove(id);
        }
        let before = self.keys.len();
        self.keys.retain(|_, e| e.lease.is_none_or(|l| !expired.contains(&l)));
        if self.keys.len() != before {
            self.revision += 1;
            return true;
        }
        false
    }

    fn version_of(&self, key: &str) -> Option<String> {
        self.keys.get(key).map(|e| e.revision.to_string())
    }

    /// Every key as a DCS plugin hands it to `sdk::dcs`: under
    /// [`root`]'s scope, with its revision and lease.
    fn stored(&self) -> Vec<Stored> {
        let root = root();
        self.keys
            .iter()
            .map(|(k, e)| Stored {
                key: format!("{}{k}", root.scope_prefix()),
                value: e.text(),
                version: e.revision.to_string(),
                session: e.lease.map(|l| l.to_string()).unwrap_or_default(),
            })
            .collect()
    }
}

/// Where the store's keys sit for `sdk::dcs`: the store holds one scope,
/// its keys relative to it (`leader`, `1/leader`...).
fn root() -> Keys {
    Keys::new("/", "memory", None)
}

/// The store: every key of one cluster (every Citus group of it), shared
/// by its clients.
pub struct MemoryStore {
    state: Mutex<State>,
    changed: Condvar,
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    /// An empty store whose leases expire on the system clock.
    pub fn new() -> Arc<Self> {
        Self::with_clock(Arc::new(SystemClock::new()))
    }

    /// An empty store whose leases expire on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                keys: BTreeMap::new(),
                leases: BTreeMap::new(),
                revision: 0,
                next_lease: 1,
                reachable: Reachable::Up,
                refuse_writes: false,
                fail_writes: false,
            }),
            changed: Condvar::new(),
            clock,
        })
    }

    /// A client of this store as member `name`.
    pub fn client(self: &Arc<Self>, name: &str, timing: DcsTiming) -> MemoryDcs {
        self.client_in(None, name, timing)
    }

    /// A client of Citus group `group` (its keys under `<group>/`), or of
    /// the whole store with `None`, as member `name`.
    pub fn client_in(self: &Arc<Self>, group: Option<i32>, name: &str, timing: DcsTiming) -> MemoryDcs {
        MemoryDcs {
            store: Arc::clone(self),
            name: name.to_string(),
            group,
            prefix: group.map(|g| format!("{g}/")).unwrap_or_default(),
            timing: Mutex::new(timing),
            lease: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state with expired leases dropped.
    fn current(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        if state.expire(self.clock.now()) {
            self.changed.notify_all();
        }
        state
    }

    /// Write `value` at `key` (`leader`, `members/<name>`, `config`...;
    /// `<group>/leader`... for a Citus group)
    /// behind the clients' backs, without a lease, byte for byte (the
    /// clients read bytes that are not UTF-8 with the replacement
    /// character, as plugins do).
    pub fn write_raw(&self, key: &str, value: &[u8]) {
        self.current().put(key, value, None);
        self.changed.notify_all();
    }

    /// The value at `key` as text, if any.
    pub fn value(&self, key: &str) -> Option<String> {
        self.current().text(key)
    }

    /// The bytes stored at `key`, if any.
    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.current().keys.get(key).map(|e| e.value.clone())
    }

    /// Every key and value (as text), in key order.
    pub fn keys(&self) -> Vec<(String, String)> {
        self.current().keys.iter().map(|(k, e)| (k.clone(), e.text())).collect()
    }

    /// While `true`, every write is refused (`Ok(false)` / `Ok(None)`),
    /// as a store refuses a compare-and-set that lost a race.
    pub fn refuse_writes(&self, refuse: bool) {
        self.lock().refuse_writes = refuse;
    }

    /// While `true`, every write fails with `DcsUnavailable` but reads
    /// still answer: a store that lost its quorum and serves what it has
    /// (etcd's "no leader" on writes).
    pub fn fail_writes(&self, fail: bool) {
        self.lock().fail_writes = fail;
    }

    /// Stop answering: every call fails at once with `DcsUnavailable`.
    pub fn go_down(&self) {
        self.lock().reachable = Reachable::Down;
        self.changed.notify_all();
    }

    /// Stop answering: every call waits its `retry_timeout`, then fails.
    pub fn freeze(&self) {
        self.lock().reachable = Reachable::Frozen;
        self.changed.notify_all();
    }

    /// Answer again, with the same data. Leases that expired meanwhile
    /// (on the store's clock) are gone.
    pub fn come_back(&self) {
        self.lock().reachable = Reachable::Up;
        self.changed.notify_all();
    }
}

/// One member's client of a [`MemoryStore`].
pub struct MemoryDcs {
    store: Arc<MemoryStore>,
    name: String,
    group: Option<i32>,
    /// `<group>/` for a client of a Citus group, empty otherwise.
    prefix: String,
    timing: Mutex<DcsTiming>,
    /// The lease our leader and member keys are bound to.
    lease: Mutex<Option<u64>>,
}

impl MemoryDcs {
    /// The store's key for the cluster's key `name`.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn timing(&self) -> DcsTiming {
        *self.timing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store's state, or the error an unreachable store gives (after
    /// `retry_timeout` when frozen).
    fn state(&self) -> PluginResult<MutexGuard<'_, State>> {
        let deadline = Instant::now() + self.timing().retry_timeout;
        let mut state = self.store.current();
        loop {
            match state.reachable {
                Reachable::Up => return Ok(state),
                Reachable::Down => return Err(PluginError::dcs("the in-memory store is down")),
                Reachable::Frozen => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(PluginError::dcs(format!(
                            "the in-memory store did not answer within {:?}",
                            self.timing().retry_timeout
                        )));
                    }
                    state = self.store.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
    }

    /// Our lease, renewed for `ttl`; a new one when it expired.
    fn keep_alive(&self, state: &mut State) -> u64 {
        let until = self.store.clock.now() + self.timing().ttl;
        let mut lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        let id = match *lease {
            Some(id) if state.leases.contains_key(&id) => id,
            _ => {
                let id = state.next_lease;
                state.next_lease += 1;
                id
            }
        };
        state.leases.insert(id, until);
        *lease = Some(id);
        id
    }

    fn write(&self, f: impl FnOnce(&mut State) -> bool) -> PluginResult<bool> {
        let mut state = self.state()?;
        if state.fail_writes {
            return Err(PluginError::dcs("the in-memory store has no quorum for writes"));
        }
        if state.refuse_writes {
            return Ok(false);
        }
        let done = f(&mut state);
        drop(state);
        self.store.changed.notify_all();
        Ok(done)
    }

    /// Compare-and-set `key` on `version` (no version: a plain write).
    fn cas(&self, name: &str, value: &str, version: Option<&str>) -> PluginResult<bool> {
        let key = self.key(name);
        let key = key.as_str();
        self.write(|s| {
            if version.is_some_and(|v| s.version_of(key).as_deref() != Some(v)) {
                return false;
            }
            s.put(key, value.as_bytes(), None);
            true
        })
    }
}

impl Dcs for MemoryDcs {
    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        let keys = match self.group {
            Some(g) => root().group(g),
            None => root(),
        };
        Ok(assemble(&keys, &self.state()?.stored()))
    }

    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        let leader = self.key(LEADER);
        let leader = leader.as_str();
        self.write(|s| {
            if s.keys.contains_key(leader) {
                return false;
            }
            let lease = self.keep_alive(s);
            s.put(leader, self.name.as_bytes(), Some(lease));
            true
        })
    }

    fn update_leader(&self, _leader: Option<&LeaderKey>) -> PluginResult<bool> {
        let leader = self.key(LEADER);
        let leader = leader.as_str();
        self.write(|s| {
            // As the etcd3 plugin: ours (or gone) is renewed on our lease;
            // somebody else's is left alone.
            if s.keys.contains_key(leader) && !s.holds(leader, &self.name) {
                return false;
            }
            let lease = self.keep_alive(s);
            if s.keys.get(leader).is_none_or(|e| e.lease != Some(lease)) {
                s.put(leader, self.name.as_bytes(), Some(lease));
            }
            true
        })
    }

    fn take_leader(&self) -> PluginResult<bool> {
        let leader = self.key(LEADER);
        let leader = leader.as_str();
        self.write(|s| {
            let lease = self.keep_alive(s);
            s.put(leader, self.name.as_bytes(), Some(lease));
            true
        })
    }

    fn delete_leader(&self, _leader: Option<&LeaderKey>) -> PluginResult<bool> {
        let leader = self.key(LEADER);
        self.write(|s| s.holds(&leader, &self.name) && s.delete(&leader))
    }

    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool> {
        let key = self.key(names::INITIALIZE);
        self.write(|s| {
            if create_new && s.keys.contains_key(&key) {
                return false;
            }
            s.put(&key, sysid.as_bytes(), None);
            true
        })
    }

    fn cancel_initialization(&self) -> PluginResult<bool> {
        let key = self.key(names::INITIALIZE);
        self.write(|s| {
            s.delete(&key);
            true
        })
    }

    fn touch_member(&self, data: &str) -> PluginResult<bool> {
        self.write(|s| {
            let lease = self.keep_alive(s);
            let key = self.key(&format!("{}{}", names::MEMBERS, self.name));
            if s.keys.get(&key).is_none_or(|e| e.value != data.as_bytes() || e.lease != Some(lease)) {
                s.put(&key, data.as_bytes(), Some(lease));
            }
            true
        })
    }

    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.cas("config", value, version)
    }

    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        self.cas("failover", value, version)
    }

    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>> {
        let mut new = None;
        let key = self.key(names::SYNC);
        self.write(|s| {
            if version.is_some_and(|v| s.version_of(&key).as_deref() != Some(v)) {
                return false;
            }
            s.put(&key, value.as_bytes(), None);
            new = s.version_of(&key);
            true
        })?;
        Ok(new)
    }

    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool> {
        let key = self.key(names::SYNC);
        self.write(|s| {
            if version.is_some_and(|v| s.version_of(&key).as_deref() != Some(v)) {
                return false;
            }
            s.delete(&key);
            true
        })
    }

    fn set_history_value(&self, value: &str) -> PluginResult<bool> {
        self.cas("history", value, None)
    }

    fn write_status(&self, value: &str) -> PluginResult<bool> {
        self.cas("status", value, None)
    }

    fn write_failsafe(&self, value: &str) -> PluginResult<bool> {
        self.cas("failsafe", value, None)
    }

    fn delete_cluster(&self) -> PluginResult<bool> {
        // Without a group the whole scope goes, every group's keys with
        // it, as Patroni deletes the scope's directory.
        self.write(|s| {
            s.keys.retain(|k, _| !k.starts_with(&self.prefix));
            s.revision += 1;
            true
        })
    }

    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()> {
        *self.timing.lock().unwrap_or_else(|p| p.into_inner()) = timing;
        Ok(())
    }

    /// Waits in real time (a watch is a wait, not a lease); leases still
    /// expire on the store's clock while it waits.
    fn watch(&self, leader_version: Option<&str>, timeout: Duration) -> PluginResult<bool> {
        let deadline = Instant::now() + timeout;
        let leader = self.key(LEADER);
        let mut state = self.state()?;
        let baseline = match leader_version {
            Some(v) => Some(v.to_string()),
            None => state.version_of(&leader),
        };
        loop {
            if state.reachable != Reachable::Up {
                drop(state);
                // Unreachable meanwhile: nothing can be seen to change.
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                return Ok(false);
            }
            if state.version_of(&leader) != baseline {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            state = self.store.changed.wait_timeout(state, left.min(WATCH_SLICE)).unwrap_or_else(|p| p.into_inner()).0;
            if state.expire(self.store.clock.now()) {
                self.store.changed.notify_all();
            }
        }
    }

    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>> {
        Ok(assemble_groups(&root(), &self.state()?.stored()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn timing() -> DcsTiming {
        DcsTiming {
            ttl: Duration::from_secs(30),
            loop_wait: Duration::from_secs(10),
            retry_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn leases_expire_on_the_injected_clock() {
        let clock = Arc::new(ManualClock::new());
        let store = MemoryStore::with_clock(clock.clone());
        let a = store.client("a", timing());
        let b = store.client("b", timing());
        assert!(a.attempt_to_acquire_leader().unwrap());
        assert!(a.touch_member("{}").unwrap());
        assert!(b.touch_member("{}").unwrap());
        clock.advance(Duration::from_secs(29));
        assert!(a.update_leader(None).unwrap(), "renewed before its ttl ran out");
        assert!(b.touch_member("{}").unwrap());
        clock.advance(Duration::from_secs(29));
        let s = b.get_cluster().unwrap();
        assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("a"));
        assert!(b.touch_member("{}").unwrap());
        clock.advance(Duration::from_secs(2));
        let s = b.get_cluster().unwrap();
        assert_eq!(s.leader, None, "the leader key goes with its lease");
        assert_eq!(s.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(b.attempt_to_acquire_leader().unwrap());
        // `a` comes back with a new lease and cannot renew b's key.
        assert!(!a.update_leader(None).unwrap());
        assert!(a.touch_member("{}").unwrap());
        assert_eq!(a.get_cluster().unwrap().members.len(), 2);
    }

    #[test]
    fn raw_writes_keep_their_bytes() {
        let store = MemoryStore::new();
        let a = store.client("a", timing());
        store.write_raw("members/x", b"\xff{\"a\":1}");
        store.write_raw("leader", b"a");
        assert_eq!(store.raw("members/x").as_deref(), Some(&b"\xff{\"a\":1}"[..]));
        assert_eq!(store.value("members/x").as_deref(), Some("\u{fffd}{\"a\":1}"));
        let s = a.get_cluster().unwrap();
        assert_eq!(s.members[0].value, "\u{fffd}{\"a\":1}", "clients read invalid UTF-8 replaced");
        assert!(a.update_leader(s.leader.as_ref()).unwrap(), "a raw leader key holding our name is ours");
    }

    #[test]
    fn outages_and_refused_writes() {
        let store = MemoryStore::new();
        let a = store.client("a", timing());
        store.refuse_writes(true);
        assert!(!a.set_config_value("{}", None).unwrap());
        assert_eq!(a.set_sync_state_value("{}", None).unwrap(), None);
        store.refuse_writes(false);
        assert!(a.set_config_value("{}", None).unwrap());
        store.fail_writes(true);
        let err = a.update_leader(None).unwrap_err();
        assert_eq!(err.kind, palisade_plugin_api::ErrorKind::DcsUnavailable);
        assert!(a.get_cluster().is_ok(), "reads still answer");
        store.fail_writes(false);
        store.go_down();
        assert!(a.get_cluster().is_err());
        store.freeze();
        let started = Instant::now();
        let err = a.touch_member("{}").unwrap_err();
        assert_eq!(err.kind, palisade_plugin_api::ErrorKind::DcsUnavailable);
        assert!(started.elapsed() >= timing().retry_timeout);
        store.come_back();
        assert_eq!(a.get_cluster().unwrap().config.map(|c| c.value).as_deref(), Some("{}"));
    }

    #[test]
    fn citus_groups_live_side_by_side() {
        let store = MemoryStore::new();
        let c = store.client_in(Some(0), "c1", timing());
        let w = store.client_in(Some(2), "w1", timing());
        assert!(c.attempt_to_acquire_leader().unwrap());
        assert!(w.attempt_to_acquire_leader().unwrap(), "each group has its own leader key");
        assert!(w.touch_member("{}").unwrap());
        assert_eq!(store.value("0/leader").as_deref(), Some("c1"));
        assert_eq!(store.value("2/members/w1").as_deref(), Some("{}"));
        let s = w.get_cluster().unwrap();
        assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("w1"));
        assert_eq!(s.members.len(), 1);
        assert!(c.get_cluster().unwrap().members.is_empty(), "a group sees only its own keys");
        let groups = c.get_mpp_groups().unwrap();
        assert_eq!(groups.keys().copied().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(groups[&2].members[0].name, "w1");
        assert!(w.delete_cluster().unwrap());
        assert_eq!(c.get_mpp_groups().unwrap().keys().copied().collect::<Vec<_>>(), [0], "only group 2 went");
    }
}
