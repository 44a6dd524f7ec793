//! The Consul plugin (`dcs-consul`) on the Consul test double (not a real
//! agent): what the conformance suite does not cover. Patroni's session
//! (TTL `ttl / 2`, lock delay, `delete`, no checks), keys without the
//! leading slash, a session Consul forgot, the agent's `session_ttl_min`,
//! ACL tokens, https with a client certificate, an unreachable agent,
//! `dc`/`checks`/`consistency`, and `register_service` following a
//! switchover in the catalogue.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_plugin_api::ErrorKind;
use palisade_test_support::wait_until;
use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::conformance::{DcsFixture, MEMBER_JSON};
use palisade_tests::consul::{ConsulOptions, ConsulTls, RawConsul};
use palisade_tests::consul_plugin::{test_options, ConsulFixture};
use palisade_tests::ctl::palisadectl;
use palisade_tests::dcs::CONSUL;
use palisade_tests::plugins::test_timing;

/// The leader and member keys hang on one session made as Patroni makes
/// it; the other keys on none; Consul keys have no leading slash.
#[test]
fn patroni_session_and_layout() {
    let f = ConsulFixture::start("consul-layout");
    let n1 = f.new_dcs("n1");
    assert!(n1.initialize(true, "7000000000000000001").unwrap());
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert!(n1.touch_member(MEMBER_JSON).unwrap());
    let raw = f.raw();
    let leader = raw.get("service/demo/leader").expect("the leader key");
    assert_eq!(leader.value, b"n1");
    let session = leader.session.clone().expect("the leader key is held by a session");
    let member = raw.get("service/demo/members/n1").expect("the member key");
    assert_eq!(member.value, MEMBER_JSON.as_bytes());
    assert_eq!(member.session.as_deref(), Some(session.as_str()), "one session per member");
    assert_eq!(raw.get("service/demo/initialize").and_then(|kv| kv.session), None);
    assert!(raw.get("/service/demo/leader").is_none_or(|kv| kv.key == "service/demo/leader"));

    let info = raw.session_info(&session).expect("the session exists");
    assert_eq!(info["Name"], "demo-n1");
    assert_eq!(info["Behavior"], "delete");
    let half_ttl = test_timing().ttl / 2;
    let ttl = info["TTL"].as_str().unwrap_or_default().to_string();
    assert_eq!(ttl, format!("{}s", half_ttl.as_secs()), "session TTL is ttl/2: {info}");
    assert_eq!(info["LockDelay"].as_u64(), Some(1_000_000), "lock delay of 1 ms: {info}");
    let checks = info.get("NodeChecks").or_else(|| info.get("Checks")).cloned().unwrap_or_default();
    assert!(checks.as_array().is_none_or(|c| c.is_empty()), "no checks by default: {info}");

    // The snapshot says who holds what.
    let s = n1.get_cluster().unwrap();
    let l = s.leader.expect("leader");
    assert_eq!((l.session.as_str(), l.version.clone()), (session.as_str(), leader.modify_index.to_string()));
}

/// A session Consul no longer knows (destroyed behind the plugin's back:
/// its keys go with it) is replaced; the keys come back on the new one and
/// update_leader re-acquires a leader key of ours.
#[test]
fn a_lost_session_is_replaced() {
    let f = ConsulFixture::start("consul-lost-session");
    let n1 = f.new_dcs("n1");
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert!(n1.touch_member(MEMBER_JSON).unwrap());
    let raw = f.raw();
    let old = raw.get("service/demo/leader").and_then(|kv| kv.session).expect("a session");
    let before = n1.get_cluster().unwrap().leader.expect("the leader key");
    let r = raw.request("PUT", &format!("/v1/session/destroy/{old}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(raw.get("service/demo/leader").is_none(), "behavior delete: the keys went with the session");
    // update_leader with the key the host last saw: the session is made
    // anew and the key acquired again.
    assert!(n1.update_leader(Some(&before)).unwrap());
    let now = raw.get("service/demo/leader").expect("the leader key again");
    assert_eq!(now.value, b"n1");
    let new = now.session.expect("on a session");
    assert_ne!(new, old);
    assert!(n1.touch_member(MEMBER_JSON).unwrap());
    assert_eq!(raw.get("service/demo/members/n1").and_then(|kv| kv.session), Some(new));
}

/// An agent whose `session_ttl_min` is above `ttl / 2` refuses the
/// session; the plugin reads the minimum from `/v1/agent/self` and uses it.
#[test]
fn the_agents_session_ttl_min_is_honoured() {
    let options = ConsulOptions { session_ttl_min: Some("10s".into()), ..ConsulOptions::default() };
    let f = ConsulFixture::start_with("consul-ttl-min", options);
    let n1 = f.new_dcs("n1");
    assert!(n1.attempt_to_acquire_leader().unwrap());
    let raw = f.raw();
    let session = raw.get("service/demo/leader").and_then(|kv| kv.session).expect("a session");
    let info = raw.session_info(&session).expect("the session");
    assert_eq!(info["TTL"], "10s", "{info}");
}

/// With ACLs on, the token is sent; without it the agent refuses, and the
/// error says so.
#[test]
fn acl_tokens() {
    let options = ConsulOptions { acl_token: Some("s3cr3t".into()), ..test_options() };
    let f = ConsulFixture::start_with("consul-acl", options);
    let n1 = f.new_dcs("n1");
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert_eq!(f.read_raw("leader").as_deref(), Some(b"n1".as_slice()));
    let port = f.consul().port();
    let anonymous = f.dcs_with(f.params_with("n2", None, format!(r#"{{"host":"127.0.0.1:{port}"}}"#)));
    let err = anonymous.get_cluster().expect_err("no token, no access");
    assert_eq!(err.kind, ErrorKind::DcsUnavailable);
    assert!(err.message.contains("Consul refused the request: HTTP 403"), "{}", err.message);
}

/// An agent that is not there: a DCS error naming it, within retry_timeout.
#[test]
fn an_unreachable_agent_is_named() {
    let f = ConsulFixture::start("consul-unreachable");
    let port = palisade_test_support::free_port();
    let dead = f.dcs_with(f.params_with("n1", None, format!(r#"{{"url":"http://127.0.0.1:{port}"}}"#)));
    let err = dead.get_cluster().expect_err("nobody listens");
    assert_eq!(err.kind, ErrorKind::DcsUnavailable);
    assert!(err.message.contains(&format!("Consul agent http://127.0.0.1:{port} is not reachable")), "{}", err.message);
}

/// The service instances of `service` as `(id, tags)`, sorted.
fn tags(raw: &RawConsul, service: &str) -> Vec<(String, Vec<String>)> {
    let mut out = raw.service_tags(service);
    out.sort();
    out
}

/// Whether the catalogue shows `leader` as the primary and every other
/// member of `members` as a replica, in service `scope`.
fn catalogue_shows(raw: &RawConsul, scope: &str, leader: &str, members: &[&str]) -> bool {
    let found = tags(raw, scope);
    members.iter().all(|m| {
        let id = format!("{scope}/{m}");
        let want: &[&str] = if *m == leader { &["primary", "master"] } else { &["replica"] };
        found.iter().any(|(i, t)| *i == id && want.iter().all(|w| t.iter().any(|x| x == w)) && t.len() == want.len())
    })
}

/// `register_service`: every node registers service `<scope>` with its role
/// tag; after a switchover the primary and replica tags have moved.
#[test]
fn register_service_tags_follow_a_switchover() {
    let cluster = Cluster::start("consul-service", ClusterSpec { dcs: CONSUL, ..ClusterSpec::default() });
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    cluster.wait_streaming(&leader, 2, Duration::from_secs(120));
    let port: u16 = cluster.dcs_url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("the double's port");
    let raw = RawConsul { port, token: None };
    // The scope (the service name: it is DNS-safe already).
    let scope = cluster.prefix().trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
    let members = ["node1", "node2", "node3"];
    let shown = wait_until(Duration::from_secs(30), || catalogue_shows(&raw, &scope, &leader, &members));
    assert!(shown, "the catalogue shows {leader} as primary: {:?}", tags(&raw, &scope));
    let services = raw.catalog_service(&scope);
    let primary = services.iter().find(|s| s["ServiceID"] == format!("{scope}/{leader}")).expect("the primary");
    assert_eq!(primary["ServiceAddress"], "127.0.0.1");
    assert_eq!(primary["ServicePort"].as_u64(), Some(u64::from(cluster.node(&leader).pg_port)));

    let candidate = members.iter().find(|m| **m != leader).unwrap().to_string();
    cluster.mark(&format!("switchover {leader} -> {candidate}"));
    let out = palisadectl(&cluster, &["switchover", "--leader", &leader, "--candidate", &candidate, "--force"]);
    assert_eq!(out.code, 0, "switchover: {out:?}\n{}", cluster.logs());
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(90)), candidate);
    cluster.wait_streaming(&candidate, 2, Duration::from_secs(120));
    let moved = wait_until(Duration::from_secs(30), || catalogue_shows(&raw, &scope, &candidate, &members));
    assert!(moved, "after the switchover the catalogue shows {candidate} as primary: {:?}", tags(&raw, &scope));
}

/// `url` with https, `cacert`, `cert` and `key` against an agent that
/// requires client certificates; `verify: false` without `cacert` skips the
/// check of the agent's certificate; without a client certificate, or
/// without trusting the agent's CA, it is a DCS error.
#[test]
fn https_with_a_client_certificate() {
    let staging = palisade_test_support::Staging::new("consul-plugin-tls");
    let dir = staging.path();
    let (tls, client_cert, client_key) = ConsulTls::with_client_cert(dir);
    let ca = tls.ca_file.clone();
    let f = ConsulFixture::start_with("consul-plugin-tls", ConsulOptions { tls: Some(tls), ..test_options() });
    let url = f.consul().https_url();
    let section = |extra: &str| format!(r#"{{"url":"{url}"{extra}}}"#);
    let files =
        format!(r#","cacert":"{}","cert":"{}","key":"{}""#, ca.display(), client_cert.display(), client_key.display());
    let n1 = f.dcs_with(f.params_with("n1", None, section(&files)));
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert!(n1.touch_member(MEMBER_JSON).unwrap());
    assert_eq!(f.read_raw("leader").as_deref(), Some(b"n1".as_slice()));

    let unchecked = format!(r#","verify":"false","cert":"{}","key":"{}""#, client_cert.display(), client_key.display());
    let n2 = f.dcs_with(f.params_with("n2", None, section(&unchecked)));
    assert_eq!(n2.get_cluster().unwrap().leader.map(|l| l.name).as_deref(), Some("n1"));

    let no_client_cert = format!(r#","cacert":"{}""#, ca.display());
    let n3 = f.dcs_with(f.params_with("n3", None, section(&no_client_cert)));
    let err = n3.get_cluster().expect_err("the agent wants a client certificate");
    assert_eq!(err.kind, ErrorKind::DcsUnavailable, "{}", err.message);

    let untrusted = format!(r#","cert":"{}","key":"{}""#, client_cert.display(), client_key.display());
    let n4 = f.dcs_with(f.params_with("n4", None, section(&untrusted)));
    let err = n4.get_cluster().expect_err("the agent's CA is not trusted");
    assert_eq!(err.kind, ErrorKind::DcsUnavailable, "{}", err.message);
    assert!(err.message.contains(&url), "the error names the agent: {}", err.message);
}

/// `dc` names the datacenter every request goes to (the double is `dc1`;
/// another one is a DCS error naming it), `checks` the health checks the
/// session depends on, and `consistency` the read mode: each reaches the
/// agent as Consul's API takes it.
#[test]
fn dc_checks_and_consistency_reach_the_agent() {
    let f = ConsulFixture::start("consul-dc-checks");
    let host = f.consul().host_port();
    let section = format!(r#"{{"host":"{host}","dc":"dc1","checks":["serfHealth"],"consistency":"consistent"}}"#);
    let n1 = f.dcs_with(f.params_with("n1", None, section));
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert!(n1.touch_member(MEMBER_JSON).unwrap());
    let raw = f.raw();
    let session = raw.get("service/demo/leader").and_then(|kv| kv.session).expect("held by a session");
    let info = raw.session_info(&session).expect("the session exists");
    let checks: Vec<String> = ["Checks", "NodeChecks"]
        .iter()
        .filter_map(|k| info.get(*k).and_then(|v| v.as_array()).cloned())
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    assert!(checks.contains(&"serfHealth".to_string()), "the session depends on serfHealth: {info}");
    let s = n1.get_cluster().unwrap();
    assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("n1"));

    let elsewhere = f.dcs_with(f.params_with("n2", None, format!(r#"{{"host":"{host}","dc":"mars"}}"#)));
    let err = elsewhere.get_cluster().expect_err("no such datacenter");
    assert_eq!(err.kind, ErrorKind::DcsUnavailable, "{err}");
    assert!(err.message.contains("No path to datacenter"), "{}", err.message);
}

/// The query flags of a request URL (`/v1/kv/a?recurse=1&stale=` gives
/// `recurse`, `stale`) and its path.
fn path_and_flags(url: &str) -> (&str, Vec<&str>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    (path, query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').map_or(p, |(k, _)| k)).collect())
}

/// `consistency` reaches the agent on the reads Patroni (through py-consul,
/// which adds `?consistent=1` or `?stale=1` to every KV read that does not
/// ask for a mode of its own) applies it to: the cluster read, the read of
/// every Citus group and the watch's blocking query. The read of `sync`
/// after its write is `consistent` whatever the setting, as in Patroni.
/// With `default` those reads carry neither flag. Seen in the double's
/// request log, which logs each request as Consul does at `log_level`
/// debug.
#[test]
fn consistency_reaches_the_reads_patroni_applies_it_to() {
    let options = ConsulOptions { log_level: Some("debug".into()), ..test_options() };
    let f = ConsulFixture::start_with("consul-consistency", options);
    let host = f.consul().host_port();
    for mode in ["consistent", "stale", "default"] {
        let section = format!(r#"{{"host":"{host}","consistency":"{mode}"}}"#);
        let n1 = f.dcs_with(f.params_with("n1", None, section));
        assert!(n1.attempt_to_acquire_leader().unwrap(), "{mode}");
        let leader = n1.get_cluster().unwrap().leader.expect("our leader key");
        let before = f.consul().requests().len();
        assert_eq!(n1.get_cluster().unwrap().leader.map(|l| l.name).as_deref(), Some("n1"), "{mode}");
        assert!(n1.get_mpp_groups().is_ok(), "{mode}");
        assert!(!n1.watch(Some(&leader.version), Duration::from_secs(2)).unwrap(), "{mode}: nothing changed");
        assert!(n1.set_sync_state_value(r#"{"leader":"n1","sync_standby":null}"#, None).unwrap().is_some());
        let requests = f.consul().requests()[before..].to_vec();
        let reads: Vec<(&str, Vec<&str>)> =
            requests.iter().filter(|(m, _)| m == "GET").map(|(_, url)| path_and_flags(url)).collect();
        let recursive: Vec<&Vec<&str>> = reads.iter().filter(|(_, f)| f.contains(&"recurse")).map(|(_, f)| f).collect();
        let watches: Vec<&Vec<&str>> = reads
            .iter()
            .filter(|(p, f)| p.ends_with("/service/demo/leader") && f.contains(&"index"))
            .map(|(_, f)| f)
            .collect();
        let sync: Vec<&Vec<&str>> =
            reads.iter().filter(|(p, _)| p.ends_with("/service/demo/sync")).map(|(_, f)| f).collect();
        assert!(recursive.len() >= 2, "{mode}: the cluster and the groups are read: {requests:?}");
        assert!(!watches.is_empty(), "{mode}: a blocking query on the leader key: {requests:?}");
        assert!(!sync.is_empty(), "{mode}: sync is read back after its write: {requests:?}");
        for flags in recursive.iter().chain(&watches) {
            match mode {
                "default" => assert!(
                    !flags.contains(&"consistent") && !flags.contains(&"stale"),
                    "{mode}: no flag: {requests:?}"
                ),
                _ => assert!(flags.contains(&mode), "{mode}: ?{mode} on every read: {requests:?}"),
            }
        }
        assert!(sync.iter().all(|f| f.contains(&"consistent") && !f.contains(&"stale")), "{mode}: {requests:?}");
        assert!(n1.delete_cluster().unwrap());
    }
}
