//! The DCS conformance suite (`palisade_tests::conformance`) against each
//! DCS plugin, loaded from `target/<profile>` through the real loader with
//! a real store of its own per test. Build the plugins first:
//! `cargo build --workspace`.

mod etcd3 {
    palisade_tests::dcs_conformance_tests!(|| palisade_tests::etcd3::Etcd3Fixture::start("conformance"));
}
