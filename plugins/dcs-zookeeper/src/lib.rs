//! The ZooKeeper DCS plugin: Patroni's `zookeeper` store, as a `cdylib` the
//! host loads through `palisade-plugin-api`. Everything but reading the
//! `zookeeper:` section's server list lives in `palisade-zookeeper-core`,
//! which the Exhibitor plugin shares.
//!
//! This crate depends on `palisade-plugin-api` and `palisade-zookeeper-core`
//! only, never on a host crate.
#![allow(non_local_definitions)]

use std::sync::Arc;

use palisade_plugin_api::sdk::settings::error;
use palisade_plugin_api::{DcsParams, PluginResult};
use palisade_zookeeper_core::{Fixed, Settings, ZooKeeper};

const SECTION: &str = "zookeeper";

fn new(params: DcsParams) -> PluginResult<ZooKeeper> {
    let section: serde_json::Value = serde_json::from_str(&params.section_json)
        .map_err(|e| error(SECTION, "", format!("is not valid JSON: {e}")))?;
    let settings = Settings::parse(SECTION, &section, true)?;
    let ensemble = Arc::new(Fixed(settings.connect_string()));
    ZooKeeper::new(SECTION, &params, settings, ensemble)
}

palisade_plugin_api::export_plugin!(dcs, "zookeeper", new);
