//! The reference in-memory DCS (`palisade-dcs-memory`) as a
//! [`DcsFixture`]: the conformance suite checks that the double the
//! daemon's unit tests run on keeps the same promises as a real store.

use std::sync::Arc;

use palisade_dcs_memory::MemoryStore;
use palisade_plugin_api::{Dcs, DcsTiming};

use crate::conformance::DcsFixture;
use crate::plugins::test_timing;

pub struct MemoryFixture {
    store: Arc<MemoryStore>,
}

impl MemoryFixture {
    /// An empty store on the system clock.
    pub fn start() -> Self {
        Self { store: MemoryStore::new() }
    }
}

impl DcsFixture for MemoryFixture {
    fn new_dcs(&self, member: &str) -> Box<dyn Dcs> {
        Box::new(self.store.client(member, test_timing()))
    }

    fn new_dcs_in_group(&self, member: &str, group: i32) -> Box<dyn Dcs> {
        Box::new(self.store.client_in(Some(group), member, test_timing()))
    }

    fn timing(&self) -> DcsTiming {
        test_timing()
    }

    fn write_raw(&self, key: &str, value: &[u8]) {
        self.store.write_raw(key, value);
    }

    fn read_raw(&self, key: &str) -> Option<Vec<u8>> {
        self.store.raw(key)
    }

    fn stop_store(&self) {
        self.store.go_down();
    }

    fn start_store(&self) {
        self.store.come_back();
    }

    fn freeze_store(&self) {
        self.store.freeze();
    }

    fn thaw_store(&self) {
        self.store.come_back();
    }
}
