#![allow(clippy::unwrap_used)]
//! The basebackup method against a real PostgreSQL 15 primary, loaded
//! through the real plugin loader: the replica it builds starts as a standby
//! and follows the primary; a throttled backup is cancelled part-way and
//! leaves an empty directory.
//!
//! PostgreSQL refuses to run as root, so the test re-runs itself as the
//! unprivileged test user. One test only in this binary, so the environment
//! variable set for that re-run cannot race with another test.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use palisade_plugin_api::host::open;
use palisade_plugin_api::{PluginKind, PluginParams, ReplicaMethod, ReplicaRequest};
use palisade_test_support::{free_port, pg_bin_dir, run_unprivileged, target_dir, wait_for, wait_until, Staging};
use serde_json::json;

const PLUGIN: &str = "libpalisade_replica_basebackup.so";
const PASSWORD: &str = "rep-secret";

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One PostgreSQL server, stopped on drop (even when the test fails).
struct Server {
    data: PathBuf,
    port: u16,
    socket_dir: PathBuf,
    started: bool,
}

impl Server {
    fn pg(&self, program: &str) -> Command {
        Command::new(pg_bin_dir().join(program))
    }

    fn start(&mut self) {
        let log = self.data.with_extension("log");
        run(
            self.pg("pg_ctl").arg("-D").arg(&self.data).arg("-l").arg(&log).args(["-w", "-t", "120", "start"]),
            &format!("start PostgreSQL in {} (log {})", self.data.display(), log.display()),
        );
        self.started = true;
    }

    fn psql(&self, sql: &str) -> String {
        run(
            self.pg("psql")
                .arg("-h")
                .arg(&self.socket_dir)
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-AtXq"])
                .args(["-v", "ON_ERROR_STOP=1", "-c", sql]),
            &format!("psql on port {}: {sql}", self.port),
        )
    }

    fn try_psql(&self, sql: &str) -> Option<String> {
        let out = self
            .pg("psql")
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-AtXq", "-c", sql])
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.started {
            let _ = self.pg("pg_ctl").arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "stop"]).output();
        }
    }
}

/// initdb, a minimal configuration with a replication user behind a
/// password, and start.
fn primary(staging: &Staging, socket_dir: &Path) -> Server {
    let data = staging.path().join("primary");
    run(
        Command::new(pg_bin_dir().join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]),
        "initdb",
    );
    let port = free_port();
    let conf = format!(
        "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nwal_level = replica\n\
         max_wal_senders = 10\nfsync = off\nshared_buffers = 32MB\nmax_connections = 20\n",
        socket_dir.display()
    );
    let mut file = fs::read_to_string(data.join("postgresql.conf")).unwrap();
    file.push_str(&conf);
    fs::write(data.join("postgresql.conf"), file).unwrap();
    fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         host replication replicator 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    let mut server = Server { data, port, socket_dir: socket_dir.to_path_buf(), started: false };
    server.start();
    server.psql(&format!("CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '{PASSWORD}'"));
    server
}

fn request(data_dir: &Path, primary: &Server, pgpass: &Path, cwd: &Path) -> ReplicaRequest {
    ReplicaRequest {
        scope: "demo".into(),
        name: "node2".into(),
        role: "replica".into(),
        data_dir: data_dir.display().to_string(),
        bin_dir: pg_bin_dir().display().to_string(),
        connstring: Some(format!("dbname=postgres user=replicator host=127.0.0.1 port={}", primary.port)),
        env: vec![("PGPASSFILE".into(), pgpass.display().to_string()), ("PGAPPNAME".into(), "node2".into())],
        cwd: cwd.display().to_string(),
    }
}

fn method(config: serde_json::Value) -> Box<dyn ReplicaMethod> {
    let path = target_dir().join(PLUGIN);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    let opened = open(&path, PluginKind::Replica, Some("basebackup")).unwrap_or_else(|e| panic!("{e}"));
    opened
        .new_replica(PluginParams { scope: "demo".into(), name: "node2".into(), config_json: config.to_string() })
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Processes (not zombies) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn builds_a_standby_from_a_real_primary_and_cancels_cleanly() {
    // The re-run is a copy of this binary in a staging directory, which
    // cannot find the build directory from its own path: say where it is.
    if std::env::var_os("PALISADE_BUILD_DIR").is_none() {
        assert!(target_dir().join(PLUGIN).exists(), "{PLUGIN} is missing: run `cargo build --workspace` first");
        std::env::set_var("PALISADE_BUILD_DIR", target_dir());
    }
    if !run_unprivileged("builds_a_standby_from_a_real_primary_and_cancels_cleanly") {
        return;
    }

    let staging = Staging::new("basebackup-pg");
    let socket_dir = staging.dir("sock", 0o700);
    let primary = primary(&staging, &socket_dir);
    primary.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')");
    let pgpass = staging.write("pgpass", &format!("127.0.0.1:{}:*:replicator:{PASSWORD}\n", primary.port), 0o600);

    // 1. A replica that starts as a standby and follows the primary.
    let replica_dir = staging.path().join("replica");
    let basebackup = method(json!([{"checkpoint": "fast"}, "no-sync", {"label": "'palisade test'"}]));
    basebackup
        .create_replica(&request(&replica_dir, &primary, &pgpass, staging.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fs::read_to_string(replica_dir.join("PG_VERSION")).unwrap().trim(), "15");
    assert_eq!(fs::metadata(&replica_dir).unwrap().permissions().mode() & 0o777, 0o700);

    let standby_port = free_port();
    fs::write(replica_dir.join("standby.signal"), "").unwrap();
    let mut conf = fs::read_to_string(replica_dir.join("postgresql.conf")).unwrap();
    conf.push_str(&format!(
        "port = {standby_port}\nprimary_conninfo = 'host=127.0.0.1 port={} user=replicator passfile={} \
         application_name=node2'\n",
        primary.port,
        pgpass.display()
    ));
    fs::write(replica_dir.join("postgresql.conf"), conf).unwrap();
    let mut standby =
        Server { data: replica_dir.clone(), port: standby_port, socket_dir: socket_dir.clone(), started: false };
    standby.start();
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    primary.psql("INSERT INTO t VALUES ('after')");
    wait_for("the row written on the primary to reach the standby", Duration::from_secs(60), || {
        (standby.try_psql("SELECT string_agg(v, ',' ORDER BY v) FROM t").as_deref() == Some("after,before"))
            .then_some(())
    });
    drop(standby);

    // 2. A throttled backup (about 10 minutes at 32 kB/s) cancelled part-way.
    primary.psql("CREATE TABLE big AS SELECT g, md5(g::text) AS h FROM generate_series(1, 100000) g");
    let slow_dir = staging.path().join("slow-replica");
    let slow: Arc<dyn ReplicaMethod> = method(json!({"max-rate": "32k", "checkpoint": "fast"})).into();
    let (tx, rx) = mpsc::channel();
    let runner = Arc::clone(&slow);
    let slow_request = request(&slow_dir, &primary, &pgpass, staging.path());
    std::thread::spawn(move || {
        let _ = tx.send(runner.create_replica(&slow_request));
    });
    wait_for("pg_basebackup to be copying", Duration::from_secs(60), || {
        (primary.try_psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'backup'").as_deref() == Some("1")
            && fs::read_dir(&slow_dir).map(|mut d| d.next().is_some()).unwrap_or(false))
        .then_some(())
    });
    slow.cancel();
    let result = rx.recv_timeout(Duration::from_secs(60)).expect("create_replica returns soon after cancel");
    let err = result.expect_err("a cancelled backup fails");
    assert!(err.message.contains("cancelled"), "{err}");
    let left: Vec<_> = fs::read_dir(&slow_dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "the cancelled backup left {left:?}");
    let slow_dir_text = slow_dir.display().to_string();
    assert!(
        wait_until(Duration::from_secs(10), || processes_mentioning(&slow_dir_text).is_empty()),
        "pg_basebackup is still running: {:?}",
        processes_mentioning(&slow_dir_text)
    );
    wait_for("the primary to see the backup end", Duration::from_secs(30), || {
        (primary.try_psql("SELECT count(*) FROM pg_stat_replication").as_deref() == Some("0")).then_some(())
    });
}
