//! The synchronous scripts around PostgreSQL's life: `pre_promote` (a
//! non-zero exit means no promotion: the lock is given up and the race run
//! again), `before_stop` (runs while PostgreSQL still accepts connections,
//! before it is told to stop), and palisade's `postgresql.hooks`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use palisade_test_support::{pg_bin_dir, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec};

/// Add `lines` (indented by two) to node `name`'s `postgresql` section.
fn add_postgresql_lines(cluster: &Cluster, name: &str, lines: &str) {
    let path = &cluster.node(name).config;
    let text = std::fs::read_to_string(path).unwrap();
    let anchor = "  authentication:\n    superuser:\n";
    assert!(text.contains(anchor), "no postgresql.authentication in {}", path.display());
    std::fs::write(path, text.replacen(anchor, &format!("{lines}{anchor}"), 1)).unwrap();
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(String::from).collect()
}

#[test]
fn a_failing_pre_promote_script_blocks_the_promotion_until_it_succeeds() {
    let spec = ClusterSpec {
        nodes: 2,
        // node2 cannot reach the killed primary for a while.
        allowed_errors: vec!["Exception during CHECKPOINT"],
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::prepare("pre-promote", spec);
    let flag = cluster.dir().join("fence-refuses");
    let calls = cluster.dir().join("pre-promote.calls");
    // Refuses (exit 1) while the flag file exists; records each call.
    let script = cluster.write(
        "fence.sh",
        &format!(
            "#!/bin/sh\nif [ -e {flag} ]; then echo refused >> {calls}; exit 1; fi\necho allowed >> {calls}\n",
            flag = flag.display(),
            calls = calls.display()
        ),
        0o755,
    );
    cluster.write("fence-refuses", "", 0o644);
    add_postgresql_lines(&cluster, "node2", &format!("  pre_promote: {}\n", script.display()));
    cluster.start_node(0);
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.start_node(1);
    cluster.wait_streaming("node1", 1, Duration::from_secs(90));

    cluster.kill9("node1", true);
    // node2 takes the lock, runs the script, is refused, gives the lock up.
    let refused = wait_until(Duration::from_secs(60), || {
        cluster.node("node2").log().contains("Promotion cancelled because the pre-promote script failed")
    });
    assert!(refused, "node2 never cancelled a promotion; calls: {:?}", lines(&calls));
    let log = cluster.node("node2").log();
    assert!(log.contains(&format!("pre_promote script `{}` exited with 1", script.display())), "{log}");
    assert!(log.contains("Releasing the leader key voluntarily because the pre-promote script failed"), "{log}");
    assert_eq!(cluster.node("node2").sql("SELECT pg_is_in_recovery()").unwrap(), "t", "node2 was promoted");
    assert_ne!(cluster.leader().as_deref(), Some("node2"), "node2 kept the lock");

    // Once the fencing script agrees, the race is run again and node2 wins.
    std::fs::remove_file(&flag).unwrap();
    assert_eq!(cluster.wait_for_new_leader("node1", Duration::from_secs(60)), "node2");
    let calls = lines(&calls);
    assert_eq!(calls.last().map(String::as_str), Some("allowed"), "{calls:?}");
    assert!(calls.iter().filter(|c| *c == "refused").count() >= 1, "{calls:?}");
    assert!(calls[..calls.len() - 1].iter().all(|c| c == "refused"), "{calls:?}");
}

#[test]
fn before_stop_runs_while_postgres_accepts_and_hooks_run_in_order() {
    let spec = ClusterSpec {
        nodes: 1,
        allowed_errors: vec!["hook on_stop #2 ", "hook on_start #1 "],
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::prepare("before-stop", spec);
    let events = cluster.dir().join("events");
    let node = cluster.node("node1");
    // Records whether PostgreSQL still accepts connections when it runs.
    let before_stop = cluster.write(
        "before-stop.sh",
        &format!(
            "#!/bin/sh\nif {isready} -q -h 127.0.0.1 -p {port}; then s=accepting; else s=down; fi\n\
             echo \"before_stop $s\" >> {events}\n",
            isready = pg_bin_dir().join("pg_isready").display(),
            port = node.pg_port,
            events = events.display()
        ),
        0o755,
    );
    let record = cluster.write(
        "record.sh",
        &format!("#!/bin/sh\nwhat=\"$1\"; shift\necho \"$what $1 $2\" >> {}\n", events.display()),
        0o755,
    );
    let fail = cluster.write("fail.sh", "#!/bin/sh\necho \"boom: $1 $2\"\necho 'on stderr' >&2\nexit 3\n", 0o755);
    add_postgresql_lines(
        &cluster,
        "node1",
        &format!(
            "  before_stop: {before_stop}\n  callbacks:\n    on_stop: {record} callback\n  hooks:\n    on_stop:\n      \
             - {record} hook1\n      - command: {fail}\n        timeout: 5\n      - {{command: '{record} hook3', timeout: 5}}\n    \
             on_start:\n      - command: sh -c 'sleep 30'\n        timeout: 1\n",
            before_stop = before_stop.display(),
            record = record.display(),
            fail = fail.display(),
        ),
    );
    cluster.start_node(0);
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    // on_start's hook outlives its timeout and is killed.
    let killed = wait_until(Duration::from_secs(30), || {
        cluster
            .node("node1")
            .log()
            .contains("hook on_start #1 `sh -c 'sleep 30'` did not end within 1 s and was killed")
    });
    assert!(killed, "{}", cluster.node("node1").log());

    assert!(cluster.stop_node("node1", Duration::from_secs(60)), "node1 did not stop");
    // The daemon waited for the hooks before it exited.
    let events = lines(&events);
    assert_eq!(events.first().map(String::as_str), Some("before_stop accepting"), "{events:?}");
    let hooks: Vec<&str> = events.iter().map(String::as_str).filter(|e| e.starts_with("hook")).collect();
    assert_eq!(hooks, ["hook1 on_stop primary", "hook3 on_stop primary"], "{events:?}");
    assert!(events.iter().any(|e| e == "callback on_stop primary"), "{events:?}");
    let log = cluster.node("node1").log();
    let before_stop_line = format!("before_stop script `{}` exited with 0", before_stop.display());
    assert!(log.contains(&before_stop_line), "{log}");
    let failed =
        format!("hook on_stop #2 `{}` exited with 3; its output:\nboom: on_stop primary\non stderr\n", fail.display());
    assert!(log.contains(&failed), "{log}");
    // before_stop ran before PostgreSQL was told to stop: its line comes
    // before PostgreSQL's own "received fast shutdown request".
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the log:\n{log}"));
    assert!(at(&before_stop_line) < at("received fast shutdown request"), "{log}");
}
