//! The state a Consul server keeps in Raft, and its rules: the KV store
//! (check-and-set, locks through sessions, tombstones for deletions),
//! sessions (TTL, checks, behaviour, lock delay) and the agent's services
//! and checks. Everything here is synchronous and takes the current time
//! as an argument, so that the rules can be tested without a clock.
//!
//! One Raft-like index counts every write; the KV "table index" (which
//! blocking queries on missing keys return) is the highest index of a KV
//! write or deletion, as Consul's `kvs`+`tombstones` tables give.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One KV entry, as Consul's `DirEntry`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub lock_index: u64,
    pub flags: u64,
    pub value: Vec<u8>,
    /// The session holding the lock, empty when none.
    pub session: String,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Behavior {
    Release,
    Delete,
}

impl Behavior {
    pub fn as_str(self) -> &'static str {
        match self {
            Behavior::Release => "release",
            Behavior::Delete => "delete",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay_ns: u64,
    pub behavior: Behavior,
    /// The TTL as the client gave it (`"15s"`), empty when none.
    pub ttl: String,
    pub ttl_ns: u64,
    pub node_checks: Vec<String>,
    pub service_checks: Vec<String>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// How a check finds its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckKind {
    /// Always passing: the agent's own `serfHealth`.
    Serf,
    /// Marked by the client (`/v1/agent/check/pass|warn|fail`), critical
    /// when not marked within `ttl_ns`.
    Ttl { ttl_ns: u64 },
    /// `GET url` every `interval_ns`.
    Http { url: String, interval_ns: u64, timeout_ns: u64, method: String, header: Vec<(String, String)> },
    /// A TCP connection to `address` every `interval_ns`.
    Tcp { address: String, interval_ns: u64, timeout_ns: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub notes: String,
    pub status: String,
    pub output: String,
    pub service_id: String,
    pub kind: CheckKind,
    /// `DeregisterCriticalServiceAfter`, 0 when not set.
    pub deregister_after_ns: u64,
    pub tls_server_name: String,
    pub tls_skip_verify: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

/// What is persisted (write-through) in the data dir.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Persisted {
    pub index: u64,
    pub kv_index: u64,
    pub session_index: u64,
    pub catalog_index: u64,
    pub kv: BTreeMap<String, Entry>,
    pub tombstones: BTreeMap<String, u64>,
    pub sessions: BTreeMap<String, Session>,
    pub services: BTreeMap<String, Service>,
    pub checks: BTreeMap<String, Check>,
}

/// The state and the in-memory timers that a restart resets, as a new
/// Consul leader resets session timers.
#[derive(Debug)]
pub struct Store {
    pub p: Persisted,
    pub node: String,
    /// When each session with a TTL is invalidated unless renewed.
    pub session_deadline: HashMap<String, Instant>,
    /// Keys whose lock may not be acquired before the instant (lock-delay).
    pub lock_delay: HashMap<String, Instant>,
    /// When a TTL check turns critical unless marked again.
    pub ttl_deadline: HashMap<String, Instant>,
    /// Since when a check has been critical.
    pub critical_since: HashMap<String, Instant>,
    pub session_ttl_min_ns: u64,
}

/// Consul invalidates a session only after twice its TTL.
pub const SESSION_TTL_MULTIPLIER: u32 = 2;
pub const SESSION_TTL_MAX_NS: u64 = 86_400_000_000_000;
pub const SERF_CHECK: &str = "serfHealth";

/// What a session create asks for.
#[derive(Clone, Debug, Default)]
pub struct SessionRequest {
    pub name: String,
    pub node: Option<String>,
    pub lock_delay_ns: Option<u64>,
    pub behavior: Option<Behavior>,
    pub ttl: String,
    pub checks: Option<Vec<String>>,
    pub node_checks: Option<Vec<String>>,
    pub service_checks: Option<Vec<String>>,
}

/// A write's error, with the status and text Consul answers it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
}

impl Store {
    pub fn new(p: Persisted, node: &str, now: Instant) -> Self {
        let mut s = Store {
            p,
            node: node.to_string(),
            session_deadline: HashMap::new(),
            lock_delay: HashMap::new(),
            ttl_deadline: HashMap::new(),
            critical_since: HashMap::new(),
            session_ttl_min_ns: 10_000_000_000,
        };
        // As after a leader election: every TTL starts anew.
        let ids: Vec<(String, u64)> = s.p.sessions.values().map(|x| (x.id.clone(), x.ttl_ns)).collect();
        for (id, ttl) in ids {
            if ttl > 0 {
                s.session_deadline.insert(id, now + Duration::from_nanos(ttl) * SESSION_TTL_MULTIPLIER);
            }
        }
        let checks: Vec<Check> = s.p.checks.values().cloned().collect();
        for c in checks {
            if let CheckKind::Ttl { ttl_ns } = c.kind {
                s.ttl_deadline.insert(c.id.clone(), now + Duration::from_nanos(ttl_ns));
            }
            if c.status == "critical" {
                s.critical_since.insert(c.id.clone(), now);
            }
        }
        s
    }

    fn next(&mut self) -> u64 {
        self.p.index += 1;
        self.p.index
    }

    fn kv_written(&mut self, idx: u64) {
        self.p.kv_index = idx;
    }

    // ---- KV ----

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.p.kv.get(key)
    }

    /// The entries whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Vec<(&String, &Entry)> {
        self.p.kv.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix)).collect()
    }

    /// The index a read of one key returns: its ModifyIndex, or the KV
    /// table index when it does not exist (at least 1).
    pub fn key_index(&self, key: &str) -> u64 {
        self.p.kv.get(key).map(|e| e.modify_index).unwrap_or(self.p.kv_index).max(1)
    }

    /// The index a prefix read returns: the highest ModifyIndex or
    /// tombstone under it, or the KV table index when nothing is there.
    pub fn prefix_index(&self, prefix: &str) -> u64 {
        let live = self.list(prefix).iter().map(|(_, e)| e.modify_index).max().unwrap_or(0);
        let dead = self
            .p
            .tombstones
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, i)| *i)
            .max()
            .unwrap_or(0);
        let idx = live.max(dead);
        if idx == 0 {
            self.p.kv_index.max(1)
        } else {
            idx
        }
    }

    fn write_entry(&mut self, key: &str, value: Vec<u8>, flags: u64, session: Option<String>, lock_bump: bool) -> u64 {
        let idx = self.next();
        let entry = match self.p.kv.get(key) {
            Some(old) => Entry {
                lock_index: old.lock_index + u64::from(lock_bump),
                flags,
                value,
                session: session.unwrap_or_else(|| old.session.clone()),
                create_index: old.create_index,
                modify_index: idx,
            },
            None => Entry {
                lock_index: u64::from(lock_bump),
                flags,
                value,
                session: session.unwrap_or_default(),
                create_index: idx,
                modify_index: idx,
            },
        };
        self.p.kv.insert(key.to_string(), entry);
        self.p.tombstones.remove(key);
        self.kv_written(idx);
        idx
    }

    /// `PUT /v1/kv/<key>` without `cas`/`acquire`/`release`: always true.
    /// The lock holder, if any, is kept.
    pub fn put(&mut self, key: &str, value: Vec<u8>, flags: u64) -> bool {
        self.write_entry(key, value, flags, None, false);
        true
    }

    /// `?cas=N`: 0 creates only when absent, N writes only when the
    /// ModifyIndex is N.
    pub fn put_cas(&mut self, key: &str, value: Vec<u8>, flags: u64, cas: u64) -> bool {
        let ok = match self.p.kv.get(key) {
            None => cas == 0,
            Some(e) => cas != 0 && e.modify_index == cas,
        };
        if ok {
            self.write_entry(key, value, flags, None, false);
        }
        ok
    }

    /// `?acquire=<session>`. An invalid session is an error (500 `invalid
    /// session`); a lock held by another session, or a key in its
    /// lock-delay, is `false`; the holder acquiring again updates the
    /// value without bumping LockIndex.
    pub fn acquire(
        &mut self,
        key: &str,
        value: Vec<u8>,
        flags: u64,
        session: &str,
        now: Instant,
    ) -> Result<bool, ApiError> {
        if !self.p.sessions.contains_key(session) {
            return Err(ApiError::new(500, format!("invalid session {session:?}")));
        }
        if self.lock_delay.get(key).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        let bump = match self.p.kv.get(key) {
            Some(e) if e.session == session => false,
            Some(e) if !e.session.is_empty() => return Ok(false),
            _ => true,
        };
        self.write_entry(key, value, flags, Some(session.to_string()), bump);
        Ok(true)
    }

    /// `?release=<session>`: only the holder releases.
    pub fn release(&mut self, key: &str, value: Vec<u8>, flags: u64, session: &str) -> Result<bool, ApiError> {
        if !self.p.sessions.contains_key(session) {
            return Err(ApiError::new(500, format!("invalid session {session:?}")));
        }
        match self.p.kv.get(key) {
            Some(e) if e.session == session => {
                self.write_entry(key, value, flags, Some(String::new()), false);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn tombstone(&mut self, key: &str, idx: u64) {
        self.p.kv.remove(key);
        self.p.tombstones.insert(key.to_string(), idx);
    }

    /// `DELETE /v1/kv/<key>`: true (also when absent, which changes nothing).
    pub fn delete(&mut self, key: &str) -> bool {
        if self.p.kv.contains_key(key) {
            let idx = self.next();
            self.tombstone(key, idx);
            self.kv_written(idx);
        }
        true
    }

    /// `DELETE ...?cas=N`: deletes only when the ModifyIndex is N; true
    /// when the key is absent.
    pub fn delete_cas(&mut self, key: &str, cas: u64) -> bool {
        match self.p.kv.get(key) {
            None => true,
            Some(e) if e.modify_index == cas => self.delete(key),
            Some(_) => false,
        }
    }

    /// `DELETE ...?recurse`.
    pub fn delete_tree(&mut self, prefix: &str) -> bool {
        let keys: Vec<String> = self.list(prefix).into_iter().map(|(k, _)| k.clone()).collect();
        if !keys.is_empty() {
            let idx = self.next();
            for k in keys {
                self.tombstone(&k, idx);
            }
            self.kv_written(idx);
        }
        true
    }

    // ---- sessions ----

    pub fn create_session(&mut self, req: SessionRequest, now: Instant) -> Result<String, ApiError> {
        let ttl_ns = if req.ttl.is_empty() {
            0
        } else {
            let ns = crate::util::parse_duration(&req.ttl)
                .map_err(|e| ApiError::new(400, format!("Request decode failed: {e}")))?;
            if ns != 0 && !(self.session_ttl_min_ns..=SESSION_TTL_MAX_NS).contains(&ns) {
                return Err(ApiError::new(
                    500,
                    format!(
                        "Invalid Session TTL '{ns}', must be between [{}={}]",
                        crate::util::format_duration(self.session_ttl_min_ns),
                        crate::util::format_duration(SESSION_TTL_MAX_NS)
                    ),
                ));
            }
            ns
        };
        let node = req.node.unwrap_or_else(|| self.node.clone());
        if node != self.node {
            return Err(ApiError::new(500, format!("Missing node registration: {node:?}")));
        }
        // Consul: the node's serfHealth unless `Checks` or `NodeChecks` is
        // given (an empty list takes it out).
        let mut node_checks = match (&req.checks, &req.node_checks) {
            (None, None) => vec![SERF_CHECK.to_string()],
            _ => req.node_checks.clone().unwrap_or_default(),
        };
        let mut service_checks = req.service_checks.clone().unwrap_or_default();
        for c in req.checks.clone().unwrap_or_default() {
            match self.p.checks.get(&c) {
                Some(check) if !check.service_id.is_empty() => service_checks.push(c),
                _ => node_checks.push(c),
            }
        }
        for c in node_checks.iter().chain(&service_checks) {
            let status = if c == SERF_CHECK {
                "passing"
            } else {
                match self.p.checks.get(c) {
                    Some(check) => check.status.as_str(),
                    None => return Err(ApiError::new(500, format!("Missing check '{c}' registration"))),
                }
            };
            if status == "critical" {
                return Err(ApiError::new(500, format!("Check '{c}' is in critical state")));
            }
        }
        node_checks.dedup();
        let idx = self.next();
        let id = crate::util::uuid();
        let s = Session {
            id: id.clone(),
            name: req.name,
            node,
            lock_delay_ns: req.lock_delay_ns.unwrap_or(15_000_000_000),
            behavior: req.behavior.unwrap_or(Behavior::Release),
            ttl: req.ttl,
            ttl_ns,
            node_checks,
            service_checks,
            create_index: idx,
            modify_index: idx,
        };
        if ttl_ns > 0 {
            self.session_deadline.insert(id.clone(), now + Duration::from_nanos(ttl_ns) * SESSION_TTL_MULTIPLIER);
        }
        self.p.sessions.insert(id.clone(), s);
        self.p.session_index = idx;
        Ok(id)
    }

    /// Renew a session's TTL; `None` when it does not exist (404).
    pub fn renew_session(&mut self, id: &str, now: Instant) -> Option<Session> {
        let s = self.p.sessions.get(id)?.clone();
        if s.ttl_ns > 0 {
            self.session_deadline.insert(id.to_string(), now + Duration::from_nanos(s.ttl_ns) * SESSION_TTL_MULTIPLIER);
        }
        Some(s)
    }

    /// Invalidate (destroy) a session: its locks are released or, with
    /// Behavior=delete, deleted, and each of those keys gets the session's
    /// lock-delay. True when it existed.
    pub fn destroy_session(&mut self, id: &str, now: Instant) -> bool {
        let Some(s) = self.p.sessions.remove(id) else {
            return false;
        };
        self.session_deadline.remove(id);
        let idx = self.next();
        self.p.session_index = idx;
        let held: Vec<String> = self.p.kv.iter().filter(|(_, e)| e.session == id).map(|(k, _)| k.clone()).collect();
        if !held.is_empty() {
            for k in &held {
                match s.behavior {
                    Behavior::Release => {
                        if let Some(e) = self.p.kv.get_mut(k) {
                            e.session.clear();
                            e.modify_index = idx;
                        }
                    }
                    Behavior::Delete => self.tombstone(k, idx),
                }
                if s.lock_delay_ns > 0 {
                    self.lock_delay.insert(k.clone(), now + Duration::from_nanos(s.lock_delay_ns));
                }
            }
            self.kv_written(idx);
        }
        true
    }

    /// Invalidate every session whose TTL ran out; returns their ids.
    pub fn expire_sessions(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> =
            self.session_deadline.iter().filter(|(_, d)| **d <= now).map(|(id, _)| id.clone()).collect();
        for id in &expired {
            self.destroy_session(id, now);
        }
        self.lock_delay.retain(|_, until| *until > now);
        expired
    }

    /// Invalidate the sessions tied to check `id` (it went critical or away).
    fn invalidate_sessions_of_check(&mut self, check: &str, now: Instant) {
        let ids: Vec<String> = self
            .p
            .sessions
            .values()
            .filter(|s| s.node_checks.iter().chain(&s.service_checks).any(|c| c == check))
            .map(|s| s.id.clone())
            .collect();
        for id in ids {
            self.destroy_session(&id, now);
        }
    }

    // ---- agent: services and checks ----

    pub fn register_service(&mut self, svc: Service, checks: Vec<Check>, replace_checks: bool, now: Instant) {
        let idx = self.next();
        let create_index = self.p.services.get(&svc.id).map(|s| s.create_index).unwrap_or(idx);
        let id = svc.id.clone();
        self.p.services.insert(id.clone(), Service { create_index, modify_index: idx, ..svc });
        if replace_checks {
            let keep: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
            let gone: Vec<String> = self
                .p
                .checks
                .values()
                .filter(|c| c.service_id == id && !keep.contains(&c.id.as_str()))
                .map(|c| c.id.clone())
                .collect();
            for c in gone {
                self.remove_check(&c, now);
            }
        }
        for c in checks {
            self.add_check_at(c, idx, now);
        }
        self.p.catalog_index = idx;
    }

    fn add_check_at(&mut self, mut c: Check, idx: u64, now: Instant) {
        if let Some(old) = self.p.checks.get(&c.id) {
            // Re-registration keeps the check's status, as the agent does.
            c.status = old.status.clone();
            c.output = old.output.clone();
            c.create_index = old.create_index;
        } else {
            c.create_index = idx;
            if c.status == "critical" {
                self.critical_since.insert(c.id.clone(), now);
            }
        }
        c.modify_index = idx;
        if let CheckKind::Ttl { ttl_ns } = c.kind {
            self.ttl_deadline.entry(c.id.clone()).or_insert(now + Duration::from_nanos(ttl_ns));
        } else {
            self.ttl_deadline.remove(&c.id);
        }
        self.p.checks.insert(c.id.clone(), c);
    }

    pub fn register_check(&mut self, c: Check, now: Instant) -> Result<(), ApiError> {
        if !c.service_id.is_empty() && !self.p.services.contains_key(&c.service_id) {
            return Err(ApiError::new(400, format!("ServiceID {:?} does not exist", c.service_id)));
        }
        let idx = self.next();
        self.add_check_at(c, idx, now);
        self.p.catalog_index = idx;
        Ok(())
    }

    fn remove_check(&mut self, id: &str, now: Instant) -> bool {
        if self.p.checks.remove(id).is_none() {
            return false;
        }
        self.ttl_deadline.remove(id);
        self.critical_since.remove(id);
        self.invalidate_sessions_of_check(id, now);
        true
    }

    pub fn deregister_check(&mut self, id: &str, now: Instant) -> bool {
        if !self.p.checks.contains_key(id) {
            return false;
        }
        let idx = self.next();
        self.remove_check(id, now);
        self.p.catalog_index = idx;
        true
    }

    pub fn deregister_service(&mut self, id: &str, now: Instant) -> bool {
        if self.p.services.remove(id).is_none() {
            return false;
        }
        let idx = self.next();
        let checks: Vec<String> = self.p.checks.values().filter(|c| c.service_id == id).map(|c| c.id.clone()).collect();
        for c in checks {
            self.remove_check(&c, now);
        }
        self.p.catalog_index = idx;
        true
    }

    /// Set a check's status; a change to critical invalidates the sessions
    /// tied to it. Returns whether anything changed.
    pub fn set_check_status(&mut self, id: &str, status: &str, output: &str, now: Instant) -> bool {
        let Some(c) = self.p.checks.get(id) else {
            return false;
        };
        if let CheckKind::Ttl { ttl_ns } = c.kind {
            self.ttl_deadline.insert(id.to_string(), now + Duration::from_nanos(ttl_ns));
        }
        if c.status == status && c.output == output {
            return false;
        }
        let idx = self.next();
        if let Some(c) = self.p.checks.get_mut(id) {
            c.status = status.to_string();
            c.output = output.to_string();
            c.modify_index = idx;
        }
        self.p.catalog_index = idx;
        if status == "critical" {
            self.critical_since.entry(id.to_string()).or_insert(now);
            self.invalidate_sessions_of_check(id, now);
        } else {
            self.critical_since.remove(id);
        }
        true
    }

    /// TTL checks not marked in time turn critical; services whose check has
    /// been critical for longer than its DeregisterCriticalServiceAfter are
    /// deregistered. Returns whether anything changed.
    pub fn run_check_timers(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let due: Vec<String> = self.ttl_deadline.iter().filter(|(_, d)| **d <= now).map(|(id, _)| id.clone()).collect();
        for id in due {
            self.ttl_deadline.remove(&id);
            let stale = self.p.checks.get(&id).is_some_and(|c| c.status != "critical");
            if stale {
                changed |= self.set_check_status(&id, "critical", "TTL expired", now);
            }
        }
        let reap: Vec<String> = self
            .p
            .checks
            .values()
            .filter(|c| c.deregister_after_ns > 0 && !c.service_id.is_empty())
            .filter(|c| {
                self.critical_since
                    .get(&c.id)
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_nanos(c.deregister_after_ns))
            })
            .map(|c| c.service_id.clone())
            .collect();
        for svc in reap {
            changed |= self.deregister_service(&svc, now);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Store, Instant) {
        let now = Instant::now();
        (Store::new(Persisted::default(), "n1", now), now)
    }

    fn session(s: &mut Store, now: Instant, behavior: Behavior, lock_delay_ns: u64) -> String {
        s.create_session(
            SessionRequest {
                name: "x".into(),
                ttl: "10s".into(),
                behavior: Some(behavior),
                lock_delay_ns: Some(lock_delay_ns),
                ..Default::default()
            },
            now,
        )
        .unwrap()
    }

    #[test]
    fn cas_table() {
        // (existing?, cas, expected)
        for (exists, cas_of_existing, expected) in [(false, false, true), (true, false, false), (true, true, true)] {
            let (mut s, _) = store();
            let mut cas = 0;
            if exists {
                s.put("k", b"a".to_vec(), 0);
                if cas_of_existing {
                    cas = s.get("k").unwrap().modify_index;
                }
            }
            assert_eq!(s.put_cas("k", b"b".to_vec(), 0, cas), expected, "exists={exists} cas={cas}");
        }
        let (mut s, _) = store();
        assert!(!s.put_cas("k", b"b".to_vec(), 0, 5), "cas on an absent key with N != 0");
        s.put("k", b"a".to_vec(), 7);
        let m = s.get("k").unwrap().modify_index;
        assert!(!s.delete_cas("k", m + 1));
        assert!(s.delete_cas("k", m));
        assert!(s.get("k").is_none());
        assert!(s.delete_cas("k", 3), "deleting an absent key with cas succeeds");
    }

    #[test]
    fn acquire_release_table() {
        let (mut s, now) = store();
        let a = session(&mut s, now, Behavior::Release, 0);
        let b = session(&mut s, now, Behavior::Release, 0);
        // (op, session, expected)
        let steps: &[(&str, &str, Result<bool, ()>)] = &[
            ("acquire", &a, Ok(true)),
            ("acquire", &b, Ok(false)),
            ("acquire", &a, Ok(true)),
            ("release", &b, Ok(false)),
            ("release", &a, Ok(true)),
            ("release", &a, Ok(false)),
            ("acquire", &b, Ok(true)),
            ("acquire", "no-such-session", Err(())),
            ("release", "no-such-session", Err(())),
        ];
        let mut lock_indexes = Vec::new();
        for (op, sess, expected) in steps {
            let got = match *op {
                "acquire" => s.acquire("l", b"v".to_vec(), 0, sess, now),
                _ => s.release("l", b"v".to_vec(), 0, sess),
            };
            assert_eq!(got.map_err(|_| ()), *expected, "{op} by {sess}");
            lock_indexes.push(s.get("l").unwrap().lock_index);
        }
        assert_eq!(lock_indexes[..7], [1, 1, 1, 1, 1, 1, 2], "LockIndex counts acquisitions by a new holder");
        assert_eq!(s.get("l").unwrap().session, b);
        // A plain put keeps the holder.
        s.put("l", b"w".to_vec(), 0);
        assert_eq!(s.get("l").unwrap().session, b);
    }

    #[test]
    fn invalidation_releases_or_deletes_and_lock_delay_holds() {
        for behavior in [Behavior::Release, Behavior::Delete] {
            let (mut s, now) = store();
            let a = session(&mut s, now, behavior, 2_000_000_000);
            assert_eq!(s.acquire("l", b"v".to_vec(), 0, &a, now), Ok(true));
            let before = s.key_index("l");
            // Not yet: the TTL is 10s, invalidated after 2×TTL.
            assert!(s.expire_sessions(now + Duration::from_secs(19)).is_empty());
            let t = now + Duration::from_secs(20);
            assert_eq!(s.expire_sessions(t), vec![a.clone()]);
            match behavior {
                Behavior::Release => {
                    let e = s.get("l").unwrap();
                    assert_eq!(e.session, "");
                    assert!(e.modify_index > before);
                }
                Behavior::Delete => assert!(s.get("l").is_none()),
            }
            assert!(s.key_index("l") > before, "blocking readers of the key wake");
            let b = session(&mut s, t, Behavior::Release, 0);
            assert_eq!(s.acquire("l", b"w".to_vec(), 0, &b, t + Duration::from_secs(1)), Ok(false), "lock-delay");
            assert_eq!(s.acquire("l", b"w".to_vec(), 0, &b, t + Duration::from_secs(2)), Ok(true));
        }
    }

    #[test]
    fn renew_moves_the_deadline_and_destroy_releases_without_ttl() {
        let (mut s, now) = store();
        let a = session(&mut s, now, Behavior::Release, 0);
        assert!(s.renew_session(&a, now + Duration::from_secs(15)).is_some());
        assert!(s.expire_sessions(now + Duration::from_secs(30)).is_empty());
        assert_eq!(s.expire_sessions(now + Duration::from_secs(35)), vec![a.clone()]);
        assert!(s.renew_session(&a, now).is_none());
        let b = session(&mut s, now, Behavior::Release, 0);
        s.acquire("k", vec![], 0, &b, now).unwrap();
        assert!(s.destroy_session(&b, now));
        assert_eq!(s.get("k").unwrap().session, "");
        assert!(!s.destroy_session(&b, now));
    }

    #[test]
    fn session_ttl_bounds_and_checks() {
        let (mut s, now) = store();
        for (ttl, ok) in [("9s", false), ("10s", true), ("86400s", true), ("86401s", false), ("", true)] {
            let r = s.create_session(SessionRequest { ttl: ttl.into(), ..Default::default() }, now);
            assert_eq!(r.is_ok(), ok, "{ttl}: {r:?}");
            if let Err(e) = r {
                assert!(e.message.starts_with("Invalid Session TTL"), "{e:?}");
            }
        }
        let r = s.create_session(SessionRequest { checks: Some(vec!["nope".into()]), ..Default::default() }, now);
        assert_eq!(r.unwrap_err().message, "Missing check 'nope' registration");
        let check = Check {
            id: "c".into(),
            name: "c".into(),
            notes: String::new(),
            status: "passing".into(),
            output: String::new(),
            service_id: String::new(),
            kind: CheckKind::Ttl { ttl_ns: 5_000_000_000 },
            deregister_after_ns: 0,
            tls_server_name: String::new(),
            tls_skip_verify: false,
            create_index: 0,
            modify_index: 0,
        };
        s.register_check(check, now).unwrap();
        let id =
            s.create_session(SessionRequest { checks: Some(vec!["c".into()]), ..Default::default() }, now).unwrap();
        assert_eq!(s.p.sessions[&id].node_checks, vec!["c".to_string()]);
        s.acquire("k", vec![], 0, &id, now).unwrap();
        // The TTL check is not marked in time: critical, the session goes.
        assert!(s.run_check_timers(now + Duration::from_secs(6)));
        assert!(!s.p.sessions.contains_key(&id));
        assert_eq!(s.get("k").unwrap().session, "");
    }

    #[test]
    fn indexes_for_blocking_reads() {
        let (mut s, _) = store();
        s.put("a/x", vec![], 0);
        s.put("b", vec![], 0);
        let ax = s.key_index("a/x");
        assert_eq!(s.prefix_index("a/"), ax);
        assert!(s.key_index("missing") >= s.key_index("b"), "a missing key reads the table index");
        s.delete("a/x");
        assert!(s.prefix_index("a/") > ax, "a deletion under the prefix moves its index");
        s.put("c", vec![], 0);
        let a_idx = s.prefix_index("a/");
        assert!(s.key_index("c") > a_idx, "writes elsewhere leave the prefix's index alone");
    }
}
