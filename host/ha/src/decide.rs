//! The cycle: Patroni's `_run_cycle`, as a pure function.

use palisade_model::{Role, State};

use crate::input::{DataDir, Input, Pg, Rejoin, Task};
use crate::output::{Action, Ask, Decision, DemoteMode, Level, StartAs, Step};

/// A question that must be answered before the decision can go on.
pub(crate) type Q<T> = Result<T, Ask>;

/// Decide what to do this cycle. See the crate documentation.
pub fn decide(input: &Input<'_>) -> Step {
    let mut cx = Ctx { i: *input, pre: Vec::new(), log: Vec::new(), wake_at: None };
    match cx.cycle() {
        Ok(mut d) => {
            let mut actions = std::mem::take(&mut cx.pre);
            actions.append(&mut d.actions);
            d.actions = actions;
            let mut log = std::mem::take(&mut cx.log);
            log.append(&mut d.log);
            d.log = log;
            d.wake_at = d.wake_at.or(cx.wake_at);
            if input.settings.paused {
                d.reason = format!("PAUSE: {}", d.reason);
            }
            Step::Decided(d)
        }
        Err(ask) => Step::Ask(ask),
    }
}

/// Patroni's rule for a usable system identifier: ten digits or more.
pub(crate) fn sysid_valid(sysid: Option<&str>) -> bool {
    sysid.is_some_and(|s| s.len() >= 10 && s.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) struct Ctx<'a> {
    pub i: Input<'a>,
    /// Actions decided before the final branch (they run first).
    pub pre: Vec<Action>,
    pub log: Vec<(Level, String)>,
    pub wake_at: Option<f64>,
}

impl<'a> Ctx<'a> {
    pub fn me(&self) -> &'a str {
        &self.i.me.name
    }

    pub fn paused(&self) -> bool {
        self.i.settings.paused
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.log.push((Level::Info, text.into()));
    }

    pub fn warn(&mut self, text: impl Into<String>) {
        self.log.push((Level::Warn, text.into()));
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.log.push((Level::Error, text.into()));
    }

    pub fn has_lock(&self) -> bool {
        self.i.cluster.leader_name() == Some(self.me())
    }

    pub fn update_lock(&self, update_status: bool) -> Q<bool> {
        self.i.answers.update_lock.ok_or(Ask::UpdateLock { update_status })
    }

    pub fn acquire_lock(&self) -> Q<bool> {
        self.i.answers.acquire_lock.ok_or(Ask::AcquireLock)
    }

    fn initialize(&self) -> Q<bool> {
        self.i.answers.initialize.ok_or(Ask::Initialize)
    }

    fn sync_prepromote(&self) -> Q<bool> {
        self.i.answers.sync_prepromote.ok_or(Ask::SyncPrepromote)
    }

    /// Activate the watchdog unless it is active or off (Patroni's
    /// `not watchdog.is_running and not watchdog.activate()`, inverted).
    fn watchdog_activated(&self) -> Q<bool> {
        if self.i.local.watchdog != crate::WatchdogState::Off && self.i.local.watchdog != crate::WatchdogState::Active {
            return self.i.answers.watchdog_activated.ok_or(Ask::ActivateWatchdog);
        }
        Ok(true)
    }

    pub fn my_position(&self) -> Q<(u64, Option<u32>)> {
        self.i.answers.my_position.ok_or(Ask::MyPosition)
    }

    fn cycle(&mut self) -> Q<Decision> {
        let l = self.i.local;
        let c = self.i.cluster;

        // The cluster has our leader key but no valid initialize key, or no config.
        if self.has_lock() && !sysid_valid(c.initialize.as_deref()) {
            self.pre.push(Action::SetInitializeKey { create_new: c.initialize.is_none() });
        }
        if self.has_lock() && c.config_data().is_empty() {
            self.pre.push(Action::WriteConfig);
        }

        if let Some(task) = l.task {
            return self.long_action_in_progress(task);
        }
        if let Some(d) = self.starting_instance()? {
            return Ok(d);
        }
        if l.bootstrapping {
            return self.post_bootstrap();
        }
        if let Some(d) = self.post_recover()? {
            return Ok(d);
        }

        match &l.data_dir {
            DataDir::Empty | DataDir::Inaccessible(_) => return self.empty_data_dir(),
            DataDir::Initialized { sysid } => {
                if let Some(d) = self.check_system_id(sysid.as_deref()) {
                    return Ok(d);
                }
            }
        }

        match l.pg {
            Pg::Stopped => {
                if self.paused() {
                    if matches!(l.state, State::Running | State::Starting) {
                        self.pre.push(Action::MarkStopped);
                    }
                    if self.has_lock() {
                        return Ok(Decision::new("removed leader lock because postgres is not running")
                            .with(Action::ReleaseLeaderKey));
                    }
                    return Ok(Decision::new("postgres is not running"));
                }
                if matches!(l.state, State::Running | State::Starting) {
                    self.pre.push(Action::MarkCrashed);
                }
                return self.recover();
            }
            Pg::Starting => return self.not_accepting_connections(),
            Pg::Running { .. } => {}
        }

        let mut d = if c.is_unlocked() {
            self.unhealthy_cluster()?
        } else {
            let d = self.healthy_cluster()?;
            let busy = d.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Demote(_) | Action::Promote | Action::Start(_) | Action::Clone { .. } | Action::Bootstrap
                )
            });
            match self.scheduled_restart().filter(|_| !busy) {
                Some(mut restart) => {
                    restart.actions.splice(0..0, d.actions);
                    restart.log.splice(0..0, d.log);
                    restart
                }
                None => d,
            }
        };
        if !l.on_start_called && l.task.is_none() {
            d.actions.push(Action::CallbackOnStart);
        }
        Ok(d)
    }

    /// A background action is running: keep the lock, or stop what must not
    /// go on without it.
    fn long_action_in_progress(&mut self, task: Task) -> Q<Decision> {
        let l = self.i.local;
        if self.has_lock() && self.update_lock(false)? {
            // Crash recovery counts against primary_start_timeout, as a
            // start does (Patroni's `handle_long_action_in_progress`).
            if let (Task::CrashRecovery, Some(elapsed)) = (task, l.rewind.crash_recovery_elapsed) {
                if self.i.settings.primary_start_timeout - elapsed <= 0.0 && self.failover_possible(0, false)? {
                    self.info("Demoting self because crash recovery is taking too long");
                    return Ok(Decision::new("terminated crash recovery because of startup timeout")
                        .with(Action::CancelTask)
                        .with(Action::Demote(DemoteMode::Immediate)));
                }
            }
            return Ok(Decision::new(format!("updated leader lock during {}", task.describe())));
        }
        if !l.bootstrapping && !self.paused() {
            if task == Task::Promote {
                return Ok(Decision::new("lost leader before promote").with(Action::CancelTask));
            }
            // Crash recovery and pg_rewind run with no postmaster: there
            // is no primary to stop, and stopping them would only break
            // the data directory they work on.
            if l.role == Role::Primary && !matches!(task, Task::Demote | Task::CrashRecovery | Task::Rewind) {
                self.info(format!("Demoting primary during {}", task.describe()));
                return Ok(Decision::new(format!("lost leader lock during {}", task.describe()))
                    .with(Action::CancelTask)
                    .with(Action::Demote(DemoteMode::ImmediateNolock)));
            }
        }
        if self.i.cluster.is_unlocked() {
            self.info("not healthy enough for leader race");
        }
        Ok(Decision::new(format!("{} in progress", task.describe())))
    }

    /// PostgreSQL was started by us and is not accepting connections yet.
    fn starting_instance(&mut self) -> Q<Option<Decision>> {
        let l = self.i.local;
        if l.state != State::Starting || self.paused() || l.pg != Pg::Starting {
            return Ok(None);
        }
        if !self.has_lock() {
            self.info("Still starting up as a standby.");
            return Ok(None);
        }
        if !self.update_lock(false)? {
            self.info("Lost lock while starting up. Demoting self.");
            return Ok(Some(
                Decision::new("stopped PostgreSQL while starting up because leader key was lost")
                    .with(Action::Demote(DemoteMode::ImmediateNolock)),
            ));
        }
        let time_left = self.i.settings.primary_start_timeout - l.time_in_state;
        if time_left <= 0.0 {
            if self.failover_possible(0, false)? {
                self.info("Demoting self because primary startup is taking too long");
                return Ok(Some(
                    Decision::new("stopped PostgreSQL because of startup timeout")
                        .with(Action::Demote(DemoteMode::Immediate)),
                ));
            }
            return Ok(Some(Decision::new(
                "primary start has timed out, but continuing to wait because failover is not possible",
            )));
        }
        if let Some(d) = self.manual_failover_from_leader()? {
            return Ok(Some(d));
        }
        Ok(Some(Decision::new(format!("PostgreSQL is still starting up, {time_left:.0} seconds until timeout"))))
    }

    /// The postmaster is up but refuses connections outside a start we
    /// made (a crash restart, a long recovery): keep or give up the lock.
    fn not_accepting_connections(&mut self) -> Q<Decision> {
        if self.has_lock() && !self.update_lock(false)? {
            self.error("failed to update leader lock");
            return Ok(Decision::new("demoted self because failed to update leader lock in DCS")
                .with(Action::Demote(DemoteMode::ImmediateNolock)));
        }
        Ok(Decision::new("Error communicating with PostgreSQL. Will try again later"))
    }

    fn post_bootstrap(&mut self) -> Q<Decision> {
        let l = self.i.local;
        match l.finished {
            Some((Task::PostBootstrap, true)) => {
                if !self.watchdog_activated()? {
                    self.error("Cancelling bootstrap because watchdog activation failed");
                    return Ok(Decision::new("removing initialize key after failed attempt to bootstrap the cluster")
                        .with(Action::CancelBootstrap));
                }
                return Ok(Decision::new("initialized a new cluster")
                    .with(Action::CompleteBootstrap)
                    .with(Action::CallbackOnStart));
            }
            // A standby cluster's leader is not a primary: no post_bootstrap
            // (Patroni marks it as done when the clone finishes).
            Some((Task::BootstrapStandbyLeader, true)) if l.pg.is_running() || l.pg == Pg::Starting => {
                return Ok(Decision::new("initialized a new cluster")
                    .with(Action::CompleteBootstrap)
                    .with(Action::CallbackOnStart));
            }
            Some((Task::Bootstrap | Task::PostBootstrap, false) | (Task::BootstrapStandbyLeader, _)) => {
                return Ok(Decision::new("removing initialize key after failed attempt to bootstrap the cluster")
                    .with(Action::CancelBootstrap));
            }
            _ => {}
        }
        if !l.pg.is_running() && l.pg != Pg::Starting {
            return Ok(Decision::new("removing initialize key after failed attempt to bootstrap the cluster")
                .with(Action::CancelBootstrap));
        }
        if self.i.settings.standby_cluster && l.role == Role::StandbyLeader && l.task.is_none() {
            // The clone and the start succeeded (only they set this role),
            // whether or not this cycle saw the task's result.
            return Ok(Decision::new("initialized a new cluster")
                .with(Action::CompleteBootstrap)
                .with(Action::CallbackOnStart));
        }
        if !l.pg.is_primary() {
            return Ok(Decision::new("waiting for end of recovery after bootstrap"));
        }
        Ok(Decision::new("running post_bootstrap").with(Action::SetRole(Role::Primary)).with(Action::PostBootstrap))
    }

    /// A start we made has finished: did PostgreSQL come up?
    fn post_recover(&mut self) -> Q<Option<Decision>> {
        let l = self.i.local;
        if !matches!(l.finished, Some((Task::Start, _))) || l.pg.is_running() || l.pg == Pg::Starting {
            return Ok(None);
        }
        if self.has_lock() {
            let mut d = Decision::new("removed leader key after trying and failing to start postgres");
            if matches!(l.role, Role::Primary | Role::StandbyLeader) {
                d = d.with(Action::SetRole(Role::Demoted));
            }
            return Ok(Some(d.with(Action::ReleaseLeaderKey)));
        }
        Ok(Some(Decision::new("failed to start postgres")))
    }

    fn empty_data_dir(&mut self) -> Q<Decision> {
        let l = self.i.local;
        if l.role != Role::Uninitialized {
            self.pre.push(Action::SetRole(Role::Uninitialized));
        }
        if l.pg != Pg::Stopped {
            self.pre.push(Action::StopImmediate);
        }
        let (accessible, problem) = match &l.data_dir {
            DataDir::Inaccessible(e) => (false, e.clone()),
            _ => (true, String::new()),
        };
        if self.has_lock() {
            return Ok(Decision::new(format!(
                "released leader key voluntarily as data dir {} and currently leader",
                if accessible { "empty" } else { "not accessible" }
            ))
            .with(Action::ReleaseLeaderKey));
        }
        if !accessible {
            return Ok(Decision::new(format!("data directory is not accessible: {problem}")));
        }
        if self.paused() {
            return Ok(Decision::new("running with empty data directory"));
        }
        self.bootstrap()
    }

    /// A new node: initialise the cluster, or copy it from a member.
    fn bootstrap(&mut self) -> Q<Decision> {
        let c = self.i.cluster;
        let me = self.i.me;
        if c.is_unlocked() && c.initialize.is_none() && !me.tags().nofailover() && me.can_bootstrap {
            if self.initialize()? {
                if self.i.settings.standby_cluster {
                    return Ok(
                        Decision::new("trying to bootstrap a new standby leader").with(Action::BootstrapStandbyLeader)
                    );
                }
                return Ok(Decision::new("trying to bootstrap a new cluster").with(Action::Bootstrap));
            }
            return Ok(Decision::new("failed to acquire initialize lock"));
        }
        if !c.is_unlocked() {
            // Patroni picks a clonefrom member at random; the name's length
            // spreads choices between nodes without a random source.
            if let Some(m) = c.clone_member(self.me(), self.me().len()) {
                let role = if Some(m.name.as_str()) == c.leader_name() { "leader" } else { "replica" };
                return Ok(Decision::new(format!("trying to bootstrap from {role} '{}'", m.name))
                    .with(Action::Clone { from: Some(m.name.clone()) }));
            }
        }
        let concurrent_bootstrap = c.initialize.as_deref() == Some("");
        if me.can_clone_without_leader && !concurrent_bootstrap {
            return Ok(Decision::new("trying to bootstrap (without leader)").with(Action::Clone { from: None }));
        }
        let standby = if self.i.settings.standby_cluster { "standby_" } else { "" };
        Ok(Decision::new(format!("waiting for {standby}leader to bootstrap")))
    }

    /// Check the data directory belongs to this cluster.
    fn check_system_id(&mut self, sysid: Option<&str>) -> Option<Decision> {
        let c = self.i.cluster;
        let l = self.i.local;
        if !sysid_valid(sysid) {
            return Some(Decision::new(
                "data dir for the cluster is not empty, but system ID is invalid; consider doing reinitialize",
            ));
        }
        let sysid = sysid.unwrap_or_default();
        if sysid_valid(c.initialize.as_deref()) {
            let initialize = c.initialize.as_deref().unwrap_or_default();
            if initialize != sysid {
                if self.paused() {
                    self.warn(format!(
                        "system ID has changed while in paused mode. Palisade will exit when resuming unless system \
                         ID is reset: {initialize} != {sysid}"
                    ));
                    if self.has_lock() {
                        return Some(
                            Decision::new("released leader key voluntarily due to the system ID mismatch")
                                .with(Action::ReleaseLeaderKey),
                        );
                    }
                } else {
                    let msg = format!(
                        "system ID mismatch, node {} belongs to a different cluster: {initialize} != {sysid}",
                        self.me()
                    );
                    return Some(Decision::new(msg.clone()).with(Action::Fatal(msg)));
                }
            }
        } else if c.is_unlocked() && !self.paused() && !l.on_start_called {
            if l.pg.is_running() && !l.pg.is_primary() {
                // Patroni's two ERROR lines (the second is the fatal one).
                let first = "No initialize key in DCS and PostgreSQL is running as replica, aborting start";
                self.error(first);
                let msg = "Please first start palisade on the node running as primary";
                return Some(Decision::new(first).with(Action::Fatal(msg.to_string())));
            }
            self.pre.push(Action::SetInitializeKey { create_new: c.initialize.is_none() });
        }
        None
    }

    /// PostgreSQL is not running: start it in the right role.
    fn recover(&mut self) -> Q<Decision> {
        let l = self.i.local;
        let mut keep_primary = false;
        if self.has_lock() && self.update_lock(false)? {
            if self.i.settings.primary_start_timeout == 0.0 && self.failover_possible(0, false)? {
                self.info("Primary crashed. Failing over.");
                return Ok(Decision::new("stopped PostgreSQL to fail over after a crash")
                    .with(Action::Demote(DemoteMode::Immediate)));
            }
            keep_primary = true;
        }
        let state = l.cluster_state.as_deref();
        if keep_primary
            && matches!(state, Some("in production" | "in crash recovery" | "shutting down" | "shut down"))
            && l.state == State::Crashed
            && l.role == Role::Primary
            && !l.standby_signal
        {
            return Ok(Decision::new("starting primary after failure").with(Action::Start(StartAs::Primary)));
        }
        if let Some(d) = self.crash_recovery_first() {
            return Ok(d);
        }

        let standby_cluster = self.i.settings.standby_cluster;
        if self.has_lock() && !standby_cluster {
            return Ok(Decision::new("starting as readonly because i had the session lock")
                .with(Action::Start(StartAs::Replica { follow: None })));
        }

        let follow = self.node_to_follow();
        if let Some(d) = self.rewind_or_reinitialize() {
            return Ok(d);
        }
        match &l.rejoin {
            Rejoin::Free => {}
            Rejoin::Wait(why) => {
                return Ok(Decision::new(format!("waiting before rejoining the cluster as a replica: {why}")));
            }
            Rejoin::Diverged(why) => {
                self.error(format!("cannot rejoin the cluster as a replica: {why}"));
                return Ok(Decision::new(
                    "not starting PostgreSQL: its timeline diverged from the leader's; pg_rewind or reinitialize \
                     is needed",
                ));
            }
        }
        if self.has_lock() {
            return Ok(Decision::new("starting as a standby leader because i had the session lock")
                .with(Action::Start(StartAs::Remote { standby_leader: true })));
        }
        if standby_cluster && self.i.cluster.is_unlocked() {
            return Ok(Decision::new("trying to follow a remote member because standby cluster is unhealthy")
                .with(Action::Start(StartAs::Remote { standby_leader: false })));
        }
        Ok(Decision::new("starting as a secondary").with(Action::Start(StartAs::Replica { follow })))
    }

    /// Healthy cluster: somebody holds the lock.
    fn healthy_cluster(&mut self) -> Q<Decision> {
        let me = self.me();
        let l = self.i.local;
        let c = self.i.cluster;
        let standby_cluster = self.i.settings.standby_cluster;
        if self.has_lock() {
            if self.paused() && !l.pg.is_primary() {
                if c.failover.as_ref().and_then(|f| f.candidate.as_deref()) == Some(me) {
                    return Ok(Decision::new("waiting to become primary after promote..."));
                }
                if !standby_cluster {
                    return Ok(Decision::new("removed leader lock because postgres is not running as primary")
                        .with(Action::ReleaseLeaderKey));
                }
            }
            if self.update_lock(true)? {
                if let Some(d) = self.manual_failover_from_leader()? {
                    return Ok(d);
                }
                if standby_cluster {
                    // Nothing to enforce: the leader of a standby cluster is
                    // not a primary. Remind the role.
                    let message = if l.role == Role::StandbyLeader {
                        format!("no action. I am ({me}), the standby leader with the lock")
                    } else {
                        "promoted self to a standby leader because i had the session lock".to_string()
                    };
                    return self.follow("cannot be a real primary in standby cluster", &message);
                }
                return self.enforce_primary_role(
                    &format!("no action. I am ({me}), the leader with the lock"),
                    "promoted self to leader because I had the session lock",
                );
            }
            self.error("failed to update leader lock");
            if l.pg.is_primary() {
                if self.paused() {
                    return Ok(Decision::new("continue to run as primary after failing to update leader lock in DCS"));
                }
                return Ok(Decision::new("demoted self because failed to update leader lock in DCS")
                    .with(Action::Demote(DemoteMode::ImmediateNolock)));
            }
            return Ok(Decision::new("not promoting because failed to update leader lock in DCS"));
        }
        let owner = c.leader_name().unwrap_or_default().to_string();
        if standby_cluster {
            return self.follow(
                "cannot be a real primary in a standby cluster",
                &format!("no action. I am ({me}), a secondary, and following a standby leader ({owner})"),
            );
        }
        self.follow(
            "demoting self because I do not have the lock and I was a leader",
            &format!("no action. I am ({me}), a secondary, and following a leader ({owner})"),
        )
    }

    /// No leader: race for the lock if we are the healthiest node.
    fn unhealthy_cluster(&mut self) -> Q<Decision> {
        let c = self.i.cluster;
        if self.is_healthiest_node()? {
            // Unlike Patroni, a node arms its watchdog before it takes the
            // lock, not after: one whose required watchdog cannot be armed
            // never holds the lock, even for a cycle. A device armed for a
            // race that is then lost is closed at the end of the cycle.
            if !self.paused() && !self.i.settings.standby_cluster && !self.watchdog_activated()? {
                return self.follow(
                    "demoting self because watchdog could not be activated",
                    "Not promoting self because watchdog could not be activated",
                );
            }
            if self.acquire_lock()? {
                if let Some(f) = &c.failover {
                    if self.paused() && f.leader.is_some() && f.candidate.is_some() {
                        self.info("Updating failover key after acquiring leader lock...");
                        self.pre.push(Action::WriteFailoverKey {
                            leader: None,
                            candidate: f.candidate.clone(),
                            keep_schedule: true,
                        });
                    } else {
                        self.info("Cleaning up failover key after acquiring leader lock...");
                        self.pre.push(Action::WriteFailoverKey { leader: None, candidate: None, keep_schedule: false });
                    }
                }
                if self.i.settings.standby_cluster {
                    // The standby leader is gone and we are the healthiest
                    // replica: we follow the remote primary from now on.
                    return self.follow(
                        "cannot be a real primary in standby cluster",
                        "promoted self to a standby leader by acquiring session lock",
                    );
                }
                return self.enforce_primary_role(
                    "acquired session lock as a leader",
                    "promoted self to leader by acquiring session lock",
                );
            }
            return self.follow(
                "demoted self after trying and failing to obtain lock",
                "following new leader after trying and failing to obtain lock",
            );
        }
        if self.i.me.tags().nofailover() {
            return self.follow(
                "demoting self because I am not allowed to become primary",
                "following a different leader because I am not allowed to promote",
            );
        }
        self.follow(
            "demoting self because i am not the healthiest node",
            "following a different leader because i am not the healthiest node",
        )
    }

    /// We hold the lock: make sure PostgreSQL is the primary.
    fn enforce_primary_role(&mut self, message: &str, promote_message: &str) -> Q<Decision> {
        let l = self.i.local;
        if !self.paused() && !self.watchdog_activated()? {
            if l.pg.is_primary() {
                return Ok(Decision::new("Demoting self because watchdog could not be activated")
                    .with(Action::Demote(DemoteMode::Immediate)));
            }
            return Ok(Decision::new("Not promoting self because watchdog could not be activated")
                .with(Action::ReleaseLeaderKey));
        }
        if !self.paused() && l.finished == Some((Task::Promote, false)) {
            self.warn("Releasing the leader key voluntarily because the pre-promote script failed");
            return Ok(Decision::new("Promotion cancelled because the pre-promote script failed")
                .with(Action::ReleaseLeaderKey));
        }
        if l.pg.is_primary() {
            let mut d = Decision::new(message);
            if l.role != Role::Primary {
                d = d.with(Action::SetRole(Role::Primary));
            }
            return Ok(d.with(Action::SyncReplication).with(Action::UpdateHistory));
        }
        if matches!(l.role, Role::Primary | Role::Promoted) {
            return Ok(Decision::new(message).with(Action::SyncReplication));
        }
        if !self.sync_prepromote()? {
            return Ok(Decision::new(
                "Postponing promotion because synchronous replication state was updated by somebody else",
            ));
        }
        Ok(Decision::new(promote_message).with(Action::Promote))
    }
}
