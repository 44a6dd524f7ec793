//! Replication slots on real processes, as Patroni 4.1 keeps them: a
//! permanent physical slot on every member, advanced on the replicas and
//! still there after a failover; slots nobody configured dropped on the
//! primary unless `ignore_slots` covers them; a permanent logical slot
//! copied to the replicas, and a logical consumer that reads every change
//! across a failover from the slot on the new primary.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use palisade_test_support::{command_as_test_user, pg_bin_dir, wait_for, wait_until, ProcessGuard};
use palisade_tests::cluster::{Cluster, ClusterSpec, SUPERUSER_PASSWORD};

const MINUTE: Duration = Duration::from_secs(60);

/// ERROR lines a crash of the primary may legitimately cause.
const FAILOVER_ERRORS: &[&str] = &["Error communicating with DCS", "failed to update leader lock", "Request failed to"];

fn slot_lsn(cluster: &Cluster, node: &str, slot: &str, column: &str) -> Option<String> {
    cluster
        .node(node)
        .sql(&format!("SELECT {column} FROM pg_replication_slots WHERE slot_name = '{slot}'"))
        .ok()
        .filter(|s| !s.is_empty())
}

/// `a >= b` for two LSNs, asked of PostgreSQL on `node`.
fn lsn_at_least(cluster: &Cluster, node: &str, a: &str, b: &str) -> bool {
    cluster.node(node).sql(&format!("SELECT '{a}'::pg_lsn >= '{b}'::pg_lsn")).as_deref() == Ok("t")
}

fn slots_of(cluster: &Cluster, node: &str) -> String {
    cluster
        .node(node)
        .sql("SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots")
        .unwrap_or_default()
}

#[test]
fn permanent_physical_slot_and_unknown_slots() {
    let spec = ClusterSpec {
        extra_dcs:
            "    member_slots_ttl: 10\n    slots:\n      perm_phys:\n        type: physical\n    ignore_slots:\n      \
                    - name: keep_me\n"
                .into(),
        allowed_errors: FAILOVER_ERRORS.to_vec(),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start("slots-physical", spec);
    let leader = cluster.wait_for_leader(MINUTE);
    assert_eq!(leader, "node1");

    // Everywhere: the permanent slot; on the replicas also copies of the
    // other members' slots.
    cluster.wait_sql(
        "node1",
        "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots",
        "node2,node3,perm_phys",
        MINUTE,
    );
    cluster.wait_sql(
        "node2",
        "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots",
        "node1,node3,perm_phys",
        MINUTE,
    );
    cluster.wait_sql(
        "node3",
        "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots",
        "node1,node2,perm_phys",
        MINUTE,
    );

    // A consumer moves the slot on the primary; the replicas' copies
    // follow the position the leader publishes in the status key.
    let primary = cluster.node("node1");
    primary.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000)").unwrap();
    let target = primary.sql("SELECT pg_current_wal_lsn()").unwrap();
    primary.sql(&format!("SELECT pg_replication_slot_advance('perm_phys', '{target}')")).unwrap();
    let published = wait_for("the status key with the slot's new position", MINUTE, || {
        let v = cluster.read_json("status")?;
        let lsn = v["slots"]["perm_phys"].as_u64()?;
        let target_bytes = primary.sql(&format!("SELECT '{target}'::pg_lsn - '0/0'")).ok()?.parse::<u64>().ok()?;
        (lsn >= target_bytes && v["slots"]["node1"].as_u64().is_some()).then_some(v)
    });
    assert!(published["retain_slots"].as_array().is_some_and(|r| !r.is_empty()), "{published}");
    for replica in ["node2", "node3"] {
        let ok = wait_until(MINUTE, || {
            slot_lsn(&cluster, replica, "perm_phys", "restart_lsn")
                .is_some_and(|l| lsn_at_least(&cluster, replica, &l, &target))
        });
        assert!(
            ok,
            "{replica}: perm_phys not advanced to {target}: {:?}",
            slot_lsn(&cluster, replica, "perm_phys", "restart_lsn")
        );
    }

    // A slot nobody configured is dropped on the primary; one matching
    // ignore_slots is kept.
    cluster.mark("unknown slots");
    primary.sql("SELECT pg_create_physical_replication_slot('stray', true)").unwrap();
    primary.sql("SELECT pg_create_physical_replication_slot('keep_me', true)").unwrap();
    cluster.wait_sql("node1", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'stray'", "0", MINUTE);
    assert!(cluster.node("node1").log_after("unknown slots").contains("Dropped replication slot 'stray'"));
    // Several cycles later (loop_wait is 1 s) the ignored one is still there.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(slots_of(&cluster, "node1"), "keep_me,node2,node3,perm_phys");

    // Failover: the new primary has the permanent slot, at least where
    // the consumer had moved it, and a slot for every remaining member.
    cluster.mark("failover");
    cluster.kill9("node1", true);
    let new_leader = cluster.wait_for_new_leader("node1", MINUTE);
    let other = if new_leader == "node2" { "node3" } else { "node2" };
    let lsn = slot_lsn(&cluster, &new_leader, "perm_phys", "restart_lsn")
        .unwrap_or_else(|| panic!("no perm_phys on {new_leader}"));
    assert!(lsn_at_least(&cluster, &new_leader, &lsn, &target), "{new_leader}: perm_phys at {lsn}, before {target}");
    cluster.wait_streaming(&new_leader, 1, MINUTE);
    let slots = slots_of(&cluster, &new_leader);
    assert!(slots.contains(other) && slots.contains("perm_phys") && slots.contains("node1"), "{new_leader}: {slots}");

    // node1 stays away: once its member key is gone, its slot is kept for
    // member_slots_ttl (10 s), then dropped everywhere.
    for node in [new_leader.as_str(), other] {
        let ok = wait_until(MINUTE, || !slots_of(&cluster, node).split(',').any(|s| s == "node1"));
        assert!(ok, "{node}: node1's slot is still there: {}", slots_of(&cluster, node));
    }
    assert!(cluster
        .node(&new_leader)
        .log_after("failover")
        .contains("Replication slot 'node1' for absent cluster member is expired after 10 sec."));
    assert!(slots_of(&cluster, &new_leader).contains("perm_phys"));
}

/// The changes a `test_decoding` consumer wrote: the ids inserted into `t`.
fn decoded_ids(text: &str) -> BTreeSet<i64> {
    text.lines()
        .filter(|l| l.starts_with("table public.t: INSERT:"))
        .filter_map(|l| l.split("id[bigint]:").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Run `pg_recvlogical` on node `name`'s server from slot `lg`, writing
/// to `file`, confirming what it wrote every second.
fn consumer(cluster: &Cluster, name: &str, file: &std::path::Path) -> ProcessGuard {
    let node = cluster.node(name);
    let mut cmd = command_as_test_user(pg_bin_dir().join("pg_recvlogical"));
    cmd.args(["-d", &format!("host=127.0.0.1 port={} user=postgres dbname=postgres", node.pg_port)])
        .args(["--slot", "lg", "--start", "--no-loop", "-F", "1", "-s", "1", "-f"])
        .arg(file)
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    ProcessGuard::spawn("pg_recvlogical", cmd).unwrap()
}

fn insert_rows(cluster: &Cluster, node: &str, from: i64, to: i64) {
    cluster
        .node(node)
        .sql(&format!("INSERT INTO t SELECT generate_series({from}, {to})"))
        .unwrap_or_else(|e| panic!("insert on {node}: {e}"));
}

#[test]
fn logical_slot_is_copied_and_survives_failover() {
    // The slot exists before the replicas are cloned, so its restart_lsn
    // can lie in WAL a replica never received: advancing that first copy
    // fails (Patroni's ERROR line, 58P01) and the replica copies it again.
    let mut allowed = FAILOVER_ERRORS.to_vec();
    allowed
        .push("Failed to advance logical replication slot 'lg': query failed: db error: ERROR: requested WAL segment");
    // Between the leader's kill and the promotion, a replica checking
    // whether its logical slot copies are ready cannot reach the dead
    // primary (it cannot connect, or the kill cuts a query short):
    // Patroni's ERROR line too.
    allowed.push("physical slot on the primary: cannot connect to PostgreSQL");
    allowed.push("physical slot on the primary: query failed: connection closed");
    // A backend whose postmaster was killed ends the query itself.
    allowed.push("physical slot on the primary: query failed: db error: FATAL: terminating connection due to unexpected postmaster exit");
    let spec = ClusterSpec {
        wal_level: "logical",
        extra_dcs:
            "    slots:\n      lg:\n        type: logical\n        database: postgres\n        plugin: test_decoding\n"
                .into(),
        allowed_errors: allowed,
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start("slots-logical", spec);
    assert_eq!(cluster.wait_for_leader(MINUTE), "node1");
    cluster.node("node1").sql("CREATE TABLE t (id bigint PRIMARY KEY)").unwrap();
    cluster.wait_sql(
        "node1",
        "SELECT plugin FROM pg_replication_slots WHERE slot_name = 'lg'",
        "test_decoding",
        MINUTE,
    );

    // The replicas copy the slot from the primary (a restart each) and run
    // with hot_standby_feedback, which keeps its catalog rows on the primary.
    for replica in ["node2", "node3"] {
        cluster.wait_sql(
            replica,
            "SELECT slot_type || ':' || plugin || ':' || database FROM pg_replication_slots WHERE slot_name = 'lg'",
            "logical:test_decoding:postgres",
            Duration::from_secs(90),
        );
        cluster.wait_sql(replica, "SHOW hot_standby_feedback", "on", MINUTE);
        assert!(cluster.node(replica).log().contains("Copying logical slots ['lg'] from the primary"));
    }
    cluster.wait_streaming("node1", 2, MINUTE);

    // A consumer reads from the slot on the primary while rows go in.
    let file1 = cluster.write("recv1.txt", "", 0o666);
    let mut recv = consumer(&cluster, "node1", &file1);
    insert_rows(&cluster, "node1", 1, 100);
    wait_until(MINUTE, || decoded_ids(&std::fs::read_to_string(&file1).unwrap_or_default()).contains(&100));
    insert_rows(&cluster, "node1", 101, 200);
    let ok = wait_until(MINUTE, || decoded_ids(&std::fs::read_to_string(&file1).unwrap_or_default()).contains(&200));
    assert!(ok, "the consumer did not read row 200");
    // What the consumer confirmed reaches the replicas' copies.
    let confirmed_before = wait_for("the consumer's confirmation on the primary", MINUTE, || {
        let c = slot_lsn(&cluster, "node1", "lg", "confirmed_flush_lsn")?;
        let done = cluster.node("node1").sql("SELECT pg_current_wal_lsn()").ok()?;
        // Everything inserted so far is confirmed (the position is past the last commit).
        lsn_at_least(&cluster, "node1", &c, &done).then_some(c)
    });
    for replica in ["node2", "node3"] {
        cluster.wait_sql(replica, "SELECT count(*) FROM t", "200", MINUTE);
        let ok = wait_until(MINUTE, || {
            slot_lsn(&cluster, replica, "lg", "confirmed_flush_lsn")
                .is_some_and(|l| lsn_at_least(&cluster, replica, &l, &confirmed_before))
        });
        assert!(
            ok,
            "{replica}: lg not advanced to {confirmed_before}: {:?}",
            slot_lsn(&cluster, replica, "lg", "confirmed_flush_lsn")
        );
    }
    // More rows, read by the consumer, then the primary dies.
    insert_rows(&cluster, "node1", 201, 300);
    for replica in ["node2", "node3"] {
        cluster.wait_sql(replica, "SELECT count(*) FROM t", "300", MINUTE);
    }
    let confirmed_last = slot_lsn(&cluster, "node1", "lg", "confirmed_flush_lsn").unwrap();
    cluster.mark("failover");
    cluster.kill9("node1", true);
    assert!(recv.wait_exit(MINUTE), "pg_recvlogical kept running after its server died");
    let new_leader = cluster.wait_for_new_leader("node1", MINUTE);

    // The slot on the new primary is not ahead of what the consumer confirmed.
    let position = slot_lsn(&cluster, &new_leader, "lg", "confirmed_flush_lsn")
        .unwrap_or_else(|| panic!("no slot lg on {new_leader}"));
    assert!(
        lsn_at_least(&cluster, &new_leader, &confirmed_last, &position),
        "{new_leader}: lg at {position}, past the consumer's confirmed {confirmed_last}"
    );

    // The consumer goes on from the new primary: no row is missing.
    insert_rows(&cluster, &new_leader, 301, 400);
    let file2 = cluster.write("recv2.txt", "", 0o666);
    let _recv2 = consumer(&cluster, &new_leader, &file2);
    let ok = wait_until(MINUTE, || decoded_ids(&std::fs::read_to_string(&file2).unwrap_or_default()).contains(&400));
    assert!(ok, "the consumer did not read row 400 from {new_leader}");
    let mut seen = decoded_ids(&std::fs::read_to_string(&file1).unwrap_or_default());
    seen.extend(decoded_ids(&std::fs::read_to_string(&file2).unwrap_or_default()));
    let rows: BTreeSet<i64> = cluster
        .node(&new_leader)
        .sql("SELECT id FROM t ORDER BY 1")
        .unwrap()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert_eq!(rows.len(), 400, "{new_leader} has {} rows", rows.len());
    let missing: Vec<&i64> = rows.difference(&seen).collect();
    assert!(missing.is_empty(), "rows the consumer never saw: {missing:?}");
}
