//! The REST API's security on real processes: basic auth, the allowlist
//! (a client bound to 127.0.0.2), extra headers, TLS with an encrypted
//! key, and client certificates (`verify_client` optional and required,
//! with members reaching each other over HTTPS). Requests are made with
//! curl, certificates with openssl.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use palisade_test_support::Staging;
use palisade_tests::certs::{ca, encrypt_key, leaf};
use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::ctl::palisadectl;

#[derive(Debug)]
struct Answer {
    /// curl's exit status (0: an HTTP answer came).
    exit: i32,
    code: u16,
    head: String,
    body: String,
}

fn curl(args: &[&str]) -> Answer {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-w", "\nHTTPCODE:%{http_code}", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run curl: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, code) = text.rsplit_once("\nHTTPCODE:").unwrap_or((&text, "0"));
    let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    Answer {
        exit: out.status.code().unwrap_or(-1),
        code: code.trim().parse().unwrap_or(0),
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn spec(nodes: usize, restapi_extra: String) -> ClusterSpec {
    ClusterSpec { nodes, ttl: 10, loop_wait: 1, retry_timeout: 3, restapi_extra, ..ClusterSpec::default() }
}

#[test]
fn auth_allowlist_and_extra_headers() {
    let extra = "  authentication:\n    username: admin\n    password: s3cret\n  allowlist:\n    - 127.0.0.2/32\n  \
                 http_extra_headers:\n    X-Palisade-Test: 'yes'\n  https_extra_headers:\n    Strict-Transport-Security: max-age=1\n"
        .to_string();
    let cluster = Cluster::start("api-auth", spec(1, extra));
    cluster.wait_for_leader(Duration::from_secs(60));
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", cluster.node("node1").api_port);

    // Health checks are open, and carry the http (not the https) headers.
    let a = curl(&[&url("/health")]);
    assert_eq!(a.code, 200, "{a:?}");
    assert!(a.head.contains("X-Palisade-Test: yes") || a.head.contains("x-palisade-test: yes"), "{a:?}");
    assert!(!a.head.to_lowercase().contains("strict-transport-security"), "{a:?}");

    // From 127.0.0.1, not in the allowlist: denied whatever the credentials.
    let a = curl(&["-X", "POST", "-u", "admin:s3cret", &url("/reload")]);
    assert_eq!((a.code, a.body.as_str()), (403, "Access is denied"), "{a:?}");
    // From 127.0.0.2: credentials are checked next.
    let from2 = ["--interface", "127.0.0.2"];
    let a = curl(&[&from2[..], &["-X", "POST", &url("/reload")]].concat());
    assert_eq!((a.code, a.body.as_str()), (401, "no auth header received"), "{a:?}");
    assert!(a.head.to_lowercase().contains("www-authenticate: basic realm=\"patroni\""), "{a:?}");
    let a = curl(&[&from2[..], &["-X", "POST", "-u", "admin:wrong", &url("/reload")]].concat());
    assert_eq!((a.code, a.body.as_str()), (401, "not authenticated"), "{a:?}");
    let a = curl(&[&from2[..], &["-X", "POST", "-u", "admin:s3cret", &url("/reload")]].concat());
    assert_eq!((a.code, a.body.as_str()), (202, "reload scheduled"), "{a:?}");
    // A denied PATCH changes nothing.
    let before = curl(&[&url("/config")]).body;
    let a = curl(&["-X", "PATCH", "-u", "admin:s3cret", "-d", "{\"ttl\": 20}", &url("/config")]);
    assert_eq!(a.code, 403);
    assert_eq!(curl(&[&url("/config")]).body, before);
}

/// A CA, a certificate for the servers (also used as their client
/// certificate), one for clients, and the server key encrypted.
struct Certs {
    _staging: Staging,
    dir: PathBuf,
}

impl Certs {
    fn new(label: &str) -> Self {
        let staging = Staging::new(label);
        let dir = staging.path().to_path_buf();
        ca(&dir, "ca");
        leaf(&dir, "ca", "server");
        leaf(&dir, "ca", "client");
        encrypt_key(&dir, &dir.join("server.key"), "keypass");
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            // The daemons run as the unprivileged test user.
            std::fs::set_permissions(entry.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        }
        Self { _staging: staging, dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn restapi(&self, verify: &str) -> String {
        format!(
            "  certfile: {}\n  keyfile: {}\n  keyfile_password: keypass\n  cafile: {}\n  verify_client: {verify}\n  \
             ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384'\n  \
             https_extra_headers:\n    Strict-Transport-Security: max-age=1\n",
            self.path("server.crt"),
            self.path("server.enc.key"),
            self.path("ca.crt")
        )
    }
}

fn https(port: u16, path: &str) -> String {
    format!("https://127.0.0.1:{port}{path}")
}

#[test]
fn tls_with_optional_client_certificates() {
    let certs = Certs::new("api-tls-optional");
    let cluster = Cluster::start("api-tls-opt", spec(1, certs.restapi("optional")));
    cluster.wait_for_leader(Duration::from_secs(60));
    let port = cluster.node("node1").api_port;
    let ca_file = certs.path("ca.crt");
    let client = ["--cert", &certs.path("client.crt"), "--key", &certs.path("client.key")];

    let a = curl(&["--cacert", &ca_file, &https(port, "/primary")]);
    assert_eq!(a.code, 200, "{a:?}");
    assert!(a.head.to_lowercase().contains("strict-transport-security: max-age=1"), "{a:?}");
    // Plain HTTP on a TLS port gets no answer.
    assert_ne!(curl(&[&format!("http://127.0.0.1:{port}/primary")]).code, 200);
    // An unsafe request needs a client certificate.
    let a = curl(&["--cacert", &ca_file, "-X", "POST", &https(port, "/reload")]);
    assert_eq!((a.code, a.body.as_str()), (403, "client certificate required"), "{a:?}");
    let a = curl(&[&["--cacert", ca_file.as_str(), "-X", "POST"][..], &client, &[&https(port, "/reload")]].concat());
    assert_eq!((a.code, a.body.as_str()), (202, "reload scheduled"), "{a:?}");
    // A TLS 1.2 client limited to a suite outside `ciphers` is refused.
    let a = curl(&[
        "--cacert",
        &ca_file,
        "--tls-max",
        "1.2",
        "--ciphers",
        "ECDHE-RSA-CHACHA20-POLY1305",
        &https(port, "/primary"),
    ]);
    assert_ne!(a.code, 200, "{a:?}");
    let a = curl(&[
        "--cacert",
        &ca_file,
        "--tls-max",
        "1.2",
        "--ciphers",
        "ECDHE-RSA-AES128-GCM-SHA256",
        &https(port, "/primary"),
    ]);
    assert_eq!(a.code, 200, "{a:?}");
}

fn node_log_contains(cluster: &Cluster, node: &str, text: &str) -> bool {
    cluster.node(node).log().contains(text)
}

#[test]
fn tls_with_required_client_certificates_across_a_cluster() {
    let certs = Certs::new("api-tls-required");
    let cluster = Cluster::start("api-tls-req", spec(3, certs.restapi("required")));
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.wait_streaming("node1", 2, Duration::from_secs(60));
    let port = cluster.node("node2").api_port;
    let ca_file = certs.path("ca.crt");

    // Without a client certificate the handshake fails; with one it works.
    let a = curl(&["--cacert", &ca_file, &https(port, "/replica")]);
    assert!(a.exit != 0 && a.code == 0, "a client without a certificate must get no answer: {a:?}");
    let a = curl(&[
        "--cacert",
        &ca_file,
        "--cert",
        &certs.path("client.crt"),
        "--key",
        &certs.path("client.key"),
        &https(port, "/replica"),
    ]);
    assert!(a.code == 200 || a.code == 503, "{a:?}");
    let other_ca = Path::new(&certs.dir).join("other");
    std::fs::create_dir_all(&other_ca).unwrap();
    ca(&other_ca, "stranger");
    let stranger = leaf(&other_ca, "stranger", "mallory");
    let a = curl(&[
        "--cacert",
        &ca_file,
        "--cert",
        &stranger.0.to_string_lossy(),
        "--key",
        &stranger.1.to_string_lossy(),
        &https(port, "/replica"),
    ]);
    assert_ne!(a.code, 200, "a certificate of another CA must be refused: {a:?}");

    // palisadectl reaches the members with the configured certificates
    // (the encrypted key included) and switches over.
    let out = palisadectl(&cluster, &["switchover", "--candidate", "node2", "--force"]).ok().stdout;
    assert!(out.contains("Successfully switched over to \"node2\""), "{out}");
    cluster.wait_streaming("node2", 2, Duration::from_secs(60));

    // The leader dies; the replicas ask each other over HTTPS and one wins.
    cluster.mark("kill the leader");
    let mut cluster = cluster;
    cluster.kill9("node2", true);
    let new = cluster.wait_for_new_leader("node2", Duration::from_secs(60));
    let other = if new == "node1" { "node3" } else { "node1" };
    let asked = format!("Got response from {other} https://127.0.0.1:");
    assert!(node_log_contains(&cluster, &new, &asked), "{new} did not reach {other} over HTTPS\n{}", cluster.logs());
}
