//! `palisade` on the command line: version, refusing root, and
//! `--validate-config` listing every problem.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use palisade_test_support::{target_dir, Staging};

fn palisade() -> Command {
    let bin = target_dir().join("palisade");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace` first", bin.display());
    Command::new(bin)
}

#[test]
fn version() {
    let out = palisade().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("palisade {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn refuses_to_run_as_root_and_says_why() {
    if !palisade_test_support::is_root() {
        return; // only meaningful as root; CI runs as root
    }
    let staging = Staging::new("cli-root");
    let config = staging.write("p.yml", "scope: s\nname: n\n", 0o644);
    let out = palisade().arg(&config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to run as root"), "{err}");
    assert!(err.contains("PostgreSQL will not run as root"), "{err}");
}

#[test]
fn validate_config_lists_every_problem_with_its_key_path() {
    let staging = Staging::new("cli-validate");
    let bad = staging.write(
        "bad.yml",
        "scope: demo\n\
         restapi:\n  listen: not-an-address\n\
         etcd3:\n  hosts: 127.0.0.1:2379\n\
         bootstrap:\n  dcs:\n    ttl: soon\n\
         postgresql:\n  listen: 127.0.0.1:99999\n  data_dir: /tmp/x\n  authentication:\n    superuser:\n      username: postgres\n",
        0o644,
    );
    let out = palisade().arg("--validate-config").arg(&bad).output().unwrap();
    assert!(!out.status.success(), "a bad file must fail");
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in
        ["name", "restapi.listen", "bootstrap.dcs.ttl", "postgresql.listen", "postgresql.authentication.replication"]
    {
        assert!(
            text.lines().any(|l| l.starts_with("error: ") && l.contains(needle)),
            "no error naming {needle}:\n{text}"
        );
    }
    assert!(text.contains("problem(s) found"), "{text}");

    let good = staging.write(
        "good.yml",
        "scope: demo\nname: n1\n\
         restapi:\n  listen: 127.0.0.1:8008\n\
         etcd3:\n  hosts: 127.0.0.1:2379\n\
         postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /tmp/x\n  authentication:\n    superuser:\n      username: postgres\n    replication:\n      username: replicator\n",
        0o644,
    );
    let out = palisade().arg("--validate-config").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));

    let garbage = staging.write("garbage.yml", "scope: [unclosed\n  : : :\n", 0o644);
    let out = palisade().arg("--validate-config").arg(&garbage).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "no panic, a plain failure");
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty() || !String::from_utf8_lossy(&out.stderr).contains("panicked")
    );
}

#[test]
fn a_bad_configuration_never_starts_the_daemon() {
    if palisade_test_support::is_root() {
        // palisade refuses root before it reads the file; run as the test user.
        let staging = Staging::new("cli-bad-start");
        let bin = staging.install(&target_dir().join("palisade"), "palisade");
        let bad = staging.write("bad.yml", "scope: demo\nname: n1\nrestapi:\n  listen: nope\n", 0o644);
        let out = palisade_test_support::command_as_test_user(&bin).arg(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("configuration error: restapi.listen"), "{err}");
        assert!(err.contains("not starting"), "{err}");
    }
}

/// Settings palisade accepts but does not act on yet are listed, each with
/// its key and what the user does not get; a file without them lists none.
#[test]
fn validate_config_lists_settings_not_acted_on() {
    let staging = Staging::new("cli-unacted");
    let base = "scope: demo\nname: n1\n\
                restapi:\n  listen: 127.0.0.1:8008\n\
                etcd3:\n  hosts: 127.0.0.1:2379\n\
                postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /tmp/x\n  authentication:\n    superuser:\n      username: postgres\n    replication:\n      username: replicator\n";
    let file = staging.write(
        "unacted.yml",
        &format!(
            "{}bootstrap:\n  dcs:\n    synchronous_mode: on\n    standby_cluster:\n      host: 10.0.0.1\n      port: 5432\n\
             watchdog:\n  mode: required\n",
            base.replace("restapi:\n", "restapi:\n  server_tokens: minimal\n")
        ),
        0o644,
    );
    let out = palisade().arg("--validate-config").arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "accepted, with warnings:\n{text}");
    let key = "restapi.server_tokens";
    assert!(
        text.lines().any(|l| l.starts_with(&format!("warning: {key}: not acted on yet: "))),
        "{key} is not listed as not acted on:\n{text}"
    );
    // `synchronous_mode: on`, `standby_cluster` and the watchdog are acted on.
    assert!(!text.contains("warning: watchdog"), "{text}");
    assert!(!text.contains("warning: synchronous_mode"), "{text}");
    assert!(!text.contains("warning: standby_cluster"), "{text}");

    let plain = staging.write("plain.yml", base, 0o644);
    let out = palisade().arg("--validate-config").arg(&plain).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains("not acted on"), "{text}");
}

/// A Citus node whose MPP plugin is not installed does not start, and says
/// which file it lacks, next to every other missing plugin.
#[test]
fn a_citus_node_without_its_plugin_does_not_start() {
    if !palisade_test_support::is_root() {
        return; // palisade must run as the test user: only meaningful as root; CI runs as root
    }
    let staging = Staging::new("cli-citus-plugin");
    let bin = staging.install(&target_dir().join("palisade"), "palisade");
    let plugins = staging.dir("plugins", 0o755);
    let config = staging.write(
        "citus.yml",
        "scope: demo\nname: n1\nrestapi:\n  listen: 127.0.0.1:9\n\
         etcd3:\n  hosts: 127.0.0.1:9\ncitus:\n  group: 1\n  database: citus\n\
         postgresql:\n  listen: 127.0.0.1:9\n  data_dir: /tmp/palisade-cli-citus-never\n  authentication:\n    \
         superuser:\n      username: postgres\n    replication:\n      username: replicator\n",
        0o644,
    );
    let out = palisade_test_support::command_as_test_user(&bin)
        .arg(&config)
        .env("PALISADE_PLUGIN_DIR", &plugins)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("libpalisade_mpp_citus.so"), "the MPP plugin file is named:\n{err}");
    assert!(err.contains("libpalisade_dcs_etcd3.so"), "every problem is reported:\n{err}");
    assert!(err.contains("not starting: 3 plugin problem(s)"), "the DCS, basebackup and citus plugins:\n{err}");
}

/// `--list-plugins` lists the plugin directory (kind, name, API version,
/// file; a file that is not a plugin is named as unusable) and, with a
/// configuration, what it needs that is missing, with the package to
/// install; the exit status says whether anything needed is missing.
#[test]
fn list_plugins_shows_what_is_installed_and_what_is_missing() {
    let staging = Staging::new("cli-list-plugins");
    let dir = staging.dir("plugins", 0o755);
    for plugin in ["libpalisade_dcs_etcd3.so", "libpalisade_replica_basebackup.so"] {
        let built = target_dir().join(plugin);
        assert!(built.exists(), "{} is missing: run `cargo build --workspace` first", built.display());
        staging.install(&built, &format!("plugins/{plugin}"));
    }
    staging.write("plugins/libpalisade_callback_script.so", "not a library\n", 0o644);
    staging.write("plugins/README", "not a plugin file name: skipped\n", 0o644);

    let out = palisade().arg("--list-plugins").env("PALISADE_PLUGIN_DIR", &dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = |kind: &str, name: &str| {
        text.lines().find(|l| l.split_whitespace().take(2).eq([kind, name])).map(str::to_string)
    };
    let api = palisade_plugin_api::API_VERSION.to_string();
    let etcd3 = row("dcs", "etcd3").unwrap_or_else(|| panic!("no etcd3 row:\n{text}"));
    assert_eq!(etcd3.split_whitespace().nth(2), Some(api.as_str()), "{etcd3}");
    assert!(etcd3.ends_with(&dir.join("libpalisade_dcs_etcd3.so").display().to_string()), "{etcd3}");
    assert!(row("replica", "basebackup").is_some(), "{text}");
    let script = row("callback", "script").unwrap_or_else(|| panic!("no script row:\n{text}"));
    assert!(script.contains("UNUSABLE") && script.contains("not a palisade plugin"), "{script}");
    assert!(!text.contains("README"), "{text}");

    // Everything this configuration needs is there.
    let base = "scope: demo\nname: n1\nrestapi:\n  listen: 127.0.0.1:8008\netcd3:\n  hosts: 127.0.0.1:2379\n\
                postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /tmp/x\n  authentication:\n    superuser:\n      \
                username: postgres\n    replication:\n      username: replicator\n";
    let good = staging.write("good.yml", base, 0o644);
    let out = palisade().arg("--list-plugins").arg(&good).env("PALISADE_PLUGIN_DIR", &dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("every plugin it needs is installed"), "{text}");

    // A ZooKeeper section, callbacks and a Citus section need plugins that
    // are missing (or unusable): each is named with its package.
    let zk = base.replace("etcd3:", "zookeeper:")
        + "  callbacks:\n    on_start: /bin/true\n  create_replica_methods:\n    - basebackup\n    - walg\n\
           citus:\n  group: 0\n  database: citus\n";
    let bad = staging.write("bad.yml", &zk, 0o644);
    let out = palisade().arg("--list-plugins").arg(&bad).env("PALISADE_PLUGIN_DIR", &dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for needle in [
        "dcs zookeeper (for zookeeper): MISSING",
        "palisade-dcs-zookeeper package",
        "mpp citus (for citus): MISSING",
        "palisade-mpp-citus package",
        "callback script (for postgresql.callbacks): UNUSABLE",
        "replica basebackup (for postgresql.create_replica_methods): installed",
        "replica command (for postgresql.create_replica_methods: walg): MISSING",
        "note: replica method 'walg' has no command and its plugin is not installed",
        "install the palisade-replica-walg package",
        "4 needed plugin(s) missing or unusable",
    ] {
        assert!(text.contains(needle), "no '{needle}' in:\n{text}");
    }

    // `plugin_dir` in the configuration wins over the environment.
    let elsewhere = staging.write("elsewhere.yml", &format!("{base}plugin_dir: {}\n", dir.display()), 0o644);
    let out =
        palisade().arg("--list-plugins").arg(&elsewhere).env("PALISADE_PLUGIN_DIR", "/nonexistent").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(&format!("plugin directory: {}", dir.display())), "{text}");
}
