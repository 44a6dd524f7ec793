//! The live PostgreSQL status `GET /patroni` and `GET /metrics` serve: one
//! query shared by every request that arrives while it runs, and reused
//! for a short freshness window while the cluster has a leader.
//!
//! Patroni queries PostgreSQL for each of these requests; on a busy API
//! that serializes every request behind one connection (about 1,000
//! requests/s). Here at most one query runs at a time and its answer is
//! served to the requests that can take it:
//!
//! - a request takes an answer whose query started at most [`WINDOW`]
//!   before the request arrived, while the loop's last view of the
//!   cluster has a leader;
//! - while the cluster has no leader (a leader race, in which peers compare
//!   WAL positions through `GET /patroni`) the window is zero: a request
//!   takes only an answer whose query started after it arrived, as with
//!   Patroni, and concurrent requests still share one query;
//! - an answer is never taken across a change of what the loop published
//!   about this node (its role, state, postmaster, leadership), so a role
//!   change is seen by the very next request.
//!
//! A burst of requests thus costs at most two queries, even when
//! PostgreSQL does not answer (a query gives up after a second).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use palisade_model::{Role, State};

use crate::status::{NodeStatus, PgSnapshot};

/// How long an answer serves while the cluster has a leader.
pub const WINDOW: Duration = Duration::from_millis(50);

/// What an answer is valid for: what the loop last published about this
/// node.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    role: Role,
    state: State,
    postmaster: Option<(i32, u64)>,
    is_leader: bool,
}

impl Key {
    pub fn of(s: &NodeStatus) -> Self {
        Self { role: s.role, state: s.state, postmaster: s.postmaster, is_leader: s.is_leader }
    }
}

/// How old an answer may be for a request made while the loop's status is
/// `s`: [`WINDOW`] while the cluster has a leader, zero otherwise.
pub fn window_for(s: &NodeStatus) -> Duration {
    match &s.cluster {
        Some(c) if !c.is_unlocked() => WINDOW,
        _ => Duration::ZERO,
    }
}

struct Answer {
    /// When its query started.
    started: Instant,
    key: Key,
    snapshot: Option<PgSnapshot>,
}

/// The shared query and its last answer.
#[derive(Default)]
pub struct LiveStatus {
    last: Mutex<Option<std::sync::Arc<Answer>>>,
    /// Held while a query runs: requests queue here and find its answer.
    flight: tokio::sync::Mutex<()>,
}

impl LiveStatus {
    /// The last answer, if a request that arrived at `arrived` with `key`
    /// and `window` may take it.
    fn usable(&self, arrived: Instant, key: &Key, window: Duration) -> Option<Option<PgSnapshot>> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        let oldest = arrived.checked_sub(window).unwrap_or(arrived);
        (last.key == *key && last.started >= oldest).then(|| last.snapshot.clone())
    }

    /// The status for a request that arrived at `arrived` while the loop's
    /// status gave `key` and `window`, running `query` only when no usable
    /// answer exists or is on its way.
    pub async fn get<F, Fut>(&self, arrived: Instant, key: Key, window: Duration, query: F) -> Option<PgSnapshot>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Option<PgSnapshot>>,
    {
        if let Some(s) = self.usable(arrived, &key, window) {
            return s;
        }
        let _flight = self.flight.lock().await;
        // The query that held the flight may have answered for us.
        if let Some(s) = self.usable(arrived, &key, window) {
            return s;
        }
        let started = Instant::now();
        let snapshot = query().await;
        let answer = Answer { started, key, snapshot: snapshot.clone() };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::sync::Arc::new(answer));
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    fn key(role: Role) -> Key {
        Key { role, state: State::Running, postmaster: Some((10, 20)), is_leader: role == Role::Primary }
    }

    fn snap(tl: u32) -> Option<PgSnapshot> {
        Some(PgSnapshot { timeline: Some(tl), ..PgSnapshot::default() })
    }

    #[tokio::test]
    async fn an_answer_serves_within_its_window_only() {
        let live = LiveStatus::default();
        let queries = AtomicUsize::new(0);
        let q = |tl| {
            let queries = &queries;
            move || async move {
                queries.fetch_add(1, Ordering::SeqCst);
                snap(tl)
            }
        };
        let t0 = Instant::now();
        assert_eq!(live.get(t0, key(Role::Primary), WINDOW, q(1)).await, snap(1));
        // A later request within the window takes it.
        assert_eq!(live.get(Instant::now(), key(Role::Primary), WINDOW, q(2)).await, snap(1));
        assert_eq!(queries.load(Ordering::SeqCst), 1);
        // Without a window (no leader), only a query started after the request counts.
        assert_eq!(live.get(Instant::now(), key(Role::Primary), Duration::ZERO, q(3)).await, snap(3));
        assert_eq!(queries.load(Ordering::SeqCst), 2);
        // Past the window: a new query.
        tokio::time::sleep(WINDOW + Duration::from_millis(10)).await;
        assert_eq!(live.get(Instant::now(), key(Role::Primary), WINDOW, q(4)).await, snap(4));
        assert_eq!(queries.load(Ordering::SeqCst), 3);
        // What the loop published changed (promotion, demotion): a new query at once.
        assert_eq!(live.get(Instant::now(), key(Role::Replica), WINDOW, q(5)).await, snap(5));
        assert_eq!(live.get(Instant::now(), key(Role::Primary), WINDOW, q(6)).await, snap(6));
        assert_eq!(queries.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_failed_query_is_an_answer_too() {
        let live = LiveStatus::default();
        assert_eq!(live.get(Instant::now(), key(Role::Replica), WINDOW, || async { None }).await, None);
        assert_eq!(live.get(Instant::now(), key(Role::Replica), WINDOW, || async { snap(9) }).await, None);
    }

    /// Concurrent requests share one query; those that arrived while it
    /// ran take it within a window, and take at most one more without one.
    #[tokio::test]
    async fn concurrent_requests_share_a_query() {
        for (window, most) in [(WINDOW, 1), (Duration::ZERO, 2)] {
            let live = Arc::new(LiveStatus::default());
            let queries = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..16 {
                let (live, queries) = (Arc::clone(&live), Arc::clone(&queries));
                tasks.push(tokio::spawn(async move {
                    let arrived = Instant::now();
                    live.get(arrived, key(Role::Primary), window, || async move {
                        queries.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        snap(1)
                    })
                    .await
                }));
            }
            for t in tasks {
                assert_eq!(t.await.expect("task"), snap(1));
            }
            let n = queries.load(Ordering::SeqCst);
            assert!((1..=most).contains(&n), "window {window:?}: {n} queries");
        }
    }

    #[test]
    fn no_window_without_a_leader() {
        let mut s = NodeStatus::new("demo", "n1");
        assert_eq!(window_for(&s), Duration::ZERO, "no view of the cluster");
        s.cluster = Some(Arc::new(palisade_model::Cluster::default()));
        assert_eq!(window_for(&s), Duration::ZERO, "no leader");
        let leader = palisade_model::Leader { name: "n2".into(), version: "1".into(), session: "n2".into() };
        s.cluster = Some(Arc::new(palisade_model::Cluster { leader: Some(leader), ..Default::default() }));
        assert_eq!(window_for(&s), WINDOW, "a leader");
    }
}
