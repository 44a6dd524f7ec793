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
/// The failover, sync and status keys are annotations there, as Patroni
/// keeps them: the fixture says so (`structured_keys`), and those keys are
/// compared as JSON rather than bytes.
macro_rules! kubernetes_conformance {
    ($mode:expr) => {
        palisade_tests::dcs_conformance_tests!(|| palisade_tests::kubernetes_plugin::KubernetesFixture::start(
            "conformance",
            $mode
        ));
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
