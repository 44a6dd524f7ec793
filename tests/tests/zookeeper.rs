//! The ZooKeeper and Exhibitor plugins beyond the conformance suite, on a
//! real ZooKeeper of their own: the forms `hosts` takes, sessions across
//! server restarts and expiry, ACLs and authentication, Exhibitor's
//! server list changing, errors, and the znode layout Patroni reads.

use std::time::Duration;

use palisade_plugin_api::{Dcs, DcsTiming, ErrorKind};
use palisade_test_support::{free_port, wait_for, wait_until};
use palisade_tests::conformance::{DcsFixture, MEMBER_JSON};
use palisade_tests::exhibitor::{ExhibitorFixture, ServerList};
use palisade_tests::zookeeper::{RawZk, ZooKeeperFixture, ZooKeeperServer};

fn ok<T>(what: &str, r: palisade_plugin_api::PluginResult<T>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn with_section(f: &ZooKeeperFixture, member: &str, section: &str) -> Box<dyn Dcs> {
    let mut p = f.params(member, None);
    p.section_json = section.to_string();
    f.dcs_with(p)
}

#[test]
fn hosts_in_every_form_reach_the_server() {
    let f = ZooKeeperFixture::start("hosts");
    let hp = f.server().host_port();
    let dead = format!("127.0.0.1:{}", free_port());
    let port = f.server().port();
    let sections = [
        format!(r#"{{"hosts":"{hp}"}}"#),
        format!(r#"{{"hosts":["{hp}"]}}"#),
        format!(r#"{{"hosts":"{dead}, {hp}"}}"#),
        format!(r#"{{"hosts":["{dead}","{hp}"]}}"#),
        // No port would mean 2181; a host name instead of an address.
        format!(r#"{{"hosts":"localhost:{port}"}}"#),
    ];
    for (i, section) in sections.iter().enumerate() {
        let dcs = with_section(&f, &format!("n{i}"), section);
        assert!(ok(section, dcs.touch_member(MEMBER_JSON)), "{section}");
        let path = format!("/service/demo/members/n{i}");
        assert_eq!(f.raw().get(&path).map(|n| n.value), Some(MEMBER_JSON.as_bytes().to_vec()), "{section}");
    }
    // A chroot after the hosts, as kazoo takes it: everything lives under it.
    f.raw().put("/chrooted", b"");
    let dcs = with_section(&f, "c1", &format!(r#"{{"hosts":"{dead},{hp}/chrooted"}}"#));
    assert!(ok("acquire in a chroot", dcs.attempt_to_acquire_leader()));
    assert_eq!(f.raw().get("/chrooted/service/demo/leader").map(|n| n.value), Some(b"c1".to_vec()));
    assert_eq!(ok("get_cluster", dcs.get_cluster()).leader.map(|l| l.name).as_deref(), Some("c1"));
}

#[test]
fn patroni_znode_layout() {
    let f = ZooKeeperFixture::start("layout");
    let a = f.new_dcs("node1");
    let config = r#"{"ttl":30,"loop_wait":10}"#;
    assert!(ok("acquire", a.attempt_to_acquire_leader()));
    assert!(ok("touch_member", a.touch_member(MEMBER_JSON)));
    assert!(ok("initialize", a.initialize(true, "7000000000000000001")));
    assert!(ok("set_config_value", a.set_config_value(config, None)));
    assert!(ok("write_status", a.write_status(r#"{"optime":1}"#)));
    let raw = f.raw();
    let leader = raw.get("/service/demo/leader").expect("the leader znode");
    let member = raw.get("/service/demo/members/node1").expect("the member znode");
    assert_eq!(leader.value, b"node1");
    assert_ne!(leader.ephemeral_owner, 0, "the leader znode is ephemeral");
    assert_eq!(member.value, MEMBER_JSON.as_bytes());
    assert_eq!(member.ephemeral_owner, leader.ephemeral_owner, "one session owns both");
    for (path, value) in [
        ("/service/demo/initialize", "7000000000000000001"),
        ("/service/demo/config", config),
        ("/service/demo/status", r#"{"optime":1}"#),
    ] {
        let n = raw.get(path).unwrap_or_else(|| panic!("{path}"));
        assert_eq!((n.value.as_slice(), n.ephemeral_owner), (value.as_bytes(), 0), "{path} is persistent");
    }
    assert_eq!(raw.children("/service/demo"), ["config", "initialize", "leader", "members", "status"]);
    // Versions are the znodes' data versions: what Patroni compares too.
    let s = ok("get_cluster", a.get_cluster());
    assert_eq!(s.config.map(|c| c.version), Some(raw.get("/service/demo/config").expect("config").version.to_string()));
    assert_eq!(s.leader.map(|l| l.session), Some(leader.ephemeral_owner.to_string()));
    // What Patroni writes reads back the same: a member and a leader of
    // another node's session, the legacy optime key.
    let other = RawZk::connect(&f.server().host_port(), &[]);
    other.create("/service/demo/members/patroni1", br#"{"role":"replica","state":"running"}"#, true);
    raw.put("/service/demo/optime/leader", b"50331968");
    let s = ok("get_cluster", a.get_cluster());
    let p = s.members.iter().find(|m| m.name == "patroni1").expect("Patroni's member");
    assert_eq!(
        (p.value.as_str(), p.session.clone()),
        (r#"{"role":"replica","state":"running"}"#, other.session_id().to_string())
    );
    assert_eq!(s.leader_optime.as_deref(), Some("50331968"));
}

#[test]
fn citus_groups_live_under_their_number() {
    let f = ZooKeeperFixture::start("citus");
    let w = f.dcs_with(f.params("worker1", Some(1)));
    let c = f.dcs_with(f.params("coord1", Some(0)));
    assert!(ok("acquire group 1", w.attempt_to_acquire_leader()));
    assert!(ok("acquire group 0", c.attempt_to_acquire_leader()));
    assert_eq!(f.raw().get("/service/demo/1/leader").map(|n| n.value), Some(b"worker1".to_vec()));
    assert_eq!(f.raw().get("/service/demo/0/leader").map(|n| n.value), Some(b"coord1".to_vec()));
    assert_eq!(ok("get_cluster", w.get_cluster()).leader.map(|l| l.name).as_deref(), Some("worker1"));
}

#[test]
fn the_session_survives_a_zookeeper_restart() {
    let mut f = ZooKeeperFixture::start("restart");
    f.timing = DcsTiming {
        ttl: Duration::from_secs(20),
        loop_wait: Duration::from_secs(1),
        retry_timeout: Duration::from_secs(5),
    };
    let a = f.new_dcs("a");
    assert!(ok("acquire", a.attempt_to_acquire_leader()));
    assert!(ok("touch_member", a.touch_member(MEMBER_JSON)));
    let owner = f.raw().get("/service/demo/leader").expect("leader").ephemeral_owner;
    f.server().stop();
    assert_eq!(a.update_leader(None).map_err(|e| e.kind), Err(ErrorKind::DcsUnavailable), "no server, no renewal");
    f.server().start_again();
    let raw = f.server().raw();
    let renewed = wait_until(Duration::from_secs(15), || a.update_leader(None).unwrap_or(false));
    assert!(renewed, "update_leader must succeed again once ZooKeeper is back");
    assert!(ok("touch_member", a.touch_member(MEMBER_JSON)));
    let leader = raw.get("/service/demo/leader").expect("the leader znode survived");
    assert_eq!(leader.ephemeral_owner, owner, "the same session owns the leader znode");
    assert_eq!(raw.get("/service/demo/members/a").map(|n| n.ephemeral_owner), Some(owner));
}

#[test]
fn an_expired_session_frees_the_leader() {
    let f = ZooKeeperFixture::start("expiry");
    let ttl = f.timing.ttl;
    let a = f.new_dcs("a");
    let b = f.new_dcs("b");
    assert!(ok("acquire", a.attempt_to_acquire_leader()));
    f.server().stop();
    // Longer than the session timeout: the client gives the session up.
    std::thread::sleep(ttl + Duration::from_secs(2));
    f.server().start_again();
    let raw = f.server().raw();
    // The server expires the orphaned session about ttl after it is back.
    let gone = wait_until(ttl * 3 + Duration::from_secs(10), || raw.get("/service/demo/leader").is_none());
    assert!(gone, "the expired session's leader znode must go");
    assert!(ok("b acquires", b.attempt_to_acquire_leader()));
    assert!(!ok("a's update_leader", a.update_leader(None)), "a lost the lock: exactly one leader");
    assert_eq!(raw.get("/service/demo/leader").map(|n| n.value), Some(b"b".to_vec()));
}

#[test]
fn a_new_ttl_opens_a_new_session_and_keeps_the_lock() {
    let f = ZooKeeperFixture::start("ttl");
    let a = f.new_dcs("a");
    assert!(ok("acquire", a.attempt_to_acquire_leader()));
    let before = f.raw().get("/service/demo/leader").expect("leader").ephemeral_owner;
    let mut timing = f.timing;
    timing.ttl = Duration::from_secs(6);
    ok("set_timing", a.set_timing(timing));
    assert!(ok("update_leader after the new ttl", a.update_leader(None)));
    let after = f.raw().get("/service/demo/leader").expect("leader");
    assert_eq!(after.value, b"a");
    assert_ne!(after.ephemeral_owner, before, "a new session with the new timeout owns it");
}

#[test]
fn auth_data_and_set_acls_are_applied() {
    let f = ZooKeeperFixture::start("acl");
    let hp = f.server().host_port();
    let section =
        format!(r#"{{"hosts":["{hp}"],"auth_data":{{"digest":"palisade:secret"}},"set_acls":{{"auth:":["ALL"]}}}}"#);
    let a = with_section(&f, "a", &section);
    assert!(ok("acquire", a.attempt_to_acquire_leader()));
    assert!(ok("set_config_value", a.set_config_value("{}", None)));
    let authed = RawZk::connect(&hp, &[("digest", "palisade:secret")]);
    for path in ["/service/demo/leader", "/service/demo/config", "/service/demo"] {
        let acl = authed.acl(path);
        assert_eq!(acl.len(), 1, "{path}: {acl:?}");
        assert_eq!(acl[0].0, "digest", "{path}: {acl:?}");
        assert!(acl[0].1.starts_with("palisade:"), "{path}: {acl:?}");
    }
    let anonymous = f.raw();
    let refused = anonymous.try_get("/service/demo/config").expect_err("an unauthenticated read must be refused");
    assert!(refused.to_lowercase().contains("auth"), "{refused}");
    assert_eq!(authed.get("/service/demo/config").map(|n| n.value), Some(b"{}".to_vec()));
    // Another member with the same credentials reads and writes.
    let b = with_section(&f, "b", &section);
    assert_eq!(ok("get_cluster", b.get_cluster()).leader.map(|l| l.name).as_deref(), Some("a"));
    assert!(ok("touch_member", b.touch_member(MEMBER_JSON)));
    // Without them, the plugin gets a DCS error naming the refusal.
    let c = with_section(&f, "c", &format!(r#"{{"hosts":["{hp}"]}}"#));
    let e = c.get_cluster().expect_err("no credentials, no read");
    assert_eq!(e.kind, ErrorKind::DcsUnavailable, "{e}");
}

#[test]
fn use_ssl_with_a_client_certificate() {
    let f = ZooKeeperFixture::start("tls-plugin");
    let server = ZooKeeperServer::start_tls("tls");
    let tls = server.tls().expect("a TLS server").clone();
    let hosts = format!("127.0.0.1:{}", tls.secure_port);
    let section = format!(
        r#"{{"hosts":"{hosts}","use_ssl":true,"cacert":"{}","cert":"{}","key":"{}"}}"#,
        tls.ca.display(),
        tls.client_cert.display(),
        tls.client_key.display()
    );
    let a = with_section(&f, "a", &section);
    assert!(ok("acquire over TLS", a.attempt_to_acquire_leader()));
    assert!(ok("touch_member over TLS", a.touch_member(MEMBER_JSON)));
    assert_eq!(server.raw().get("/service/demo/leader").map(|n| n.value), Some(b"a".to_vec()));
    assert_eq!(ok("get_cluster", a.get_cluster()).leader.map(|l| l.name).as_deref(), Some("a"));
    // The server requires a client certificate: without one, DCS errors.
    let no_cert = format!(r#"{{"hosts":"{hosts}","use_ssl":true,"cacert":"{}"}}"#, tls.ca.display());
    let b = with_section(&f, "b", &no_cert);
    assert_eq!(b.get_cluster().map_err(|e| e.kind).err(), Some(ErrorKind::DcsUnavailable));
    // Plain text to the TLS port fails too.
    let c = with_section(&f, "c", &format!(r#"{{"hosts":"{hosts}"}}"#));
    assert_eq!(c.get_cluster().map_err(|e| e.kind).err(), Some(ErrorKind::DcsUnavailable));

    // An encrypted key (PKCS#8, as `openssl pkcs8 -topk8 -v2 aes-256-cbc`
    // writes it) is opened with key_password.
    let dir = tls.client_key.parent().expect("the key's directory");
    let encrypted = palisade_test_support::certs::encrypt_key(dir, &tls.client_key, "zk secret");
    let with_password = |password: &str| {
        format!(
            r#"{{"hosts":"{hosts}","use_ssl":true,"cacert":"{}","cert":"{}","key":"{}"{password}}}"#,
            tls.ca.display(),
            tls.client_cert.display(),
            encrypted.display()
        )
    };
    let d = with_section(&f, "d", &with_password(r#","key_password":"zk secret""#));
    assert!(ok("touch_member with an encrypted key", d.touch_member(MEMBER_JSON)));
    assert!(ok("get_cluster with an encrypted key", d.get_cluster()).members.iter().any(|m| m.name == "d"));
    // A wrong or missing password is a configuration error naming the key.
    for (password, key) in [(r#","key_password":"wrong""#, "zookeeper.key_password"), ("", "zookeeper.key")] {
        let mut p = f.params("e", None);
        p.section_json = with_password(password);
        let e = f.plugin_new_dcs(p).err().unwrap_or_else(|| panic!("{password:?} must be refused"));
        assert_eq!(e.kind, ErrorKind::Config, "{password:?}: {e}");
        assert!(e.message.starts_with(key), "{password:?}: {e}");
        assert!(e.message.contains(&encrypted.display().to_string()), "the error names the file: {e}");
    }
}

/// A `set_acls` principal without `scheme:` is an `x509` one, as Patroni
/// reads it (`CN=...`: the subject of a client certificate, which
/// ZooKeeper takes as the identity of a TLS connection); with a scheme it
/// is that scheme's. Permission names are taken in any case.
#[test]
fn set_acls_without_a_scheme_is_an_x509_principal() {
    let f = ZooKeeperFixture::start("acl-x509-plugin");
    let server = ZooKeeperServer::start_tls("acl-x509");
    let tls = server.tls().expect("a TLS server").clone();
    let dir = tls.ca.parent().expect("the CA's directory");
    let (other_cert, other_key) = palisade_test_support::certs::leaf(dir, "zk-ca", "zk-other");
    let hosts = format!("127.0.0.1:{}", tls.secure_port);
    let section = |cert: &std::path::Path, key: &std::path::Path| {
        format!(
            r#"{{"hosts":"{hosts}","use_ssl":true,"cacert":"{}","cert":"{}","key":"{}",
                "set_acls":{{"CN=zk-client":["read","write","create","delete"],"world:anyone":["READ"]}}}}"#,
            tls.ca.display(),
            cert.display(),
            key.display()
        )
    };
    let a = with_section(&f, "a", &section(&tls.client_cert, &tls.client_key));
    assert!(ok("acquire", a.attempt_to_acquire_leader()));
    assert!(ok("touch_member", a.touch_member(MEMBER_JSON)));
    assert!(ok("set_config_value", a.set_config_value("{}", None)));
    let raw = server.raw();
    for path in ["/service/demo", "/service/demo/leader", "/service/demo/config", "/service/demo/members/a"] {
        let mut acl = raw.acl(path);
        acl.sort();
        assert_eq!(
            acl,
            [
                ("world".to_string(), "anyone".to_string(), "READ".to_string()),
                ("x509".to_string(), "CN=zk-client".to_string(), "READ|WRITE|CREATE|DELETE".to_string()),
            ],
            "{path}"
        );
    }
    // The ACL acts: another certificate of the same CA reads (world) but
    // cannot write.
    let b = with_section(&f, "b", &section(&other_cert, &other_key));
    assert_eq!(ok("get_cluster", b.get_cluster()).leader.map(|l| l.name).as_deref(), Some("a"));
    let e = b.touch_member(MEMBER_JSON).expect_err("zk-other may not create a member");
    assert_eq!(e.kind, ErrorKind::DcsUnavailable, "{e}");
    assert!(e.message.to_lowercase().contains("auth"), "{e}");
    let e = b.set_config_value(r#"{"by":"b"}"#, None).expect_err("zk-other may not write");
    assert!(e.message.to_lowercase().contains("auth"), "{e}");
    assert_eq!(raw.get("/service/demo/config").map(|n| n.value), Some(b"{}".to_vec()));
}

#[test]
fn verify_checks_the_host_name_and_verify_false_still_checks_the_chain() {
    let f = ZooKeeperFixture::start("tls-verify-plugin");
    // The server's certificate, signed by the CA in cacert, names another
    // host than the 127.0.0.1 the plugin connects to.
    let server = ZooKeeperServer::start_tls_named("tls-verify", "DNS:zk.elsewhere.test");
    let tls = server.tls().expect("a TLS server").clone();
    let hosts = format!("127.0.0.1:{}", tls.secure_port);
    let section = |verify: &str, cacert: &std::path::Path| {
        format!(
            r#"{{"hosts":"{hosts}","use_ssl":true,"cacert":"{}","cert":"{}","key":"{}"{verify}}}"#,
            cacert.display(),
            tls.client_cert.display(),
            tls.client_key.display()
        )
    };
    // verify (true by default, or said): refused with a DCS error naming
    // the server and why (the client library retries a failed handshake
    // like a lost connection; the plugin finds out why itself).
    for verify in ["", r#","verify":true"#] {
        let a = with_section(&f, "a", &section(verify, &tls.ca));
        let e = a.get_cluster().expect_err("a certificate for another host must be refused");
        eprintln!("{verify:?}: {e}");
        assert_eq!(e.kind, ErrorKind::DcsUnavailable, "{e}");
        assert!(e.message.contains(&hosts), "the error names the server: {e}");
        assert!(e.message.contains("TLS handshake"), "the error says why: {e}");
        assert!(e.message.contains(r#"certificate not valid for name "127.0.0.1""#), "the error says why: {e}");
        assert_eq!(a.attempt_to_acquire_leader().map_err(|e| e.kind).err(), Some(ErrorKind::DcsUnavailable));
    }
    assert_eq!(server.raw().get("/service/demo/leader"), None, "nothing was written");
    // verify: false connects: the host name is not checked.
    let b = with_section(&f, "b", &section(r#","verify":false"#, &tls.ca));
    assert!(ok("acquire with verify: false", b.attempt_to_acquire_leader()));
    assert_eq!(server.raw().get("/service/demo/leader").map(|n| n.value), Some(b"b".to_vec()));
    // The chain still is: a CA that did not sign the server's certificate
    // is refused, verify: false or not.
    let dir = tls.ca.parent().expect("the CA's directory");
    palisade_test_support::certs::ca(dir, "other-ca");
    let c = with_section(&f, "c", &section(r#","verify":false"#, &dir.join("other-ca.crt")));
    let e = c.get_cluster().expect_err("a server certificate from another CA must be refused");
    eprintln!("other CA: {e}");
    assert_eq!(e.kind, ErrorKind::DcsUnavailable, "{e}");
    assert!(e.message.contains("invalid peer certificate: UnknownIssuer"), "the error says why: {e}");
}

#[test]
fn an_unreachable_server_gives_a_dcs_error_naming_it() {
    let f = ZooKeeperFixture::start("unreachable");
    let dead = format!("127.0.0.1:{}", free_port());
    let dcs = with_section(&f, "a", &format!(r#"{{"hosts":"{dead}"}}"#));
    let e = dcs.get_cluster().expect_err("nothing listens there");
    eprintln!("{e}");
    assert_eq!(e.kind, ErrorKind::DcsUnavailable, "{e}");
    assert!(e.message.contains(&dead), "the error names the server: {e}");
    let e = dcs.attempt_to_acquire_leader().expect_err("nothing listens there");
    assert_eq!(e.kind, ErrorKind::DcsUnavailable, "{e}");
}

#[test]
fn bad_sections_are_config_errors_naming_the_key() {
    let f = ZooKeeperFixture::start("config");
    let cases = [
        (r#"{}"#, "zookeeper.hosts"),
        (r#"{"hosts":5}"#, "zookeeper.hosts"),
        (r#"{"hosts":"h:x"}"#, "zookeeper.hosts"),
        (r#"{"hosts":"h","set_acls":{"p":["FLY"]}}"#, "zookeeper.set_acls.p"),
        (r#"{"hosts":"h","use_ssl":true,"cacert":"/nonexistent.pem"}"#, "zookeeper.cacert"),
    ];
    for (section, key) in cases {
        let mut p = f.params("a", None);
        p.section_json = section.to_string();
        let e = f.plugin_new_dcs(p).err().unwrap_or_else(|| panic!("{section} must be refused"));
        assert_eq!(e.kind, ErrorKind::Config, "{section}: {e}");
        assert!(e.message.contains(key), "{section}: {e}");
    }
}

#[test]
fn exhibitor_follows_a_changed_server_list() {
    let f = ExhibitorFixture::start("exhibitor-move");
    let a = f.new_dcs("a");
    assert!(ok("set_config_value on the first ensemble", a.set_config_value(r#"{"on":1}"#, None)));
    let second = ZooKeeperServer::start("exhibitor-second");
    f.endpoint().set_list(ServerList { servers: vec!["127.0.0.1".into()], port: second.port() });
    // poll_interval is 1 s: the plugin moves over within a few polls.
    wait_for("the plugin to read the second ensemble", Duration::from_secs(30), || {
        a.get_cluster().ok().filter(|s| s.config.is_none())
    });
    assert!(ok("set_config_value on the second ensemble", a.set_config_value(r#"{"on":2}"#, None)));
    assert_eq!(second.raw().get("/service/demo/config").map(|n| n.value), Some(br#"{"on":2}"#.to_vec()));
    assert_eq!(f.raw().get("/service/demo/config").map(|n| n.value), Some(br#"{"on":1}"#.to_vec()));
    assert!(f.endpoint().requests() >= 2, "the endpoint was polled");
}

#[test]
fn exhibitor_keeps_the_session_when_the_list_names_the_same_servers() {
    let f = ExhibitorFixture::start("exhibitor-same");
    let a = f.new_dcs("a");
    assert!(ok("acquire", a.attempt_to_acquire_leader()));
    let owner = f.raw().get("/service/demo/leader").expect("leader").ephemeral_owner;
    let port = f.server().port();
    // Same server, spelled twice: a new connection string, the same ensemble.
    f.endpoint().set_list(ServerList { servers: vec!["127.0.0.1".into(), "localhost".into()], port });
    let requests = f.endpoint().requests();
    assert!(wait_until(Duration::from_secs(20), || f.endpoint().requests() > requests + 1), "polled again");
    assert!(ok("update_leader after the move", a.update_leader(None)));
    assert_eq!(f.raw().get("/service/demo/leader").map(|n| n.ephemeral_owner), Some(owner), "same session");
}

#[test]
fn an_unreachable_exhibitor_gives_a_dcs_error_naming_it() {
    let f = ExhibitorFixture::start("exhibitor-down");
    f.endpoint().set_failing(true);
    let port = free_port();
    let mut p = f.params("a", None);
    p.section_json = format!(r#"{{"hosts":["127.0.0.1"],"port":{port},"poll_interval":1}}"#);
    let dcs = f.dcs_with(p);
    let e = dcs.get_cluster().expect_err("no Exhibitor, no servers");
    eprintln!("{e}");
    assert_eq!(e.kind, ErrorKind::DcsUnavailable, "{e}");
    assert!(e.message.contains(&format!("127.0.0.1:{port}")), "the error names the Exhibitor: {e}");
    // A failing endpoint is no better; once it answers, the plugin works.
    let dcs = f.new_dcs("b");
    assert_eq!(dcs.get_cluster().map_err(|e| e.kind).err(), Some(ErrorKind::DcsUnavailable));
    f.endpoint().set_failing(false);
    wait_for("the plugin to find the servers", Duration::from_secs(30), || dcs.get_cluster().ok());
}

#[test]
fn a_hundred_members_come_back_in_one_snapshot() {
    let f = ZooKeeperFixture::start("hundred");
    let members: Vec<Box<dyn Dcs>> = (0..100).map(|i| f.new_dcs(&format!("m{i:03}"))).collect();
    for (i, m) in members.iter().enumerate() {
        assert!(ok("touch_member", m.touch_member(&format!(r#"{{"i":{i}}}"#))));
    }
    let s = ok("get_cluster", members[0].get_cluster());
    assert_eq!(s.members.len(), 100);
    assert!(s
        .members
        .iter()
        .enumerate()
        .all(|(i, m)| m.name == format!("m{i:03}") && m.value == format!(r#"{{"i":{i}}}"#)));
}

#[test]
fn a_killed_zookeeper_comes_back_with_the_lock() {
    let mut f = ZooKeeperFixture::start("kill");
    f.timing = DcsTiming {
        ttl: Duration::from_secs(20),
        loop_wait: Duration::from_secs(1),
        retry_timeout: Duration::from_secs(5),
    };
    let a = f.new_dcs("a");
    assert!(ok("acquire", a.attempt_to_acquire_leader()));
    f.server().kill();
    assert_eq!(a.get_cluster().map_err(|e| e.kind).err(), Some(ErrorKind::DcsUnavailable));
    f.server().start_again();
    let s = wait_for("get_cluster after the restart", Duration::from_secs(30), || a.get_cluster().ok());
    assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("a"), "the leader znode survived kill -9 with its session");
    assert!(ok("update_leader", a.update_leader(None)));
}
