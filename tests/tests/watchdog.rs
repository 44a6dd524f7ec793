//! The watchdog on real processes, with Patroni's `testing` driver writing
//! to a FIFO the test reads (`palisade_tests::watchdog::WatchdogDevice`):
//! the device is opened and fed while the node leads, with the timeout
//! `ttl - safety_margin`; the timeout follows a new ttl; the device is
//! closed on pause and on shutdown; a node whose required watchdog fails
//! never leads; and a leader whose daemon hangs (SIGSTOP) is fenced by the
//! device before its lease runs out.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use palisade_test_support::{pid_alive, signal, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::watchdog::WatchdogDevice;

/// ERROR lines a failing required watchdog and a lost leader legitimately log.
const EXPECTED_ERRORS: &[&str] = &[
    "Configuration requires watchdog",
    "Error communicating with DCS",
    "failed to update leader lock",
    "Request failed to",
];

fn metric(cluster: &Cluster, node: &str, name: &str) -> Option<String> {
    let text = cluster.node(node).get("/metrics").ok()?.body;
    text.lines().find(|l| l.starts_with(&format!("{name}{{"))).and_then(|l| l.rsplit(' ').next()).map(String::from)
}

#[test]
fn the_device_is_fed_while_leading_follows_the_ttl_and_is_closed_on_pause_and_shutdown() {
    let spec = ClusterSpec {
        nodes: 1,
        ttl: 10,
        loop_wait: 1,
        node_extra: |_| {
            "watchdog:\n  mode: required\n  driver: testing\n  device: watchdog.node1.fifo\n  safety_margin: 5\n".into()
        },
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::prepare("wd-lead", spec);
    let device = WatchdogDevice::start(&cluster.dir().join("watchdog.node1.fifo"));
    cluster.start_node(0);
    cluster.wait_for_leader(Duration::from_secs(60));

    // Opened and fed while leading, with ttl - safety_margin.
    let s = device.wait("pinged with a 5 s timeout", Duration::from_secs(20), |s| {
        s.connected && s.timeouts == [5] && s.pings.len() >= 3
    });
    assert_eq!(s.timeout, 5);
    let status = cluster.node("node1").get("/patroni").unwrap().json();
    assert!(status.get("watchdog_failed").is_none(), "{status}");
    assert_eq!(metric(&cluster, "node1", "palisade_watchdog_running").as_deref(), Some("1"));
    assert_eq!(metric(&cluster, "node1", "palisade_watchdog_failed").as_deref(), Some("0"));
    assert!(cluster.node("node1").log().contains("activated with 5 second timeout, timing slack 4 seconds"));

    // A new ttl: the next keepalive sets ttl - safety_margin again.
    let r = cluster.node("node1").call("PATCH", "/config", Some(r#"{"ttl": 12}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    device.wait("reconfigured to 7 s", Duration::from_secs(20), |s| s.timeout == 7 && s.connected);
    assert!(cluster.node("node1").log().contains("updated with 7 second timeout, timing slack 6 seconds"));

    // Pause: closed with the magic close, and left alone.
    device.reset();
    let r = cluster.node("node1").call("PATCH", "/config", Some(r#"{"pause": true}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    device.wait("closed on pause", Duration::from_secs(10), |s| s.magic_closes == 1 && !s.armed);
    let pings = device.state().pings.len();
    std::thread::sleep(Duration::from_secs(3));
    let s = device.state();
    assert_eq!((s.pings.len(), s.armed), (pings, false), "fed while paused: {s:?}");
    assert_eq!(metric(&cluster, "node1", "palisade_watchdog_running").as_deref(), Some("0"));

    // Resume: opened and fed again.
    device.reset();
    let opened = device.state().opened;
    let r = cluster.node("node1").call("PATCH", "/config", Some(r#"{"pause": null}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    device.wait("fed again after resume", Duration::from_secs(20), |s| {
        s.opened > opened && s.armed && s.pings.len() >= 2 && s.timeouts == [7]
    });

    // Clean shutdown: closed with the magic close.
    device.reset();
    assert!(cluster.stop_node("node1", Duration::from_secs(60)), "node1 did not stop");
    let s = device.wait("closed on shutdown", Duration::from_secs(10), |s| s.magic_closes == 1 && !s.connected);
    assert!(!s.armed);
    // Fed in time all along.
    assert!(s.fired.is_none(), "the device fired while the node was healthy: {s:?}");
}

#[test]
fn a_node_whose_required_watchdog_fails_never_leads() {
    // node2: the Linux driver on a device that does not exist (unusable
    // from the start); node3: the testing driver on a FIFO nobody reads
    // (there and writable, but it cannot be opened).
    let spec = ClusterSpec {
        ttl: 5,
        loop_wait: 1,
        node_extra: |i| match i {
            1 => "watchdog:\n  mode: required\n  device: /nonexistent/palisade-watchdog\n".into(),
            2 => "watchdog:\n  mode: required\n  driver: testing\n  device: watchdog.node3.fifo\n  safety_margin: 2\n"
                .into(),
            _ => "watchdog:\n  mode: 'off'\n".into(),
        },
        allowed_errors: EXPECTED_ERRORS.to_vec(),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::prepare("wd-fail", spec);
    let fifo = cluster.dir().join("watchdog.node3.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    palisade_test_support::chown_to_test_user(&fifo);
    cluster.start_node(0);
    cluster.wait_for_leader(Duration::from_secs(60));
    cluster.start_node(1);
    cluster.start_node(2);
    cluster.wait_streaming("node1", 2, Duration::from_secs(90));

    let failed =
        |c: &Cluster, node: &str| c.node(node).get("/patroni").ok().map(|r| r.json()["watchdog_failed"] == true);
    assert_eq!(failed(&cluster, "node2"), Some(true), "an unusable required watchdog shows in /patroni");
    assert_eq!(metric(&cluster, "node2", "palisade_watchdog_failed").as_deref(), Some("1"));
    assert_eq!(failed(&cluster, "node3"), Some(false), "node3's device looks usable until it is opened");

    cluster.mark("the leader dies");
    cluster.kill9("node1", true);
    // Neither replica may take the lock or become the primary: watch for
    // four times the ttl.
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let leader = cluster.leader();
        assert!(leader.as_deref().is_none_or(|l| l == "node1"), "{leader:?} took the lock:\n{}", cluster.logs());
        for n in ["node2", "node3"] {
            let in_recovery = cluster.node(n).sql("SELECT pg_is_in_recovery()");
            assert_ne!(in_recovery.as_deref(), Ok("f"), "{n} became a primary:\n{}", cluster.logs());
            if let Ok(r) = cluster.node(n).get("/patroni") {
                assert_ne!(r.json()["role"], "primary", "{n}: {}", r.body);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        cluster
            .node("node3")
            .log_after("the leader dies")
            .contains("Not promoting self because watchdog could not be activated"),
        "{}",
        cluster.node("node3").log()
    );
    assert!(cluster.node("node2").log_after("the leader dies").contains("Watchdog device is not usable"));
    // Once its device failed, node3 is not watchdog capable either.
    assert_eq!(failed(&cluster, "node3"), Some(true));
    assert!(cluster.leader().is_none_or(|l| l == "node1"), "leader: {:?}", cluster.leader());
}

/// The expiry of node1's leader key as etcd's v2 store holds it (the last
/// renewal plus ttl), `None` once the key is gone or another member holds
/// it (node2 races on the watch event, so the key may be absent for less
/// time than one poll takes).
fn leader_expiration(cluster: &Cluster, client: &palisade_tests::etcd::RawV2Client) -> Option<SystemTime> {
    let r = client.request("GET", &format!("/v2/keys{}", cluster.key("leader")), None);
    if r.body["node"]["value"].as_str() != Some("node1") {
        return None;
    }
    let text = r.body["node"]["expiration"].as_str()?;
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(SystemTime::from(t.with_timezone(&chrono::Utc)))
}

#[test]
fn a_hung_leader_is_fenced_by_its_watchdog_before_its_lease_runs_out() {
    // etcd's v2 store tells when the leader key expires: the last renewal
    // plus ttl, to the nanosecond.
    let spec = ClusterSpec {
        dcs: palisade_tests::dcs::ETCD,
        nodes: 2,
        ttl: 5,
        loop_wait: 1,
        node_extra: |i| match i {
            0 => "watchdog:\n  mode: required\n  driver: testing\n  device: watchdog.node1.fifo\n  safety_margin: 2\n"
                .into(),
            _ => "watchdog:\n  mode: 'off'\n".into(),
        },
        allowed_errors: EXPECTED_ERRORS.to_vec(),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::prepare("wd-hang", spec);
    let device = WatchdogDevice::start(&cluster.dir().join("watchdog.node1.fifo"));
    cluster.start_node(0);
    cluster.wait_for_leader(Duration::from_secs(60));
    cluster.start_node(1);
    cluster.wait_streaming("node1", 1, Duration::from_secs(90));
    let timeout = device.wait("fed", Duration::from_secs(20), |s| !s.timeouts.is_empty() && s.pings.len() >= 3).timeout;

    let port: u16 = cluster.dcs_url().rsplit(':').next().unwrap().parse().unwrap();
    let etcd = palisade_tests::etcd::RawV2Client::new(port);
    let postmaster = cluster.node("node1").postmaster_pid().expect("node1's postmaster");
    // Firing is what a reboot does to PostgreSQL.
    device.on_fire(move || signal(postmaster, Signal::SIGKILL));

    let daemon = cluster.node("node1").daemon_pid().unwrap();
    signal(daemon, Signal::SIGSTOP);
    let stopped = Instant::now();
    // The lease as the daemon left it: follow the key until it expires.
    let mut expires = None;
    let gone = wait_until(Duration::from_secs(20), || match leader_expiration(&cluster, &etcd) {
        Some(e) => {
            expires = Some(e);
            false
        }
        None => true,
    });
    assert!(gone, "the leader key of a hung daemon did not expire");
    let expires = expires.expect("the leader key had an expiration");
    let s = device.wait("fired", Duration::from_secs(10), |s| s.fired.is_some());
    let (fired_at, fired_wall) = s.fired.unwrap();

    // Keepalives stopped with the daemon.
    let late: Vec<_> = s.pings.iter().filter(|p| **p > stopped + Duration::from_millis(500)).collect();
    assert!(late.is_empty(), "{} keepalive(s) after the daemon was stopped", late.len());
    let last_ping = *s.pings.iter().max().unwrap();
    assert!(fired_at > last_ping + Duration::from_secs(3), "fired before the timeout ran out");
    // The order that makes a short ttl safe: fenced, then the lease ends.
    assert!(
        fired_wall < expires,
        "the watchdog fired {:?} after the lease expired",
        fired_wall.duration_since(expires).unwrap_or_default()
    );
    assert!(wait_until(Duration::from_secs(10), || !pid_alive(postmaster)), "the fenced postmaster survived");
    assert_eq!(timeout, 3, "ttl 5 - safety_margin 2");

    // The replica takes over once the lease is gone.
    let leader = cluster.wait_for_new_leader("node1", Duration::from_secs(60));
    assert_eq!(leader, "node2");
    eprintln!(
        "watchdog fired {:.2} s before the lease expired",
        expires.duration_since(fired_wall).unwrap_or_default().as_secs_f64()
    );
}

#[test]
fn a_switchover_disarms_the_old_leader_and_arms_the_new_one() {
    let spec = ClusterSpec {
        nodes: 2,
        ttl: 5,
        loop_wait: 1,
        node_extra: |i| {
            format!(
                "watchdog:\n  mode: required\n  driver: testing\n  device: watchdog.node{}.fifo\n  safety_margin: 2\n",
                i + 1
            )
        },
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::prepare("wd-switch", spec);
    let devices: Vec<WatchdogDevice> =
        (1..=2).map(|i| WatchdogDevice::start(&cluster.dir().join(format!("watchdog.node{i}.fifo")))).collect();
    cluster.start_node(0);
    cluster.wait_for_leader(Duration::from_secs(60));
    cluster.start_node(1);
    cluster.wait_streaming("node1", 1, Duration::from_secs(90));
    devices[0].wait("fed on the leader", Duration::from_secs(20), |s| s.armed && s.pings.len() >= 2);
    let s = devices[1].state();
    assert_eq!((s.opened, s.pings.len()), (0, 0), "a replica's device is left alone: {s:?}");

    let running = wait_until(Duration::from_secs(30), || {
        cluster.node("node2").get("/patroni").is_ok_and(|r| r.json()["state"] == "running")
    });
    assert!(running, "node2 does not say it runs");
    let r = cluster.node("node1").call("POST", "/switchover", Some(r#"{"leader": "node1", "candidate": "node2"}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    cluster.wait_for_new_leader("node1", Duration::from_secs(60));
    let old = devices[0].wait("closed on demotion", Duration::from_secs(20), |s| s.magic_closes >= 1 && !s.armed);
    let new = devices[1].wait("fed on the new leader", Duration::from_secs(20), |s| s.armed && s.pings.len() >= 2);
    assert_eq!(new.timeouts.first(), Some(&3));
    // The old leader's device stays closed while it follows.
    let pings = old.pings.len();
    std::thread::sleep(Duration::from_secs(3));
    let s = devices[0].state();
    assert_eq!((s.pings.len(), s.armed), (pings, false), "{s:?}");
    assert!(devices.iter().all(|d| d.state().fired.is_none()), "a device fired during a switchover");
}
