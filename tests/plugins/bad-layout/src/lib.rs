//! Loader test fixture: a library exporting a root module with palisade's
//! module name and version but another layout, as a plugin built against a
//! changed plugin-api would. abi_stable's layout check must refuse it and
//! the loader must say so in one short line.
#![allow(non_local_definitions)]

use abi_stable::{
    library::RootModule, prefix_type::PrefixTypeTrait, sabi_types::VersionStrings, std_types::RString, StableAbi,
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(option))]
pub struct PluginMod {
    #[sabi(last_prefix_field)]
    pub info: extern "C" fn() -> RString,
}

impl RootModule for PluginModRef {
    abi_stable::declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "palisade_plugin";
    const NAME: &'static str = "palisade_plugin";
    const VERSION_STRINGS: VersionStrings = abi_stable::package_version_strings!();
}

extern "C" fn info() -> RString {
    "a root module from another world".into()
}

#[abi_stable::export_root_module]
pub fn root() -> PluginModRef {
    PluginMod { info }.leak_into_prefix()
}
