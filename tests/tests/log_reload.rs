//! The `log` section follows a reload, as Patroni's does: a new level and
//! layout show at once after `POST /reload`, and a `log.dir` set later
//! (SIGHUP) moves the daemon's lines into `patroni.log` there.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use palisade_test_support::{chown_to_test_user, wait_until};
use palisade_tests::cluster::{Cluster, ClusterSpec};

/// Replace node `name`'s `log` section (the harness writes
/// `log:\n  level: INFO\n`, or what an earlier call put there).
fn set_log_section(cluster: &Cluster, name: &str, old: &str, new: &str) {
    let path = &cluster.node(name).config;
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(old), "no {old:?} in {}", path.display());
    std::fs::write(path, text.replacen(old, new, 1)).unwrap();
}

#[test]
fn log_level_format_and_dir_follow_a_reload() {
    // A hook on on_reload: the daemon logs `running hook ...` at DEBUG on
    // each reload of a running PostgreSQL.
    let spec = ClusterSpec {
        nodes: 1,
        postgresql_extra: "  hooks:\n    on_reload:\n      - /bin/true\n".to_string(),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::prepare("log-reload", spec);
    cluster.start_node(0);
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    let node = cluster.node("node1");
    let hook_line = "running hook on_reload #1 `/bin/true`";

    // DEBUG and a new layout, by POST /reload.
    cluster.mark("level and format");
    let debug = "log:\n  level: DEBUG\n  format: '%(levelname)s|%(name)s|%(message)s'\n";
    set_log_section(&cluster, "node1", "log:\n  level: INFO\n", debug);
    assert_eq!(node.call("POST", "/reload", None).status, 202);
    let want_debug = format!("DEBUG|palisade_daemon::hooks|{hook_line}");
    let reloaded = wait_until(Duration::from_secs(30), || {
        let log = node.log_after("level and format");
        log.contains(&want_debug) && log.contains("INFO|palisade_daemon::runner|Reloaded configuration")
    });
    assert!(reloaded, "no {want_debug:?} after the reload:\n{}", node.log());
    let log = node.log_after("level and format");
    assert!(log.lines().any(|l| l == "INFO|palisade_daemon::runner|Reloaded configuration"), "{log}");
    // Before it: the default level and layout (no DEBUG line, no `|`).
    let before = node.log();
    let before = &before[..before.rfind("----- TEST: level and format -----").unwrap()];
    assert!(before.contains(" INFO: ") && !before.contains(" DEBUG: ") && !before.contains("|palisade"), "{before}");

    // Into files, by SIGHUP: the file appears and takes the lines.
    let dir = cluster.dir().join("logs");
    std::fs::create_dir_all(&dir).unwrap();
    chown_to_test_user(&dir);
    cluster.mark("log.dir");
    let with_dir = format!("{debug}  dir: {}\n  mode: 0600\n", dir.display());
    set_log_section(&cluster, "node1", debug, &with_dir);
    let pid = node.daemon_pid().unwrap().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let file = dir.join("patroni.log");
    // The hook runs on a worker of its own, after the reload's own line.
    let moved = wait_until(Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        text.contains("INFO|palisade_daemon::runner|Reloaded configuration") && text.contains(&want_debug)
    });
    assert!(moved, "{} never got the lines; the daemon's log:\n{}", file.display(), node.log());
    let in_file = std::fs::read_to_string(&file).unwrap();
    assert!(!in_file.lines().any(|l| l.starts_with("ERROR|")), "{in_file}");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The daemon's stderr has no line of this reload (PostgreSQL's own
    // lines may share that file).
    let after = node.log_after("log.dir");
    assert!(!after.contains("Reloaded configuration") && !after.contains(hook_line), "{after}");
}
