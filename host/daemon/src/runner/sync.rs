//! Carrying out synchronous replication on the leader: read what the
//! primary reports, ask `palisade_ha::sync` what to change, and change
//! PostgreSQL and the `sync` key in the order it gives (Patroni's
//! `process_sync_replication` and its companions).

use std::time::Duration;

use palisade_ha::sync::{
    current_state, plan_disable, plan_multisync, plan_prepromote_multisync, plan_prepromote_quorum, plan_quorum,
    SyncPlan, SyncSettings, SyncStep, STRICT_PLACEHOLDER,
};
use palisade_ha::Level;
use palisade_model::{Cluster, SyncState};

use palisade_model::Role;

use super::{Runner, Shared};
use crate::pg::SyncNames;

/// How long Patroni gives PostgreSQL to apply a new list before it looks
/// again for standbys that became synchronous.
const RECHECK_AFTER: Duration = Duration::from_secs(2);
/// How often quorum mode looks again while standbys are being confirmed.
const QUORUM_RECHECK_AFTER: Duration = Duration::from_secs(1);

/// `synchronous_standby_names` as the leader decided it: `value`, or (when
/// none) the strict placeholder for a primary in strict mode.
pub fn managed(value: Option<String>, settings: &SyncSettings) -> SyncNames {
    SyncNames::Managed { value, primary_default: settings.strict.then(|| STRICT_PLACEHOLDER.to_string()) }
}

/// Set `synchronous_standby_names`; when that changed it and reloaded a
/// running PostgreSQL, fire `on_reload` as Patroni's
/// `set_synchronous_standby_names` does (through its `reload`).
pub async fn set_names(shared: &Shared, names: SyncNames) -> Result<bool, crate::pg::PgFailure> {
    let changed = shared.pg.set_sync_names(names).await?;
    if changed && shared.tracked().state == palisade_model::State::Running {
        shared.callback("on_reload");
    }
    Ok(changed)
}

/// Before PostgreSQL starts: in synchronous mode a replica lists no
/// synchronous standbys (Patroni clears the value when it starts or
/// demotes to a replica); a primary keeps the value the leader set (or,
/// after a daemon restart, gets none, or strict mode's placeholder).
pub async fn before_start(shared: &Shared, role: Role) {
    let settings = shared.config().settings().sync;
    if !settings.is_on() {
        // The configured value, as Patroni writes it outside synchronous mode.
        if let Err(e) = set_names(shared, SyncNames::Configured).await {
            tracing::error!("could not set synchronous_standby_names: {e}");
        }
        return;
    }
    let value = match (role, shared.pg.sync_names()) {
        (Role::Primary, SyncNames::Managed { value, .. }) => value,
        _ => None,
    };
    if let Err(e) = set_names(shared, managed(value, &settings)).await {
        tracing::error!("could not set synchronous_standby_names: {e}");
    }
}

fn log(level: Level, line: &str) {
    match level {
        Level::Info => tracing::info!("{line}"),
        Level::Warn => tracing::warn!("{line}"),
        Level::Error => tracing::error!("{line}"),
    }
}

impl Runner {
    /// The leader's synchronous replication step of the cycle.
    pub(super) async fn process_sync(&mut self, cluster: &Cluster) {
        let cfg = self.shared.config();
        let settings = cfg.settings().sync;
        let me = cfg.local.name.clone();
        if !settings.is_on() {
            self.sync.reset();
            self.run_sync_plan(plan_disable(&cluster.sync), cluster.sync.clone(), &settings).await;
            return;
        }
        let mut key = cluster.sync.clone();
        let mut rechecked = false;
        let started = std::time::Instant::now();
        let loop_wait = cfg.global.loop_wait;
        loop {
            let Some(primary) = self.shared.pg.sync_status().await else {
                return;
            };
            self.note_ssn(&primary).await;
            let observed = current_state(&mut self.sync, &me, &cluster.members, &key, &primary, &settings);
            let plan = if settings.is_quorum() {
                plan_quorum(&me, &mut self.sync, &key, &observed, &settings)
            } else {
                plan_multisync(&me, rechecked, &mut self.sync, &key, &observed, &settings)
            };
            let recheck = plan.recheck;
            match self.run_sync_plan(plan, key, &settings).await {
                Some(k) => key = k,
                None => return,
            }
            // `on` mode looks again once, after two seconds; quorum mode
            // every second while within loop_wait (as Patroni does).
            let wait = if settings.is_quorum() { QUORUM_RECHECK_AFTER } else { RECHECK_AFTER };
            let done = if settings.is_quorum() { started.elapsed() + wait >= loop_wait } else { rechecked };
            if !recheck || done {
                return;
            }
            rechecked = true;
            tokio::time::sleep(wait).await;
        }
    }

    /// Before promoting: `false` when the `sync` key could not be claimed.
    pub(super) async fn sync_prepromote(&mut self, cluster: &Cluster) -> bool {
        let cfg = self.shared.config();
        let settings = cfg.settings().sync;
        let me = cfg.local.name.clone();
        self.sync.reset();
        let plan = if settings.is_quorum() {
            plan_prepromote_quorum(&me, &cluster.sync, &settings)
        } else if settings.is_on() {
            plan_prepromote_multisync(&me, &cluster.sync, &settings)
        } else {
            plan_disable(&cluster.sync)
        };
        let quorum = settings.is_quorum();
        self.run_sync_plan(plan, cluster.sync.clone(), &settings).await.is_some() || quorum || !settings.is_on()
    }

    /// Take note of the primary's `synchronous_standby_names`; when it
    /// changed, make some WAL so that the standbys just listed can show
    /// they caught up.
    async fn note_ssn(&mut self, primary: &palisade_ha::sync::PrimarySync) {
        let (changed, warning) = self.sync.observe(primary);
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        if changed {
            self.shared.pg.nudge_wal().await;
        }
    }

    /// Carry out `plan` in order, starting from the `sync` key `key`.
    /// Returns the key as it stands afterwards, or `None` when a write of
    /// the key failed (the rest of the plan is dropped).
    async fn run_sync_plan(
        &mut self,
        plan: SyncPlan,
        mut key: SyncState,
        settings: &SyncSettings,
    ) -> Option<SyncState> {
        for step in plan.steps {
            match step {
                SyncStep::WriteSync { leader, standbys, quorum, ok, failed, warn } => {
                    let value = SyncState::to_json(Some(&leader), &standbys, quorum);
                    match self.shared.dcs.set_sync_state_value(value, key.version.clone()).await {
                        Ok(Some(version)) => {
                            key = SyncState {
                                version: Some(version),
                                leader: Some(leader),
                                sync_standby: standbys,
                                quorum,
                            };
                            if let Some(line) = ok {
                                tracing::info!("{line}");
                            }
                        }
                        result => {
                            if let Err(e) = result {
                                tracing::warn!("could not write the sync key: {e}");
                            }
                            log(if warn { Level::Warn } else { Level::Info }, &failed);
                            return None;
                        }
                    }
                }
                SyncStep::DeleteSync => match self.shared.dcs.delete_sync_state(key.version.clone()).await {
                    Ok(true) => key = SyncState::default(),
                    Ok(false) => return None,
                    Err(e) => {
                        tracing::warn!("could not delete the sync key: {e}");
                        return None;
                    }
                },
                SyncStep::SetSsn(value) => {
                    if let Some(v) = &value {
                        tracing::info!("Assigning synchronous_standby_names to {v}");
                    }
                    let strict = value.as_deref() == Some(STRICT_PLACEHOLDER)
                        || value.as_deref().is_some_and(|v| v.contains(STRICT_PLACEHOLDER));
                    match set_names(&self.shared, managed(value, settings)).await {
                        Ok(true) if !strict => {
                            // Patroni gives the reload a moment, then notes the
                            // new value and the position it was set at.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            if let Some(primary) = self.shared.pg.sync_status().await {
                                self.note_ssn(&primary).await;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!("could not set synchronous_standby_names: {e}"),
                    }
                }
                SyncStep::RestoreConfiguredSsn => {
                    if let Err(e) = set_names(&self.shared, SyncNames::Configured).await {
                        tracing::error!("could not set synchronous_standby_names: {e}");
                    }
                }
                SyncStep::Log(level, line) => log(level, &line),
            }
        }
        Some(key)
    }
}

/// Is `me` a synchronous standby of the current leader (Patroni's
/// `is_sync_standby`)?
fn is_sync_standby(cluster: &Cluster, me: &str) -> bool {
    cluster.leader_name().is_some_and(|l| cluster.sync.leader_matches(l)) && cluster.sync.matches(me, false)
}

/// Before stopping or restarting PostgreSQL on a replica in synchronous
/// mode (Patroni's `while_not_sync_standby`): publish `nosync` and wait up
/// to two `loop_wait`s for the leader to pick another synchronous standby,
/// so that commits do not wait for us meanwhile. `true` when `nosync` is
/// published: call [`rejoin_sync_standbys`] once done. Only a hint: a DCS
/// that cannot be read ends the wait.
pub async fn leave_sync_standbys(shared: &Shared) -> bool {
    let cfg = shared.config();
    let me = cfg.local.name.clone();
    if shared.tracked().is_leader() || !cfg.settings().sync.is_on() || palisade_model::Tags(&cfg.local.tags).nosync() {
        return false;
    }
    shared.with_tracked(|t| t.disable_sync += 1);
    if !super::member::touch_member_of(shared).await {
        tracing::warn!("Updating member state failed, skipping synchronous standby disable");
        return true;
    }
    // Patroni's polling_loop(timeout=2 * loop_wait, interval=2).
    let end = std::time::Instant::now() + cfg.global.loop_wait * 2;
    while std::time::Instant::now() < end {
        match shared.dcs.get_cluster().await {
            Ok(c) if !is_sync_standby(&c, &me) => break,
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("Could not get cluster state, skipping synchronous standby disable");
                break;
            }
        }
        tracing::info!("Waiting for primary to release us from synchronous standby");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    true
}

/// The stop or restart is over: this node may be synchronous again (the
/// next member key write says so).
pub fn rejoin_sync_standbys(shared: &Shared) {
    shared.with_tracked(|t| t.disable_sync = t.disable_sync.saturating_sub(1));
}
