//! A former primary that holds WAL the new primary lacks comes back: it
//! rejoins through pg_rewind (after crash recovery in single-user mode), or
//! is copied again when the settings say so, or stays down with an ERROR
//! when pg_rewind failed and nothing allows a new copy.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::diverge::diverge;

/// ERROR lines a failover after a kill -9 legitimately logs.
const FAILOVER_ERRORS: &[&str] = &["Error communicating with DCS", "failed to update leader lock", "Request failed to"];

fn spec(postgresql_extra: &str) -> ClusterSpec {
    ClusterSpec {
        nodes: 2,
        postgresql_extra: postgresql_extra.to_string(),
        allowed_errors: FAILOVER_ERRORS.to_vec(),
        ..ClusterSpec::default()
    }
}

/// Start a 2-node cluster, write a row everybody has, make the leader
/// diverge and fail over, write a row on the new leader, and start the
/// old primary again. Returns (old, new).
fn fail_over_with_divergence(cluster: &mut Cluster) -> (String, String) {
    let old = cluster.wait_for_leader(Duration::from_secs(60));
    cluster.wait_streaming(&old, 1, Duration::from_secs(60));
    cluster
        .node(&old)
        .sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'everywhere')")
        .unwrap();
    let replica = cluster.nodes.iter().map(|n| n.name.clone()).find(|n| *n != old).unwrap();
    cluster.wait_sql(&replica, "SELECT v FROM t WHERE id = 1", "everywhere", Duration::from_secs(30));

    let d = diverge(cluster, &old);
    assert!(d.rows_only_on_old >= 50);
    // The new primary lacks them.
    assert_eq!(cluster.node(&d.new).sql("SELECT count(*) FROM t WHERE id > 1000000").unwrap(), "0");
    cluster.node(&d.new).sql("INSERT INTO t VALUES (2, 'written on the new primary')").unwrap();

    cluster.mark("the old primary comes back");
    let i = cluster.index(&old);
    cluster.start_node(i);
    (old, d.new)
}

/// The old primary streams from the new one and has exactly its rows.
fn assert_rejoined(cluster: &Cluster, old: &str, new: &str) {
    cluster.wait_sql(old, "SELECT v FROM t WHERE id = 2", "written on the new primary", Duration::from_secs(120));
    assert_eq!(cluster.wait_streaming(new, 1, Duration::from_secs(60)), vec![old.to_string()]);
    assert_eq!(cluster.node(old).sql("SELECT pg_is_in_recovery()").unwrap(), "t");
    assert_eq!(cluster.node(old).sql("SELECT count(*) FROM t WHERE id > 1000000").unwrap(), "0");
    assert_eq!(cluster.node(old).sql("SELECT v FROM t WHERE id = 1").unwrap(), "everywhere");
    assert_eq!(cluster.leader().as_deref(), Some(new));
}

#[test]
fn a_diverged_former_primary_rejoins_through_pg_rewind() {
    let mut cluster = Cluster::start("rewind-ok", spec("  use_pg_rewind: true\n"));
    let (old, new) = fail_over_with_divergence(&mut cluster);
    assert_rejoined(&cluster, &old, &new);

    let log = cluster.node(&old).log_after("the old primary comes back");
    // Patroni's order: crash recovery in single-user mode, pg_rewind from
    // the leader, then start as a replica.
    let steps = [
        "doing crash recovery in a single user mode",
        &format!("running pg_rewind from {new}"),
        "pg_rewind exit code=0",
        "starting as a secondary",
    ];
    let mut at = 0;
    for step in steps {
        let found = log[at..].find(step).unwrap_or_else(|| panic!("{old} did not log {step:?} in order:\n{log}"));
        at += found + step.len();
    }
    assert!(!log.contains("trying to bootstrap from"), "{old} was copied again instead:\n{log}");
    // The new leader published that it ran its CHECKPOINT after promoting
    // (no `checkpoint_after_promote: false` in its member key any more).
    let member = cluster.read_json(&format!("members/{new}")).unwrap();
    assert_eq!(member["role"], "primary");
    assert!(member.get("checkpoint_after_promote").is_none(), "{member}");
}

#[test]
fn without_pg_rewind_a_diverged_former_primary_is_copied_again() {
    let mut cluster = Cluster::start(
        "rewind-reinit",
        spec("  use_pg_rewind: false\n  remove_data_directory_on_diverged_timelines: true\n"),
    );
    let (old, new) = fail_over_with_divergence(&mut cluster);
    assert_rejoined(&cluster, &old, &new);
    let log = cluster.node(&old).log_after("the old primary comes back");
    assert!(log.contains("reinitializing due to diverged timelines"), "{log}");
    assert!(log.contains("trying to create a replica with method 'basebackup'"), "{log}");
    assert!(!log.contains("running pg_rewind"), "{log}");
}

/// pg_rewind fails for a reason of its own: the rewind role lost the
/// EXECUTE privilege on `pg_ls_dir` pg_rewind needs (a REVOKE on the old
/// primary, replicated before the divergence).
fn failing_rewind_spec(postgresql_extra: &str) -> ClusterSpec {
    ClusterSpec {
        rewind_auth: Some("      username: rewinder\n      password: rewind-pw\n".into()),
        allowed_errors: [FAILOVER_ERRORS, &["Failed to rewind from healthy primary"]].concat(),
        ..spec(postgresql_extra)
    }
}

fn revoke_pg_ls_dir(cluster: &Cluster) {
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    cluster
        .node(&leader)
        .sql("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) FROM rewinder")
        .unwrap();
}

#[test]
fn a_failed_pg_rewind_copies_the_node_again_when_allowed() {
    let mut cluster = Cluster::start(
        "rewind-fail-reinit",
        failing_rewind_spec("  use_pg_rewind: true\n  remove_data_directory_on_rewind_failure: true\n"),
    );
    revoke_pg_ls_dir(&cluster);
    let (old, new) = fail_over_with_divergence(&mut cluster);
    assert_rejoined(&cluster, &old, &new);
    let log = cluster.node(&old).log_after("the old primary comes back");
    for line in [
        &format!("running pg_rewind from {new}") as &str,
        "permission denied for function pg_ls_dir",
        &format!("Failed to rewind from healthy primary: {new}"),
        "remove_data_directory_on_rewind_failure is set. removing...",
        "trying to create a replica with method 'basebackup'",
    ] {
        assert!(log.contains(line), "{old} did not log {line:?}:\n{log}");
    }
}

#[test]
fn a_failed_pg_rewind_leaves_the_node_down_when_no_setting_allows_a_copy() {
    let mut cluster = Cluster::start("rewind-fail-stop", failing_rewind_spec("  use_pg_rewind: true\n"));
    cluster.allow_errors(&["neither remove_data_directory_on_rewind_failure nor"]);
    revoke_pg_ls_dir(&cluster);
    let (old, new) = fail_over_with_divergence(&mut cluster);
    let node = cluster.node(&old);
    let said = palisade_test_support::wait_until(Duration::from_secs(120), || {
        node.log_after("the old primary comes back").contains(&format!(
            "ERROR: pg_rewind from {new} failed, and neither remove_data_directory_on_rewind_failure nor \
             remove_data_directory_on_diverged_timelines is set"
        ))
    });
    assert!(said, "{old} did not say why it stays down:\n{}", node.log_after("the old primary comes back"));
    // It says so again a cycle later and PostgreSQL is still down: not
    // started from a data directory that diverged.
    let again = palisade_test_support::wait_until(Duration::from_secs(30), || {
        node.log_after("the old primary comes back").matches("ERROR: pg_rewind from").count() >= 3
    });
    assert!(again);
    assert!(node.sql("SELECT 1").is_err(), "{old}'s PostgreSQL runs");
    assert!(node.postmaster_pid().is_none_or(|p| !palisade_test_support::pid_alive(p)));
    assert!(node.log_after("the old primary comes back").contains("not starting PostgreSQL: pg_rewind failed"));
    // Its data is still there for a person to look at.
    assert!(node.data_dir.join("PG_VERSION").exists());
    assert_eq!(cluster.leader().as_deref(), Some(new.as_str()));
}
