//! The daemon's own connections with libpq's settings, against a real
//! PostgreSQL with `ssl = on` and a CA for client certificates: every
//! `sslmode`, root certificates (explicit, `~/.postgresql`, wrong CA,
//! missing), client certificates (plain, encrypted, wrong CA, loose file
//! permissions), a CRL, `channel_binding`, `target_session_attrs`, and no
//! TLS over a Unix socket.

// Helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{runtime, Node};
use palisade_postgres::libpq::{self, ConnSettings};
use palisade_test_support::certs::{ca, encrypt_key, leaf, openssl};
use palisade_test_support::{run_unprivileged, Staging};
use serde_json::json;

const PASSWORD: &str = "tls-user-pw";

/// Certificates and files the cases use.
struct Files {
    dir: PathBuf,
    home: PathBuf,
}

impl Files {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

fn make_files(dir: &Path) -> Files {
    ca(dir, "ca");
    leaf(dir, "ca", "server");
    leaf(dir, "ca", "certuser");
    ca(dir, "other");
    leaf(dir, "other", "stranger");
    encrypt_key(dir, &dir.join("certuser.key"), "key secret");
    std::fs::copy(dir.join("certuser.key"), dir.join("loose.key")).unwrap();
    std::fs::set_permissions(dir.join("loose.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // A CRL of "ca" revoking the server's certificate.
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\n\
         default_crl_days = 2\ncrl_extensions = crl_ext\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n",
    )
    .unwrap();
    openssl(dir, &["ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt", "-revoke", "server.crt"]);
    openssl(
        dir,
        &["ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt", "-gencrl", "-out", "revoked.crl"],
    );
    // libpq's default files.
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".postgresql")).unwrap();
    for (from, to) in [("ca.crt", "root.crt"), ("certuser.crt", "postgresql.crt"), ("certuser.key", "postgresql.key")] {
        std::fs::copy(dir.join(from), home.join(".postgresql").join(to)).unwrap();
    }
    std::fs::set_permissions(home.join(".postgresql/postgresql.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    Files { dir: dir.to_path_buf(), home }
}

/// Connect as `user` with `pairs`; whether the session uses TLS.
async fn try_connect(
    node: &Node,
    host: &str,
    user: &str,
    pairs: &[(&str, String)],
    home: Option<&Path>,
) -> Result<bool, String> {
    let mut cfg = tokio_postgres::Config::new();
    if host.starts_with('/') {
        cfg.host_path(host);
    } else {
        cfg.host(host);
    }
    cfg.port(node.port).user(user).password(PASSWORD).dbname("postgres").connect_timeout(Duration::from_secs(5));
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let settings = ConnSettings::parse(&map, "t.").map_err(|e| e.to_string())?;
    let client = libpq::connect(&cfg, host, &settings, "t.", home).await.map_err(|e| e.to_string())?;
    let rows = client
        .simple_query("SELECT ssl::text FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()")
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("true"))))
}

#[test]
fn libpq_settings_on_real_connections() {
    if !run_unprivileged("libpq_settings_on_real_connections") {
        return;
    }
    runtime().block_on(async {
        let hba = vec![
            "hostssl all certuser 127.0.0.1/32 scram-sha-256 clientcert=verify-ca".to_string(),
            "hostnossl all certuser 127.0.0.1/32 reject".to_string(),
            "hostnossl all tlsonly 127.0.0.1/32 reject".to_string(),
            "hostssl all plainonly 127.0.0.1/32 reject".to_string(),
        ];
        let certs = Staging::new("tls-certs");
        let f = make_files(certs.path());
        let node = Node::with_hba(
            "tls",
            false,
            json!({"ssl": "on", "ssl_cert_file": f.path("server.crt"), "ssl_key_file": f.path("server.key"),
                   "ssl_ca_file": f.path("ca.crt")}),
            hba,
        );
        // post_bootstrap connects over TCP with the default sslmode (prefer).
        node.bootstrap_primary().await;
        for role in ["certuser", "tlsonly", "plainonly"] {
            node.query(&format!("CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")).await;
        }
        node.query(&format!("ALTER ROLE postgres PASSWORD '{PASSWORD}'")).await;

        let s = |v: &str| v.to_string();
        let home = Some(f.home.as_path());
        let none: Option<&Path> = None;
        let cert = [("sslcert", f.path("certuser.crt")), ("sslkey", f.path("certuser.key"))];
        type Case<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, String)>, Option<&'a Path>, Result<bool, &'a str>);
        let cases: Vec<Case> = vec![
            ("default prefer", "127.0.0.1", "postgres", vec![], none, Ok(true)),
            ("disable", "127.0.0.1", "postgres", vec![("sslmode", s("disable"))], none, Ok(false)),
            ("allow: plain first", "127.0.0.1", "postgres", vec![("sslmode", s("allow"))], none, Ok(false)),
            ("allow: TLS when plain is refused", "127.0.0.1", "tlsonly", vec![("sslmode", s("allow"))], none, Ok(true)),
            ("prefer: plain when TLS is refused", "127.0.0.1", "plainonly", vec![], none, Ok(false)),
            (
                "require without a root: no check",
                "127.0.0.1",
                "postgres",
                vec![("sslmode", s("require"))],
                none,
                Ok(true),
            ),
            (
                "require with a root of another CA checks the chain",
                "127.0.0.1",
                "postgres",
                vec![("sslmode", s("require")), ("sslrootcert", f.path("other.crt"))],
                none,
                Err("invalid peer certificate"),
            ),
            (
                "prefer with a root of another CA falls back to plain",
                "127.0.0.1",
                "postgres",
                vec![("sslrootcert", f.path("other.crt"))],
                none,
                Ok(false),
            ),
            (
                "verify-ca",
                "127.0.0.1",
                "postgres",
                vec![("sslmode", s("verify-ca")), ("sslrootcert", f.path("ca.crt"))],
                none,
                Ok(true),
            ),
            (
                "verify-ca with another CA",
                "127.0.0.1",
                "postgres",
                vec![("sslmode", s("verify-ca")), ("sslrootcert", f.path("other.crt"))],
                none,
                Err("invalid peer certificate: UnknownIssuer"),
            ),
            (
                "verify-ca without a root certificate",
                "127.0.0.1",
                "postgres",
                vec![("sslmode", s("verify-ca")), ("sslrootcert", f.path("missing.crt"))],
                none,
                Err("t.sslrootcert: root certificate file"),
            ),
            (
                "verify-ca with ~/.postgresql/root.crt",
                "127.0.0.1",
                "postgres",
                vec![("sslmode", s("verify-ca"))],
                home,
                Ok(true),
            ),
            (
                "verify-full by IP address",
                "127.0.0.1",
                "postgres",
                vec![("sslmode", s("verify-full")), ("sslrootcert", f.path("ca.crt"))],
                none,
                Ok(true),
            ),
            (
                "verify-full by name",
                "localhost",
                "postgres",
                vec![("sslmode", s("verify-full")), ("sslrootcert", f.path("ca.crt"))],
                none,
                Ok(true),
            ),
            (
                "a revoked server certificate",
                "127.0.0.1",
                "postgres",
                vec![("sslmode", s("verify-ca")), ("sslrootcert", f.path("ca.crt")), ("sslcrl", f.path("revoked.crl"))],
                none,
                Err("Revoked"),
            ),
            (
                "a client certificate",
                "127.0.0.1",
                "certuser",
                [vec![("sslmode", s("verify-ca")), ("sslrootcert", f.path("ca.crt"))], cert.to_vec()].concat(),
                none,
                Ok(true),
            ),
            (
                "the client certificate of ~/.postgresql",
                "127.0.0.1",
                "certuser",
                vec![("sslmode", s("verify-full"))],
                home,
                Ok(true),
            ),
            (
                "no client certificate",
                "127.0.0.1",
                "certuser",
                vec![("sslmode", s("require"))],
                none,
                Err("connection requires a valid client certificate"),
            ),
            (
                "a missing client certificate file is no certificate",
                "127.0.0.1",
                "certuser",
                vec![("sslmode", s("require")), ("sslcert", f.path("missing.crt"))],
                none,
                Err("connection requires a valid client certificate"),
            ),
            (
                "a client certificate of another CA",
                "127.0.0.1",
                "certuser",
                vec![
                    ("sslmode", s("require")),
                    ("sslcert", f.path("stranger.crt")),
                    ("sslkey", f.path("stranger.key")),
                ],
                none,
                Err("received fatal alert: UnknownCA"),
            ),
            (
                "an encrypted key",
                "127.0.0.1",
                "certuser",
                vec![
                    ("sslmode", s("require")),
                    ("sslcert", f.path("certuser.crt")),
                    ("sslkey", f.path("certuser.enc.key")),
                    ("sslpassword", s("key secret")),
                ],
                none,
                Ok(true),
            ),
            (
                "an encrypted key, wrong password",
                "127.0.0.1",
                "certuser",
                vec![
                    ("sslmode", s("require")),
                    ("sslcert", f.path("certuser.crt")),
                    ("sslkey", f.path("certuser.enc.key")),
                    ("sslpassword", s("wrong")),
                ],
                none,
                Err("t.sslpassword: private key file … cannot decrypt the key"),
            ),
            (
                "an encrypted key without sslpassword",
                "127.0.0.1",
                "certuser",
                vec![
                    ("sslmode", s("require")),
                    ("sslcert", f.path("certuser.crt")),
                    ("sslkey", f.path("certuser.enc.key")),
                ],
                none,
                Err("t.sslpassword: private key file"),
            ),
            (
                "a key others can read",
                "127.0.0.1",
                "certuser",
                vec![("sslmode", s("require")), ("sslcert", f.path("certuser.crt")), ("sslkey", f.path("loose.key"))],
                none,
                Err("has group or world access"),
            ),
            (
                "channel binding over TLS",
                "127.0.0.1",
                "postgres",
                vec![("channel_binding", s("require"))],
                none,
                Ok(true),
            ),
            (
                "channel binding without TLS",
                "127.0.0.1",
                "postgres",
                vec![("sslmode", s("disable")), ("channel_binding", s("require"))],
                none,
                Err("channel binding"),
            ),
            (
                "no TLS over a Unix socket, whatever sslmode says",
                node.socket_dir.to_str().unwrap(),
                "postgres",
                vec![("sslmode", s("verify-full")), ("sslrootcert", f.path("missing.crt"))],
                none,
                Ok(false),
            ),
            (
                "read-write on a primary",
                "127.0.0.1",
                "postgres",
                vec![("target_session_attrs", s("read-write"))],
                none,
                Ok(true),
            ),
            (
                "primary on a primary",
                "127.0.0.1",
                "postgres",
                vec![("target_session_attrs", s("primary"))],
                none,
                Ok(true),
            ),
            (
                "standby on a primary",
                "127.0.0.1",
                "postgres",
                vec![("target_session_attrs", s("standby"))],
                none,
                Err("server is not in hot standby mode"),
            ),
            (
                "read-only on a primary",
                "127.0.0.1",
                "postgres",
                vec![("target_session_attrs", s("read-only"))],
                none,
                Err("session is not read-only"),
            ),
            (
                "gssencmode=require",
                "127.0.0.1",
                "postgres",
                vec![("gssencmode", s("require"))],
                none,
                Err("t.gssencmode"),
            ),
        ];
        let mut failures = Vec::new();
        for (label, host, user, pairs, home, want) in &cases {
            let got = try_connect(&node, host, user, pairs, *home).await;
            let ok = match (want, &got) {
                (Ok(tls), Ok(g)) => tls == g,
                // A wanted error names its parts in order, separated by " … ".
                (Err(parts), Err(e)) => parts.split(" … ").all(|p| e.contains(p)),
                _ => false,
            };
            if !ok {
                failures.push(format!("{label}: wanted {want:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}\n{}", failures.join("\n"), node.log_tail());
    });
}
