#![allow(clippy::unwrap_used)]
//! The command replica method loaded through the real plugin loader, running
//! a shell script that records how it was called.
//!
//! The plugin is a cdylib of this workspace: `cargo build --workspace` (or
//! `cargo build -p palisade-replica-command`) builds it next to this test
//! binary.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

use palisade_plugin_api::host::open;
use palisade_plugin_api::{PluginKind, PluginParams, PluginResult, ReplicaMethod, ReplicaRequest};
use palisade_test_support::{target_dir, wait_for, wait_until, Staging};
use serde_json::{json, Value};

const RECORDER: &str = r#"#!/bin/sh
# Test fixture: records its arguments, working directory, environment and
# the data directory's contents, then does what MODE and EXIT_CODE say.
out="$RECORD_DIR"
: > "$out/args"
for a in "$@"; do printf '%s\n' "$a" >> "$out/args"; done
pwd > "$out/cwd"
printf '%s\n' "${PGPASSFILE-unset}" > "$out/pgpassfile"
printf '%s\n' "${PATH-unset}" > "$out/path"
ls -A "$DATADIR" > "$out/datadir-before" 2>/dev/null
mkdir -p "$DATADIR" && touch "$DATADIR/PG_VERSION"
echo "recorder stdout marker $RECORD_DIR"
echo "recorder stderr marker $RECORD_DIR" >&2
if [ "$MODE" = sleep ]; then
    sleep 600 &
    echo $! > "$out/sleep.pid"
    wait
fi
exit "${EXIT_CODE:-0}"
"#;

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
    let path = target_dir().join("libpalisade_replica_command.so");
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    let opened = open(&path, PluginKind::Replica, Some("command")).unwrap_or_else(|e| panic!("{e}"));
    opened.new_replica(PluginParams { scope: "demo".into(), name: "node2".into(), config_json: config.to_string() })
}

struct Fixture {
    staging: Staging,
    script: PathBuf,
    record: PathBuf,
    data: PathBuf,
    work: PathBuf,
}

impl Fixture {
    fn new(label: &str) -> Self {
        let staging = Staging::new(label);
        let script = staging.write("bin/record.sh", RECORDER, 0o755);
        let record = staging.dir("record", 0o755);
        let data = staging.path().join("data");
        let work = staging.dir("work", 0o755);
        Self { staging, script, record, data, work }
    }

    fn request(&self, connstring: Option<&str>, extra_env: &[(&str, &str)]) -> ReplicaRequest {
        let mut env = vec![
            ("RECORD_DIR".to_string(), self.record.display().to_string()),
            ("DATADIR".to_string(), self.data.display().to_string()),
            ("PGPASSFILE".to_string(), self.staging.path().join("pgpass").display().to_string()),
        ];
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        ReplicaRequest {
            scope: "demo".into(),
            name: "node2".into(),
            role: "replica".into(),
            data_dir: self.data.display().to_string(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            connstring: connstring.map(str::to_string),
            env,
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

    fn data_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.data)
            .unwrap_or_else(|e| panic!("{}: {e}", self.data.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn put_old_data(&self) {
        std::fs::create_dir_all(self.data.join("base")).unwrap();
        std::fs::write(self.data.join("base/old"), "x").unwrap();
        std::fs::write(self.data.join("old"), "x").unwrap();
    }
}

const CONN: &str = "dbname=postgres user=replicator host=127.0.0.1 port=5432";

#[test]
fn arguments_environment_and_directory_are_patronis() {
    let f = Fixture::new("command-args");
    let command = format!("{} --fixed 'two words'", f.script.display());
    let method = plugin(json!({
        "command": command,
        "no_leader": true,
        "keep_data": true,
        "no_params": false,
        "extra_key": "v",
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(method.can_work_without_leader());

    f.put_old_data();
    method.create_replica(&f.request(Some(CONN), &[])).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        f.recorded("args"),
        [
            "--fixed".to_string(),
            "two words".to_string(),
            "--no_leader=True".to_string(),
            "--keep_data=True".to_string(),
            "--no_params=False".to_string(),
            "--extra_key=v".to_string(),
            "--scope=demo".to_string(),
            "--role=replica".to_string(),
            format!("--datadir={}", f.data.display()),
            format!("--connstring={CONN}"),
        ]
    );
    assert_eq!(f.recorded("cwd"), [f.work.display().to_string()]);
    assert_eq!(f.recorded("pgpassfile"), [f.staging.path().join("pgpass").display().to_string()]);
    assert_ne!(f.recorded("path"), ["unset"], "the daemon's environment is inherited");
    assert_eq!(f.recorded("datadir-before"), ["base", "old"], "keep_data: nothing removed before the command");
    assert_eq!(f.data_entries(), ["PG_VERSION", "base", "old"]);

    let marker = format!("recorder stdout marker {}", f.record.display());
    assert!(wait_until(Duration::from_secs(5), || logged(&marker)), "the command's stdout is logged");
    let marker = format!("recorder stderr marker {}", f.record.display());
    assert!(wait_until(Duration::from_secs(5), || logged(&marker)), "the command's stderr is logged");
}

#[test]
fn no_params_passes_only_the_other_keys() {
    let f = Fixture::new("command-no-params");
    let method = plugin(json!({
        "command": f.script.display().to_string(),
        "no_params": true,
        "no_leader": 0,
        "keep_data": false,
        "extra_key": "v",
        "threads": 4,
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!method.can_work_without_leader());

    f.put_old_data();
    method.create_replica(&f.request(Some(CONN), &[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.recorded("args"), ["--extra_key=v", "--threads=4"]);
    assert!(f.recorded("datadir-before").is_empty(), "the old data was removed before the command");
    assert_eq!(f.data_entries(), ["PG_VERSION"]);
}

#[test]
fn legacy_no_master_and_a_missing_leader() {
    let f = Fixture::new("command-no-master");
    let method =
        plugin(json!({"command": f.script.display().to_string(), "no_master": 1})).unwrap_or_else(|e| panic!("{e}"));
    assert!(method.can_work_without_leader());
    method.create_replica(&f.request(None, &[])).unwrap_or_else(|e| panic!("{e}"));
    let args = f.recorded("args");
    assert_eq!(args.first().map(String::as_str), Some("--no_master=1"));
    assert_eq!(args.last().map(String::as_str), Some("--connstring="), "no member to copy from: empty connstring");
}

#[test]
fn a_failing_command_is_an_error_and_its_data_is_removed() {
    let f = Fixture::new("command-fails");
    let method = plugin(json!({"command": f.script.display().to_string()})).unwrap_or_else(|e| panic!("{e}"));
    f.put_old_data();
    let err = method.create_replica(&f.request(Some(CONN), &[("EXIT_CODE", "3")])).expect_err("exit code 3 fails");
    let exited = format!("{} exited with code=3: ", f.script.display());
    assert!(err.message.starts_with(&exited), "Patroni's words, then stderr: {err}");
    assert!(err.message.contains("recorder stderr marker"), "the last stderr line is in the error: {err}");
    assert!(f.recorded("datadir-before").is_empty());
    assert!(f.data_entries().is_empty(), "what the failed command wrote is removed");
}

#[test]
fn keep_data_keeps_what_a_failing_command_wrote() {
    let f = Fixture::new("command-fails-kept");
    let method =
        plugin(json!({"command": f.script.display().to_string(), "keep_data": true})).unwrap_or_else(|e| panic!("{e}"));
    f.put_old_data();
    assert!(method.create_replica(&f.request(Some(CONN), &[("EXIT_CODE", "1")])).is_err());
    assert_eq!(f.data_entries(), ["PG_VERSION", "base", "old"]);
}

#[test]
fn a_missing_program_is_an_error() {
    let f = Fixture::new("command-missing");
    let method = plugin(json!({"command": "/nonexistent/restore --x"})).unwrap_or_else(|e| panic!("{e}"));
    let err = method.create_replica(&f.request(Some(CONN), &[])).expect_err("cannot run");
    assert!(err.message.contains("cannot run /nonexistent/restore --x"), "{err}");
}

#[test]
fn bad_sections_are_refused_at_construction() {
    for config in [json!({"no_leader": true}), json!({"command": ["a"]}), json!({"command": "x 'y"}), json!("x")] {
        let err = plugin(config.clone()).err().unwrap_or_else(|| panic!("{config} was accepted"));
        assert_eq!(err.kind, palisade_plugin_api::ErrorKind::Config, "{config}: {err}");
        assert!(err.message.contains("command"), "{config}: {err}");
    }
}

fn process_running(pid: i32) -> bool {
    // Alive and not a zombie (an orphan whose new parent does not reap).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn cancel_kills_the_command_and_what_it_started() {
    let f = Fixture::new("command-cancel");
    let method: std::sync::Arc<dyn ReplicaMethod> =
        plugin(json!({"command": f.script.display().to_string()})).unwrap_or_else(|e| panic!("{e}")).into();
    let request = f.request(Some(CONN), &[("MODE", "sleep")]);
    let (tx, rx) = mpsc::channel();
    let runner = std::sync::Arc::clone(&method);
    std::thread::spawn(move || {
        let _ = tx.send(runner.create_replica(&request));
    });

    let pid_file = f.record.join("sleep.pid");
    let sleeper: i32 = wait_for("the command to start its child", Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok())
    });
    assert!(process_running(sleeper));
    method.cancel();

    // Without the cancellation the command would run for ten minutes.
    let result = rx.recv_timeout(Duration::from_secs(60)).expect("create_replica returns after cancel");
    let err = result.expect_err("a cancelled command fails");
    assert!(err.message.contains("cancelled"), "{err}");
    assert!(wait_until(Duration::from_secs(10), || !process_running(sleeper)), "the command's child is killed too");
    assert!(f.data_entries().is_empty(), "a cancelled attempt leaves an empty data directory");

    // The cancellation is over: the method works again.
    method.create_replica(&f.request(Some(CONN), &[])).unwrap_or_else(|e| panic!("{e}"));
}
