//! `watch`: an exists-watch on the leader znode, woken when it is created,
//! changed or deleted, or the timeout.

use std::time::Duration;

use palisade_plugin_api::sdk::dcs::names;
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::connection::{Budget, Failure};
use crate::snapshot;
use crate::store::Inner;

pub(crate) async fn wait_for_change(
    inner: &Inner,
    leader_version: Option<&str>,
    timeout: Duration,
) -> Result<bool, Failure> {
    // As Patroni: half a second more when there is a leader to watch.
    let timeout = if leader_version.is_some() { timeout + Duration::from_millis(500) } else { timeout };
    let until = Instant::now() + timeout;
    let path = inner.keys.key(names::LEADER);
    let budget = Budget::new(inner.timing().retry_timeout.min(timeout));
    let watched = inner
        .call(&budget, |c| {
            let path = path.clone();
            async move { c.check_and_watch_stat(&path).await }
        })
        .await;
    let (stat, watcher) = match watched {
        Ok(w) => w,
        // The store is unreachable: nothing can be seen changing; wait out
        // the timeout so the loop does not spin, as Patroni's watch does.
        Err(Failure::Unreachable(m)) => {
            tracing::debug!("watch: {m}");
            tokio::time::sleep_until(until).await;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    if let Some(v) = leader_version {
        let now = stat.map(|s| snapshot::version(names::LEADER, &s));
        if now.as_deref() != Some(v) {
            return Ok(true);
        }
    }
    tokio::select! {
        event = watcher.changed() => {
            if event.event_type == zk::EventType::Session {
                // The connection or the session went: the watch is lost.
                tokio::time::sleep_until(until).await;
                return Ok(false);
            }
            Ok(true)
        }
        _ = tokio::time::sleep_until(until) => Ok(false),
    }
}
