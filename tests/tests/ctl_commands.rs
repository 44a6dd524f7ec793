//! palisadectl against a real cluster: every command, its output formats
//! and its effects.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_test_support::{wait_for, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::ctl::{palisadectl, run_with};
use serde_json::Value;

fn spec() -> ClusterSpec {
    ClusterSpec { nodes: 3, ttl: 10, loop_wait: 1, retry_timeout: 3, ..ClusterSpec::default() }
}

fn pending(cluster: &Cluster, node: &str) -> bool {
    cluster.node(node).get("/patroni").is_ok_and(|r| r.json()["pending_restart"] == true)
}

#[test]
fn palisadectl_commands() {
    let mut cluster = Cluster::start("ctl", spec());
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.wait_streaming("node1", 2, Duration::from_secs(60));
    let scope = cluster.scope.clone();
    let ctl = |args: &[&str]| palisadectl(&cluster, args);

    // list in every format
    let out = wait_for("three streaming members in the list", Duration::from_secs(30), || {
        let out = ctl(&["list"]).ok().stdout;
        (out.matches("| streaming |").count() == 2).then_some(out)
    });
    assert!(out.starts_with(&format!("+ Cluster: {scope} (")), "{out}");
    assert!(out.contains("| Member | Host"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("| node1 ") && l.contains("| Leader ")), "{out}");
    let json: Value = serde_json::from_str(&ctl(&["list", "-f", "json"]).ok().stdout).unwrap();
    let roles: Vec<&str> = json.as_array().unwrap().iter().map(|m| m["Role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["Leader", "Replica", "Replica"]);
    assert_eq!(json[0]["Cluster"], scope.as_str());
    let tsv = ctl(&["list", "-f", "tsv"]).ok().stdout;
    assert!(
        tsv.starts_with("Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag\n"),
        "{tsv}"
    );
    assert!(ctl(&["list", "-f", "yaml"]).ok().stdout.starts_with(&format!("- Cluster: {scope}\n")));
    let topology = ctl(&["topology"]).ok().stdout;
    assert!(topology.contains("| + node2 ") && topology.contains("| + node3 "), "{topology}");
    assert!(ctl(&["dsn"]).ok().stdout.starts_with(&format!("host=127.0.0.1 port={}", cluster.node("node1").pg_port)));
    let version = ctl(&["version", &scope]).ok().stdout;
    assert!(version.contains("node2: Patroni 4.1.4 PostgreSQL 15."), "{version}");
    let q = ctl(&["query", "-U", "postgres", "-c", "SELECT 1 AS x, 'a' AS y"]).ok().stdout;
    assert_eq!(q, "x\ty\n1\ta\n");
    let bad = ctl(&["list", "-f", "xml"]);
    assert_eq!(bad.code, 2, "{bad:?}");

    // show-config and edit-config
    assert!(ctl(&["show-config"]).ok().stdout.contains("ttl: 10\n"));
    let out = ctl(&["edit-config", "--set", "loop_wait=2", "--pg", "work_mem=8MB", "--force"]).ok().stdout;
    assert!(out.contains("-loop_wait: 1\n+loop_wait: 2\n") && out.ends_with("Configuration changed\n"), "{out}");
    for n in ["node1", "node2", "node3"] {
        cluster.wait_sql(n, "SHOW work_mem", "8MB", Duration::from_secs(30));
    }
    let refused = ctl(&["edit-config", "--set", "ttl=soon", "--force"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("Error: invalid configuration: ttl:"), "{refused:?}");
    let editor = cluster.dir().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/^loop_wait: 2$/loop_wait: 1/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let editor_s = editor.to_string_lossy().into_owned();
    let out =
        run_with(&cluster, &cluster.bin().join("palisadectl"), &["edit-config"], "y\n", &[("EDITOR", &editor_s)]).ok();
    assert!(out.stdout.contains("-loop_wait: 2\n+loop_wait: 1\n"), "{out:?}");
    assert!(out.stdout.contains("Apply these changes? [y/N]: Configuration changed"), "{out:?}");
    let declined =
        run_with(&cluster, &cluster.bin().join("palisadectl"), &["edit-config", "-s", "ttl=11"], "n\n", &[]).ok();
    assert!(!declined.stdout.contains("Configuration changed"));
    assert!(ctl(&["show-config"]).ok().stdout.contains("ttl: 10\n"));

    // switchover, now and scheduled; history
    let out = ctl(&["switchover", "--candidate", "node2", "--force"]).ok().stdout;
    assert!(out.contains("Successfully switched over to \"node2\""), "{out}");
    cluster.node("node2").sql("CREATE TABLE t (id int)").unwrap();
    cluster.wait_streaming("node2", 2, Duration::from_secs(60));
    let history = wait_for("the switchover in history", Duration::from_secs(30), || {
        let h = ctl(&["history", "-f", "json"]).ok().stdout;
        h.contains("node2").then_some(h)
    });
    let h: Value = serde_json::from_str(&history).unwrap();
    assert_eq!(h[0]["TL"], 1);
    assert_eq!(h[0]["New Leader"], "node2");
    assert!(ctl(&["history"]).ok().stdout.contains("| TL |"));
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let out = ctl(&["switchover", "--scheduled", &at, "--force"]).ok().stdout;
    assert!(out.contains("Switchover scheduled"), "{out}");
    assert!(ctl(&["list"]).ok().stdout.contains(" Switchover scheduled at: "));
    let out = ctl(&["flush", &scope, "switchover"]).ok().stdout;
    assert_eq!(out, "Success: scheduled switchover deleted\n");
    assert_eq!(ctl(&["flush", &scope, "switchover"]).ok().stdout, "No pending scheduled switchover\n");

    // a switchover asks and can be refused
    let asked = run_with(&cluster, &cluster.bin().join("palisadectl"), &["switchover"], "\nnode3\n\nn\n", &[]);
    assert_eq!(asked.code, 1, "{asked:?}");
    assert!(asked.stdout.contains("Primary [node2]: Candidate ['node1', 'node3'] []: "), "{asked:?}");
    assert!(asked.stderr.contains("Error: Aborting switchover"), "{asked:?}");
    assert_eq!(cluster.leader().as_deref(), Some("node2"));

    // pause and resume
    assert_eq!(ctl(&["pause", "--wait"]).ok().stdout.lines().last(), Some("Success: cluster management is paused"));
    assert!(ctl(&["list"]).ok().stdout.contains(" Maintenance mode: on"));
    assert_eq!(ctl(&["pause"]).code, 1);
    assert_eq!(ctl(&["resume", "--wait"]).ok().stdout.lines().last(), Some("Success: cluster management is resumed"));

    // restart of one member, then of those with a pending restart
    ctl(&["edit-config", "--pg", "max_connections=150", "--force"]).ok();
    for n in ["node1", "node2", "node3"] {
        assert!(wait_until(Duration::from_secs(30), || pending(&cluster, n)), "{n} has no pending restart");
    }
    let out = ctl(&["restart", &scope, "node3", "--force"]).ok().stdout;
    assert!(out.ends_with("Success: restart on member node3\n"), "{out}");
    assert!(wait_until(Duration::from_secs(30), || !pending(&cluster, "node3")));
    let pid3 = cluster.node("node3").postmaster_pid();
    assert!(wait_until(Duration::from_secs(30), || ctl(&["list", "-e", "-f", "json"])
        .ok()
        .stdout
        .matches("\"Pending restart\": \"*\"")
        .count()
        == 2));
    let out = ctl(&["restart", &scope, "--pending", "--force"]).ok().stdout;
    assert!(
        out.contains("Success: restart on member node1") && out.contains("Success: restart on member node2"),
        "{out}"
    );
    assert!(!out.contains("member node3"), "{out}");
    assert_eq!(cluster.node("node3").postmaster_pid(), pid3);
    for n in ["node1", "node2", "node3"] {
        cluster.wait_sql(n, "SHOW max_connections", "150", Duration::from_secs(30));
    }
    let out = ctl(&["restart", &scope, "node1", "--scheduled", &at, "--force"]).ok().stdout;
    assert!(out.ends_with("Success: restart scheduled on member node1\n"), "{out}");
    assert!(wait_until(Duration::from_secs(20), || ctl(&["list"]).ok().stdout.contains("Scheduled restart")));
    let out = ctl(&["flush", &scope, "node1", "restart", "--force"]).ok().stdout;
    assert!(out.contains("Success: flush scheduled restart for member node1"), "{out}");
    let out = ctl(&["reload", &scope, "node3", "--force"]).ok().stdout;
    assert!(out.contains("Reload request received for member node3 and will be processed within 1 seconds"), "{out}");

    // reinit a replica and wait for it
    let out = ctl(&["reinit", &scope, "node3", "--force", "--wait"]).ok().stdout;
    assert!(
        out.contains("Success: reinitialize for member node3") && out.contains("Reinitialize is completed on: node3"),
        "{out}"
    );
    cluster.wait_sql("node3", "SELECT count(*) FROM t", "0", Duration::from_secs(60));

    // failover to a named replica (once it has caught up again)
    cluster.wait_streaming("node2", 2, Duration::from_secs(60));
    let out = ctl(&["failover", "--candidate", "node1", "--force"]).ok().stdout;
    assert!(out.contains("Successfully failed over to \"node1\""), "{out}");
    assert!(ctl(&["failover", "--force"]).stderr.contains("Failover could be performed only to a specific candidate"));

    // remove, once the daemons are stopped, after the three confirmations
    for n in ["node2", "node3", "node1"] {
        assert!(cluster.stop_node(n, Duration::from_secs(60)));
    }
    let wrong = run_with(&cluster, &cluster.bin().join("palisadectl"), &["remove", &scope], "other\n", &[]);
    assert!(wrong.stderr.contains("Error: Cluster names specified do not match"), "{wrong:?}");
    let input = format!("{scope}\nYes I am aware\n");
    let out = run_with(&cluster, &cluster.bin().join("palisadectl"), &["remove", &scope], &input, &[]).ok();
    assert!(out.stdout.contains("Please confirm the cluster name to remove: "), "{out:?}");
    assert!(cluster.keys().is_empty(), "keys are left after remove");
}
