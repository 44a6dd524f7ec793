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
    match shared.pg.post_bootstrap(&bootstrap).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!("post_bootstrap failed: {e}");
            false
        }
    }
}

/// Build the data directory with the configured replica methods, then
/// start as a replica.
pub async fn clone(shared: Arc<Shared>, source: Option<Member>, leader: Option<String>) -> bool {
    shared.with_tracked(|t| {
        t.set_state(State::CreatingReplica);
        t.rewind_failed = false;
        t.crash_recovery_done = false;
    });
    let mut done = false;
    for (i, method) in shared.replicas.iter().enumerate() {
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
        let result = tokio::task::spawn_blocking(move || s.replicas[i].plugin.create_replica(&request)).await;
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
                    });
                    shared.callback("on_restart");
                    answer(true, "restarted successfully")
                }
                Ok(false) => answer(false, "postgres is still starting"),
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
    if let Err(e) = shared.pg.stop(crate::pg::StopMode::Immediate).await {
        tracing::error!("reinitialize: cannot stop PostgreSQL: {e}");
        return false;
    }
    shared.with_tracked(|t| {
        t.following = None;
        t.on_start_called = false;
        t.rewind_failed = false;
        t.crash_recovery_done = false;
    });
    shared.set_role(Role::Uninitialized);
    if let Err(e) = shared.pg.remove_data_directory() {
        tracing::error!("reinitialize: cannot remove the data directory: {e}");
        return false;
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

/// Start PostgreSQL as `role`, streaming from `follow` when a replica.
pub async fn start(shared: Arc<Shared>, role: Role, follow: Option<Member>) -> bool {
    // As Patroni's `start`, the role is the one asked for from now on: a
    // cycle during the start must not take a former primary that starts
    // as a replica for a primary to demote. Callbacks still fire once it
    // is up (`set_role` below, from the role it had).
    let previous = shared.with_tracked(|t| {
        t.set_state(State::Starting);
        std::mem::replace(&mut t.role, role)
    });
    super::sync::before_start(&shared, role).await;
    match shared.pg.start(role, follow.as_ref()).await {
        Ok(accepting) => {
            shared.with_tracked(|t| t.role = previous);
            shared.set_role(role);
            shared.with_tracked(|t| {
                t.following = follow.as_ref().map(|m| m.name.clone());
                t.on_start_called = false;
                // Patroni resets its rewind state once PostgreSQL is up.
                t.crash_recovery_done = false;
                t.rewind_failed = false;
                if accepting {
                    t.set_state(State::Running);
                }
            });
            true
        }
        Err(e) => {
            tracing::error!("failed to start PostgreSQL: {e}");
            shared.with_tracked(|t| t.set_state(State::StartFailed));
            false
        }
    }
}

/// Run the pre_promote script, then promote and wait for the end of
/// recovery. Fails only when the pre_promote script refuses the promotion
/// (the decision then gives the lock up).
pub async fn promote(shared: Arc<Shared>) -> bool {
    let cfg = shared.config();
    if let Some(script) = cfg.local.postgresql.pre_promote.clone() {
        match shared.pg.run_script(&script, &[]).await {
            Ok(()) => {}
            Err(e) => {
                tracing::error!("pre_promote script failed: {e}");
                shared.with_tracked(|t| t.released_leader_key_at = crate::now());
                return false;
            }
        }
    }
    shared.set_role(Role::Promoted);
    match shared.pg.promote().await {
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
    if let Err(e) = shared.pg.stop(crate::pg::StopMode::Fast).await {
        tracing::error!("cannot stop PostgreSQL to copy logical slots: {e}");
        shared.with_tracked(|t| t.set_state(State::Running));
        return false;
    }
    shared.with_tracked(|t| t.set_state(State::Stopped));
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
