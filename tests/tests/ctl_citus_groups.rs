//! palisadectl on a Citus cluster, next to real patronictl (Patroni 4.1):
//! three groups of one scope written straight into a real etcd (no
//! daemons, no Citus), read by both tools through `--group` and without
//! it. What they print must be the same byte for byte; what they write
//! (the failover key of a switchover falling back to the DCS) must land in
//! the same group with the same value.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use palisade_test_support::{free_port, target_dir, Staging};
use palisade_tests::etcd::{EtcdServer, RawClient};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(program: &Path, config: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(program);
    cmd.arg("-c").arg(config).args(args);
    cmd.env("NO_COLOR", "1").env("PALISADE_PLUGIN_DIR", target_dir()).env_remove("DCS_URL");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PATRONI")) {
        cmd.env_remove(k);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
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

fn member(port: u16, role: &str, extra: &str) -> String {
    format!(
        r#"{{"conn_url":"postgres://127.0.0.1:{port}/postgres","api_url":"http://127.0.0.1:{api}/patroni","state":"running","role":"{role}","version":"4.1.0","xlog_location":50331968,"timeline":1{extra}}}"#,
        api = closed_port()
    )
}

/// A port nobody listens on: the members' REST APIs are unreachable, so
/// actions fall back to the DCS.
fn closed_port() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(free_port)
}

const REPLICA: &str = r#","replication_state":"streaming","receive_lsn":50331968,"replay_lsn":50331648"#;

/// Groups 0, 1 and 2 of scope `demo`, two members each; group 1 is paused.
fn write_cluster(raw: &RawClient) {
    let groups: [(i32, &str, &str, u16); 3] = [(0, "c1", "c2", 5432), (1, "w1a", "w1b", 5442), (2, "w2a", "w2b", 5452)];
    for (g, leader, replica, port) in groups {
        let key = |k: &str| format!("/service/demo/{g}/{k}");
        raw.put(&key("initialize"), format!("73000000000000000{g}").as_bytes());
        let config = if g == 1 { r#"{"ttl":30,"loop_wait":10,"pause":true}"# } else { r#"{"ttl":30,"loop_wait":10}"# };
        raw.put(&key("config"), config.as_bytes());
        raw.put(&key("leader"), leader.as_bytes());
        raw.put(&key("status"), br#"{"optime":50331968}"#);
        raw.put(&key(&format!("members/{leader}")), member(port, "primary", "").as_bytes());
        raw.put(&key(&format!("members/{replica}")), member(port + 1, "replica", REPLICA).as_bytes());
    }
    // Keys of the scope outside any group belong to no group.
    raw.put("/service/demo/leader", b"stray");
}

#[test]
fn list_and_actions_match_patronictl_on_every_group() {
    let tools = Tools::new();
    let etcd = EtcdServer::start("ctl-citus");
    let raw = etcd.raw();
    write_cluster(&raw);
    let staging = Staging::new("ctl-citus");
    let base = format!("scope: demo\nname: ctl\netcd3:\n  hosts: {}\n", etcd.host_port());
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

    // A switchover within a group: the members' APIs are down, so both
    // tools fall back to writing that group's failover key.
    let failover_of = |g: i32| raw.get(&format!("/service/demo/{g}/failover")).map(|kv| kv.value);
    for (args, group) in [
        (&["switchover", "--group", "2", "--candidate", "w2b", "--force"][..], 2),
        (&["failover", "--group", "0", "--candidate", "c2", "--force"], 0),
    ] {
        let theirs = run(&tools.patronictl, &citus, args);
        assert_eq!(theirs.code, 0, "{args:?}: {}", theirs.stderr);
        let theirs = failover_of(group).expect("patronictl wrote the group's failover key");
        raw.put(&format!("/service/demo/{group}/failover"), b"");
        let ours = run(&tools.palisadectl, &citus, args);
        assert_eq!(ours.code, 0, "{args:?}: {}", ours.stderr);
        assert!(ours.stdout.contains("falling back to DCS"), "{}", ours.stdout);
        assert_eq!(failover_of(group), Some(theirs), "{args:?}: the same value in group {group}");
        assert_eq!(failover_of(1), None, "group 1 untouched");
    }
}
