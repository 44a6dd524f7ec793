//! Callbacks as Patroni 4.1 fires them: a script records every call
//! (`node action role`) while a cluster goes through bootstrap, a
//! switchover, a failover, restarts, a reload and a stop. The same sequence
//! is run on a cluster of Patroni 4.1 nodes, with the same files, and both
//! records must be the same, node by node.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_test_support::{wait_for, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec, Engine};

/// `record.sh <file> <node> <action> <role> <scope>`: one line per call.
const RECORD: &str = "#!/bin/sh\nfile=\"$1\"; shift\nprintf '%s %s %s\\n' \"$1\" \"$2\" \"$3\" >> \"$file\"\n";

/// Timings both Patroni and palisade accept; node3 never becomes the
/// leader, so that the failover has one possible winner.
fn spec(engine: Engine) -> ClusterSpec {
    let spec = ClusterSpec {
        node_extra: |i| if i == 2 { "tags:\n  nofailover: true\n".into() } else { String::new() },
        ..ClusterSpec::default()
    };
    let spec = spec.with_patroni_node2();
    ClusterSpec {
        engine,
        patroni_nodes: Vec::new(),
        // The killed primary's replicas cannot reach it for a while.
        allowed_errors: vec!["Exception during CHECKPOINT"],
        ..spec
    }
}

/// Add `lines` (indented by two, `{node}` replaced) to every node's
/// `postgresql` section, before the daemons start.
pub fn add_postgresql_lines(cluster: &Cluster, names: &[&str], lines: &str) {
    for name in names {
        let path = &cluster.node(name).config;
        let text = std::fs::read_to_string(path).unwrap();
        let anchor = "  authentication:\n    superuser:\n";
        assert!(text.contains(anchor), "no postgresql.authentication in {}", path.display());
        let text = text.replacen(anchor, &format!("{}{anchor}", lines.replace("{node}", name)), 1);
        std::fs::write(path, text).unwrap();
    }
}

/// The calls recorded for `node`, as `action role`.
///
/// Patroni's demotion passes `demoted` to on_stop when its on_shutdown hook
/// released the lock before the postmaster was gone, `primary` otherwise: a
/// race of its own (a fast shutdown of an idle primary nearly always ends
/// first). palisade always says `primary`; Patroni's `demoted` counts as it.
fn calls(file: &Path, node: &str) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{node} ")))
        .map(|l| if l == "on_stop demoted" { "on_stop primary".to_string() } else { l.to_string() })
        .collect()
}

struct Run {
    cluster: Cluster,
    file: PathBuf,
    label: &'static str,
}

impl Run {
    fn calls(&self, node: &str) -> Vec<String> {
        calls(&self.file, node)
    }

    /// Wait until `node`'s calls are `want` (they come in the background).
    fn expect(&self, node: &str, want: &[&str], step: &str) {
        let ok = wait_until(Duration::from_secs(60), || self.calls(node) == want);
        assert!(
            ok,
            "{} after {step}: {node} recorded {:?}, expected {want:?}\n{}",
            self.label,
            self.calls(node),
            std::fs::read_to_string(&self.file).unwrap_or_default()
        );
    }

    /// Wait until the last call `node` recorded is `want`.
    fn expect_last(&self, node: &str, want: &str, step: &str) {
        let ok = wait_until(Duration::from_secs(60), || self.calls(node).last().map(String::as_str) == Some(want));
        assert!(ok, "{} after {step}: {node} recorded {:?}, expected {want:?} last", self.label, self.calls(node));
    }
}

/// Run the sequence on a cluster of `engine`; every node's calls at the end.
fn run_sequence(label: &'static str, engine: Engine) -> Vec<(String, Vec<String>)> {
    let mut cluster = Cluster::prepare(label, spec(engine));
    let script = cluster.write("record.sh", RECORD, 0o755);
    let file = cluster.dir().join("callbacks.log");
    let command = format!("{} {} {{node}}", script.display(), file.display());
    let lines: String = ["on_start", "on_stop", "on_restart", "on_reload", "on_role_change"]
        .iter()
        .map(|a| format!("    {a}: {command}\n"))
        .collect();
    add_postgresql_lines(&cluster, &["node1", "node2", "node3"], &format!("  callbacks:\n{lines}"));

    // Bootstrap: node1 initialises the cluster, the others clone it.
    cluster.start_node(0);
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(90)), "node1");
    cluster.start_node(1);
    cluster.start_node(2);
    cluster.wait_streaming("node1", 2, Duration::from_secs(120));
    let mut run = Run { cluster, file, label };
    run.expect("node1", &["on_start primary"], "bootstrap");
    run.expect("node2", &["on_start replica"], "bootstrap");
    run.expect("node3", &["on_start replica"], "bootstrap");

    // Switchover node1 -> node2, once both replicas publish that they stream.
    wait_for("the replicas' member keys to say streaming", Duration::from_secs(60), || {
        let c = run.cluster.node("node1").get("/cluster").ok()?.json();
        let streaming = c["members"].as_array()?.iter().filter(|m| m["state"] == "streaming").count();
        (streaming == 2).then_some(())
    });
    let r = run.cluster.node("node1").call("POST", "/switchover", Some(r#"{"leader": "node1", "candidate": "node2"}"#));
    assert_eq!(r.status, 200, "switchover: {}", r.body);
    assert_eq!(run.cluster.wait_for_new_leader("node1", Duration::from_secs(60)), "node2");
    run.cluster.wait_streaming("node2", 2, Duration::from_secs(90));
    run.expect("node2", &["on_start replica", "on_role_change primary"], "the switchover");
    run.expect("node1", &["on_start primary", "on_stop primary", "on_role_change replica"], "the switchover");
    run.expect("node3", &["on_start replica", "on_reload replica"], "the switchover");

    // Failover: node2 dies with its PostgreSQL; node1 takes over (node3
    // has nofailover).
    run.cluster.kill9("node2", true);
    assert_eq!(run.cluster.wait_for_new_leader("node2", Duration::from_secs(90)), "node1");
    run.cluster.wait_streaming("node1", 1, Duration::from_secs(90));
    run.expect(
        "node1",
        &["on_start primary", "on_stop primary", "on_role_change replica", "on_role_change primary"],
        "the failover",
    );
    run.expect("node3", &["on_start replica", "on_reload replica", "on_reload replica"], "the failover");

    // Restart the replica, then the primary (POST /restart answers once done).
    for (node, role) in [("node3", "replica"), ("node1", "primary")] {
        let r = run.cluster.node(node).call("POST", "/restart", Some("{}"));
        assert_eq!(r.status, 200, "restart {node}: {}", r.body);
        run.expect_last(node, &format!("on_restart {role}"), "its restart");
    }
    run.cluster.wait_streaming("node1", 1, Duration::from_secs(90));

    // Rebuild the replica: stopped in its role, then cloned and started.
    let mut want = run.calls("node3");
    let r = run.cluster.node("node3").call("POST", "/reinitialize", Some("{}"));
    assert_eq!(r.status, 200, "reinitialize: {}", r.body);
    want.extend(["on_stop replica".to_string(), "on_start replica".to_string()]);
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    run.expect("node3", &want, "the reinitialisation");
    run.cluster.wait_streaming("node1", 1, Duration::from_secs(90));

    // Reload the primary.
    let r = run.cluster.node("node1").call("POST", "/reload", None);
    assert!(r.status == 202 || r.status == 200, "reload: {} {}", r.status, r.body);
    run.expect_last("node1", "on_reload primary", "the reload");

    // A dynamic change that a reload applies: every running node reloads.
    let before = [run.calls("node1"), run.calls("node3")];
    let r = run.cluster.node("node1").call(
        "PATCH",
        "/config",
        Some(r#"{"postgresql": {"parameters": {"work_mem": "8MB"}}}"#),
    );
    assert_eq!(r.status, 200, "PATCH /config: {}", r.body);
    for ((node, role), before) in [("node1", "primary"), ("node3", "replica")].into_iter().zip(before) {
        let mut want: Vec<String> = before;
        want.push(format!("on_reload {role}"));
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        run.expect(node, &want, "the dynamic change");
    }

    // Stop the replica, then the primary.
    for node in ["node3", "node1"] {
        assert!(run.cluster.stop_node(node, Duration::from_secs(60)), "{node} did not stop");
    }
    run.expect_last("node3", "on_stop replica", "its stop");
    run.expect_last("node1", "on_stop primary", "its stop");
    ["node1", "node2", "node3"].iter().map(|n| (n.to_string(), run.calls(n))).collect()
}

#[test]
fn callbacks_fire_with_patronis_arguments_at_patronis_moments() {
    let palisade = run_sequence("cb-palisade", Engine::Palisade);
    let patroni = run_sequence("cb-patroni", Engine::Patroni { venv: palisade_tests::patroni::venv() });
    assert_eq!(palisade, patroni, "palisade's calls (left) differ from Patroni's (right)");
    let node1: Vec<&str> = palisade[0].1.iter().map(String::as_str).collect();
    assert_eq!(
        node1,
        [
            "on_start primary",
            "on_stop primary",
            "on_role_change replica",
            "on_role_change primary",
            "on_restart primary",
            "on_reload primary",
            "on_reload primary",
            "on_stop primary"
        ]
    );
}
