//! The generic custom replica-creation method: the host loads this plugin for
//! every `create_replica_methods` entry whose section has a `command`, and
//! it runs that command the way Patroni does (`--scope`, `--role`,
//! `--datadir`, `--connstring` and the section's other keys as
//! `--key=value`, unless `no_params`), in the daemon's working directory,
//! with the host's environment for child processes.
//!
//! Like every plugin it is built against `palisade-plugin-api` only and must
//! never depend on a host crate.
#![allow(non_local_definitions)]

// Shared with other plugin crates (see each file's header); not every crate
// uses every helper.
mod method;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use palisade_plugin_api::{PluginError, PluginParams, PluginResult, ReplicaMethod, ReplicaRequest};

use method::{Cluster, Method};
use palisade_plugin_api::sdk::datadir;
use palisade_plugin_api::sdk::process::Cancellable;

/// How long a cancelled command may take to exit after SIGTERM before its
/// process group is killed (Patroni waits 10 seconds too).
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// One custom replica-creation method.
pub struct CommandMethod {
    method: Method,
    /// The program's base name, for log lines.
    label: String,
    running: Cancellable,
}

impl CommandMethod {
    fn new(params: PluginParams) -> PluginResult<Self> {
        let method = Method::parse(&params.config_json)?;
        let label = method
            .words
            .first()
            .and_then(|w| Path::new(w).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "command".to_string());
        Ok(Self { method, label, running: Cancellable::default() })
    }

    /// Empty the data directory unless `keep_data` says not to (Patroni does
    /// this before the command and again after it failed).
    fn clean_unless_kept(&self, dir: &Path) -> PluginResult<()> {
        if datadir::is_empty(dir) {
            return Ok(());
        }
        if self.method.keep_data {
            tracing::info!("Leaving data directory uncleaned");
            return Ok(());
        }
        tracing::info!("Removing data directory: {}", dir.display());
        datadir::clean(dir).map_err(|e| PluginError::other(format!("cannot empty {}: {e}", dir.display())))
    }
}

impl ReplicaMethod for CommandMethod {
    fn can_work_without_leader(&self) -> bool {
        self.method.no_leader
    }

    fn create_replica(&self, request: &ReplicaRequest) -> PluginResult<()> {
        let _session = self.running.begin();
        let dir = datadir::resolve(&request.cwd, &request.data_dir);
        self.clean_unless_kept(&dir)?;

        let cluster = Cluster {
            scope: &request.scope,
            role: &request.role,
            data_dir: &request.data_dir,
            connstring: request.connstring.as_deref().unwrap_or(""),
        };
        let params = self.method.params(&cluster);
        let (program, args) = match self.method.words.split_first() {
            Some(split) => split,
            None => return Err(PluginError::config("`command` is empty")),
        };
        let mut cmd = Command::new(program);
        cmd.args(args).args(&params).envs(request.env.iter().map(|(k, v)| (k, v)));
        if !request.cwd.is_empty() {
            cmd.current_dir(&request.cwd);
        }
        tracing::info!("running {:?}", self.method.words.iter().chain(&params).collect::<Vec<_>>());

        let failure = match self.running.run(cmd, &self.label, CANCEL_GRACE) {
            Ok(outcome) if outcome.success() => return Ok(()),
            // Patroni's words: the host logs "Error creating replica using
            // method <name>: " before this; the last stderr line follows.
            Ok(outcome) => outcome.failure(&self.method.command),
            Err(e) => format!("cannot run {}: {e}", self.method.command),
        };
        if let Err(e) = self.clean_unless_kept(&dir) {
            tracing::error!("{e}");
        }
        Err(PluginError::other(failure))
    }

    fn cancel(&self) {
        self.running.cancel();
    }
}

palisade_plugin_api::export_plugin!(replica, "command", CommandMethod::new);
