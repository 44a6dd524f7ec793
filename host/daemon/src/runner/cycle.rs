//! One cycle: snapshot, observe, decide (answering questions), act, publish.

use std::sync::Arc;

use palisade_ha::{decide, Answers, Ask, Decision, Input, Level, Me, PeerStatus, Step};
use palisade_model::{Cluster, Member, Role, State};
use palisade_plugin_host::dcs::DcsError;

use super::{CycleOutcome, Runner};
use crate::logging::heartbeat::HeartbeatFilter;
use crate::pg::Observed;

fn log_decision(d: &Decision, heartbeat: &mut HeartbeatFilter, log: &palisade_config::LogConfig) {
    for (level, line) in &d.log {
        match level {
            Level::Info => tracing::info!("{line}"),
            Level::Warn => tracing::warn!("{line}"),
            Level::Error => tracing::error!("{line}"),
        }
    }
    let fold = log.deduplicate_heartbeat_logs
        && crate::logging::parse_level(&log.level) == Some(tracing_subscriber::filter::LevelFilter::INFO);
    if heartbeat.should_log(&d.reason, !d.log.is_empty(), fold) {
        tracing::info!("{}", d.reason);
    }
}

/// Does `action` change PostgreSQL's process or role before the cycle
/// ends (so the status to publish must be read again)? Actions that start
/// a background task (start, promote, restart, clone...) are not: the task
/// wakes the loop when it ends, and that cycle looks afresh.
fn touches_postgres(action: &palisade_ha::Action) -> bool {
    use palisade_ha::Action as A;
    matches!(action, A::StopImmediate | A::Follow { .. } | A::Demote(_))
}

impl Runner {
    pub(super) async fn cycle(&mut self) -> CycleOutcome {
        let finished = self.shared.with_tracked(|t| t.finished.take());
        // A task records its result as its last step: when the result is
        // here and the handle has not ended yet, it is about to; wait for
        // it, so that this cycle does not see the task still running and
        // lose its result.
        if let Some((task, mut handle)) = self.task.take() {
            let ending = finished.is_some_and(|(t, _)| t == task);
            let ended = handle.is_finished()
                || ending && tokio::time::timeout(std::time::Duration::from_secs(1), &mut handle).await.is_ok();
            if !ended {
                self.task = Some((task, handle));
            }
        }

        let cluster = match self.shared.dcs.get_cluster().await {
            Ok(c) => Arc::new(c),
            Err(e) => return self.dcs_failed(e, finished).await,
        };
        let now = crate::now();
        self.dcs_last_seen = now as i64;
        self.apply_dynamic_config(&cluster).await;
        self.shared.refresh_watchdog();
        if self.shared.config().global.pause {
            // Patroni closes the device as soon as it sees the pause.
            self.shared.disarm_watchdog_unless_leading();
        }
        if cluster.leader.is_some() {
            self.old_members = Arc::clone(&cluster);
            self.old_leader = cluster.leader_name().map(String::from);
        }
        self.cluster = Some(Arc::clone(&cluster));
        self.last_failsafe.clone_from(&cluster.failsafe);
        let me_name = self.shared.config().local.name;
        if cluster.leader_name() != Some(me_name.as_str()) {
            self.shared.with_tracked(|t| t.leader_until = None);
        }
        let known_leader = self.old_leader.clone();
        self.shared.status.update(|s| s.known_leader = known_leader);
        // Failsafe mode: a leader that called us within ttl is still the
        // leader, even if its key is gone (it cannot reach the DCS).
        let cluster = match self.failsafe_view(&cluster) {
            Some(view) => Arc::new(view),
            None => cluster,
        };

        let observed = self.observe().await;
        if observed.pg.is_running() {
            self.apply_pending_parameters().await;
        }
        let rejoin = self.check_rejoin(&cluster, &observed).await;
        let rewind = self.rewind_state(&observed, &rejoin).await;

        let cfg = self.shared.config();
        let me = Me {
            name: cfg.local.name.clone(),
            tags: cfg.local.tags.clone(),
            can_bootstrap: cfg.local.bootstrap.is_some(),
            can_clone_without_leader: super::tasks::can_clone_without_leader(&self.shared, &cfg),
        };
        let tracked = self.shared.tracked();
        let mut settings = cfg.settings();
        if let Some(t) = tracked.start_timeout {
            // A restart with a timeout: the primary gets that long to start.
            settings.primary_start_timeout = t;
        }
        let local = palisade_ha::Local {
            data_dir: observed.data_dir.clone(),
            pg: observed.pg.clone(),
            cluster_state: observed.cluster_state.clone(),
            standby_signal: observed.standby_signal,
            role: tracked.role,
            state: tracked.state,
            time_in_state: tracked.state_since.elapsed().as_secs_f64(),
            task: self.task.as_ref().map(|(t, _)| *t),
            finished,
            bootstrapping: tracked.bootstrapping,
            on_start_called: tracked.on_start_called,
            following: tracked.following.clone(),
            following_remote: tracked.following_remote,
            rejoin,
            rewind,
            released_leader_key_at: tracked.released_leader_key_at,
            previous_wal_position: self.previous_wal_position,
            postmaster_start_time: observed.snapshot.as_ref().and_then(|s| s.postmaster_start_time.clone()),
            server_version: observed.snapshot.as_ref().and_then(|s| s.server_version),
            pending_restart: !observed.pending_restart_reason.is_empty(),
            watchdog: self.shared.with_watchdog(|w| w.state()),
        };
        let scheduled_restart = self.shared.scheduled_restart();
        let mut answers = Answers::default();
        let decision = loop {
            let input = Input {
                now,
                me: &me,
                settings: &settings,
                cluster: &cluster,
                old_members: &self.old_members.members,
                old_leader: self.old_leader.as_deref(),
                local: &local,
                scheduled_restart: scheduled_restart.as_ref(),
                answers: &answers,
            };
            match decide(&input) {
                Step::Decided(d) => break d,
                Step::Ask(ask) => {
                    // Any DCS error counts as "the DCS cannot be reached",
                    // whichever call met it (unlike Patroni, issue #3572).
                    if let Err(e) = self.answer(ask, &cluster, &observed, &mut answers).await {
                        return self.dcs_failed(e, local.finished).await;
                    }
                }
            }
        };
        log_decision(&decision, &mut self.heartbeat, &self.shared.config().local.log);
        let fatal = self.execute(&decision.actions, &cluster, &observed).await;
        self.shared.disarm_watchdog_unless_leading();
        self.previous_wal_position = observed.wal_position();

        // The API must serve what the node is now, not what it was before
        // this cycle acted: look again when an action touched PostgreSQL.
        let observed = if decision.actions.iter().any(touches_postgres) { self.observe().await } else { observed };
        self.ensure_checkpoint_after_promote(&observed).await;
        self.mpp_cycle(&observed).await;
        self.publish_status(&observed);
        if self.shared.tracked().is_leader() {
            // The DCS answered and we lead: failsafe mode is over.
            self.shared.status.update(|s| s.failsafe.reset());
        }
        self.touch_member().await;
        self.watch_for_streaming(&observed);
        self.sync_slots(&cluster, &observed).await;
        // This cycle took the leader key (a bootstrap completed, a race
        // won): its snapshot still had no leader, so what a leader does
        // each cycle (the members' replication slots, the sync key) waits
        // for the next one. Run it at once rather than after `loop_wait`:
        // replicas cannot stream before their slots exist.
        let leads = self.shared.tracked().is_leader();
        if leads && !self.was_leader && cluster.leader_name() != Some(me_name.as_str()) {
            let _ = self.shared.events.send(super::Event::Wake);
        }
        self.was_leader = leads;
        CycleOutcome { wake_at: decision.wake_at, fatal }
    }

    /// The DCS could not be reached (any error of any call): a primary
    /// demotes unless failsafe mode keeps it running, others wait.
    async fn dcs_failed(&mut self, error: DcsError, finished: Option<(palisade_ha::Task, bool)>) -> CycleOutcome {
        tracing::error!("Error communicating with DCS: {error}");
        // Keep the result of a finished task for the next cycle that can use it.
        if finished.is_some() {
            self.shared.with_tracked(|t| t.finished = finished);
        }
        let observed = self.observe().await;
        let tracked = self.shared.tracked();
        let cfg = self.shared.config();
        let mut settings = cfg.settings();
        if let Some(t) = tracked.start_timeout {
            settings.primary_start_timeout = t;
        }
        let local = palisade_ha::Local {
            data_dir: observed.data_dir.clone(),
            pg: observed.pg.clone(),
            role: tracked.role,
            state: tracked.state,
            ..palisade_ha::Local::default()
        };
        let cluster = self.cluster.clone().unwrap_or_default();
        let last_failsafe = self.last_failsafe.clone();
        let mut answers = Answers::default();
        let decision = loop {
            let offline = palisade_ha::Offline {
                me: &cfg.local.name,
                local: &local,
                settings: &settings,
                failsafe: last_failsafe.as_ref(),
                answers: &answers,
            };
            match palisade_ha::dcs_unavailable(&offline) {
                Step::Decided(d) => break d,
                // The DCS is already known to be out of reach: an answer
                // that needed it stays negative.
                Step::Ask(ask) => {
                    let _ = self.answer(ask, &cluster, &observed, &mut answers).await;
                }
            }
        };
        log_decision(&decision, &mut self.heartbeat, &self.shared.config().local.log);
        let fatal = self.execute(&decision.actions, &cluster, &observed).await;
        if decision.actions.contains(&palisade_ha::Action::FailsafeActive) {
            // Still the leader, by failsafe mode: the device is fed as
            // after a renewal (Patroni does the same).
            self.shared.with_watchdog(|w| w.keepalive());
        }
        let offline = palisade_ha::Offline {
            me: &cfg.local.name,
            local: &local,
            settings: &settings,
            failsafe: last_failsafe.as_ref(),
            answers: &answers,
        };
        // Slots are synced only against a snapshot read before (Patroni's
        // `if not self.cluster`).
        if self.cluster.is_some() && palisade_ha::syncs_slots_offline(&offline, &decision) {
            let view = self.failsafe_view(&cluster);
            self.sync_slots(view.as_ref().unwrap_or(&cluster), &observed).await;
        }
        if !decision.actions.contains(&palisade_ha::Action::FailsafeActive) {
            self.shared.with_tracked(|t| t.leader_until = None);
            if observed.pg.is_primary() {
                self.shared.status.update(|s| s.failsafe.reset());
            }
        }
        self.shared.disarm_watchdog_unless_leading();
        self.publish_status(&observed);
        CycleOutcome { wake_at: None, fatal }
    }

    /// The cluster as the decision should see it in failsafe mode: the
    /// snapshot with the leader that called `POST /failsafe` within ttl put
    /// back when its key is gone. `None`: the snapshot as it is.
    fn failsafe_view(&self, cluster: &Cluster) -> Option<Cluster> {
        if !self.shared.config().global.failsafe_mode {
            return None;
        }
        let status = self.shared.status.get();
        let view = palisade_ha::cluster_with_failsafe_leader(cluster, status.failsafe.live_leader())?;
        if let Some(l) = view.leader_name() {
            tracing::info!("failsafe: {l} called within ttl and is still the leader, although its key is gone");
        }
        Some(view)
    }

    /// Look at the data directory and PostgreSQL, and bring the tracked
    /// role and state in line with what is really there.
    pub(super) async fn observe(&mut self) -> Observed {
        let observed = self.shared.pg.observe().await;
        let busy = self.task.is_some();
        self.shared.with_tracked(|t| {
            if busy {
                return;
            }
            match &observed.pg {
                palisade_ha::Pg::Running { in_recovery, .. } => {
                    if matches!(
                        t.state,
                        State::Stopped | State::Crashed | State::StartFailed | State::Starting | State::Stopping
                    ) {
                        t.set_state(State::Running);
                    }
                    // A daemon (re)started next to a running PostgreSQL
                    // takes its role from what PostgreSQL is.
                    if t.role == Role::Uninitialized {
                        t.role = if *in_recovery { Role::Replica } else { Role::Primary };
                    }
                }
                palisade_ha::Pg::Starting => {}
                palisade_ha::Pg::Stopped => {
                    if t.role == Role::Uninitialized
                        && matches!(observed.data_dir, palisade_ha::DataDir::Initialized { .. })
                    {
                        t.role = if observed.standby_signal { Role::Replica } else { Role::Primary };
                    }
                    if matches!(t.state, State::Starting | State::Stopping) {
                        t.set_state(State::Stopped);
                    }
                }
            }
        });
        observed
    }

    /// Whether a stopped former primary can follow the leader's timeline
    /// (checked once per leader, history and local timeline).
    async fn check_rejoin(&mut self, cluster: &Cluster, observed: &Observed) -> palisade_ha::Rejoin {
        use palisade_ha::Rejoin;
        let me = self.shared.config().local.name;
        let Some(leader) = cluster.leader_member().filter(|m| m.name != me) else {
            return Rejoin::Free;
        };
        // A standby leader is in recovery for good: nothing to rewind from
        // (Patroni checks only against a leader that runs as a primary).
        if leader.role() == Some("standby_leader") {
            self.divergence = None;
            return Rejoin::Free;
        }
        let leader_timeline = cluster.timeline().max(leader.timeline().unwrap_or(0));
        // A running replica still on an older timeline (PostgreSQL refuses
        // to follow a timeline that forked before what it replayed).
        // Only the timeline the WAL receiver streams tells where it is (the
        // checkpoint's, reported without one, lags behind replay).
        if let palisade_ha::Pg::Running { in_recovery: true, timeline: Some(timeline), .. } = observed.pg {
            let streamed = observed.snapshot.as_ref().filter(|s| s.latest_end_lsn.is_some());
            let replayed = streamed.and_then(|s| s.replayed_location);
            let Some(replayed) = replayed.filter(|_| timeline < leader_timeline) else {
                self.divergence = None;
                return Rejoin::Free;
            };
            let lines = cluster.history.as_ref().map(|h| h.lines.clone()).unwrap_or_default();
            let verdict = crate::pg::running_replica_rejoin(timeline, replayed, leader_timeline, &lines);
            if matches!(verdict, Rejoin::Diverged(_)) {
                tracing::info!("Local timeline={timeline} lsn={}", palisade_model::format_lsn(replayed));
            }
            return verdict;
        }
        // A former primary, or a replica that stopped: Patroni checks both
        // (a replica that is only behind is found able to follow).
        let stopped = matches!(
            observed.cluster_state.as_deref(),
            Some(
                "shut down"
                    | "in production"
                    | "shutting down"
                    | "in crash recovery"
                    | "shut down in recovery"
                    | "in archive recovery"
            )
        );
        if observed.pg != palisade_ha::Pg::Stopped || !stopped {
            self.divergence = None;
            return Rejoin::Free;
        }
        let Some(local_timeline) = observed.controldata_timeline else {
            return Rejoin::Free;
        };
        // The leader's member key and the history key lag behind a
        // promotion by a cycle: ask the leader which timeline it writes,
        // as Patroni does (its member key is the fallback).
        let leader_timeline = match self.shared.pg.leader_timeline(leader).await {
            Ok(Some(t)) => t.max(leader_timeline),
            Ok(None) => {
                return Rejoin::Wait(format!(
                    "the leader {} is still in recovery and therefore can't be compared with",
                    leader.name
                ))
            }
            Err(e) => {
                tracing::debug!("cannot ask {} for its timeline: {e}", leader.name);
                leader_timeline
            }
        };
        if leader_timeline <= local_timeline {
            return Rejoin::Free;
        }
        // Crash recovery changes the answer (its shutdown checkpoint may
        // land past the switch point): the pg_control state is in the key.
        let key = format!(
            "{}:{:?}:{leader_timeline}:{local_timeline}:{:?}",
            leader.name,
            cluster.history.as_ref().map(|h| &h.version),
            observed.cluster_state
        );
        if let Some((k, verdict)) = &self.divergence {
            if *k == key {
                return verdict.clone();
            }
        }
        let lines = cluster.history.as_ref().map(|h| h.lines.clone()).unwrap_or_default();
        let verdict = self.shared.pg.rejoin(leader_timeline, &lines).await;
        self.divergence = Some((key, verdict.clone()));
        verdict
    }

    /// What rejoining may do with pg_rewind and new copies (Patroni's
    /// `Rewind` state), read while PostgreSQL is stopped.
    async fn rewind_state(&self, observed: &Observed, rejoin: &palisade_ha::Rejoin) -> palisade_ha::RewindState {
        let tracked = self.shared.tracked();
        let cfg = self.shared.config();
        let stopped = observed.pg == palisade_ha::Pg::Stopped
            && matches!(observed.data_dir, palisade_ha::DataDir::Initialized { .. });
        let diverged = matches!(rejoin, palisade_ha::Rejoin::Diverged(_));
        palisade_ha::RewindState {
            can_rewind: (stopped || diverged) && self.shared.pg.can_rewind().await,
            remove_on_rewind_failure: cfg.local.postgresql.remove_data_directory_on_rewind_failure,
            remove_on_diverged: cfg.local.postgresql.remove_data_directory_on_diverged_timelines,
            crash_recovery_done: tracked.crash_recovery_done,
            crash_recovery_elapsed: tracked
                .crash_recovery_started
                .filter(|_| matches!(self.task, Some((palisade_ha::Task::CrashRecovery, _))))
                .map(|t| t.elapsed().as_secs_f64()),
            failed: tracked.rewind_failed,
            backup_label: stopped && self.shared.pg.has_backup_label(),
        }
    }

    /// As the leader running a primary: make sure a CHECKPOINT ran after
    /// the promotion, so that pg_rewind on the former primary sees the new
    /// timeline, and publish it (Patroni's `ensure_checkpoint_after_promote`).
    pub(super) async fn ensure_checkpoint_after_promote(&mut self, observed: &Observed) {
        let tracked = self.shared.tracked();
        if !observed.pg.is_primary() || !tracked.is_leader() || self.task.is_some() {
            if !observed.pg.is_primary() && tracked.checkpoint_after_promote.is_some() {
                self.shared.with_tracked(|t| t.checkpoint_after_promote = None);
            }
            return;
        }
        if tracked.checkpoint_after_promote == Some(true) {
            return;
        }
        let done = match self.shared.pg.checkpoint_after_promote().await {
            Ok(true) => true,
            Ok(false) => match self.shared.pg.checkpoint().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!("Exception during CHECKPOINT");
                    tracing::warn!("CHECKPOINT after promote: {e}");
                    false
                }
            },
            Err(e) => {
                tracing::warn!("cannot tell whether a CHECKPOINT ran after the promotion: {e}");
                false
            }
        };
        self.shared.with_tracked(|t| t.checkpoint_after_promote = Some(done));
    }

    /// Answer one question of the decision. A DCS error while renewing or
    /// taking the lock is recorded as a negative answer and returned: the
    /// cycle then goes on as one that could not reach the DCS.
    async fn answer(
        &mut self,
        ask: Ask,
        cluster: &Cluster,
        observed: &Observed,
        answers: &mut Answers,
    ) -> Result<(), DcsError> {
        let cfg = self.shared.config();
        match ask {
            Ask::UpdateLock { update_status } => {
                // The watchdog is fed before the renewal is sent when its
                // new deadline falls within the lease we hold: it then fires
                // before any lease runs out, however the renewal goes.
                let sent = std::time::Instant::now();
                let before = self.shared.with_watchdog(|w| {
                    let before = w.keepalive_before_renewal(sent);
                    if before {
                        w.keepalive();
                    }
                    before
                });
                let result = self.shared.dcs.update_leader(cluster.leader.as_ref()).await;
                let ok = *result.as_ref().unwrap_or(&false);
                let ttl = cfg.global.ttl;
                self.shared.with_tracked(|t| t.leader_until = ok.then(|| crate::instant_after(ttl)));
                self.shared.with_watchdog(|w| {
                    if ok {
                        w.lease_renewed(sent, ttl);
                        if !before {
                            w.keepalive();
                        }
                    } else {
                        w.lease_lost();
                    }
                });
                answers.update_lock = Some(ok);
                if let Err(e) = result {
                    tracing::error!("failed to update leader lock: {e}");
                    return Err(e);
                }
                if ok && update_status {
                    self.write_status(cluster, observed).await;
                }
                if ok {
                    self.write_failsafe(cluster).await;
                }
            }
            Ask::AcquireLock => {
                let sent = std::time::Instant::now();
                let result = self.shared.dcs.attempt_to_acquire_leader().await;
                let ok = *result.as_ref().unwrap_or(&false);
                let ttl = cfg.global.ttl;
                self.shared.with_tracked(|t| t.leader_until = ok.then(|| crate::instant_after(ttl)));
                if ok {
                    self.shared.with_watchdog(|w| w.lease_renewed(sent, ttl));
                }
                answers.acquire_lock = Some(ok);
                if let Err(e) = result {
                    tracing::error!("failed to acquire the leader lock: {e}");
                    return Err(e);
                }
                if !ok {
                    tracing::info!("Could not take out TTL lock");
                }
            }
            Ask::Initialize => {
                answers.initialize = Some(self.shared.dcs.initialize(true, String::new()).await.unwrap_or_else(|e| {
                    tracing::error!("failed to race for the initialize key: {e}");
                    false
                }));
            }
            Ask::PeerStatuses(names) => {
                // Members of the `failsafe` key take part in the race too
                // (failsafe mode), with only their API URL known.
                let from_failsafe = cluster.failsafe.as_ref().map(palisade_ha::failsafe_members).unwrap_or_default();
                let members: Vec<Member> = names
                    .iter()
                    .filter_map(|n| {
                        cluster
                            .member(n)
                            .or_else(|| self.old_members.members.iter().find(|m| &m.name == n))
                            .or_else(|| from_failsafe.iter().find(|m| &m.name == n))
                            .cloned()
                    })
                    .collect();
                for st in self.shared.peers.statuses(members).await {
                    answers.peers.insert(st.name.clone(), st);
                }
                for n in names {
                    answers.peers.entry(n.clone()).or_insert_with(|| PeerStatus::unreachable(&n));
                }
            }
            Ask::MyPosition => {
                answers.my_position = Some(self.shared.pg.position().await.unwrap_or((0, None)));
            }
            Ask::ActivateWatchdog => answers.watchdog_activated = Some(self.shared.with_watchdog(|w| w.activate())),
            Ask::SyncPrepromote => answers.sync_prepromote = Some(self.sync_prepromote(cluster).await),
            Ask::Failsafe(members) => {
                let body = self.failsafe_body(cluster, observed).await;
                let got = self.shared.peers.failsafe(members.clone(), body).await;
                let replies: Vec<(String, bool, Option<u64>)> = members
                    .into_iter()
                    .map(|(name, _)| {
                        let r = got.get(&name).copied().unwrap_or_default();
                        (name, r.accepted, r.lsn)
                    })
                    .collect();
                // The members' positions advance the slots of cascading
                // members while failsafe mode keeps us running.
                if let Some(positions) = palisade_ha::member_positions(&replies) {
                    self.shared.status.update(|s| s.failsafe.slots = Some(positions));
                }
                answers.failsafe = Some(replies.into_iter().map(|(name, ok, _)| (name, ok)).collect());
            }
        }
        Ok(())
    }

    /// What a primary sends with `POST /failsafe` (Patroni's fields): who
    /// we are, how to reach us, and our replication slots' positions with
    /// our own, so replicas can keep their copies advancing.
    async fn failsafe_body(&self, cluster: &Cluster, observed: &Observed) -> serde_json::Value {
        let cfg = self.shared.config();
        let slots = self.known_slots(cluster, observed).await;
        serde_json::json!({
            "name": cfg.local.name,
            "conn_url": super::member::postgres_url(&cfg.local.postgresql.connect_address),
            "api_url": cfg.local.restapi.api_url(),
            "slots": slots,
        })
    }

    /// Publish the members and their API URLs in the `failsafe` key when
    /// failsafe mode is on and the member list changed (after renewing
    /// the lock, as Patroni's `update_leader`).
    async fn write_failsafe(&mut self, cluster: &Cluster) {
        let cfg = self.shared.config();
        let api_url = cfg.local.restapi.api_url();
        let Some(value) =
            palisade_ha::failsafe_key_update(cfg.global.failsafe_mode, cluster, &cfg.local.name, &api_url)
        else {
            return;
        };
        match self.shared.dcs.write_failsafe(value.clone()).await {
            Ok(true) => self.last_failsafe = serde_json::from_str(&value).ok(),
            Ok(false) => {}
            Err(e) => tracing::warn!("could not write the failsafe key: {e}"),
        }
    }

    /// The MPP coordinator's part of a cycle. When PostgreSQL was
    /// (re)started or promoted, the plugin reads its metadata again
    /// (Patroni's `schedule_cache_rebuild`); as the primary holding the
    /// lock, the metadata is brought in line with every group's cluster
    /// (Patroni's `sync_meta_data`, each heartbeat of the leader).
    async fn mpp_cycle(&mut self, observed: &Observed) {
        let Some(mpp) = self.shared.mpp.clone().filter(|m| m.is_coordinator()) else {
            return;
        };
        let seen = (observed.postmaster_pid, observed.pg.is_primary());
        if self.mpp_seen != Some(seen) {
            self.mpp_seen = Some(seen);
            mpp.schedule_cache_rebuild();
        }
        if !observed.pg.is_primary() || !self.shared.tracked().is_leader() || self.task.is_some() {
            return;
        }
        let deadline = self.shared.config().global.retry_timeout;
        match self.shared.dcs.get_mpp_groups().await {
            Ok(groups) => {
                if let Err(e) = mpp.sync_meta_data(&groups, deadline).await {
                    tracing::error!("{e}");
                }
            }
            Err(e) => tracing::warn!("cannot read the Citus groups to sync the metadata: {e}"),
        }
    }
}
