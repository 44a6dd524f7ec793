//! The DCS conformance suite (`palisade_tests::conformance`) against each
//! DCS plugin, loaded from `target/<profile>` through the real loader with
//! a real store of its own per test, and against the reference in-memory
//! DCS (`palisade-dcs-memory`). Build the plugins first:
//! `cargo build --workspace`.

mod etcd3 {
    palisade_tests::dcs_conformance_tests!(|| palisade_tests::etcd3::Etcd3Fixture::start("conformance"));
}

mod zookeeper {
    palisade_tests::dcs_conformance_tests!(|| palisade_tests::zookeeper::ZooKeeperFixture::start("conformance"));
}

/// The ZooKeeper plugin with Exhibitor discovery (a test double of the endpoint).
mod exhibitor {
    palisade_tests::dcs_conformance_tests!(|| palisade_tests::exhibitor::ExhibitorFixture::start("conformance"));
}

mod etcd2 {
    palisade_tests::dcs_conformance_tests!(|| palisade_tests::etcd2::Etcd2Fixture::start("conformance-v2"));
}

/// The reference in-memory DCS the daemon's unit tests run on.
mod memory {
    palisade_tests::dcs_conformance_tests!(palisade_tests::memory::MemoryFixture::start);
}

/// The Consul plugin on the Consul test double (not a real agent).
mod consul {
    palisade_tests::dcs_conformance_tests!(|| palisade_tests::consul_plugin::ConsulFixture::start("conformance"));
}

/// The Kubernetes plugin on the Kubernetes API test double, in each mode.
/// Five checks of the shared suite are about stores that keep each key as
/// one value of any shape and size (byte-exact values, 256 KiB values,
/// garbage at any key, Patroni's byte layout of every key); on Kubernetes
/// the failover, sync and status keys are several annotations each, and
/// an object's annotations are limited to 256 KiB. The plugin's own tests
/// (`tests/tests/kubernetes_plugin.rs`) check those parts the Kubernetes way.
macro_rules! kubernetes_conformance {
    ($mode:expr) => {
        palisade_tests::dcs_conformance_tests!(@each || palisade_tests::kubernetes_plugin::KubernetesFixture::start("conformance", $mode);
            only_one_acquirer_wins,
            update_leader_by_a_non_owner_fails,
            delete_leader_only_by_the_owner,
            keys_expire_unless_renewed,
            initialize_is_created_once_and_can_be_cancelled,
            config_is_compare_and_set,
            sync_is_compare_and_set,
            failover_is_compare_and_set,
            config_race_has_one_winner,
            sync_race_has_one_winner,
            sync_delete_race_has_one_winner,
            failover_race_has_one_winner,
            delete_cluster_removes_every_key,
            delete_cluster_keeps_other_scopes,
            hundred_members_in_one_snapshot,
            watch_wakes_when_the_leader_is_deleted,
            watch_wakes_when_the_leader_changes,
            watch_wakes_when_the_leader_is_written_behind_its_back,
            watch_wakes_when_the_leader_expires,
            watch_sees_a_change_made_before_it_started,
            watch_times_out_without_a_change,
            store_down_gives_dcs_errors_then_recovers,
            frozen_store_gives_dcs_errors_then_recovers,
        );
    };
}

mod kubernetes {
    use palisade_tests::kubernetes_plugin::PluginMode;
    kubernetes_conformance!(PluginMode::ConfigMaps);
}

mod kubernetes_endpoints {
    use palisade_tests::kubernetes_plugin::PluginMode;
    kubernetes_conformance!(PluginMode::Endpoints);
}

/// The Palisade extension: the lock on a coordination.k8s.io/v1 Lease.
mod kubernetes_lease {
    use palisade_tests::kubernetes_plugin::PluginMode;
    kubernetes_conformance!(PluginMode::Lease);
}
