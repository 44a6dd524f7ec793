//! Table tests: pg_stat_replication and the `sync` key in, steps out.

use palisade_model::{Member, SyncState};
use serde_json::json;

use super::*;
use crate::output::Level;

fn member(name: &str, tags: serde_json::Value) -> Member {
    let value = json!({"state": "running", "role": "replica", "api_url": format!("http://{name}:8008/patroni"),
        "conn_url": format!("postgres://{name}:5432/postgres"), "tags": tags});
    Member::from_value(name, "1", "", &value.to_string()).expect("member")
}

fn sender(name: &str, state: &str, lsn: u64) -> WalSender {
    WalSender {
        pid: 100,
        application_name: name.into(),
        sync_state: state.into(),
        write_lsn: Some(lsn),
        flush_lsn: Some(lsn),
        replay_lsn: Some(lsn),
    }
}

fn key(leader: Option<&str>, standbys: &[&str]) -> SyncState {
    SyncState {
        version: Some("7".into()),
        leader: leader.map(String::from),
        sync_standby: standbys.iter().map(|s| s.to_string()).collect(),
        quorum: 0,
    }
}

fn settings(strict: bool, count: u32) -> SyncSettings {
    SyncSettings { mode: SyncMode::On, strict, node_count: count, max_lag_on_syncnode: -1 }
}

fn w(standbys: &[&str]) -> (String, Vec<String>) {
    ("n1".into(), standbys.iter().map(|s| s.to_string()).collect())
}

/// The steps reduced to what matters for the order: writes of `sync`
/// (leader, standbys) and values of synchronous_standby_names.
#[derive(Debug, PartialEq)]
enum S {
    Key(String, Vec<String>),
    Ssn(Option<String>),
    Del,
    Restore,
}

fn shape(plan: &SyncPlan) -> Vec<S> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            SyncStep::WriteSync { leader, standbys, .. } => Some(S::Key(leader.clone(), standbys.clone())),
            SyncStep::SetSsn(v) => Some(S::Ssn(v.clone())),
            SyncStep::DeleteSync => Some(S::Del),
            SyncStep::RestoreConfiguredSsn => Some(S::Restore),
            SyncStep::Log(..) => None,
        })
        .collect()
}

fn logs(plan: &SyncPlan) -> Vec<String> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            SyncStep::Log(Level::Warn, l) => Some(format!("W {l}")),
            SyncStep::Log(_, l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

struct Case {
    name: &'static str,
    members: Vec<Member>,
    key: SyncState,
    ssn: &'static str,
    senders: Vec<WalSender>,
    settings: SyncSettings,
    rechecked: bool,
    expect: Vec<S>,
    recheck: bool,
}

fn run(c: &Case) -> SyncPlan {
    let mut tracker = SyncTracker::default();
    let primary =
        PrimarySync { ssn: c.ssn.into(), synchronous_commit: "on".into(), senders: c.senders.clone(), lsn: 1000 };
    // The value was set earlier, at a position every standby has passed.
    tracker.observe(&PrimarySync { lsn: 0, ..primary.clone() });
    let observed = current_state(&mut tracker, "n1", &c.members, &c.key, &primary, &c.settings);
    plan_multisync("n1", c.rechecked, &mut tracker, &c.key, &observed, &c.settings)
}

#[test]
fn multisync_table() {
    let n2 = || member("n2", json!({}));
    let n3 = || member("n3", json!({}));
    let ssn = |s: &str| S::Ssn(Some(s.to_string()));
    let key_write = |l: &[&str]| {
        let (a, b) = w(l);
        S::Key(a, b)
    };
    let cases = vec![
        Case {
            name: "first cycle: claim sync, list the standby, look again",
            members: vec![n2()],
            key: SyncState::default(),
            ssn: "",
            senders: vec![sender("n2", "async", 1000)],
            settings: settings(false, 1),
            rechecked: false,
            expect: vec![key_write(&[]), ssn("n2")],
            recheck: true,
        },
        Case {
            name: "listed but not yet reported sync: nothing is published",
            members: vec![n2()],
            key: key(Some("n1"), &[]),
            ssn: "n2",
            senders: vec![sender("n2", "async", 1000)],
            settings: settings(false, 1),
            rechecked: true,
            expect: vec![ssn("n2")],
            recheck: false,
        },
        Case {
            name: "PostgreSQL reports it sync: publish it",
            members: vec![n2()],
            key: key(Some("n1"), &[]),
            ssn: "n2",
            senders: vec![sender("n2", "sync", 1000)],
            settings: settings(false, 1),
            rechecked: true,
            expect: vec![ssn("n2"), key_write(&["n2"])],
            recheck: false,
        },
        Case {
            name: "steady state: nothing to do",
            members: vec![n2(), n3()],
            key: key(Some("n1"), &["n2"]),
            ssn: "n2",
            senders: vec![sender("n2", "sync", 1000), sender("n3", "async", 1000)],
            settings: settings(false, 1),
            rechecked: false,
            expect: vec![],
            recheck: false,
        },
        Case {
            name: "the synchronous standby left, non-strict: key first, then PostgreSQL",
            members: vec![n2()],
            key: key(Some("n1"), &["n2"]),
            ssn: "n2",
            senders: vec![],
            settings: settings(false, 1),
            rechecked: false,
            expect: vec![key_write(&[]), S::Ssn(None)],
            recheck: false,
        },
        Case {
            name: "the synchronous standby left, strict: keep waiting for it",
            members: vec![n2()],
            key: key(Some("n1"), &["n2"]),
            ssn: "n2",
            senders: vec![],
            settings: settings(true, 1),
            rechecked: false,
            expect: vec![],
            recheck: false,
        },
        Case {
            name: "strict with no standby at all: the placeholder",
            members: vec![],
            key: key(Some("n1"), &[]),
            ssn: "",
            senders: vec![],
            settings: settings(true, 1),
            rechecked: false,
            expect: vec![ssn(STRICT_PLACEHOLDER)],
            recheck: false,
        },
        Case {
            name: "replace a standby that became nosync: unpublish, then switch",
            members: vec![member("n2", json!({"nosync": true})), n3()],
            key: key(Some("n1"), &["n2"]),
            ssn: "n2",
            senders: vec![sender("n2", "sync", 1000), sender("n3", "async", 1000)],
            settings: settings(false, 1),
            rechecked: false,
            expect: vec![key_write(&[]), ssn("n3")],
            recheck: true,
        },
        Case {
            name: "sync_priority decides",
            members: vec![n2(), member("n3", json!({"sync_priority": 5}))],
            key: key(Some("n1"), &[]),
            ssn: "",
            senders: vec![sender("n2", "async", 1000), sender("n3", "async", 900)],
            settings: settings(false, 1),
            rechecked: false,
            expect: vec![ssn("n3")],
            recheck: true,
        },
        Case {
            name: "two synchronous standbys",
            members: vec![n2(), n3()],
            key: key(Some("n1"), &[]),
            ssn: "",
            senders: vec![sender("n2", "async", 1000), sender("n3", "async", 1000)],
            settings: settings(false, 2),
            rechecked: false,
            expect: vec![ssn("2 (n2,n3)")],
            recheck: true,
        },
        Case {
            name: "a key written by another leader is taken back",
            members: vec![n2()],
            key: key(Some("n0"), &["n2"]),
            ssn: "n2",
            senders: vec![sender("n2", "sync", 1000)],
            settings: settings(false, 1),
            rechecked: false,
            expect: vec![key_write(&[]), ssn("n2"), key_write(&["n2"])],
            recheck: false,
        },
        Case {
            name: "ANY from quorum mode becomes a priority list",
            members: vec![n2()],
            key: key(Some("n1"), &["n2"]),
            ssn: "ANY 1 (n2)",
            senders: vec![sender("n2", "sync", 1000)],
            settings: settings(false, 1),
            rechecked: false,
            expect: vec![ssn("n2")],
            recheck: false,
        },
    ];
    for c in &cases {
        let plan = run(c);
        assert_eq!(shape(&plan), c.expect, "{}", c.name);
        assert_eq!(plan.recheck, c.recheck, "{}", c.name);
    }
}

#[test]
fn maximum_lag_on_syncnode_swaps_a_lagging_standby() {
    let mut s = settings(false, 1);
    s.max_lag_on_syncnode = 100;
    let c = Case {
        name: "lagging",
        members: vec![member("n2", json!({})), member("n3", json!({}))],
        key: key(Some("n1"), &["n2"]),
        ssn: "n2",
        senders: vec![sender("n2", "sync", 500), sender("n3", "async", 1000)],
        settings: s,
        rechecked: false,
        expect: vec![],
        recheck: false,
    };
    let plan = run(&c);
    let (a, b) = w(&[]);
    assert_eq!(shape(&plan), vec![S::Key(a, b), S::Ssn(Some("n3".into()))]);
}

#[test]
fn strict_warning_once() {
    let mut tracker = SyncTracker::default();
    let primary = PrimarySync { ssn: "n2".into(), synchronous_commit: "on".into(), senders: vec![], lsn: 10 };
    tracker.observe(&primary);
    let k = key(Some("n1"), &["n2"]);
    let s = settings(true, 1);
    let observed = current_state(&mut tracker, "n1", &[member("n2", json!({}))], &k, &primary, &s);
    let first = plan_multisync("n1", false, &mut tracker, &k, &observed, &s);
    assert_eq!(
        logs(&first),
        vec!["W No active replication connections from Patroni members and synchronous_mode_strict is requested. \
              Continue using old value of synchronous_standby_names=\"n2\". Commits will be delayed."
            .to_string()]
    );
    let second = plan_multisync("n1", false, &mut tracker, &k, &observed, &s);
    assert!(logs(&second).is_empty());
}

#[test]
fn readiness_needs_the_position_of_the_change() {
    // A standby listed when the primary was at 1000 counts as synchronous
    // only once it reports 1000, unless `sync` already names it.
    let mut tracker = SyncTracker::default();
    let s = settings(false, 1);
    let members = [member("n2", json!({}))];
    let at = |lsn: u64| PrimarySync {
        ssn: "n2".into(),
        synchronous_commit: "on".into(),
        senders: vec![sender("n2", "sync", lsn)],
        lsn: 1000,
    };
    assert!(tracker.observe(&at(900)).0);
    let empty = key(Some("n1"), &[]);
    assert!(current_state(&mut tracker, "n1", &members, &empty, &at(900), &s).sync_confirmed.is_empty());
    assert!(!tracker.observe(&at(1000)).0);
    assert!(current_state(&mut tracker, "n1", &members, &empty, &at(1000), &s).sync_confirmed.contains("n2"));
    let mut fresh = SyncTracker::default();
    fresh.observe(&at(900));
    let named = key(Some("n1"), &["n2"]);
    assert!(current_state(&mut fresh, "n1", &members, &named, &at(900), &s).sync_confirmed.contains("n2"));
}

#[test]
fn cascading_and_unknown_standbys_are_left_out() {
    let mut tracker = SyncTracker::default();
    let primary = PrimarySync {
        ssn: String::new(),
        synchronous_commit: "remote_apply".into(),
        senders: vec![sender("n2", "async", 10), sender("n3", "async", 10), sender("stranger", "async", 10)],
        lsn: 10,
    };
    tracker.observe(&primary);
    let members = [member("n2", json!({})), member("n3", json!({"replicatefrom": "n2"}))];
    let o = current_state(&mut tracker, "n1", &members, &SyncState::default(), &primary, &settings(false, 3));
    assert_eq!(o.active.to_vec(), vec!["n2".to_string()]);
}

#[test]
fn prepromote() {
    let k = key(Some("n1"), &["n2", "n3"]);
    let strict = plan_prepromote_multisync("n2", &k, &settings(true, 1));
    assert_eq!(
        shape(&strict),
        vec![S::Key("n2".into(), vec!["n1".into(), "n3".into()]), S::Ssn(Some("2 (n1,n3)".into()))]
    );
    let relaxed = plan_prepromote_multisync("n2", &k, &settings(false, 1));
    assert_eq!(shape(&relaxed), vec![S::Key("n2".into(), vec![]), S::Ssn(None)]);
    let alone = plan_prepromote_multisync("n2", &key(Some("n1"), &["n2"]), &settings(true, 1));
    assert_eq!(shape(&alone), vec![S::Key("n2".into(), vec!["n1".into()]), S::Ssn(Some("n1".into()))]);
    let none = plan_prepromote_multisync("n2", &SyncState::default(), &settings(true, 1));
    assert_eq!(shape(&none), vec![S::Key("n2".into(), vec![]), S::Ssn(Some(STRICT_PLACEHOLDER.into()))]);

    let mut q = key(Some("n1"), &["n2", "n3"]);
    q.quorum = 1;
    let quorum = plan_prepromote_quorum("n2", &q, &settings(false, 2));
    assert_eq!(shape(&quorum), vec![S::Ssn(Some("ANY 1 (n1,n3)".into()))]);
    // A key whose quorum counts every voter (reachable mid-change): the
    // count comes out 0, and PostgreSQL refuses `ANY 0`, so nothing is
    // waited for rather than writing a value the server rejects.
    q.quorum = 2;
    let all = plan_prepromote_quorum("n2", &q, &settings(false, 2));
    assert_eq!(shape(&all), vec![S::Ssn(None)]);
}

#[test]
fn disable() {
    assert_eq!(shape(&plan_disable(&key(Some("n1"), &["n2"]))), vec![S::Del, S::Ssn(None), S::Restore]);
    assert_eq!(shape(&plan_disable(&SyncState::default())), vec![S::Restore]);
}

/// Quorum mode against a simulated primary: PostgreSQL reports `quorum`
/// for the standbys an `ANY` list names. The plans are carried out until
/// nothing is left to do; the key and the list must end up agreeing.
#[test]
fn quorum_mode_reaches_a_consistent_state() {
    for (count, strict, standbys, want_ssn, want_quorum) in [
        (2, false, &["n2", "n3"][..], "ANY 2 (n2,n3)", 0),
        (1, false, &["n2", "n3"][..], "ANY 1 (n2,n3)", 1),
        (1, true, &["n2"][..], "ANY 1 (n2)", 0),
    ] {
        let s = SyncSettings { mode: SyncMode::Quorum, strict, node_count: count, max_lag_on_syncnode: -1 };
        let members: Vec<Member> = standbys.iter().map(|n| member(n, json!({}))).collect();
        let mut tracker = SyncTracker::default();
        let mut key = SyncState::default();
        let mut ssn = String::new();
        let mut settled = false;
        for _ in 0..20 {
            let listed = parse_ssn(&ssn).unwrap_or_default();
            let senders = standbys
                .iter()
                .map(|n| {
                    let state =
                        if listed.kind == SsnKind::Quorum && listed.members.contains(n) { "quorum" } else { "async" };
                    sender(n, state, 1000)
                })
                .collect();
            let primary = PrimarySync { ssn: ssn.clone(), synchronous_commit: "on".into(), senders, lsn: 1000 };
            tracker.observe(&primary);
            let observed = current_state(&mut tracker, "n1", &members, &key, &primary, &s);
            let plan = plan_quorum("n1", &mut tracker, &key, &observed, &s);
            if plan.steps.iter().all(|st| matches!(st, SyncStep::Log(..))) {
                settled = true;
                break;
            }
            for step in plan.steps {
                match step {
                    SyncStep::WriteSync { leader, standbys, quorum, .. } => {
                        key = SyncState {
                            version: Some("v".into()),
                            leader: Some(leader),
                            sync_standby: standbys,
                            quorum,
                        };
                    }
                    SyncStep::SetSsn(v) => ssn = v.unwrap_or_default(),
                    _ => {}
                }
            }
        }
        assert!(settled, "count {count}: no resting state; key {key:?}, ssn {ssn}");
        assert_eq!(ssn, want_ssn, "count {count}");
        assert_eq!(key.leader.as_deref(), Some("n1"));
        assert_eq!(key.quorum, want_quorum, "count {count}");
        let mut voters = key.sync_standby.clone();
        voters.sort();
        assert_eq!(voters, standbys.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "count {count}");
    }
}

#[test]
fn quorum_mode_strict_without_standbys_waits() {
    let s = SyncSettings { mode: SyncMode::Quorum, strict: true, node_count: 1, max_lag_on_syncnode: -1 };
    let mut tracker = SyncTracker::default();
    let primary = PrimarySync { ssn: String::new(), synchronous_commit: "on".into(), senders: vec![], lsn: 10 };
    tracker.observe(&primary);
    let k = key(Some("n1"), &[]);
    let observed = current_state(&mut tracker, "n1", &[], &k, &primary, &s);
    let plan = plan_quorum("n1", &mut tracker, &k, &observed, &s);
    assert_eq!(shape(&plan), vec![S::Ssn(Some(format!("ANY 1 ({STRICT_PLACEHOLDER})")))]);
    assert_eq!(logs(&plan).len(), 1, "{:?}", logs(&plan));
    assert!(tracker.strict_activated);
}
