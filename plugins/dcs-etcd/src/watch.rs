//! `watch`: a long poll on the leader key (`?wait=true&waitIndex=N`), as
//! Patroni's etcd module does it.
//!
//! - With a leader version, any event of the leader key after the last
//!   snapshot wakes it (written, renewed, deleted, expired). The poll
//!   starts at the snapshot's `X-Etcd-Index` (or just after the key's
//!   modifiedIndex), so a change between `get_cluster` and `watch` still
//!   wakes it; when the snapshot already shows another version, it returns
//!   at once.
//! - Without one (Patroni just sleeps), only a change of the key's value
//!   wakes it: taken, released, expired; a renewal does not.
//! - etcd keeps the last 1000 events only: when `waitIndex` is older it
//!   answers "event index cleared" (401), and the watch returns `true` so
//!   the loop reads a fresh snapshot, as Patroni does.
//!
//! While etcd cannot be reached it retries each second on the next member,
//! then sleeps out the timeout (the next `get_cluster` reports the outage).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use palisade_etcd_common::budget::Budget;
use palisade_plugin_api::sdk::dcs::names;
use reqwest::Method;

use crate::api::{self, code, Failure};
use crate::connection::{Request, SendError};
use crate::store::{lock, Etcd, Memo};

/// Patroni gives the leader watch half a second more than the loop's
/// timeout, so replicas line their cycles up behind the leader's.
const LEADER_WATCH_GRACE: Duration = Duration::from_millis(500);

/// Where the long poll starts and what wakes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The snapshot shows the leader key moved already.
    WakeNow,
    /// Wait from `index`; `baseline` is `None` with a leader version (any
    /// event wakes), else the leader's value to compare events with.
    Poll { index: u64, baseline: Option<Option<String>> },
}

/// Decide from the last snapshot (if any) and the version asked for.
pub(crate) fn plan(memo: Option<&Memo>, leader_version: Option<u64>) -> Plan {
    match (leader_version, memo) {
        (Some(v), Some(m)) => match &m.leader {
            Some((_, index)) if *index == v => Plan::Poll { index: m.etcd_index.max(v + 1), baseline: None },
            _ => Plan::WakeNow,
        },
        (Some(v), None) => Plan::Poll { index: v + 1, baseline: None },
        (None, Some(m)) => Plan::Poll {
            // Without a known index, from now on.
            index: if m.etcd_index > 0 { m.etcd_index + 1 } else { 0 },
            baseline: Some(m.leader.as_ref().map(|(v, _)| v.clone())),
        },
        // No snapshot to compare with: the first event decides.
        (None, None) => Plan::Poll { index: 0, baseline: None },
    }
}

/// The leader's value after an event of `action`.
pub(crate) fn value_after(action: &str, node: Option<&api::Node>) -> Option<String> {
    match action {
        "delete" | "expire" | "compareAndDelete" => None,
        _ => node.and_then(|n| n.value.clone()),
    }
}

impl Etcd {
    pub(crate) async fn wait_for_change(
        &self,
        leader_version: Option<&str>,
        timeout: Duration,
    ) -> Result<bool, Failure> {
        if self.skip_next_watch.swap(false, Ordering::SeqCst) {
            return Ok(true);
        }
        let version = leader_version.and_then(|v| v.trim().parse::<u64>().ok());
        if leader_version.is_some() && version.is_none() {
            tracing::debug!("watch: leader version {leader_version:?} is not ours; watching as without one");
        }
        let timeout = if version.is_some() { timeout + LEADER_WATCH_GRACE } else { timeout };
        let deadline = Instant::now() + timeout;
        let memo = lock(&self.memo).clone();
        let (mut index, baseline) = match plan(memo.as_ref(), version) {
            Plan::WakeNow => return Ok(true),
            Plan::Poll { index, baseline } => (index, baseline),
        };
        let key = self.keys.key(names::LEADER);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(false);
            }
            let mut query = vec![("wait", "true".to_string())];
            if index > 0 {
                query.push(("waitIndex", index.to_string()));
            }
            let req = Request { method: Method::GET, path: api::with_query(api::key_path(&key), &query), form: None };
            let budget = Budget::new(remaining.min(self.timing().retry_timeout));
            let Some(base) = self.conn.current(&budget).await else {
                tokio::time::sleep_until(deadline.into()).await;
                return Ok(false);
            };
            match self.conn.send(&base, &req, remaining).await {
                Ok(answer) => {
                    let node = answer.node.as_ref();
                    let value = value_after(&answer.action, node);
                    match &baseline {
                        None => {
                            if answer.action == "compareAndSwap" {
                                // Let the owner finish its cycle first.
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            tracing::debug!("watch: the leader key had a {} event", answer.action);
                            return Ok(true);
                        }
                        Some(before) if *before != value => {
                            tracing::debug!("watch: the leader changed from {before:?} to {value:?}");
                            return Ok(true);
                        }
                        Some(_) => {
                            index = node.map(|n| n.modified_index).unwrap_or(index).max(index) + 1;
                        }
                    }
                }
                Err(SendError::Transport { timeout: true, .. }) => return Ok(false),
                Err(SendError::Failed(e))
                    if e.is_code(code::EVENT_INDEX_CLEARED) || e.is_code(code::WATCHER_CLEARED) =>
                {
                    tracing::debug!("watch: etcd no longer has the events since index {index}; reading anew");
                    return Ok(true);
                }
                Err(e) => {
                    let message = match e {
                        SendError::Transport { message, .. } => message,
                        SendError::Failed(f) => format!("{f:?}"),
                    };
                    tracing::debug!("watch on {base} failed: {message}");
                    self.conn.rotate_from(&base);
                    let pause = Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memo(etcd_index: u64, leader: Option<(&str, u64)>) -> Memo {
        Memo { etcd_index, leader: leader.map(|(v, i)| (v.to_string(), i)) }
    }

    #[test]
    fn with_a_leader_version() {
        assert_eq!(plan(Some(&memo(20, Some(("n1", 9)))), Some(9)), Plan::Poll { index: 20, baseline: None });
        assert_eq!(plan(Some(&memo(9, Some(("n1", 9)))), Some(9)), Plan::Poll { index: 10, baseline: None });
        assert_eq!(plan(Some(&memo(20, Some(("n1", 9)))), Some(8)), Plan::WakeNow, "moved already");
        assert_eq!(plan(Some(&memo(20, None)), Some(9)), Plan::WakeNow, "gone already");
        assert_eq!(plan(None, Some(9)), Plan::Poll { index: 10, baseline: None });
    }

    #[test]
    fn without_a_leader_version() {
        assert_eq!(
            plan(Some(&memo(20, Some(("n1", 9)))), None),
            Plan::Poll { index: 21, baseline: Some(Some("n1".into())) }
        );
        assert_eq!(plan(Some(&memo(20, None)), None), Plan::Poll { index: 21, baseline: Some(None) });
        assert_eq!(plan(Some(&memo(0, None)), None), Plan::Poll { index: 0, baseline: Some(None) }, "index unknown");
    }

    #[test]
    fn values_after_events() {
        let node = api::Node { value: Some("n2".into()), ..Default::default() };
        assert_eq!(value_after("set", Some(&node)), Some("n2".into()));
        assert_eq!(value_after("compareAndSwap", Some(&node)), Some("n2".into()));
        assert_eq!(value_after("expire", Some(&node)), None);
        assert_eq!(value_after("delete", None), None);
    }
}
