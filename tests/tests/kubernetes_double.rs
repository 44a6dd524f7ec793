//! The Kubernetes API server test double (`kubernetes-test-double`): its
//! protocol over plain HTTP (paths, Status errors, resourceVersion
//! conflicts, selectors, patches, watches, restart with the same data),
//! and its fidelity: real Patroni 4.1 runs on it, in both of Patroni's
//! modes (ConfigMaps and `use_endpoints: true`). Where Patroni and the
//! double disagree, the double is wrong.
//!
//! Needs `cargo build -p kubernetes-test-double`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use palisade_test_support::wait_until;
use palisade_tests::cluster::{Cluster, ClusterSpec, Engine};
use palisade_tests::ctl::run_with;
use palisade_tests::dcs::{DcsBackend, TestDcs};
use palisade_tests::http;
use palisade_tests::kubernetes::{KubernetesDcs, KubernetesServer, Mode, RawKube, NAMESPACE};
use serde_json::{json, Value};

const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";

fn rv(o: &Value) -> String {
    o.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap().to_string()
}

fn status(r: &http::Response) -> (u16, String) {
    (r.status, r.json()["reason"].as_str().unwrap_or_default().to_string())
}

#[test]
fn crud_status_errors_and_conflicts() {
    let server = KubernetesServer::start("crud");
    let k = server.raw();
    // No token, wrong token: 401 Status.
    let r = http::get(server.port(), "/api/v1/namespaces/default/configmaps").unwrap();
    assert_eq!((r.status, r.json()["kind"].clone()), (401, json!("Status")));
    let bad = RawKube { port: server.port(), token: "nope".into() };
    assert_eq!(bad.request("GET", "/api/v1/namespaces/default/configmaps", None).unwrap().status, 401);

    let cm = json!({"metadata": {"name": "demo-config", "labels": {"application": "patroni"},
        "annotations": {"config": "{}", "initialize": "7"}}});
    let created = k.create("configmaps", "ns1", &cm);
    assert_eq!(created.status, 201, "{}", created.body);
    let c = created.json();
    assert_eq!((c["kind"].as_str(), c["apiVersion"].as_str()), (Some("ConfigMap"), Some("v1")));
    assert_eq!(c["metadata"]["namespace"], json!("ns1"));
    assert!(c["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36), "{c}");
    assert!(c["metadata"]["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{c}");
    let rv1 = rv(&c);
    assert!(rv1.parse::<u64>().is_ok(), "resourceVersion is a string of digits: {rv1}");

    assert_eq!(status(&k.create("configmaps", "ns1", &cm)), (409, "AlreadyExists".into()));
    // Another namespace is another object.
    assert_eq!(k.create("configmaps", "ns2", &cm).status, 201);
    let missing = k.request("GET", "/api/v1/namespaces/ns1/configmaps/nope", None).unwrap();
    assert_eq!(status(&missing), (404, "NotFound".into()));
    assert_eq!(missing.json()["details"], json!({"name": "nope", "kind": "configmaps"}));

    // PUT: a stale resourceVersion conflicts, the current one wins.
    let mut replaced = c.clone();
    replaced["metadata"]["annotations"]["config"] = json!("{\"ttl\":30}");
    let r = k.replace("configmaps", "ns1", "demo-config", &replaced);
    assert_eq!(r.status, 200, "{}", r.body);
    let rv2 = rv(&r.json());
    assert!(rv2.parse::<u64>().unwrap() > rv1.parse::<u64>().unwrap());
    assert_eq!(status(&k.replace("configmaps", "ns1", "demo-config", &replaced)), (409, "Conflict".into()));

    // PATCH as Patroni sends it: strategic merge, with the resourceVersion
    // to compare and set, null deleting an annotation.
    let p = json!({"metadata": {"resourceVersion": rv1, "annotations": {"initialize": null}}});
    assert_eq!(status(&k.patch("configmaps", "ns1", "demo-config", STRATEGIC, &p)), (409, "Conflict".into()));
    let p = json!({"metadata": {"resourceVersion": rv2, "annotations": {"initialize": null, "history": "[]"}}});
    let r = k.patch("configmaps", "ns1", "demo-config", STRATEGIC, &p);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["metadata"]["annotations"], json!({"config": "{\"ttl\":30}", "history": "[]"}));
    // A patch that changes nothing keeps the resourceVersion.
    let same =
        k.patch("configmaps", "ns1", "demo-config", MERGE, &json!({"metadata": {"annotations": {"history": "[]"}}}));
    assert_eq!(rv(&same.json()), rv(&r.json()));
    // JSON patch, and what the double refuses.
    let jp = json!([{"op": "add", "path": "/metadata/annotations/failsafe", "value": "{}"}]);
    assert_eq!(k.patch("configmaps", "ns1", "demo-config", "application/json-patch+json", &jp).status, 200);
    let apply = k.patch("configmaps", "ns1", "demo-config", "application/apply-patch+yaml", &json!({}));
    assert_eq!(status(&apply), (415, "UnsupportedMediaType".into()));
    let invalid = k.patch("configmaps", "ns1", "demo-config", MERGE, &json!({"metadata": {"labels": {"role": "-x"}}}));
    assert_eq!(status(&invalid), (422, "Invalid".into()));
    assert_eq!(invalid.json()["details"]["causes"][0]["field"], json!("metadata.labels"));
    assert_eq!(status(&k.patch("configmaps", "ns1", "nope", MERGE, &json!({}))), (404, "NotFound".into()));

    // DELETE with a stale precondition conflicts; with the current one it goes.
    let now = k.get("configmaps", "ns1", "demo-config").unwrap();
    let stale = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": rv1}});
    assert_eq!(status(&k.delete("configmaps", "ns1", "demo-config", Some(&stale))), (409, "Conflict".into()));
    let fresh = json!({"preconditions": {"resourceVersion": rv(&now), "uid": now["metadata"]["uid"]}});
    let gone = k.delete("configmaps", "ns1", "demo-config", Some(&fresh));
    assert_eq!((gone.status, gone.json()["status"].clone()), (200, json!("Success")), "{}", gone.body);
    assert!(k.get("configmaps", "ns1", "demo-config").is_none());
    assert!(k.get("configmaps", "ns2", "demo-config").is_some());
}

#[test]
fn lists_selectors_namespaces_and_discovery() {
    let server = KubernetesServer::start("list");
    let k = server.raw();
    let labels = |role: &str| -> BTreeMap<String, String> {
        [("application", "patroni"), ("cluster-name", "demo"), ("role", role)]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    k.create_pod("ns", "demo-0", &labels("primary"));
    k.create_pod("ns", "demo-1", &labels("replica"));
    k.create_pod("other", "demo-2", &labels("replica"));
    let names = |sel: &str| -> Vec<String> {
        let l = k.list("pods", "ns", sel);
        assert_eq!(l["kind"], json!("PodList"));
        assert!(l["metadata"]["resourceVersion"].as_str().is_some());
        l["items"].as_array().unwrap().iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    let cases: &[(&str, &[&str])] = &[
        ("", &["demo-0", "demo-1"]),
        ("application=patroni,cluster-name=demo", &["demo-0", "demo-1"]),
        ("role=primary", &["demo-0"]),
        ("role!=primary", &["demo-1"]),
        ("cluster-name=demo,role", &["demo-0", "demo-1"]),
        ("role in (replica,standby)", &["demo-1"]),
        ("cluster-name=other", &[]),
    ];
    for (sel, want) in cases {
        assert_eq!(names(sel), *want, "labelSelector {sel}");
    }
    // Pages: limit and continue.
    let page = k.request("GET", "/api/v1/pods?limit=2", None).unwrap().json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["metadata"]["remainingItemCount"], json!(1));
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let next = k.request("GET", &format!("/api/v1/pods?limit=2&continue={token}"), None).unwrap().json();
    assert_eq!(next["items"][0]["metadata"]["name"], json!("demo-2"), "{next}");
    assert!(next["metadata"].get("continue").is_none(), "the last page: {next}");
    // Items in a list carry no kind, as on the API server.
    assert!(k.list("pods", "ns", "")["items"][0].get("kind").is_none());
    let bad = k.request("GET", "/api/v1/namespaces/ns/pods?labelSelector=a%20in%20x", None).unwrap();
    assert_eq!(bad.status, 400);
    // Across namespaces.
    let all = k.request("GET", "/api/v1/pods", None).unwrap().json();
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    // Namespaces and discovery.
    let ns = k.request("GET", "/api/v1/namespaces/ns", None).unwrap().json();
    assert_eq!((ns["kind"].clone(), ns["status"]["phase"].clone()), (json!("Namespace"), json!("Active")));
    let api = k.request("GET", "/api", None).unwrap().json();
    assert_eq!(api["versions"], json!(["v1"]));
    let v1 = k.request("GET", "/api/v1", None).unwrap().json();
    let kinds: Vec<&str> = v1["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for want in ["configmaps", "endpoints", "pods", "services"] {
        assert!(kinds.contains(&want), "{kinds:?}");
    }
    let apis = k.request("GET", "/apis", None).unwrap().json();
    assert_eq!(apis["groups"][0]["name"], json!("coordination.k8s.io"));
    let version = http::get(server.port(), "/version").unwrap().json();
    assert!(version["gitVersion"].as_str().unwrap().contains("test-double"));
    // A service gets a cluster IP unless it asks for none (Patroni's
    // headless `<scope>-config`).
    let svc = k.create("services", "ns", &json!({"metadata": {"name": "demo-config"}, "spec": {"clusterIP": "None"}}));
    assert_eq!(svc.json()["spec"]["clusterIP"], json!("None"));
    assert_eq!(
        status(&k.create("services", "ns", &json!({"metadata": {"name": "demo-config"}}))),
        (409, "AlreadyExists".into())
    );
    // Delete a collection by label, as Patroni's delete_cluster does.
    let r = k.request("DELETE", "/api/v1/namespaces/ns/pods?labelSelector=cluster-name%3Ddemo", None).unwrap();
    assert_eq!((r.status, r.json()["kind"].clone()), (200, json!("PodList")));
    assert!(names("").is_empty());
}

#[test]
fn leases_and_endpoints() {
    let server = KubernetesServer::start("lease");
    let k = server.raw();
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "demo-leader"},
        "spec": {"holderIdentity": "node1", "leaseDurationSeconds": 30, "acquireTime": "2026-01-01T00:00:00.000000Z",
                 "renewTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": 0}});
    let r = k.create("leases", "ns", &lease);
    assert_eq!(r.status, 201, "{}", r.body);
    let l = r.json();
    assert_eq!(l["kind"], json!("Lease"));
    let mut taken = l.clone();
    taken["spec"]["holderIdentity"] = json!("node2");
    assert_eq!(k.replace("leases", "ns", "demo-leader", &taken).status, 200);
    // node1 renewing from what it read conflicts.
    let mut renew = l.clone();
    renew["spec"]["renewTime"] = json!("2026-01-01T00:00:10.000000Z");
    assert_eq!(status(&k.replace("leases", "ns", "demo-leader", &renew)), (409, "Conflict".into()));
    let bad = json!({"metadata": {"name": "x"}, "spec": {"leaseDurationSeconds": 0}});
    assert_eq!(status(&k.create("leases", "ns", &bad)), (422, "Invalid".into()));
    // PUT creates Endpoints that do not exist yet (as the API server does).
    let ep = json!({"metadata": {"name": "demo"}, "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 5432}]}]});
    assert_eq!(k.replace("endpoints", "ns", "demo", &ep).status, 201);
    // Subsets are replaced by a strategic merge patch, emptied by [].
    let p = json!({"metadata": {"annotations": {"leader": null}}, "subsets": []});
    let r = k.patch("endpoints", "ns", "demo", STRATEGIC, &p);
    assert_eq!(r.json()["subsets"], json!([]), "{}", r.body);
    let bad_ip = json!({"subsets": [{"addresses": [{"ip": "not-an-ip"}]}]});
    assert_eq!(status(&k.patch("endpoints", "ns", "demo", STRATEGIC, &bad_ip)), (422, "Invalid".into()));
}

/// The watch lines of `GET path` (which carries `timeoutSeconds`).
fn watch_lines(k: &RawKube, path: &str) -> Vec<Value> {
    let r = k.request("GET", path, None).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn types_and_names(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn watches_replay_stream_filter_and_expire() {
    let server = KubernetesServer::start_with("watch", 5);
    let k = server.raw();
    let mk = |name: &str, app: &str| {
        let r = k.create("configmaps", "ns", &json!({"metadata": {"name": name, "labels": {"app": app}}}));
        assert_eq!(r.status, 201);
        r.json()
    };
    let a = mk("a", "pg");
    mk("b", "other");
    // From a resourceVersion: the changes after it, filtered by label.
    let events = watch_lines(
        &k,
        &format!("/api/v1/namespaces/ns/configmaps?watch=1&resourceVersion={}&timeoutSeconds=1", rv(&a)),
    );
    assert_eq!(types_and_names(&events), vec![("ADDED".to_string(), "b".to_string())]);
    assert_eq!(events[0]["object"]["kind"], json!("ConfigMap"), "watch objects carry their kind");
    // Without one: the current objects first, then what happens while it
    // streams; an object leaving the selector is DELETED for the watch.
    let events = std::thread::scope(|s| {
        let w = s.spawn(|| {
            watch_lines(&k, "/api/v1/namespaces/ns/configmaps?watch=true&labelSelector=app%3Dpg&timeoutSeconds=3")
        });
        std::thread::sleep(Duration::from_millis(800));
        mk("c", "pg");
        k.patch("configmaps", "ns", "a", MERGE, &json!({"metadata": {"annotations": {"leader": "node1"}}}));
        k.patch("configmaps", "ns", "b", MERGE, &json!({"metadata": {"labels": {"app": "pg"}}}));
        k.patch("configmaps", "ns", "a", MERGE, &json!({"metadata": {"labels": {"app": null}}}));
        k.delete("configmaps", "ns", "c", None);
        mk("d", "other");
        w.join().unwrap()
    });
    let want: Vec<(String, String)> =
        [("ADDED", "a"), ("ADDED", "c"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a"), ("DELETED", "c")]
            .iter()
            .map(|(t, n)| (t.to_string(), n.to_string()))
            .collect();
    assert_eq!(types_and_names(&events), want);
    let rvs: Vec<u64> = events[1..].iter().map(|e| rv(&e["object"]).parse().unwrap()).collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "increasing resourceVersions: {rvs:?}");
    // Only 5 changes are kept: a watch from the first is too old, answered
    // as the API server does (200, one ERROR event with a 410 Expired Status).
    let events = watch_lines(
        &k,
        &format!("/api/v1/namespaces/ns/configmaps?watch=1&resourceVersion={}&timeoutSeconds=1", rv(&a)),
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0]["type"].clone(), events[0]["object"]["code"].clone()), (json!("ERROR"), json!(410)));
    assert_eq!(events[0]["object"]["reason"], json!("Expired"));
}

#[test]
fn watch_bookmarks_carry_the_latest_resource_version() {
    let server = KubernetesServer::start_with_args("bookmarks", 100, &["--bookmark-interval", "1"]);
    let k = server.raw();
    let a = k.create("configmaps", "ns", &json!({"metadata": {"name": "a"}})).json();
    let b = k.create("configmaps", "other", &json!({"metadata": {"name": "b"}})).json();
    let path = format!(
        "/api/v1/namespaces/ns/configmaps?watch=1&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds=3",
        rv(&a)
    );
    let events = watch_lines(&k, &path);
    let bookmarks: Vec<&Value> = events.iter().filter(|e| e["type"] == json!("BOOKMARK")).collect();
    assert!(!bookmarks.is_empty(), "{events:?}");
    assert!(events.iter().all(|e| e["type"] == json!("BOOKMARK")), "nothing changed in ns: {events:?}");
    // The change in another namespace is behind the bookmark too.
    assert_eq!(bookmarks[0]["object"]["metadata"]["resourceVersion"], json!(rv(&b)));
    assert_eq!(bookmarks[0]["object"]["kind"], json!("ConfigMap"));
    // Without allowWatchBookmarks: none.
    let plain = watch_lines(&k, &path.replace("&allowWatchBookmarks=true", ""));
    assert!(plain.is_empty(), "{plain:?}");
}

#[test]
fn restart_keeps_objects_and_freeze_stops_answers() {
    let mut server = KubernetesServer::start("restart");
    let k = server.raw();
    let r = k.create("configmaps", "ns", &json!({"metadata": {"name": "kept", "annotations": {"leader": "node1"}}}));
    let before = r.json();
    server.kill9();
    assert!(k.request("GET", "/api/v1/namespaces/ns/configmaps/kept", None).is_err(), "down after SIGKILL");
    server.start_again();
    let after = k.get("configmaps", "ns", "kept").expect("the object survives a SIGKILL and restart");
    assert_eq!(after, before);
    // The counter goes on: a new write gets a higher resourceVersion, and a
    // watch from before the restart is too old.
    let later = k.create("configmaps", "ns", &json!({"metadata": {"name": "later"}})).json();
    assert!(rv(&later).parse::<u64>().unwrap() > rv(&before).parse::<u64>().unwrap());
    let events = watch_lines(&k, "/api/v1/namespaces/ns/configmaps?watch=1&resourceVersion=1&timeoutSeconds=1");
    assert_eq!(events[0]["object"]["code"], json!(410), "{events:?}");
    // Frozen: the port accepts, nothing answers.
    server.freeze();
    let frozen = std::thread::spawn({
        let port = server.port();
        move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
            use std::io::{Read, Write};
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut buf = [0u8; 64];
            s.read(&mut buf).is_err()
        }
    })
    .join()
    .unwrap();
    server.thaw();
    assert!(frozen, "a frozen server answers nothing");
    assert!(k.get("configmaps", "ns", "later").is_some(), "answers again after thaw");
    // The kubeconfig names the server, the token and the context.
    let kc = std::fs::read_to_string(server.kubeconfig()).unwrap();
    assert!(kc.contains(&format!("server: http://127.0.0.1:{}", server.port())), "{kc}");
    assert!(kc.contains(&format!("token: {}", server.token())), "{kc}");
    assert!(kc.contains("current-context: kubernetes-test-double"), "{kc}");
}

/// Patroni 4.1's own `Kubernetes` DCS class (from the virtualenv of
/// `palisade_tests::patroni`) as member `name` of cluster `demo` on the
/// double, in `mode`: runs `actions` (Python statements, `d` the DCS) and
/// prints what `get_cluster` then reads, as JSON.
fn patroni_dcs(dcs: &KubernetesDcs, name: &str, actions: &str) -> Value {
    let venv = palisade_tests::patroni::venv();
    let script = format!(
        r#"
import json
from patroni.dcs.kubernetes import Kubernetes
from patroni.postgresql.mpp import get_mpp
d = Kubernetes({{'scope': 'demo', 'name': '{name}', 'namespace': '{NAMESPACE}', 'labels': {{'application': 'patroni'}},
                'context': 'kubernetes-test-double', 'pod_ip': '127.0.0.1', 'use_endpoints': {endpoints},
                'ports': [{{'name': 'postgresql', 'port': 5432}}], 'ttl': 30, 'retry_timeout': 10, 'loop_wait': 10}},
               get_mpp({{}}))
result = {{}}
{actions}
c = d.get_cluster()
result.update({{
    'initialize': c.initialize,
    'leader': c.leader and c.leader.name,
    'members': {{m.name: m.data for m in c.members}},
    'config': c.config and c.config.data,
    'history': c.history and c.history.lines,
    'failover': c.failover and [c.failover.leader, c.failover.candidate],
    'optime': c.status.last_lsn,
}})
print(json.dumps(result))
"#,
        endpoints = if dcs.mode == Mode::Endpoints { "True" } else { "False" },
    );
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(&script)
        .envs(dcs.node_env())
        .output()
        .unwrap_or_else(|e| panic!("run Patroni's python: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Patroni's kubernetes module failed:\n{stdout}\n{}\n--- double:\n{}",
        String::from_utf8_lossy(&out.stderr),
        dcs.server().log_tail()
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("Patroni printed {stdout:?}: {e}"))
}

/// Over HTTPS (`--tls`): Patroni trusts the CA the kubeconfig names,
/// finds the API server through `default/kubernetes` (`bypass_api_service`)
/// and takes the lock through it.
#[test]
fn patroni_over_tls() {
    let server = KubernetesServer::start_tls("tls");
    assert!(server.url().starts_with("https://"));
    let kc = std::fs::read_to_string(server.kubeconfig()).unwrap();
    assert!(kc.contains(&format!("certificate-authority: {}", server.ca().display())), "{kc}");
    // Plain HTTP gets no answer from it.
    assert!(
        server.raw().request("GET", "/api/v1/namespaces/ns/configmaps", None).map(|r| r.status).unwrap_or(0) != 200
    );
    // Patroni is told `localhost`; `default/kubernetes` lists 127.0.0.1.
    let localhost = server.kubeconfig().with_file_name("kubeconfig-localhost");
    std::fs::write(&localhost, kc.replace("https://127.0.0.1:", "https://localhost:")).unwrap();
    let venv = palisade_tests::patroni::venv();
    let script = format!(
        r#"
import json
from patroni.dcs.kubernetes import Kubernetes
from patroni.postgresql.mpp import get_mpp
d = Kubernetes({{'scope': 'demo', 'name': 'node1', 'namespace': '{NAMESPACE}', 'labels': {{'application': 'patroni'}},
                'context': 'kubernetes-test-double', 'pod_ip': '127.0.0.1', 'ttl': 30, 'retry_timeout': 10,
                'loop_wait': 10, 'bypass_api_service': True}}, get_mpp({{}}))
r = {{'api_servers': d._api._api_client._api_servers_cache}}
r['init'] = d.initialize(True, '7000000000000000009')
d.get_cluster()
r['acquired'] = d.attempt_to_acquire_leader()
c = d.get_cluster()
r['leader'] = c.leader and c.leader.name
r['initialize'] = c.initialize
print(json.dumps(r))
"#
    );
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(&script)
        .env("KUBECONFIG", &localhost)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}\n{}", String::from_utf8_lossy(&out.stderr), server.log_tail());
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(
        seen,
        json!({"init": true, "acquired": true, "leader": "node1", "initialize": "7000000000000000009",
            "api_servers": [server.url()]}),
        "{stdout}"
    );
}

fn patroni_module_on(mode: Mode) {
    let dcs = KubernetesDcs::start(&format!("patroni-module-{mode:?}").to_lowercase(), mode);
    let k = dcs.raw();
    for n in ["node1", "node2"] {
        dcs.prepare_member("demo", n);
    }
    let seen = patroni_dcs(
        &dcs,
        "node1",
        r#"
result['init'] = d.initialize(True, '7000000000000000001')
d.get_cluster()
result['acquired'] = d.attempt_to_acquire_leader()
c = d.get_cluster()
result['touched'] = d.touch_member({'conn_url': 'postgres://127.0.0.1:5433/postgres', 'api_url': 'http://127.0.0.1:8009/patroni',
                                    'state': 'running', 'role': 'primary', 'version': '4.1.0'})
result['config_set'] = d.set_config_value(json.dumps({'ttl': 30}, separators=(',', ':')), c.config and c.config.version)
result['history_set'] = d.set_history_value('[[1,25165992,"no recovery target specified"]]')
result['updated'] = d.update_leader(d.get_cluster(), 67108960)
"#,
    );
    for k in ["init", "acquired", "touched", "config_set", "history_set", "updated"] {
        assert_eq!(seen[k], json!(true), "{k}: {seen}");
    }
    assert_eq!(seen["initialize"], json!("7000000000000000001"));
    assert_eq!(seen["leader"], json!("node1"));
    assert_eq!(seen["config"], json!({"ttl": 30}));
    assert_eq!(seen["optime"], json!(67108960));
    assert_eq!(seen["members"]["node1"]["role"], json!("primary"), "{seen}");
    // What Patroni wrote, where Patroni writes it.
    let (kind, leader_obj) = match mode {
        Mode::ConfigMaps => ("configmaps", "demo-leader"),
        Mode::Endpoints => ("endpoints", "demo"),
    };
    assert_eq!(k.annotation(kind, NAMESPACE, leader_obj, "leader").as_deref(), Some("node1"));
    assert_eq!(k.annotation(kind, NAMESPACE, "demo-config", "config").as_deref(), Some(r#"{"ttl":30}"#));
    let obj = k.get(kind, NAMESPACE, leader_obj).unwrap();
    assert_eq!(obj["metadata"]["labels"], json!({"application": "patroni", "cluster-name": "demo"}));
    if mode == Mode::Endpoints {
        assert_eq!(obj["subsets"][0]["addresses"][0]["ip"], json!("127.0.0.1"), "{obj}");
        assert_eq!(obj["subsets"][0]["ports"][0]["port"], json!(5432), "{obj}");
        // Patroni made the headless service that keeps `<scope>-config`.
        assert!(k.get("services", NAMESPACE, "demo-config").is_some());
    }
    assert_eq!(k.pod_labels(NAMESPACE, "node1").get("role").map(String::as_str), Some("primary"));
    let status: Value = serde_json::from_str(&k.annotation("pods", NAMESPACE, "node1", "status").unwrap()).unwrap();
    assert_eq!(status["api_url"], json!("http://127.0.0.1:8009/patroni"));
    // The adapter reads the same through Patroni's key names.
    assert_eq!(dcs.get("/service/demo/leader").as_deref(), Some(&b"node1"[..]));
    assert_eq!(dcs.get("/service/demo/initialize").as_deref(), Some(&b"7000000000000000001"[..]));

    // A second Patroni sees node1 lead (its HA loop would not race for the
    // lock); a failover request it writes is read back.
    let other = patroni_dcs(
        &dcs,
        "node2",
        r#"
c = d.get_cluster()
result['leader_seen'] = c.leader and c.leader.name
result['failover_set'] = d.manual_failover('node1', 'node2')
"#,
    );
    assert_eq!((other["leader_seen"].clone(), other["failover_set"].clone()), (json!("node1"), json!(true)), "{other}");
    assert_eq!(other["failover"], json!(["node1", "node2"]), "{other}");
    assert_eq!(k.annotation(kind, NAMESPACE, "demo-failover", "member").as_deref(), Some("node2"));
    // node1 lets go: the leader annotation goes, the object stays.
    let gone = patroni_dcs(
        &dcs,
        "node1",
        "d.get_cluster()\nresult['deleted'] = bool(d.delete_leader(d.get_cluster().leader, 67108961))",
    );
    assert_eq!(gone["deleted"], json!(true), "{gone}");
    assert_eq!(k.annotation(kind, NAMESPACE, leader_obj, "leader"), None);
    assert_eq!(k.annotation(kind, NAMESPACE, leader_obj, "optime").as_deref(), Some("67108961"));
    if mode == Mode::Endpoints {
        assert_eq!(k.get(kind, NAMESPACE, leader_obj).unwrap()["subsets"], json!([]));
    }
}

#[test]
fn patroni_dcs_module_on_configmaps() {
    patroni_module_on(Mode::ConfigMaps);
}

#[test]
fn patroni_dcs_module_on_endpoints() {
    patroni_module_on(Mode::Endpoints);
}

fn patroni_spec(dcs: DcsBackend, nodes: usize) -> ClusterSpec {
    ClusterSpec {
        engine: Engine::Patroni { venv: palisade_tests::patroni::venv() },
        dcs,
        nodes,
        // Patroni raises a ttl below 20 and a retry_timeout below 3.
        ttl: 20,
        loop_wait: 2,
        retry_timeout: 3,
        ..ClusterSpec::default()
    }
}

fn role_label(k: &RawKube, pod: &str) -> Option<String> {
    k.pod_labels(NAMESPACE, pod).get("role").cloned()
}

fn wait_role(k: &RawKube, pod: &str, role: &str) {
    let ok = wait_until(Duration::from_secs(60), || role_label(k, pod).as_deref() == Some(role));
    assert!(ok, "pod {pod} should be labelled role={role}: {:?}", k.pod_labels(NAMESPACE, pod));
}

/// One Patroni node bootstraps on the double: the leader lock, the
/// configuration and its pod's role label are where Patroni keeps them.
fn one_patroni_node_bootstraps(dcs: DcsBackend, mode: Mode) {
    let cluster = Cluster::start("k8s-patroni-one", patroni_spec(dcs, 1));
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(90)), "node1");
    let k = RawKube::of(cluster.dcs.as_ref());
    let scope = &cluster.scope;
    let (kind, leader_obj) = match mode {
        Mode::ConfigMaps => ("configmaps", format!("{scope}-leader")),
        Mode::Endpoints => ("endpoints", scope.clone()),
    };
    assert_eq!(k.annotation(kind, NAMESPACE, &leader_obj, "leader").as_deref(), Some("node1"));
    let config = k.annotation(kind, NAMESPACE, &format!("{scope}-config"), "config").expect("<scope>-config");
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["ttl"], json!(20), "{config}");
    assert!(k.annotation(kind, NAMESPACE, &format!("{scope}-config"), "initialize").is_some());
    wait_role(&k, "node1", "primary");
    let status: Value = serde_json::from_str(&k.annotation("pods", NAMESPACE, "node1", "status").unwrap()).unwrap();
    assert_eq!(status["role"], json!("primary"), "{status}");
    if mode == Mode::Endpoints {
        let ep = k.get("endpoints", NAMESPACE, scope).unwrap();
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], json!("127.0.0.1"), "{ep}");
    }
    // The leader renews: the lock object's resourceVersion moves on.
    let before = k.get(kind, NAMESPACE, &leader_obj).unwrap();
    let renewed = wait_until(Duration::from_secs(30), || {
        k.get(kind, NAMESPACE, &leader_obj).is_some_and(|o| rv(&o) != rv(&before))
    });
    assert!(renewed, "the leader renews its lock");
}

fn patronictl_switchover(cluster: &Cluster, from: &str, to: &str) {
    let venv = palisade_tests::patroni::venv();
    let args = ["switchover", "--leader", from, "--candidate", to, "--force"];
    let out = run_with(cluster, &venv.join("bin/patronictl"), &args, "", &[]);
    assert_eq!(out.code, 0, "patronictl switchover {from} -> {to}: {out:?}\n{}", cluster.logs());
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(90)), to);
    cluster.wait_streaming(to, 1, Duration::from_secs(120));
}

/// Two Patroni nodes: switchover both ways with patronictl (the pods'
/// role labels follow), then a failover after kill -9 of the leader.
fn two_patroni_nodes_switch_over_and_fail_over(dcs: DcsBackend) {
    let mut cluster = Cluster::start("k8s-patroni-two", patroni_spec(dcs, 2));
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(90)), "node1");
    cluster.wait_streaming("node1", 1, Duration::from_secs(120));
    let k = RawKube::of(cluster.dcs.as_ref());
    wait_role(&k, "node1", "primary");
    wait_role(&k, "node2", "replica");
    cluster.insert("node1", 1, "bootstrapped");

    patronictl_switchover(&cluster, "node1", "node2");
    wait_role(&k, "node2", "primary");
    wait_role(&k, "node1", "replica");
    cluster.insert("node2", 2, "after the first switchover");
    cluster.wait_sql("node1", "SELECT count(*) FROM t", "2", Duration::from_secs(60));

    patronictl_switchover(&cluster, "node2", "node1");
    wait_role(&k, "node1", "primary");
    wait_role(&k, "node2", "replica");

    cluster.kill9("node1", true);
    assert_eq!(cluster.wait_for_new_leader("node1", Duration::from_secs(120)), "node2");
    wait_role(&k, "node2", "primary");
    cluster.insert("node2", 3, "after the failover");
    cluster.start_node(0);
    cluster.wait_sql("node1", "SELECT count(*) FROM t", "3", Duration::from_secs(120));
}

#[test]
fn one_patroni_node_on_configmaps() {
    one_patroni_node_bootstraps(palisade_tests::dcs::KUBERNETES, Mode::ConfigMaps);
}

#[test]
fn one_patroni_node_on_endpoints() {
    one_patroni_node_bootstraps(palisade_tests::dcs::KUBERNETES_ENDPOINTS, Mode::Endpoints);
}

#[test]
fn two_patroni_nodes_on_configmaps() {
    two_patroni_nodes_switch_over_and_fail_over(palisade_tests::dcs::KUBERNETES);
}

#[test]
fn two_patroni_nodes_on_endpoints() {
    two_patroni_nodes_switch_over_and_fail_over(palisade_tests::dcs::KUBERNETES_ENDPOINTS);
}
