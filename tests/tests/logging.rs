//! The daemon's log as Patroni writes it: JSON lines with the fields
//! `log.format` names (renamed as asked) and `log.static_fields`, and
//! `log.deduplicate_heartbeat_logs` folding the repeated heartbeat line.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_test_support::wait_until;
use palisade_tests::cluster::{Cluster, ClusterSpec};

const LEADER_HEARTBEAT: &str = "no action. I am (node1), the leader with the lock";
const REPLICA_HEARTBEAT: &str = "no action. I am (node2), a secondary, and following a leader (node1)";

/// Replace node `name`'s `log` section.
fn set_log_section(cluster: &Cluster, name: &str, section: &str) {
    let path = &cluster.node(name).config;
    let text = std::fs::read_to_string(path).unwrap();
    let anchor = "log:\n  level: INFO\n";
    assert!(text.contains(anchor), "no log section in {}", path.display());
    std::fs::write(path, text.replacen(anchor, section, 1)).unwrap();
}

/// The JSON lines of a log (PostgreSQL's own lines share the file).
fn json_lines(log: &str) -> Vec<(String, serde_json::Value)> {
    log.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| (l.to_string(), serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))))
        .collect()
}

#[test]
fn json_lines_carry_the_configured_fields_and_heartbeats_are_folded() {
    let spec = ClusterSpec { nodes: 2, ..ClusterSpec::default() };
    let mut cluster = Cluster::prepare("logging", spec);
    // node1 writes JSON and folds heartbeats; node2 is the control, with
    // the plain layout and every heartbeat.
    set_log_section(
        &cluster,
        "node1",
        "log:\n  level: INFO\n  type: json\n  format: [asctime, {levelname: level}, message, name]\n  \
         static_fields:\n    app: palisade-test\n    dc: [1, 2]\n  deduplicate_heartbeat_logs: true\n",
    );
    cluster.start_node(0);
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.start_node(1);
    cluster.wait_streaming("node1", 1, Duration::from_secs(90));

    let count = |log: &str, line: &str| log.lines().filter(|l| l.ends_with(line)).count();
    let leader_heartbeats =
        || json_lines(&cluster.node("node1").log()).iter().filter(|(_, v)| v["message"] == LEADER_HEARTBEAT).count();
    // Once node2 streams, both loops run one cycle a second: while node2
    // logs eight heartbeats, node1 logs its own (the same each time) at
    // most once more (a cycle that logs anything else starts afresh).
    let base2 = count(&cluster.node("node2").log(), REPLICA_HEARTBEAT);
    let base1 = leader_heartbeats();
    let cycled =
        wait_until(Duration::from_secs(60), || count(&cluster.node("node2").log(), REPLICA_HEARTBEAT) >= base2 + 8);
    assert!(cycled, "node2 logged no heartbeats:\n{}", cluster.node("node2").log());
    let folded = leader_heartbeats() - base1;
    assert!(folded <= 1, "node1 logged its heartbeat {folded} times in eight cycles:\n{}", cluster.node("node1").log());
    assert!(leader_heartbeats() >= 1, "node1 never logged its heartbeat:\n{}", cluster.node("node1").log());

    // Every line of node1's daemon is a JSON object with the fields in
    // the configured order, renamed, then the static fields.
    let lines = json_lines(&cluster.node("node1").log());
    assert!(lines.len() >= 5, "{lines:?}");
    for (raw, v) in &lines {
        let keys = ["\"asctime\": ", "\"level\": ", "\"message\": ", "\"name\": ", "\"app\": ", "\"dc\": "];
        let at: Vec<usize> = keys.iter().map(|k| raw.find(k).unwrap_or_else(|| panic!("{k} missing: {raw}"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "fields out of order: {raw}");
        assert!(!raw.contains("\"levelname\""), "levelname was not renamed: {raw}");
        assert_eq!(v["app"], "palisade-test", "{raw}");
        assert_eq!(v["dc"], serde_json::json!([1, 2]), "{raw}");
        assert!(["DEBUG", "INFO", "WARNING", "ERROR"].contains(&v["level"].as_str().unwrap_or("")), "{raw}");
        let asctime = v["asctime"].as_str().unwrap_or("");
        assert_eq!(asctime.len(), 23, "asctime as Python writes it: {raw}");
        assert!(v["name"].as_str().is_some_and(|n| !n.is_empty()), "{raw}");
        // json.dumps' spacing, as python-json-logger writes it.
        assert!(raw.contains("\", \"level\": \""), "{raw}");
    }
    assert!(lines.iter().any(|(_, v)| v["message"] == "initialized a new cluster"), "{lines:?}");
    // The control logs every heartbeat, in the plain layout.
    let log2 = cluster.node("node2").log();
    assert!(count(&log2, REPLICA_HEARTBEAT) >= 8, "{log2}");
    assert!(!log2.lines().any(|l| l.starts_with('{')), "{log2}");
}
