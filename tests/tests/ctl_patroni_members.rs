//! palisadectl drives Patroni members too: it only writes the keys
//! patronictl writes and calls Patroni's REST API. Here against a cluster
//! of Patroni 4.1 daemons, including the standby-cluster commands
//! (`demote-cluster`, `promote-cluster`) palisade daemons do not act on
//! yet.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_test_support::{free_port, wait_for};
use palisade_tests::cluster::{Cluster, ClusterSpec, Engine};
use palisade_tests::ctl::{palisadectl, run_with};

#[test]
fn palisadectl_drives_patroni_members() {
    let venv = palisade_tests::patroni::venv();
    let cluster = Cluster::start(
        "ctlpatroni",
        // Timings Patroni accepts (it raises ttl below 20).
        ClusterSpec {
            engine: Engine::Patroni { venv },
            nodes: 2,
            ttl: 20,
            loop_wait: 2,
            retry_timeout: 3,
            ..ClusterSpec::default()
        },
    );
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(90)), "node1");
    cluster.wait_streaming("node1", 1, Duration::from_secs(90));
    let scope = cluster.scope.clone();
    let ctl = |args: &[&str]| palisadectl(&cluster, args);

    let version = ctl(&["version", &scope]).ok().stdout;
    assert!(version.contains("\nnode1: Patroni 4.1.") && version.contains("\nnode2: Patroni 4.1."), "{version}");
    let out = ctl(&["switchover", "--candidate", "node2", "--force"]).ok().stdout;
    assert!(out.contains("Successfully switched over to \"node2\""), "{out}");
    cluster.wait_streaming("node2", 1, Duration::from_secs(90));

    // Demote the cluster: it follows a (here absent) remote primary, its
    // leader runs as a standby leader. Asked first, then forced.
    let remote = free_port().to_string();
    let args = ["demote-cluster", "--host", "127.0.0.1", "--port", &remote];
    let bin = cluster.bin().join("palisadectl");
    let declined = run_with(&cluster, &bin, &args, "n\n", &[]);
    assert_eq!(declined.code, 1, "{declined:?}");
    assert!(declined.stdout.contains(&format!("Are you sure you want to demote {scope} cluster? [y/N]: ")));
    assert!(declined.stderr.contains("Error: Aborted cluster demotion"), "{declined:?}");
    let mut forced = args.to_vec();
    forced.push("--force");
    let out = ctl(&forced).ok().stdout;
    assert!(out.contains(" cluster is successfully demoted\n"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("| node2 ") && l.contains("| Standby Leader |")), "{out}");
    let shown = ctl(&["show-config"]).ok().stdout;
    assert!(shown.contains(&format!("standby_cluster:\n  host: 127.0.0.1\n  port: {remote}\n")), "{shown}");
    let again = ctl(&forced);
    assert!(again.stderr.contains("Error: Cluster is already in the required state"), "{again:?}");

    // Promote it back: a primary that accepts writes.
    let out = ctl(&["promote-cluster", "--force"]).ok().stdout;
    assert!(out.contains(" cluster is successfully promoted\n"), "{out}");
    assert!(!ctl(&["show-config"]).ok().stdout.contains("standby_cluster"));
    let leader = wait_for("a writable leader", Duration::from_secs(60), || {
        let l = cluster.leader()?;
        cluster.node(&l).sql("CREATE TABLE IF NOT EXISTS after_promotion (id int)").ok().map(|_| l)
    });
    assert_eq!(leader, "node2");
}
