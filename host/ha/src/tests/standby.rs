//! Standby clusters: every decision that differs when `standby_cluster`
//! is set (Patroni's `is_standby_cluster` branches of `ha.py`).

use super::*;

fn standby(mut c: Case) -> Case {
    c.settings.standby_cluster = true;
    c
}

fn standby_leader_running() -> Local {
    Local { role: Role::StandbyLeader, following: None, following_remote: true, ..running_replica(1000) }
}

fn standby_cases() -> Vec<Case> {
    let two = |leader: Option<&str>| {
        cluster(leader, vec![member("n1", "standby_leader", 1000, json!({})), member("n2", "replica", 1000, json!({}))])
    };
    let empty = || Cluster { initialize: None, config: None, history: None, ..cluster(None, vec![]) };
    vec![
        standby(case(
            "the initialize winner bootstraps a standby leader by cloning the remote primary",
            empty(),
            Local::default(),
            "trying to bootstrap a new standby leader",
            vec![Action::BootstrapStandbyLeader],
        )),
        standby(case(
            "without a standby leader a new node waits (Patroni's words)",
            Cluster { initialize: Some(String::new()), ..empty() },
            Local::default(),
            "waiting for standby_leader to bootstrap",
            vec![],
        )),
        standby(case(
            "a new node of a standby cluster copies the standby leader",
            two(Some("n1")),
            Local::default(),
            "trying to bootstrap from leader 'n1'",
            vec![Action::Clone { from: Some("n1".into()) }],
        )),
        standby(case(
            "the clone finished: publish the cluster and take the lock, no post_bootstrap",
            empty(),
            Local {
                bootstrapping: true,
                finished: Some((Task::BootstrapStandbyLeader, true)),
                role: Role::StandbyLeader,
                ..running_replica(1000)
            },
            "initialized a new cluster",
            vec![Action::CompleteBootstrap, Action::CallbackOnStart],
        )),
        standby(case(
            "the clone finished in a cycle that did not see its result: the role tells",
            empty(),
            Local { bootstrapping: true, role: Role::StandbyLeader, ..running_replica(1000) },
            "initialized a new cluster",
            vec![Action::CompleteBootstrap, Action::CallbackOnStart],
        )),
        standby(case(
            "the clone is still starting PostgreSQL",
            empty(),
            Local { bootstrapping: true, role: Role::Uninitialized, ..running_replica(1000) },
            "waiting for end of recovery after bootstrap",
            vec![],
        )),
        standby(case(
            "the clone failed: give the initialize key back",
            empty(),
            Local {
                bootstrapping: true,
                finished: Some((Task::BootstrapStandbyLeader, false)),
                data_dir: DataDir::Empty,
                pg: Pg::Stopped,
                ..Local::default()
            },
            "removing initialize key after failed attempt to bootstrap the cluster",
            vec![Action::CancelBootstrap],
        )),
        standby(case(
            "the standby leader keeps its lock and its role",
            two(Some("n2")),
            standby_leader_running(),
            "no action. I am (n2), the standby leader with the lock",
            vec![],
        )),
        standby(case(
            "a leader that is not yet a standby leader points recovery at the remote",
            two(Some("n2")),
            Local { following: Some("n1".into()), ..running_replica(1000) },
            "promoted self to a standby leader because i had the session lock",
            vec![Action::FollowRemote { standby_leader: true }],
        )),
        standby(case(
            "recovery already points at the remote: only the role is recorded",
            two(Some("n2")),
            Local { following: None, following_remote: true, ..running_replica(1000) },
            "promoted self to a standby leader because i had the session lock",
            vec![Action::SetRole(Role::StandbyLeader)],
        )),
        standby(case(
            "demote-cluster: the primary becomes the standby leader, keeping the lock",
            two(Some("n2")),
            running_primary(),
            "cannot be a real primary in standby cluster",
            vec![Action::Demote(DemoteMode::DemoteCluster)],
        )),
        standby(case(
            "a replica of a standby cluster cascades from the standby leader",
            two(Some("n1")),
            running_replica(1000),
            "no action. I am (n2), a secondary, and following a standby leader (n1)",
            vec![],
        )),
        standby(case(
            "a standby leader that lost the lock follows the new one as a replica",
            two(Some("n1")),
            standby_leader_running(),
            "no action. I am (n2), a secondary, and following a standby leader (n1)",
            vec![Action::SetRole(Role::Replica), Action::Follow { leader: Some("n1".into()) }],
        )),
        standby(case(
            "a leader key naming a member without a key: keep streaming from the known one",
            cluster(Some("gone"), vec![member("n2", "replica", 1000, json!({}))]),
            running_replica(1000),
            "continue following the old known standby leader",
            vec![],
        )),
        {
            let mut c = standby(case(
                "failover inside the standby cluster: the healthiest replica becomes the standby leader",
                two(None),
                running_replica(1000),
                "promoted self to a standby leader by acquiring session lock",
                vec![Action::FollowRemote { standby_leader: true }],
            ));
            c.world.peers = vec![peer("n1", true, 900, json!({}))];
            c
        },
        {
            let mut c = standby(case(
                "a replica that loses the race follows the remote while the standby cluster has no leader",
                two(None),
                running_replica(900),
                "following a different leader because i am not the healthiest node",
                vec![Action::FollowRemote { standby_leader: false }],
            ));
            c.world.peers = vec![peer("n1", true, 1000, json!({}))];
            c.world.my_position = (900, Some(1));
            c
        },
        standby(case(
            "a stopped standby leader starts following the remote",
            two(Some("n2")),
            stopped(Role::StandbyLeader, "shut down in recovery"),
            "starting as a standby leader because i had the session lock",
            vec![Action::MarkCrashed, Action::Start(StartAs::Remote { standby_leader: true })],
        )),
        standby(case(
            "a stopped replica of a leaderless standby cluster follows the remote",
            two(None),
            stopped(Role::Replica, "shut down in recovery"),
            "trying to follow a remote member because standby cluster is unhealthy",
            vec![Action::MarkCrashed, Action::Start(StartAs::Remote { standby_leader: false })],
        )),
        standby(case(
            "a stopped replica of a standby cluster follows the standby leader",
            two(Some("n1")),
            stopped(Role::Replica, "shut down in recovery"),
            "starting as a secondary",
            vec![Action::MarkCrashed, Action::Start(StartAs::Replica { follow: Some("n1".into()) })],
        )),
        {
            let mut c = standby(case(
                "nostream: the standby leader does not stream from the remote (Patroni's words)",
                two(Some("n2")),
                Local { role: Role::StandbyLeader, following: None, ..running_replica(1000) },
                "continue following the old known standby leader",
                vec![],
            ));
            c.tags = json!({"nostream": true});
            c
        },
        // promote-cluster: `standby_cluster` is gone; the standby leader promotes.
        case(
            "promote-cluster: the standby leader holding the lock promotes",
            two(Some("n2")),
            standby_leader_running(),
            "promoted self to leader because I had the session lock",
            vec![Action::Promote],
        ),
        {
            let mut c = standby(case(
                "paused: a standby leader keeps the lock although it is not a primary",
                two(Some("n2")),
                standby_leader_running(),
                "PAUSE: no action. I am (n2), the standby leader with the lock",
                vec![],
            ));
            c.settings.paused = true;
            c
        },
    ]
}

#[test]
fn standby_cluster_decisions() {
    let mut failures = Vec::new();
    for c in standby_cases() {
        let (d, asked) = simulate(&c, NOW);
        if d.reason != c.reason || d.actions != c.actions {
            failures.push(format!(
                "{}:\n   expected: {:?} {:?}\n   got:      {:?} {:?}\n   asked: {:?}\n   log: {:?}",
                c.name, c.reason, c.actions, d.reason, d.actions, asked, d.log
            ));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}
