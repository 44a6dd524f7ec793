//! Replicas built from backups, on real processes:
//!
//! - the `pgbackrest` plugin restores a new replica from a local pgBackRest
//!   repository (the real `pgbackrest`: `stanza-create`, `backup`), next to
//!   a `basebackup` replica, and a third replica is built by the generic
//!   command method configured as Patroni's documentation configures
//!   pgBackRest (a `pgbackrest` method with a `command`, `keep_data`,
//!   `no_params`); reinitialising the plugin's replica with `keep_data`
//!   restores with `--delta` over the files it had;
//! - the `walg` plugin restores replicas through the WAL-G stand-in
//!   (`tests/fixtures/wal-g-stand-in`, a script, not WAL-G: WAL-G cannot be
//!   installed here), once from a running leader and once with no primary
//!   running at all (`no_leader`); the cluster it copies was bootstrapped
//!   by a custom `bootstrap.method` without a `command`, which means initdb
//!   as in Patroni.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_test_support::wait_for;
use palisade_tests::backup::{
    add_to_postgresql, archive_parameters, time_reinitialize, PgBackRest, WalGStandIn, STANZA,
};
use palisade_tests::cluster::{Cluster, ClusterSpec};

#[test]
fn pgbackrest_plugin_and_patroni_command_method_build_replicas() {
    let spec = ClusterSpec { nodes: 4, parameters_extra: archive_parameters(), ..ClusterSpec::default() };
    let mut cluster = Cluster::prepare("pgbackrest", spec);
    let repo = PgBackRest::prepare(&cluster);
    let conf = repo.conf.display().to_string();
    // node2: the default method (basebackup). node3: the pgbackrest plugin
    // with typed settings. node4: Patroni's documented pgBackRest method,
    // run by the generic command method.
    add_to_postgresql(
        &cluster,
        "node3",
        &format!(
            "  create_replica_methods:\n  - pgbackrest\n  pgbackrest:\n    stanza: {STANZA}\n    config: {conf}\n    \
             delta: true\n    keep_data: true\n    options:\n    - process-max=2\n"
        ),
    );
    let data4 = cluster.node("node4").data_dir.display().to_string();
    add_to_postgresql(
        &cluster,
        "node4",
        &format!(
            "  create_replica_methods:\n  - pgbackrest\n  pgbackrest:\n    command: pgbackrest --config={conf} \
             --stanza={STANZA} --pg1-path={data4} --delta restore\n    keep_data: True\n    no_params: True\n"
        ),
    );

    cluster.start_node(0);
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    assert_eq!(leader, "node1");
    cluster.insert("node1", 1, "before the backup");
    let label = repo.stanza_create_and_backup(&cluster);
    cluster.insert("node1", 2, "after the backup");

    for i in 1..4 {
        cluster.start_node(i);
    }
    let streaming = cluster.wait_streaming("node1", 3, Duration::from_secs(180));
    assert_eq!(streaming, ["node2", "node3", "node4"]);
    for node in ["node2", "node3", "node4"] {
        cluster.wait_sql(
            node,
            "SELECT string_agg(v, ',' ORDER BY id) FROM t",
            "before the backup,after the backup",
            Duration::from_secs(60),
        );
        assert_eq!(cluster.node(node).sql("SELECT pg_is_in_recovery()").unwrap(), "t", "{node}");
    }

    // node3 went through the plugin: the backup was checked first, and
    // pgBackRest's own progress is in the log.
    let log3 = cluster.node("node3").log();
    let checked =
        log3.find(&format!("checking stanza '{STANZA}' for a usable backup")).unwrap_or_else(|| panic!("{log3}"));
    let restoring = log3.find(&format!("restoring full backup {label}")).unwrap_or_else(|| panic!("{log3}"));
    assert!(checked < restoring, "the backup is checked before the restore");
    assert!(log3.contains("[pgbackrest] pgbackrest: ") && log3.contains("restore command begin"), "{log3}");
    assert!(log3.contains(&format!("restored backup {label} in ")), "{log3}");
    assert!(log3.contains("replica created with method 'pgbackrest'"), "{log3}");

    // node4 ran the command exactly as Patroni runs it (no_params: nothing
    // added), and never went through the plugin.
    let log4 = cluster.node("node4").log();
    assert!(
        log4.contains(&format!(
            "running [\"pgbackrest\", \"--config={conf}\", \"--stanza={STANZA}\", \"--pg1-path={data4}\", \"--delta\", \
             \"restore\"]"
        )),
        "{log4}"
    );
    assert!(log4.contains("replica created with method 'pgbackrest'"), "{log4}");
    assert!(!log4.contains("for a usable backup"), "{log4}");

    // node2 copied the leader with pg_basebackup.
    let log2 = cluster.node("node2").log();
    assert!(log2.contains("replica created with method 'basebackup'"), "{log2}");

    // A row written now reaches every replica.
    cluster.insert("node1", 3, "later");
    for node in ["node2", "node3", "node4"] {
        cluster.wait_sql(node, "SELECT v FROM t WHERE id = 3", "later", Duration::from_secs(60));
    }

    // keep_data: reinitialising node3 leaves its files for a --delta
    // restore (Patroni 4.1 no longer empties the directory first).
    cluster.mark("reinitialize node3");
    time_reinitialize(&cluster, "node3", "node1", Duration::from_secs(120));
    let log3 = cluster.node("node3").log_after("reinitialize node3");
    assert!(log3.contains("Leaving data directory uncleaned"), "{log3}");
    assert!(!log3.contains("Removing data directory"), "{log3}");
    assert!(!log3.contains("--delta and --force have been disabled"), "the delta restore found the old files:\n{log3}");
    cluster.wait_sql(
        "node3",
        "SELECT string_agg(v, ',' ORDER BY id) FROM t",
        "before the backup,after the backup,later",
        Duration::from_secs(60),
    );
}

#[test]
fn walg_plugin_restores_through_the_stand_in_with_and_without_a_leader() {
    let spec = ClusterSpec { nodes: 3, ..ClusterSpec::default() };
    let mut cluster = Cluster::prepare("walg", spec);
    let walg = WalGStandIn::install(&cluster);
    let config = cluster.write("walg/walg.json", "{}\n", 0o644);
    let section = |no_leader: bool| {
        format!(
            "  create_replica_methods:\n  - walg\n  walg:\n    executable: {exe}\n    config: {config}\n    env:\n      \
             WALG_FILE_PREFIX: {storage}\n      WALG_COMPRESSION_METHOD: brotli\n    no_leader: {no_leader}\n",
            exe = walg.executable.display(),
            config = config.display(),
            storage = walg.storage.display(),
        )
    };
    add_to_postgresql(&cluster, "node2", &section(false));
    add_to_postgresql(&cluster, "node3", &section(true));
    // node1 names a custom bootstrap method without a `command`: as in
    // Patroni, the cluster is initialised with initdb.
    let path = &cluster.node("node1").config;
    let text = std::fs::read_to_string(path).unwrap();
    let custom = "\nbootstrap:\n  method: restore\n  restore:\n    keep_existing_recovery_conf: true\n";
    std::fs::write(path, text.replacen("\nbootstrap:\n", custom, 1)).unwrap();

    cluster.start_node(0);
    cluster.wait_for_leader(Duration::from_secs(60));
    let log1 = cluster.node("node1").log();
    assert!(
        log1.contains("bootstrap.restore.command is not set: the cluster will be initialised with initdb instead"),
        "{log1}"
    );
    assert!(log1.contains("initializing a new cluster"), "{log1}");
    cluster.insert("node1", 1, "in the backup");
    walg.backup_from(&cluster, "node1", "base_000000010000000000000003");
    cluster.insert("node1", 2, "streamed");

    // With a leader: restored from the storage, then streaming.
    cluster.start_node(1);
    cluster.wait_streaming("node1", 1, Duration::from_secs(120));
    cluster.wait_sql(
        "node2",
        "SELECT string_agg(v, ',' ORDER BY id) FROM t",
        "in the backup,streamed",
        Duration::from_secs(60),
    );
    let data2 = cluster.node("node2").data_dir.display().to_string();
    let calls = walg.calls();
    let config = config.display().to_string();
    let list = format!("call: [--config] [{config}] [backup-list] [--json]");
    let fetch = format!("call: [--config] [{config}] [backup-fetch] [{data2}] [LATEST]");
    let (l, f) = (calls.find(&list), calls.find(&fetch));
    assert!(l.is_some() && f.is_some() && l < f, "the backup is listed, then fetched:\n{calls}");
    let storage = walg.storage.display().to_string();
    for env in [format!("env: WALG_FILE_PREFIX={storage}"), "env: WALG_COMPRESSION_METHOD=brotli".to_string()] {
        assert!(calls.contains(&env), "{env} missing:\n{calls}");
    }
    assert!(calls.contains("env: PGPASSFILE="), "the host's environment reaches wal-g:\n{calls}");
    let log2 = cluster.node("node2").log();
    assert!(log2.contains("fetching backup base_000000010000000000000003 (asked for LATEST)"), "{log2}");
    assert!(log2.contains("[walg] wal-g: INFO: backup extraction complete"), "{log2}");

    // With no primary running: node1 and node2 stop (the leader key goes),
    // and node3, whose method has no_leader, restores from the storage
    // alone and, as the only member left, takes the lead with what the
    // backup holds (Patroni's meaning of no_leader).
    cluster.mark("stopping node1 and node2");
    assert!(cluster.stop_node("node2", Duration::from_secs(60)));
    assert!(cluster.stop_node("node1", Duration::from_secs(60)));
    wait_for("the leader key to go", Duration::from_secs(30), || cluster.leader().is_none().then_some(()));
    cluster.start_node(2);
    let leader = cluster.wait_for_leader(Duration::from_secs(120));
    assert_eq!(leader, "node3");
    assert_eq!(cluster.node("node3").sql("SELECT string_agg(v, ',' ORDER BY id) FROM t").unwrap(), "in the backup");
    let log3 = cluster.node("node3").log();
    assert!(log3.contains("trying to create a replica with method 'walg'"), "{log3}");
    assert!(log3.contains("replica created with method 'walg'"), "{log3}");
    let data3 = cluster.node("node3").data_dir.display().to_string();
    assert!(walg.calls().contains(&format!("[backup-fetch] [{data3}] [LATEST]")), "{}", walg.calls());
}
