//! Two PostgreSQL servers: a replica made with pg_basebackup streams from
//! the primary through the settings `follow` writes, is promoted, and the
//! former primary is checked for divergence (clean switchover: it can
//! follow; writes after the promotion: it cannot).

// Helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{runtime, Node};
use palisade_postgres::conf::FollowTarget;
use palisade_postgres::datadir::{read_timeline_history, HistoryEntry};
use palisade_postgres::sql::ReplicationRow;
use palisade_postgres::{ClusterState, Divergence, PromoteOutcome, StartOutcome, StopOptions};
use palisade_test_support::run_unprivileged;
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

/// A primary (superuser connection over TCP) and a streaming replica.
async fn primary_and_replica() -> (Node, Node) {
    let primary = Node::with("node1", false, json!({}));
    primary.bootstrap_primary().await;
    assert_eq!(primary.pg.local_connection().host, "localhost");
    assert!(primary.pg.sql().create_physical_slot("node2").await.unwrap());

    let replica = Node::new("node2");
    primary.basebackup_into(&replica);
    let target = FollowTarget::member("node1", &primary.conn_url()).unwrap();
    let change = replica.pg.follow(Some(&target)).await.unwrap();
    assert!(change.changed() && !change.reload_needed && !change.restart_needed, "{change:?}");
    assert!(replica.data_dir.join("standby.signal").is_file());
    let conf = std::fs::read_to_string(replica.data_dir.join("postgresql.conf")).unwrap();
    let pgpass = replica.staging_path().join("pgpass");
    assert!(
        conf.contains(&format!(
            "\n# recovery.conf\nprimary_conninfo = 'dbname=postgres user=replicator passfile={} host=127.0.0.1 port={} sslmode=prefer \
             application_name=node2 gssencmode=prefer channel_binding=prefer'\nprimary_slot_name = 'node2'\n",
            pgpass.display(),
            primary.port
        )),
        "{conf}"
    );
    assert!(conf.contains("recovery_target_timeline = 'latest'\n"), "{conf}");
    assert_eq!(
        std::fs::read_to_string(&pgpass).unwrap(),
        format!("127.0.0.1:{}:*:replicator:rep\\:secret\n", primary.port)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&pgpass).unwrap().permissions().mode() & 0o777, 0o600);

    assert_eq!(replica.pg.start(MINUTE).await.unwrap(), StartOutcome::Running, "{}", replica.log_tail());
    wait_streaming(&primary, "node2").await;
    (primary, replica)
}

async fn wait_streaming(upstream: &Node, name: &str) -> ReplicationRow {
    let deadline = std::time::Instant::now() + MINUTE;
    loop {
        let rows = upstream.pg.status().await.unwrap().replication;
        if let Some(row) = rows.into_iter().find(|r| r.application_name.as_deref() == Some(name)) {
            if row.state.as_deref() == Some("streaming") {
                return row;
            }
        }
        assert!(std::time::Instant::now() < deadline, "{name} never streamed from {}", upstream.name);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn history(node: &Node, timeline: u32) -> Vec<HistoryEntry> {
    read_timeline_history(&node.data_dir, timeline).unwrap().unwrap().entries
}

#[test]
fn replica_streams_and_is_promoted() {
    if !run_unprivileged("replica_streams_and_is_promoted") {
        return;
    }
    runtime().block_on(async {
        let (primary, replica) = primary_and_replica().await;
        let row = wait_streaming(&primary, "node2").await;
        assert_eq!(row.usename.as_deref(), Some("replicator"));
        assert_eq!(row.client_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(row.sync_state.as_deref(), Some("async"));
        assert_eq!(row.sync_priority, Some(0));

        let status = replica.pg.status().await.unwrap();
        assert!(status.in_recovery);
        assert_eq!(status.replication_state(), Some("streaming"));
        assert_eq!(status.receiver_slot_name.as_deref(), Some("node2"));
        assert_eq!(status.timeline(), Some(1));
        assert!(status.received_location().is_some());
        assert_eq!(status.system_identifier, primary.pg.status().await.unwrap().system_identifier);
        let slots = primary.pg.sql().replication_slots().await.unwrap();
        assert!(slots.iter().any(|s| s.name == "node2" && s.active), "{slots:?}");

        primary.query("CREATE TABLE t (v text); INSERT INTO t VALUES ('hello')").await;
        replica.wait_for_value("SELECT v FROM t", "hello", MINUTE).await;

        // Following the same member again changes nothing.
        let target = FollowTarget::member("node1", &primary.conn_url()).unwrap();
        let again = replica.pg.follow(Some(&target)).await.unwrap();
        assert!(!again.changed() && !again.reload_needed && !again.restart_needed, "{again:?}");
        // A different slot setting is applied by a reload (PostgreSQL 13+).
        replica.pg.update_settings(replica.settings()).await;
        let mut no_slots = replica.settings();
        no_slots.effective.use_slots = false;
        replica.pg.update_settings(no_slots).await;
        let change = replica.pg.follow(Some(&target)).await.unwrap();
        assert!(change.changed() && change.reload_needed && !change.restart_needed, "{change:?}");
        replica.pg.reload().await.unwrap();
        replica.wait_for_value("SHOW primary_slot_name", "", MINUTE).await;
        replica.pg.update_settings(replica.settings()).await;
        let change = replica.pg.follow(Some(&target)).await.unwrap();
        assert!(change.reload_needed, "{change:?}");
        replica.pg.reload().await.unwrap();
        replica.wait_for_value("SHOW primary_slot_name", "node2", MINUTE).await;

        assert_eq!(replica.pg.promote(MINUTE).await.unwrap(), PromoteOutcome::Promoted);
        let status = replica.pg.status().await.unwrap();
        assert!(!status.in_recovery);
        assert_eq!(status.timeline(), Some(2));
        assert!(!replica.data_dir.join("standby.signal").exists());
        let conf = std::fs::read_to_string(replica.data_dir.join("postgresql.conf")).unwrap();
        assert!(!conf.contains("# recovery.conf"), "{conf}");
        let entries = history(&replica, 2);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].parent_timeline, 1);
        replica.query("CREATE TABLE after_promotion (v int)").await;
        assert_eq!(replica.pg.controldata().await.unwrap().state, ClusterState::InProduction);
    });
}

#[test]
fn former_primary_follows_after_a_clean_switchover() {
    if !run_unprivileged("former_primary_follows_after_a_clean_switchover") {
        return;
    }
    runtime().block_on(async {
        let (primary, replica) = primary_and_replica().await;
        primary.query("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')").await;
        replica.wait_for_value("SELECT v FROM t", "before", MINUTE).await;

        let out = primary.pg.stop(StopOptions::fast(Some(MINUTE))).await.unwrap();
        let checkpoint = out.shutdown_checkpoint.unwrap();
        // The replica has everything up to the shutdown checkpoint.
        let deadline = std::time::Instant::now() + MINUTE;
        while replica.pg.status().await.unwrap().replay_lsn.unwrap_or(0) <= checkpoint.checkpoint_lsn {
            assert!(std::time::Instant::now() < deadline, "the replica never replayed the shutdown checkpoint");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(replica.pg.promote(MINUTE).await.unwrap(), PromoteOutcome::Promoted);

        let verdict = primary.pg.check_divergence(2, &history(&replica, 2)).await.unwrap();
        assert!(matches!(verdict, Divergence::CanFollow { .. }), "{verdict:?}");
        assert!(verdict.reason().contains("ends at the switch point"), "{verdict}");

        // And it does follow the new primary on timeline 2 (whose leader
        // creates the member slots, as the daemon would).
        assert!(replica.pg.sql().create_physical_slot("node1").await.unwrap());
        replica.query("INSERT INTO t VALUES ('after')").await;
        let target = FollowTarget::member("node2", &replica.conn_url()).unwrap();
        primary.pg.follow(Some(&target)).await.unwrap();
        assert_eq!(primary.pg.start(MINUTE).await.unwrap(), StartOutcome::Running, "{}", primary.log_tail());
        wait_streaming(&replica, "node1").await;
        primary.wait_for_value("SELECT count(*) FROM t WHERE v = 'after'", "1", MINUTE).await;
        let status = primary.pg.status().await.unwrap();
        assert!(status.in_recovery);
        assert_eq!(status.timeline(), Some(2));
    });
}

#[test]
fn former_primary_diverged_after_writes() {
    if !run_unprivileged("former_primary_diverged_after_writes") {
        return;
    }
    runtime().block_on(async {
        let (primary, replica) = primary_and_replica().await;
        primary.query("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')").await;
        replica.wait_for_value("SELECT v FROM t", "before", MINUTE).await;

        // The replica is promoted while the old primary still runs and takes writes.
        assert_eq!(replica.pg.promote(MINUTE).await.unwrap(), PromoteOutcome::Promoted);
        primary.query("INSERT INTO t SELECT 'lost ' || g FROM generate_series(1, 1000) g").await;
        assert!(primary.kill9());
        assert_eq!(primary.pg.is_running(), None);
        // Crashed: where its WAL ends (read with pg_waldump) is past the fork.
        let verdict = primary.pg.check_divergence(2, &history(&replica, 2)).await.unwrap();
        assert!(verdict.is_diverged(), "{verdict:?}");
        assert!(verdict.reason().contains("is ahead of the switch point"), "{verdict}");

        let control = primary.pg.crash_recovery().await.unwrap();
        assert_eq!(control.state, ClusterState::ShutDown);
        let entries = history(&replica, 2);
        let verdict = primary.pg.check_divergence(2, &entries).await.unwrap();
        assert!(verdict.is_diverged(), "{verdict:?}");
        let expected = format!(
            "local timeline 1 LSN {} is ahead of the switch point {} of the new timeline 2; pg_rewind or reinitialize is required",
            palisade_model::format_lsn(control.checkpoint_lsn),
            palisade_model::format_lsn(entries[0].switch_lsn)
        );
        assert_eq!(verdict.reason(), expected);
    });
}
