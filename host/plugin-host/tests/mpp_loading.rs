//! Loading the MPP plugin: `load_mpp` opens `libpalisade_mpp_citus.so`
//! for a `citus` section (build it first: `cargo build -p
//! palisade-mpp-citus`), and nothing without one.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use palisade_plugin_host::plugins;
use palisade_test_support::{target_dir, Staging};

fn config(staging: &Staging, extra: &str) -> palisade_config::LocalConfig {
    let yaml = format!(
        "scope: demo\nname: n1\n\
         restapi:\n  listen: 127.0.0.1:8008\n\
         etcd3:\n  hosts: 127.0.0.1:2379\n\
         postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /tmp/x\n  authentication:\n    superuser:\n      username: postgres\n    \
         replication:\n      username: replicator\n{extra}"
    );
    let path = staging.write("p.yml", &yaml, 0o644);
    palisade_config::load(Some(&path), &BTreeMap::new()).unwrap().config
}

#[test]
fn the_citus_plugin_is_loaded_for_a_citus_section() {
    let staging = Staging::new("load-mpp");
    let dir = staging.dir("plugins", 0o755);

    // No citus section: no MPP plugin, and no file needed.
    assert!(plugins::load_mpp(&config(&staging, ""), &dir).unwrap().is_none());

    // A citus section without the plugin file: the problem names the file.
    let with_citus = config(&staging, "citus:\n  group: 2\n  database: citus\n");
    let problems = plugins::load_mpp(&with_citus, &dir).err().unwrap();
    assert!(problems[0].to_string().ends_with("libpalisade_mpp_citus.so: no such plugin file"), "{problems:?}");

    // With the plugin: it answers with the configured group.
    staging.install(&target_dir().join("libpalisade_mpp_citus.so"), "plugins/libpalisade_mpp_citus.so");
    let mpp = plugins::load_mpp(&with_citus, &dir).unwrap().unwrap();
    assert_eq!((mpp.group(), mpp.coordinator_group()), (2, 0));

    // Another kind of plugin in its place is refused by name (in another
    // directory: a loaded library's file must not be overwritten).
    let other = staging.dir("other", 0o755);
    staging.install(&target_dir().join("libpalisade_dcs_panicky.so"), "other/libpalisade_mpp_citus.so");
    let problems = plugins::load_mpp(&with_citus, &other).err().unwrap();
    assert!(problems[0].to_string().contains("is a dcs plugin, but a mpp plugin is needed"), "{problems:?}");
}
