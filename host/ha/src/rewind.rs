//! Rejoining after a failover: crash recovery in single-user mode, pg_rewind
//! from the leader, or a new copy of the data directory, in the order of
//! Patroni 4.1's `recover` and `_handle_rewind_or_reinitialize`.
//!
//! Where Patroni would start PostgreSQL from a data directory that still
//! diverges from the leader (a failed pg_rewind without the settings that
//! allow a new copy, its issues #3652 and #3648), Palisade keeps it stopped
//! and says why at ERROR; whenever the settings allow a new copy, it makes
//! one.

use crate::decide::Ctx;
use crate::input::Rejoin;
use crate::output::{Action, Decision};

/// pg_control states of a data directory whose server was running as a
/// primary when it stopped without a clean shutdown.
fn crashed_as_primary(state: Option<&str>) -> bool {
    matches!(state, Some("in production" | "shutting down" | "in crash recovery"))
}

impl Ctx<'_> {
    /// Before anything else looks at a data directory that was not shut
    /// down cleanly: crash recovery in single-user mode, once, when pg_rewind
    /// may be needed (Patroni's `_handle_crash_recovery` in `recover`).
    ///
    /// Patroni also runs it when the cluster has no leader. Palisade does
    /// not without pg_rewind: the shutdown checkpoint it writes lands past
    /// the switch point of whichever member wins the race, and a node
    /// without pg_rewind could then never rejoin; started as a standby
    /// instead, PostgreSQL recovers it and it follows the winner.
    pub(crate) fn crash_recovery_first(&mut self) -> Option<Decision> {
        let l = self.i.local;
        if !crashed_as_primary(l.cluster_state.as_deref()) {
            return None;
        }
        if l.rewind.backup_label {
            self.info(
                "Skipping single-user crash recovery because backup_label exists; PostgreSQL will handle it during \
                 normal startup",
            );
            return None;
        }
        self.crash_recovery_once(l.rewind.can_rewind)
    }

    fn crash_recovery_once(&self, wanted: bool) -> Option<Decision> {
        (wanted && !self.i.local.rewind.crash_recovery_done)
            .then(|| Decision::new("doing crash recovery in a single user mode").with(Action::CrashRecovery))
    }

    /// A stopped data directory that is to follow the leader: rewind it,
    /// copy it again, or keep it stopped (Patroni's
    /// `_handle_rewind_or_reinitialize`). `None`: nothing stands in the way
    /// of starting it as a replica, or the caller reports why it waits.
    pub(crate) fn rewind_or_reinitialize(&mut self) -> Option<Decision> {
        let l = self.i.local;
        let leader = self.i.cluster.leader_name().filter(|n| *n != self.me())?.to_string();
        let r = &l.rewind;
        let allowed = [
            ("remove_data_directory_on_rewind_failure", r.remove_on_rewind_failure),
            ("remove_data_directory_on_diverged_timelines", r.remove_on_diverged),
        ];
        if r.failed {
            // pg_rewind ran and failed: its target is not to be trusted
            // any more, whatever the leader's state was.
            if let Some((name, _)) = allowed.iter().find(|(_, on)| *on) {
                self.warn(format!("{name} is set. removing..."));
                return Some(Decision::new("reinitializing after a failed pg_rewind").with(Action::Reinitialize));
            }
            self.error(format!(
                "pg_rewind from {leader} failed, and neither remove_data_directory_on_rewind_failure nor \
                 remove_data_directory_on_diverged_timelines is set: PostgreSQL stays stopped; reinitialize this \
                 member (palisadectl reinit) or set one of them"
            ));
            return Some(Decision::new("not starting PostgreSQL: pg_rewind failed"));
        }
        let Rejoin::Diverged(why) = &l.rejoin else {
            return None;
        };
        if r.can_rewind {
            self.info(why.clone());
            // A former replica that crashed: pg_rewind needs a clean shutdown.
            if l.cluster_state.as_deref() == Some("in archive recovery") {
                if let Some(d) = self.crash_recovery_once(true) {
                    return Some(d);
                }
            }
            return Some(
                Decision::new(format!("running pg_rewind from {leader}")).with(Action::Rewind { from: leader }),
            );
        }
        if r.remove_on_diverged {
            self.info(why.clone());
            return Some(Decision::new("reinitializing due to diverged timelines").with(Action::Reinitialize));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use palisade_model::{Cluster, Role, State};

    use crate::input::{Answers, DataDir, Input, Local, Me, RewindState, Settings};
    use crate::output::{Action, Level, StartAs, Step};
    use crate::{decide, Rejoin};

    fn cluster(leader: Option<&str>) -> Cluster {
        let mut c = Cluster { initialize: Some("7000000000000000001".into()), ..Cluster::default() };
        for name in ["n1", "n2"] {
            let m = palisade_model::Member::from_value(
                name,
                "1",
                "",
                r#"{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","role":"replica","state":"running","version":"4.1.0"}"#,
            )
            .unwrap();
            c.members.push(m);
        }
        if let Some(l) = leader {
            c.leader = Some(palisade_model::Leader { name: l.into(), version: "1".into(), session: String::new() });
        }
        c
    }

    /// A former primary (n1) that stopped, with the leader n2 (or none).
    fn stopped(state: &str, rejoin: Rejoin, rewind: RewindState) -> Local {
        Local {
            data_dir: DataDir::Initialized { sysid: Some("7000000000000000001".into()) },
            cluster_state: Some(state.into()),
            role: Role::Primary,
            state: State::Crashed,
            rejoin,
            rewind,
            ..Local::default()
        }
    }

    fn run(local: &Local, leader: Option<&str>) -> (Vec<Action>, String, Vec<(Level, String)>) {
        let me = Me { name: "n1".into(), can_bootstrap: true, ..Me::default() };
        let settings = Settings::default();
        let c = cluster(leader);
        let answers = Answers { acquire_lock: Some(false), ..Answers::default() };
        let input = Input {
            now: 1000.0,
            me: &me,
            settings: &settings,
            cluster: &c,
            old_members: &[],
            old_leader: None,
            local,
            scheduled_restart: None,
            answers: &answers,
        };
        match decide(&input) {
            Step::Decided(d) => (d.actions, d.reason, d.log),
            Step::Ask(a) => panic!("unexpected question {a:?}"),
        }
    }

    fn diverged() -> Rejoin {
        Rejoin::Diverged("local timeline 1 LSN 0/5000000 is ahead of the switch point".into())
    }

    fn rw(can_rewind: bool, on_failure: bool, on_diverged: bool) -> RewindState {
        RewindState {
            can_rewind,
            remove_on_rewind_failure: on_failure,
            remove_on_diverged: on_diverged,
            ..RewindState::default()
        }
    }

    #[test]
    fn rejoin_table() {
        let start = Action::Start(StartAs::Replica { follow: Some("n2".into()) });
        let rewind = Action::Rewind { from: "n2".into() };
        let done = |mut r: RewindState| {
            r.crash_recovery_done = true;
            r
        };
        let failed = |mut r: RewindState| {
            r.failed = true;
            r.crash_recovery_done = true;
            r
        };
        #[rustfmt::skip]
        type Case<'a> = (&'a str, Local, Option<&'a str>, Vec<Action>, &'a str);
        let cases: Vec<Case> = vec![
            (
                "crashed primary, pg_rewind possible: crash recovery first",
                stopped("in production", Rejoin::Free, rw(true, false, false)),
                Some("n2"),
                vec![Action::CrashRecovery],
                "doing crash recovery in a single user mode",
            ),
            (
                "crashed primary, no leader, pg_rewind possible: crash recovery",
                stopped("in production", Rejoin::Free, rw(true, false, false)),
                None,
                vec![Action::CrashRecovery],
                "doing crash recovery in a single user mode",
            ),
            (
                "crashed primary, no leader, no pg_rewind: PostgreSQL recovers it as a standby (Patroni runs crash recovery)",
                stopped("in production", Rejoin::Free, rw(false, false, true)),
                None,
                vec![Action::Start(StartAs::Replica { follow: None })],
                "starting as a secondary",
            ),
            (
                "crashed primary, a leader, no pg_rewind: no crash recovery, starts when not diverged",
                stopped("in production", Rejoin::Free, rw(false, false, true)),
                Some("n2"),
                vec![start.clone()],
                "starting as a secondary",
            ),
            (
                "crash recovery is done once, even when it failed",
                stopped("in crash recovery", Rejoin::Free, done(rw(true, false, false))),
                Some("n2"),
                vec![start.clone()],
                "starting as a secondary",
            ),
            (
                "a restored backup is left to PostgreSQL",
                stopped("in production", Rejoin::Free, RewindState { backup_label: true, ..rw(true, false, false) }),
                Some("n2"),
                vec![start.clone()],
                "starting as a secondary",
            ),
            (
                "after crash recovery, diverged: pg_rewind from the leader",
                stopped("shut down", diverged(), done(rw(true, false, false))),
                Some("n2"),
                vec![rewind.clone()],
                "running pg_rewind from n2",
            ),
            (
                "a cleanly stopped former primary that diverged: pg_rewind at once",
                stopped("shut down", diverged(), rw(true, true, true)),
                Some("n2"),
                vec![rewind.clone()],
                "running pg_rewind from n2",
            ),
            (
                "a crashed replica that diverged: crash recovery before pg_rewind",
                stopped("in archive recovery", diverged(), rw(true, false, false)),
                Some("n2"),
                vec![Action::CrashRecovery],
                "doing crash recovery in a single user mode",
            ),
            (
                "a crashed replica after crash recovery: pg_rewind",
                stopped("in archive recovery", diverged(), done(rw(true, false, false))),
                Some("n2"),
                vec![rewind.clone()],
                "running pg_rewind from n2",
            ),
            (
                "only behind: never rewound",
                stopped("shut down", Rejoin::Free, rw(true, true, true)),
                Some("n2"),
                vec![start.clone()],
                "starting as a secondary",
            ),
            (
                "diverged without pg_rewind, new copy allowed: reinitialize",
                stopped("shut down", diverged(), rw(false, false, true)),
                Some("n2"),
                vec![Action::Reinitialize],
                "reinitializing due to diverged timelines",
            ),
            (
                "diverged, only remove_on_rewind_failure: nothing to rewind with, stays stopped",
                stopped("shut down", diverged(), rw(false, true, false)),
                Some("n2"),
                vec![],
                "not starting PostgreSQL: its timeline diverged from the leader's; pg_rewind or reinitialize is needed",
            ),
            (
                "pg_rewind failed, remove_on_rewind_failure: reinitialize",
                stopped("shut down", diverged(), failed(rw(true, true, false))),
                Some("n2"),
                vec![Action::Reinitialize],
                "reinitializing after a failed pg_rewind",
            ),
            (
                "pg_rewind failed, remove_on_diverged: reinitialize",
                stopped("shut down", diverged(), failed(rw(true, false, true))),
                Some("n2"),
                vec![Action::Reinitialize],
                "reinitializing after a failed pg_rewind",
            ),
            (
                "pg_rewind failed, nothing allowed: stays stopped (Patroni would start it)",
                stopped("shut down", diverged(), failed(rw(true, false, false))),
                Some("n2"),
                vec![],
                "not starting PostgreSQL: pg_rewind failed",
            ),
            (
                "pg_rewind failed, the settings allow a copy later: reinitialize then",
                stopped("in archive recovery", Rejoin::Free, failed(rw(false, false, true))),
                Some("n2"),
                vec![Action::Reinitialize],
                "reinitializing after a failed pg_rewind",
            ),
            (
                "waiting for the leader's history: no rewind yet",
                stopped("shut down", Rejoin::Wait("no history".into()), rw(true, true, true)),
                Some("n2"),
                vec![],
                "waiting before rejoining the cluster as a replica: no history",
            ),
        ];
        for (name, local, leader, want_actions, want_reason) in cases {
            let (actions, reason, _) = run(&local, leader);
            let actions: Vec<Action> = actions.into_iter().filter(|a| !matches!(a, Action::MarkCrashed)).collect();
            assert_eq!(reason, want_reason, "{name}");
            assert_eq!(actions, want_actions, "{name}");
        }
    }

    #[test]
    fn running_replicas_and_tasks() {
        let running = |rejoin: Rejoin, rewind: RewindState| Local {
            data_dir: DataDir::Initialized { sysid: Some("7000000000000000001".into()) },
            pg: crate::Pg::Running { in_recovery: true, timeline: Some(1), wal_position: 5 },
            role: Role::Replica,
            state: State::Running,
            following: Some("n2".into()),
            on_start_called: true,
            rejoin,
            rewind,
            ..Local::default()
        };
        // A replica that replayed past the switch point: rewound (the task
        // stops it first), or copied again; one that is only behind follows.
        let (a, reason, _) = run(&running(diverged(), rw(true, false, false)), Some("n2"));
        assert_eq!((a, reason.as_str()), (vec![Action::Rewind { from: "n2".into() }], "running pg_rewind from n2"));
        let (a, reason, _) = run(&running(diverged(), rw(false, false, true)), Some("n2"));
        assert_eq!((a, reason.as_str()), (vec![Action::Reinitialize], "reinitializing due to diverged timelines"));
        let (a, reason, _) = run(&running(Rejoin::Free, rw(true, true, true)), Some("n2"));
        assert_eq!(a, vec![]);
        assert_eq!(reason, "no action. I am (n1), a secondary, and following a leader (n2)");
        // Crash recovery and pg_rewind are never cancelled to demote: there
        // is no postmaster to stop.
        for task in [crate::Task::CrashRecovery, crate::Task::Rewind] {
            let l = Local { task: Some(task), ..stopped("in production", Rejoin::Free, rw(true, false, false)) };
            let (a, reason, _) = run(&l, Some("n2"));
            assert_eq!(a, vec![], "{task:?}");
            assert_eq!(reason, format!("{} in progress", task.describe()));
        }
    }

    /// With the lock, crash recovery counts against primary_start_timeout.
    #[test]
    fn crash_recovery_past_primary_start_timeout() {
        let me = Me { name: "n1".into(), can_bootstrap: true, ..Me::default() };
        let settings = Settings { primary_start_timeout: 300.0, ..Settings::default() };
        let c = cluster(Some("n1"));
        let mut peers = std::collections::BTreeMap::new();
        let body = serde_json::json!({"role": "replica", "xlog": {"received_location": 100, "replayed_location": 100}});
        peers.insert("n2".to_string(), crate::PeerStatus::from_api_response("n2", &body));
        let answers = Answers { update_lock: Some(true), peers, ..Answers::default() };
        let decide_with = |elapsed: Option<f64>| {
            let rewind = RewindState { crash_recovery_elapsed: elapsed, ..rw(true, false, false) };
            let local =
                Local { task: Some(crate::Task::CrashRecovery), ..stopped("in production", Rejoin::Free, rewind) };
            let input = Input {
                now: 1000.0,
                me: &me,
                settings: &settings,
                cluster: &c,
                old_members: &[],
                old_leader: None,
                local: &local,
                scheduled_restart: None,
                answers: &answers,
            };
            match decide(&input) {
                // (The snapshot has no `config` key: the leader writes it.)
                Step::Decided(d) => (d.actions.into_iter().filter(|a| *a != Action::WriteConfig).collect(), d.reason),
                Step::Ask(a) => panic!("unexpected question {a:?}"),
            }
        };
        assert_eq!(
            decide_with(Some(301.0)),
            (
                vec![Action::CancelTask, Action::Demote(crate::DemoteMode::Immediate)],
                "terminated crash recovery because of startup timeout".to_string()
            )
        );
        for elapsed in [Some(299.0), None] {
            assert_eq!(
                decide_with(elapsed),
                (vec![], "updated leader lock during doing crash recovery in a single user mode".to_string()),
                "{elapsed:?}"
            );
        }
    }

    #[test]
    fn log_lines() {
        let (_, _, log) =
            run(&stopped("shut down", diverged(), RewindState { failed: true, ..rw(true, false, false) }), Some("n2"));
        assert!(
            log.iter()
                .any(|(l, t)| *l == Level::Error && t.contains("neither remove_data_directory_on_rewind_failure")),
            "{log:?}"
        );
        let (_, _, log) =
            run(&stopped("shut down", diverged(), RewindState { failed: true, ..rw(true, true, false) }), Some("n2"));
        assert!(
            log.contains(&(Level::Warn, "remove_data_directory_on_rewind_failure is set. removing...".into())),
            "{log:?}"
        );
        let (_, _, log) = run(
            &stopped("in production", Rejoin::Free, RewindState { backup_label: true, ..rw(true, false, false) }),
            Some("n2"),
        );
        assert!(log.iter().any(|(_, t)| t.starts_with("Skipping single-user crash recovery")), "{log:?}");
    }
}
