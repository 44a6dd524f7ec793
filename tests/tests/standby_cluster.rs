//! Standby clusters on real processes: a 2-node standby cluster
//! replicating from a 2-node primary cluster (streaming through a slot, or
//! from a pgBackRest archive through `restore_command`), failover inside
//! the standby cluster, and demote-cluster / promote-cluster swapping the
//! roles of two clusters without losing data (streaming, and through the
//! pgBackRest archive alone).
//!
//! Each cluster has its own etcd, as two clusters in two data centres do;
//! they only meet through PostgreSQL replication.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::ctl;

const MINUTE: Duration = Duration::from_secs(60);

/// `GET /patroni`'s role of `name`.
fn role(cluster: &Cluster, name: &str) -> String {
    cluster
        .node(name)
        .get("/patroni")
        .map(|r| r.json()["role"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Wait until `GET /patroni` of `name` says `expected` (published every cycle).
fn wait_role(cluster: &Cluster, name: &str, expected: &str) {
    let ok = palisade_test_support::wait_until(Duration::from_secs(30), || role(cluster, name) == expected);
    assert!(ok, "{name}: role {:?}, expected {expected}", role(cluster, name));
}

/// The rows of `t` on `name`, comma-joined.
fn rows(cluster: &Cluster, name: &str) -> String {
    cluster.node(name).sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t").unwrap_or_default()
}

/// `GET path` on `name` answers `code` within a few cycles (a member
/// publishes what it became on its next cycle).
fn wait_code(cluster: &Cluster, name: &str, path: &str, code: u16) {
    let node = cluster.node(name);
    let ok =
        palisade_test_support::wait_until(Duration::from_secs(30), || node.get(path).is_ok_and(|r| r.status == code));
    assert!(ok, "{name}: GET {path} did not answer {code}: {:?}", node.get(path));
}

/// Every surface that shows the role says the standby leader is one.
fn check_standby_leader_surfaces(cluster: &Cluster, leader: &str, replica: &str) {
    wait_code(cluster, leader, "/standby-leader", 200);
    wait_code(cluster, leader, "/standby_leader", 200);
    wait_code(cluster, leader, "/primary", 503);
    wait_code(cluster, leader, "/replica", 503);
    wait_code(cluster, replica, "/standby-leader", 503);
    wait_code(cluster, replica, "/replica", 200);
    let metrics = cluster.node(leader).get("/metrics").unwrap().body;
    assert!(metrics.lines().any(|m| m.starts_with("patroni_standby_leader{") && m.ends_with(" 1")), "{metrics}");
    assert!(metrics.lines().any(|m| m.starts_with("patroni_primary{") && m.ends_with(" 0")), "{metrics}");
    // palisadectl list reads the member keys, written every cycle.
    let list = || ctl::run_with(cluster, &cluster.bin().join("palisadectl"), &["list"], "", &[]).ok().stdout;
    let row = |list: &str, name: &str| {
        list.lines().find(|l| l.contains(&format!(" {name} "))).unwrap_or_default().to_string()
    };
    let shown = palisade_test_support::wait_until(Duration::from_secs(30), || {
        let list = list();
        row(&list, leader).contains("Standby Leader")
            && row(&list, replica).contains("Replica")
            && row(&list, replica).contains("streaming")
    });
    assert!(shown, "{}", list());
}

/// The primary cluster: two nodes and a permanent slot for the standby
/// cluster.
fn primary_spec() -> ClusterSpec {
    ClusterSpec {
        nodes: 2,
        extra_dcs: "    slots:\n      standby_cluster:\n        type: physical\n".into(),
        ..Default::default()
    }
}

#[test]
fn standby_cluster_streams_from_the_primary_cluster_and_fails_over_inside() {
    let primary = Cluster::start("sc-primary", primary_spec());
    let p = primary.wait_for_leader(MINUTE);
    primary.node(&p).sql("CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)").unwrap();

    let standby_dcs = format!(
        "    standby_cluster:\n      host: 127.0.0.1\n      port: {}\n      primary_slot_name: standby_cluster\n",
        primary.node(&p).pg_port
    );
    let mut standby =
        Cluster::start_standby("sc-standby", ClusterSpec { nodes: 2, extra_dcs: standby_dcs, ..Default::default() });
    let sl = standby.leader().unwrap();
    let other = standby.nodes.iter().map(|n| n.name.clone()).find(|n| *n != sl).unwrap();
    assert!(standby.node(&sl).log().contains("bootstrapped clone from remote member"), "{}", standby.logs());
    wait_role(&standby, &other, "replica");
    // The standby leader streams from the primary through the slot; its
    // replica cascades from it.
    primary.wait_sql(&p, "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_cluster'", "t", MINUTE);
    assert_eq!(standby.streaming_from(&sl), vec![other.clone()]);
    check_standby_leader_surfaces(&standby, &sl, &other);

    primary.node(&p).sql("INSERT INTO t VALUES (2)").unwrap();
    standby.wait_sql(&sl, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2", MINUTE);
    standby.wait_sql(&other, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2", MINUTE);

    // Failover inside the standby cluster: the replica becomes the standby
    // leader and streams from the primary through the same slot.
    standby.mark("kill the standby leader");
    standby.kill9(&sl, true);
    let new = standby.wait_for_standby_leader(MINUTE);
    assert_eq!(new, other);
    assert!(standby.node(&new).log().contains("promoted self to a standby leader by acquiring session lock"));
    primary.node(&p).sql("INSERT INTO t VALUES (3)").unwrap();
    standby.wait_sql(&new, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3", MINUTE);
    primary.wait_sql(&p, "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_cluster'", "t", MINUTE);
    assert_eq!(standby.node(&new).sql("SELECT pg_is_in_recovery()").unwrap(), "t");

    // The old standby leader comes back as a replica of the new one.
    let i = standby.index(&sl);
    standby.start_node(i);
    standby.wait_streaming(&new, 1, MINUTE);
    standby.wait_sql(&sl, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3", MINUTE);
    assert_eq!(rows(&primary, &p), "1,2,3");
}

/// `palisadectl -c <node1 of cluster> args...`, which must succeed.
fn palisadectl(cluster: &Cluster, args: &[&str]) -> String {
    ctl::run_with(cluster, &cluster.bin().join("palisadectl"), args, "", &[]).ok().stdout
}

#[test]
fn demote_cluster_and_promote_cluster_swap_the_roles_without_losing_data() {
    let a = Cluster::start("sc-swap-a", ClusterSpec { nodes: 2, ..Default::default() });
    let a1 = a.wait_for_leader(MINUTE);
    a.node(&a1).sql("CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1), (2), (3)").unwrap();
    let b_dcs = format!("    standby_cluster:\n      host: 127.0.0.1\n      port: {}\n", a.node(&a1).pg_port);
    let b = Cluster::start_standby("sc-swap-b", ClusterSpec { nodes: 2, extra_dcs: b_dcs, ..Default::default() });
    let b1 = b.leader().unwrap();
    for n in ["node1", "node2"] {
        b.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3", MINUTE);
    }

    // The last row goes in right before the demotion: the shutdown
    // checkpoint carries it to the standby cluster.
    a.node(&a1).sql("INSERT INTO t VALUES (4)").unwrap();
    a.mark("demote-cluster");
    b.mark("demote-cluster of the other cluster");
    let b1_port = b.node(&b1).pg_port.to_string();
    let out = palisadectl(&a, &["demote-cluster", "--host", "127.0.0.1", "--port", &b1_port, "--force"]);
    assert!(out.contains("cluster is successfully demoted"), "{out}");
    // No new initdb: the same node leads, now as the standby leader.
    assert_eq!(a.wait_for_standby_leader(MINUTE), a1);
    assert!(a.node(&a1).log().contains("Demoting self (demote-cluster)"), "{}", a.logs());
    // No archiving here: nothing to push, as Patroni says.
    let not_archiving = "Not archiving latest checkpoint WAL file. Archiving is not configured.";
    assert!(a.node(&a1).log().contains(not_archiving), "{}", a.logs());
    b.wait_sql(&b1, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4", MINUTE);

    a.mark("promote-cluster of the other cluster");
    b.mark("promote-cluster");
    palisadectl(&b, &["promote-cluster", "--force"]);
    let b_leader = b.wait_for_leader(MINUTE);
    assert_eq!(b_leader, b1);
    wait_role(&b, &b1, "primary");
    b.node(&b1).sql("INSERT INTO t VALUES (5)").unwrap();

    // Every node of both clusters has every row; the roles are swapped.
    for n in ["node1", "node2"] {
        b.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4,5", MINUTE);
        a.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4,5", MINUTE);
    }
    wait_role(&a, &a1, "standby_leader");
    let a2 = a.nodes.iter().map(|n| n.name.clone()).find(|n| *n != a1).unwrap();
    a.wait_streaming(&a1, 1, MINUTE);
    wait_role(&a, &a2, "replica");
    b.wait_streaming(&b1, 1, MINUTE);
    check_standby_leader_surfaces(&a, &a1, &a2);

    // And back, with Patroni's own patronictl: its PATCH is what the
    // daemons act on.
    let patronictl = palisade_tests::patroni::venv().join("bin/patronictl");
    let a1_port = a.node(&a1).pg_port.to_string();
    b.node(&b1).sql("INSERT INTO t VALUES (6)").unwrap();
    let args = ["demote-cluster", "--host", "127.0.0.1", "--port", &a1_port, "--force"];
    let out = ctl::run_with(&b, &patronictl, &args, "", &[]).ok().stdout;
    assert!(out.contains("cluster is successfully demoted"), "{out}");
    assert_eq!(b.wait_for_standby_leader(MINUTE), b1);
    a.wait_sql(&a1, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4,5,6", MINUTE);
    ctl::run_with(&a, &patronictl, &["promote-cluster", "--force"], "", &[]).ok();
    assert_eq!(a.wait_for_leader(MINUTE), a1);
    a.node(&a1).sql("INSERT INTO t VALUES (7)").unwrap();
    for n in ["node1", "node2"] {
        a.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4,5,6,7", MINUTE);
        b.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4,5,6,7", MINUTE);
    }
    let b2 = b.nodes.iter().map(|n| n.name.clone()).find(|n| *n != b1).unwrap();
    check_standby_leader_surfaces(&b, &b1, &b2);
}

/// Run pgbackrest as the test user with `conf`; panics with its output
/// when it fails.
fn pgbackrest(conf: &std::path::Path, args: &[&str]) {
    let out = palisade_test_support::command_as_test_user("pgbackrest")
        .arg(format!("--config={}", conf.display()))
        .arg("--stanza=main")
        .args(args)
        .output()
        .expect("run pgbackrest");
    assert!(
        out.status.success(),
        "pgbackrest {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn standby_cluster_replays_the_primary_clusters_pgbackrest_archive() {
    // A local pgBackRest repository the primary cluster archives into.
    let repo = palisade_test_support::Staging::new("sc-pgbackrest");
    let conf = repo.path().join("pgbackrest.conf");
    repo.dir("repo", 0o750);
    repo.dir("lock", 0o750);
    repo.dir("log", 0o750);
    repo.dir("spool", 0o750);
    let archive_push = format!("pgbackrest --config={} --stanza=main archive-push %p", conf.display());
    let primary = Cluster::prepare(
        "sc-archive-primary",
        ClusterSpec {
            nodes: 2,
            parameters_extra: format!("    archive_mode: 'on'\n    archive_command: '{archive_push}'\n"),
            ..Default::default()
        },
    );
    let p = primary.node("node1");
    repo.write(
        "pgbackrest.conf",
        &format!(
            "[global]\nrepo1-path={repo}/repo\nlock-path={repo}/lock\nlog-path={repo}/log\nspool-path={repo}/spool\nlog-level-console=warn\n\
             log-level-file=off\nstart-fast=y\n\n[main]\npg1-path={data}\npg1-port={port}\npg1-socket-path={run}\n\
             pg1-user=postgres\n",
            repo = repo.path().display(),
            data = p.data_dir.display(),
            port = p.pg_port,
            run = primary.dir().join("run/node1").display(),
        ),
        0o644,
    );
    let mut primary = primary;
    primary.start_node(0);
    primary.wait_for_leader(MINUTE);
    primary.start_node(1);
    primary.wait_streaming("node1", 1, MINUTE);
    pgbackrest(&conf, &["stanza-create"]);
    primary.node("node1").sql("CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)").unwrap();
    pgbackrest(&conf, &["--type=full", "backup"]);

    // The standby cluster: cloned from the backup (a command method, as
    // Patroni users configure pgBackRest), then fed by restore_command only.
    let restore = repo.write(
        "restore.sh",
        &format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --datadir=*) d=\"${{a#--datadir=}}\";; esac; done\n\
             mkdir -p \"$d\" && chmod 700 \"$d\"\n\
             exec pgbackrest --config={conf} --stanza=main --pg1-path=\"$d\" --type=standby restore\n",
            conf = conf.display()
        ),
        0o755,
    );
    // One restore_command for the whole standby cluster; the nodes share
    // this machine, so pgBackRest is told each one's data directory (the
    // working directory PostgreSQL runs the command in).
    let restore_command =
        format!("pgbackrest --config={} --stanza=main --pg1-path=\"$(pwd)\" archive-get %f \"%p\"", conf.display());
    let standby = Cluster::start_standby(
        "sc-archive-standby",
        ClusterSpec {
            nodes: 2,
            extra_dcs: format!(
                "    standby_cluster:\n      restore_command: '{restore_command}'\n      create_replica_methods:\n      \
                 - pgbackrest\n"
            ),
            postgresql_extra: format!(
                "  create_replica_methods:\n  - pgbackrest\n  - basebackup\n  pgbackrest:\n    command: {}\n    \
                 keep_data: true\n    no_leader: true\n",
                restore.display()
            ),
            ..Default::default()
        },
    );
    let sl = standby.leader().unwrap();
    let other = standby.nodes.iter().map(|n| n.name.clone()).find(|n| *n != sl).unwrap();
    let leader = standby.node(&sl);
    assert!(leader.log().contains("bootstrapped clone from remote member the archive (restore_command)"));
    // Recovery reads the archive and streams from nobody.
    assert_eq!(leader.sql("SHOW restore_command").unwrap(), restore_command);
    assert_eq!(leader.sql("SHOW primary_conninfo").unwrap(), "");
    check_standby_leader_surfaces(&standby, &sl, &other);
    // Its replica cascades and has the same restore_command.
    assert_eq!(standby.node(&other).sql("SHOW restore_command").unwrap(), restore_command);

    for (id, expected) in [(2, "1,2"), (3, "1,2,3")] {
        // The commit first, then the switch (one query string is one
        // transaction: its commit would land in the next segment).
        primary.node("node1").sql(&format!("INSERT INTO t VALUES ({id})")).unwrap();
        primary.node("node1").sql("SELECT pg_switch_wal()").unwrap();
        for n in [&sl, &other] {
            standby.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", expected, MINUTE);
        }
    }

    // The role swap. The last row is committed right before demote-cluster,
    // with no WAL switch after it. At its clean shutdown PostgreSQL switches
    // segments (so the row's segment is archived) and writes the shutdown
    // checkpoint into the next segment, which it never archives. The
    // demoted primary pushes that segment with archive_command (as Patroni
    // does); without it the standby cluster, fed only by restore_command,
    // promotes before the shutdown checkpoint, its new timeline forks off
    // before the former primary's last checkpoint, and the former primary
    // cluster cannot follow it without pg_rewind.
    let p1 = primary.leader().unwrap();
    let p2 = primary.nodes.iter().map(|n| n.name.clone()).find(|n| *n != p1).unwrap();
    primary.node(&p1).sql("INSERT INTO t VALUES (4)").unwrap();
    primary.mark("demote-cluster");
    let sl_port = standby.node(&sl).pg_port.to_string();
    let out = palisadectl(&primary, &["demote-cluster", "--host", "127.0.0.1", "--port", &sl_port, "--force"]);
    assert!(out.contains("cluster is successfully demoted"), "{out}");
    assert_eq!(primary.wait_for_standby_leader(MINUTE), p1);
    wait_role(&primary, &p1, "standby_leader");
    assert!(!primary.node(&p1).log().contains("Not archiving latest checkpoint WAL file"), "{}", primary.logs());
    standby.wait_sql(&sl, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4", MINUTE);

    standby.mark("promote-cluster");
    palisadectl(&standby, &["promote-cluster", "--force"]);
    assert_eq!(standby.wait_for_leader(MINUTE), sl);
    wait_role(&standby, &sl, "primary");
    assert_eq!(rows(&standby, &sl), "1,2,3,4");
    // The former primary cluster follows the new primary on its new
    // timeline with no rewind: its WAL ends at the shutdown checkpoint the
    // promoted cluster replayed.
    standby.node(&sl).sql("INSERT INTO t VALUES (5)").unwrap();
    for n in [&sl, &other] {
        standby.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4,5", MINUTE);
    }
    for n in [&p1, &p2] {
        primary.wait_sql(n, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3,4,5", MINUTE);
    }
    assert!(!primary.node(&p1).log().contains("running pg_rewind"), "{}", primary.logs());
}
