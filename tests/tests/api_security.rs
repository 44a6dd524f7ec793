//! The REST API's security on real processes: basic auth, the allowlist
//! (a client bound to 127.0.0.2), extra headers, TLS with an encrypted
//! key, and client certificates (`verify_client` optional and required,
//! with members reaching each other over HTTPS). Requests are made with
//! curl, certificates with openssl.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use palisade_test_support::wait_for;
use palisade_test_support::Staging;
use palisade_tests::certs::{ca, encrypt_key, leaf};
use palisade_tests::cluster::{Cluster, ClusterSpec, Node};
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

/// Rewrite a node's configuration file (then `POST /reload` applies it).
fn edit_config(node: &Node, edit: impl FnOnce(String) -> String) {
    let before = std::fs::read_to_string(&node.config).unwrap();
    let after = edit(before.clone());
    assert_ne!(before, after, "the edit changed nothing");
    std::fs::write(&node.config, after).unwrap();
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn auth_allowlist_extra_headers_and_reload() {
    let extra = "  authentication:\n    username: admin\n    password: s3cret\n  allowlist:\n    - 127.0.0.2/32\n  \
                 http_extra_headers:\n    X-Palisade-Test: 'yes'\n  https_extra_headers:\n    Strict-Transport-Security: max-age=1\n"
        .to_string();
    let cluster = Cluster::start("api-auth", spec(1, extra));
    cluster.wait_for_leader(Duration::from_secs(60));
    let node = cluster.node("node1");
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", node.api_port);
    let from = |ip: &'static str, args: &[&str]| curl(&[&["--interface", ip][..], args].concat());

    // Health checks are open, and carry the http (not the https) headers.
    let a = curl(&[&url("/health")]);
    assert_eq!(a.code, 200, "{a:?}");
    assert_eq!(header(&a, "X-Palisade-Test"), Some("yes"), "{a:?}");
    assert_eq!(header(&a, "Strict-Transport-Security"), None, "{a:?}");

    // From 127.0.0.1, not in the allowlist: denied whatever the credentials.
    let a = curl(&["-X", "POST", "-u", "admin:s3cret", &url("/reload")]);
    assert_eq!((a.code, a.body.as_str()), (403, "Access is denied"), "{a:?}");
    assert_eq!(header(&a, "X-Palisade-Test"), Some("yes"), "refusals carry the extra headers too: {a:?}");
    // From 127.0.0.2: credentials are checked next, exactly.
    let a = from("127.0.0.2", &["-X", "POST", &url("/reload")]);
    assert_eq!((a.code, a.body.as_str()), (401, "no auth header received"), "{a:?}");
    assert_eq!(header(&a, "WWW-Authenticate"), Some("Basic realm=\"Patroni\""), "{a:?}");
    let a = from("127.0.0.2", &["-X", "POST", "-u", "admin:wrong", &url("/reload")]);
    assert_eq!((a.code, a.body.as_str()), (401, "not authenticated"), "{a:?}");
    let a = from("127.0.0.2", &["-X", "POST", "-H", "Authorization: Basic  YWRtaW46czNjcmV0", &url("/reload")]);
    assert_eq!((a.code, a.body.as_str()), (401, "not authenticated"), "two spaces are not Patroni's header: {a:?}");
    let a = from("127.0.0.2", &["-X", "POST", "-u", "admin:s3cret", &url("/reload")]);
    assert_eq!((a.code, a.body.as_str()), (202, "reload scheduled"), "{a:?}");
    // A denied PATCH changes nothing.
    let before = curl(&[&url("/config")]).body;
    let a = curl(&["-X", "PATCH", "-u", "admin:s3cret", "-d", "{\"ttl\": 20}", &url("/config")]);
    assert_eq!(a.code, 403);
    assert_eq!(curl(&[&url("/config")]).body, before);
    // A path that is no endpoint gets Patroni's 501, checked or not.
    assert_eq!(curl(&["-X", "POST", &url("/no-such-endpoint")]).code, 501);

    // A reload brings new credentials, the members' addresses into the
    // allowlist, and new headers.
    cluster.mark("reload the security settings");
    edit_config(node, |yml| {
        yml.replace("password: s3cret", "password: n3w")
            .replace("    - 127.0.0.2/32\n", "    - 127.0.0.2/32\n  allowlist_include_members: true\n")
            .replace("X-Palisade-Test: 'yes'", "X-Palisade-Test: 'again'")
    });
    let a = from("127.0.0.2", &["-X", "POST", "-u", "admin:s3cret", &url("/reload")]);
    assert_eq!(a.code, 202, "{a:?}");
    wait_for("the reloaded headers", Duration::from_secs(30), || {
        (header(&curl(&[&url("/health")]), "X-Palisade-Test") == Some("again")).then_some(())
    });
    let a = from("127.0.0.2", &["-X", "POST", "-u", "admin:s3cret", &url("/reload")]);
    assert_eq!((a.code, a.body.as_str()), (401, "not authenticated"), "the old password is refused: {a:?}");
    let a = from("127.0.0.2", &["-X", "POST", "-u", "admin:n3w", &url("/reload")]);
    assert_eq!((a.code, a.body.as_str()), (202, "reload scheduled"), "{a:?}");
    // 127.0.0.1 is a member's address (its api_url) now allowed...
    let a = curl(&["-X", "POST", "-u", "admin:n3w", &url("/reload")]);
    assert_eq!((a.code, a.body.as_str()), (202, "reload scheduled"), "{a:?}");
    // ...but not for POST /failsafe, where Patroni leaves members out,
    let a = curl(&["-X", "POST", "-u", "admin:n3w", "-d", "{}", &url("/failsafe")]);
    assert_eq!((a.code, a.body.as_str()), (403, "Access is denied"), "{a:?}");
    // and other addresses are still denied.
    let a = from("127.0.0.3", &["-X", "POST", "-u", "admin:n3w", &url("/reload")]);
    assert_eq!((a.code, a.body.as_str()), (403, "Access is denied"), "{a:?}");
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
        let certs = Self { _staging: staging, dir };
        certs.readable();
        certs
    }

    /// The daemons run as the unprivileged test user.
    fn readable(&self) {
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            std::fs::set_permissions(entry.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        }
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

    // Another certificate (of another CA, its key not encrypted) is served
    // once a reload names it.
    cluster.mark("replace the certificate");
    ca(&certs.dir, "ca2");
    leaf(&certs.dir, "ca2", "server2");
    certs.readable();
    edit_config(cluster.node("node1"), |yml| {
        yml.replace(&certs.path("server.crt"), &certs.path("server2.crt"))
            .replace(&certs.path("server.enc.key"), &certs.path("server2.key"))
            .replace("  keyfile_password: keypass\n", "")
    });
    let a = curl(&[&["--cacert", ca_file.as_str(), "-X", "POST"][..], &client, &[&https(port, "/reload")]].concat());
    assert_eq!((a.code, a.body.as_str()), (202, "reload scheduled"), "{a:?}");
    wait_for("the new certificate", Duration::from_secs(30), || {
        (curl(&["--cacert", &certs.path("ca2.crt"), &https(port, "/primary")]).code == 200).then_some(())
    });
    let a = curl(&["--cacert", &ca_file, &https(port, "/primary")]);
    assert_eq!(a.code, 0, "the old certificate is gone: {a:?}");
    // Client certificates are still checked against `cafile`.
    let a = curl(&["--cacert", &certs.path("ca2.crt"), "-X", "POST", &https(port, "/reload")]);
    assert_eq!((a.code, a.body.as_str()), (403, "client certificate required"), "{a:?}");
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

/// Patroni and palisade members that require client certificates of each
/// other: in a leader race each kind reaches the other's `/patroni` over
/// HTTPS with the `ctl` section's certificate (its key encrypted).
/// node2 runs Patroni; `failover_priority` tags choose who wins each race
/// (all replicas are equally up to date), and a winner asks every other
/// candidate first.
#[test]
fn tls_across_patroni_and_palisade_members() {
    let certs = Certs::new("api-tls-mixed");
    // `ctl` is top-level YAML: it follows the restapi lines.
    let extra = format!(
        "{}ctl:\n  cacert: {}\n  certfile: {}\n  keyfile: {}\n  keyfile_password: keypass\n",
        certs.restapi("required"),
        certs.path("ca.crt"),
        certs.path("server.crt"),
        certs.path("server.enc.key")
    );
    // Timings Patroni accepts (it raises ttl below 20).
    let spec = ClusterSpec {
        nodes: 4,
        ttl: 20,
        loop_wait: 2,
        retry_timeout: 3,
        restapi_extra: extra,
        node_extra: |i| format!("tags:\n  failover_priority: {}\n", [4, 2, 3, 1][i]),
        patroni_nodes: vec![1],
        patroni_venv: Some(palisade_tests::patroni::venv()),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start("api-tls-mixed", spec);
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.wait_streaming("node1", 3, Duration::from_secs(120));

    // palisade (node3) wins, having asked Patroni (node2).
    cluster.mark("kill the leader: node3 wins");
    cluster.kill9("node1", true);
    assert_eq!(cluster.wait_for_new_leader("node1", Duration::from_secs(120)), "node3");
    let asked = "Got response from node2 https://127.0.0.1:";
    assert!(node_log_contains(&cluster, "node3", asked), "palisade did not reach Patroni\n{}", cluster.logs());

    // Patroni (node2) wins, having asked palisade (node4).
    cluster.wait_streaming("node3", 2, Duration::from_secs(120));
    cluster.mark("kill the leader: node2 wins");
    cluster.kill9("node3", true);
    assert_eq!(cluster.wait_for_new_leader("node3", Duration::from_secs(120)), "node2");
    let asked = "Got response from node4 https://127.0.0.1:";
    assert!(node_log_contains(&cluster, "node2", asked), "Patroni did not reach palisade\n{}", cluster.logs());
}
