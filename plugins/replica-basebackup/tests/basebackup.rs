#![allow(clippy::unwrap_used)]
//! The basebackup method loaded through the real plugin loader, with a
//! stand-in `pg_basebackup` (a shell script that records how it was called)
//! for the command line, the environment, the retries, the cleaning of the
//! data directory and cancellation. `postgres.rs` runs the real thing.
//!
//! The plugin is a cdylib of this workspace: `cargo build --workspace` (or
//! `cargo build -p palisade-replica-basebackup`) builds it next to this test
//! binary.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use palisade_plugin_api::host::open;
use palisade_plugin_api::{ErrorKind, PluginKind, PluginParams, PluginResult, ReplicaMethod, ReplicaRequest};
use palisade_test_support::{target_dir, wait_for, wait_until, Staging};
use serde_json::{json, Value};

const FAKE_PG_BASEBACKUP: &str = r#"#!/bin/sh
# Test fixture standing in for pg_basebackup: records each attempt, fills
# --pgdata a little, then does what MODE and EXIT_CODE say.
if [ "$1" = --version ]; then echo "pg_basebackup (PostgreSQL) ${FAKE_VERSION:-15.4}"; exit 0; fi
rec="$RECORD_DIR"
n=$(( $(cat "$rec/attempts" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$rec/attempts"
: > "$rec/args.$n"
for a in "$@"; do printf '%s\n' "$a" >> "$rec/args.$n"; done
env > "$rec/env.$n"
pwd > "$rec/cwd.$n"
for a in "$@"; do case "$a" in --pgdata=*) dir="${a#--pgdata=}";; esac; done
ls -A "$dir" > "$rec/before.$n"
stat -c %a "$dir" > "$rec/mode.$n"
mkdir -p "$dir/base/1" && echo 15 > "$dir/PG_VERSION"
echo "fake pg_basebackup: attempt $n of $rec" >&2
if [ "$MODE" = sleep ]; then
    sleep 600 &
    echo $! > "$rec/sleep.pid"
    wait
fi
exit "${EXIT_CODE:-0}"
"#;

const CONN: &str = "dbname=postgres user=replicator host=127.0.0.1 port=5432";

/// Everything the plugin logs, through the host's log sink.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        struct Capture;
        impl Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                LOGS.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
    &LOGS
}

fn logged(needle: &str) -> bool {
    String::from_utf8_lossy(&logs().lock().unwrap()).contains(needle)
}

fn plugin(config: Value) -> PluginResult<Box<dyn ReplicaMethod>> {
    logs();
    let path = target_dir().join("libpalisade_replica_basebackup.so");
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    let opened = open(&path, PluginKind::Replica, Some("basebackup")).unwrap_or_else(|e| panic!("{e}"));
    opened.new_replica(PluginParams { scope: "demo".into(), name: "node2".into(), config_json: config.to_string() })
}

struct Fixture {
    _staging: Staging,
    bin: PathBuf,
    record: PathBuf,
    work: PathBuf,
}

impl Fixture {
    fn new(label: &str) -> Self {
        let staging = Staging::new(label);
        staging.write("bin/pg_basebackup", FAKE_PG_BASEBACKUP, 0o755);
        let bin = staging.path().join("bin");
        let record = staging.dir("record", 0o755);
        let work = staging.dir("work", 0o755);
        Self { _staging: staging, bin, record, work }
    }

    /// A request for `data_dir` (relative to the working directory).
    fn request(&self, data_dir: &str, env: &[(&str, &str)]) -> ReplicaRequest {
        let mut all = vec![
            ("RECORD_DIR".to_string(), self.record.display().to_string()),
            ("PGPASSFILE".to_string(), "/nonexistent/pgpass".to_string()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        ReplicaRequest {
            scope: "demo".into(),
            name: "node2".into(),
            role: "replica".into(),
            data_dir: data_dir.into(),
            bin_dir: self.bin.display().to_string(),
            connstring: Some(CONN.into()),
            env: all,
            cwd: self.work.display().to_string(),
        }
    }

    fn recorded(&self, what: &str) -> Vec<String> {
        std::fs::read_to_string(self.record.join(what))
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn attempts(&self) -> u32 {
        std::fs::read_to_string(self.record.join("attempts")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    fn entries(&self, data_dir: &str) -> Vec<String> {
        let dir = self.work.join(data_dir);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn command_line_environment_and_data_directory() {
    let f = Fixture::new("bb-args");
    let method = plugin(json!([{"checkpoint": "fast"}, "verbose", {"label": "'palisade clone'"}]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!method.can_work_without_leader());

    // A data directory that does not exist yet is created with mode 0700.
    method.create_replica(&f.request("data", &[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.attempts(), 1);
    assert_eq!(
        f.recorded("args.1"),
        [
            "--pgdata=data",
            "-X",
            "stream",
            &format!("--dbname={CONN}"),
            "--checkpoint=fast",
            "--verbose",
            "--label=palisade clone"
        ]
    );
    assert_eq!(f.recorded("mode.1"), ["700"]);
    assert_eq!(f.recorded("cwd.1"), [f.work.display().to_string()]);
    let env = f.recorded("env.1");
    assert!(env.contains(&"PGPASSFILE=/nonexistent/pgpass".to_string()), "{env:?}");
    assert!(
        !env.iter().any(|l| l.starts_with("HOME=") || l.starts_with("CARGO")),
        "the environment is cleared: {env:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || logged(&format!(
            "fake pg_basebackup: attempt 1 of {}",
            f.record.display()
        ))),
        "stderr is logged"
    );

    // What is in the way is removed first, hidden files included.
    std::fs::write(f.work.join("data/.hidden"), "x").unwrap();
    std::fs::write(f.work.join("data/postmaster.pid"), "x").unwrap();
    method.create_replica(&f.request("data", &[])).unwrap_or_else(|e| panic!("{e}"));
    assert!(f.recorded("before.2").is_empty(), "{:?}", f.recorded("before.2"));
    assert_eq!(f.entries("data"), ["PG_VERSION", "base"]);
}

#[test]
fn a_failing_pg_basebackup_is_tried_twice_and_leaves_an_empty_directory() {
    let f = Fixture::new("bb-fails");
    let method = plugin(json!(null)).unwrap_or_else(|e| panic!("{e}"));
    let err = method.create_replica(&f.request("data", &[("EXIT_CODE", "1")])).expect_err("exit code 1 fails");
    assert_eq!(f.attempts(), 2, "Patroni tries twice");
    assert!(f.recorded("before.2").is_empty(), "the second attempt starts from an empty directory");
    assert!(f.entries("data").is_empty(), "nothing is left after the last failure");
    assert!(err.message.contains("exit code 1"), "{err}");
    assert!(err.message.contains("fake pg_basebackup: attempt 2"), "stderr is in the error: {err}");
    assert!(logged("Trying again in 5 seconds"));
}

#[test]
fn cancel_during_the_pause_between_attempts() {
    let f = Fixture::new("bb-cancel-pause");
    let method: Arc<dyn ReplicaMethod> = plugin(json!(null)).unwrap_or_else(|e| panic!("{e}")).into();
    let request = f.request("data", &[("EXIT_CODE", "7")]);
    let (tx, rx) = mpsc::channel();
    let runner = Arc::clone(&method);
    std::thread::spawn(move || {
        let _ = tx.send(runner.create_replica(&request));
    });
    // Logged right before the five-second pause (no other test exits with 7).
    assert!(wait_until(Duration::from_secs(20), || logged(
        "Error when fetching backup: pg_basebackup exited with code=7"
    )));
    method.cancel();
    let err = rx.recv_timeout(Duration::from_secs(60)).expect("returns").expect_err("cancelled");
    assert!(err.message.contains("cancelled"), "{err}");
    assert_eq!(f.attempts(), 1, "no second attempt after the cancellation");
    assert!(f.entries("data").is_empty());
}

#[test]
fn cancel_stops_a_running_pg_basebackup_and_empties_the_directory() {
    let f = Fixture::new("bb-cancel-run");
    let method: Arc<dyn ReplicaMethod> = plugin(json!(null)).unwrap_or_else(|e| panic!("{e}")).into();
    let request = f.request("data", &[("MODE", "sleep")]);
    let (tx, rx) = mpsc::channel();
    let runner = Arc::clone(&method);
    std::thread::spawn(move || {
        let _ = tx.send(runner.create_replica(&request));
    });
    let pid_file = f.record.join("sleep.pid");
    let sleeper: i32 = wait_for("pg_basebackup to start", Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok())
    });
    method.cancel();
    // Without the cancellation it would run for ten minutes.
    let err = rx.recv_timeout(Duration::from_secs(60)).expect("returns").expect_err("cancelled");
    assert!(err.message.contains("cancelled"), "{err}");
    assert_eq!(f.attempts(), 1);
    assert!(f.entries("data").is_empty());
    let running = || {
        std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
            .unwrap_or(false)
    };
    assert!(wait_until(Duration::from_secs(10), || !running()), "the whole process group is stopped");

    // Cancelling is not sticky: the next request works.
    method.create_replica(&f.request("data", &[])).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn options_are_checked_when_the_plugin_is_created() {
    for good in [json!(null), json!({"max-rate": "100M", "checkpoint": "fast"}), json!(["verbose", {"max-rate": "1M"}])]
    {
        plugin(good.clone()).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        json!("verbose"),
        json!([{"max-rate": "1M", "checkpoint": "fast"}]),
        json!([42]),
        json!({"pgdata": "/elsewhere"}),
        json!(["wal-method=fetch"]),
        json!({"compress": "gzip:9"}),
    ] {
        let err = plugin(bad.clone()).err().unwrap_or_else(|| panic!("{bad} was accepted"));
        assert_eq!(err.kind, ErrorKind::Config, "{bad}: {err}");
        assert!(err.message.contains("postgresql.basebackup"), "{bad}: {err}");
    }
}

#[test]
fn server_side_compress_needs_postgresql_15() {
    let f = Fixture::new("bb-compress");
    let method = plugin(json!({"compress": "server-gzip"})).unwrap_or_else(|e| panic!("{e}"));
    let err = method.create_replica(&f.request("data", &[("FAKE_VERSION", "14.9")])).expect_err("refused on 14");
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(err.message.contains("postgresql.basebackup"), "{err}");
    assert_eq!(f.attempts(), 0);

    method.create_replica(&f.request("data", &[("FAKE_VERSION", "15.4")])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.recorded("args.1").last().map(String::as_str), Some("--compress=server-gzip"));
}

#[test]
fn there_must_be_a_member_to_copy_from() {
    let f = Fixture::new("bb-no-source");
    let method = plugin(json!(null)).unwrap_or_else(|e| panic!("{e}"));
    let mut request = f.request("data", &[]);
    request.connstring = None;
    let err = method.create_replica(&request).expect_err("no source");
    assert!(err.message.contains("running member"), "{err}");
    assert_eq!(f.attempts(), 0);
}
