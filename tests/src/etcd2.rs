//! The etcd v2 plugin (`dcs-etcd`), loaded through the real loader, on a
//! real etcd of its own serving the v2 API: the [`DcsFixture`] the
//! conformance suite runs against, and the building blocks of the
//! plugin's own tests.

use std::sync::{Mutex, MutexGuard};

use palisade_plugin_api::{Dcs, DcsParams, DcsTiming};

use crate::conformance::DcsFixture;
use crate::etcd::{EtcdServer, RawV2Client};
use crate::plugins::PluginCluster;

pub struct Etcd2Fixture {
    etcd: Mutex<EtcdServer>,
    cluster: PluginCluster,
    raw: RawV2Client,
}

impl Etcd2Fixture {
    /// A new etcd (named after `label`) and the plugin, scope `demo` in
    /// namespace `/service/`.
    pub fn start(label: &str) -> Self {
        let etcd = EtcdServer::start(label);
        let raw = etcd.raw_v2();
        Etcd2Fixture { etcd: Mutex::new(etcd), cluster: PluginCluster::open("etcd"), raw }
    }

    pub fn etcd(&self) -> MutexGuard<'_, EtcdServer> {
        self.etcd.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A raw v2 client of the same etcd.
    pub fn raw(&self) -> &RawV2Client {
        &self.raw
    }

    /// The `etcd:` section pointing at this etcd.
    pub fn section_json(&self) -> String {
        format!(r#"{{"host":"{}"}}"#, self.etcd().host_port())
    }

    pub fn params(&self, member: &str, group: Option<i32>) -> DcsParams {
        self.params_with(member, group, self.section_json())
    }
}

/// The plugin and the cluster its clients are made for (`params_with`,
/// `dcs_with`, `plugin_new_dcs`, `prefix`, `scope`, `timing`...).
impl std::ops::Deref for Etcd2Fixture {
    type Target = PluginCluster;

    fn deref(&self) -> &PluginCluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for Etcd2Fixture {
    fn deref_mut(&mut self) -> &mut PluginCluster {
        &mut self.cluster
    }
}

impl DcsFixture for Etcd2Fixture {
    fn new_dcs(&self, member: &str) -> Box<dyn Dcs> {
        self.dcs_with(self.params(member, None))
    }

    fn new_dcs_in_group(&self, member: &str, group: i32) -> Box<dyn Dcs> {
        self.dcs_with(self.params(member, Some(group)))
    }

    fn timing(&self) -> DcsTiming {
        self.timing
    }

    fn write_raw(&self, key: &str, value: &[u8]) {
        self.raw.put(&format!("{}{key}", self.prefix()), value);
    }

    fn read_raw(&self, key: &str) -> Option<Vec<u8>> {
        self.raw.get(&format!("{}{key}", self.prefix())).map(|n| n.value)
    }

    fn stop_store(&self) {
        self.etcd().stop();
    }

    fn start_store(&self) {
        self.etcd().start_again();
    }

    fn freeze_store(&self) {
        self.etcd().freeze();
    }

    fn thaw_store(&self) {
        self.etcd().thaw();
    }
}
