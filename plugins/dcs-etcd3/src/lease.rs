//! The one lease the leader key and this member's key hang on, kept the
//! way Patroni keeps it: refreshed (keep-alive) by `update_leader` every
//! cycle and by the other writers when it was not refreshed recently,
//! granted anew when etcd says it expired, and dropped when `ttl` changes.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::connection::Budget;
use crate::failure::Failure;
use crate::store::Etcd3;

#[derive(Debug, Default)]
pub(crate) struct LeaseState {
    pub id: Option<i64>,
    /// When the lease was last granted or kept alive; `None` forces the
    /// next refresh (`watch` clears it, as Patroni does, so every cycle
    /// refreshes at least once).
    pub last_refresh: Option<Instant>,
}

/// etcd leases count whole seconds.
pub(crate) fn ttl_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

impl Etcd3 {
    /// Keep our lease alive, or grant a new one when there is none or it
    /// expired; returns its id. Without `force`, a lease refreshed within
    /// `min(loop_wait, ttl / 2)` is left alone.
    pub(crate) async fn refresh_lease(&self, budget: &Budget, force: bool) -> Result<i64, Failure> {
        let timing = self.timing();
        let mut state = self.lease.lock().await;
        if let (false, Some(id), Some(at)) = (force, state.id, state.last_refresh) {
            if at.elapsed() < timing.loop_wait.min(timing.ttl / 2) {
                return Ok(id);
            }
        }
        if let Some(id) = state.id {
            match self.conn.call(budget, |mut c| async move { c.lease_keep_alive(id).await.map(|_| ()) }).await {
                Ok(()) => {
                    state.last_refresh = Some(Instant::now());
                    return Ok(id);
                }
                Err(Failure::LeaseGone) => {
                    tracing::warn!("lease {id:x} expired in etcd; granting a new one");
                    state.id = None;
                }
                Err(e) => return Err(e),
            }
        }
        let ttl = ttl_seconds(timing.ttl);
        let id = self.conn.call(budget, |mut c| async move { c.lease_grant(ttl, None).await.map(|r| r.id()) }).await?;
        tracing::debug!("granted lease {id:x} with a ttl of {ttl}s");
        state.id = Some(id);
        state.last_refresh = Some(Instant::now());
        Ok(id)
    }

    /// Forget lease `id` (etcd said it is gone) unless it was replaced already.
    async fn forget_lease(&self, id: i64) {
        let mut state = self.lease.lock().await;
        if state.id == Some(id) {
            state.id = None;
        }
    }

    /// Run `op` with our (refreshed) lease; when etcd answers that the lease
    /// does not exist, grant a new one and run `op` once more.
    pub(crate) async fn with_lease<T, F, Fut>(&self, budget: &Budget, force: bool, op: F) -> Result<T, Failure>
    where
        F: Fn(i64) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let id = self.refresh_lease(budget, force).await?;
        match op(id).await {
            Err(Failure::LeaseGone) => {
                tracing::error!("Our lease disappeared from Etcd. Will try to get a new one and retry attempt");
                self.forget_lease(id).await;
                let id = self.refresh_lease(budget, true).await?;
                op(id).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(Duration::from_secs(30)), 30);
        assert_eq!(ttl_seconds(Duration::from_millis(2500)), 3);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
    }
}
