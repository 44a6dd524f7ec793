//! What this node publishes: its member key, the API status board, and
//! the dynamic configuration it applies.

use palisade_config::{format_host_port, HostPort};
use palisade_model::{Cluster, MemberRecord, State, PATRONI_COMPAT_VERSION};

use super::{Runner, RuntimeConfig};
use crate::pg::Observed;

pub(crate) fn postgres_url(address: &HostPort) -> String {
    format!("postgres://{}/postgres", format_host_port(address.host(), address.port))
}

/// The scheduled restart as Patroni publishes it (member key, `GET /patroni`).
pub fn scheduled_restart_json(r: &palisade_ha::ScheduledRestart) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let mut m = serde_json::Map::new();
    if let palisade_model::values::ScheduledAt::At(at) = &r.at {
        m.insert("schedule".into(), json!(palisade_model::values::format_timestamp(at)));
    }
    if let Some(role) = &r.filter.role {
        m.insert("role".into(), json!(role));
    }
    if let Some(v) = &r.filter.postgres_version {
        m.insert("postgres_version".into(), json!(v));
    }
    if r.filter.restart_pending {
        m.insert("restart_pending".into(), json!(true));
    }
    if let Some(t) = r.timeout {
        m.insert("timeout".into(), json!(t));
    }
    m.insert(
        "postmaster_start_time".into(),
        r.postmaster_start_time.as_ref().map_or(serde_json::Value::Null, |t| json!(t)),
    );
    m
}

/// How long after a role change (or a new upstream) the loop looks for
/// the WAL receiver to start streaming, and how often.
const STREAM_WATCH_FOR: std::time::Duration = std::time::Duration::from_secs(30);
const STREAM_WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A replica that has just started following (a demoted primary, a new
/// replica, a new upstream) publishes `replication_state: streaming` in
/// its member key only when a cycle sees it. Rather than wait for the next
/// `loop_wait`, a small task polls PostgreSQL (one cheap query every
/// [`STREAM_WATCH_EVERY`]) for at most [`STREAM_WATCH_FOR`] after the
/// change and wakes the loop as soon as the receiver streams.
#[derive(Default)]
pub(super) struct StreamWatch {
    /// The role and upstream of the last cycle.
    seen: Option<(palisade_model::Role, Option<String>)>,
    /// Until when to look, after the last change.
    until: Option<std::time::Instant>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl StreamWatch {
    /// What to do after a cycle that saw `role` following `upstream`, with
    /// the WAL receiver `streaming` (`None`: PostgreSQL is not a running
    /// replica), at `now`: `true` to start polling (no poll running,
    /// within the watch after a change).
    fn next(
        &mut self,
        role: palisade_model::Role,
        upstream: Option<String>,
        streaming: Option<bool>,
        now: std::time::Instant,
    ) -> bool {
        let seen = Some((role, upstream));
        if self.seen != seen {
            self.seen = seen;
            self.until = Some(now + STREAM_WATCH_FOR);
        }
        if streaming == Some(true) {
            self.until = None;
        }
        if streaming != Some(false) || self.until.is_none_or(|u| now >= u) {
            if let Some(t) = self.task.take() {
                t.abort();
            }
            return false;
        }
        self.task.as_ref().is_none_or(tokio::task::JoinHandle::is_finished)
    }
}

impl Runner {
    /// Start polling for the WAL receiver after a role change (see
    /// [`StreamWatch`]).
    pub(super) fn watch_for_streaming(&mut self, observed: &Observed) {
        let tracked = self.shared.tracked();
        let upstream = tracked.following.clone().or_else(|| tracked.following_remote.then(String::new));
        let streaming = observed
            .snapshot
            .as_ref()
            .filter(|s| tracked.state == State::Running && upstream.is_some() && s.in_recovery)
            .map(|s| s.replication_state.as_deref() == Some("streaming"));
        let now = std::time::Instant::now();
        if !self.stream_watch.next(tracked.role, upstream, streaming, now) {
            return;
        }
        let Some(until) = self.stream_watch.until else { return };
        let shared = std::sync::Arc::clone(&self.shared);
        self.stream_watch.task = Some(tokio::spawn(async move {
            while std::time::Instant::now() < until {
                tokio::time::sleep(STREAM_WATCH_EVERY).await;
                let streaming = shared
                    .pg
                    .snapshot_quick()
                    .await
                    .is_some_and(|s| s.replication_state.as_deref() == Some("streaming"));
                if streaming {
                    let _ = shared.events.send(super::Event::Wake);
                    return;
                }
            }
        }));
    }

    /// Write our member key.
    pub(super) async fn touch_member(&mut self) {
        touch_member_of(&self.shared).await;
    }
}

/// Write the member key of this node; `false` when the write failed.
pub(super) async fn touch_member_of(shared: &super::Shared) -> bool {
    {
        let cfg = shared.config();
        let tracked = shared.tracked();
        let status = shared.status.get();
        let mut record = MemberRecord {
            conn_url: postgres_url(&cfg.local.postgresql.connect_address),
            api_url: cfg.local.restapi.api_url(),
            state: tracked.state.as_str().to_string(),
            role: tracked.role.as_str().to_string(),
            version: PATRONI_COMPAT_VERSION.to_string(),
            proxy_url: cfg.local.postgresql.proxy_address.as_ref().map(postgres_url),
            tags: palisade_model::Tags(&cfg.local.tags).published(),
            ..MemberRecord::default()
        };
        if tracked.is_leader() && tracked.checkpoint_after_promote != Some(true) {
            // pg_rewind on a former primary must wait for it (Patroni's key).
            record.checkpoint_after_promote = Some(false);
        }
        if tracked.disable_sync > 0 {
            // Leaving the synchronous standbys for a restart or a stop.
            record.tags.insert("nosync".into(), serde_json::json!(true));
            record.tags.insert("sync_priority".into(), serde_json::json!(0));
        }
        if !status.pending_restart_reason.is_empty() {
            record.pending_restart = Some(true);
            record.pending_restart_reason = Some(status.pending_restart_reason.clone());
        }
        if matches!(tracked.state, State::Running | State::Restarting | State::Starting) {
            if let Some(pg) = &status.pg {
                if pg.in_recovery {
                    record.xlog_location = pg.received_location.max(pg.replayed_location);
                    record.replay_lsn = pg.replayed_location.filter(|l| *l > 0);
                    record.receive_lsn = pg.received_location.filter(|l| *l > 0);
                    record.replication_state.clone_from(&pg.replication_state);
                } else {
                    record.xlog_location = pg.wal_location;
                }
                record.timeline = pg.timeline;
            }
        }
        record.scheduled_restart.clone_from(&status.scheduled_restart);
        if cfg.global.pause {
            record.pause = Some(true);
        }
        match shared.dcs.touch_member(record.to_json()).await {
            Ok(ok) => {
                // A worker group's new primary, once it runs as one, tells
                // the coordinator (Patroni's touch_member).
                if ok && shared.mpp.as_deref().is_some_and(|m| m.member_written(tracked.state, tracked.role)) {
                    crate::mpp::notify_coordinator_later(shared, crate::mpp::WorkerEvent::AfterPromote);
                }
                ok
            }
            Err(e) => {
                tracing::warn!("could not update the member key: {e}");
                false
            }
        }
    }
}

impl Runner {
    /// Publish what the API serves.
    pub(super) fn publish_status(&self, observed: &Observed) {
        let cfg = self.shared.config();
        let tracked = self.shared.tracked();
        let cluster = self.cluster.clone();
        self.shared.status.update(|s| {
            s.role = tracked.role;
            s.state = tracked.state;
            // A postmaster that died between the observation and now (the
            // cycle was slow) leaves no start time to check later: drop the
            // snapshot here, or the API would serve it as running.
            let postmaster = observed.postmaster_pid.map(|pid| (pid, crate::status::process_start_time(pid)));
            s.postmaster = postmaster.and_then(|(pid, started)| started.map(|t| (pid, t)));
            s.pg = match postmaster {
                Some((_, None)) => None,
                _ => observed.snapshot.clone(),
            };
            s.sysid.clone_from(&observed.sysid);
            s.pending_restart_reason = observed.pending_restart_reason.clone();
            s.tags = palisade_model::Tags(&cfg.local.tags).published();
            s.paused = cfg.global.pause;
            s.is_leader = tracked.is_leader();
            s.standby_cluster = cfg.global.standby_cluster.is_some();
            s.last_cycle_at = Some(std::time::Instant::now());
            s.dcs_last_seen = self.dcs_last_seen;
            s.ttl = cfg.global.ttl;
            s.maximum_lag_on_failover = cfg.global.maximum_lag_on_failover;
            s.noloadbalance = palisade_model::Tags(&cfg.local.tags).noloadbalance();
            s.scheduled_restart = self.shared.scheduled_restart().as_ref().map(scheduled_restart_json);
            if let Some(c) = cluster {
                s.cluster = Some(c);
            }
        });
    }

    /// Apply a new dynamic configuration from the DCS: timing, PostgreSQL
    /// parameters, and the local cache file.
    pub(super) async fn apply_dynamic_config(&mut self, cluster: &Cluster) {
        let Some(config) = &cluster.config else {
            return;
        };
        if self.config_version.as_deref() == Some(config.version.as_str()) || config.data.is_empty() {
            return;
        }
        let old = self.shared.config();
        let new = RuntimeConfig::new(old.local.clone(), config.data.clone(), old.dynamic != config.data);
        if (old.global.ttl, old.global.loop_wait, old.global.retry_timeout)
            != (new.global.ttl, new.global.loop_wait, new.global.retry_timeout)
            || self.config_version.is_none()
        {
            let timing =
                palisade_plugin_host::plugins::timing(new.global.ttl, new.global.loop_wait, new.global.retry_timeout);
            if let Err(e) = self.shared.dcs.set_timing(timing).await {
                tracing::warn!("could not apply the new DCS timing: {e}");
            }
        }
        let parameters_changed = old.effective != new.effective;
        if old.global.standby_cluster != new.global.standby_cluster {
            // Whom we replicate from, or the archive commands, changed
            // (demote-cluster, promote-cluster, a new remote): the next
            // cycle points recovery again.
            self.shared.pg.update(&new).await;
            self.shared.with_tracked(|t| {
                t.following = None;
                t.following_remote = false;
            });
        }
        *self.shared.config.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        self.config_version = Some(config.version.clone());
        if let Err(e) = self.shared.pg.save_dynamic_cache(&new.dynamic) {
            tracing::warn!("could not save the dynamic configuration cache: {e}");
        }
        if parameters_changed {
            self.parameters_pending = true;
            self.shared.pg.update(&new).await;
            if self.shared.tracked().state == State::Running {
                self.apply_pending_parameters().await;
            }
        }
    }

    /// Write and reload the configuration in force when a change could not
    /// be applied when it arrived (PostgreSQL stopped, starting, or owned
    /// by a background task that may have written the old one). Called
    /// whenever PostgreSQL runs and no task owns it; a failed attempt
    /// stays pending and is tried again (and logged) next cycle. A reload of
    /// PostgreSQL fires `on_reload`, as Patroni's `reload_config` does;
    /// `true` then.
    pub(super) async fn apply_pending_parameters(&mut self) -> bool {
        if !self.parameters_pending || self.task.is_some() {
            return false;
        }
        let config = self.shared.config();
        match self.shared.pg.apply_parameters(&config).await {
            Ok(reloaded) => {
                self.parameters_pending = false;
                tracing::info!("applied the new PostgreSQL configuration");
                if reloaded {
                    self.shared.callback("on_reload");
                }
                reloaded
            }
            Err(e) => {
                tracing::error!("could not apply the new PostgreSQL configuration: {e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod stream_watch_tests {
    use std::time::{Duration, Instant};

    use palisade_model::Role;

    use super::{StreamWatch, STREAM_WATCH_FOR};

    #[tokio::test]
    async fn polls_only_after_a_change_and_until_streaming() {
        let mut w = StreamWatch::default();
        let t0 = Instant::now();
        let up = || Some("n1".to_string());
        // A new replica of n1, not streaming yet: poll.
        assert!(w.next(Role::Replica, up(), Some(false), t0));
        w.task = Some(tokio::spawn(std::future::pending()));
        // A poll runs: no second one.
        assert!(!w.next(Role::Replica, up(), Some(false), t0 + Duration::from_secs(1)));
        // Streaming: the poll stops and the watch ends.
        assert!(!w.next(Role::Replica, up(), Some(true), t0 + Duration::from_secs(2)));
        assert!(w.task.is_none());
        // Not streaming again without a change (the leader went away): no poll.
        assert!(!w.next(Role::Replica, up(), Some(false), t0 + Duration::from_secs(3)));
        // A new upstream: poll again, until the watch runs out.
        let t1 = t0 + Duration::from_secs(4);
        assert!(w.next(Role::Replica, Some("n3".into()), Some(false), t1));
        assert!(!w.next(Role::Replica, Some("n3".into()), Some(false), t1 + STREAM_WATCH_FOR));
        // A demoted primary: still starting when the change is seen, then
        // running and not streaming yet: poll.
        assert!(!w.next(Role::Primary, None, None, t1));
        assert!(!w.next(Role::Replica, up(), None, t1));
        assert!(w.next(Role::Replica, up(), Some(false), t1 + Duration::from_secs(1)));
    }
}
