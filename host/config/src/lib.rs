//! Patroni-compatible configuration for palisade: the YAML file (or a
//! directory of files, or `PATRONI_CONFIGURATION`), the `PATRONI_*`
//! environment, legacy spellings, validation that reports every problem
//! with its key path, the dynamic configuration from the DCS
//! ([`GlobalConfig`]) and the merge of both into what PostgreSQL runs with
//! ([`effective_postgresql`]).
//!
//! Architecture invariant: this crate does no IO except reading the
//! configuration file(s) it is given (in [`source`]); the environment is
//! passed in as a map. It must never depend on tokio, on the plugin ABI
//! (`palisade-plugin-api`, abi_stable) or on any other palisade crate.
//!
//! Layout: [`yaml`] (YAML to JSON as PyYAML reads it), [`values`]
//! (Patroni's value parsers), [`env`] (the environment), [`source`]
//! (files, merging), [`legacy`] (old spellings), `check`, `local`, `pg`
//! and `dcs` (typed reading and validation), [`dynamic`] (the DCS
//! configuration), [`params`] (parameters Patroni controls), [`effective`]
//! (the merge), [`cache`] (JSON text for the DCS and `patroni.dynamic.json`),
//! [`patch`] (merging a change into the dynamic configuration), [`unacted`]
//! (the settings accepted but not acted on yet).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub mod cache;
mod check;
mod dcs;
pub mod dynamic;
pub mod effective;
pub mod env;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod hooks;
pub mod legacy;
pub mod limits;
mod local;
pub mod params;
pub mod patch;
mod pg;
pub mod source;
pub mod standby;
pub mod types;
pub mod unacted;
pub mod values;
pub mod yaml;

pub use cache::{from_cache_json, to_cache_json, to_dcs_json, CACHE_FILE_NAME};
pub use dcs::DCS_KINDS;
pub use effective::{effective_postgresql, effective_postgresql_for_role, server_parameters, OverrideRole};
pub use hooks::{Hook, DEFAULT_HOOK_TIMEOUT, HOOK_EVENTS};
pub use local::DEFAULT_LOG_FORMAT;
pub use patch::patch_config;
pub use standby::StandbyCluster;
pub use types::*;
pub use unacted::{not_acted_on, NotActedOn, NOT_ACTED_ON};

/// A loaded configuration and what is worth telling the user about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub config: LocalConfig,
    pub warnings: Vec<ConfigWarning>,
}

/// Loads the local configuration the daemon runs with.
///
/// `path` is a YAML file or a directory of `*.yml`/`*.yaml` files (merged in
/// sorted order, later files overriding key by key), with the `PATRONI_*`
/// variables of `env` patched over it. Without a path, the whole YAML may be
/// in `PATRONI_CONFIGURATION` (the other variables are then ignored), else
/// the configuration is built from the variables alone.
///
/// Every problem found is returned, each with its dotted key path.
pub fn load(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Loaded, Vec<ConfigError>> {
    load_for(path, env, local::Purpose::Daemon)
}

/// Like [`load`], for control tools (palisadectl): only `scope` is
/// required; the DCS section, `name`, `restapi` and `postgresql` may be
/// absent (then [`LocalConfig::dcs`] is `None` and placeholders fill the
/// rest). Values that are present are still checked.
pub fn load_for_ctl(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Loaded, Vec<ConfigError>> {
    load_for(path, env, local::Purpose::Ctl)
}

fn load_for(
    path: Option<&Path>,
    env: &BTreeMap<String, String>,
    purpose: local::Purpose,
) -> Result<Loaded, Vec<ConfigError>> {
    let mut warnings = Vec::new();
    let mut config = source::gather(path, env, &mut warnings)?;
    if config.is_empty() {
        return Err(vec![ConfigError {
            path: String::new(),
            message: "the configuration is empty: give a file, PATRONI_CONFIGURATION or PATRONI_* variables".into(),
        }]);
    }
    legacy::normalize(&mut config, &mut warnings);
    let mut ck = check::Checker::default();
    let built = local::build(config, env, purpose, &mut ck);
    warnings.append(&mut ck.warnings);
    match built {
        Some(config) if ck.errors.is_empty() => Ok(Loaded { config, warnings }),
        _ if ck.errors.is_empty() => Err(vec![ConfigError { path: String::new(), message: UNSPECIFIC.into() }]),
        _ => Err(ck.errors),
    }
}

/// The error of a configuration refused without a specific problem (a bug:
/// every refusal should say what is wrong, which the fuzzers check).
pub const UNSPECIFIC: &str = "the configuration could not be read (no specific problem was found; please report this)";

/// `palisade --validate-config FILE`: the warnings when the file is valid,
/// every error otherwise.
pub fn validate_file(path: &Path, env: &BTreeMap<String, String>) -> Result<Vec<ConfigWarning>, Vec<ConfigError>> {
    load(Some(path), env).map(|loaded| loaded.warnings)
}

/// The dynamic configuration a node that initialises the cluster writes to
/// the DCS `config` key: `bootstrap.dcs` as written (Patroni writes this
/// section, not merged with defaults; with Citus, `synchronous_mode`
/// defaults to `quorum`). Empty when there is no `bootstrap` section.
/// Serialise it with [`to_dcs_json`].
pub fn dynamic_from_bootstrap(local: &LocalConfig) -> Map<String, Value> {
    local.bootstrap.as_ref().map(|b| b.dcs.clone()).unwrap_or_default()
}

/// What a path in the configuration should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// A directory (`postgresql.bin_dir`, `log.dir`).
    Directory,
    /// An executable program (`postgresql.bin_dir` + a `bin_name`).
    Executable,
    /// An existing file (`restapi.certfile`, `postgresql.custom_conf`...).
    File,
}

/// A filesystem check the configuration implies. This crate does no IO:
/// `palisade --validate-config` runs these and reports failures as
/// warnings, so that a configuration can be validated on another machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathCheck {
    /// The configuration key the path comes from.
    pub key: String,
    pub path: PathBuf,
    pub kind: PathKind,
}

/// The filesystem checks worth making for `local` (see [`PathCheck`]).
/// Programs are only listed when `postgresql.bin_dir` is set (otherwise
/// they are searched in `PATH`); `pg_rewind` is left out as Patroni does.
pub fn paths_to_check(local: &LocalConfig) -> Vec<PathCheck> {
    let mut out = Vec::new();
    let pg = &local.postgresql;
    if let Some(bin_dir) = &pg.bin_dir {
        out.push(PathCheck { key: "postgresql.bin_dir".into(), path: bin_dir.clone(), kind: PathKind::Directory });
        let names = &pg.bin_name;
        for (key, name) in [
            ("pg_ctl", &names.pg_ctl),
            ("initdb", &names.initdb),
            ("pg_controldata", &names.pg_controldata),
            ("pg_basebackup", &names.pg_basebackup),
            ("postgres", &names.postgres),
            ("pg_isready", &names.pg_isready),
        ] {
            out.push(PathCheck {
                key: format!("postgresql.bin_name.{key}"),
                path: bin_dir.join(name),
                kind: PathKind::Executable,
            });
        }
    }
    if let Some(custom) = &pg.custom_conf {
        out.push(PathCheck { key: "postgresql.custom_conf".into(), path: custom.clone(), kind: PathKind::File });
    }
    if let Some(dir) = &local.log.dir {
        out.push(PathCheck { key: "log.dir".into(), path: dir.clone(), kind: PathKind::Directory });
    }
    let api = &local.restapi;
    for (key, file) in [("certfile", &api.certfile), ("keyfile", &api.keyfile), ("cafile", &api.cafile)] {
        if let Some(f) = file {
            out.push(PathCheck { key: format!("restapi.{key}"), path: f.clone(), kind: PathKind::File });
        }
    }
    out
}
