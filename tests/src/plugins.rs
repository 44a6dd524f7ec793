//! Plugins under test are loaded the way the daemon loads them: through
//! `palisade_plugin_api::host::open` on the built `.so`.

use std::path::PathBuf;
use std::time::Duration;

use palisade_plugin_api::host::{open, OpenedPlugin};
use palisade_plugin_api::{DcsTiming, PluginKind};
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
