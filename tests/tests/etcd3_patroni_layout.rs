//! The etcd3 plugin writes what Patroni 4.1 writes, where Patroni writes
//! it, and reads what Patroni wrote: checked on the raw keys of a real
//! etcd. Also its configuration through the real loader, and SRV
//! discovery behind a DNS test double.

use std::time::Duration;

use palisade_plugin_api::{DcsParams, ErrorKind};
use palisade_test_support::Staging;
use palisade_tests::conformance::{DcsFixture, MEMBER_JSON};
use palisade_tests::dns_double::{DnsDouble, Question, Zone};
use palisade_tests::etcd::RawKv;
use palisade_tests::etcd3::Etcd3Fixture;

const CONFIG: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true}}"#;
const SYNC: &str = r#"{"leader":"node1","quorum":0,"sync_standby":"node2"}"#;
const HISTORY: &str = r#"[[1,25165992,"no recovery target specified","2026-01-31T12:00:00.123456+00:00","node1"]]"#;
const STATUS: &str = r#"{"optime":67108960,"slots":{"node2":67108960},"retain_slots":["node1","node2"]}"#;
const FAILSAFE: &str = r#"{"node1":"http://127.0.0.1:8008/patroni"}"#;
const FAILOVER: &str = r#"{"leader":"node1","member":"node2"}"#;
const SYSID: &str = "7000000000000000001";

fn find<'a>(kvs: &'a [RawKv], key: &str) -> &'a RawKv {
    kvs.iter().find(|kv| kv.key == key).unwrap_or_else(|| panic!("no key {key} in {kvs:?}"))
}

#[test]
fn keys_and_values_are_what_patroni_writes() {
    let f = Etcd3Fixture::start("layout");
    let d = f.new_dcs("node1");
    assert!(d.attempt_to_acquire_leader().unwrap());
    assert!(d.touch_member(MEMBER_JSON).unwrap());
    assert!(d.initialize(true, SYSID).unwrap());
    assert!(d.set_config_value(CONFIG, None).unwrap());
    assert!(d.set_sync_state_value(SYNC, None).unwrap().is_some());
    assert!(d.set_history_value(HISTORY).unwrap());
    assert!(d.write_status(STATUS).unwrap());
    assert!(d.write_failsafe(FAILSAFE).unwrap());
    assert!(d.set_failover_value(FAILOVER, None).unwrap());

    let kvs = f.raw().get_prefix("/service/demo/");
    let keys: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/service/demo/config",
            "/service/demo/failover",
            "/service/demo/failsafe",
            "/service/demo/history",
            "/service/demo/initialize",
            "/service/demo/leader",
            "/service/demo/members/node1",
            "/service/demo/status",
            "/service/demo/sync",
        ]
    );
    let expected: [(&str, &str); 9] = [
        ("config", CONFIG),
        ("failover", FAILOVER),
        ("failsafe", FAILSAFE),
        ("history", HISTORY),
        ("initialize", SYSID),
        ("leader", "node1"),
        ("members/node1", MEMBER_JSON),
        ("status", STATUS),
        ("sync", SYNC),
    ];
    for (key, value) in expected {
        let kv = find(&kvs, &format!("/service/demo/{key}"));
        assert_eq!(String::from_utf8_lossy(&kv.value), value, "{key}");
    }

    // The leader and member keys share one lease of `ttl`; nothing else
    // has a lease.
    let leader = find(&kvs, "/service/demo/leader");
    let member = find(&kvs, "/service/demo/members/node1");
    assert_ne!(leader.lease, 0);
    assert_eq!(leader.lease, member.lease);
    assert_eq!(f.raw().lease_granted_ttl(leader.lease), Some(4));
    for kv in kvs.iter().filter(|kv| !kv.key.ends_with("/leader") && !kv.key.contains("/members/")) {
        assert_eq!(kv.lease, 0, "{} must not expire", kv.key);
    }

    // The snapshot's versions are the mod revisions, the session the lease.
    let s = d.get_cluster().unwrap();
    let l = s.leader.unwrap();
    assert_eq!(l.session, leader.lease.to_string());
    assert_eq!(l.version, leader.mod_revision.to_string());
    assert_eq!(s.members[0].session, member.lease.to_string());
    assert_eq!(s.config.unwrap().version, find(&kvs, "/service/demo/config").mod_revision.to_string());
    assert_eq!(s.sync.unwrap().version, find(&kvs, "/service/demo/sync").mod_revision.to_string());

    // A healthy update_leader writes nothing (the keep-alive renews it),
    // so replicas watching the key are not woken every cycle.
    assert!(d.update_leader(Some(&l)).unwrap());
    assert_eq!(f.raw().get("/service/demo/leader").unwrap().mod_revision, leader.mod_revision);
}

#[test]
fn citus_groups_live_under_their_number() {
    let f = Etcd3Fixture::start("citus");
    let coordinator = f.dcs_with(f.params("coord1", Some(0)));
    let worker = f.dcs_with(f.params("work1", Some(2)));
    let plain = f.new_dcs("plain");
    assert!(coordinator.attempt_to_acquire_leader().unwrap());
    assert!(worker.attempt_to_acquire_leader().unwrap());
    assert!(worker.touch_member(MEMBER_JSON).unwrap());
    assert!(worker.set_config_value("{}", None).unwrap());
    let keys: Vec<String> = f.raw().get_prefix("/service/demo/").into_iter().map(|kv| kv.key).collect();
    assert_eq!(
        keys,
        ["/service/demo/0/leader", "/service/demo/2/config", "/service/demo/2/leader", "/service/demo/2/members/work1"]
    );
    let s = worker.get_cluster().unwrap();
    assert_eq!(s.leader.unwrap().name, "work1");
    assert_eq!(s.members.len(), 1);
    assert_eq!(coordinator.get_cluster().unwrap().leader.unwrap().name, "coord1");
    assert!(coordinator.get_cluster().unwrap().config.is_none(), "groups do not see each other's keys");
    assert_eq!(plain.get_cluster().unwrap(), Default::default(), "group keys are not cluster keys");
}

#[test]
fn a_patroni_node_shares_the_cluster() {
    let f = Etcd3Fixture::start("shared");
    // What a Patroni leader leaves: its leader and member keys on its lease.
    let lease = f.raw().put_with_lease("/service/demo/leader", b"patroni1", 30);
    f.raw().put("/service/demo/config", CONFIG.as_bytes());
    let d = f.new_dcs("palisade1");
    let s = d.get_cluster().unwrap();
    let leader = s.leader.clone().unwrap();
    assert_eq!(leader.name, "patroni1");
    assert_eq!(leader.session, lease.to_string());
    assert_eq!(s.config.unwrap().value, CONFIG);
    let before = f.raw().get("/service/demo/leader").unwrap();
    assert!(!d.attempt_to_acquire_leader().unwrap());
    assert!(!d.update_leader(Some(&leader)).unwrap());
    assert!(!d.delete_leader(Some(&leader)).unwrap());
    assert_eq!(f.raw().get("/service/demo/leader").unwrap(), before, "Patroni's lock is left alone");
}

#[test]
fn delete_cluster_keeps_other_clusters() {
    let f = Etcd3Fixture::start("scopes");
    f.raw().put("/service/demo2/config", b"{}");
    f.raw().put("/other/demo/config", b"{}");
    let d = f.new_dcs("n1");
    assert!(d.set_config_value("{}", None).unwrap());
    assert!(d.delete_cluster().unwrap());
    let left: Vec<String> =
        ["/service/", "/other/"].iter().flat_map(|p| f.raw().get_prefix(p)).map(|kv| kv.key).collect();
    assert_eq!(left, ["/service/demo2/config", "/other/demo/config"]);
}

#[test]
fn a_new_ttl_moves_the_keys_to_a_new_lease() {
    let f = Etcd3Fixture::start("ttl");
    let d = f.new_dcs("n1");
    assert!(d.attempt_to_acquire_leader().unwrap());
    assert!(d.touch_member(MEMBER_JSON).unwrap());
    let old = f.raw().get("/service/demo/leader").unwrap().lease;
    let mut timing = f.timing();
    timing.ttl = Duration::from_secs(7);
    d.set_timing(timing).unwrap();
    assert!(d.watch(None, Duration::from_secs(10)).unwrap(), "the next watch returns at once");
    let s = d.get_cluster().unwrap();
    assert!(d.update_leader(s.leader.as_ref()).unwrap());
    assert!(d.touch_member(MEMBER_JSON).unwrap());
    let leader = f.raw().get("/service/demo/leader").unwrap();
    let member = f.raw().get("/service/demo/members/n1").unwrap();
    assert_ne!(leader.lease, old);
    assert_eq!(member.lease, leader.lease);
    assert_eq!(f.raw().lease_granted_ttl(leader.lease), Some(7));
}

#[test]
fn authentication_with_username_and_password() {
    let f = Etcd3Fixture::start("auth");
    f.raw().enable_auth("s3cret");
    let with = |section: String| {
        let params = DcsParams { section_json: section, ..f.params("n1", None) };
        f.dcs_with(params)
    };
    let host = f.etcd().host_port();
    let good = with(format!(r#"{{"host":"{host}","username":"root","password":"s3cret"}}"#));
    assert!(good.attempt_to_acquire_leader().unwrap());
    assert_eq!(good.get_cluster().unwrap().leader.unwrap().name, "n1");
    let in_url = with(format!(r#"{{"url":"http://root:s3cret@{host}"}}"#));
    assert!(in_url.get_cluster().unwrap().leader.is_some());
    let bad = with(format!(r#"{{"host":"{host}","username":"root","password":"wrong"}}"#));
    let err = bad.get_cluster().unwrap_err();
    assert_eq!(err.kind, ErrorKind::DcsUnavailable, "{err}");
    let anonymous = with(format!(r#"{{"host":"{host}"}}"#));
    assert_eq!(anonymous.get_cluster().unwrap_err().kind, ErrorKind::DcsUnavailable);
}

#[test]
fn every_way_to_name_the_endpoints_works() {
    let f = Etcd3Fixture::start("endpoints");
    let host = f.etcd().host_port();
    let port = host.rsplit_once(':').unwrap().1.to_string();
    for section in [
        format!(r#"{{"host":"{host}"}}"#),
        format!(r#"{{"host":"127.0.0.1","port":{port}}}"#),
        format!(r#"{{"hosts":["{host}"]}}"#),
        format!(r#"{{"hosts":"{host},{host}"}}"#),
        format!(r#"{{"url":"http://{host}"}}"#),
        format!(r#"{{"proxy":"http://{host}"}}"#),
        format!(r#"{{"hosts":"{host}","use_proxies":true}}"#),
        format!(r#"{{"hosts":"{host}","protocol":"http","retry_timeout":3}}"#),
    ] {
        let d = f.dcs_with(DcsParams { section_json: section.clone(), ..f.params("n1", None) });
        assert!(d.write_status("{}").unwrap(), "{section}");
        assert_eq!(d.get_cluster().unwrap().status.as_deref(), Some("{}"), "{section}");
    }
}

#[test]
fn a_bad_section_is_a_config_error_naming_the_key() {
    let f = Etcd3Fixture::start("badconfig");
    for (section, message) in [
        (r#"{"hosts":"127.0.0.1:2379,x:y"}"#, "etcd3.hosts: expected host:port, found 'x:y'"),
        (r#"{"url":"127.0.0.1:2379"}"#, "etcd3.url: expected http(s)://host:port, found '127.0.0.1:2379'"),
        (
            r#"{"host":"a","cacert":"/nonexistent.pem","protocol":"https"}"#,
            "etcd3.cacert: cannot read '/nonexistent.pem'",
        ),
        (r#"{}"#, "etcd3: one of host, hosts, url, proxy or srv must be set"),
    ] {
        let params = DcsParams { section_json: section.into(), ..f.params("n1", None) };
        let err = match f.plugin_new_dcs(params) {
            Ok(_) => panic!("{section} must be refused"),
            Err(e) => e,
        };
        assert_eq!(err.kind, ErrorKind::Config, "{section}: {err}");
        assert!(err.message.starts_with(message), "{section}: {}", err.message);
    }
}

/// `srv` end to end for the etcd3 plugin: palisadectl, in a mount namespace
/// whose `/etc/resolv.conf` names the DNS test double, finds the real etcd
/// through `_etcd-client` records, and through `_etcd-server` records alone:
/// those lead to etcd's peer port, whose `/members` lists the client URLs
/// (a dead peer before it is skipped). `srv_suffix` applies to the peer
/// names too.
#[test]
fn srv_finds_etcd_through_client_and_peer_records() {
    let f = Etcd3Fixture::start("srv");
    let n1 = f.new_dcs("n1");
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert!(n1.touch_member(MEMBER_JSON).unwrap());
    let (port, peer_port) = {
        let etcd = f.etcd();
        (etcd.client_port(), etcd.peer_port())
    };
    let dead = palisade_test_support::free_port();
    let host = "etcd-a.palisade.test";
    let zone = Zone::default()
        .a(host, std::net::Ipv4Addr::LOCALHOST)
        .srv("_etcd-client._tcp.client.palisade.test", host, port)
        .srv("_etcd-server._tcp.peers.palisade.test", host, dead)
        .srv("_etcd-server._tcp.peers.palisade.test", host, peer_port)
        .srv("_etcd-server-foo._tcp.peers.palisade.test", host, dead);
    let dns = DnsDouble::start("v3-srv", zone);
    let staging = Staging::new("etcd3-srv");
    let list = |section: &str| dns.palisadectl(&staging, &format!("etcd3: {section}"), &["list", "-f", "json"]);
    let srv_asked = |qs: &[Question]| qs.iter().filter(|q| q.qtype == 33).map(|q| q.name.clone()).collect::<Vec<_>>();
    let leader_listed = |out: &str| {
        let listed: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
        listed[0]["Member"] == "n1" && listed[0]["Role"] == "Leader"
    };

    let (ok, out, err, qs) = list(r#"{"srv":"client.palisade.test"}"#);
    assert!(ok, "palisadectl list through _etcd-client records failed ({qs:?}):\n{out}\n{err}");
    assert!(leader_listed(&out), "{out}");
    assert_eq!(
        srv_asked(&qs)[..2],
        ["_etcd-client-ssl._tcp.client.palisade.test", "_etcd-client._tcp.client.palisade.test"]
    );

    let (ok, out, err, qs) = list(r#"{"srv":"peers.palisade.test"}"#);
    assert!(ok, "palisadectl list through _etcd-server records failed ({qs:?}):\n{out}\n{err}");
    assert!(leader_listed(&out), "{out}");
    assert_eq!(
        srv_asked(&qs)[..6],
        [
            "_etcd-client-ssl._tcp.peers.palisade.test",
            "_etcd-client._tcp.peers.palisade.test",
            "_etcd-ssl._tcp.peers.palisade.test",
            "_etcd._tcp.peers.palisade.test",
            "_etcd-server-ssl._tcp.peers.palisade.test",
            "_etcd-server._tcp.peers.palisade.test",
        ],
        "{qs:?}"
    );

    // With the suffix only the dead peer is named, and there is no fallback.
    let (ok, out, err, qs) = list(r#"{"srv":"peers.palisade.test","srv_suffix":"foo"}"#);
    assert!(!ok, "a dead peer gives no endpoint:\n{out}");
    assert!(err.contains("cannot read cluster demo from the DCS"), "{err}");
    assert_eq!(srv_asked(&qs)[5], "_etcd-server-foo._tcp.peers.palisade.test", "{qs:?}");
}
