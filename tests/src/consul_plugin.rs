//! The Consul plugin (`dcs-consul`), loaded through the real loader, on a
//! Consul test double of its own (`tests/doubles/consul`, not a real
//! agent): the [`DcsFixture`] the conformance suite runs against, and the
//! building blocks of the plugin's own tests.
//!
//! The double is started with `session_ttl_min` of one second, so that the
//! short test `ttl` (sessions of `ttl / 2`) is accepted, as a real agent
//! configured that way would.

use std::sync::{Mutex, MutexGuard};

use palisade_plugin_api::{Dcs, DcsParams, DcsTiming};

use crate::conformance::DcsFixture;
use crate::consul::{ConsulOptions, ConsulServer, RawConsul};
use crate::plugins::PluginCluster;

/// The options every Consul test starts its double with: sessions as short
/// as the tests' timings need.
pub fn test_options() -> ConsulOptions {
    ConsulOptions { session_ttl_min: Some("1s".into()), ..ConsulOptions::default() }
}

pub struct ConsulFixture {
    consul: Mutex<ConsulServer>,
    cluster: PluginCluster,
    raw: RawConsul,
}

/// A full key (`/service/demo/leader`) as Consul names it (no leading slash).
pub fn consul_key(key: &str) -> &str {
    key.trim_start_matches('/')
}

impl ConsulFixture {
    /// A new double (named after `label`) and the plugin, scope `demo` in
    /// namespace `/service/`.
    pub fn start(label: &str) -> Self {
        Self::start_with(label, test_options())
    }

    pub fn start_with(label: &str, options: ConsulOptions) -> Self {
        let consul = ConsulServer::start_with(label, options);
        let raw = consul.raw();
        ConsulFixture { consul: Mutex::new(consul), cluster: PluginCluster::open("consul"), raw }
    }

    pub fn consul(&self) -> MutexGuard<'_, ConsulServer> {
        self.consul.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A raw client of the same double.
    pub fn raw(&self) -> &RawConsul {
        &self.raw
    }

    /// The `consul:` section pointing at this double.
    pub fn section_json(&self) -> String {
        let mut section = serde_json::json!({"host": self.consul().host_port()});
        if let Some(token) = &self.raw.token {
            section["token"] = serde_json::json!(token);
        }
        section.to_string()
    }

    pub fn params(&self, member: &str, group: Option<i32>) -> DcsParams {
        self.params_with(member, group, self.section_json())
    }
}

impl std::ops::Deref for ConsulFixture {
    type Target = PluginCluster;

    fn deref(&self) -> &PluginCluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for ConsulFixture {
    fn deref_mut(&mut self) -> &mut PluginCluster {
        &mut self.cluster
    }
}

impl DcsFixture for ConsulFixture {
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
        // The raw client sends text: bytes that are not UTF-8 go as their
        // lossy text (the suite accepts either).
        let full = format!("{}{key}", self.prefix());
        assert!(self.raw.put(consul_key(&full), &String::from_utf8_lossy(value)), "PUT {full}");
    }

    fn read_raw(&self, key: &str) -> Option<Vec<u8>> {
        let full = format!("{}{key}", self.prefix());
        self.raw.get(consul_key(&full)).map(|kv| kv.value)
    }

    fn stop_store(&self) {
        self.consul().stop();
    }

    fn start_store(&self) {
        self.consul().start_again();
    }

    fn freeze_store(&self) {
        self.consul().freeze();
    }

    fn thaw_store(&self) {
        self.consul().thaw();
    }

    fn new_dcs_in_other_scope(&self, member: &str) -> Option<Box<dyn Dcs>> {
        let mut params = self.params(member, None);
        params.scope = format!("{}2", self.scope);
        Some(self.dcs_with(params))
    }
}
