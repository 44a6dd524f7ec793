//! The Citus TEST DOUBLE and how tests install it.
//!
//! No Citus package exists on these machines. `tests/doubles/citus` holds a
//! SQL-only PostgreSQL extension named `citus` that stands in for the parts
//! of Citus Patroni's Citus handler touches (see its README.md and
//! docs/testing-doubles.md). It is a test double, not Citus.
//!
//! PostgreSQL 15 has no `extension_control_path`: it finds its `share/`
//! and `lib/` directories relative to its own executable. So the double is
//! installed into a temporary PostgreSQL tree that belongs to the test
//! ([`CitusDoubleTree`]):
//!
//! - `<tmp>/lib/postgresql/15/bin`: hard links (or copies) of the real
//!   binaries (symbolic links would not do: PostgreSQL resolves them and
//!   would find the real tree again);
//! - `<tmp>/share/postgresql/15`: symbolic links to every entry of the real
//!   share directory, except `extension/`, a directory of links to the
//!   real extension files plus the double's `citus.control` and
//!   `citus--<version>.sql`;
//! - `<tmp>/lib/postgresql/15/lib`: links to every entry of the real
//!   `pkglibdir`, plus `citus.so`, because Patroni puts `citus` first in
//!   `shared_preload_libraries` and PostgreSQL refuses to start without
//!   that library. It is a copy of contrib's `tablefunc.so`, which is inert
//!   when preloaded: it has no `_PG_init` (nor `_PG_fini`), so loading it
//!   runs nothing and installs no hook; its C functions are reachable only
//!   through `CREATE FUNCTION`, which nothing here runs against `citus.so`.
//!
//! `postgresql.bin_dir` set to [`CitusDoubleTree::bin_dir`] makes a node
//! run this tree. `citus.local_hostname` and the other `citus.*` settings
//! Patroni writes are accepted by PostgreSQL as placeholders of an unknown
//! prefix.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use palisade_test_support::{
    chown_to_test_user, command_as_test_user, free_port, pg_bin_dir, wait_until, ProcessGuard, Staging,
};

/// The double's extension version (`default_version` in citus.control).
pub const DOUBLE_VERSION: &str = "12.1-1";

/// The inert contrib library copied as `citus.so` (see the module docs).
pub const INERT_LIBRARY: &str = "tablefunc.so";

/// A temporary PostgreSQL 15 tree with the Citus test double installed,
/// removed on drop with its staging directory.
pub struct CitusDoubleTree {
    staging: Staging,
    bin_dir: PathBuf,
}

impl CitusDoubleTree {
    /// Build the tree from the real PostgreSQL binaries ([`pg_bin_dir`]).
    pub fn install() -> Self {
        let staging = Staging::new("citus-double");
        let root = staging.path().join("pg");
        let real_bin = pg_bin_dir();
        let share = pg_config(&real_bin, "--sharedir");
        let pkglib = pg_config(&real_bin, "--pkglibdir");

        let bin_dir = root.join("lib/postgresql/15/bin");
        fs::create_dir_all(&bin_dir).unwrap();
        for entry in read_dir(&real_bin) {
            let target = bin_dir.join(entry.file_name().unwrap());
            if fs::hard_link(&entry, &target).is_err() {
                fs::copy(&entry, &target).unwrap_or_else(|e| panic!("copy {}: {e}", entry.display()));
            }
        }

        let share_dir = root.join("share/postgresql/15");
        fs::create_dir_all(&share_dir).unwrap();
        for entry in read_dir(&share) {
            let name = entry.file_name().unwrap();
            if name != "extension" {
                symlink(&entry, share_dir.join(name)).unwrap();
            }
        }
        let extension = share_dir.join("extension");
        fs::create_dir_all(&extension).unwrap();
        for entry in read_dir(&share.join("extension")) {
            let name = entry.file_name().unwrap();
            if !name.to_string_lossy().starts_with("citus") {
                symlink(&entry, extension.join(name)).unwrap();
            }
        }
        let double = double_dir();
        for file in ["citus.control".to_string(), format!("citus--{DOUBLE_VERSION}.sql")] {
            fs::copy(double.join(&file), extension.join(&file))
                .unwrap_or_else(|e| panic!("copy the citus test double's {file}: {e}"));
        }

        let lib_dir = root.join("lib/postgresql/15/lib");
        fs::create_dir_all(&lib_dir).unwrap();
        for entry in read_dir(&pkglib) {
            let name = entry.file_name().unwrap();
            if name != "citus.so" {
                symlink(&entry, lib_dir.join(name)).unwrap();
            }
        }
        fs::copy(pkglib.join(INERT_LIBRARY), lib_dir.join("citus.so"))
            .unwrap_or_else(|e| panic!("copy {INERT_LIBRARY} as the double's citus.so: {e}"));

        open_to_everyone(&root);
        Self { staging, bin_dir }
    }

    /// The directory for `postgresql.bin_dir`.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The tree's root (for messages).
    pub fn root(&self) -> PathBuf {
        self.staging.path().join("pg")
    }
}

/// `tests/doubles/citus`, where the double's files are kept.
pub fn double_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("doubles/citus")
}

fn pg_config(bin: &Path, flag: &str) -> PathBuf {
    let out = Command::new(bin.join("pg_config")).arg(flag).output().expect("run pg_config");
    assert!(out.status.success(), "pg_config {flag} failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Directories 755 and files readable by the test user that runs PostgreSQL.
fn open_to_everyone(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            open_to_everyone(&path);
        } else if meta.is_file() && meta.permissions().mode() & 0o444 != 0o444 {
            // Hard links share the real binary's inode: leave those alone.
            if meta.permissions().mode() & 0o111 == 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
    }
}

/// A standalone PostgreSQL server run from a [`CitusDoubleTree`] as the
/// test user, for tests of the plugin without daemons: `127.0.0.1:port`
/// and a Unix socket in `socket_dir`, trust authentication for
/// `postgres`. Stopped (fast shutdown) on drop.
pub struct DoubleServer {
    pub name: String,
    pub port: u16,
    pub socket_dir: PathBuf,
    pub data_dir: PathBuf,
    bin_dir: PathBuf,
    log: PathBuf,
    process: Option<ProcessGuard>,
}

impl DoubleServer {
    /// initdb into `<staging>/<name>` and start with the `settings`
    /// (`name = value` lines for postgresql.conf, values quoted as needed).
    pub fn start(tree: &CitusDoubleTree, staging: &Staging, name: &str, settings: &[(String, String)]) -> Self {
        let data_dir = staging.dir(&format!("{name}-data"), 0o700);
        let socket_dir = staging.dir(&format!("{name}-run"), 0o755);
        let status = command_as_test_user(tree.bin_dir().join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(&data_dir)
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb for {name}");
        let port = free_port();
        let mut conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
            socket_dir.display()
        );
        for (k, v) in settings {
            conf.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
        }
        let mut file = fs::OpenOptions::new().append(true).open(data_dir.join("postgresql.conf")).unwrap();
        std::io::Write::write_all(&mut file, conf.as_bytes()).unwrap();
        let log = staging.path().join(format!("{name}.log"));
        let mut server = Self {
            name: name.to_string(),
            port,
            socket_dir,
            data_dir,
            bin_dir: tree.bin_dir().to_path_buf(),
            log,
            process: None,
        };
        server.start_again();
        server
    }

    /// Start the server again after [`DoubleServer::stop`] (same port and
    /// data), and wait until it answers.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "{} is running", self.name);
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        chown_to_test_user(&self.log);
        let mut cmd = command_as_test_user(self.bin_dir.join("postgres"));
        cmd.arg("-D").arg(&self.data_dir).current_dir("/").stdout(log.try_clone().unwrap()).stderr(log);
        self.process = Some(ProcessGuard::spawn(&self.name, cmd).expect("start postgres"));
        let up = wait_until(Duration::from_secs(30), || self.sql("postgres", "SELECT 1").is_ok());
        assert!(up, "{} did not start: {}", self.name, fs::read_to_string(&self.log).unwrap_or_default());
    }

    /// `postgres://127.0.0.1:<port>/postgres`, a member's `conn_url`.
    pub fn conn_url(&self) -> String {
        format!("postgres://127.0.0.1:{}/postgres", self.port)
    }

    /// Run SQL with psql in `db` as `postgres`; rows as `|`-separated lines.
    pub fn sql(&self, db: &str, query: &str) -> Result<String, String> {
        let out = Command::new(pg_bin_dir().join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", query])
            .env("PGCONNECT_TIMEOUT", "3")
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Stop the server now (fast shutdown).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.signal(nix::sys::signal::Signal::SIGINT);
            p.wait_exit(Duration::from_secs(30));
        }
    }
}

impl Drop for DoubleServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The calls the double recorded, as `func|args` lines in call order.
pub fn recorded_calls(server: &DoubleServer, db: &str) -> Vec<String> {
    server
        .sql(db, "SELECT func || '|' || args::text FROM pg_catalog.citus_test_double_calls ORDER BY id")
        .map(|s| s.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// The statement of "a distributed transaction through the coordinator"
/// (the double's `citus_test_double_distributed_write`): wait on the
/// metadata lock of `group`'s primary row, then run `command` on the
/// primary `pg_dist_node` names, connecting with `conninfo` added to its
/// host and port (for instance `user=postgres dbname=postgres`). Run it in
/// the coordinator's `citus.database`, where `CREATE EXTENSION dblink` must
/// have been run. It answers the `host:port` the command ran on.
pub fn distributed_write_sql(group: i32, command: &str, conninfo: &str) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!("SELECT pg_catalog.citus_test_double_distributed_write({group}, {}, {})", quote(command), quote(conninfo))
}
