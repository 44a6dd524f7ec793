//! Helpers shared by the real-PostgreSQL tests: a node (staging directory,
//! settings, `Postgres`), cleaned up on drop even when the test fails.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use palisade_config::{AuthenticationConfig, BinNames, EffectivePostgresql, HostPort, PostgresqlConfig, RoleAuth};
use palisade_postgres::process::{PidFile, PostmasterOutput};
use palisade_postgres::{PgSettings, Postgres, StartOutcome};
use palisade_test_support::{free_port, pg_bin_dir, wait_until, Staging};
use serde_json::{json, Value};

pub const SUPERUSER_PASSWORD: &str = "su secret";
pub const REPLICATION_PASSWORD: &str = "rep:secret";

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The parameters every test node runs with (small, fast), plus `extra`.
pub fn parameters(socket_dir: &std::path::Path, extra: &Value) -> serde_json::Map<String, Value> {
    let mut p = json!({
        "unix_socket_directories": socket_dir.to_string_lossy(),
        "max_connections": 20,
        "shared_buffers": "16MB",
        "wal_level": "replica",
        "hot_standby": "on",
        "max_wal_senders": 5,
        "max_replication_slots": 5,
        "max_worker_processes": 8,
        "wal_log_hints": "on",
        "wal_keep_size": "128MB",
        "fsync": "off",
    });
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            p.insert(k.clone(), v.clone());
        }
    }
    p.as_object().cloned().unwrap_or_default()
}

/// What a node's settings are made of.
pub struct Spec {
    pub name: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub pgpass: PathBuf,
    pub use_unix_socket: bool,
    pub extra: Value,
    /// pg_hba rows put before the default TCP rows.
    pub hba_extra: Vec<String>,
}

impl Spec {
    /// Settings with `extra` parameters on top of the node's own.
    pub fn settings(&self, extra: Value) -> PgSettings {
        let mut merged = self.extra.clone();
        if let (Some(m), Some(e)) = (merged.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        let role = |user: &str, pw: &str| RoleAuth {
            username: user.into(),
            password: Some(pw.into()),
            ssl: Default::default(),
        };
        let local = PostgresqlConfig {
            listen: HostPort { hosts: vec!["127.0.0.1".into()], port: self.port },
            connect_address: HostPort { hosts: vec!["127.0.0.1".into()], port: self.port },
            proxy_address: None,
            data_dir: self.data_dir.clone(),
            config_dir: self.data_dir.clone(),
            bin_dir: Some(pg_bin_dir()),
            bin_name: BinNames::default(),
            pgpass: self.pgpass.clone(),
            authentication: AuthenticationConfig {
                superuser: role("postgres", SUPERUSER_PASSWORD),
                replication: role("replicator", REPLICATION_PASSWORD),
                rewind: Some(role("rewinder", "rw")),
            },
            callbacks: Default::default(),
            create_replica_methods: vec!["basebackup".into()],
            replica_method_sections: Default::default(),
            parameters: Default::default(),
            pg_hba: None,
            pg_ident: None,
            recovery_conf: Default::default(),
            custom_conf: None,
            pg_ctl_timeout: Duration::from_secs(60),
            use_pg_rewind: Some(true),
            remove_data_directory_on_rewind_failure: false,
            remove_data_directory_on_diverged_timelines: false,
            use_unix_socket: self.use_unix_socket,
            use_unix_socket_repl: false,
            pre_promote: None,
            before_stop: None,
            hooks: Default::default(),
        };
        let effective = EffectivePostgresql {
            parameters: parameters(&self.socket_dir, &merged),
            pg_hba: ["local all all trust".to_string()]
                .into_iter()
                .chain(self.hba_extra.iter().cloned())
                .chain([
                    "host replication replicator 127.0.0.1/32 scram-sha-256".into(),
                    "host all all 127.0.0.1/32 scram-sha-256".into(),
                ])
                .collect(),
            pg_ident: vec!["# no mappings".into()],
            recovery_conf: Default::default(),
            use_slots: true,
            use_pg_rewind: true,
        };
        PgSettings { name: self.name.clone(), scope: "batman".into(), local, effective }
    }
}

/// One PostgreSQL node in a staging directory. Dropping it kills its
/// postmaster (and prints its log when the test is failing).
pub struct Node {
    pub spec: Spec,
    pub name: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub log: PathBuf,
    pub pg: Postgres,
    staging: Staging,
}

impl Node {
    pub fn new(name: &str) -> Self {
        Self::with(name, true, json!({}))
    }

    pub fn with(name: &str, use_unix_socket: bool, extra: Value) -> Self {
        Self::with_hba(name, use_unix_socket, extra, Vec::new())
    }

    /// With pg_hba rows of its own before the default TCP rows.
    pub fn with_hba(name: &str, use_unix_socket: bool, extra: Value, hba_extra: Vec<String>) -> Self {
        let staging = Staging::new(&format!("pg-{name}"));
        let spec = Spec {
            name: name.to_string(),
            port: free_port(),
            data_dir: staging.path().join("data"),
            socket_dir: staging.dir("sockets", 0o700),
            pgpass: staging.path().join("pgpass"),
            use_unix_socket,
            extra,
            hba_extra,
        };
        let log = staging.path().join("postgres.log");
        let pg = Postgres::new(spec.settings(json!({}))).with_output(PostmasterOutput::File(log.clone()));
        Self {
            name: spec.name.clone(),
            port: spec.port,
            data_dir: spec.data_dir.clone(),
            socket_dir: spec.socket_dir.clone(),
            log,
            pg,
            spec,
            staging,
        }
    }

    /// A new `Postgres` for this node, as a restarted daemon would make.
    pub fn fresh_postgres(&self) -> Postgres {
        Postgres::new(self.settings()).with_output(PostmasterOutput::File(self.log.clone()))
    }

    pub fn staging_path(&self) -> &std::path::Path {
        self.staging.path()
    }

    pub fn settings(&self) -> PgSettings {
        self.spec.settings(json!({}))
    }

    pub fn settings_with(&self, extra: Value) -> PgSettings {
        self.spec.settings(extra)
    }

    pub fn conn_url(&self) -> String {
        format!("postgres://127.0.0.1:{}/postgres", self.port)
    }

    /// initdb, start, post_bootstrap: a running primary.
    pub async fn bootstrap_primary(&self) {
        self.pg.initdb(&[palisade_config::InitdbOption::KeyValue("encoding".into(), "UTF8".into())]).await.unwrap();
        let change = self.pg.write_config().await.unwrap();
        assert!(change.changed());
        assert_eq!(self.pg.start(Duration::from_secs(60)).await.unwrap(), StartOutcome::Running, "{}", self.log_tail());
        self.pg.post_bootstrap(None).await.unwrap();
    }

    /// A fresh connection as the superuser over the unix socket.
    pub async fn client(&self) -> tokio_postgres::Client {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host_path(&self.socket_dir).port(self.port).user("postgres").dbname("postgres");
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    /// Run a statement and return the first column of each row as text.
    pub async fn query(&self, sql: &str) -> Vec<Option<String>> {
        let rows = self.pg.sql().simple_query(sql).await.unwrap();
        rows.into_iter().map(|r| r.into_iter().next().flatten()).collect()
    }

    pub fn postmaster_pid(&self) -> Option<i32> {
        PidFile::read(&self.data_dir).ok().flatten().map(|p| p.process_id())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Copy this running primary with pg_basebackup into `into`'s data
    /// directory, as the replication user (password from a pgpass file).
    pub fn basebackup_into(&self, into: &Node) {
        let pgpass = into.staging.path().join("basebackup.pgpass");
        std::fs::write(
            &pgpass,
            format!("127.0.0.1:{}:*:replicator:{}\n", self.port, REPLICATION_PASSWORD.replace(':', "\\:")),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = std::process::Command::new(pg_bin_dir().join("pg_basebackup"))
            .arg("-D")
            .arg(&into.data_dir)
            .args(["-X", "stream", "-c", "fast", "-d"])
            .arg(format!("host=127.0.0.1 port={} user=replicator dbname=postgres", self.port))
            .env("PGPASSFILE", &pgpass)
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_basebackup: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Wait until `sql` returns `want` as its first value.
    pub async fn wait_for_value(&self, sql: &str, want: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(rows) = self.pg.sql().simple_query(sql).await {
                if rows.first().and_then(|r| r.first()).cloned().flatten().as_deref() == Some(want) {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {sql} never returned {want}\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kill the postmaster and everything in its process group at once
    /// (only when `postmaster.pid` names a live postmaster of this node).
    /// `true` when nothing is left running.
    pub fn kill9(&self) -> bool {
        match palisade_postgres::process::find_postmaster(&self.data_dir, "postgres").map(|p| p.pid()) {
            Some(pid) => {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                wait_until(Duration::from_secs(20), || !palisade_test_support::pid_alive(pid))
            }
            None => true,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} postgres log (tail)\n{}", self.name, self.log_tail());
        }
        if !self.kill9() {
            eprintln!("{}: the postmaster did not go away", self.name);
        }
    }
}

impl Node {
    /// pg_isready says the server accepts connections (blocking; for use in
    /// `wait_until`).
    pub fn query_blocking_ready(&self) -> bool {
        std::process::Command::new(pg_bin_dir().join("pg_isready"))
            .args(["-h"])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-t", "1"])
            .status()
            .is_ok_and(|s| s.success())
    }
}
