//! The etcd3 plugin over TLS: server verified against `cacert`, client
//! certificate from `cert`/`key` (etcd requires one here). Certificates
//! are made for the test with the `openssl` command.

use std::path::Path;
use std::time::Duration;

use palisade_plugin_api::{DcsParams, ErrorKind};
use palisade_test_support::Staging;
use palisade_tests::certs::{ca, leaf};
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
