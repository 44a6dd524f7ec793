//! A former primary that holds WAL the new primary lacks: the situation
//! pg_rewind (or a new copy) is for. Shared by the rewind tests and the
//! benchmark.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use palisade_test_support::wait_until;

use crate::cluster::{psql_with, Cluster};

/// What [`diverge`] did.
pub struct Diverged {
    /// The new leader.
    pub new: String,
    /// Rows the writer committed on the old primary after its standbys
    /// stopped receiving WAL: they are on the old primary only.
    pub rows_only_on_old: usize,
}

/// Make the leader `old` diverge from its replicas, then kill it: its
/// replicas stop receiving WAL (replication connections are refused by
/// its pg_hba.conf and the walsenders are terminated), a writer commits
/// rows on it, and it is kill -9'ed (daemon and postmaster) while the
/// writer runs. Returns once another member leads and accepts writes.
///
/// The table `t (id int primary key, v text)` must exist.
pub fn diverge(cluster: &mut Cluster, old: &str) -> Diverged {
    let node = cluster.node(old);
    // The PostgreSQL configuration is not WAL: the replicas never see
    // this pg_hba.conf. The daemon writes its own again when it starts.
    let hba = node.data_dir.join("pg_hba.conf");
    std::fs::write(&hba, "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n").expect("write pg_hba.conf");
    node.sql("SELECT pg_reload_conf()").expect("reload");
    let cut = wait_until(Duration::from_secs(30), || {
        let _ = node.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_replication");
        node.sql("SELECT count(*) FROM pg_stat_replication").as_deref() == Ok("0")
    });
    assert!(cut, "{old}: the replicas keep streaming");

    // The writer: one row per transaction until the server is gone.
    let port = node.pg_port;
    let env = node.psql_env.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, committed) = (Arc::clone(&stop), Arc::clone(&committed));
        std::thread::spawn(move || {
            let mut id = 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let q = format!("INSERT INTO t VALUES ({id}, 'only on the old primary ' || repeat('x', 2000))");
                if psql_with(port, &env, &q).is_err() {
                    break;
                }
                committed.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), || committed.load(Ordering::Relaxed) >= 50),
        "{old}: the writer does not commit"
    );
    cluster.mark(&format!("kill -9 of {old} while a writer runs"));
    cluster.kill9(old, true);
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let rows_only_on_old = committed.load(Ordering::Relaxed);
    let new = cluster.wait_for_new_leader(old, Duration::from_secs(60));
    Diverged { new, rows_only_on_old }
}
