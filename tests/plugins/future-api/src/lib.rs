//! Loader test fixture: a callback plugin built with the right layout but
//! claiming the next plugin-api version. The loader must refuse it.
#![allow(non_local_definitions)]

use palisade_plugin_api::*;

pub struct Future;

impl Future {
    fn new(_: PluginParams) -> PluginResult<Self> {
        Ok(Future)
    }
}

impl Callback for Future {
    fn on_event(&self, event: &CallbackEvent) -> PluginResult<()> {
        Err(PluginError::other(format!("{} must never be delivered to a refused plugin", event.action)))
    }
}

palisade_plugin_api::export_plugin!(callback, "future", Future::new, api_version = API_VERSION + 1);
