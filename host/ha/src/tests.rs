//! Table-driven tests of the HA decisions.
//!
//! Each case describes a cluster snapshot, the local state and "the world"
//! (how the DCS and the peers would answer); [`simulate`] answers the
//! decision's questions from it until a decision comes out.

use std::collections::BTreeMap;

use palisade_model::{Cluster, Failover, Leader, Member, Role, State, TimelineHistory};
use serde_json::{json, Map, Value};

use crate::*;

mod standby;

const SYSID: &str = "7300000000000000001";

fn member(name: &str, role: &str, lsn: u64, tags: Value) -> Member {
    let value = json!({
        "conn_url": format!("postgres://127.0.0.1:5432/{name}"),
        "api_url": format!("http://127.0.0.1:8008/{name}"),
        "state": "running",
        "role": role,
        "xlog_location": lsn,
        "timeline": 1,
        "tags": tags,
    });
    Member::from_value(name, "1", "", &value.to_string()).unwrap()
}

fn cluster(leader: Option<&str>, members: Vec<Member>) -> Cluster {
    let mut data = Map::new();
    data.insert("ttl".into(), json!(30));
    Cluster {
        initialize: Some(SYSID.into()),
        config: Some(palisade_model::ClusterConfig { version: "1".into(), data }),
        leader: leader.map(|l| Leader { name: l.into(), version: "1".into(), session: "1".into() }),
        members,
        history: Some(TimelineHistory::from_value("1", "[]")),
        ..Default::default()
    }
}

/// The cluster with a `sync` key: leader n1 (the former leader), these
/// standbys and this quorum.
fn synced(mut c: Cluster, standbys: &[&str], quorum: u32) -> Cluster {
    c.sync = palisade_model::SyncState {
        version: Some("5".into()),
        leader: Some("n1".into()),
        sync_standby: standbys.iter().map(|s| s.to_string()).collect(),
        quorum,
    };
    c
}

fn sync_on(strict: bool) -> crate::sync::SyncSettings {
    crate::sync::SyncSettings { mode: crate::sync::SyncMode::On, strict, node_count: 1, max_lag_on_syncnode: -1 }
}

fn sync_quorum() -> crate::sync::SyncSettings {
    crate::sync::SyncSettings {
        mode: crate::sync::SyncMode::Quorum,
        strict: false,
        node_count: 2,
        max_lag_on_syncnode: -1,
    }
}

fn running_replica(lsn: u64) -> Local {
    Local {
        data_dir: DataDir::Initialized { sysid: Some(SYSID.into()) },
        pg: Pg::Running { in_recovery: true, timeline: Some(1), wal_position: lsn },
        role: Role::Replica,
        state: State::Running,
        on_start_called: true,
        following: Some("n1".into()),
        ..Default::default()
    }
}

fn running_primary() -> Local {
    Local {
        data_dir: DataDir::Initialized { sysid: Some(SYSID.into()) },
        pg: Pg::Running { in_recovery: false, timeline: Some(1), wal_position: 1000 },
        role: Role::Primary,
        state: State::Running,
        on_start_called: true,
        ..Default::default()
    }
}

fn stopped(role: Role, cluster_state: &str) -> Local {
    Local {
        data_dir: DataDir::Initialized { sysid: Some(SYSID.into()) },
        pg: Pg::Stopped,
        cluster_state: Some(cluster_state.into()),
        role,
        state: State::Running,
        on_start_called: true,
        ..Default::default()
    }
}

fn peer(name: &str, in_recovery: bool, lsn: u64, tags: Value) -> PeerStatus {
    PeerStatus {
        name: name.into(),
        reachable: true,
        in_recovery: Some(in_recovery),
        wal_position: lsn,
        timeline: 1,
        tags: tags.as_object().cloned().unwrap_or_default(),
        watchdog_failed: false,
    }
}

/// How the outside world answers.
#[derive(Clone)]
struct World {
    update_lock: bool,
    acquire_lock: bool,
    initialize: bool,
    peers: Vec<PeerStatus>,
    my_position: (u64, Option<u32>),
    sync_prepromote: bool,
    /// Activating the watchdog works.
    watchdog: bool,
}

impl Default for World {
    fn default() -> Self {
        Self {
            update_lock: true,
            acquire_lock: true,
            initialize: true,
            peers: Vec::new(),
            my_position: (1000, Some(1)),
            sync_prepromote: true,
            watchdog: true,
        }
    }
}

struct Case {
    name: &'static str,
    me: &'static str,
    tags: Value,
    settings: Settings,
    cluster: Cluster,
    local: Local,
    world: World,
    reason: &'static str,
    actions: Vec<Action>,
    scheduled_restart: Option<ScheduledRestart>,
}

fn case(name: &'static str, cluster: Cluster, local: Local, reason: &'static str, actions: Vec<Action>) -> Case {
    Case {
        name,
        me: "n2",
        tags: json!({}),
        settings: Settings { loop_wait: 10.0, ..Default::default() },
        cluster,
        local,
        world: World::default(),
        reason,
        actions,
        scheduled_restart: None,
    }
}

/// Run `decide`, answering its questions from `world`; returns the decision
/// and the questions asked, in order.
fn simulate(input_parts: &Case, now: f64) -> (Decision, Vec<Ask>) {
    let me = Me {
        name: input_parts.me.into(),
        tags: input_parts.tags.as_object().cloned().unwrap_or_default(),
        can_bootstrap: true,
        can_clone_without_leader: false,
    };
    let mut answers = Answers::default();
    let mut asked = Vec::new();
    for _ in 0..10 {
        let input = Input {
            now,
            me: &me,
            settings: &input_parts.settings,
            cluster: &input_parts.cluster,
            old_members: &[],
            old_leader: None,
            local: &input_parts.local,
            scheduled_restart: input_parts.scheduled_restart.as_ref(),
            answers: &answers,
        };
        match decide(&input) {
            Step::Decided(d) => return (d, asked),
            Step::Ask(ask) => {
                let w = &input_parts.world;
                match &ask {
                    Ask::UpdateLock { .. } => answers.update_lock = Some(w.update_lock),
                    Ask::AcquireLock => answers.acquire_lock = Some(w.acquire_lock),
                    Ask::Initialize => answers.initialize = Some(w.initialize),
                    Ask::MyPosition => answers.my_position = Some(w.my_position),
                    Ask::SyncPrepromote => answers.sync_prepromote = Some(w.sync_prepromote),
                    Ask::ActivateWatchdog => answers.watchdog_activated = Some(w.watchdog),
                    Ask::Failsafe(members) => {
                        answers.failsafe = Some(members.iter().map(|(n, _)| (n.clone(), true)).collect());
                    }
                    Ask::PeerStatuses(names) => {
                        for n in names {
                            let st = w
                                .peers
                                .iter()
                                .find(|p| &p.name == n)
                                .cloned()
                                .unwrap_or_else(|| PeerStatus::unreachable(n));
                            answers.peers.insert(n.clone(), st);
                        }
                    }
                }
                asked.push(ask);
            }
        }
    }
    panic!("{}: decide kept asking: {asked:?}", input_parts.name);
}

const NOW: f64 = 1_800_000_000.0;

fn cases() -> Vec<Case> {
    let three = |leader: Option<&str>| {
        cluster(
            leader,
            vec![
                member("n1", "primary", 1000, json!({})),
                member("n2", "replica", 1000, json!({})),
                member("n3", "replica", 900, json!({})),
            ],
        )
    };
    vec![
        // --- steady state ---
        case("leader renews its lock", three(Some("n2")), running_primary(), "no action. I am (n2), the leader with the lock", vec![Action::SyncReplication, Action::UpdateHistory]),
        case(
            "replica follows the leader",
            three(Some("n1")),
            running_replica(1000),
            "no action. I am (n2), a secondary, and following a leader (n1)",
            vec![],
        ),
        case(
            "replica repoints recovery at a new leader",
            three(Some("n3")),
            running_replica(1000),
            "no action. I am (n2), a secondary, and following a leader (n3)",
            vec![Action::Follow { leader: Some("n3".into()) }],
        ),
        {
            let mut c = case(
                "replicatefrom tag cascades from another member",
                three(Some("n1")),
                running_replica(1000),
                "no action. I am (n2), a secondary, and following a leader (n1)",
                vec![Action::Follow { leader: Some("n3".into()) }],
            );
            c.tags = json!({"replicatefrom": "n3"});
            c
        },
        {
            let mut c = case(
                "leader that cannot renew demotes",
                three(Some("n2")),
                running_primary(),
                "demoted self because failed to update leader lock in DCS",
                vec![Action::Demote(DemoteMode::ImmediateNolock)],
            );
            c.world.update_lock = false;
            c
        },
        case(
            "primary without the lock demotes",
            three(Some("n1")),
            running_primary(),
            "demoting self because I do not have the lock and I was a leader",
            vec![Action::Demote(DemoteMode::ImmediateNolock)],
        ),
        {
            let mut l = running_replica(1000);
            l.role = Role::Promoted;
            case("lock holder whose promotion is under way waits", three(Some("n2")), l, "no action. I am (n2), the leader with the lock", vec![Action::SyncReplication])
        },
        case(
            "replica holding the lock promotes",
            three(Some("n2")),
            running_replica(1000),
            "promoted self to leader because I had the session lock",
            vec![Action::Promote],
        ),
        // --- leader race in synchronous mode ---
        {
            let mut c = case(
                "on mode: a node not named in sync does not race",
                synced(three(None), &["n3"], 0),
                running_replica(2000),
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.settings.sync = sync_on(false);
            c
        },
        {
            let mut c = case(
                "on mode: the synchronous standby races among the sync nodes only",
                synced(three(None), &["n2"], 0),
                running_replica(1000),
                "promoted self to leader by acquiring session lock",
                vec![Action::Promote],
            );
            c.settings.sync = sync_on(false);
            // n3 is ahead but asynchronous: not asked.
            c.world.peers = vec![peer("n1", true, 900, json!({})), peer("n3", true, 5000, json!({}))];
            c
        },
        {
            let mut c = case(
                "on mode: the former leader ahead of us is ignored",
                synced(three(None), &["n2"], 0),
                running_replica(1000),
                "promoted self to leader by acquiring session lock",
                vec![Action::Promote],
            );
            c.settings.sync = sync_on(false);
            c.world.peers = vec![peer("n1", true, 1200, json!({}))];
            c
        },
        {
            let mut c = case(
                "on mode: promotion waits when the sync key cannot be claimed",
                synced(three(None), &["n2"], 0),
                running_replica(1000),
                "Postponing promotion because synchronous replication state was updated by somebody else",
                vec![],
            );
            c.settings.sync = sync_on(false);
            c.world.sync_prepromote = false;
            c
        },
        {
            let mut c = case(
                "quorum mode: enough votes let a node outside the voters race",
                synced(three(None), &["n3"], 1),
                running_replica(1000),
                "promoted self to leader by acquiring session lock",
                vec![Action::Promote],
            );
            c.settings.sync = sync_quorum();
            // Outside the voters: quorum + 1 votes are needed.
            c.world.peers = vec![peer("n1", true, 1000, json!({})), peer("n3", true, 1000, json!({}))];
            c
        },
        {
            let mut c = case(
                "quorum mode: too few votes",
                synced(three(None), &["n3"], 1),
                running_replica(1000),
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.settings.sync = sync_quorum();
            c.world.peers = vec![peer("n3", true, 1000, json!({}))];
            c
        },
        {
            let mut c = case(
                "on mode: switchover to an asynchronous node is not possible",
                synced(three(Some("n2")), &["n1"], 0),
                running_primary(),
                "no action. I am (n2), the leader with the lock",
                vec![Action::WriteFailoverKey { leader: None, candidate: None, keep_schedule: false }, Action::SyncReplication, Action::UpdateHistory],
            );
            c.cluster.failover = Failover::from_value("1", r#"{"leader":"n2","member":"n3"}"#);
            c.settings.sync = sync_on(false);
            c.world.peers = vec![peer("n3", true, 1000, json!({}))];
            c
        },
        // --- leader race ---
        {
            let mut c = case(
                "healthiest replica wins the race",
                three(None),
                running_replica(1000),
                "promoted self to leader by acquiring session lock",
                vec![Action::Promote],
            );
            c.world.peers = vec![peer("n1", true, 900, json!({})), peer("n3", true, 900, json!({}))];
            c
        },
        {
            let mut c = case(
                "replica behind another member does not race",
                three(None),
                running_replica(1000),
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.world.peers = vec![peer("n3", true, 1500, json!({}))];
            c
        },
        {
            let mut c = case(
                "an old primary that still answers blocks the race",
                three(None),
                running_replica(1000),
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.world.peers = vec![peer("n1", false, 0, json!({})), peer("n3", true, 900, json!({}))];
            c
        },
        {
            let mut c = case(
                "unreachable members do not block the race",
                three(None),
                running_replica(1000),
                "promoted self to leader by acquiring session lock",
                vec![Action::Promote],
            );
            c.world.peers = vec![];
            c
        },
        {
            let mut c = case(
                "a member ahead but tagged nofailover is ignored",
                three(None),
                running_replica(1000),
                "promoted self to leader by acquiring session lock",
                vec![Action::Promote],
            );
            c.world.peers = vec![peer("n3", true, 2000, json!({"nofailover": true}))];
            c
        },
        {
            let mut c = case(
                "equal position, higher priority elsewhere: step aside",
                three(None),
                running_replica(1000),
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.world.peers = vec![peer("n3", true, 1000, json!({"failover_priority": 5}))];
            c
        },
        {
            let mut cl = three(None);
            cl.status.last_lsn = 10_000_000;
            let mut c = case(
                "too far behind the last known leader position",
                cl,
                running_replica(1000),
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.world.my_position = (1000, Some(1));
            c
        },
        {
            let mut c = case(
                "losing the lock race follows the winner",
                three(None),
                running_replica(1000),
                "following new leader after trying and failing to obtain lock",
                vec![],
            );
            c.world.acquire_lock = false;
            c
        },
        {
            let mut c = case(
                "nofailover node never races",
                three(None),
                running_replica(1000),
                "following a different leader because I am not allowed to promote",
                vec![],
            );
            c.tags = json!({"nofailover": true});
            c
        },
        {
            let mut cl = three(None);
            cl.history = Some(TimelineHistory::from_value("1", r#"[[1,100,"x"],[2,200,"y"]]"#));
            let mut c = case(
                "check_timeline refuses a replica on an old timeline",
                cl,
                running_replica(1000),
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.settings.check_timeline = true;
            c
        },
        // --- a stopped PostgreSQL ---
        case(
            "crashed primary with the lock restarts as primary",
            three(Some("n2")),
            Local { state: State::Crashed, ..stopped(Role::Primary, "in production") },
            "starting primary after failure",
            vec![Action::Start(StartAs::Primary)],
        ),
        case(
            "a running primary that vanished is marked crashed and restarted",
            three(Some("n2")),
            stopped(Role::Primary, "in production"),
            "starting as readonly because i had the session lock",
            vec![Action::MarkCrashed, Action::Start(StartAs::Replica { follow: None })],
        ),
        {
            let mut c = case(
                "primary_start_timeout 0 fails over after a crash",
                three(Some("n2")),
                Local { state: State::Crashed, ..stopped(Role::Primary, "in production") },
                "stopped PostgreSQL to fail over after a crash",
                vec![Action::Demote(DemoteMode::Immediate)],
            );
            c.settings.primary_start_timeout = 0.0;
            c.world.peers = vec![peer("n1", true, 1000, json!({})), peer("n3", true, 1000, json!({}))];
            c
        },
        case(
            "stopped replica starts following the leader",
            three(Some("n1")),
            Local { state: State::Stopped, ..stopped(Role::Replica, "shut down in recovery") },
            "starting as a secondary",
            vec![Action::Start(StartAs::Replica { follow: Some("n1".into()) })],
        ),
        case(
            "former primary that crashed rejoins as a replica when its WAL allows",
            three(Some("n1")),
            Local { state: State::Stopped, ..stopped(Role::Primary, "in production") },
            "starting as a secondary",
            vec![Action::Start(StartAs::Replica { follow: Some("n1".into()) })],
        ),
        case(
            "diverged former primary is not started",
            three(Some("n1")),
            Local {
                state: State::Stopped,
                rejoin: Rejoin::Diverged("local timeline 1 LSN 0/3000148 is ahead of the switch point".into()),
                ..stopped(Role::Primary, "shut down")
            },
            "not starting PostgreSQL: its timeline diverged from the leader's; pg_rewind or reinitialize is needed",
            vec![],
        ),
        {
            let mut c = case(
                "paused: a stopped PostgreSQL is left alone",
                three(Some("n1")),
                stopped(Role::Replica, "shut down in recovery"),
                "PAUSE: postgres is not running",
                vec![Action::MarkStopped],
            );
            c.settings.paused = true;
            c
        },
        {
            let mut c = case(
                "paused: the lock holder without postgres releases the lock",
                three(Some("n2")),
                stopped(Role::Primary, "shut down"),
                "PAUSE: removed leader lock because postgres is not running",
                vec![Action::MarkStopped, Action::ReleaseLeaderKey],
            );
            c.settings.paused = true;
            c
        },
        {
            let mut c = case(
                "paused: no race, a replica keeps replicating",
                three(None),
                running_replica(1000),
                "PAUSE: no action. I am (n2)",
                vec![],
            );
            c.settings.paused = true;
            c
        },
        case(
            "a former primary waits for the new timeline's history",
            three(Some("n1")),
            Local { state: State::Stopped, rejoin: Rejoin::Wait("no history yet".into()), ..stopped(Role::Primary, "shut down") },
            "waiting before rejoining the cluster as a replica: no history yet",
            vec![],
        ),
        // --- new nodes ---
        case(
            "first node initialises the cluster",
            Cluster::default(),
            Local::default(),
            "trying to bootstrap a new cluster",
            vec![Action::Bootstrap],
        ),
        {
            let mut c = case(
                "losing the initialize race waits",
                Cluster::default(),
                Local::default(),
                "failed to acquire initialize lock",
                vec![],
            );
            c.world.initialize = false;
            c
        },
        case(
            "new node clones from the leader",
            three(Some("n1")),
            Local::default(),
            "trying to bootstrap from leader 'n1'",
            vec![Action::Clone { from: Some("n1".into()) }],
        ),
        case(
            "new node clones from a clonefrom member",
            cluster(Some("n1"), vec![member("n1", "primary", 1, json!({})), member("n3", "replica", 1, json!({"clonefrom": true}))]),
            Local::default(),
            "trying to bootstrap from replica 'n3'",
            vec![Action::Clone { from: Some("n3".into()) }],
        ),
        case(
            "initialised cluster without leader: wait",
            Cluster { initialize: Some(SYSID.into()), ..Default::default() },
            Local::default(),
            "waiting for leader to bootstrap",
            vec![],
        ),
        case(
            "data dir from another cluster is fatal",
            three(Some("n1")),
            Local { data_dir: DataDir::Initialized { sysid: Some("7300000000000000999".into()) }, ..running_replica(1) },
            "system ID mismatch, node n2 belongs to a different cluster: 7300000000000000001 != 7300000000000000999",
            vec![Action::Fatal(
                "system ID mismatch, node n2 belongs to a different cluster: 7300000000000000001 != 7300000000000000999".into(),
            )],
        ),
        case(
            "leader whose data dir vanished releases the key",
            three(Some("n2")),
            Local { data_dir: DataDir::Empty, ..running_primary() },
            "released leader key voluntarily as data dir empty and currently leader",
            vec![Action::SetRole(Role::Uninitialized), Action::StopImmediate, Action::ReleaseLeaderKey],
        ),
        // --- bootstrap completion ---
        case(
            "bootstrap done: run post_bootstrap",
            Cluster { initialize: Some("".into()), ..Default::default() },
            Local { bootstrapping: true, finished: Some((Task::Bootstrap, true)), on_start_called: false, ..running_primary() },
            "running post_bootstrap",
            vec![Action::SetRole(Role::Primary), Action::PostBootstrap],
        ),
        case(
            "post_bootstrap done: publish",
            Cluster { initialize: Some("".into()), ..Default::default() },
            Local { bootstrapping: true, finished: Some((Task::PostBootstrap, true)), ..running_primary() },
            "initialized a new cluster",
            vec![Action::CompleteBootstrap, Action::CallbackOnStart],
        ),
        case(
            "failed initdb cancels the bootstrap",
            Cluster { initialize: Some("".into()), ..Default::default() },
            Local { bootstrapping: true, finished: Some((Task::Bootstrap, false)), pg: Pg::Stopped, ..Local::default() },
            "removing initialize key after failed attempt to bootstrap the cluster",
            vec![Action::CancelBootstrap],
        ),
        // --- long actions ---
        case(
            "leader keeps its lock during a long action",
            three(Some("n2")),
            Local { task: Some(Task::Restart), ..running_primary() },
            "updated leader lock during restart",
            vec![],
        ),
        case(
            "a promotion without the lock is cancelled",
            three(Some("n1")),
            Local { task: Some(Task::Promote), ..running_replica(1000) },
            "lost leader before promote",
            vec![Action::CancelTask],
        ),
        case(
            "replica busy cloning reports progress",
            three(Some("n1")),
            Local { task: Some(Task::Clone), ..Local::default() },
            "bootstrap from a member in progress",
            vec![],
        ),
        // --- switchover ---
        {
            let mut cl = three(Some("n2"));
            cl.failover = Failover::from_value("1", r#"{"leader":"n2","member":"n3"}"#);
            let mut c = case("switchover: the leader steps down", cl, running_primary(), "switchover: demoting myself", vec![Action::Demote(DemoteMode::Graceful)]);
            c.world.peers = vec![peer("n3", true, 1000, json!({}))];
            c
        },
        {
            let mut cl = three(Some("n2"));
            cl.failover = Failover::from_value("1", r#"{"leader":"n2","member":"n3"}"#);
            let mut c = case(
                "switchover to an unhealthy candidate is dropped",
                cl,
                running_primary(),
                "no action. I am (n2), the leader with the lock",
                vec![Action::WriteFailoverKey { leader: None, candidate: None, keep_schedule: false }, Action::SyncReplication, Action::UpdateHistory],
            );
            c.world.peers = vec![PeerStatus::unreachable("n3")];
            c
        },
        {
            let mut cl = three(Some("n2"));
            cl.failover = Failover::from_value("1", r#"{"leader":"n1","member":"n3"}"#);
            case(
                "switchover naming another leader is dropped",
                cl,
                running_primary(),
                "no action. I am (n2), the leader with the lock",
                vec![Action::WriteFailoverKey { leader: None, candidate: None, keep_schedule: false }, Action::SyncReplication, Action::UpdateHistory],
            )
        },
        {
            let mut cl = three(Some("n2"));
            cl.failover = Failover::from_value("1", r#"{"leader":"n2","member":"n3","scheduled_at":"2028-01-15T08:00:00+00:00"}"#);
            case("scheduled switchover waits for its time", cl, running_primary(), "no action. I am (n2), the leader with the lock", vec![Action::SyncReplication, Action::UpdateHistory])
        },
        {
            let mut cl = three(None);
            cl.failover = Failover::from_value("1", r#"{"leader":"n1","member":"n2"}"#);
            case(
                "the switchover candidate takes the free lock",
                cl,
                running_replica(1000),
                "promoted self to leader by acquiring session lock",
                vec![Action::WriteFailoverKey { leader: None, candidate: None, keep_schedule: false }, Action::Promote],
            )
        },
        {
            let mut cl = three(None);
            cl.failover = Failover::from_value("1", r#"{"leader":"n1","member":"n3"}"#);
            let mut c = case(
                "a non-candidate defers to a healthy candidate",
                cl,
                running_replica(1000),
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.world.peers = vec![peer("n3", true, 1000, json!({}))];
            c
        },
        {
            let mut cl = three(None);
            cl.failover = Failover::from_value("1", r#"{"leader":"n1","member":"n3"}"#);
            let mut c = case(
                "if the candidate died, the healthiest member takes over",
                cl,
                running_replica(1000),
                "promoted self to leader by acquiring session lock",
                vec![Action::WriteFailoverKey { leader: None, candidate: None, keep_schedule: false }, Action::Promote],
            );
            c.world.peers = vec![PeerStatus::unreachable("n3")];
            c
        },
        // --- failsafe mode in the leader race ---
        {
            let mut cl = three(None);
            cl.failsafe = Some(json!({"n1": "http://x/n1", "n3": "http://x/n3"}).as_object().cloned().unwrap());
            let mut c = case(
                "failsafe: a member the failsafe key does not name does not race",
                cl,
                running_replica(1000),
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.settings.failsafe_mode = true;
            c.world.peers = vec![peer("n1", true, 900, json!({})), peer("n3", true, 900, json!({}))];
            c
        },
        {
            let mut cl = three(None);
            cl.failsafe = Some(json!({"n1": "http://x/n1", "n3": "http://x/n3"}).as_object().cloned().unwrap());
            let mut c = case(
                "failsafe off: the failsafe key is not looked at",
                cl,
                running_replica(1000),
                "promoted self to leader by acquiring session lock",
                vec![Action::Promote],
            );
            c.world.peers = vec![peer("n1", true, 900, json!({})), peer("n3", true, 900, json!({}))];
            c
        },
        {
            // n4's member key expired, but the failsafe key still names it:
            // it is asked too, and it is ahead.
            let mut cl = three(None);
            cl.failsafe = Some(
                json!({"n1": "http://x/n1", "n2": "http://x/n2", "n3": "http://x/n3", "n4": "http://x/n4"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            );
            let mut c = case(
                "failsafe: members of the failsafe key take part in the race",
                cl,
                running_replica(1000),
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.settings.failsafe_mode = true;
            c.world.peers =
                vec![peer("n1", true, 900, json!({})), peer("n3", true, 900, json!({})), peer("n4", true, 2000, json!({}))];
            c
        },
        {
            let mut cl = three(None);
            cl.failsafe = Some(Map::new());
            let mut c = case(
                "failsafe: an empty failsafe key disqualifies nobody",
                cl,
                running_replica(1000),
                "promoted self to leader by acquiring session lock",
                vec![Action::Promote],
            );
            c.settings.failsafe_mode = true;
            c.world.peers = vec![peer("n1", true, 900, json!({})), peer("n3", true, 900, json!({}))];
            c
        },
        // --- keys the leader maintains ---
        {
            let mut cl = three(Some("n2"));
            cl.initialize = None;
            cl.config = None;
            case(
                "leader restores missing initialize and config keys",
                cl,
                running_primary(),
                "no action. I am (n2), the leader with the lock",
                vec![Action::SetInitializeKey { create_new: true }, Action::WriteConfig, Action::SyncReplication, Action::UpdateHistory],
            )
        },
        case(
            "on_start is delivered once PostgreSQL runs",
            three(Some("n1")),
            Local { on_start_called: false, ..running_replica(1000) },
            "no action. I am (n2), a secondary, and following a leader (n1)",
            vec![Action::CallbackOnStart],
        ),
        // --- the watchdog ---
        {
            let mut c = case(
                "the race winner activates its watchdog and promotes",
                three(None),
                Local { watchdog: WatchdogState::Inactive { healthy: true }, ..running_replica(1000) },
                "promoted self to leader by acquiring session lock",
                vec![Action::Promote],
            );
            c.world.peers = vec![peer("n1", true, 900, json!({})), peer("n3", true, 900, json!({}))];
            c
        },
        {
            let mut c = case(
                "a required watchdog that cannot be activated: the lock is not taken",
                three(None),
                Local { watchdog: WatchdogState::Inactive { healthy: true }, ..running_replica(1000) },
                "Not promoting self because watchdog could not be activated",
                vec![],
            );
            c.world.peers = vec![peer("n1", true, 900, json!({})), peer("n3", true, 900, json!({}))];
            c.world.watchdog = false;
            c
        },
        {
            let mut c = case(
                "a leader that cannot activate its required watchdog releases the lock",
                three(Some("n2")),
                Local { watchdog: WatchdogState::Inactive { healthy: true }, ..running_replica(1000) },
                "Not promoting self because watchdog could not be activated",
                vec![Action::ReleaseLeaderKey],
            );
            c.world.watchdog = false;
            c
        },
        {
            let mut c = case(
                "a primary whose required watchdog cannot be activated demotes",
                three(Some("n2")),
                Local { watchdog: WatchdogState::Inactive { healthy: true }, ..running_primary() },
                "Demoting self because watchdog could not be activated",
                vec![Action::Demote(DemoteMode::Immediate)],
            );
            c.world.watchdog = false;
            c
        },
        {
            let mut c = case(
                "an active watchdog is not activated again",
                three(Some("n2")),
                Local { watchdog: WatchdogState::Active, ..running_primary() },
                "no action. I am (n2), the leader with the lock",
                vec![Action::SyncReplication, Action::UpdateHistory],
            );
            c.world.watchdog = false;
            c
        },
        {
            let mut c = case(
                "paused: the watchdog is not activated",
                three(Some("n2")),
                Local { watchdog: WatchdogState::Inactive { healthy: true }, ..running_primary() },
                "PAUSE: no action. I am (n2), the leader with the lock",
                vec![Action::SyncReplication, Action::UpdateHistory],
            );
            c.settings.paused = true;
            c.world.watchdog = false;
            c
        },
        {
            let mut c = case(
                "an unusable required watchdog keeps the node out of the race",
                three(None),
                Local { watchdog: WatchdogState::Inactive { healthy: false }, ..running_replica(1000) },
                "following a different leader because i am not the healthiest node",
                vec![],
            );
            c.world.peers = vec![peer("n1", true, 900, json!({})), peer("n3", true, 900, json!({}))];
            c
        },
        {
            let mut c = case(
                "a failed watchdog activation cancels the bootstrap",
                cluster(None, vec![]),
                Local {
                    bootstrapping: true,
                    finished: Some((Task::PostBootstrap, true)),
                    watchdog: WatchdogState::Inactive { healthy: true },
                    ..running_primary()
                },
                "removing initialize key after failed attempt to bootstrap the cluster",
                vec![Action::CancelBootstrap],
            );
            c.world.watchdog = false;
            c
        },
    ]
}

#[test]
fn a_watchdog_race_loser_logs_why() {
    let mut c = case(
        "",
        cluster(None, vec![member("n1", "replica", 900, json!({}))]),
        Local { watchdog: WatchdogState::Inactive { healthy: false }, ..running_replica(1000) },
        "",
        vec![],
    );
    c.world.peers = vec![peer("n1", true, 900, json!({}))];
    let (d, asked) = simulate(&c, NOW);
    assert!(d.log.contains(&(Level::Warn, "Watchdog device is not usable".into())), "{:?}", d.log);
    assert!(!asked.contains(&Ask::AcquireLock), "{asked:?}");
}

#[test]
fn the_watchdog_is_armed_before_the_lock_is_taken() {
    let mut c = case(
        "",
        cluster(None, vec![member("n1", "replica", 900, json!({}))]),
        Local { watchdog: WatchdogState::Inactive { healthy: true }, ..running_replica(1000) },
        "",
        vec![],
    );
    c.world.peers = vec![peer("n1", true, 900, json!({}))];
    let (d, asked) = simulate(&c, NOW);
    assert_eq!(d.actions, vec![Action::Promote]);
    let arm = asked.iter().position(|a| *a == Ask::ActivateWatchdog);
    let lock = asked.iter().position(|a| *a == Ask::AcquireLock);
    assert!(arm.is_some() && arm < lock, "{asked:?}");
    c.world.watchdog = false;
    let (_, asked) = simulate(&c, NOW);
    assert!(!asked.contains(&Ask::AcquireLock), "{asked:?}");
}

#[test]
fn decisions_table() {
    let mut failures = Vec::new();
    for c in cases() {
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

#[test]
fn a_leader_asks_to_renew_before_acting() {
    let c = case("", cluster(Some("n2"), vec![]), running_primary(), "", vec![]);
    let me = Me { name: "n2".into(), ..Default::default() };
    let input = Input {
        now: NOW,
        me: &me,
        settings: &c.settings,
        cluster: &c.cluster,
        old_members: &[],
        old_leader: None,
        local: &c.local,
        scheduled_restart: None,
        answers: &Answers::default(),
    };
    assert_eq!(decide(&input), Step::Ask(Ask::UpdateLock { update_status: true }));
}

#[test]
fn the_race_asks_only_for_missing_peers() {
    let c = case(
        "",
        cluster(
            None,
            vec![
                member("n1", "replica", 1, json!({})),
                member("n2", "replica", 1, json!({})),
                member("n3", "replica", 1, json!({})),
            ],
        ),
        running_replica(1000),
        "",
        vec![],
    );
    let me = Me { name: "n2".into(), ..Default::default() };
    let mut answers = Answers { my_position: Some((1000, Some(1))), ..Default::default() };
    answers.peers.insert("n1".into(), peer("n1", true, 5, json!({})));
    let input = Input {
        now: NOW,
        me: &me,
        settings: &c.settings,
        cluster: &c.cluster,
        old_members: &[],
        old_leader: None,
        local: &c.local,
        scheduled_restart: None,
        answers: &answers,
    };
    assert_eq!(decide(&input), Step::Ask(Ask::PeerStatuses(vec!["n3".into()])));
}

#[test]
fn scheduled_switchover_wakes_the_loop_and_runs_on_time() {
    let at = "2027-01-15T08:00:00+00:00";
    let at_epoch = palisade_model::values::parse_timestamp(at).unwrap().timestamp() as f64;
    let mut cl = cluster(Some("n2"), vec![member("n3", "replica", 1000, json!({}))]);
    cl.failover = Failover::from_value("1", &format!(r#"{{"leader":"n2","member":"n3","scheduled_at":"{at}"}}"#));
    let mut c = case("", cl, running_primary(), "", vec![]);
    c.world.peers = vec![peer("n3", true, 1000, json!({}))];

    let (early, _) = simulate(&c, at_epoch - 100.0);
    assert_eq!(early.wake_at, Some(at_epoch));
    assert!(early.log.iter().any(|(_, l)| l.starts_with("Awaiting switchover at")), "{:?}", early.log);

    let (close, _) = simulate(&c, at_epoch - 3.0);
    assert_eq!(close.wake_at, Some(at_epoch));
    assert!(close.actions.iter().all(|a| !matches!(a, Action::Demote(_))));

    let (due, _) = simulate(&c, at_epoch + 0.5);
    assert_eq!(due.actions, vec![Action::Demote(DemoteMode::Graceful)]);

    let (stale, _) = simulate(&c, at_epoch + 100.0);
    assert_eq!(stale.actions[0], Action::WriteFailoverKey { leader: None, candidate: None, keep_schedule: false });
}

#[test]
fn peer_status_from_api_responses() {
    let replica = json!({"role": "replica", "timeline": 2, "xlog": {"received_location": 100, "replayed_location": 90}, "tags": {"nofailover": true}});
    let st = PeerStatus::from_api_response("n1", &replica);
    assert_eq!((st.reachable, st.in_recovery, st.wal_position, st.timeline), (true, Some(true), 100, 2));
    assert_eq!(st.failover_limitation(), Some("not allowed to promote"));

    let primary = json!({"role": "primary", "xlog": {"location": 5000}});
    let st = PeerStatus::from_api_response("n1", &primary);
    assert_eq!((st.in_recovery, st.wal_position), (Some(false), 0));

    let legacy = json!({"role": "master", "xlog": {"location": 0}});
    assert_eq!(PeerStatus::from_api_response("n1", &legacy).in_recovery, Some(false));

    for garbage in [json!({}), json!({"xlog": 5}), json!([1]), json!("x")] {
        assert!(!PeerStatus::from_api_response("n1", &garbage).reachable, "{garbage}");
    }
    let _unused: BTreeMap<String, PeerStatus> = BTreeMap::new();
}

#[test]
fn scheduled_restarts() {
    use palisade_model::values::{parse_timestamp, ScheduledAt};
    let at = parse_timestamp("2028-01-15T08:00:00+00:00").unwrap();
    let at_epoch = at.timestamp() as f64;
    let restart = |role: Option<&str>, started: Option<&str>| ScheduledRestart {
        at: ScheduledAt::At(at),
        filter: RestartFilter { role: role.map(String::from), ..RestartFilter::default() },
        timeout: Some(30.0),
        postmaster_start_time: started.map(String::from),
    };
    let local = Local { postmaster_start_time: Some("t0".into()), ..running_replica(1000) };
    let mut c = case("", cluster(Some("n1"), vec![member("n1", "primary", 1, json!({}))]), local, "", vec![]);

    c.scheduled_restart = Some(restart(None, Some("t0")));
    let (early, _) = simulate(&c, at_epoch - 100.0);
    assert_eq!(early.reason, "no action. I am (n2), a secondary, and following a leader (n1)");
    assert_eq!(early.wake_at, Some(at_epoch));

    let (due, _) = simulate(&c, at_epoch + 1.0);
    assert_eq!(due.reason, "restart initiated");
    assert_eq!(due.actions, vec![Action::DeleteScheduledRestart, Action::Restart { timeout: Some(30.0) }]);

    c.scheduled_restart = Some(restart(Some("primary"), Some("t0")));
    let (mismatch, _) = simulate(&c, at_epoch + 1.0);
    assert_eq!(mismatch.actions, vec![Action::DeleteScheduledRestart]);
    assert!(mismatch.log.iter().any(|(_, l)| l == "not proceeding with the restart: host role mismatch"));

    c.scheduled_restart = Some(restart(None, Some("an earlier start")));
    let (moot, _) = simulate(&c, at_epoch - 100.0);
    assert_eq!(moot.actions, vec![Action::DeleteScheduledRestart]);

    c.scheduled_restart = Some(restart(None, Some("t0")));
    let (stale, _) = simulate(&c, at_epoch + 100.0);
    assert_eq!(stale.actions, vec![Action::DeleteScheduledRestart]);
}

#[test]
fn a_replica_without_initialize_key_logs_patronis_two_error_lines() {
    let local = Local { on_start_called: false, ..running_replica(1) };
    let c = case("", Cluster::default(), local, "", vec![]);
    let (d, _) = simulate(&c, 0.0);
    assert_eq!(d.reason, "No initialize key in DCS and PostgreSQL is running as replica, aborting start");
    assert_eq!(
        d.log,
        vec![(
            Level::Error,
            "No initialize key in DCS and PostgreSQL is running as replica, aborting start".to_string()
        )]
    );
    assert_eq!(d.actions, vec![Action::Fatal("Please first start palisade on the node running as primary".into())]);
}
