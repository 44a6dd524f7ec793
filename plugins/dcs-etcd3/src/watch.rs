//! `watch`: sleep up to the timeout, waking early on a change worth a new
//! HA cycle, as Patroni's etcd3 watcher decides it:
//!
//! - the leader key: with a leader version, any write or delete of the key
//!   (its mod revision moves on); without one, a change of its value
//!   (taken, released, expired);
//! - `config` changed (not created or deleted);
//! - `status` or `optime/leader` changed while somebody else leads, so
//!   replicas follow the leader's cycle.
//!
//! The watch starts right after the revision of the last snapshot, so a
//! change that landed between `get_cluster` and `watch` still wakes it.
//! While etcd cannot be reached it just sleeps (the next `get_cluster`
//! reports the outage), as Patroni does.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use etcd_client::{GetOptions, WatchOptions};

use crate::connection::Budget;
use crate::failure::Failure;
use crate::keys;
use crate::snapshot::{self, Memo, Node};
use crate::store::{lock, Etcd3};

/// Patroni gives a node that watches the leader half a second more, so
/// replicas line their cycles up behind the leader's.
const LEADER_WATCH_GRACE: Duration = Duration::from_millis(500);

/// The watched keys' values, and the rule deciding whether an event wakes.
#[derive(Clone, Debug)]
pub(crate) struct Baseline {
    own_name: String,
    leader_version: Option<i64>,
    /// The last revision seen; a new watch starts after it.
    pub revision: i64,
    leader: Option<String>,
    config: Option<String>,
    status: Option<String>,
    leader_optime: Option<String>,
}

impl Baseline {
    pub(crate) fn new(memo: &Memo, own_name: &str, leader_version: Option<i64>) -> Self {
        Baseline {
            own_name: own_name.to_string(),
            leader_version,
            revision: memo.revision,
            leader: memo.leader.as_ref().map(|(v, _)| v.clone()),
            config: memo.config.clone(),
            status: memo.status.clone(),
            leader_optime: memo.leader_optime.clone(),
        }
    }

    /// Whether the leader key already differs from the version asked for.
    pub(crate) fn leader_already_moved(memo: &Memo, leader_version: Option<i64>) -> bool {
        match leader_version {
            Some(v) => memo.leader.as_ref().map(|(_, rev)| *rev) != Some(v),
            None => false,
        }
    }

    /// Take one event (`value` is `None` for a delete); `true` means wake up.
    pub(crate) fn apply(&mut self, relative_key: &str, value: Option<String>, mod_revision: i64) -> bool {
        self.revision = self.revision.max(mod_revision);
        match relative_key {
            keys::LEADER => {
                let changed = match self.leader_version {
                    Some(v) => mod_revision != v,
                    None => self.leader != value,
                };
                self.leader = value;
                changed
            }
            keys::CONFIG => {
                let changed = self.config.is_some() && value.is_some() && self.config != value;
                self.config = value;
                changed
            }
            keys::STATUS | keys::LEADER_OPTIME => {
                let slot = if relative_key == keys::STATUS { &mut self.status } else { &mut self.leader_optime };
                let changed = value.is_some() && *slot != value;
                *slot = value;
                changed && self.leader.as_deref() != Some(self.own_name.as_str())
            }
            _ => false,
        }
    }
}

enum Outcome {
    Woken,
    /// The stream ended or failed; watch again from the last revision.
    Interrupted,
    TimedOut,
}

impl Etcd3 {
    pub(crate) async fn wait_for_change(
        &self,
        leader_version: Option<&str>,
        timeout: Duration,
    ) -> Result<bool, Failure> {
        if self.skip_next_watch.swap(false, Ordering::SeqCst) {
            return Ok(true);
        }
        // Make the next writer of the cycle keep the lease alive.
        self.lease.lock().await.last_refresh = None;

        let version = leader_version.and_then(|v| v.trim().parse::<i64>().ok());
        if leader_version.is_some() && version.is_none() {
            tracing::debug!("watch: leader version {leader_version:?} is not ours; watching as without one");
        }
        let timeout = if version.is_some() { timeout + LEADER_WATCH_GRACE } else { timeout };
        let deadline = Instant::now() + timeout;

        let memo = lock(&self.memo).clone();
        let memo = match memo {
            Some(m) => m,
            None => match self.read_baseline(deadline).await {
                Some(m) => m,
                None => {
                    tokio::time::sleep_until(deadline.into()).await;
                    return Ok(false);
                }
            },
        };
        if Baseline::leader_already_moved(&memo, version) {
            return Ok(true);
        }
        let mut baseline = Baseline::new(&memo, &self.name, version);
        loop {
            match self.watch_once(&mut baseline, deadline).await {
                Outcome::Woken => return Ok(true),
                Outcome::TimedOut => return Ok(false),
                Outcome::Interrupted => {
                    let pause = Duration::from_millis(200).min(deadline.saturating_duration_since(Instant::now()));
                    if pause.is_zero() {
                        return Ok(false);
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// A fresh read of the cluster, when no snapshot was taken yet.
    async fn read_baseline(&self, deadline: Instant) -> Option<Memo> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let budget = Budget::new(remaining.min(self.timing().retry_timeout));
        let prefix = self.keys.prefix().to_string();
        let resp = self
            .conn
            .call(&budget, |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await
            .ok()?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        let nodes: Vec<Node> = resp.kvs().iter().map(Node::from_kv).collect();
        Some(snapshot::build(&self.keys, &nodes, revision, &self.name).1)
    }

    async fn watch_once(&self, baseline: &mut Baseline, deadline: Instant) -> Outcome {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Outcome::TimedOut;
        }
        let budget = Budget::new(remaining);
        let prefix = self.keys.prefix().to_string();
        let start = baseline.revision + 1;
        let stream = self
            .conn
            .call(&budget, |mut c| {
                let prefix = prefix.clone();
                async move { c.watch(prefix, Some(WatchOptions::new().with_prefix().with_start_revision(start))).await }
            })
            .await;
        let mut stream = match stream {
            Ok(s) => s,
            Err(Failure::Unreachable(m)) => {
                tracing::debug!("watch: {m}");
                return Outcome::TimedOut;
            }
            Err(e) => {
                tracing::warn!("watch: cannot watch {}: {e:?}", self.keys.prefix());
                return Outcome::Interrupted;
            }
        };
        loop {
            let message = match tokio::time::timeout_at(deadline.into(), stream.message()).await {
                Err(_) => return Outcome::TimedOut,
                Ok(Ok(Some(m))) => m,
                Ok(Ok(None)) => return Outcome::Interrupted,
                Ok(Err(e)) => {
                    tracing::debug!("watch stream failed: {e}");
                    return Outcome::Interrupted;
                }
            };
            if message.canceled() {
                if message.compact_revision() > 0 {
                    // The history since our snapshot is compacted away:
                    // something may have changed, take a new snapshot.
                    return Outcome::Woken;
                }
                tracing::debug!("watch canceled by etcd: {}", message.cancel_reason());
                return Outcome::Interrupted;
            }
            for event in message.events() {
                let Some(kv) = event.kv() else {
                    continue;
                };
                let key = String::from_utf8_lossy(kv.key());
                let Some(relative) = self.keys.relative(&key) else {
                    continue;
                };
                // A delete event carries the key with version 0.
                let value = (kv.version() != 0).then(|| String::from_utf8_lossy(kv.value()).into_owned());
                if baseline.apply(relative, value, kv.mod_revision()) {
                    tracing::debug!("watch: {relative} changed");
                    return Outcome::Woken;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memo() -> Memo {
        Memo {
            revision: 10,
            leader: Some(("n1".into(), 7)),
            own_member: None,
            config: Some("{}".into()),
            status: Some("s1".into()),
            leader_optime: None,
        }
    }

    #[test]
    fn with_a_leader_version_any_leader_event_wakes() {
        let mut b = Baseline::new(&memo(), "n2", Some(7));
        assert!(b.apply(keys::LEADER, Some("n1".into()), 11), "same value, new revision");
        let mut b = Baseline::new(&memo(), "n2", Some(7));
        assert!(b.apply(keys::LEADER, None, 12), "deleted");
        assert!(Baseline::leader_already_moved(&memo(), Some(6)));
        assert!(!Baseline::leader_already_moved(&memo(), Some(7)));
        assert!(!Baseline::leader_already_moved(&memo(), None));
    }

    #[test]
    fn without_a_leader_version_only_value_changes_wake() {
        let mut b = Baseline::new(&memo(), "n1", None);
        assert!(!b.apply(keys::LEADER, Some("n1".into()), 11), "rewritten by its owner");
        assert!(b.apply(keys::LEADER, None, 12), "released");
        assert!(b.apply(keys::LEADER, Some("n3".into()), 13), "taken");
        assert_eq!(b.revision, 13);
    }

    #[test]
    fn config_wakes_on_change_only() {
        let mut b = Baseline::new(&memo(), "n2", None);
        assert!(!b.apply(keys::CONFIG, Some("{}".into()), 11));
        assert!(b.apply(keys::CONFIG, Some(r#"{"ttl":20}"#.into()), 12));
        assert!(!b.apply(keys::CONFIG, None, 13), "deleted");
        assert!(!b.apply(keys::CONFIG, Some("{}".into()), 14), "created");
    }

    #[test]
    fn status_wakes_replicas_not_the_leader() {
        let mut replica = Baseline::new(&memo(), "n2", Some(7));
        assert!(!replica.apply(keys::STATUS, Some("s1".into()), 11), "same value");
        assert!(replica.apply(keys::STATUS, Some("s2".into()), 12));
        assert!(replica.apply(keys::LEADER_OPTIME, Some("5".into()), 13));
        let mut leader = Baseline::new(&memo(), "n1", None);
        assert!(!leader.apply(keys::STATUS, Some("s2".into()), 11));
        assert!(!leader.apply("members/n3", Some("{}".into()), 12));
    }
}
