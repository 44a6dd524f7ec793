//! Plugin loading: every problem of a configuration reported
//! at once, and a panicking DCS plugin turned into a DCS error the loop can
//! live with.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use palisade_plugin_api::ErrorKind;
use palisade_plugin_host::dcs::{DcsClient, DcsError};
use palisade_plugin_host::plugins;
use palisade_test_support::{target_dir, Staging};

fn config(staging: &Staging, dcs: &str, extra: &str) -> palisade_config::LocalConfig {
    let yaml = format!(
        "scope: demo\nname: n1\n\
         restapi:\n  listen: 127.0.0.1:8008\n\
         {dcs}:\n  hosts: 127.0.0.1:2379\n\
         postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /tmp/x\n  authentication:\n    superuser:\n      username: postgres\n    \
         replication:\n      username: replicator\n{extra}"
    );
    let path = staging.write("p.yml", &yaml, 0o644);
    palisade_config::load(Some(&path), &BTreeMap::new()).unwrap().config
}

fn timing() -> palisade_plugin_api::DcsTiming {
    plugins::timing(Duration::from_secs(30), Duration::from_secs(10), Duration::from_secs(2))
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let staging = Staging::new("load-many");
    let dir = staging.dir("plugins", 0o755);
    // A text file where the callback plugin should be, a DCS plugin in the
    // place of a replica method, no DCS plugin at all, and no `command`
    // plugin to run `pgbackrest` (a method without a command of its own
    // runs its name as the command, as in Patroni).
    staging.write("plugins/libpalisade_callback_script.so", "not a library\n", 0o644);
    staging.install(&target_dir().join("libpalisade_dcs_panicky.so"), "plugins/libpalisade_replica_basebackup.so");
    let cfg = config(
        &staging,
        "zookeeper",
        "  callbacks:\n    on_start: /bin/true\n  create_replica_methods:\n    - basebackup\n    - pgbackrest\n",
    );
    let problems = match plugins::load(&cfg, &dir, timing()) {
        Ok(_) => panic!("loading must fail"),
        Err(p) => p,
    };
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 4, "{text:#?}");
    assert!(text[0].ends_with("libpalisade_dcs_zookeeper.so: no such plugin file"), "{}", text[0]);
    assert!(
        text[1].contains("libpalisade_replica_basebackup.so: plugin 'panicky' is a dcs plugin, but a replica plugin"),
        "{}",
        text[1]
    );
    assert!(text[2].ends_with("libpalisade_replica_command.so: no such plugin file"), "{}", text[2]);
    assert!(text[3].contains("libpalisade_callback_script.so: not a palisade plugin"), "{}", text[3]);
}

#[test]
fn a_dcs_plugin_that_panics_is_an_error_not_a_crash() {
    let staging = Staging::new("load-panicky");
    staging.install(&target_dir().join("libpalisade_dcs_panicky.so"), "plugins/libpalisade_dcs_panicky.so");
    let cfg = config(&staging, "etcd3", "");
    let mut cfg = cfg;
    cfg.dcs = Some(palisade_config::DcsSection { kind: "panicky".into(), section: serde_json::Map::new() });
    cfg.postgresql.create_replica_methods.clear();
    let loaded = plugins::load(&cfg, &staging.path().join("plugins"), timing()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dcs = DcsClient::new(loaded.dcs, Duration::from_secs(2));
        for _ in 0..3 {
            match dcs.get_cluster().await {
                Err(DcsError::Plugin("get_cluster", e)) => {
                    assert_eq!(e.kind, ErrorKind::Panic);
                    assert!(e.message.contains("exploded on purpose"));
                }
                other => panic!("expected a plugin error, got {:?}", other.map(|_| ())),
            }
        }
        assert!(dcs.touch_member("{}".into()).await.is_err());
    });
}

/// A standby cluster's own replica methods are loaded after those of
/// `postgresql.create_replica_methods`, once each, with their
/// `postgresql.<method>` section.
#[test]
fn a_standby_clusters_methods_are_loaded_too() {
    let staging = Staging::new("load-standby");
    for p in ["dcs_panicky", "replica_basebackup", "replica_pgbackrest"] {
        staging.install(&target_dir().join(format!("libpalisade_{p}.so")), &format!("plugins/libpalisade_{p}.so"));
    }
    let mut cfg = config(&staging, "etcd3", "  pgbackrest:\n    stanza: main\n");
    cfg.dcs = Some(palisade_config::DcsSection { kind: "panicky".into(), section: serde_json::Map::new() });
    let dir = staging.path().join("plugins");
    let methods = |loaded: &plugins::Plugins| loaded.replicas.iter().map(|r| r.method.clone()).collect::<Vec<_>>();
    let loaded = plugins::load(&cfg, &dir, timing()).unwrap();
    assert_eq!(methods(&loaded), ["basebackup"]);
    let also = ["pgbackrest".to_string(), "basebackup".to_string()];
    let loaded = plugins::load_with(&cfg, &dir, timing(), &also).unwrap();
    assert_eq!(methods(&loaded), ["basebackup", "pgbackrest"]);
    assert!(loaded.replicas[1].archive.restore_command.as_deref().is_some_and(|c| c.contains("--stanza=main")));
}
