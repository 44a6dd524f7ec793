//! Loader test fixture: a DCS plugin whose constructor logs one line and
//! whose every operation panics. The host must turn each panic into an error
//! and keep running.
#![allow(non_local_definitions)]

use std::time::Duration;

use palisade_plugin_api::*;

pub struct Panicky;

impl Panicky {
    fn new(params: DcsParams) -> PluginResult<Self> {
        tracing::info!("constructed for scope {}", params.scope);
        tracing::warn!(member = %params.name, "this plugin panics on every call");
        Ok(Panicky)
    }
}

impl Dcs for Panicky {
    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        panic!("get_cluster exploded on purpose")
    }
    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        panic!("attempt_to_acquire_leader exploded on purpose")
    }
    fn update_leader(&self, _: Option<&LeaderKey>) -> PluginResult<bool> {
        panic!("update_leader exploded on purpose")
    }
    fn take_leader(&self) -> PluginResult<bool> {
        panic!("take_leader exploded on purpose")
    }
    fn delete_leader(&self, _: Option<&LeaderKey>) -> PluginResult<bool> {
        panic!("delete_leader exploded on purpose")
    }
    fn initialize(&self, _: bool, _: &str) -> PluginResult<bool> {
        panic!("initialize exploded on purpose")
    }
    fn cancel_initialization(&self) -> PluginResult<bool> {
        panic!("cancel_initialization exploded on purpose")
    }
    fn touch_member(&self, _: &str) -> PluginResult<bool> {
        panic!("touch_member exploded on purpose")
    }
    fn set_config_value(&self, _: &str, _: Option<&str>) -> PluginResult<bool> {
        panic!("set_config_value exploded on purpose")
    }
    fn set_failover_value(&self, _: &str, _: Option<&str>) -> PluginResult<bool> {
        panic!("set_failover_value exploded on purpose")
    }
    fn set_sync_state_value(&self, _: &str, _: Option<&str>) -> PluginResult<Option<String>> {
        panic!("set_sync_state_value exploded on purpose")
    }
    fn delete_sync_state(&self, _: Option<&str>) -> PluginResult<bool> {
        panic!("delete_sync_state exploded on purpose")
    }
    fn set_history_value(&self, _: &str) -> PluginResult<bool> {
        panic!("set_history_value exploded on purpose")
    }
    fn write_status(&self, _: &str) -> PluginResult<bool> {
        panic!("write_status exploded on purpose")
    }
    fn write_failsafe(&self, _: &str) -> PluginResult<bool> {
        panic!("write_failsafe exploded on purpose")
    }
    fn delete_cluster(&self) -> PluginResult<bool> {
        panic!("delete_cluster exploded on purpose")
    }
    fn set_timing(&self, _: DcsTiming) -> PluginResult<()> {
        panic!("set_timing exploded on purpose")
    }
    fn watch(&self, _: Option<&str>, _: Duration) -> PluginResult<bool> {
        panic!("watch exploded on purpose")
    }
    fn get_mpp_groups(&self) -> PluginResult<std::collections::BTreeMap<i32, DcsSnapshot>> {
        panic!("get_mpp_groups exploded on purpose")
    }
}

palisade_plugin_api::export_plugin!(dcs, "panicky", Panicky::new);
