//! The Citus MPP plugin (`libpalisade_mpp_citus.so`): what Patroni's Citus
//! handler (`patroni/postgresql/mpp/citus.py`) does, behind the host's
//! [`Mpp`] contract.
//!
//! - every node: the PostgreSQL parameters Citus needs ([`gucs`]) and, after
//!   initdb, the `citus` extension in `citus.database` ([`db`]);
//! - the coordinator's primary: `pg_dist_node` kept in line with every
//!   group's primary and secondaries, with exactly the statements Patroni
//!   runs ([`dist`]), from a background thread that keeps a transaction
//!   (and so Citus's metadata lock) open from a worker's `before_demote`
//!   to its `after_promote` ([`handler`], [`worker`]).
//!
//! Like every plugin it is built against `palisade-plugin-api` only and must
//! never depend on a host crate. It owns its tokio runtime (the SDK's) for
//! tokio-postgres.
#![allow(non_local_definitions)]

mod db;
mod dist;
mod gucs;
mod handler;
mod settings;
mod sql;
mod worker;

use palisade_plugin_api::sdk::settings::kind;
use palisade_plugin_api::{MppCluster, MppLocal, MppSlot, PluginError, PluginParams, PluginResult};
use serde_json::Value;

use handler::Handler;
use settings::{Settings, COORDINATOR_GROUP};

/// The plugin: one per daemon.
pub struct Citus {
    settings: Settings,
    handler: Handler,
}

impl Citus {
    pub fn new(params: PluginParams) -> PluginResult<Self> {
        let settings = Settings::parse(&params.config_json)?;
        let handler = Handler::new(settings.clone(), params.name)?;
        tracing::debug!("citus group {} database {}", settings.group, settings.database);
        Ok(Self { settings, handler })
    }

    fn local(&self) -> PluginResult<MppLocal> {
        self.handler.local().ok_or_else(|| PluginError::other("citus: the host has not given the local connection yet"))
    }
}

impl palisade_plugin_api::Mpp for Citus {
    fn group(&self) -> i32 {
        self.settings.group
    }

    fn coordinator_group(&self) -> i32 {
        COORDINATOR_GROUP
    }

    fn set_local(&self, local: &MppLocal) -> PluginResult<()> {
        db::url_address(&local.conn_url).map_err(|e| PluginError::config(format!("conn_url: {e}")))?;
        // Checks the settings (port, sslmode) once, here.
        db::config(local, &self.settings.database, "", "Patroni citus")?;
        self.handler.set_local(local.clone());
        Ok(())
    }

    fn adjust_parameters(&self, parameters_json: &str) -> PluginResult<String> {
        let value: Value = serde_json::from_str(parameters_json)
            .map_err(|e| PluginError::other(format!("citus: the parameters are not JSON: {e}")))?;
        let Value::Object(mut parameters) = value else {
            return Err(PluginError::other(format!("citus: the parameters are {}, not a map", kind(&value))));
        };
        let local = self.handler.local();
        gucs::adjust(&mut parameters, local.as_ref().and_then(db::local_host))?;
        Ok(Value::Object(parameters).to_string())
    }

    fn bootstrap(&self) -> PluginResult<()> {
        db::bootstrap(&self.settings, &self.local()?)
    }

    fn sync_meta_data(&self, clusters: &[MppCluster]) -> PluginResult<()> {
        self.handler.sync_meta_data(clusters)
    }

    fn handle_event(&self, clusters: &[MppCluster], event_json: &str) -> PluginResult<()> {
        self.handler.handle_event(clusters, event_json)
    }

    fn on_demote(&self) {
        self.handler.on_demote()
    }

    fn schedule_cache_rebuild(&self) {
        self.handler.schedule_cache_rebuild()
    }

    fn ignore_replication_slot(&self, slot: &MppSlot, is_primary: bool) -> bool {
        self.handler.ignore_replication_slot(&slot.name, &slot.slot_type, &slot.database, &slot.plugin, is_primary)
    }
}

palisade_plugin_api::export_plugin!(mpp, "citus", Citus::new);
