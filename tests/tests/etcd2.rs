//! The etcd v2 plugin (`dcs-etcd`) on a real etcd serving the v2 API:
//! what the conformance suite does not cover. Patroni's layout with TTLs,
//! Citus groups, TLS with a client certificate, basic authentication, a
//! host list with a dead member, a watch whose `waitIndex` etcd has
//! forgotten, and SRV discovery through a DNS test double.

use std::path::Path;
use std::time::{Duration, Instant};

use palisade_plugin_api::{DcsParams, ErrorKind};
use palisade_test_support::Staging;
use palisade_tests::certs::{ca, leaf};
use palisade_tests::conformance::{DcsFixture, MEMBER_JSON};
use palisade_tests::dns_double::{DnsDouble, Question, Zone};
use palisade_tests::etcd::{EtcdServer, EtcdTls};
use palisade_tests::etcd2::Etcd2Fixture;
use palisade_tests::plugins::{open_dcs_plugin, test_timing};

/// The leader and member keys carry the TTL; the other keys do not; the
/// values are Patroni's; update_leader rewrites the key (new
/// modifiedIndex, TTL renewed).
#[test]
fn patroni_layout_with_ttls() {
    let f = Etcd2Fixture::start("v2-layout");
    let n1 = f.new_dcs("n1");
    assert!(n1.initialize(true, "7000000000000000001").unwrap());
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert!(n1.touch_member(MEMBER_JSON).unwrap());
    assert!(n1.set_config_value(r#"{"ttl":4}"#, None).unwrap());
    let raw = f.raw();
    let ttl = test_timing().ttl.as_secs() as i64;
    let leader = raw.get("/service/demo/leader").expect("the leader key");
    assert_eq!(leader.value, b"n1");
    assert!(leader.ttl.is_some_and(|t| t > 0 && t <= ttl), "leader ttl {:?}", leader.ttl);
    let member = raw.get("/service/demo/members/n1").expect("the member key");
    assert_eq!(member.value, MEMBER_JSON.as_bytes());
    assert!(member.ttl.is_some_and(|t| t > 0 && t <= ttl), "member ttl {:?}", member.ttl);
    let init = raw.get("/service/demo/initialize").expect("the initialize key");
    assert_eq!((init.value.as_slice(), init.ttl), (b"7000000000000000001".as_slice(), None));
    assert_eq!(raw.get("/service/demo/config").map(|n| n.ttl), Some(None));

    // The snapshot's versions are modifiedIndexes.
    let s = n1.get_cluster().unwrap();
    assert_eq!(s.leader.as_ref().map(|l| l.version.clone()), Some(leader.modified_index.to_string()));
    assert!(n1.update_leader(s.leader.as_ref()).unwrap());
    let renewed = raw.get("/service/demo/leader").expect("the leader key");
    assert!(renewed.modified_index > leader.modified_index, "update_leader rewrites the key");
    assert_eq!(renewed.value, b"n1");

    // Somebody else's leader key is not renewed.
    raw.put_with_ttl("/service/demo/leader", b"n2", 30);
    assert!(!n1.update_leader(None).unwrap());
    assert_eq!(raw.get("/service/demo/leader").map(|n| n.value).as_deref(), Some(b"n2".as_slice()));
}

/// A Citus group lives under `<scope>/<group>/`, and sees only its keys.
#[test]
fn citus_groups() {
    let f = Etcd2Fixture::start("v2-citus");
    let coordinator = f.dcs_with(f.params("c1", Some(0)));
    let worker = f.dcs_with(f.params("w1", Some(1)));
    assert!(coordinator.attempt_to_acquire_leader().unwrap());
    assert!(worker.attempt_to_acquire_leader().unwrap());
    assert!(worker.touch_member(MEMBER_JSON).unwrap());
    let keys: Vec<String> = f.raw().get_prefix("/service/demo/").into_iter().map(|n| n.key).collect();
    assert_eq!(keys, ["/service/demo/0/leader", "/service/demo/1/leader", "/service/demo/1/members/w1"]);
    let s = worker.get_cluster().unwrap();
    assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("w1"));
    assert!(worker.delete_cluster().unwrap());
    let left: Vec<String> = f.raw().get_prefix("/service/demo/").into_iter().map(|n| n.key).collect();
    assert_eq!(left, ["/service/demo/0/leader"], "delete_cluster of a group leaves the others");
}

/// etcd keeps the last 1000 events: a watch from an index older than that
/// gets "event index cleared" and returns at once so the loop reads anew.
#[test]
fn watch_from_a_cleared_index_returns_at_once() {
    let f = Etcd2Fixture::start("v2-cleared");
    let owner = f.new_dcs("owner");
    let watcher = f.new_dcs("watcher");
    assert!(owner.attempt_to_acquire_leader().unwrap());
    let leader = watcher.get_cluster().unwrap().leader.expect("a leader key");
    // 1100 events elsewhere push the snapshot's index out of etcd's history.
    let raw = f.raw();
    for i in 0..1100 {
        raw.put("/other/key", format!("{i}").as_bytes());
    }
    let started = Instant::now();
    assert!(watcher.watch(Some(&leader.version), Duration::from_secs(20)).unwrap(), "a cleared index wakes the watch");
    assert!(started.elapsed() < Duration::from_secs(10), "it returned after {:?}", started.elapsed());
    // A fresh snapshot lets it wait again.
    let leader = watcher.get_cluster().unwrap().leader.expect("a leader key");
    assert!(!watcher.watch(Some(&leader.version), Duration::from_secs(1)).unwrap());
}

/// An empty cluster in a busy etcd: the watch waits from etcd's current
/// index (which the "key not found" answer carries), so it sleeps out its
/// timeout rather than meeting a cleared index and waking at once.
#[test]
fn watch_on_an_empty_cluster_in_a_busy_etcd_sleeps() {
    let f = Etcd2Fixture::start("v2-empty");
    let raw = f.raw();
    for i in 0..1100 {
        raw.put("/other/key", format!("{i}").as_bytes());
    }
    let watcher = f.new_dcs("watcher");
    assert_eq!(watcher.get_cluster().unwrap(), Default::default());
    let started = Instant::now();
    assert!(!watcher.watch(None, Duration::from_secs(2)).unwrap(), "nothing changed");
    assert!(started.elapsed() >= Duration::from_secs(2), "returned after {:?}", started.elapsed());
}

/// Without a leader version, renewals of the leader key do not wake the
/// watch; a new leader does.
#[test]
fn watch_without_a_version_wakes_on_a_new_leader_only() {
    let f = Etcd2Fixture::start("v2-watch");
    let owner = f.new_dcs("owner");
    let other = f.new_dcs("other");
    let watcher = f.new_dcs("watcher");
    assert!(owner.attempt_to_acquire_leader().unwrap());
    watcher.get_cluster().unwrap();
    std::thread::scope(|s| {
        let renewer = s.spawn(|| {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(300));
                assert!(owner.update_leader(None).unwrap());
            }
        });
        let started = Instant::now();
        assert!(!watcher.watch(None, Duration::from_secs(2)).unwrap(), "renewals do not wake it");
        assert!(started.elapsed() >= Duration::from_secs(2));
        renewer.join().expect("renewer");
    });
    watcher.get_cluster().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            assert!(other.take_leader().unwrap());
        });
        assert!(watcher.watch(None, Duration::from_secs(20)).unwrap(), "a new leader wakes it");
    });
}

fn params(section: String) -> DcsParams {
    let mut timing = test_timing();
    timing.retry_timeout = Duration::from_secs(3);
    DcsParams {
        scope: "demo".into(),
        namespace: "/service/".into(),
        name: "n1".into(),
        group: None,
        timing,
        section_json: section,
    }
}

/// A dead member first in `hosts`: requests go on to the live one, with
/// and without `use_proxies` (without, the member list comes from etcd).
/// All members dead: a DCS error naming the cause within retry_timeout.
#[test]
fn hosts_with_a_dead_member() {
    let etcd = EtcdServer::start("v2-hosts");
    let dead = palisade_test_support::free_port();
    let plugin = open_dcs_plugin("etcd");
    for extra in ["", r#","use_proxies":true"#] {
        let section = format!(r#"{{"hosts":["127.0.0.1:{dead}","{}"]{extra}}}"#, etcd.host_port());
        let dcs = plugin.new_dcs(params(section)).unwrap();
        assert!(dcs.delete_cluster().unwrap(), "{extra}");
        assert!(dcs.attempt_to_acquire_leader().unwrap(), "{extra}");
        assert!(dcs.touch_member(MEMBER_JSON).unwrap(), "{extra}");
        let s = dcs.get_cluster().unwrap();
        assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("n1"), "{extra}");
        assert!(s.members.iter().any(|m| m.name == "n1"), "{extra}");
    }
    let nowhere = plugin.new_dcs(params(format!(r#"{{"hosts":"127.0.0.1:{dead}"}}"#))).unwrap();
    let started = Instant::now();
    let err = nowhere.get_cluster().unwrap_err();
    assert_eq!(err.kind, ErrorKind::DcsUnavailable);
    assert!(err.message.contains("not reachable within retry_timeout"), "{}", err.message);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

/// Basic authentication with v2 auth on: the right password works (in the
/// section or in `url`), a wrong one or none is a DCS error.
#[test]
fn basic_auth() {
    let etcd = EtcdServer::start("v2-auth");
    etcd.raw_v2().enable_auth("s3cret");
    let plugin = open_dcs_plugin("etcd");
    let host = etcd.host_port();
    let good = plugin.new_dcs(params(format!(r#"{{"host":"{host}","username":"root","password":"s3cret"}}"#))).unwrap();
    assert!(good.attempt_to_acquire_leader().unwrap());
    let in_url = plugin.new_dcs(params(format!(r#"{{"url":"http://root:s3cret@{host}"}}"#))).unwrap();
    assert_eq!(in_url.get_cluster().unwrap().leader.map(|l| l.name).as_deref(), Some("n1"));
    let raw = etcd.raw_v2().with_auth("root", "s3cret");
    assert_eq!(raw.get("/service/demo/leader").map(|n| n.value).as_deref(), Some(b"n1".as_slice()));

    for section in
        [format!(r#"{{"host":"{host}","username":"root","password":"wrong"}}"#), format!(r#"{{"host":"{host}"}}"#)]
    {
        let dcs = plugin.new_dcs(params(section.clone())).unwrap();
        let err = dcs.get_cluster().unwrap_err();
        assert_eq!(err.kind, ErrorKind::DcsUnavailable, "{section}");
        eprintln!("{section}: {err}");
        assert!(err.message.contains("etcd refused the request"), "{section}: {}", err.message);
        let err = dcs.write_status("{}").unwrap_err();
        assert_eq!(err.kind, ErrorKind::DcsUnavailable, "{section}");
    }
}

/// TLS: the server verified against `cacert`, a client certificate from
/// `cert`/`key` (etcd requires one here), or with the key inside `cert`.
#[test]
fn tls_with_a_client_certificate() {
    let staging = Staging::new("etcd2-tls");
    let dir = staging.path();
    ca(dir, "ca");
    ca(dir, "other-ca");
    let (server_crt, server_key) = leaf(dir, "ca", "server");
    let (client_crt, client_key) = leaf(dir, "ca", "client");
    let etcd = EtcdServer::start_tls("v2-tls", EtcdTls { ca: dir.join("ca.crt"), cert: server_crt, key: server_key });
    let plugin = open_dcs_plugin("etcd");
    let show = |p: &Path| p.display().to_string();
    let host = etcd.host_port();
    let good = plugin
        .new_dcs(params(format!(
            r#"{{"host":"{host}","protocol":"https","cacert":"{}","cert":"{}","key":"{}"}}"#,
            show(&dir.join("ca.crt")),
            show(&client_crt),
            show(&client_key)
        )))
        .unwrap();
    assert!(good.write_status(r#"{"optime":1}"#).unwrap());
    assert!(good.attempt_to_acquire_leader().unwrap());
    let s = good.get_cluster().unwrap();
    assert_eq!(s.status.as_deref(), Some(r#"{"optime":1}"#));
    assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("n1"));

    let combined = dir.join("client-combined.pem");
    let pem = [std::fs::read(&client_crt).unwrap_or_default(), std::fs::read(&client_key).unwrap_or_default()].concat();
    std::fs::write(&combined, pem).unwrap_or_else(|e| panic!("write {}: {e}", combined.display()));
    let url = etcd.client_url();
    let combined_only = plugin
        .new_dcs(params(format!(
            r#"{{"url":"{url}","cacert":"{}","cert":"{}"}}"#,
            show(&dir.join("ca.crt")),
            show(&combined)
        )))
        .unwrap();
    assert!(combined_only.get_cluster().unwrap().leader.is_some());

    // A server certificate no trusted CA signed is refused; so is a client
    // without a certificate.
    for section in [
        format!(
            r#"{{"url":"{url}","cacert":"{}","cert":"{}","key":"{}"}}"#,
            show(&dir.join("other-ca.crt")),
            show(&client_crt),
            show(&client_key)
        ),
        format!(r#"{{"url":"{url}","cacert":"{}"}}"#, show(&dir.join("ca.crt"))),
    ] {
        let dcs = plugin.new_dcs(params(section.clone())).unwrap();
        assert_eq!(dcs.get_cluster().unwrap_err().kind, ErrorKind::DcsUnavailable, "{section}");
    }
    // A client certificate without its key is a configuration error.
    let err = plugin
        .new_dcs(params(format!(r#"{{"url":"{url}","cert":"{}"}}"#, show(&dir.join("ca.crt")))))
        .map(drop)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
}

/// Configuration errors name the key under `etcd.`.
#[test]
fn configuration_errors_name_the_key() {
    let plugin = open_dcs_plugin("etcd");
    for (section, expected) in [
        (r#"{"hosts":"a:1,x:y"}"#, "etcd.hosts: expected host:port, found 'x:y'"),
        (r#"{"url":"etcd:2379"}"#, "etcd.url: expected http(s)://host:port"),
        (r#"{"host":"a","cacert":"/nonexistent/ca.pem"}"#, "etcd.cacert: cannot read '/nonexistent/ca.pem'"),
        (r#"{}"#, "etcd: one of host, hosts, url, proxy or srv must be set"),
    ] {
        let err = plugin.new_dcs(params(section.to_string())).map(drop).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config, "{section}");
        assert!(err.message.starts_with(expected), "{section}: {}", err.message);
    }
}

/// Every form of naming the endpoints reaches the same etcd.
#[test]
fn every_way_to_name_the_endpoints_works() {
    let f = Etcd2Fixture::start("v2-endpoints");
    let host = f.etcd().host_port();
    let port = host.rsplit_once(':').map(|(_, p)| p.to_string()).unwrap_or_default();
    for section in [
        format!(r#"{{"host":"{host}"}}"#),
        format!(r#"{{"host":"127.0.0.1","port":{port}}}"#),
        format!(r#"{{"hosts":["{host}"]}}"#),
        format!(r#"{{"hosts":"{host},{host}"}}"#),
        format!(r#"{{"url":"http://{host}"}}"#),
        format!(r#"{{"proxy":"http://{host}"}}"#),
        format!(r#"{{"hosts":"{host}","use_proxies":true}}"#),
        format!(r#"{{"hosts":"{host}","protocol":"http","retry_timeout":3}}"#),
        format!(r#"{{"srv":"invalid.","hosts":"{host}"}}"#),
    ] {
        let d = f.dcs_with(f.params_with("n1", None, section.clone()));
        assert!(d.write_status("{}").unwrap(), "{section}");
        assert_eq!(d.get_cluster().unwrap().status.as_deref(), Some("{}"), "{section}");
    }
}

/// A new `ttl`: the next watch returns at once, and the next writes of
/// the leader and member keys carry it.
#[test]
fn a_new_ttl_reaches_the_keys_on_the_next_cycle() {
    let f = Etcd2Fixture::start("v2-ttl");
    let d = f.new_dcs("n1");
    assert!(d.attempt_to_acquire_leader().unwrap());
    assert!(d.touch_member(MEMBER_JSON).unwrap());
    let mut timing = f.timing();
    timing.ttl = Duration::from_secs(60);
    d.set_timing(timing).unwrap();
    let started = Instant::now();
    assert!(d.watch(None, Duration::from_secs(10)).unwrap(), "the next watch returns at once");
    assert!(started.elapsed() < Duration::from_secs(5));
    let s = d.get_cluster().unwrap();
    assert!(d.update_leader(s.leader.as_ref()).unwrap());
    assert!(d.touch_member(MEMBER_JSON).unwrap());
    for key in ["/service/demo/leader", "/service/demo/members/n1"] {
        let ttl = f.raw().get(key).and_then(|n| n.ttl);
        assert!(ttl.is_some_and(|t| t > 30 && t <= 60), "{key}: ttl {ttl:?}");
    }
}

/// palisadectl `args` with a configuration of scope `demo` and the `etcd:`
/// section `section` (JSON), run where `/etc/resolv.conf` leads to `dns`:
/// whether it succeeded, its stdout and stderr, and the questions the
/// double was asked meanwhile.
fn ctl_behind_dns(
    dns: &DnsDouble,
    staging: &Staging,
    section: &str,
    args: &[&str],
) -> (bool, String, String, Vec<Question>) {
    dns.palisadectl(staging, &format!("etcd: {section}"), args)
}

/// The SRV names asked, in order.
fn srv_questions(qs: &[Question]) -> Vec<String> {
    qs.iter().filter(|q| q.qtype == 33).map(|q| q.name.clone()).collect()
}

/// `srv` and `srv_suffix` end to end: palisadectl (run in a mount
/// namespace of its own whose `/etc/resolv.conf` names a DNS test double
/// after a dead name server) finds the real etcd only through SRV records,
/// and reads and writes the cluster there. The plugin asks Patroni's names
/// in Patroni's order and stops at the first that has records; the SRV
/// target's host name is resolved through the same name servers. Peer
/// records (`_etcd-server`) lead to etcd's peer port, whose `/members`
/// lists the client URLs; peers that fail are skipped.
#[test]
fn srv_and_srv_suffix_find_etcd_through_dns() {
    let f = Etcd2Fixture::start("v2-srv");
    let n1 = f.new_dcs("n1");
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert!(n1.touch_member(MEMBER_JSON).unwrap());
    assert!(n1.set_config_value(r#"{"ttl":30}"#, None).unwrap());
    let (port, peer_port) = {
        let etcd = f.etcd();
        (etcd.client_port(), etcd.peer_port())
    };
    let dead = palisade_test_support::free_port();
    let host = "etcd-a.palisade.test";
    let zone = Zone::default()
        .a(host, std::net::Ipv4Addr::LOCALHOST)
        .srv("_etcd-client._tcp.plain.palisade.test", host, port)
        // Three clusters in one domain: only the suffix tells them apart.
        .srv("_etcd-client._tcp.multi.palisade.test", host, dead)
        .srv("_etcd-client-other._tcp.multi.palisade.test", host, dead)
        .srv("_etcd-client-foo._tcp.multi.palisade.test", host, port)
        .srv("_etcd-server._tcp.peers.palisade.test", host, peer_port)
        // Peers that fail before the one that answers: https on an http
        // peer port, a dead port, a port without /members (the client port).
        .srv("_etcd-server-ssl._tcp.badpeers.palisade.test", host, peer_port)
        .srv("_etcd-server._tcp.badpeers.palisade.test", host, dead)
        .srv("_etcd-server._tcp.badpeers.palisade.test", host, port)
        .srv("_etcd-server._tcp.badpeers.palisade.test", host, peer_port)
        .srv("_etcd-server._tcp.deadpeers.palisade.test", host, dead);
    let dns = DnsDouble::start("v2-srv", zone);
    let staging = Staging::new("etcd2-srv");
    let run = |section: &str, args: &[&str]| ctl_behind_dns(&dns, &staging, section, args);
    let asked_a = |qs: &[Question]| qs.iter().any(|q| q.qtype == 1 && q.name == host);

    // `srv`: `_etcd-client-ssl` has no records, `_etcd-client` has.
    let (ok, out, err, qs) = run(r#"{"srv":"plain.palisade.test"}"#, &["list", "-f", "json"]);
    assert!(
        ok,
        "palisadectl list with srv failed (the SRV target {host} is resolved by glibc, which must ask DNS: \
         nsswitch `hosts: files dns`; asked {qs:?}):\n{out}\n{err}"
    );
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(listed[0]["Member"], "n1", "{out}");
    assert_eq!(listed[0]["Role"], "Leader", "{out}");
    assert_eq!(
        srv_questions(&qs)[..2],
        ["_etcd-client-ssl._tcp.plain.palisade.test", "_etcd-client._tcp.plain.palisade.test"],
        "{qs:?}"
    );
    assert!(asked_a(&qs), "the SRV target is resolved through the test resolv.conf: {qs:?}");

    // `srv_suffix`: the suffixed records win; the plain and the other
    // suffix's records (a dead port) are not asked for.
    let (ok, out, err, qs) =
        run(r#"{"srv":"multi.palisade.test","srv_suffix":"foo"}"#, &["edit-config", "--set", "loop_wait=7", "--force"]);
    assert!(ok, "palisadectl edit-config with srv_suffix failed:\n{out}\n{err}");
    let config = f.raw().get("/service/demo/config").map(|n| String::from_utf8_lossy(&n.value).into_owned());
    assert!(config.as_deref().is_some_and(|c| c.contains(r#""loop_wait":7"#)), "config written: {config:?}");
    let asked = srv_questions(&qs);
    assert_eq!(
        asked[..2],
        ["_etcd-client-ssl-foo._tcp.multi.palisade.test", "_etcd-client-foo._tcp.multi.palisade.test"],
        "{qs:?}"
    );
    assert!(asked.iter().all(|n| n.contains("-foo.")), "only suffixed names: {asked:?}");
    assert!(asked_a(&qs), "{qs:?}");

    // Peer records only: every name of Patroni's list is asked, in its
    // order; the peer port's /members gives the client URL.
    let (ok, out, err, qs) = run(r#"{"srv":"peers.palisade.test"}"#, &["list", "-f", "json"]);
    assert!(ok, "palisadectl list through _etcd-server records failed ({qs:?}):\n{out}\n{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((listed[0]["Member"].as_str(), listed[0]["Role"].as_str()), (Some("n1"), Some("Leader")), "{out}");
    assert_eq!(
        srv_questions(&qs)[..6],
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

    // Failing peers are skipped (and logged with their record and URL: the
    // unit tests of etcd-common's srv module see those messages): the
    // `_etcd-server-ssl` one (no TLS there), then a dead port and the
    // client port (no /members) before the peer port.
    let (ok, out, err, qs) =
        run(r#"{"srv":"badpeers.palisade.test"}"#, &["edit-config", "--set", "loop_wait=8", "--force"]);
    assert!(ok, "palisadectl edit-config past failing peers failed ({qs:?}):\n{out}\n{err}");
    let config = f.raw().get("/service/demo/config").map(|n| String::from_utf8_lossy(&n.value).into_owned());
    assert!(config.as_deref().is_some_and(|c| c.contains(r#""loop_wait":8"#)), "config written: {config:?}");

    // Only a dead peer and no fallback: the DCS is not reachable.
    let (ok, out, err, qs) = run(r#"{"srv":"deadpeers.palisade.test"}"#, &["list", "-f", "json"]);
    assert!(!ok, "a dead peer gives no endpoint:\n{out}");
    assert!(err.contains("cannot read cluster demo from the DCS"), "{err}");
    let asked = srv_questions(&qs);
    assert_eq!(asked[5], "_etcd-server._tcp.deadpeers.palisade.test", "{qs:?}");
    assert!(asked_a(&qs), "the peer's host is resolved to be asked: {qs:?}");
}

/// `_etcd-client-ssl` records are reached over https (the section says
/// nothing of the protocol), with the section's CA and client certificate;
/// they come before `_etcd-client` records of the same domain (here a dead
/// port).
#[test]
fn srv_client_ssl_records_are_reached_over_https() {
    let tls = Staging::new("etcd2-srv-tls");
    let dir = tls.path();
    ca(dir, "ca");
    let (server_crt, server_key) = leaf(dir, "ca", "server");
    let (client_crt, client_key) = leaf(dir, "ca", "client");
    let etcd =
        EtcdServer::start_tls("v2-srv-tls", EtcdTls { ca: dir.join("ca.crt"), cert: server_crt, key: server_key });
    let show = |p: &Path| p.display().to_string();
    let files = format!(
        r#""cacert":"{}","cert":"{}","key":"{}""#,
        show(&dir.join("ca.crt")),
        show(&client_crt),
        show(&client_key)
    );
    let plugin = open_dcs_plugin("etcd");
    let n1 = plugin.new_dcs(params(format!(r#"{{"url":"{}",{files}}}"#, etcd.client_url()))).unwrap();
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert!(n1.touch_member(MEMBER_JSON).unwrap());
    let port = etcd.client_port();
    // The server certificate is for localhost (and 127.0.0.1).
    let zone = Zone::default().srv("_etcd-client-ssl._tcp.tls.palisade.test", "localhost", port).srv(
        "_etcd-client._tcp.tls.palisade.test",
        "localhost",
        palisade_test_support::free_port(),
    );
    let dns = DnsDouble::start("v2-srv-tls", zone);
    let staging = Staging::new("etcd2-srv-tls-ctl");
    let (ok, out, err, qs) =
        ctl_behind_dns(&dns, &staging, &format!(r#"{{"srv":"tls.palisade.test",{files}}}"#), &["list", "-f", "json"]);
    assert!(ok, "palisadectl list over https found through SRV failed ({qs:?}):\n{out}\n{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((listed[0]["Member"].as_str(), listed[0]["Role"].as_str()), (Some("n1"), Some("Leader")), "{out}");
    assert_eq!(srv_questions(&qs), ["_etcd-client-ssl._tcp.tls.palisade.test"], "{qs:?}");
}
