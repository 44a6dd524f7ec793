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
