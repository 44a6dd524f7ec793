//! PostgreSQL client TLS as Patroni users configure it: every role with
//! `sslmode: verify-ca`, a client certificate and a root certificate,
//! `use_unix_socket` and `use_unix_socket_repl`, `ssl: on` on the server
//! and `hostssl ... md5 clientcert=verify-ca` rows. The cluster
//! bootstraps, replicates over TLS and fails over. A client certificate
//! the server does not trust is logged, not waited on in silence.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use palisade_test_support::certs::{ca, leaf};
use palisade_test_support::{wait_until, Staging};
use palisade_tests::cluster::{Cluster, ClusterSpec};

/// ERROR lines a failover may legitimately log.
const EXPECTED_ERRORS: &[&str] = &["Error communicating with DCS", "failed to update leader lock", "Request failed to"];

/// CA `ca` with a server certificate and a client certificate `client`;
/// CA `other` with a client certificate `stranger`.
fn certificates(dir: &Path) {
    ca(dir, "ca");
    leaf(dir, "ca", "server");
    leaf(dir, "ca", "client");
    ca(dir, "other");
    leaf(dir, "other", "stranger");
}

/// The configuration of item 4, with `client` as every role's certificate.
fn tls_spec(dir: &Path, client: &str, use_unix_socket: bool) -> ClusterSpec {
    let p = |name: &str| dir.join(name).display().to_string();
    let auth = format!(
        "      sslmode: verify-ca\n      sslcert: {}\n      sslkey: {}\n      sslrootcert: {}\n",
        p(&format!("{client}.crt")),
        p(&format!("{client}.key")),
        p("ca.crt")
    );
    ClusterSpec {
        ttl: 10,
        loop_wait: 1,
        retry_timeout: 3,
        rewind_auth: Some(format!("      username: rewind_user\n      password: rewind-pw\n{auth}")),
        auth_extra: auth,
        postgresql_extra: format!("  use_unix_socket: {use_unix_socket}\n  use_unix_socket_repl: {use_unix_socket}\n"),
        parameters_extra: format!(
            "    ssl: 'on'\n    ssl_cert_file: {}\n    ssl_key_file: {}\n    ssl_ca_file: {}\n",
            p("server.crt"),
            p("server.key"),
            p("ca.crt")
        ),
        pg_hba: Some(
            "    - local all all trust\n    - hostssl replication replicator 127.0.0.1/32 md5 clientcert=verify-ca\n    \
             - hostssl all all 127.0.0.1/32 md5 clientcert=verify-ca\n"
                .into(),
        ),
        // The harness's own psql needs a certificate too.
        psql_env: vec![
            ("PGSSLMODE".into(), "verify-ca".into()),
            ("PGSSLCERT".into(), p("client.crt")),
            ("PGSSLKEY".into(), p("client.key")),
            ("PGSSLROOTCERT".into(), p("ca.crt")),
        ],
        ..ClusterSpec::default()
    }
}

/// The members streaming from `leader` over TLS.
fn tls_streams(cluster: &Cluster, leader: &str) -> String {
    cluster
        .node(leader)
        .sql(
            "SELECT string_agg(r.application_name || ':' || s.ssl::text, ',' ORDER BY r.application_name) \
             FROM pg_stat_replication r \
             JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming'",
        )
        .unwrap_or_default()
}

#[test]
fn tls_cluster_bootstraps_replicates_and_fails_over() {
    let certs = Staging::new("pg-tls-certs");
    certificates(certs.path());
    let spec = ClusterSpec { allowed_errors: EXPECTED_ERRORS.to_vec(), ..tls_spec(certs.path(), "client", true) };
    let mut cluster = Cluster::start("pg-tls", spec);
    let old = cluster.wait_for_leader(Duration::from_secs(60));
    assert_eq!(old, "node1");
    let others: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).filter(|n| *n != old).collect();

    // Replication: a row written on the primary appears on both replicas,
    // whose walreceivers connect with TLS.
    cluster.insert(&old, 1, "over tls");
    for r in &others {
        cluster.wait_sql(r, "SELECT v FROM t WHERE id = 1", "over tls", Duration::from_secs(60));
    }
    let streams = tls_streams(&cluster, &old);
    assert_eq!(streams, "node2:true,node3:true", "{}", cluster.logs());
    // The harness itself goes through the hostssl rows (no plain TCP row).
    assert_eq!(cluster.node(&old).sql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").unwrap(), "t");

    // Failover: the leader dies, a replica takes over, the other follows it.
    cluster.mark("kill -9 of the leader's daemon and postmaster");
    cluster.kill9(&old, true);
    let new = cluster.wait_for_new_leader(&old, Duration::from_secs(60));
    assert!(others.contains(&new));
    cluster.insert(&new, 2, "after the failover");
    let other = others.iter().find(|r| **r != new).unwrap().clone();
    cluster.wait_sql(&other, "SELECT count(*) FROM t WHERE id = 2", "1", Duration::from_secs(60));

    // The old leader, restarted, rejoins as a replica streaming over TLS.
    cluster.mark("the old leader comes back");
    let i = cluster.index(&old);
    cluster.start_node(i);
    cluster.wait_sql(&old, "SELECT count(*) FROM t WHERE id = 2", "1", Duration::from_secs(90));
    assert_eq!(cluster.node(&old).sql("SELECT pg_is_in_recovery()").unwrap(), "t");
    cluster.wait_streaming(&new, 2, Duration::from_secs(60));
    let mut expected = [format!("{old}:true"), format!("{other}:true")];
    expected.sort();
    let ok = wait_until(Duration::from_secs(30), || tls_streams(&cluster, &new) == expected.join(","));
    assert!(ok, "streams from {new}: {}", tls_streams(&cluster, &new));

    let errors = cluster.unexpected_errors(EXPECTED_ERRORS);
    assert!(errors.is_empty(), "unexpected errors:\n{}", errors.join("\n"));
}

#[test]
fn the_daemon_connects_over_tcp_with_its_certificate() {
    let certs = Staging::new("pg-tls-tcp-certs");
    certificates(certs.path());
    let mut spec = tls_spec(certs.path(), "client", false);
    spec.nodes = 1;
    let cluster = Cluster::start("pg-tls-tcp", spec);
    let node = cluster.node("node1");
    // The daemon's own session (status every cycle) is TLS with the client
    // certificate, through the hostssl ... clientcert=verify-ca row.
    let query = "SELECT s.ssl::text || ' ' || s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = 'Patroni heartbeat' LIMIT 1";
    cluster.wait_sql("node1", query, "true /CN=client", Duration::from_secs(30));
    assert_eq!(node.get("/primary").unwrap().status, 200);
    assert!(!node.log().contains("cannot query the local PostgreSQL (attempt"), "{}", node.log());
}

#[test]
fn a_client_certificate_the_server_refuses_is_logged() {
    let certs = Staging::new("pg-tls-bad-certs");
    certificates(certs.path());
    // Over TCP, so that the daemon's own connection uses the certificate.
    let mut spec = tls_spec(certs.path(), "stranger", false);
    spec.nodes = 1;
    let mut cluster = Cluster::prepare("pg-tls-bad", spec);
    cluster.start_node(0);
    let node = &cluster.nodes[0];
    // Logged at the first attempts and then every tenth: the tenth shows
    // it keeps being said while the daemon waits.
    let logged = wait_until(Duration::from_secs(90), || {
        node.log().lines().any(|l| l.contains("cannot query the local PostgreSQL (attempt 10)"))
    });
    assert!(logged, "the connection error was not logged repeatedly:\n{}", node.log());
    let log = node.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("cannot query the local PostgreSQL")).collect();
    for line in &lines {
        assert!(line.contains("WARNING"), "{line}");
        assert!(line.contains("at localhost:"), "{line}");
        assert!(line.contains("as postgres (sslmode=verify-ca)"), "{line}");
        assert!(line.ends_with("received fatal alert: UnknownCA"), "{line}");
    }
    assert_eq!(lines.len(), 4, "attempts 1, 2, 3 and 10:\n{}", lines.join("\n"));
    assert!(log.contains("waiting for end of recovery after bootstrap"), "{log}");
}
