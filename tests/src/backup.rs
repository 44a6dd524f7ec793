//! Backup repositories around a test cluster: a local pgBackRest repository
//! (the real `pgbackrest`, installed by scripts/setup.sh) that node1
//! archives into, and the WAL-G stand-in (`tests/fixtures/wal-g-stand-in`,
//! not WAL-G: WAL-G cannot be installed here) with its file storage.
//! Shared by the replica-method tests and `bench replica-create`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use palisade_test_support::{chown_to_test_user, command_as_test_user, pg_bin_dir, wait_for};

use crate::cluster::Cluster;

/// The stanza of every test repository.
pub const STANZA: &str = "demo";

/// Where [`PgBackRest::prepare`] puts the configuration file's path.
const CONF_PLACEHOLDER: &str = "@PGBACKREST_CONF@";

/// `postgresql.parameters` lines (for `ClusterSpec::parameters_extra`) that
/// make every primary archive its WAL into the repository.
pub fn archive_parameters() -> String {
    format!(
        "    archive_mode: 'on'\n    archive_command: 'pgbackrest --config={CONF_PLACEHOLDER} --stanza={STANZA} \
         archive-push %p'\n"
    )
}

/// A directory owned by the test user.
pub fn test_user_dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    chown_to_test_user(path);
    path.to_path_buf()
}

/// Add YAML lines (indented by two) to the `postgresql` section of a
/// node's configuration before the node starts.
pub fn add_to_postgresql(cluster: &Cluster, node: &str, lines: &str) {
    let path = &cluster.node(node).config;
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("\npostgresql:\n"), "{}: no postgresql section", path.display());
    std::fs::write(path, text.replacen("\npostgresql:\n", &format!("\npostgresql:\n{lines}"), 1)).unwrap();
}

/// A local pgBackRest repository whose stanza is node1's cluster.
pub struct PgBackRest {
    pub conf: PathBuf,
    pub repo: PathBuf,
}

impl PgBackRest {
    /// Write the configuration (repository, log and lock directories in
    /// the staging area; `pg1` is node1) and put its path into every
    /// node's `archive_command`. Call before the nodes start.
    pub fn prepare(cluster: &Cluster) -> Self {
        let base = test_user_dir(&cluster.dir().join("pgbackrest"));
        let repo = test_user_dir(&base.join("repo"));
        let (log, lock, spool) =
            (test_user_dir(&base.join("log")), test_user_dir(&base.join("lock")), test_user_dir(&base.join("spool")));
        let node1 = cluster.node("node1");
        let conf = cluster.write(
            "pgbackrest/pgbackrest.conf",
            &format!(
                "[global]\nrepo1-path={repo}\nrepo1-retention-full=2\nlog-path={log}\nlock-path={lock}\n\
                 spool-path={spool}\nlog-level-file=detail\nstart-fast=y\n\n[{STANZA}]\npg1-path={data}\n\
                 pg1-port={port}\npg1-socket-path={socket}\npg1-user=postgres\n",
                repo = repo.display(),
                log = log.display(),
                lock = lock.display(),
                spool = spool.display(),
                data = node1.data_dir.display(),
                port = node1.pg_port,
                socket = cluster.dir().join("run/node1").display(),
            ),
            0o644,
        );
        for n in &cluster.nodes {
            let text = std::fs::read_to_string(&n.config).unwrap();
            std::fs::write(&n.config, text.replace(CONF_PLACEHOLDER, &conf.display().to_string())).unwrap();
        }
        Self { conf, repo }
    }

    /// Run `pgbackrest --config=... --stanza=demo <args>` as the test
    /// user; its stdout. Panics with its output when it fails.
    pub fn run(&self, cluster: &Cluster, args: &[&str]) -> String {
        let out = command_as_test_user("pgbackrest")
            .arg(format!("--config={}", self.conf.display()))
            .arg(format!("--stanza={STANZA}"))
            .args(args)
            .current_dir(cluster.dir())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pgbackrest {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `stanza-create` then a full `backup` of node1; the backup's label.
    pub fn stanza_create_and_backup(&self, cluster: &Cluster) -> String {
        self.run(cluster, &["stanza-create"]);
        self.backup(cluster)
    }

    /// A full backup of node1; the backup's label.
    pub fn backup(&self, cluster: &Cluster) -> String {
        self.run(cluster, &["--type=full", "backup"]);
        let info: serde_json::Value = serde_json::from_str(&self.run(cluster, &["--output=json", "info"])).unwrap();
        info[0]["backup"]
            .as_array()
            .and_then(|b| b.last())
            .and_then(|b| b["label"].as_str())
            .unwrap_or_else(|| panic!("no backup in {info}"))
            .to_string()
    }
}

/// The WAL-G stand-in and its file storage (`WALG_FILE_PREFIX`).
pub struct WalGStandIn {
    /// The stand-in script, installed where the test user can run it.
    pub executable: PathBuf,
    pub storage: PathBuf,
}

impl WalGStandIn {
    pub fn install(cluster: &Cluster) -> Self {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wal-g-stand-in");
        let script = std::fs::read_to_string(&source).unwrap();
        let executable = cluster.write("walg/wal-g-stand-in", &script, 0o755);
        let storage = test_user_dir(&cluster.dir().join("walg/storage"));
        test_user_dir(&storage.join("basebackups_005"));
        Self { executable, storage }
    }

    /// A base backup of `node` (pg_basebackup, WAL streamed into it), stored
    /// as WAL-G backup `name`.
    pub fn backup_from(&self, cluster: &Cluster, node: &str, name: &str) {
        let n = cluster.node(node);
        let target = self.storage.join("basebackups_005").join(name);
        let status = command_as_test_user(pg_bin_dir().join("pg_basebackup"))
            .arg("-D")
            .arg(&target)
            .args(["-X", "stream", "-c", "fast", "-h", "127.0.0.1", "-p", &n.pg_port.to_string(), "-U", "replicator"])
            .env("PGPASSWORD", "test-replication-pw")
            .current_dir(cluster.dir())
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_basebackup of {node} failed");
        let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        std::fs::write(target.join(".time"), time).unwrap();
        chown_to_test_user(&target.join(".time"));
    }

    /// What the stand-in recorded.
    pub fn calls(&self) -> String {
        std::fs::read_to_string(self.storage.join("calls.log")).unwrap_or_default()
    }
}

/// Ask `node` to rebuild itself (`POST /reinitialize`) and time it until
/// it streams from `leader` again with a new postmaster.
pub fn time_reinitialize(cluster: &Cluster, node: &str, leader: &str, timeout: Duration) -> Duration {
    let n = cluster.node(node);
    let old_pid = n.postmaster_pid();
    let started = Instant::now();
    let r = n.call("POST", "/reinitialize", Some("{\"force\": true}"));
    assert_eq!(r.status, 200, "{node}: POST /reinitialize: {} {}", r.status, r.body);
    wait_for(&format!("{node} rebuilt and streaming"), timeout, || {
        let pid = n.postmaster_pid()?;
        (Some(pid) != old_pid && cluster.streaming_from(leader).iter().any(|m| m == node)).then_some(())
    });
    started.elapsed()
}
