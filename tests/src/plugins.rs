//! Plugins under test are loaded the way the daemon loads them: through
//! `palisade_plugin_api::host::open` on the built `.so`.

use std::path::PathBuf;
use std::time::Duration;

use palisade_plugin_api::host::{open, OpenedPlugin};
use palisade_plugin_api::{Dcs, DcsParams, DcsTiming, PluginKind, PluginResult};
use palisade_test_support::target_dir;

/// `target/<profile>/libpalisade_<kind>_<name>.so`; panics with what to do
/// when it has not been built.
pub fn plugin_file(kind: PluginKind, name: &str) -> PathBuf {
    let path = target_dir().join(format!("libpalisade_{kind}_{name}.so"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` (plugins are cdylibs the tests load at run time)",
        path.display()
    );
    path
}

/// Open the DCS plugin `name` through the real loader.
pub fn open_dcs_plugin(name: &str) -> OpenedPlugin {
    let path = plugin_file(PluginKind::Dcs, name);
    open(&path, PluginKind::Dcs, Some(name)).unwrap_or_else(|e| panic!("load {}: {e}", path.display()))
}

/// Short timings for tests: leases of a few seconds, quick retries.
pub fn test_timing() -> DcsTiming {
    DcsTiming { ttl: Duration::from_secs(4), loop_wait: Duration::from_secs(1), retry_timeout: Duration::from_secs(5) }
}

/// What every DCS plugin fixture shares: the plugin, opened through the real
/// loader, and the cluster its clients are made for (scope `demo` in
/// namespace `/service/`, [`test_timing`]). A fixture adds its store and
/// the plugin's section, and dereferences to this.
pub struct PluginCluster {
    plugin: OpenedPlugin,
    name: &'static str,
    pub namespace: String,
    pub scope: String,
    pub timing: DcsTiming,
}

impl PluginCluster {
    /// Open the DCS plugin `name`.
    pub fn open(name: &'static str) -> Self {
        PluginCluster {
            plugin: open_dcs_plugin(name),
            name,
            namespace: "/service/".into(),
            scope: "demo".into(),
            timing: test_timing(),
        }
    }

    /// The parameters of member `member` (in Citus group `group`) with the
    /// plugin's section `section_json`.
    pub fn params_with(&self, member: &str, group: Option<i32>, section_json: String) -> DcsParams {
        DcsParams {
            scope: self.scope.clone(),
            namespace: self.namespace.clone(),
            name: member.to_string(),
            group,
            timing: self.timing,
            section_json,
        }
    }

    /// A plugin instance with explicit parameters.
    pub fn dcs_with(&self, params: DcsParams) -> Box<dyn Dcs> {
        self.plugin.new_dcs(params).unwrap_or_else(|e| panic!("construct the {} plugin: {e}", self.name))
    }

    /// Construct the plugin without panicking, to see its errors.
    pub fn plugin_new_dcs(&self, params: DcsParams) -> PluginResult<Box<dyn Dcs>> {
        self.plugin.new_dcs(params)
    }

    /// `/<namespace>/<scope>/`, the prefix Patroni uses.
    pub fn prefix(&self) -> String {
        format!("{}{}/", self.namespace, self.scope)
    }
}
