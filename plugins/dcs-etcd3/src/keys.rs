//! Where each key of a cluster lives: Patroni's layout, shared by every DCS
//! plugin (see `palisade_plugin_api::sdk::dcs`).

pub(crate) use palisade_plugin_api::sdk::dcs::names::*;
pub(crate) use palisade_plugin_api::sdk::dcs::Keys;
