//! The long actions, run in the background while the loop goes on. Each
//! returns whether it succeeded; the loop hands that to the next decision.
//! Tasks never write the leader key.

use std::sync::Arc;

use palisade_model::{Member, Role, State};

use super::Shared;

/// Initialise a new cluster (initdb or a custom method) and start it.
pub async fn bootstrap(shared: Arc<Shared>) -> bool {
    let cfg = shared.config();
    let Some(bootstrap) = cfg.local.bootstrap.clone() else {
        tracing::error!("cannot bootstrap: the configuration has no bootstrap section");
        return false;
    };
    if let Err(e) = shared.pg.bootstrap(&bootstrap).await {
        tracing::error!("bootstrap failed: {e}");
        let failed = if bootstrap.method == "initdb" { State::InitdbFailed } else { State::CustomBootstrapFailed };
        shared.with_tracked(|t| t.set_state(failed));
        return false;
    }
    shared.with_tracked(|t| t.set_state(State::Starting));
    match shared.pg.start_bootstrapped().await {
        Ok(accepting) => {
            shared.with_tracked(|t| {
                if accepting {
                    t.set_state(State::Running);
                }
            });
            true
        }
        Err(e) => {
            tracing::error!("failed to start the new cluster: {e}");
            shared.with_tracked(|t| t.set_state(State::StartFailed));
            false
        }
    }
}

/// Create the roles and run the post_bootstrap script.
pub async fn post_bootstrap(shared: Arc<Shared>) -> bool {
    let cfg = shared.config();
    let Some(bootstrap) = cfg.local.bootstrap.clone() else {
        return false;
    };
    if let Err(e) = shared.pg.post_bootstrap(&bootstrap).await {
        tracing::error!("post_bootstrap failed: {e}");
        return false;
    }
    // After initdb (not a custom bootstrap, as Patroni), the MPP plugin
    // creates its database and extension; its failure fails the bootstrap.
    if let Some(mpp) = shared.mpp.as_deref().filter(|_| bootstrap.method == "initdb") {
        let deadline = std::time::Duration::from_secs(600);
        if let Err(e) = mpp.bootstrap(deadline).await {
            tracing::error!("post_bootstrap failed: {e}");
            return false;
        }
    }
    true
}

/// The replica methods that clone the remote primary of a standby
/// cluster, as indexes into the loaded plugins, in
/// `standby_cluster.create_replica_methods` order. A method without a
/// loaded plugin is reported and skipped.
fn standby_methods(shared: &Shared, standby: &palisade_config::StandbyCluster) -> Vec<usize> {
    standby
        .replica_methods()
        .iter()
        .filter_map(|name| {
            let found = shared.replicas.iter().position(|r| &r.method == name);
            if found.is_none() {
                tracing::error!(
                    "standby_cluster.create_replica_methods: no plugin is loaded for method '{name}' (palisade loads \
                     those of postgresql.create_replica_methods and of the standby_cluster in force when it \
                     starts: restart it to load this one)"
                );
            }
            found
        })
        .collect()
}

/// Whether a replica can be built with no member to copy from: one of the
/// methods (in a standby cluster, of `standby_cluster`) works without a
/// replication connection (Patroni's
/// `can_create_replica_without_replication_connection`).
pub fn can_clone_without_leader(shared: &Shared, cfg: &super::RuntimeConfig) -> bool {
    match cfg.global.standby_cluster_config() {
        Some(standby) => {
            let methods = standby.replica_methods();
            shared.replicas.iter().any(|r| r.without_leader && methods.contains(&r.method))
        }
        None => cluster_methods(shared, cfg).any(|r| r.without_leader),
    }
}

/// The loaded methods of `postgresql.create_replica_methods`, in its
/// order: those that build a replica of this cluster (a standby cluster's
/// own methods, loaded too, only clone the remote primary).
fn cluster_methods<'a>(
    shared: &'a Shared,
    cfg: &'a super::RuntimeConfig,
) -> impl Iterator<Item = &'a palisade_plugin_host::plugins::ReplicaPlugin> + 'a {
    let listed = &cfg.local.postgresql.create_replica_methods;
    shared.replicas.iter().filter(move |r| listed.contains(&r.method))
}

/// Build the data directory with the configured replica methods, then
/// start as a replica. In a standby cluster with nobody to copy from, the
/// remote primary is cloned with `standby_cluster.create_replica_methods`.
pub async fn clone(shared: Arc<Shared>, source: Option<Member>, leader: Option<String>) -> bool {
    if source.is_none() {
        if let Some(standby) = shared.config().global.standby_cluster_config() {
            return clone_remote_and_start(shared, &standby, Role::Replica).await;
        }
    }
    shared.with_tracked(|t| {
        t.set_state(State::CreatingReplica);
        t.rewind_failed = false;
        t.crash_recovery_done = false;
    });
    let mut done = false;
    let cfg = shared.config();
    let listed = &cfg.local.postgresql.create_replica_methods;
    for (i, method) in shared.replicas.iter().enumerate().filter(|(_, m)| listed.contains(&m.method)) {
        if source.is_none() && !method.without_leader {
            continue;
        }
        let request = match shared.pg.replica_request(source.as_ref()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot prepare replica creation: {e}");
                break;
            }
        };
        tracing::info!("trying to create a replica with method '{}'", method.method);
        let s = Arc::clone(&shared);
        let result =
            palisade_plugin_host::spawn_plugin_call(move || s.replicas[i].plugin.create_replica(&request)).await;
        match result {
            Ok(Ok(())) => {
                tracing::info!("replica created with method '{}'", method.method);
                done = true;
                break;
            }
            // The command method's failure reads "<command> exited with
            // code=N", which completes Patroni's line; pg_basebackup logs
            // Patroni's own words for it in the plugin.
            Ok(Err(e)) if method.method != "basebackup" => {
                tracing::error!("Error creating replica using method {}: {e}", method.method)
            }
            Ok(Err(e)) => tracing::error!("replica method '{}' failed: {e}", method.method),
            Err(e) => tracing::error!("replica method '{}' did not finish: {e}", method.method),
        }
        // Patroni's `keep_data`: a method that keeps the data directory
        // (a pgBackRest `--delta` restore) leaves it for the next one.
        if method.keep_data {
            continue;
        }
        if let Err(e) = shared.pg.remove_data_directory() {
            tracing::error!("could not clean the data directory after a failed attempt: {e}");
        }
    }
    if !done {
        // Patroni's words: "from leader 'n1'", "from replica 'n3'", or
        // "bootstrap (without leader)" (its message repeats the verb).
        let from = match &source {
            Some(m) if leader.as_deref() == Some(m.name.as_str()) => format!("from leader '{}'", m.name),
            Some(m) => format!("from replica '{}'", m.name),
            None => "bootstrap (without leader)".to_string(),
        };
        tracing::error!("failed to bootstrap {from}");
        shared.with_tracked(|t| t.set_state(State::Stopped));
        return false;
    }
    // Follow the leader if there is one now, else the member we copied.
    let target = match shared.dcs.get_cluster().await {
        Ok(c) => c.leader_member().cloned().filter(|m| Some(&m.name) == leader.as_ref() || leader.is_none()).or(source),
        Err(_) => source,
    };
    start(shared, Role::Replica, target).await
}

/// Clone the remote primary of the standby cluster with
/// `standby_cluster.create_replica_methods` (Patroni's `create_replica`
/// for a `RemoteMember`). `false` when no method succeeded; the data
/// directory is then empty again.
async fn clone_remote(shared: &Arc<Shared>, standby: &palisade_config::StandbyCluster) -> bool {
    shared.with_tracked(|t| t.set_state(State::CreatingReplica));
    let no_address = standby.host.is_none() && standby.port.is_none();
    for i in standby_methods(shared, standby) {
        let method = &shared.replicas[i];
        if no_address && !method.without_leader {
            continue;
        }
        let request = match shared.pg.replica_request_remote().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot prepare replica creation: {e}");
                return false;
            }
        };
        tracing::info!("trying to create a replica with method '{}'", method.method);
        let s = Arc::clone(shared);
        match palisade_plugin_host::spawn_plugin_call(move || s.replicas[i].plugin.create_replica(&request)).await {
            Ok(Ok(())) => {
                tracing::info!("replica created with method '{}'", method.method);
                return true;
            }
            Ok(Err(e)) => tracing::error!("Error creating replica using method {}: {e}", method.method),
            Err(e) => tracing::error!("replica method '{}' did not finish: {e}", method.method),
        }
        if let Err(e) = shared.pg.remove_data_directory() {
            tracing::error!("could not clean the data directory after a failed attempt: {e}");
        }
    }
    false
}

/// Become the first leader of a standby cluster (Patroni's
/// `bootstrap_standby_leader`): clone the remote primary, then start as
/// the standby leader replicating from it.
pub async fn bootstrap_standby_leader(shared: Arc<Shared>) -> bool {
    let Some(standby) = shared.config().global.standby_cluster_config() else {
        tracing::error!("cannot bootstrap a standby leader: standby_cluster is not set any more");
        return false;
    };
    clone_remote_and_start(shared, &standby, Role::StandbyLeader).await
}

/// Clone the remote primary of the standby cluster, then start following
/// it as `role`, with Patroni's log lines.
async fn clone_remote_and_start(shared: Arc<Shared>, standby: &palisade_config::StandbyCluster, role: Role) -> bool {
    let remote = crate::standby::describe_remote(standby);
    if !clone_remote(&shared, standby).await {
        tracing::error!("failed to bootstrap clone from remote member {remote}");
        shared.with_tracked(|t| t.set_state(State::Stopped));
        return false;
    }
    tracing::info!("bootstrapped clone from remote member {remote}");
    start_remote(shared, role).await
}

/// Start PostgreSQL in recovery replicating from the remote primary of
/// the standby cluster, as `role` (the standby leader, or a replica of a
/// standby cluster that has no leader).
pub async fn start_remote(shared: Arc<Shared>, role: Role) -> bool {
    start_in_role(&shared, role, Following::Remote, shared.pg.start_remote()).await
}

/// Restart PostgreSQL in its role (Patroni's `restart`): fast stop, start,
/// `on_restart`. `reply` gets the outcome for `POST /restart`.
pub async fn restart(
    shared: Arc<Shared>,
    follow: Option<Member>,
    timeout: Option<f64>,
    reply: Option<tokio::sync::oneshot::Sender<(bool, String)>>,
) -> bool {
    let role = match shared.tracked().role {
        Role::Primary | Role::Promoted => Role::Primary,
        Role::StandbyLeader => Role::StandbyLeader,
        _ => Role::Replica,
    };
    let released = super::sync::leave_sync_standbys(&shared).await;
    shared.with_tracked(|t| {
        t.set_state(State::Restarting);
        t.start_timeout = timeout;
    });
    // A worker group's leader tells the coordinator around the restart, as
    // around a switchover (Patroni's restart with the lock).
    let has_lock = shared.tracked().is_leader();
    if has_lock {
        crate::mpp::notify_coordinator(&shared, crate::mpp::WorkerEvent::BeforeDemote).await;
    }
    let answer = |ok: bool, text: &str| (ok, text.to_string());
    let outcome = match shared.pg.stop(crate::pg::StopMode::Fast).await {
        Err(e) => {
            tracing::error!("restart: stopping PostgreSQL failed: {e}");
            answer(false, "restart failed")
        }
        Ok(_) => {
            shared.with_tracked(|t| t.set_state(State::Starting));
            let wait = palisade_config::limits::seconds_f64(
                timeout.unwrap_or(shared.config().local.postgresql.pg_ctl_timeout.as_secs_f64()).max(1.0),
            );
            match shared.pg.start_within(role, follow.as_ref(), wait).await {
                Ok(true) => {
                    shared.with_tracked(|t| {
                        t.set_state(State::Running);
                        t.following = follow.as_ref().map(|m| m.name.clone());
                        // A standby leader restarts following the remote primary.
                        t.following_remote = role == Role::StandbyLeader;
                    });
                    shared.callback("on_restart");
                    if has_lock {
                        crate::mpp::notify_coordinator(&shared, crate::mpp::WorkerEvent::AfterPromote).await;
                    }
                    answer(true, "restarted successfully")
                }
                Ok(false) => {
                    // on_restart fires once it accepts connections.
                    shared.with_tracked(|t| {
                        t.on_start_called = false;
                        t.cb_pending = Some("on_restart");
                    });
                    answer(false, "postgres is still starting")
                }
                Err(e) => {
                    tracing::error!("restart: starting PostgreSQL failed: {e}");
                    shared.with_tracked(|t| t.set_state(State::RestartFailed));
                    answer(false, "restart failed")
                }
            }
        }
    };
    if released {
        super::sync::rejoin_sync_standbys(&shared);
    }
    let ok = outcome.0;
    if let Some(reply) = reply {
        let _ = reply.send(outcome);
    }
    ok
}

/// Rebuild this replica (Patroni's `_do_reinitialize`): stop, remove the
/// data directory, copy it again from `source`, start.
pub async fn reinitialize(shared: Arc<Shared>, source: Option<Member>, leader: Option<String>) -> bool {
    match shared.pg.stop_signalled(crate::pg::StopMode::Immediate).await {
        Ok((signalled, _)) => {
            // In the role it had, as Patroni's _do_reinitialize stops it.
            if signalled {
                shared.callback("on_stop");
            }
        }
        Err(e) => {
            tracing::error!("reinitialize: cannot stop PostgreSQL: {e}");
            return false;
        }
    }
    shared.set_role(Role::Uninitialized);
    shared.with_tracked(|t| {
        t.following = None;
        t.following_remote = false;
        t.rewind_failed = false;
        t.crash_recovery_done = false;
    });
    // Patroni 4.1 leaves the directory to the replica methods, so that a
    // method with `keep_data` (a pgBackRest `--delta` restore) can reuse
    // it; the others empty it themselves. Without such a method it is
    // removed here, as before.
    if !cluster_methods(&shared, &shared.config()).any(|r| r.keep_data) {
        if let Err(e) = shared.pg.remove_data_directory() {
            tracing::error!("reinitialize: cannot remove the data directory: {e}");
            return false;
        }
    }
    clone(shared, source, leader).await
}

/// Crash recovery in single-user mode (Patroni's `ensure_clean_shutdown`),
/// so that pg_rewind and the timeline check see a clean shutdown.
pub async fn crash_recovery(shared: Arc<Shared>) -> bool {
    shared.with_tracked(|t| t.crash_recovery_started = Some(std::time::Instant::now()));
    let result = shared.pg.crash_recovery().await;
    shared.with_tracked(|t| t.crash_recovery_started = None);
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::error!("crash recovery in single-user mode failed: {e}");
            false
        }
    }
}

/// pg_rewind from `leader` (Patroni's `Rewind.execute`). When pg_rewind
/// ran and failed, the data directory is removed if the settings allow it
/// (the next cycle then copies it again), else the failure is remembered
/// and PostgreSQL stays stopped.
pub async fn rewind(shared: Arc<Shared>, leader: Member) -> bool {
    match shared.pg.rewind_from(&leader).await {
        palisade_postgres::RewindOutcome::Rewound => {
            shared.with_tracked(|t| t.rewind_failed = false);
            true
        }
        palisade_postgres::RewindOutcome::NotNow => false,
        palisade_postgres::RewindOutcome::Failed { .. } => {
            // Unlike Patroni, a pg_rewind that ran and failed counts as a
            // failure even when the leader stopped answering (its issue
            // #3652): the data directory it worked on is not to be trusted.
            let cfg = shared.config();
            let pg = &cfg.local.postgresql;
            let allowed = [
                ("remove_data_directory_on_rewind_failure", pg.remove_data_directory_on_rewind_failure),
                ("remove_data_directory_on_diverged_timelines", pg.remove_data_directory_on_diverged_timelines),
            ];
            match allowed.iter().find(|(_, on)| *on) {
                Some((name, _)) => {
                    tracing::warn!("{name} is set. removing...");
                    shared.with_tracked(|t| {
                        t.crash_recovery_done = false;
                        t.rewind_failed = false;
                    });
                    shared.set_role(Role::Uninitialized);
                    if let Err(e) = shared.pg.remove_data_directory() {
                        tracing::error!("cannot remove the data directory after a failed pg_rewind: {e}");
                        shared.with_tracked(|t| t.rewind_failed = true);
                    }
                }
                None => shared.with_tracked(|t| t.rewind_failed = true),
            }
            false
        }
    }
}

/// Start PostgreSQL as `role`, streaming from `follow` when a replica, and
/// fire the callback Patroni's `follow` fires: `on_role_change` once the
/// start is over when the role changes sides (a former primary comes back
/// as a replica, a replica becomes the standby leader or the other way
/// round) after callbacks were called, else `on_start` once PostgreSQL
/// accepts connections.
pub async fn start(shared: Arc<Shared>, role: Role, follow: Option<Member>) -> bool {
    start_in_role(&shared, role, Following::Member(follow.as_ref()), shared.pg.start(role, follow.as_ref())).await
}

/// Whom a start makes PostgreSQL replicate from.
enum Following<'a> {
    /// A member of this cluster (or nobody: a primary, a replica without a leader).
    Member(Option<&'a Member>),
    /// The remote primary of the standby cluster.
    Remote,
}

/// [`start`] and [`start_remote`]: run `starting` and fire the callback
/// Patroni's `follow` fires.
async fn start_in_role(
    shared: &Arc<Shared>,
    role: Role,
    follow: Following<'_>,
    starting: impl std::future::Future<Output = Result<bool, crate::pg::PgFailure>>,
) -> bool {
    let (previous, cb_called) = shared.with_tracked(|t| {
        t.set_state(State::Starting);
        (t.role, t.on_start_called)
    });
    // Patroni starts a primary again after a crash with `start` (on_start);
    // every other start goes through its `follow`.
    let change_role = cb_called && role != Role::Primary && changes_sides(previous, role);
    super::sync::before_start(shared, role).await;
    shared.set_role(role);
    shared.publish_role_and_state();
    let started = match starting.await {
        Ok(accepting) => {
            shared.with_tracked(|t| {
                t.following = match follow {
                    Following::Member(m) => m.map(|m| m.name.clone()),
                    Following::Remote => None,
                };
                t.following_remote = matches!(follow, Following::Remote);
                // Patroni resets its rewind state once PostgreSQL is up.
                t.crash_recovery_done = false;
                t.rewind_failed = false;
                if accepting {
                    t.set_state(State::Running);
                } else if !change_role {
                    // on_start fires from the cycle once it accepts.
                    t.on_start_called = false;
                    t.cb_pending = None;
                }
            });
            if accepting && !change_role {
                shared.callback("on_start");
            }
            true
        }
        Err(e) => {
            tracing::error!("failed to start PostgreSQL: {e}");
            shared.with_tracked(|t| t.set_state(State::StartFailed));
            false
        }
    };
    shared.publish_role_and_state();
    if change_role {
        shared.callback("on_role_change");
    }
    started
}

/// Patroni's `change_role` test in `Postgresql.follow`: from a primary (or
/// a demoted one) to anything, or between replica and standby leader.
pub(super) fn changes_sides(previous: Role, role: Role) -> bool {
    matches!(previous, Role::Primary | Role::Demoted)
        || matches!((previous, role), (Role::Replica, Role::StandbyLeader) | (Role::StandbyLeader, Role::Replica))
}

/// Run the pre_promote script, then promote and wait for the end of
/// recovery. Fails only when the pre_promote script refuses the promotion
/// (the decision then gives the lock up).
pub async fn promote(shared: Arc<Shared>) -> bool {
    let cfg = shared.config();
    if let Some(script) = cfg.local.postgresql.pre_promote.clone() {
        // Patroni's line, with the exit code (negative: killed by a signal).
        match shared.pg.run_script(&script).await {
            Ok(0) => tracing::info!("pre_promote script `{script}` exited with 0"),
            Ok(code) => {
                tracing::info!("pre_promote script `{script}` exited with {code}");
                shared.with_tracked(|t| t.released_leader_key_at = crate::now());
                return false;
            }
            Err(e) => {
                // Patroni's line names the command as a Python list.
                let argv = palisade_pycompat::shlex::split(&script).unwrap_or_default();
                let argv = serde_json::Value::Array(argv.into_iter().map(serde_json::Value::String).collect());
                tracing::error!("Failed to execute {}", palisade_pycompat::py::to_str(&argv));
                tracing::error!("pre_promote: {e}");
                shared.with_tracked(|t| t.released_leader_key_at = crate::now());
                return false;
            }
        }
    }
    // A worker group's new primary tells the coordinator first (Patroni's
    // `before_promote`), which then holds the group's metadata lock.
    crate::mpp::notify_coordinator(&shared, crate::mpp::WorkerEvent::BeforePromote).await;
    // Once pg_ctl promote went through, while recovery ends: on_role_change
    // (Patroni's `promoted` role is passed as `primary`).
    let signalled = {
        let shared = Arc::clone(&shared);
        Box::new(move || {
            shared.set_role(Role::Promoted);
            shared.callback("on_role_change");
        })
    };
    match shared.pg.promote_then(signalled).await {
        Ok(()) => {
            shared.set_role(Role::Primary);
            shared.with_tracked(|t| t.following = None);
            // A checkpoint right away makes the new timeline usable as a
            // pg_rewind source and bounds crash recovery; the member key
            // says so once it ran (the loop tries again if it failed).
            match shared.pg.checkpoint().await {
                Ok(()) => shared.with_tracked(|t| t.checkpoint_after_promote = Some(true)),
                Err(e) => {
                    // Patroni's ERROR line; what failed follows at WARNING.
                    tracing::error!("Exception during CHECKPOINT");
                    tracing::warn!("CHECKPOINT after promote: {e}");
                }
            }
        }
        Err(e) => {
            // Still a replica: the next cycle (we hold the lock) tries again.
            tracing::error!("promote failed: {e}");
            shared.set_role(Role::Replica);
        }
    }
    true
}

/// Copy logical slots from the primary (Patroni's `copy_logical_slots`):
/// read their state files from `leader`, keep those this replica must
/// have with the configured database and plugin, stop PostgreSQL, write
/// the files into `pg_replslot`, and start again streaming from `follow`.
pub async fn copy_logical_slots(
    shared: Arc<Shared>,
    leader: Member,
    names: Vec<String>,
    wanted: palisade_ha::slots::Wanted,
    follow: Option<Member>,
) -> bool {
    let states = match shared.pg.leader_slot_states(&leader, &names).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("Failed to copy logical slots from the {} via postgresql connection: {e}", leader.name);
            return false;
        }
    };
    let (chosen, log) = palisade_ha::slots::copy_choice(&wanted, states);
    for (_, line) in &log {
        tracing::warn!("{line}");
    }
    if chosen.is_empty() {
        return true;
    }
    shared.with_tracked(|t| t.set_state(State::Stopping));
    match shared.pg.stop_signalled(crate::pg::StopMode::Fast).await {
        Err(e) => {
            tracing::error!("cannot stop PostgreSQL to copy logical slots: {e}");
            shared.with_tracked(|t| t.set_state(State::Running));
            return false;
        }
        Ok((signalled, _)) => {
            shared.with_tracked(|t| t.set_state(State::Stopped));
            if signalled {
                shared.callback("on_stop");
            }
        }
    }
    let written = shared.pg.install_slot_states(&chosen);
    if let Err(e) = &written {
        tracing::error!("cannot copy logical slots: {e}");
    } else {
        let copied: Vec<&str> = chosen.iter().map(|s| s.name.as_str()).collect();
        tracing::info!("copied logical slots {} from {}", palisade_ha::slots::py_list(&copied), leader.name);
    }
    // Start again whatever happened: a replica must not stay down.
    start(shared, Role::Replica, follow).await && written.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patroni's `change_role` in `Postgresql.follow`: which starts fire
    /// on_role_change instead of on_start.
    #[test]
    fn which_starts_change_sides() {
        use Role::*;
        let cases = [
            (Primary, Replica, true),
            (Demoted, Replica, true),
            (Primary, StandbyLeader, true),
            (Replica, StandbyLeader, true),
            (StandbyLeader, Replica, true),
            (Replica, Replica, false),
            (StandbyLeader, StandbyLeader, false),
            (Uninitialized, Replica, false),
            (Uninitialized, StandbyLeader, false),
            (Promoted, Replica, false),
        ];
        for (previous, role, want) in cases {
            assert_eq!(changes_sides(previous, role), want, "{previous} -> {role}");
        }
    }
}
