//! The Kubernetes plugin's own checks, on the Kubernetes API test double:
//! the parts of the DCS contract that look different on Kubernetes (the
//! objects, annotations and labels Patroni keeps; values written by
//! Patroni or by somebody else; the Lease extension; Citus groups) and the
//! Pod role labels of a running cluster after a switchover. The shared
//! conformance suite runs in `dcs_conformance.rs`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_plugin_api::Dcs;
use palisade_tests::conformance::{DcsFixture, MEMBER_JSON};
use palisade_tests::kubernetes::NAMESPACE;
use palisade_tests::kubernetes_plugin::{KubernetesFixture, PluginMode};
use serde_json::{json, Value};

const STATUS: &str = r#"{"optime":50332160,"slots":{"pg_2":50332160},"retain_slots":["pg_1","pg_2"]}"#;
const FAILSAFE: &str = r#"{"pg-1":"http://10.0.0.1:8008/patroni"}"#;
const REPLICA_JSON: &str = r#"{"conn_url":"postgres://127.0.0.1:5433/postgres","api_url":"http://127.0.0.1:8009/patroni","state":"running","role":"replica","version":"4.1.0","xlog_location":50331968,"timeline":1}"#;

fn annotations(f: &KubernetesFixture, plural: &str, name: &str) -> Value {
    let obj = f.raw().get(plural, NAMESPACE, name).unwrap_or_else(|| panic!("{plural}/{name} exists"));
    obj["metadata"]["annotations"].clone()
}

fn labels_of(f: &KubernetesFixture, plural: &str, name: &str) -> Value {
    f.raw().get(plural, NAMESPACE, name).unwrap()["metadata"]["labels"].clone()
}

/// Every write lands where Patroni puts it, spelled as Patroni spells it.
fn objects_and_annotations_are_patronis(mode: PluginMode) {
    let f = KubernetesFixture::start("k8s-layout", mode);
    let n1 = f.new_dcs("pg-1");
    let n2 = f.new_dcs("pg-2");
    assert!(n1.initialize(true, "7334206418375720421").unwrap());
    // As in the HA loop, a read comes first (it finds our Pod, for the
    // Endpoints' targetRef).
    n1.get_cluster().unwrap();
    assert!(n1.attempt_to_acquire_leader().unwrap());
    assert!(n1.get_cluster().unwrap().leader.is_some());
    assert!(n1.touch_member(MEMBER_JSON).unwrap());
    assert!(n2.touch_member(REPLICA_JSON).unwrap());
    assert!(n1.set_config_value(r#"{"ttl":30}"#, None).unwrap());
    assert!(n1.set_history_value("[[1,25165992,\"no recovery target specified\"]]").unwrap());
    assert!(n1.set_failover_value(r#"{"leader":"pg-1","member":"pg-2"}"#, None).unwrap());
    assert!(n1.set_sync_state_value(r#"{"leader":"pg-1","quorum":0,"sync_standby":"pg-2"}"#, None).unwrap().is_some());
    assert!(n1.write_status(STATUS).unwrap());
    assert!(n1.write_failsafe(FAILSAFE).unwrap());

    let (kind, leader) = match mode {
        PluginMode::Endpoints => ("endpoints", "demo".to_string()),
        _ => ("configmaps", "demo-leader".to_string()),
    };
    let (lock_plural, lock_name) =
        if mode == PluginMode::Lease { ("leases", "demo-leader") } else { (kind, leader.as_str()) };
    let l = annotations(&f, lock_plural, lock_name);
    if mode == PluginMode::Lease {
        let lease = f.raw().get("leases", NAMESPACE, "demo-leader").unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], "pg-1");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], f.timing().ttl.as_secs());
        assert_eq!(lease["spec"]["leaseTransitions"], 0);
        assert!(lease["spec"]["renewTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{lease}");
    } else {
        assert_eq!(l["leader"], "pg-1");
        assert_eq!(l["ttl"], f.timing().ttl.as_secs().to_string());
        assert_eq!(l["transitions"], "0");
        for k in ["acquireTime", "renewTime"] {
            assert!(l[k].as_str().is_some_and(|t| t.ends_with("+00:00")), "{k}: {l}");
        }
    }
    assert_eq!(l["optime"], "50332160");
    assert_eq!(l["slots"], r#"{"pg_2":50332160}"#);
    assert_eq!(l["retain_slots"], r#"["pg_1", "pg_2"]"#, "Python's separators, as Patroni writes it");
    assert_eq!(l["failsafe"], FAILSAFE);

    let c = annotations(&f, kind, "demo-config");
    assert_eq!((c["config"].as_str(), c["initialize"].as_str()), (Some(r#"{"ttl":30}"#), Some("7334206418375720421")));
    assert!(c["history"].as_str().is_some_and(|h| h.starts_with("[[1,")));
    let fo = annotations(&f, kind, "demo-failover");
    assert_eq!(fo, json!({"leader": "pg-1", "member": "pg-2"}));
    let sync = annotations(&f, kind, "demo-sync");
    assert_eq!(sync, json!({"leader": "pg-1", "quorum": "0", "sync_standby": "pg-2"}));
    for name in ["demo-config", "demo-failover", "demo-sync"] {
        assert_eq!(labels_of(&f, kind, name), json!({"application": "patroni", "cluster-name": "demo"}), "{name}");
    }
    // Members: the status annotation and the role label of their own Pod.
    assert_eq!(annotations(&f, "pods", "pg-1")["status"], MEMBER_JSON);
    assert_eq!(annotations(&f, "pods", "pg-2")["status"], REPLICA_JSON);
    let n2_snapshot = n2.get_cluster().unwrap();
    assert_eq!(n2_snapshot.members.len(), 2);
    assert!(n1.touch_member(MEMBER_JSON).unwrap(), "a second touch with the lock read");
    assert_eq!(f.raw().pod_labels(NAMESPACE, "pg-1").get("role").map(String::as_str), Some("primary"));
    assert_eq!(f.raw().pod_labels(NAMESPACE, "pg-2").get("role").map(String::as_str), Some("replica"));

    if mode == PluginMode::Endpoints {
        let ep = f.raw().get("endpoints", NAMESPACE, "demo").unwrap();
        let subset = &ep["subsets"][0];
        assert_eq!(subset["addresses"][0]["ip"], "127.0.0.1", "{ep}");
        assert_eq!(subset["addresses"][0]["targetRef"]["name"], "pg-1", "{ep}");
        assert_eq!(subset["ports"], json!([{"name": "postgresql", "port": 5432}]), "{ep}");
        assert!(f.raw().get("services", NAMESPACE, "demo-config").is_some(), "the config Service");
        let leader_key = n1.get_cluster().unwrap().leader;
        assert!(n1.delete_leader(leader_key.as_ref()).unwrap());
        let ep = f.raw().get("endpoints", NAMESPACE, "demo").unwrap();
        assert!(ep["subsets"].as_array().is_none_or(Vec::is_empty), "released: no addresses: {ep}");
    }
}

#[test]
fn objects_and_annotations_are_patronis_configmaps() {
    objects_and_annotations_are_patronis(PluginMode::ConfigMaps);
}

#[test]
fn objects_and_annotations_are_patronis_endpoints() {
    objects_and_annotations_are_patronis(PluginMode::Endpoints);
}

#[test]
fn objects_and_annotations_are_patronis_lease() {
    objects_and_annotations_are_patronis(PluginMode::Lease);
}

/// Objects as a Patroni node leaves them are read into the right places,
/// and their resourceVersions work for compare-and-set.
#[test]
fn annotations_written_by_patroni_are_read() {
    let f = KubernetesFixture::start("k8s-patroni", PluginMode::ConfigMaps);
    let raw = f.raw();
    let labels = json!({"application": "patroni", "cluster-name": "demo"});
    let cm = |name: &str, ann: Value| {
        let r = raw.create(
            "configmaps",
            NAMESPACE,
            &json!({"metadata": {"name": name, "labels": labels, "annotations": ann}}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    };
    cm(
        "demo-leader",
        json!({"leader": "pg-1", "ttl": "30", "transitions": "2", "acquireTime": "2026-12-07T01:00:00.000000+00:00",
               "renewTime": "2026-12-07T01:00:10.000000+00:00", "optime": "50332160", "slots": "{\"pg_2\":1}",
               "retain_slots": "[\"pg_1\", \"pg_2\"]", "failsafe": FAILSAFE}),
    );
    cm("demo-config", json!({"config": "{\"ttl\":30}", "initialize": "7000", "history": "[]"}));
    cm("demo-failover", json!({"leader": "pg-1", "member": "pg-2", "scheduled_at": "2026-12-07T02:00:00+00:00"}));
    cm("demo-sync", json!({"leader": "pg-1", "sync_standby": "pg-2", "quorum": "1"}));
    f.write_raw("members/pg-2", REPLICA_JSON.as_bytes());
    let n1 = f.new_dcs("pg-1");
    let s = n1.get_cluster().unwrap();
    assert_eq!(s.leader.as_ref().map(|l| l.name.as_str()), Some("pg-1"));
    assert_eq!(s.initialize.as_deref(), Some("7000"));
    assert_eq!(s.config.as_ref().map(|c| c.value.as_str()), Some(r#"{"ttl":30}"#));
    assert_eq!(
        s.failover.as_ref().map(|v| v.value.as_str()),
        Some(r#"{"leader":"pg-1","member":"pg-2","scheduled_at":"2026-12-07T02:00:00+00:00"}"#)
    );
    assert_eq!(
        s.sync.as_ref().map(|v| v.value.as_str()),
        Some(r#"{"leader":"pg-1","quorum":1,"sync_standby":"pg-2"}"#)
    );
    assert_eq!(s.status.as_deref(), Some(r#"{"optime":50332160,"slots":{"pg_2":1},"retain_slots":["pg_1","pg_2"]}"#));
    assert_eq!(s.failsafe.as_deref(), Some(FAILSAFE));
    assert_eq!(
        s.members.iter().map(|m| (m.name.as_str(), m.value.as_str())).collect::<Vec<_>>(),
        [("pg-2", REPLICA_JSON)]
    );
    // Patroni's versions compare; the lock holding our name is ours to renew.
    assert!(n1.set_config_value("{}", Some(&s.config.unwrap().version)).unwrap());
    assert!(n1.set_sync_state_value("{}", Some(&s.sync.unwrap().version)).unwrap().is_some());
    assert!(n1.update_leader(s.leader.as_ref()).unwrap());
    let l = annotations(&f, "configmaps", "demo-leader");
    assert_eq!(
        (l["transitions"].as_str(), l["acquireTime"].as_str()),
        (Some("2"), Some("2026-12-07T01:00:00.000000+00:00"))
    );
    let n2 = f.new_dcs("pg-2");
    n2.get_cluster().unwrap();
    assert!(!n2.attempt_to_acquire_leader().unwrap(), "a live lock is not taken");
}

/// Annotations written by somebody else come back as the text they are.
#[test]
fn garbage_annotations_come_back_as_stored() {
    let f = KubernetesFixture::start("k8s-garbage", PluginMode::ConfigMaps);
    f.write_raw("config", b"{not json");
    f.write_raw("leader", b"");
    f.write_raw("members/ghost", b"[1,2,3]");
    f.write_raw("members/nul", "\u{0}\u{1}".as_bytes());
    f.write_raw("failsafe", b"[");
    f.write_raw("optime/leader", b"12x");
    let raw = f.raw();
    let patch = json!({"metadata": {"annotations": {"slots": "{broken", "quorum": "many"}}});
    raw.patch("configmaps", NAMESPACE, "demo-leader", "application/merge-patch+json", &patch);
    f.write_raw("sync", br#"{"leader":"\u0001","quorum":"many"}"#);
    let c = f.new_dcs("n1");
    let s = c.get_cluster().unwrap();
    assert_eq!(s.config.as_ref().map(|v| v.value.as_str()), Some("{not json"));
    assert_eq!(s.leader.as_ref().map(|l| l.name.as_str()), Some(""), "an empty leader still holds the lock");
    assert_eq!(s.failsafe.as_deref(), Some("["));
    assert_eq!(s.leader_optime.as_deref(), Some("12x"));
    assert_eq!(s.status.as_deref(), Some(r#"{"optime":"12x","slots":"{broken"}"#));
    assert_eq!(
        s.sync.as_ref().map(|v| v.value.as_str()),
        Some(r#"{"leader":"\u0001","quorum":"many","sync_standby":null}"#)
    );
    let members: Vec<(&str, &str)> = s.members.iter().map(|m| (m.name.as_str(), m.value.as_str())).collect();
    assert_eq!(members, [("ghost", "[1,2,3]"), ("nul", "\u{0}\u{1}")]);
    assert!(!c.attempt_to_acquire_leader().unwrap(), "the empty lock is held");
    assert!(c.set_config_value("{}", Some(&s.config.unwrap().version)).unwrap(), "garbage has a version too");
    assert!(c.touch_member(MEMBER_JSON).unwrap());
}

/// A Citus group's objects carry the group in their names and the
/// `citus-group` label; groups do not see each other's.
#[test]
fn citus_groups_have_their_own_objects() {
    let f = KubernetesFixture::start("k8s-citus", PluginMode::ConfigMaps);
    let g1 = f.dcs_with(f.params_in("demo", "w1", Some(1)));
    let g2 = f.dcs_with(f.params_in("demo", "w2", Some(2)));
    assert!(g1.attempt_to_acquire_leader().unwrap());
    assert!(g2.attempt_to_acquire_leader().unwrap());
    assert!(g1.set_config_value("{}", None).unwrap());
    assert!(g1.touch_member(MEMBER_JSON).unwrap());
    assert_eq!(annotations(&f, "configmaps", "demo-1-leader")["leader"], "w1");
    assert_eq!(annotations(&f, "configmaps", "demo-2-leader")["leader"], "w2");
    assert!(f.raw().get("configmaps", NAMESPACE, "demo-1-config").is_some());
    assert_eq!(labels_of(&f, "configmaps", "demo-1-leader")["citus-group"], "1");
    let s2 = g2.get_cluster().unwrap();
    assert_eq!(s2.leader.as_ref().map(|l| l.name.as_str()), Some("w2"));
    assert!(s2.config.is_none() && s2.members.is_empty(), "group 2 sees none of group 1: {s2:?}");
}

/// A member whose Pod does not exist cannot write its state: a warning
/// and `false`, not an error.
#[test]
fn a_member_without_its_pod_is_told_so() {
    let f = KubernetesFixture::start("k8s-nopod", PluginMode::ConfigMaps);
    let mut params = f.params_with("ghost", None, f.section_json());
    params.scope = "demo".into();
    let c: Box<dyn Dcs> = f.dcs_with(params);
    assert!(!c.touch_member(MEMBER_JSON).unwrap());
}

/// A down API server is a DCS error naming it, within retry_timeout.
#[test]
fn a_down_api_server_is_a_dcs_error_naming_it() {
    let f = KubernetesFixture::start("k8s-down", PluginMode::ConfigMaps);
    let c = f.new_dcs("n1");
    let port = f.server().port();
    f.stop_store();
    let started = std::time::Instant::now();
    let e = c.get_cluster().unwrap_err();
    assert_eq!(e.kind, palisade_plugin_api::ErrorKind::DcsUnavailable);
    assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{}", e.message);
    assert!(started.elapsed() < f.timing().retry_timeout + Duration::from_secs(5));
}

/// A raw client of the double a cluster runs on.
fn raw_of(cluster: &palisade_tests::cluster::Cluster) -> palisade_tests::kubernetes::RawKube {
    palisade_tests::kubernetes::RawKube::of(cluster.dcs.as_ref())
}

fn role_of(raw: &palisade_tests::kubernetes::RawKube, pod: &str) -> Option<String> {
    raw.pod_labels(NAMESPACE, pod).get("role").cloned()
}

/// The role labels of the Pods follow the leader through a switchover:
/// `primary` on the new leader, `replica` on the old one.
#[test]
fn pod_role_labels_change_after_a_switchover() {
    use palisade_tests::cluster::{Cluster, ClusterSpec};
    let cluster =
        Cluster::start("k8s-labels", ClusterSpec { dcs: palisade_tests::dcs::KUBERNETES, ..ClusterSpec::default() });
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    cluster.wait_streaming(&leader, 2, Duration::from_secs(120));
    let raw = raw_of(&cluster);
    let labels_are = |primary: &str| {
        palisade_test_support::wait_until(Duration::from_secs(30), || {
            cluster.nodes.iter().all(|n| {
                let want = if n.name == primary { "primary" } else { "replica" };
                role_of(&raw, &n.name).as_deref() == Some(want)
            })
        })
    };
    assert!(
        labels_are(&leader),
        "role labels before the switchover: {:?}",
        cluster.nodes.iter().map(|n| (n.name.clone(), role_of(&raw, &n.name))).collect::<Vec<_>>()
    );
    let candidate = cluster.nodes.iter().map(|n| n.name.clone()).find(|n| *n != leader).unwrap();
    let out = palisade_tests::ctl::palisadectl(
        &cluster,
        &["switchover", "--leader", &leader, "--candidate", &candidate, "--force"],
    );
    assert_eq!(out.code, 0, "switchover: {out:?}\n{}", cluster.logs());
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(90)), candidate);
    assert!(
        labels_are(&candidate),
        "role labels after the switchover: {:?}",
        cluster.nodes.iter().map(|n| (n.name.clone(), role_of(&raw, &n.name))).collect::<Vec<_>>()
    );
}

/// Over HTTPS (the double's CA named in the kubeconfig; rustls with ring)
/// and with `bypass_api_service` (the API servers found through
/// `default/kubernetes`, reached by address and checked against the
/// configured server's name), the plugin works as over plain HTTP.
#[test]
fn tls_and_bypass_api_service() {
    use palisade_tests::kubernetes::{KubernetesServer, CONTEXT};
    use palisade_tests::plugins::PluginCluster;
    let server = KubernetesServer::start_tls("k8s-tls");
    let plugin = PluginCluster::open("kubernetes");
    for bypass in [false, true] {
        let section = json!({
            "namespace": NAMESPACE,
            "kubeconfig": server.kubeconfig().display().to_string(),
            "context": CONTEXT,
            "labels": {"application": "patroni"},
            "bypass_api_service": bypass,
        });
        let mut params = plugin.params_with("n1", None, section.to_string());
        params.scope = format!("tls-{bypass}");
        let n1 = plugin.dcs_with(params.clone());
        params.name = "n2".into();
        let n2 = plugin.dcs_with(params);
        n1.get_cluster().unwrap_or_else(|e| panic!("bypass_api_service {bypass}: {e}"));
        assert!(n1.attempt_to_acquire_leader().unwrap(), "bypass_api_service {bypass}");
        assert!(n1.set_config_value("{}", None).unwrap());
        let s = n2.get_cluster().unwrap();
        assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("n1"), "bypass_api_service {bypass}");
        assert_eq!(s.config.map(|c| c.value).as_deref(), Some("{}"));
    }
}

/// Inside a Pod (`KUBERNETES_SERVICE_HOST`/`PORT` set and the service
/// account's token, CA and namespace under
/// `/var/run/secrets/kubernetes.io/serviceaccount`, made here in a private
/// mount namespace) the plugin needs no kubeconfig: palisadectl reads the
/// cluster a kubeconfig client wrote. Without those files it says why it
/// has no configuration.
#[test]
fn in_cluster_configuration_inside_a_pod() {
    use palisade_tests::kubernetes::{KubernetesServer, CONTEXT};
    use palisade_tests::plugins::PluginCluster;
    let server = KubernetesServer::start_tls("k8s-incluster");
    let plugin = PluginCluster::open("kubernetes");
    let labels = json!({"application": "patroni"});
    let section = json!({"namespace": NAMESPACE, "kubeconfig": server.kubeconfig().display().to_string(),
                         "context": CONTEXT, "labels": labels});
    let mut params = plugin.params_with("n1", None, section.to_string());
    params.scope = "pod".into();
    let n1 = plugin.dcs_with(params);
    assert!(n1.set_config_value(r#"{"ttl":17,"loop_wait":3}"#, None).unwrap());

    let dir = server.kubeconfig().with_file_name("pod");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), server.token()).unwrap();
    std::fs::copy(server.ca(), dir.join("ca.crt")).unwrap();
    std::fs::write(dir.join("namespace"), NAMESPACE).unwrap();
    let config = dir.join("palisade.yml");
    std::fs::write(
        &config,
        format!("scope: pod\nkubernetes:\n  namespace: {NAMESPACE}\n  labels:\n    application: patroni\n"),
    )
    .unwrap();
    let ctl = palisade_test_support::target_dir().join("palisadectl");
    let run = |with_secrets: bool| {
        let secrets = "/run/secrets/kubernetes.io/serviceaccount";
        let setup = if with_secrets {
            format!("mkdir -p {secrets} && cp {d}/token {d}/ca.crt {d}/namespace {secrets}/ && ", d = dir.display())
        } else {
            String::new()
        };
        let script =
            format!("mount -t tmpfs tmpfs /run && {setup}exec {} -c {} show-config", ctl.display(), config.display());
        let out = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", server.port().to_string())
            .env("PALISADE_PLUGIN_DIR", palisade_test_support::target_dir())
            .env("HOME", &dir)
            .env_remove("KUBECONFIG")
            .output()
            .expect("run unshare");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = run(true);
    assert!(ok && text.contains("ttl: 17") && text.contains("loop_wait: 3"), "{text}");
    let (ok, text) = run(false);
    assert!(!ok && text.contains("not running in a Pod"), "{text}");
}

/// `cacert` (and `PATRONI_KUBERNETES_CACERT`, which wins over it) names the
/// CA the API server's certificate is checked against:
/// - inside a Pod, as in Patroni, in place of the service account's
///   `ca.crt` (here a CA that did not sign the double's certificate, so
///   only the configured CA lets palisadectl in);
/// - with a kubeconfig, in place of its `certificate-authority`.
///
/// A CA that did not sign the server's certificate gives a DCS error that
/// says the certificate was refused; a `cacert` without a certificate is a
/// configuration error naming the key.
#[test]
fn cacert_is_the_ca_the_api_server_is_checked_against() {
    use palisade_plugin_api::ErrorKind;
    use palisade_tests::kubernetes::{KubernetesServer, CONTEXT};
    use palisade_tests::plugins::PluginCluster;
    let server = KubernetesServer::start_tls("k8s-cacert");
    let dir = server.kubeconfig().with_file_name("cacert");
    std::fs::create_dir_all(&dir).unwrap();
    palisade_tests::certs::ca(&dir, "other-ca");
    let (right, wrong) = (server.ca(), dir.join("other-ca.crt"));
    let show = |p: &std::path::Path| p.display().to_string();
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).unwrap();
    assert!(kubeconfig.contains(&show(&right)), "the double's kubeconfig names its CA file: {kubeconfig}");
    let wrong_kubeconfig = dir.join("kubeconfig-other-ca");
    std::fs::write(&wrong_kubeconfig, kubeconfig.replace(&show(&right), &show(&wrong))).unwrap();

    // With a kubeconfig, in the test process.
    let plugin = PluginCluster::open("kubernetes");
    let section = |kubeconfig: &std::path::Path, cacert: Option<&std::path::Path>| {
        let mut s = json!({"namespace": NAMESPACE, "kubeconfig": show(kubeconfig), "context": CONTEXT,
                           "labels": {"application": "patroni"}});
        if let Some(ca) = cacert {
            s["cacert"] = json!(show(ca));
        }
        let mut params = plugin.params_with("n1", None, s.to_string());
        params.scope = "cacert".into();
        params
    };
    let good = plugin.dcs_with(section(&wrong_kubeconfig, Some(&right)));
    assert!(
        good.set_config_value(r#"{"ttl":17,"loop_wait":3}"#, None).unwrap(),
        "cacert wins over the kubeconfig's CA"
    );
    for (kubeconfig, cacert) in
        [(wrong_kubeconfig.as_path(), None), (server.kubeconfig().as_path(), Some(wrong.as_path()))]
    {
        let dcs = plugin.dcs_with(section(kubeconfig, cacert));
        let err = dcs.get_cluster().expect_err("a CA that did not sign the server's certificate");
        assert_eq!(err.kind, ErrorKind::DcsUnavailable, "{err}");
        eprintln!("{}, cacert {cacert:?}: {err}", kubeconfig.display());
        assert!(err.message.contains("invalid peer certificate"), "{}", err.message);
    }
    let not_a_cert = dir.join("not-a-cert.pem");
    std::fs::write(&not_a_cert, "nothing here\n").unwrap();
    let err = plugin.plugin_new_dcs(section(&server.kubeconfig(), Some(&not_a_cert))).map(drop).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(err.message.contains("kubernetes: cacert: no certificate in"), "{}", err.message);

    // Inside a Pod (in a private mount namespace, as in
    // in_cluster_configuration_inside_a_pod), whose service account's CA
    // is the wrong one.
    std::fs::write(dir.join("token"), server.token()).unwrap();
    std::fs::copy(&wrong, dir.join("ca.crt")).unwrap();
    std::fs::write(dir.join("namespace"), NAMESPACE).unwrap();
    let ctl = palisade_test_support::target_dir().join("palisadectl");
    let run = |cacert: Option<&std::path::Path>, env: Option<&std::path::Path>| {
        let config = dir.join("palisade.yml");
        let extra = cacert.map(|c| format!("  cacert: {}\n", show(c))).unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "scope: cacert\nkubernetes:\n  namespace: {NAMESPACE}\n  labels:\n    application: patroni\n{extra}"
            ),
        )
        .unwrap();
        let secrets = "/run/secrets/kubernetes.io/serviceaccount";
        let script = format!(
            "mount -t tmpfs tmpfs /run && mkdir -p {secrets} && cp {d}/token {d}/ca.crt {d}/namespace {secrets}/ && \
             exec {} -c {} show-config",
            ctl.display(),
            config.display(),
            d = dir.display()
        );
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", server.port().to_string())
            .env("PALISADE_PLUGIN_DIR", palisade_test_support::target_dir())
            .env("HOME", &dir)
            .env_remove("KUBECONFIG")
            .env_remove("PATRONI_KUBERNETES_CACERT");
        if let Some(ca) = env {
            cmd.env("PATRONI_KUBERNETES_CACERT", ca);
        }
        let out = cmd.output().expect("run unshare");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let listed = |(ok, text): (bool, String)| ok && text.contains("ttl: 17") && text.contains("loop_wait: 3");
    let (ok, text) = run(None, None);
    assert!(!ok && text.contains("invalid peer certificate"), "the service account's CA is the wrong one: {text}");
    let out = run(Some(&right), None);
    assert!(listed(out.clone()), "kubernetes.cacert: {out:?}");
    let out = run(None, Some(&right));
    assert!(listed(out.clone()), "PATRONI_KUBERNETES_CACERT: {out:?}");
    let out = run(Some(&wrong), Some(&right));
    assert!(listed(out.clone()), "PATRONI_KUBERNETES_CACERT wins over kubernetes.cacert: {out:?}");
    let (ok, text) = run(Some(&right), Some(&wrong));
    assert!(!ok && text.contains("invalid peer certificate"), "{text}");
}
