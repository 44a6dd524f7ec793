//! Carrying out the actions of a decision.

use palisade_ha::{Action, DemoteMode, StartAs, Task};
use palisade_model::{Cluster, Failover, Role, State};

use super::Runner;
use crate::pg::{Observed, StopMode};

impl Runner {
    /// Execute actions in order. Returns a fatal message when the daemon
    /// must exit.
    pub(super) async fn execute(
        &mut self,
        actions: &[Action],
        cluster: &Cluster,
        observed: &Observed,
    ) -> Option<String> {
        for action in actions {
            if let Some(fatal) = self.execute_one(action, cluster, observed).await {
                return Some(fatal);
            }
        }
        None
    }

    async fn execute_one(&mut self, action: &Action, cluster: &Cluster, observed: &Observed) -> Option<String> {
        let shared = std::sync::Arc::clone(&self.shared);
        match action {
            Action::SetInitializeKey { create_new } => {
                if let Some(sysid) = observed.sysid.clone() {
                    if let Err(e) = shared.dcs.initialize(*create_new, sysid).await {
                        tracing::error!("could not write the initialize key: {e}");
                    }
                }
            }
            Action::WriteConfig => {
                let dynamic = shared.config().dynamic;
                let value = palisade_model::to_compact_json(&dynamic);
                if let Err(e) = shared.dcs.set_config_value(value, None).await {
                    tracing::error!("could not write the configuration key: {e}");
                }
            }
            Action::StopImmediate => match shared.pg.stop_signalled(StopMode::Immediate).await {
                Ok((true, _)) => shared.callback("on_stop"),
                Ok((false, _)) => {}
                Err(e) => tracing::error!("could not stop PostgreSQL: {e}"),
            },
            Action::Bootstrap => {
                shared.with_tracked(|t| {
                    t.bootstrapping = true;
                    t.set_state(State::InitializingNewCluster);
                });
                self.spawn(Task::Bootstrap, super::tasks::bootstrap(std::sync::Arc::clone(&shared)));
            }
            Action::PostBootstrap => {
                self.spawn(Task::PostBootstrap, super::tasks::post_bootstrap(std::sync::Arc::clone(&shared)));
            }
            Action::CompleteBootstrap => {
                let sysid = observed.sysid.clone().unwrap_or_default();
                if let Err(e) = shared.dcs.initialize(cluster.initialize.is_none(), sysid).await {
                    tracing::error!("could not write the initialize key: {e}");
                }
                let dynamic = palisade_model::to_compact_json(&shared.config().dynamic);
                if let Err(e) = shared.dcs.set_config_value(dynamic, None).await {
                    tracing::error!("could not write the configuration key: {e}");
                }
                let sent = std::time::Instant::now();
                match shared.dcs.take_leader().await {
                    Ok(true) => {
                        let ttl = shared.config().global.ttl;
                        shared.with_tracked(|t| t.leader_until = Some(crate::instant_after(ttl)));
                        shared.with_watchdog(|w| w.lease_renewed(sent, ttl));
                    }
                    Ok(false) => tracing::error!("could not take the leader key after bootstrap"),
                    Err(e) => tracing::error!("could not take the leader key after bootstrap: {e}"),
                }
                shared.with_tracked(|t| {
                    t.bootstrapping = false;
                    // A standby cluster's first leader stays its standby leader.
                    if t.role != Role::StandbyLeader {
                        t.role = Role::Primary;
                    }
                    t.set_state(State::Running);
                });
                let sync = shared.config().settings().sync;
                if sync.is_on() {
                    // No standby yet: none listed, or strict mode's placeholder.
                    if let Err(e) = super::sync::set_names(&shared, super::sync::managed(None, &sync)).await {
                        tracing::error!("could not set synchronous_standby_names: {e}");
                    }
                }
            }
            Action::CancelBootstrap => {
                tracing::info!("removing initialize key after failed attempt to bootstrap the cluster");
                if let Err(e) = shared.dcs.cancel_initialization().await {
                    tracing::error!("could not remove the initialize key: {e}");
                }
                let _ = shared.pg.stop(StopMode::Immediate).await;
                if let Err(e) = shared.pg.move_data_directory_aside() {
                    tracing::error!("could not move the failed data directory aside: {e}");
                }
                return Some("Failed to bootstrap cluster".into());
            }
            Action::Clone { from } => {
                let source = from.as_ref().and_then(|n| cluster.member(n)).cloned();
                let leader = cluster.leader_name().map(String::from);
                shared.with_tracked(|t| t.set_state(State::CreatingReplica));
                self.spawn(Task::Clone, super::tasks::clone(std::sync::Arc::clone(&shared), source, leader));
            }
            Action::BootstrapStandbyLeader => {
                shared.with_tracked(|t| {
                    t.bootstrapping = true;
                    t.set_state(State::CreatingReplica);
                });
                self.spawn(
                    Task::BootstrapStandbyLeader,
                    super::tasks::bootstrap_standby_leader(std::sync::Arc::clone(&shared)),
                );
            }
            Action::Start(how) => {
                let shared = std::sync::Arc::clone(&shared);
                match how {
                    StartAs::Primary => self.spawn(Task::Start, super::tasks::start(shared, Role::Primary, None)),
                    StartAs::Replica { follow } => {
                        let follow = follow.as_ref().and_then(|n| cluster.member(n)).cloned();
                        self.spawn(Task::Start, super::tasks::start(shared, Role::Replica, follow))
                    }
                    StartAs::Remote { standby_leader } => {
                        let role = if *standby_leader { Role::StandbyLeader } else { Role::Replica };
                        self.spawn(Task::Start, super::tasks::start_remote(shared, role))
                    }
                };
            }
            Action::CrashRecovery => {
                shared.with_tracked(|t| t.crash_recovery_done = true);
                self.spawn(Task::CrashRecovery, super::tasks::crash_recovery(std::sync::Arc::clone(&shared)));
            }
            Action::Rewind { from } => match cluster.member(from).cloned() {
                Some(leader) => {
                    self.spawn(Task::Rewind, super::tasks::rewind(std::sync::Arc::clone(&shared), leader));
                }
                None => tracing::warn!("Can not use {from} for rewind: no member key"),
            },
            Action::Reinitialize => {
                let me = shared.config().local.name;
                let source = cluster.clone_member(&me, me.len()).cloned();
                let leader = cluster.leader_name().map(String::from);
                self.spawn(
                    Task::Reinitialize,
                    super::tasks::reinitialize(std::sync::Arc::clone(&shared), source, leader),
                );
            }
            Action::Follow { leader } => {
                let target = leader.as_ref().and_then(|n| cluster.member(n)).cloned();
                if let (Some(name), None) = (leader, &target) {
                    let name = palisade_plugin_api::host::one_line(name);
                    tracing::warn!("cannot follow the leader '{name}': it has no member key");
                } else {
                    match shared.pg.follow(target.as_ref()).await {
                        Ok(applied) => {
                            shared.with_tracked(|t| {
                                t.following.clone_from(leader);
                                t.following_remote = false;
                            });
                            // As Patroni's follow: on_reload when a reload
                            // applied the new settings, on_restart when it
                            // took a restart.
                            fire_applied(&shared, applied);
                        }
                        Err(e) => tracing::error!("could not reconfigure replication: {e}"),
                    }
                }
            }
            Action::FollowRemote { standby_leader } => match shared.pg.follow_remote().await {
                Ok(applied) => {
                    let role = if *standby_leader { Role::StandbyLeader } else { Role::Replica };
                    let (previous, cb_called) = shared.with_tracked(|t| {
                        t.following = None;
                        t.following_remote = true;
                        (t.role, t.on_start_called)
                    });
                    self.set_role(role);
                    // Patroni's follow: between replica and standby leader
                    // the role changes sides (on_role_change); otherwise
                    // on_reload or on_restart, as the settings were applied.
                    if cb_called && super::tasks::changes_sides(previous, role) {
                        shared.callback("on_role_change");
                    } else {
                        fire_applied(&shared, applied);
                    }
                }
                Err(e) => tracing::error!("could not reconfigure replication from the remote primary: {e}"),
            },
            Action::Promote => {
                // A leader heard from before is not ours to follow any more
                // (Patroni's "reset failsafe state when promote").
                shared.status.update(|s| s.failsafe.reset());
                shared.with_tracked(|t| t.checkpoint_after_promote = Some(false));
                self.spawn(Task::Promote, super::tasks::promote(std::sync::Arc::clone(&shared)));
            }
            Action::Demote(mode) => self.demote(*mode, cluster).await,
            Action::FailsafeActive => {
                let ttl = shared.config().global.ttl;
                let until = crate::instant_after(ttl);
                shared.with_tracked(|t| t.leader_until = Some(until));
                shared.status.update(|s| s.failsafe.active_until = Some(until));
            }
            Action::ReleaseLeaderKey => self.release_leader_key(cluster, None).await,
            Action::WriteFailoverKey { leader, candidate, keep_schedule } => {
                let scheduled = match (&cluster.failover, keep_schedule) {
                    (Some(f), true) => match &f.scheduled_at {
                        Some(palisade_model::values::ScheduledAt::At(t)) => Some(*t),
                        _ => None,
                    },
                    _ => None,
                };
                let value = Failover::to_json(leader.as_deref(), candidate.as_deref(), scheduled.as_ref());
                let version = cluster.failover.as_ref().map(|f| f.version.clone());
                if let Err(e) = shared.dcs.set_failover_value(value, version).await {
                    tracing::error!("could not update the failover key: {e}");
                }
            }
            Action::SetRole(role) => {
                let cb_called = shared.with_tracked(|t| t.on_start_called);
                let previous = shared.set_role(*role);
                // Patroni's post_recover: a leader whose PostgreSQL did not
                // start is demoted, and says so. Its follow: a running
                // replica that becomes the standby leader (it won the lock
                // of a standby cluster) or the other way round.
                let replica_sides = matches!(
                    (previous, *role),
                    (Role::Replica, Role::StandbyLeader) | (Role::StandbyLeader, Role::Replica)
                );
                if (*role == Role::Demoted && matches!(previous, Role::Primary | Role::StandbyLeader))
                    || (replica_sides && cb_called)
                {
                    shared.callback("on_role_change");
                }
            }
            Action::MarkCrashed => shared.with_tracked(|t| t.set_state(State::Crashed)),
            Action::MarkStopped => shared.with_tracked(|t| t.set_state(State::Stopped)),
            Action::UpdateHistory => self.update_history(cluster, observed).await,
            Action::SyncReplication => self.process_sync(cluster).await,
            Action::CallbackOnStart => {
                // on_start, or on_restart for a restart that ended after its task.
                let action = shared.with_tracked(|t| {
                    t.on_start_called = true;
                    t.cb_pending.take()
                });
                shared.callback(action.unwrap_or("on_start"));
            }
            Action::CancelTask => {
                if let Some((task, handle)) = self.task.take() {
                    tracing::info!("cancelling {}", task.describe());
                    if task == Task::Clone {
                        for r in &shared.replicas {
                            r.plugin.cancel();
                        }
                    }
                    handle.abort();
                }
            }
            Action::Restart { timeout } => {
                let follow = shared.tracked().following.and_then(|n| cluster.member(&n).cloned());
                self.spawn(
                    Task::Restart,
                    super::tasks::restart(std::sync::Arc::clone(&shared), follow, *timeout, None),
                );
            }
            Action::DeleteScheduledRestart => {
                shared.delete_scheduled_restart();
            }
            Action::Fatal(message) => return Some(message.clone()),
        }
        None
    }

    /// Run `fut` as the background task; `false` (and nothing run) when
    /// another task is in progress.
    pub(super) fn spawn(&mut self, task: Task, fut: impl std::future::Future<Output = bool> + Send + 'static) -> bool {
        if let Some((running, _)) = &self.task {
            tracing::warn!("not starting {}: {} is in progress", task.describe(), running.describe());
            return false;
        }
        let shared = std::sync::Arc::clone(&self.shared);
        let handle = tokio::spawn(async move {
            let ok = fut.await;
            shared.with_tracked(|t| t.finished = Some((task, ok)));
            let _ = shared.events.send(super::Event::TaskDone);
        });
        self.task = Some((task, handle));
        true
    }

    /// `POST /restart` without a schedule: check the filters, then restart
    /// in the background and answer when it is done.
    pub(super) fn restart_now(
        &mut self,
        filter: palisade_ha::RestartFilter,
        timeout: Option<f64>,
        reply: tokio::sync::oneshot::Sender<(bool, String)>,
    ) {
        let tracked = self.shared.tracked();
        let status = self.shared.status.get();
        let local = palisade_ha::Local {
            role: tracked.role,
            server_version: status.pg.as_ref().and_then(|p| p.server_version),
            pending_restart: !status.pending_restart_reason.is_empty(),
            ..palisade_ha::Local::default()
        };
        if let Some(why) = palisade_ha::restart_refusal(&filter, &local) {
            tracing::info!("not proceeding with the restart: {why}");
            let _ = reply.send((false, "restart conditions are not satisfied".into()));
            return;
        }
        if let Some((running, _)) = &self.task {
            let _ = reply.send((false, format!("{} already in progress", running.describe())));
            return;
        }
        let follow = tracked.following.and_then(|n| self.cluster.as_ref().and_then(|c| c.member(&n).cloned()));
        let shared = std::sync::Arc::clone(&self.shared);
        self.spawn(Task::Restart, super::tasks::restart(shared, follow, timeout, Some(reply)));
    }

    /// `POST /reinitialize`: `None` when the rebuild started, else why not.
    pub(super) fn reinitialize(&mut self, force: bool, from_leader: bool) -> Option<String> {
        let cluster = self.cluster.clone()?;
        let me = self.shared.config().local.name;
        let Some(leader) = cluster.leader_name() else {
            return Some("Cluster has no leader, can not reinitialize".into());
        };
        if leader == me {
            return Some("I am the leader, can not reinitialize".into());
        }
        if force {
            if let Some((task, handle)) = self.task.take() {
                tracing::info!("cancelling {} to reinitialize", task.describe());
                for r in &self.shared.replicas {
                    r.plugin.cancel();
                }
                handle.abort();
            }
        }
        if let Some((running, _)) = &self.task {
            return Some(format!("{} already in progress", running.describe()));
        }
        let source = if from_leader { cluster.leader_member() } else { cluster.clone_member(&me, me.len()) }.cloned();
        let shared = std::sync::Arc::clone(&self.shared);
        let leader = Some(leader.to_string());
        self.spawn(Task::Reinitialize, super::tasks::reinitialize(shared, source, leader));
        let _ = self.shared.events.send(super::Event::Wake);
        None
    }

    pub(super) fn set_role(&mut self, role: Role) {
        self.shared.set_role(role);
    }

    /// Delete our leader key, recording `last_lsn` in `status` first.
    async fn release_leader_key(&mut self, cluster: &Cluster, last_lsn: Option<u64>) {
        if let Some(lsn) = last_lsn {
            let _ = self.shared.dcs.write_status(self.final_status(lsn)).await;
        }
        let leader = cluster.leader.clone().filter(|l| l.name == self.shared.config().local.name);
        self.shared.with_tracked(|t| t.leader_until = None);
        match self.shared.dcs.delete_leader(leader.as_ref()).await {
            Ok(_) => tracing::info!("Leader key released"),
            Err(e) => tracing::error!("could not release the leader key: {e}"),
        }
        self.touch_member().await;
    }

    /// Demote the local primary (Patroni's `demote`), in the loop itself so
    /// that no lock renewal can interleave with the release.
    async fn demote(&mut self, mode: DemoteMode, cluster: &Cluster) {
        tracing::info!(
            "Demoting self ({})",
            match mode {
                DemoteMode::Offline => "offline",
                DemoteMode::Graceful => "graceful",
                DemoteMode::Immediate => "immediate",
                DemoteMode::ImmediateNolock => "immediate-nolock",
                DemoteMode::DemoteCluster => "demote-cluster",
            }
        );
        let (stop, checkpoint, release) = match mode {
            DemoteMode::Offline => (StopMode::Fast, false, false),
            DemoteMode::Graceful => (StopMode::Fast, true, true),
            DemoteMode::Immediate => (StopMode::Immediate, false, true),
            DemoteMode::ImmediateNolock => (StopMode::Immediate, false, false),
            // The key is kept: see below.
            DemoteMode::DemoteCluster => (StopMode::Fast, false, false),
        };
        if checkpoint {
            if let Err(e) = self.shared.pg.checkpoint().await {
                // Patroni's ERROR line; what failed follows at WARNING.
                tracing::error!("Exception during CHECKPOINT");
                tracing::warn!("CHECKPOINT before demote: {e}");
            }
        }
        // demote-cluster with archiving on pushes the WAL segment holding
        // the shutdown checkpoint once PostgreSQL is down (below), so that a
        // standby cluster fed by restore_command gets it; as in Patroni, the
        // stop then waits without primary_stop_timeout.
        let archive_command = match mode {
            DemoteMode::DemoteCluster => self.shared.pg.archive_command().await,
            _ => None,
        };
        // A graceful demotion of a worker group's primary: the coordinator
        // holds the group's metadata lock before we stop, so distributed
        // transactions wait instead of failing (Patroni's before_shutdown).
        if mode == DemoteMode::Graceful {
            crate::mpp::before_demote(&self.shared).await;
        }
        self.shared.with_tracked(|t| t.set_state(State::Stopping));
        // As in Patroni, the watchdog is closed as soon as PostgreSQL takes
        // no more writes (its clients are gone), not when it has stopped: a
        // shutdown can wait long for a WAL sender whose replica is cut off,
        // and the device must not reset the machine meanwhile.
        let shared = std::sync::Arc::clone(&self.shared);
        let safepoint: Box<dyn FnOnce() + Send> = Box::new(move || shared.disarm_watchdog_at_safepoint());
        let timeout = primary_stop_timeout(&self.shared).filter(|_| archive_command.is_none());
        let stopped = self.shared.pg.stop_to_demote(stop, timeout, safepoint).await;
        let (signalled, last_lsn) = match stopped {
            Ok(stopped) => stopped,
            Err(e) => {
                tracing::error!("could not stop PostgreSQL to demote: {e}");
                (false, None)
            }
        };
        self.shared.with_tracked(|t| {
            t.set_state(State::Stopped);
            t.following = None;
            t.following_remote = false;
        });
        // on_stop says `primary`: Patroni says `demoted` only when its
        // on_shutdown hook got to release the lock while the postmaster was
        // still running, which a fast shutdown seldom leaves time for.
        if signalled {
            self.shared.callback("on_stop");
        }
        self.set_role(Role::Demoted);
        if mode == DemoteMode::DemoteCluster {
            // The cluster became a standby cluster: we keep the leader key
            // (the shutdown checkpoint is the last position) and start
            // again as the standby leader, replicating from the new remote
            // primary without a new initdb (a replica when the key is not
            // ours: a leaderless standby cluster).
            let holds_lock = cluster.leader_name() == Some(self.shared.config().local.name.as_str());
            if let Some(lsn) = last_lsn.filter(|_| holds_lock) {
                let _ = self.shared.dcs.write_status(self.final_status(lsn)).await;
            }
            let role = if holds_lock { Role::StandbyLeader } else { Role::Replica };
            if archive_command.is_none() {
                tracing::info!("Not archiving latest checkpoint WAL file. Archiving is not configured.");
            }
            let shared = std::sync::Arc::clone(&self.shared);
            // The push runs in the start task, before the start (Patroni's
            // order), so that the loop keeps renewing the leader key while
            // a slow archive_command works.
            self.spawn(Task::Start, async move {
                if let Some(command) = archive_command {
                    shared.pg.archive_shutdown_checkpoint_wal(&command).await;
                }
                super::tasks::start_remote(shared, role).await
            });
            return;
        }
        if release {
            self.release_leader_key(cluster, last_lsn).await;
        } else {
            self.shared.with_tracked(|t| t.leader_until = None);
        }
        let follow = match mode {
            DemoteMode::Offline => None,
            _ => self.new_leader(std::time::Duration::from_secs(if release { 2 } else { 0 })).await,
        };
        // Start again as a replica; the next cycle points it at whoever
        // holds the lock if that is someone else.
        self.spawn(Task::Start, super::tasks::start(std::sync::Arc::clone(&self.shared), Role::Replica, follow));
    }

    /// The member that holds the leader key once another one does, asked
    /// every 100 ms for at most `patience` (Patroni sleeps two seconds after
    /// a demotion for the same purpose): a demoted primary then starts
    /// following it directly, with no second reconfiguration (and no
    /// `on_reload`) on the next cycle.
    async fn new_leader(&self, patience: std::time::Duration) -> Option<palisade_model::Member> {
        let me = self.shared.config().local.name;
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Ok(c) = self.shared.dcs.get_cluster().await {
                if let Some(m) = c.leader_member().filter(|m| m.name != me) {
                    return Some(m.clone());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Bring the DCS `history` key in line with our timeline history.
    async fn update_history(&mut self, cluster: &Cluster, observed: &Observed) {
        let Some(timeline) = observed.timeline() else {
            return;
        };
        let name = self.shared.config().local.name;
        let lines = if timeline > 1 { self.shared.pg.history_lines(timeline, &name).await } else { Vec::new() };
        let max = self.shared.config().global.max_timelines_history;
        if let Some(lines) = palisade_ha::updated_history(timeline, &lines, cluster.history.as_ref(), max) {
            let value = palisade_model::TimelineHistory::to_json(&lines);
            if let Err(e) = self.shared.dcs.set_history_value(value).await {
                tracing::error!("could not update the history key: {e}");
            }
        }
    }
}

/// The callback for how a follow applied new recovery settings: a reload
/// fires `on_reload`, a restart `on_restart` (Patroni's `follow`).
fn fire_applied(shared: &super::Shared, applied: crate::pg::Applied) {
    match applied {
        crate::pg::Applied::Reloaded => shared.callback("on_reload"),
        crate::pg::Applied::Restarted => shared.callback("on_restart"),
        crate::pg::Applied::Nothing => {}
    }
}

/// Patroni's `primary_stop_timeout()`: in synchronous mode, how long a
/// stopping primary gets before it is stopped immediately and then
/// SIGKILLed; `None` (the usual `pg_ctl_timeout` escalation) otherwise.
pub(super) fn primary_stop_timeout(shared: &super::Shared) -> Option<std::time::Duration> {
    stop_timeout_in_force(&shared.config().global)
}

fn stop_timeout_in_force(g: &palisade_config::GlobalConfig) -> Option<std::time::Duration> {
    (g.is_synchronous_mode() && !g.primary_stop_timeout.is_zero()).then_some(g.primary_stop_timeout)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn primary_stop_timeout_only_in_synchronous_mode() {
        let cases = [
            (json!({}), None),
            (json!({"primary_stop_timeout": 30}), None),
            (json!({"primary_stop_timeout": 30, "synchronous_mode": true}), Some(30)),
            (json!({"master_stop_timeout": 7, "synchronous_mode": "quorum"}), Some(7)),
            (json!({"primary_stop_timeout": 0, "synchronous_mode": true}), None),
            (json!({"synchronous_mode": true}), None),
        ];
        for (dynamic, want) in cases {
            let serde_json::Value::Object(map) = dynamic.clone() else { unreachable!() };
            let (g, _) = palisade_config::GlobalConfig::from_dynamic(&map);
            assert_eq!(super::stop_timeout_in_force(&g).map(|d| d.as_secs()), want, "{dynamic}");
        }
    }
}
