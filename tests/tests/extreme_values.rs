//! Garbage and extreme numbers from outside, on real processes: values
//! written straight into etcd (the `config` key, and the failover, history,
//! status, sync and member keys), and extreme values in REST bodies. Every
//! daemon stays up, says what it did with the value (naming the key), and
//! the cluster still switches over. Also the log format of issue 6: a node
//! run with Patroni users' `%(pathname)s:%(lineno)d - %(funcName)s` format
//! prints the log site instead of the placeholders.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_test_support::{wait_for, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec, Node};
use serde_json::{json, Value};

const ISSUE_FORMAT: &str = "%(asctime)s %(levelname)s [%(pathname)s:%(lineno)d - %(funcName)s]: %(message)s";

fn all_alive(cluster: &mut Cluster) {
    for i in 0..cluster.nodes.len() {
        let name = cluster.nodes[i].name.clone();
        assert!(cluster.nodes[i].daemon_running(), "{name} exited:\n{}", cluster.logs());
        let r = cluster.node(&name).call("GET", "/patroni", None);
        assert!(r.status == 200 || r.status == 503, "{name}: GET /patroni: {} {}", r.status, r.body);
        assert!(r.json()["state"].is_string(), "{name}: GET /patroni: {}", r.body);
    }
}

/// Wait until every node has logged `n` more HA cycles since `mark`.
fn wait_cycles(cluster: &Cluster, mark: &str, n: usize) {
    for node in &cluster.nodes {
        let ok = wait_until(Duration::from_secs(60), || {
            let log = node.log_after(mark);
            log.lines().filter(|l| l.contains("no action. I am") || l.contains("Lock owner:")).count() >= n
        });
        assert!(ok, "{} did not cycle {n} times after '{mark}':\n{}", node.name, node.log_after(mark));
    }
}

/// Wait until every node has logged a WARNING line holding each of `words`.
fn wait_warned(cluster: &Cluster, mark: &str, words: &[&str]) {
    wait_warned_by(&cluster.nodes, mark, words);
}

/// Wait until each of `nodes` has logged a WARNING line holding each of
/// `words`.
fn wait_warned_by<'a>(nodes: impl IntoIterator<Item = &'a Node>, mark: &str, words: &[&str]) {
    for node in nodes {
        let found = wait_until(Duration::from_secs(60), || {
            words.iter().all(|w| node.log_after(mark).lines().any(|l| l.contains("WARNING") && l.contains(w)))
        });
        assert!(found, "{} did not warn about {words:?} after '{mark}':\n{}", node.name, node.log_after(mark));
    }
}

#[test]
fn garbage_and_extreme_numbers_keep_the_cluster_working() {
    let spec = ClusterSpec { nodes: 3, ttl: 10, loop_wait: 1, retry_timeout: 3, ..ClusterSpec::default() };
    let mut cluster = Cluster::start("extreme", spec);
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    cluster.wait_streaming("node1", 2, Duration::from_secs(60));

    // node3 runs with the log format Patroni users write.
    cluster.mark("issue format");
    assert!(cluster.stop_node("node3", Duration::from_secs(60)));
    let path = cluster.nodes[2].config.clone();
    let yaml = std::fs::read_to_string(&path).unwrap();
    let yaml = yaml.replacen("log:\n  level: INFO\n", &format!("log:\n  level: INFO\n  format: '{ISSUE_FORMAT}'\n"), 1);
    std::fs::write(&path, yaml).unwrap();
    cluster.start_node(2);
    cluster.wait_streaming("node1", 2, Duration::from_secs(90));
    wait_cycles(&cluster, "issue format", 2);
    let log = cluster.node("node3").log_after("issue format");
    let ours: Vec<&str> = log.lines().filter(|l| l.contains(" INFO [")).collect();
    assert!(!ours.is_empty(), "{log}");
    for line in &ours {
        assert!(!line.contains("%("), "placeholder left in: {line}");
        let site = &line[line.find(" INFO [").unwrap() + 7..line.find("]: ").unwrap()];
        let (file_line, function) = site.split_once(" - ").unwrap_or_else(|| panic!("{line}"));
        let (file, lineno) = file_line.rsplit_once(':').unwrap_or_else(|| panic!("{line}"));
        assert!(file.ends_with(".rs") && lineno.parse::<u32>().is_ok_and(|n| n > 0), "{line}");
        assert!(function.starts_with("palisade") || function == "plugin", "{line}");
    }

    let raw = cluster.etcd().raw();
    let prefix = cluster.prefix();
    let config_key = format!("{prefix}config");
    let base: Value = serde_json::from_slice(&raw.get(&config_key).unwrap().value).unwrap();
    let with = |extra: Value| {
        let mut v = base.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    };

    // Garbage in the keys other than config.
    cluster.mark("garbage keys");
    let history = raw.get(&format!("{prefix}history")).map(|kv| kv.value);
    raw.put(&format!("{prefix}failover"), br#"{"leader": 5, "member": [], "scheduled_at": "NaN"}"#);
    raw.put(&format!("{prefix}history"), br#"[[4294967295, 1e308, "x"], ["a"], [-1, -1]]"#);
    raw.put(&format!("{prefix}status"), br#"{"optime": 1e308, "slots": {"s": -1, "t": 18446744073709551616}}"#);
    raw.put(&format!("{prefix}sync"), br#"{"leader": 7, "sync_standby": 9e18, "quorum": -1}"#);
    let ghost = json!({
        "conn_url": "postgres://127.0.0.1:1/postgres", "api_url": 5, "state": [], "role": 1e308,
        "xlog_location": 1e308, "timeline": -1, "tags": {"failover_priority": 1e308, "nofailover": "NaN"}
    });
    raw.put_with_lease(&format!("{prefix}members/ghost"), ghost.to_string().as_bytes(), 5);
    wait_cycles(&cluster, "garbage keys", 3);
    all_alive(&mut cluster);
    raw.put(&format!("{prefix}failover"), b"{}");
    match &history {
        Some(h) => raw.put(&format!("{prefix}history"), h),
        None => raw.put(&format!("{prefix}history"), b"[]"),
    }
    raw.put(&format!("{prefix}sync"), b"{}");
    cluster.mark("garbage keys restored");
    wait_cycles(&cluster, "garbage keys restored", 2);

    // Extreme numbers in config: each is named in a warning and clamped or
    // replaced by its default.
    let garbage = [
        (
            with(json!({
                "primary_start_timeout": 4e18, "member_slots_ttl": "99999999999999999999d",
                "maximum_lag_on_failover": 1e308, "max_timelines_history": -1,
                "synchronous_node_count": u64::MAX, "maximum_lag_on_syncnode": "NaN",
                "check_timeline": "maybe", "primary_race_backoff": i64::MIN, "primary_stop_timeout": "Infinity"
            })),
            vec![
                "primary_start_timeout: 4000000000000000000 seconds is more than the maximum of 31536000",
                "member_slots_ttl",
                "maximum_lag_on_failover",
                "max_timelines_history",
                "synchronous_node_count",
                "primary_stop_timeout",
            ],
        ),
        // `loop_wait + 2 * retry_timeout` overflowed here and every daemon
        // exited.
        (
            with(json!({"loop_wait": 4_000_000_000_000_000_000_i64, "retry_timeout": 8_000_000_000_000_000_000_i64})),
            vec!["loop_wait: 4000000000000000000 seconds is more than", "retry_timeout: 8000000000000000000 seconds"],
        ),
        (r#"{"ttl": 10, "loop_wait": "#.to_string(), vec!["DCS key 'config': invalid JSON"]),
        ("[1, 2, 3]".to_string(), vec!["DCS key 'config': expected a JSON object"]),
    ];
    for (i, (value, words)) in garbage.iter().enumerate() {
        let mark = format!("config garbage {i}");
        cluster.mark(&mark);
        raw.put(&config_key, value.as_bytes());
        if serde_json::from_str::<Value>(value).is_ok_and(|v| v.is_object()) {
            wait_warned(&cluster, &mark, words);
        } else {
            // A config key that is not a JSON object is empty to the
            // leader, which writes its own configuration back at once, as
            // Patroni's does: only the leader is sure to read the garbage
            // (a replica reads it only if it wakes before the repair).
            wait_warned_by([cluster.node("node1")], &mark, words);
            let repaired = wait_until(Duration::from_secs(60), || {
                raw.get(&config_key)
                    .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
                    .is_some_and(|v| v.is_object())
            });
            assert!(repaired, "the leader did not write the config key back:\n{}", cluster.logs());
        }
        all_alive(&mut cluster);
    }
    // Back to the configuration the cluster started with. The nodes now nap
    // for loop_wait (a year, or the default 10 s); a request wakes each.
    cluster.mark("config restored");
    raw.put(&config_key, base.to_string().as_bytes());
    for node in &cluster.nodes {
        let r = node.call("PATCH", "/config", Some(r#"{"loop_wait": 1}"#));
        assert_eq!(r.status, 200, "{}: {}", node.name, r.body);
    }
    wait_cycles(&cluster, "config restored", 3);

    cluster.mark("huge ttl");
    raw.put(&config_key, with(json!({"ttl": 4_000_000_000_000_000_000_i64})).as_bytes());
    wait_warned(&cluster, "huge ttl", &["ttl: 4000000000000000000 seconds is more than the maximum of 31536000"]);
    all_alive(&mut cluster);

    // With ttl clamped to a year, a switchover still goes through.
    cluster.mark("switchover under a huge ttl");
    let r = cluster.node("node1").call("POST", "/switchover", Some(r#"{"leader": "node1", "candidate": "node2"}"#));
    assert_eq!((r.status, r.body.as_str()), (200, "Successfully switched over to \"node2\""), "{}", cluster.logs());
    cluster.wait_streaming("node2", 2, Duration::from_secs(90));

    // Extreme values through PATCH /config: refused with the key, or
    // stored and clamped.
    cluster.mark("patch");
    let n2 = cluster.node("node2");
    for (body, code, words) in [
        (r#"{"loop_wait": 1e308}"#, 400, "loop_wait"),
        (r#"{"retry_timeout": "Infinity"}"#, 400, "retry_timeout"),
        (r#"{"ttl": -9223372036854775808}"#, 400, "ttl"),
        (r#"{"primary_start_timeout": 18446744073709551616}"#, 400, "primary_start_timeout"),
        (r#"{"ttl": NaN}"#, 400, "not valid JSON"),
        (r#"{"ttl": 1e400}"#, 400, "not valid JSON"),
    ] {
        let r = n2.call("PATCH", "/config", Some(body));
        assert_eq!(r.status, code, "PATCH {body}: {}", r.body);
        assert!(r.body.contains(words), "PATCH {body}: {}", r.body);
    }
    let r = n2.call("PATCH", "/config", Some(r#"{"ttl": 10, "retry_timeout": 4000000000000000000}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_warned(&cluster, "patch", &["retry_timeout: 4000000000000000000 seconds is more than the maximum"]);
    all_alive(&mut cluster);

    // Back to sane timings; the cluster is whole and answers.
    cluster.mark("sane again");
    let r = cluster.node("node2").call("PUT", "/config", Some(&base.to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_cycles(&cluster, "sane again", 2);

    // A restart with extreme filters: the timeout is clamped, the version
    // compares as Python's integers do.
    let r = cluster.node("node3").call(
        "POST",
        "/restart",
        Some(r#"{"timeout": 4e18, "postgres_version": "99999999999999999999.1", "restart_pending": 0}"#),
    );
    assert_eq!((r.status, r.body.as_str()), (200, "restarted successfully"), "{}", cluster.logs());
    let names = wait_for("both replicas streaming again", Duration::from_secs(90), || {
        let n = cluster.streaming_from("node2");
        (n.len() == 2).then_some(n)
    });
    assert_eq!(names, ["node1", "node3"]);
    all_alive(&mut cluster);
    let errors = cluster.unexpected_errors(&[]);
    assert!(errors.is_empty(), "unexpected ERROR lines:\n{}", errors.join("\n"));
    assert!(!cluster.logs().contains("panicked"), "{}", cluster.logs());
}
