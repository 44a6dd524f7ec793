//! PostgreSQL's configuration files as Patroni writes them.
//!
//! - [`ServerParameters`]: what goes into postgresql.conf and onto the
//!   postmaster command line, built from the configuration by Patroni's rules;
//! - [`render_postgresql_conf`], [`render_lines`]: the file texts, byte for byte;
//! - [`RecoveryParams`]: standby settings (`primary_conninfo`,
//!   `primary_slot_name`...) for following a [`FollowTarget`];
//! - [`format_dsn`], [`pgpass_content`]: libpq strings and password files;
//! - [`ConfPaths`] and the file operations (base file rename, signal files,
//!   backups, postgresql.auto.conf cleaning);
//! - [`compare_with_settings`]: which changes a reload applies and which
//!   need a restart.
//!
//! Everything here but the file operations is pure.

mod conninfo;
mod files;
pub(crate) mod params;
mod pgpass;
pub mod quote;
mod recovery;
mod render;

pub use conninfo::{
    auth_params, format_dsn, primary_conninfo_params, ArchiveCommands, ConnParams, FollowTarget, RemoteSource,
};
pub use files::{
    ensure_base_conf, remove_if_exists as remove_file_if_exists, remove_recovery_files, restore_configuration_files,
    sanitize_auto_conf, save_configuration_files, write_if_changed, write_signal, ConfPaths, BASE_CONF_NAME,
};
pub use params::{
    compare_with_settings, is_recovery_parameter, value_to_string, ParamDiff, ParameterChanges, ServerParameters,
    SettingRow, CMDLINE_OPTIONS, RECOVERY_PARAMETERS,
};
pub use pgpass::{pgpass_content, write_pgpass};
pub use recovery::{build_recovery_params, RecoveryInput, RecoveryParams};
pub use render::{
    custom_bootstrap_hba, parse_rendered_conf, render_lines, render_postgresql_conf, PostgresqlConf, HEADER,
    RECOVERY_MARKER,
};
