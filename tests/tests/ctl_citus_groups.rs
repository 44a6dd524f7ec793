//! palisadectl on a Citus cluster, next to real patronictl (Patroni 4.1):
//! three groups of one scope written straight into the store (no daemons,
//! no Citus), read by both tools through `--group` and without it. What
//! they print must be the same byte for byte; what they write (the failover
//! key of a switchover falling back to the DCS) must land in the same group
//! with the same value; what they ask the members' REST APIs (doubles here)
//! must be the same requests to the same members.
//!
//! It runs once per DCS (etcd3, the etcd v2 API, ZooKeeper, Consul and
//! Kubernetes with ConfigMaps and with Endpoints, where a group's keys are
//! labelled objects and Pods; not with Palisade's Lease lock, which Patroni
//! cannot read): each plugin's `get_mpp_groups` is compared with Patroni's
//! own reading of every group of that store.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use palisade_test_support::{free_port, target_dir, Staging};
use palisade_tests::dcs::{DcsBackend, TestDcs};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Environment every command gets (the store's: `KUBECONFIG`...).
static ENV: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn run(program: &Path, config: &Path, args: &[&str]) -> Out {
    run_input(program, config, args, "")
}

/// `run` with `input` on standard input (answers to prompts).
fn run_input(program: &Path, config: &Path, args: &[&str], input: &str) -> Out {
    let mut cmd = Command::new(program);
    cmd.arg("-c").arg(config).args(args);
    cmd.envs(ENV.lock().unwrap().iter().cloned());
    cmd.env("NO_COLOR", "1").env("PALISADE_PLUGIN_DIR", target_dir()).env_remove("DCS_URL");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PATRONI")) {
        cmd.env_remove(k);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let _ = writer.join();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct Tools {
    patronictl: std::path::PathBuf,
    palisadectl: std::path::PathBuf,
}

impl Tools {
    fn new() -> Self {
        let palisadectl = target_dir().join("palisadectl");
        assert!(palisadectl.exists(), "{} is missing: run `cargo build --workspace`", palisadectl.display());
        Tools { patronictl: palisade_tests::patroni::venv().join("bin/patronictl"), palisadectl }
    }

    /// Both tools with `config` and `args`: (patronictl, palisadectl).
    fn both(&self, config: &Path, args: &[&str]) -> (Out, Out) {
        (run(&self.patronictl, config, args), run(&self.palisadectl, config, args))
    }

    /// Both print the same and end the same.
    fn same(&self, config: &Path, args: &[&str]) -> String {
        let (p, q) = self.both(config, args);
        assert_eq!(
            (p.code, &p.stdout),
            (q.code, &q.stdout),
            "{args:?}\n--- patronictl (stderr: {})\n{}--- palisadectl (stderr: {})\n{}",
            p.stderr,
            p.stdout,
            q.stderr,
            q.stdout
        );
        q.stdout
    }
}

fn member(port: u16, api: u16, role: &str, extra: &str) -> String {
    format!(
        r#"{{"conn_url":"postgres://127.0.0.1:{port}/postgres","api_url":"http://127.0.0.1:{api}/patroni","state":"running","role":"{role}","version":"4.1.0","xlog_location":50331968,"timeline":1{extra}}}"#
    )
}

/// A member's REST API double: answers every request `200 OK` and records
/// `<member> <METHOD> <path> <body>`.
fn api(name: &'static str, seen: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let request = loop {
                let n = stream.read(&mut chunk).unwrap_or(0);
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length || n == 0 {
                        let line = head.lines().next().unwrap_or("").to_string();
                        let mut words = line.split(' ');
                        break format!("{name} {} {} {body}", words.next().unwrap_or(""), words.next().unwrap_or(""));
                    }
                } else if n == 0 {
                    break format!("{name} ?");
                }
            };
            seen.lock().unwrap().push(request);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
            );
        }
    });
    port
}

/// The lines of an action's report, sorted: patronictl acts on members in
/// the order its DCS module lists them (etcd's v2 API and ZooKeeper do not
/// sort), palisadectl in name order.
fn lines(text: &str) -> Vec<&str> {
    let mut l: Vec<&str> = text.lines().collect();
    l.sort_unstable();
    l
}

const REPLICA: &str = r#","replication_state":"streaming","receive_lsn":50331968,"replay_lsn":50331648"#;

/// Groups 0, 1 and 2 of scope `demo`, two members each; group 1 is paused.
/// Group 0's REST APIs are down (a port nobody listens on, so actions fall
/// back to the DCS); the others' are doubles recording into `seen`.
fn write_cluster(raw: &dyn TestDcs, seen: &Arc<Mutex<Vec<String>>>) {
    let closed = free_port();
    let groups: [(i32, &'static str, &'static str, u16); 3] =
        [(0, "c1", "c2", 5432), (1, "w1a", "w1b", 5442), (2, "w2a", "w2b", 5452)];
    for (g, leader, replica, port) in groups {
        let api_of = |name| if g == 0 { closed } else { api(name, Arc::clone(seen)) };
        let key = |k: &str| format!("/service/demo/{g}/{k}");
        raw.put(&key("initialize"), format!("73000000000000000{g}").as_bytes());
        let config = if g == 1 { r#"{"ttl":30,"loop_wait":10,"pause":true}"# } else { r#"{"ttl":30,"loop_wait":10}"# };
        raw.put(&key("config"), config.as_bytes());
        raw.put(&key("leader"), leader.as_bytes());
        raw.put(&key("status"), br#"{"optime":50331968}"#);
        raw.put(&key(&format!("members/{leader}")), member(port, api_of(leader), "primary", "").as_bytes());
        raw.put(&key(&format!("members/{replica}")), member(port + 1, api_of(replica), "replica", REPLICA).as_bytes());
    }
    // Keys of the scope outside any group belong to no group.
    raw.put("/service/demo/leader", b"stray");
}

palisade_tests::dcs_tests!(etcd3 = palisade_tests::dcs::ETCD3; list_and_actions_match_patronictl_on_every_group);
palisade_tests::dcs_tests!(etcd = palisade_tests::dcs::ETCD; list_and_actions_match_patronictl_on_every_group);
palisade_tests::dcs_tests!(zookeeper = palisade_tests::dcs::ZOOKEEPER; list_and_actions_match_patronictl_on_every_group);
palisade_tests::dcs_tests!(consul = palisade_tests::dcs::CONSUL; list_and_actions_match_patronictl_on_every_group);
palisade_tests::dcs_tests!(kubernetes = palisade_tests::dcs::KUBERNETES; list_and_actions_match_patronictl_on_every_group);
palisade_tests::dcs_tests!(kubernetes_endpoints = palisade_tests::dcs::KUBERNETES_ENDPOINTS; list_and_actions_match_patronictl_on_every_group);

fn list_and_actions_match_patronictl_on_every_group(backend: DcsBackend) {
    let tools = Tools::new();
    let store = (backend.start)("ctl-citus");
    *ENV.lock().unwrap() = store.node_env();
    let raw = store.as_ref();
    let seen = Arc::new(Mutex::new(Vec::new()));
    write_cluster(raw, &seen);
    let staging = Staging::new("ctl-citus");
    let base = format!("scope: demo\nname: ctl\n{}", store.yaml_section());
    // A worker's configuration: without --group every group is shown anyway.
    let citus = staging.write("citus.yml", &format!("{base}citus:\n  group: 1\n  database: citus\n"), 0o644);
    let plain = staging.write("plain.yml", &base, 0o644);

    let all = tools.same(&citus, &["list"]);
    assert!(all.starts_with("+ Citus cluster: demo -"), "{all}");
    assert!(all.contains("| Group | Member |"), "{all}");
    let order: Vec<&str> = all.lines().filter_map(|l| l.split('|').nth(2)).map(str::trim).collect();
    assert_eq!(order, ["Member", "c1", "c2", "w1a", "w1b", "w2a", "w2b"], "sorted by group\n{all}");
    assert!(all.contains("Citus group: 1\n Maintenance mode: on"), "{all}");
    for args in [
        &["list", "-f", "json"][..],
        &["list", "-f", "tsv"],
        &["list", "-f", "yaml"],
        &["list", "-e"],
        &["topology"],
        &["list", "demo", "--group", "2"],
        &["list", "--group", "1", "-f", "json"],
        &["list", "--group", "0", "-f", "tsv"],
        &["list", "--group", "7"],
        &["show-config"],
        &["show-config", "--group", "2"],
        &["history"],
        &["dsn", "-r", "replica"],
        &["dsn", "--group", "2"],
    ] {
        tools.same(&citus, args);
    }
    let one = tools.same(&citus, &["list", "--group", "1"]);
    assert!(one.starts_with("+ Citus cluster: demo (group: 1, 730000000000000001) "), "{one}");
    assert!(one.contains("| w1a ") && !one.contains("| c1 ") && !one.contains("| Group |"), "{one}");

    // Without a citus section, --group makes it a Citus cluster for the
    // command, and without --group only the scope's own keys count.
    tools.same(&plain, &["list", "--group", "2"]);
    tools.same(&plain, &["list"]);

    // Commands that need a group say so.
    for args in [&["remove", "demo"][..], &["switchover", "--force"], &["failover", "--candidate", "c2", "--force"]] {
        let (p, q) = tools.both(&citus, args);
        assert_eq!((p.code, p.stderr.lines().last()), (q.code, q.stderr.lines().last()), "{args:?}");
        assert_eq!(q.stderr.lines().last(), Some("Error: For Citus clusters the --group must me specified"));
    }

    // A failover within group 0, whose members' APIs are down: both tools
    // fall back to writing that group's failover key.
    let failover_of = |g: i32| raw.get(&format!("/service/demo/{g}/failover"));
    let args = ["failover", "--group", "0", "--candidate", "c2", "--force"];
    let theirs = run(&tools.patronictl, &citus, &args);
    assert_eq!(theirs.code, 0, "{}", theirs.stderr);
    let theirs = failover_of(0).expect("patronictl wrote group 0's failover key");
    // Something else in between, so that palisadectl's write must replace it.
    raw.put("/service/demo/0/failover", br#"{"member":"reset"}"#);
    assert_ne!(failover_of(0).as_deref(), Some(&theirs[..]));
    let ours = run(&tools.palisadectl, &citus, &args);
    assert_eq!(ours.code, 0, "{}", ours.stderr);
    assert!(ours.stdout.contains("falling back to DCS"), "{}", ours.stdout);
    assert_eq!(failover_of(0), Some(theirs), "the same value in group 0");
    assert_eq!((failover_of(1), failover_of(2)), (None, None), "the other groups untouched");

    // Actions within groups 1 and 2 reach exactly that group's members, with
    // the same requests and the same report from either tool.
    let requests = |tool: &Path, args: &[&str]| -> (Out, Vec<String>) {
        seen.lock().unwrap().clear();
        let out = run(tool, &citus, args);
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        (out, got)
    };
    for args in [
        &["restart", "demo", "--group", "2", "--force"][..],
        &["restart", "demo", "--group", "1", "w1b", "--force"],
        &["reload", "demo", "--group", "1", "--force"],
        &["reinit", "demo", "w2b", "--group", "2", "--force"],
    ] {
        let (p, theirs) = requests(&tools.patronictl, args);
        let (q, ours) = requests(&tools.palisadectl, args);
        assert_eq!((p.code, lines(&p.stdout)), (q.code, lines(&q.stdout)), "{args:?}\n{}\n{}", p.stderr, q.stderr);
        let group = args[args.iter().position(|a| *a == "--group").unwrap() + 1];
        assert!(!ours.is_empty(), "{args:?}: some request");
        let names: Vec<&str> = ours.iter().map(|r| r.split(' ').next().unwrap()).collect();
        assert!(names.iter().all(|n| n.starts_with(&format!("w{group}"))), "{args:?}: only group {group}: {ours:?}");
        let strip = |v: &[String]| -> Vec<(String, serde_json::Value)> {
            v.iter()
                .map(|r| {
                    let mut parts = r.splitn(4, ' ');
                    let head = format!("{} {} {}", parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
                    let body = parts.next().unwrap_or("");
                    (head, serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.into())))
                })
                .collect()
        };
        assert_eq!(strip(&theirs), strip(&ours), "{args:?}: the same requests");
    }
    // Without --group a restart picks its members from every group.
    let args = ["restart", "demo", "w1a", "w2b", "--force"];
    let (p, theirs) = requests(&tools.patronictl, &args);
    let (q, ours) = requests(&tools.palisadectl, &args);
    assert_eq!((p.code, lines(&p.stdout)), (q.code, lines(&q.stdout)), "{}\n{}", p.stderr, q.stderr);
    let heads =
        |v: &[String]| v.iter().map(|r| r.splitn(4, ' ').take(3).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>();
    assert_eq!(heads(&ours), ["w1a POST /restart", "w2b POST /restart"]);
    assert_eq!(heads(&theirs), heads(&ours));

    // Without --group and --force, switchover shows every group and asks
    // for one (again after an answer that is not a number), then for the
    // rest within that group.
    let args = ["switchover", "demo"];
    let input = "x\n2\n\nw2b\nnow\nn\n";
    let (p, q) =
        (run_input(&tools.patronictl, &citus, &args, input), run_input(&tools.palisadectl, &citus, &args, input));
    let asked = |o: &Out| o.stdout.split("When should").next().unwrap_or_default().to_string();
    assert_eq!(asked(&p), asked(&q), "\n--- patronictl\n{}--- palisadectl\n{}", p.stdout, q.stdout);
    assert!(asked(&q).contains("Citus group: Error: 'x' is not a valid integer.\nCitus group: "), "{}", q.stdout);
    assert!(asked(&q).contains("Primary [w2a]: Candidate ['w2b'] []: "), "{}", q.stdout);
    assert_eq!((p.code, p.stderr.lines().last()), (q.code, q.stderr.lines().last()));
    assert_eq!(q.stderr.lines().last(), Some("Error: Aborting switchover"));

    // A switchover within group 2 goes to that group's leader.
    let args = ["switchover", "--group", "2", "--candidate", "w2b", "--force"];
    let (p, theirs) = requests(&tools.patronictl, &args);
    let (q, ours) = requests(&tools.palisadectl, &args);
    assert_eq!((p.code, q.code), (0, 0), "{}\n{}", p.stderr, q.stderr);
    let body = |v: &[String]| -> Vec<(String, serde_json::Value)> {
        v.iter()
            .map(|r| {
                let (head, body) = r.split_at(r.find(" {").unwrap_or(r.len()));
                (head.to_string(), serde_json::from_str(body.trim()).unwrap_or_default())
            })
            .collect()
    };
    assert_eq!(
        body(&ours),
        vec![("w2a POST /switchover".to_string(), serde_json::json!({"leader": "w2a", "candidate": "w2b"}))]
    );
    assert_eq!(body(&theirs), body(&ours));
}
