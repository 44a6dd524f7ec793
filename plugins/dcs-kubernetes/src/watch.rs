//! `watch`: a Kubernetes watch (a streaming GET with `timeoutSeconds`)
//! from the last read's resourceVersion, woken as Patroni's object cache
//! wakes its HA loop: when the leader object's `leader` changes, when the
//! config annotation changes, and, for a member that does not hold the
//! lock, on every update of the leader object (so replicas follow the
//! leader's cycle).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::api::{DynamicObject, WatchEvent, WatchParams};

use crate::connection::Connection;
use crate::names;
use crate::snapshot;
use crate::store::{lock, Kubernetes};

/// What the watch compares events with.
struct Seen {
    leader: Option<String>,
    config: Option<String>,
}

impl Kubernetes {
    /// Whether `obj` (or its deletion, `deleted`) is worth a new cycle.
    fn wakes(&self, seen: &mut Seen, obj: &DynamicObject, deleted: bool) -> bool {
        let name = obj.metadata.name.as_deref().unwrap_or_default();
        if name == self.leader_target().1 {
            let new = if deleted {
                None
            } else {
                snapshot::record_of(obj, self.settings.leader_lease).get(names::LEADER).cloned()
            };
            let changed = new != seen.leader;
            let not_mine = new.as_deref() != Some(self.name.as_str());
            seen.leader = new;
            if changed {
                tracing::debug!("{name} changed");
            }
            return changed || not_mine;
        }
        if !self.settings.leader_lease && name == self.names.config() {
            let new = if deleted { None } else { snapshot::annotations_of(obj).get(names::CONFIG).cloned() };
            let changed = seen.config.is_some() && new.is_some() && new != seen.config;
            seen.config = new;
            return changed;
        }
        false
    }

    /// Wait up to `timeout` for a change; `true` when one came (or the
    /// lock we saw expired meanwhile).
    pub(crate) async fn wait_for_change(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let lease_mode = self.settings.leader_lease;
        let (mut version, mut seen) = {
            let memo = lock(&self.memo);
            let leader =
                memo.leader.as_ref().and_then(|l| snapshot::record_of(l, lease_mode).get(names::LEADER).cloned());
            let version =
                if lease_mode { memo.leader.as_ref().and_then(snapshot::rv_of) } else { memo.list_rv.clone() };
            (version.unwrap_or_else(|| "0".into()), Seen { leader, config: memo.config.clone() })
        };
        // Nothing in the store changes when a lock expires (its readers
        // decide): wake when the lock we saw will have expired.
        let expiry = {
            let memo = lock(&self.memo);
            let record = &memo.observed.record;
            let ttl = record.get(names::TTL).and_then(|t| t.trim().parse::<u64>().ok()).filter(|t| *t > 0);
            match (record.contains_key(names::LEADER), memo.observed.at) {
                (true, Some(at)) => {
                    Some(at + Duration::from_secs(ttl.unwrap_or(self.ttl())) + Duration::from_millis(50))
                }
                _ => None,
            }
        };
        let deadline = match expiry {
            Some(e) if e < deadline => e,
            _ => deadline,
        };
        let expires = expiry.is_some_and(|e| e <= deadline);
        let (ar, _) = self.leader_target();
        let ar = ar.clone();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return expires;
            }
            let Some(client) = self.conn.current().await else { break };
            let secs = u32::try_from(remaining.as_secs() + 1).unwrap_or(u32::MAX);
            let wp = if lease_mode {
                WatchParams::default().fields(&format!("metadata.name={}", self.names.lease())).timeout(secs)
            } else {
                WatchParams::default().labels(&self.settings.label_selector()).timeout(secs)
            };
            let api = Connection::api(client, &self.conn.namespace, &ar);
            let stream = match tokio::time::timeout(remaining, api.watch(&wp, &version)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("cannot watch the leader object: {e}");
                    break;
                }
                Err(_) => return expires,
            };
            let mut stream = std::pin::pin!(stream);
            let outcome = tokio::time::timeout(remaining, async {
                while let Some(event) = stream.next().await {
                    let (obj, deleted) = match event {
                        Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => (o, false),
                        Ok(WatchEvent::Deleted(o)) => (o, true),
                        Ok(WatchEvent::Bookmark(b)) => {
                            version = b.metadata.resource_version;
                            continue;
                        }
                        Ok(WatchEvent::Error(e)) => return Err(format!("{} {}", e.code, e.message)),
                        Err(e) => return Err(e.to_string()),
                    };
                    if let Some(rv) = snapshot::rv_of(&obj) {
                        version = rv;
                    }
                    if self.wakes(&mut seen, &obj, deleted) {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .await;
            match outcome {
                Ok(Ok(true)) => return true,
                // The server ended the stream: watch again from where it was.
                Ok(Ok(false)) => {
                    tokio::time::sleep(Duration::from_millis(100).min(remaining)).await;
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::debug!("the watch ended: {e}");
                    break;
                }
                Err(_) => return expires,
            }
        }
        // No watch to be had (API down, resourceVersion too old): sleep
        // out the time; the next cycle reads everything afresh.
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
        expires
    }
}
