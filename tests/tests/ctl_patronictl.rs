//! Real patronictl (Patroni 4.1 from PyPI, in a virtualenv) against a
//! palisade cluster: a site keeps its tooling when it swaps the daemon.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_test_support::{wait_for, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::ctl::{palisadectl, run_with, Output};

fn patronictl(cluster: &Cluster, args: &[&str]) -> Output {
    let venv = palisade_tests::patroni::venv();
    run_with(cluster, &venv.join("bin/patronictl"), args, "", &[])
}

#[test]
fn patronictl_drives_a_palisade_cluster() {
    let cluster = Cluster::start(
        "patronictl",
        ClusterSpec {
            nodes: 2,
            ttl: 20,
            loop_wait: 2,
            retry_timeout: 3,
            // Tags make a multi-line cell in `list` (rules between all rows).
            node_extra: |i| if i == 1 { "tags:\n  clonefrom: true\n  zone: b\n".into() } else { String::new() },
            ..ClusterSpec::default()
        },
    );
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.wait_streaming("node1", 1, Duration::from_secs(60));
    let scope = cluster.scope.clone();

    // `list` reads the same, from either tool (retried: a WAL position may
    // move between the two reads).
    let same = wait_until(Duration::from_secs(30), || {
        let a = patronictl(&cluster, &["list"]).ok().stdout;
        let b = palisadectl(&cluster, &["list"]).ok().stdout;
        a == b && a.contains("| streaming |") && a.contains("| zone: b ")
    });
    assert!(
        same,
        "patronictl:\n{}\npalisadectl:\n{}",
        patronictl(&cluster, &["list"]).stdout,
        palisadectl(&cluster, &["list"]).stdout
    );
    for fmt in ["json", "tsv", "yaml"] {
        let same = wait_until(Duration::from_secs(20), || {
            patronictl(&cluster, &["list", "-f", fmt]).ok().stdout
                == palisadectl(&cluster, &["list", "-f", fmt]).ok().stdout
        });
        assert!(
            same,
            "list -f {fmt} differs:\n{}\n{}",
            patronictl(&cluster, &["list", "-f", fmt]).stdout,
            palisadectl(&cluster, &["list", "-f", fmt]).stdout
        );
    }

    // dsn and query print the same (the query's values typed as psycopg2
    // types them), but for the time in error rows.
    let sql = "SELECT pg_is_in_recovery() AS r, 1 AS n, 2.5::float8 AS f, NULL AS z, ARRAY['a','b'] AS a, \
               '{\"k\": [1, true]}'::jsonb AS j, 'x'::text AS t";
    let same_args: [&[&str]; 7] = [
        &["dsn"],
        &["dsn", "-r", "replica"],
        &["query", "-U", "postgres", "-c", sql],
        &["query", "-U", "postgres", "-c", sql, "--format", "pretty"],
        &["query", "-U", "postgres", "-c", sql, "--format", "json"],
        &["query", "-U", "postgres", "-r", "replica", "-c", "SELECT 1 AS x; SELECT pg_is_in_recovery() AS y"],
        &["query", "-U", "postgres", "-m", "node1", "-r", "replica", "-c", "SELECT 1"],
    ];
    for args in same_args {
        let (a, b) = (patronictl(&cluster, args), palisadectl(&cluster, args));
        assert_eq!((a.code, &a.stdout), (b.code, &b.stdout), "{args:?}\npatronictl: {a:?}\npalisadectl: {b:?}");
    }
    let strip_time = |s: String| s.split_once('\t').map(|(_, rest)| rest.to_string()).unwrap_or(s);
    let error_sql = ["query", "-U", "postgres", "-c", "SELECT * FROM nosuch"];
    assert_eq!(
        strip_time(patronictl(&cluster, &error_sql).ok().stdout),
        strip_time(palisadectl(&cluster, &error_sql).ok().stdout)
    );

    // show-config and edit-config
    let shown = patronictl(&cluster, &["show-config"]).ok().stdout;
    assert!(shown.contains("loop_wait: 2\n"), "{shown}");
    assert_eq!(shown, palisadectl(&cluster, &["show-config"]).ok().stdout);
    let out =
        patronictl(&cluster, &["edit-config", "--set", "loop_wait=1", "--pg", "work_mem=16MB", "--force"]).ok().stdout;
    assert!(out.contains("Configuration changed"), "{out}");
    cluster.wait_sql("node2", "SHOW work_mem", "16MB", Duration::from_secs(30));
    // Both write the same bytes to the DCS (Python's compact, ASCII-only JSON).
    let raw_config = || String::from_utf8_lossy(&cluster.read_key("config").unwrap()).into_owned();
    patronictl(&cluster, &["edit-config", "--pg", "application_name=café", "--force"]).ok();
    let theirs = raw_config();
    assert!(theirs.contains(r#""application_name":"caf\u00e9""#), "{theirs}");
    palisadectl(&cluster, &["edit-config", "--pg", "application_name=cafe", "--force"]).ok();
    palisadectl(&cluster, &["edit-config", "--pg", "application_name=café", "--force"]).ok();
    assert_eq!(raw_config(), theirs);
    // In an editor (declined): the same diff of the text as edited.
    let editor = cluster.dir().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/^loop_wait: 1$/loop_wait: 3/' \"$1\"\necho 'retry_timeout: 4' >> \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let editor = editor.to_string_lossy().into_owned();
    let env = [("EDITOR", editor.as_str())];
    let venv = palisade_tests::patroni::venv();
    let a = run_with(&cluster, &venv.join("bin/patronictl"), &["edit-config"], "n\n", &env);
    let b = run_with(&cluster, &cluster.bin().join("palisadectl"), &["edit-config"], "n\n", &env);
    assert!(a.stdout.contains("+retry_timeout: 4\nApply these changes? [y/N]: "), "{a:?}");
    assert_eq!(a.stdout, b.stdout);

    // A parameter that needs a restart: both tools show the same pending
    // restarts and reasons, and the same topology.
    patronictl(&cluster, &["edit-config", "--pg", "max_connections=120", "--force"]).ok();
    for args in [&["list", "-e"][..], &["list", "-e", "-f", "json"][..], &["topology"][..]] {
        let same = wait_until(Duration::from_secs(30), || {
            let a = patronictl(&cluster, args).ok().stdout;
            a == palisadectl(&cluster, args).ok().stdout
                && (args[0] == "topology" || a.matches("max_connections").count() == 2)
        });
        assert!(
            same,
            "{args:?} differs:\n{}\n{}",
            patronictl(&cluster, args).stdout,
            palisadectl(&cluster, args).stdout
        );
    }

    // switchover, then history
    let out = patronictl(&cluster, &["switchover", "--candidate", "node2", "--force"]).ok().stdout;
    assert!(out.contains("Successfully switched over to \"node2\""), "{out}");
    cluster.node("node2").sql("CREATE TABLE after_switchover (id int)").unwrap();
    cluster.wait_streaming("node2", 1, Duration::from_secs(60));
    let history = wait_for("the switchover in patronictl history", Duration::from_secs(30), || {
        let h = patronictl(&cluster, &["history"]).ok().stdout;
        h.contains("| node2 ").then_some(h)
    });
    assert_eq!(history, palisadectl(&cluster, &["history"]).ok().stdout);
    for fmt in ["json", "tsv", "yaml"] {
        let args = ["history", "-f", fmt];
        assert_eq!(patronictl(&cluster, &args).ok().stdout, palisadectl(&cluster, &args).ok().stdout, "{args:?}");
    }

    // pause and resume, waiting for every node to say so
    let out = patronictl(&cluster, &["pause", "--wait"]).ok().stdout;
    assert!(out.contains("Success: cluster management is paused"), "{out}");
    assert!(palisadectl(&cluster, &["list"]).ok().stdout.contains(" Maintenance mode: on"));
    assert!(patronictl(&cluster, &["list"]).ok().stdout.contains(" Maintenance mode: on"));
    let out = patronictl(&cluster, &["resume", "--wait"]).ok().stdout;
    assert!(out.contains("Success: cluster management is resumed"), "{out}");
    assert!(cluster.node("node1").get("/patroni").unwrap().json().get("pause").is_none());
    let _ = scope;
}

/// Maintenance mode as a Patroni user drives it with real patronictl: a
/// replica whose postmaster died fails its health check at once; restart
/// brings it back; reinit from the leader waits until it is done; a
/// switchover naming leader and candidate works while paused; a scheduled
/// one is refused with Patroni's words.
#[test]
fn patronictl_in_maintenance_mode() {
    let cluster = Cluster::start(
        "patronictl-pause",
        ClusterSpec { nodes: 2, ttl: 20, loop_wait: 2, retry_timeout: 3, ..ClusterSpec::default() },
    );
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.wait_streaming("node1", 1, Duration::from_secs(60));
    let scope = cluster.scope.clone();

    let out = patronictl(&cluster, &["pause", "--wait"]).ok().stdout;
    assert!(out.contains("Success: cluster management is paused"), "{out}");

    cluster.mark("kill -9 of node2's postmaster while paused");
    let pid = cluster.node("node2").postmaster_pid().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for("node2's postmaster to die", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |s| s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
            .then_some(())
    });
    let r = cluster.node("node2").get("/replica").unwrap();
    assert_eq!(r.status, 503, "{}", r.body);

    cluster.mark("patronictl restart node2");
    let out = patronictl(&cluster, &["restart", &scope, "node2", "--force"]).ok().stdout;
    assert!(out.contains("Success: restart on member node2"), "{out}");
    wait_for("node2 to stream again", Duration::from_secs(60), || {
        (cluster.node("node2").get("/replica").ok()?.status == 200).then_some(())
    });

    cluster.mark("patronictl reinit node2 --from-leader --wait");
    let out = patronictl(&cluster, &["reinit", &scope, "node2", "--from-leader", "--wait", "--force"]).ok().stdout;
    assert!(out.contains("Success: reinitialize for member node2"), "{out}");
    assert!(out.contains("Reinitialize is completed on: node2"), "{out}");
    // As with Patroni, --wait ends when the member stops "creating replica";
    // PostgreSQL may still be starting.
    cluster.wait_sql("node2", "SELECT pg_is_in_recovery()", "t", Duration::from_secs(60));

    cluster.mark("a scheduled switchover is refused while paused");
    let refused = patronictl(
        &cluster,
        &[
            "switchover",
            &scope,
            "--leader",
            "node1",
            "--candidate",
            "node2",
            "--scheduled",
            "2099-01-01T00:00",
            "--force",
        ],
    );
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        format!("{}{}", refused.stdout, refused.stderr).contains("Can't schedule switchover in the paused state"),
        "{refused:?}"
    );

    cluster.mark("a switchover naming leader and candidate while paused");
    cluster.wait_streaming("node1", 1, Duration::from_secs(60));
    let out = patronictl(&cluster, &["switchover", &scope, "--leader", "node1", "--candidate", "node2", "--force"])
        .ok()
        .stdout;
    assert!(out.contains("Successfully switched over to \"node2\""), "{out}");
    wait_for("node2 to lead", Duration::from_secs(60), || (cluster.leader().as_deref() == Some("node2")).then_some(()));
    wait_for("node2 to accept writes", Duration::from_secs(30), || {
        (cluster.node("node2").sql("SELECT pg_is_in_recovery()").ok()? == "f").then_some(())
    });
    let out = patronictl(&cluster, &["resume", "--wait"]).ok().stdout;
    assert!(out.contains("Success: cluster management is resumed"), "{out}");
}

/// The Patroni virtualenv (updated in place when an older one lacks an
/// extra) runs patronictl and imports Patroni's module of every DCS the
/// mixed-cluster tests may use.
#[test]
fn the_patroni_venv_supports_every_dcs() {
    let venv = palisade_tests::patroni::venv();
    let version = std::process::Command::new(venv.join("bin/patronictl")).arg("version").output().unwrap();
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(version.status.success() && text.contains("patronictl version 4.1."), "{version:?}");
    let mut modules = vec!["etcd", "etcd3", "zookeeper", "exhibitor"];
    // `kubernetes-endpoints` and `kubernetes-lease` are modes of `kubernetes`.
    modules.extend(palisade_tests::dcs::BACKENDS.iter().map(|b| b.name.split('-').next().unwrap_or(b.name)));
    for m in modules {
        let out = std::process::Command::new(venv.join("bin/python"))
            .args(["-c", &format!("import patroni.dcs.{m}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "import patroni.dcs.{m}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
