//! The etcd3 plugin over TLS: server verified against `cacert`, client
//! certificate from `cert`/`key` (etcd requires one here). Certificates
//! are made for the test with the `openssl` command. Also SRV discovery
//! through `_etcd-server-ssl` records (the peer port over TLS).

use std::path::Path;
use std::time::Duration;

use palisade_plugin_api::{DcsParams, ErrorKind};
use palisade_test_support::Staging;
use palisade_tests::certs::{ca, leaf};
use palisade_tests::conformance::MEMBER_JSON;
use palisade_tests::dns_double::{DnsDouble, Zone};
use palisade_tests::etcd::{EtcdServer, EtcdTls};
use palisade_tests::plugins::{open_dcs_plugin, test_timing};

#[test]
fn tls_with_a_client_certificate() {
    let staging = Staging::new("etcd3-tls");
    let dir = staging.path();
    ca(dir, "ca");
    ca(dir, "other-ca");
    let (server_crt, server_key) = leaf(dir, "ca", "server");
    let (client_crt, client_key) = leaf(dir, "ca", "client");
    let etcd = EtcdServer::start_tls("tls", EtcdTls { ca: dir.join("ca.crt"), cert: server_crt, key: server_key });

    let plugin = open_dcs_plugin("etcd3");
    let mut timing = test_timing();
    timing.retry_timeout = Duration::from_secs(3);
    let dcs = |section: String| {
        let params = DcsParams {
            scope: "demo".into(),
            namespace: "/service/".into(),
            name: "n1".into(),
            group: None,
            timing,
            section_json: section,
        };
        plugin.new_dcs(params).unwrap_or_else(|e| panic!("construct the plugin: {e}"))
    };
    let host = etcd.host_port();
    let show = |p: &Path| p.display().to_string();
    let good = dcs(format!(
        r#"{{"host":"{host}","protocol":"https","cacert":"{}","cert":"{}","key":"{}"}}"#,
        show(&dir.join("ca.crt")),
        show(&client_crt),
        show(&client_key)
    ));
    assert!(good.write_status(r#"{"optime":1}"#).unwrap());
    assert!(good.attempt_to_acquire_leader().unwrap());
    let s = good.get_cluster().unwrap();
    assert_eq!(s.status.as_deref(), Some(r#"{"optime":1}"#));
    assert_eq!(s.leader.unwrap().name, "n1");

    // The key inside the certificate file works too.
    let combined = dir.join("client-combined.pem");
    let pem = [std::fs::read(&client_crt).unwrap_or_default(), std::fs::read(&client_key).unwrap_or_default()].concat();
    std::fs::write(&combined, pem).unwrap_or_else(|e| panic!("write {}: {e}", combined.display()));
    let url = etcd.client_url();
    let combined_only =
        dcs(format!(r#"{{"url":"{url}","cacert":"{}","cert":"{}"}}"#, show(&dir.join("ca.crt")), show(&combined)));
    assert!(combined_only.get_cluster().unwrap().leader.is_some());

    // A server certificate no trusted CA signed is refused.
    let wrong_ca = dcs(format!(
        r#"{{"url":"{url}","cacert":"{}","cert":"{}","key":"{}"}}"#,
        show(&dir.join("other-ca.crt")),
        show(&client_crt),
        show(&client_key)
    ));
    assert_eq!(wrong_ca.get_cluster().unwrap_err().kind, ErrorKind::DcsUnavailable);
    // So is a client without a certificate.
    let no_cert = dcs(format!(r#"{{"url":"{url}","cacert":"{}"}}"#, show(&dir.join("ca.crt"))));
    assert_eq!(no_cert.get_cluster().unwrap_err().kind, ErrorKind::DcsUnavailable);
}

/// `_etcd-server-ssl` SRV records: the peer port (TLS, client certificates
/// required) is asked for `/members` over https with the section's CA and
/// client certificate, and the https client URL it lists is then used. A
/// section without the client certificate finds nothing there.
#[test]
fn srv_server_ssl_records_find_the_members_over_https() {
    let staging = Staging::new("etcd3-srv-peer-tls");
    let dir = staging.path();
    ca(dir, "ca");
    let (server_crt, server_key) = leaf(dir, "ca", "server");
    let (client_crt, client_key) = leaf(dir, "ca", "client");
    let etcd = EtcdServer::start_tls_with_tls_peers(
        "v3-srv-peer-tls",
        EtcdTls { ca: dir.join("ca.crt"), cert: server_crt, key: server_key },
    );
    let show = |p: &Path| p.display().to_string();
    let ca_only = format!(r#""cacert":"{}""#, show(&dir.join("ca.crt")));
    let files = format!(r#"{ca_only},"cert":"{}","key":"{}""#, show(&client_crt), show(&client_key));
    let plugin = open_dcs_plugin("etcd3");
    let params = DcsParams {
        scope: "demo".into(),
        namespace: "/service/".into(),
        name: "n1".into(),
        group: None,
        timing: test_timing(),
        section_json: format!(r#"{{"url":"{}",{files}}}"#, etcd.client_url()),
    };
    let n1 = plugin.new_dcs(params).unwrap_or_else(|e| panic!("construct the plugin: {e}"));
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert!(n1.touch_member(MEMBER_JSON).unwrap());

    // The server certificate is for localhost (and 127.0.0.1).
    let zone = Zone::default().srv("_etcd-server-ssl._tcp.tls.palisade.test", "localhost", etcd.peer_port());
    let dns = DnsDouble::start("v3-srv-peer-tls", zone);
    let ctl = Staging::new("etcd3-srv-peer-tls-ctl");
    let list = |section: String| dns.palisadectl(&ctl, &format!("etcd3: {section}"), &["list", "-f", "json"]);
    let (ok, out, err, qs) = list(format!(r#"{{"srv":"tls.palisade.test",{files}}}"#));
    assert!(ok, "palisadectl list through _etcd-server-ssl records failed ({qs:?}):\n{out}\n{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((listed[0]["Member"].as_str(), listed[0]["Role"].as_str()), (Some("n1"), Some("Leader")), "{out}");
    let srv: Vec<&str> = qs.iter().filter(|q| q.qtype == 33).map(|q| q.name.as_str()).collect();
    assert_eq!(srv[4], "_etcd-server-ssl._tcp.tls.palisade.test", "{qs:?}");

    let (ok, out, _, _) = list(format!(r#"{{"srv":"tls.palisade.test",{ca_only}}}"#));
    assert!(!ok, "the peer port wants a client certificate:\n{out}");
}
