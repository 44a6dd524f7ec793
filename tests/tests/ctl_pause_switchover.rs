//! palisadectl against a real cluster, beyond `ctl_commands`: reading the
//! cluster without a configuration file (`--dcs-url`, `PATRONI_*`),
//! watching, query values as patronictl prints them, short errors, a
//! switchover that names no candidate, the history in every format,
//! maintenance mode holding through a crash of the primary, and the manual
//! failover that ends it.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use palisade_test_support::{signal, wait_for, wait_pid_gone, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::ctl::{palisadectl, run_bare, Running};
use serde_json::Value;

const TTL: u32 = 10;

fn in_recovery(cluster: &Cluster, node: &str) -> Option<bool> {
    cluster.node(node).sql("SELECT pg_is_in_recovery()").ok().map(|r| r == "t")
}

#[test]
fn palisadectl_switchover_and_pause() {
    let cluster = Cluster::start(
        "ctlpause",
        ClusterSpec { nodes: 3, ttl: TTL, loop_wait: 1, retry_timeout: 3, ..ClusterSpec::default() },
    );
    let first = cluster.wait_for_leader(Duration::from_secs(60));
    cluster.wait_streaming(&first, 2, Duration::from_secs(60));
    let scope = cluster.scope.clone();
    let ctl = |args: &[&str]| palisadectl(&cluster, args);
    let bin = cluster.bin().join("palisadectl");

    // No configuration file at all: --dcs-url and the cluster's name, or
    // PATRONI_* variables, are enough; a list naming no cluster warns.
    let etcd = cluster.dcs_url();
    let with_file = ctl(&["list", "-f", "json"]).ok().stdout;
    let listed: Value = serde_json::from_str(&with_file).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{with_file}");
    let bare = run_bare(&cluster, &bin, &["-d", &etcd, "list", &scope, "-f", "json"], &[]).ok();
    let bare: Value = serde_json::from_str(&bare.stdout).unwrap();
    let names = |v: &Value| v.as_array().unwrap().iter().map(|m| m["Member"].clone()).collect::<Vec<_>>();
    assert_eq!(names(&bare), names(&listed));
    let namespaced = run_bare(&cluster, &bin, &["-d", &format!("{etcd}/service"), "show-config", &scope], &[]).ok();
    assert!(namespaced.stdout.contains(&format!("ttl: {TTL}\n")), "{namespaced:?}");
    let elsewhere = run_bare(&cluster, &bin, &["-d", &format!("{etcd}/elsewhere"), "list", &scope], &[]).ok();
    assert!(elsewhere.stdout.starts_with(&format!("+ Cluster: {scope} (uninitialized) ")), "{elsewhere:?}");
    let hosts = cluster.etcd().host_port();
    let env = [("PATRONI_SCOPE", scope.as_str()), ("PATRONI_ETCD3_HOSTS", hosts.as_str())];
    let by_env = run_bare(&cluster, &bin, &["dsn"], &env).ok();
    assert_eq!(by_env.stdout, format!("host=127.0.0.1 port={}\n", cluster.node(&first).pg_port));
    // The default file, as patronictl's: ~/.config/patroni/patronictl.yaml
    // (or $XDG_CONFIG_HOME/patroni/...), else $PATRONICTL_CONFIG_FILE.
    let config = std::fs::read_to_string(&cluster.nodes[0].config).unwrap();
    let xdg = cluster.dir().join("xdg");
    std::fs::create_dir_all(xdg.join("patroni")).unwrap();
    std::fs::write(xdg.join("patroni/patronictl.yaml"), &config).unwrap();
    let xdg = xdg.to_string_lossy().into_owned();
    let by_default = run_bare(&cluster, &bin, &["dsn", "-m", &first], &[("XDG_CONFIG_HOME", &xdg)]).ok();
    assert_eq!(by_default.stdout, format!("host=127.0.0.1 port={}\n", cluster.node(&first).pg_port));
    let file = cluster.nodes[0].config.to_string_lossy().into_owned();
    let by_variable = run_bare(&cluster, &bin, &["dsn", "-m", &first], &[("PATRONICTL_CONFIG_FILE", &file)]).ok();
    assert_eq!(by_variable.stdout, by_default.stdout);
    let nothing = run_bare(&cluster, &bin, &["list"], &[]).ok();
    assert_eq!(
        (nothing.stdout.as_str(), nothing.stderr.as_str()),
        ("", "Listing members: No cluster names were provided\n")
    );

    // Short errors: a message and status 1, never a panic.
    let errors: [(&[&str], &str); 5] = [
        (
            &["-c", "/nonexistent.yml", "list"],
            "Error: Provided config file /nonexistent.yml not existing or no read rights.",
        ),
        (&["restart", &scope, "nosuch", "--force"], "Error: No 'any' among provided members\n"),
        (&["reinit", &scope, &first, "--force"], "Error: No replica among provided members\n"),
        (&["switchover", "--candidate", "nosuch", "--force"], "or is tagged as nofailover\n"),
        (&["query", "-m", &first, "-r", "replica", "-c", "SELECT 1"], "mutually exclusive options\n"),
    ];
    for (args, message) in errors {
        let out = if args[0] == "-c" { run_bare(&cluster, &bin, args, &[]) } else { ctl(args) };
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(out.stderr.contains(message) && !out.stderr.contains("panicked"), "{args:?}: {out:?}");
    }

    // query: values as psycopg2 hands them to patronictl, in each format.
    let sql = "SELECT pg_is_in_recovery() AS r, 1 AS n, 2.5::float8 AS f, NULL AS z, ARRAY['a','b'] AS a, \
               '{\"k\": [1, true]}'::jsonb AS j";
    let q = |extra: &[&str]| {
        let mut args = vec!["query", "-U", "postgres", "-m", &first, "-c", sql];
        args.extend_from_slice(extra);
        ctl(&args).ok().stdout
    };
    assert_eq!(q(&[]), "r\tn\tf\tz\ta\tj\nFalse\t1\t2.5\tNone\t['a', 'b']\t{'k': [1, True]}\n");
    assert_eq!(
        q(&["--format", "json"]),
        "[{\"r\": false, \"n\": 1, \"f\": 2.5, \"z\": null, \"a\": [\"a\", \"b\"], \"j\": {\"k\": [1, true]}}]\n"
    );
    assert_eq!(q(&["--delimiter", ","]), "r,n,f,z,a,j\nFalse,1,2.5,None,['a', 'b'],{'k': [1, True]}\n");
    let replica = ctl(&["query", "-U", "postgres", "-r", "replica", "-c", "SELECT pg_is_in_recovery()"]).ok().stdout;
    assert_eq!(replica, "pg_is_in_recovery\nTrue\n");
    let failed = ctl(&["query", "-U", "postgres", "-c", "SELECT * FROM nosuch"]).ok().stdout;
    assert!(failed.ends_with("\tERROR, SQLSTATE: 42P01\n"), "{failed}");

    // list -w: the table again and again until stopped.
    let mut watch = Running::start(&cluster, &["list", "-w", "0.2"]);
    watch.wait_lines(Duration::from_secs(30), 3, |l| l.starts_with(&format!("+ Cluster: {scope} (")));
    assert!(watch.running());
    drop(watch);

    // The history is empty, in every format.
    assert_eq!(ctl(&["history", "-f", "json"]).ok().stdout, "[]\n");
    assert_eq!(ctl(&["history", "-f", "yaml"]).ok().stdout, "[]\n\n");
    assert_eq!(ctl(&["history", "-f", "tsv"]).ok().stdout, "TL\tLSN\tReason\tTimestamp\tNew Leader\n");

    // A switchover with --force and no candidate: a healthy replica takes
    // over, accepts writes, and the others follow it.
    let out = ctl(&["switchover", "--force"]).ok().stdout;
    let second = cluster.wait_for_new_leader(&first, Duration::from_secs(60));
    assert!(out.contains(&format!("Successfully switched over to \"{second}\"")), "{out}");
    cluster.node(&second).sql("CREATE TABLE after_switchover (id int)").unwrap();
    cluster.wait_streaming(&second, 2, Duration::from_secs(60));

    // ... and is in the history, in every format.
    let history = wait_for("the switchover in the history", Duration::from_secs(30), || {
        let v: Value = serde_json::from_str(&ctl(&["history", "-f", "json"]).ok().stdout).ok()?;
        (v.as_array()?.len() == 1).then_some(v)
    });
    let entry = &history[0];
    assert_eq!((entry["TL"].as_u64(), entry["New Leader"].as_str()), (Some(1), Some(second.as_str())), "{entry}");
    assert!(entry["LSN"].is_u64() && entry["Reason"].is_string() && entry["Timestamp"].is_string(), "{entry}");
    let tsv = ctl(&["history", "-f", "tsv"]).ok().stdout;
    let lines: Vec<&str> = tsv.lines().collect();
    assert_eq!(lines.len(), 2, "{tsv}");
    let fields: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!((fields.len(), fields[0], fields[4]), (5, "1", second.as_str()), "{tsv}");
    let yaml = ctl(&["history", "-f", "yaml"]).ok().stdout;
    assert!(yaml.starts_with("- LSN: ") && yaml.contains(&format!("\n  New Leader: {second}\n")), "{yaml}");
    assert!(yaml.contains("\n  TL: 1\n"), "{yaml}");
    let pretty = ctl(&["history"]).ok().stdout;
    assert!(pretty.starts_with("+----+") && pretty.contains("|  1 | "), "{pretty}");

    // Maintenance mode: no scheduled switchover, and when the primary's
    // PostgreSQL crashes nobody is promoted.
    let out = ctl(&["pause", "--wait"]).ok().stdout;
    assert!(out.ends_with("Success: cluster management is paused\n"), "{out}");
    assert!(ctl(&["list"]).ok().stdout.contains("\n Maintenance mode: on\n"));
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let refused = ctl(&["switchover", "--scheduled", &at, "--force"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("Can't schedule switchover in the paused state"), "{refused:?}");
    let replicas: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).filter(|n| *n != second).collect();
    let postmaster = cluster.node(&second).postmaster_pid().unwrap();
    cluster.mark("kill the primary's postgres while paused");
    signal(postmaster, Signal::SIGKILL);
    assert!(wait_pid_gone(postmaster, Duration::from_secs(10)));
    // A negative: watch for longer than the leader key lives (and a few
    // loops more) that no replica is promoted or takes the key.
    let watch_until = Instant::now() + Duration::from_secs(u64::from(TTL) + 5);
    while Instant::now() < watch_until {
        for r in &replicas {
            assert_eq!(in_recovery(&cluster, r), Some(true), "{r} left recovery while paused");
            assert_ne!(cluster.leader().as_deref(), Some(r.as_str()), "{r} took the leader key while paused");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(ctl(&["list"]).ok().stdout.contains("\n Maintenance mode: on\n"));

    // A manual failover is what brings a paused cluster a new primary.
    let third = replicas[0].clone();
    let out = ctl(&["failover", "--candidate", &third, "--force"]).ok().stdout;
    assert!(out.contains(&format!("Successfully failed over to \"{third}\"")), "{out}");
    assert_eq!(cluster.wait_for_new_leader(&second, Duration::from_secs(60)), third);
    cluster.node(&third).sql("CREATE TABLE after_failover (id int)").unwrap();
    cluster.wait_sql(&replicas[1], "SELECT count(*) FROM after_failover", "0", Duration::from_secs(60));
    assert!(ctl(&["list"]).ok().stdout.contains("\n Maintenance mode: on\n"));

    // Resumed, the cluster has a writable leader again.
    let out = ctl(&["resume", "--wait"]).ok().stdout;
    assert!(out.ends_with("Success: cluster management is resumed\n"), "{out}");
    let leader = cluster.wait_for_leader(Duration::from_secs(90));
    cluster.node(&leader).sql("CREATE TABLE after_resume (id int)").unwrap();
    assert!(wait_until(Duration::from_secs(30), || !ctl(&["list"]).ok().stdout.contains("Maintenance mode")));
    let errors = cluster.unexpected_errors(&[]);
    assert!(errors.is_empty(), "unexpected ERROR lines: {errors:#?}");
}
