//! The Debian packages, for real: `scripts/package.sh` packages the debug
//! build already in the target directory, `dpkg -i` installs every package
//! into this machine, a 3-node cluster runs from the installed files only
//! (`/usr/bin/palisade`, plugins from `/usr/lib/palisade/plugins`, found
//! by default), and `dpkg --purge` removes every file again, also when the
//! test fails (a guard).
//!
//! dpkg has one lock for the machine: a lock file serializes this test
//! against other runs of itself. Other tests are not disturbed: they run
//! the build directory's binaries with plugins staged next to them or an
//! explicit `PALISADE_PLUGIN_DIR`, which win over `/usr/lib/palisade/plugins`.
#![allow(clippy::unwrap_used)]

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use palisade_test_support::{is_root, target_dir, Staging};
use palisade_tests::cluster::{Cluster, ClusterSpec};

/// Every package `scripts/package.sh` builds.
const PACKAGES: &[&str] = &[
    "palisade",
    "palisade-dcs-etcd3",
    "palisade-dcs-etcd",
    "palisade-dcs-zookeeper",
    "palisade-dcs-exhibitor",
    "palisade-dcs-consul",
    "palisade-dcs-kubernetes",
    "palisade-replica-basebackup",
    "palisade-replica-command",
    "palisade-replica-pgbackrest",
    "palisade-replica-walg",
    "palisade-callback-script",
    "palisade-mpp-citus",
];

/// Written while this test's packages are installed: a run that died
/// (SIGKILL) before its guard purged them is cleaned up by the next run;
/// a palisade installed by somebody else is never touched.
const MARKER: &str = "/var/lib/palisade-packages-test.installed";

/// Holds the lock file (flock) for the whole test.
struct Lock {
    _file: std::fs::File,
}

impl Lock {
    fn take() -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/run/lock/palisade-packages-test.lock")
            .or_else(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open("/tmp/palisade-packages-test.lock")
            })
            .unwrap();
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        Lock { _file: file }
    }
}

/// `dpkg --purge` of every package on drop.
struct Purge;

impl Purge {
    fn run() -> std::process::Output {
        Command::new("dpkg").arg("--purge").args(PACKAGES).output().unwrap()
    }
}

impl Drop for Purge {
    fn drop(&mut self) {
        let out = Purge::run();
        if out.status.success() {
            let _ = std::fs::remove_file(MARKER);
        } else {
            eprintln!("dpkg --purge failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "installed")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{text}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn packages_install_run_a_cluster_and_purge_cleanly() {
    if !is_root() {
        eprintln!("skipped: dpkg -i needs root (CI runs as root)");
        return;
    }
    let _lock = Lock::take();
    if Path::new(MARKER).exists() {
        let out = Purge::run();
        assert!(out.status.success(), "purging a dead run's packages: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::remove_file(MARKER).unwrap();
    }
    for p in PACKAGES {
        assert!(!installed(p), "{p} is installed on this machine: this test installs and purges its own packages");
    }

    // Package the debug build (the target directory above target/debug).
    let staging = Staging::new("packages");
    let debs = staging.dir("debs", 0o755);
    let target = target_dir();
    let profile = target.file_name().unwrap().to_str().unwrap().to_string();
    run(Command::new("bash")
        .arg(workspace().join("scripts/package.sh"))
        .args(["--profile", &profile, "--no-build", "--out"])
        .arg(&debs)
        .env("CARGO_TARGET_DIR", target.parent().unwrap()));
    let files: Vec<PathBuf> = PACKAGES
        .iter()
        .map(|p| {
            let name = format!("{p}_{}_", env!("CARGO_PKG_VERSION"));
            let found = std::fs::read_dir(&debs)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|f| f.file_name().unwrap().to_string_lossy().starts_with(&name));
            found.unwrap_or_else(|| panic!("no {name}*.deb in {}", debs.display()))
        })
        .collect();

    // The plugin packages need the palisade that speaks their API version.
    let api = palisade_plugin_api::API_VERSION;
    let field = |deb: &Path, f: &str| run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(f)).trim().to_string();
    assert_eq!(field(&files[0], "Provides"), format!("palisade-plugin-api-{api}"));
    for deb in &files[1..] {
        assert!(
            field(deb, "Depends").starts_with(&format!("palisade-plugin-api-{api},")),
            "{}: {}",
            deb.display(),
            field(deb, "Depends")
        );
    }

    std::fs::write(MARKER, "scripts/package.sh packages installed by tests/tests/packages.rs\n").unwrap();
    let _purge = Purge;
    run(Command::new("dpkg").arg("-i").args(&files));
    let mut owned: Vec<PathBuf> = Vec::new();
    for p in PACKAGES {
        assert!(installed(p), "{p} is not installed");
        owned.extend(run(Command::new("dpkg").args(["-L", p])).lines().map(PathBuf::from).filter(|f| f.is_file()));
    }
    for f in [
        "/usr/bin/palisade",
        "/usr/bin/palisadectl",
        "/lib/systemd/system/palisade.service",
        "/lib/systemd/system/palisade@.service",
        "/usr/share/doc/palisade/examples/palisade.yml",
        "/usr/share/bash-completion/completions/palisadectl",
        "/usr/share/zsh/vendor-completions/_palisadectl",
        "/usr/share/fish/vendor_completions.d/palisadectl.fish",
        "/usr/lib/palisade/plugins/libpalisade_dcs_etcd3.so",
        "/usr/lib/palisade/plugins/libpalisade_mpp_citus.so",
    ] {
        assert!(owned.contains(&PathBuf::from(f)), "{f} is not installed by the packages");
    }

    // The man pages render (`man -l`), and document the options.
    for (page, needle) in [
        ("palisade.1.gz", "--list-plugins"),
        ("palisadectl.1.gz", "switchover"),
        ("palisadectl-list.1.gz", "--extended"),
    ] {
        let text = run(Command::new("man")
            .arg("-l")
            .arg(Path::new("/usr/share/man/man1").join(page))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "120"));
        // Without a terminal, man still emboldens by overstriking (`x\x08x`).
        let mut plain = String::new();
        for ch in text.chars() {
            match ch {
                '\u{8}' => {
                    plain.pop();
                }
                '\u{2010}' | '\u{2212}' => plain.push('-'),
                c => plain.push(c),
            }
        }
        assert!(plain.contains(needle), "{page} does not mention {needle}:\n{text}");
    }

    // The units: systemd's own check where it works offline, and the
    // settings an HA daemon needs in any case.
    for unit in ["palisade.service", "palisade@.service"] {
        let path = Path::new("/lib/systemd/system").join(unit);
        let text = std::fs::read_to_string(&path).unwrap();
        for line in ["User=postgres", "KillMode=process", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID"] {
            assert!(text.lines().any(|l| l.trim() == line), "{unit} lacks {line}");
        }
        let exec = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
        assert!(exec.starts_with("/usr/bin/palisade /etc/palisade/"), "{unit}: {exec}");
        assert!(unit_parses(&text), "{unit} is not a well-formed unit file:\n{text}");
    }
    if Path::new("/usr/bin/systemd-analyze").exists() {
        // `palisade@.service` can only be checked as an instance.
        let instance = staging.path().join("palisade@main.service");
        std::fs::copy("/lib/systemd/system/palisade@.service", &instance).unwrap();
        for unit in [Path::new("/lib/systemd/system/palisade.service"), &instance] {
            let out = Command::new("systemd-analyze").arg("verify").arg(unit).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // Without systemd as PID 1 the check still parses the unit; it
            // may only miss the targets of a running system.
            let about_the_unit: Vec<&str> = err
                .lines()
                .filter(|l| l.contains("palisade") && !l.contains("not found") && !l.contains("Failed to"))
                .collect();
            assert!(
                out.status.success() && about_the_unit.is_empty(),
                "systemd-analyze verify {} ({}):\n{err}",
                unit.display(),
                out.status
            );
        }
    }

    // `--list-plugins` lists every installed plugin with the API version.
    let list = run(Command::new("/usr/bin/palisade").arg("--list-plugins").env_remove("PALISADE_PLUGIN_DIR"));
    assert!(list.contains("plugin directory: /usr/bin/../lib/palisade/plugins"), "{list}");
    for p in &PACKAGES[1..] {
        let mut parts = p.trim_start_matches("palisade-").splitn(2, '-');
        let (kind, name) = (parts.next().unwrap(), parts.next().unwrap());
        let row = list.lines().find(|l| l.split_whitespace().take(2).eq([kind, name]));
        let row = row.unwrap_or_else(|| panic!("{kind} {name} is not listed:\n{list}"));
        assert_eq!(row.split_whitespace().nth(2), Some(api.to_string().as_str()), "{row}");
        assert!(row.ends_with(&format!("libpalisade_{kind}_{name}.so")), "{row}");
    }

    // A cluster from the installed files only.
    let c = Cluster::start(
        "packages",
        ClusterSpec { installed_bin_dir: Some(PathBuf::from("/usr/bin")), ..ClusterSpec::default() },
    );
    let leader = c.leader().unwrap();
    let replicas = c.wait_streaming(&leader, 2, Duration::from_secs(60));
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    let build = target.parent().unwrap().to_path_buf();
    for n in &c.nodes {
        let pid = n.daemon_pid().unwrap();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(exe, Path::new("/usr/bin/palisade"), "{}", n.name);
        let log = n.log();
        assert!(
            log.contains("from /usr/bin/../lib/palisade/plugins"),
            "{}: plugins not from the packages:\n{log}",
            n.name
        );
        assert!(!log.contains(&build.display().to_string()), "{}: the build directory is used:\n{log}", n.name);
        // The configuration needs nothing that is not installed.
        let needs = run(Command::new("/usr/bin/palisade").arg("--list-plugins").arg(&n.config));
        assert!(needs.contains("every plugin it needs is installed"), "{needs}");
    }
    // palisadectl from the package, with the installed plugins.
    let members = run(Command::new("/usr/bin/palisadectl")
        .arg("-c")
        .arg(&c.nodes[0].config)
        .args(["list", "-f", "json"])
        .env_remove("PALISADE_PLUGIN_DIR"));
    assert_eq!(members.matches("\"streaming\"").count(), 2, "{members}");
    drop(c);

    // Purge: every file the packages installed is gone.
    drop(_purge);
    for p in PACKAGES {
        assert!(!installed(p), "{p} is still installed");
    }
    let left: Vec<&PathBuf> = owned.iter().filter(|f| f.exists()).collect();
    assert!(left.is_empty(), "left after dpkg --purge: {left:?}");
    assert!(!Path::new("/usr/lib/palisade").exists(), "/usr/lib/palisade is left after dpkg --purge");
    assert!(!Path::new(MARKER).exists());
}

/// A unit file's shape: sections in brackets, `Key=value` lines, comments.
fn unit_parses(text: &str) -> bool {
    let mut section = false;
    text.lines().map(str::trim).all(|l| {
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            true
        } else if l.starts_with('[') && l.ends_with(']') {
            section = true;
            true
        } else {
            section
                && l.split_once('=').is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
        }
    })
}
